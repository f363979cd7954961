"""Migrations: River's main line (versions 1-8, River's exact schema as of River v0.51) and our own line.

Each version runs in its own transaction and is recorded in ``river_migration`` in that same
transaction, as River does (an enum value added in one version must commit before later ones use
it). A session advisory lock makes concurrent migrators on several hosts take turns; each re-reads
what is applied once it holds the lock, so the second does nothing. A database River's own CLI
migrated is read the same way, and its applied versions are left alone.

A database carrying a version newer than this package knows (River's Go services upgraded first, or
a newer river-supervisor host migrated it) is refused with ``SchemaTooNew`` before anything is
written: its tables may have changed in ways our statements do not expect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg

from . import db
from .errors import SchemaTooNew
from .sql import Migration, migrations

log = logging.getLogger(__name__)

LINES = ("main", "supervisor")


@dataclass(frozen=True, slots=True)
class Applied:
    line: str
    version: int
    name: str


def applied_versions(conn: psycopg.Connection[Any], line: str) -> set[int]:
    columns = {row["column_name"] for row in db.fetch_all(conn, "migration_table_columns")}
    if not columns:
        return set()
    if "line" not in columns:  # River before version 5: only the main line exists
        rows = db.fetch_all(conn, "migration_versions_unlined") if line == "main" else []
    else:
        rows = db.fetch_all(conn, "migration_versions_by_line", {"line": line})
    return {row["version"] for row in rows}


def _record(conn: psycopg.Connection[Any], migration: Migration) -> None:
    columns = {row["column_name"] for row in db.fetch_all(conn, "migration_table_columns")}
    if "line" in columns:
        db.execute(conn, "migration_record_by_line", {"line": migration.line, "version": migration.version})
    else:
        db.execute(conn, "migration_record_unlined", {"version": migration.version})


def latest(line: str) -> int:
    """The newest version of ``line`` this package has (main: 8, River v0.48 to v0.51); 0 if none."""
    return max((m.version for m in migrations(line)), default=0)


def newer_than_known(conn: psycopg.Connection[Any], lines: tuple[str, ...] = LINES) -> list[str]:
    """Lines at a version this package does not have, as ``"main 9 (we know up to 8)"``; [] if none."""
    found: list[str] = []
    for line in lines:
        known = latest(line)
        unknown = sorted(v for v in applied_versions(conn, line) if v > known)
        if unknown:
            found.append(f"{line} {unknown[-1]} (this river-supervisor knows up to {known})")
    return found


def refuse_newer(conn: psycopg.Connection[Any], lines: tuple[str, ...] = LINES) -> None:
    """Raise ``SchemaTooNew`` when the database is ahead of this package; change nothing."""
    if newer := newer_than_known(conn, lines):
        raise SchemaTooNew(
            "river_migration: the database is at "
            + ", ".join(newer)
            + ": upgrade river-supervisor (nothing was changed)"
        )


def pending(conn: psycopg.Connection[Any], lines: tuple[str, ...] = LINES) -> list[Migration]:
    todo: list[Migration] = []
    for line in lines:
        done = applied_versions(conn, line)
        todo.extend(m for m in migrations(line) if m.version not in done)
    return todo


def migrate(
    conn: psycopg.Connection[Any], lines: tuple[str, ...] = LINES, *, log_steps: bool = True
) -> list[Applied]:
    """Apply every pending migration of ``lines``; return what was applied (empty if none).

    ``conn`` must be in autocommit mode; each migration opens its own transaction. ``log_steps``:
    log each step at INFO (``run`` does; the ``migrate`` command prints them instead, once).
    """
    if "supervisor" in lines and "main" not in lines:
        lines = ("main", *lines)  # our line needs River's migration table
    applied: list[Applied] = []
    db.execute(conn, "migration_lock")
    try:
        refuse_newer(conn)  # under the lock: a newer migrator may just have finished
        for migration in pending(conn, lines):
            with conn.transaction():
                with conn.cursor() as cur:
                    cur.execute(migration.up.encode())
                _record(conn, migration)
            log.log(
                logging.INFO if log_steps else logging.DEBUG,
                "applied migration %s %03d %s",
                migration.line,
                migration.version,
                migration.name,
                extra={"event": "migration.applied", "line": migration.line, "version": migration.version},
            )
            applied.append(Applied(migration.line, migration.version, migration.name))
    finally:
        db.execute(conn, "migration_unlock")
    return applied


def is_current(conn: psycopg.Connection[Any]) -> bool:
    """True when every known migration of both lines is applied; ``SchemaTooNew`` if it is ahead."""
    refuse_newer(conn)
    return not pending(conn)
