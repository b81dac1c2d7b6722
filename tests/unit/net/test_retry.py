"""Backoff and the retry loop: budgets, Retry-After, rate-limit waits outside the budget."""
from __future__ import annotations

import random

import pytest
from pytest_httpserver import HTTPServer

from exchange.errors import PermanentTransferError, RetryableTransferError
from exchange.net import (
    WAIT_RATE_LIMIT,
    WAIT_RETRY,
    OutboundSession,
    RateLimitedTransferError,
    backoff_delays,
    call_with_retries,
    raise_for_outcome,
)


def test_backoff_without_jitter_doubles_up_to_the_cap() -> None:
    assert [backoff_delays(n, base=0.5, cap=5, jitter=False) for n in range(1, 7)] == [0.5, 1, 2, 4, 5, 5]
    assert backoff_delays(10_000, cap=30, jitter=False) == 30


def test_backoff_full_jitter_stays_within_bounds_and_varies() -> None:
    rng = random.Random(7)
    draws = [backoff_delays(4, base=1, cap=30, rng=rng) for _ in range(200)]
    assert all(0 <= d <= 8 for d in draws)
    assert len(set(draws)) > 150
    with pytest.raises(ValueError):
        backoff_delays(0)


class Script:
    """A callable that raises the scripted errors in order, then returns 'done'."""

    def __init__(self, *errors: Exception):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_retries_until_success_with_backoff() -> None:
    sleeps: list[float] = []
    waits: list[tuple[float, str]] = []
    fn = Script(RetryableTransferError("503"), RetryableTransferError("timeout"))
    result = call_with_retries(
        fn, max_attempts=3, sleep=sleeps.append, on_wait=lambda s, r: waits.append((s, r)), rng=random.Random(1)
    )
    assert result == "done" and fn.calls == 3
    assert len(sleeps) == 2 and all(0 <= s <= 1 for s in sleeps)
    assert [r for _, r in waits] == [WAIT_RETRY, WAIT_RETRY]


def test_budget_exhausted_reraises_last_error() -> None:
    sleeps: list[float] = []
    last = RetryableTransferError("third")
    fn = Script(RetryableTransferError("first"), RetryableTransferError("second"), last)
    with pytest.raises(RetryableTransferError) as info:
        call_with_retries(fn, max_attempts=3, sleep=sleeps.append)
    assert info.value is last and fn.calls == 3 and len(sleeps) == 2


def test_permanent_error_is_not_retried() -> None:
    fn = Script(PermanentTransferError("400"))
    with pytest.raises(PermanentTransferError):
        call_with_retries(fn, max_attempts=5, sleep=lambda s: pytest.fail("must not sleep"))
    assert fn.calls == 1


def test_retry_after_replaces_backoff() -> None:
    sleeps: list[float] = []
    call_with_retries(Script(RetryableTransferError("503", retry_after=12)), max_attempts=2, sleep=sleeps.append)
    assert sleeps == [12]


def test_rate_limit_waits_do_not_use_the_attempt_budget() -> None:
    sleeps: list[float] = []
    waits: list[tuple[float, str]] = []
    errors = [RateLimitedTransferError("429", retry_after=2) for _ in range(6)]
    errors.insert(3, RetryableTransferError("503", retry_after=1))
    fn = Script(*errors)
    result = call_with_retries(
        fn, max_attempts=2, sleep=sleeps.append, on_wait=lambda s, r: waits.append((s, r))
    )
    assert result == "done" and fn.calls == 8
    assert sleeps == [2, 2, 2, 1, 2, 2, 2]
    assert [r for _, r in waits].count(WAIT_RATE_LIMIT) == 6
    assert [r for _, r in waits].count(WAIT_RETRY) == 1


def test_rate_limit_waits_are_bounded_in_total() -> None:
    sleeps: list[float] = []
    fn = Script(*[RateLimitedTransferError("429", retry_after=40) for _ in range(10)])
    with pytest.raises(RateLimitedTransferError):
        call_with_retries(fn, max_attempts=1, sleep=sleeps.append, max_rate_limit_wait=100)
    assert sleeps == [40, 40]


def test_against_a_rate_limiting_server(httpserver: HTTPServer) -> None:
    url = f"http://127.0.0.1:{httpserver.port}/audiences/1/data"
    for _ in range(3):
        httpserver.expect_ordered_request("/audiences/1/data", method="POST").respond_with_data(
            "", status=429, headers={"Retry-After": "0"}
        )
    httpserver.expect_ordered_request("/audiences/1/data", method="POST").respond_with_json({"accepted": 2})
    session = OutboundSession(allow_private=True)
    waits: list[tuple[float, str]] = []

    def deliver() -> dict:
        return raise_for_outcome(session.post(url, data=b"email\na@x\nb@x\n")).json()

    result = call_with_retries(deliver, max_attempts=1, sleep=lambda s: None, on_wait=lambda s, r: waits.append((s, r)))
    assert result == {"accepted": 2}
    assert waits == [(0.0, WAIT_RATE_LIMIT)] * 3
    httpserver.check_assertions()
