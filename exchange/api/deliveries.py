"""PULL consumer data plane: list, inspect, download (Range, ETag) and acknowledge deliveries."""
from __future__ import annotations

import re

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from ..errors import Conflict, NotFound
from ..jobs.delivery.acks import acknowledge
from ..models import Delivery
from ..pagination import paginate
from ..schemas.common import page_of
from ..schemas.jobs import AckSchema, DeliveryQueryArgsSchema, DeliverySchema
from .context import db, principal, runtime

blp = Blueprint("deliveries", __name__, url_prefix="/v1/deliveries", description="Deliveries to consumers")
DeliveryPageSchema = page_of(DeliverySchema, "DeliveryPageSchema")
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _visible():
    p = principal()
    q = select(Delivery).where(Delivery.account_id == p.account_id)
    if p.scope == "endpoint":
        q = q.where(Delivery.endpoint_id == p.endpoint_id)
    return q


def _get(delivery_id: str) -> Delivery:
    d = db().scalar(_visible().where(Delivery.id == delivery_id))
    if d is None:
        raise NotFound("No such delivery.")
    return d


def _etag_matches(header: str, etag: str) -> bool:
    """RFC 9110 If-None-Match: ``*``, a list, weak or strong tags (weak comparison)."""
    tags = [t.strip() for t in header.split(",") if t.strip()]
    return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)


@blp.route("")
class Deliveries(MethodView):
    @blp.arguments(DeliveryQueryArgsSchema, location="query")
    @blp.response(200, DeliveryPageSchema)
    def get(self, args):
        """List deliveries (an endpoint key sees only its endpoint's)."""
        q = _visible()
        if args["state"]:
            q = q.where(Delivery.state == args["state"])
        if args["endpoint_id"]:
            q = q.where(Delivery.endpoint_id == args["endpoint_id"])
        q = q.where(Delivery.blob_key.is_not(None)) if args["state"] == "ready" else q
        items, total = paginate(db(), q, Delivery.created_at, Delivery.id, page=args["page"],
                                page_size=args["page_size"])
        return {"items": items, "page": args["page"], "page_size": args["page_size"], "total": total}


@blp.route("/<delivery_id>")
class DeliveryById(MethodView):
    @blp.response(200, DeliverySchema)
    def get(self, delivery_id):
        """A delivery's metadata: job, mode, columns, row count, SHA-256."""
        return _get(delivery_id)


@blp.route("/<delivery_id>/data")
class DeliveryData(MethodView):
    @blp.response(200, content_type="text/csv")
    @blp.alt_response(206, description="Partial content (Range)")
    @blp.alt_response(304, description="Not modified (If-None-Match)")
    @blp.alt_response(416, description="Range not satisfiable")
    def get(self, delivery_id):
        """Download a delivery's CSV; resumable with `Range`, cacheable by `ETag`."""
        d = _get(delivery_id)
        rt = runtime()
        if not d.blob_key or d.state == "expired" or not rt.blobs.exists(d.blob_key):
            raise NotFound("This delivery has no data to download (expired or pushed).")
        etag = f'"{d.sha256}"'
        size = rt.blobs.size(d.blob_key)
        if _etag_matches(request.headers.get("If-None-Match", ""), etag):
            return Response(status=304, headers={"ETag": etag})
        headers = {"ETag": etag, "Accept-Ranges": "bytes",
                   "Content-Disposition": f'attachment; filename="delivery-{d.id}.csv"'}
        rng = request.headers.get("Range")
        if rng and (not request.headers.get("If-Range") or request.headers.get("If-Range") == etag):
            m = RANGE_RE.match(rng.strip())
            start = end = None
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = int(m.group(2)) if m.group(2) else size - 1
                else:
                    start, end = max(0, size - int(m.group(2))), size - 1
            if start is None or start >= size or end < start:
                return Response(status=416, headers={"Content-Range": f"bytes */{size}"})
            end = min(end, size - 1)
            headers.update({"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)})
            return Response(rt.blobs.iter_chunks(d.blob_key, start=start, end=end + 1), status=206,
                            mimetype="text/csv", headers=headers)
        headers["Content-Length"] = str(size)
        return Response(rt.blobs.iter_chunks(d.blob_key), mimetype="text/csv", headers=headers)


@blp.route("/<delivery_id>/ack")
class AckDelivery(MethodView):
    @blp.arguments(AckSchema)
    @blp.response(200, DeliverySchema)
    def post(self, data, delivery_id):
        """Acknowledge a delivery with the consumer's counts; the last ack completes the job."""
        d = _get(delivery_id)
        if d.state == "acknowledged":
            raise Conflict("This delivery was already acknowledged.")
        if d.state == "expired":
            raise Conflict("This delivery expired: its deadline passed before the acknowledgement.")
        if data["accepted"] + data["rejected"] > d.row_count:
            from ..errors import ValidationFailed
            raise ValidationFailed("Counts exceed the delivery.",
                                   errors={"accepted": [f"accepted + rejected must be at most {d.row_count}."]})
        acknowledge(runtime(), d, data["accepted"], data["rejected"], data["message"])
        db().expire_all()
        return _get(delivery_id)
