"""The reference endpoint as its own OAuth 2.0 authorization server (Authlib), for Click to Connect.

Mounted under ``/oauth`` of the reference endpoint when it is given an :class:`OAuthSettings`:

* ``GET /oauth/authorize`` — the consent page (authorization code grant, RFC 6749 §4.1; PKCE is
  required, RFC 7636, S256 only); ``POST`` with ``decision=allow|deny`` answers it.
* ``POST /oauth/token`` — ``authorization_code`` (with ``code_verifier``) and ``refresh_token``
  grants; clients authenticate with ``client_secret_basic`` or ``client_secret_post``.
* ``POST /oauth/revoke`` — RFC 7009 token revocation.

Access tokens it issues are accepted as the bearer credential by the endpoint's protocol routes
(:meth:`TokenStore.valid`). Everything is kept in memory: a restart forgets tokens (providers
running this in production would store them). There is one resource owner, the endpoint's owner,
so the consent page asks no password.
"""
from __future__ import annotations

import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from html import escape

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, request

CODE_TTL = 600


@dataclass
class OAuthSettings:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    scopes: list[str] = field(default_factory=lambda: ["audiences"])
    access_token_ttl: int = 3600
    #: answer the consent page automatically (``"allow"``/``"deny"``), for scripted demos; None asks
    auto_decision: str | None = None
    #: keep issued tokens in this JSON file, so connections survive a restart (the demo); None: memory only
    state_file: str | None = None


class _Client:
    def __init__(self, s: OAuthSettings):
        self.s = s

    def get_client_id(self):
        return self.s.client_id

    def get_default_redirect_uri(self):
        return self.s.redirect_uris[0] if self.s.redirect_uris else None

    def get_allowed_scope(self, scope):
        if not scope:
            return ""
        return " ".join(x for x in scope.split() if x in self.s.scopes)

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.s.redirect_uris

    def check_client_secret(self, client_secret):
        return hmac.compare_digest(client_secret.encode(), self.s.client_secret.encode())

    def check_endpoint_auth_method(self, method, endpoint):
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class _Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    expires_at: float

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def is_expired(self):
        return time.time() > self.expires_at


@dataclass
class _Token:
    client_id: str
    access_token: str
    refresh_token: str | None
    scope: str
    issued_at: float
    expires_in: int
    revoked: bool = False

    def check_client(self, client):
        return client.get_client_id() == self.client_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return self.expires_in

    def is_expired(self):
        return time.time() > self.issued_at + self.expires_in

    def is_revoked(self):
        return self.revoked

    def get_user(self):
        return OWNER

    def get_client(self):
        return None


OWNER = object()  # the single resource owner


class TokenStore:
    """Codes and tokens in memory (thread-safe); tokens optionally saved to a JSON file."""

    def __init__(self, state_file: str | None = None):
        self.lock = threading.Lock()
        self.codes: dict[str, _Code] = {}
        self.tokens: list[_Token] = []
        self.refreshes = 0
        self.state_file = state_file
        if state_file and os.path.exists(state_file):
            with open(state_file, encoding="utf-8") as fh:
                self.tokens = [_Token(**t) for t in json.load(fh)]

    def save(self) -> None:
        """Write the tokens to ``state_file`` (owner-only); call with the lock held."""
        if not self.state_file:
            return
        now = time.time()
        keep = [asdict(t) for t in self.tokens if not t.revoked and now - t.issued_at < 30 * 86400]
        tmp = self.state_file + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(keep, fh)
        os.replace(tmp, self.state_file)

    def valid(self, access_token: str) -> bool:
        with self.lock:
            for t in self.tokens:
                if hmac.compare_digest(t.access_token.encode(), access_token.encode()):
                    return not t.revoked and not t.is_expired()
        return False

    def expire_all(self) -> None:
        """Make every access token expired now (tests and demos of the refresh path)."""
        with self.lock:
            for t in self.tokens:
                t.expires_in = -1

    def revoke_all(self) -> None:
        with self.lock:
            for t in self.tokens:
                t.revoked = True

    def by_refresh(self, refresh_token: str) -> _Token | None:
        with self.lock:
            return next((t for t in self.tokens if t.refresh_token == refresh_token and not t.revoked), None)


