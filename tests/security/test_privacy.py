"""Privacy: account export, account erasure, files deleted with their endpoint, retention."""
from __future__ import annotations

import json
from datetime import timedelta

from exchange.jobs.retention import purge_expired
from exchange.models import Job, utcnow
from tests.e2e.conftest import audience_by_external, register, wait_job

MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]}]


def _share_done(api):
    p = register(api, name="CDP", producer={"transport": "push"}, identifiers=["email"], credential="cred-XYZ-123")
    api.client.put(f"/v1/endpoints/{p['id']}/audiences/a/data", data=b"email\na@x.io\nbad\n",
                   headers={"Authorization": f"Bearer {p['endpoint_key']}", "Content-Type": "text/csv"})
    c = register(api, name="Wh", identifiers=["email_sha256"], consumer={"transport": "pull"})
    share = api.post("/v1/shares", json={"audience_id": audience_by_external(api, "a")["id"],
                                         "destination_id": c["id"], "mapping": MAPPING,
                                         "reject_threshold": 0.9}).json
    job = wait_job(api, share["last_job_id"])
    return p, c, share, job


def _blob_keys(rt) -> list[str]:
    return [e[0] for e in rt.blobs.list("")]


def test_export_has_everything_but_secrets(live):
    p, c, share, job = _share_done(live)
    r = live.get("/v1/account/export")
    assert r.status_code == 200
    data = r.json
    assert {e["id"] for e in data["endpoints"]} == {p["id"], c["id"]}
    assert [s["id"] for s in data["shares"]] == [share["id"]]
    assert [j["id"] for j in data["jobs"]] == [job["id"]]
    assert data["audiences"][0]["external_id"] == "a" and data["audit"]
    text = json.dumps(data)
    assert "cred-XYZ-123" not in text and p["endpoint_key"] not in text and "secret_hash" not in text


def test_erase_account(live):
    p, c, share, job = _share_done(live)
    assert any(k.startswith(f"jobs/{job['id']}/") for k in _blob_keys(live.rt))
    r = live.post("/v1/account/erase", json={"confirm": "wrong"})
    assert r.status_code == 422 and "confirm" in r.json["errors"]
    r = live.post("/v1/account/erase", json={"confirm": "Acme"})
    assert r.status_code == 200, r.json
    assert r.json["endpoints"] == 2 and r.json["jobs"] == 1 and r.json["blobs"] >= 3
    assert _blob_keys(live.rt) == []
    assert live.get("/v1/endpoints").status_code == 401  # the keys are gone too


def test_deleting_endpoint_deletes_its_files(live):
    p, c, share, job = _share_done(live)
    assert any(k.startswith(f"audiences/{p['id']}/") for k in _blob_keys(live.rt))
    assert live.delete(f"/v1/endpoints/{p['id']}").status_code == 204
    keys = _blob_keys(live.rt)
    assert not any(k.startswith(f"audiences/{p['id']}/") or k.startswith(f"jobs/{job['id']}/") for k in keys)
    assert live.get(f"/v1/shares/{share['id']}").status_code == 404


def test_retention_purges_old_artifacts(live):
    p, c, share, job = _share_done(live)
    h = {"Authorization": f"Bearer {c['endpoint_key']}"}
    d = live.client.get("/v1/deliveries", headers=h).json["items"][0]
    live.client.post(f"/v1/deliveries/{d['id']}/ack", json={"accepted": 1}, headers=h)
    assert live.get(f"/v1/jobs/{job['id']}/rejects").status_code == 200
    assert purge_expired(live.rt) == 0  # too young
    with live.rt.db.session() as s:
        s.get(Job, job["id"]).finished_at = utcnow() - timedelta(days=live.rt.config.retention_days + 1)
    assert purge_expired(live.rt) == 1
    assert not any(k.startswith(f"jobs/{job['id']}/") for k in _blob_keys(live.rt))
    r = live.get(f"/v1/jobs/{job['id']}/rejects")
    assert r.status_code == 404 and "retention" in r.json["detail"]
    # the current data of the audience is kept, however old
    assert any(k.startswith(f"audiences/{p['id']}/") for k in _blob_keys(live.rt))
