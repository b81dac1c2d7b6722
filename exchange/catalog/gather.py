"""Gathering audience metadata from PULL producers into the catalog.

Runs on registration, on ``POST /v1/endpoints/{id}/refresh`` and periodically (the scheduler calls
:func:`refresh_due`). Audiences that vanish from a producer's list are marked ``gone``, not deleted:
shares and job history keep pointing at them.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from ..endpoint_client import list_audiences
from ..errors import ExchangeError
from ..models import Audience, Endpoint, utcnow
from .endpoints import credential

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)


def _parse_time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _str_list(value) -> list[str]:
    return [v for v in value if isinstance(v, str) and 0 < len(v) <= 100][:500] if isinstance(value, list) else []


def clean_metadata(item: dict) -> dict | None:
    """Producer-supplied metadata, kept only where it has the documented shape."""
    if not isinstance(item, dict):
        return None
    ext = item.get("id")
    if isinstance(ext, int):
        ext = str(ext)
    if not isinstance(ext, str) or not ext or len(ext) > 255:
        return None
    size = item.get("size")
    version = item.get("version")
    return {
        "external_id": ext,
        "name": (item.get("name") if isinstance(item.get("name"), str) else ext)[:255] or ext,
        "description": item.get("description")[:10000] if isinstance(item.get("description"), str) else "",
        "identifiers": _str_list(item.get("identifiers")),
        "attributes": _str_list(item.get("attributes")),
        "size": size if isinstance(size, int) and size >= 0 else None,
        "tags": _str_list(item.get("tags")),
        "source_updated_at": _parse_time(item.get("updated_at")),
        "version": str(version)[:255] if isinstance(version, (str, int)) else None,
    }


def upsert_audience(session, ep: Endpoint, meta: dict) -> Audience:
    aud = session.scalar(select(Audience).where(Audience.endpoint_id == ep.id,
                                                Audience.external_id == meta["external_id"]))
    if aud is None:
        aud = Audience(account_id=ep.account_id, endpoint_id=ep.id, external_id=meta["external_id"],
                       name=meta["name"])
        session.add(aud)
    for field, value in meta.items():
        setattr(aud, field, value)
    aud.status, aud.gone_at = "active", None
    return aud


def refresh_endpoint(rt: Runtime, endpoint_id: str) -> dict:
    """Re-gather one PULL producer's audiences; returns counts {found, new, gone}."""
    with rt.db.session() as s:
        ep = s.get(Endpoint, endpoint_id)
        if ep is None or ep.producer_transport != "pull" or not ep.contact_url:
            return {"found": 0, "new": 0, "gone": 0}
        token = credential(rt, ep)
        try:
            with rt.http() as http:
                items = list_audiences(http, ep, token)
        except ExchangeError as exc:
            ep.last_refresh_at, ep.last_refresh_error = utcnow(), exc.detail
            return {"found": 0, "new": 0, "gone": 0, "error": exc.detail}
        metas = [m for m in (clean_metadata(i) for i in items) if m]
        existing = {a.external_id: a for a in s.scalars(select(Audience).where(Audience.endpoint_id == ep.id))}
        new = 0
        for meta in metas:
            new += meta["external_id"] not in existing
            upsert_audience(s, ep, meta)
        seen = {m["external_id"] for m in metas}
        gone = 0
        for ext, aud in existing.items():
            if ext not in seen and aud.status != "gone":
                aud.status, aud.gone_at = "gone", utcnow()
                gone += 1
        ep.last_refresh_at, ep.last_refresh_error = utcnow(), None
        return {"found": len(metas), "new": new, "gone": gone}


def gather_on_registration(rt: Runtime, endpoint_id: str) -> None:
    try:
        refresh_endpoint(rt, endpoint_id)
    except Exception:  # noqa: BLE001 - registration succeeds even if the producer is down
        log.exception("gathering metadata of endpoint %s failed", endpoint_id)


def refresh_due(rt: Runtime, now: datetime | None = None) -> int:
    """Refresh every active PULL producer not refreshed within the configured period."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=rt.config.catalog_refresh_seconds)
    with rt.db.session() as s:
        ids = list(s.scalars(select(Endpoint.id).where(
            Endpoint.producer_transport == "pull", Endpoint.status == "active",
            or_(Endpoint.last_refresh_at.is_(None), Endpoint.last_refresh_at < cutoff))))
    for endpoint_id in ids:
        gather_on_registration(rt, endpoint_id)
    return len(ids)
