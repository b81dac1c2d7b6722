"""Applications (provider side), review, and Click to Connect with a key or OAuth 2.0 consent.

The authorization server is the reference endpoint's own (Authlib, RFC 6749 §4.1 + RFC 7636 S256),
reached over loopback; the exchange's callback is driven through the Flask test client.
"""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import func, select

from exchange.applications import registry
from exchange.cli import main as cli
from exchange.models import Application, ConnectState, Endpoint
from exchange.toolkit.ref_oauth import OAuthSettings
from tests.conftest import new_account
from tests.fakes.protocol_endpoint import Fault, ProtocolEndpoint

CALLBACK = "http://localhost/v1/connect/callback"  # the test client's host


def _definition(url: str | None = None, **auth) -> dict:
    body = {"name": "Ads Cloud", "description": "An ad platform", "contact_url": url or "https://ads.example",
            "consumer": {"transport": "push", "max_rows_per_request": 1000, "gzip": False},
            "identifiers": ["email_sha256"], "attributes": ["country"]}
    if auth:
        body["auth"] = auth
    return body


def _oauth(url: str, **extra) -> dict:
    return {"type": "oauth2", "authorize_url": f"{url}/oauth/authorize", "token_url": f"{url}/oauth/token",
            "revocation_url": f"{url}/oauth/revoke", "client_id": "exchange", "client_secret": "s3cret-client",
            "scopes": ["audiences"], **extra}


def _approved(runtime, provider, body) -> dict:
    r = provider.post("/v1/applications", json=body)
    assert r.status_code == 201, r.json
    app = r.json
    assert provider.post(f"/v1/applications/{app['id']}/submit").json["state"] == "in_review"
    with runtime.db.session() as s:
        registry.approve(s, app["id"])
    return provider.get(f"/v1/applications/{app['id']}").json


@pytest.fixture
def provider(runtime, client):
    return new_account(runtime, client, "Ads Cloud Inc")


@pytest.fixture
def customer(runtime, client):
    return new_account(runtime, client, "Customer")


@pytest.fixture
def ads(tmp_path):
    """A consumer endpoint that is its own OAuth 2.0 authorization server."""
    settings = OAuthSettings(client_id="exchange", client_secret="s3cret-client", redirect_uris=[CALLBACK])
    with ProtocolEndpoint(consumer_dir=tmp_path / "ads", oauth=settings) as ep:
        yield ep


# ---------------------------------------------------------------- provider side


def test_define_submit_review_and_secrets(runtime, provider, customer, ads):
    r = provider.post("/v1/applications", json=_definition(ads.url, **_oauth(ads.url)))
    assert r.status_code == 201, r.json
    app = r.json
    assert app["state"] == "draft" and app["version"] == 1 and app["pending"] is None
    assert app["auth"]["has_client_secret"] is True and "client_secret" not in app["auth"]
    assert "s3cret-client" not in json.dumps(app)
    with runtime.db.session() as s:
        row = s.get(Application, app["id"])
        assert row.client_secret_enc and "s3cret-client" not in row.client_secret_enc
        assert runtime.secrets.decrypt(row.client_secret_enc) == "s3cret-client"
        assert "s3cret-client" not in json.dumps(row.spec)
    # editing a draft changes it; another account cannot see or edit it
    assert provider.patch(f"/v1/applications/{app['id']}", json={"description": "v1"}).json["description"] == "v1"
    assert customer.get(f"/v1/applications/{app['id']}").status_code == 404
    assert customer.patch(f"/v1/applications/{app['id']}", json={"name": "x"}).status_code == 404
    assert customer.post(f"/v1/applications/{app['id']}/submit").status_code == 404
    # not in the directory, not connectable before approval
    assert customer.get("/v1/applications?directory=true").json["items"] == []
    assert customer.post(f"/v1/applications/{app['id']}/connect", json={"method": "oauth2"}).status_code == 404
    # submit; editing while in review is a conflict; a second submit too
    assert provider.post(f"/v1/applications/{app['id']}/submit").json["state"] == "in_review"
    assert provider.patch(f"/v1/applications/{app['id']}", json={"name": "x"}).status_code == 409
    assert provider.post(f"/v1/applications/{app['id']}/submit").status_code == 409
    # rejected with a reason, edited, resubmitted, approved
    with runtime.db.session() as s:
        registry.reject(s, app["id"], "Describe the data you accept.")
    got = provider.get(f"/v1/applications/{app['id']}").json
    assert got["state"] == "rejected" and got["review_reason"] == "Describe the data you accept."
    r = provider.patch(f"/v1/applications/{app['id']}", json={"description": "Hashed emails"})
    assert r.json["state"] == "draft"
    provider.post(f"/v1/applications/{app['id']}/submit")
    with runtime.db.session() as s:
        registry.approve(s, app["id"])
    assert provider.get(f"/v1/applications/{app['id']}").json["state"] == "approved"
    # the directory shows it to any account, without URLs of the authorization server or secrets
    items = customer.get("/v1/applications?directory=true").json["items"]
    assert [i["id"] for i in items] == [app["id"]]
    entry = items[0]
    assert entry["provider"] == "Ads Cloud Inc" and entry["auth"] == {"type": "oauth2", "scopes": ["audiences"]}
    assert entry["consumer"]["transport"] == "push" and entry["identifiers"] == ["email_sha256"]
    text = json.dumps(entry)
    assert "s3cret" not in text and "client_id" not in text and "token_url" not in text
    # the caller's own list does not include other providers' applications
    assert customer.get("/v1/applications").json["items"] == []
    assert [i["id"] for i in provider.get("/v1/applications").json["items"]] == [app["id"]]


