"""Errors are problem documents; request ids; idempotency; body limits; ops endpoints."""
from __future__ import annotations


def test_404_405_are_problems(client, api):
    r = client.get("/nope")
    assert r.status_code == 404 and r.content_type == "application/problem+json"
    r = api.client.put("/v1/keys", headers={"Authorization": f"Bearer {api.token}"})
    assert r.status_code == 405 and r.content_type == "application/problem+json"
    assert "GET" in r.headers["Allow"]


def test_request_id_echoed_or_generated(client):
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    generated = client.get("/healthz").headers["X-Request-Id"]
    assert len(generated) == 32
    assert client.get("/healthz", headers={"X-Request-Id": "bad id"}).headers["X-Request-Id"] != "bad id"


def test_unsupported_media_type(api):
    r = api.client.post("/v1/endpoints", data="name=x", content_type="application/x-www-form-urlencoded",
                        headers={"Authorization": f"Bearer {api.token}"})
    assert r.status_code == 415 and r.content_type == "application/problem+json"


def test_malformed_json(api):
    r = api.client.post("/v1/endpoints", data="{not json", content_type="application/json",
                        headers={"Authorization": f"Bearer {api.token}"})
    assert r.status_code in (400, 422) and r.content_type == "application/problem+json"


def test_json_array_body(api):
    r = api.post("/v1/endpoints", json=[1, 2])
    assert r.status_code == 422 and r.content_type == "application/problem+json"


def test_oversized_body_is_413(api):
    r = api.post("/v1/endpoints", json={"name": "x" * 2_000_000})
    assert r.status_code == 413 and r.content_type == "application/problem+json"


def test_idempotency_key_replays_first_response(api):
    body = {"name": "CRM", "producer": {"transport": "push"}, "identifiers": ["email"]}
    h = {"Idempotency-Key": "create-crm-1"}
    first = api.post("/v1/endpoints", json=body, headers=h)
    second = api.post("/v1/endpoints", json=body, headers=h)
    assert first.status_code == second.status_code == 201
    assert first.json["id"] == second.json["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert api.get("/v1/endpoints").json["total"] == 1
    other = api.post("/v1/endpoints", json={**body, "name": "Other"}, headers=h)
    assert other.status_code == 409


def test_idempotency_keys_are_per_account(api, other_api):
    body = {"name": "CRM", "producer": {"transport": "push"}, "identifiers": ["email"]}
    a = api.post("/v1/endpoints", json=body, headers={"Idempotency-Key": "k"})
    b = other_api.post("/v1/endpoints", json=body, headers={"Idempotency-Key": "k"})
    assert a.json["id"] != b.json["id"]


def test_health_ready_metrics(client, api):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready", "checks": {"database": "ok", "blobs": "ok"}}
    api.get("/v1/endpoints")
    text = client.get("/metrics").get_data(as_text=True)
    assert "exchange_http_request_duration_seconds_bucket" in text
    assert 'route="/v1/endpoints"' in text


def test_docs_served(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.1")
