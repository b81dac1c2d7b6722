"""Executors run claimed jobs: an in-process thread pool by default, Celery when configured.

Workers never receive work by message alone: they claim jobs from the database with a lease
(``UPDATE … WHERE lease expired``), so a job is run by one worker at a time, a crashed worker's job
is picked up again when its lease expires, and a restart resumes whatever was in flight.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import aliased

from ..models import TERMINAL_STATES, Job, utcnow
from .budget import claim_order, within_budget

log = logging.getLogger(__name__)
RUNNABLE = ("queued", "fetching", "awaiting_source", "transforming", "delivering")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_dead_leases(rt) -> int:
    """Expire leases held by processes of this host that no longer exist (after a restart)."""
    host = socket.gethostname()
    released = 0
    with rt.db.session() as s:
        for job in s.scalars(select(Job).where(Job.lease_owner.is_not(None))):
            h, _, rest = job.lease_owner.partition(":")
            pid = rest.partition(":")[0]
            if h == host and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                job.lease_owner, job.lease_expires_at = None, None
                released += 1
    return released


def claim_next(rt, owner: str) -> str | None:
    """Claim one runnable job for ``owner``; a share's jobs run one at a time, oldest first."""
    now = utcnow()
    earlier = aliased(Job)
    blocked = exists().where(earlier.share_id == Job.share_id, earlier.id != Job.id,
                             earlier.created_at < Job.created_at, earlier.state.not_in(TERMINAL_STATES))
    with rt.db.session() as s:
        candidates = list(s.scalars(
            select(Job.id).where(Job.state.in_(RUNNABLE),
                                 or_(Job.lease_owner.is_(None), Job.lease_expires_at < now),
                                 or_(Job.not_before.is_(None), Job.not_before <= now),
                                 or_(Job.share_id.is_(None), ~blocked),
                                 within_budget(s, now, rt.config))  # jobs/budget.py: fair workers
            .order_by(claim_order()).limit(10)))
    for job_id in candidates:
        with rt.db.session() as s:
            res = s.execute(update(Job).where(
                and_(Job.id == job_id, Job.state.in_(RUNNABLE),
                     or_(Job.lease_owner.is_(None), Job.lease_expires_at < now)))
                .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=rt.config.lease_seconds)))
            if res.rowcount == 1:
                return job_id
    return None


def renew_lease(rt, job_id: str, owner: str) -> bool:
    with rt.db.session() as s:
        res = s.execute(update(Job).where(Job.id == job_id, Job.lease_owner == owner)
                        .values(lease_expires_at=utcnow() + timedelta(seconds=rt.config.lease_seconds)))
        return res.rowcount == 1


class ThreadExecutor:
    """N worker threads that claim and run jobs; ``wake()`` makes them look at once."""

    def __init__(self, rt, workers: int):
        self.rt, self.workers = rt, max(1, workers)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.owner_base = worker_id()

    def start(self) -> None:
        if self._threads:
            return
        release_dead_leases(self.rt)
        self._stop.clear()
        for i in range(self.workers):
            t = threading.Thread(target=self._loop, args=(f"{self.owner_base}:{i}",), daemon=True,
                                 name=f"exchange-worker-{i}")
            t.start()
            self._threads.append(t)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=10)
        self._threads = []

    def _loop(self, owner: str) -> None:
        work_loop(self.rt, owner, self._stop, self._wake)


def work_loop(rt, owner: str, stop, wake, poll: float = 1.0) -> None:
    """Claim and run jobs until ``stop`` is set; ``wake`` cuts the wait between polls short."""
    from .runner import run_job

    while not stop.is_set():
        try:
            job_id = claim_next(rt, owner)
        except Exception:  # noqa: BLE001 - database briefly unavailable: try again shortly
            log.exception("claiming a job failed")
            job_id = None
        if job_id is None:
            wake.wait(poll)
            wake.clear()
            continue
        try:
            run_job(rt, job_id, owner, stop=stop)
        except Exception:  # noqa: BLE001 - run_job records failures itself; never kill the worker
            log.exception("job %s crashed its worker loop", job_id)


class ProcessExecutor:
    """Job workers in child processes at a lower CPU priority (the default for ``exchange serve``).

    Transforms are CPU-bound Python; in the web process they would hold the GIL and stall API
    requests (status polls waited ~1 s under 20 running jobs). Children own their own runtime and
    claim jobs from the database exactly like threads do; ``wake()`` signals them through a shared
    event, and they poll twice a second anyway.
    """

    NICE = 10

    def __init__(self, rt, workers: int):
        import multiprocessing

        self.rt, self.workers = rt, max(1, workers)
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._wake = self._ctx.Event()
        self._procs: list = []

    def start(self) -> None:
        if self._procs:
            return
        release_dead_leases(self.rt)
        self._stop.clear()
        for i in range(self.workers):
            proc = self._ctx.Process(target=_process_main, args=(self.rt.config, self._stop, self._wake, i),
                                     name=f"exchange-worker-{i}", daemon=True)
            proc.start()
            self._procs.append(proc)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for proc in self._procs:
            proc.join(timeout=15)
            if proc.is_alive():
                proc.terminate()  # its job's lease lapses and another worker resumes it
        self._procs = []


def _process_main(config, stop, wake, index: int) -> None:
    from ..runtime import Runtime

    try:
        os.nice(ProcessExecutor.NICE)
    except OSError:
        pass
    rt = Runtime(config)
    try:
        work_loop(rt, f"{worker_id()}:{index}", stop, wake, poll=0.5)
    finally:
        rt.db.dispose()


class InlineExecutor(ThreadExecutor):
    """Runs nothing in the background; ``drain()`` runs every runnable job in the caller's thread."""

    def start(self) -> None:
        release_dead_leases(self.rt)

    def wake(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def drain(self, limit: int = 100) -> int:
        from .runner import run_job

        done = 0
        while done < limit:
            job_id = claim_next(self.rt, self.owner_base)
            if job_id is None:
                return done
            run_job(self.rt, job_id, self.owner_base)
            done += 1
        return done


def make_executor(rt):
    kind = rt.config.executor
    if kind == "inline":
        return InlineExecutor(rt, 1)
    if kind == "process":
        return ProcessExecutor(rt, rt.config.workers)
    if kind == "celery":
        from .celery_executor import CeleryExecutor

        return CeleryExecutor(rt)
    return ThreadExecutor(rt, rt.config.workers)
