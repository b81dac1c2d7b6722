"""Abuse controls: per-key rate limits with 429 + Retry-After, failed-authentication throttling."""
from __future__ import annotations

from exchange.api.ratelimit import RateLimiter
from exchange.errors import RateLimited
from tests.conftest import new_account


def test_rate_limit_per_key(make_exchange):
    rt, app = make_exchange(rate_limit_per_minute=60)  # burst of 10, then 1 per second
    a = new_account(rt, app.test_client(), "A")
    b = new_account(rt, app.test_client(), "B")
    codes = [a.get("/v1/endpoints").status_code for _ in range(12)]
    assert codes[:10] == [200] * 10 and codes[10] == 429
    r = a.get("/v1/endpoints")
    assert r.status_code == 429 and r.content_type == "application/problem+json"
    assert 1 <= int(r.headers["Retry-After"]) <= 2
    # another key is not affected
    assert b.get("/v1/endpoints").status_code == 200


def test_bucket_refills():
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    for _ in range(10):
        limiter.hit("k")
    try:
        limiter.hit("k")
        raise AssertionError("should be limited")
    except RateLimited as exc:
        assert 0.9 <= exc.retry_after <= 1.1
    now[0] += 1.0
    limiter.hit("k")


def test_failed_auth_throttled_per_address(make_exchange):
    rt, app = make_exchange()
    client = app.test_client()
    good = new_account(rt, client, "A")
    codes = [client.get("/v1/endpoints", headers={"Authorization": "Bearer aex_000000000000_nope"}).status_code
             for _ in range(22)]
    assert codes[:20] == [401] * 20 and codes[20:] == [429, 429]
    # even a valid key from that address waits until the window passes
    r = good.get("/v1/endpoints")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # another address is unaffected
    r = client.get("/v1/endpoints", headers={"Authorization": f"Bearer {good.token}"},
                   environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert r.status_code == 200
