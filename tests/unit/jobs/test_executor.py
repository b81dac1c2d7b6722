"""Executors and leases: one worker per job, lapsed leases are taken over, a share's jobs run in order."""
from __future__ import annotations

import threading
from datetime import timedelta

from exchange.jobs import executor, phases
from exchange.jobs.leases import claim_next, release_dead_leases, renew_lease
from exchange.models import Job, JobEvent, utcnow
from tests.unit.jobs.conftest import add_job


def test_a_job_is_claimed_once(runtime, rows):
    job_id = add_job(runtime, rows.share_id)
    assert claim_next(runtime, "w1") == job_id
    assert claim_next(runtime, "w2") is None
    with runtime.db.session() as s:
        job = s.get(Job, job_id)
        assert job.lease_owner == "w1" and job.lease_expires_at > utcnow()


def test_renewal_belongs_to_the_owner(runtime, rows):
    job_id = add_job(runtime, rows.share_id)
    claim_next(runtime, "w1")
    assert renew_lease(runtime, job_id, "w1") is True
    assert renew_lease(runtime, job_id, "w2") is False


def test_a_lapsed_lease_is_taken_over_and_recorded(runtime, rows):
    job_id = add_job(runtime, rows.share_id, state="delivering", lease_owner="dead:1:x",
                     lease_expires_at=utcnow() - timedelta(seconds=5))
    assert claim_next(runtime, "w2") == job_id
    with runtime.db.session() as s:
        assert s.get(Job, job_id).lease_owner == "w2"
        warnings = [e.message for e in s.query(JobEvent).filter_by(job_id=job_id, kind="warning")]
    assert any("taken over by w2" in m for m in warnings)


def test_waiting_and_ended_jobs_are_not_claimed(runtime, rows):
    add_job(runtime, rows.share_id, state="succeeded")
    later = add_job(runtime, rows.share_id, state="awaiting_source", not_before=utcnow() + timedelta(hours=1))
    assert claim_next(runtime, "w1") is None
    with runtime.db.session() as s:
        s.get(Job, later).not_before = utcnow() - timedelta(seconds=1)
    assert claim_next(runtime, "w1") == later


def test_a_shares_jobs_run_one_at_a_time_oldest_first(runtime, rows):
    first = add_job(runtime, rows.share_id, created_at=utcnow() - timedelta(seconds=10))
    second = add_job(runtime, rows.share_id)
    assert claim_next(runtime, "w1") == first
    assert claim_next(runtime, "w2") is None  # the second waits for the first to end
    with runtime.db.session() as s:
        s.get(Job, first).state = "succeeded"
    assert claim_next(runtime, "w2") == second


def test_leases_of_dead_local_processes_are_released(runtime, rows):
    import socket

    job_id = add_job(runtime, rows.share_id, state="fetching", lease_owner=f"{socket.gethostname()}:999999999:ab",
                     lease_expires_at=utcnow() + timedelta(minutes=5))
    assert release_dead_leases(runtime) == 1
    with runtime.db.session() as s:
        assert s.get(Job, job_id).lease_owner is None


def test_inline_executor_drains_every_runnable_job(runtime, rows, monkeypatch):
    ran: list[str] = []

    def fake_run(ctx):
        ran.append(ctx.job_id)
        ctx.set_state("fetching")
        ctx.update(lambda s, job: setattr(job, "state", "succeeded"))

    monkeypatch.setattr(phases, "run", fake_run)
    ids = [add_job(runtime, rows.share_id, created_at=utcnow() - timedelta(seconds=10 - i)) for i in range(3)]
    ex = executor.InlineExecutor(runtime, 1)
    assert ex.drain() == 3 and ran == ids


def test_thread_workers_stop_and_release_what_they_hold(runtime, rows, monkeypatch):
    started, release = threading.Event(), threading.Event()

    def slow_run(ctx):
        started.set()
        release.wait(5)
        ctx.check_cancel(force=True)  # the stop flag is set: Interrupted

    monkeypatch.setattr(phases, "run", slow_run)
    job_id = add_job(runtime, rows.share_id)
    ex = executor.ThreadExecutor(runtime, 1)
    ex.start()
    ex.wake()
    assert started.wait(5)
    ex._stop.set()
    release.set()
    ex.stop()
    with runtime.db.session() as s:
        job = s.get(Job, job_id)
        assert job.state == "queued" and job.lease_owner is None  # left for the next claim, not failed


def test_make_executor_follows_the_configuration(runtime):
    assert isinstance(executor.make_executor(runtime), executor.ThreadExecutor)
    runtime.config.executor = "inline"
    assert isinstance(executor.make_executor(runtime), executor.InlineExecutor)


def test_process_workers_stop_promptly_when_a_child_was_killed_first(runtime):
    """SIGTERM to the whole process group kills children before the parent stops them: a child killed
    while waiting on the shared event must not make ``stop()`` hang (it used to block in Event.set())."""
    import os
    import signal
    import time

    ex = executor.ProcessExecutor(runtime, 2)
    ex.start()
    procs = list(ex._procs)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(p.pid for p in ex._procs):
            time.sleep(0.05)
        time.sleep(3)  # both children are in their poll loop, waiting on the wake event
        victim = ex._procs[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(10)
        stopper = threading.Thread(target=ex.stop, daemon=True)
        started = time.monotonic()
        stopper.start()
        stopper.join(30)
        elapsed = time.monotonic() - started
        assert not stopper.is_alive(), "stop() hung after a child was killed"
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    assert elapsed < ex.SIGNAL_TIMEOUT + ex.JOIN_TIMEOUT, f"stop took {elapsed:.1f} s"
    assert not any(p.is_alive() for p in procs) and ex._procs == []
