"""Leadership: a fenced lease per cluster, held by one supervisor parent.

INTERFACE (fixed; periodic and maintenance rely on it): ``Term`` and ``fenced_transaction``.
The elector state machine is added below by the leadership work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from . import db
from .errors import NotLeader

FENCE_LOCK_TIMEOUT_MS = 2000
FENCE_IDLE_TIMEOUT_MS = 5000


@dataclass(frozen=True, slots=True)
class Term:
    """One tenure: who led which cluster, under which term number, since when."""

    cluster: str
    leader_id: str  # node:pid:boot_id, unique per process
    node: str
    term: int
    elected_at: datetime


@contextmanager
def fenced_transaction(
    conn: psycopg.Connection[Any], term: Term, service: str
) -> Iterator[psycopg.Connection[Any]]:
    """A transaction that holds ``term``'s lease row FOR SHARE for its whole length.

    A takeover must update or delete that row, so it waits for this transaction; if the term is
    already gone (expired, superseded, resigned) the transaction is rolled back and ``NotLeader``
    raised before anything is written.
    """
    with conn.transaction():
        db.execute(
            conn,
            "leader_bound_transaction",
            {
                "lock_timeout": f"{FENCE_LOCK_TIMEOUT_MS}ms",
                "idle_timeout": f"{FENCE_IDLE_TIMEOUT_MS}ms",
            },
        )
        held = db.fetch_one(
            conn,
            "leader_hold_term",
            {"cluster": term.cluster, "leader_id": term.leader_id, "term": term.term},
        )
        if held is None:
            raise NotLeader(service, term.term)
        yield conn
