"""The runner: how each way a job's phases can end becomes the job's state, error and lease."""
from __future__ import annotations

import errno
from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError

from exchange.errors import CsvDataError, PermanentTransferError
from exchange.jobs import phases, runner
from exchange.jobs.context import Cancelled, Interrupted, JobFailed
from exchange.models import Job, utcnow
from tests.unit.jobs.conftest import add_job


def _run(runtime, rows, monkeypatch, outcome, state="fetching"):
    job_id = add_job(runtime, rows.share_id, state=state, lease_owner="me",
                     lease_expires_at=utcnow() + timedelta(seconds=60))
    seen = []

    def fake_run(ctx):
        seen.append(ctx.job_id)
        if isinstance(outcome, BaseException):
            raise outcome
        outcome(ctx)

    monkeypatch.setattr(phases, "run", fake_run)
    runner.run_job(runtime, job_id, "me")
    assert seen == [job_id]
    with runtime.db.session() as s:
        job = s.get(Job, job_id)
        s.expunge(job)
    return job


@pytest.mark.parametrize(("exc", "status", "type_end"), [
    (JobFailed("The share is gone."), 422, "job-failed"),
    (CsvDataError("not a CSV file"), None, None),
    (PermanentTransferError("POST answered 400"), None, None),
])
def test_exchange_errors_fail_the_job_with_their_problem(runtime, rows, monkeypatch, exc, status, type_end):
    job = _run(runtime, rows, monkeypatch, exc)
    assert job.state == "failed" and job.error == exc.problem() and job.error["detail"] == exc.detail
    if status:
        assert job.error["status"] == status and job.error["type"].endswith(type_end)
    assert job.lease_owner is None and job.attempts == 1


def test_a_bug_fails_the_job_without_leaking_its_message(runtime, rows, monkeypatch):
    job = _run(runtime, rows, monkeypatch, KeyError("secret-token"))
    assert job.state == "failed" and job.error["status"] == 500
    assert job.error["detail"] == "internal error (KeyError)" and "secret" not in str(job.error)


def test_a_full_disk_is_a_507_problem(runtime, rows, monkeypatch):
    job = _run(runtime, rows, monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    assert job.state == "failed" and job.error["status"] == 507 and job.error["type"].endswith("storage-full")


def test_cancellation_ends_the_job_cancelled(runtime, rows, monkeypatch):
    job = _run(runtime, rows, monkeypatch, Cancelled())
    assert job.state == "cancelled" and job.cancel_requested and job.error is None


@pytest.mark.parametrize("exc", [Interrupted(), OperationalError("SELECT 1", {}, Exception("db down"))])
def test_interruptions_leave_the_job_for_the_next_claim(runtime, rows, monkeypatch, exc):
    job = _run(runtime, rows, monkeypatch, exc, state="transforming")
    assert job.state == "transforming" and job.error is None and job.finished_at is None
    assert job.lease_owner is None and job.lease_expires_at is None  # claimable again at once


def test_a_job_failing_during_delivery_keeps_its_state_history(runtime, rows, monkeypatch):
    def deliver_then_fail(ctx):
        ctx.set_state("transforming")
        ctx.set_state("delivering", "delivering to consumer")
        raise PermanentTransferError("consumer answered 400")

    job = _run(runtime, rows, monkeypatch, deliver_then_fail, state="fetching")
    assert job.state == "failed" and set(job.timings) == {"transforming", "delivering"}


def test_a_deleted_job_is_skipped(runtime, rows, monkeypatch):
    monkeypatch.setattr(phases, "run", lambda ctx: pytest.fail("must not run"))
    runner.run_job(runtime, "no-such-job", "me")
