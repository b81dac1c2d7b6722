"""Delivering to a PUSH consumer: each operation POSTed in parts of ``max_rows_per_request``.

Every part carries ``X-Exchange-Part`` and an ``Idempotency-Key`` stable across restarts
(``<job>:<op>:<part>``); progress is saved after each accepted part, so a resumed job starts at the
next part. A consumer answering 202 acknowledges the job later (see :mod:`.acks`).
"""
from __future__ import annotations

import gzip as gzip_mod
from collections.abc import Iterator

from ... import endpoint_client, metrics
from ...net import call_with_retries
from ..context import Context
from ..states import event
from .acks import await_ack


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


def deliver_push(ctx: Context, progress: dict) -> bool:
    """POST each operation in parts; returns False when the consumer will acknowledge later (202)."""
    with ctx.rt.db.session() as s:
        job, share, aud, dest, src = ctx.load(s)
        token, size, use_gzip = ctx.rt.credential(dest), dest.max_rows_per_request, dest.consumer_gzip
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
            metrics.rows_moved("deliver", "push", rows_in_part)
        done[str(i)] = total
    if pending_ack:
        await_ack(ctx, progress, kind="push")
        return False
    return True
