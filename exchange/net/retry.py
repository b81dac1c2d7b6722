"""Retrying outbound calls: exponential backoff with full jitter, Retry-After, and rate-limit waits.

A 429 is a wait, not a failure (SPEC §15.3): waits caused by rate limiting do not consume the
attempt budget; they are bounded separately by ``max_rate_limit_wait`` (total seconds) so a peer
that rate-limits forever still ends the call. Every wait is reported through ``on_wait`` first, so
the job timeline can say "waiting for rate limit until …" before the sleep starts.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from exchange.errors import RetryableTransferError
from exchange.net.outcomes import RateLimitedTransferError

T = TypeVar("T")

# Reasons passed to ``on_wait``; worded so callers can put them straight into a job event.
WAIT_RATE_LIMIT = "rate limit"
WAIT_RETRY = "retry after a transient error"

DEFAULT_MAX_RATE_LIMIT_WAIT = 3600.0


def backoff_delays(
    attempt: int, base: float = 0.5, cap: float = 30.0, jitter: bool = True, rng: random.Random | None = None
) -> float:
    """Delay before retry number ``attempt`` (1 = after the first failure).

    Exponential ``base * 2**(attempt-1)`` capped at ``cap``; with ``jitter`` a uniform draw in
    ``[0, that]`` ("full jitter"), which spreads retries of many jobs hitting the same peer.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    # Bound the exponent so huge attempt numbers do not overflow before the cap applies.
    ceiling = min(cap, base * 2 ** min(attempt - 1, 62))
    if not jitter:
        return ceiling
    return (rng or random).uniform(0.0, ceiling)


def _is_rate_limit(exc: RetryableTransferError) -> bool:
    return isinstance(exc, RateLimitedTransferError) or exc.status == 429


def call_with_retries(
    fn: Callable[[], T],
    *,
    max_attempts: int,
    sleep: Callable[[float], object] = time.sleep,
    on_wait: Callable[[float, str], object] | None = None,
    max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT,
    base: float = 0.5,
    cap: float = 30.0,
    rng: random.Random | None = None,
) -> T:
    """Call ``fn`` until it returns, retrying :class:`RetryableTransferError`.

    * other errors propagate at once;
    * a retryable error waits ``retry_after`` when the peer gave one, else a jittered backoff, and
      counts against ``max_attempts``; the last error is re-raised when the budget is spent;
    * a rate-limit error (429) waits the same way but does not count against ``max_attempts``; once
      the waits would exceed ``max_rate_limit_wait`` seconds in total, it is re-raised.

    ``on_wait(seconds, reason)`` is called before each sleep with reason :data:`WAIT_RATE_LIMIT` or
    :data:`WAIT_RETRY`.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    attempt = 1
    rate_limited = 0
    rate_limit_waited = 0.0
    while True:
        try:
            return fn()
        except RetryableTransferError as exc:
            if _is_rate_limit(exc):
                rate_limited += 1
                delay = exc.retry_after if exc.retry_after is not None else backoff_delays(
                    rate_limited, base=base, cap=cap, rng=rng
                )
                if rate_limit_waited + delay > max_rate_limit_wait:
                    raise
                rate_limit_waited += delay
                reason = WAIT_RATE_LIMIT
            else:
                if attempt >= max_attempts:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else backoff_delays(
                    attempt, base=base, cap=cap, rng=rng
                )
                attempt += 1
                reason = WAIT_RETRY
        if on_wait is not None:
            on_wait(delay, reason)
        sleep(delay)
