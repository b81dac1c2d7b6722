"""Applications on the provider side: define, edit, submit, review (approve/reject), new versions.

An application is defined once by a provider account and reviewed by an operator of the exchange
(``exchange applications approve|reject``). Until its first approval, edits change the application
itself (state ``draft``, ``in_review``, ``rejected``). After approval the live definition stays as it
is; an edit opens the next version (``pending``) that goes through review again, and connected
endpoints move to it when it is approved.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import Conflict, NotFound, UnsafeUrl, ValidationFailed
from ..models import Account, Application, Endpoint, utcnow
from ..net import generate_webhook_secret
from ..schemas.endpoints import check_roles

if TYPE_CHECKING:
    from ..runtime import Runtime

SPEC_FIELDS = ("name", "description", "contact_url", "producer", "consumer", "identifiers", "attributes",
               "webhook_url", "auth")
URL_FIELDS = ("contact_url", "webhook_url")
AUTH_URL_FIELDS = ("authorize_url", "token_url", "revocation_url")


def _check_url(rt: Runtime, field: str, url: str | None, *, https: bool = False) -> None:
    if not url:
        return
    from ..net import check_url_syntax

    try:
        check_url_syntax(url, allow_private=rt.config.allow_private_urls)
    except UnsafeUrl as exc:
        raise ValidationFailed(exc.detail, errors={field: [exc.detail]}) from None
    # RFC 6749 §3.1/§3.2: the authorization and token endpoints require TLS (plain http only in
    # development, where private addresses are allowed too)
    if https and not url.lower().startswith("https://") and not rt.config.allow_private_urls:
        raise ValidationFailed("OAuth 2.0 endpoints must use https.", errors={field: ["Use an https URL."]})


def _validate(rt: Runtime, spec: dict, secret_present: bool) -> None:
    for field in URL_FIELDS:
        _check_url(rt, field, spec.get(field))
    auth = spec.get("auth") or {"type": "key"}
    for field in AUTH_URL_FIELDS:
        _check_url(rt, f"auth.{field}", auth.get(field), https=True)
    try:
        check_roles(spec)
    except ValidationError as exc:
        raise ValidationFailed("Invalid application.", errors=exc.normalized_messages()) from None
    if auth.get("type") == "oauth2":
        missing = [f for f in ("authorize_url", "token_url", "client_id") if not auth.get(f)]
        if not secret_present:
            missing.append("client_secret")
        if missing:
            raise ValidationFailed("An OAuth 2.0 application needs its authorization server's details.",
                                   errors={f"auth.{f}": ["Required for OAuth 2.0 applications."] for f in missing})


def _split(data: dict) -> tuple[dict, str | None]:
    """The stored definition (no secret) and the client secret given, if any."""
    spec = {k: data[k] for k in SPEC_FIELDS if k in data}
    secret = None
    if "auth" in spec:
        auth = dict(spec["auth"] or {"type": "key"})
        secret = auth.pop("client_secret", None)
        if auth.get("type") != "oauth2":
            auth = {"type": "key"}
        spec["auth"] = auth
    return spec, secret


def create_application(rt: Runtime, session: Session, account_id: str, data: dict
                       ) -> tuple[Application, str | None]:
    """A new draft; returns it with the webhook secret (shown once) when a webhook URL is given."""
    spec, secret = _split(data)
    _validate(rt, spec, bool(secret))
    app = Application(account_id=account_id, spec=spec, state="draft", version=1,
                      client_secret_enc=rt.secrets.encrypt(secret) if secret else None)
    webhook_secret = None
    if spec.get("webhook_url"):
        webhook_secret = generate_webhook_secret()
        app.webhook_secret_enc = rt.secrets.encrypt(webhook_secret)
    session.add(app)
    session.flush()
    return app, webhook_secret


def get_application(session: Session, account_id: str, application_id: str) -> Application:
    """One of the caller's own applications (another provider's is 'not found')."""
    app = session.get(Application, application_id)
    if app is None or app.account_id != account_id:
        raise NotFound("No such application.")
    return app


def get_approved(session: Session, application_id: str) -> Application:
    """An application any account may connect: approved (its live version)."""
    app = session.get(Application, application_id)
    if app is None or app.state != "approved":
        raise NotFound("No such application in the directory.")
    return app


def list_applications(session: Session, account_id: str, *, directory: bool = False, q: str | None = None,
                      page: int = 1, page_size: int = 50) -> tuple[list[Application], int]:
    query = select(Application)
    query = query.where(Application.state == "approved") if directory else \
        query.where(Application.account_id == account_id)
    items = list(session.scalars(query.order_by(Application.created_at, Application.id)))
    if q:
        items = [a for a in items if q.lower() in (a.spec.get("name") or "").lower()]
    total = len(items)
    return items[(page - 1) * page_size: page * page_size], total


def update_application(rt: Runtime, session: Session, account_id: str, application_id: str, data: dict
                       ) -> Application:
    """Edit a draft (or rejected) application, or open/edit the next version of an approved one."""
    app = get_application(session, account_id, application_id)
    changes, secret = _split(data)
    if app.state == "approved":
        if app.pending_state == "in_review":
            raise Conflict("The next version is in review; wait for the decision before editing it.")
        base = dict(app.pending_spec or app.spec)
        merged = {**base, **changes}
        has_secret = bool(secret or app.pending_client_secret_enc or app.client_secret_enc)
        _validate(rt, merged, has_secret)
        app.pending_spec = merged
        app.pending_state, app.pending_reason = "draft", None
        if secret:
            app.pending_client_secret_enc = rt.secrets.encrypt(secret)
    else:
        if app.state == "in_review":
            raise Conflict("The application is in review; wait for the decision before editing it.")
        merged = {**app.spec, **changes}
        _validate(rt, merged, bool(secret or app.client_secret_enc))
        app.spec = merged
        app.state, app.review_reason = "draft", None
        if secret:
            app.client_secret_enc = rt.secrets.encrypt(secret)
    if merged.get("webhook_url") and not app.webhook_secret_enc:
        app.webhook_secret_enc = rt.secrets.encrypt(generate_webhook_secret())
    return app


def submit_application(session: Session, account_id: str, application_id: str) -> Application:
    """Send the draft (or the next version) to review."""
    app = get_application(session, account_id, application_id)
    now = utcnow()
    if app.state in ("draft", "rejected"):
        app.state, app.submitted_at, app.review_reason = "in_review", now, None
    elif app.state == "approved" and app.pending_state in ("draft", "rejected"):
        app.pending_state, app.pending_submitted_at, app.pending_reason = "in_review", now, None
    elif app.state == "in_review" or app.pending_state == "in_review":
        raise Conflict("Already in review.")
    else:
        raise Conflict("Nothing to submit: the application is approved and has no new version. "
                       "Edit it to start the next version.")
    return app


# ---------------------------------------------------------------- operator review


def review_queue(session: Session) -> list[Application]:
    return list(session.scalars(select(Application).where(
        (Application.state == "in_review") | (Application.pending_state == "in_review"))
        .order_by(Application.updated_at)))


def _audit(session: Session, app: Application, action: str, actor: str) -> None:
    """Reviews appear in the provider account's audit log."""
    from ..auth.audit import add_entry

    add_entry(session, account_id=app.account_id, actor=actor, action=action, object_type="application",
              object_id=app.id, remote_addr=None)


