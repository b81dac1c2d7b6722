"""The scheduler: turns due schedules into jobs, refreshes the catalog, enforces deadlines and retention.

APScheduler drives a one-second tick; the database is the source of truth (``next_run_at`` on each
share), so schedules survive restarts and are re-armed on start. Several processes may run a
scheduler: a lease row elects one leader, and the unique key (share_id, scheduled_for) on jobs makes
a duplicate run impossible even if two processes tick at once. Missed runs after downtime collapse
into one run of the latest missed time (see ``schedules.due_run``).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ..catalog.gather import refresh_due
from ..jobs.delivery.acks import expire_overdue
from ..jobs.leases import rowcount, worker_id
from ..jobs.retention import purge_expired
from ..models import SchedulerLease, Share, utcnow
from .schedules import due_run
from .service import create_job

if TYPE_CHECKING:
    from ..runtime import Runtime

log = logging.getLogger(__name__)
LEASE_NAME = "scheduler"


def acquire_lease(rt: Runtime, owner: str, now: datetime | None = None, seconds: int | None = None) -> bool:
    """Become (or stay) the leader; a dead leader's lease lapses after ``seconds``."""
    now = now or utcnow()
    seconds = seconds or rt.config.scheduler_lease_seconds
    until = now + timedelta(seconds=seconds)
    with rt.db.session() as s:
        res = s.execute(update(SchedulerLease).where(
            SchedulerLease.name == LEASE_NAME,
            (SchedulerLease.owner == owner) | (SchedulerLease.expires_at < now)).values(owner=owner, expires_at=until))
        if rowcount(res) == 1:
            return True
    try:
        with rt.db.session() as s:
            if s.get(SchedulerLease, LEASE_NAME) is None:
                s.add(SchedulerLease(name=LEASE_NAME, owner=owner, expires_at=until))
                return True
    except IntegrityError:
        pass
    return False


def schedule_due(rt: Runtime, now: datetime | None = None) -> list[str]:
    """Create the jobs of every due share; returns their ids."""
    now = now or utcnow()
    created: list[str] = []
    with rt.db.session() as s:
        due = list(s.scalars(select(Share.id).where(Share.status == "active", Share.next_run_at.is_not(None),
                                                    Share.next_run_at <= now)))
    for share_id in due:
        try:
            with rt.db.session() as s:
                share = s.get(Share, share_id)
                if share is None:
                    continue  # deleted since the query
                run_at, following = due_run(share.schedule, share.last_scheduled_for, now, share.anchor_at)
                share.next_run_at = following
                if run_at is not None:
                    share.last_scheduled_for = run_at
                    job = create_job(s, share, trigger="schedule", scheduled_for=run_at)
                    created.append(job.id)
        except IntegrityError:
            # another scheduler created this run first: the unique key did its job
            log.info("run of share %s already created elsewhere", share_id)
    if created:
        rt.executor.wake()
    return created


class Scheduler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.owner = worker_id()
        self._aps = BackgroundScheduler(timezone="UTC")

    def start(self) -> None:
        self._aps.add_job(self.tick, "interval", seconds=1, max_instances=1, coalesce=True, id="tick")
        self._aps.add_job(self.housekeeping, "interval", seconds=30, max_instances=1, coalesce=True,
                          id="housekeeping", next_run_time=utcnow())
        self._aps.start()

    def stop(self) -> None:
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def tick(self, now: datetime | None = None) -> None:
        try:
            if acquire_lease(self.rt, self.owner, now):
                schedule_due(self.rt, now)
        except Exception:  # noqa: BLE001 - a database hiccup must not stop the scheduler
            log.exception("scheduler tick failed")

    def housekeeping(self) -> None:
        try:
            if not acquire_lease(self.rt, self.owner):
                return
            expire_overdue(self.rt)
            refresh_due(self.rt)
            purge_expired(self.rt)
        except Exception:  # noqa: BLE001
            log.exception("housekeeping failed")
