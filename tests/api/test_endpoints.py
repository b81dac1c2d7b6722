"""Endpoint registry: every operation, with the bad input a user can send."""
from __future__ import annotations

import pytest

from tests.conftest import make_config, new_account

PRODUCER = {"name": "Demo CRM", "contact_url": "http://127.0.0.1:9/exchange", "producer": {"transport": "push"},
            "identifiers": ["email", "customer_id"], "attributes": ["first_name", "country"],
            "credential": "very-secret-token", "webhook_url": "http://127.0.0.1:9/hooks"}


def test_register_get_list_update_disable_delete(api):
    r = api.post("/v1/endpoints", json=PRODUCER)
    assert r.status_code == 201, r.json
    ep = r.json
    assert ep["endpoint_key"].startswith("aex_")
    assert ep["webhook_secret"].startswith("whsec_")
    assert ep["has_credential"] is True
    assert "credential" not in ep
    eid = ep["id"]
    got = api.get(f"/v1/endpoints/{eid}")
    assert got.status_code == 200
    text = got.get_data(as_text=True)
    assert "very-secret-token" not in text and "endpoint_key" not in got.json
    assert got.json["identifiers"] == ["email", "customer_id"]
    listing = api.get("/v1/endpoints").json
    assert listing["total"] == 1 and listing["items"][0]["id"] == eid
    r = api.patch(f"/v1/endpoints/{eid}", json={"name": "Renamed", "attributes": ["country"]})
    assert r.status_code == 200 and r.json["name"] == "Renamed" and r.json["attributes"] == ["country"]
    assert api.post(f"/v1/endpoints/{eid}/disable").json["status"] == "disabled"
    assert api.get("/v1/endpoints?status=disabled").json["total"] == 1
    assert api.post(f"/v1/endpoints/{eid}/enable").json["status"] == "active"
    assert api.delete(f"/v1/endpoints/{eid}").status_code == 204
    assert api.get(f"/v1/endpoints/{eid}").status_code == 404


def test_credential_is_encrypted_at_rest(api, runtime):
    eid = api.post("/v1/endpoints", json=PRODUCER).json["id"]
    from exchange.models import Endpoint
    with runtime.db.session() as s:
        ep = s.get(Endpoint, eid)
        assert ep.credential_enc and "very-secret-token" not in ep.credential_enc
        assert runtime.secrets.decrypt(ep.credential_enc) == "very-secret-token"


def test_endpoint_key_shown_once_and_scoped(api, client):
    ep = api.post("/v1/endpoints", json=PRODUCER).json
    keys = api.get("/v1/keys").json["items"]
    scoped = [k for k in keys if k["scope"] == "endpoint"]
    assert len(scoped) == 1 and scoped[0]["endpoint_id"] == ep["id"]
    assert ep["endpoint_key"] not in api.get("/v1/keys").get_data(as_text=True)


@pytest.mark.parametrize("patch,field", [
    ({"name": ""}, "name"),
    ({"name": 12}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"contact_url": "ftp://example.com/x"}, "contact_url"),
    ({"contact_url": "not a url"}, "contact_url"),
    ({"contact_url": "http://user:pw@example.com/"}, "contact_url"),
    ({"producer": {"transport": "carrier-pigeon"}}, "producer.transport"),
    ({"producer": "push"}, "producer"),
    ({"identifiers": "email"}, "identifiers"),
    ({"identifiers": ["Email!"]}, "identifiers.0"),
    ({"identifiers": []}, "identifiers"),
    ({"identifiers": ["email", "email"]}, "identifiers"),
    ({"color": "blue"}, "color"),
    ({"consumer": {"transport": "push", "max_rows_per_request": 0}, "producer": None}, "consumer.max_rows_per_request"),
    ({"producer": None, "consumer": None}, "_schema"),
    ({"producer": {"transport": "pull"}, "contact_url": None}, "contact_url"),
    ({"adapter": {"type": "nope", "settings": {}}, "contact_url": None, "producer": None}, "adapter.type"),
    ({"credential": ""}, "credential"),
])
def test_register_validation(api, patch, field):
    body = {**PRODUCER, **patch}
    r = api.post("/v1/endpoints", json=body)
    assert r.status_code == 422, (r.status_code, r.json)
    assert r.content_type == "application/problem+json"
    assert field in r.json["errors"], r.json["errors"]
    assert api.get("/v1/endpoints").json["total"] == 0  # nothing half-written


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/x", "http://localhost/x", "http://10.1.2.3/", "http://192.168.0.1/",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/", "http://[fe80::1]/", "http://0.0.0.0/",
])
def test_private_urls_refused_unless_allowed(tmp_path, url):
    from exchange.app import create_app
    from exchange.db import upgrade
    from exchange.runtime import Runtime

    cfg = make_config(tmp_path, allow_private_urls=False)
    upgrade(cfg.database_url)
    rt = Runtime(cfg)
    try:
        api = new_account(rt, create_app(runtime=rt).test_client())
        r = api.post("/v1/endpoints", json={**PRODUCER, "contact_url": url, "webhook_url": None})
        assert r.status_code == 422
        assert "contact_url" in r.json["errors"]
        r = api.post("/v1/endpoints", json={**PRODUCER, "contact_url": "https://93.184.216.34/x",
                                            "webhook_url": url})
        assert r.status_code == 422 and "webhook_url" in r.json["errors"]
    finally:
        rt.shutdown()


