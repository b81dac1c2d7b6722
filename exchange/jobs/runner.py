"""Runs one job through its phases: fetch → transform → plan → deliver → finish.

Each phase records what it produced on the job (blob keys, counts, delivery progress) before the
next begins, so a job resumed after a crash or restart continues where it stopped: finished phases
are skipped and a delivery resumes at the first part not yet accepted, with the same
``Idempotency-Key`` for a part that may or may not have arrived.
"""
from __future__ import annotations

import errno
import logging
import shutil
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ..errors import ExchangeError
from ..models import Job
from . import phases
from .context import Cancelled, Context, Interrupted, JobFailed, StopFlag
from .delivery.finish import snapshot_after_failed_delivery
from .leases import renew_lease
from .states import transition

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = ["Cancelled", "Context", "Interrupted", "JobFailed", "run_job"]

log = logging.getLogger(__name__)


class _LeaseHeartbeat(threading.Thread):
    """Renews the job's lease while it runs: a long outbound call (a slow consumer, retries) must not
    let the lease lapse, or another worker would claim and run the same job at the same time."""

    def __init__(self, rt: Runtime, job_id: str, owner: str) -> None:
        super().__init__(daemon=True, name=f"lease-{job_id[:8]}")
        self.rt, self.job_id, self.owner = rt, job_id, owner
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(max(0.2, self.rt.config.lease_seconds / 3)):
            try:
                if not renew_lease(self.rt, self.job_id, self.owner):
                    return  # lost it: check_cancel tells the job to stop
            except Exception:  # noqa: BLE001 - database briefly unavailable: try again next beat
                log.warning("could not renew the lease of job %s", self.job_id, exc_info=True)


def run_job(rt: Runtime, job_id: str, owner: str, stop: StopFlag | None = None) -> None:
    ctx = Context(rt, job_id, owner, stop)
    heartbeat = _LeaseHeartbeat(rt, job_id, owner)
    heartbeat.start()
    try:
        with rt.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                return  # deleted since it was claimed
            job.attempts += 1
        phases.run(ctx)
    except Cancelled:
        _end(ctx, "cancelled", "cancelled by user")
    except Interrupted:
        log.info("job %s interrupted; it will resume on the next claim", job_id)
    except OperationalError:  # the database was briefly unavailable: not the job's fault
        log.warning("job %s lost the database; it will resume on the next claim", job_id, exc_info=True)
    except ExchangeError as exc:  # JobFailed, CsvDataError, transfer errors…: the problem is the job's error
        _end(ctx, "failed", exc.detail, error=exc.problem())
    except Exception as exc:  # noqa: BLE001 - a bug fails the job, it does not kill the worker
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            log.error("job %s: storage full (%s)", job_id, exc)
            detail = ("The exchange ran out of storage space (no space left on device); the job stopped "
                      "and delivered nothing more. Free space, then run the share again.")
            _end(ctx, "failed", detail, error={"type": "https://audience-exchange.dev/problems/storage-full",
                                               "title": "Storage full", "status": 507, "detail": detail})
        else:
            log.exception("job %s failed unexpectedly", job_id)
            _end(ctx, "failed", f"internal error ({type(exc).__name__})",
                 error={"type": "about:blank", "title": "Internal error", "status": 500,
                        "detail": f"internal error ({type(exc).__name__})"})
    finally:
        heartbeat.done.set()
        shutil.rmtree(ctx.tmp, ignore_errors=True)
        with rt.db.session() as s:
            job = s.get(Job, job_id)
            if job is not None and job.lease_owner == owner:
                job.lease_owner, job.lease_expires_at = None, None


def _end(ctx: Context, state: str, message: str, error: dict[str, Any] | None = None) -> None:
    """End the job as ``failed`` or ``cancelled``; a delivery cut short marks its keys in the snapshot."""
    with ctx.rt.db.session() as s:
        job = s.get(Job, ctx.job_id)
        if job is None:
            return
        delivering = job.state in ("delivering", "awaiting_consumer")
    if delivering:
        try:
            snapshot_after_failed_delivery(ctx.rt, ctx.job_id)
        except Exception:  # noqa: BLE001 - never block ending the job; the next full run corrects
            log.exception("could not mark the failed delivery in the snapshot of job %s", ctx.job_id)

    def _set(s: Session, job: Job) -> None:
        if state == "cancelled":
            job.cancel_requested = True
        if error:
            job.error = error
        transition(s, job, state, message)
    try:
        ctx.update(_set)
    except Cancelled:
        pass
