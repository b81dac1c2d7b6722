"""OAuth 2.0 client side of Click to Connect, on Authlib (RFC 6749 authorization code + RFC 7636 PKCE).

Every call to a provider's token or revocation endpoint goes through the exchange's guarded
outbound session (:meth:`Runtime.http`): the same address policy, timeouts and no-redirect rule for
POSTs as every other outbound call.
"""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import requests
from authlib.integrations.requests_client.oauth2_session import OAuth2Auth, OAuth2ClientAuth
from authlib.oauth2.client import OAuth2Client
from authlib.oauth2.rfc6749.errors import OAuth2Error

from ..errors import InvalidCredentials, PermanentTransferError, RetryableTransferError, TransferError
from ..models import Application

if TYPE_CHECKING:
    from ..runtime import Runtime

# refresh this long before the provider's expiry, so a call never starts with a token about to lapse
REFRESH_LEEWAY_SECONDS = 60


class OAuthRefused(InvalidCredentials):
    """The provider's token endpoint answered with an OAuth error (invalid_grant, invalid_client...)."""

    def __init__(self, error: str, description: str | None = None):
        detail = f"The provider refused: {error}" + (f" ({description[:200]})" if description else "")
        super().__init__(detail)
        self.error = error


class _Client(OAuth2Client):
    """Authlib's generic OAuth 2.0 client over any requests-compatible session."""

    client_auth_class = OAuth2ClientAuth
    token_auth_class = OAuth2Auth
    oauth_error_class = OAuth2Error


def client(rt: Runtime, app: Application, session: requests.Session | None = None, *,
           redirect_uri: str | None = None) -> _Client:
    auth = app.spec.get("auth") or {}
    secret = rt.secrets.decrypt(app.client_secret_enc) if app.client_secret_enc else None
    return _Client(session if session is not None else rt.http(), client_id=auth.get("client_id"),
                   client_secret=secret,
                   token_endpoint_auth_method=auth.get("token_endpoint_auth_method") or "client_secret_basic",
                   scope=" ".join(auth.get("scopes") or []) or None, redirect_uri=redirect_uri,
                   code_challenge_method="S256")


def authorization_url(rt: Runtime, app: Application, *, redirect_uri: str, state: str,
                      code_verifier: str) -> str:
    url, _ = client(rt, app, session=requests.Session(), redirect_uri=redirect_uri).create_authorization_url(
        app.spec["auth"]["authorize_url"], state=state, code_verifier=code_verifier)
    return url


def _token_call(fn, what: str) -> dict:
    """Run a token request; every failure becomes an exchange error with a clear message."""
    try:
        token = fn()
    except OAuth2Error as exc:
        raise OAuthRefused(exc.error or "error", exc.description) from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status >= 500 or status in (408, 429):
            raise RetryableTransferError(f"The provider's token endpoint failed during {what} (HTTP {status}).",
                                         status=502) from None
        raise OAuthRefused(f"HTTP {status}") from None
    except requests.RequestException as exc:
        raise RetryableTransferError(f"The provider's token endpoint could not be reached during {what} "
                                     f"({type(exc).__name__}).", status=502) from None
    except ValueError:
        raise PermanentTransferError(f"The provider's token endpoint did not answer a token during {what} "
                                     "(not a JSON object).") from None
    except TransferError:
        raise
    return normalize_token(dict(token), what)


def normalize_token(token: dict, what: str, previous: dict | None = None) -> dict:
    """The fields kept of a token response (RFC 6749 §5.1), validated."""
    access = token.get("access_token")
    if not isinstance(access, str) or not access or len(access) > 8192:
        raise PermanentTransferError(f"The provider's token endpoint answered without an access_token during {what}.")
    kind = str(token.get("token_type") or "bearer")
    if kind.lower() != "bearer":
        raise PermanentTransferError(f"The provider issued a '{kind[:40]}' token; only bearer tokens are supported.")
    expires_at = token.get("expires_at")
    if expires_at is None and token.get("expires_in") is not None:
        try:
            expires_at = int(time.time()) + int(token["expires_in"])
        except (TypeError, ValueError):
            expires_at = None
    refresh = token.get("refresh_token") or (previous or {}).get("refresh_token")
    return {"access_token": access, "token_type": "bearer", "refresh_token": refresh,
            "expires_at": int(expires_at) if expires_at is not None else None,
            "scope": token.get("scope") or (previous or {}).get("scope")}


def exchange_code(rt: Runtime, app: Application, *, code: str, redirect_uri: str, code_verifier: str) -> dict:
    """The authorization code → tokens, with client authentication and the PKCE verifier."""
    with rt.http() as http:
        c = client(rt, app, http, redirect_uri=redirect_uri)
        return _token_call(lambda: c.fetch_token(app.spec["auth"]["token_url"], grant_type="authorization_code",
                                                 code=code, redirect_uri=redirect_uri,
                                                 code_verifier=code_verifier), "the code exchange")


def refresh(rt: Runtime, app: Application, token: dict) -> dict:
    if not token.get("refresh_token"):
        raise OAuthRefused("no refresh token", "the provider did not issue one; reconnect the application")
    with rt.http() as http:
        c = client(rt, app, http)
        new = _token_call(lambda: c.refresh_token(app.spec["auth"]["token_url"],
                                                  refresh_token=token["refresh_token"]), "the token refresh")
    return normalize_token(new, "the token refresh", previous=token)


def revoke(rt: Runtime, app: Application, token: dict) -> bool:
    """Best effort RFC 7009 revocation of the refresh (else access) token; True if the provider accepted."""
    url = (app.spec.get("auth") or {}).get("revocation_url")
    if not url:
        return False
    which = "refresh_token" if token.get("refresh_token") else "access_token"
    try:
        with rt.http() as http:
            resp = client(rt, app, http).revoke_token(url, token=token[which], token_type_hint=which)
        return resp.status_code == 200
    except Exception:  # noqa: BLE001 - the endpoint is deleted either way
        return False


def dumps(token: dict) -> str:
    return json.dumps(token, separators=(",", ":"))


def expiring(token: dict, now: float | None = None) -> bool:
    exp = token.get("expires_at")
    return exp is not None and exp - REFRESH_LEEWAY_SECONDS <= (now or time.time())