def approve(session: Session, application_id: str, reason: str | None = None, *,
            actor: str = "operator") -> Application:
    """Approve what is in review; a new version replaces the live one and connected endpoints follow."""
    app = session.get(Application, application_id)
    if app is None:
        raise NotFound("No such application.")
    now = utcnow()
    if app.state == "in_review":
        app.state, app.review_reason, app.reviewed_at = "approved", reason, now
    elif app.pending_state == "in_review":
        app.spec = dict(app.pending_spec or app.spec)
        if app.pending_client_secret_enc:
            app.client_secret_enc = app.pending_client_secret_enc
        app.version += 1
        app.review_reason, app.reviewed_at = reason, now
        app.pending_state = app.pending_spec = app.pending_client_secret_enc = app.pending_reason = None
        app.pending_submitted_at = None
        for ep in session.scalars(select(Endpoint).where(Endpoint.application_id == app.id)):
            apply_definition(ep, app)
    else:
        raise Conflict("Nothing of this application is in review.")
    _audit(session, app, "application.approved", actor)
    return app


def reject(session: Session, application_id: str, reason: str, *, actor: str = "operator") -> Application:
    if not (reason or "").strip():
        raise ValidationFailed("Give the provider a reason.", errors={"reason": ["Required to reject."]})
    app = session.get(Application, application_id)
    if app is None:
        raise NotFound("No such application.")
    now = utcnow()
    if app.state == "in_review":
        app.state, app.review_reason, app.reviewed_at = "rejected", reason.strip(), now
    elif app.pending_state == "in_review":
        app.pending_state, app.pending_reason = "rejected", reason.strip()
    else:
        raise Conflict("Nothing of this application is in review.")
    _audit(session, app, "application.rejected", actor)
    return app


