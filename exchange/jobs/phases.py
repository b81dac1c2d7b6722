"""The phases of a job: fetch → transform → plan → deliver.

Each phase is skipped when the job's :class:`~exchange.jobs.progress.JobProgress` already records its
result, so a resumed job continues where it stopped. Delivery is handed to the destination's kind
(:mod:`.delivery.push`, :mod:`.delivery.pull`, :mod:`.delivery.adapter`); nothing here is imported back.
"""
from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import requests
from requests.structures import CaseInsensitiveDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import endpoint_client
from ..blobs import BlobWriter
from ..errors import RetryableTransferError
from ..identifiers import IDENTIFIER_TYPES
from ..models import Job, utcnow
from ..net import call_with_retries, parse_retry_after
from ..transfer.blocks import POOL
from ..transfer.pipeline import TransformCancelled, exceeds_threshold, run_transform
from ..transfer.snapshot import compute_delta
from .context import Context, Interrupted, JobFailed, JobRecords
from .delivery.adapter import deliver_adapter
from .delivery.finish import finish
from .delivery.pull import deliver_pull
from .delivery.push import deliver_push
from .progress import Operation, update_progress
from .states import event, transition

COUNT_KEYS = ("received", "valid", "rejected", "duplicates", "hashed", "passed_through")


def run(ctx: Context) -> None:
    """Run the phases the job has not finished yet, then deliver."""
    with ctx.rt.db.session() as s:
        rec = ctx.load(s)
        if rec.destination.status != "active" or rec.source.status != "active":
            raise JobFailed("The source or destination endpoint is disabled.")
        state, progress = rec.job.state, rec.progress
    if state == "awaiting_consumer":
        return
    if not progress.output_key:
        POOL.prestart()  # the transform's block workers start (import) while the source is fetched
    if not progress.source_key and fetch(ctx) == "unchanged":
        return  # 'transformed' (a PULL source, fetched and transformed at once) leaves output_key set
    ctx.check_cancel(force=True)
    if not ctx.progress().output_key:
        transform(ctx)
    ctx.check_cancel(force=True)
    if not ctx.progress().planned:
        plan(ctx)
    ctx.check_cancel(force=True)
    deliver(ctx)


