"""Both sides of a job on one database: River's Go client (``riverinterop work``) and our supervisor.

``Sides`` starts either on the test's fresh database and stops them at teardown; ``rows`` and
``shape`` read ``river_job`` and reduce a row to what does not depend on who worked it or when
(timestamps become "set or not", client ids a count), so a row our workers left can be compared,
key by key, with the row River's workers left for the same inserted job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from tests.harness.supervisors import SupervisorFactory, SupervisorProcess
from tests.harness.wait import wait_until
from tests.interop.river_go import GoWorker, RiverGo

FINAL = ("completed", "cancelled", "discarded")


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``river-supervisor ARGS`` against ``url`` (as DATABASE_URL)."""
    return subprocess.run(
        [sys.executable, "-m", "river_supervisor", *args],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def migrate(url: str) -> list[dict[str, Any]]:
    """``river-supervisor migrate``; what it applied."""
    result = cli(url, "migrate", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["applied"]


def enqueue(url: str, kind: str, args: dict[str, Any], *flags: str) -> int:
    """``river-supervisor enqueue``; the new job's id."""
    result = cli(url, "enqueue", kind, "--args", json.dumps(args), "--json", *flags)
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)["id"])


class Sides:
    def __init__(self, river: RiverGo, tmp_path: Path) -> None:
        self.river = river
        self.tmp_path = tmp_path
        self.ours = SupervisorFactory(river.database_url, tmp_path)
        self.go_workers: list[GoWorker] = []

    def go(self, *args: str, queues: str = "default,interop_b") -> GoWorker:
        log = self.tmp_path / f"go-worker-{len(self.go_workers)}.log"
        worker = self.river.worker(log, "--queues", queues, *args)
        self.go_workers.append(worker)
        return worker.start()

    def supervisor(
        self, name: str = "py-1", queues: tuple[str, ...] = ("default", "interop_b"), **settings: Any
    ) -> SupervisorProcess:
        settings.setdefault("plugins", {"enabled": ["interopjobs"]})
        settings.setdefault("queues", {queue: {"concurrency": 5} for queue in queues})
        proc = self.ours.start(name, **settings)
        proc.wait_for_event("supervisor.started", timeout=60)
        return proc

    def close(self) -> list[str]:
        for worker in self.go_workers:
            worker.kill()
        return self.ours.cleanup()


def sides_fixture(river: RiverGo, tmp_path: Path) -> Iterator[Sides]:
    migrate(river.database_url)
    sides = Sides(river, tmp_path)
    try:
        yield sides
    finally:
        survivors = sides.close()
        assert not survivors, "; ".join(survivors)


def rows(url: str, ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        found = conn.execute(
            "select *, state::text as state, unique_states::text as unique_states from river_job"
            " where %(ids)s::bigint[] is null or id = any(%(ids)s) order by id",
            {"ids": ids},
        ).fetchall()
    return {row["id"]: row for row in found}


def wait_final(url: str, ids: list[int], timeout: float = 90) -> dict[int, dict[str, Any]]:
    def done() -> dict[int, dict[str, Any]] | None:
        found = rows(url, ids)
        return found if all(found[i]["state"] in FINAL for i in ids) else None

    return wait_until(
        done,
        timeout,
        f"jobs {ids} to be finalized",
        interval=0.1,
        context=lambda: repr({i: (r["state"], r["attempt"]) for i, r in rows(url, ids).items()}),
    )


def shape(row: dict[str, Any]) -> dict[str, Any]:
    """What River's conventions fix about a finished row, whoever worked it."""
    metadata = dict(row["metadata"])
    for key in ("cancel_attempted_at",):  # a time: present or not
        if key in metadata:
            metadata[key] = "set"
    errors = [
        {
            "keys": sorted(entry),
            "attempt": entry["attempt"],
            "at": isinstance(entry["at"], str) and entry["at"] != "",
            "trace_is_text": isinstance(entry["trace"], str),
        }
        for entry in row["errors"] or []
    ]
    return {
        "kind": row["kind"],
        "args": row["args"],
        "queue": row["queue"],
        "priority": row["priority"],
        "tags": row["tags"],
        "state": row["state"],
        "attempt": row["attempt"],
        "max_attempts": row["max_attempts"],
        "attempted_at": row["attempted_at"] is not None,
        "finalized_at": row["finalized_at"] is not None,
        "finalized_after_attempt": (
            row["finalized_at"] >= row["attempted_at"]
            if row["finalized_at"] and row["attempted_at"]
            else None
        ),
        "scheduled_after_created": row["scheduled_at"] > row["created_at"],
        "attempted_by": len(row["attempted_by"] or []),
        "errors": errors,
        "metadata": metadata,
        "unique_key": row["unique_key"] is not None,
        "unique_states": row["unique_states"],
    }


def error_texts(row: dict[str, Any]) -> list[str]:
    return [entry["error"] for entry in row["errors"] or []]


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)
