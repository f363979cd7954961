"""Schedules against River's conformance cases (``river-conformance/cron.json``) and across DST."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from river_supervisor.cron import CronError, CronSchedule, IntervalSchedule, every_schedule, parse_cron


def _conformance() -> dict:
    """River's fixtures, as copied into ``tests/conformance/`` (see its README)."""
    folder = Path(__file__).resolve().parents[1] / "conformance"
    return json.loads((folder / "cron.json").read_text(encoding="utf-8"))


CASES = _conformance()


@pytest.mark.parametrize("case", CASES["cron_cases"], ids=lambda case: case["name"])
def test_river_cron_case(case: dict) -> None:
    start = datetime.fromisoformat(case["from"])
    # Without a CRON_TZ prefix River evaluates in the reference time's location.
    schedule = parse_cron(case["expression"], start.tzinfo or UTC)
    got: list[datetime] = []
    t = start
    for _ in range(len(case["next"]) or 1):
        nxt = schedule.next_after(t)
        if nxt is None:
            break
        got.append(nxt)
        t = nxt
    expected = [datetime.fromisoformat(value) for value in case["next"]]
    assert got[: len(expected)] == expected
    assert all(slot.tzinfo is UTC for slot in got)
    if not expected:
        assert got == []


@pytest.mark.parametrize("expression", CASES["cron_invalid"])
def test_river_invalid_cron_is_refused(expression: str) -> None:
    with pytest.raises(CronError):
        parse_cron(expression)


def test_slots_between_matches_next_after() -> None:
    schedule = parse_cron("*/15 9-17 * * mon-fri")
    after = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    slots = list(schedule.slots_between(after, datetime(2026, 1, 2, 10, 0, tzinfo=UTC)))
    assert slots[0] == datetime(2026, 1, 2, 9, 0, tzinfo=UTC)
    assert slots[-1] == datetime(2026, 1, 2, 10, 0, tzinfo=UTC)  # inclusive end
    assert len(slots) == 5


def _local_runs(expression: str, zone: str, day: datetime) -> list[datetime]:
    tz = ZoneInfo(zone)
    schedule = parse_cron(expression, zone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz) - timedelta(seconds=1)
    end = start + timedelta(days=1, hours=2)
    return [
        s.astimezone(tz) for s in schedule.slots_between(start, end) if s.astimezone(tz).date() == day.date()
    ]


DST_DAYS = [
    # 02:00 -> 03:00: 02:30 does not exist; Debian cron runs it right after the jump.
    ("Europe/Berlin", datetime(2026, 3, 29), "30 2 * * *", "03:00:00+02:00"),
    # 03:00 -> 02:00: 02:30 happens twice; it runs at the first only.
    ("Europe/Berlin", datetime(2026, 10, 25), "30 2 * * *", "02:30:00+02:00"),
    ("America/New_York", datetime(2026, 3, 8), "30 2 * * *", "03:00:00-04:00"),
    # New York repeats 01:00-02:00, so 02:30 is unambiguous there; 01:30 happens twice.
    ("America/New_York", datetime(2026, 11, 1), "30 2 * * *", "02:30:00-05:00"),
    ("America/New_York", datetime(2026, 11, 1), "30 1 * * *", "01:30:00-04:00"),
]


@pytest.mark.parametrize(("zone", "day", "expression", "expected"), DST_DAYS)
def test_fixed_time_daily_job_runs_exactly_once_on_dst_change_days(
    zone: str, day: datetime, expression: str, expected: str
) -> None:
    runs = _local_runs(expression, zone, day)
    assert [run.isoformat()[11:] for run in runs] == [expected]


@pytest.mark.parametrize(
    ("zone", "day", "count"),
    [
        ("Europe/Berlin", datetime(2026, 3, 29), 23),
        ("Europe/Berlin", datetime(2026, 10, 25), 25),
        ("America/New_York", datetime(2026, 3, 8), 23),
        ("America/New_York", datetime(2026, 11, 1), 25),
    ],
)
def test_hourly_follows_real_time_across_dst(zone: str, day: datetime, count: int) -> None:
    """Debian cron: a wildcard-hour job runs every elapsed hour: the skipped hour has no run, the
    repeated hour runs twice, and consecutive runs are always one real hour apart."""
    runs = _local_runs("0 * * * *", zone, day)
    assert len(runs) == count
    gaps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in itertools.pairwise(runs)}
    assert gaps == {timedelta(hours=1)}


def test_cron_tz_prefix_wins_over_timezone() -> None:
    schedule = parse_cron("CRON_TZ=Europe/Berlin 0 9 * * *", "America/New_York")
    assert schedule.next_after(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def test_every_is_aligned_to_the_unix_epoch() -> None:
    schedule = every_schedule(90)
    # Two hosts asking at different moments see the same grid.
    a = schedule.next_after(datetime(2026, 1, 2, 3, 4, 5, 678900, tzinfo=UTC))
    b = schedule.next_after(datetime(2026, 1, 2, 3, 4, 29, tzinfo=UTC))
    assert a == b == datetime(2026, 1, 2, 3, 4, 30, tzinfo=UTC)
    assert (a - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() % 90 == 0
    slots = list(schedule.slots_between(a - timedelta(seconds=90), a + timedelta(seconds=180)))
    assert slots == [a, a + timedelta(seconds=90), a + timedelta(seconds=180)]


def test_slot_exactly_at_after_is_excluded() -> None:
    schedule = every_schedule(1)
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert schedule.next_after(t) == t + timedelta(seconds=1)
    assert list(schedule.slots_between(t, t + timedelta(seconds=2))) == [
        t + timedelta(seconds=1),
        t + timedelta(seconds=2),
    ]


@pytest.mark.parametrize("bad", [0, 0.5])
def test_every_below_one_second_is_refused(bad: float) -> None:
    with pytest.raises(CronError):
        every_schedule(bad)


def test_impossible_date_never_runs() -> None:
    schedule = parse_cron("0 0 31 4 *")
    assert isinstance(schedule, CronSchedule)
    assert schedule.next_after(datetime(2026, 1, 1, tzinfo=UTC)) is None
    assert (
        list(schedule.slots_between(datetime(2026, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))) == []
    )


def test_at_every_keeps_rivers_reference_relative_meaning() -> None:
    schedule = parse_cron("@every 90s")
    assert isinstance(schedule, IntervalSchedule) and schedule.anchor is None
