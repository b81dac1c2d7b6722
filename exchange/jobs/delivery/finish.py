"""Ending a delivered job: advance the share's snapshot (success only) and set the final state.

After a failed or cancelled delivery the snapshot keeps its baseline but marks the keys the job
tried as unknown, so the next delta re-sends them (see ``transfer.snapshot.snapshot_after_failure``).
"""
from __future__ import annotations

import logging
import shutil
from contextlib import ExitStack
from typing import TYPE_CHECKING, cast

from ...models import Endpoint, Job, Share
from ...transfer.snapshot import SnapshotMode, next_snapshot, snapshot_after_failure
from ..context import Context
from ..destination import Destination
from ..progress import JobProgress, read_progress
from ..states import transition
from ..sweep import work_dir

if TYPE_CHECKING:
    from ...runtime import Runtime

log = logging.getLogger(__name__)


def _snapshot_target(rt: Runtime, job_id: str) -> tuple[Share, JobProgress] | None:
    """The job's share and progress when the share keeps a snapshot, else None."""
    with rt.db.session() as s:
        job = s.get(Job, job_id)
        share = s.get(Share, job.share_id) if job is not None and job.share_id else None
        dest = s.get(Endpoint, share.destination_id) if share is not None else None
        if job is None or share is None or dest is None:
            return None
        if not Destination.of(dest).needs_snapshot(mode=share.mode, delta=share.delta):
            return None
        return share, read_progress(job)


def finish(ctx: Context, *, unchanged: bool = False) -> None:
    """Advance the snapshot (if the share keeps one) and end the job as (partially) succeeded."""
    complete(ctx.rt, ctx.job_id, new_snapshot_key=None if unchanged else next_snapshot_key(ctx.rt, ctx.job_id))


def next_snapshot_key(rt: Runtime, job_id: str) -> str | None:
    """Build the share's next snapshot from the old one and this job's output; returns its key
    (None when the share keeps no snapshot)."""
    target = _snapshot_target(rt, job_id)
    if target is None:
        return None
    share, progress = target
    assert progress.output_key is not None
    tmp = work_dir(rt, "snapshot-")  # under var_dir/tmp: swept after a kill
    try:
        with ExitStack() as stack:
            old = (stack.enter_context(rt.blobs.local_path(share.snapshot_key))
                   if share.snapshot_key and rt.blobs.exists(share.snapshot_key) else None)
            out = stack.enter_context(rt.blobs.local_path(progress.output_key))
            next_snapshot(cast(SnapshotMode, share.mode), old, out, list(progress.key_columns), tmp / "new.snapshot")
        key = f"snapshots/{share.id}/{job_id}.snapshot"
        rt.blobs.put_file(key, tmp / "new.snapshot")
        return key
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def complete(rt: Runtime, job_id: str, *, new_snapshot_key: str | None = None) -> None:
    """End a job whose delivery is complete; the snapshot advances only here (success)."""
    with rt.db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.terminal:
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
                    log.warning("could not delete the superseded snapshot %s", old)
        transition(s, job, state, f"{state}: {c.get('delivered', 0)} rows delivered, "
                                  f"{c.get('acknowledged', 0)} acknowledged, {rejected} rejected",
                   data={k: c.get(k, 0) for k in ("delivered", "acknowledged", "rejected")})


def snapshot_after_failed_delivery(rt: Runtime, job_id: str) -> None:
    """A job failed or was cancelled after delivery began: mark the keys it tried as unknown.

    The snapshot's baseline stays the last success, but the destination may hold part of this job's
    adds (or lack part of its removes); the next delta re-sends every such key, so nothing stays
    stale (see ``transfer.snapshot.snapshot_after_failure``).
    """
    target = _snapshot_target(rt, job_id)
    if target is None or not target[1].operations:
        return
    share, progress = target
    old_key, share_id = share.snapshot_key, share.id
    tmp = work_dir(rt, "failed-")  # under var_dir/tmp: swept after a kill
    try:
        with ExitStack() as stack:
            old = stack.enter_context(rt.blobs.local_path(old_key)) if old_key and rt.blobs.exists(old_key) else None
            attempted = [stack.enter_context(rt.blobs.local_path(op.key)) for op in progress.operations
                         if op.rows and rt.blobs.exists(op.key)]
            snapshot_after_failure(old, attempted, list(progress.key_columns), tmp / "new.snapshot")
        key = f"snapshots/{share_id}/{job_id}-failed.snapshot"
        rt.blobs.put_file(key, tmp / "new.snapshot")
        with rt.db.session() as s:
            current = s.get(Share, share_id)
            if current is not None:
                current.snapshot_key = key  # snapshot_job_id stays the last success: the diff base
        if old_key and old_key != key:
            rt.blobs.delete(old_key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
