"""alerts.py with the real sentry-sdk, over real HTTP to the loopback ingest."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from river_supervisor import alerts
from river_supervisor.config import SentryConfig
from river_supervisor.leadership import EventKind, LeadershipEvent
from river_supervisor.plugins import Job
from river_supervisor.redaction import redact_text, secret_values

from tests.harness import fixtures
from tests.harness.sentry_ingest import SentryIngest

sentry_ingest = fixtures.sentry_ingest

SECRET = "hunter2-s3cret"
DB_URL = f"postgresql://app:{SECRET}@db.internal:5432/app"


def _event(kind: EventKind, **fields: Any) -> LeadershipEvent:
    """A leadership change as the elector reports it (web-1 in term 7, web-2 before or after)."""
    at = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    known = {"cluster": "default", "node": "web-1", "leader_id": "web-1:4242:boot1", "term": 7}
    return LeadershipEvent(kind=kind, **{**known, "other_leader_id": "web-2:77:boot2", "at": at, **fields})


def _job() -> Job:
    return Job(id=42, kind="billing.charge", attempt=3, max_attempts=25, args={"card": "4111-1111"})


@pytest.fixture
def reporting(sentry_ingest: SentryIngest) -> Iterator[SentryIngest]:
    """This process reports to the loopback ingest as a supervisor of cluster ``default``."""
    assert alerts.init(
        SentryConfig(dsn=sentry_ingest.dsn, environment="test"),
        role="supervisor",
        cluster="default",
        node="web-1",
        secrets=[DB_URL],
    )
    yield sentry_ingest
    alerts.close(timeout=2)


def _one_event(ingest: SentryIngest, **kw: Any) -> Any:
    alerts.flush(5)
    [item] = ingest.wait_for_items(type="event", **kw)
    return item


def test_leadership_event_arrives_with_the_four_tags_and_a_fingerprint(reporting: SentryIngest) -> None:
    alerts.leadership_event(_event("gained", detail={"reason": "previous lease expired"}))
    item = _one_event(reporting)
    assert item.tags["cluster"] == "default"
    assert item.tags["node"] == "web-1"
    assert item.tags["term"] == "7"
    assert item.tags["leadership_event"] == "gained"
    assert item.tags["role"] == "supervisor"
    assert item.fingerprint == ["river-supervisor", "leadership", "default", "gained"]
    assert item.message == (
        "leadership gained: node web-1 leads cluster default (term 7), previous holder web-2:77:boot2"
    )
    assert item.payload["logger"] == "river_supervisor.leadership"
    assert item.payload["server_name"] == "web-1"
    assert item.payload["environment"] == "test"
    assert item.payload["release"].startswith("river-supervisor@")
    assert item.payload["timestamp"].startswith("2026-11-27T03:00:00")
    ctx = item.payload["contexts"]["leadership"]
    assert ctx["leader_id"] == "web-1:4242:boot1"
    assert ctx["other_leader_id"] == "web-2:77:boot2"
    assert ctx["detail"] == {"reason": "previous lease expired"}


@pytest.mark.parametrize(
    ("kind", "level"),
    [
        ("gained", "info"),
        ("resigned", "info"),
        ("lost", "warning"),
        ("expired", "warning"),
        ("superseded", "warning"),
    ],
)
def test_leadership_event_level_follows_its_kind(reporting: SentryIngest, kind: str, level: str) -> None:
    alerts.leadership_event(_event(kind))
    item = _one_event(reporting, tag=("leadership_event", kind))
    assert item.level == level
    assert item.fingerprint == ["river-supervisor", "leadership", "default", kind]
    assert item.message.startswith(f"leadership {kind}: ")


def test_leadership_fingerprint_groups_terms_and_separates_clusters(reporting: SentryIngest) -> None:
    alerts.leadership_event(_event("lost", term=1))
    alerts.leadership_event(_event("lost", term=2))
    alerts.leadership_event(_event("lost", cluster="billing", term=1))
    alerts.flush(5)
    items = reporting.wait_for_items(type="event", count=3)
    fingerprints = [tuple(i.fingerprint) for i in items]
    assert fingerprints.count(("river-supervisor", "leadership", "default", "lost")) == 2
    assert fingerprints.count(("river-supervisor", "leadership", "billing", "lost")) == 1
    assert [i.tags["cluster"] for i in items if i.tags["term"] == "1"] == ["default", "billing"]


def test_drift_event_is_a_warning_fingerprinted_by_its_digest(reporting: SentryIngest) -> None:
    differences = [{"node": "web-2", "what": "schedule_missing", "id": "nightly"}]
    alerts.drift_event("default", "ab12cd34ef56ab12cd34", differences, ["web-1", "web-2"])
    item = _one_event(reporting)
    assert item.level == "warning"
    assert item.fingerprint == ["river-supervisor", "drift", "default", "ab12cd34ef56ab12cd34"]
    assert item.tags["cluster"] == "default"
    ctx = item.payload["contexts"]["drift"]
    assert ctx["nodes"] == ["web-1", "web-2"]
    assert ctx["differences"] == differences
    assert "periodic nightly is defined on the reference node but not on node web-2" in ctx["summary"]


def test_orphaned_schedule_plugin_error_and_crash_loop_events(reporting: SentryIngest) -> None:
    alerts.orphaned_schedule_event("default", "nightly-report", leader_node="web-3", kind="reports.nightly")
    try:
        raise RuntimeError("boom at import")
    except RuntimeError as exc:
        alerts.plugin_load_error_event("billing", "my-billing", exc)
    alerts.crash_loop_event("default", "web-1", crashes=5, window=60.0, last_exit="SIGKILL", worker=3)
    alerts.flush(5)
    items = {tuple(i.fingerprint): i for i in reporting.wait_for_items(type="event", count=3)}

    orphan = items[("river-supervisor", "orphaned-schedule", "default", "nightly-report")]
    assert orphan.level == "warning" and orphan.tags["schedule"] == "nightly-report"
    plugin = items[("river-supervisor", "plugin-load", "billing")]
    assert plugin.level == "error"
    assert plugin.message == "plugin billing (my-billing) failed to load: RuntimeError: boom at import"
    assert "raise RuntimeError" in plugin.payload["contexts"]["plugin"]["traceback"]
    crash = items[("river-supervisor", "crash-loop", "default", "web-1")]
    assert crash.level == "error"
    assert (
        crash.message
        == "worker 3 crash loop on node web-1: 5 crashes in 60s, restarts stopped (last exit: SIGKILL)"
    )


def test_crash_loop_event_takes_the_supervisors_own_message(reporting: SentryIngest) -> None:
    alerts.crash_loop_event("default", "web-1", 2, "worker 2 crashed 5 times within 60s: not restarting it")
    item = _one_event(reporting)
    assert item.message == "worker 2 crashed 5 times within 60s: not restarting it"
    assert item.fingerprint == ["river-supervisor", "crash-loop", "default", "web-1"]
    assert item.payload["contexts"]["crash_loop"]["worker"] == 2


def test_job_error_reports_the_exception_with_job_context_but_no_args(reporting: SentryIngest) -> None:
    try:
        raise ValueError("card declined")
    except ValueError as exc:
        alerts.job_error(_job(), exc)
    item = _one_event(reporting)
    assert item.level == "error"
    assert item.payload["exception"]["values"][-1]["value"] == "card declined"
    assert item.tags["job_kind"] == "billing.charge" and item.tags["queue"] == "default"
    job = item.payload["contexts"]["job"]
    assert job == {"id": 42, "kind": "billing.charge", "queue": "default", "attempt": 3, "max_attempts": 25}
    assert "4111" not in reporting.requests()[-1].body.decode()


def test_job_error_sends_args_only_when_asked(reporting: SentryIngest) -> None:
    try:
        raise ValueError("card declined")
    except ValueError as exc:
        alerts.job_error(_job(), exc, send_args=True)
    item = _one_event(reporting)
    assert item.payload["contexts"]["job"]["args"] == {"card": "4111-1111"}
    assert "river_supervisor.send_job_args" not in item.payload.get("extra", {})


def test_job_error_accepts_an_error_text(reporting: SentryIngest) -> None:
    alerts.job_error(_job(), "TimeoutError: ran past 60s")
    item = _one_event(reporting)
    assert item.level == "error"
    assert item.message == "job billing.charge failed: TimeoutError: ran past 60s"
    assert item.tags["job_kind"] == "billing.charge"


def test_checkin_sequence_arrives_with_its_monitor_config(reporting: SentryIngest) -> None:
    config = {"schedule": {"type": "crontab", "value": "*/5 * * * *"}, "timezone": "UTC", "checkin_margin": 2}
    check_in_id = alerts.checkin("rs-charge-every-5m", "in_progress", config)
    assert check_in_id
    assert (
        alerts.checkin("rs-charge-every-5m", "ok", config, check_in_id=check_in_id, duration=1.5)
        == check_in_id
    )
    alerts.flush(5)
    started, done = reporting.wait_for_items(type="check_in", count=2)
    assert [started.payload["status"], done.payload["status"]] == ["in_progress", "ok"]
    assert {started.payload["check_in_id"], done.payload["check_in_id"]} == {check_in_id}
    assert started.payload["monitor_config"] == config == done.payload["monitor_config"]
    assert done.payload["duration"] == 1.5
    assert done.payload["environment"] == "test"


def test_a_database_password_never_reaches_the_ingest(reporting: SentryIngest) -> None:
    logging.getLogger("river_supervisor.tests").warning("cannot connect to %s", DB_URL)  # a breadcrumb
    alerts.leadership_event(_event("lost", detail={"database_url": DB_URL, "dsn": "postgres://u:pw2x@h/d"}))
    conninfo = {"reference": {"conninfo": f"host=db password={SECRET} user=app"}, "node": {}}
    changed = {"node": "web-2", "what": "schedule_changed", "id": "sync", "fields": {"args": conninfo}}
    alerts.drift_event("default", "d1", [changed], ["web-1", "web-2"])
    try:
        raise ConnectionError(f"could not connect to {DB_URL}")
    except ConnectionError as exc:
        alerts.crash_loop_event(
            "default", "web-1", 1, str(exc), detail={"password": "plain-text", "url": DB_URL}
        )
    alerts.flush(5)
    reporting.wait_for_items(type="event", count=3)
    wire = b"".join(r.body for r in reporting.requests()).decode()
    for secret in (SECRET, "pw2x", "plain-text"):
        assert secret not in wire
    assert "postgresql://app:***@db.internal:5432/app" in wire
    assert "password=***" in wire
    [lost] = reporting.events(tag=("leadership_event", "lost"))
    assert lost.payload["breadcrumbs"]["values"][-1]["message"] == f"cannot connect to {DB_URL}".replace(
        SECRET, "***"
    )


def test_redaction_handles_urls_keywords_and_known_secrets() -> None:
    """The rules every event passes through, with this process's known secrets (the DSN, the URL)."""
    secrets = secret_values([DB_URL, "http://public@127.0.0.1:9/1"])
    assert redact_text("postgresql://u:p%40ss@h/db", secrets) == "postgresql://u:***@h/db"
    assert redact_text("see postgresql://u:p@ss@h/db now", secrets) == "see postgresql://u:***@h/db now"
    assert redact_text("http://public@127.0.0.1:9/1", secrets) == "http://public@127.0.0.1:9/1"
    assert (
        redact_text("https://pub:sec@o1.ingest.sentry.io/5", secrets)
        == "https://pub:***@o1.ingest.sentry.io/5"
    )
    assert redact_text("host=db password='a b' user=x", secrets) == "host=db password=*** user=x"
    assert redact_text('{"password": "a b", "user": "x"}', secrets) == '{"password": ***, "user": "x"}'
    assert redact_text(f"the value {SECRET} alone", secrets) == "the value *** alone"


