"""Sharing under faults: bad data, failing consumers and producers, restarts. Exact rows and counts."""
from __future__ import annotations

import gzip
import time

from exchange.app import create_app
from exchange.runtime import Runtime
from tests.e2e.conftest import audience_by_external, read_rows, register, sha, wait_job
from tests.fakes.protocol_endpoint import Fault, ProtocolEndpoint

GOOD = "email,country\na@example.com,FR\nb@example.com,DE\nc@example.com,US\n"
MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
           {"source": "country", "target": "country"}]
HASHES = {sha("a@example.com"), sha("b@example.com"), sha("c@example.com")}


def _setup(api, tmp_path, *, source=GOOD, consumer_kw=None, producer_kw=None):
    prod = ProtocolEndpoint(producer_dir=tmp_path / "p", credential="pt", **(producer_kw or {}))
    cons = ProtocolEndpoint(consumer_dir=tmp_path / "c", credential="ct", **(consumer_kw or {}))
    prod.start()
    cons.start()
    prod.write_audience("aud", source)
    p = register(api, name="P", contact_url=prod.url, producer={"transport": "pull"}, identifiers=["email"],
                 attributes=["country"], credential="pt")
    c = register(api, name="C", contact_url=cons.url, identifiers=["email_sha256"], attributes=["country"],
                 credential="ct", consumer={"transport": "push", "max_rows_per_request": 2})
    return prod, cons, p, c, audience_by_external(api, "aud")


def _share(api, aud, c, **kw):
    body = {"audience_id": aud["id"], "destination_id": c["id"], "destination_audience": "D", "mapping": MAPPING,
            "mode": "add", **kw}
    r = api.post("/v1/shares", json=body)
    assert r.status_code == 201, r.json
    return r.json


def _members(cons):
    return {r["email_sha256"] for r in read_rows(cons.consumer_file("D"))}


def test_consumer_500_then_200_is_retried_once(live, tmp_path):
    prod, cons, p, c, aud = _setup(live, tmp_path)
    with prod, cons:
        cons.script("POST", "/audiences/D/data", [Fault(status=500), None, None])
        job = wait_job(live, _share(live, aud, c)["last_job_id"])
        assert job["state"] == "succeeded", job
        assert _members(cons) == HASHES
        posts = cons.requests_to("POST")
        assert [p.status for p in posts] == [500, 200, 200]
        # the retry of part 1 carried the same idempotency key as the failed attempt
        assert posts[0].header("Idempotency-Key") == posts[1].header("Idempotency-Key")
        assert job["counts"]["delivered"] == 3 and job["counts"]["acknowledged"] == 3


def test_consumer_429_retry_after_is_a_wait(live, tmp_path):
    prod, cons, p, c, aud = _setup(live, tmp_path)
    with prod, cons:
        cons.script("POST", "/audiences/D/data", [Fault(status=429, headers={"Retry-After": "1"}), None, None])
        job = wait_job(live, _share(live, aud, c)["last_job_id"])
        assert job["state"] == "succeeded"
        posts = cons.requests_to("POST")
        assert posts[1].received_at - posts[0].received_at >= 0.9
        events = [e["message"] for e in live.get(f"/v1/jobs/{job['id']}/events").json["items"]]
        assert any("wait" in m for m in events)


def test_consumer_permanent_4xx_fails_job(live, tmp_path):
    prod, cons, p, c, aud = _setup(live, tmp_path)
    with prod, cons:
        cons.script("POST", "/audiences/D/data", [Fault(status=400)])
        job = wait_job(live, _share(live, aud, c)["last_job_id"])
        assert job["state"] == "failed"
        assert job["error"]["status"] >= 400 and job["error"]["detail"]
        assert len(cons.requests_to("POST")) == 1  # not retried


def test_consumer_drops_connection_mid_upload(live, tmp_path):
    prod, cons, p, c, aud = _setup(live, tmp_path)
    with prod, cons:
        cons.script("POST", "/audiences/D/data", [Fault(drop_connection=True), None, None])
        job = wait_job(live, _share(live, aud, c)["last_job_id"])
        assert job["state"] == "succeeded"
        assert _members(cons) == HASHES


