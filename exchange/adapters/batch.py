"""Batch adapter: custom-id audiences — seed 001, contract notes partners/batch.md, docs/adapters/batch.md.

Which route carries Custom User Ids (the ``route`` setting):

* ``2.x`` — Batch's current **Audience API** (``POST {api}/{version}/audiences/create|update``,
  ``GET …/audiences/view|list``; ``Authorization: Bearer <REST API key>`` and ``X-Batch-Project``).
  The default whenever a project key is set: documented for custom ids, one project covers every
  platform, ids carry ``attributes`` (≤ 15), every write returns an ``indexing_token`` and ``view``
  reports ``nb_ids`` and ``indexing_state``.
* ``1.0`` — the legacy **Custom Audience API 1.0** (``{api}/1.0/{API_KEY}/custom-audience/{name}``,
  ``X-Authorization``), which Batch documents as the version for custom user ids. The default
  when only the seed's app API key is set (endpoints registered before the 2.x route existed keep
  working). Its pages show no ``attributes`` or ``tags``: they are not sent, and an event says so.
* ``1.1`` — install ids only (Batch: "1.1 only accepts install IDs"); accepted only with
  ``audience_type = install_ids``. Sending custom ids there, as this adapter once did, is refused.

Whatever the route, seed 001's semantics hold: the audience is keyed by its **name** (derived from
the destination audience name: ``[A-Za-z0-9_-]``, ≤ 255 characters; renaming starts a new Batch
audience and ``prepare`` says so), created lazily with type ``custom_ids`` and description
``{site_id}_{segment_id}_{segment_name}`` (2.x: ``display_name``), members added and removed in
requests of at most 10,000 ids, and ``nb_ids`` / ``indexing_state`` read back at the end.
"""
from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, fields, pre_load, validate, validates, validates_schema

from exchange.adapters.base import Adapter, AdapterSettingsSchema, BatchResult, Limit, Op, secret

BASE_URL = "https://api.batch.com"
NAME_MAX = 255
MAX_ATTRIBUTES_V2 = 15
ROUTES = ("auto", "2.x", "1.0", "1.1")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")
_ATTRIBUTE_KEY = re.compile(r"^(?:(?:date|url)\([A-Za-z0-9_]{1,30}\)|[A-Za-z0-9_]{1,30})$")


def audience_name(segment_name: str, fallback: str) -> str:
    """A valid Batch audience name: runs of other characters become ``_``, cut at 255."""
    name = _NAME_BAD.sub("_", segment_name.strip()).strip("_")[:NAME_MAX]
    return name or _NAME_BAD.sub("_", fallback)[:NAME_MAX]


def resolve_route(settings: dict) -> str:
    route = settings.get("route") or "auto"
    if route != "auto":
        return route
    if settings.get("audience_type") == "install_ids":
        return "1.1"
    return "2.x" if settings.get("project_key") else "1.0"


