"""Per-key request rate limits, failed-authentication and sign-in throttling: shared token buckets.

Every limit is a token bucket (``burst`` tokens, refilled continuously at ``rate`` per second); an
empty bucket answers 429 with ``Retry-After`` (seconds until one token is back). Buckets live in a
:class:`BucketStore` that every web process shares, so a limit means what it says however many
gunicorn workers or hosts serve the API:

- ``redis`` — one Lua script per take (atomic); used when ``EXCHANGE_RATE_LIMIT_STORE=redis``, or
  by default when ``EXCHANGE_BROKER_URL`` is a ``redis://`` URL;
- ``database`` — one conditional ``UPDATE`` per take on the ``rate_buckets`` table (the default);
- ``memory`` — this process only (tests, single-process tools).

A per-key request limit on the ``database`` store does not write a row per request: a web process
takes a few tokens at once (a *lease*: what it expects to need in the next ``LEASE_SECONDS``, at most
``LEASE_SHARE`` of the burst and ``LEASE_MAX``) and spends them locally. Nothing is granted that was
not taken from the shared bucket, so the limit is never exceeded; tokens a process leased and did not
use within ``LEASE_TTL`` are dropped, so near the limit a key may be refused up to that many tokens
early. A quiet key leases one token at a time (exactly as without leases); a busy one (a status
poller) costs one ``UPDATE`` per lease instead of one per request.

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
LEASE_SECONDS = 0.1  # a web process leases the tokens it expects a key to need this long ...
LEASE_SHARE = 0.05  # ... at most this share of the key's burst (below 20 tokens of burst: one at a time) ...
LEASE_MAX = 100  # ... and at most this many at once
LEASE_TTL = 1.0  # leased tokens not used this long are dropped (a refill replaces them)
MAX_LEASES = 10_000  # leases kept per process; the oldest are dropped first


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

    def take_many(self, key: str, rate: float, burst: float, want: int) -> tuple[int, float]:
        """Take ``want`` tokens at once when the bucket holds them, else one as :meth:`take` does.

        Returns (tokens granted, 0.0) or (0, seconds until one is back)."""
        if want > 1:
            now = self.clock()
            t = RateBucket.__table__
            refilled = t.c.tokens + (now - t.c.updated) * rate
            capped = case((refilled > burst, burst), else_=refilled)
            with self.engine.begin() as conn:
                if conn.execute(update(t).where(t.c.key == key, capped >= float(want))
                                .values(tokens=capped - float(want), updated=now)).rowcount == 1:
                    return want, 0.0
        wait = self.take(key, rate, burst)
        return (0, wait) if wait > 0 else (1, 0.0)

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


@dataclass
class _Lease:
    size: int  # tokens taken from the shared bucket last time
    left: int  # of which not spent yet
    at: float  # when (monotonic)


class RateLimiter:
    def __init__(self, per_minute: int, *, store: BucketStore | None = None, clock=time.monotonic,
                 failed_auth_limit: int = FAILED_AUTH_LIMIT, failed_auth_window: float = FAILED_AUTH_WINDOW):
        self.rate = per_minute / 60.0
        self.burst = max(1.0, per_minute / 6.0)  # ten seconds' worth at once
        self.store = store or MemoryStore(clock)
        self.fail_burst = float(max(1, failed_auth_limit))
        self.fail_rate = self.fail_burst / max(1.0, failed_auth_window)
        self._leases: dict[str, _Lease] = {}
        self._lease_lock = threading.Lock()
        self._lease_cap = max(1, min(LEASE_MAX, int(self.burst * LEASE_SHARE)))

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
        if isinstance(self.store, DatabaseStore):
            wait = self._take_leased(f"req:{key}")
        else:
            wait = self._take(f"req:{key}", self.rate, self.burst)
        if wait > 0:
            raise RateLimited(f"Too many requests for this API key; retry in {wait:.1f}s.", retry_after=wait)

    def _take_leased(self, key: str) -> float:
        """One token for ``key`` from this process' lease; a new lease from the store when it is spent."""
        now = time.monotonic()
        with self._lease_lock:
            lease = self._leases.get(key)
            if lease is not None and lease.left > 0 and now - lease.at < LEASE_TTL:
                lease.left -= 1
                return 0.0
            want = 1
            if lease is not None and self._lease_cap > 1:  # what the last lease lasted tells the demand
                used = lease.size - lease.left
                want = int(used / max(now - lease.at, 1e-3) * LEASE_SECONDS)
            want = max(1, min(self._lease_cap, want))
        store: DatabaseStore = self.store  # type: ignore[assignment]
        try:
            granted, wait = store.take_many(key, self.rate, self.burst, want)
        except Exception as exc:  # noqa: BLE001 - the store is unreachable: let the request through (as _take)
            log.warning("rate limit store unavailable (%s); not limiting %s", type(exc).__name__, key.split(":")[0])
            return 0.0
        with self._lease_lock:
            if len(self._leases) >= MAX_LEASES and key not in self._leases:
                self._leases.pop(next(iter(self._leases)))
            self._leases[key] = _Lease(size=granted, left=max(0, granted - 1), at=now)
        return wait

    def try_hit(self, key: str) -> bool:
        """Take one token for ``key`` from this process' lease only (no store call): False when there is
        none left, and then :meth:`hit` must decide. Used by the status fast path (``fastpath.py``)."""
        if self.rate <= 0:
            return True
        now = time.monotonic()
        with self._lease_lock:
            lease = self._leases.get(f"req:{key}")
            if lease is None or lease.left <= 0 or now - lease.at >= LEASE_TTL:
                return False
            lease.left -= 1
            return True

    def give_back(self, key: str) -> None:
        """Return a token :meth:`try_hit` took (the request went on to the full path after all)."""
        if self.rate <= 0:
            return
        with self._lease_lock:
            lease = self._leases.get(f"req:{key}")
            if lease is not None:
                lease.left += 1

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
