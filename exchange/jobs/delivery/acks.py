"""Acknowledgements: a consumer's answer ends a delivered job; overdue deliveries fail the job.

A PULL consumer acknowledges each delivery after downloading it; a PUSH consumer that answered 202
acknowledges the whole job later. Either way the job completes when nothing is left unacknowledged,
and a job whose deadline passes fails (SPEC §15.8).
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from sqlalchemy import select

from ... import metrics
from ...models import Delivery, Endpoint, Job, Share, utcnow
from ..context import Context
from ..destination import Destination
from ..states import event, transition
from ..webhooks import notify_state
from .finish import advance_snapshot, complete, keeps_snapshot, snapshot_after_failed_delivery

if TYPE_CHECKING:
    pass


def await_ack(ctx: Context, progress: dict, *, kind: str) -> None:
    with ctx.rt.db.session() as s:
        job, share, aud, dest, src = ctx.load(s)
        existing = s.scalar(select(Delivery).where(Delivery.job_id == job.id))
        if existing is None:
            deadline = utcnow() + Destination.of(dest).ack_deadline(ctx.rt.config.ack_deadline_seconds)
            for op in progress["ops"]:
                if kind == "push" and op is not progress["ops"][0]:
                    continue  # one acknowledgement covers a pushed job
                s.add(Delivery(account_id=job.account_id, job_id=job.id, endpoint_id=dest.id,
                               destination_audience=share.destination_audience, mode=op["mode"],
                               columns=progress["columns"], row_count=op["rows"] if kind == "pull" else
                               sum(o["rows"] for o in progress["ops"]),
                               state="ready" if kind == "pull" else "awaiting_ack",
                               blob_key=op["key"] if kind == "pull" else None,
                               sha256=_sha(ctx, op["key"]) if kind == "pull" else "",
                               size=ctx.rt.blobs.size(op["key"]) if kind == "pull" else 0,
                               deadline_at=deadline))
        what = "download and acknowledgement" if kind == "pull" else "acknowledgement"
        transition(s, job, "awaiting_consumer", f"waiting for the consumer's {what}")
    ctx.notify()


def _sha(ctx: Context, key: str) -> str:
    h = hashlib.sha256()
    for chunk in ctx.rt.blobs.iter_chunks(key):
        h.update(chunk)
    return h.hexdigest()


def acknowledge(rt, delivery: Delivery, accepted: int, rejected: int, message: str | None) -> None:
    """A consumer's ack: record it; the job completes when every delivery of it is acknowledged."""
    with rt.db.session() as s:
        d = s.get(Delivery, delivery.id)
        job = s.get(Job, d.job_id)
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
        share = s.get(Share, job.share_id) if job.share_id else None
        dest_id, progress = d.endpoint_id, dict(job.progress)
        job_id, state = job.id, job.state
    if remaining is None and state == "awaiting_consumer":
        new_key = None
        with rt.db.session() as s:
            dest = s.get(Endpoint, dest_id)
            share = s.get(Share, share.id) if share else None
            keep = share is not None and keeps_snapshot(share, dest)
        if keep:
            new_key = advance_snapshot(rt, job_id, share, progress)
        complete(rt, job_id, new_snapshot_key=new_key)
    notify_state(rt, job_id)


def expire_overdue(rt) -> int:
    """Fail jobs whose consumer did not acknowledge before the deadline (SPEC §15.8)."""
    now = utcnow()
    failed: list[str] = []
    with rt.db.session() as s:
        for d in s.scalars(select(Delivery).where(Delivery.state.in_(("ready", "awaiting_ack")),
                                                  Delivery.deadline_at < now)):
            d.state = "expired"
            job = s.get(Job, d.job_id)
            if not job.terminal:
                job.error = {"type": "https://audience-exchange.dev/problems/ack-deadline",
                             "title": "Acknowledgement deadline passed", "status": 504,
                             "detail": "The consumer did not acknowledge the delivery before its deadline."}
                transition(s, job, "failed", "the consumer did not acknowledge before the deadline")
                failed.append(job.id)
    for job_id in failed:
        snapshot_after_failed_delivery(rt, job_id)
    return len(failed)