def test_producer_500_then_200(live, tmp_path):
    prod, cons, p, c, aud = _setup(live, tmp_path)
    with prod, cons:
        prod.script("GET", "/audiences/aud/data", [Fault(status=503, headers={"Retry-After": "0"}), None])
        job = wait_job(live, _share(live, aud, c)["last_job_id"])
        assert job["state"] == "succeeded" and _members(cons) == HASHES


def test_producer_202_forever_fails_after_bound(tmp_path):
    from exchange.db import upgrade
    from tests.conftest import make_config, new_account

    cfg = make_config(tmp_path, source_wait_seconds=2)
    upgrade(cfg.database_url)
    rt = Runtime(cfg)
    app = create_app(runtime=rt)
    rt.executor.start()
    api = new_account(rt, app.test_client())
    try:
        prod, cons, p, c, aud = _setup(api, tmp_path)
        with prod, cons:
            prod.script("GET", "/audiences/aud/data", [Fault(status=202, headers={"Retry-After": "1"}, forever=True)])
            job_id = _share(api, aud, c)["last_job_id"]
            seen = set()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                state = api.get(f"/v1/jobs/{job_id}").json["state"]
                seen.add(state)
                if state == "failed":
                    break
                time.sleep(0.05)
            job = api.get(f"/v1/jobs/{job_id}").json
            assert "awaiting_source" in seen
            assert job["state"] == "failed" and "preparing" in job["error"]["detail"]
            assert cons.requests_to("POST") == []
    finally:
        rt.shutdown()


def test_producer_304_means_no_change(live, tmp_path):
    prod, cons, p, c, aud = _setup(live, tmp_path)
    with prod, cons:
        share = _share(live, aud, c)
        first = wait_job(live, share["last_job_id"])
        assert first["state"] == "succeeded"
        second = live.post(f"/v1/shares/{share['id']}/run").json
        job = wait_job(live, second["id"])
        assert job["state"] == "succeeded" and job["counts"]["delivered"] == 0
        assert len(cons.requests_to("POST")) == 2  # only the first job's two parts
        assert prod.requests_to("GET", "/audiences/aud/data")[-1].status == 304


def _fails_with(live, tmp_path, raw: bytes, headers=None, word=""):
    prod, cons, p, c, aud = _setup(live, tmp_path)
    with prod, cons:
        prod.serve_raw("aud", raw, headers=headers or {})
        job = wait_job(live, _share(live, aud, c)["last_job_id"])
        assert job["state"] == "failed", job
        assert word.lower() in job["error"]["detail"].lower()
        assert cons.requests_to("POST") == []


