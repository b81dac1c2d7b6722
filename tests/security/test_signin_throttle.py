"""Web sign-in brute force: attempts per account and address are throttled with a clear message, the
right password from elsewhere still works, and the wait is seconds, never an indefinite lockout."""
from __future__ import annotations

import re

import pytest

from exchange.auth.keys import create_account
from exchange.auth.users import create_user

PASSWORD = "correct-horse-1"


def _csrf(client) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)


def _sign_in(client, password, email="alice@acme.test", addr="203.0.113.7"):
    return client.post("/login", data={"email": email, "password": password, "csrf_token": _csrf(client)},
                       environ_base={"REMOTE_ADDR": addr})


def test_sign_in_brute_force_throttled(make_exchange):
    now = [1_000_000.0]
    rt, app = make_exchange(login_attempts=10, login_window_seconds=300)
    from exchange.api.middleware import limiter

    with app.test_request_context():
        limiter().store.clock = lambda: now[0]  # a controllable clock for the shared buckets
    with rt.db.session() as s:
        account, _ = create_account(s, "Acme")
        create_user(s, account.id, "alice@acme.test", PASSWORD)
    attacker = app.test_client()
    codes = [_sign_in(attacker, f"guess-{i}").status_code for i in range(300)]
    assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}, codes[:15]
    r = _sign_in(attacker, PASSWORD)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 30  # one attempt per 30 s
    assert "Too many sign-in attempts for this account" in r.text and "Wait 30 seconds" in r.text
    # the real user, from another address, signs in at once
    user = app.test_client()
    r = _sign_in(user, PASSWORD, addr="198.51.100.20")
    assert r.status_code == 302, r.text
    # the throttled address gets one more try after 30 s: not an indefinite lockout
    now[0] += 30
    assert _sign_in(attacker, PASSWORD).status_code == 302
    # a success clears the count for that account and address
    again = app.test_client()
    assert [_sign_in(again, "wrong").status_code for _ in range(3)] == [401] * 3


@pytest.mark.slow
def test_many_accounts_from_one_address_throttled(make_exchange):
    rt, app = make_exchange(login_attempts=1, login_window_seconds=300)
    from exchange.api.middleware import limiter

    with app.test_request_context():
        limiter().store.clock = lambda: 1_000_000.0  # time stands still: no refill during the test
    client = app.test_client()
    codes = [_sign_in(client, "x", email=f"user{i}@acme.test").status_code for i in range(13)]
    assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}
