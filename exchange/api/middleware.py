"""Cross-cutting request handling: request ids, authentication, body limits, idempotency."""
from __future__ import annotations

import hashlib
import re
import time
import uuid

from flask import Flask, Response, current_app, g, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..auth.keys import authenticate
from ..errors import BadRequest, Unauthorized, UnsupportedMediaType
from ..models import IdempotencyRecord
from . import metrics
from .audit import record as audit_record
from .context import db, runtime
from .ratelimit import RateLimiter

# data-plane uploads stream CSV and have their own, larger limit
STREAMING_ENDPOINTS = {"audiences.AudienceData", "deliveries.DeliveryData"}
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


def _begin() -> Response | None:
    g.started = time.perf_counter()
    rid = request.headers.get("X-Request-Id", "")
    g.request_id = rid if REQUEST_ID_RE.match(rid) else uuid.uuid4().hex
    cfg = runtime().config
    if request.endpoint in STREAMING_ENDPOINTS:
        request.max_content_length = cfg.max_upload_bytes
    else:
        request.max_content_length = cfg.max_json_bytes
    if not request.path.startswith("/v1/"):
        return None
    _authenticate()
    if request.method in ("POST", "PUT", "PATCH") and request.endpoint not in STREAMING_ENDPOINTS:
        has_body = (request.content_length or 0) > 0 or "chunked" in request.headers.get(
            "Transfer-Encoding", "").lower()
        if has_body and not request.is_json:
            raise UnsupportedMediaType("Send the request body as application/json.")
    if request.method == "POST" and request.headers.get("Idempotency-Key"):
        return _replay()
    return None


def _limiter() -> RateLimiter:
    app = current_app
    limiter = app.extensions.get("exchange.ratelimit")
    if limiter is None:
        limiter = app.extensions["exchange.ratelimit"] = RateLimiter(runtime().config.rate_limit_per_minute)
    return limiter


def _authenticate() -> None:
    header = request.headers.get("Authorization", "")
    if not header:
        g.principal = getattr(g, "principal", None)  # a signed-in web user may already be set
        if g.principal is not None:
            _limiter().hit(f"user:{g.principal.user_id}")
        return
    addr = request.remote_addr or "-"
    limiter = _limiter()
    limiter.check_address(addr)
    scheme, _, token = header.partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Malformed Authorization header: expected 'Bearer <API key>'.")
        g.principal = authenticate(db(), token.strip())
    except Unauthorized:
        limiter.failed_auth(addr)
        raise
    db().commit()  # persist last_used_at
    limiter.hit(f"key:{g.principal.key_id}")


def _request_hash() -> str:
    return hashlib.sha256(request.method.encode() + request.full_path.encode()
                          + request.get_data(cache=True)).hexdigest()


def _replay() -> Response | None:
    key = request.headers["Idempotency-Key"]
    if not IDEMPOTENCY_KEY_RE.match(key):
        raise BadRequest("Idempotency-Key must be 1-255 printable ASCII characters.")
    p = getattr(g, "principal", None)
    if p is None:
        return None  # the view will answer 401
    rec = db().scalar(select(IdempotencyRecord).where(IdempotencyRecord.account_id == p.account_id,
                                                     IdempotencyRecord.key == key))
    if rec is None:
        g.idempotency_key = key
        return None
    if rec.request_hash != _request_hash():
        from ..errors import Conflict
        raise Conflict("This Idempotency-Key was already used with a different request.")
    resp = Response(rec.body, status=rec.status, content_type=rec.content_type)
    resp.headers["Idempotent-Replayed"] = "true"
    return resp


def _finish(resp: Response) -> Response:
    resp.headers["X-Request-Id"] = getattr(g, "request_id", "") or uuid.uuid4().hex
    key = getattr(g, "idempotency_key", None)
    p = getattr(g, "principal", None)
    if key and p is not None and resp.status_code < 500 and not resp.is_streamed:
        session = db()
        try:
            session.add(IdempotencyRecord(account_id=p.account_id, key=key, method=request.method,
                                          path=request.path, request_hash=_request_hash(),
                                          status=resp.status_code, body=resp.get_data(as_text=True),
                                          content_type=resp.content_type or "application/json"))
            session.commit()
        except IntegrityError:
            session.rollback()  # a concurrent first request won; its record stands
    if p is not None and request.method in ("POST", "PUT", "PATCH", "DELETE") and resp.status_code < 400:
        audit_record(p, resp)
    started = getattr(g, "started", None)
    if started is not None:
        metrics.observe_request(request, resp, time.perf_counter() - started)
    return resp


def _teardown(_exc) -> None:
    try:
        runtime().db.scoped.remove()
    except Exception:  # noqa: BLE001 - teardown must never raise
        pass


def register(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_finish)
    app.teardown_appcontext(_teardown)

