"""Support for the leadership and fencing tests (no tests here): electors in one process, driven by step()."""

from __future__ import annotations

import math
import select
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from river_supervisor.config import LeadershipConfig
from river_supervisor.leadership import Elector, LeadershipEvent, NodeIdentity

from tests.harness.wait import wait_until

MakeElector = Callable[..., Elector]


TABLES = ("river_supervisor_leader", "river_supervisor_leader_event", "river_supervisor_node")


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit dict-row connection with the leadership tables emptied (overrides conftest's)."""
    from river_supervisor import db as rdb

    conn = rdb.connect(database_url, application_name="river-supervisor-tests")
    conn.execute("truncate " + ", ".join(TABLES))
    yield conn
    conn.close()


@pytest.fixture
def make_elector(database_url: str, db: psycopg.Connection) -> Iterator[MakeElector]:
    """Build and start electors; all are stopped at teardown."""
    made: list[Elector] = []

    def make(node: str, *, ttl: float = 15.0, cluster: str = "default", **kwargs: Any) -> Elector:
        kwargs.setdefault("rand", lambda: 0.0)  # no jitter: a test decides when each step runs
        elector = Elector(
            LeadershipConfig(ttl=ttl),
            cluster=cluster,
            identity=NodeIdentity.current(node),
            conninfo=database_url,
            **kwargs,
        )
        elector.start()
        made.append(elector)
        return elector

    yield make
    for elector in made:
        elector.stop()


def kinds(events: list[LeadershipEvent]) -> list[str]:
    return [ev.kind for ev in events]


def step_due(elector: Elector) -> list[LeadershipEvent]:
    """Step at the elector's own next deadline (as the parent loop would after waiting)."""
    deadline = elector.next_deadline()
    return elector.step(now=None if math.isinf(deadline) else max(deadline, 0.0))


def wait_readable(elector: Elector, timeout: float = 5.0) -> None:
    """Block on the LISTEN socket until a notification arrives (what the parent loop's wait does)."""
    fd = elector.fileno()
    assert fd is not None
    readable, _, _ = select.select([fd], [], [], timeout)
    assert readable, "no notification arrived on the LISTEN socket"


def lease_row(db: psycopg.Connection, cluster: str = "default") -> dict[str, Any] | None:
    return db.execute("select * from river_supervisor_leader where cluster = %s", (cluster,)).fetchone()


def kill_lease_backend(db: psycopg.Connection, cluster: str = "default") -> int:
    """Terminate the lease holder's connection, as a crash of its process would, and wait for it."""
    row = lease_row(db, cluster)
    assert row is not None
    pid = row["backend_pid"]
    db.execute("select pg_terminate_backend(%s)", (pid,))
    wait_until(
        lambda: db.execute("select 1 from pg_stat_activity where pid = %s", (pid,)).fetchone() is None,
        describe=f"backend {pid} to exit",
    )
    return pid
