"""What a job's phases share: the runtime, the job's id, cancellation and the one way to save progress.

Phases and deliveries never open their own write path: they call :meth:`Context.update` with a
function of ``(session, job)``, which refuses to write to an ended job. (Subscribers hear of state
changes through the webhook outbox, written by the state machine in the same transaction.)
They read the job and what it refers to with :meth:`Context.load`, one typed record per session.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.orm import Session

from ..errors import ExchangeError
from ..models import TERMINAL_STATES, Audience, Endpoint, Job, Share
from .budget import maybe_yield
from .destination import Destination
from .leases import renew_lease
from .progress import JobProgress, read_progress
from .states import event, transition
from .sweep import work_dir

if TYPE_CHECKING:
    from ..runtime import Runtime


class Cancelled(Exception):
    """The job was cancelled (by a user, or its share was deleted): end it as ``cancelled``."""


class Interrupted(Exception):
    """The process is stopping or lost the lease: leave the job for the next claim."""


class JobFailed(ExchangeError):
    status = 422
    title = "Job failed"
    type_slug = "job-failed"


@dataclass(frozen=True)
class JobRecords:
    """A job with the rows it refers to, loaded in one session (valid while that session is open)."""

    job: Job
    share: Share
    audience: Audience
    destination: Endpoint
    source: Endpoint

    @property
    def progress(self) -> JobProgress:
        return read_progress(self.job)

    @property
    def capabilities(self) -> Destination:
        return Destination.of(self.destination)


Update = Callable[[Session, Job], Any]


class StopFlag(Protocol):
    """Set when the process is stopping (a thread or a process event)."""

    def is_set(self) -> bool: ...


class Context:
    """One running job: the runtime, its id and owner, a temp folder, and the helpers to save progress."""

    def __init__(self, rt: Runtime, job_id: str, owner: str, stop: StopFlag | None = None) -> None:
        self.rt, self.job_id, self.owner, self.stop = rt, job_id, owner, stop
        self._last_cancel_check = 0.0
        self.tmp = work_dir(rt, f"job-{job_id[:8]}-")  # under var_dir/tmp: swept after a kill

    def load(self, s: Session) -> JobRecords:
        """The job, its share, audience, destination and source; JobFailed when one no longer exists."""
        job = s.get(Job, self.job_id)
        if job is None:
            raise Interrupted()  # deleted with its account or share: nothing left to run
        share = s.get(Share, job.share_id) if job.share_id else None
        aud = s.get(Audience, share.audience_id) if share else None
        dest = s.get(Endpoint, share.destination_id) if share else None
        src = s.get(Endpoint, aud.endpoint_id) if aud else None
        if share is None or aud is None or dest is None or src is None:
            raise JobFailed("The share, its audience or its destination no longer exists.")
        return JobRecords(job, share, aud, dest, src)

    def progress(self) -> JobProgress:
        """The job's progress as stored now."""
        with self.rt.db.session() as s:
            return read_progress(self._job(s))

    def update(self, fn: Update) -> None:
        """Apply ``fn(session, job)`` and commit; raise Cancelled if the job was cancelled meanwhile."""
        with self.rt.db.session() as s:
            job = self._job(s)
            if job.state in TERMINAL_STATES:
                raise Cancelled()
            fn(s, job)

    def set_state(self, state: str, message: str = "", data: dict[str, Any] | None = None) -> None:
        def _set(s: Session, job: Job) -> None:
            if job.state != state:
                transition(s, job, state, message, data=data)
            elif message:
                event(s, job, message, data=data)
        self.update(_set)

    def event(self, message: str, kind: str = "info", data: dict[str, Any] | None = None) -> None:
        self.update(lambda s, job: event(s, job, message, kind=kind, data=data))

    def check_cancel(self, force: bool = False) -> None:
        """Raise Cancelled or Interrupted when the job must stop (checked at most twice a second)."""
        now = time.monotonic()
        if not force and now - self._last_cancel_check < 0.5:
            return
        self._last_cancel_check = now
        if self.stop is not None and self.stop.is_set():
            raise Interrupted()
        with self.rt.db.session() as s:
            job = self._job(s)
            if job.cancel_requested or job.state == "cancelled":
                raise Cancelled()
        if not renew_lease(self.rt, self.job_id, self.owner):
            raise Interrupted()  # someone else owns the job now
        if maybe_yield(self):
            raise Interrupted()  # jobs/budget.py: another share waits for a worker; resume later

    def cancelled(self) -> bool:
        """``check_cancel`` as a flag, for loops below the engine that take a ``cancel_check`` callable."""
        try:
            self.check_cancel()
        except (Cancelled, Interrupted):
            return True
        return False

    def _job(self, s: Session) -> Job:
        job = s.get(Job, self.job_id)
        if job is None:
            raise Interrupted()
        return job
