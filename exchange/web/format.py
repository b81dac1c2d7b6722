"""Template filters: dates, relative ages, sizes and state labels, written for people."""
from __future__ import annotations

import re
from datetime import UTC, datetime

from flask import Blueprint

STATE_LABELS = {
    "queued": "Queued", "fetching": "Fetching from the source", "awaiting_source": "Waiting for the source",
    "transforming": "Checking and mapping rows", "delivering": "Delivering",
    "awaiting_consumer": "Waiting for the destination", "succeeded": "Succeeded",
    "partially_succeeded": "Partially succeeded", "failed": "Failed", "cancelled": "Cancelled",
}
STATE_TONES = {"succeeded": "ok", "partially_succeeded": "warn", "failed": "bad", "cancelled": "muted"}


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def when(moment: datetime | str | None) -> str:
    """``2026-05-01 06:00 UTC``; empty for None."""
    if not moment:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return _aware(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: datetime | None) -> str:
    return _aware(moment).isoformat() if moment else ""


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, coarsely: ``just now``, ``5 minutes ago``, ``3 days ago``."""
    if not moment:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - _aware(moment)).total_seconds())
    if seconds < 60:
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"


def number(value: int | None) -> str:
    return "unknown" if value is None else f"{value:,}"


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state)


def state_tone(state: str) -> str:
    return STATE_TONES.get(state, "run")


_STATE_WORD = re.compile(r"\b(" + "|".join(sorted(STATE_LABELS, key=len, reverse=True)) + r")\b")


def event_text(message: str) -> str:
    """An event line for people: ``partially_succeeded: 3 rows…`` → ``Partially succeeded: 3 rows…``,
    ``queued → fetching`` → ``Queued → Fetching from the source``."""
    head, sep, rest = (message or "").partition(": ")
    if sep and head in STATE_LABELS:
        return f"{STATE_LABELS[head]}: {rest}"
    if "→" in message:
        return _STATE_WORD.sub(lambda m: STATE_LABELS[m.group(1)], message)
    return message


def register_filters(bp: Blueprint) -> None:
    for fn in (when, iso, age, number, state_label, state_tone, event_text):
        bp.add_app_template_filter(fn, fn.__name__)
