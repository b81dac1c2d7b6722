"""Shares: standing instructions to send an audience to a destination, and running them."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from ..schemas.common import page_of
from ..schemas.jobs import JobSchema
from ..schemas.shares import ShareCreateSchema, ShareQueryArgsSchema, ShareSchema, ShareUpdateSchema
from ..shares import service
from .context import control_plane, db, runtime

blp = Blueprint("shares", __name__, url_prefix="/v1/shares", description="Shares of audiences to destinations")
SharePageSchema = page_of(ShareSchema, "SharePageSchema")


@blp.route("")
class Shares(MethodView):
    @blp.arguments(ShareQueryArgsSchema, location="query")
    @blp.response(200, SharePageSchema)
    def get(self, args):
        """List shares."""
        items, total = service.list_shares(db(), control_plane().account_id, **args)
        return {"items": [service.share_view(s) for s in items], "page": args["page"],
                "page_size": args["page_size"], "total": total}

    @blp.arguments(ShareCreateSchema)
    @blp.response(201, ShareSchema)
    def post(self, data):
        """Create a share; a `now` schedule starts its first job at once."""
        rt, session = runtime(), db()
        share = service.create_share(rt, session, control_plane().account_id, data)
        session.commit()
        rt.executor.wake()
        return service.share_view(share)


@blp.route("/<share_id>")
class ShareById(MethodView):
    @blp.response(200, ShareSchema)
    def get(self, share_id):
        """Get a share."""
        return service.share_view(service.get_share(db(), control_plane().account_id, share_id))

    @blp.arguments(ShareUpdateSchema)
    @blp.response(200, ShareSchema)
    def patch(self, data, share_id):
        """Change a share's mapping, mode, schedule, delta or threshold."""
        session = db()
        share = service.update_share(runtime(), session, control_plane().account_id, share_id, data)
        session.commit()
        return service.share_view(share)

    @blp.response(204)
    def delete(self, share_id):
        """Delete a share; its running jobs are cancelled, its snapshot removed."""
        session = db()
        service.delete_share(runtime(), session, control_plane().account_id, share_id)
        session.commit()


@blp.route("/<share_id>/pause")
class PauseShare(MethodView):
    @blp.response(200, ShareSchema)
    def post(self, share_id):
        """Pause a share's schedule."""
        session = db()
        share = service.set_share_status(session, control_plane().account_id, share_id, "paused")
        session.commit()
        return service.share_view(share)


@blp.route("/<share_id>/resume")
class ResumeShare(MethodView):
    @blp.response(200, ShareSchema)
    def post(self, share_id):
        """Resume a paused share's schedule."""
        session = db()
        share = service.set_share_status(session, control_plane().account_id, share_id, "active")
        session.commit()
        return service.share_view(share)


@blp.route("/<share_id>/run")
class RunShare(MethodView):
    @blp.response(202, JobSchema)
    def post(self, share_id):
        """Run a share now; the job is queued behind any running job of the same share."""
        rt, session = runtime(), db()
        job = service.run_share_now(rt, session, control_plane().account_id, share_id)
        session.commit()
        rt.executor.wake()
        return job
