"""Celery executor: job ids go over the broker, workers claim them from the database with a lease.

The broker only says "look now"; the database lease decides who runs a job, so a duplicated or lost
message can neither run a job twice nor lose it (a periodic sweep re-publishes runnable jobs).
"""
from __future__ import annotations

import logging
import threading

from celery import Celery

log = logging.getLogger(__name__)
_apps: dict[str, Celery] = {}


def celery_app(broker_url: str) -> Celery:
    if broker_url not in _apps:
        app = Celery("exchange", broker=broker_url)
        app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
                        task_default_queue="exchange-jobs", broker_connection_retry_on_startup=True)
        app.task(name="exchange.run_next", ignore_result=True)(_run_next)
        _apps[broker_url] = app
    return _apps[broker_url]


_worker_runtime = None


def _run_next() -> None:
    """Task body: claim and run runnable jobs until none is left."""
    from .executor import claim_next, worker_id
    from .runner import run_job

    rt = _worker_runtime
    if rt is None:
        from ..config import Config
        from ..runtime import Runtime
        rt = _set_runtime(Runtime(Config.from_env()))
    owner = worker_id()
    while True:
        job_id = claim_next(rt, owner)
        if job_id is None:
            return
        run_job(rt, job_id, owner)


def _set_runtime(rt):
    global _worker_runtime
    _worker_runtime = rt
    return rt


class CeleryExecutor:
    """Web-process side: ``wake()`` publishes a task; a sweep thread re-publishes every few seconds."""

    def __init__(self, rt, sweep_seconds: float = 5.0):
        self.rt = rt
        self.app = celery_app(rt.config.broker_url)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sweep_seconds = sweep_seconds

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._sweep, daemon=True, name="celery-sweep")
            self._thread.start()

    def wake(self) -> None:
        try:
            self.app.send_task("exchange.run_next")
        except Exception:  # noqa: BLE001 - the sweep publishes again; the job is safe in the database
            log.warning("could not publish to the broker; the sweep will retry")

    def _sweep(self) -> None:
        from .executor import RUNNABLE
        from ..models import Job
        from sqlalchemy import select

        while not self._stop.wait(self.sweep_seconds):
            try:
                with self.rt.db.session() as s:
                    pending = s.scalar(select(Job.id).where(Job.state.in_(RUNNABLE)).limit(1))
                if pending:
                    self.wake()
            except Exception:  # noqa: BLE001
                log.exception("sweep failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def run_worker(rt, concurrency: int = 2) -> None:
    """``exchange worker``: a Celery worker whose tasks run jobs with this runtime."""
    from .executor import release_dead_leases

    _set_runtime(rt)
    release_dead_leases(rt)
    app = celery_app(rt.config.broker_url)
    app.worker_main(["worker", "--loglevel=INFO", f"--concurrency={concurrency}", "--pool=threads",
                     "-Q", "exchange-jobs", "--without-gossip", "--without-mingle"])