@pytest.mark.parametrize("body, field", [
    ({"auth": {"type": "oauth2", "authorize_url": "https://a.example/authorize"}}, "auth.token_url"),
    ({"auth": {"type": "oauth2", "authorize_url": "https://a.example/a", "token_url": "https://a.example/t",
               "client_id": "x"}}, "auth.client_secret"),
    ({"contact_url": None}, "contact_url"),
    ({"identifiers": []}, "identifiers"),
    ({"auth": {"type": "oauth2", "authorize_url": "https://a.example/a", "token_url": "https://a.example/t",
               "client_id": "x", "client_secret": "y", "scopes": ["has space"]}}, "auth.scopes.0"),
])
def test_invalid_definitions(provider, body, field):
    r = provider.post("/v1/applications", json={**_definition(), **body})
    assert r.status_code == 422, r.json
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert field in r.json["errors"], r.json


def test_oauth_endpoints_must_be_https_in_production(runtime, provider):
    runtime.config.allow_private_urls = False
    body = _definition(**{**_oauth("http://auth.example"), "client_secret": "x"})
    r = provider.post("/v1/applications", json=body)
    assert r.status_code == 422 and "auth.authorize_url" in r.json["errors"], r.json


def test_operator_cli_review(runtime, provider, monkeypatch):
    app = provider.post("/v1/applications", json=_definition()).json
    env = {"EXCHANGE_DATABASE_URL": runtime.config.database_url, "EXCHANGE_SECRET_KEY": "test-secret",
           "EXCHANGE_VAR_DIR": str(runtime.config.var_dir)}
    runner = CliRunner()
    r = runner.invoke(cli, ["applications", "approve", app["id"]], env=env)
    assert r.exit_code == 2 and "Nothing of this application is in review" in r.output
    provider.post(f"/v1/applications/{app['id']}/submit")
    r = runner.invoke(cli, ["applications", "list"], env=env)
    assert app["id"] in r.output and "in_review" in r.output
    r = runner.invoke(cli, ["applications", "reject", app["id"]], env=env)
    assert r.exit_code == 2  # --reason is required
    r = runner.invoke(cli, ["applications", "reject", app["id"], "--reason", "No contact page"], env=env)
    assert r.exit_code == 0, r.output
    assert provider.get(f"/v1/applications/{app['id']}").json["review_reason"] == "No contact page"
    provider.post(f"/v1/applications/{app['id']}/submit")
    r = runner.invoke(cli, ["applications", "approve", app["id"], "--reason", "Welcome"], env=env)
    assert r.exit_code == 0 and "approved" in r.output, r.output
    runtime.db.scoped.remove()
    assert provider.get(f"/v1/applications/{app['id']}").json["state"] == "approved"
    assert "nothing to review" in runner.invoke(cli, ["applications", "list"], env=env).output
    audit = [(e["actor"], e["action"]) for e in provider.get("/v1/audit").json["items"]]
    assert ("operator:cli", "application.approved") in audit and ("operator:cli", "application.rejected") in audit


