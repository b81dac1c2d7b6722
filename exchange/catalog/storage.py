"""Where an account's or an endpoint's data lives in the blob store (for deletion and erasure)."""
from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..models import Audience, Endpoint, Job, Share


def blob_prefixes(session: Session, *, account_id: str | None = None, endpoint_id: str | None = None) -> list[str]:
    """The blob prefixes holding data of an account or of one endpoint (sources, outputs, snapshots)."""
    if endpoint_id:
        endpoints = [endpoint_id]
        shares = list(session.scalars(select(Share.id).join(Audience, Audience.id == Share.audience_id).where(
            or_(Share.destination_id == endpoint_id, Audience.endpoint_id == endpoint_id))))
    else:
        endpoints = list(session.scalars(select(Endpoint.id).where(Endpoint.account_id == account_id)))
        shares = list(session.scalars(select(Share.id).where(Share.account_id == account_id)))
    jobs = list(session.scalars(select(Job.id).where(Job.share_id.in_(shares)))) if shares else []
    if account_id and not endpoint_id:
        jobs += list(session.scalars(select(Job.id).where(Job.account_id == account_id, Job.share_id.is_(None))))
    return ([f"audiences/{e}/" for e in endpoints] + [f"snapshots/{s}/" for s in shares]
            + [f"jobs/{j}/" for j in jobs])
