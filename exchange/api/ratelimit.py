"""Per-key request rate limits, failed-authentication and sign-in throttling: shared token buckets.

Every limit is a token bucket (``burst`` tokens, refilled continuously at ``rate`` per second); an
empty bucket answers 429 with ``Retry-After`` (seconds until one token is back). Buckets live in a
:class:`BucketStore` that every web process shares, so a limit means what it says however many
gunicorn workers or hosts serve the API:

- ``redis`` — one Lua script per take (atomic); used when ``EXCHANGE_RATE_LIMIT_STORE=redis``, or
  by default when ``EXCHANGE_BROKER_URL`` is a ``redis://`` URL;
- ``database`` — one conditional ``UPDATE`` per take on the ``rate_buckets`` table (the default);
- ``memory`` — this process only (tests, single-process tools).

Failed authentication is throttled *after* the key was checked: a valid key is never refused
because others failed from the same address (a NAT, a proxy) or guessed at the same key prefix.
Failures are counted per address and per key prefix; once either bucket is empty further failures
answer 429 instead of 401 until it refills.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

from sqlalchemy import case, delete, select, update
from sqlalchemy.exc import OperationalError

from ..errors import RateLimited
from ..models import RateBucket

log = logging.getLogger(__name__)

FAILED_AUTH_LIMIT = 20  # failed authentications per address (and per key prefix) ...
FAILED_AUTH_WINDOW = 60.0  # ... per this many seconds; then 429 for further failures
MAX_TRACKED = 100_000  # memory store: oldest entries are dropped first
STALE_AFTER = 3600.0  # database store: rows untouched this long are swept now and then


class BucketStore:
    """``take`` one token from ``key``: 0.0 when granted, else the seconds until one is back."""

    def take(self, key: str, rate: float, burst: float) -> float:
        raise NotImplementedError

    def reset(self, key: str) -> None:
        raise NotImplementedError


@dataclass
class _Bucket:
    tokens: float
    updated: float


class MemoryStore(BucketStore):
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str, rate: float, burst: float) -> float:
        now = self.clock()
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                if len(self._buckets) >= MAX_TRACKED:
                    self._buckets.pop(next(iter(self._buckets)))
                b = self._buckets[key] = _Bucket(burst, now)
            b.tokens = min(burst, b.tokens + (now - b.updated) * rate)
            b.updated = now
            if b.tokens < 1.0:
                return (1.0 - b.tokens) / rate
            b.tokens -= 1.0
            return 0.0

    def reset(self, key: str) -> None:
        with self._lock:
            self._buckets.pop(key, None)


class DatabaseStore(BucketStore):
    """Buckets as rows; the refill and the take are one atomic ``UPDATE … WHERE enough tokens``."""

    def __init__(self, engine, clock=time.time):
        self.engine, self.clock = engine, clock
        if engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        self._insert = dialect_insert

    def take(self, key: str, rate: float, burst: float) -> float:
        now = self.clock()
        t = RateBucket.__table__
        refilled = t.c.tokens + (now - t.c.updated) * rate
        capped = case((refilled > burst, burst), else_=refilled)
        with self.engine.begin() as conn:
            res = conn.execute(update(t).where(t.c.key == key, capped >= 1.0)
                               .values(tokens=capped - 1.0, updated=now))
            if res.rowcount == 1:
                granted = True
            else:
                tokens = conn.execute(select(capped).where(t.c.key == key)).scalar()
                if tokens is None:
                    # RETURNING, not rowcount: some drivers report -1 for INSERT … ON CONFLICT
                    granted = conn.execute(self._insert(t).values(key=key, tokens=burst - 1.0, updated=now)
                                           .on_conflict_do_nothing(index_elements=["key"])
                                           .returning(t.c.key)).first() is not None
                    if not granted:  # another process created it first: take from that row
                        granted = conn.execute(update(t).where(t.c.key == key, capped >= 1.0)
                                               .values(tokens=capped - 1.0, updated=now)).rowcount == 1
                        tokens = 0.0
                else:
                    granted = False
            if random.random() < 0.001:
                conn.execute(delete(t).where(t.c.updated < now - STALE_AFTER))
        if granted:
            return 0.0
        return max(0.01, (1.0 - float(tokens or 0.0)) / rate)

    def reset(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(RateBucket.__table__).where(RateBucket.__table__.c.key == key))


_REDIS_TAKE = """
local b = redis.call('HMGET', KEYS[1], 't', 'u')
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(b[1]) or burst
local updated = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate else tokens = tokens - 1 end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'u', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""


