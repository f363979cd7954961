"""Effective schedules (plugin declarations merged with [[periodic]] entries) and the missed policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from river_supervisor.config import PeriodicEntry
from river_supervisor.cron import every_schedule, parse_cron
from river_supervisor.errors import ConfigError
from river_supervisor.plugins import JobOptions, PeriodicDecl
from river_supervisor.schedules import display_schedule, effective_schedules, monitor_config, plan_slots

T0 = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)


def _decl(**fields: object) -> PeriodicDecl:
    values: dict = {"plugin": "billing", "id": "charge", "kind": "billing.charge", "cron": "*/5 * * * *"}
    values.update(fields)
    return PeriodicDecl(**values)


def test_plugin_schedule_gets_defaults_from_the_kind_options() -> None:
    result = effective_schedules(
        [_decl()], kinds={"billing.charge": JobOptions(queue="billing", max_attempts=3, priority=2)}
    )
    (schedule,) = result.schedules
    assert (schedule.queue, schedule.priority, schedule.max_attempts) == ("billing", 2, 3)
    assert (schedule.missed, schedule.missed_cap, schedule.overlap) == ("latest", None, "allow")
    assert schedule.defined_by == "plugin:billing"
    assert result.problems == ()


def test_unknown_kind_uses_river_defaults_and_is_a_problem_not_an_error() -> None:
    result = effective_schedules([_decl(kind="nobody.handles")], kinds={})
    (schedule,) = result.schedules
    assert (schedule.queue, schedule.priority, schedule.max_attempts) == ("default", 1, 25)
    assert [problem["kind"] for problem in result.problems] == ["periodic_kind_unknown"]
    assert "charge" in result.problems[0]["message"]


def test_config_adds_a_schedule() -> None:
    entry = PeriodicEntry(id="nightly", kind="reports.nightly", cron="0 3 * * *", timezone="Europe/Berlin")
    (schedule,) = effective_schedules([], [entry]).schedules
    assert schedule.defined_by == "config"
    assert schedule.schedule.next_after(T0) == datetime(2026, 1, 3, 2, 0, tzinfo=UTC)


def test_config_overrides_only_the_fields_it_sets() -> None:
    decl = _decl(args={"batch": 100}, queue="billing")
    entry = PeriodicEntry(id="charge", every=90.0, missed="all")
    (schedule,) = effective_schedules([decl], [entry]).schedules
    assert schedule.cron is None and schedule.every == 90.0  # every replaces the plugin's cron
    assert schedule.args == {"batch": 100} and schedule.queue == "billing"
    assert (schedule.missed, schedule.missed_cap) == ("all", 100)
    assert schedule.defined_by == "plugin:billing+config"


def test_config_disables_a_plugin_schedule() -> None:
    result = effective_schedules([_decl()], [PeriodicEntry(id="charge", enabled=False)])
    assert result.schedules == ()
    assert result.disabled == frozenset({"charge"})


def test_invalid_cron_names_the_schedule() -> None:
    entry = PeriodicEntry(id="nightly", kind="reports.nightly", cron="0 25 * * *")
    with pytest.raises(ConfigError) as caught:
        effective_schedules([], [entry], path="river-supervisor.toml")
    assert caught.value.key == "[[periodic]] id=nightly: cron"
    assert str(caught.value).startswith("river-supervisor.toml: [[periodic]] id=nightly: cron: hour: 25")


def test_bad_policy_is_a_config_error() -> None:
    entry = PeriodicEntry(id="x1", kind="k", every=60.0, missed="sometimes")
    with pytest.raises(ConfigError, match="missed"):
        effective_schedules([], [entry])


def test_new_config_schedule_needs_a_kind_and_one_schedule() -> None:
    with pytest.raises(ConfigError, match="kind"):
        effective_schedules([], [PeriodicEntry(id="x1", every=60.0)])
    with pytest.raises(ConfigError, match="exactly one"):
        effective_schedules([], [PeriodicEntry(id="x1", kind="k")])


# -- missed policy ------------------------------------------------------------------------------

MINUTELY = every_schedule(60)


def test_on_time_slots_are_always_enqueued() -> None:
    """A 2 s failover with every=1s: each slot exactly once, even under ``skip``."""
    schedule = every_schedule(1)
    for policy in ("skip", "latest", "all"):
        plan = plan_slots(schedule, T0, T0 + timedelta(seconds=2.5), missed=policy)
        assert plan.enqueue == (T0 + timedelta(seconds=1), T0 + timedelta(seconds=2))
        assert plan.skipped == 0
        assert plan.last_slot == T0 + timedelta(seconds=2)
        assert plan.next_run_at == T0 + timedelta(seconds=3)


def test_skip_drops_missed_slots_and_keeps_on_time_ones() -> None:
    now = T0 + timedelta(minutes=10, seconds=30)  # slots 12:01..12:10; 12:10 is on time
    plan = plan_slots(MINUTELY, T0, now, missed="skip")
    assert plan.enqueue == (T0 + timedelta(minutes=10),)
    assert (plan.skipped, plan.skipped_exact) == (9, True)
    assert plan.skipped_first == T0 + timedelta(minutes=1)
    assert plan.skipped_last == T0 + timedelta(minutes=9)


FIVE = every_schedule(300)
LATE = T0 + timedelta(minutes=51, seconds=10)  # slots 12:05..12:50 all missed (12:50 is 70 s old)


def test_latest_enqueues_the_newest_missed_slot_once() -> None:
    plan = plan_slots(FIVE, T0, LATE, missed="latest")
    assert plan.enqueue == (T0 + timedelta(minutes=50),)
    assert (plan.caught_up, plan.skipped) == (1, 9)
    assert plan.skipped_last == T0 + timedelta(minutes=45)
    assert plan.last_slot == T0 + timedelta(minutes=50)
    assert plan.next_run_at == T0 + timedelta(minutes=55)


def test_latest_needs_no_catch_up_when_a_slot_is_on_time() -> None:
    plan = plan_slots(MINUTELY, T0, T0 + timedelta(minutes=10, seconds=30), missed="latest")
    assert plan.enqueue == (T0 + timedelta(minutes=10),)
    assert (plan.caught_up, plan.skipped) == (0, 9)


def test_all_enqueues_the_most_recent_cap_missed_slots() -> None:
    plan = plan_slots(FIVE, T0, LATE, missed="all", missed_cap=3)
    assert plan.enqueue == tuple(T0 + timedelta(minutes=m) for m in (40, 45, 50))
    assert (plan.caught_up, plan.skipped, plan.skipped_last) == (3, 7, T0 + timedelta(minutes=35))
    uncapped = plan_slots(FIVE, T0, LATE, missed="all")
    assert len(uncapped.enqueue) == 10 and uncapped.skipped == 0


def test_long_outage_is_bounded_work() -> None:
    cron = parse_cron("* * * * *")
    plan = plan_slots(cron, T0 - timedelta(days=60), T0, missed="all", missed_cap=5)
    assert plan.enqueue[-1] == T0
    assert len(plan.enqueue) == 6  # the 5 newest missed, and T0 itself, on time
    assert plan.skipped >= 9_000 and not plan.skipped_exact  # a lower bound past SCAN_LIMIT
    interval = plan_slots(every_schedule(1), T0 - timedelta(days=365), T0, missed="latest")
    assert interval.skipped == 365 * 86400 - 60 and interval.skipped_exact


def test_nothing_due() -> None:
    plan = plan_slots(MINUTELY, T0, T0 + timedelta(seconds=59), missed="all")
    assert plan.enqueue == () and plan.last_slot is None
    assert plan.next_run_at == T0 + timedelta(minutes=1)


def test_cursor_ahead_of_now_is_never_redecided() -> None:
    plan = plan_slots(MINUTELY, T0 + timedelta(minutes=5), T0, missed="all")
    assert plan.enqueue == () and plan.next_run_at == T0 + timedelta(minutes=6)


# -- Sentry Crons ---------------------------------------------------------------------------------


def test_monitor_config_crontab_and_interval() -> None:
    entries = [
        PeriodicEntry(id="nightly", kind="k", cron="@daily", timezone="Europe/Berlin"),
        PeriodicEntry(id="sweep", kind="k", every=5400.0),
        PeriodicEntry(id="fast", kind="k", every=10.0),
    ]
    by_id = effective_schedules([], entries).by_id()
    assert monitor_config(by_id["nightly"]) == {
        "schedule": {"type": "crontab", "value": "0 0 * * *"},
        "timezone": "Europe/Berlin",
        "checkin_margin": 5,
        "max_runtime": 30,
    }
    assert monitor_config(by_id["sweep"])["schedule"] == {"type": "interval", "value": 90, "unit": "minute"}
    assert monitor_config(by_id["fast"])["schedule"] == {"type": "interval", "value": 1, "unit": "minute"}


@pytest.mark.parametrize(
    ("text", "shown"),
    [("every:10", "every 10s"), ("every:5400", "every 1h30m"), ("cron:0 3 * * * tz=UTC", "0 3 * * * (UTC)")],
)
def test_schedules_are_shown_as_people_write_them(text: str, shown: str) -> None:
    assert display_schedule(text) == shown
