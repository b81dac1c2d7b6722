"""A total deadline per outbound call, on top of the connect and read timeouts.

Socket timeouts bound each wait, not the call: a peer that sends one byte just within the read
timeout can hold a call (and the worker making it) for as long as it likes. Each call made through
:class:`exchange.net.session.OutboundSession` registers the sockets it uses with one watchdog
thread; when the call's deadline passes, the watchdog shuts those sockets down, the blocked read
returns at once, and the session raises :class:`CallDeadlineExceeded` (a ``requests`` read
timeout, so the failure policy treats it like any other timeout: retryable).

The deadline covers connecting, sending the body and receiving the answer. For streamed responses
(``stream=True``, large downloads) it covers the call until the headers have arrived; the body is
then read under the read timeout, as long as it keeps coming.
"""
from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any

import requests


class CallDeadlineExceeded(requests.exceptions.ReadTimeout):
    """The call did not complete within its total deadline."""


class _Call:
    __slots__ = ("deadline", "done", "fired", "lock", "sockets")

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.sockets: list[Any] = []
        self.fired = False  # the deadline passed while the call was running
        self.done = False
        self.lock = threading.Lock()

    def add(self, sock: Any) -> None:
        with self.lock:
            if self.fired:
                _shutdown(sock)
            elif not self.done:
                self.sockets.append(sock)

    def expire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.fired = True
            for sock in self.sockets:
                _shutdown(sock)

    def finish(self) -> None:
        with self.lock:
            self.done = True
            self.sockets = []


def _shutdown(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass


class _Watchdog:
    """One daemon thread expiring calls in deadline order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Call]] = []
        self._counter = itertools.count()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, call: _Call) -> None:
        with self._cv:
            heapq.heappush(self._heap, (call.deadline, next(self._counter), call))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="exchange-call-deadlines", daemon=True)
                self._thread.start()
            self._cv.notify()

    def _run(self) -> None:
        with self._cv:
            while True:
                while not self._heap:
                    self._cv.wait()
                deadline, _, call = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                heapq.heappop(self._heap)
                call.expire()


_WATCHDOG = _Watchdog()
_current = threading.local()


def register_socket(sock: Any) -> None:
    """Called by the guarded connection for each socket a request uses (new or from the pool)."""
    call = getattr(_current, "call", None)
    if call is not None and sock is not None:
        call.add(sock)


@contextmanager
def deadline(seconds: float | None):
    """Run the calls of this block under one total deadline of ``seconds`` (None or ≤ 0: none)."""
    if not seconds or seconds <= 0 or getattr(_current, "call", None) is not None:
        yield None
        return
    call = _Call(time.monotonic() + seconds)
    _current.call = call
    _WATCHDOG.watch(call)
    try:
        yield call
    finally:
        _current.call = None
        call.finish()  # nothing left to cut; the heap entry lapses harmlessly
