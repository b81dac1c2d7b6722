"""The web layer without a browser: sessions, CSRF, cookies, redirects, and the wizard's pure helpers."""
from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from werkzeug.datastructures import MultiDict

from exchange.app import create_app
from exchange.auth.keys import create_account
from exchange.auth.users import create_user
from exchange.models import User
from exchange.runtime import Runtime
from exchange.web.wizard import preview, schedule_from_form, suggest_mapping
from tests.conftest import make_config, prepare_db

PASSWORD = "correct-horse-1"


@pytest.fixture
def user(runtime):
    with runtime.db.session() as s:
        account, token = create_account(s, "Acme")
        create_user(s, account.id, "alice@acme.test", PASSWORD)
    return {"account": account.id, "token": token, "email": "alice@acme.test"}


def csrf(client, path="/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def sign_in(client, email="alice@acme.test", password=PASSWORD, next_=""):
    return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf(client),
                                       "next": next_})


def test_pages_need_a_session(client, user):
    r = client.get("/endpoints?role=producer")
    assert r.status_code == 302 and r.headers["Location"] == "/login?next=/endpoints?role%3Dproducer"
    assert client.get("/v1/endpoints").status_code == 401


def test_sign_in_sets_a_hardened_cookie_and_sign_out_clears_it(client, user):
    r = sign_in(client)
    assert r.status_code == 302 and r.headers["Location"] == "/"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    page = client.get("/")
    assert page.status_code == 200 and "alice@acme.test" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    client.post("/logout", data={"csrf_token": csrf(client, "/")})
    assert client.get("/").status_code == 302


def test_secure_cookie_when_configured(tmp_path, migrated_template):
    cfg = make_config(tmp_path, session_cookie_secure=True)
    prepare_db(cfg, migrated_template)
    rt = Runtime(cfg)
    try:
        with rt.db.session() as s:
            account, _ = create_account(s, "Acme")
            create_user(s, account.id, "alice@acme.test", PASSWORD)
        client = create_app(runtime=rt).test_client()
        assert "Secure" in sign_in(client).headers["Set-Cookie"]
    finally:
        rt.shutdown()


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_next_never_leaves_the_site(client, user, target):
    assert sign_in(client, next_=target).headers["Location"] == "/"


def test_sign_in_failure_does_not_say_which_part_was_wrong(client, user):
    for email, password in (("alice@acme.test", "wrong-password"), ("nobody@acme.test", PASSWORD)):
        r = sign_in(client, email, password)
        assert r.status_code == 401 and "Wrong email or password." in r.text


def test_posts_need_the_csrf_token(client, user):
    assert client.post("/login", data={"email": "alice@acme.test", "password": PASSWORD}).status_code == 400
    sign_in(client)
    r = client.post("/keys", data={"name": "x", "csrf_token": "forged"})
    assert r.status_code == 400 and "form expired" in r.text
    created = client.post("/keys", data={"name": "x", "csrf_token": csrf(client, "/keys")})
    assert created.status_code == 303 and created.headers["Location"].endswith("/keys")  # POST-redirect-GET


def test_session_reads_but_never_writes_the_json_api(client, user):
    sign_in(client)
    assert client.get("/v1/keys").status_code == 200
    assert client.post("/v1/keys", json={"name": "via cookie"}).status_code == 401
    # an explicit bearer key still wins over the session
    assert client.get("/v1/keys", headers={"Authorization": "Bearer aex_bad_key"}).status_code == 401


def test_a_deleted_user_is_signed_out(client, runtime, user):
    sign_in(client)
    with runtime.db.session() as s:
        s.delete(s.query(User).filter_by(email="alice@acme.test").one())
    assert client.get("/").status_code == 302
    assert client.get("/v1/keys").status_code == 401


