"""Jobs: status, counts, events, rejects and cancellation."""
from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from ..errors import NotFound
from ..schemas.common import page_of
from ..schemas.jobs import JobEventListSchema, JobQueryArgsSchema, JobSchema
from ..shares import service
from .context import control_plane, db, runtime

blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs", description="Jobs: executions of shares")
JobPageSchema = page_of(JobSchema, "JobPageSchema")


@blp.route("")
class Jobs(MethodView):
    @blp.arguments(JobQueryArgsSchema, location="query")
    @blp.response(200, JobPageSchema)
    def get(self, args):
        """List jobs, newest first, filtered by share, state and creation time."""
        items, total = service.list_jobs(db(), control_plane().account_id, **args)
        return {"items": items, "page": args["page"], "page_size": args["page_size"], "total": total}


@blp.route("/<job_id>")
class JobById(MethodView):
    @blp.response(200, JobSchema)
    def get(self, job_id):
        """Get a job's state, counts, timings and error."""
        return service.job_status(db(), control_plane().account_id, job_id)


@blp.route("/<job_id>/events")
class JobEvents(MethodView):
    @blp.response(200, JobEventListSchema)
    def get(self, job_id):
        """The job's event timeline, oldest first."""
        return {"items": service.job_events(db(), control_plane().account_id, job_id)}


@blp.route("/<job_id>/rejects")
class JobRejects(MethodView):
    @blp.response(200, content_type="text/csv")
    def get(self, job_id):
        """Rejected rows as CSV: the original fields, the line number and the reason."""
        job = service.get_job(db(), control_plane().account_id, job_id)
        rt = runtime()
        if not job.rejects_key or not rt.blobs.exists(job.rejects_key):
            raise NotFound("This job has no rejects file (not transformed yet, or expired by retention).")
        return Response(rt.blobs.iter_chunks(job.rejects_key), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="rejects-{job.id}.csv"'})


@blp.route("/<job_id>/cancel")
class CancelJob(MethodView):
    @blp.response(200, JobSchema)
    def post(self, job_id):
        """Cancel a job; a running job stops at its next safe point."""
        session = db()
        job = service.cancel_job(session, control_plane().account_id, job_id)
        session.commit()
        return job
