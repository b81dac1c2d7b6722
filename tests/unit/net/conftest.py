"""Fixtures for outbound-HTTP tests: a fake resolver (no DNS leaves the machine) and raw sockets."""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest


def _fake_resolver(table: dict[str, list[str]], calls: list[str] | None = None):
    def resolve(host, port, family=0, type=0, proto=0, flags=0):
        if calls is not None:
            calls.append(host)
        answers = table.get(host)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if answers and isinstance(answers[0], list):  # a sequence of answers, one per lookup
            answers = answers.pop(0) if len(answers) > 1 else answers[0]
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers
        ]

    return resolve


@pytest.fixture
def resolver_for() -> Callable[..., Callable]:
    """``resolver_for({"name": ["addr", ...]}, calls=[])``; a list of lists answers lookups in turn."""
    return _fake_resolver


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """Start a one-connection-at-a-time TCP server on loopback running ``handler(conn)``; returns its port."""
    servers: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(handler: Callable[[socket.socket], None]) -> int:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        srv.settimeout(10)
        servers.append(srv)

        def loop() -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                with conn:
                    handler(conn)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        threads.append(thread)
        return srv.getsockname()[1]

    yield start
    for srv in servers:
        # shutdown() wakes a thread blocked in accept(); close() alone does not on Linux.
        try:
            srv.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        srv.close()
    for thread in threads:
        thread.join(timeout=5)
