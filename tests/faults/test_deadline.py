"""The total deadline of one outbound call (``EXCHANGE_HTTP_TOTAL_TIMEOUT``), at the socket level."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from exchange.net.deadline import CallDeadlineExceeded
from exchange.net.session import OutboundSession


class Trickle:
    """Answers complete headers at once, then the body one byte every ``interval`` seconds."""

    def __init__(self, body_len: int = 200, interval: float = 0.05):
        self.body_len, self.interval = body_len, interval
        self.accepted = self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/x"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        with conn:  # keep-alive: one answer per request until the client closes
            try:
                while conn.recv(65536):
                    self.accepted += 1
                    conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {self.body_len}\r\n\r\n".encode())
                    for _ in range(self.body_len):
                        conn.sendall(b"x")
                        time.sleep(self.interval)
            except OSError:
                pass


def test_trickled_body_cut_at_the_deadline():
    server = Trickle(body_len=200, interval=0.05)  # 10 s in all, never 1 s without a byte
    http = OutboundSession(allow_private=True, timeout=(1.0, 1.0), total_timeout=0.6)
    started = time.monotonic()
    with pytest.raises(CallDeadlineExceeded, match="total deadline of 0.6s"):
        http.get(server.url)
    assert time.monotonic() - started < 1.5
    server.sock.close()


def test_calls_within_the_deadline_are_untouched():
    server = Trickle(body_len=5, interval=0.01)
    http = OutboundSession(allow_private=True, timeout=(1.0, 1.0), total_timeout=0.5)
    for _ in range(3):  # kept-alive connections come back from the pool; the old deadline is gone
        assert http.get(server.url).content == b"xxxxx"
    time.sleep(0.6)  # the earlier calls' deadlines pass: nothing is cut later
    assert http.get(server.url).content == b"xxxxx"
    assert server.accepted == 4 and server.connections == 1  # one kept-alive connection throughout
    server.sock.close()


def test_no_total_deadline_when_disabled():
    server = Trickle(body_len=12, interval=0.05)
    http = OutboundSession(allow_private=True, timeout=(1.0, 1.0), total_timeout=None)
    assert len(http.get(server.url).content) == 12
    server.sock.close()
