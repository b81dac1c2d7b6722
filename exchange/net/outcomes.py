"""One table from HTTP answers and transport exceptions to what the exchange does next.

``classify`` is pure (it only reads the response or exception) so the job engine, webhooks and
partner adapters all agree on what is retried. ``raise_for_outcome`` turns a non-OK outcome into the
matching error of :mod:`exchange.errors`. A caller whose peer gives a status another meaning passes
``overrides`` (partner adapters declare theirs as ``Adapter.status_overrides``); nothing else differs.
Messages name the method, the redacted URL and the status;
they never contain request headers, and URLs lose userinfo and query values.
"""
from __future__ import annotations

import email.utils
import http
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import requests

from exchange.errors import (
    ExchangeError,
    InvalidCredentials,
    PermanentTransferError,
    RetryableTransferError,
    TransferError,
    UnsafeUrl,
)
from exchange.net.urls import redact_text, redact_url

DEFAULT_RETRY_AFTER_CAP = 3600.0
_PEER_DETAIL_LIMIT = 200


class RateLimitedTransferError(RetryableTransferError):
    """The peer answered 429: a wait, not a failure (SPEC §15.3); see ``call_with_retries``."""


class Resolution(StrEnum):
    OK = "ok"
    RETRY = "retry"
    FAIL = "fail"
    CREDENTIALS = "credentials"


@dataclass(frozen=True)
class Outcome:
    resolution: Resolution
    message: str
    status: int | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.resolution is Resolution.OK


# Statuses that differ from their class default (2xx ok, 4xx fail, 5xx retry).
_STATUS_TABLE: dict[int, Resolution] = {
    304: Resolution.OK,  # answer to a conditional GET (If-None-Match): "nothing changed"
    401: Resolution.CREDENTIALS,
    403: Resolution.CREDENTIALS,
    408: Resolution.RETRY,
    409: Resolution.RETRY,
    423: Resolution.RETRY,
    429: Resolution.RETRY,
    501: Resolution.FAIL,  # the peer does not implement the call; asking again will not change that
}
_CLASS_DEFAULTS = {1: Resolution.FAIL, 2: Resolution.OK, 3: Resolution.FAIL, 4: Resolution.FAIL, 5: Resolution.RETRY}

# First match wins, so subclasses come before their bases (SSLError is a ConnectionError).
_EXCEPTION_TABLE: tuple[tuple[type[BaseException], Resolution, str], ...] = (
    (UnsafeUrl, Resolution.FAIL, "refused by the outbound URL policy"),
    (requests.exceptions.SSLError, Resolution.FAIL, "TLS handshake or certificate check failed"),
    (requests.exceptions.ProxyError, Resolution.FAIL, "proxy error"),
    (requests.exceptions.TooManyRedirects, Resolution.FAIL, "too many redirects"),
    (requests.exceptions.InvalidURL, Resolution.FAIL, "invalid URL"),
    (requests.exceptions.MissingSchema, Resolution.FAIL, "invalid URL"),
    (requests.exceptions.InvalidSchema, Resolution.FAIL, "invalid URL"),
    (requests.exceptions.ContentDecodingError, Resolution.FAIL, "the answer could not be decoded"),
    (requests.exceptions.ConnectTimeout, Resolution.RETRY, "connection timed out"),
    (requests.exceptions.ReadTimeout, Resolution.RETRY, "no answer within the read timeout"),
    (requests.exceptions.Timeout, Resolution.RETRY, "timed out"),
    (requests.exceptions.ChunkedEncodingError, Resolution.RETRY, "the connection dropped mid-answer"),
    (requests.exceptions.ConnectionError, Resolution.RETRY, "connection failed"),
    (TimeoutError, Resolution.RETRY, "timed out"),
    (ConnectionError, Resolution.RETRY, "the connection dropped"),
    (OSError, Resolution.RETRY, "network error"),
)


def resolve_status(status: int, overrides: Mapping[int, Resolution] | None = None) -> Resolution:
    """What a status means: the caller's override, else the table, else the default of its class."""
    if overrides and status in overrides:
        return overrides[status]
    return _STATUS_TABLE.get(status, _CLASS_DEFAULTS.get(status // 100, Resolution.FAIL))


def is_rate_limit(exc: BaseException) -> bool:
    """Whether an error is the peer's 429 (a wait, not a failure)."""
    return isinstance(exc, RateLimitedTransferError) or getattr(exc, "status", None) == 429 \
        or getattr(exc, "partner_status", None) == 429


def parse_retry_after(
    value: str | None, *, cap: float = DEFAULT_RETRY_AFTER_CAP, now: float | None = None
) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), capped at ``cap``.

    Returns ``None`` for a missing or unparseable header, ``0.0`` for a date in the past.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # HTTP-dates are GMT by definition
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), cap)


