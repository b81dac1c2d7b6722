"""Per-key request rate limits and failed-authentication throttling (in-process token buckets).

Each web process keeps its own buckets, so with N processes behind a balancer a key may get up to
N times the configured rate; the deployment guide says so. Buckets refill continuously; an empty
bucket answers 429 with ``Retry-After`` (seconds until one token is back).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ..errors import RateLimited

FAILED_AUTH_LIMIT = 20  # failed authentications per address ...
FAILED_AUTH_WINDOW = 60.0  # ... per this many seconds, then 429 until the window passes
MAX_TRACKED = 100_000  # bound memory: oldest entries are dropped first


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, per_minute: int, *, clock=time.monotonic):
        self.rate = per_minute / 60.0
        self.burst = max(1.0, per_minute / 6.0)  # ten seconds' worth at once
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Take one token for ``key`` or raise RateLimited."""
        if self.rate <= 0:
            return
        now = self.clock()
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                if len(self._buckets) >= MAX_TRACKED:
                    self._buckets.pop(next(iter(self._buckets)))
                b = self._buckets[key] = _Bucket(self.burst, now)
            b.tokens = min(self.burst, b.tokens + (now - b.updated) * self.rate)
            b.updated = now
            if b.tokens < 1.0:
                wait = (1.0 - b.tokens) / self.rate
                raise RateLimited(f"Too many requests for this API key; retry in {wait:.1f}s.", retry_after=wait)
            b.tokens -= 1.0

    def check_address(self, addr: str) -> None:
        """Refuse an address that failed authentication too often recently."""
        now = self.clock()
        with self._lock:
            recent = [t for t in self._failures.get(addr, []) if now - t < FAILED_AUTH_WINDOW]
            if recent:
                self._failures[addr] = recent
            else:
                self._failures.pop(addr, None)
            if len(recent) >= FAILED_AUTH_LIMIT:
                wait = FAILED_AUTH_WINDOW - (now - recent[0])
                raise RateLimited("Too many failed authentications from this address; retry later.",
                                  retry_after=wait)

    def failed_auth(self, addr: str) -> None:
        with self._lock:
            if len(self._failures) >= MAX_TRACKED:
                self._failures.pop(next(iter(self._failures)))
            self._failures.setdefault(addr, []).append(self.clock())