def test_new_version_is_reviewed_and_moves_connected_endpoints(runtime, provider, customer):
    app = _approved(runtime, provider, _definition("https://ads.example/v1"))
    ep = customer.post(f"/v1/applications/{app['id']}/connect", json={"credential": "k-1"}).json
    # an edit opens version 2; the live version and the endpoint do not change yet
    r = provider.patch(f"/v1/applications/{app['id']}", json={"contact_url": "https://ads.example/v2",
                                                             "identifiers": ["email_sha256", "maid"]})
    assert r.status_code == 200, r.json
    assert r.json["state"] == "approved" and r.json["version"] == 1
    assert r.json["pending"]["state"] == "draft" and r.json["pending"]["version"] == 2
    assert r.json["pending"]["contact_url"] == "https://ads.example/v2" and r.json["contact_url"].endswith("/v1")
    assert provider.post(f"/v1/applications/{app['id']}/submit").json["pending"]["state"] == "in_review"
    assert customer.get(f"/v1/endpoints/{ep['id']}").json["contact_url"] == "https://ads.example/v1"
    with runtime.db.session() as s:
        registry.reject(s, app["id"], "maid needs a description")
    assert provider.get(f"/v1/applications/{app['id']}").json["pending"]["review_reason"] == "maid needs a description"
    provider.post(f"/v1/applications/{app['id']}/submit")
    with runtime.db.session() as s:
        registry.approve(s, app["id"])
    got = provider.get(f"/v1/applications/{app['id']}").json
    assert got["version"] == 2 and got["pending"] is None and got["contact_url"].endswith("/v2")
    assert got["connections"] == 1
    moved = customer.get(f"/v1/endpoints/{ep['id']}").json
    assert moved["contact_url"] == "https://ads.example/v2" and moved["identifiers"] == ["email_sha256", "maid"]
    assert moved["name"] == ep["name"]  # the account's own choice stays


# ---------------------------------------------------------------- connect with a key


def test_connect_with_key_and_what_the_account_may_change(runtime, provider, customer, other_api):
    app = _approved(runtime, provider, _definition())
    r = customer.post(f"/v1/applications/{app['id']}/connect", json={"credential": "cust-key", "name": "My ads"})
    assert r.status_code == 201, r.json
    ep = r.json
    assert ep["application_id"] == app["id"] and ep["connection"] == "key" and ep["name"] == "My ads"
    assert ep["contact_url"] == "https://ads.example" and ep["consumer"]["transport"] == "push"
    assert ep["identifiers"] == ["email_sha256"] and ep["has_credential"] is True
    assert ep["endpoint_key"].startswith("aex_")
    # the same shape as POST /v1/endpoints, plus application_id
    plain = customer.post("/v1/endpoints", json={"name": "Private", "contact_url": "https://p.example",
                                                 "consumer": {"transport": "push"}, "identifiers": ["email"]})
    assert plain.status_code == 201 and plain.json["application_id"] is None
    assert set(plain.json) == set(ep)
    with runtime.db.session() as s:
        row = s.get(Endpoint, ep["id"])
        assert runtime.secrets.decrypt(row.credential_enc) == "cust-key"
    # the account edits only name, credential and enablement
    for change in ({"contact_url": "https://evil.example"}, {"identifiers": ["email"]},
                   {"consumer": {"transport": "pull"}}, {"webhook_url": "https://hook.example"}):
        r = customer.patch(f"/v1/endpoints/{ep['id']}", json=change)
        assert r.status_code == 422, (change, r.json)
        assert "Defined by the application." in json.dumps(r.json["errors"])
    assert customer.patch(f"/v1/endpoints/{ep['id']}", json={"name": "Renamed"}).json["name"] == "Renamed"
    assert customer.patch(f"/v1/endpoints/{ep['id']}", json={"credential": "rotated"}).status_code == 200
    assert customer.post(f"/v1/endpoints/{ep['id']}/disable").json["status"] == "disabled"
    # the provider sees a count, never the customer's endpoint
    assert provider.get(f"/v1/applications/{app['id']}").json["connections"] == 1
    assert provider.get(f"/v1/endpoints/{ep['id']}").status_code == 404
    assert provider.get("/v1/endpoints").json["items"] == []
    # wrong method for the application; missing credential
    r = customer.post(f"/v1/applications/{app['id']}/connect", json={"method": "oauth2"})
    assert r.status_code == 422 and "method" in r.json["errors"]
    assert customer.post(f"/v1/applications/{app['id']}/connect", json={}).status_code == 422
    # deleting the endpoint ends the connection
    assert customer.delete(f"/v1/endpoints/{ep['id']}").status_code == 204
    assert provider.get(f"/v1/applications/{app['id']}").json["connections"] == 0


