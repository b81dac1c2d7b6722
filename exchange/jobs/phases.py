"""The phases of a job: fetch → transform → plan → deliver. Each is skipped when the job already
records its result, so a resumed job continues where it stopped."""
from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import datetime, timedelta

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import endpoint_client
from ..errors import PermanentTransferError, RetryableTransferError
from ..identifiers import IDENTIFIER_TYPES
from ..models import Job, utcnow
from ..net import call_with_retries, parse_retry_after
from ..transfer.pipeline import TransformCancelled, exceeds_threshold, run_transform
from ..transfer.snapshot import compute_delta
from .context import Cancelled, Context, Interrupted, JobFailed
from .delivery.adapter import deliver_adapter
from .delivery.finish import finish, keeps_snapshot
from .delivery.pull import deliver_pull
from .delivery.push import deliver_push
from .destination import Destination
from .states import event, transition


def run(ctx: Context) -> None:
    with ctx.rt.db.session() as s:
        job, share, aud, dest, src = ctx.load(s)
        if share is None or aud is None or dest is None:
            raise JobFailed("The share, its audience or its destination no longer exists.")
        if dest.status != "active" or src.status != "active":
            raise JobFailed("The source or destination endpoint is disabled.")
        state, progress = job.state, dict(job.progress or {})
    if state == "awaiting_consumer":
        return
    if not progress.get("source_key"):
        if fetch(ctx) == "unchanged":
            return
    ctx.check_cancel(force=True)
    with ctx.rt.db.session() as s:
        progress = dict(s.get(type(job), ctx.job_id).progress or {})
    if not progress.get("output_key"):
        transform(ctx)
    ctx.check_cancel(force=True)
    with ctx.rt.db.session() as s:
        progress = dict(s.get(type(job), ctx.job_id).progress or {})
    if "ops" not in progress:
        plan(ctx)
    ctx.check_cancel(force=True)
    deliver(ctx)


# ------------------------------------------------------------------ fetch
def fetch(ctx: Context) -> str:
    """Get the source data into the blob store; returns 'fetched' or 'unchanged' (304)."""
    with ctx.rt.db.session() as s:
        job, share, aud, dest, src = ctx.load(s)
        transport, version, data_key = src.producer_transport, aud.version, aud.data_key
        last_version = _last_success_version(s, share.id, job.id)
        token = ctx.rt.credential(src)
        external_id = aud.external_id
        awaiting_since = (job.progress or {}).get("awaiting_since")
    ctx.set_state("fetching", "fetching the source data")
    if transport == "push":
        if not data_key:
            raise JobFailed("The PUSH producer has not uploaded data for this audience yet.")

        def _set(s, job):
            job.progress = {**job.progress, "source_key": data_key, "source_gzip": False}
            job.source_version = version
        ctx.update(_set)
        return "fetched"
    key = f"jobs/{ctx.job_id}/source.csv"

    def attempt():
        with ctx.rt.http() as http:
            resp = endpoint_client.open_data(http, src, token, external_id, job_id=ctx.job_id,
                                             if_none_match=last_version)
            if resp.status_code in (202, 304):
                return resp.status_code, resp.headers, None
            gz = "gzip" in resp.headers.get("Content-Encoding", "").lower()
            info = ctx.rt.blobs.put_stream(key, _raw_chunks(resp, ctx))
            return 200, resp.headers, (info, gz)

    status, headers, result = call_with_retries(attempt, max_attempts=ctx.rt.config.max_attempts,
                                                on_wait=lambda sec, why: ctx.event(f"waiting {sec:.0f}s: {why}"))
    if status == 304:
        ctx.set_state("fetching", "the producer reports no change since the last successful job (304)")
        ctx.update(lambda s, job: setattr(job, "progress", {**job.progress, "unchanged": True}))
        finish(ctx, unchanged=True)
        return "unchanged"
    if status == 202:
        wait = parse_retry_after(headers.get("Retry-After")) or 5.0
        now = utcnow()
        since = awaiting_since or now.isoformat()
        waited = (now - datetime.fromisoformat(since)).total_seconds()
        if waited + wait > ctx.rt.config.source_wait_seconds:
            raise JobFailed(f"The producer was still preparing the export after {waited:.0f}s "
                            f"(limit {ctx.rt.config.source_wait_seconds}s).")

        def _wait(s, job):
            job.progress = {**job.progress, "awaiting_since": since}
            job.not_before = now + timedelta(seconds=wait)
            transition(s, job, "awaiting_source", f"the producer is preparing the export; retrying in {wait:.0f}s")
        ctx.update(_wait)
        raise Interrupted()
    info, gz = result

    def _done(s, job):
        job.progress = {**job.progress, "source_key": key, "source_gzip": gz}
        job.bytes = info.size
        job.source_version = headers.get("ETag", "").strip('"') or version
    ctx.update(_done)
    return "fetched"


def _raw_chunks(resp, ctx: Context):
    """The body as sent (still gzip if it was), so the transform can bound and verify inflation."""
    try:
        for chunk in resp.raw.stream(1 << 20, decode_content=False):
            ctx.check_cancel()
            yield chunk
    except (requests.RequestException, OSError, Exception) as exc:  # noqa: BLE001
        if isinstance(exc, (PermanentTransferError, Cancelled, Interrupted)):
            raise
        raise RetryableTransferError(f"The download broke off ({type(exc).__name__}).") from None


def _last_success_version(s: Session, share_id: str, job_id: str) -> str | None:
    return s.scalar(select(Job.source_version).where(
        Job.share_id == share_id, Job.id != job_id, Job.state.in_(("succeeded", "partially_succeeded")),
        Job.source_version.is_not(None)).order_by(Job.finished_at.desc()).limit(1))


