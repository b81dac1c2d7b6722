"""Job pages: the list (filter by state) and one job, live: state, counts, progress, events, cancel.

The job page renders the current state, then ``app.js`` polls ``GET /v1/jobs/{id}`` and
``/v1/jobs/{id}/events`` every second with the session cookie until the job ends. Rejects download
from ``/v1/jobs/{id}/rejects``, which the session may read too (see :mod:`exchange.web.session`).
"""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from ..api.context import db
from ..catalog.audiences import get_audience
from ..catalog.endpoints import get_endpoint
from ..errors import Conflict, NotFound
from ..models import Job
from ..schemas.jobs import STATES
from ..shares import service
from .blueprint import web

COUNTS = [("received", "Rows received"), ("valid", "Valid rows"), ("rejected", "Rejected rows"),
          ("duplicates", "Duplicates"), ("added", "Added"), ("removed", "Removed"),
          ("delivered", "Delivered"), ("acknowledged", "Acknowledged by the destination")]


# how far along each state is, in percent; delivering moves with the rows delivered
PHASES = {"queued": 2, "fetching": 15, "awaiting_source": 10, "transforming": 40, "delivering": 60,
          "awaiting_consumer": 95}


def progress_percent(job: Job) -> int:
    """A progress estimate for the bar (app.js computes the same from the JSON)."""
    if job.terminal:
        return 100
    base = PHASES.get(job.state, 0)
    if job.state == "delivering":
        total = sum(op.get("rows", 0) for op in (job.progress or {}).get("ops", []))
        if total:
            base += int(35 * min(1.0, (job.counts or {}).get("delivered", 0) / total))
    return base


def _route(session: Session, account: str, job: Job) -> dict:
    """The share's audience and destination names (the share may have been deleted)."""
    if not job.share_id:
        return {"share": None, "audience": None, "destination": None}
    try:
        share = service.get_share(session, account, job.share_id)
    except NotFound:
        return {"share": None, "audience": None, "destination": None}
    return {"share": share, "audience": get_audience(session, account, share.audience_id),
            "destination": get_endpoint(session, account, share.destination_id)}


@web.route("/jobs")
def jobs_list():
    """Jobs, newest first, optionally of one state or one share."""
    session, account = db(), g.principal.account_id
    state = request.args.get("state") or None
    if state not in STATES:
        state = None
    share_id = request.args.get("share") or None
    jobs, total = service.list_jobs(session, account, state=state, share_id=share_id, page_size=100)
    rows = [{"job": j, **_route(session, account, j)} for j in jobs]
    return render_template("jobs/list.html", rows=rows, total=total, state=state, states=STATES,
                           share_id=share_id)


@web.route("/jobs/<job_id>")
def job_detail(job_id: str):
    """One job: state, counts, progress, timings, error and events; updated live until it ends."""
    session, account = db(), g.principal.account_id
    job = service.get_job(session, account, job_id)
    events = service.job_events(session, account, job_id)
    return render_template("jobs/detail.html", job=job, events=events, counts=COUNTS, progress=progress_percent(job),
                           **_route(session, account, job))


@web.route("/jobs/<job_id>/cancel", methods=["POST"])
def job_cancel(job_id: str):
    """Cancel a job; a running job stops at its next safe point."""
    session = db()
    try:
        service.cancel_job(session, g.principal.account_id, job_id)
    except Conflict as err:
        session.rollback()
        flash(err.detail, "bad")
    else:
        session.commit()
        flash("Cancellation requested.", "ok")
    return redirect(url_for("web.job_detail", job_id=job_id))
