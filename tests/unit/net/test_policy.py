"""One outbound policy: the endpoint client, webhooks and partner adapters resolve statuses through one
table and retry through one loop; adapters declare only what differs (a status meaning, the numbers)."""
from __future__ import annotations

import threading

import pytest
import requests

from exchange.adapters.base import Adapter, SegmentContext, error_for_status
from exchange.errors import InvalidCredentials, PermanentTransferError, RetryableTransferError
from exchange.net import (
    RateLimitBudget,
    RateLimitedTransferError,
    Resolution,
    RetryPolicy,
    Wait,
    call_with_retries,
    resolve_status,
)


@pytest.mark.parametrize(("status", "endpoint", "partner"), [
    (200, Resolution.OK, Resolution.OK),
    (401, Resolution.CREDENTIALS, Resolution.CREDENTIALS),
    (403, Resolution.CREDENTIALS, Resolution.FAIL),  # the one declared difference (Batch: API_MISUSE)
    (404, Resolution.FAIL, Resolution.FAIL),
    (409, Resolution.RETRY, Resolution.RETRY),
    (429, Resolution.RETRY, Resolution.RETRY),
    (501, Resolution.FAIL, Resolution.FAIL),
    (503, Resolution.RETRY, Resolution.RETRY),
])
def test_one_table_with_the_partner_override(status, endpoint, partner):
    assert resolve_status(status) is endpoint
    assert resolve_status(status, Adapter.status_overrides) is partner


@pytest.mark.parametrize(("status", "cls"), [
    (401, InvalidCredentials), (403, PermanentTransferError), (429, RateLimitedTransferError),
    (503, RetryableTransferError), (400, PermanentTransferError),
])
def test_partner_errors_come_from_the_table(status, cls):
    exc = error_for_status(status, detail="Partner: x answered", retry_after=3, auth_setting="token")
    assert type(exc) is cls and exc.partner_status == status
    if cls is InvalidCredentials:
        assert exc.setting == "token"
    if issubclass(cls, RetryableTransferError):
        assert exc.retry_after == 3
    assert error_for_status(204, detail="ok") is None


class _Refusing(Adapter):
    name, title = "refusing", "Refusing"

    def __init__(self, session):
        super().__init__({}, SegmentContext("s", "g", "n", "j"), session)


class _Session:
    def __init__(self, exc):
        self.exc = exc

    def request(self, *a, **kw):
        raise self.exc


@pytest.mark.parametrize(("exc", "cls"), [
    (requests.ConnectTimeout("http://secret@host/k3y"), RetryableTransferError),
    (requests.ConnectionError("refused"), RetryableTransferError),
    (requests.exceptions.SSLError("bad cert"), PermanentTransferError),
    (requests.exceptions.InvalidURL("nope"), PermanentTransferError),
])
def test_adapter_transport_failures_use_the_exception_table_and_hide_the_url(exc, cls):
    with pytest.raises(cls) as err:
        _Refusing(_Session(exc)).request("GET", "http://host/k3y", what="listing segments")
    assert type(err.value) is cls
    assert err.value.detail == f"Refusing: listing segments failed ({type(exc).__name__})"


def test_a_shared_budget_bounds_rate_limit_waits_across_calls():
    budget = RateLimitBudget(50)
    sleeps: list[float] = []

    def throttled():
        raise RateLimitedTransferError("429", retry_after=20)

    for _ in range(2):
        with pytest.raises(RateLimitedTransferError):
            call_with_retries(throttled, max_attempts=3, sleep=sleeps.append, budget=budget)
    assert sleeps == [20, 20] and budget.used == 40  # the second call had only 10 s left


def test_the_budget_is_safe_across_threads():
    budget = RateLimitBudget(100)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(budget.take(1))) for _ in range(150)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 100 and budget.used == 100


def test_waits_are_reported_with_their_error_and_attempt():
    waits: list[Wait] = []
    errors = [RetryableTransferError("a"), RateLimitedTransferError("b", retry_after=1), RetryableTransferError("c")]

    def fn():
        if errors:
            raise errors.pop(0)
        return "ok"

    policy = RetryPolicy(max_attempts=3, base=2.0, cap=2.0)
    assert call_with_retries(fn, policy=policy, sleep=lambda s: None, on_wait_detail=waits.append,
                             rng=lambda: 0.0) == "ok"
    assert [(w.reason, w.error.detail, w.attempt, w.seconds) for w in waits] == [
        ("retry after a transient error", "a", 1, 1.0), ("rate limit", "b", 2, 1), ("retry after a transient error",
                                                                                   "c", 2, 1.0)]


def test_policy_numbers_and_overrides():
    sleeps: list[float] = []
    fn_errors = [RetryableTransferError("x") for _ in range(5)]

    def fn():
        raise fn_errors.pop(0)

    with pytest.raises(RetryableTransferError):
        call_with_retries(fn, policy=RetryPolicy(max_attempts=5, base=1.0, cap=4.0), max_attempts=3,
                          sleep=sleeps.append, rng=lambda: 1.0)
    assert sleeps == [1.0, 2.0]  # the keyword overrode the policy's attempts; equal jitter at its top
