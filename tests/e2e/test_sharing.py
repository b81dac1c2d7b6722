"""Sharing end to end: every producer transport × consumer transport × mode, with exact rows."""
from __future__ import annotations

import gzip

import pytest

from tests.e2e.conftest import audience_by_external, csv_rows, read_rows, register, sha, wait_job
from tests.fakes.protocol_endpoint import ProtocolEndpoint

SOURCE = (
    "email,first_name,country\n"
    "Alice@Example.com ,Alice,FR\n"
    "bob@example.com,Bob,DE\n"
    "not-an-email,Mallory,FR\n"            # rejected: no @
    "ALICE@example.com,Alice2,FR\n"        # duplicate of Alice after normalization
    "carol@example.com,\"Carol, Jr.\",US\n"
)
MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
           {"source": "first_name", "target": "first_name"},
           {"source": "country", "target": "country"}]
EXPECTED = {sha("alice@example.com"): ("Alice", "FR"), sha("bob@example.com"): ("Bob", "DE"),
            sha("carol@example.com"): ("Carol, Jr.", "US")}


def _producer(api, kind, tmp_path):
    if kind == "pull":
        ep = ProtocolEndpoint(producer_dir=tmp_path / "crm", credential="crm-token")
        ep.start()
        ep.write_audience("loyal", SOURCE, name="Loyal customers", description="Bought twice", tags=["vip"])
        reg = register(api, name="CRM", contact_url=ep.url, producer={"transport": "pull"},
                       identifiers=["email"], attributes=["first_name", "country"], credential="crm-token")
        return ep, reg, audience_by_external(api, "loyal")
    reg = register(api, name="CDP", producer={"transport": "push"}, identifiers=["email"],
                   attributes=["first_name", "country"])
    h = {"Authorization": f"Bearer {reg['endpoint_key']}", "Content-Type": "text/csv"}
    r = api.client.put(f"/v1/endpoints/{reg['id']}/audiences/loyal/data", data=SOURCE.encode(), headers=h)
    assert r.status_code == 200, r.json
    assert r.json["rows"] == 5
    return None, reg, audience_by_external(api, "loyal")


def _consumer(api, kind, tmp_path):
    if kind == "push":
        ep = ProtocolEndpoint(consumer_dir=tmp_path / "ads", credential="ads-token")
        ep.start()
        reg = register(api, name="Ads", contact_url=ep.url, identifiers=["email_sha256"],
                       attributes=["first_name", "country"], credential="ads-token",
                       consumer={"transport": "push", "max_rows_per_request": 2, "gzip": True})
        return ep, reg
    reg = register(api, name="Warehouse", identifiers=["email_sha256"], consumer={"transport": "pull"})
    return None, reg


def _pull_and_ack(api, consumer_reg, expected_mode):
    h = {"Authorization": f"Bearer {consumer_reg['endpoint_key']}"}
    ready = api.client.get("/v1/deliveries?state=ready", headers=h).json["items"]
    assert len(ready) == 1
    d = ready[0]
    assert d["mode"] == expected_mode
    data = api.client.get(f"/v1/deliveries/{d['id']}/data", headers=h)
    assert data.status_code == 200 and data.headers["ETag"] == f'"{d["sha256"]}"'
    rows = csv_rows(data.get_data(as_text=True))
    assert len(rows) == d["row_count"]
    r = api.client.post(f"/v1/deliveries/{d['id']}/ack", json={"accepted": len(rows), "rejected": 0}, headers=h)
    assert r.status_code == 200, r.json
    return rows


