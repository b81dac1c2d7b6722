"""What a job's phases share: the runtime, the job's id, cancellation and the one way to save progress.

Phases and deliveries never open their own write path: they call :meth:`Context.update` with a
function of ``(session, job)``, which refuses to write to an ended job and notifies subscribers.
"""
from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ExchangeError
from ..models import TERMINAL_STATES, Audience, Endpoint, Job, Share
from .leases import renew_lease
from .states import event, transition

if TYPE_CHECKING:
    from ..runtime import Runtime


class Cancelled(Exception):
    pass


class JobFailed(ExchangeError):
    status = 422
    title = "Job failed"
    type_slug = "job-failed"


class Context:
    """What a job's phases share: the runtime, ids, and helpers to save progress."""

    def __init__(self, rt: Runtime, job_id: str, owner: str, stop: threading.Event | None,
                 notify: Callable[[Runtime, str], None] | None = None):
        self.rt, self.job_id, self.owner, self.stop = rt, job_id, owner, stop
        self._notify_fn = notify
        self._last_cancel_check = 0.0
        self.tmp = Path(tempfile.mkdtemp(prefix=f"job-{job_id[:8]}-"))

    def load(self, s):
        job = s.get(Job, self.job_id)
        share = s.get(Share, job.share_id) if job.share_id else None
        aud = s.get(Audience, share.audience_id) if share else None
        dest = s.get(Endpoint, share.destination_id) if share else None
        src = s.get(Endpoint, aud.endpoint_id) if aud else None
        return job, share, aud, dest, src

    def update(self, fn) -> None:
        """Apply ``fn(session, job)`` and commit; raise Cancelled if the job was cancelled meanwhile."""
        with self.rt.db.session() as s:
            job = s.get(Job, self.job_id)
            if job.state in TERMINAL_STATES:
                raise Cancelled()
            fn(s, job)
        self.notify()

    def set_state(self, state: str, message: str = "", data: dict | None = None) -> None:
        def _set(s, job):
            if job.state != state:
                transition(s, job, state, message, data=data)
            elif message:
                event(s, job, message, data=data)
        self.update(_set)

    def event(self, message: str, kind: str = "info", data: dict | None = None) -> None:
        self.update(lambda s, job: event(s, job, message, kind=kind, data=data))

    def check_cancel(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_cancel_check < 0.5:
            return
        self._last_cancel_check = now
        if self.stop is not None and self.stop.is_set():
            raise Interrupted()
        with self.rt.db.session() as s:
            job = s.get(Job, self.job_id)
            if job.cancel_requested or job.state == "cancelled":
                raise Cancelled()
        if not renew_lease(self.rt, self.job_id, self.owner):
            raise Interrupted()  # someone else owns the job now

    def cancelled(self) -> bool:
        """``check_cancel`` as a flag, for loops below the engine that take a ``cancel_check`` callable."""
        try:
            self.check_cancel()
        except (Cancelled, Interrupted):
            return True
        return False

    def notify(self) -> None:
        """Tell subscribers (webhooks) about the job's state; the runner injects how."""
        if self._notify_fn is not None:
            self._notify_fn(self.rt, self.job_id)


class Interrupted(Exception):
    """The process is stopping or lost the lease: leave the job for the next claim."""
