"""Fixtures: a live exchange served over loopback HTTP with its job workers, and toolkit clients for it.

``LiveExchange`` serves the real app with werkzeug's threaded server on a free port (the same way
the reference endpoint does), optionally behind a WSGI wrapper that tests use to drop connections.
"""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from exchange.app import create_app
from exchange.db import upgrade
from exchange.runtime import Runtime
from exchange.toolkit.client import Client
from tests.conftest import make_config

WsgiApp = Callable


class LiveExchange:
    """The exchange app with background workers, on ``http://127.0.0.1:<port>``."""

    def __init__(self, tmp_path: Path):
        self.config = make_config(tmp_path, workers=2, max_attempts=3)
        upgrade(self.config.database_url)
        self.runtime = Runtime(self.config)
        self.app = create_app(runtime=self.runtime)
        self.wrapper: Callable[[WsgiApp], WsgiApp] | None = None
        self.runtime.executor.start()
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def _wsgi(self, environ, start_response):
        app = self.wrapper(self.app.wsgi_app) if self.wrapper else self.app.wsgi_app
        return app(environ, start_response)

    def new_account(self, name: str = "Acme") -> tuple[str, str]:
        """(account id, account API key) of a new account."""
        from exchange.auth.keys import create_account

        with self.runtime.db.session() as s:
            account, token = create_account(s, name)
            return account.id, token

    def client(self, key: str | None, **kwargs) -> Client:
        kwargs.setdefault("backoff", 0.05)
        return Client(self.url, key, **kwargs)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.runtime.shutdown()


@pytest.fixture(scope="module")
def live_exchange(tmp_path_factory) -> Iterator[LiveExchange]:
    """One exchange per test module (migrating a database takes a second); tests use fresh accounts."""
    exchange = LiveExchange(tmp_path_factory.mktemp("exchange"))
    yield exchange
    exchange.stop()


@pytest.fixture
def live(live_exchange) -> Iterator[LiveExchange]:
    live_exchange.wrapper = None
    yield live_exchange
    live_exchange.wrapper = None


@pytest.fixture
def account_key(live) -> str:
    """A new account per test: accounts share nothing, so tests cannot see each other's objects."""
    return live.new_account()[1]


@pytest.fixture
def client(live, account_key) -> Iterator[Client]:
    with live.client(account_key) as c:
        yield c


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
