"""Executors run claimed jobs: an in-process thread pool by default, Celery when configured.

Workers never receive work by message alone: they claim jobs from the database with a lease
(``UPDATE … WHERE lease expired``), so a job is run by one worker at a time, a crashed worker's job
is picked up again when its lease expires, and a restart resumes whatever was in flight.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as ProcessEvent
from typing import TYPE_CHECKING, Protocol

from ..logging_setup import configure as configure_logging
from ..logging_setup import log_context
from ..transfer.blocks import POOL as BLOCK_WORKERS
from ..webhooks.dispatcher import dispatch_due
from .leases import RUNNABLE, claim_next, release_dead_leases, renew_lease, worker_id
from .runner import run_job
from .wakeup import WakeListener, notify, wake_dir

if TYPE_CHECKING:
    from ..config import Config
    from ..runtime import Runtime

log = logging.getLogger(__name__)
__all__ = ["RUNNABLE", "claim_next", "make_executor", "release_dead_leases", "renew_lease", "worker_id"]


class Executor(Protocol):
    """What the runtime needs of an executor: start it, nudge it after queuing a job, stop it."""

    def start(self) -> None: ...

    def wake(self) -> None: ...

    def stop(self) -> None: ...


class ThreadExecutor:
    """N worker threads that claim and run jobs; ``wake()`` makes them look at once."""

    def __init__(self, rt: Runtime, workers: int) -> None:
        self.rt, self.workers = rt, max(1, workers)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: WakeListener | None = None
        self.owner_base = worker_id()

    def start(self) -> None:
        if self._threads:
            return
        release_dead_leases(self.rt)
        self._stop.clear()
        self._listen()
        for i in range(self.workers):
            t = threading.Thread(target=self._loop, args=(f"{self.owner_base}:{i}",), daemon=True,
                                 name=f"exchange-worker-{i}")
            t.start()
            self._threads.append(t)

    def _listen(self) -> None:
        """Wakes sent by other processes of this host (the web workers) cut our workers' wait short."""
        listener = WakeListener(wake_dir(self.rt.config.var_dir), self._wake.set)
        if listener.start():
            self._listener = listener

    def wake(self) -> None:
        self._wake.set()
        notify(wake_dir(self.rt.config.var_dir))  # and the job workers of the other processes here

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        for t in self._threads:
            t.join(timeout=10)
        self._threads = []

    def _loop(self, owner: str) -> None:
        work_loop(self.rt, owner, self._stop, self._wake, poll=self.rt.config.job_poll_seconds)


def work_loop(rt: Runtime, owner: str, stop: threading.Event | ProcessEvent,
              wake: threading.Event | ProcessEvent, poll: float = 0.5) -> None:
    """Claim and run jobs until ``stop`` is set; ``wake`` cuts the wait between polls short."""
    while not stop.is_set():
        try:
            job_id = claim_next(rt, owner)
        except Exception:  # noqa: BLE001 - database briefly unavailable: try again shortly
            log.exception("claiming a job failed")
            job_id = None
        if job_id is None:
            if _send_webhooks(rt, owner):
                continue  # sent some: look for jobs again before waiting
            wake.wait(poll)
            wake.clear()
            continue
        try:
            with log_context(job_id=job_id, worker=owner):
                run_job(rt, job_id, owner, stop=stop)
        except Exception:  # noqa: BLE001 - run_job records failures itself; never kill the worker
            log.exception("job %s crashed its worker loop", job_id)


def _send_webhooks(rt: Runtime, owner: str) -> int:
    """An idle job worker delivers due webhook messages (exchange.webhooks.dispatcher)."""
    try:
        return dispatch_due(rt, owner, limit=5)
    except Exception:  # noqa: BLE001 - database briefly unavailable: next idle turn
        log.warning("webhook dispatch failed", exc_info=True)
        return 0


