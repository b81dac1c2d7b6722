"""Job webhooks (SPEC §5.3) go through the durable outbox in :mod:`exchange.webhooks`.

The state machine writes one message per subscriber in the same transaction as the state change
(:func:`exchange.webhooks.outbox.enqueue_job_state`); idle job workers and ``exchange worker``'s
dispatcher deliver them. Nothing is kept in a process's memory, so a restart loses nothing.
"""
from __future__ import annotations


def notify_state(rt, job_id: str) -> None:
    """Kept for callers of the former in-memory sender: messages are already in the outbox."""
    return None
