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
from ..errors import BadRequest, Forbidden, Unauthorized, UnsupportedMediaType
from ..models import IdempotencyRecord
from . import guards, metrics
from .audit import record as audit_record
from .context import db, runtime
from .jsonbody import check_json_body
from .ratelimit import RateLimiter, open_store

# data-plane uploads stream CSV and have their own, larger limit
STREAMING_ENDPOINTS = {"audiences.AudienceData", "deliveries.DeliveryData"}
# routes reached without credentials: the OAuth redirect back from a provider carries its own state
PUBLIC_API_ROUTES = {"applications.ConnectCallback"}
# the only routes an endpoint-scoped key may call (each view re-checks which endpoint it may touch)
ENDPOINT_KEY_ROUTES = {"audiences.AudienceMetadata", "audiences.AudienceData", "deliveries.Deliveries",
                       "deliveries.DeliveryById", "deliveries.DeliveryData", "deliveries.AckDelivery"}
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
    if request.method != "OPTIONS" and request.url_rule is not None:
        _authorise()  # who may call this route, before anything about the request is validated
        guards.check_path_and_query()
    if request.endpoint not in STREAMING_ENDPOINTS:
        has_body = (request.content_length or 0) > 0 or "chunked" in request.headers.get(
            "Transfer-Encoding", "").lower()
        if has_body and not request.is_json and request.method in ("POST", "PUT", "PATCH"):
            raise UnsupportedMediaType("Send the request body as application/json.")
        if has_body and request.is_json:
            check_json_body(request.get_data(cache=True))
    if request.method == "POST" and request.headers.get("Idempotency-Key"):
        return _replay()
    return None


def _authorise() -> None:
    """Every ``/v1`` route needs a principal; endpoint keys reach only their endpoint's data plane."""
    p = getattr(g, "principal", None)
    if request.endpoint in PUBLIC_API_ROUTES:
        return
    if p is None:
        raise Unauthorized("Authentication required: send 'Authorization: Bearer <API key>'.")
    if p.scope != "endpoint":
        return
    if request.endpoint not in ENDPOINT_KEY_ROUTES:
        raise Forbidden("Endpoint keys may only be used for their endpoint's data-plane calls.")
    wanted = (request.view_args or {}).get("endpoint_id")
    if wanted is not None and wanted != p.endpoint_id:
        raise Forbidden("This endpoint key belongs to another endpoint.")


def _limiter() -> RateLimiter:
    app = current_app
    limiter = app.extensions.get("exchange.ratelimit")
    if limiter is None:
        rt = runtime()
        cfg = rt.config
        limiter = app.extensions["exchange.ratelimit"] = RateLimiter(
            cfg.rate_limit_per_minute, store=open_store(cfg, rt.db.engine),
            failed_auth_limit=cfg.failed_auth_limit, failed_auth_window=cfg.failed_auth_window_seconds)
    return limiter


limiter = _limiter  # the app's shared limiter (web sign-in uses it too)


def _key_prefix(token: str) -> str | None:
    parts = token.split("_", 2)
    if len(parts) == 3 and parts[0] == "aex" and re.fullmatch(r"[0-9a-f]{1,40}", parts[1]):
        return parts[1]
    return None


def _authenticate() -> None:
    header = request.headers.get("Authorization", "")
    if not header:
        g.principal = getattr(g, "principal", None)  # a signed-in web user may already be set
        if g.principal is not None:
            _limiter().hit(f"user:{g.principal.user_id}")
        return
    addr = request.remote_addr or "-"
    limiter = _limiter()
    scheme, _, token = header.partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Malformed Authorization header: expected 'Bearer <API key>'.")
        session = db()
        g.principal = authenticate(session, token.strip(), cache_seconds=runtime().config.api_key_cache_seconds)
    except Unauthorized:
        db().rollback()
        # counted only on failure, so a valid key is never refused for what others sent
        limiter.failed_auth(addr, _key_prefix(token.strip()))
        raise
    # persist last_used_at (at most every 30 s per key) and, above all, give the connection back before
    # the rate limit takes one: a thread holding two connections at once can exhaust the pool
    session.commit()
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

