"""Fair use of job workers: concurrency budgets per destination and per partner account, and time
slices, so that whatever one destination does, other shares keep moving.

Two mechanisms, both decided from the ``jobs`` table (so they hold across processes and hosts):

* **Budgets at claim time** (:func:`within_budget`, used by ``executor.claim_next``). A job is not
  claimed while its destination already has ``destination_concurrency`` running jobs, or while the
  destination's partner account (for adapter destinations: the exchange account's endpoints of the
  same adapter type; assumed, since partners key rate limits by their own account) already has
  ``partner_concurrency``. Running = leased and the lease not expired.
* **Time slices while running** (:func:`maybe_yield`, called from ``Context.check_cancel`` between
  two parts of a delivery and between steps of the other phases). A job that has held its worker
  for ``fair_slice_seconds`` while another job waits for a worker gives the worker up: its progress
  is already saved after each part, so it releases its lease, waits ``yield_pause_seconds`` and is
  resumed by the next free worker at the part where it stopped. With more slow destinations than
  workers, each slow job takes turns with the others, and a waiting share starts after at most one
  slice plus one outbound call (which ``http_total_timeout`` bounds).
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import timedelta

from sqlalchemy import exists, func, or_, select, true
from sqlalchemy.orm import aliased

from ..models import TERMINAL_STATES, Endpoint, Job, Share, utcnow
from .states import event

log = logging.getLogger(__name__)
RUNNABLE = ("queued", "fetching", "awaiting_source", "transforming", "delivering")
_CHECK_EVERY = 1.0  # seconds between two "is anyone waiting?" queries of one running job


def _running_destinations(s, now) -> Counter:
    rows = s.execute(select(Share.destination_id).join(Job, Job.share_id == Share.id)
                     .where(Job.lease_owner.is_not(None), Job.lease_expires_at >= now,
                            Job.state.in_(RUNNABLE)))
    return Counter(dest for (dest,) in rows)


def blocked_destinations(s, now, config) -> set[str]:
    """Destinations whose own budget or whose partner account's budget is used up right now."""
    per_dest = max(0, int(getattr(config, "destination_concurrency", 0) or 0))
    per_partner = max(0, int(getattr(config, "partner_concurrency", 0) or 0))
    if not per_dest and not per_partner:
        return set()
    running = _running_destinations(s, now)
    if not running:
        return set()
    blocked = {dest for dest, n in running.items() if per_dest and n >= per_dest}
    if per_partner:
        partners: Counter = Counter()
        for dest_id, account_id, adapter in s.execute(
                select(Endpoint.id, Endpoint.account_id, Endpoint.adapter_type)
                .where(Endpoint.id.in_(list(running)), Endpoint.adapter_type.is_not(None))):
            partners[(account_id, adapter)] += running[dest_id]
        for (account_id, adapter), n in partners.items():
            if n >= per_partner:
                blocked.update(s.scalars(select(Endpoint.id).where(Endpoint.account_id == account_id,
                                                                   Endpoint.adapter_type == adapter)))
    return blocked


def within_budget(s, now, config):
    """A WHERE clause on ``Job`` keeping only jobs whose destination has budget left."""
    blocked = blocked_destinations(s, now, config)
    if not blocked:
        return true()
    return or_(Job.share_id.is_(None),
               Job.share_id.not_in(select(Share.id).where(Share.destination_id.in_(sorted(blocked)))))


def claim_order():
    """Oldest due first: a job that yielded (``not_before`` set) queues behind those already waiting."""
    return func.coalesce(Job.not_before, Job.created_at)


def _someone_waiting(s, job_id: str, now, config) -> bool:
    """Is a job other than ``job_id`` runnable, unclaimed, due and within budget?"""
    other = aliased(Job)
    blocked_by_share = exists().where(other.share_id == Job.share_id, other.id != Job.id,
                                      other.created_at < Job.created_at, other.state.not_in(TERMINAL_STATES))
    query = (select(Job.id).where(Job.id != job_id, Job.state.in_(RUNNABLE),
                                  or_(Job.lease_owner.is_(None), Job.lease_expires_at < now),
                                  or_(Job.not_before.is_(None), Job.not_before <= now),
                                  or_(Job.share_id.is_(None), ~blocked_by_share),
                                  within_budget(s, now, config))
             .limit(1))
    return s.scalar(query) is not None


def maybe_yield(ctx) -> bool:
    """True when the running job should give its worker up now (the caller then stops the run);
    the job is then due again after ``yield_pause_seconds``."""
    cfg = ctx.rt.config
    slice_seconds = float(getattr(cfg, "fair_slice_seconds", 0) or 0)
    if slice_seconds <= 0:
        return False
    clock = time.monotonic()
    started = getattr(ctx, "_budget_started", None)
    if started is None:
        ctx._budget_started = clock
        return False
    if clock - started < slice_seconds or clock - getattr(ctx, "_budget_checked", 0.0) < _CHECK_EVERY:
        return False
    ctx._budget_checked = clock
    now = utcnow()
    with ctx.rt.db.session() as s:
        if not _someone_waiting(s, ctx.job_id, now, cfg):
            return False
        job = s.get(Job, ctx.job_id)
        if job is None or job.state in TERMINAL_STATES:
            return False
        job.not_before = now + timedelta(seconds=float(getattr(cfg, "yield_pause_seconds", 2) or 0))
        job.attempts = max(0, (job.attempts or 0) - 1)  # the resumed run continues this attempt
        event(s, job, f"giving the worker to a waiting share after {clock - started:.0f}s; "
                      "resuming where it stopped")
    log.info("job %s yields its worker after %.0fs", ctx.job_id, clock - started)
    return True