class BatchSettingsSchema(AdapterSettingsSchema):
    rest_api_key = secret(
        fields.String(
            required=True,
            validate=validate.Length(min=1),
            metadata={"title": "REST API Key", "description": "REST API key (Settings → General)."},
        )
    )
    project_key = secret(
        fields.String(
            load_default=None,
            validate=validate.Regexp(r"^[A-Za-z0-9_-]+$"),
            metadata={"title": "Project key",
                      "description": "Batch project key (X-Batch-Project) for the 2.x Audience API."},
        )
    )
    api_key = secret(
        fields.String(
            load_default=None,
            validate=validate.Regexp(r"^[A-Za-z0-9]+$"),
            metadata={"title": "Batch API Key",
                      "description": "Live or Dev app API key (Settings → General), for the 1.x routes."},
        )
    )
    route = fields.String(
        load_default="auto",
        validate=validate.OneOf(ROUTES),
        metadata={
            "title": "Route",
            "description": "auto (2.x with a project key, else 1.0), 2.x (Audience API), 1.0 (Custom "
                           "Audience API, custom ids), 1.1 (install ids only).",
            "enum": list(ROUTES),
        },
    )
    api_version = fields.String(
        load_default="2.8",
        validate=validate.Regexp(r"^2\.[0-9]{1,2}$"),
        metadata={"title": "Audience API version", "description": "Version in 2.x routes, e.g. 2.8."},
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
        metadata={"title": "Custom Audience Properties: tags",
                  "description": "Tag values, one per line (2.x: sent as the array attribute named below)."},
    )
    tags_attribute = fields.String(
        load_default="tags",
        validate=validate.Regexp(r"^[A-Za-z0-9_]{1,30}$"),
        metadata={"title": "Tags attribute", "description": "2.x has no tags: the array attribute carrying them."},
    )
    readback_polls = fields.Integer(
        load_default=5,
        validate=validate.Range(min=0, max=60),
        metadata={"title": "Read-back polls",
                  "description": "Extra views (paced, about 1/s) while the last write is IN_PROGRESS."},
    )
    audience_type = fields.String(
        load_default="custom_ids",
        validate=validate.OneOf(["custom_ids", "install_ids"]),
        metadata={
            "title": "Audience type",
            "description": "custom_ids (the seed) or install_ids (1.1 route only).",
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

    @validates_schema(skip_on_field_errors=False)
    def _route_needs(self, data: dict, **_: Any) -> None:
        route = resolve_route(data)
        if route == "2.x" and not data.get("project_key"):
            raise ValidationError("Missing data for required field: the 2.x Audience API needs the project key "
                                  "(X-Batch-Project).", "project_key")
        if route.startswith("1.") and not data.get("api_key"):
            hint = (" or a project_key for the 2.x Audience API" if (data.get("route") or "auto") == "auto" else "")
            raise ValidationError(f"Missing data for required field: the {route} Custom Audience API needs the "
                                  f"app's API key{hint}.", "api_key")
        if route == "1.1" and data.get("audience_type") != "install_ids":
            raise ValidationError("Batch's 1.1 route only accepts install ids; custom user ids need 2.x or 1.0.",
                                  "route")
        if route != "1.1" and data.get("audience_type") == "install_ids":
            raise ValidationError("install_ids audiences need the 1.1 route.", "audience_type")
        if route == "2.x":
            count = len(data.get("attributes") or {}) + (1 if data.get("tags") else 0)
            if count > MAX_ATTRIBUTES_V2:
                raise ValidationError(f"The Audience API takes at most {MAX_ATTRIBUTES_V2} attributes per id "
                                      f"(tags count as one).", "attributes")


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
    hosts = {"api": BASE_URL}
    limits = (
        Limit("ids_per_request", 10_000, "ids", "documented",
              "doc.batch.com Audience API update (2.x) and Custom Audience API PATCH (1.x): up to 10,000 elements"),
        Limit("attributes_per_id", MAX_ATTRIBUTES_V2, "attributes", "documented",
              "doc.batch.com Audience API update: attributes support up to 15 elements"),
        Limit("requests_per_second", 1, "requests/s", "assumed",
              "not published for audiences; 429 + Retry-After is waited out"),
        Limit("ids_per_second", 10_000, "ids/s", "assumed",
              "requests_per_second × ids_per_request; Batch documents 10,000/s for its profile mass-update"),
    )

    _indexing_token: str | None = None

    @property
    def route(self) -> str:
        return resolve_route(self.settings)

    @property
    def audience(self) -> str:
        return audience_name(self.context.segment_name, f"audience_{self.context.segment_id}")

    @property
    def description(self) -> str:
        return f"{self.context.site_id}_{self.context.segment_id}_{self.context.segment_name}"

    # -- the two API families --------------------------------------------------------------
    def _v1_url(self, name: str | None = None) -> str:
        url = f"{self.host('api')}/{self.route}/{self.settings['api_key']}/custom-audience"
        return f"{url}/{name}" if name else url

    def _v2_url(self, action: str) -> str:
        return f"{self.host('api')}/{self.settings['api_version']}/audiences/{action}"

    def _headers(self) -> dict[str, str]:
        if self.route == "2.x":
            return {"Authorization": f"Bearer {self.settings['rest_api_key']}",
                    "X-Batch-Project": self.settings["project_key"], "Content-Type": "application/json"}
        return {"X-Authorization": self.settings["rest_api_key"], "Content-Type": "application/json"}

    def _view(self, token: str | None = None, *, missing_ok: bool = False):
        params: dict[str, str] = {"indexing_token": token} if token else {}
        if self.route == "2.x":
            url, params = self._v2_url("view"), {"name": self.audience, **params}
        else:
            url = self._v1_url(self.audience)
        return self.request("GET", url, what="reading the audience", headers=self._headers(),
                            params=params or None, ok=(404,) if missing_ok else ())

    # -- hooks ---------------------------------------------------------------------------
    def check(self) -> None:
        if self.route == "2.x":
            self.request("GET", self._v2_url("list"), what="listing audiences", headers=self._headers(),
                         params={"limit": 1})
        else:
            self.request("GET", self._v1_url(), what="listing custom audiences", headers=self._headers(),
                         params={"from": 0, "limit": 1})

    def prepare(self) -> list[str]:
        name = self.audience
        events = [f"Batch route: {self.route}" + (" (Custom Audience API 1.0 takes no attributes or tags: "
                                                  "they are not sent)" if self.route == "1.0" and
                                                  (self.settings["attributes"] or self.settings["tags"]) else "")]
        if name != self.context.segment_name:
            events.append(f"Batch audience name '{name}' derived from '{self.context.segment_name}'")
        events.append(
            f"Batch keys audiences by name: renaming this destination audience starts a new Batch "
            f"audience and leaves '{name}' as it is"
        )
        if self._view(missing_ok=True).status_code != 404:
            return [*events, f"Batch audience '{name}' exists; reusing it"]
        if self.route == "2.x":
            body = {"name": name, "display_name": self.description, "type": "custom_ids"}
            self.request("POST", self._v2_url("create"), what="creating the audience", headers=self._headers(),
                         json=body)
        else:
            body = {"type": self.settings["audience_type"], "description": self.description}
            self.request("POST", self._v1_url(name), what="creating the audience", headers=self._headers(),
                         json=body)
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
                item.update(self._properties(row))
            ids.append(item)
        what = f"{'adding' if op == 'add' else 'removing'} {len(rows)} ids"
        if self.route == "2.x":
            response = self.request("POST", self._v2_url("update"), what=what, headers=self._headers(),
                                    json={"name": self.audience, "ids": ids})
        else:
            response = self.request("PATCH", self._v1_url(self.audience), what=what, headers=self._headers(),
                                    json={"type": self.settings["audience_type"], "ids": ids})
        token = _json(response).get("indexing_token")
        if token:
            self._indexing_token = str(token)
        return BatchResult(accepted=len(rows))

    def _properties(self, row: dict[str, str]) -> dict[str, Any]:
        """Seed 001's Custom Audience Properties for one added id, as the route accepts them."""
        attributes: dict[str, Any] = {key: row[col] for key, col in self.settings["attributes"].items() if row.get(col)}
        tags = list(self.settings["tags"])
        if self.route == "2.x":
            if tags:
                attributes[self.settings["tags_attribute"]] = tags
            return {"attributes": attributes} if attributes else {}
        if self.route == "1.1":
            return {**({"attributes": attributes} if attributes else {}), **({"tags": tags} if tags else {})}
        return {}  # 1.0 documents neither attributes nor tags

    def finish(self) -> list[str]:
        body = self.read_back()
        return [f"Batch audience '{self.audience}': nb_ids={body.get('nb_ids')}, "
                f"indexing_state={body.get('indexing_state')}"]

    def read_back(self) -> dict[str, Any]:
        """``view`` with the last indexing token; viewed again (paced) while it is IN_PROGRESS."""
        for _ in range(1 + self.settings["readback_polls"]):
            body = _json(self._view(self._indexing_token))
            if body.get("indexing_state") != "IN_PROGRESS":
                break
        return {key: body.get(key) for key in ("nb_ids", "indexing_state", "created", "updated")}

    def sample_row(self) -> dict[str, str]:
        return {self.settings["custom_user_id"]: "exchange-smoke-test-user"}

    def partner_message(self, response) -> str:
        body = _json(response)
        if "message" in body or "error_message" in body:
            message = body.get("message") or body.get("error_message")
            code = body.get("code") or body.get("error_code")
            return self.scrub(f"{message} (code {code})")
        return super().partner_message(response)


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
