"""The named-query loader (``river_supervisor.sql``) and the queries it loads: STYLE.md "SQL".

Headers parse, duplicates are rejected (within a file and across files), names follow
``<table>_<verb>[_many]``, and every query is used by the package (a dead query fails here).
``tests/integration/test_sql_queries.py`` PREPAREs each one against the migrated schema.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from river_supervisor import sql
from river_supervisor.sql import parse, queries

PACKAGE = Path(sql.__file__).resolve().parents[1]
SQL_DIR = PACKAGE / "sql"
NAME = re.compile(r"^[a-z]+(_[a-z0-9]+)+$")  # <table>_<verb>[_many], leniently
# Every prefix is a table family of STYLE's file layout (job_running_ids_by_worker lives in supervision.sql).
# session: pg_stat_activity (a dead worker's sessions are ended before its jobs are looked for)
TABLES = {"bench", "drift", "job", "leader", "migration", "node", "periodic", "queue", "session"}


def test_parse_splits_on_headers_and_ignores_the_preamble() -> None:
    text = (
        "-- what this file is about\n"
        "\n"
        "-- name: thing_get\n"
        "-- Read-only.\n"
        "SELECT 1;\n"
        "\n"
        "--name:   thing_put_many  \n"
        "INSERT INTO t SELECT unnest(%(ids)s::bigint[]);\n"
    )
    assert parse(text) == {
        "thing_get": "-- Read-only.\nSELECT 1;",
        "thing_put_many": "INSERT INTO t SELECT unnest(%(ids)s::bigint[]);",
    }


def test_parse_of_a_file_without_headers_is_empty() -> None:
    assert parse("-- only a comment\nSELECT 1;\n") == {}


def test_parse_rejects_a_duplicate_name_in_one_file() -> None:
    text = "-- name: thing_get\nSELECT 1;\n-- name: thing_get\nSELECT 2;\n"
    with pytest.raises(ValueError, match=r"things\.sql: query thing_get defined twice"):
        parse(text, "things.sql")


def test_loading_rejects_a_duplicate_name_across_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.sql").write_text("-- name: thing_get\nSELECT 1;\n")
    (tmp_path / "b.sql").write_text("-- name: thing_get\nSELECT 2;\n")
    (tmp_path / "notes.txt").write_text("-- name: thing_get\nnot sql\n")
    monkeypatch.setattr(sql.resources, "files", lambda _package: tmp_path)
    with pytest.raises(ValueError, match=r"b\.sql: query thing_get defined twice"):
        sql._load_queries()


def test_loading_reads_only_sql_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.sql").write_text("-- name: thing_get\nSELECT 1;\n")
    (tmp_path / "notes.txt").write_text("-- name: thing_put\nnot sql\n")
    monkeypatch.setattr(sql.resources, "files", lambda _package: tmp_path)
    assert dict(sql._load_queries()) == {"thing_get": "SELECT 1;"}


def test_queries_are_read_only() -> None:
    with pytest.raises(TypeError):
        queries["job_get"] = "SELECT 1"  # type: ignore[index]


def test_every_header_line_is_a_header() -> None:
    """A misspelt header (``-- name: Job-get``) would silently glue its statement onto the one before."""
    loose = re.compile(r"^--\s*name\b", re.IGNORECASE | re.MULTILINE)
    for path in sorted(SQL_DIR.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        assert len(loose.findall(text)) == len(parse(text, path.name)), path.name


@pytest.mark.parametrize("name", sorted(queries))
def test_query_name_and_shape(name: str) -> None:
    assert NAME.match(name), f"{name}: not <table>_<verb>[_many]"
    assert name.split("_")[0] in TABLES, f"{name}: unknown table family (add it to TABLES if it is one)"
    body = "\n".join(line for line in queries[name].splitlines() if not line.lstrip().startswith("--"))
    assert body.strip(), f"{name}: no statement"
    stray = re.sub(r"%\(\w+\)s|%%", "", body)
    assert "%" not in stray, f"{name}: parameters are %(name)s"


def _string_constants() -> set[str]:
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


def test_every_query_is_used() -> None:
    used = _string_constants()
    dead = sorted(name for name in queries if name not in used)
    assert not dead, f"queries never named in river_supervisor/**/*.py (delete them or use them): {dead}"


@pytest.mark.parametrize("name", sorted(queries))
def test_every_query_says_what_it_does(name: str) -> None:
    """STYLE: each statement opens with a comment on what it does (and which locks it takes)."""
    first = queries[name].lstrip().splitlines()[0]
    assert first.startswith("--"), f"{name}: starts with SQL, not with a comment saying what it does"
