"""Equativ (formerly Smart AdServer) audience adapter — seed 000, contract notes partners/equativ.md.

Flow: an OAuth 2.0 client-credentials token (``POST {auth}/oauth/token``), then the segment is
created once through the Data Sync API v2 (``POST {datasync}/segmentproviders/{id}/segments`` with
the seed's constant fields; a 409 means it already exists), then members are set or removed with
``POST {dmp}/segmentproviders/{id}/profiles``, one JSON array of at most 999 profiles per request.

Limits as implemented: 999 profiles per request (a client caps at 999; about 1000 is observed,
not documented); 10 requests/s (assumed: Equativ publishes no number, so 429 + Retry-After is
waited out by the driver). Removal uses ``segmentIdsToRemove`` (assumed by the contract notes).
Profiles are Equativ user ids from cookie matching: the ``profile_id_column`` output column
(``cookie_id`` by default) becomes ``profileId``.
"""
from __future__ import annotations

import time

from marshmallow import fields, validate

from exchange.adapters.base import Adapter, AdapterSettingsSchema, BatchResult, Op, secret
from exchange.errors import InvalidCredentials

AUTH_URL = "https://auth.smartadserverapis.com"
DATASYNC_URL = "https://datasync-eu.smartadserverapis.com"  # the seed's Segment API host
DMP_URLS = {
    "eu": "https://dmp.smartadserverapis.com",
    "na": "https://dmp-us.smartadserverapis.com",
    "eu-sandbox": "https://dmpsandbox.smartadserverapis.com",
}
SEGMENT_TTL = 2147483646  # the seed's constant: effectively "never expires"
TOKEN_MARGIN = 60.0  # renew a token this many seconds before it expires


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


class EquativAdapter(Adapter):
    """Share audiences with Equativ as DMP segments of Equativ user ids."""

    name = "equativ"
    title = "Equativ"
    settings_schema = EquativSettingsSchema
    identifiers = ("cookie_id",)
    native_modes = frozenset({"add", "remove"})
    batch_size = 999
    rate_limit = 10.0
    requires_snapshot = True
    auth_setting = "client_secret"

    _token: str | None = None
    _token_expires: float = 0.0

    # -- URLs: with a base_url override (tests, proxies) one host serves all three roles ---------
    def default_base_url(self) -> str:
        return ""

    def _auth_url(self) -> str:
        return self.base_url or AUTH_URL

    def _datasync_url(self) -> str:
        return self.base_url or DATASYNC_URL

    def _dmp_url(self) -> str:
        return self.base_url or DMP_URLS[self.settings["region"]]

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
        response = self._api(
            "POST",
            f"{self._datasync_url()}/segmentproviders/{self.settings['segment_provider_id']}/segments",
            what="creating the segment",
            json=body,
            ok=(409,),
        )
        if response.status_code == 409:
            return [f"Equativ segment {self.segment_id} already exists; reusing it"]
        return [f"Equativ segment {self.segment_id} created"]

    def prefilter(self, row: dict[str, str]) -> str | None:
        column = self.settings["profile_id_column"]
        if not (row.get(column) or "").strip():
            return f"{column} is required (the Equativ profile id)"
        return None

    def deliver_batch(self, op: Op, rows: list[dict[str, str]]) -> BatchResult:
        key = "segmentIdsToSet" if op == "add" else "segmentIdsToRemove"
        column = self.settings["profile_id_column"]
        body = [{"profileId": row[column].strip(), key: [self.segment_id]} for row in rows]
        self._api(
            "POST",
            f"{self._dmp_url()}/segmentproviders/{self.settings['segment_provider_id']}/profiles",
            what=f"{'adding' if op == 'add' else 'removing'} {len(rows)} profiles",
            json=body,
        )
        return BatchResult(accepted=len(rows))

    # -- auth ----------------------------------------------------------------------------
    def _fetch_token(self) -> str:
        response = self.request(
            "POST",
            f"{self._auth_url()}/oauth/token",
            what="requesting an access token",
            data={
                "client_id": self.settings["client_id"],
                "client_secret": self.settings["client_secret"],
                "grant_type": "client_credentials",
            },
            ok=(400, 401),
        )
        if response.status_code in (400, 401):
            # OAuth answers invalid_client for a wrong id and a wrong secret alike.
            raise self.credentials_error(
                f"Equativ refused the client id or client secret ({self.partner_message(response)})",
                "client_secret",
            )
        payload = response.json()
        self._token = payload["access_token"]
        self._token_expires = time.monotonic() + float(payload.get("expires_in") or 3600) - TOKEN_MARGIN
        return self._token

    def _api(self, method: str, url: str, *, what: str, ok: tuple[int, ...] = (), **kwargs):
        for fresh in (False, True):
            if fresh or not self._token or time.monotonic() >= self._token_expires:
                self._fetch_token()
            response = self.request(
                method, url, what=what, ok=(401, 403, *ok),
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
