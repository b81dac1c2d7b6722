"""Endpoint registry: register, get, list, update, disable/enable, delete, verify."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from ..catalog import endpoints as service
from ..schemas.adapters import AdapterCheckSchema
from ..schemas.common import page_of
from ..schemas.endpoints import (
    EndpointCreatedSchema,
    EndpointCreateSchema,
    EndpointQueryArgsSchema,
    EndpointSchema,
    EndpointUpdateSchema,
    VerifyResultSchema,
)
from .context import control_plane, db, runtime

blp = Blueprint("endpoints", __name__, url_prefix="/v1/endpoints",
                description="Producer and consumer endpoints of the account")
EndpointPageSchema = page_of(EndpointSchema, "EndpointPageSchema")


@blp.route("")
class Endpoints(MethodView):
    @blp.arguments(EndpointQueryArgsSchema, location="query")
    @blp.response(200, EndpointPageSchema)
    def get(self, args):
        """List the account's endpoints."""
        items, total = service.list_endpoints(db(), control_plane().account_id, **args)
        return {"items": [service.endpoint_view(e) for e in items], "page": args["page"],
                "page_size": args["page_size"], "total": total}

    @blp.arguments(EndpointCreateSchema)
    @blp.response(201, EndpointCreatedSchema)
    def post(self, data):
        """Register an endpoint; its endpoint key (and webhook secret) are shown once."""
        rt, session = runtime(), db()
        ep, token, webhook_secret = service.register_endpoint(rt, session, control_plane().account_id, data)
        session.commit()
        from ..catalog.gather import gather_on_registration
        gather_on_registration(rt, ep.id)
        session.refresh(ep)
        return {**service.endpoint_view(ep), "endpoint_key": token, "webhook_secret": webhook_secret}


@blp.route("/<endpoint_id>")
class EndpointById(MethodView):
    @blp.response(200, EndpointSchema)
    def get(self, endpoint_id):
        """Get an endpoint."""
        return service.endpoint_view(service.get_endpoint(db(), control_plane().account_id, endpoint_id))

    @blp.arguments(EndpointUpdateSchema(partial=True))
    @blp.response(200, EndpointSchema)
    def patch(self, data, endpoint_id):
        """Update some fields of an endpoint."""
        session = db()
        ep = service.update_endpoint(runtime(), session, control_plane().account_id, endpoint_id, data)
        session.commit()
        return service.endpoint_view(ep)

    @blp.response(204)
    def delete(self, endpoint_id):
        """Delete an endpoint with its audiences, shares, jobs and keys."""
        session = db()
        service.delete_endpoint(runtime(), session, control_plane().account_id, endpoint_id)
        session.commit()


@blp.route("/<endpoint_id>/disable")
class DisableEndpoint(MethodView):
    @blp.response(200, EndpointSchema)
    def post(self, endpoint_id):
        """Disable an endpoint: its shares stop running until it is enabled again."""
        session = db()
        ep = service.set_status(session, control_plane().account_id, endpoint_id, "disabled")
        session.commit()
        return service.endpoint_view(ep)


@blp.route("/<endpoint_id>/enable")
class EnableEndpoint(MethodView):
    @blp.response(200, EndpointSchema)
    def post(self, endpoint_id):
        """Enable a disabled endpoint."""
        session = db()
        ep = service.set_status(session, control_plane().account_id, endpoint_id, "active")
        session.commit()
        return service.endpoint_view(ep)


@blp.route("/<endpoint_id>/verify")
class VerifyEndpoint(MethodView):
    @blp.response(200, VerifyResultSchema)
    def post(self, endpoint_id):
        """Call the endpoint once and report reachability and protocol conformance."""
        from ..catalog.verify import verify_endpoint

        return verify_endpoint(runtime(), control_plane().account_id, endpoint_id)


@blp.route("/<endpoint_id>/adapter-check")
class AdapterCheck(MethodView):
    @blp.response(200, AdapterCheckSchema)
    def post(self, endpoint_id):
        """Smoke-check a partner adapter endpoint: credentials, a test audience, add and remove one test
        member, read back; every request and answer is returned with secrets scrubbed."""
        from ..catalog.adapter_check import adapter_check

        return adapter_check(runtime(), control_plane().account_id, endpoint_id)
