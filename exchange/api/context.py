"""Per-request context: the runtime, the database session and the authenticated principal."""
from __future__ import annotations

from flask import current_app, g
from sqlalchemy.orm import Session

from ..auth.keys import Principal
from ..errors import Forbidden, Unauthorized
from ..runtime import Runtime


def runtime() -> Runtime:
    return current_app.extensions["exchange"]


def db() -> Session:
    return runtime().db.scoped()


def principal() -> Principal:
    p = getattr(g, "principal", None)
    if p is None:
        raise Unauthorized("Authentication required: send 'Authorization: Bearer <API key>'.")
    return p


def account_id() -> str:
    return principal().account_id


def control_plane() -> Principal:
    """The caller must act for the whole account (account key or signed-in user)."""
    p = principal()
    if p.scope == "endpoint":
        raise Forbidden("Endpoint keys may only be used for their endpoint's data-plane calls.")
    return p


def endpoint_scope(endpoint_id: str) -> Principal:
    """Data-plane calls: account keys may address any endpoint, endpoint keys only their own."""
    p = principal()
    if p.scope == "endpoint" and p.endpoint_id != endpoint_id:
        raise Forbidden("This endpoint key belongs to another endpoint.")
    return p