def _describe_request(resp: requests.Response) -> str:
    req = resp.request
    if req is None or not req.url:
        return redact_url(resp.url or "") or "the call"
    return f"{req.method} {redact_url(req.url)}"


def _peer_detail(resp: requests.Response) -> str:
    """A short human explanation from a JSON error body, if the peer sent one.

    Only short string fields meant for humans are used; raw bodies may echo request data.
    """
    ctype = resp.headers.get("Content-Type", "")
    if "json" not in ctype:
        return ""
    try:
        body = json.loads(resp.content[:16384] or b"null")
    except (ValueError, RuntimeError):
        return ""
    if not isinstance(body, dict):
        return ""
    for field in ("detail", "message", "error_description", "error", "title"):
        value = body.get(field)
        if isinstance(value, str) and value.strip():
            text = redact_text(value.strip())
            return text[:_PEER_DETAIL_LIMIT] + ("…" if len(text) > _PEER_DETAIL_LIMIT else "")
    return ""


def _classify_response(resp: requests.Response, retry_after_cap: float,
                       overrides: Mapping[int, Resolution] | None = None) -> Outcome:
    status = resp.status_code
    resolution = resolve_status(status, overrides)
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    message = f"{_describe_request(resp)} answered {status} {phrase}".rstrip()
    if 300 <= status < 400 and resolution is Resolution.FAIL:
        message += " (redirects are not followed for this call)"
    detail = "" if resolution is Resolution.OK else _peer_detail(resp)
    if detail:
        message += f": {detail}"
    retry_after = None
    if resolution is Resolution.RETRY:
        retry_after = parse_retry_after(resp.headers.get("Retry-After"), cap=retry_after_cap)
    return Outcome(resolution, message, status=status, retry_after=retry_after)


def _classify_exception(exc: BaseException) -> Outcome:
    for exc_type, resolution, summary in _EXCEPTION_TABLE:  # noqa: B007 - used after the break
        if isinstance(exc, exc_type):
            break
    else:
        return Outcome(Resolution.FAIL, f"unexpected error: {type(exc).__name__}")
    if isinstance(exc, ExchangeError):
        return Outcome(resolution, f"{summary}: {exc.detail}")
    where = ""
    request = getattr(exc, "request", None)
    if request is not None and getattr(request, "url", None):
        where = f"{request.method} {redact_url(request.url)}: "
    # Library messages can embed URLs with query strings; redact them before they reach users.
    return Outcome(resolution, f"{where}{summary} ({type(exc).__name__}: {redact_text(str(exc))})")


def classify(result: requests.Response | BaseException, *, retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP,
             overrides: Mapping[int, Resolution] | None = None) -> Outcome:
    """Map a response or a transport exception to an :class:`Outcome` through the tables above."""
    if isinstance(result, requests.Response):
        return _classify_response(result, retry_after_cap, overrides)
    return _classify_exception(result)


def error_for(outcome: Outcome, *, credential_setting: str | None = None, hint: bool = True) -> TransferError:
    """The exchange error for a non-OK outcome (``hint`` adds "Check the setting …" to credentials errors)."""
    if outcome.resolution is Resolution.CREDENTIALS:
        message = outcome.message
        if hint:
            message += "." + (f" Check the setting {credential_setting!r}." if credential_setting else "")
        return InvalidCredentials(message, setting=credential_setting)
    if outcome.resolution is Resolution.RETRY:
        # ``status`` on exchange errors is what our own API would answer, so the peer's is not passed.
        cls = RateLimitedTransferError if outcome.status == 429 else RetryableTransferError
        return cls(outcome.message, retry_after=outcome.retry_after)
    return PermanentTransferError(outcome.message)


def raise_for_outcome(
    resp: requests.Response | BaseException,
    *,
    credential_setting: str | None = None,
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP,
    overrides: Mapping[int, Resolution] | None = None,
) -> requests.Response:
    """Return ``resp`` when its outcome is OK, otherwise raise the matching transfer error.

    Given an exception (from ``session.request``), always raises; the original is chained.
    """
    outcome = classify(resp, retry_after_cap=retry_after_cap, overrides=overrides)
    if isinstance(resp, BaseException):
        raise error_for(outcome, credential_setting=credential_setting) from resp
    if not outcome.ok:
        raise error_for(outcome, credential_setting=credential_setting)
    return resp
