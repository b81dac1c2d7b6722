"""The audit log records who changed what, and is scoped to the account."""
from __future__ import annotations


def test_changes_are_audited(api, other_api):
    ep = api.post("/v1/endpoints", json={"name": "CDP", "producer": {"transport": "push"},
                                         "identifiers": ["email"]}).json
    api.patch(f"/v1/endpoints/{ep['id']}", json={"name": "CDP 2"})
    api.post(f"/v1/endpoints/{ep['id']}/disable")
    key = api.post("/v1/keys", json={"name": "ci"}).json
    api.delete(f"/v1/keys/{key['id']}")
    api.get("/v1/endpoints")  # reads are not audited
    api.post("/v1/endpoints", json={"name": ""})  # failures are not audited
    entries = api.get("/v1/audit").json["items"]
    actions = [(e["action"], e["object_id"]) for e in reversed(entries)]
    assert actions == [
        ("POST /v1/endpoints", ep["id"]),
        ("PATCH /v1/endpoints/<endpoint_id>", ep["id"]),
        ("POST /v1/endpoints/<endpoint_id>/disable", ep["id"]),
        ("POST /v1/keys", key["id"]),
        ("DELETE /v1/keys/<key_id>", key["id"]),
    ]
    prefix = api.token.split("_")[1]
    assert all(e["actor"] == f"key:{prefix}" for e in entries)
    assert all(e["remote_addr"] == "127.0.0.1" for e in entries)
    assert api.get(f"/v1/audit?object_id={key['id']}").json["total"] == 2
    assert other_api.get("/v1/audit").json["total"] == 0


def test_endpoint_key_actions_are_audited_with_its_prefix(api):
    ep = api.post("/v1/endpoints", json={"name": "CDP", "producer": {"transport": "push"},
                                         "identifiers": ["email"]}).json
    api.client.put(f"/v1/endpoints/{ep['id']}/audiences/a", json={"name": "A"},
                   headers={"Authorization": f"Bearer {ep['endpoint_key']}"})
    entry = api.get("/v1/audit").json["items"][0]
    assert entry["actor"] == "key:" + ep["endpoint_key"].split("_")[1]
    assert entry["action"] == "PUT /v1/endpoints/<endpoint_id>/audiences/<external_id>"
    # endpoint keys cannot read the audit log
    r = api.client.get("/v1/audit", headers={"Authorization": f"Bearer {ep['endpoint_key']}"})
    assert r.status_code == 403