def test_not_csv_fails(live, tmp_path):
    _fails_with(live, tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00binary", word="")


def test_missing_header_fails(live, tmp_path):
    _fails_with(live, tmp_path, b"", word="")


def test_truncated_gzip_fails(live, tmp_path):
    _fails_with(live, tmp_path, gzip.compress(GOOD.encode())[:-12], headers={"Content-Encoding": "gzip"},
                word="gzip")


def test_gzip_source_accepted(live, tmp_path):
    prod, cons, p, c, aud = _setup(live, tmp_path)
    with prod, cons:
        prod.serve_raw("aud", gzip.compress(GOOD.encode()), headers={"Content-Encoding": "gzip"})
        job = wait_job(live, _share(live, aud, c)["last_job_id"])
        assert job["state"] == "succeeded" and _members(cons) == HASHES


def test_invalid_utf8_row_is_rejected_not_fatal(live, tmp_path):
    raw = GOOD.encode() + b"d\xff@example.com,FR\n"
    prod, cons, p, c, aud = _setup(live, tmp_path)
    with prod, cons:
        prod.serve_raw("aud", raw)
        job = wait_job(live, _share(live, aud, c, reject_threshold=0.5)["last_job_id"])
        assert job["state"] == "partially_succeeded"
        assert job["counts"]["rejected"] == 1 and _members(cons) == HASHES


def test_malformed_rows_rejected_with_line_numbers(live, tmp_path):
    source = GOOD + "x@example.com,FR,extra\nbad-email,FR\n"
    prod, cons, p, c, aud = _setup(live, tmp_path, source=source)
    with prod, cons:
        job = wait_job(live, _share(live, aud, c, reject_threshold=0.5)["last_job_id"])
        assert job["state"] == "partially_succeeded"
        rejects = live.get(f"/v1/jobs/{job['id']}/rejects").get_data(as_text=True)
        assert ",5," in rejects.replace('"', "") or "5" in rejects
        assert job["counts"]["rejected"] == 2 and _members(cons) == HASHES


def test_reject_threshold_fails_job_and_delivers_nothing(live, tmp_path):
    source = "email,country\nbad1,FR\nbad2,FR\na@example.com,FR\n"
    prod, cons, p, c, aud = _setup(live, tmp_path, source=source)
    with prod, cons:
        job = wait_job(live, _share(live, aud, c)["last_job_id"])
        assert job["state"] == "failed" and "threshold" in job["error"]["detail"]
        assert cons.requests_to("POST") == []
        assert live.get(f"/v1/jobs/{job['id']}/rejects").status_code == 200


def test_consumer_202_then_ack(live, tmp_path):
    prod, cons, p, c, aud = _setup(live, tmp_path, consumer_kw={"push_202": True})
    with prod, cons:
        job = wait_job(live, _share(live, aud, c)["last_job_id"])
        assert job["state"] == "awaiting_consumer"
        deliveries = live.get("/v1/deliveries").json["items"]
        assert len(deliveries) == 1 and deliveries[0]["state"] == "awaiting_ack"
        h = {"Authorization": f"Bearer {c['endpoint_key']}"}
        owed = live.client.get("/v1/deliveries?state=awaiting_ack", headers=h).json["items"]
        assert [d["job_id"] for d in owed] == [job["id"]]  # what the consumer must acknowledge
        r = live.client.post(f"/v1/deliveries/{deliveries[0]['id']}/ack", json={"accepted": 3, "rejected": 0},
                             headers=h)
        assert r.status_code == 200
        job = wait_job(live, job["id"], until={"succeeded", "failed"})
        assert job["state"] == "succeeded" and job["counts"]["acknowledged"] == 3
        assert live.client.get("/v1/deliveries?state=awaiting_ack", headers=h).json["items"] == []


def test_cancel_queued_and_finished(live, tmp_path):
    prod, cons, p, c, aud = _setup(live, tmp_path)
    with prod, cons:
        prod.script("GET", "/audiences/aud/data", [Fault(delay=2.0)])
        job_id = _share(live, aud, c)["last_job_id"]
        time.sleep(0.3)
        r = live.post(f"/v1/jobs/{job_id}/cancel")
        assert r.status_code == 200
        job = wait_job(live, job_id)
        assert job["state"] == "cancelled"
        assert live.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
        assert cons.requests_to("POST") == []


def test_restart_mid_job_completes_once(tmp_path):
    """The exchange stops while a delivery is half done; a new process finishes it exactly once."""
    from exchange.db import upgrade
    from tests.conftest import make_config, new_account

    cfg = make_config(tmp_path, workers=1)
    upgrade(cfg.database_url)
    rt = Runtime(cfg)
    app = create_app(runtime=rt)
    rt.executor.start()
    api = new_account(rt, app.test_client())
    prod, cons, p, c, aud = _setup(api, tmp_path)
    with prod, cons:
        # part 2 is slow: the exchange is stopped while it waits, after part 1 was accepted
        cons.script("POST", "/audiences/D/data", [None, Fault(delay=3.0, status=503), None])
        job_id = _share(api, aud, c)["last_job_id"]
        deadline = time.monotonic() + 10
        while len(cons.requests_to("POST")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        rt.executor._stop.set()  # the process is going down
        rt.shutdown()
        rt2 = Runtime(cfg)
        api.client = create_app(runtime=rt2).test_client()
        from exchange.models import Job
        with rt2.db.session() as s:
            s.get(Job, job_id).lease_expires_at = None  # the old process is gone: its lease lapses
        rt2.executor.start()
        try:
            job = wait_job(api, job_id, timeout=30)
            assert job["state"] == "succeeded", job
            assert _members(cons) == HASHES
            keys = [r.header("Idempotency-Key") for r in cons.requests_to("POST") if r.status == 200]
            assert len(keys) == len(set(keys)) == 2  # each part accepted exactly once
        finally:
            rt2.shutdown()
