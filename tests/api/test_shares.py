"""Share validation against the audience and destination, and share lifecycle operations."""
from __future__ import annotations

import pytest

MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]}]


@pytest.fixture
def setup(api):
    p = api.post("/v1/endpoints", json={"name": "CDP", "producer": {"transport": "push"},
                                        "identifiers": ["email"], "attributes": ["country"]}).json
    api.client.put(f"/v1/endpoints/{p['id']}/audiences/loyal/data", data=b"email,country\na@x.io,FR\n",
                   headers={"Authorization": f"Bearer {p['endpoint_key']}", "Content-Type": "text/csv"})
    c = api.post("/v1/endpoints", json={"name": "Ads", "contact_url": "http://127.0.0.1:9/x",
                                        "identifiers": ["email_sha256"], "attributes": ["country"],
                                        "consumer": {"transport": "push", "replace": False}}).json
    aud = api.get("/v1/audiences").json["items"][0]
    return {"aud": aud["id"], "dest": c["id"], "producer": p["id"]}


def _body(setup, **kw):
    return {"audience_id": setup["aud"], "destination_id": setup["dest"], "mapping": MAPPING,
            "schedule": {"type": "interval", "every": "PT6H"}, **kw}


def test_create_get_update_pause_resume_delete(api, setup):
    r = api.post("/v1/shares", json=_body(setup))
    assert r.status_code == 201, r.json
    share = r.json
    assert share["delta"] is True  # default on for recurring shares
    assert share["next_run_at"] and share["schedule_description"]
    assert share["destination_audience"] == "loyal"
    assert api.get(f"/v1/shares/{share['id']}").json["mode"] == "add"
    r = api.patch(f"/v1/shares/{share['id']}", json={"mode": "replace", "reject_threshold": 0.2})
    assert r.status_code == 200 and r.json["mode"] == "replace"
    paused = api.post(f"/v1/shares/{share['id']}/pause").json
    assert paused["status"] == "paused" and paused["next_run_at"] is None
    resumed = api.post(f"/v1/shares/{share['id']}/resume").json
    assert resumed["status"] == "active" and resumed["next_run_at"]
    job = api.post(f"/v1/shares/{share['id']}/run")
    assert job.status_code == 202 and job.json["state"] == "queued"
    assert api.get(f"/v1/jobs?share_id={share['id']}").json["total"] == 1
    assert api.delete(f"/v1/shares/{share['id']}").status_code == 204
    assert api.get(f"/v1/shares/{share['id']}").status_code == 404
    assert api.get(f"/v1/jobs/{job.json['id']}").json["state"] == "cancelled"


@pytest.mark.parametrize("patch,field", [
    ({"mapping": [{"source": "phone", "target": "email_sha256", "transform": ["sha256"]}], }, "mapping.0.source"),
    ({"mapping": [{"source": "email", "target": "email_sha256", "transform": ["rot13"]}]}, "mapping.0.transform"),
    ({"mapping": [{"source": "country", "target": "country"}]}, "mapping"),
    ({"mapping": [{"source": "email", "target": "maid"}]}, "mapping"),
    ({"mapping": []}, "mapping"),
    ({"mode": "upsert"}, "mode"),
    ({"mode": "remove", "delta": True}, "delta"),
    ({"schedule": {"type": "cron", "cron": "61 * * * *"}}, "schedule.cron"),
    ({"schedule": {"type": "cron", "cron": "0 6 * * *", "timezone": "Mars/Olympus"}}, "schedule.timezone"),
    ({"schedule": {"type": "interval", "every": "6 hours"}}, "schedule.every"),
    ({"schedule": {"type": "at", "at": "2030-01-01T10:00:00"}}, "schedule.at"),
    ({"schedule": {"type": "weekly"}}, "schedule.type"),
    ({"reject_threshold": 2}, "reject_threshold"),
    ({"default_country": "france"}, "default_country"),
    ({"audience_id": "0" * 32}, "audience_id"),
    ({"destination_id": "0" * 32}, "destination_id"),
    ({"extra": True}, "extra"),
])
def test_create_validation(api, setup, patch, field):
    r = api.post("/v1/shares", json=_body(setup, **patch))
    assert r.status_code == 422, r.json
    assert r.content_type == "application/problem+json"
    assert field in r.json["errors"], r.json["errors"]
    assert api.get("/v1/shares").json["total"] == 0


def test_destination_must_be_a_consumer(api, setup):
    r = api.post("/v1/shares", json=_body(setup, destination_id=setup["producer"]))
    assert r.status_code == 422 and "destination_id" in r.json["errors"]


def test_destination_disabled(api, setup):
    api.post(f"/v1/endpoints/{setup['dest']}/disable")
    r = api.post("/v1/shares", json=_body(setup))
    assert r.status_code == 422 and "destination_id" in r.json["errors"]


def test_other_accounts_share_and_ids(api, other_api, setup):
    share = api.post("/v1/shares", json=_body(setup)).json
    for method, url in [("get", f"/v1/shares/{share['id']}"), ("patch", f"/v1/shares/{share['id']}"),
                        ("delete", f"/v1/shares/{share['id']}"), ("post", f"/v1/shares/{share['id']}/run"),
                        ("post", f"/v1/shares/{share['id']}/pause"), ("post", f"/v1/shares/{share['id']}/resume")]:
        kw = {"json": {"mode": "add"}} if method == "patch" else {}
        assert getattr(other_api, method)(url, **kw).status_code == 404, (method, url)
    # another account's audience and destination are unknown references
    r = other_api.post("/v1/shares", json=_body(setup))
    assert r.status_code == 422 and {"audience_id", "destination_id"} & set(r.json["errors"])
    assert other_api.get("/v1/shares").json["total"] == 0


def test_jobs_filters_and_isolation(api, other_api, setup):
    share = api.post("/v1/shares", json=_body(setup)).json
    job = api.post(f"/v1/shares/{share['id']}/run").json
    assert api.get("/v1/jobs?state=queued").json["total"] == 1
    assert api.get("/v1/jobs?state=failed").json["total"] == 0
    assert api.get("/v1/jobs?state=bogus").status_code == 422
    assert other_api.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert other_api.get(f"/v1/jobs/{job['id']}/events").status_code == 404
    assert other_api.get(f"/v1/jobs/{job['id']}/rejects").status_code == 404
    assert other_api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 404
    assert other_api.get("/v1/jobs").json["total"] == 0
    cancelled = api.post(f"/v1/jobs/{job['id']}/cancel").json
    assert cancelled["state"] == "cancelled"
    events = api.get(f"/v1/jobs/{job['id']}/events").json["items"]
    assert [e["state"] for e in events if e["kind"] == "state"] == ["queued", "cancelled"]