def test_other_accounts_endpoint_is_404(api, other_api):
    eid = api.post("/v1/endpoints", json=PRODUCER).json["id"]
    for method, url in [("get", f"/v1/endpoints/{eid}"), ("patch", f"/v1/endpoints/{eid}"),
                        ("delete", f"/v1/endpoints/{eid}"), ("post", f"/v1/endpoints/{eid}/disable"),
                        ("post", f"/v1/endpoints/{eid}/enable"), ("post", f"/v1/endpoints/{eid}/verify"),
                        ("post", f"/v1/endpoints/{eid}/refresh")]:
        kw = {"json": {"name": "x"}} if method == "patch" else {}
        r = getattr(other_api, method)(url, **kw)
        assert r.status_code == 404, (method, url, r.status_code)
        missing = getattr(other_api, method)(url.replace(eid, "0" * 32), **kw)
        assert missing.status_code == 404 and missing.json["detail"] == r.json["detail"]
    assert other_api.get("/v1/endpoints").json["total"] == 0
    assert api.get(f"/v1/endpoints/{eid}").json["name"] == "Demo CRM"


def test_update_validation_keeps_the_endpoint_whole(api):
    eid = api.post("/v1/endpoints", json=PRODUCER).json["id"]
    r = api.patch(f"/v1/endpoints/{eid}", json={"producer": None})
    assert r.status_code == 422
    assert api.get(f"/v1/endpoints/{eid}").json["producer"] == {"transport": "push"}


def test_verify_pull_producer_against_reference_endpoint(api, tmp_path):
    from exchange.toolkit.reference_endpoint import ReferenceEndpoint

    folder = tmp_path / "crm"
    folder.mkdir()
    (folder / "vip.csv").write_text("email,country\na@example.com,FR\n")
    ref = ReferenceEndpoint(producer_dir=folder, credential="tok")
    ref.start()
    try:
        ep = api.post("/v1/endpoints", json={"name": "CRM", "contact_url": ref.url, "producer": {"transport": "pull"},
                                             "identifiers": ["email"], "credential": "tok"}).json
        r = api.post(f"/v1/endpoints/{ep['id']}/verify")
        assert r.status_code == 200
        assert r.json["ok"] is True and r.json["reachable"] is True
        assert "1 audiences listed" in r.json["checks"][0]["detail"]
        api.patch(f"/v1/endpoints/{ep['id']}", json={"credential": "wrong"})
        r = api.post(f"/v1/endpoints/{ep['id']}/verify").json
        assert r["ok"] is False and "credential" in r["checks"][0]["detail"]
    finally:
        ref.stop()


def test_verify_unreachable(api):
    ep = api.post("/v1/endpoints", json={**PRODUCER, "producer": {"transport": "pull"},
                                         "contact_url": "http://127.0.0.1:1/x"}).json
    r = api.post(f"/v1/endpoints/{ep['id']}/verify")
    assert r.status_code == 200
    assert r.json["ok"] is False and r.json["reachable"] is False
