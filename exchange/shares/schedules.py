"""Schedule arithmetic: validation, next run times, missed runs, previews and descriptions.

Pure functions of their arguments — no database, no clock, no sleeping — so the scheduler, the API
and the web wizard share one definition of "when", and tests pin it with explicit instants. Every
returned time is an aware UTC datetime; naive inputs (as some databases return them) are read as UTC.

Schedule types (SPEC §7): ``now`` and ``on_new_data`` are triggered by events, never by the clock;
``at`` runs once; ``interval`` runs at ``anchor + k * every`` (k ≥ 1), so runs never drift with
how late the scheduler woke up; ``cron`` is evaluated in the schedule's IANA time zone.

DST policy for cron, the one classic cron (Vixie) follows:

* A job at fixed hours (e.g. ``30 2 * * *``) runs once per matching local day. When its wall time
  does not exist (spring forward) it runs at the first instant after the gap — 03:00 local in
  Europe/Paris; several skipped times collapse into that one run. When its wall time happens
  twice (fall back) it runs at the first occurrence only.
* A job whose hour field covers every hour (``*/15 * * * *``, ``30 * * * *``) follows real time:
  skipped wall times are skipped and a repeated hour runs twice, so runs stay evenly spaced.

Missed-run policy: after downtime, :func:`due_run` returns only the *latest* missed time, so a
share that missed N runs is delivered once, not N times (each run sends the current audience, so
the older runs would carry nothing new).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from exchange.errors import ValidationFailed

TYPES = ("now", "at", "interval", "cron", "on_new_data")
FIELDS = {"now": (), "on_new_data": (), "at": ("at",), "interval": ("every",), "cron": ("cron", "timezone")}
KNOWN_FIELDS = {"type", "at", "every", "cron", "timezone"}
MIN_INTERVAL = timedelta(minutes=1)
# Longer than any real DST shift (at most 2 hours, Troll station), so the search windows below never
# miss a wall time whose instant moved across another.
_MAX_SHIFT = timedelta(hours=3)

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)


# ---------------------------------------------------------------- parsing and validation


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration of weeks, days, hours, minutes and seconds (``PT15M``, ``P1DT6H``, ``P1W``).

    Years and months are refused: they have no fixed length, and an interval must be one.
    """
    match = _DURATION.match(text.strip().upper())
    if not match:
        raise ValueError("must be an ISO 8601 duration such as PT15M, PT6H, P1D or P1W")
    parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    if parts.get("years") or parts.get("months"):
        raise ValueError("months and years have no fixed length; use days (P30D) or a cron schedule")
    return timedelta(
        weeks=parts.get("weeks", 0), days=parts.get("days", 0), hours=parts.get("hours", 0),
        minutes=parts.get("minutes", 0), seconds=parts.get("seconds", 0),
    )


def _parse_at(value: object) -> datetime:
    moment = None
    if isinstance(value, str):
        with suppress(ValueError):
            moment = datetime.fromisoformat(value.strip())
    if moment is None:
        raise ValueError("must be an ISO 8601 time such as 2026-05-01T06:00:00Z")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("must include a time zone offset or Z, e.g. 2026-05-01T06:00:00+02:00")
    return moment


def _zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise ValueError("must be an IANA time zone name such as Europe/Paris")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None


def _check_cron(expr: object) -> str:
    if not isinstance(expr, str) or len(expr.split()) != 5:
        raise ValueError("must have exactly 5 fields: minute hour day-of-month month day-of-week")
    normalized = " ".join(expr.split())
    if not croniter.is_valid(normalized):
        raise ValueError("is not a valid cron expression")
    return normalized