# ---------------------------------------------------------------- connect with OAuth 2.0


def _start(customer, app_id: str, **body) -> str:
    r = customer.post(f"/v1/applications/{app_id}/connect", json={"method": "oauth2", **body})
    assert r.status_code == 200, r.json
    return r.json["authorize_url"]


def _consent(authorize_url: str, decision: str = "allow") -> str:
    """The user's browser at the provider: the consent page, then the decision; returns the redirect."""
    page = requests.get(authorize_url, timeout=5)
    assert page.status_code == 200 and "Allow" in page.text, page.text
    r = requests.post(authorize_url, data={"decision": decision}, allow_redirects=False, timeout=5)
    assert r.status_code == 302, r.text
    return r.headers["Location"]


def _callback(client, location: str, **headers):
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == CALLBACK
    return client.get(f"{parts.path}?{parts.query}", headers=headers)


def _count(runtime, model) -> int:
    with runtime.db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_oauth_consent_creates_endpoint_with_tokens(runtime, client, provider, customer, ads):
    app = _approved(runtime, provider, _definition(ads.url, **_oauth(ads.url)))
    url = _start(customer, app["id"], name="Ads via consent", return_to="/endpoints?connected=1")
    q = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{ads.url}/oauth/authorize?")
    assert q["response_type"] == ["code"] and q["client_id"] == ["exchange"]
    assert q["redirect_uri"] == [CALLBACK] and q["scope"] == ["audiences"]
    assert q["code_challenge_method"] == ["S256"] and len(q["code_challenge"][0]) == 43
    assert len(q["state"][0]) >= 32
    with runtime.db.session() as s:  # the state is stored hashed only
        assert s.scalar(select(ConnectState.state_hash)) != q["state"][0]
    location = _consent(url)
    r = _callback(client, location)
    assert r.status_code == 302 and r.headers["Location"] == "/endpoints?connected=1", r.data
    eps = customer.get("/v1/endpoints").json["items"]
    assert len(eps) == 1 and eps[0]["name"] == "Ads via consent" and eps[0]["connection"] == "oauth2"
    assert eps[0]["application_id"] == app["id"] and eps[0]["contact_url"] == ads.url
    # the token exchange authenticated the client and sent the PKCE verifier
    token_calls = ads.requests_to("POST", "/oauth/token")
    assert len(token_calls) == 1
    assert token_calls[0].header("Authorization").startswith("Basic ")
    form = parse_qs(token_calls[0].text)
    assert form["grant_type"] == ["authorization_code"] and len(form["code_verifier"][0]) == 64
    assert form["redirect_uri"] == [CALLBACK]
    with runtime.db.session() as s:
        row = s.get(Endpoint, eps[0]["id"])
        token = json.loads(runtime.secrets.decrypt(row.credential_enc))
        assert ads.app.oauth_store.valid(token["access_token"]) and token["refresh_token"]
        assert token["access_token"] not in row.credential_enc
    audit = customer.get("/v1/audit").json["items"]
    assert any(e["action"] == "endpoint.connected" and e["object_id"] == eps[0]["id"] for e in audit)
    # replaying the same callback creates nothing more
    r = _callback(client, location, Accept="application/json")
    assert r.status_code == 400 and "already used" in r.json["detail"]
    assert _count(runtime, Endpoint) == 1


def test_default_return_is_the_endpoint_page(runtime, client, provider, customer, ads):
    app = _approved(runtime, provider, _definition(ads.url, **_oauth(ads.url)))
    r = _callback(client, _consent(_start(customer, app["id"])))
    ep = customer.get("/v1/endpoints").json["items"][0]
    assert r.status_code == 302 and r.headers["Location"] == f"/endpoints/{ep['id']}"