# ------------------------------------------------------------------ transform
def transform(ctx: Context) -> None:
    with ctx.rt.db.session() as s:
        job, share, aud, dest, src = ctx.load(s)
        source_key, gz = job.progress["source_key"], job.progress.get("source_gzip", False)
        rules, threshold, country = share.mapping, share.reject_threshold, share.default_country
        id_types = set(IDENTIFIER_TYPES) | set(Destination.of(dest).identifiers)
    ctx.set_state("transforming", "mapping, normalizing and deduplicating rows")
    out, rejects = ctx.tmp / "output.csv", ctx.tmp / "rejects.csv"
    started = time.monotonic()
    try:
        result = run_transform(ctx.rt.blobs.iter_chunks(source_key), gzip=gz, rules=rules,
                               identifier_types=id_types, out_path=str(out), rejects_path=str(rejects),
                               default_country=country, cancel_check=ctx.cancelled)
    except TransformCancelled:
        ctx.check_cancel(force=True)  # raises Cancelled or Interrupted, whichever stopped us
        raise Interrupted() from None
    rej_key = f"jobs/{ctx.job_id}/rejects.csv"
    ctx.rt.blobs.put_file(rej_key, rejects)
    counts = result.counts
    if exceeds_threshold(result, threshold):
        def _rej(s, job):
            job.rejects_key = rej_key
            job.counts = {**job.counts, **{k: counts.get(k, 0) for k in
                                           ("received", "valid", "rejected", "duplicates", "hashed", "passed_through")}}
        ctx.update(_rej)
        raise JobFailed(f"{counts['rejected']} of {counts['received']} rows were rejected, more than the share's "
                        f"threshold of {threshold:.0%}; see the rejects file.")
    out_key = f"jobs/{ctx.job_id}/output.csv"
    info = ctx.rt.blobs.put_file(out_key, out)

    def _done(s, job):
        job.rejects_key, job.output_key = rej_key, out_key
        job.counts = {**job.counts, **{k: counts.get(k, 0) for k in
                                       ("received", "valid", "rejected", "duplicates", "hashed", "passed_through")}}
        job.progress = {**job.progress, "output_key": out_key, "columns": list(result.columns),
                        "output_rows": result.rows_out, "output_sha256": info.sha256,
                        "key_columns": [c for c in result.columns if c in id_types]}
        event(s, job, f"transformed {counts['received']} rows in {time.monotonic() - started:.1f}s: "
                      f"{result.rows_out} valid, {counts['rejected']} rejected, {counts['duplicates']} duplicates",
              data=counts)
    ctx.update(_done)


# ------------------------------------------------------------------ plan
def plan(ctx: Context) -> None:
    """Decide what to send: the whole output, or adds/removes against the share's snapshot."""
    with ctx.rt.db.session() as s:
        job, share, aud, dest, src = ctx.load(s)
        progress = dict(job.progress)
        mode, snapshot_key, snapshot_job = share.mode, share.snapshot_key, share.snapshot_job_id
        use_snapshot = keeps_snapshot(share, dest)
    out_key, rows = progress["output_key"], progress["output_rows"]
    key_columns = progress["key_columns"]
    if not use_snapshot or mode == "remove":
        ops = [{"mode": mode, "key": out_key, "rows": rows}]
        added, removed = (rows, 0) if mode != "remove" else (0, rows)
        base = None
    else:
        adds, removes = ctx.tmp / "adds.csv", ctx.tmp / "removes.csv"
        has_old = bool(snapshot_key) and ctx.rt.blobs.exists(snapshot_key)
        with ExitStack() as stack:
            old = stack.enter_context(ctx.rt.blobs.local_path(snapshot_key)) if has_old else None
            new = stack.enter_context(ctx.rt.blobs.local_path(out_key))
            d = compute_delta(new, old, key_columns, adds, removes)
        adds_key, removes_key = f"jobs/{ctx.job_id}/adds.csv", f"jobs/{ctx.job_id}/removes.csv"
        ctx.rt.blobs.put_file(adds_key, adds)
        ops = [{"mode": "add", "key": adds_key, "rows": d.added + d.changed}]
        added, removed = d.added + d.changed, 0
        if mode == "replace":
            ctx.rt.blobs.put_file(removes_key, removes)
            ops.append({"mode": "remove", "key": removes_key, "rows": d.removed})
            removed = d.removed
        base = snapshot_job if has_old else None

    def _done(s, job):
        job.progress = {**job.progress, "ops": ops, "done": {}}
        job.counts = {**job.counts, "added": added, "removed": removed}
        job.snapshot_base_job_id = base
        what = ", ".join(f"{o['rows']} rows to {o['mode']}" for o in ops)
        event(s, job, f"plan: {what}" + (f" (diffed against the snapshot of job {base})" if base else ""))
    ctx.update(_done)


# ------------------------------------------------------------------ deliver
def deliver(ctx: Context) -> None:
    """Send the planned operations to the destination's kind; finish unless a consumer acknowledges later."""
    with ctx.rt.db.session() as s:
        job, share, aud, dest, src = ctx.load(s)
        progress = dict(job.progress)
        kind = Destination.of(dest).kind
    ctx.set_state("delivering", f"delivering to {dest.name}")
    if kind == "adapter":
        deliver_adapter(ctx, progress)
        finish(ctx)
    elif kind == "pull":
        deliver_pull(ctx, progress)
    elif deliver_push(ctx, progress):
        finish(ctx)
