"""Watch River's ``river_insert`` wake-ups as a worker would receive them."""

from __future__ import annotations

import json

import psycopg
from psycopg import sql

MARKER = "river_supervisor_test_marker"


class InsertWatch:
    """A LISTEN on ``<schema>.river_insert``, reading the queues of the wake-ups that arrive.

    Absence is shown without sleeping: ``queues_until_marker`` sends a marker wake-up of its own and
    returns what arrived before it; PostgreSQL delivers notifications in commit order.
    """

    def __init__(self, database_url: str) -> None:
        self.conn = psycopg.connect(database_url, autocommit=True)
        row = self.conn.execute("select current_schema() || '.river_insert'").fetchone()
        assert row is not None
        self.channel = str(row[0])
        self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))

    def queues_until_marker(self, sender: psycopg.Connection, timeout: float = 30.0) -> list[str]:
        """The queues of every wake-up committed before now, in order."""
        sender.execute("select pg_notify(%s, %s)", (self.channel, json.dumps({"queue": MARKER})))
        seen: list[str] = []
        for note in self.conn.notifies(timeout=timeout):
            queue = json.loads(note.payload)["queue"]
            if queue == MARKER:
                return seen
            seen.append(queue)
        raise AssertionError(f"the marker notification did not arrive within {timeout}s (saw {seen})")

    def close(self) -> None:
        self.conn.close()
