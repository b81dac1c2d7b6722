"""The job state machine (SPEC §8): allowed transitions, each recorded as an event."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from ..models import TERMINAL_STATES, Job, JobEvent, utcnow
from .observe import after_transition
from .progress import read_progress, update_progress

ACTIVE = ("fetching", "awaiting_source", "transforming", "delivering", "awaiting_consumer")
ALLOWED: dict[str, set[str]] = {
    "queued": {"fetching", "cancelled", "failed"},
    "fetching": {"fetching", "awaiting_source", "transforming", "succeeded", "failed", "cancelled"},
    "awaiting_source": {"fetching", "failed", "cancelled"},
    "transforming": {"transforming", "delivering", "failed", "cancelled", "succeeded"},
    "delivering": {"delivering", "awaiting_consumer", "succeeded", "partially_succeeded", "failed", "cancelled"},
    "awaiting_consumer": {"succeeded", "partially_succeeded", "failed", "cancelled"},
}


class IllegalTransition(RuntimeError):
    """A move the state machine does not allow (a bug in the engine, never a user error)."""


def event(session: Session, job: Job, message: str, *, kind: str = "info", data: dict[str, Any] | None = None) -> None:
    session.add(JobEvent(job_id=job.id, kind=kind, state=job.state, message=message, data=data))


def transition(session: Session, job: Job, state: str, message: str = "", *,
               data: dict[str, Any] | None = None) -> bool:
    """Move ``job`` to ``state`` and record it; returns False if the job already is terminal."""
    if job.state in TERMINAL_STATES:
        return False
    if state != job.state and state not in ALLOWED.get(job.state, set()):
        raise IllegalTransition(f"{job.state} -> {state}")
    now = utcnow()
    if job.state != state:
        # per-phase timings: time spent in the state we leave
        mark = read_progress(job).state_since
        if mark:
            timings = dict(job.timings or {})
            elapsed = (now - datetime.fromisoformat(mark)).total_seconds()
            timings[job.state] = round(timings.get(job.state, 0.0) + elapsed, 3)
            job.timings = timings
        update_progress(job, state_since=now.isoformat())
    previous = job.state
    job.state = state
    if state in ACTIVE and job.started_at is None:
        job.started_at = now
    if state in TERMINAL_STATES:
        job.finished_at = now
        job.lease_owner, job.lease_expires_at = None, None
    session.add(JobEvent(job_id=job.id, kind="state", state=state,
                         message=message or f"{previous} → {state}", data=data))
    after_transition(session, job, previous, state)  # webhook outbox (same transaction) and metrics
    return True
