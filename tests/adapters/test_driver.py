"""The delivery driver against a scripted in-process adapter: pacing, retries, waits, cancel."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

import pytest

from exchange.adapters.base import Adapter, BatchResult, SegmentContext, error_for_status
from exchange.adapters.driver import TokenBucket, deliver
from exchange.errors import InvalidCredentials, PermanentTransferError, RetryableTransferError
from tests.adapters.conftest import FakeClock

CTX = SegmentContext("site", "seg", "Segment", "job")


class Scripted(Adapter):
    """Fails according to ``script`` (one entry per deliver_batch call), then succeeds."""

    name = "scripted"
    title = "Scripted"
    batch_size = 2
    rate_limit = 2.0
    auth_setting = "token"
    calls: ClassVar[list] = []

    def __init__(self, script=(), **kwargs):
        super().__init__({}, CTX, session=None)
        self.script = list(script)
        self.log: list[tuple[str, object]] = []

    def prepare(self):
        self.pace()  # stands for one HTTP request
        self.log.append(("prepare", None))
        return ["prepared"]

    def prefilter(self, row):
        return None if row.get("id") else "id is required"

    def deliver_batch(self, op, rows):
        self.pace()
        self.log.append((op, [r["id"] for r in rows]))
        if self.script:
            exc = self.script.pop(0)
            if exc is not None:
                raise exc
        return BatchResult(accepted=len(rows), events=[f"{op} {len(rows)}"])

    def finish(self):
        self.pace()
        self.log.append(("finish", None))
        return ["finished"]


def rows(n: int) -> list[dict]:
    return [{"id": str(i)} for i in range(n)]


def run(adapter: Adapter, clock: FakeClock, events: list[str], **kwargs):
    return deliver(adapter, on_event=events.append, sleep=clock.sleep, clock=clock.clock, rng=lambda: 0.0,
                   now=lambda: datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), **kwargs)


def test_order_batches_prefilter_and_events():
    adapter, clock, events = Scripted(), FakeClock(), []
    report = run(adapter, clock, events, adds=[*rows(3), {"id": ""}], removes=rows(2))
    assert adapter.log == [("prepare", None), ("add", ["0", "1"]), ("add", ["2"]), ("remove", ["0", "1"]),
                           ("finish", None)]
    assert (report.accepted, report.added, report.removed, report.requests) == (5, 3, 2, 3)
    assert report.rejected == [({"id": ""}, "id is required")]
    assert events == ["prepared", "add 2", "add 1", "remove 2", "finished"]


def test_pacing_follows_rate_limit():
    adapter, clock, events = Scripted(), FakeClock(), []
    run(adapter, clock, events, adds=rows(10), removes=())
    # 5 batches + prepare + finish = 7 calls at 2/s with a burst of one: 6 gaps of 0.5 s.
    assert sum(clock.sleeps) == pytest.approx(3.0)


def test_token_bucket_shares_pause_between_callers():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock.clock)
    assert bucket.reserve() == 0
    assert bucket.reserve() == pytest.approx(0.1)
    bucket.pause(5)
    assert bucket.reserve() >= 5


def test_transient_errors_back_off_exponentially_then_give_up():
    fail = [RetryableTransferError("boom") for _ in range(4)]
    adapter, clock, events = Scripted(script=fail), FakeClock(), []
    with pytest.raises(RetryableTransferError, match="gave up after 4 attempts"):
        run(adapter, clock, events, adds=rows(1), removes=(), max_attempts=4)
    # Equal jitter with rng() = 0: half of 1, 2, 4 s.
    assert [e.split("retrying in ")[1].split("s ")[0] for e in events if "retrying in" in e] == [
        "0.5", "1.0", "2.0"]


def test_retry_after_on_503_is_honoured_but_counts_as_attempt():
    exc = error_for_status(503, detail="busy", retry_after=30)
    adapter, clock, events = Scripted(script=[exc]), FakeClock(), []
    report = run(adapter, clock, events, adds=rows(1), removes=())
    assert report.retries == 1 and report.backoff_seconds == 30  # Retry-After beats the 0.5 s backoff


def test_429_is_a_wait_with_an_iso_event_and_no_attempt_used():
    throttles = [error_for_status(429, detail="slow down", retry_after=12) for _ in range(3)]
    adapter, clock, events = Scripted(script=throttles), FakeClock(), []
    report = run(adapter, clock, events, adds=rows(1), removes=(), max_attempts=1)
    assert report.accepted == 1 and report.retries == 0 and report.waited_seconds == 36
    assert "waiting for rate limit until 2030-01-02T03:04:17Z (Scripted answered 429)" in events


def test_429_without_retry_after_backs_off_and_total_wait_is_bounded():
    throttles = [error_for_status(429, detail="slow down") for _ in range(20)]
    adapter, clock, events = Scripted(script=throttles), FakeClock(), []
    with pytest.raises(RetryableTransferError, match="429"):
        run(adapter, clock, events, adds=rows(1), removes=(), max_wait=100)
    assert 0 < sum(clock.sleeps) <= 100 + 20 * 0.5  # waits within the bound, plus pacing


@pytest.mark.parametrize("exc", [PermanentTransferError("bad payload"), InvalidCredentials("no", setting="token")])
def test_permanent_errors_fail_fast(exc):
    adapter, clock, events = Scripted(script=[exc]), FakeClock(), []
    with pytest.raises(type(exc)) as err:
        run(adapter, clock, events, adds=rows(4), removes=())
    assert [op for op, _ in adapter.log] == ["prepare", "add"]
    if isinstance(exc, InvalidCredentials):
        assert err.value.setting == "token" and "'token'" in err.value.detail


def test_cancel_stops_between_batches_without_finish():
    adapter, clock, events = Scripted(), FakeClock(), []
    calls = iter([False, False, False, True])
    report = run(adapter, clock, events, adds=rows(10), removes=(), cancel_check=lambda: next(calls, True))
    assert report.cancelled and ("finish", None) not in adapter.log
    assert events[-1] == "delivery cancelled"


def test_concurrent_workers_deliver_everything_once():
    class Parallel(Scripted):
        concurrency = 4
        rate_limit = 1000.0
        batch_size = 3

    adapter, events = Parallel(script=[None, RetryableTransferError("flaky")]), []
    report = deliver(adapter, adds=rows(100), removes=rows(10), on_event=events.append, rng=lambda: 0.0,
                     sleep=lambda s: None)
    sent = [int(i) for op, ids in adapter.log if op == "add" for i in ids]
    assert report.added == 100 and report.removed == 10 and report.retries == 1
    assert set(sent) == set(range(100)) and len(sent) == 103  # one batch of 3 sent twice


def test_concurrent_failure_stops_the_delivery():
    class Parallel(Scripted):
        concurrency = 3
        rate_limit = 1000.0

    adapter = Parallel(script=[None, PermanentTransferError("refused")])
    with pytest.raises(PermanentTransferError):
        deliver(adapter, adds=rows(200), removes=(), on_event=lambda e: None, sleep=lambda s: None)
    assert len([op for op, _ in adapter.log if op == "add"]) < 100
