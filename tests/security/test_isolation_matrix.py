"""Tenant isolation matrix: for every route of the API that names an object, account B's key on account
A's object answers exactly what it answers for an id that does not exist (404), and A's data is intact."""
from __future__ import annotations

import re

from tests.e2e.conftest import audience_by_external, register, wait_job

BODIES = {
    ("PATCH", "/v1/endpoints/<endpoint_id>"): {"json": {"name": "x"}},
    ("PATCH", "/v1/shares/<share_id>"): {"json": {"mode": "add"}},
    ("PUT", "/v1/endpoints/<endpoint_id>/audiences/<external_id>"): {"json": {}},
    ("PUT", "/v1/endpoints/<endpoint_id>/audiences/<external_id>/data"): {
        "data": b"email\nz@x.io\n", "headers": {"Content-Type": "text/csv"}},
    ("POST", "/v1/deliveries/<delivery_id>/ack"): {"json": {"accepted": 0}},
    ("PATCH", "/v1/applications/<application_id>"): {"json": {"name": "x"}},
    ("POST", "/v1/applications/<application_id>/connect"): {"json": {"credential": "x"}},
}
SKIP_METHODS = {"HEAD", "OPTIONS"}


def test_every_object_route_hides_other_accounts(live, other_api_live):
    a, b = live, other_api_live
    p = register(a, name="CDP", producer={"transport": "push"}, identifiers=["email"])
    a.client.put(f"/v1/endpoints/{p['id']}/audiences/aud/data", data=b"email\na@x.io\n",
                 headers={"Authorization": f"Bearer {p['endpoint_key']}", "Content-Type": "text/csv"})
    c = register(a, name="Wh", identifiers=["email_sha256"], consumer={"transport": "pull"},
                 webhook_url="http://127.0.0.1:9/hooks")  # a webhook subscriber with messages
    aud = audience_by_external(a, "aud")
    share = a.post("/v1/shares", json={"audience_id": aud["id"], "destination_id": c["id"], "mapping": [
        {"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]}]}).json
    job = wait_job(a, share["last_job_id"])
    delivery = a.get("/v1/deliveries").json["items"][0]
    key = a.get("/v1/keys").json["items"][0]
    application = a.post("/v1/applications", json={  # a draft: not in the directory, so not connectable
        "name": "Draft app", "producer": {"transport": "push"}, "identifiers": ["email"]}).json
    ids = {"endpoint_id": p["id"], "audience_id": aud["id"], "share_id": share["id"], "job_id": job["id"],
           "delivery_id": delivery["id"], "key_id": key["id"], "external_id": "aud",
           "application_id": application["id"],
           # webhook routes (issue 18): A's endpoint subscriber and one of its real messages
           "subscriber_id": f"endpoint:{c['id']}",
           "message_id": a.get(f"/v1/webhooks/subscribers/endpoint:{c['id']}/messages").json["items"][0]["id"]}
    before = a.get("/v1/account/export").json

    app = a.rt_app
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/") or "<" not in rule.rule:
            continue
        params = re.findall(r"<(?:[^:>]+:)?([^>]+)>", rule.rule)
        for method in sorted(rule.methods - SKIP_METHODS):
            kw = BODIES.get((method, rule.rule), {})
            real = rule.rule
            fake = rule.rule
            for name in params:
                real = re.sub(rf"<(?:[^:>]+:)?{name}>", ids[name], real)
                fake = re.sub(rf"<(?:[^:>]+:)?{name}>", "0" * 32 if name != "external_id" else "aud", fake)
            r_real = getattr(b, method.lower())(real, **{k: v for k, v in kw.items()})
            r_fake = getattr(b, method.lower())(fake, **{k: v for k, v in kw.items()})
            assert r_real.status_code == 404, (method, rule.rule, r_real.status_code, r_real.get_data()[:300])
            assert r_fake.status_code == 404, (method, rule.rule, r_fake.status_code)
            assert r_real.json["detail"] == r_fake.json["detail"], (method, rule.rule)
            checked += 1
    assert checked >= 25  # every object route of the API (25 today)
    # lists show nothing of A, and A's objects are untouched
    for url in ("/v1/endpoints", "/v1/audiences", "/v1/shares", "/v1/jobs", "/v1/deliveries", "/v1/audit",
                "/v1/applications", "/v1/applications?directory=true"):
        assert b.get(url).json["total"] == 0, url
    after = a.get("/v1/account/export").json
    assert after["endpoints"] == before["endpoints"] and after["shares"] == before["shares"]
    assert after["audiences"] == before["audiences"]
    assert a.get(f"/v1/jobs/{job['id']}").json["state"] == "awaiting_consumer"


def test_provider_sees_nothing_of_its_customers(live, other_api_live, tmp_path):
    """A provider whose application a customer connected and shares to: every object route of the
    customer's answers 404 to the provider, and its lists stay empty; it sees only a count."""
    from exchange.applications import registry

    provider, customer = other_api_live, live
    app = provider.post("/v1/applications", json={
        "name": "Warehouse", "consumer": {"transport": "pull"}, "identifiers": ["email_sha256"]}).json
    provider.post(f"/v1/applications/{app['id']}/submit")
    with live.rt.db.session() as s:
        registry.approve(s, app["id"])
    c = customer.post(f"/v1/applications/{app['id']}/connect", json={"credential": "customer-secret"}).json
    p = register(customer, name="CDP", producer={"transport": "push"}, identifiers=["email"])
    customer.client.put(f"/v1/endpoints/{p['id']}/audiences/aud/data", data=b"email\na@x.io\n",
                        headers={"Authorization": f"Bearer {p['endpoint_key']}", "Content-Type": "text/csv"})
    aud = audience_by_external(customer, "aud")
    share = customer.post("/v1/shares", json={"audience_id": aud["id"], "destination_id": c["id"], "mapping": [
        {"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]}]}).json
    job = wait_job(customer, share["last_job_id"])
    delivery = customer.get("/v1/deliveries").json["items"][0]
    for url in (f"/v1/endpoints/{c['id']}", f"/v1/endpoints/{p['id']}", f"/v1/audiences/{aud['id']}",
                f"/v1/shares/{share['id']}", f"/v1/jobs/{job['id']}", f"/v1/jobs/{job['id']}/events",
                f"/v1/deliveries/{delivery['id']}", f"/v1/deliveries/{delivery['id']}/data"):
        assert provider.get(url).status_code == 404, url
    assert provider.patch(f"/v1/endpoints/{c['id']}", json={"name": "x"}).status_code == 404
    assert provider.delete(f"/v1/endpoints/{c['id']}").status_code == 404
    for url in ("/v1/endpoints", "/v1/audiences", "/v1/shares", "/v1/jobs", "/v1/deliveries"):
        assert provider.get(url).json["total"] == 0, url
    assert c["id"] not in provider.get("/v1/audit").get_data(as_text=True)
    exported = provider.get("/v1/account/export").get_data(as_text=True)
    assert c["id"] not in exported and "customer-secret" not in exported
    mine = provider.get(f"/v1/applications/{app['id']}").get_data(as_text=True)
    assert c["id"] not in mine and "customer-secret" not in mine and '"connections": 1' in mine.replace(":1", ": 1")
