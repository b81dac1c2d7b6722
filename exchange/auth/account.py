"""Account-wide privacy operations: export everything the exchange holds, erase everything."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..catalog.endpoints import endpoint_view
from ..catalog.storage import blob_prefixes
from ..models import Account, ApiKey, Audience, AuditEntry, Delivery, Endpoint, Job, Share, User
from ..shares.service import share_view
from .keys import key_cache


def _rows(session: Session, model, account_id: str, columns: list[str]) -> list[dict]:
    return [{c: getattr(obj, c) for c in columns}
            for obj in session.scalars(select(model).where(model.account_id == account_id))]


def export_account(session: Session, account_id: str) -> dict:
    """Every object of the account as JSON-ready data; secrets are never included."""
    account = session.get(Account, account_id)
    return {
        "account": {"id": account.id, "name": account.name, "created_at": account.created_at},
        "users": _rows(session, User, account_id, ["id", "email", "created_at", "last_login_at"]),
        "api_keys": _rows(session, ApiKey, account_id, ["id", "name", "scope", "endpoint_id", "prefix",
                                                         "created_at", "last_used_at", "revoked_at"]),
        "endpoints": [endpoint_view(e) for e in
                      session.scalars(select(Endpoint).where(Endpoint.account_id == account_id))],
        "audiences": _rows(session, Audience, account_id, [
            "id", "endpoint_id", "external_id", "name", "description", "identifiers", "attributes", "size", "tags",
            "version", "status", "data_rows", "data_sha256", "data_uploaded_at"]),
        "shares": [share_view(s) for s in session.scalars(select(Share).where(Share.account_id == account_id))],
        "jobs": _rows(session, Job, account_id, ["id", "share_id", "trigger", "state", "mode", "counts", "bytes",
                                                  "attempts", "error", "created_at", "finished_at"]),
        "deliveries": _rows(session, Delivery, account_id, ["id", "job_id", "endpoint_id", "state", "mode",
                                                            "row_count", "sha256", "created_at", "acked_at"]),
        "audit": _rows(session, AuditEntry, account_id, ["at", "actor", "action", "object_type", "object_id",
                                                         "remote_addr"]),
        "applications": _applications(session, account_id),
    }


def _applications(session: Session, account_id: str) -> list[dict]:
    """The account's own endpoint applications (as a provider), without secrets or customers."""
    from ..applications.registry import application_view, list_applications

    items, _ = list_applications(session, account_id, page_size=10_000)
    return [application_view(session, a) for a in items]


def erase_account(rt, account_id: str) -> dict:
    """Delete every blob and row of the account. Irreversible."""
    with rt.db.session() as s:
        prefixes = blob_prefixes(s, account_id=account_id)
    deleted = sum(rt.blobs.delete_prefix(p) or 0 for p in prefixes)
    with rt.db.session() as s:
        account = s.get(Account, account_id)
        counts = {name: len(rows) for name, rows in (
            ("endpoints", s.scalars(select(Endpoint.id).where(Endpoint.account_id == account_id)).all()),
            ("shares", s.scalars(select(Share.id).where(Share.account_id == account_id)).all()),
            ("jobs", s.scalars(select(Job.id).where(Job.account_id == account_id)).all()))}
        s.delete(account)
    key_cache.forget(account_id=account_id)
    return {**counts, "blobs": deleted}