def test_denied_consent_creates_nothing(runtime, client, provider, customer, ads):
    app = _approved(runtime, provider, _definition(ads.url, **_oauth(ads.url)))
    location = _consent(_start(customer, app["id"]), "deny")
    assert "error=access_denied" in location
    r = _callback(client, location, Accept="text/html")
    assert r.status_code == 400 and r.mimetype == "text/html"
    assert b"You declined the connection" in r.data and b"No endpoint was created" in r.data
    r = _callback(client, location, Accept="application/json")  # the state is used up as well
    assert r.status_code == 400 and r.headers["Content-Type"].startswith("application/problem+json")
    assert _count(runtime, Endpoint) == 0 and not ads.requests_to("POST", "/oauth/token")


@pytest.mark.parametrize("query, message", [
    ("code=abc", "no state"),
    ("code=abc&state=forged-state-value", "unknown"),
    ("state=", "no state"),
])
def test_bad_state(runtime, client, provider, customer, ads, query, message):
    app = _approved(runtime, provider, _definition(ads.url, **_oauth(ads.url)))
    _start(customer, app["id"])
    r = client.get(f"/v1/connect/callback?{query}", headers={"Accept": "application/json"})
    assert r.status_code == 400 and message in r.json["detail"], r.json
    assert _count(runtime, Endpoint) == 0


def test_expired_state(runtime, client, provider, customer, ads):
    from datetime import timedelta

    from exchange.models import utcnow

    app = _approved(runtime, provider, _definition(ads.url, **_oauth(ads.url)))
    location = _consent(_start(customer, app["id"]))
    with runtime.db.session() as s:
        s.scalar(select(ConnectState)).expires_at = utcnow() - timedelta(seconds=1)
    r = _callback(client, location, Accept="application/json")
    assert r.status_code == 400 and "expired" in r.json["detail"]
    assert _count(runtime, Endpoint) == 0 and not ads.requests_to("POST", "/oauth/token")


def test_state_is_bound_to_the_account(runtime, client, provider, customer, other_api, ads):
    """A state started by one account is refused when the browser is signed in to another."""
    from exchange.auth.users import create_user

    app = _approved(runtime, provider, _definition(ads.url, **_oauth(ads.url)))
    location = _consent(_start(customer, app["id"]))
    with runtime.db.session() as s:
        create_user(s, other_api.account_id, "mallory@other.example", "correct horse battery")
    login = client.get("/login")
    assert login.status_code == 200
    import re
    csrf = re.search(rb'name="csrf_token" value="([^"]+)"', login.data).group(1).decode()
    client.post("/login", data={"email": "mallory@other.example", "password": "correct horse battery",
                                "csrf_token": csrf})
    r = _callback(client, location, Accept="application/json")
    assert r.status_code == 403, r.json
    assert _count(runtime, Endpoint) == 0


@pytest.mark.parametrize("fault, message", [
    (Fault(status=503), "failed during the code exchange (HTTP 503)"),
    (Fault(status=200, body="<html>hello</html>", content_type="text/html"), "not a JSON object"),
    (Fault(status=200, body={"token_type": "bearer"}), "without an access_token"),
    (Fault(status=400, body={"error": "invalid_grant"}), "invalid_grant"),
    (Fault(drop_connection=True), "could not be reached"),
])
def test_token_endpoint_failures(runtime, client, provider, customer, ads, fault, message):
    app = _approved(runtime, provider, _definition(ads.url, **_oauth(ads.url)))
    location = _consent(_start(customer, app["id"]))
    ads.script("POST", "/oauth/token", [fault])
    r = _callback(client, location, Accept="application/json")
    assert r.status_code == 502 and message in r.json["detail"], r.json
    assert "Nothing was connected" in r.json["detail"]
    assert _count(runtime, Endpoint) == 0


