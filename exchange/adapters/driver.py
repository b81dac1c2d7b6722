"""The engine-side delivery loop for partner adapters (the template method around the hooks).

``deliver`` owns everything an adapter must not: prefiltering rows, cutting batches of the
adapter's ``batch_size``, pacing requests to its ``rate_limit`` with a token bucket, keeping up to
``concurrency`` requests in flight, retrying transient failures and waiting out 429s through the
exchange's one retry loop (:mod:`exchange.net.retry`, numbers from the adapter's ``retry_policy``),
and calling ``prepare`` first and ``finish`` last.

Rate-limit answers (429) are *waits*, not failures (SPEC §15.3): they emit
"waiting for rate limit until <ISO time>", do not use up the attempt budget, and are bounded in
total by ``max_wait``. Credentials and other permanent errors fail fast.

Modes: the driver only sends adds and removes. For ``replace`` on a partner that cannot replace
natively (every adapter here: ``requires_snapshot``), and for delta syncs, the caller computes
adds and removes from the share's snapshot and passes them in; the driver never sees snapshots.
Adds are delivered before removes, so a delivery cut short leaves a superset, which the next run
(computed from the unchanged snapshot) corrects.
"""
from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from exchange import metrics
from exchange.adapters.base import Adapter, BatchResult, Op, is_rate_limited
from exchange.errors import InvalidCredentials, RetryableTransferError
from exchange.net.retry import WAIT_RATE_LIMIT, RateLimitBudget, Wait, call_with_retries

log = logging.getLogger(__name__)
T = TypeVar("T")

_SLICE = 1.0  # long waits are cut into slices so cancellation is noticed


@dataclass
class DeliveryReport:
    accepted: int = 0
    added: int = 0
    removed: int = 0
    rejected: list[tuple[dict, str]] = field(default_factory=list)
    requests: int = 0  # deliver_batch attempts (one HTTP request each)
    retries: int = 0  # attempts repeated after a transient failure (rate-limit waits excluded)
    waited_seconds: float = 0.0  # time spent waiting on 429s
    backoff_seconds: float = 0.0  # time spent backing off before retries
    cancelled: bool = False


class _Stopped(Exception):
    """Internal: the delivery was cancelled or another worker failed."""