class ProcessExecutor:
    """Job workers in child processes at a lower CPU priority (the default for ``exchange serve``).

    Transforms are CPU-bound Python; in the web process they would hold the GIL and stall API
    requests (status polls waited ~1 s under 20 running jobs). Children own their own runtime and
    claim jobs from the database exactly like threads do; ``wake()`` signals them through a shared
    event (set also by the wake socket other processes notify, ``wakeup.py``), and they poll every
    ``job_poll_seconds`` anyway.
    """

    NICE = 10
    SIGNAL_TIMEOUT = 2.0  # seconds to set the shared stop event before giving up on it
    JOIN_TIMEOUT = 15.0  # seconds a child may take to finish its current step after the stop event

    def __init__(self, rt: Runtime, workers: int) -> None:
        self.rt, self.workers = rt, max(1, workers)
        self._ctx = multiprocessing.get_context("spawn")
        self._stop = self._ctx.Event()
        self._wake = self._ctx.Event()
        self._procs: list[BaseProcess] = []
        self._listener: WakeListener | None = None

    def start(self) -> None:
        if self._procs:
            return
        release_dead_leases(self.rt)
        self._stop.clear()
        listener = WakeListener(wake_dir(self.rt.config.var_dir), self._wake.set)
        if listener.start():
            self._listener = listener
        for i in range(self.workers):
            # the child builds its own runtime of the same class (the composition root passes itself down)
            proc = self._ctx.Process(target=_process_main,
                                     args=(type(self.rt), self.rt.config, self._stop, self._wake, i),
                                     name=f"exchange-worker-{i}", daemon=True)
            proc.start()
            self._procs.append(proc)

    def wake(self) -> None:
        if self._procs:
            self._wake.set()
        notify(wake_dir(self.rt.config.var_dir))  # the runner's children when this is a web worker

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        # A child killed while waiting on an event (SIGTERM/SIGKILL to the whole process group, as
        # systemd and terminals send) leaves the event's condition counting a sleeper that will never
        # wake, and ``set()`` would then block forever. Signal from a helper thread and, when that
        # does not finish promptly, terminate the children instead of waiting for them.
        setter = threading.Thread(target=self._signal_stop, name="executor-stop", daemon=True)
        setter.start()
        setter.join(timeout=self.SIGNAL_TIMEOUT)
        signalled = not setter.is_alive()
        deadline = time.monotonic() + (self.JOIN_TIMEOUT if signalled else 0.0)
        for proc in self._procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()  # its job's lease lapses and another worker resumes it
                proc.join(timeout=self.JOIN_TIMEOUT)
        self._procs = []

    def _signal_stop(self) -> None:
        self._stop.set()
        self._wake.set()


def _process_main(runtime_cls: type[Runtime], config: Config, stop: ProcessEvent, wake: ProcessEvent,
                  index: int) -> None:
    configure_logging(config)
    try:
        os.nice(ProcessExecutor.NICE)
    except OSError:
        pass
    BLOCK_WORKERS.enabled = True  # this process owns its children: keep the transform's workers warm
    rt = runtime_cls(config)
    try:
        work_loop(rt, f"{worker_id()}:{index}", stop, wake, poll=config.job_poll_seconds)
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
        done = 0
        while done < limit:
            job_id = claim_next(self.rt, self.owner_base)
            if job_id is None:
                return done
            run_job(self.rt, job_id, self.owner_base)
            done += 1
        return done


def make_executor(rt: Runtime) -> Executor:
    """The executor ``EXCHANGE_EXECUTOR`` names: thread (default), process, celery or inline (tests)."""
    kind = rt.config.executor
    if kind == "inline":
        return InlineExecutor(rt, 1)
    if kind == "process":
        return ProcessExecutor(rt, rt.config.workers)
    if kind == "celery":
        from .celery_executor import CeleryExecutor

        return CeleryExecutor(rt)
    return ThreadExecutor(rt, rt.config.workers)
