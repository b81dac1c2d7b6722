"""GET /v1/jobs/{id}: the lean path in front of Flask answers exactly what the app answers, and only
the common case (a cached account key, a token in hand, the caller's own job); the key cache keeps
revocation within its TTL."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from exchange.api.fastpath import StatusFastPath
from exchange.app import create_app
from exchange.auth.keys import key_cache
from exchange.models import ApiKey, Job, utcnow
from exchange.runtime import Runtime
from tests.conftest import new_account


@pytest.fixture(autouse=True)
def steady_leases(monkeypatch):
    """However slow the machine, a key polled in a loop gets a lease of several tokens."""
    from exchange.api import ratelimit

    monkeypatch.setattr(ratelimit, "LEASE_SECONDS", 10.0)


@pytest.fixture
def job_id(runtime, api) -> str:
    now = utcnow()
    with runtime.db.session() as s:
        job = Job(account_id=api.account_id, state="delivering", trigger="schedule", mode="replace",
                  counts={"received": 10, "valid": 9, "rejected": 1, "not_in_schema": 3}, bytes=1234, attempts=2,
                  timings={"fetch": 1.5, "transform": 2}, error={"title": "x", "detail": "ü ✓"},
                  progress={"source_key": "a/b", "planned": True}, source_version="v1", lease_owner="h:1:x",
                  heartbeat_at=now, scheduled_for=now - timedelta(minutes=1), started_at=now)
        s.add(job)
        s.flush()
        return job.id


class Spy:
    """Counts the calls the fast path hands on to the Flask app."""

    def __init__(self, app):
        self.fast: StatusFastPath = app.wsgi_app
        assert isinstance(self.fast, StatusFastPath)
        self.inner, self.calls = self.fast.inner, 0
        self.fast.inner = self

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.inner(environ, start_response)


def _warm(api, job_id: str) -> None:
    """Cache the key and give this process a lease of tokens (the first calls go through the app)."""
    for _ in range(5):
        assert api.get(f"/v1/jobs/{job_id}").status_code == 200


def test_fast_path_answers_like_the_app(runtime, app, api, job_id):
    spy = Spy(app)
    _warm(api, job_id)
    before = spy.calls
    fast = api.get(f"/v1/jobs/{job_id}", headers={"X-Request-Id": "poll-1"})
    assert spy.calls == before, "the status call went through Flask"
    plain_app = create_app(runtime=Runtime(dataclasses.replace(runtime.config, api_status_fast_path=False)))
    assert not isinstance(plain_app.wsgi_app, StatusFastPath)
    slow = plain_app.test_client().get(f"/v1/jobs/{job_id}",
                                       headers={"Authorization": f"Bearer {api.token}", "X-Request-Id": "poll-1"})
    assert fast.status_code == slow.status_code == 200
    assert fast.get_data() == slow.get_data()
    assert dict(fast.headers) == dict(slow.headers)
    assert fast.json["counts"] == {"received": 10, "valid": 9, "rejected": 1} and fast.json["worker"] == "h:1:x"
    # a request id that is not acceptable is replaced, as the app does
    assert api.get(f"/v1/jobs/{job_id}", headers={"X-Request-Id": "bad id"}).headers["X-Request-Id"] != "bad id"


def test_everything_else_goes_through_the_app(app, api, other_api, client, job_id):
    spy = Spy(app)
    _warm(api, job_id)
    cases = [
        lambda: other_api.get(f"/v1/jobs/{job_id}"),  # another account's job (its key not cached yet)
        lambda: api.get(f"/v1/jobs/{'0' * 32}"),  # no such job
        lambda: api.get(f"/v1/jobs/{job_id}?x=1"),  # a query string
        lambda: client.get(f"/v1/jobs/{job_id}"),  # no key
        lambda: client.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {api.token}x"}),  # wrong key
        lambda: api.get(f"/v1/jobs/{job_id}/events"),
        lambda: api.post(f"/v1/jobs/{job_id}/cancel"),
    ]
    for case in cases:
        before = spy.calls
        case()
        assert spy.calls == before + 1
    assert other_api.get(f"/v1/jobs/{job_id}").status_code == 404
    assert api.get(f"/v1/jobs/{'0' * 32}").status_code == 404
    assert client.get(f"/v1/jobs/{job_id}").status_code == 401


def test_endpoint_keys_are_refused_as_before(api, client, job_id):
    ep = api.post("/v1/endpoints", json={"name": "P", "producer": {"transport": "push"},
                                         "identifiers": ["email"]}).json
    h = {"Authorization": f"Bearer {ep['endpoint_key']}"}
    for _ in range(5):
        r = client.get(f"/v1/jobs/{job_id}", headers=h)
        assert r.status_code == 403 and r.content_type == "application/problem+json"


def test_revoking_through_this_process_takes_effect_at_once(api, client, job_id):
    key = api.post("/v1/keys", json={"name": "poller"}).json
    h = {"Authorization": f"Bearer {key['key']}"}
    for _ in range(5):
        assert client.get(f"/v1/jobs/{job_id}", headers=h).status_code == 200
    assert api.delete(f"/v1/keys/{key['id']}").status_code == 200
    r = client.get(f"/v1/jobs/{job_id}", headers=h)
    assert r.status_code == 401 and "revoked" in r.json["detail"]


def test_revoked_elsewhere_the_key_stops_within_the_cache_ttl(runtime, api, client, job_id, monkeypatch):
    key = api.post("/v1/keys", json={"name": "poller"}).json
    h = {"Authorization": f"Bearer {key['key']}"}
    assert client.get(f"/v1/jobs/{job_id}", headers=h).status_code == 200
    with runtime.db.session() as s:  # another web process revokes it: this one is not told
        s.get(ApiKey, key["id"]).revoked_at = utcnow()
    assert client.get(f"/v1/jobs/{job_id}", headers=h).status_code == 200  # still cached here
    ttl = runtime.config.api_key_cache_seconds
    assert 0 < ttl <= 30
    now = key_cache.clock()
    monkeypatch.setattr(key_cache, "clock", lambda: now + ttl + 0.01)
    for path in (f"/v1/jobs/{job_id}", "/v1/endpoints"):
        r = client.get(path, headers=h)
        assert r.status_code == 401 and "revoked" in r.json["detail"]


def test_the_cache_can_be_switched_off(make_exchange_app):
    rt, app = make_exchange_app(api_key_cache_seconds=0)
    a = new_account(rt, app.test_client())
    assert a.get("/v1/endpoints").status_code == 200
    with rt.db.session() as s:
        s.query(ApiKey).update({"revoked_at": utcnow()})
    assert a.get("/v1/endpoints").status_code == 401


@pytest.fixture
def make_exchange_app(tmp_path, migrated_template):
    from tests.conftest import make_config, prepare_db

    made = []

    def _make(**overrides):
        cfg = make_config(tmp_path / f"x{len(made)}", **overrides)
        prepare_db(cfg, migrated_template)
        rt = Runtime(cfg)
        made.append(rt)
        return rt, create_app(runtime=rt)
    yield _make
    for rt in made:
        rt.shutdown()
