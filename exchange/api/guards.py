"""Checks on the request line itself: path parameters and query parameters.

webargs excludes unknown query parameters by default (its ``query`` location overrides a schema's
``unknown = RAISE``), so ``GET /v1/shares?stauts=failed`` silently listed every share while an
unknown JSON field is refused. Here unknown query parameters on routes that declare a query schema
are refused the same way (422, one error per parameter), and a path parameter holding a control
character (``%00`` included, which PostgreSQL refuses in text) answers 404 before any lookup.
"""
from __future__ import annotations

from functools import lru_cache

from flask import current_app, request
from marshmallow import Schema

from ..errors import NotFound, ValidationFailed
from .jsonbody import has_control_chars


@lru_cache(maxsize=512)
def _query_names(view_func, method: str) -> frozenset[str] | None:
    """Names a list route's query schema accepts, or None when the route is not a list route."""
    view_class = getattr(view_func, "view_class", None)
    handler = getattr(view_class, method.lower(), None) if view_class is not None else view_func
    if handler is None and method == "HEAD" and view_class is not None:
        handler = getattr(view_class, "get", None)
    params = (getattr(handler, "_apidoc", None) or {}).get("arguments", {}).get("parameters", [])
    names: set[str] = set()
    found = False
    for param in params:
        if param.get("in") not in ("query", "querystring"):
            continue
        schema = param["schema"]
        schema = schema() if isinstance(schema, type) and issubclass(schema, Schema) else schema
        found = True
        names.update(f.data_key or name for name, f in schema.fields.items() if not f.dump_only)
    # list routes (paginated) only: other routes, such as an OAuth redirect back, may receive
    # parameters they do not know (a provider adds its own) and must not fail on them
    return frozenset(names) if found and "page" in names else None


def check_path_and_query() -> None:
    for value in (request.view_args or {}).values():
        if isinstance(value, str) and has_control_chars(value):
            raise NotFound("No such resource (the path holds a control character).")
    if not request.args:
        return
    view = current_app.view_functions.get(request.endpoint)
    if view is None:
        return
    allowed = _query_names(view, request.method)
    if allowed is None:
        return
    unknown = sorted(k for k in request.args.keys() if k not in allowed)
    if unknown:
        raise ValidationFailed(
            "The request did not validate; see errors for each field.",
            errors={k[:100]: [f"Unknown query parameter; this route accepts: {', '.join(sorted(allowed))}."]
                    for k in unknown[:20]})
