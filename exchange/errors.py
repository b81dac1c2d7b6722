"""One error tree for the whole exchange.

Every error the service raises on purpose derives from :class:`ExchangeError`. The API layer turns
any of them into an RFC 9457 problem document (``exchange.api.problems``); the job engine uses
``retryable`` to decide between another attempt and a permanent failure. Messages are written for
users and never contain secrets or personal data.
"""
from __future__ import annotations

from typing import Any


class ExchangeError(Exception):
    """Root of every error raised on purpose by the exchange."""

    status = 500
    title = "Internal error"
    type_slug = "internal"
    retryable = False

    def __init__(self, detail: str = "", *, errors: dict | None = None, status: int | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        if status is not None:
            self.status = status

    def problem(self) -> dict:
        doc = {
            "type": f"https://audience-exchange.dev/problems/{self.type_slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            doc["errors"] = self.errors
        return doc


class ConfigError(ExchangeError):
    title = "Configuration error"
    type_slug = "config"


class ValidationFailed(ExchangeError):
    status = 422
    title = "Validation failed"
    type_slug = "validation"


class BadRequest(ExchangeError):
    status = 400
    title = "Bad request"
    type_slug = "bad-request"


class Unauthorized(ExchangeError):
    status = 401
    title = "Unauthorized"
    type_slug = "unauthorized"


class Forbidden(ExchangeError):
    status = 403
    title = "Forbidden"
    type_slug = "forbidden"


class NotFound(ExchangeError):
    status = 404
    title = "Not found"
    type_slug = "not-found"


class Conflict(ExchangeError):
    status = 409
    title = "Conflict"
    type_slug = "conflict"


class PayloadTooLarge(ExchangeError):
    status = 413
    title = "Payload too large"
    type_slug = "payload-too-large"


class UnsupportedMediaType(ExchangeError):
    status = 415
    title = "Unsupported media type"
    type_slug = "unsupported-media-type"


class RateLimited(ExchangeError):
    status = 429
    title = "Too many requests"
    type_slug = "rate-limited"

    def __init__(self, detail: str = "", *, retry_after: float = 1.0):
        super().__init__(detail)
        self.retry_after = retry_after


class UnsafeUrl(ValidationFailed):
    """A URL points at a forbidden address (loopback, private, link-local) or is not http(s)."""

    title = "Unsafe URL"
    type_slug = "unsafe-url"


class CsvDataError(ExchangeError):
    """The data is not usable CSV at all (not CSV, no header, bad gzip, bad UTF-8 in the header...).

    Row-level problems are rejects, not this error."""

    status = 422
    title = "Invalid CSV data"
    type_slug = "csv-data"


class TransferError(ExchangeError):
    """A call to an endpoint or partner failed."""

    status = 502
    title = "Transfer failed"
    type_slug = "transfer"


class RetryableTransferError(TransferError):
    """Worth another attempt: 408/409/423/429, 5xx except 501, timeouts, dropped connections."""

    retryable = True

    def __init__(self, detail: str = "", *, retry_after: float | None = None, status: int | None = None):
        super().__init__(detail, status=status)
        self.retry_after = retry_after


class PermanentTransferError(TransferError):
    """Other 4xx answers, 501, protocol violations: retrying will not help."""


class InvalidCredentials(PermanentTransferError):
    """The partner or endpoint refused our credentials; ``setting`` names what the user must fix."""

    title = "Invalid credentials"
    type_slug = "invalid-credentials"

    def __init__(self, detail: str = "", *, setting: str | None = None):
        super().__init__(detail)
        self.setting = setting


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as ``{"field.sub": [msg, ...]}``: the one shape of field errors
    in problem documents (``errors``) and on the web forms. ``_schema`` stands for the object itself."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                name = prefix or "_schema"
            for k, v in flatten_messages(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "_schema"] = list(messages)
    elif isinstance(messages, list):
        for m in messages:
            for k, v in flatten_messages(m, prefix).items():
                out.setdefault(k, []).extend(v)
    else:
        out[prefix or "_schema"] = [str(messages)]
    return out
