"""Jobs as a test inserts and inspects them: plain SQL, as River documents it for other languages."""

from __future__ import annotations

from typing import Any

import psycopg


def insert_jobs(db: psycopg.Connection, kind: str, count: int, args: str = "{}", **columns: Any) -> list[int]:
    """Insert jobs the way River documents for plain SQL: rows, then a pg_notify wake-up."""
    max_attempts = columns.get("max_attempts", 25)
    rows = db.execute(
        "insert into river_job (kind, args, max_attempts) "
        "select %s, %s::jsonb, %s from generate_series(1, %s) returning id",
        (kind, args, max_attempts, count),
    ).fetchall()
    db.execute("select pg_notify(current_schema() || '.river_insert', '{\"queue\":\"default\"}')")
    return [row["id"] for row in rows]


def states(db: psycopg.Connection, ids: list[int] | None = None) -> dict[str, int]:
    """``{state: jobs}`` of the given jobs (of every job without ``ids``)."""
    if ids is None:
        rows = db.execute("select state::text as state, count(*) as n from river_job group by 1").fetchall()
    else:
        rows = db.execute(
            "select state::text as state, count(*) as n from river_job where id = any(%s) group by 1", (ids,)
        ).fetchall()
    return {row["state"]: row["n"] for row in rows}


def job(db: psycopg.Connection, job_id: int) -> dict[str, Any]:
    return db.execute("select * from river_job where id = %s", (job_id,)).fetchone()
