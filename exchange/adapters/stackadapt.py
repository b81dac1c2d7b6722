"""StackAdapt audience adapter over GraphQL — seed 002, contract notes partners/stackadapt.md.

``POST {base}/graphql`` with ``Authorization: Bearer <GraphQL token>`` and ``{"query": ...}``,
values inlined in the document as StackAdapt's own Segment destination does. One request per batch
carries three mutations: ``upsertProfileMapping`` (which columns map to which profile fields),
``upsertProfiles`` (the profiles as a JSON string, ``syncId`` = SHA-256 of that string, a dedupe
key that makes retries idempotent) and ``upsertExternalAudienceMapping``. Members entering are
profiles with ``action: "enter"``, members leaving ``action: "exit"`` — never
``deleteProfilesWithExternalIds``, which erases the person rather than the membership.

Email is required: rows without one are rejected before sending. ``userErrors`` on
``upsertProfiles`` reject the rows they point at (the whole batch when they point nowhere);
``userErrors`` on the mapping mutations mean our mapping is wrong, a permanent error.

Limits as implemented (none published, all assumed): 1,000 profiles per request, 10 requests/s
with 2 in flight (one 1,000-profile document takes its fake ~100 ms, so one connection stays short);
StackAdapt's 429 has no Retry-After, so the driver backs off exponentially.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from marshmallow import fields, validate

from exchange.adapters.base import Adapter, AdapterSettingsSchema, BatchResult, Limit, Op, secret
from exchange.errors import InvalidCredentials, PermanentTransferError

BASE_URL = "https://api.stackadapt.com"
PROVIDER = "segment_io"
SEGMENT_DESTINATION = ("segmentio/action-destinations, packages/destination-actions/src/destinations/"
                       "stackadapt-audiences/forwardAudienceEvent/constants.ts")
# Standard profile fields in Segment's order: column -> (label, type, is PII). Segment's current
# destination maps all eleven on every sync (no userId entry since Nov 2025).
STANDARD = {
    "email": ("Email", "STRING", True),
    "first_name": ("First Name", "STRING", True),
    "last_name": ("Last Name", "STRING", True),
    "phone": ("Phone", "STRING", True),
    "address": ("Address", "STRING", True),
    "city": ("City", "STRING", False),
    "state": ("State", "STRING", False),
    "country": ("Country", "STRING", False),
    "postal_code": ("Postal Code", "STRING", False),
    "timezone": ("Timezone", "STRING", False),
    "birth_date": ("Birth Date", "DATE", True),
}
TOKEN_INFO = "query { tokenInfo { scopesByAdvertiser { nodes { advertiser { name } scopes } } } }"


class Enum(str):
    """A GraphQL enum value: rendered bare (STRING), not quoted."""


def gql(value: Any) -> str:
    """Render a Python value as a GraphQL literal (JSON string escapes are valid GraphQL)."""
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(gql(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {gql(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot render {type(value).__name__} in GraphQL")


class StackAdaptSettingsSchema(AdapterSettingsSchema):
    graphql_token = secret(
        fields.String(
            required=True,
            validate=validate.Length(min=1),
            metadata={"title": "GraphQL token", "description": "StackAdapt read & write GraphQL API token."},
        )
    )
    advertiser_id = fields.String(
        required=True,
        validate=validate.Regexp(r"^[0-9]{1,18}$", error="Must be the numeric StackAdapt advertiser id."),
        metadata={"title": "Advertiser id",
                  "description": "The numeric StackAdapt advertiser to sync under (sent as an integer)."},
    )
    user_id_column = fields.String(
        load_default="customer_id",
        metadata={
            "title": "User id column",
            "description": "Mapped column sent as userId (StackAdapt external_id); the email when empty.",
        },
    )
    is_opted_in = fields.Boolean(
        load_default=False,
        metadata={"title": "Marketing opt-in", "description": "Whether these profiles opted in to marketing."},
    )


class StackAdaptAdapter(Adapter):
    """Share audiences with StackAdapt as profiles entering and exiting an external audience."""

    name = "stackadapt"
    title = "StackAdapt"
    settings_schema = StackAdaptSettingsSchema
    identifiers = ("email", "customer_id")  # email is required per row; customer_id becomes userId
    native_modes = frozenset({"add", "remove"})
    batch_size = 1000
    rate_limit = 10.0
    concurrency = 2  # StackAdapt takes ~100 ms to parse a 1,000-profile document
    requires_snapshot = True
    auth_setting = "graphql_token"
    hosts = {"api": BASE_URL}
    limits = (
        Limit("profiles_per_request", 1000, "profiles", "assumed",
              "not published; Segment batches Engage events (partners/stackadapt.md)"),
        Limit("requests_per_second", 10, "requests/s", "assumed",
              "not published; StackAdapt's 429 carries no Retry-After, so waits back off exponentially"),
        Limit("profiles_per_second", 10_000, "profiles/s", "assumed", "requests_per_second × profiles_per_request"),
        Limit("email_required", 1, "per profile", "documented",
              "seed 002: profiles without an email are not valid on StackAdapt"),
    )

    def _post(self, query: str, what: str) -> dict:
        response = self.request(
            "POST",
            f"{self.host('api')}/graphql",
            what=what,
            headers={"Authorization": f"Bearer {self.settings['graphql_token']}"},
            json={"query": query},
        )
        try:
            body = response.json()
        except ValueError:
            raise PermanentTransferError(f"StackAdapt: {what} answered something other than JSON") from None
        for error in body.get("errors") or []:
            code = (error.get("extensions") or {}).get("code")
            message = self.scrub(str(error.get("message", "")))
            if code == "UNAUTHENTICATED":
                raise self.credentials_error(f"StackAdapt refused the token: {message}", "graphql_token")
            if code == "FORBIDDEN":
                raise InvalidCredentials(
                    f"StackAdapt: the token may not write for advertiser {self.settings['advertiser_id']}: "
                    f"{message} (check the setting 'advertiser_id')",
                    setting="advertiser_id",
                )
            raise PermanentTransferError(f"StackAdapt: {what} failed: {message}")
        return body.get("data") or {}

    def partner_message(self, response) -> str:
        try:
            errors = response.json().get("errors") or []
            return self.scrub("; ".join(str(e.get("message")) for e in errors))
        except (ValueError, AttributeError):
            return super().partner_message(response)

    # -- hooks ---------------------------------------------------------------------------
    def check(self) -> None:
        data = self._post(TOKEN_INFO, "checking the token")
        nodes = ((data.get("tokenInfo") or {}).get("scopesByAdvertiser") or {}).get("nodes") or []
        if not any("WRITE" in (node.get("scopes") or []) for node in nodes):
            raise self.credentials_error("StackAdapt: the token has no WRITE scope", "graphql_token")

    def prefilter(self, row: dict[str, str]) -> str | None:
        email = (row.get("email") or "").strip()
        if not email:
            return "email is required"
        if "@" not in email:
            return "email is not a valid address"
        return None

    def deliver_batch(self, op: Op, rows: list[dict[str, str]]) -> BatchResult:
        profiles = [self._profile(row, op) for row in rows]
        profiles_json = json.dumps(profiles, separators=(",", ":"))
        advertiser = self._advertiser()
        query = (
            "mutation {\n"
            f"  upsertProfileMapping(input: {gql(self._mapping_input(rows, advertiser))})"
            " { userErrors { message } }\n"
            "  upsertProfiles(input: "
            + gql({"advertiserId": advertiser, "externalProvider": PROVIDER,
                   "syncId": hashlib.sha256(profiles_json.encode()).hexdigest(), "profiles": profiles_json})
            + ") { userErrors { message path } }\n"
            "  upsertExternalAudienceMapping(input: "
            + gql({"advertiserId": advertiser, "mappingSchema": AUDIENCE_MAPPING, "mappableType": PROVIDER})
            + ") { userErrors { message } }\n}"
        )
        data = self._post(query, f"{'entering' if op == 'add' else 'exiting'} {len(rows)} profiles")
        for mutation in ("upsertProfileMapping", "upsertExternalAudienceMapping"):
            errors = (data.get(mutation) or {}).get("userErrors") or []
            if errors:
                raise PermanentTransferError(
                    f"StackAdapt refused the mapping ({mutation}): " + "; ".join(e.get("message", "") for e in errors)
                )
        rejected = self._rejections(rows, (data.get("upsertProfiles") or {}).get("userErrors") or [])
        return BatchResult(accepted=len(rows) - len(rejected), rejected=rejected)

    # -- building the request ------------------------------------------------------------
    def _advertiser(self) -> int:
        return int(self.settings["advertiser_id"])  # an integer literal, as Segment sends it

    def _profile(self, row: dict[str, str], op: Op) -> dict[str, str]:
        user_column = self.settings["user_id_column"]
        profile = {"userId": (row.get(user_column) or "").strip() or row["email"].strip()}
        profile.update({k: v for k, v in row.items() if k != user_column and v != ""})
        profile["email"] = row["email"].strip()
        profile.update(
            audienceId=self.context.segment_id,
            audienceName=self.context.segment_name,
            action="enter" if op == "add" else "exit",
        )
        return profile

    def _mapping_input(self, rows: list[dict[str, str]], advertiser: int) -> dict:
        """``mappingSchemaV2``: the eleven standard fields, then the batch's other columns.

        Every entry is complete (``label`` and ``isPii`` are required by StackAdapt's
        ``MappingSchema``). Custom columns are ``STRING`` (CSV values carry no type) and never PII;
        labels are Title Case with "External " before names starting with "audience", as Segment does.
        """
        schema = [_entry(column, label, kind, pii) for column, (label, kind, pii) in STANDARD.items()]
        custom = sorted({k for row in rows for k in row} - set(STANDARD) - {self.settings["user_id_column"]})
        for column in custom:
            label = column.replace("_", " ").strip().title()
            schema.append(_entry(column, f"External {label}" if column.startswith("audience") else label,
                                 "STRING", False))
        return {"advertiserId": advertiser, "mappingSchemaV2": schema,
                "isOptedIn": self.settings["is_opted_in"], "mappableType": PROVIDER}

    # -- smoke check -----------------------------------------------------------------------
    def sample_row(self) -> dict[str, str]:
        return {"email": "exchange-smoke-test@example.invalid",
                self.settings["user_id_column"]: "exchange-smoke-test"}

    def read_back(self) -> dict[str, Any]:
        # StackAdapt's public schema offers no read of a profile's audience membership.
        return {"note": "StackAdapt exposes no membership read-back; profiles can take hours to show"}

    @staticmethod
    def _rejections(rows: list[dict[str, str]], errors: list[dict]) -> list[tuple[dict, str]]:
        rejected: dict[int, str] = {}
        for error in errors:
            message = str(error.get("message") or "refused by StackAdapt")
            indexes = [p for p in (error.get("path") or []) if isinstance(p, int) or str(p).isdigit()]
            if not indexes:  # an error that names no profile refuses the whole batch
                return [(row, f"StackAdapt: {message}") for row in rows]
            index = int(indexes[-1])
            if 0 <= index < len(rows):
                rejected.setdefault(index, f"StackAdapt: {message}")
        return [(rows[i], reason) for i, reason in sorted(rejected.items())]


def _entry(column: str, label: str, kind: str, pii: bool) -> dict:
    return {"incomingKey": column, "destinationKey": column, "label": label, "type": Enum(kind), "isPii": pii}


# upsertExternalAudienceMapping: Segment's MAPPING_SCHEMA, ``isPii`` included (StackAdapt's
# ``MappingSchema`` requires it: without it the whole document is invalid and nothing is written).
AUDIENCE_MAPPING = [
    {"incomingKey": "audienceId", "destinationKey": "external_id", "type": Enum("STRING"),
     "label": "External Audience ID", "isPii": False},
    {"incomingKey": "audienceName", "destinationKey": "name", "type": Enum("STRING"),
     "label": "External Audience Name", "isPii": False},
]
