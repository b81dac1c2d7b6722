"""Delivering to a PULL consumer: each operation's file is offered as a delivery to download and acknowledge."""
from __future__ import annotations

from ..context import Context
from .acks import await_ack


def deliver_pull(ctx: Context, progress: dict) -> None:
    ops = [op for op in progress["ops"] if op["rows"] or op["mode"] == "replace"]
    await_ack(ctx, {**progress, "ops": ops or progress["ops"][:1]}, kind="pull")
