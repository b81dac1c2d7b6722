"""Endpoint registry: register, read, list, update, disable and delete endpoints of one account.

Secrets (the outbound credential, adapter secrets, the webhook secret) are encrypted with the
runtime's secret box and never leave through :func:`endpoint_view`.
"""
from __future__ import annotations

import json
import unicodedata
from typing import TYPE_CHECKING

from marshmallow import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..auth.keys import issue_key, key_cache
from ..errors import NotFound, UnsafeUrl, ValidationFailed
from ..models import Endpoint
from ..net import generate_webhook_secret
from ..pagination import paginate
from ..schemas.endpoints import check_roles
from .storage import blob_prefixes

if TYPE_CHECKING:
    from ..runtime import Runtime


def _check_url(rt: Runtime, field: str, url: str | None) -> None:
    if not url:
        return
    from ..net import check_url_syntax

    try:
        check_url_syntax(url, allow_private=rt.config.allow_private_urls)
    except UnsafeUrl as exc:
        raise ValidationFailed(exc.detail, errors={field: [exc.detail]}) from None


def _check_adapter_urls(rt: Runtime, schema, settings: dict) -> None:
    """Adapter settings that are URLs (the Equals URL, a custom base URL) pass the same guard."""
    from marshmallow import fields

    declared = schema._declared_fields if isinstance(schema, type) else schema.fields
    for name, field in declared.items():
        if isinstance(field, fields.Url) and isinstance(settings.get(name), str):
            _check_url(rt, f"adapter.settings.{name}", settings[name])


def _adapter_settings(rt: Runtime, adapter: dict) -> tuple[str, dict, dict]:
    """Validate adapter settings; return (type, all settings, settings safe to show)."""
    from ..adapters.base import secret_names
    from ..adapters.registry import get_adapter, validate_settings

    settings = validate_settings(adapter["type"], adapter.get("settings") or {})
    schema = get_adapter(adapter["type"]).settings_schema
    _check_adapter_urls(rt, schema, settings)
    hidden = set(secret_names(schema))
    return adapter["type"], settings, {k: v for k, v in settings.items() if k not in hidden}


def _apply(rt: Runtime, ep: Endpoint, data: dict) -> None:
    if isinstance(data.get("name"), str) and any(unicodedata.category(ch) == "Cc" for ch in data["name"]):
        # the API refuses these before validation; the web form arrives here directly
        raise ValidationFailed("Names may not contain control characters.",
                               errors={"name": ["Control characters (such as NUL, tab or newline) are not allowed."]})
    for field in ("contact_url", "webhook_url"):
        if field in data:
            _check_url(rt, field, data[field])
    simple = ("name", "contact_url", "identifiers", "attributes", "webhook_url")
    for field in simple:
        if field in data:
            setattr(ep, field, data[field])
    if "producer" in data:
        ep.producer_transport = (data["producer"] or {}).get("transport")
    if "consumer" in data:
        consumer = data["consumer"] or {}
        ep.consumer_transport = consumer.get("transport")
        ep.max_rows_per_request = consumer.get("max_rows_per_request", 100_000)
        ep.consumer_gzip = consumer.get("gzip", False)
        ep.replace_native = consumer.get("replace", True)
        ep.ack_timeout_seconds = consumer.get("ack_timeout_seconds")
    if "credential" in data:
        ep.credential_enc = rt.secrets.encrypt(data["credential"]) if data["credential"] else None
    if data.get("adapter"):
        kind, settings, public = _adapter_settings(rt, data["adapter"])
        ep.adapter_type = kind
        ep.adapter_settings_enc = rt.secrets.encrypt(json.dumps(settings))
        ep.adapter_settings_public = public
        ep.consumer_transport = "push"
        if not ep.identifiers:
            from ..adapters.registry import get_adapter
            ep.identifiers = list(get_adapter(kind).identifiers)
    elif "adapter" in data:
        ep.adapter_type = ep.adapter_settings_enc = ep.adapter_settings_public = None


def register_endpoint(rt: Runtime, session: Session, account_id: str, data: dict
                      ) -> tuple[Endpoint, str, str | None]:
    """Create an endpoint; returns it with its endpoint key and webhook secret (shown once)."""
    ep = Endpoint(account_id=account_id, identifiers=[], attributes=[])
    _apply(rt, ep, data)
    webhook_secret = None
    if ep.webhook_url:
        webhook_secret = generate_webhook_secret()
        ep.webhook_secret_enc = rt.secrets.encrypt(webhook_secret)
    session.add(ep)
    session.flush()
    _key, token = issue_key(session, account_id, scope="endpoint", name=f"endpoint {ep.name}",
                            endpoint_id=ep.id)
    return ep, token, webhook_secret


