"""Catalog pages: search audiences (q, identifier, producer, tag) and read one audience."""
from __future__ import annotations

from flask import g, render_template, request

from ..api.context import db
from ..catalog.audiences import audience_view, get_audience, search
from ..catalog.endpoints import get_endpoint, list_endpoints
from ..shares.service import get_job, list_shares, share_view
from ..transfer.mapping import IDENTIFIER_TYPES
from .blueprint import web

PAGE_SIZE = 25


def _page_number() -> int:
    try:
        return max(1, min(int(request.args.get("page", "1")), 100_000))
    except ValueError:
        return 1


@web.route("/audiences")
def audiences_list():
    """Search the catalog by words, identifier, producer and tag."""
    session, account = db(), g.principal.account_id
    filters = {k: (request.args.get(k) or "").strip()[:200] or None for k in ("q", "identifier", "producer", "tag")}
    page = _page_number()
    items, total = search(session, account, **filters, page=page, page_size=PAGE_SIZE)
    producers, _ = list_endpoints(session, account, role="producer", page_size=500)
    everything, _ = search(session, account, page_size=1000)
    tags = sorted({t for a in everything for t in (a.tags or [])})
    identifiers = sorted(set(IDENTIFIER_TYPES) | {i for a in everything for i in (a.identifiers or [])})
    names = {p.id: p.name for p in producers}
    return render_template("audiences/list.html", audiences=items, total=total, filters=filters, page=page,
                           pages=max(1, -(-total // PAGE_SIZE)), producers=producers, names=names, tags=tags,
                           identifiers=identifiers, searched=any(filters.values()))


@web.route("/audiences/<audience_id>")
def audience_detail(audience_id: str):
    """An audience: description, identifiers, attributes, size, freshness and the shares using it."""
    session, account = db(), g.principal.account_id
    aud = get_audience(session, account, audience_id)
    view = audience_view(session, aud, with_shares=True)
    producer = get_endpoint(session, account, aud.endpoint_id)
    shares, _ = list_shares(session, account, audience_id=aud.id, page_size=200)
    rows = []
    for share in shares:
        dest = get_endpoint(session, account, share.destination_id)
        last = get_job(session, account, share.last_job_id) if share.last_job_id else None
        rows.append({"share": share_view(share), "destination": dest, "last_job": last})
    return render_template("audiences/detail.html", audience=view, producer=producer, shares=rows)
