"""Sharing to an endpoint connected by OAuth 2.0 consent: the token obtained in the flow is what the
endpoint receives; it is refreshed before it expires and once on a 401; a refused refresh disables the
endpoint with an audit entry and a signed webhook."""
from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from exchange.applications import registry
from exchange.models import Account, AuditEntry, Endpoint
from exchange.net import generate_webhook_secret, verify_webhook
from exchange.toolkit.ref_oauth import OAuthSettings
from tests.e2e.conftest import register, wait_job
from tests.fakes.protocol_endpoint import ProtocolEndpoint

CALLBACK = "http://localhost/v1/connect/callback"
SECRET = generate_webhook_secret()
SOURCE = "email,country\nalice@example.com,FR\nbob@example.com,DE\n"


@pytest.fixture
def connected(live, tmp_path, httpserver):
    """The customer (live) connected the ads platform of a provider (live.other) by consent."""
    customer, provider = live, live.other
    settings = OAuthSettings(client_id="exchange", client_secret="client-secret", redirect_uris=[CALLBACK])
    ads = ProtocolEndpoint(consumer_dir=tmp_path / "ads", oauth=settings).start()
    hook = httpserver.url_for("/hooks")
    httpserver.expect_request("/hooks").respond_with_data("ok")
    httpserver.expect_request("/account-hooks").respond_with_data("ok")
    body = {"name": "Ads", "contact_url": ads.url, "consumer": {"transport": "push"},
            "identifiers": ["email"], "attributes": ["country"], "webhook_url": hook,
            "auth": {"type": "oauth2", "authorize_url": f"{ads.url}/oauth/authorize",
                     "token_url": f"{ads.url}/oauth/token", "client_id": "exchange",
                     "client_secret": "client-secret", "scopes": ["audiences"]}}
    created = provider.post("/v1/applications", json=body).json
    provider.post(f"/v1/applications/{created['id']}/submit")
    with live.rt.db.session() as s:
        registry.approve(s, created["id"])
    url = customer.post(f"/v1/applications/{created['id']}/connect", json={"method": "oauth2"}).json["authorize_url"]
    location = requests.post(url, data={"decision": "allow"}, allow_redirects=False, timeout=5).headers["Location"]
    parts = urlsplit(location)
    assert customer.client.get(f"{parts.path}?{parts.query}").status_code == 302
    dest = customer.get("/v1/endpoints").json["items"][0]
    producer = register(customer, name="CDP", producer={"transport": "push"}, identifiers=["email"],
                        attributes=["country"])
    h = {"Authorization": f"Bearer {producer['endpoint_key']}", "Content-Type": "text/csv"}
    assert customer.client.put(f"/v1/endpoints/{producer['id']}/audiences/loyal/data", data=SOURCE.encode(),
                               headers=h).status_code == 200
    aud = customer.get("/v1/audiences").json["items"][0]
    share = {"audience_id": aud["id"], "destination_id": dest["id"], "destination_audience": "Loyal",
             "mapping": [{"source": "email", "target": "email"}, {"source": "country", "target": "country"}],
             "mode": "add"}
    yield ads, dest, share, httpserver
    ads.stop()


def _token(live, endpoint_id: str) -> dict:
    with live.rt.db.session() as s:
        return json.loads(live.rt.secrets.decrypt(s.get(Endpoint, endpoint_id).credential_enc))


def _set_token(live, endpoint_id: str, **changes) -> None:
    with live.rt.db.session() as s:
        ep = s.get(Endpoint, endpoint_id)
        token = {**json.loads(live.rt.secrets.decrypt(ep.credential_enc)), **changes}
        ep.credential_enc = live.rt.secrets.encrypt(json.dumps(token))


def _run(live, share: dict) -> dict:
    r = live.post("/v1/shares", json=share)
    assert r.status_code == 201, r.json
    return wait_job(live, r.json["last_job_id"])