def get_endpoint(session: Session, account_id: str, endpoint_id: str) -> Endpoint:
    ep = session.get(Endpoint, endpoint_id)
    if ep is None or ep.account_id != account_id:
        raise NotFound("No such endpoint.")
    return ep


def list_endpoints(session: Session, account_id: str, *, page: int = 1, page_size: int = 50,
                   status: str | None = None, role: str | None = None, q: str | None = None
                   ) -> tuple[list[Endpoint], int]:
    query = select(Endpoint).where(Endpoint.account_id == account_id)
    if status:
        query = query.where(Endpoint.status == status)
    if role == "producer":
        query = query.where(Endpoint.producer_transport.is_not(None))
    elif role == "consumer":
        query = query.where(or_(Endpoint.consumer_transport.is_not(None), Endpoint.adapter_type.is_not(None)))
    if q:
        query = query.where(Endpoint.name.ilike(f"%{q}%"))
    return paginate(session, query, Endpoint.created_at, Endpoint.id, page=page, page_size=page_size)


def update_endpoint(rt: Runtime, session: Session, account_id: str, endpoint_id: str, data: dict) -> Endpoint:
    ep = get_endpoint(session, account_id, endpoint_id)
    if ep.application_id:
        _check_connected_update(ep, data)
    merged = {**endpoint_view(ep), **data}
    try:
        check_roles(merged)
    except ValidationError as exc:
        raise ValidationFailed("Invalid endpoint.", errors={k: v for k, v in exc.normalized_messages().items()}
                               ) from None
    if data.get("webhook_url") and not ep.webhook_secret_enc:
        ep.webhook_secret_enc = rt.secrets.encrypt(generate_webhook_secret())
    _apply(rt, ep, data)
    return ep


def _check_connected_update(ep: Endpoint, data: dict) -> None:
    """An endpoint connected from an application: its definition belongs to the application."""
    fixed = sorted(k for k in data if k not in ("name", "credential"))
    if fixed:
        raise ValidationFailed("This endpoint was connected from an application: only its name, credential and "
                               "enablement can change.",
                               errors={k: ["Defined by the application."] for k in fixed})
    if "credential" in data and ep.credential_type == "oauth2":
        raise ValidationFailed("This endpoint's credential comes from the OAuth 2.0 consent; connect the "
                               "application again to renew it.",
                               errors={"credential": ["Obtained by the OAuth 2.0 flow."]})
    if "credential" in data and not data["credential"]:
        raise ValidationFailed("A connected endpoint needs its credential.",
                               errors={"credential": ["Required."]})


def set_status(session: Session, account_id: str, endpoint_id: str, status: str) -> Endpoint:
    ep = get_endpoint(session, account_id, endpoint_id)
    ep.status = status
    return ep


def delete_endpoint(rt: Runtime, session: Session, account_id: str, endpoint_id: str) -> None:
    """Delete an endpoint with its audiences, the shares using it, their jobs, and all their files."""
    ep = get_endpoint(session, account_id, endpoint_id)
    if ep.credential_type == "oauth2":
        from ..applications.tokens import revoke

        revoke(rt, ep)  # best effort: the connection ends here whatever the provider answers
    for prefix in blob_prefixes(session, endpoint_id=ep.id):
        rt.blobs.delete_prefix(prefix)
    session.delete(ep)
    key_cache.forget(endpoint_id=ep.id)  # its keys go with it (this process at once, others within the TTL)


def credential(rt: Runtime, ep: Endpoint) -> str | None:
    return rt.credential(ep)


def adapter_settings(rt: Runtime, ep: Endpoint) -> dict:
    return rt.adapter_settings(ep)


def endpoint_view(ep: Endpoint) -> dict:
    """What the API shows of an endpoint: never a secret."""
    consumer = None
    if ep.consumer_transport:
        consumer = {"transport": ep.consumer_transport, "max_rows_per_request": ep.max_rows_per_request,
                    "gzip": ep.consumer_gzip, "replace": ep.replace_native,
                    "ack_timeout_seconds": ep.ack_timeout_seconds}
    return {
        "id": ep.id, "name": ep.name, "contact_url": ep.contact_url,
        "producer": {"transport": ep.producer_transport} if ep.producer_transport else None,
        "consumer": consumer, "identifiers": list(ep.identifiers or []),
        "attributes": list(ep.attributes or []), "has_credential": bool(ep.credential_enc),
        "webhook_url": ep.webhook_url,
        "adapter": ({"type": ep.adapter_type, "settings": ep.adapter_settings_public or {}}
                    if ep.adapter_type else None),
        "status": ep.status, "created_at": ep.created_at, "updated_at": ep.updated_at,
        "last_verified_at": ep.last_verified_at, "last_refresh_at": ep.last_refresh_at,
        "last_refresh_error": ep.last_refresh_error,
        "application_id": ep.application_id,
        "connection": ep.credential_type if ep.application_id else None,
    }
