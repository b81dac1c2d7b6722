"""Equativ (formerly Smart AdServer) audience adapter — seed 000, partners/equativ.md, docs/adapters/equativ.md.

Flow: an OAuth 2.0 client-credentials token (``POST {auth}/oauth/token``), then the segment is
created once through the Data Sync API v2 (``POST {segments}/segmentproviders/{id}/segments`` with
the seed's constant fields; a 409 means it already exists), then members are set or removed with
``POST {profiles}/segmentproviders/{id}/profiles``, one JSON array per request.

Three hosts, each overridable (the ``hosts`` setting or EXCHANGE_ADAPTER_BASE_URLS): ``auth``,
``segments`` (Data Sync v2) and ``profiles`` (the DMP host, chosen by ``region``).

Limits (see ``limits``): at most 1,000 profiles per second on the profiles route (observed: a
public client's own comment) — paced by default to ``profiles_per_second`` = 1,000 with
``profiles_per_request`` = 999 (the same client's cap; about 1,000 per call is observed), i.e.
one request every 0.999 s. Only the profiles route is paced: the token and the segment creation
are one request each per delivery.

Assumptions kept as settings whose defaults follow the seed: ``remove_field``
(``segmentIdsToRemove``) and ``segment_id_type`` (``string``: the seed's ``ca_{site}_{segment}``;
``integer``: the numeric id Equativ returns for the segment, as the public client sends).
Profiles are Equativ user ids from cookie matching: the ``profile_id_column`` output column
(``cookie_id`` by default) becomes ``profileId``.
"""
from __future__ import annotations

import time
from typing import Any

from marshmallow import fields, validate

from exchange.adapters.base import Adapter, AdapterSettingsSchema, BatchResult, Limit, Op, secret
from exchange.errors import InvalidCredentials, PermanentTransferError

AUTH_URL = "https://auth.smartadserverapis.com"
DATASYNC_URL = "https://datasync-eu.smartadserverapis.com"  # the seed's Segment API host
DMP_URLS = {
    "eu": "https://dmp.smartadserverapis.com",
    "na": "https://dmp-us.smartadserverapis.com",
    "eu-sandbox": "https://dmpsandbox.smartadserverapis.com",
}
SEGMENT_TTL = 2147483646  # the seed's constant: effectively "never expires"
TOKEN_MARGIN = 60.0  # renew a token this many seconds before it expires
PROFILES_PER_SECOND = 1000
PROFILES_PER_REQUEST = 999


class EquativSettingsSchema(AdapterSettingsSchema):
    client_id = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={"title": "Client id", "description": "OAuth client id of your Equativ API credentials."},
    )
    client_secret = secret(
        fields.String(
            required=True,
            validate=validate.Length(min=1),
            metadata={
                "title": "Client secret",
                "description": "OAuth client secret (sandbox and production credentials differ).",
            },
        )
    )
    segment_provider_id = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9_-]+$"),
        metadata={"title": "Segment provider id", "description": "Your Equativ segment provider id."},
    )
    region = fields.String(
        load_default="eu",
        validate=validate.OneOf(sorted(DMP_URLS)),
        metadata={
            "title": "Region",
            "description": "DMP host: eu, na or eu-sandbox (at most 1 million profiles).",
            "enum": sorted(DMP_URLS),
        },
    )
    profile_id_column = fields.String(
        load_default="cookie_id",
        metadata={
            "title": "Profile id column",
            "description": "Mapped column holding the Equativ user id (from user sync).",
        },
    )
    profiles_per_second = fields.Integer(
        load_default=PROFILES_PER_SECOND,
        validate=validate.Range(min=1, max=100_000),
        metadata={"title": "Profiles per second",
                  "description": "Pace of the profiles route (Equativ accepts at most 1,000/s unless agreed)."},
    )
    profiles_per_request = fields.Integer(
        load_default=PROFILES_PER_REQUEST,
        validate=validate.Range(min=1, max=1000),
        metadata={"title": "Profiles per request", "description": "Profiles in one request (about 1,000 at most)."},
    )
    remove_field = fields.String(
        load_default="segmentIdsToRemove",
        validate=validate.Regexp(r"^[A-Za-z][A-Za-z0-9_]{0,63}$"),
        metadata={"title": "Removal field",
                  "description": "Profile field listing segments to leave (assumed segmentIdsToRemove)."},
    )
    segment_id_type = fields.String(
        load_default="string",
        validate=validate.OneOf(["string", "integer"]),
        metadata={"title": "Segment id type",
                  "description": "string: the seed's ca_{site}_{segment}; integer: Equativ's numeric segment id.",
                  "enum": ["string", "integer"]},
    )


