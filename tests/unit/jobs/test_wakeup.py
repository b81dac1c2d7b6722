"""Cross-process job wake: a job queued by another process (a web worker) is picked up at once, not at
the next poll. The poll interval is set to an hour here, so these tests fail (time out) if the wake
is lost; nothing asserts how fast it was."""
from __future__ import annotations

import dataclasses
import socket
import threading
import time

import pytest

from exchange.jobs import executor, phases
from exchange.jobs.wakeup import WakeListener, notify, wake_dir
from exchange.models import Job
from exchange.runtime import Runtime
from tests.unit.jobs.conftest import add_job

HOUR = 3600.0
BOUND = 60.0  # seconds to wait for something that, woken, happens at once; without the wake: an hour


def test_notify_reaches_every_listener_and_forgets_dead_ones(tmp_path):
    folder = wake_dir(tmp_path)
    got = [threading.Event(), threading.Event()]
    listeners = [WakeListener(folder, ev.set) for ev in got]
    assert all(lst.start() for lst in listeners)
    dead = folder / "999999-dead.sock"  # a socket file whose process is gone
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(dead))
    try:
        assert notify(folder) == 2
        assert all(ev.wait(BOUND) for ev in got)
        assert not dead.exists()
    finally:
        for lst in listeners:
            lst.stop()
    assert list(folder.iterdir()) == []  # a stopped listener removes its socket
    assert notify(folder) == 0 and notify(tmp_path / "nowhere") == 0


def test_a_long_var_dir_uses_a_short_socket_folder(tmp_path):
    deep = tmp_path / ("x" * 120)
    folder = wake_dir(deep)
    assert folder == wake_dir(deep) and len(str(folder)) < 80
    woken = threading.Event()
    listener = WakeListener(folder, woken.set)
    assert listener.start()
    try:
        notify(wake_dir(deep))
        assert woken.wait(BOUND)
    finally:
        listener.stop()


def _runner_and_web(runtime, executor_kind: str) -> tuple[Runtime, Runtime]:
    cfg = dataclasses.replace(runtime.config, executor=executor_kind, workers=1, job_poll_seconds=HOUR)
    return Runtime(cfg), Runtime(cfg)


def _wait_claimed(rt: Runtime, job_id: str) -> bool:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        with rt.db.session() as s:
            job = s.get(Job, job_id)
            if job.state != "queued" or job.lease_owner is not None:
                return True
        time.sleep(0.05)
    return False


def _wait_ended(rt: Runtime, job_id: str) -> bool:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        with rt.db.session() as s:
            job = s.get(Job, job_id)
            if job.terminal and job.lease_owner is None:
                return True
        time.sleep(0.05)
    return False


def test_a_job_queued_by_another_process_wakes_the_thread_workers(runtime, rows, monkeypatch):
    ran = threading.Event()
    monkeypatch.setattr(phases, "run", lambda ctx: ran.set())
    runner, web = _runner_and_web(runtime, "thread")
    runner.start_background()
    try:
        time.sleep(0.5)  # the worker has looked once, found nothing, and now waits an hour
        job_id = add_job(web, rows.share_id)
        web.executor.wake()  # what POST /v1/shares does after its commit, in a web worker
        assert ran.wait(BOUND), "the job was not picked up: the wake was lost"
        assert _wait_claimed(web, job_id)
    finally:
        runner.shutdown()
        web.shutdown()


def test_a_job_queued_by_a_web_process_wakes_the_runner_job_processes(runtime, rows):
    """The production shape: job worker processes (spawned, niced) of a runner; a web runtime queues."""
    runner, web = _runner_and_web(runtime, "process")
    runner.start_background()
    try:
        assert isinstance(runner.executor, executor.ProcessExecutor)
        # a first job shows the child is up and polling; once it has ended, the child finds nothing
        # more and waits an hour
        marker = add_job(web, rows.share_id)
        assert _wait_ended(web, marker), "the child never ran its first job"
        time.sleep(1.0)
        job_id = add_job(web, rows.share_id)
        web.executor.wake()
        assert _wait_claimed(web, job_id), "the job was not picked up: the wake was lost"
    finally:
        runner.shutdown()
        web.shutdown()


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_wake_without_a_runner_is_harmless(runtime, kind):
    _, web = _runner_and_web(runtime, kind)
    web.executor.wake()  # nobody listens: nothing raised, nothing left behind
    web.shutdown()
