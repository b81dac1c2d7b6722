"""Catalog (search, read, refresh) and the PUSH producer data plane (metadata and data uploads)."""
from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from ..catalog import audiences as service
from ..catalog.endpoints import get_endpoint
from ..catalog.gather import refresh_endpoint
from ..schemas.audiences import (
    AudienceDetailSchema,
    AudienceMetadataSchema,
    AudienceQueryArgsSchema,
    AudienceSchema,
    RefreshResultSchema,
    UploadResultSchema,
)
from ..schemas.common import page_of
from .context import control_plane, db, endpoint_scope, runtime

blp = Blueprint("audiences", __name__, url_prefix="/v1", description="Audience catalog and PUSH producer uploads")
AudiencePageSchema = page_of(AudienceSchema, "AudiencePageSchema")
CSV_BODY = {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}


@blp.route("/audiences")
class Audiences(MethodView):
    @blp.arguments(AudienceQueryArgsSchema, location="query")
    @blp.response(200, AudiencePageSchema)
    def get(self, args):
        """Search the catalog by text, identifier, producer endpoint or tag."""
        session = db()
        items, total = service.search(session, control_plane().account_id, **args)
        return {"items": [service.audience_view(session, a) for a in items], "page": args["page"],
                "page_size": args["page_size"], "total": total}


@blp.route("/audiences/<audience_id>")
class AudienceById(MethodView):
    @blp.response(200, AudienceDetailSchema)
    def get(self, audience_id):
        """Get an audience's metadata and the shares that use it."""
        session = db()
        aud = service.get_audience(session, control_plane().account_id, audience_id)
        return service.audience_view(session, aud, with_shares=True)


@blp.route("/endpoints/<endpoint_id>/refresh")
class RefreshEndpoint(MethodView):
    @blp.response(200, RefreshResultSchema)
    def post(self, endpoint_id):
        """Re-gather audience metadata from a PULL producer now."""
        get_endpoint(db(), control_plane().account_id, endpoint_id)
        return refresh_endpoint(runtime(), endpoint_id)


@blp.route("/endpoints/<endpoint_id>/audiences/<external_id>")
class AudienceMetadata(MethodView):
    @blp.arguments(AudienceMetadataSchema)
    @blp.response(200, AudienceSchema)
    def put(self, data, endpoint_id, external_id):
        """PUSH producer: create or update an audience's metadata."""
        p = endpoint_scope(endpoint_id)
        session = db()
        aud = service.put_metadata(session, p.account_id, endpoint_id, external_id, data)
        session.commit()
        return service.audience_view(session, aud)


@blp.route("/endpoints/<endpoint_id>/audiences/<external_id>/data")
class AudienceData(MethodView):
    @blp.doc(requestBody=CSV_BODY)
    @blp.response(200, UploadResultSchema)
    def put(self, endpoint_id, external_id):
        """PUSH producer: upload an audience's data (text/csv, optionally gzip), streamed."""
        from ..catalog.ingest import ingest_upload

        p = endpoint_scope(endpoint_id)
        return ingest_upload(runtime(), p.account_id, endpoint_id, external_id, request.stream,
                             content_type=request.mimetype, content_encoding=request.headers.get(
                                 "Content-Encoding", ""))
