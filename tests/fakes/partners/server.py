"""A loopback HTTP server base for partner fakes: recording, latency, injected failures, rate limit.

Each partner fake subclasses :class:`FakePartner` and implements ``handle(request)`` with the
partner's routes, auth and payload checks. The base serves it with werkzeug on 127.0.0.1, port 0,
in a daemon thread, and adds what every fake needs:

* ``requests``: every request received (method, path, headers, body, parsed JSON);
* ``unexpected``: requests no route matched — tests assert it stays empty;
* ``latency``: seconds added to every request (the bench uses 0.02);
* ``fail_next(n, status)``: transient failures (5xx) for the next ``n`` requests;
* ``throttle_next(n, retry_after)``: forced 429s; ``rate_limit``/``burst``: a token bucket (burst
  one second's worth by default) that answers 429 (with ``Retry-After`` when ``send_retry_after``)
  when a client goes too fast.
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int = 0
    at: float = 0.0  # the fake's clock on arrival, for rate measurements

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


class _QuietHandler(WSGIRequestHandler):
    """The partner's access log is not ours: keep it out of the tests' captured logs."""

    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


class FakePartner:
    """Base of the partner fakes; use as a context manager or call ``start``/``stop``."""

    send_retry_after = True  # StackAdapt's 429 carries no Retry-After

    def __init__(self, *, latency: float = 0.0, rate_limit: float | None = None, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        # Rate limiters read ``clock``: tests driving the adapter on virtual time pass the same clock.
        self.clock = clock
        self.latency = latency
        self.rate_limit = rate_limit
        # "N requests per second" as partners usually mean it: up to one second's worth at once.
        self.burst = burst if burst is not None else max(2.0, rate_limit or 0.0)
        self.requests: list[Recorded] = []
        self.unexpected: list[Recorded] = []
        self.lock = threading.RLock()
        self._injected: deque[tuple[int, float | None]] = deque()
        self._tokens = self.burst
        self._updated = clock()
        self.throttled = 0  # 429s answered because the client exceeded rate_limit
        self._server = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "fake not started"
        return f"http://127.0.0.1:{self._server.server_port}"

    # -- fault injection -------------------------------------------------------------------
    def fail_next(self, count: int = 1, status: int = 503, retry_after: float | None = None) -> None:
        with self.lock:
            self._injected.extend([(status, retry_after)] * count)

    def throttle_next(self, count: int = 1, retry_after: float | None = 1) -> None:
        self.fail_next(count, 429, retry_after)

    # -- to override -----------------------------------------------------------------------
    def handle(self, request: Request) -> Response | None:
        """The partner's routes; return None for "no such route" (recorded as unexpected)."""
        raise NotImplementedError

    def error(self, status: int, message: str) -> Response:
        """The partner's error body shape."""
        return json_response({"error": message}, status)

    # -- plumbing --------------------------------------------------------------------------
    def _wsgi(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        record = Recorded(
            request.method, request.path, dict(request.args), dict(request.headers), request.get_data(),
            at=self.clock(),
        )
        with self.lock:
            self.requests.append(record)
        if self.latency:
            time.sleep(self.latency)
        response = self._injected_response() or self._rate_limited()
        if response is None:
            try:
                response = self.handle(request)
            except Exception as err:  # noqa: BLE001 - a bug in the fake must show as a 500, not hang the client
                response = self.error(500, f"fake crashed: {err!r}")
            if response is None:
                with self.lock:
                    self.unexpected.append(record)
                response = self.error(404, f"no route for {request.method} {request.path}")
        record.status = response.status_code
        return response(environ, start_response)

    def _injected_response(self) -> Response | None:
        with self.lock:
            if not self._injected:
                return None
            status, retry_after = self._injected.popleft()
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        response = self.error(status, "injected failure")
        if headers:
            response.headers.update(headers)
        return response

    def _rate_limited(self) -> Response | None:
        if not self.rate_limit:
            return None
        with self.lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_limit)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            self.throttled += 1
            wait = math.ceil((1 - self._tokens) / self.rate_limit)
        response = self.error(429, "rate limit exceeded")
        if self.send_retry_after:
            response.headers["Retry-After"] = str(max(1, wait))
        return response


def check_fields(obj: Any, spec: dict[str, type | tuple[type, ...]], *, optional: frozenset[str] = frozenset(),
                 where: str = "body") -> str | None:
    """Exact-shape check: every key of ``spec`` present (unless optional), no others, right types.

    ``bool`` is never accepted for ``int``/``float`` (JSON true is not a number to a partner).
    """
    if not isinstance(obj, dict):
        return f"{where} must be an object"
    extra = sorted(set(obj) - set(spec))
    if extra:
        return f"{where}: unknown fields {extra}"
    for key, types in spec.items():
        if key not in obj:
            if key in optional:
                continue
            return f"{where}: missing field '{key}'"
        value = obj[key]
        types = types if isinstance(types, tuple) else (types,)
        if isinstance(value, bool) and bool not in types:
            return f"{where}.{key}: wrong type {type(value).__name__}"
        if not isinstance(value, types):
            return f"{where}.{key}: wrong type {type(value).__name__}"
    return None
