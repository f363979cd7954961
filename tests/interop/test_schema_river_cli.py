"""Schema, both directions, with River's own migrator (River v0.51.2's rivermigrate)."""

from __future__ import annotations

import psycopg
import pytest
from river_supervisor import schema

from tests.harness import database
from tests.interop.conftest import catalog
from tests.interop.river_go import RiverGo
from tests.interop.sides import cli, migrate

pytestmark = pytest.mark.interop

ALL_MAIN = list(range(1, schema.latest("main") + 1))


def _river_tables(url: str) -> list[tuple[str, ...]]:
    """Every River relation, with its main-line migration rows (ours, river_supervisor_*, aside)."""
    with psycopg.connect(url) as conn:
        relations = conn.execute(
            "select relname, relkind::text from pg_class where relnamespace = current_schema()::regnamespace"
            " and relname like 'river%' and relname not like 'river_supervisor%' order by 1"
        ).fetchall()
        versions = conn.execute(
            "select version, created_at::text from river_migration where line = 'main' order by 1"
        ).fetchall()
    return [*relations, *versions]


def test_river_cli_first_then_ours_adds_only_our_line(river: RiverGo, fresh_url: str) -> None:
    applied_by_river = [v["version"] for v in river.run("migrate-up")["applied"]]
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute("insert into river_job (kind, args) values ('interop.echo', '{\"from\": \"river\"}')")
    river_catalog, river_tables = catalog(fresh_url), _river_tables(fresh_url)

    ours = migrate(fresh_url)

    assert applied_by_river == ALL_MAIN  # River v0.51's main line is exactly the one we know
    assert {a["line"] for a in ours} == {"supervisor"}
    assert catalog(fresh_url) == river_catalog
    assert _river_tables(fresh_url) == river_tables  # same relations, same version rows
    with psycopg.connect(fresh_url) as conn:
        assert conn.execute("select kind, state::text from river_job").fetchall() == [
            ("interop.echo", "available")
        ]
    assert river.run("validate")["ok"] is True
    assert river.run("migrate-up")["applied"] == []


def test_ours_first_then_river_cli_finds_nothing_and_catalogs_match(river: RiverGo, fresh_url: str) -> None:
    ours = migrate(fresh_url)
    river_made = database.create_database()
    try:
        river_made_url = database.with_database(database.admin_url(), river_made)
        RiverGo(river.binary, river_made_url).run("migrate-up")
        expected = catalog(river_made_url)
    finally:
        database.drop_database(river_made)

    assert [a["version"] for a in ours if a["line"] == "main"] == ALL_MAIN
    assert river.run("migrate-up")["applied"] == []
    assert river.run("validate")["ok"] is True
    assert catalog(fresh_url) == expected


def test_database_a_newer_river_migrated_is_refused_and_untouched(river: RiverGo, fresh_url: str) -> None:
    """A database River's CLI moved past our version (9, as a future River would) is left as it is."""
    river.run("migrate-up")
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute(
            "insert into river_migration (line, version) values ('main', %s)", (schema.latest("main") + 1,)
        )
    before = catalog(fresh_url), _river_tables(fresh_url)

    result = cli(fresh_url, "migrate")

    assert result.returncode == 2
    assert "upgrade river-supervisor (nothing was changed)" in result.stderr
    assert "Traceback" not in result.stderr
    assert (catalog(fresh_url), _river_tables(fresh_url)) == before
    with psycopg.connect(fresh_url) as conn:
        assert conn.execute("select count(*) from river_migration where line = 'supervisor'").fetchone() == (
            0,
        )
