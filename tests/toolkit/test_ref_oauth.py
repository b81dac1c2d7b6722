"""The reference endpoint as an OAuth 2.0 authorization server (RFC 6749 §4.1, RFC 7636, RFC 7009)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from exchange.toolkit.ref_oauth import OAuthSettings
from exchange.toolkit.reference_endpoint import ReferenceEndpoint

REDIRECT = "https://exchange.example/v1/connect/callback"
VERIFIER = "v" * 64


@pytest.fixture
def server(tmp_path):
    settings = OAuthSettings(client_id="cid", client_secret="csecret", redirect_uris=[REDIRECT],
                             state_file=str(tmp_path / "tokens.json"))
    with ReferenceEndpoint(consumer_dir=tmp_path / "c", oauth=settings) as ep:
        yield ep


def _authorize(ep, **override) -> requests.Response:
    params = {"response_type": "code", "client_id": "cid", "redirect_uri": REDIRECT, "scope": "audiences",
              "state": "xyz", "code_challenge": create_s256_code_challenge(VERIFIER),
              "code_challenge_method": "S256", **override}
    params = {k: v for k, v in params.items() if v is not None}
    return requests.post(f"{ep.url}/oauth/authorize?{urlencode(params)}", data={"decision": "allow"},
                         allow_redirects=False, timeout=5)


def _code(ep) -> str:
    r = _authorize(ep)
    assert r.status_code == 302, r.text
    q = parse_qs(urlsplit(r.headers["Location"]).query)
    assert q["state"] == ["xyz"]
    return q["code"][0]


def _token(ep, auth=("cid", "csecret"), **form) -> requests.Response:
    return requests.post(f"{ep.url}/oauth/token", data=form, auth=auth, timeout=5)


def test_code_flow_with_pkce_refresh_rotation_and_revocation(server, tmp_path):
    r = _token(server, grant_type="authorization_code", code=_code(server), redirect_uri=REDIRECT,
               code_verifier=VERIFIER)
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["token_type"].lower() == "bearer" and token["refresh_token"] and token["expires_in"] == 3600
    h = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(f"{server.url}/audiences", headers=h, timeout=5).status_code == 404  # authorized: no producer
    assert requests.get(f"{server.url}/audiences", timeout=5).status_code == 401
    # refresh rotates the refresh token; the old one is refused afterwards
    new = _token(server, grant_type="refresh_token", refresh_token=token["refresh_token"])
    assert new.status_code == 200 and new.json()["refresh_token"] != token["refresh_token"]
    again = _token(server, grant_type="refresh_token", refresh_token=token["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert "tokens.json" in {p.name for p in tmp_path.iterdir()}
    r = requests.post(f"{server.url}/oauth/revoke", data={"token": new.json()["refresh_token"],
                                                          "token_type_hint": "refresh_token"},
                      auth=("cid", "csecret"), timeout=5)
    assert r.status_code == 200
    assert _token(server, grant_type="refresh_token", refresh_token=new.json()["refresh_token"]).status_code == 400


def test_pkce_and_client_checks(server):
    # PKCE is required, and only S256
    r = _authorize(server, code_challenge=None, code_challenge_method=None)
    assert r.status_code == 400 and "PKCE with S256 is required" in r.text
    assert _authorize(server, code_challenge_method="plain").status_code == 400
    # an unregistered redirect URI is never redirected to
    r = _authorize(server, redirect_uri="https://evil.example/cb")
    assert r.status_code == 400 and "Location" not in r.headers
    code = _code(server)
    wrong = _token(server, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier="w" * 64)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    code = _code(server)
    bad_client = _token(server, auth=("cid", "nope"), grant_type="authorization_code", code=code,
                        redirect_uri=REDIRECT, code_verifier=VERIFIER)
    assert bad_client.status_code == 401 and bad_client.json()["error"] == "invalid_client"
    ok = _token(server, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=VERIFIER)
    assert ok.status_code == 200
    replay = _token(server, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=VERIFIER)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"


def test_tokens_survive_a_restart(tmp_path):
    settings = OAuthSettings(client_id="cid", client_secret="csecret", redirect_uris=[REDIRECT],
                             state_file=str(tmp_path / "tokens.json"))
    with ReferenceEndpoint(consumer_dir=tmp_path / "c", oauth=settings) as ep:
        token = _token(ep, grant_type="authorization_code", code=_code(ep), redirect_uri=REDIRECT,
                       code_verifier=VERIFIER).json()
    with ReferenceEndpoint(consumer_dir=tmp_path / "c", oauth=settings) as ep:
        assert ep.app.oauth_store.valid(token["access_token"])
        assert _token(ep, grant_type="refresh_token", refresh_token=token["refresh_token"]).status_code == 200
