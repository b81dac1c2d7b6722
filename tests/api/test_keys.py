"""API keys: creation shown once, prefix-only listing, revocation, scope rules, bad bearer tokens."""
from __future__ import annotations

import pytest


def test_create_list_revoke(api, client):
    r = api.post("/v1/keys", json={"name": "ci"})
    assert r.status_code == 201
    body = r.json
    token = body["key"]
    assert token.startswith("aex_" + body["prefix"] + "_")
    listed = api.get("/v1/keys").json
    assert listed["total"] == 2
    assert all("key" not in k and "secret_hash" not in k for k in listed["items"])
    assert token not in api.get("/v1/keys").get_data(as_text=True)
    # the new key works, then stops working once revoked
    h = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/endpoints", headers=h).status_code == 200
    r = api.delete(f"/v1/keys/{body['id']}")
    assert r.status_code == 200 and r.json["revoked_at"]
    r = client.get("/v1/endpoints", headers=h)
    assert r.status_code == 401
    assert r.content_type == "application/problem+json"
    assert "revoked" in r.json["detail"]


def test_last_used_at_is_recorded(api):
    keys = api.get("/v1/keys").json["items"]
    assert keys[0]["last_used_at"] is not None


@pytest.mark.parametrize("header", [
    None, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not-a-key", "Bearer aex_abc", "Bearer aex__x",
    "Bearer aex_000000000000_wrongsecret",
])
def test_bad_bearer_is_401_problem(client, api, header):
    headers = {"Authorization": header} if header is not None else {}
    r = client.get("/v1/endpoints", headers=headers)
    assert r.status_code == 401
    assert r.content_type == "application/problem+json"
    assert r.json["status"] == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_secret_with_real_prefix(api, client):
    prefix = api.token.split("_")[1]
    r = client.get("/v1/endpoints", headers={"Authorization": f"Bearer aex_{prefix}_nottherightsecret"})
    assert r.status_code == 401


def test_endpoint_key_cannot_use_control_plane(api, client):
    ep = api.post("/v1/endpoints", json={"name": "P", "producer": {"transport": "push"},
                                         "identifiers": ["email"]}).json
    h = {"Authorization": f"Bearer {ep['endpoint_key']}"}
    for method, url in [("get", "/v1/endpoints"), ("get", "/v1/keys"), ("post", "/v1/keys"),
                        ("get", "/v1/audiences"), ("get", "/v1/jobs"), ("get", f"/v1/endpoints/{ep['id']}")]:
        r = getattr(client, method)(url, headers=h, json={} if method == "post" else None)
        assert r.status_code == 403, (method, url, r.status_code)
        assert r.content_type == "application/problem+json"


@pytest.mark.parametrize("body,field", [
    ({"scope": "endpoint"}, "endpoint_id"),
    ({"scope": "account", "endpoint_id": "x"}, "endpoint_id"),
    ({"scope": "root"}, "scope"),
    ({"name": 3}, "name"),
    ({"unknown": 1}, "unknown"),
    ({"scope": "endpoint", "endpoint_id": "doesnotexist"}, "endpoint_id"),
])
def test_create_key_validation(api, body, field):
    r = api.post("/v1/keys", json=body)
    assert r.status_code == 422
    assert field in r.json["errors"]


def test_other_accounts_key_is_404(api, other_api):
    key_id = api.get("/v1/keys").json["items"][0]["id"]
    assert other_api.get(f"/v1/keys/{key_id}").status_code == 404
    assert other_api.delete(f"/v1/keys/{key_id}").status_code == 404
    assert api.get(f"/v1/keys/{key_id}").status_code == 200
