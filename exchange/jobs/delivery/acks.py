"""Acknowledgements: a consumer's answer ends a delivered job; overdue deliveries fail the job.

A PULL consumer acknowledges each delivery after downloading it; a PUSH consumer that answered 202
acknowledges the whole job later. Either way the job completes when nothing is left unacknowledged,
and a job whose deadline passes fails (SPEC §15.8).
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from sqlalchemy import select

from ... import metrics
from ...models import Delivery, Job, utcnow
from ..context import Context
from ..progress import Operation
from ..states import event, transition
from .finish import complete, next_snapshot_key, snapshot_after_failed_delivery

if TYPE_CHECKING:
    from ...runtime import Runtime


def await_ack(ctx: Context, *, kind: Literal["push", "pull"], ops: Sequence[Operation] | None = None) -> None:
    """Record what the consumer must acknowledge and wait (``awaiting_consumer``).

    PULL: one delivery per operation in ``ops``, each a file to download. PUSH (a 202 answer): one
    delivery standing for the whole job, acknowledged once.
    """
    with ctx.rt.db.session() as s:
        rec = ctx.load(s)
        job, progress = rec.job, rec.progress
        existing = s.scalar(select(Delivery).where(Delivery.job_id == job.id))
        if existing is None:
            deadline = utcnow() + rec.capabilities.ack_deadline(ctx.rt.config.ack_deadline_seconds)
            common = {"account_id": job.account_id, "job_id": job.id, "endpoint_id": rec.destination.id,
                      "destination_audience": rec.share.destination_audience, "columns": list(progress.columns),
                      "deadline_at": deadline}
            if kind == "pull":
                for op in ops if ops is not None else progress.operations:
                    s.add(Delivery(**common, mode=op.mode, row_count=op.rows, state="ready", blob_key=op.key,
                                   sha256=_sha(ctx, op.key), size=ctx.rt.blobs.size(op.key)))
            else:
                first = progress.operations[0]
                s.add(Delivery(**common, mode=first.mode, row_count=sum(o.rows for o in progress.operations),
                               state="awaiting_ack", blob_key=None, sha256="", size=0))
        what = "download and acknowledgement" if kind == "pull" else "acknowledgement"
        transition(s, job, "awaiting_consumer", f"waiting for the consumer's {what}")


def _sha(ctx: Context, key: str) -> str:
    h = hashlib.sha256()
    for chunk in ctx.rt.blobs.iter_chunks(key):
        h.update(chunk)
    return h.hexdigest()


def acknowledge(rt: Runtime, delivery: Delivery, accepted: int, rejected: int, message: str | None) -> None:
    """A consumer's ack: record it; the job completes when every delivery of it is acknowledged."""
    with rt.db.session() as s:
        d = s.get(Delivery, delivery.id)
        job = s.get(Job, d.job_id) if d is not None else None
        if d is None or job is None:
            return  # deleted meanwhile (with its share or account): nothing left to complete
        d.state, d.accepted, d.rejected, d.message, d.acked_at = "acknowledged", accepted, rejected, message, utcnow()
        c = dict(job.counts)
        c["acknowledged"] += accepted
        c["consumer_rejected"] = c.get("consumer_rejected", 0) + rejected
        if d.blob_key:  # pulled: the rows were delivered when downloaded
            c["delivered"] += d.row_count
            metrics.rows_moved("deliver", "pull", d.row_count)
        job.counts = c
        event(s, job, f"consumer acknowledged: {accepted} accepted, {rejected} rejected"
                      + (f" ({message})" if message else ""))
        remaining = s.scalar(select(Delivery.id).where(Delivery.job_id == job.id, Delivery.id != d.id,
                                                       Delivery.state != "acknowledged").limit(1))
        job_id, state = job.id, job.state
    if remaining is None and state == "awaiting_consumer":
        complete(rt, job_id, new_snapshot_key=next_snapshot_key(rt, job_id))


def expire_overdue(rt: Runtime) -> int:
    """Fail jobs whose consumer did not acknowledge before the deadline (SPEC §15.8)."""
    now = utcnow()
    failed: list[str] = []
    with rt.db.session() as s:
        for d in s.scalars(select(Delivery).where(Delivery.state.in_(("ready", "awaiting_ack")),
                                                  Delivery.deadline_at < now)):
            d.state = "expired"
            job = s.get(Job, d.job_id)
            if job is not None and not job.terminal:
                job.error = {"type": "https://audience-exchange.dev/problems/ack-deadline",
                             "title": "Acknowledgement deadline passed", "status": 504,
                             "detail": "The consumer did not acknowledge the delivery before its deadline."}
                transition(s, job, "failed", "the consumer did not acknowledge before the deadline")
                failed.append(job.id)
    for job_id in failed:
        snapshot_after_failed_delivery(rt, job_id)
    return len(failed)
