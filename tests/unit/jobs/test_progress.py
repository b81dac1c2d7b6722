"""JobProgress: one typed record, stored as versioned JSON; rows written before the version still read."""
from __future__ import annotations

import pytest

from exchange.jobs.progress import VERSION, JobProgress, Operation

OLD_SHAPE = {  # what jobs stored before JobProgress (no "v", "_state_since", string part indexes)
    "_state_since": "2026-12-04T10:00:00+00:00", "source_key": "jobs/j/source.csv", "source_gzip": True,
    "output_key": "jobs/j/output.csv", "columns": ["email_sha256", "tier"], "output_rows": 5,
    "output_sha256": "ab" * 32, "key_columns": ["email_sha256"],
    "ops": [{"mode": "add", "key": "jobs/j/adds.csv", "rows": 3}, {"mode": "remove", "key": "jobs/j/removes.csv",
                                                                   "rows": 2}],
    "done": {"0": 2}, "pending_ack": True,
}


def test_the_old_shape_reads_into_the_typed_record():
    p = JobProgress.from_json(OLD_SHAPE)
    assert p.state_since == "2026-12-04T10:00:00+00:00"
    assert (p.source_key, p.source_gzip, p.output_rows) == ("jobs/j/source.csv", True, 5)
    assert p.operations == (Operation("add", "jobs/j/adds.csv", 3), Operation("remove", "jobs/j/removes.csv", 2))
    assert p.done == {0: 2} and p.pending_ack and p.planned
    assert p.columns == ("email_sha256", "tier") and p.key_columns == ("email_sha256",)


def test_round_trip_is_versioned_and_stable():
    p = JobProgress.from_json(OLD_SHAPE)
    stored = p.to_json()
    assert stored["v"] == VERSION and "_state_since" not in stored and stored["done"] == {"0": 2}
    assert JobProgress.from_json(stored) == p
    assert stored["ops"][0] == {"mode": "add", "key": "jobs/j/adds.csv", "rows": 3}  # what the web page reads


def test_an_empty_job_has_nothing_planned_and_stores_only_the_version():
    p = JobProgress.from_json({})
    assert not p.planned and p.operations == () and p.source_key is None
    assert p.to_json() == {"v": VERSION}
    assert JobProgress.from_json(None) == p


def test_an_empty_plan_is_still_a_plan():
    p = JobProgress(ops=())
    assert p.planned and JobProgress.from_json(p.to_json()).planned


def test_a_newer_version_is_refused_rather_than_misread():
    with pytest.raises(ValueError, match="newer"):
        JobProgress.from_json({"v": VERSION + 1})


def test_with_changes_one_field_and_keeps_the_rest():
    p = JobProgress.from_json(OLD_SHAPE).with_(done={0: 2, 1: 1})
    assert p.done == {0: 2, 1: 1} and p.output_key == "jobs/j/output.csv"