@pytest.mark.parametrize("producer", ["pull", "push"])
@pytest.mark.parametrize("consumer", ["push", "pull"])
@pytest.mark.parametrize("mode", ["add", "replace", "remove"])
def test_share_matrix(live, tmp_path, producer, consumer, mode):
    api = live
    p_ep, p_reg, aud = _producer(api, producer, tmp_path)
    c_ep, c_reg = _consumer(api, consumer, tmp_path)
    try:
        if c_ep is not None and mode in ("replace", "remove"):
            # the destination already holds an old member and Bob
            c_ep.consumer_file("Loyal").write_text(
                f"email_sha256,first_name,country\n{sha('old@example.com')},Old,IT\n{sha('bob@example.com')},Bob,DE\n")
        r = api.post("/v1/shares", json={"audience_id": aud["id"], "destination_id": c_reg["id"],
                                         "destination_audience": "Loyal", "mapping": MAPPING, "mode": mode,
                                         "reject_threshold": 0.5})
        assert r.status_code == 201, r.json
        share = r.json
        job = wait_job(api, share["last_job_id"])
        counts = job["counts"]
        events = api.get(f"/v1/jobs/{job['id']}/events").json["items"]
        assert job["state"] != "failed", (job["error"], [e["message"] for e in events])
        assert (counts["received"], counts["valid"], counts["rejected"], counts["duplicates"]) == (5, 3, 1, 1)
        if consumer == "pull":
            assert job["state"] == "awaiting_consumer"
            rows = _pull_and_ack(api, c_reg, mode)
            assert {r["email_sha256"]: (r["first_name"], r["country"]) for r in rows} == EXPECTED
            job = wait_job(api, job["id"], until={"partially_succeeded", "succeeded", "failed"})
        else:
            got = {r["email_sha256"]: (r["first_name"], r["country"])
                   for r in read_rows(c_ep.consumer_file("Loyal"))}
            if mode == "add":
                assert got == EXPECTED
            elif mode == "replace":
                assert got == EXPECTED
            else:
                assert got == {sha("old@example.com"): ("Old", "IT")}
            posts = c_ep.requests_to("POST")
            assert [p.header("X-Exchange-Part") for p in posts] == ["1/2", "2/2"]
            assert all(p.header("Content-Encoding") == "gzip" for p in posts)
            assert all(p.header("Authorization") == "Bearer ads-token" for p in posts)
            assert len({p.header("Idempotency-Key") for p in posts}) == 2
            assert all(p.query["mode"] == mode for p in posts)
        assert job["state"] == "partially_succeeded"  # one row was rejected by validation
        assert job["counts"]["delivered"] == 3
        rejects = api.get(f"/v1/jobs/{job['id']}/rejects")
        assert rejects.status_code == 200
        rej = csv_rows(rejects.get_data(as_text=True))
        assert len(rej) == 1 and rej[0]["email"] == "not-an-email" and rej[0]["_line"] == "4"
        assert rej[0]["_reason"]
        states = [e["state"] for e in api.get(f"/v1/jobs/{job['id']}/events").json["items"] if e["kind"] == "state"]
        assert states[0] == "queued" and "transforming" in states and states[-1] == "partially_succeeded"
        if producer == "pull":
            data_calls = p_ep.requests_to("GET", "/audiences/loyal/data")
            assert data_calls and data_calls[0].header("Authorization") == "Bearer crm-token"
            assert data_calls[0].header("X-Exchange-Job-Id") == job["id"]
    finally:
        for ep in (p_ep, c_ep):
            if ep is not None:
                ep.stop()


def test_push_upload_gzip_and_errors(live):
    api = live
    reg = register(api, name="CDP", producer={"transport": "push"}, identifiers=["email"])
    h = {"Authorization": f"Bearer {reg['endpoint_key']}", "Content-Type": "text/csv"}
    url = f"/v1/endpoints/{reg['id']}/audiences/a1/data"
    r = api.client.put(url, data=gzip.compress(SOURCE.encode()), headers={**h, "Content-Encoding": "gzip"})
    assert r.status_code == 200 and r.json["rows"] == 5
    import hashlib
    assert r.json["sha256"] == hashlib.sha256(SOURCE.encode()).hexdigest()
    truncated = gzip.compress(SOURCE.encode())[:-10]
    r = api.client.put(url, data=truncated, headers={**h, "Content-Encoding": "gzip"})
    assert r.status_code == 422 and r.content_type == "application/problem+json"
    r = api.client.put(url, data=b"", headers=h)
    assert r.status_code == 422
    r = api.client.put(url, data=b"\x00\x01\x02binary", headers=h)
    assert r.status_code == 422
    r = api.client.put(url, data=b"a,a\n1,2\n", headers=h)
    assert r.status_code == 422
    r = api.client.put(url, data=b"{}", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 415
    # the first good upload is still the audience's data
    aud = audience_by_external(api, "a1")
    assert aud["size"] == 5
    # another endpoint's key may not upload here
    other = register(api, name="Other", producer={"transport": "push"}, identifiers=["email"])
    r = api.client.put(url, data=SOURCE.encode(), headers={**h, "Authorization": f"Bearer {other['endpoint_key']}"})
    assert r.status_code == 403


def test_identical_reupload_is_not_a_new_version(live):
    api = live
    reg = register(api, name="CDP", producer={"transport": "push"}, identifiers=["email"])
    h = {"Authorization": f"Bearer {reg['endpoint_key']}", "Content-Type": "text/csv"}
    url = f"/v1/endpoints/{reg['id']}/audiences/a1/data"
    first = api.client.put(url, data=SOURCE.encode(), headers=h).json
    again = api.client.put(url, data=SOURCE.encode(), headers=h).json
    assert again["unchanged"] is True and again["version"] == first["version"]
    changed = api.client.put(url, data=(SOURCE + "dan@example.com,Dan,FR\n").encode(), headers=h).json
    assert changed["unchanged"] is False and changed["version"] != first["version"] and changed["rows"] == 6
