"""Form fields → the API schemas' dict shapes, and error messages → the fields they belong to.

Pages validate with the same marshmallow schemas as the API (``Schema().load``) and show each
message next to its field: errors are flat ``{"dotted.field": [messages]}`` like the API's problem
documents, so ``mapping.0.source`` or ``adapter.settings.api_key`` find their input.
"""
from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError
from werkzeug.datastructures import MultiDict

from ..errors import ExchangeError, flatten_messages

Errors = dict[str, list[str]]
SPLIT = re.compile(r"[\s,]+")


class FormInvalid(Exception):
    """A form did not validate: a summary for the top of the form and messages per field."""

    def __init__(self, detail: str, errors: Errors):
        super().__init__(detail)
        self.detail, self.errors = detail, errors

    @classmethod
    def from_error(cls, err: ExchangeError | ValidationError) -> FormInvalid:
        if isinstance(err, ValidationError):
            return cls("Please correct the fields marked below.", flatten_messages(err.messages))
        return cls(err.detail, {k: list(v) for k, v in (err.errors or {}).items()})


def fold(errors: Errors, *names: str) -> Errors:
    """Messages about list items (``identifiers.2``) shown at the list's own field (``identifiers``)."""
    out: Errors = {}
    for key, messages in errors.items():
        head, _, rest = key.partition(".")
        target = head if head in names and rest.isdigit() else key
        out.setdefault(target, []).extend(m for m in messages if m not in out.get(target, []))
    return out


def load(schema: Schema, data: dict) -> dict:
    try:
        return schema.load(data)
    except ValidationError as err:
        raise FormInvalid.from_error(err) from None


def words(text: str | None) -> list[str]:
    """``"email, customer_id"`` or one per line → ``["email", "customer_id"]`` (order kept, no repeats)."""
    seen: list[str] = []
    for word in SPLIT.split(text or ""):
        if word and word not in seen:
            seen.append(word)
    return seen


def optional(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


# ---------------------------------------------------------------- endpoints


def endpoint_data(form: MultiDict) -> dict:
    """The register form as the body of ``POST /v1/endpoints`` (before schema validation)."""
    data: dict[str, Any] = {"name": form.get("name", "").strip()}
    kind = form.get("kind", "protocol")
    identifiers = words(" ".join(form.getlist("identifiers")) + " " + form.get("custom_identifiers", ""))
    attributes = words(form.get("attributes"))
    if kind != "protocol":
        data["adapter"] = {"type": kind, "settings": adapter_settings(form, kind)}
        if identifiers:
            data["identifiers"] = identifiers
        if attributes:
            data["attributes"] = attributes
        return data
    data.update(contact_url=optional(form.get("contact_url")), identifiers=identifiers, attributes=attributes,
                credential=optional(form.get("credential")), webhook_url=optional(form.get("webhook_url")))
    producer = form.get("producer_transport", "")
    data["producer"] = {"transport": producer} if producer else None
    consumer = form.get("consumer_transport", "")
    if consumer:
        data["consumer"] = {"transport": consumer, "gzip": form.get("consumer_gzip") == "on",
                            "replace": form.get("consumer_replace") == "on"}
        rows = form.get("max_rows_per_request", "").strip()
        if rows:
            data["consumer"]["max_rows_per_request"] = rows
    else:
        data["consumer"] = None
    return data


def settings_fields(adapter: dict) -> list[dict]:
    """Form inputs for an adapter's settings JSON schema (``GET /v1/adapters`` shape)."""
    out = []
    for name, prop in adapter["settings"]["properties"].items():
        kind = prop.get("type", "string")
        if prop.get("enum"):
            widget = "select"
        elif kind == "boolean":
            widget = "checkbox"
        elif kind in ("array", "object"):
            widget = "textarea"
        elif kind in ("integer", "number"):
            widget = "number"
        else:
            widget = "password" if prop.get("secret") else "text"
        hint = prop.get("description", "")
        if kind == "array":
            hint += " One value per line."
        elif kind == "object":
            hint += " One name=value pair per line."
        out.append({"name": name, "label": prop.get("title") or name.replace("_", " ").capitalize(),
                    "widget": widget, "hint": hint.strip(), "required": bool(prop.get("required")),
                    "secret": bool(prop.get("secret")), "enum": prop.get("enum") or [],
                    "default": prop.get("default"), "type": kind})
    return out


def adapter_settings(form: MultiDict, adapter_type: str) -> dict:
    """Read ``adapter.<type>.<setting>`` inputs; blank inputs are left out so defaults apply."""
    from ..adapters.registry import describe, get_adapter

    try:
        fields = settings_fields(describe(get_adapter(adapter_type)))
    except ExchangeError:
        return {}
    settings: dict[str, Any] = {}
    for f in fields:
        key = f"adapter.{adapter_type}.{f['name']}"
        raw = form.get(key, "")
        if f["widget"] == "checkbox":
            settings[f["name"]] = raw == "on"
        elif not raw.strip():
            continue
        elif f["type"] == "array":
            settings[f["name"]] = [line.strip() for line in raw.splitlines() if line.strip()]
        elif f["type"] == "object":
            pairs = [line.partition("=") for line in raw.splitlines() if line.strip()]
            settings[f["name"]] = {k.strip(): v.strip() for k, _, v in pairs}
        else:
            settings[f["name"]] = raw.strip()
    return settings


def load_endpoint(schema: Schema, data: dict, *, allow_private: bool) -> dict:
    """Validate an endpoint form and report every problem at once.

    marshmallow skips the cross-field rules when a field failed, and the service checks URLs only
    after the schema passed; a person fixing the name would then meet the URL error next. Here the
    role rules run on the raw data too, and the URLs are checked up front, so one answer names all.
    """
    from marshmallow import ValidationError as _VE

    from ..errors import UnsafeUrl
    from ..net.urls import check_url_syntax
    from ..schemas.endpoints import check_roles

    errors: Errors = {}
    loaded = None
    try:
        loaded = schema.load(data)
    except ValidationError as err:
        errors = flatten_messages(err.messages)
        try:
            check_roles({k: v for k, v in data.items() if v not in ("", None)})
        except _VE as roles:
            for key, messages in flatten_messages(roles.normalized_messages()).items():
                errors.setdefault(key, []).extend(m for m in messages if m not in errors.get(key, []))
    for field in ("contact_url", "webhook_url"):
        value = data.get(field)
        if isinstance(value, str) and value and field not in errors:
            try:
                check_url_syntax(value, allow_private=allow_private)
            except UnsafeUrl as exc:
                errors[field] = [exc.detail]
    if errors:
        raise FormInvalid("Please correct the fields marked below.", errors)
    return loaded
