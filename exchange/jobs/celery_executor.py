"""Celery executor: job ids go over the broker, workers claim them from the database with a lease.

The broker only says "look now"; the database lease decides who runs a job, so a duplicated or lost
message can neither run a job twice nor lose it (a periodic sweep in every web process re-publishes
while a job is claimable). The runner keeps a running job's lease alive from a side thread; when a
worker dies (``kill -9``, a lost machine) the lease lapses after ``EXCHANGE_LEASE_SECONDS`` and the
next sweep hands the job to another worker, which resumes it at the first part not yet accepted.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from celery import Celery
from sqlalchemy import or_, select

from ..models import Job, utcnow
from .leases import RUNNABLE, claim_next, release_dead_leases, worker_id
from .runner import run_job

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)
_apps: dict[str, Celery] = {}
QUEUE = "exchange-jobs"


def celery_app(broker_url: str) -> Celery:
    if broker_url not in _apps:
        app = Celery("exchange", broker=broker_url)
        app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
                        task_default_queue=QUEUE, broker_connection_retry_on_startup=True,
                        # the message is a hint, never state: a stale one is harmless, so do not keep them
                        task_ignore_result=True)
        app.task(name="exchange.run_next", ignore_result=True)(_run_next)
        _apps[broker_url] = app
    return _apps[broker_url]


_worker_runtime: Runtime | None = None


def _run_next() -> None:
    """Task body: claim and run runnable jobs until none is left."""
    rt = _worker_runtime
    if rt is None:
        # the worker process is assembled by ``exchange worker`` (run_worker below), which sets it
        raise RuntimeError("no runtime in this Celery worker: start workers with `exchange worker`")
    owner = worker_id()
    while True:
        try:
            job_id = claim_next(rt, owner)
        except Exception:  # noqa: BLE001 - database briefly unavailable: the sweep publishes again
            log.exception("claiming a job failed")
            return
        if job_id is None:
            return
        from ..logging_setup import log_context

        with log_context(job_id=job_id, worker=owner):
            run_job(rt, job_id, owner)


def _set_runtime(rt: Runtime) -> Runtime:
    global _worker_runtime
    _worker_runtime = rt
    return rt


class CeleryExecutor:
    """Web-process side: ``wake()`` publishes a task; a sweep thread re-publishes every few seconds."""

    def __init__(self, rt: Runtime, sweep_seconds: float = 2.0) -> None:
        self.rt = rt
        self.app = celery_app(rt.config.broker_url)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sweep_seconds = sweep_seconds
        self._woken = threading.Event()
        self._publisher: threading.Thread | None = None
        self._publisher_lock = threading.Lock()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._sweep, daemon=True, name="celery-sweep")
            self._thread.start()

    def wake(self) -> None:
        """Ask for a publish without waiting for the broker: an API request never blocks on it (a broker
        that does not answer used to hold share creation ~4 s); wakes coalesce into one message."""
        self._woken.set()
        if self._publisher is None:
            with self._publisher_lock:
                if self._publisher is None:
                    self._publisher = threading.Thread(target=self._publish_loop, daemon=True,
                                                       name="celery-publish")
                    self._publisher.start()

    def _publish_loop(self) -> None:
        while True:
            self._woken.wait()
            self._woken.clear()
            self.publish()

    def publish(self) -> None:
        try:
            self.app.send_task("exchange.run_next")
        except Exception:  # noqa: BLE001 - the sweep publishes again; the job is safe in the database
            log.warning("could not publish to the broker; the sweep will retry")

    def claimable(self) -> bool:
        """Whether some job could be claimed now (runnable, not leased or its lease lapsed, not waiting)."""
        now = utcnow()
        with self.rt.db.session() as s:
            return s.scalar(select(Job.id).where(
                Job.state.in_(RUNNABLE), or_(Job.lease_owner.is_(None), Job.lease_expires_at < now),
                or_(Job.not_before.is_(None), Job.not_before <= now)).limit(1)) is not None

    def _sweep(self) -> None:
        while not self._stop.wait(self.sweep_seconds):
            try:
                if self.claimable():
                    self.publish()
            except Exception:  # noqa: BLE001
                log.exception("sweep failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def run_worker(rt: Runtime, concurrency: int = 2) -> None:
    """``exchange worker``: a Celery worker whose tasks run jobs with this runtime."""
    _set_runtime(rt)
    released = release_dead_leases(rt)
    if released:
        log.info("released %d lease(s) of dead processes on this host", released)
    app = celery_app(rt.config.broker_url)
    # a node name per process: several workers on one host must not share one
    app.worker_main(["worker", f"--loglevel={rt.config.log_level}", f"--concurrency={concurrency}",
                     "--pool=threads", "-Q", QUEUE, "-n", f"exchange-{os.getpid()}@%h",
                     "--without-gossip", "--without-mingle"])