def test_init_without_dsn_is_a_no_op(sentry_ingest: SentryIngest) -> None:
    alerts.close()
    assert alerts.init(SentryConfig(dsn=None), role="worker", cluster="default", node="w") is False
    assert alerts.init(None, role="cli", cluster="default", node="w") is False
    assert not alerts.enabled()
    assert alerts.leadership_event(_event("gained")) is None
    assert alerts.drift_event("default", "d", [], []) is None
    assert alerts.checkin("slug", "ok") is None
    alerts.flush(1)
    alerts.close(1)


def test_reporting_never_raises_on_bad_input(reporting: SentryIngest) -> None:
    assert alerts.leadership_event(object()) is None  # type: ignore[arg-type]
    assert alerts.drift_event("default", None, None, None) is None  # type: ignore[arg-type]
    alerts.leadership_event(_event("gained"))
    assert _one_event(reporting).tags["leadership_event"] == "gained"


def test_reporting_to_a_closed_port_neither_raises_nor_blocks_past_the_flush_timeout() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dsn = f"http://public@127.0.0.1:{port}/1"  # nothing listens here any more
    assert alerts.init(SentryConfig(dsn=dsn), role="worker", cluster="default", node="w")
    try:
        for kind in ("gained", "lost", "expired"):
            assert alerts.leadership_event(_event(kind))  # queued: an event id, no exception
        assert alerts.checkin("slug", "in_progress")
        started = time.monotonic()
        alerts.flush(0.5)
        # Generous bound: this checks "bounded by the timeout", not speed.
        assert time.monotonic() - started < 5
    finally:
        started = time.monotonic()
        alerts.close(0.5)
        assert time.monotonic() - started < 5


def test_events_sent_are_valid_json_envelopes(reporting: SentryIngest) -> None:
    alerts.leadership_event(_event("resigned", other_leader_id=None))
    alerts.flush(5)
    reporting.wait_for_items(type="event")
    [request] = [r for r in reporting.requests() if r.items]
    assert request.path == "/api/1/envelope/"
    assert request.content_encoding == "gzip"
    assert request.headers["content-type"] == "application/x-sentry-envelope"
    assert "sentry_key=public" in request.headers["x-sentry-auth"]
    header = json.loads(request.body.split(b"\n", 1)[0])
    assert header["event_id"]
