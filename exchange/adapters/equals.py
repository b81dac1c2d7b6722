"""Equals adapter: Segment-style identify calls to the Equals URL — seed 004, partners/equals.md.

Equals takes one event per request at its URL (the URL is the only credential, so it is a secret
and never appears in events or messages). Audience membership follows Engage's user-property
convention: per user an ``identify`` whose traits carry the snake_cased audience name, ``true``
when the user enters and ``false`` when they leave. The first sync sends every member; later syncs
send only membership changes — the caller provides those as adds and removes computed from the
share's snapshot (delta), exactly like a replace on a partner without native replace.

``messageId`` is derived from (job, op, user), so a retry of the same message carries the same id
and Equals can drop the duplicate.

Limits as implemented (none published, all assumed): one user per request, 100 requests/s with
up to 4 in flight (at 20 ms per request one connection would top out near 50/s).
"""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from marshmallow import fields

from exchange.adapters.base import Adapter, AdapterSettingsSchema, BatchResult, Limit, Op, secret

_MESSAGE_NS = uuid.UUID("6f1c7f4e-6a43-4d55-9a5e-2f7c1e0b9d11")


def snake_case(name: str) -> str:
    """Engage's trait name for an audience: 'Order Completed Last 30days' → order_completed_last_30days."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "audience"


class EqualsSettingsSchema(AdapterSettingsSchema):
    url = secret(
        fields.Url(
            required=True,
            require_tld=False,
            schemes={"http", "https"},
            metadata={"title": "Equals URL", "description": "The URL Equals shows under Data Sources → Segment."},
        )
    )
    user_id_column = fields.String(
        load_default="customer_id",
        metadata={"title": "User id column", "description": "Mapped column sent as the identify userId."},
    )


class EqualsAdapter(Adapter):
    """Send audience membership to Equals as identify calls with a true/false trait."""

    name = "equals"
    title = "Equals"
    settings_schema = EqualsSettingsSchema
    identifiers = ("customer_id", "email")
    native_modes = frozenset({"add", "remove"})
    batch_size = 1
    rate_limit = 100.0
    concurrency = 4
    requires_snapshot = True
    auth_setting = "url"
    # The Equals URL is the credential; the ``ingest`` role only replaces its scheme and host
    # (a proxy or a sandbox), keeping the URL's secret path.
    hosts = {"ingest": ""}
    limits = (
        Limit("events_per_request", 1, "identify events", "documented",
              "Segment's Equals destination (send/index.ts): one event per request, no batching"),
        Limit("requests_per_second", 100, "requests/s", "assumed", "not published; 429 and 5xx are retried"),
    )

    def default_host(self, role: str) -> str:
        return ""

    @property
    def ingest_url(self) -> str:
        base = self.host("ingest")
        return self.rebase(self.settings["url"], base) if base else self.settings["url"]

    @property
    def trait(self) -> str:
        return snake_case(self.context.segment_name)

    def check(self) -> None:
        # Equals publishes no verification call and any POST would record data. A GET records
        # nothing, so verify calls the URL with GET (through the same address guard as deliveries):
        # the host must answer, and 401/403/404/410 mean a wrong URL (assumed: the Segment
        # connection URL only exists for POST, so a right URL answers 405 or another non-404).
        response = self.request("GET", self.settings["url"], what="checking the Equals URL",
                                ok=tuple(range(200, 500)), allow_redirects=False)
        if response.status_code in (401, 403, 404, 410):
            raise self.credentials_error(f"Equals answered HTTP {response.status_code} at the Equals URL", "url")

    def prefilter(self, row: dict[str, str]) -> str | None:
        column = self.settings["user_id_column"]
        if not (row.get(column) or "").strip():
            return f"{column} is required (the Equals userId)"
        return None

    def deliver_batch(self, op: Op, rows: list[dict[str, str]]) -> BatchResult:
        for row in rows:  # batch_size is 1; a loop keeps the hook honest for any size
            response = self.request(
                "POST",
                self.ingest_url,
                what=f"sending an identify ({'enter' if op == 'add' else 'exit'})",
                json=self._identify(op, row),
                ok=(403, 404),
            )
            if response.status_code in (403, 404):
                # A wrong Equals URL answers like an unknown page: the user must fix the URL.
                raise self.credentials_error(
                    f"Equals answered HTTP {response.status_code} at the Equals URL", "url"
                )
        return BatchResult(accepted=len(rows))

    def sample_row(self) -> dict[str, str]:
        return {self.settings["user_id_column"]: "exchange-smoke-test-user", "email": "smoke-test@example.invalid"}

    def read_back(self) -> dict[str, Any]:
        return {"note": "Equals offers no read-back: the identify calls are the whole contract"}

    def _identify(self, op: Op, row: dict[str, str]) -> dict:
        user_id = row[self.settings["user_id_column"]].strip()
        traits: dict[str, object] = {self.trait: op == "add"}
        if op == "add":
            traits.update({k: v for k, v in row.items() if k != self.settings["user_id_column"] and v})
        elif row.get("email"):
            traits["email"] = row["email"]
        return {
            "type": "identify",
            "userId": user_id,
            "traits": traits,
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "messageId": str(uuid.uuid5(_MESSAGE_NS, f"{self.context.job_id}:{op}:{user_id}")),
        }
