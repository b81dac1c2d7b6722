"""The one retry loop for outbound calls (endpoints, webhooks, partner adapters), built on tenacity.

* A :class:`~exchange.errors.RetryableTransferError` is retried; any other error propagates at once.
* A transient failure waits an exponential backoff with *equal jitter* (half fixed, half random, so
  retries of many jobs spread out but still grow), or the peer's ``Retry-After`` when that is longer,
  and counts against ``max_attempts``; the last error is re-raised when the budget is spent.
* A 429 is a wait, not a failure (SPEC §15.3): it waits ``Retry-After`` (or the backoff), does not use
  the attempt budget, and is bounded separately by a :class:`RateLimitBudget` of total seconds, so a
  peer that rate-limits forever still ends the call. A budget may be shared by many calls (one
  partner delivery shares one).

Every wait is reported before the sleep starts — ``on_wait(seconds, reason)`` and, with the error and
attempt number, ``on_wait_detail(Wait)`` — so a job's timeline can say why it waits.
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type

from exchange.errors import RetryableTransferError
from exchange.net.outcomes import is_rate_limit

T = TypeVar("T")

# Reasons passed to ``on_wait``; worded so callers can put them straight into a job event.
WAIT_RATE_LIMIT = "rate limit"
WAIT_RETRY = "retry after a transient error"

DEFAULT_MAX_RATE_LIMIT_WAIT = 3600.0

Rng = random.Random | Callable[[], float]


@dataclass(frozen=True)
class RetryPolicy:
    """The numbers of one caller's retries; the loop and the rules are the same for every caller."""

    max_attempts: int = 5
    base: float = 0.5  # first backoff ceiling in seconds; doubles per attempt
    cap: float = 30.0  # backoff ceiling never exceeds this
    max_rate_limit_wait: float = DEFAULT_MAX_RATE_LIMIT_WAIT


@dataclass(frozen=True)
class Wait:
    """One wait before another attempt: how long, why, after which error and attempt (1-based)."""

    seconds: float
    reason: str
    error: RetryableTransferError
    attempt: int


class RateLimitBudget:
    """Total seconds of rate-limit waits allowed, shared safely between threads."""

    def __init__(self, seconds: float) -> None:
        self.limit, self.used = seconds, 0.0
        self._lock = threading.Lock()

    def take(self, seconds: float) -> bool:
        """Reserve ``seconds`` of waiting; False (and nothing reserved) when that would exceed the limit."""
        with self._lock:
            if self.used + seconds > self.limit:
                return False
            self.used += seconds
            return True


def _draw(rng: Rng | None) -> float:
    if rng is None:
        return float(random.random())
    if isinstance(rng, random.Random):
        return float(rng.random())
    return float(rng())


def backoff_delays(attempt: int, base: float = 0.5, cap: float = 30.0, jitter: bool = True,
                   rng: Rng | None = None) -> float:
    """Delay before retry number ``attempt`` (1 = after the first failure).

    The ceiling ``base * 2**(attempt-1)`` is capped at ``cap``; with ``jitter`` the delay is drawn
    uniformly from ``[ceiling / 2, ceiling]`` ("equal jitter").
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    # Bound the exponent so huge attempt numbers do not overflow before the cap applies.
    ceiling: float = min(cap, base * 2.0 ** min(attempt - 1, 62))
    if not jitter:
        return ceiling
    return ceiling / 2 + ceiling / 2 * _draw(rng)


class _Schedule:
    """Decides, once per failed attempt, whether to stop and how long to wait (tenacity asks twice)."""

    def __init__(self, policy: RetryPolicy, budget: RateLimitBudget, rng: Rng | None) -> None:
        self.policy, self.budget, self.rng = policy, budget, rng
        self.failures = 0  # transient failures so far (rate limits excluded)
        self.rate_limited = 0
        self._decided: dict[int, tuple[bool, Wait | None]] = {}

    def decide(self, state: RetryCallState) -> tuple[bool, Wait | None]:
        if state.attempt_number in self._decided:
            return self._decided[state.attempt_number]
        assert state.outcome is not None
        exc = state.outcome.exception()
        assert isinstance(exc, RetryableTransferError)
        p = self.policy
        decision: tuple[bool, Wait | None]
        if is_rate_limit(exc):
            self.rate_limited += 1
            delay = exc.retry_after if exc.retry_after is not None else backoff_delays(
                self.rate_limited, base=p.base, cap=p.cap, rng=self.rng)
            ok = self.budget.take(delay)
            decision = (not ok, Wait(delay, WAIT_RATE_LIMIT, exc, self.failures + 1) if ok else None)
        else:
            self.failures += 1
            if self.failures >= p.max_attempts:
                decision = (True, None)
            else:
                delay = max(exc.retry_after or 0.0, backoff_delays(self.failures, base=p.base, cap=p.cap, rng=self.rng))
                decision = (False, Wait(delay, WAIT_RETRY, exc, self.failures))
        self._decided = {state.attempt_number: decision}
        return decision

    def stop(self, state: RetryCallState) -> bool:
        return self.decide(state)[0]

    def wait(self, state: RetryCallState) -> float:
        wait = self.decide(state)[1]
        return wait.seconds if wait is not None else 0.0


def call_with_retries(
    fn: Callable[[], T],
    *,
    max_attempts: int | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], object] = time.sleep,
    on_wait: Callable[[float, str], object] | None = None,
    on_wait_detail: Callable[[Wait], object] | None = None,
    max_rate_limit_wait: float | None = None,
    budget: RateLimitBudget | None = None,
    base: float | None = None,
    cap: float | None = None,
    rng: Rng | None = None,
) -> T:
    """Call ``fn`` until it returns, following the rules in the module docstring.

    ``policy`` gives the numbers; the keyword arguments of the same names override it.
    ``budget`` (a shared :class:`RateLimitBudget`) replaces ``max_rate_limit_wait`` when given.
    """
    p = policy or RetryPolicy()
    p = RetryPolicy(
        max_attempts=p.max_attempts if max_attempts is None else max_attempts,
        base=p.base if base is None else base,
        cap=p.cap if cap is None else cap,
        max_rate_limit_wait=p.max_rate_limit_wait if max_rate_limit_wait is None else max_rate_limit_wait,
    )
    if p.max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    schedule = _Schedule(p, budget or RateLimitBudget(p.max_rate_limit_wait), rng)

    def before_sleep(state: RetryCallState) -> None:
        wait = schedule.decide(state)[1]
        assert wait is not None
        if on_wait is not None:
            on_wait(wait.seconds, wait.reason)
        if on_wait_detail is not None:
            on_wait_detail(wait)

    retrying = Retrying(
        retry=retry_if_exception_type(RetryableTransferError),
        stop=schedule.stop,
        wait=schedule.wait,
        sleep=lambda seconds: None if sleep(seconds) else None,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)
