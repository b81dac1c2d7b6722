"""The audit log: who (user or key prefix) did what to which object, when, from where."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import AuditEntry
from ..pagination import paginate


def add_entry(session: Session, *, account_id: str, actor: str, action: str, object_type: str,
              object_id: str | None, remote_addr: str | None) -> None:
    session.add(AuditEntry(account_id=account_id, actor=actor[:200], action=action[:100],
                           object_type=object_type[:50], object_id=(object_id or None) and object_id[:64],
                           remote_addr=remote_addr))


def list_entries(session: Session, account_id: str, *, since: datetime | None = None, actor: str | None = None,
                 object_id: str | None = None, page: int = 1, page_size: int = 50) -> tuple[list[AuditEntry], int]:
    q = select(AuditEntry).where(AuditEntry.account_id == account_id)
    if since:
        q = q.where(AuditEntry.at >= since)
    if actor:
        q = q.where(AuditEntry.actor == actor)
    if object_id:
        q = q.where(AuditEntry.object_id == object_id)
    return paginate(session, q, AuditEntry.id.desc(), page=page, page_size=page_size)
