"""Delivering a job's planned adds and removes to a partner through its adapter and the driver.

The adapter gets rows as dicts; :func:`exchange.adapters.driver.deliver` owns batching, pacing and
retries. Secrets come from the runtime; the partner's base URL may be overridden by configuration.
"""
from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator

from sqlalchemy.orm import Session

from ... import metrics
from ...adapters.base import SegmentContext
from ...adapters.driver import deliver
from ...adapters.registry import get_adapter
from ...models import Job
from ..context import Context, Interrupted
from ..states import event


def _dict_rows(ctx: Context, key: str) -> Iterator[dict[str, str]]:
    with ctx.rt.blobs.local_path(key) as path, open(path, newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def deliver_adapter(ctx: Context) -> None:
    """Send the planned adds, then removes, through the destination's adapter; record the partner's counts."""
    with ctx.rt.db.session() as s:
        rec = ctx.load(s)
        dest, progress, adapter_type = rec.destination, rec.progress, rec.capabilities.adapter_type
        assert adapter_type is not None
        settings = ctx.rt.adapter_settings(dest)
        cls = get_adapter(adapter_type)
        context = SegmentContext(site_id=str(settings.get("site_id") or rec.job.account_id),
                                 segment_id=rec.audience.external_id, segment_name=rec.share.destination_audience,
                                 job_id=rec.job.id)
    ops = {op.mode: op for op in progress.operations}
    adds = _dict_rows(ctx, ops["add"].key) if "add" in ops else iter(())
    removes = _dict_rows(ctx, ops["remove"].key) if "remove" in ops else iter(())
    base_url = ctx.rt.config.adapter_base_url(adapter_type)
    with ctx.rt.http() as http:
        adapter = cls(settings, context, http, base_url=base_url)
        report = deliver(adapter, adds=adds, removes=removes,
                         on_event=lambda msg: ctx.event(msg),
                         cancel_check=ctx.cancelled, max_attempts=ctx.rt.config.max_attempts)
    if report.cancelled:
        ctx.check_cancel(force=True)  # raises Cancelled or Interrupted, whichever stopped the delivery
        raise Interrupted()
    reasons = Counter(reason for _row, reason in report.rejected)

    def _done(s: Session, job: Job) -> None:
        c = dict(job.counts)
        c["delivered"] += report.accepted + len(report.rejected)
        c["acknowledged"] += report.accepted
        c["consumer_rejected"] = c.get("consumer_rejected", 0) + len(report.rejected)
        job.counts = c
        event(s, job, f"partner accepted {report.accepted} ids in {report.requests} requests "
                      f"({report.retries} retries, {report.waited_seconds:.0f}s waiting for rate limits)"
                      + (f"; refused: {dict(reasons.most_common(5))}" if reasons else ""))
    ctx.update(_done)
    metrics.rows_moved("deliver", "adapter", report.accepted + len(report.rejected))