def apply_definition(ep: Endpoint, app: Application) -> None:
    """Copy what the application defines onto a connected endpoint (roles, identifiers, URLs)."""
    spec = app.spec
    ep.contact_url = spec.get("contact_url")
    ep.producer_transport = (spec.get("producer") or {}).get("transport")
    consumer = spec.get("consumer") or {}
    ep.consumer_transport = consumer.get("transport")
    ep.max_rows_per_request = consumer.get("max_rows_per_request", 100_000)
    ep.consumer_gzip = consumer.get("gzip", False)
    ep.replace_native = consumer.get("replace", True)
    ep.ack_timeout_seconds = consumer.get("ack_timeout_seconds")
    ep.identifiers = list(spec.get("identifiers") or [])
    ep.attributes = list(spec.get("attributes") or [])
    ep.webhook_url = spec.get("webhook_url")
    ep.webhook_secret_enc = app.webhook_secret_enc if spec.get("webhook_url") else None


# ---------------------------------------------------------------- views


def _definition(spec: dict, has_secret: bool) -> dict:
    auth = dict(spec.get("auth") or {"type": "key"})
    auth.setdefault("scopes", [])
    for f in ("authorize_url", "token_url", "revocation_url", "client_id"):
        auth.setdefault(f, None)
    auth.setdefault("token_endpoint_auth_method", "client_secret_basic" if auth["type"] == "oauth2" else None)
    auth["has_client_secret"] = has_secret
    return {"name": spec.get("name"), "description": spec.get("description") or "",
            "contact_url": spec.get("contact_url"), "producer": spec.get("producer"),
            "consumer": spec.get("consumer"), "identifiers": list(spec.get("identifiers") or []),
            "attributes": list(spec.get("attributes") or []), "webhook_url": spec.get("webhook_url"),
            "auth": auth}


def connection_count(session: Session, application_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Endpoint)
                          .where(Endpoint.application_id == application_id)) or 0


def application_view(session: Session, app: Application) -> dict:
    """What the provider sees of its application: never a secret, never a customer."""
    pending = None
    if app.pending_state:
        pending = {**_definition(app.pending_spec or app.spec,
                                 bool(app.pending_client_secret_enc or app.client_secret_enc)),
                   "state": app.pending_state, "version": app.version + 1, "review_reason": app.pending_reason,
                   "submitted_at": app.pending_submitted_at}
    return {**_definition(app.spec, bool(app.client_secret_enc)), "id": app.id, "state": app.state,
            "version": app.version, "review_reason": app.review_reason, "submitted_at": app.submitted_at,
            "reviewed_at": app.reviewed_at, "connections": connection_count(session, app.id),
            "pending": pending, "created_at": app.created_at, "updated_at": app.updated_at}


def directory_view(session: Session, app: Application) -> dict:
    """What any account sees of an approved application."""
    spec = app.spec
    account = session.get(Account, app.account_id)
    auth = spec.get("auth") or {"type": "key"}
    return {"id": app.id, "name": spec.get("name"), "description": spec.get("description") or "",
            "provider": account.name if account else "", "producer": spec.get("producer"),
            "consumer": spec.get("consumer"), "identifiers": list(spec.get("identifiers") or []),
            "attributes": list(spec.get("attributes") or []),
            "auth": {"type": auth.get("type", "key"), "scopes": list(auth.get("scopes") or [])},
            "version": app.version}