# ------------------------------------------------------------------ fetch
def fetch(ctx: Context) -> Literal["fetched", "transformed", "unchanged"]:
    """Get the source data into the blob store; returns 'fetched', 'transformed' or 'unchanged' (304).

    From a PULL producer the body is transformed while it arrives ('transformed'): each chunk goes
    to the source blob and to the transform. The source key is recorded (and the job moves to
    ``transforming``) only once the whole body is stored; the output only once the transform has
    finished. A download breaking midway aborts both (the partial source blob is removed, the
    transform's files never reach their names) and the retry starts over from the first byte; a
    crash before the body is stored fetches again on resume, a crash after it transforms the stored
    source."""
    with ctx.rt.db.session() as s:
        rec = ctx.load(s)
        src, aud = rec.source, rec.audience
        transport, version, data_key = src.producer_transport, aud.version, aud.data_key
        last_version = _last_success_version(s, rec.share.id, rec.job.id)
        token = ctx.rt.credential(src)
        external_id = aud.external_id
        awaiting_since = rec.progress.awaiting_since
        settings = _TransformSettings.of(rec)
    ctx.set_state("fetching", "fetching the source data")
    if transport == "push":
        if not data_key:
            raise JobFailed("The PUSH producer has not uploaded data for this audience yet.")

        def _set(s: Session, job: Job) -> None:
            # uploads are stored gzip (catalog/ingest.py, issue 15); older versions are plain .csv
            update_progress(job, source_key=data_key, source_gzip=data_key.endswith(".gz"))
            job.source_version = version
        ctx.update(_set)
        return "fetched"
    key = f"jobs/{ctx.job_id}/source.csv"

    def attempt() -> tuple[int, CaseInsensitiveDict[str]]:
        with ctx.rt.http() as http:
            resp = endpoint_client.open_data(http, src, token, external_id, job_id=ctx.job_id,
                                             if_none_match=last_version)
            if resp.status_code in (202, 304):
                return resp.status_code, resp.headers
            gz = "gzip" in resp.headers.get("Content-Encoding", "").lower()
            source_version = resp.headers.get("ETag", "").strip('"') or version
            with ctx.rt.blobs.writer(key) as blob:
                body = _ReadAhead(resp, blob, ctx)

                def teed() -> Iterator[bytes]:
                    yield from body.chunks()
                    info = blob.commit()

                    def _stored(s: Session, job: Job) -> None:
                        update_progress(job, source_key=key, source_gzip=gz)
                        job.bytes = info.size
                        job.source_version = source_version
                        transition(s, job, "transforming", f"fetched {info.size} bytes; transforming the rest")
                    ctx.update(_stored)

                try:
                    _transform(ctx, settings, teed(), gz,
                               what="fetching and transforming the source data as it arrives")
                finally:
                    body.stop()  # before the writer is aborted (if it was not committed)
            return 200, resp.headers

    status, headers = call_with_retries(attempt, max_attempts=ctx.rt.config.max_attempts,
                                        on_wait=lambda sec, why: ctx.event(f"waiting {sec:.0f}s: {why}"))
    if status == 304:
        ctx.set_state("fetching", "the producer reports no change since the last successful job (304)")
        ctx.update(lambda s, job: update_progress(job, unchanged=True))
        finish(ctx, unchanged=True)
        return "unchanged"
    if status == 202:
        _await_source(ctx, headers.get("Retry-After"), awaiting_since)
    return "transformed"


def _await_source(ctx: Context, retry_after: str | None, awaiting_since: str | None) -> None:
    """The producer is preparing the export (202): wait as the job's ``not_before``, within the limit."""
    wait = parse_retry_after(retry_after) or 5.0
    now = utcnow()
    since = awaiting_since or now.isoformat()
    waited = (now - datetime.fromisoformat(since)).total_seconds()
    if waited + wait > ctx.rt.config.source_wait_seconds:
        raise JobFailed(f"The producer was still preparing the export after {waited:.0f}s "
                        f"(limit {ctx.rt.config.source_wait_seconds}s).")

    def _wait(s: Session, job: Job) -> None:
        update_progress(job, awaiting_since=since)
        job.not_before = now + timedelta(seconds=wait)
        transition(s, job, "awaiting_source", f"the producer is preparing the export; retrying in {wait:.0f}s")
    ctx.update(_wait)
    raise Interrupted()


READ_AHEAD = 16  # chunks of up to 1 MiB read ahead of the transform (memory: at most this many MiB)


class _BrokenDownload(Exception):
    """The producer's body broke off (the name of what the HTTP client raised)."""


