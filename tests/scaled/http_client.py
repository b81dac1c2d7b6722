"""An HTTP client with the werkzeug test client's interface, spreading requests over several web processes.

:class:`RoundRobinClient` has ``get/post/put/patch/delete/head(url, headers=, data=, json=,
query_string=)`` like ``app.test_client()`` and returns :class:`HttpResponse` objects with the
test response's ``status_code``, ``json``, ``get_data(as_text=)``, ``headers`` and ``content_type``,
so ``tests.conftest.Api`` and the end-to-end tests work unchanged over real HTTP. Each request goes
to the next web process in turn; a process that refuses the connection (killed by a test) is skipped
for that request.
"""
from __future__ import annotations

import itertools
import json as jsonlib
import threading
from typing import Any

import requests


class HttpResponse:
    """The parts of a werkzeug test response the tests use, over a ``requests`` response."""

    def __init__(self, resp: requests.Response):
        self.status_code = resp.status_code
        self.headers = resp.headers
        self.data = resp.content
        self.url = resp.url

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def mimetype(self) -> str:
        return self.content_type.split(";", 1)[0].strip().lower()

    @property
    def is_json(self) -> bool:
        return self.mimetype == "application/json" or self.mimetype.endswith("+json")

    @property
    def json(self) -> Any:
        if not self.is_json or not self.data:
            return None
        return jsonlib.loads(self.data)

    def get_json(self) -> Any:
        return self.json

    def get_data(self, as_text: bool = False) -> bytes | str:
        return self.data.decode("utf-8") if as_text else self.data

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"<HttpResponse {self.status_code} {self.url}>"


class RoundRobinClient:
    """``app.test_client()`` look-alike that talks HTTP to ``bases`` in turn."""

    def __init__(self, bases: list[str], timeout: float = 120.0):
        self.bases = list(bases)
        self.timeout = timeout
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            # like the test client: no compression negotiated, bodies exactly as the app sent them
            session.headers["Accept-Encoding"] = "identity"
        return session

    def open(self, method: str, url: str, *, headers: dict | None = None, data: Any = None, json: Any = None,
             query_string: dict | None = None, content_type: str | None = None, **kwargs: Any) -> HttpResponse:
        headers = dict(headers or {})
        if content_type is not None:
            headers["Content-Type"] = content_type
        with self._lock:
            first = next(self._turn)
        error: Exception | None = None
        for step in range(len(self.bases)):
            base = self.bases[(first + step) % len(self.bases)]
            try:
                resp = self.session.request(method, base + url, headers=headers, data=data, json=json,
                                            params=query_string, allow_redirects=False,
                                            timeout=kwargs.pop("timeout", self.timeout))
            except requests.ConnectionError as exc:
                # refused or a stale keep-alive connection to a killed process: try the next one
                error = exc
                continue
            return HttpResponse(resp)
        assert error is not None
        raise error

    def get(self, url: str, **kw: Any) -> HttpResponse:
        return self.open("GET", url, **kw)

    def head(self, url: str, **kw: Any) -> HttpResponse:
        return self.open("HEAD", url, **kw)

    def post(self, url: str, **kw: Any) -> HttpResponse:
        return self.open("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> HttpResponse:
        return self.open("PUT", url, **kw)

    def patch(self, url: str, **kw: Any) -> HttpResponse:
        return self.open("PATCH", url, **kw)

    def delete(self, url: str, **kw: Any) -> HttpResponse:
        return self.open("DELETE", url, **kw)
