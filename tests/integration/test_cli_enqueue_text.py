"""``enqueue --args`` with text PostgreSQL cannot store: one line naming where, exit 2, no row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            b'{"note": "a\\u0000b"}',
            "--args: note: holds a NUL character (\\u0000), which PostgreSQL cannot store",
        ),
        (
            b'{"items": ["ok", "\\ud800"]}',
            "--args: items[1]: holds a lone surrogate (\\ud800), which is not text",
        ),
        (b'{"raw": "\xff"}', "--args: raw: holds a lone surrogate (\\udcff), which is not text"),  # not UTF-8
    ],
    ids=["nul", "lone-surrogate", "bytes-not-utf8"],
)
def test_unstorable_args_are_a_one_line_usage_error(
    db: psycopg.Connection, database_url: str, tmp_path: Path, args: bytes, expected: str
) -> None:
    environ = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    environ["DATABASE_URL"] = database_url
    done = subprocess.run(
        [sys.executable.encode(), b"-m", b"river_supervisor", b"enqueue", b"test.noop", b"--args", args],
        capture_output=True,
        env=environ,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.decode().strip().splitlines() == [f"river-supervisor: error: {expected}"]
    assert db.execute("select count(*) as n from river_job").fetchone()["n"] == 0