class _ReadAhead:
    """The body as sent (still gzip if it was), so the transform can bound and verify inflation.

    A helper thread reads it and writes it to ``blob`` up to :data:`READ_AHEAD` chunks ahead of the
    transform, so the producer is not held to the transform's pace and the transform rarely waits
    on the network. The thread never commits or aborts ``blob``: the job's thread does, after
    :meth:`stop`. A break in the stream reaches the reader as :class:`RetryableTransferError`."""

    _END = object()

    def __init__(self, resp: requests.Response, blob: BlobWriter, ctx: Context) -> None:
        self.resp, self.blob, self.ctx = resp, blob, ctx
        self.queue: queue.Queue[object] = queue.Queue(maxsize=READ_AHEAD)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._pump, name=f"download-{ctx.job_id[:8]}", daemon=True)
        self.thread.start()

    def _put(self, item: object) -> bool:
        while not self.stopped.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _pump(self) -> None:
        body = self.resp.raw.stream(1 << 20, decode_content=False)
        while True:
            try:
                chunk = next(body, None)
            except BaseException as exc:  # noqa: BLE001 - any break in the stream is a transient failure
                self._put(_BrokenDownload(type(exc).__name__))
                return
            if chunk is None:
                self._put(self._END)
                return
            if self.stopped.is_set():
                return
            try:
                self.blob.write(chunk)
            except BaseException as exc:  # noqa: BLE001 - the store's failure (a full disk), raised as it is
                self._put(exc)
                return
            if not self._put(chunk):
                return

    def chunks(self) -> Iterator[bytes]:
        while True:
            item = self.queue.get()
            if item is self._END:
                self.stop()
                return
            if isinstance(item, _BrokenDownload):
                raise RetryableTransferError(f"The download broke off ({item.args[0]}).")
            if isinstance(item, BaseException):
                raise item
            self.ctx.check_cancel()
            assert isinstance(item, bytes)
            yield item

    def stop(self) -> None:
        """Stop reading and wait for the thread (which then no longer touches the blob)."""
        self.stopped.set()
        if self.thread.is_alive():
            with contextlib.suppress(Exception):  # unblock a read waiting for the producer
                shutdown = getattr(self.resp.raw, "shutdown", None)
                (shutdown or self.resp.raw.close)()
            self.thread.join(60)


def _last_success_version(s: Session, share_id: str, job_id: str) -> str | None:
    return s.scalar(select(Job.source_version).where(
        Job.share_id == share_id, Job.id != job_id, Job.state.in_(("succeeded", "partially_succeeded")),
        Job.source_version.is_not(None)).order_by(Job.finished_at.desc()).limit(1))


# ------------------------------------------------------------------ transform
@dataclass(frozen=True)
class _TransformSettings:
    rules: list[Any]
    threshold: float
    country: str | None
    id_types: set[str]

    @classmethod
    def of(cls, rec: JobRecords) -> _TransformSettings:
        share = rec.share
        return cls(share.mapping, share.reject_threshold, share.default_country,
                   set(IDENTIFIER_TYPES) | set(rec.capabilities.identifiers))


def transform(ctx: Context) -> None:
    """Map, normalize and deduplicate the stored source into the output and rejects blobs."""
    with ctx.rt.db.session() as s:
        rec = ctx.load(s)
        progress, settings = rec.progress, _TransformSettings.of(rec)
    assert progress.source_key is not None
    ctx.set_state("transforming", "mapping, normalizing and deduplicating rows")
    _transform(ctx, settings, ctx.rt.blobs.iter_chunks(progress.source_key), progress.source_gzip)


def _transform(ctx: Context, settings: _TransformSettings, chunks: Iterable[bytes], gzip: bool, *,
               what: str = "") -> None:
    """Transform ``chunks`` into the job's output and rejects blobs and record them (the output last)."""
    if what:
        ctx.event(what)
    out, rejects = ctx.tmp / "output.csv", ctx.tmp / "rejects.csv"
    started = time.monotonic()
    try:
        result = run_transform(chunks, gzip=gzip, rules=settings.rules, identifier_types=settings.id_types,
                               out_path=str(out), rejects_path=str(rejects), default_country=settings.country,
                               cancel_check=ctx.cancelled)
    except TransformCancelled:
        ctx.check_cancel(force=True)  # raises Cancelled or Interrupted, whichever stopped us
        raise Interrupted() from None
    rej_key = f"jobs/{ctx.job_id}/rejects.csv"
    ctx.rt.blobs.put_file(rej_key, rejects, move=True)
    counts = result.counts
    if exceeds_threshold(result, settings.threshold):
        def _rej(s: Session, job: Job) -> None:
            job.rejects_key = rej_key
            job.counts = {**job.counts, **{k: counts.get(k, 0) for k in COUNT_KEYS}}
        ctx.update(_rej)
        raise JobFailed(f"{counts['rejected']} of {counts['received']} rows were rejected, more than the share's "
                        f"threshold of {settings.threshold:.0%}; see the rejects file.")
    out_key = f"jobs/{ctx.job_id}/output.csv"
    # the transform hashed the output as it wrote it: a store that takes the file by rename reuses that
    info = ctx.rt.blobs.put_file(out_key, out, move=True, sha256=result.out_sha256)
    id_types = settings.id_types

    def _done(s: Session, job: Job) -> None:
        job.rejects_key, job.output_key = rej_key, out_key
        job.counts = {**job.counts, **{k: counts.get(k, 0) for k in COUNT_KEYS}}
        update_progress(job, output_key=out_key, columns=tuple(result.columns), output_rows=result.rows_out,
                        output_sha256=info.sha256, key_columns=tuple(c for c in result.columns if c in id_types))
        event(s, job, f"transformed {counts['received']} rows in {time.monotonic() - started:.1f}s: "
                      f"{result.rows_out} valid, {counts['rejected']} rejected, {counts['duplicates']} duplicates",
              data=counts)
    ctx.update(_done)