def validate_schedule(schedule: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """The normalised schedule, or :class:`ValidationFailed` naming every bad ``schedule.<field>``.

    Fields left at ``None`` (as a schema with optional fields produces them) are ignored. With
    ``now``, a one-time ``at`` in the past is refused, since it would never run.
    """
    if not isinstance(schedule, dict):
        raise ValidationFailed("The schedule is not valid.", errors={"schedule": ["must be an object"]})
    errors: dict[str, list[str]] = {}
    given = {k: v for k, v in schedule.items() if v is not None}
    kind = given.get("type")
    if kind not in TYPES:
        errors["schedule.type"] = ["is required" if kind is None else f"must be one of {', '.join(TYPES)}"]
    for key in given:
        if key not in KNOWN_FIELDS:
            errors[f"schedule.{key}"] = ["unknown field"]
        elif kind in TYPES and key != "type" and key not in FIELDS[kind]:
            errors[f"schedule.{key}"] = [f"is not used by a schedule of type {kind}"]
    result: dict[str, Any] = {"type": kind}
    for field in FIELDS.get(str(kind), ()):
        value = given.get(field)
        try:
            if field == "timezone":
                result[field] = _zone(value if value is not None else "UTC").key
            elif value is None:
                raise ValueError(f"is required for a schedule of type {kind}")
            elif field == "at":
                moment = _parse_at(value)
                if now is not None and moment <= _utc(now):
                    raise ValueError("is in the past, so the share would never run")
                result[field] = moment.isoformat()
            elif field == "every":
                if not isinstance(value, str):
                    raise ValueError("must be an ISO 8601 duration such as PT15M, PT6H, P1D or P1W")
                if parse_duration(value) < MIN_INTERVAL:
                    raise ValueError("must be at least 1 minute (PT1M)")
                result[field] = value.strip().upper()
            else:
                result[field] = _check_cron(value)
        except ValueError as exc:
            errors[f"schedule.{field}"] = [str(exc)]
    if errors:
        raise ValidationFailed("The schedule is not valid.", errors=errors)
    return result


# ---------------------------------------------------------------- cron in local time


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _follows_real_time(expr: str) -> bool:
    hours = croniter.expand(expr)[0][1]
    return hours == ["*"] or len(set(hours)) == 24


def _wall(moment: datetime, zone: tzinfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _instants(wall: datetime, zone: tzinfo, real_time: bool) -> list[datetime]:
    """The UTC instants at which local wall time ``wall`` is run, per the module's DST policy."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if _wall(first, zone) == wall:  # the wall time happens twice: fold 0 is the earlier instant
        return [first, second] if real_time else [first]
    if real_time:
        return []
    # A wall time in a gap: fold=1 reads it with the offset after the change (an instant before
    # the change), fold=0 with the offset before (after it). Bisect to the change itself.
    lo, hi = second, first
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        lo, hi = (lo, mid) if _wall(mid, zone) > wall else (mid, hi)
    return [hi.replace(microsecond=0)]


def _cron_runs(expr: str, zone: tzinfo, start: datetime, backward: bool) -> Iterator[datetime]:
    """Run instants in wall-clock order from ``start``; only roughly sorted near a DST change."""
    real_time = _follows_real_time(expr)
    wall_times = croniter(expr, _wall(start, zone) + (_MAX_SHIFT if backward else -_MAX_SHIFT))
    while True:
        wall = wall_times.get_prev(datetime) if backward else wall_times.get_next(datetime)
        yield from _instants(wall, zone, real_time)


def _cron_next(expr: str, zone: tzinfo, after: datetime) -> datetime:
    best: datetime | None = None
    for run in _cron_runs(expr, zone, after, backward=False):
        if run > after and (best is None or run < best):
            best = run
        # Past this point no later wall time can map to an earlier instant.
        if best is not None and run > best + _MAX_SHIFT:
            return best
    raise AssertionError("unreachable: a valid cron expression always has a next run")


def _cron_latest(expr: str, zone: tzinfo, lower: datetime, upper: datetime) -> datetime | None:
    """The latest run in ``(lower, upper]``, if any."""
    best: datetime | None = None
    for run in _cron_runs(expr, zone, upper, backward=True):
        if lower < run <= upper and (best is None or run > best):
            best = run
        if run < (best or lower) - _MAX_SHIFT:
            return best
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- next and due runs


def next_run_after(schedule: dict[str, Any], after: datetime, *, anchor: datetime | None = None) -> datetime | None:
    """The first scheduled time strictly after ``after``, or None if the clock never triggers it.

    ``anchor`` is where an interval counts from (the share's creation); without it, ``after``.
    """
    after = _utc(after)
    kind = schedule["type"]
    if kind == "at":
        moment = _utc(datetime.fromisoformat(schedule["at"]))
        return moment if moment > after else None
    if kind == "interval":
        every = parse_duration(schedule["every"])
        start = _utc(anchor) if anchor is not None else after
        if start > after:
            return start + every
        return start + (((after - start) // every) + 1) * every
    if kind == "cron":
        return _cron_next(schedule["cron"], ZoneInfo(schedule.get("timezone") or "UTC"), after)
    return None


def _latest_run(schedule: dict[str, Any], lower: datetime, upper: datetime, anchor: datetime | None) -> datetime | None:
    kind = schedule["type"]
    if kind == "at":
        moment = _utc(datetime.fromisoformat(schedule["at"]))
        return moment if lower < moment <= upper else None
    if kind == "interval":
        every = parse_duration(schedule["every"])
        start = _utc(anchor) if anchor is not None else lower
        if upper < start + every:
            return None
        latest = start + ((upper - start) // every) * every
        return latest if latest > lower else None
    if kind == "cron":
        return _cron_latest(schedule["cron"], ZoneInfo(schedule.get("timezone") or "UTC"), lower, upper)
    return None


def due_run(
    schedule: dict[str, Any], last_scheduled_for: datetime | None, now: datetime, anchor: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """``(time to run now, next run time)`` for a share the scheduler looks at ``now``.

    The first is the latest scheduled time after ``last_scheduled_for`` (else after ``anchor``)
    and at or before ``now`` — one run however many were missed — or None when nothing is due.
    """
    now = _utc(now)
    lower = last_scheduled_for if last_scheduled_for is not None else anchor
    if lower is None:
        run_at = None
    else:
        run_at = _latest_run(schedule, _utc(lower), now, anchor)
    return run_at, next_run_after(schedule, now, anchor=anchor)


def preview(schedule: dict[str, Any], now: datetime, n: int = 5, *, anchor: datetime | None = None) -> list[datetime]:
    """The next ``n`` run times after ``now`` (fewer for ``at``, none for event-triggered types)."""
    runs: list[datetime] = []
    cursor = _utc(now)
    anchor = anchor if anchor is not None else cursor
    while len(runs) < n:
        run = next_run_after(schedule, cursor, anchor=anchor)
        if run is None:
            break
        runs.append(run)
        cursor = run
    return runs


# ---------------------------------------------------------------- describe

_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"


def _describe_duration(every: timedelta) -> str:
    seconds = int(every.total_seconds())
    units = [("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)]
    parts = []
    for unit, size in units:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append((count, unit))
    if len(parts) == 1 and parts[0][0] == 1:
        return f"Every {parts[0][1]}"
    return "Every " + " and ".join(_plural(c, u) for c, u in parts)


def _describe_cron(expr: str, zone: str) -> str:
    minute, hour, dom, month, dow = expr.split()
    where = f" ({zone})"
    if minute.isdigit() and hour.isdigit():
        at = f"at {int(hour):02d}:{int(minute):02d}"
        if (dom, month, dow) == ("*", "*", "*"):
            return f"Every day {at}{where}"
        if (dom, month) == ("*", "*") and dow in ("1-5", "MON-FRI", "mon-fri"):
            return f"Every weekday (Monday to Friday) {at}{where}"
        if (dom, month) == ("*", "*") and dow.isdigit():
            return f"Every {_DAYS[int(dow) % 7]} {at}{where}"
        if dom.isdigit() and (month, dow) == ("*", "*"):
            return f"On day {int(dom)} of every month {at}{where}"
    if (hour, dom, month, dow) == ("*", "*", "*", "*"):
        if minute.isdigit():
            return f"Every hour at minute {int(minute)}"
        if minute.startswith("*/") and minute[2:].isdigit():
            return _describe_duration(timedelta(minutes=int(minute[2:])))
    return f"On the cron schedule “{expr}”{where}"


def describe(schedule: dict[str, Any]) -> str:
    """A readable English sentence for a (validated) schedule, for the API and the web wizard."""
    kind = schedule.get("type")
    if kind == "now":
        return "Once, as soon as the share is created"
    if kind == "on_new_data":
        return "Whenever the producer uploads new data"
    if kind == "at":
        moment = datetime.fromisoformat(schedule["at"])
        offset = moment.strftime("%z")
        zone = "UTC" if offset in ("+0000", "") else f"UTC{offset[:3]}:{offset[3:]}"
        return f"Once at {moment:%Y-%m-%d %H:%M} ({zone})"
    if kind == "interval":
        return _describe_duration(parse_duration(schedule["every"]))
    if kind == "cron":
        return _describe_cron(schedule["cron"], schedule.get("timezone") or "UTC")
    return "Not scheduled"
