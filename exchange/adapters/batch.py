"""Batch adapter: Custom Audience API 1.1 — seed 001, contract notes partners/batch.md.

Routes under ``{base}/1.1/{BATCH_API_KEY}/custom-audience``, headers ``X-Authorization: <REST API
key>`` and JSON. The audience is keyed by its **name**, derived from the destination audience name
(only ``[A-Za-z0-9_-]``, at most 255 characters): renaming the destination audience therefore
starts a *new* Batch audience, and ``prepare`` says so in the job's events. ``prepare`` looks the
audience up and creates it (``type`` = the ``audience_type`` setting, ``custom_ids`` by default;
description ``{site_id}_{segment_id}_{segment_name}``) only when missing. Members are sent with
PATCH, ``{"ids": [{"action": "add"|"remove", "id", "attributes", "tags"}]}``; ``finish`` reads back
``nb_ids`` and ``indexing_state``.

Limits as implemented: 10,000 ids per request (documented); 1 request/s, i.e. 10,000 ids/s
(assumed — Batch publishes no limit for 1.1; its newer mass-update API documents 10,000/s).
PUT would replace natively but only within one 10,000-id request, so ``replace`` is sent as adds
and removes computed from snapshots like every other partner.
"""
from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, fields, pre_load, validate, validates

from exchange.adapters.base import Adapter, AdapterSettingsSchema, BatchResult, Op, secret

BASE_URL = "https://api.batch.com"
NAME_MAX = 255
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")
_ATTRIBUTE_KEY = re.compile(r"^(?:(?:date|url)\([A-Za-z0-9_]{1,30}\)|[A-Za-z0-9_]{1,30})$")


def audience_name(segment_name: str, fallback: str) -> str:
    """A valid Batch audience name: runs of other characters become ``_``, cut at 255."""
    name = _NAME_BAD.sub("_", segment_name.strip()).strip("_")[:NAME_MAX]
    return name or _NAME_BAD.sub("_", fallback)[:NAME_MAX]


class BatchSettingsSchema(AdapterSettingsSchema):
    api_key = secret(
        fields.String(
            required=True,
            validate=validate.Regexp(r"^[A-Za-z0-9]+$"),
            metadata={"title": "Batch API Key", "description": "Live or Dev API key (Settings → General)."},
        )
    )
    rest_api_key = secret(
        fields.String(
            required=True,
            validate=validate.Length(min=1),
            metadata={"title": "REST API Key", "description": "REST API key (Settings → General)."},
        )
    )
    custom_user_id = fields.String(
        required=True,
        validate=validate.Length(min=1),
        metadata={
            "title": "Custom User Id",
            "description": "Mapped column whose value is the Batch Custom User Id.",
        },
    )
    attributes = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        load_default=dict,
        metadata={
            "title": "Custom Audience Properties: mapping",
            "description": "Batch attribute name (may be typed: date(name), url(name)) → mapped column.",
        },
    )
    tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=255)),
        load_default=list,
        metadata={"title": "Custom Audience Properties: tags", "description": "Tag values, one per line."},
    )
    audience_type = fields.String(
        load_default="custom_ids",
        validate=validate.OneOf(["custom_ids", "install_ids"]),
        metadata={
            "title": "Audience type",
            "description": "custom_ids (the seed) or install_ids (Batch's 1.1 docs).",
            "enum": ["custom_ids", "install_ids"],
        },
    )

    @pre_load
    def _tags_one_per_line(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("tags"), str):
            data = {**data, "tags": [line.strip() for line in data["tags"].splitlines() if line.strip()]}
        return data

    @validates("attributes")
    def _attribute_keys(self, value: dict, **_: Any) -> None:
        bad = sorted(key for key in value if not _ATTRIBUTE_KEY.match(key))
        if bad:
            raise ValidationError(f"Invalid Batch attribute names: {', '.join(bad)}")


class BatchAdapter(Adapter):
    """Share audiences with Batch as custom audiences of Custom User Ids."""

    name = "batch"
    title = "Batch"
    settings_schema = BatchSettingsSchema
    identifiers = ("customer_id",)
    native_modes = frozenset({"add", "remove"})
    batch_size = 10_000
    rate_limit = 1.0
    requires_snapshot = True
    auth_setting = "rest_api_key"
    base_url_default = BASE_URL

    _indexing_token: str | None = None

    @property
    def audience(self) -> str:
        return audience_name(self.context.segment_name, f"audience_{self.context.segment_id}")

    def _url(self, name: str | None = None) -> str:
        url = f"{self.base_url}/1.1/{self.settings['api_key']}/custom-audience"
        return f"{url}/{name}" if name else url

    def _headers(self) -> dict[str, str]:
        return {"X-Authorization": self.settings["rest_api_key"], "Content-Type": "application/json"}

    # -- hooks ---------------------------------------------------------------------------
    def check(self) -> None:
        self.request(
            "GET", self._url(), what="listing custom audiences", headers=self._headers(),
            params={"from": 0, "limit": 1},
        )

    def prepare(self) -> list[str]:
        name = self.audience
        events = []
        if name != self.context.segment_name:
            events.append(f"Batch audience name '{name}' derived from '{self.context.segment_name}'")
        events.append(
            f"Batch keys audiences by name: renaming this destination audience starts a new Batch "
            f"audience and leaves '{name}' as it is"
        )
        found = self.request(
            "GET", self._url(name), what="looking up the audience", headers=self._headers(), ok=(404,)
        )
        if found.status_code != 404:
            return [*events, f"Batch audience '{name}' exists; reusing it"]
        self.request(
            "POST",
            self._url(name),
            what="creating the audience",
            headers=self._headers(),
            json={
                "type": self.settings["audience_type"],
                "description": f"{self.context.site_id}_{self.context.segment_id}_{self.context.segment_name}",
            },
        )
        return [*events, f"Batch audience '{name}' created"]

    def prefilter(self, row: dict[str, str]) -> str | None:
        column = self.settings["custom_user_id"]
        if not (row.get(column) or "").strip():
            return f"{column} is required (the Batch Custom User Id)"
        return None

    def deliver_batch(self, op: Op, rows: list[dict[str, str]]) -> BatchResult:
        column = self.settings["custom_user_id"]
        ids = []
        for row in rows:
            item: dict[str, Any] = {"action": op, "id": row[column].strip()}
            if op == "add":
                attributes = {
                    key: row[col] for key, col in self.settings["attributes"].items() if row.get(col)
                }
                if attributes:
                    item["attributes"] = attributes
                if self.settings["tags"]:
                    item["tags"] = list(self.settings["tags"])
            ids.append(item)
        response = self.request(
            "PATCH",
            self._url(self.audience),
            what=f"{'adding' if op == 'add' else 'removing'} {len(rows)} ids",
            headers=self._headers(),
            json={"ids": ids},
        )
        token = _json(response).get("indexing_token")
        if token:
            self._indexing_token = str(token)
        return BatchResult(accepted=len(rows))

    def finish(self) -> list[str]:
        params = {"indexing_token": self._indexing_token} if self._indexing_token else None
        response = self.request(
            "GET", self._url(self.audience), what="reading the audience back", headers=self._headers(),
            params=params,
        )
        body = _json(response)
        summary = (
            f"Batch audience '{self.audience}': nb_ids={body.get('nb_ids')}, "
            f"indexing_state={body.get('indexing_state')}"
        )
        return [summary]

    def partner_message(self, response) -> str:
        body = _json(response)
        if "message" in body:
            return self.scrub(f"{body.get('message')} (code {body.get('code')})")
        return super().partner_message(response)


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
