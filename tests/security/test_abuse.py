"""Abuse controls: per-key rate limits with 429 + Retry-After, failed-authentication throttling."""
from __future__ import annotations

from exchange.api.ratelimit import RateLimiter
from exchange.app import create_app
from exchange.errors import RateLimited
from exchange.runtime import Runtime
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


def _frozen(app, at=1_000_000.0):
    """Stop the clock of the app's shared buckets: no refill while a test floods (slow machines)."""
    from exchange.api.middleware import limiter

    with app.test_request_context():
        limiter().store.clock = lambda: at


def test_bad_key_flood_never_refuses_a_valid_key(make_exchange):
    """300 wrong keys from one address: failures turn into 429, the valid key from there still works."""
    rt, app = make_exchange()
    _frozen(app)
    client = app.test_client()
    good = new_account(rt, client, "A")
    codes = [client.get("/v1/endpoints", headers={"Authorization": f"Bearer aex_{i:012x}_nope"}).status_code
             for i in range(300)]
    assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}
    r = client.get("/v1/endpoints", headers={"Authorization": "Bearer aex_000000000001_nope"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert r.content_type == "application/problem+json"
    # the account's valid key from that very address is served at once
    r = good.get("/v1/endpoints")
    assert r.status_code == 200, r.json
    # another address is unaffected even for wrong keys
    r = client.get("/v1/endpoints", headers={"Authorization": "Bearer aex_000000000000_nope"},
                   environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert r.status_code == 401


def test_failures_counted_per_key_prefix(make_exchange):
    """Guessing one key's secret from many addresses is throttled by the key prefix; its owner is not."""
    rt, app = make_exchange()
    _frozen(app)
    client = app.test_client()
    good = new_account(rt, client, "A")
    prefix = good.token.split("_")[1]
    codes = [client.get("/v1/endpoints", headers={"Authorization": f"Bearer aex_{prefix}_guess{i}"},
                        environ_base={"REMOTE_ADDR": f"10.0.{i // 250}.{i % 250}"}).status_code
             for i in range(25)]
    assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}
    assert good.get("/v1/endpoints").status_code == 200


def test_limits_are_shared_between_processes(make_exchange):
    """Two apps (two web processes) on one database share the buckets: the limit is not per process."""
    rt, app = make_exchange(rate_limit_per_minute=60)
    a = new_account(rt, app.test_client(), "A")
    other = create_app(runtime=Runtime(rt.config))  # a second process' app over the same database
    _frozen(app)
    _frozen(other)
    b_client = other.test_client()
    headers = {"Authorization": f"Bearer {a.token}"}
    codes = [a.get("/v1/endpoints").status_code for _ in range(5)]
    codes += [b_client.get("/v1/endpoints", headers=headers).status_code for _ in range(6)]
    assert codes[:10] == [200] * 10 and codes[10] == 429, codes
    # and failed authentications counted by one app throttle the other
    for _ in range(20):
        app.test_client().get("/v1/endpoints", headers={"Authorization": "Bearer aex_00000000000a_x"})
    r = b_client.get("/v1/endpoints", headers={"Authorization": "Bearer aex_00000000000b_x"})
    assert r.status_code == 429


def test_redis_store_shares_buckets():
    """The Redis store (used when EXCHANGE_BROKER_URL is redis://) keeps one bucket for every client."""
    import uuid

    import pytest

    from exchange.api.ratelimit import RedisStore

    try:
        store = RedisStore("redis://127.0.0.1:6379/15", prefix=f"test:{uuid.uuid4().hex}:")
        store.client.ping()
    except Exception:  # noqa: BLE001
        pytest.skip("Redis not reachable on 127.0.0.1:6379")
    other = RedisStore("redis://127.0.0.1:6379/15", prefix=store.prefix)
    waits = [store.take("k", 1.0, 3.0), other.take("k", 1.0, 3.0), store.take("k", 1.0, 3.0),
             other.take("k", 1.0, 3.0)]
    assert waits[:3] == [0.0, 0.0, 0.0] and 0 < waits[3] <= 1.0
    store.reset("k")
    assert other.take("k", 1.0, 3.0) == 0.0
    store.reset("k")


def test_database_store_on_postgres():
    """The shared buckets on PostgreSQL (the scaled deployment): burst, refill, reset."""
    import uuid

    import pytest
    from sqlalchemy import create_engine, text

    from exchange.api.ratelimit import DatabaseStore
    from exchange.db import upgrade
    from tests.conftest import postgres_url

    url = postgres_url()
    if url is None:
        pytest.skip("PostgreSQL not reachable")
    schema = "rl_" + uuid.uuid4().hex[:8]
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    scoped = url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    try:
        upgrade(scoped)
        engine = create_engine(scoped)
        now = [1000.0]
        store = DatabaseStore(engine, clock=lambda: now[0])
        assert [store.take("k", 1.0, 3.0) for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]
        now[0] += 1.0
        assert store.take("k", 1.0, 3.0) == 0.0 and store.take("k", 1.0, 3.0) == 1.0
        store.reset("k")
        assert store.take("k", 1.0, 3.0) == 0.0
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_leased_tokens_cut_bucket_writes_and_never_exceed_the_limit(runtime, monkeypatch):
    """Two web processes polling hard with one key: a bucket UPDATE per lease, not per request, and
    together they are granted no more than the bucket holds (at most a lease each less)."""
    from sqlalchemy import event

    from exchange.api import ratelimit
    from exchange.api.ratelimit import DatabaseStore

    monkeypatch.setattr(ratelimit, "LEASE_SECONDS", 10.0)  # steady leases however slow the machine
    writes = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE RATE_BUCKETS"):
            writes.append(statement)
    event.listen(runtime.db.engine, "before_cursor_execute", count)
    limiters = [RateLimiter(6000, store=DatabaseStore(runtime.db.engine, clock=lambda: 1000.0)) for _ in range(2)]
    burst, cap = limiters[0].burst, limiters[0]._lease_cap
    assert burst == 1000 and 1 < cap <= 100
    granted, refused = 0, [False, False]
    while not all(refused):
        for i, limiter in enumerate(limiters):
            if refused[i]:
                continue
            try:
                limiter.hit("k")
                granted += 1
            except RateLimited as exc:
                assert exc.retry_after > 0
                refused[i] = True
    assert burst - 2 * cap <= granted <= burst
    assert len(writes) < granted / 5


def test_database_store_takes_many_only_when_the_bucket_holds_them(runtime):
    from exchange.api.ratelimit import DatabaseStore

    now = [1000.0]
    store = DatabaseStore(runtime.db.engine, clock=lambda: now[0])
    assert store.take_many("k", 1.0, 10.0, 4) == (1, 0.0)  # a new bucket: one, as take() does
    assert store.take_many("k", 1.0, 10.0, 4) == (4, 0.0)
    assert store.take_many("k", 1.0, 10.0, 6) == (1, 0.0)  # 6 asked, 5 left: one at a time
    assert [store.take_many("k", 1.0, 10.0, 1)[0] for _ in range(5)] == [1, 1, 1, 1, 0]
    now[0] += 2.0
    assert store.take_many("k", 1.0, 10.0, 3) == (1, 0.0)
