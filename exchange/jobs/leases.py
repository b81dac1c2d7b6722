"""Job leases: which worker runs a job (claim with ``UPDATE … WHERE lease expired``), renewal, release.

The database row is the lock: a job is run by one worker at a time, a crashed worker's job is
claimed again once its lease lapses, and leases of dead processes on this host are released at start.
"""
from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, Result, and_, exists, or_, select, update
from sqlalchemy.orm import aliased

from ..models import TERMINAL_STATES, Job, utcnow
from .budget import claim_order, within_budget
from .failover import record_takeover
from .sweep import pid_alive

if TYPE_CHECKING:
    from ..runtime import Runtime

RUNNABLE = ("queued", "fetching", "awaiting_source", "transforming", "delivering")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def release_dead_leases(rt: Runtime) -> int:
    """Expire leases held by processes of this host that no longer exist (after a restart)."""
    host = socket.gethostname()
    released = 0
    with rt.db.session() as s:
        for job in s.scalars(select(Job).where(Job.lease_owner.is_not(None))):
            h, _, rest = (job.lease_owner or "").partition(":")
            pid = rest.partition(":")[0]
            if h == host and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
                record_takeover(s, job, job.lease_owner or "", f"a restarted process of {host}", job.heartbeat_at,
                                rt.config.lease_seconds, reason="is gone (its process no longer exists)")
                job.lease_owner, job.lease_expires_at = None, None
                released += 1
    return released


def claim_next(rt: Runtime, owner: str) -> str | None:
    """Claim one runnable job for ``owner``; a share's jobs run one at a time, oldest first."""
    now = utcnow()
    earlier = aliased(Job)
    blocked = exists().where(earlier.share_id == Job.share_id, earlier.id != Job.id,
                             earlier.created_at < Job.created_at, earlier.state.not_in(TERMINAL_STATES))
    with rt.db.session() as s:
        candidates = list(s.execute(
            select(Job.id, Job.lease_owner, Job.heartbeat_at).where(
                Job.state.in_(RUNNABLE), or_(Job.lease_owner.is_(None), Job.lease_expires_at < now),
                or_(Job.not_before.is_(None), Job.not_before <= now), or_(Job.share_id.is_(None), ~blocked),
                within_budget(s, now, rt.config))  # jobs/budget.py: fair workers
            .order_by(claim_order()).limit(10)))
    for job_id, previous, last_beat in candidates:
        same_owner = Job.lease_owner.is_(None) if previous is None else Job.lease_owner == previous
        with rt.db.session() as s:
            res = s.execute(update(Job).where(
                and_(Job.id == job_id, Job.state.in_(RUNNABLE), same_owner,
                     or_(Job.lease_owner.is_(None), Job.lease_expires_at < now)))
                .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=rt.config.lease_seconds),
                        heartbeat_at=now))
            if rowcount(res) == 1:
                taken = s.get(Job, job_id)
                if previous is not None and taken is not None:  # a lapsed lease: the holder died or hung
                    record_takeover(s, taken, previous, owner, last_beat, rt.config.lease_seconds)
                return job_id
    return None


def renew_lease(rt: Runtime, job_id: str, owner: str) -> bool:
    with rt.db.session() as s:
        res = s.execute(update(Job).where(Job.id == job_id, Job.lease_owner == owner)
                        .values(lease_expires_at=utcnow() + timedelta(seconds=rt.config.lease_seconds),
                                heartbeat_at=utcnow()))
        return rowcount(res) == 1


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE matched (the typed ``Result`` hides the cursor's count)."""
    return int(cast("CursorResult[Any]", result).rowcount)
