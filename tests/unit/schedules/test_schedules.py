"""Validation, intervals, one-time and event schedules, previews and descriptions."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exchange.errors import ValidationFailed
from exchange.shares.schedules import (
    describe,
    due_run,
    next_run_after,
    parse_duration,
    preview,
    validate_schedule,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("schedule", "field", "fragment"),
    [
        ({}, "schedule.type", "required"),
        ({"type": "hourly"}, "schedule.type", "must be one of"),
        ({"type": "at"}, "schedule.at", "required"),
        ({"type": "at", "at": "tomorrow"}, "schedule.at", "ISO 8601"),
        ({"type": "at", "at": "2026-05-01T06:00:00"}, "schedule.at", "offset"),
        ({"type": "at", "at": 1746079200}, "schedule.at", "ISO 8601"),
        ({"type": "interval"}, "schedule.every", "required"),
        ({"type": "interval", "every": "6h"}, "schedule.every", "ISO 8601 duration"),
        ({"type": "interval", "every": "PT30S"}, "schedule.every", "at least 1 minute"),
        ({"type": "interval", "every": "P1M"}, "schedule.every", "no fixed length"),
        ({"type": "interval", "every": "PT"}, "schedule.every", "ISO 8601 duration"),
        ({"type": "cron", "cron": "0 6 * *"}, "schedule.cron", "exactly 5 fields"),
        ({"type": "cron", "cron": "0 0 6 * * *"}, "schedule.cron", "exactly 5 fields"),
        ({"type": "cron", "cron": "@daily"}, "schedule.cron", "exactly 5 fields"),
        ({"type": "cron", "cron": "61 6 * * *"}, "schedule.cron", "not a valid cron"),
        ({"type": "cron", "cron": "0 6 * * *", "timezone": "Mars/Olympus"}, "schedule.timezone", "unknown"),
        ({"type": "now", "colour": "red"}, "schedule.colour", "unknown field"),
        ({"type": "now", "every": "PT1H"}, "schedule.every", "not used by a schedule of type now"),
        ({"type": "interval", "every": "PT1H", "timezone": "UTC"}, "schedule.timezone", "not used"),
    ],
)
def test_invalid_schedules_name_the_field(schedule: dict, field: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_schedule(schedule)
    assert fragment in " ".join(caught.value.errors[field])
    assert caught.value.status == 422


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_schedule({"type": "cron", "cron": "x", "timezone": "Nowhere/Land", "extra": 1})
    assert set(caught.value.errors) == {"schedule.cron", "schedule.timezone", "schedule.extra"}


def test_not_an_object() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_schedule(["now"])  # type: ignore[arg-type]
    assert caught.value.errors == {"schedule": ["must be an object"]}


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ({"type": "now", "at": None, "every": None, "cron": None, "timezone": None}, {"type": "now"}),
        ({"type": "on_new_data"}, {"type": "on_new_data"}),
        ({"type": "interval", "every": " pt15m "}, {"type": "interval", "every": "PT15M"}),
        ({"type": "cron", "cron": "0  6 * * 1-5"}, {"type": "cron", "cron": "0 6 * * 1-5", "timezone": "UTC"}),
        ({"type": "cron", "cron": "0 6 * * *", "timezone": "Europe/Paris"},
         {"type": "cron", "cron": "0 6 * * *", "timezone": "Europe/Paris"}),
        ({"type": "at", "at": "2026-05-01T06:00:00Z"}, {"type": "at", "at": "2026-05-01T06:00:00+00:00"}),
    ],
)
def test_valid_schedules_are_normalised(given: dict, normalised: dict) -> None:
    assert validate_schedule(given) == normalised


def test_at_in_the_past_is_refused_only_when_now_is_given() -> None:
    schedule = {"type": "at", "at": "2026-05-01T06:00:00+02:00"}
    assert validate_schedule(schedule)["at"] == "2026-05-01T06:00:00+02:00"
    with pytest.raises(ValidationFailed) as caught:
        validate_schedule(schedule, now=utc(2026, 5, 1, 4, 0))
    assert "past" in caught.value.errors["schedule.at"][0]
    assert validate_schedule(schedule, now=utc(2026, 5, 1, 3, 59))["type"] == "at"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("PT15M", timedelta(minutes=15)), ("PT6H", timedelta(hours=6)), ("P1D", timedelta(days=1)),
     ("P1W", timedelta(weeks=1)), ("P1DT12H", timedelta(days=1, hours=12)), ("PT1H30M", timedelta(minutes=90)),
     ("PT90S", timedelta(seconds=90))],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


# ---------------------------------------------------------------- interval


def test_interval_runs_are_anchored_and_do_not_drift() -> None:
    schedule = validate_schedule({"type": "interval", "every": "PT6H"})
    anchor = utc(2026, 1, 1, 0, 7)
    # The scheduler woke up late (00:09 past the slot): the next run stays on the anchor grid.
    assert next_run_after(schedule, utc(2026, 1, 1, 6, 16), anchor=anchor) == utc(2026, 1, 1, 12, 7)
    assert next_run_after(schedule, utc(2026, 1, 1, 12, 7), anchor=anchor) == utc(2026, 1, 1, 18, 7)
    assert next_run_after(schedule, anchor, anchor=anchor) == utc(2026, 1, 1, 6, 7)


def test_interval_after_downtime_runs_once_at_the_latest_slot_and_keeps_the_anchor() -> None:
    schedule = validate_schedule({"type": "interval", "every": "PT15M"})
    anchor = utc(2026, 2, 1, 0, 5)
    last = utc(2026, 2, 1, 10, 5)
    now = utc(2026, 2, 1, 13, 12)  # three hours down: 12 slots missed
    run_at, following = due_run(schedule, last, now, anchor)
    assert run_at == utc(2026, 2, 1, 13, 5)
    assert following == utc(2026, 2, 1, 13, 20)
    # Having run it, nothing more is due until the next slot.
    assert due_run(schedule, run_at, utc(2026, 2, 1, 13, 19, 59), anchor) == (None, following)
    assert due_run(schedule, run_at, following, anchor) == (following, utc(2026, 2, 1, 13, 35))


def test_interval_first_run_counts_from_the_anchor() -> None:
    schedule = validate_schedule({"type": "interval", "every": "P1D"})
    anchor = utc(2026, 2, 1, 9)
    assert due_run(schedule, None, utc(2026, 2, 2, 8, 59), anchor) == (None, utc(2026, 2, 2, 9))
    assert due_run(schedule, None, utc(2026, 2, 2, 9), anchor) == (utc(2026, 2, 2, 9), utc(2026, 2, 3, 9))


# ---------------------------------------------------------------- at, now, on_new_data


def test_at_in_the_future_and_in_the_past() -> None:
    schedule = validate_schedule({"type": "at", "at": "2026-05-01T08:00:00+02:00"})
    moment = utc(2026, 5, 1, 6)
    assert next_run_after(schedule, utc(2026, 4, 30)) == moment
    assert next_run_after(schedule, moment) is None
    assert next_run_after(schedule, utc(2026, 5, 2)) is None


def test_at_missed_during_downtime_still_runs_once() -> None:
    schedule = validate_schedule({"type": "at", "at": "2026-05-01T06:00:00Z"})
    created = utc(2026, 4, 1)
    assert due_run(schedule, None, utc(2026, 5, 3), created) == (utc(2026, 5, 1, 6), None)
    assert due_run(schedule, utc(2026, 5, 1, 6), utc(2026, 5, 4), created) == (None, None)
    assert due_run(schedule, None, utc(2026, 4, 30), created) == (None, utc(2026, 5, 1, 6))


@pytest.mark.parametrize("kind", ["now", "on_new_data"])
def test_event_schedules_are_never_due_by_the_clock(kind: str) -> None:
    schedule = validate_schedule({"type": kind})
    assert next_run_after(schedule, utc(2026, 1, 1)) is None
    assert due_run(schedule, None, utc(2026, 1, 1), utc(2025, 1, 1)) == (None, None)
    assert preview(schedule, utc(2026, 1, 1)) == []


# ---------------------------------------------------------------- preview and describe


def test_preview_lists_the_next_runs() -> None:
    schedule = validate_schedule({"type": "cron", "cron": "0 6 * * 1", "timezone": "Europe/Paris"})
    runs = preview(schedule, utc(2026, 6, 1, 12), n=3)
    assert runs == [utc(2026, 6, 8, 4), utc(2026, 6, 15, 4), utc(2026, 6, 22, 4)]
    interval = validate_schedule({"type": "interval", "every": "PT6H"})
    assert preview(interval, utc(2026, 1, 1), n=2) == [utc(2026, 1, 1, 6), utc(2026, 1, 1, 12)]
    at = validate_schedule({"type": "at", "at": "2026-05-01T06:00:00Z"})
    assert preview(at, utc(2026, 1, 1)) == [utc(2026, 5, 1, 6)]


@pytest.mark.parametrize(
    ("schedule", "sentence"),
    [
        ({"type": "cron", "cron": "0 6 * * *", "timezone": "Europe/Paris"}, "Every day at 06:00 (Europe/Paris)"),
        ({"type": "cron", "cron": "30 7 * * 1-5"}, "Every weekday (Monday to Friday) at 07:30 (UTC)"),
        ({"type": "cron", "cron": "0 9 * * 1", "timezone": "America/New_York"},
         "Every Monday at 09:00 (America/New_York)"),
        ({"type": "cron", "cron": "0 3 1 * *"}, "On day 1 of every month at 03:00 (UTC)"),
        ({"type": "cron", "cron": "*/15 * * * *"}, "Every 15 minutes"),
        ({"type": "cron", "cron": "5 * * * *"}, "Every hour at minute 5"),
        ({"type": "cron", "cron": "0 6 1-7 * 1"}, "On the cron schedule “0 6 1-7 * 1” (UTC)"),
        ({"type": "interval", "every": "PT6H"}, "Every 6 hours"),
        ({"type": "interval", "every": "PT1H"}, "Every hour"),
        ({"type": "interval", "every": "P1D"}, "Every day"),
        ({"type": "interval", "every": "PT1H30M"}, "Every 1 hour and 30 minutes"),
        ({"type": "at", "at": "2026-05-01T06:00:00+02:00"}, "Once at 2026-05-01 06:00 (UTC+02:00)"),
        ({"type": "at", "at": "2026-05-01T06:00:00Z"}, "Once at 2026-05-01 06:00 (UTC)"),
        ({"type": "now"}, "Once, as soon as the share is created"),
        ({"type": "on_new_data"}, "Whenever the producer uploads new data"),
    ],
)
def test_describe(schedule: dict, sentence: str) -> None:
    assert describe(validate_schedule(schedule)) == sentence
