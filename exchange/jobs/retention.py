"""Retention: job artifacts (sources, outputs, rejects) older than the configured days are deleted."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..models import Audience, Job, utcnow
from .progress import JobProgress, read_progress, write_progress

if TYPE_CHECKING:
    from ..runtime import Runtime


def purge_expired(rt: Runtime, now: datetime | None = None) -> int:
    """Delete the artifacts of ended jobs older than ``retention_days``; returns the jobs purged."""
    now = now or utcnow()
    cutoff = now - timedelta(days=rt.config.retention_days)
    n = 0
    with rt.db.session() as s:
        jobs = s.scalars(select(Job).where(Job.finished_at.is_not(None), Job.finished_at < cutoff,
                                           Job.output_key.is_not(None) | Job.rejects_key.is_not(None)).limit(500))
        for job in jobs:
            rt.blobs.delete_prefix(f"jobs/{job.id}/")
            job.output_key = job.rejects_key = None
            # the files are gone: keep only what the job page shows (the output's columns)
            write_progress(job, JobProgress(columns=read_progress(job).columns))
            n += 1
    with rt.db.session() as s:
        current = set(s.scalars(select(Audience.data_key).where(Audience.data_key.is_not(None))))
    # superseded uploads of PUSH producers; the current version of each audience is always kept
    for key, _size, modified in list(rt.blobs.list("audiences/")):
        if modified < cutoff and key not in current:
            rt.blobs.delete(key)
    from ..webhooks.outbox import purge_finished

    purge_finished(rt, cutoff)  # the webhook delivery log keeps the same retention
    return n
