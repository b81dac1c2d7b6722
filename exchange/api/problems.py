"""Every error leaves the API as one RFC 9457 problem document (``application/problem+json``)."""
from __future__ import annotations

import json
import logging

from flask import Flask, Response, g
from marshmallow import ValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from ..errors import ExchangeError, RateLimited, flatten_messages

log = logging.getLogger(__name__)
PROBLEM_TYPE = "https://audience-exchange.dev/problems/"
PROBLEM_MIME = "application/problem+json"


def problem_response(status: int, title: str, detail: str = "", *, slug: str | None = None,
                     errors: dict | None = None, headers: dict | None = None) -> Response:
    doc = {"type": PROBLEM_TYPE + (slug or str(status)), "title": title, "status": status,
           "detail": detail or title}
    if errors:
        doc["errors"] = errors
    rid = getattr(g, "request_id", None)
    if rid:
        doc["instance"] = f"urn:request:{rid}"
    resp = Response(json.dumps(doc), status=status, mimetype=PROBLEM_MIME)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def handle_exchange_error(err: ExchangeError) -> Response:
    headers = {}
    if isinstance(err, RateLimited):
        headers["Retry-After"] = str(max(1, int(round(err.retry_after))))
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="exchange"'
    if err.status >= 500:
        log.error("server error: %s", err.detail)
    return problem_response(err.status, err.title, err.detail, slug=err.type_slug, errors=err.errors,
                            headers=headers)


def handle_http_exception(err: HTTPException) -> Response:
    status = err.code or 500
    errors = None
    detail = err.description or err.name
    data = getattr(err, "data", None)
    if isinstance(data, dict) and "messages" in data:
        # flask-smorest / webargs validation errors: {"json": {...}} keyed by location
        msgs = data["messages"]
        flat: dict[str, list[str]] = {}
        for fields in msgs.values():
            flat.update(flatten_messages(fields))
        errors = flat
        detail = "The request did not validate; see errors for each field."
        status = 422 if status in (400, 422) else status
    headers = {}
    if status == 405 and getattr(err, "valid_methods", None):
        headers["Allow"] = ", ".join(err.valid_methods)
    title = {422: "Validation failed"}.get(status, err.name)
    return problem_response(status, title, detail, errors=errors, headers=headers)


def handle_validation_error(err: ValidationError) -> Response:
    return problem_response(422, "Validation failed",
                            "The request did not validate; see errors for each field.",
                            slug="validation", errors=flatten_messages(err.messages))


def handle_database_unavailable(err: Exception) -> Response:
    """The database is briefly unreachable (or its pool exhausted): a retryable 503, not a 500."""
    log.warning("database unavailable: %s", type(getattr(err, "orig", None) or err).__name__)
    return problem_response(503, "Service unavailable",
                            "The database is briefly unavailable; retry the request shortly.",
                            slug="database-unavailable", headers={"Retry-After": "2"})


def handle_unexpected(err: Exception) -> Response:
    if isinstance(err, HTTPException):
        return handle_http_exception(err)
    log.exception("unhandled error")
    return problem_response(500, "Internal error", "An unexpected error occurred; it has been logged.")


def register(app: Flask) -> None:
    app.register_error_handler(ExchangeError, handle_exchange_error)
    app.register_error_handler(ValidationError, handle_validation_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(PoolTimeout, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
