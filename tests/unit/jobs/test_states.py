"""The job state machine: every allowed transition succeeds and is recorded, every other one is refused."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from exchange.jobs.progress import read_progress
from exchange.jobs.states import ACTIVE, ALLOWED, IllegalTransition, transition
from exchange.models import TERMINAL_STATES, Job, JobEvent, utcnow
from tests.unit.jobs.conftest import add_job

STATES = sorted(set(ALLOWED) | set(TERMINAL_STATES))
PAIRS = [(a, b) for a in ALLOWED for b in STATES]


def _job_in(runtime, rows, state: str) -> str:
    return add_job(runtime, rows.share_id, state=state, lease_owner="w1",
                   lease_expires_at=utcnow() + timedelta(seconds=60))


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_every_pair_is_allowed_or_refused(runtime, rows, source, target):
    job_id = _job_in(runtime, rows, source)
    with runtime.db.session() as s:
        job = s.get(Job, job_id)
        if target == source or target in ALLOWED[source]:
            assert transition(s, job, target, "moved") is True
        else:
            with pytest.raises(IllegalTransition):
                transition(s, job, target)
            return
    with runtime.db.session() as s:
        job = s.get(Job, job_id)
        assert job.state == target
        events = list(s.scalars(select(JobEvent).where(JobEvent.job_id == job_id)))
        assert [(e.kind, e.state, e.message) for e in events] == [("state", target, "moved")]
        if target in TERMINAL_STATES:
            assert job.finished_at is not None and job.lease_owner is None and job.lease_expires_at is None
        else:
            assert job.lease_owner == "w1"  # only an end releases the lease
        assert (job.started_at is not None) == (target in ACTIVE)


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATES))
def test_an_ended_job_never_moves_again(runtime, rows, terminal):
    job_id = _job_in(runtime, rows, terminal)
    with runtime.db.session() as s:
        job = s.get(Job, job_id)
        assert transition(s, job, "fetching") is False
        assert job.state == terminal


def test_time_in_each_state_is_recorded(runtime, rows):
    job_id = _job_in(runtime, rows, "queued")
    with runtime.db.session() as s:
        job = s.get(Job, job_id)
        transition(s, job, "fetching")
        since = read_progress(job).state_since
        assert since is not None
        # pretend the fetch began two seconds ago
        job.progress = {**job.progress, "state_since": (utcnow() - timedelta(seconds=2)).isoformat()}
        transition(s, job, "transforming")
        assert 1.9 <= job.timings["fetching"] <= 10
        transition(s, job, "transforming", "again")  # staying put adds no time and keeps the mark
        assert set(job.timings) == {"fetching"}
