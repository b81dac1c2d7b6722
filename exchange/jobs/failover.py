"""Failover made visible: a lapsed lease taken over becomes an event naming the lost worker and the
taker, and the time between the lost worker's last heartbeat and the takeover is counted apart in the
job's timings (``lost``) instead of inside the phase it interrupted."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from .. import metrics
from ..models import Job, JobEvent, utcnow
from .progress import read_progress, update_progress

log = logging.getLogger(__name__)


def record_takeover(session: Session, job: Job, lost: str, taker: str, last_beat: datetime | None, lease_seconds: float,
                    *, reason: str = "stopped renewing its lease") -> float:
    """Record on ``job`` (in ``session``) that ``taker`` took it over from ``lost``; returns the lost seconds."""
    now = utcnow()
    if last_beat is None and job.lease_expires_at is not None:
        last_beat = job.lease_expires_at - timedelta(seconds=lease_seconds)
    lost_seconds = max(0.0, (now - last_beat).total_seconds()) if last_beat is not None else 0.0
    timings = dict(job.timings or {})
    timings["lost"] = round(timings.get("lost", 0.0) + lost_seconds, 3)
    job.timings = timings
    try:
        mark = read_progress(job).state_since
        if mark:  # the interrupted phase's clock skips the dead time
            update_progress(job, state_since=(datetime.fromisoformat(mark) + timedelta(seconds=lost_seconds))
                            .isoformat())
    except ValueError:  # an unreadable record: leave the phase clock as it is
        pass
    beat = last_beat.isoformat() if last_beat is not None else "never"
    message = (f"worker {lost} {reason} (last heartbeat {beat}); taken over by {taker} "
               f"after {lost_seconds:.1f} s")
    session.add(JobEvent(job_id=job.id, kind="warning", state=job.state, message=message,
                         data={"lost_worker": lost, "new_worker": taker, "last_heartbeat": beat,
                               "lost_seconds": round(lost_seconds, 3)}))
    metrics.LEASE_TAKEOVERS.inc()
    metrics.LOST_SECONDS.inc(lost_seconds)
    log.warning("job %s: %s", job.id, message)
    return lost_seconds
