"""Click to Connect: an account connects an approved application as one of its endpoints.

Two ways to give the credential (seed 003): paste the key the provider gave the user (``key``), or
consent at the provider (``oauth2``: authorization code with PKCE S256). The OAuth state is random,
stored only as a SHA-256 hash, single use, bound to the account and the user (or key) that started
it, and expires after :data:`STATE_TTL`. Whatever fails in the callback, nothing is created.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from authlib.common.security import generate_token
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..auth.keys import Principal
from ..catalog.endpoints import register_endpoint
from ..errors import ExchangeError, Forbidden, ValidationFailed
from ..models import Application, ConnectState, Endpoint, utcnow
from . import oauth
from .registry import apply_definition, get_approved

if TYPE_CHECKING:
    from ..runtime import Runtime

STATE_TTL = timedelta(minutes=10)


class ConnectFailed(ExchangeError):
    """The OAuth 2.0 consent flow did not end in a connection (nothing was created)."""

    status = 400
    title = "Connection failed"
    type_slug = "connect-failed"


def _auth_type(app: Application) -> str:
    return (app.spec.get("auth") or {}).get("type", "key")


def _create(rt: Runtime, session: Session, account_id: str, app: Application, name: str | None,
            credential: str, credential_type: str) -> tuple[Endpoint, str]:
    spec = app.spec
    data = {"name": name or spec["name"], "contact_url": spec.get("contact_url"), "producer": spec.get("producer"),
            "consumer": spec.get("consumer"), "identifiers": list(spec.get("identifiers") or []),
            "attributes": list(spec.get("attributes") or []), "credential": credential}
    ep, token, _ = register_endpoint(rt, session, account_id, data)
    ep.application_id, ep.credential_type = app.id, credential_type
    apply_definition(ep, app)
    session.flush()
    return ep, token


def connect_with_key(rt: Runtime, session: Session, account_id: str, application_id: str, *,
                     credential: str, name: str | None = None) -> tuple[Endpoint, str]:
    """The key method: returns the new endpoint and its endpoint key (shown once)."""
    app = get_approved(session, application_id)
    if _auth_type(app) != "key":
        raise ValidationFailed("This application connects by OAuth 2.0 consent.",
                               errors={"method": ["Use method 'oauth2' for this application."]})
    return _create(rt, session, account_id, app, name, credential, "key")


def safe_return_to(value: str | None) -> str | None:
    """Only a path on this site (no scheme, host or ``//``): the callback never redirects elsewhere."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//") or "\\" in value:
        raise ValidationFailed("return_to must be a path on this site.",
                               errors={"return_to": ["Give a path such as /endpoints, not a full URL."]})
    return value


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def start_oauth(rt: Runtime, session: Session, principal: Principal, application_id: str, *,
                redirect_uri: str, return_to: str | None = None, name: str | None = None) -> tuple[str, object]:
    """Record a single-use state and return the provider's authorize URL (and when the state expires)."""
    app = get_approved(session, application_id)
    if _auth_type(app) != "oauth2":
        raise ValidationFailed("This application connects with a key.",
                               errors={"method": ["Use method 'key' with a credential for this application."]})
    return_to = safe_return_to(return_to)
    purge_expired(session)
    state = secrets.token_urlsafe(32)
    verifier = generate_token(64)  # RFC 7636 §4.1: 43-128 characters of [A-Za-z0-9-._~]
    expires = utcnow() + STATE_TTL
    session.add(ConnectState(state_hash=_hash(state), account_id=principal.account_id, user_id=principal.user_id,
                             actor=principal.actor, application_id=app.id, application_version=app.version,
                             code_verifier_enc=rt.secrets.encrypt(verifier), redirect_uri=redirect_uri,
                             return_to=return_to, name=name, expires_at=expires))
    session.flush()
    return oauth.authorization_url(rt, app, redirect_uri=redirect_uri, state=state, code_verifier=verifier), expires


@dataclass
class Connected:
    endpoint: Endpoint
    endpoint_key: str
    return_to: str | None


def _consume(rt: Runtime, state: str | None, principal: Principal | None, redirect_uri: str) -> ConnectState:
    """Find the state and mark it used in its own transaction (a replay finds it used)."""
    if not state:
        raise ConnectFailed("The provider's answer has no state; start connecting again.")
    with rt.db.session() as s:
        row = s.scalar(select(ConnectState).where(ConnectState.state_hash == _hash(state)))
        if row is None:
            raise ConnectFailed("This connection request is unknown; start connecting again.")
        if row.used_at is not None:
            raise ConnectFailed("This connection request was already used; start connecting again.")
        if principal is not None and principal.account_id != row.account_id:
            raise Forbidden("This connection was started by another account; nothing was connected.")
        if row.user_id is not None and (principal is None or principal.user_id != row.user_id):
            raise Forbidden("This connection was started by another user; sign in as that user and start again.")
        claimed = s.execute(update(ConnectState).where(ConnectState.id == row.id, ConnectState.used_at.is_(None))
                            .values(used_at=utcnow())).rowcount
        if claimed != 1:
            raise ConnectFailed("This connection request was already used; start connecting again.")
        if row.expires_at < utcnow():
            raise ConnectFailed("This connection request expired; start connecting again.")
        if row.redirect_uri != redirect_uri:
            raise ConnectFailed("The provider redirected to a different address than the one the connection "
                                "was started with; nothing was connected.")
        s.expunge(row)
    return row


def finish_oauth(rt: Runtime, session: Session, principal: Principal | None, *, state: str | None,
                 code: str | None, error: str | None, error_description: str | None,
                 redirect_uri: str) -> Connected:
    """The callback: check the state, exchange the code, create the endpoint. Raises on any failure."""
    row = _consume(rt, state, principal, redirect_uri)
    if error:
        what = "You declined the connection" if error == "access_denied" else f"The provider answered '{error[:60]}'"
        raise ConnectFailed(f"{what}; nothing was connected." + (f" {error_description[:300]}"
                                                                   if error_description and error != "access_denied"
                                                                   else ""))
    if not code:
        raise ConnectFailed("The provider's answer has no authorization code; nothing was connected.")
    app = session.get(Application, row.application_id)
    if app is None or app.state != "approved" or _auth_type(app) != "oauth2":
        raise ConnectFailed("The application is no longer available for connecting.")
    try:
        token = oauth.exchange_code(rt, app, code=code, redirect_uri=redirect_uri,
                                    code_verifier=rt.secrets.decrypt(row.code_verifier_enc))
    except ExchangeError as exc:
        raise ConnectFailed(f"Exchanging the authorization code failed: {exc.detail} Nothing was connected.",
                            status=502) from None
    ep, key = _create(rt, session, row.account_id, app, row.name, oauth.dumps(token), "oauth2")
    from ..auth.audit import add_entry

    add_entry(session, account_id=row.account_id, actor=row.actor, action="endpoint.connected",
              object_type="endpoint", object_id=ep.id, remote_addr=None)
    return Connected(ep, key, row.return_to)


def purge_expired(session: Session) -> int:
    """Drop states that can no longer be used (expired for a day)."""
    from sqlalchemy import delete

    cutoff = utcnow() - timedelta(days=1)
    return session.execute(delete(ConnectState).where(ConnectState.expires_at < cutoff)).rowcount or 0
