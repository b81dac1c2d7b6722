"""Finding adapters: the ``exchange.adapters`` entry-point group merged with the built-in four.

Third-party adapters register an entry point ``name = "package.module:AdapterClass"`` in the
``exchange.adapters`` group. The built-ins are also listed here directly so they work before the
distribution's own entry points are installed (an editable checkout without reinstall).
"""
from __future__ import annotations

import logging
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from marshmallow import Schema, fields, missing

from exchange.adapters.base import Adapter
from exchange.errors import NotFound, ValidationFailed

log = logging.getLogger(__name__)

GROUP = "exchange.adapters"
BUILTINS: dict[str, str] = {
    "equativ": "exchange.adapters.equativ:EquativAdapter",
    "batch": "exchange.adapters.batch:BatchAdapter",
    "stackadapt": "exchange.adapters.stackadapt:StackAdaptAdapter",
    "equals": "exchange.adapters.equals:EqualsAdapter",
}


def _load(target: str) -> type[Adapter]:
    module_name, _, attr = target.partition(":")
    return getattr(import_module(module_name), attr)


def _discover() -> dict[str, type[Adapter]]:
    found: dict[str, type[Adapter]] = {name: _load(target) for name, target in BUILTINS.items()}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception:  # a broken plug-in must not take the built-ins down with it
            log.exception("could not load adapter entry point %r", ep.name)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Adapter)):
            log.error("entry point %r does not name an Adapter subclass", ep.name)
            continue
        found[ep.name] = cls
    return found


def adapters() -> dict[str, type[Adapter]]:
    """All adapters by type name (re-read each call: entry points are cheap and may change)."""
    return _discover()


def get_adapter(adapter_type: str) -> type[Adapter]:
    try:
        return adapters()[adapter_type]
    except KeyError:
        raise NotFound(f"Unknown adapter type '{adapter_type}'") from None


def validate_settings(adapter_type: str, settings: dict) -> dict:
    """Loaded settings (defaults applied); ValidationFailed keyed ``adapter.settings.<field>``."""
    try:
        cls = get_adapter(adapter_type)
    except NotFound:
        raise ValidationFailed(
            "Unknown adapter type", errors={"adapter.type": [f"Unknown adapter type '{adapter_type}'."]}
        ) from None
    return cls.load_settings(settings)


def list_adapters() -> list[dict[str, Any]]:
    return [describe(cls) for _, cls in sorted(adapters().items())]


def describe(cls: type[Adapter]) -> dict[str, Any]:
    return {
        "name": cls.name,
        "title": cls.title,
        "description": (cls.__doc__ or "").strip().split("\n\n")[0],
        "identifiers": list(cls.identifiers),
        "native_modes": sorted(cls.native_modes),
        "requires_snapshot": cls.requires_snapshot,
        "batch_size": cls.batch_size,
        "rate_limit": cls.rate_limit,
        "concurrency": cls.concurrency,
        "limits": cls.describe_limits(),
        "hosts": dict(cls.hosts),
        "settings": settings_json_schema(cls.settings_schema),
    }


_TYPES = {
    fields.String: "string",
    fields.Url: "string",
    fields.Integer: "integer",
    fields.Float: "number",
    fields.Boolean: "boolean",
    fields.Dict: "object",
    fields.List: "array",
}


def _json_type(f: fields.Field) -> str:
    for field_cls, name in _TYPES.items():
        if isinstance(f, field_cls):
            return name
    return "string"


def settings_json_schema(schema_cls: type[Schema]) -> dict[str, Any]:
    """A JSON-Schema-like description of a settings schema, for forms and ``GET /v1/adapters``."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, f in schema_cls().fields.items():
        prop: dict[str, Any] = {"type": _json_type(f)}
        for key in ("title", "description"):
            if key in f.metadata:
                prop[key] = f.metadata[key]
        if "enum" in f.metadata:
            prop["enum"] = list(f.metadata["enum"])
        default = f.load_default
        if default is not missing and default is not None and not callable(default):
            prop["default"] = default
        secret = bool(f.metadata.get("secret"))
        prop["secret"] = secret
        if secret or f.load_only:
            prop["writeOnly"] = True
        if f.required:
            required.append(name)
        prop["required"] = f.required
        properties[name] = prop
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
