"""Delivery of a job's planned operations to its destination, and finishing the job.

Three consumer kinds behind one loop: a PUSH consumer gets POSTs in parts, a PULL consumer gets a
delivery to download and acknowledge, a partner endpoint gets batches through its adapter.
"""
from __future__ import annotations

import gzip as gzip_mod
from collections.abc import Iterator

from sqlalchemy import select

from ..api.metrics import ROWS_MOVED
from ..models import Delivery, Job, utcnow
from .runner import Context
from .states import event, transition


def destination_identifiers(dest) -> list[str]:
    if dest.adapter_type:
        from ..adapters.registry import get_adapter
        return list(get_adapter(dest.adapter_type).identifiers)
    return list(dest.identifiers or [])


def needs_snapshot(share, dest) -> bool:
    if share.delta:
        return True
    if dest.adapter_type:
        from ..adapters.registry import get_adapter
        cls = get_adapter(dest.adapter_type)
        if getattr(cls, "requires_snapshot", False):
            return True
        return share.mode == "replace" and "replace" not in cls.native_modes
    return share.mode == "replace" and not dest.replace_native and dest.consumer_transport == "push"


def _parts(ctx: Context, key: str, size: int) -> Iterator[tuple[bytes, int]]:
    """Cut a CSV blob into bodies of at most ``size`` records, each with the header: (body, rows).

    Works on bytes: a record ends at a newline outside quotes, and quote parity per line tells
    which newlines are inside a quoted field, so no row is parsed or re-encoded.
    """
    with ctx.rt.blobs.local_path(key) as path, open(path, "rb") as fh:
        header = fh.readline()
        while header.count(b'"') % 2:
            header += fh.readline()
        buf: list[bytes] = [header]
        rows, inside = 0, False
        for line in fh:
            buf.append(line)
            if b'"' in line and line.count(b'"') % 2:
                inside = not inside
            if not inside:
                rows += 1
                if rows == size:
                    yield b"".join(buf), rows
                    buf, rows = [header], 0
        if rows:
            yield b"".join(buf), rows


def deliver(ctx: Context) -> None:
    with ctx.rt.db.session() as s:
        job, share, aud, dest, src = ctx.load(s)
        progress = dict(job.progress)
    ctx.set_state("delivering", f"delivering to {dest.name}")
    if dest.adapter_type:
        from .adapter_delivery import deliver_adapter
        deliver_adapter(ctx, progress)
        finish(ctx)
    elif dest.consumer_transport == "pull":
        _offer(ctx, progress)
    else:
        if _push(ctx, progress):
            finish(ctx)