def _grants(ads) -> list[str]:
    return [parse_qs(r.text)["grant_type"][0] for r in ads.requests_to("POST", "/oauth/token")]


def test_share_carries_the_token_from_the_consent(live, connected):
    ads, dest, share, _ = connected
    job = _run(live, share)
    assert job["state"] == "succeeded", job
    posts = ads.requests_to("POST", "/audiences/Loyal/data")
    token = _token(live, dest["id"])
    assert posts and all(p.header("Authorization") == f"Bearer {token['access_token']}" for p in posts)
    assert ads.app.oauth_store.valid(token["access_token"])
    assert _grants(ads) == ["authorization_code"]
    assert ads.consumer_file("Loyal").read_text().count("@example.com") == 2


def test_refreshed_before_it_expires(live, connected):
    ads, dest, share, _ = connected
    old = _token(live, dest["id"])
    _set_token(live, dest["id"], expires_at=int(time.time()) + 5)  # within the refresh leeway
    ads.app.oauth_store.expire_all()
    job = _run(live, share)
    assert job["state"] == "succeeded", job
    new = _token(live, dest["id"])
    assert new["access_token"] != old["access_token"] and new["refresh_token"] != old["refresh_token"]
    assert new["expires_at"] > time.time() + 3000
    assert _grants(ads) == ["authorization_code", "refresh_token"]
    statuses = [p.status for p in ads.requests_to("POST", "/audiences/Loyal/data")]
    assert statuses == [200]  # no call went out with the expired token


def test_refreshed_once_on_401(live, connected):
    ads, dest, share, _ = connected
    old = _token(live, dest["id"])
    ads.app.oauth_store.expire_all()  # the provider dropped the token early; the exchange does not know
    job = _run(live, share)
    assert job["state"] == "succeeded", job
    posts = ads.requests_to("POST", "/audiences/Loyal/data")
    assert [p.status for p in posts] == [401, 200]
    assert posts[0].header("Authorization") == f"Bearer {old['access_token']}"
    assert posts[1].header("Authorization") == f"Bearer {_token(live, dest['id'])['access_token']}"
    assert _grants(ads) == ["authorization_code", "refresh_token"]


def test_refused_refresh_disables_the_endpoint(live, connected):
    ads, dest, share, hooks = connected
    with live.rt.db.session() as s:
        account = s.get(Account, live.account_id)
        account.webhook_url = hooks.url_for("/account-hooks")
        account.webhook_secret_enc = live.rt.secrets.encrypt(SECRET)
    ads.app.oauth_store.revoke_all()  # access and refresh tokens are no longer valid
    job = _run(live, share)
    assert job["state"] == "failed"
    assert "refused to renew" in job["error"]["detail"] and "disabled" in job["error"]["detail"]
    got = live.get(f"/v1/endpoints/{dest['id']}").json
    assert got["status"] == "disabled" and "Reconnect" in got["last_refresh_error"]
    assert [p.status for p in ads.requests_to("POST", "/audiences/Loyal/data")] == [401]  # refreshed once only
    with live.rt.db.session() as s:
        entries = s.query(AuditEntry).filter_by(account_id=live.account_id, action="endpoint.disabled").all()
        assert [(e.actor, e.object_id) for e in entries] == [("system:oauth2", dest["id"])]
    deadline = time.monotonic() + 5
    bodies: dict = {}
    while len(bodies) < 2 and time.monotonic() < deadline:
        for req, _resp in list(hooks.log):
            body = json.loads(req.data)
            if body["type"] == "endpoint.disabled":
                bodies[req.path] = body
                if req.path == "/account-hooks":
                    verify_webhook(SECRET, dict(req.headers), req.data)
        time.sleep(0.05)
    assert bodies["/account-hooks"]["data"]["endpoint_id"] == dest["id"]
    assert "refused to renew" in bodies["/account-hooks"]["data"]["reason"]
    assert bodies["/hooks"]["data"]["endpoint_id"] == dest["id"]
