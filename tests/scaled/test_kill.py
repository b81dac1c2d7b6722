"""Processes of the scaled deployment die with ``kill -9``: work is finished elsewhere, exactly once.

A worker killed while a delivery waits on a slow part: the lease lapses, the sweep publishes, the
other worker resumes at that part with the same ``Idempotency-Key``, and the consumer ends up with
the exact rows. The web process holding the scheduler lease killed: the other one takes the lease
within the lease time plus a tick or two, and a share that falls due meanwhile still runs once.
"""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from exchange.models import Job, SchedulerLease, Share
from tests.e2e.conftest import wait_job
from tests.e2e.test_faults import HASHES, _members, _setup, _share
from tests.e2e.test_scheduler import _share as _scheduled_share
from tests.fakes.protocol_endpoint import Fault

SLOW = 8.0  # seconds part 2 hangs at the consumer; the worker is killed meanwhile


def _until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _pid(owner: str | None) -> int | None:
    # owners are "host:pid:suffix" (exchange.jobs.executor.worker_id)
    parts = (owner or "").split(":")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def _job(rt, job_id: str) -> Job:
    with rt.db.session() as s:
        return s.get(Job, job_id)


@pytest.mark.parametrize("answer", ["503", "lost"], ids=["part-refused", "answer-lost"])
def test_worker_killed_mid_delivery_another_finishes_once(live, scaled, tmp_path, answer):
    """``503``: part 2 is refused after the wait; ``lost``: part 2 is applied but its answer is lost."""
    prod, cons, p, c, aud = _setup(live, tmp_path)
    with prod, cons:
        slow = Fault(delay=SLOW, status=503) if answer == "503" else Fault(delay=SLOW)
        cons.script("POST", "/audiences/D/data", [None, slow, None])
        job_id = _share(live, aud, c)["last_job_id"]
        _until(lambda: len(cons.requests_to("POST")) >= 2, 30, "part 2 to reach the consumer")
        owner = _job(live.rt, job_id).lease_owner
        victim = scaled.worker_of_pid(_pid(owner))
        assert victim is not None, f"lease owner {owner!r} is none of the worker processes"
        killed_at = time.monotonic()
        scaled.kill_worker(victim)

        job = wait_job(live, job_id, until={"succeeded", "partially_succeeded", "failed", "cancelled"},
                       timeout=SLOW + 30)
        took = time.monotonic() - killed_at
        print(f"worker {victim} killed; job finished by the other {took:.1f}s later")
        assert job["state"] == "succeeded", job
        assert _members(cons) == HASHES  # exact rows: nothing lost, nothing twice
        assert job["counts"]["delivered"] == 3 and job["counts"]["acknowledged"] == 3
        posts = cons.requests_to("POST")
        keys = [r.header("Idempotency-Key") for r in posts]
        assert len(posts) == 3 and keys[1] == keys[2] != keys[0]  # part 2 again, under the same key
        if answer == "503":
            accepted = [r.header("Idempotency-Key") for r in posts if r.status == 200]
            assert len(accepted) == len(set(accepted)) == 2  # each part accepted exactly once
        finished_by = _job(live.rt, job_id)
        assert finished_by.attempts == 2 and finished_by.lease_owner is None
        # resumed once the lease lapsed and a sweep published, not after the consumer's slow answer
        assert took < scaled.lease_seconds + 5 + 10, took


def _lease(rt) -> SchedulerLease | None:
    with rt.db.session() as s:
        return s.get(SchedulerLease, "scheduler")


def test_scheduler_leader_killed_other_takes_over(live, scaled):
    share = _scheduled_share(live, {"type": "interval", "every": "PT1H"})
    leader = _until(lambda: _lease(live.rt), 10, "a scheduler leader")
    first = scaled.web_of_pid(_pid(leader.owner))
    assert first is not None, f"lease owner {leader.owner!r} is none of the web processes"
    # while both live, the follower does not take the lease
    for _ in range(3):
        time.sleep(1)
        assert _lease(live.rt).owner == leader.owner

    scaled.kill_web(first)
    killed_at = time.monotonic()
    with live.rt.db.session() as s:  # an hour passes: the share falls due while nobody leads
        row = s.get(Share, share["id"])
        row.anchor_at -= timedelta(hours=1)
        row.next_run_at -= timedelta(hours=1)
        due = row.next_run_at

    def taken_over() -> SchedulerLease | None:
        lease = _lease(live.rt)
        return lease if lease is not None and lease.owner != leader.owner else None

    bound = scaled.scheduler_lease_seconds + 4
    new = _until(taken_over, bound + 2, "another scheduler to take the lease")
    took = time.monotonic() - killed_at
    print(f"web {first} killed; lease taken over {took:.1f}s later")
    assert took <= bound, f"took over after {took:.1f}s, bound {bound}s"
    assert scaled.web_of_pid(_pid(new.owner)) not in (None, first)

    def scheduled():
        with live.rt.db.session() as s:
            return list(s.scalars(select(Job).where(Job.share_id == share["id"], Job.trigger == "schedule")))
    jobs = _until(scheduled, 10, "the due run to be created by the new leader")
    assert jobs[0].scheduled_for.replace(tzinfo=None) == due.replace(tzinfo=None)
    time.sleep(1.5)  # a tick or two more creates nothing else
    assert len(scheduled()) == 1
    job = wait_job(live, jobs[0].id, timeout=30)
    assert job["state"] == "awaiting_consumer", job
