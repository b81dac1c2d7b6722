"""PULL consumer deliveries: Range, ETag, acks, deadlines and endpoint-key scoping; webhooks."""
from __future__ import annotations

import hashlib
import json
import threading

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from exchange.jobs.delivery.acks import expire_overdue
from exchange.models import Delivery
from tests.e2e.conftest import audience_by_external, register, wait_job

SOURCE = "email,country\n" + "".join(f"user{i}@example.com,FR\n" for i in range(50))
MAPPING = [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]},
           {"source": "country", "target": "country"}]


def _pull_job(api, webhook_url=None):
    p = register(api, name="CDP", producer={"transport": "push"}, identifiers=["email"], attributes=["country"])
    api.client.put(f"/v1/endpoints/{p['id']}/audiences/a/data", data=SOURCE.encode(),
                   headers={"Authorization": f"Bearer {p['endpoint_key']}", "Content-Type": "text/csv"})
    body = dict(name="Warehouse", identifiers=["email_sha256"], consumer={"transport": "pull"})
    if webhook_url:
        body["webhook_url"] = webhook_url
    c = register(api, **body)
    share = api.post("/v1/shares", json={"audience_id": audience_by_external(api, "a")["id"], "destination_id": c["id"],
                                         "mapping": MAPPING}).json
    job = wait_job(api, share["last_job_id"])
    assert job["state"] == "awaiting_consumer"
    return c, job


def test_download_range_etag_and_ack(live):
    c, job = _pull_job(live)
    h = {"Authorization": f"Bearer {c['endpoint_key']}"}
    client = live.client
    d = client.get("/v1/deliveries?state=ready", headers=h).json["items"][0]
    full = client.get(f"/v1/deliveries/{d['id']}/data", headers=h)
    data = full.get_data()
    assert hashlib.sha256(data).hexdigest() == d["sha256"] and len(data) == d["size"]
    assert full.headers["Accept-Ranges"] == "bytes"
    # resume from byte 100
    part = client.get(f"/v1/deliveries/{d['id']}/data", headers={**h, "Range": "bytes=100-"})
    assert part.status_code == 206 and part.get_data() == data[100:]
    assert part.headers["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    middle = client.get(f"/v1/deliveries/{d['id']}/data", headers={**h, "Range": "bytes=10-19"})
    assert middle.get_data() == data[10:20]
    suffix = client.get(f"/v1/deliveries/{d['id']}/data", headers={**h, "Range": "bytes=-5"})
    assert suffix.get_data() == data[-5:]
    bad = client.get(f"/v1/deliveries/{d['id']}/data", headers={**h, "Range": f"bytes={len(data) + 5}-"})
    assert bad.status_code == 416
    cached = client.get(f"/v1/deliveries/{d['id']}/data", headers={**h, "If-None-Match": full.headers["ETag"]})
    assert cached.status_code == 304
    # ack validation, then the ack completes the job
    r = client.post(f"/v1/deliveries/{d['id']}/ack", json={"accepted": 51, "rejected": 0}, headers=h)
    assert r.status_code == 422
    r = client.post(f"/v1/deliveries/{d['id']}/ack", json={"accepted": "many"}, headers=h)
    assert r.status_code == 422
    r = client.post(f"/v1/deliveries/{d['id']}/ack", json={"accepted": 48, "rejected": 2, "message": "2 unknown"},
                    headers=h)
    assert r.status_code == 200 and r.json["state"] == "acknowledged"
    job = live.get(f"/v1/jobs/{job['id']}").json
    assert job["state"] == "partially_succeeded"
    assert job["counts"]["acknowledged"] == 48 and job["counts"]["delivered"] == 50
    assert client.post(f"/v1/deliveries/{d['id']}/ack", json={"accepted": 1}, headers=h).status_code == 409
    assert client.get("/v1/deliveries?state=ready", headers=h).json["total"] == 0


def test_other_endpoint_key_cannot_see_delivery(live):
    c, job = _pull_job(live)
    other = register(live, name="Other", identifiers=["email_sha256"], consumer={"transport": "pull"})
    h = {"Authorization": f"Bearer {other['endpoint_key']}"}
    assert live.client.get("/v1/deliveries", headers=h).json["total"] == 0
    d = live.get("/v1/deliveries").json["items"][0]
    assert live.client.get(f"/v1/deliveries/{d['id']}", headers=h).status_code == 404
    assert live.client.get(f"/v1/deliveries/{d['id']}/data", headers=h).status_code == 404
    assert live.client.post(f"/v1/deliveries/{d['id']}/ack", json={"accepted": 1}, headers=h).status_code == 404


def test_deadline_fails_the_job(live):
    c, job = _pull_job(live)
    from datetime import timedelta

    from exchange.models import utcnow
    with live.rt.db.session() as s:
        for d in s.query(Delivery).all():
            d.deadline_at = utcnow() - timedelta(seconds=1)
    assert expire_overdue(live.rt) == 1
    job = live.get(f"/v1/jobs/{job['id']}").json
    assert job["state"] == "failed" and "deadline" in job["error"]["detail"]
    d = live.get("/v1/deliveries").json["items"][0]
    assert d["state"] == "expired"
    h = {"Authorization": f"Bearer {c['endpoint_key']}"}
    assert live.client.post(f"/v1/deliveries/{d['id']}/ack", json={"accepted": 1}, headers=h).status_code == 409


class _Hooks:
    """A webhook receiver that fails the first call, then records signed calls."""

    def __init__(self):
        self.calls: list[tuple[dict, bytes]] = []
        self.fail_first = True
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.port}/hooks"

    def app(self, environ, start_response):
        req = Request(environ)
        if self.fail_first:
            self.fail_first = False
            return Response("boom", status=500)(environ, start_response)
        self.calls.append((dict(req.headers), req.get_data()))
        return Response("ok")(environ, start_response)


def test_webhooks_signed_and_retried(live):
    import time

    from exchange.net import verify_webhook

    hooks = _Hooks()
    try:
        p = register(live, name="CDP", producer={"transport": "push"}, identifiers=["email"], attributes=["country"])
        live.client.put(f"/v1/endpoints/{p['id']}/audiences/a/data", data=SOURCE.encode(),
                        headers={"Authorization": f"Bearer {p['endpoint_key']}", "Content-Type": "text/csv"})
        c = register(live, name="Warehouse", identifiers=["email_sha256"], consumer={"transport": "pull"},
                     webhook_url=hooks.url)
        secret = c["webhook_secret"]
        share = live.post("/v1/shares", json={"audience_id": audience_by_external(live, "a")["id"],
                                              "destination_id": c["id"], "mapping": MAPPING}).json
        wait_job(live, share["last_job_id"])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(
                json.loads(b)["data"]["state"] == "awaiting_consumer" for _, b in hooks.calls):
            time.sleep(0.1)
        states = [json.loads(b)["data"]["state"] for _, b in hooks.calls]
        assert "awaiting_consumer" in states, states
        for headers, body in hooks.calls:
            assert verify_webhook(secret, headers, body)
            assert not verify_webhook("whsec_" + "A" * 32, headers, body)
        job = live.get(f"/v1/jobs/{share['last_job_id']}").json
        assert job["state"] == "awaiting_consumer"  # the failing first webhook did not fail the job
    finally:
        hooks.server.shutdown()
