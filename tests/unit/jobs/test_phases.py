"""The phases: what a job records decides what runs on resume; fetch, plan and delivery dispatch."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest

from exchange import endpoint_client
from exchange.jobs import phases
from exchange.jobs.context import Context, JobFailed
from exchange.jobs.progress import JobProgress, Operation, read_progress
from exchange.models import Audience, Endpoint, Job, Share, utcnow
from exchange.transfer.parts import csv_parts
from tests.unit.jobs.conftest import add_job


def _ctx(runtime, job_id):
    """A context whose worker ("me") holds the job's lease, as after a claim."""
    with runtime.db.session() as s:
        job = s.get(Job, job_id)
        job.lease_owner, job.lease_expires_at = "me", utcnow() + timedelta(minutes=1)
    return Context(runtime, job_id, "me")


def _set_progress(runtime, job_id, progress: JobProgress, state="fetching"):
    with runtime.db.session() as s:
        job = s.get(Job, job_id)
        job.progress, job.state = progress.to_json(), state


@pytest.fixture
def calls(monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(phases, "fetch", lambda ctx: seen.append("fetch") or "fetched")
    monkeypatch.setattr(phases, "transform", lambda ctx: seen.append("transform"))
    monkeypatch.setattr(phases, "plan", lambda ctx: seen.append("plan"))
    monkeypatch.setattr(phases, "deliver", lambda ctx: seen.append("deliver"))
    return seen


@pytest.mark.parametrize(("progress", "expected"), [
    (JobProgress(), ["fetch", "transform", "plan", "deliver"]),
    (JobProgress(source_key="s"), ["transform", "plan", "deliver"]),
    (JobProgress(source_key="s", output_key="o"), ["plan", "deliver"]),
    (JobProgress(source_key="s", output_key="o", ops=(Operation("add", "o", 1),)), ["deliver"]),
    (JobProgress(source_key="s", output_key="o", ops=()), ["deliver"]),  # an empty plan is a plan
])
def test_recorded_phases_are_skipped_on_resume(runtime, rows, calls, progress, expected):
    job_id = add_job(runtime, rows.share_id)
    _set_progress(runtime, job_id, progress)
    phases.run(_ctx(runtime, job_id))
    assert calls == expected


def test_an_unchanged_source_ends_the_run_after_fetch(runtime, rows, calls, monkeypatch):
    monkeypatch.setattr(phases, "fetch", lambda ctx: calls.append("fetch") or "unchanged")
    phases.run(_ctx(runtime, add_job(runtime, rows.share_id)))
    assert calls == ["fetch"]


def test_a_job_awaiting_its_consumer_does_nothing(runtime, rows, calls):
    job_id = add_job(runtime, rows.share_id)
    _set_progress(runtime, job_id, JobProgress(), state="awaiting_consumer")
    phases.run(_ctx(runtime, job_id))
    assert calls == []


def test_a_disabled_destination_fails_the_job(runtime, rows, calls):
    with runtime.db.session() as s:
        s.get(Endpoint, rows.consumer_id).status = "disabled"
    with pytest.raises(JobFailed, match="disabled"):
        phases.run(_ctx(runtime, add_job(runtime, rows.share_id)))
    assert calls == []


def test_fetch_from_a_push_producer_uses_the_upload(runtime, rows):
    job_id = add_job(runtime, rows.share_id)
    with pytest.raises(JobFailed, match="not uploaded"):
        phases.fetch(_ctx(runtime, job_id))
    with runtime.db.session() as s:
        aud = s.get(Audience, rows.audience_id)
        aud.data_key, aud.version = "audiences/p/loyal/v1.csv", "v1"
    assert phases.fetch(_ctx(runtime, job_id)) == "fetched"
    with runtime.db.session() as s:
        job = s.get(Job, job_id)
        assert job.state == "fetching" and job.source_version == "v1"
        assert read_progress(job).source_key == "audiences/p/loyal/v1.csv"


def _planned(runtime, rows, *, delta: bool, body: bytes):
    job_id = add_job(runtime, rows.share_id)
    runtime.blobs.put_bytes(f"jobs/{job_id}/output.csv", body)
    with runtime.db.session() as s:
        s.get(Share, rows.share_id).delta = delta
    _set_progress(runtime, job_id, JobProgress(source_key="s", output_key=f"jobs/{job_id}/output.csv",
                                               columns=("email_sha256",), output_rows=body.count(b"\n") - 1,
                                               key_columns=("email_sha256",)), state="transforming")
    phases.plan(_ctx(runtime, job_id))
    with runtime.db.session() as s:
        job = s.get(Job, job_id)
        return job_id, read_progress(job), dict(job.counts)


def test_plan_sends_the_whole_output_without_a_snapshot(runtime, rows):
    job_id, progress, counts = _planned(runtime, rows, delta=False, body=b"email_sha256\naa\nbb\ncc\n")
    assert progress.operations == (Operation("add", f"jobs/{job_id}/output.csv", 3),)
    assert progress.done == {} and counts["added"] == 3 and counts["removed"] == 0


def test_plan_diffs_against_the_snapshot_for_a_delta(runtime, rows):
    job_id, progress, counts = _planned(runtime, rows, delta=True, body=b"email_sha256\naa\nbb\n")
    assert progress.operations == (Operation("add", f"jobs/{job_id}/adds.csv", 2),)  # no snapshot yet: all new
    assert runtime.blobs.exists(f"jobs/{job_id}/adds.csv") and counts["added"] == 2


@pytest.mark.parametrize(("kind", "expected"), [
    ("push", ["push", "finish"]), ("pull", ["pull"]), ("push-202", ["push"]),
])
def test_delivery_goes_by_the_destinations_kind(runtime, rows, monkeypatch, kind, expected):
    seen: list[str] = []
    monkeypatch.setattr(phases, "deliver_push", lambda ctx: seen.append("push") or kind != "push-202")
    monkeypatch.setattr(phases, "deliver_pull", lambda ctx: seen.append("pull"))
    monkeypatch.setattr(phases, "deliver_adapter", lambda ctx: seen.append("adapter"))
    monkeypatch.setattr(phases, "finish", lambda ctx: seen.append("finish"))
    with runtime.db.session() as s:
        s.get(Endpoint, rows.consumer_id).consumer_transport = "pull" if kind == "pull" else "push"
    job_id = add_job(runtime, rows.share_id, state="transforming")
    phases.deliver(_ctx(runtime, job_id))
    assert seen == expected
    with runtime.db.session() as s:
        assert s.get(Job, job_id).state == "delivering"


# ---------------------------------------------------------------- parts and answers (no database)
def test_parts_keep_quoted_newlines_inside_one_record():
    data = b'email,note\r\na@x,"two\r\nlines"\r\nb@x,plain\r\nc@x,"say ""hi"""\r\n'
    parts = list(csv_parts(io.BytesIO(data), 2))
    assert [rows for _, rows in parts] == [2, 1]
    assert parts[0][0] == b'email,note\r\na@x,"two\r\nlines"\r\nb@x,plain\r\n'
    assert parts[1][0] == b'email,note\r\nc@x,"say ""hi"""\r\n'


def test_parts_of_a_header_only_file_and_a_quoted_header():
    assert list(csv_parts(io.BytesIO(b"email\n"), 5)) == []
    parts = list(csv_parts(io.BytesIO(b'"e\nmail"\n1\n2\n3\n'), 2))
    assert [b for b, _ in parts] == [b'"e\nmail"\n1\n2\n', b'"e\nmail"\n3\n']
    with pytest.raises(ValueError):
        list(csv_parts(io.BytesIO(b"a\n1\n"), 0))


class _Resp:
    def __init__(self, status, body):
        self.status_code, self._body = status, body

    def json(self):
        if isinstance(self._body, Exception):
            raise self._body
        return self._body


@pytest.mark.parametrize(("status", "body", "expected"), [
    (200, {"accepted": 7, "rejected": 3}, endpoint_client.PartAnswer(7, 3)),
    (200, ValueError("not JSON"), endpoint_client.PartAnswer(10, 0)),  # no counts: all accepted
    (200, ["unexpected"], endpoint_client.PartAnswer(10, 0)),
    (202, {}, endpoint_client.PartAnswer(0, 0, pending=True)),
])
def test_part_answers(status, body, expected):
    assert endpoint_client.part_answer(_Resp(status, body), 10) == expected
