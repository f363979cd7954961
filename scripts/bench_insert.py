"""Measure bulk insert throughput of the queue core (COPY and unnest) on a scratch database.

    .venv/bin/python scripts/bench_insert.py [--database-url URL] [--jobs 200000] [--batch 10000]

Creates and migrates a scratch database next to the given one (dropped afterwards) unless
--in-place is given. ``insert_rate()`` is the function ``river-supervisor bench`` can reuse.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from river_supervisor import db, queue, schema
from river_supervisor.queue import JobSpec


def insert_rate(conn: psycopg.Connection[Any], jobs: int, batch: int, method: str = "copy") -> float:
    """Jobs per second inserting ``jobs`` no-op jobs in batches of ``batch`` (spec building included)."""
    inserted = 0
    started = time.perf_counter()
    while inserted < jobs:
        count = min(batch, jobs - inserted)
        specs = [JobSpec("bench.noop", {"n": inserted + i}) for i in range(count)]
        if method == "copy":
            queue.insert_many_copy(conn, specs)
        else:
            queue.insert_many(conn, specs)
        inserted += count
    return inserted / (time.perf_counter() - started)


def _scratch(url: str) -> tuple[str, str]:
    name = f"rs_bench_{os.getpid()}_{secrets.token_hex(3)}"
    parts = urlsplit(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    return name, urlunsplit(parts._replace(path=f"/{name}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", "postgresql://127.0.0.1/postgres")
    )
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--in-place", action="store_true", help="use the given database as is")
    options = parser.parse_args()
    name, url = (None, options.database_url) if options.in_place else _scratch(options.database_url)
    try:
        with db.connect(url) as conn:
            schema.migrate(conn)
            results = {
                "jobs": options.jobs,
                "batch": options.batch,
                "copy_jobs_per_second": round(insert_rate(conn, options.jobs, options.batch, "copy")),
                "insert_many_jobs_per_second": round(
                    insert_rate(conn, options.jobs // 4, min(options.batch, 5_000), "unnest")
                ),
            }
        print(json.dumps(results))
    finally:
        if name:
            with psycopg.connect(options.database_url, autocommit=True) as conn:
                conn.execute(f'drop database if exists "{name}" with (force)')


if __name__ == "__main__":
    main()
