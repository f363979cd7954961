"""The plugin API: declarations, their validation, Job, and how handlers are called."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import river_supervisor
from river_supervisor.plugins import (
    DeclarationError,
    Job,
    JobCancel,
    JobContext,
    JobOptions,
    JobSnooze,
    Plugin,
    call_handler,
    duration_seconds,
)
from river_supervisor.testing import make_job, run_job

PLUGINS_PY = Path(river_supervisor.__file__).with_name("plugins.py")


def test_public_names_are_reexported_by_the_package():
    assert river_supervisor.Plugin is Plugin
    assert river_supervisor.Job is Job
    assert river_supervisor.JobCancel is JobCancel
    assert river_supervisor.JobSnooze is JobSnooze


def test_plugins_module_imports_neither_psycopg_nor_sentry():
    tree = ast.parse(PLUGINS_PY.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    assert not imported & {"psycopg", "sentry_sdk", "stevedore"}


def test_importing_the_api_loads_no_database_or_sentry_module():
    code = (
        "import sys, river_supervisor; from river_supervisor import Plugin, Job, UniqueOpts, InvalidJob;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'sentry_sdk', 'stevedore')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_job_decorator_registers_handler_with_options():
    plugin = Plugin("billing")

    @plugin.job("billing.charge", queue="payments", max_attempts=5, timeout="1m", priority=2)
    def charge(job):
        return job.args["n"] * 2

    decl = plugin.jobs["billing.charge"]
    assert decl.handler is charge.__wrapped__  # the decorator returns a DeclaredJob wrapping it
    assert charge.__name__ == "charge" and charge.kind == "billing.charge" and charge.decl is decl
    assert charge(make_job("billing.charge", {"n": 4})) == 8  # still called as the handler
    assert decl.options == JobOptions(queue="payments", max_attempts=5, timeout=60.0, priority=2)
    assert plugin.kinds == ["billing.charge"]
    assert run_job(plugin, "billing.charge", {"n": 21}) == 42


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "x"}, "kind 'x' must match River's kind pattern"),
        ({"kind": "has space"}, "kind 'has space'"),
        ({"kind": "ok.kind", "queue": "Upper"}, "queue 'Upper'"),
        ({"kind": "ok.kind", "queue": "a__b"}, "queue 'a__b'"),
        ({"kind": "ok.kind", "max_attempts": 0}, "max_attempts must be an integer >= 1, got 0"),
        ({"kind": "ok.kind", "timeout": 0}, "timeout must be a positive number"),
        ({"kind": "ok.kind", "timeout": "soon"}, "timeout must be a positive number"),
        ({"kind": "ok.kind", "priority": 5}, "priority must be an integer from 1 to 4"),
    ],
)
def test_invalid_job_declarations_name_plugin_and_kind(kwargs, message):
    plugin = Plugin("billing")
    kind = kwargs.pop("kind")
    with pytest.raises(DeclarationError) as info:
        plugin.job(kind, **kwargs)
    assert str(info.value).startswith(f"plugin billing: job {kind!r}: ")
    assert message in str(info.value)


def test_a_kind_declared_twice_is_refused():
    plugin = Plugin("billing")
    plugin.job("billing.charge")(lambda job: None)
    with pytest.raises(DeclarationError, match="declared twice"):
        plugin.job("billing.charge")


def test_river_kind_characters_are_accepted():
    plugin = Plugin("p")
    for kind in ("a1", "_x", "reports.nightly", "ns:kind[v2]", "a/b<c>+d·e"):
        plugin.job(kind)(lambda job: None)
    assert len(plugin.kinds) == 5


def test_periodic_declarations_store_plain_data():
    plugin = Plugin("billing")
    decl = plugin.periodic("billing.charge", id="charge-every-5m", cron=" */5 * * * * ", args={"batch": 100})
    every = plugin.periodic(
        "billing.sweep", id="sweep", every="1m30s", timezone="Europe/Berlin", missed="latest"
    )
    assert decl.cron == "*/5 * * * *" and decl.every is None and decl.plugin == "billing"
    assert every.every == 90.0 and every.timezone == "Europe/Berlin" and every.missed == "latest"
    assert [d.id for d in plugin.periodic_decls] == ["charge-every-5m", "sweep"]
    assert json.loads(json.dumps(decl.to_dict()))["args"] == {"batch": 100}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of cron= or every="),
        ({"cron": "* * * * *", "every": 60}, "exactly one of cron= or every="),
        ({"every": -1}, "every must be a positive number"),
        ({"every": "5 minutes"}, "every must be a positive number"),
        ({"cron": ""}, "cron must be a non-empty string"),
        ({"every": 60, "timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"every": 60, "missed": "some"}, "missed must be one of skip, latest, all"),
        ({"every": 60, "overlap": "queue"}, "overlap must be one of allow, skip"),
        ({"every": 60, "args": {"when": object()}}, "args must be JSON-serialisable"),
        ({"every": 60, "args": [1]}, "args must be a mapping"),
    ],
)
def test_invalid_periodic_declarations_name_plugin_and_id(kwargs, message):
    plugin = Plugin("billing")
    with pytest.raises(DeclarationError) as info:
        plugin.periodic("billing.charge", id="charge", **kwargs)
    assert str(info.value).startswith("plugin billing: periodic 'charge': ")
    assert message in str(info.value)


def test_plugin_name_is_checked():
    with pytest.raises(DeclarationError, match="plugin name ''"):
        Plugin("")


def test_durations_accept_numbers_and_strings():
    assert duration_seconds(5) == 5.0
    assert duration_seconds("1h30m") == 5400.0
    assert duration_seconds("250ms") == 0.25
    for bad in (0, -1, True, "x", None, float("inf")):
        with pytest.raises(ValueError):
            duration_seconds(bad)


def test_job_cancel_request_is_seen_by_the_handler_thread():
    job = make_job("a.b")
    assert not job.cancel_requested()
    seen = threading.Event()

    def handler(job):
        if job.wait_for_cancel(10):
            seen.set()
            raise JobCancel("stopped")

    outcome = []

    def worker_thread():
        try:
            call_handler(handler, job)
        except JobCancel as exc:
            outcome.append(exc.reason)

    thread = threading.Thread(target=worker_thread)
    thread.start()
    job.request_cancel()
    thread.join(10)
    assert seen.is_set() and job.cancel_requested() and outcome == ["stopped"]


def test_async_handlers_run_on_their_own_event_loop():
    plugin = Plugin("asyncy")
    loops = []

    @plugin.job("asyncy.run")
    async def handler(job):
        import asyncio

        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return job.args["x"]

    assert run_job(plugin, "asyncy.run", {"x": 1}) == 1
    assert run_job(plugin, "asyncy.run", {"x": 2}) == 2
    assert loops[0] is not loops[1] and loops[0].is_closed()


def test_job_snooze_and_cancel_carry_their_values():
    assert JobSnooze(30).seconds == 30.0
    assert JobCancel("no such customer").reason == "no such customer"
    with pytest.raises(ValueError):
        JobSnooze(-1)


def test_job_from_row_decodes_json_columns():
    row = {
        "id": 7,
        "kind": "a.b",
        "args": '{"x": 1}',
        "attempt": 2,
        "max_attempts": 3,
        "queue": "default",
        "metadata": b'{"periodic": true}',
        "scheduled_at": None,
        "tags": ["t"],
        "priority": 1,
    }
    job = Job.from_row(row, context=JobContext(database_url="postgresql:///x", node="n1"))
    assert (job.id, job.args, job.metadata, job.tags, job.attempt) == (
        7,
        {"x": 1},
        {"periodic": True},
        ("t",),
        2,
    )
    assert job.context.node == "n1"


def test_run_job_uses_the_kinds_options():
    plugin = Plugin("opts")

    @plugin.job("opts.echo", queue="low", max_attempts=3)
    def echo(job):
        return (job.queue, job.max_attempts, job.attempt)

    assert run_job(plugin, "opts.echo", {}) == ("low", 3, 1)
    assert run_job(plugin, "opts.echo", {}, attempt=3) == ("low", 3, 3)


def test_a_declaration_builds_jobs_with_its_options_and_configure_overrides_them():
    plugin = Plugin("billing")
    once = river_supervisor.UniqueOpts(by_args=True, by_period=3600)

    @plugin.job("billing.charge", queue="payments", priority=3, max_attempts=7, unique=once)
    def charge(job):
        return None

    spec = charge.spec({"customer": 1}, amount=5)
    assert (spec.kind, dict(spec.args), spec.queue, spec.priority, spec.max_attempts, spec.unique) == (
        "billing.charge", {"customer": 1, "amount": 5}, "payments", 3, 7, once,
    )  # fmt: skip
    later = charge.configure(scheduled_in=60, priority=1).spec(customer=2)
    assert (later.priority, later.queue, later.scheduled_at is not None) == (1, "payments", True)
    assert charge.spec().priority == 3  # configure returned a copy
    with pytest.raises(river_supervisor.InvalidJob, match="priority: must be 1 to 4, got 9"):
        charge.configure(priority=9).spec()


@pytest.mark.parametrize(
    ("unique", "message"),
    [
        ({"by_args": True}, "unique must be river_supervisor.UniqueOpts(...), got dict"),
        (river_supervisor.UniqueOpts(by_period=0.5), "unique.by_period: must be at least 1 second"),
    ],
)
def test_a_bad_unique_declaration_names_plugin_and_kind(unique, message):
    where = "plugin billing: job 'billing.charge': "
    with pytest.raises(DeclarationError, match=re.escape(where + message)):
        Plugin("billing").job("billing.charge", unique=unique)