@pytest.mark.parametrize(("identifiers", "attributes", "expected"), [
    (["email_sha256"], ["first_name"], [("email", "email_sha256", ["normalize_email", "sha256"]),
                                        ("first_name", "first_name", []), ("country", "", [])]),
    (["email", "email_sha256"], None, [("email", "email", ["normalize_email"]), ("first_name", "first_name", []),
                                       ("country", "country", [])]),
    (["customer_id"], [], [("email", "", []), ("first_name", "", []), ("country", "", [])]),
])
def test_suggested_mapping_matches_names(identifiers, attributes, expected):
    rows = suggest_mapping(["email", "first_name", "country"], identifiers, attributes)
    assert [(r["source"], r["target"], r["transform"]) for r in rows] == expected


def test_suggested_mapping_hashes_phones_and_keeps_targets_unique():
    rows = suggest_mapping(["phone", "phone_e164", "customer_id"], ["phone_sha256", "customer_id"], [])
    assert [(r["source"], r["target"]) for r in rows] == [
        ("phone", "phone_sha256"), ("phone_e164", ""), ("customer_id", "customer_id")]
    assert rows[0]["transform"] == ["normalize_phone", "sha256"]


def test_schedule_from_form_and_preview():
    now = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    at, errors = schedule_from_form(MultiDict({"when": "at", "at": "2026-04-01T06:30", "timezone": "Europe/Paris"}))
    assert not errors and at == {"type": "at", "at": "2026-04-01T06:30:00+02:00"}
    shown = preview(at, now)
    assert shown["description"] == "Once at 2026-04-01 06:30 (UTC+02:00)"
    assert [r["utc"] for r in shown["runs"]] == ["2026-04-01 04:30 UTC"]
    every, _ = schedule_from_form(MultiDict({"when": "interval", "every_count": "90", "every_unit": "minutes"}))
    assert every == {"type": "interval", "every": "PT90M"}
    assert len(preview(every, now)["runs"]) == 5
    _, errors = schedule_from_form(MultiDict({"when": "interval", "every_count": "0"}))
    assert "schedule.every" in errors
    cron, _ = schedule_from_form(MultiDict({"when": "cron", "cron": "0 6 * * *", "timezone": "Mars/Base"}))
    assert "schedule.timezone" in preview(cron, now)["errors"]
    past, _ = schedule_from_form(MultiDict({"when": "at", "at": "2020-01-01T00:00", "timezone": "UTC"}))
    assert "in the past" in preview(past, now)["errors"]["schedule.at"][0]


def test_cancel_a_queued_job_then_cancel_again(client, runtime, user):
    from exchange.catalog.endpoints import register_endpoint
    from exchange.models import Audience
    from exchange.shares.service import create_share, run_share_now

    with runtime.db.session() as s:
        crm, _, _ = register_endpoint(runtime, s, user["account"], {
            "name": "CDP", "producer": {"transport": "push"}, "identifiers": ["email"]})
        ads, _, _ = register_endpoint(runtime, s, user["account"], {
            "name": "Ads", "consumer": {"transport": "pull"}, "identifiers": ["email_sha256"]})
        aud = Audience(account_id=user["account"], endpoint_id=crm.id, external_id="loyal", name="Loyal",
                       identifiers=["email"], attributes=[])
        s.add(aud)
        s.flush()
        share = create_share(runtime, s, user["account"], {
            "audience_id": aud.id, "destination_id": ads.id, "mode": "add", "delta": False,
            "reject_threshold": 0.1, "schedule": {"type": "interval", "every": "PT1H"},
            "mapping": [{"source": "email", "target": "email_sha256", "transform": ["normalize_email", "sha256"]}]})
        job = run_share_now(runtime, s, user["account"], share.id)
    sign_in(client)  # no workers run here: the job stays queued
    page = client.get(f"/jobs/{job.id}")
    assert 'data-terminal="false"' in page.text and "Cancel job" in page.text
    token = csrf(client, f"/jobs/{job.id}")
    r = client.post(f"/jobs/{job.id}/cancel", data={"csrf_token": token}, follow_redirects=True)
    assert "Cancellation requested." in r.text and 'data-state="cancelled"' in r.text
    r = client.post(f"/jobs/{job.id}/cancel", data={"csrf_token": token}, follow_redirects=True)
    assert "The job already ended (cancelled)." in r.text
    shares = client.get("/shares").text
    assert "Every hour" in shares and "Loyal" in shares and "Ads" in shares