class RedisStore(BucketStore):
    def __init__(self, url: str, prefix: str = "exchange:rl:", clock=time.time):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix, self.clock = prefix, clock
        self._take = self.client.register_script(_REDIS_TAKE)

    def take(self, key: str, rate: float, burst: float) -> float:
        return float(self._take(keys=[self.prefix + key], args=[rate, burst, self.clock()]))

    def reset(self, key: str) -> None:
        self.client.delete(self.prefix + key)


def open_store(config, engine) -> BucketStore:
    kind = (getattr(config, "rate_limit_store", "") or "").strip().lower()
    broker = getattr(config, "broker_url", "") or ""
    if not kind:
        kind = "redis" if broker.startswith(("redis://", "rediss://")) else "database"
    if kind == "redis":
        return RedisStore(getattr(config, "rate_limit_redis_url", "") or broker)
    if kind == "memory":
        return MemoryStore()
    return DatabaseStore(engine)


class RateLimiter:
    def __init__(self, per_minute: int, *, store: BucketStore | None = None, clock=time.monotonic,
                 failed_auth_limit: int = FAILED_AUTH_LIMIT, failed_auth_window: float = FAILED_AUTH_WINDOW):
        self.rate = per_minute / 60.0
        self.burst = max(1.0, per_minute / 6.0)  # ten seconds' worth at once
        self.store = store or MemoryStore(clock)
        self.fail_burst = float(max(1, failed_auth_limit))
        self.fail_rate = self.fail_burst / max(1.0, failed_auth_window)

    def _take(self, key: str, rate: float, burst: float) -> float:
        try:
            return self.store.take(key, rate, burst)
        except (OperationalError, OSError, ConnectionError) as exc:
            # the shared store is briefly unreachable: let the request through rather than fail it
            log.warning("rate limit store unavailable (%s); not limiting %s", type(exc).__name__, key.split(":")[0])
            return 0.0
        except Exception as exc:  # noqa: BLE001 - e.g. redis.exceptions.ConnectionError
            log.warning("rate limit store failed (%s); not limiting", type(exc).__name__)
            return 0.0

    def hit(self, key: str) -> None:
        """Take one token for ``key`` or raise RateLimited."""
        if self.rate <= 0:
            return
        wait = self._take(f"req:{key}", self.rate, self.burst)
        if wait > 0:
            raise RateLimited(f"Too many requests for this API key; retry in {wait:.1f}s.", retry_after=wait)

    def failed_auth(self, addr: str, key_prefix: str | None = None) -> None:
        """Count a failed authentication; raise RateLimited once the address or the prefix is over."""
        waits = [self._take(f"authfail:addr:{addr}", self.fail_rate, self.fail_burst)]
        if key_prefix:
            waits.append(self._take(f"authfail:prefix:{key_prefix[:40]}", self.fail_rate, self.fail_burst))
        wait = max(waits)
        if wait > 0:
            raise RateLimited("Too many failed authentications from this address or for this key; "
                              f"retry in {wait:.0f}s. Valid keys are not affected.", retry_after=wait)

    def attempt(self, key: str, *, limit: int, window: float) -> float:
        """Take one attempt of ``limit`` per ``window`` seconds; returns 0.0 or the seconds to wait."""
        return self._take(f"attempt:{key}", max(1, limit) / max(1.0, window), float(max(1, limit)))

    def reset(self, key: str) -> None:
        try:
            self.store.reset(f"attempt:{key}")
        except Exception as exc:  # noqa: BLE001
            log.warning("rate limit store failed (%s)", type(exc).__name__)
