"""plugins/sql: ``sql.execute`` against the test database, success and failure paths."""

from __future__ import annotations

import threading

import psycopg
import pytest
from river_supervisor import JobCancel
from river_supervisor.plugins import JobContext, call_handler
from river_supervisor.testing import make_job
from river_supervisor_sql import SqlError, plugin

from tests.harness.wait import wait_until


@pytest.fixture
def scratch(db):
    db.execute("drop table if exists plugin_sql_events cascade")
    db.execute("create table plugin_sql_events (id int primary key, age_days int not null)")
    db.execute("insert into plugin_sql_events select g, g from generate_series(1, 40) g")
    yield db
    db.execute("drop table if exists plugin_sql_events cascade")


def run(args: dict, database_url: str | None):
    job = make_job("sql.execute", args, context=JobContext(database_url=database_url, node="test"))
    return call_handler(plugin.jobs["sql.execute"].handler, job)


def test_plugin_declares_sql_execute():
    assert plugin.name == "sql" and plugin.kinds == ["sql.execute"]


def test_delete_with_params_returns_rowcount(scratch, database_url):
    result = run(
        {"sql": "delete from plugin_sql_events where age_days > %(days)s", "params": {"days": 30}},
        database_url,
    )
    assert result == {"rowcount": 10, "status": "DELETE 10"}
    assert scratch.execute("select count(*) as n from plugin_sql_events").fetchone()["n"] == 30


def test_refresh_materialized_view(scratch, database_url):
    scratch.execute(
        "create materialized view plugin_sql_totals as select count(*) as n from plugin_sql_events"
    )
    scratch.execute("insert into plugin_sql_events values (100, 1)")
    result = run({"sql": "refresh materialized view plugin_sql_totals"}, database_url)
    assert result["status"] == "REFRESH MATERIALIZED VIEW"
    assert scratch.execute("select n from plugin_sql_totals").fetchone()["n"] == 41


def test_database_url_in_args_wins_over_the_context(scratch, database_url):
    result = run({"sql": "select 1 where %s", "params": [True], "database_url": database_url}, None)
    assert result["rowcount"] == 1


def test_a_percent_sign_without_params_needs_no_escaping(scratch, database_url):
    assert run({"sql": "select '100%' as p"}, database_url)["rowcount"] == 1


def test_sql_error_raises_with_sqlstate_and_message(database_url):
    with pytest.raises(SqlError) as info:
        run({"sql": "select * from plugin_sql_no_such_table"}, database_url)
    assert info.value.sqlstate == "42P01"
    assert str(info.value) == (
        'sql.execute: SQLSTATE 42P01: relation "plugin_sql_no_such_table" does not exist'
    )


def test_statement_timeout_raises(database_url):
    with pytest.raises(SqlError) as info:
        run({"sql": "select pg_sleep(30)", "timeout": 0.2}, database_url)
    assert info.value.sqlstate == "57014"
    assert "statement timed out after 0.2s" in str(info.value)


def test_unreachable_database_raises():
    with pytest.raises(SqlError, match="could not connect"):
        run({"sql": "select 1"}, "postgresql://nobody@127.0.0.1:1/none")


def test_a_cancel_request_cancels_the_statement_on_the_server(database_url):
    job = make_job(
        "sql.execute", {"sql": "select pg_sleep(60)"}, context=JobContext(database_url=database_url)
    )
    outcome: list[BaseException] = []

    def worker():
        try:
            call_handler(plugin.jobs["sql.execute"].handler, job)
        except BaseException as exc:  # the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    with psycopg.connect(database_url, autocommit=True) as conn:
        wait_until(
            lambda: conn.execute(
                "select 1 from pg_stat_activity where application_name = %s and state = 'active'",
                [f"river-supervisor-sql job {job.id}"],
            ).fetchone(),
            describe="statement running",
        )
    job.request_cancel()
    thread.join(15)
    assert isinstance(outcome[0], JobCancel)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "args.sql must be a non-empty string"),
        ({"sql": "select 1", "params": "x"}, "args.params must be a list or an object"),
        ({"sql": "select 1", "timeout": "never"}, "args.timeout"),
    ],
)
def test_invalid_args_cancel_the_job(args, message, database_url):
    with pytest.raises(JobCancel, match=message):
        run(args, database_url)


def test_no_database_at_all_cancels_the_job():
    with pytest.raises(JobCancel, match="no database"):
        run({"sql": "select 1"}, None)