class TokenBucket:
    """Paces calls to ``rate`` per second with a burst of ``capacity``; thread-safe.

    Kept as a theoretical-arrival-time schedule (GCRA, the token bucket's equivalent): each caller
    reserves the next free slot under the lock and sleeps outside it, so concurrent workers queue
    fairly. ``pause`` (after a 429) pushes every later slot past the pause, with no burst after it.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float], capacity: float = 1.0) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.capacity = max(1.0, capacity)
        self.clock = clock
        self.next_slot = clock()
        self.paused_until = 0.0
        self.lock = threading.Lock()

    def reserve(self) -> float:
        """Take the next slot; returns how long the caller must sleep before using it."""
        with self.lock:
            now = self.clock()
            burst = (self.capacity - 1) * self.interval
            start = max(now, self.paused_until, self.next_slot - burst)
            self.next_slot = max(self.next_slot, start) + self.interval
            return start - now

    def pause(self, seconds: float) -> None:
        with self.lock:
            self.paused_until = max(self.paused_until, self.clock() + seconds)


def deliver(
    adapter: Adapter,
    *,
    adds: Iterable[dict],
    removes: Iterable[dict],
    on_event: Callable[[str], None],
    cancel_check: Callable[[], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    max_attempts: int | None = None,
    max_wait: float | None = None,
    rng: Callable[[], float] = random.random,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DeliveryReport:
    """Deliver ``adds`` then ``removes`` through ``adapter``; see the module docstring.

    ``max_attempts`` and ``max_wait`` (total seconds of 429 waits) override the adapter's ``retry_policy``.
    """
    return _Delivery(adapter, on_event, cancel_check, sleep, clock, max_attempts, max_wait, rng, now).run(
        adds, removes
    )


class _Delivery:
    def __init__(self, adapter, on_event, cancel_check, sleep, clock, max_attempts, max_wait, rng, now):
        self.adapter: Adapter = adapter
        self._on_event = on_event
        self.cancel_check = cancel_check or (lambda: False)
        self.sleep, self.clock, self.rng, self.now = sleep, clock, rng, now
        declared = adapter.retry_policy
        self.policy = replace(declared, max_attempts=max(1, max_attempts or declared.max_attempts))
        self.budget = RateLimitBudget(declared.max_rate_limit_wait if max_wait is None else max_wait)
        self.bucket = TokenBucket(adapter.rate_limit, clock=clock)
        self.report = DeliveryReport()
        self.lock = threading.Lock()
        self.stop = threading.Event()

    # -- public flow ----------------------------------------------------------------------
    def run(self, adds: Iterable[dict], removes: Iterable[dict]) -> DeliveryReport:
        previous, self.adapter.pace = self.adapter.pace, self._pace
        try:
            for event in self._call(self.adapter.prepare, "prepare"):
                self.emit(event)
            for op, rows in (("add", adds), ("remove", removes)):
                self._run_op(op, rows)
            for event in self._call(self.adapter.finish, "finish"):
                self.emit(event)
        except _Stopped:
            self.report.cancelled = True
            self.emit("delivery cancelled")
        finally:
            self.adapter.pace = previous
        return self.report

    def _pace(self) -> None:
        self._sleep(self.bucket.reserve())

    def emit(self, event: str) -> None:
        event = self.adapter.scrub(event)
        with self.lock:
            log.info("%s: %s", self.adapter.name, event)
            self._on_event(event)

    # -- batching -------------------------------------------------------------------------
    def _run_op(self, op: Op, rows: Iterable[dict]) -> None:
        batches = _chunks(self._prefiltered(rows), self.adapter.batch_size)
        if self.adapter.concurrency <= 1:
            for batch in batches:
                self._merge(op, self._call(lambda b=batch: self.adapter.deliver_batch(op, b), op))
            return
        with ThreadPoolExecutor(self.adapter.concurrency, thread_name_prefix=f"deliver-{op}") as pool:
            pending: set[Future] = set()
            try:
                for batch in batches:
                    while len(pending) >= self.adapter.concurrency:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            self._merge(op, future.result())
                    pending.add(pool.submit(self._call, lambda b=batch: self.adapter.deliver_batch(op, b), op))
                for future in pending:
                    self._merge(op, future.result())
            except BaseException:
                self.stop.set()  # other workers give up at their next step
                raise

    def _prefiltered(self, rows: Iterable[dict]) -> Iterator[dict]:
        for row in rows:
            reason = self.adapter.prefilter(row)
            if reason is None:
                yield row
            else:
                self.report.rejected.append((row, reason))

    def _merge(self, op: Op, result: BatchResult) -> None:
        self.report.accepted += result.accepted
        if op == "add":
            self.report.added += result.accepted
        else:
            self.report.removed += result.accepted
        self.report.rejected.extend(result.rejected)
        for event in result.events:
            self.emit(event)

    # -- one call with pacing, retries and waits (the exchange's one retry loop) -----------
    def _call(self, fn: Callable[[], T], what: str) -> T:
        is_batch = what in ("add", "remove")

        def attempt() -> T:
            self._checkpoint()
            if is_batch:
                with self.lock:
                    self.report.requests += 1
            try:
                result = fn()
            except InvalidCredentials:
                _count(self.adapter, "failed")
                raise
            except RetryableTransferError as exc:
                if is_rate_limited(exc):
                    _count(self.adapter, "rate_limited")
                raise
            _count(self.adapter, "ok")
            return result

        try:
            return call_with_retries(attempt, policy=self.policy, sleep=self._sleep, on_wait_detail=self._on_wait,
                                     budget=self.budget, rng=self.rng)
        except InvalidCredentials as exc:
            raise self._credentials(exc) from None
        except RetryableTransferError as exc:
            if is_rate_limited(exc):
                raise RetryableTransferError(
                    f"{self.adapter.title} kept answering 429: rate-limit waits would exceed "
                    f"{self.budget.limit:.0f}s in total",
                    retry_after=exc.retry_after,
                ) from None
            _count(self.adapter, "failed")
            raise RetryableTransferError(
                f"{exc.detail} (gave up after {self.policy.max_attempts} attempts)", retry_after=exc.retry_after
            ) from None

    def _on_wait(self, wait: Wait) -> None:
        if wait.reason == WAIT_RATE_LIMIT:
            with self.lock:
                self.report.waited_seconds += wait.seconds
            until = (self.now() + timedelta(seconds=wait.seconds)).isoformat(timespec="seconds").replace("+00:00", "Z")
            self.emit(f"waiting for rate limit until {until} ({self.adapter.title} answered 429)")
            self.bucket.pause(wait.seconds)  # every worker of this delivery waits, not only this one
            metrics.partner_wait(getattr(self.adapter, "name", "unknown"), wait.seconds)
            return
        _count(self.adapter, "retry")
        with self.lock:
            self.report.retries += 1
            self.report.backoff_seconds += wait.seconds
        self.emit(f"{wait.error.detail}; retrying in {wait.seconds:.1f}s "
                  f"(attempt {wait.attempt + 1} of {self.policy.max_attempts})")

    def _sleep(self, seconds: float) -> None:
        while seconds > 0:
            self._checkpoint()
            step = min(seconds, _SLICE)
            self.sleep(step)
            seconds -= step

    def _checkpoint(self) -> None:
        if self.stop.is_set():
            raise _Stopped
        if self.cancel_check():
            self.stop.set()
            raise _Stopped

    def _credentials(self, exc: InvalidCredentials) -> InvalidCredentials:
        setting = exc.setting or self.adapter.auth_setting
        detail = exc.detail if setting and setting in exc.detail else f"{exc.detail} (check the setting '{setting}')"
        return InvalidCredentials(self.adapter.scrub(detail), setting=setting)


def _count(adapter, result: str) -> None:
    metrics.partner_call(getattr(adapter, "name", "unknown"), result)


def _chunks(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, max(1, size))):
        yield batch
