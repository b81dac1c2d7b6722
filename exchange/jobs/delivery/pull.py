"""Delivering to a PULL consumer: each operation's file is offered as a delivery to download and acknowledge."""
from __future__ import annotations

from ..context import Context
from .acks import await_ack


def deliver_pull(ctx: Context) -> None:
    """Offer every operation with rows (an empty ``replace`` too: it empties the audience); at least one."""
    ops = ctx.progress().operations
    offered = [op for op in ops if op.rows or op.mode == "replace"]
    await_ack(ctx, kind="pull", ops=offered or ops[:1])