def create_oauth_app(settings: OAuthSettings, store: TokenStore | None = None, *, title: str = "Reference endpoint"
                     ) -> tuple[Flask, TokenStore]:
    """The Flask app serving ``/oauth/*`` and its token store."""
    store = store or TokenStore(settings.state_file)
    app = Flask("exchange.toolkit.ref_oauth")
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"authorization_code": settings.access_token_ttl,
                                             "refresh_token": settings.access_token_ttl}
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
    client = _Client(settings)

    def query_client(client_id):
        return client if client_id == settings.client_id else None

    def save_token(token, req):
        with store.lock:
            store.tokens.append(_Token(client_id=settings.client_id, access_token=token["access_token"],
                                       refresh_token=token.get("refresh_token"), scope=token.get("scope", ""),
                                       issued_at=time.time(), expires_in=int(token.get("expires_in", 3600))))
            store.save()

    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code, req):
            with store.lock:
                store.codes[code] = _Code(code=code, client_id=req.client.get_client_id(),
                                          redirect_uri=req.payload.redirect_uri or "", scope=req.payload.scope or "",
                                          code_challenge=req.payload.data.get("code_challenge") or "",
                                          code_challenge_method=req.payload.data.get("code_challenge_method") or "",
                                          expires_at=time.time() + CODE_TTL)

        def query_authorization_code(self, code, client):
            with store.lock:
                item = store.codes.get(code)
            if item and item.client_id == client.get_client_id() and not item.is_expired():
                return item
            return None

        def delete_authorization_code(self, authorization_code):
            with store.lock:
                store.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code):
            return OWNER

    class RefreshGrant(grants.RefreshTokenGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
        INCLUDE_NEW_REFRESH_TOKEN = True  # rotate refresh tokens

        def authenticate_refresh_token(self, refresh_token):
            token = store.by_refresh(refresh_token)
            return token if token and token.check_client(client) else None

        def authenticate_user(self, credential):
            return OWNER

        def revoke_old_credential(self, credential):
            with store.lock:
                credential.revoked = True
                store.refreshes += 1
                store.save()

    class Revocation(RevocationEndpoint):
        CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def query_token(self, token_string, token_type_hint):
            with store.lock:
                for t in store.tokens:
                    if token_string in (t.access_token, t.refresh_token):
                        return t
            return None

        def revoke_token(self, token, req):
            with store.lock:
                token.revoked = True
                store.save()

    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_grant(CodeGrant, [CodeChallenge(required=True)])
    server.register_grant(RefreshGrant)
    server.register_endpoint(Revocation)

    @app.route("/oauth/authorize", methods=["GET", "POST"])
    def authorize():
        try:
            grant = server.get_consent_grant(end_user=OWNER)
        except OAuth2Error as error:
            # a bad client or redirect_uri is never redirected to (RFC 6749 §4.1.2.1): show it here
            return _page("Authorization request refused",
                         f"<p role='alert'>{escape(error.error)}: {escape(error.description or '')}</p>"), 400
        if grant.request.payload.data.get("code_challenge_method", "plain") != "S256":
            return _page("Authorization request refused", "<p role='alert'>PKCE with S256 is required.</p>"), 400
        decision = request.form.get("decision") if request.method == "POST" else settings.auto_decision
        if decision is None:
            scope = grant.request.payload.scope or ""
            body = (f"<p>Audience Exchange asks to access <strong>{escape(title)}</strong>"
                    f"{' with the scopes ' + escape(scope) if scope else ''}.</p>"
                    f"<form method='post' action='?{escape(request.query_string.decode())}'>"
                    "<button name='decision' value='allow' type='submit'>Allow</button> "
                    "<button name='decision' value='deny' type='submit'>Deny</button></form>")
            return _page(f"Connect {title}", body)
        return server.create_authorization_response(grant=grant,
                                                    grant_user=OWNER if decision == "allow" else None)

    @app.route("/oauth/token", methods=["POST"])
    def token():
        return server.create_token_response()

    @app.route("/oauth/revoke", methods=["POST"])
    def revoke():
        return server.create_endpoint_response(Revocation.ENDPOINT_NAME)

    return app, store


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
            f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>")


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)