# ------------------------------------------------------------------ plan
def plan(ctx: Context) -> None:
    """Decide what to send: the whole output, or adds/removes against the share's snapshot."""
    with ctx.rt.db.session() as s:
        rec = ctx.load(s)
        progress, share = rec.progress, rec.share
        mode, snapshot_key, snapshot_job = share.mode, share.snapshot_key, share.snapshot_job_id
        use_snapshot = rec.capabilities.needs_snapshot(mode=share.mode, delta=share.delta)
    out_key, rows = progress.output_key, progress.output_rows
    assert out_key is not None
    base: str | None = None
    if not use_snapshot or mode == "remove":
        ops = [Operation(mode, out_key, rows)]
        added, removed = (rows, 0) if mode != "remove" else (0, rows)
    else:
        adds, removes = ctx.tmp / "adds.csv", ctx.tmp / "removes.csv"
        has_old = snapshot_key is not None and ctx.rt.blobs.exists(snapshot_key)
        with ExitStack() as stack:
            old = stack.enter_context(ctx.rt.blobs.local_path(snapshot_key)) if snapshot_key and has_old else None
            new = stack.enter_context(ctx.rt.blobs.local_path(out_key))
            d = compute_delta(new, old, list(progress.key_columns), adds, removes)
        adds_key, removes_key = f"jobs/{ctx.job_id}/adds.csv", f"jobs/{ctx.job_id}/removes.csv"
        ctx.rt.blobs.put_file(adds_key, adds)
        ops = [Operation("add", adds_key, d.added + d.changed)]
        added, removed = d.added + d.changed, 0
        if mode == "replace":
            ctx.rt.blobs.put_file(removes_key, removes)
            ops.append(Operation("remove", removes_key, d.removed))
            removed = d.removed
        base = snapshot_job if has_old else None

    def _done(s: Session, job: Job) -> None:
        update_progress(job, ops=tuple(ops), done={})
        job.counts = {**job.counts, "added": added, "removed": removed}
        job.snapshot_base_job_id = base
        what = ", ".join(f"{o.rows} rows to {o.mode}" for o in ops)
        event(s, job, f"plan: {what}" + (f" (diffed against the snapshot of job {base})" if base else ""))
    ctx.update(_done)


# ------------------------------------------------------------------ deliver
def deliver(ctx: Context) -> None:
    """Send the planned operations by the destination's kind; finish unless a consumer acknowledges later."""
    with ctx.rt.db.session() as s:
        rec = ctx.load(s)
        kind, name = rec.capabilities.kind, rec.destination.name
    ctx.set_state("delivering", f"delivering to {name}")
    if kind == "adapter":
        deliver_adapter(ctx)
        finish(ctx)
    elif kind == "pull":
        deliver_pull(ctx)
    elif deliver_push(ctx):
        finish(ctx)
