"""Cron schedules across daylight-saving changes: exact UTC instants, each wall time run once.

2026 transitions used: Europe/Paris springs forward on 29 March (02:00 CET → 03:00 CEST, 01:00 UTC)
and falls back on 25 October (03:00 CEST → 02:00 CET, 01:00 UTC); America/New_York springs forward
on 8 March (02:00 EST → 03:00 EDT, 07:00 UTC) and falls back on 1 November (02:00 EDT → 01:00 EST,
06:00 UTC).
"""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exchange.shares.schedules import due_run, next_run_after, preview, validate_schedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def cron(expr: str, zone: str) -> dict:
    return validate_schedule({"type": "cron", "cron": expr, "timezone": zone})


@pytest.mark.parametrize(
    ("zone", "start", "expected"),
    [
        # 02:30 does not exist on 29 March in Paris: the run moves to the end of the gap, 03:00 CEST.
        ("Europe/Paris", utc(2026, 3, 27),
         [utc(2026, 3, 27, 1, 30), utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]),
        # 02:30 happens twice on 25 October: only the first (CEST, 00:30 UTC) runs.
        ("Europe/Paris", utc(2026, 10, 23),
         [utc(2026, 10, 23, 0, 30), utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]),
        ("America/New_York", utc(2026, 3, 6),
         [utc(2026, 3, 6, 7, 30), utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)]),
        # New York falls back at 02:00 EDT, so 02:30 is unambiguous; 01:30 is the doubled time (below).
        ("America/New_York", utc(2026, 10, 30),
         [utc(2026, 10, 30, 6, 30), utc(2026, 10, 31, 6, 30), utc(2026, 11, 1, 7, 30), utc(2026, 11, 2, 7, 30)]),
    ],
)
def test_daily_0230_runs_exactly_once_per_day_across_dst(zone: str, start: datetime, expected: list) -> None:
    assert preview(cron("30 2 * * *", zone), start, n=4) == expected


def test_new_york_doubled_0130_runs_once_at_the_first_occurrence() -> None:
    runs = preview(cron("30 1 * * *", "America/New_York"), utc(2026, 10, 31, 12), n=2)
    assert runs == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_several_skipped_wall_times_collapse_into_one_run_at_the_gap_end() -> None:
    runs = preview(cron("0,20,40 2,3 29 3 *", "Europe/Paris"), utc(2026, 3, 28), n=4)
    # 02:00, 02:20, 02:40 all map to 03:00 CEST, which is itself a run time: one run, then 03:20, 03:40.
    assert runs == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 20), utc(2026, 3, 29, 1, 40),
                    utc(2027, 3, 29, 0, 0)]


def test_hour_wildcard_jobs_follow_real_time_through_both_changes() -> None:
    schedule = cron("*/30 * * * *", "Europe/Paris")
    spring = preview(schedule, utc(2026, 3, 28, 23, 50), n=4)
    assert spring == [utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0),
                      utc(2026, 3, 29, 1, 30)]
    autumn = preview(schedule, utc(2026, 10, 24, 23, 50), n=5)
    # The repeated hour 02:00-03:00 runs twice, so runs stay 30 minutes apart in real time.
    assert autumn == [utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 0),
                      utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 0)]


def test_next_run_is_strictly_after_the_given_instant() -> None:
    schedule = cron("0 6 * * *", "Europe/Paris")
    assert next_run_after(schedule, utc(2026, 6, 1, 4, 0)) == utc(2026, 6, 2, 4, 0)
    assert next_run_after(schedule, utc(2026, 6, 1, 3, 59)) == utc(2026, 6, 1, 4, 0)


def test_inside_the_repeated_hour_the_search_still_finds_the_second_pass() -> None:
    # 02:10 CET on 25 October (the second pass, 01:10 UTC): the next half-hour is 02:30 CET.
    schedule = cron("30 * * * *", "Europe/Paris")
    assert next_run_after(schedule, utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 25, 1, 30)
    # 02:50 CEST (00:50 UTC, the first pass): the next run is the second 02:30 — not 03:30.
    assert next_run_after(schedule, utc(2026, 10, 25, 0, 50)) == utc(2026, 10, 25, 1, 30)


def test_naive_inputs_are_read_as_utc() -> None:
    schedule = cron("0 6 * * *", "UTC")
    assert next_run_after(schedule, datetime(2026, 6, 1, 5, 0)) == utc(2026, 6, 1, 6, 0)


def test_cron_downtime_runs_the_latest_missed_time_once() -> None:
    schedule = cron("0 6 * * *", "Europe/Paris")
    last = utc(2026, 3, 25, 5, 0)  # 06:00 CET on 25 March
    run_at, following = due_run(schedule, last, utc(2026, 3, 30, 12, 0), anchor=utc(2026, 1, 1))
    # Missed 26..30 March: only 30 March 06:00 CEST (04:00 UTC) runs; the next is 31 March.
    assert run_at == utc(2026, 3, 30, 4, 0)
    assert following == utc(2026, 3, 31, 4, 0)


def test_cron_due_at_the_exact_instant_and_not_twice() -> None:
    schedule = cron("0 6 * * *", "UTC")
    run_at, following = due_run(schedule, utc(2026, 6, 1, 6), utc(2026, 6, 2, 6), anchor=None)
    assert (run_at, following) == (utc(2026, 6, 2, 6), utc(2026, 6, 3, 6))
    again = due_run(schedule, run_at, utc(2026, 6, 2, 6, 0, 30), anchor=None)
    assert again == (None, utc(2026, 6, 3, 6))


def test_fall_back_day_yields_one_due_run_for_a_fixed_time_job() -> None:
    schedule = cron("30 2 * * *", "Europe/Paris")
    first, _ = due_run(schedule, utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 45), anchor=None)
    assert first == utc(2026, 10, 25, 0, 30)
    # An hour later the wall clock shows 02:30 again: nothing is due.
    assert due_run(schedule, first, utc(2026, 10, 25, 1, 45), anchor=None) == (None, utc(2026, 10, 26, 1, 30))
