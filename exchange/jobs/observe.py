"""What happens beside every job state change: the webhook outbox row (same transaction) and the job
metrics (recorded only once the transaction commits, so a rolled-back change counts nothing)."""
from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

from .. import metrics
from ..models import TERMINAL_STATES, Audience, Endpoint, Job, Share, utcnow
from ..webhooks.outbox import enqueue_job_state

_PENDING = "exchange.after_commit"


def after_transition(session: Session, job: Job, previous: str | None, state: str) -> None:
    """Write the webhook messages of this change and queue its metrics for after the commit."""
    enqueue_job_state(session, job, previous, state)
    if state in TERMINAL_STATES and previous not in TERMINAL_STATES:
        started = job.started_at or job.created_at
        seconds = (utcnow() - started).total_seconds() if started is not None else None
        counts = dict(job.counts or {})
        source, dest = _transports(session, job)
        nbytes = job.bytes or 0

        def record() -> None:
            metrics.job_finished(state, seconds)
            metrics.rows_moved("fetch", source, counts.get("received", 0))
            metrics.rows_moved("transform", dest, counts.get("valid", 0))
            if nbytes:
                metrics.BYTES_MOVED.labels(source).inc(nbytes)
        session.info.setdefault(_PENDING, []).append(record)


def _transports(session: Session, job: Job) -> tuple[str, str]:
    share = session.get(Share, job.share_id) if job.share_id else None
    if share is None:
        return "unknown", "unknown"
    dest = session.get(Endpoint, share.destination_id)
    aud = session.get(Audience, share.audience_id)
    src = session.get(Endpoint, aud.endpoint_id) if aud is not None else None
    source = (src.producer_transport or "unknown") if src is not None else "unknown"
    target = "unknown"
    if dest is not None:
        target = "adapter" if dest.adapter_type else (dest.consumer_transport or "unknown")
    return source, target


@event.listens_for(Session, "after_commit")
def _run_pending(session: Session) -> None:
    for fn in session.info.pop(_PENDING, []):
        try:
            fn()
        except Exception:  # noqa: BLE001 - metrics never break a commit
            pass


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
