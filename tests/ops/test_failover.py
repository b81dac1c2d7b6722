"""A lapsed lease taken over is an event naming both workers; the dead time is counted apart (issue 18 §3)."""
from __future__ import annotations

from datetime import datetime, timedelta

from exchange.jobs.executor import claim_next, renew_lease
from exchange.jobs.progress import read_progress, update_progress
from exchange.models import Job, utcnow
from tests.e2e.conftest import audience_by_external, register
from tests.e2e.test_deliveries import MAPPING, SOURCE


def _queued_job(api) -> str:
    p = register(api, name="CDP", producer={"transport": "push"}, identifiers=["email"], attributes=["country"])
    api.client.put(f"/v1/endpoints/{p['id']}/audiences/a/data", data=SOURCE.encode(),
                   headers={"Authorization": f"Bearer {p['endpoint_key']}", "Content-Type": "text/csv"})
    c = register(api, name="Warehouse", identifiers=["email_sha256"], consumer={"transport": "pull"})
    share = api.post("/v1/shares", json={"audience_id": audience_by_external(api, "a")["id"],
                                         "destination_id": c["id"], "mapping": MAPPING}).json
    return share["last_job_id"]


def test_takeover_is_an_event_and_lost_time_is_apart(runtime, api):
    assert runtime.config.lease_seconds == 10  # the default: renewed every ~3 s, failover well under 20 s
    job_id = _queued_job(api)
    assert claim_next(runtime, "hostA:111:aaaaaa") == job_id
    shown = api.get(f"/v1/jobs/{job_id}").json
    assert shown["worker"] == "hostA:111:aaaaaa" and shown["heartbeat_at"]
    assert renew_lease(runtime, job_id, "hostA:111:aaaaaa")
    with runtime.db.session() as s:  # worker A dies mid-transform: no more heartbeats for 12 s
        job = s.get(Job, job_id)
        job.state = "transforming"
        update_progress(job, state_since=(utcnow() - timedelta(seconds=13)).isoformat())
        job.heartbeat_at = utcnow() - timedelta(seconds=12)
        job.lease_expires_at = utcnow() - timedelta(seconds=2)
    assert claim_next(runtime, "hostB:222:bbbbbb") == job_id
    shown = api.get(f"/v1/jobs/{job_id}").json
    assert shown["worker"] == "hostB:222:bbbbbb"
    assert 11.5 <= shown["timings"]["lost"] <= 14
    [takeover] = [e for e in api.get(f"/v1/jobs/{job_id}/events").json["items"] if e["kind"] == "warning"]
    assert "worker hostA:111:aaaaaa stopped renewing its lease" in takeover["message"]
    assert "taken over by hostB:222:bbbbbb" in takeover["message"]
    data = takeover["data"]
    assert data["lost_worker"] == "hostA:111:aaaaaa" and data["new_worker"] == "hostB:222:bbbbbb"
    with runtime.db.session() as s:  # the transform's own clock skips the dead time
        since = read_progress(s.get(Job, job_id)).state_since
    assert abs((utcnow() - datetime.fromisoformat(since)).total_seconds() - 1) < 1.5
    # the old holder can no longer renew: it stops at its next check
    assert not renew_lease(runtime, job_id, "hostA:111:aaaaaa")
    # a normal release is not a takeover
    with runtime.db.session() as s:
        job = s.get(Job, job_id)
        job.lease_owner = None
    assert claim_next(runtime, "hostC:333:cccccc") == job_id
    assert len([e for e in api.get(f"/v1/jobs/{job_id}/events").json["items"] if e["kind"] == "warning"]) == 1
