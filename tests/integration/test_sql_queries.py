"""Every named query is valid against the migrated schema: STYLE.md "SQL" ("tests ... PREPARE each").

``%(name)s`` parameters become ``$1..$n`` in order of first appearance, as psycopg does, and the
statement is PREPAREd without parameter types: the server must infer every type from the SQL
(a parameter it cannot type needs a cast in the ``.sql`` file). PREPARE plans without executing.

PREPARE takes only SELECT/INSERT/UPDATE/DELETE/MERGE/VALUES (and WITH). The few utility statements
(COPY, the bench's schema DDL) are named in ``UTILITY`` and run inside a transaction that is rolled
back instead. Migrations are exercised by the schema tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql
from river_supervisor.sql import queries

PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
PREPARABLE = {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "WITH"}


def positional(statement: str) -> tuple[str, list[str]]:
    """``%(name)s`` -> ``$n``, one number per distinct name in order of first appearance; ``%%`` -> ``%``."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "%"
        if match.group(1) not in order:
            order.append(match.group(1))
        return f"${order.index(match.group(1)) + 1}"

    return PLACEHOLDER.sub(number, statement), order


def first_keyword(statement: str) -> str:
    code = "\n".join(line for line in statement.splitlines() if not line.lstrip().startswith("--"))
    return code.split(maxsplit=1)[0].upper()


def test_positional_numbers_names_by_first_appearance() -> None:
    text, order = positional("-- %(b)s\nSELECT %(a)s, %(b)s, %(a)s, '100%%'")
    assert text == "-- $1\nSELECT $2, $1, $2, '100%'"
    assert order == ["b", "a"]


def _copy_nothing(conn: psycopg.Connection[Any], statement: str) -> None:
    with conn.cursor() as cur, cur.copy(statement):
        pass  # no rows: the column list is checked against river_job


def _bench_schema_ddl(conn: psycopg.Connection[Any], statement: str) -> None:
    scratch = sql.Identifier("river_supervisor_sql_check")
    conn.execute(sql.SQL(statement).format(schema=scratch))  # type: ignore[arg-type]


def _listen(conn: psycopg.Connection[Any], statement: str) -> None:
    conn.execute(sql.SQL(statement).format(channel=sql.Identifier("public.river_sql_check")))  # type: ignore[arg-type]


# Utility statements PREPARE does not accept, with how each is checked instead (always rolled back).
UTILITY: dict[str, Callable[[psycopg.Connection[Any], str], None]] = {
    "session_listen": _listen,  # {channel} is composed with psycopg.sql.Identifier
    "job_insert_copy": _copy_nothing,
    "bench_schema_create": _bench_schema_ddl,  # {schema} is composed with psycopg.sql.Identifier
    "bench_schema_drop": _bench_schema_ddl,
}


class _Rollback(Exception):
    pass


@pytest.mark.parametrize("name", sorted(queries))
def test_query_prepares(db: psycopg.Connection[Any], name: str) -> None:
    statement = queries[name]
    if name in UTILITY:
        with pytest.raises(_Rollback), db.transaction():
            UTILITY[name](db, statement)
            raise _Rollback
        return
    assert first_keyword(statement) in PREPARABLE, f"{name}: a utility statement: name it in UTILITY"
    text, params = positional(statement)
    handle = sql.Identifier(f"check_{name}")
    db.execute(sql.SQL("PREPARE {} AS ").format(handle) + sql.SQL(text))  # type: ignore[arg-type]
    try:
        types = db.execute(
            "SELECT parameter_types::text[] AS types FROM pg_prepared_statements WHERE name = %s",
            [f"check_{name}"],
        ).fetchone()
        assert types is not None
        assert len(types["types"]) == len(params), f"{name}: parameters {params} typed as {types['types']}"
    finally:
        db.execute(sql.SQL("DEALLOCATE {}").format(handle))


def test_utility_names_exist() -> None:
    assert set(UTILITY) <= set(queries)
    for name in UTILITY:
        assert first_keyword(queries[name]) not in PREPARABLE, f"{name} can be PREPAREd: drop it from UTILITY"