def _push(ctx: Context, progress: dict) -> bool:
    """POST each operation in parts; returns False when the consumer will acknowledge later (202)."""
    from .. import endpoint_client
    from ..catalog.endpoints import credential
    from ..net import call_with_retries

    with ctx.rt.db.session() as s:
        job, share, aud, dest, src = ctx.load(s)
        token, size, use_gzip = credential(ctx.rt, dest), dest.max_rows_per_request, dest.consumer_gzip
        audience_name = share.destination_audience
    columns = progress["columns"]
    done: dict = dict(progress.get("done") or {})
    pending_ack = bool(progress.get("pending_ack"))
    for i, op in enumerate(progress["ops"]):
        total = max(1, -(-op["rows"] // size))
        if op["rows"] == 0 and op["mode"] != "replace":
            continue
        first = done.get(str(i), 0)
        empty = [((",".join(columns) + "\n").encode(), 0)]
        parts = _parts(ctx, op["key"], size) if op["rows"] else iter(empty)
        for n, (body, rows_in_part) in enumerate(parts, start=1):
            if n <= first:
                continue
            ctx.check_cancel()
            payload = gzip_mod.compress(body, 5) if use_gzip else body

            def attempt(n=n, payload=payload, op=op):
                with ctx.rt.http() as http:
                    return endpoint_client.push_part(
                        http, dest, token, audience_name, mode=op["mode"], body=payload, gzip=use_gzip,
                        job_id=ctx.job_id, idempotency_key=f"{ctx.job_id}:{i}:{n}", part=n, parts=total)

            resp = call_with_retries(attempt, max_attempts=ctx.rt.config.max_attempts,
                                     on_wait=lambda sec, why: ctx.event(f"waiting {sec:.0f}s: {why}"))
            accepted, rejected = rows_in_part, 0
            if resp.status_code == 202:
                pending_ack = True
            else:
                try:
                    answer = resp.json()
                    accepted = int(answer.get("accepted", rows_in_part))
                    rejected = int(answer.get("rejected", 0))
                except (ValueError, AttributeError, TypeError):
                    pass

            def _part_done(s, job, n=n, accepted=accepted, rejected=rejected, rows=rows_in_part):
                d = dict(job.progress.get("done") or {})
                d[str(i)] = n
                c = dict(job.counts)
                c["delivered"] += rows
                c["acknowledged"] += accepted if resp.status_code != 202 else 0
                c["consumer_rejected"] = c.get("consumer_rejected", 0) + rejected
                job.counts = c
                job.progress = {**job.progress, "done": d, "pending_ack": pending_ack}
                event(s, job, f"{op['mode']} part {n}/{total}: {rows} rows sent"
                              + (", acknowledgement pending (202)" if resp.status_code == 202
                                 else f", {accepted} accepted, {rejected} rejected"))
            ctx.update(_part_done)
            ROWS_MOVED.labels("push").inc(rows_in_part)
        done[str(i)] = total
    if pending_ack:
        _await_ack(ctx, progress, kind="push")
        return False
    return True


def _await_ack(ctx: Context, progress: dict, *, kind: str) -> None:
    from .phases import deadline_for

    with ctx.rt.db.session() as s:
        job, share, aud, dest, src = ctx.load(s)
        existing = s.scalar(select(Delivery).where(Delivery.job_id == job.id))
        if existing is None:
            deadline = utcnow() + deadline_for(dest, ctx.rt)
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
    ctx._notify()


def _sha(ctx: Context, key: str) -> str:
    import hashlib
    h = hashlib.sha256()
    for chunk in ctx.rt.blobs.iter_chunks(key):
        h.update(chunk)
    return h.hexdigest()


def _offer(ctx: Context, progress: dict) -> None:
    ops = [op for op in progress["ops"] if op["rows"] or op["mode"] == "replace"]
    _await_ack(ctx, {**progress, "ops": ops or progress["ops"][:1]}, kind="pull")


def finish(ctx: Context, *, unchanged: bool = False) -> None:
    """Advance the snapshot (if the share keeps one) and end the job as (partially) succeeded."""
    with ctx.rt.db.session() as s:
        job, share, aud, dest, src = ctx.load(s)
        progress = dict(job.progress)
        keep = needs_snapshot(share, dest)
    new_key = advance_snapshot(ctx.rt, ctx.job_id, share, progress) if keep and not unchanged else None
    complete(ctx.rt, ctx.job_id, new_snapshot_key=new_key)
    ctx._notify()


def complete(rt, job_id: str, *, new_snapshot_key: str | None = None) -> None:
    """End a job whose delivery is complete; the snapshot advances only here (success)."""
    from ..models import Share

    with rt.db.session() as s:
        job = s.get(Job, job_id)
        if job.terminal:
            return
        share = s.get(Share, job.share_id) if job.share_id else None
        c = job.counts
        rejected = c.get("rejected", 0) + c.get("consumer_rejected", 0)
        state = "partially_succeeded" if rejected else "succeeded"
        if share is not None and new_snapshot_key:
            old = share.snapshot_key
            share.snapshot_key, share.snapshot_job_id = new_snapshot_key, job.id
            if old and old != new_snapshot_key:
                try:
                    rt.blobs.delete(old)
                except Exception:  # noqa: BLE001 - retention removes leftovers
                    pass
        transition(s, job, state, f"{state}: {c.get('delivered', 0)} rows delivered, "
                                  f"{c.get('acknowledged', 0)} acknowledged, {rejected} rejected",
                   data={k: c.get(k, 0) for k in ("delivered", "acknowledged", "rejected")})


def acknowledge(rt, delivery: Delivery, accepted: int, rejected: int, message: str | None) -> None:
    """A consumer's ack: record it; the job completes when every delivery of it is acknowledged."""
    from ..models import Share
    from .webhooks import notify_state

    with rt.db.session() as s:
        d = s.get(Delivery, delivery.id)
        job = s.get(Job, d.job_id)
        d.state, d.accepted, d.rejected, d.message, d.acked_at = "acknowledged", accepted, rejected, message, utcnow()
        c = dict(job.counts)
        c["acknowledged"] += accepted
        c["consumer_rejected"] = c.get("consumer_rejected", 0) + rejected
        if d.blob_key:  # pulled: the rows were delivered when downloaded
            c["delivered"] += d.row_count
            ROWS_MOVED.labels("pull").inc(d.row_count)
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
        from ..models import Endpoint
        with rt.db.session() as s:
            dest = s.get(Endpoint, dest_id)
            share = s.get(Share, share.id) if share else None
            keep = share is not None and needs_snapshot(share, dest)
        if keep:
            new_key = advance_snapshot(rt, job_id, share, progress)
        complete(rt, job_id, new_snapshot_key=new_key)
    notify_state(rt, job_id)


def advance_snapshot(rt, job_id: str, share, progress: dict) -> str:
    """Build the share's next snapshot from the old one and this job's output; returns its key."""
    import shutil
    from contextlib import ExitStack

    from ..transfer.snapshot import next_snapshot
    from .sweep import work_dir

    tmp = work_dir(rt, "snapshot-")
    try:
        with ExitStack() as stack:
            old = (stack.enter_context(rt.blobs.local_path(share.snapshot_key))
                   if share.snapshot_key and rt.blobs.exists(share.snapshot_key) else None)
            out = stack.enter_context(rt.blobs.local_path(progress["output_key"]))
            next_snapshot(share.mode, old, out, progress["key_columns"], tmp / "new.snapshot")
        key = f"snapshots/{share.id}/{job_id}.snapshot"
        rt.blobs.put_file(key, tmp / "new.snapshot")
        return key
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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




def snapshot_after_failed_delivery(rt, job_id: str) -> None:
    """A job failed or was cancelled after delivery began: mark the keys it tried as unknown.

    The snapshot's baseline stays the last success, but the destination may hold part of this job's
    adds (or lack part of its removes); the next delta re-sends every such key, so nothing stays
    stale (see ``transfer.snapshot.snapshot_after_failure``).
    """
    import shutil
    from contextlib import ExitStack

    from ..models import Endpoint, Share
    from ..transfer.snapshot import snapshot_after_failure
    from .sweep import work_dir

    with rt.db.session() as s:
        job = s.get(Job, job_id)
        share = s.get(Share, job.share_id) if job and job.share_id else None
        dest = s.get(Endpoint, share.destination_id) if share else None
        progress = dict(job.progress or {}) if job else {}
        if share is None or dest is None or not progress.get("ops") or not needs_snapshot(share, dest):
            return
        old_key, share_id = share.snapshot_key, share.id
    tmp = work_dir(rt, "failed-")
    try:
        with ExitStack() as stack:
            old = stack.enter_context(rt.blobs.local_path(old_key)) if old_key and rt.blobs.exists(old_key) else None
            attempted = [stack.enter_context(rt.blobs.local_path(op["key"])) for op in progress["ops"]
                         if op["rows"] and rt.blobs.exists(op["key"])]
            snapshot_after_failure(old, attempted, progress["key_columns"], tmp / "new.snapshot")
        key = f"snapshots/{share_id}/{job_id}-failed.snapshot"
        rt.blobs.put_file(key, tmp / "new.snapshot")
        with rt.db.session() as s:
            share = s.get(Share, share_id)
            share.snapshot_key = key  # snapshot_job_id stays the last success: the diff base
        if old_key and old_key != key:
            rt.blobs.delete(old_key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