def test_token_endpoint_down(runtime, client, provider, customer, tmp_path):
    """The authorization server answers the consent, then is gone when the exchange calls it."""
    settings = OAuthSettings(client_id="exchange", client_secret="s3cret-client", redirect_uris=[CALLBACK])
    ads = ProtocolEndpoint(consumer_dir=tmp_path / "ads", oauth=settings).start()
    app = _approved(runtime, provider, _definition(ads.url, **_oauth(ads.url)))
    location = _consent(_start(customer, app["id"]))
    ads.stop()
    r = _callback(client, location, Accept="text/html")
    assert r.status_code == 502 and r.mimetype == "text/html" and b"could not be reached" in r.data
    assert _count(runtime, Endpoint) == 0


def test_wrong_redirect(runtime, client, provider, customer, ads):
    """A redirect URI the provider did not register is refused at the provider, never redirected to;
    a callback on another address than the one the flow started with is refused by the exchange."""
    app = _approved(runtime, provider, _definition(ads.url, **_oauth(ads.url)))
    url = _start(customer, app["id"])
    evil = url.replace("localhost%2Fv1", "evil.example%2Fv1")
    assert evil != url
    r = requests.get(evil, allow_redirects=False, timeout=5)
    assert r.status_code == 400 and "redirect" in r.text.lower()
    location = _consent(url)
    runtime.config.public_url = "https://exchange.example"  # the exchange now answers elsewhere
    r = client.get(f"/v1/connect/callback?{urlsplit(location).query}", headers={"Accept": "application/json"})
    assert r.status_code == 400 and "different address" in r.json["detail"]
    assert _count(runtime, Endpoint) == 0


def test_return_to_must_stay_on_site(runtime, provider, customer, ads):
    app = _approved(runtime, provider, _definition(ads.url, **_oauth(ads.url)))
    for bad in ("https://evil.example/x", "//evil.example/x", "endpoints", "/\\evil.example"):
        r = customer.post(f"/v1/applications/{app['id']}/connect", json={"method": "oauth2", "return_to": bad})
        assert r.status_code == 422 and "return_to" in r.json["errors"], (bad, r.json)
    r = customer.post(f"/v1/applications/{app['id']}/connect", json={"method": "oauth2", "credential": "x"})
    assert r.status_code == 422
    r = customer.post(f"/v1/applications/{app['id']}/connect", json={"credential": "x"})
    assert r.status_code == 422 and "method" in r.json["errors"]


def test_deleting_revokes_at_the_provider(runtime, client, provider, customer, ads):
    app = _approved(runtime, provider, _definition(ads.url, **_oauth(ads.url)))
    _callback(client, _consent(_start(customer, app["id"])))
    ep = customer.get("/v1/endpoints").json["items"][0]
    with runtime.db.session() as s:
        token = json.loads(runtime.secrets.decrypt(s.get(Endpoint, ep["id"]).credential_enc))
    assert customer.patch(f"/v1/endpoints/{ep['id']}", json={"credential": "pasted"}).status_code == 422
    assert customer.delete(f"/v1/endpoints/{ep['id']}").status_code == 204
    revoke = ads.requests_to("POST", "/oauth/revoke")
    assert len(revoke) == 1 and parse_qs(revoke[0].text)["token_type_hint"] == ["refresh_token"]
    assert ads.app.oauth_store.by_refresh(token["refresh_token"]) is None


def test_key_rotation_covers_application_secrets(runtime, provider, customer, ads):
    from exchange.auth.secrets_rotation import rotate_all
    from exchange.secrets import SecretBox

    app = _approved(runtime, provider, _definition(ads.url, **_oauth(ads.url), ))
    _start(customer, app["id"])
    runtime.config.old_secret_keys, runtime.config.secret_key = runtime.config.secret_key, "a-new-key"
    runtime.__dict__.pop("secrets", None)
    assert rotate_all(runtime) >= 2
    new_only = SecretBox(["a-new-key"])
    with runtime.db.session() as s:
        assert new_only.decrypt(s.get(Application, app["id"]).client_secret_enc) == "s3cret-client"
        assert len(new_only.decrypt(s.scalar(select(ConnectState)).code_verifier_enc)) == 64


def test_export_lists_the_providers_applications_without_secrets(runtime, provider, ads):
    app = provider.post("/v1/applications", json=_definition(ads.url, **_oauth(ads.url))).json
    exported = provider.get("/v1/account/export")
    assert [a["id"] for a in exported.json["applications"]] == [app["id"]]
    assert "s3cret-client" not in exported.get_data(as_text=True)