class EquativAdapter(Adapter):
    """Share audiences with Equativ as DMP segments of Equativ user ids."""

    name = "equativ"
    title = "Equativ"
    settings_schema = EquativSettingsSchema
    identifiers = ("cookie_id",)
    native_modes = frozenset({"add", "remove"})
    batch_size = PROFILES_PER_REQUEST
    rate_limit = PROFILES_PER_SECOND / PROFILES_PER_REQUEST
    requires_snapshot = True
    auth_setting = "client_secret"
    hosts = {"auth": AUTH_URL, "segments": DATASYNC_URL, "profiles": DMP_URLS["eu"]}
    limits = (
        Limit("profiles_per_second", PROFILES_PER_SECOND, "profiles/s", "observed",
              "a public client of the profiles route: the platform accepts at most 1,000 profiles per second"),
        Limit("profiles_per_request", 1000, "profiles", "observed",
              "the same client caps requests at 999 profiles (about 1,000 per call)"),
        Limit("sandbox_profiles", 1_000_000, "unique profiles", "documented",
              "Equativ sandbox (dmpsandbox host): no more than 1 million unique profiles"),
    )

    _token: str | None = None
    _token_expires: float = 0.0
    _numeric_segment_id: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The driver reads these per instance: the pace follows the settings.
        self.batch_size = self.settings["profiles_per_request"]
        self.rate_limit = self.settings["profiles_per_second"] / self.batch_size

    def default_host(self, role: str) -> str:
        if role == "profiles":
            return DMP_URLS[self.settings["region"]]
        return self.hosts[role]

    def _provider_url(self, role: str, tail: str) -> str:
        return f"{self.host(role)}/segmentproviders/{self.settings['segment_provider_id']}/{tail}"

    @property
    def segment_id(self) -> str:
        return f"ca_{self.context.site_id}_{self.context.segment_id}"

    # -- hooks ---------------------------------------------------------------------------
    def check(self) -> None:
        # Obtaining a token is itself authenticated and changes nothing at Equativ.
        self._fetch_token()

    def prepare(self) -> list[str]:
        body = {
            "active": True,
            "description": self.context.segment_name,
            "name": self.context.segment_name,
            "price": 0,
            "segmentId": self.segment_id,
            "selectable": True,
            "ttl": SEGMENT_TTL,
        }
        response = self._api("POST", self._provider_url("segments", "segments"), what="creating the segment",
                             json=body, ok=(409,))
        if self.settings["segment_id_type"] == "integer":
            if response.status_code == 409:  # assumed: the segment can be read back by its segmentId
                response = self._api("GET", self._provider_url("segments", f"segments/{self.segment_id}"),
                                     what="reading the segment")
            numeric = _json(response).get("id")
            if isinstance(numeric, bool) or not isinstance(numeric, int):
                raise PermanentTransferError(
                    "Equativ returned no numeric segment id (check the setting 'segment_id_type')")
            self._numeric_segment_id = numeric
        if response.status_code == 409:
            return [f"Equativ segment {self.segment_id} already exists; reusing it"]
        return [f"Equativ segment {self.segment_id} created"]

    def prefilter(self, row: dict[str, str]) -> str | None:
        column = self.settings["profile_id_column"]
        if not (row.get(column) or "").strip():
            return f"{column} is required (the Equativ profile id)"
        return None

    def deliver_batch(self, op: Op, rows: list[dict[str, str]]) -> BatchResult:
        key = "segmentIdsToSet" if op == "add" else self.settings["remove_field"]
        segment: str | int = self.segment_id
        if self.settings["segment_id_type"] == "integer" and self._numeric_segment_id is not None:
            segment = self._numeric_segment_id
        column = self.settings["profile_id_column"]
        body = [{"profileId": row[column].strip(), key: [segment]} for row in rows]
        self._api("POST", self._provider_url("profiles", "profiles"),
                  what=f"{'adding' if op == 'add' else 'removing'} {len(rows)} profiles", json=body, paced=True)
        return BatchResult(accepted=len(rows))

    def sample_row(self) -> dict[str, str]:
        return {self.settings["profile_id_column"]: "exchange-smoke-test-profile"}

    def read_back(self) -> dict[str, Any]:
        return {"note": "Equativ publishes no read of a segment's size on these APIs"}

    # -- auth ----------------------------------------------------------------------------
    def _fetch_token(self) -> str:
        response = self.request(
            "POST",
            f"{self.host('auth')}/oauth/token",
            what="requesting an access token",
            data={
                "client_id": self.settings["client_id"],
                "client_secret": self.settings["client_secret"],
                "grant_type": "client_credentials",
            },
            ok=(400, 401),
            paced=False,
        )
        if response.status_code in (400, 401):
            # OAuth answers invalid_client for a wrong id and a wrong secret alike.
            raise self.credentials_error(
                f"Equativ refused the client id or client secret ({self.partner_message(response)})",
                "client_secret",
            )
        payload = response.json()
        self._token = payload["access_token"]
        self.runtime_secrets.append(self._token)  # never printed by the smoke check, never logged
        self._token_expires = time.monotonic() + float(payload.get("expires_in") or 3600) - TOKEN_MARGIN
        return self._token

    def _api(self, method: str, url: str, *, what: str, ok: tuple[int, ...] = (), paced: bool = False,
             **kwargs):
        for fresh in (False, True):
            if fresh or not self._token or time.monotonic() >= self._token_expires:
                self._fetch_token()
            response = self.request(
                method, url, what=what, ok=(401, 403, *ok), paced=paced and not fresh,
                headers={"Authorization": f"Bearer {self._token}"}, **kwargs,
            )
            if response.status_code == 401 and not fresh:
                self._token = None  # expired or revoked early: one retry with a new token
                continue
            if response.status_code == 401:
                raise self.credentials_error("Equativ refused a fresh access token", "client_secret")
            if response.status_code == 403:
                raise InvalidCredentials(
                    f"Equativ: these credentials may not use segment provider "
                    f"{self.settings['segment_provider_id']} (check the setting 'segment_provider_id')",
                    setting="segment_provider_id",
                )
            return response
        raise AssertionError("unreachable")

    def partner_message(self, response) -> str:
        try:
            body = response.json()
        except ValueError:
            return super().partner_message(response)
        if isinstance(body, dict) and body.get("error"):
            return self.scrub(" ".join(str(body.get(k, "")) for k in ("error", "error_description")).strip())
        return super().partner_message(response)


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
