"""A lean WSGI path for the hottest call of the API: ``GET /v1/jobs/{id}`` by a known key.

Status pollers call it many times a second while jobs run; through Flask, flask-smorest and the ORM
one call cost ~1.4 ms of CPU, on a 2-core host shared with the transforms. This middleware, in front
of the Flask app, answers the common case itself and hands *everything else* to the app unchanged:

- only ``GET /v1/jobs/<32 hex>`` without a query string or body, with ``Authorization: Bearer …``;
- only a key this process authenticated within ``EXCHANGE_API_KEY_CACHE_SECONDS`` (the key cache of
  :mod:`exchange.auth.keys`) and of account scope;
- only when this process holds a leased rate-limit token for the key (``RateLimiter.try_hit``: the
  default database store; when the lease is spent, the app takes the next lease or answers the 429
  exactly as before; with the Redis or memory store every call goes through the app);
- only when the job exists in the key's account.

The answer is the one the app gives: the same ``JobSchema`` dump, the same JSON encoding, the same
``X-Request-Id`` handling, request metric and (with JSON logs) access-log line. Switch it off with
``EXCHANGE_API_STATUS_FAST_PATH=false``; tests compare both paths.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select

from ..auth.keys import key_cache
from ..logging_setup import log_context
from ..metrics import observe_request
from ..models import Job
from ..schemas.jobs import JobSchema
from .middleware import REQUEST_ID_RE

if TYPE_CHECKING:
    from flask import Flask

_PATH = re.compile(r"/v1/jobs/([0-9a-f]{32})")
ROUTE = "/v1/jobs/<job_id>"  # the metric label the app's route gives these calls
_JOBS = Job.__table__
_QUERY = select(_JOBS).where(_JOBS.c.id == bindparam("job_id"), _JOBS.c.account_id == bindparam("account_id"))
access_log = logging.getLogger("exchange.access")


class StatusFastPath:
    def __init__(self, app: Flask, inner: Any) -> None:
        self.app, self.inner = app, inner
        self.schema = JobSchema()
        rt = app.extensions["exchange"]
        self.runtime, self.json_logs = rt, rt.config.log_format == "json"
        provider = app.json  # encode as its response() does: compact unless debugging, newline-terminated
        compact = getattr(provider, "compact", None)
        pretty = (compact is None and app.debug) or compact is False
        self.dump_args: dict[str, Any] = {"indent": 2} if pretty else {"separators": (",", ":")}

    def __call__(self, environ: dict, start_response: Any) -> Any:
        if (environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING")
                or environ.get("CONTENT_LENGTH") not in (None, "", "0") or "HTTP_TRANSFER_ENCODING" in environ):
            return self.inner(environ, start_response)
        match = _PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None:
            return self.inner(environ, start_response)
        started = time.perf_counter()
        body = self._answer(environ, match.group(1))
        if body is None:
            return self.inner(environ, start_response)
        rid = environ.get("HTTP_X_REQUEST_ID", "")
        rid = rid if REQUEST_ID_RE.match(rid) else uuid.uuid4().hex
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                  ("X-Request-Id", rid)])
        took = time.perf_counter() - started
        observe_request("GET", ROUTE, 200, took)
        if self.json_logs:
            with log_context(request_id=rid, account=environ["exchange.fast_account"]):
                access_log.info("%s %s %s", "GET", environ["PATH_INFO"], 200,
                                extra={"http": {"method": "GET", "path": environ["PATH_INFO"], "status": 200,
                                                "seconds": round(took, 4)}})
        return [body]

    def _answer(self, environ: dict, job_id: str) -> bytes | None:
        """The response body, or None when the app must answer (anything but the common case)."""
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        principal = key_cache.get(hashlib.sha256(token.encode()).hexdigest())
        if principal is None or principal.scope == "endpoint":
            return None
        limiter = self.app.extensions.get("exchange.ratelimit")
        if limiter is None or not limiter.try_hit(f"key:{principal.key_id}"):
            return None
        try:
            with self.runtime.db.engine.connect() as conn:
                row = conn.execute(_QUERY, {"job_id": job_id, "account_id": principal.account_id}).first()
        except Exception:  # noqa: BLE001 - e.g. the database unavailable: the app answers (503), as ever
            row = None
        if row is None:
            limiter.give_back(f"key:{principal.key_id}")  # the app takes its own token for the 404 (or 503)
            return None
        environ["exchange.fast_account"] = principal.account_id
        return (self.app.json.dumps(self.schema.dump(row), **self.dump_args) + "\n").encode()
