"""Fencing: the transaction every leader-only write runs in, valid only while its term lasts.

Owns ``fenced_transaction`` and its bounds. It may import ``db``, ``errors`` and ``leader_terms``
(the ``Term`` it holds); the elector is not needed to use it (periodic, maintenance and drift's
service do, with the term the elector gave them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from . import db
from .errors import NotLeader
from .leader_terms import Term

FENCE_LOCK_TIMEOUT_MS = 2000
FENCE_IDLE_TIMEOUT_MS = 5000


@contextmanager
def fenced_transaction(
    conn: psycopg.Connection[Any], term: Term, service: str
) -> Iterator[psycopg.Connection[Any]]:
    """A transaction that holds ``term``'s lease row FOR SHARE for its whole length.

    A takeover must update or delete that row, so it waits for this transaction; if the term is
    already gone (expired, superseded, resigned) the transaction is rolled back and ``NotLeader``
    raised before anything is written. ``lock_timeout`` and ``idle_in_transaction_session_timeout``
    bound the transaction, so a leader paused inside it cannot block a takeover for long.
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
