"""The catalog: search audiences, read one, and accept a PUSH producer's metadata and data."""
from __future__ import annotations

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.orm import Session

from ..errors import Forbidden, NotFound, ValidationFailed
from ..models import Audience, Endpoint, Share, utcnow
from ..pagination import paginate
from .endpoints import get_endpoint
from .gather import upsert_audience


def get_audience(session: Session, account_id: str, audience_id: str) -> Audience:
    aud = session.get(Audience, audience_id)
    if aud is None or aud.account_id != account_id:
        raise NotFound("No such audience.")
    return aud


def search(session: Session, account_id: str, *, q=None, identifier=None, producer=None, tag=None,
           status="active", page=1, page_size=50) -> tuple[list[Audience], int]:
    query = select(Audience).where(Audience.account_id == account_id)
    if status:
        query = query.where(Audience.status == status)
    if q:
        like = f"%{q.lower()}%"
        query = query.where(or_(func.lower(Audience.name).like(like), func.lower(Audience.description).like(like),
                                func.lower(Audience.external_id).like(like)))
    if producer:
        query = query.where(Audience.endpoint_id == producer)
    # identifiers/tags are JSON lists; a quoted substring match works on SQLite and PostgreSQL alike
    if identifier:
        query = query.where(cast(Audience.identifiers, String).like(f'%"{identifier}"%'))
    if tag:
        query = query.where(cast(Audience.tags, String).like(f'%"{tag}"%'))
    return paginate(session, query, Audience.name, Audience.id, page=page, page_size=page_size)


def audience_view(session: Session, aud: Audience, *, with_shares: bool = False) -> dict:
    view = {
        "id": aud.id, "endpoint_id": aud.endpoint_id, "external_id": aud.external_id, "name": aud.name,
        "description": aud.description, "identifiers": aud.identifiers or [], "attributes": aud.attributes or [],
        "size": aud.size, "tags": aud.tags or [], "updated_at": aud.source_updated_at or aud.updated_at,
        "version": aud.version, "status": aud.status,
        "columns": aud.data_columns or (list(aud.identifiers or []) + list(aud.attributes or [])),
    }
    if with_shares:
        view["share_ids"] = list(session.scalars(select(Share.id).where(Share.audience_id == aud.id)))
    return view


def producer_endpoint(session: Session, account_id: str, endpoint_id: str) -> Endpoint:
    ep = get_endpoint(session, account_id, endpoint_id)
    if ep.producer_transport != "push":
        raise Forbidden("Only PUSH producers upload audiences; this endpoint is not one.")
    if ep.status != "active":
        raise Forbidden("This endpoint is disabled.")
    return ep


def put_metadata(session: Session, account_id: str, endpoint_id: str, external_id: str, data: dict) -> Audience:
    ep = producer_endpoint(session, account_id, endpoint_id)
    if not external_id or len(external_id) > 255:
        raise ValidationFailed("Invalid audience id.", errors={"external_id": ["1-255 characters."]})
    meta = {"external_id": external_id, "name": data.get("name") or external_id,
            "description": data.get("description", ""), "identifiers": data.get("identifiers", []),
            "attributes": data.get("attributes", []), "size": data.get("size"), "tags": data.get("tags", []),
            "source_updated_at": data.get("updated_at") or utcnow(), "version": data.get("version")}
    return upsert_audience(session, ep, meta)
