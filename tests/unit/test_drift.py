"""Fingerprints and drift comparison (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from river_supervisor.config import PeriodicEntry
from river_supervisor.drift import compare, find_orphans, fingerprint
from river_supervisor.schedules import effective_schedules

NIGHTLY = PeriodicEntry(id="nightly", kind="reports.nightly", cron="0 3 * * *", timezone="Europe/Berlin")
SWEEP = PeriodicEntry(id="sweep", kind="billing.sweep", every=90.0)
JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)
PLUGINS = {"my-billing": "1.2.0", "my-reports": "0.3.1"}


def manifest(entries: list[PeriodicEntry], plugins: dict[str, str | None] = PLUGINS) -> dict:
    return fingerprint(effective_schedules([], entries).schedules, plugins)[1]


def test_fingerprint_is_stable_and_order_independent() -> None:
    a = fingerprint(effective_schedules([], [NIGHTLY, SWEEP]).schedules, PLUGINS)
    b = fingerprint(effective_schedules([], [SWEEP, NIGHTLY]).schedules, dict(reversed(PLUGINS.items())))
    assert a == b
    digest, data = a
    assert len(digest) == 64
    assert data["schedules"]["nightly"]["cron"] == "0 3 * * *"
    assert data["plugins"] == PLUGINS


def test_fingerprint_changes_with_any_schedule_field() -> None:
    base = fingerprint(effective_schedules([], [NIGHTLY]).schedules, PLUGINS)[0]
    other = PeriodicEntry(id="nightly", kind="reports.nightly", cron="0 3 * * *", timezone="UTC")
    assert fingerprint(effective_schedules([], [other]).schedules, PLUGINS)[0] != base


def test_identical_nodes_have_no_drift() -> None:
    drift = compare({"web-1": manifest([NIGHTLY]), "web-2": manifest([NIGHTLY])})
    assert not drift and drift.digest == "" and drift.differences == ()


def test_compare_detects_an_extra_schedule_and_version_skew() -> None:
    drift = compare(
        {
            "web-1": manifest([NIGHTLY]),
            "web-2": manifest([NIGHTLY]),
            "web-3": manifest([NIGHTLY, SWEEP], {"my-billing": "1.3.0", "my-reports": "0.3.1"}),
        }
    )
    assert drift.reference == "web-1"  # the majority
    assert drift.drifting_nodes == ["web-3"]
    assert {"node": "web-3", "what": "schedule_added", "id": "sweep"} in drift.differences
    assert {
        "node": "web-3",
        "what": "plugin_version",
        "plugin": "my-billing",
        "reference": "1.2.0",
        "version": "1.3.0",
    } in drift.differences
    assert "web-1" in drift.summary()


def test_compare_names_changed_fields_and_missing_schedules() -> None:
    changed = PeriodicEntry(id="nightly", kind="reports.nightly", cron="0 4 * * *", timezone="Europe/Berlin")
    drift = compare({"leader": manifest([NIGHTLY, SWEEP]), "web-2": manifest([changed])}, reference="leader")
    by_what = {d["what"]: d for d in drift.differences}
    assert by_what["schedule_changed"]["fields"] == {"cron": {"reference": "0 3 * * *", "node": "0 4 * * *"}}
    assert by_what["schedule_missing"]["id"] == "sweep"


def test_drift_digest_does_not_depend_on_the_reference_or_the_node_count() -> None:
    one, two = manifest([NIGHTLY]), manifest([NIGHTLY, SWEEP])
    a = compare({"web-1": one, "web-2": two}, reference="web-1")
    b = compare({"web-1": one, "web-2": two}, reference="web-2")
    c = compare({"web-1": one, "web-2": two, "web-4": one})
    assert a.digest == b.digest == c.digest != ""
    d = compare({"web-1": one, "web-2": manifest([SWEEP])})
    assert d.digest != a.digest


def test_find_orphans_names_the_defining_node() -> None:
    rows = [
        {"id": "nightly", "kind": "reports.nightly", "defined_by": "web-1", "last_slot": None},
        {
            "id": "legacy",
            "kind": "old.job",
            "defined_by": "web-7",
            "last_slot": datetime(2026, 1, 1, tzinfo=UTC),
        },
        {"id": "paused", "kind": "old.job", "defined_by": "web-7", "last_slot": None},
    ]
    schedules = effective_schedules([], [NIGHTLY]).schedules
    (orphan,) = find_orphans(rows, schedules, disabled=["paused"])
    assert orphan.to_dict() == {
        "id": "legacy",
        "kind": "old.job",
        "defined_by": "web-7",
        "last_slot": "2026-01-01T00:00:00+00:00",
    }
