"""The elector's connections and the lease's statements: the mechanism, not the decisions.

Owns ``LeaseConnection``, the base of ``leadership.Elector``: the lease connection, opened with the
session's settings (schema, statement and lock timeouts), which names the leadership channel; the
LISTEN connection on that channel; the statements run on the lease (bid, renew, resign, read the
holder; ``request_resign`` from any connection); and the term held with its trust. Each call is
bounded client-side by the statement timeout and, for a leader, by the trust left
(``db.BoundedConnection``), so an unconfirmed leader steps down on time; a lost lease connection is
reopened with backoff. When to bid, renew or resign, and what that means, is the elector's. It may
import ``db``, ``notifier``, ``leader_terms`` and ``leader_events`` (its log lines).
"""

from __future__ import annotations

import math
import select
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg

from . import db
from .leader_events import log_attempt_failed
from .leader_terms import NodeIdentity, Term, Timings
from .notifier import KEEPALIVE_OPTIONS, Listener

CHANNEL_TOPIC = "river_supervisor_leadership"
CALL_SLACK = 0.5  # the client gives up this long after the server's statement_timeout would have
MIN_CONNECT_TIMEOUT = 2  # libpq's floor: a smaller connect_timeout is taken as 2 s


def request_resign(conn: psycopg.Connection[Any], cluster: str) -> datetime:
    """Ask ``cluster``'s leader to step down (River's ``request_resign`` on our leadership channel,
    naming the cluster); returns the database time the request was sent."""
    row = db.fetch_one(conn, "leader_request_resign", {"cluster": cluster})
    assert row is not None
    sent_at: datetime = row["sent_at"]
    return sent_at


class LeaseConnection:
    """The lease connection of one process in one cluster, and the trust its calls must not outlive."""

    def __init__(
        self,
        *,
        cluster: str,
        identity: NodeIdentity,
        timings: Timings,
        conninfo: str,
        schema: str | None,
        clock: Callable[[], float],
        rand: Callable[[], float],
    ) -> None:
        self.cluster = cluster
        self.identity = identity
        self.timings = timings
        self._conninfo = conninfo
        self._schema = schema
        self._clock = clock
        self._rand = rand
        self.channel: str | None = None
        self._lease: psycopg.Connection[Any] | None = None
        self._listener: Listener | None = None
        self._lease_attempt = 0
        self._reconnect_at = math.inf
        # The term held and until when it is trusted: the elector keeps them, the connection bounds
        # its calls and its reconnects by them.
        self._term: Term | None = None
        self._trusted_until = -math.inf

    @property
    def term(self) -> Term | None:
        """The term this process may act on now: ``None`` as a follower or once trust lapsed."""
        if self._term is not None and self._clock() < self._trusted_until:
            return self._term
        return None

    @property
    def trusted_until(self) -> float:
        return self._trusted_until if self._term is not None else -math.inf

    def fileno(self) -> int | None:
        """The LISTEN socket for the loop's wait set; ``None`` while it reconnects."""
        return self._listener.fileno() if self._listener is not None else None

    def _listen(self) -> None:
        """LISTEN on the channel the lease connection named."""
        assert self.channel is not None
        self._listener = Listener(
            self._conninfo,
            [self.channel],
            application_name=f"river-supervisor listen {self.identity.leader_id}"[:63],
            clock=self._clock,
            backoff=lambda attempt: self.timings.retry_delay(attempt, self._rand),
        )
        self._listener.connect()

    # -- the lease's statements (the caller handles ``db.TRANSIENT``) ------------------------

    def _campaign_row(self, gone_backend: int | None) -> dict[str, Any] | None:
        """Bid: the won term, or the holder (``won`` false) or ``None``; writes nothing unless it wins."""
        assert self._lease is not None
        ident = self.identity
        params = {"cluster": self.cluster, "leader_id": ident.leader_id, "node": ident.node, "pid": ident.pid}
        return db.fetch_one(
            self._lease, "leader_campaign", {**params, "ttl": self.timings.ttl, "gone_backend": gone_backend}
        )

    def _renew_row(self, held: Term) -> dict[str, Any] | None:
        """Renew ``held``'s lease; ``None`` if its row is gone or no longer ours."""
        assert self._lease is not None
        params = {"cluster": held.cluster, "leader_id": held.leader_id, "term": held.term}
        return db.fetch_one(self._lease, "leader_renew", {**params, "ttl": self.timings.ttl})

    def _resign_row(self, held: Term) -> dict[str, Any] | None:
        """Delete ``held``'s row, record it and notify (reopening the lease if needed); ``None`` if gone."""
        if self._lease is None:
            self._open_lease()
        assert self._lease is not None
        self._bound_calls(self._clock(), by_trust=False)
        params = {"cluster": held.cluster, "leader_id": held.leader_id, "term": held.term}
        return db.fetch_one(self._lease, "leader_resign", params)

    def _holder_row(self) -> dict[str, Any] | None:
        """Who holds the lease now, if the lease connection can tell (``None`` otherwise)."""
        if self._lease is None or self._lease.closed:
            return None
        try:
            self._bound_calls(self._clock(), by_trust=False)
            return db.fetch_one(self._lease, "leader_get", {"cluster": self.cluster})
        except db.TRANSIENT:
            return None

    # -- the lease connection ------------------------------------------------------------------

    def _lease_readable(self) -> bool:
        """An idle lease connection turns readable when the server ends it: then use it to find out."""
        if self._lease is None or self._lease.closed:
            return False
        try:
            readable, _, _ = select.select([self._lease.fileno()], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _bound_calls(self, now: float, *, by_trust: bool = True) -> None:
        """No call of a leader outlives its trust (it must step down on time); none outlives the bound."""
        assert self._lease is not None
        bound = self.timings.statement_timeout + CALL_SLACK
        if by_trust and self._term is not None:
            bound = min(bound, max(0.05, self._trusted_until - now))
        self._lease.call_timeout = bound  # type: ignore[attr-defined]

    def _open_lease(self) -> None:
        t = self.timings
        connect_timeout = t.statement_timeout
        if self._term is not None:  # a leader reconnecting: the connect must not outlive its trust
            connect_timeout = min(connect_timeout, self._trusted_until - self._clock())
        conn = db.connect(
            self._conninfo,
            application_name=f"river-supervisor lease {self.identity.leader_id}"[:63],
            connect_timeout=max(MIN_CONNECT_TIMEOUT, math.ceil(connect_timeout)),
            call_timeout=t.statement_timeout + CALL_SLACK,
            **KEEPALIVE_OPTIONS,
        )
        try:
            db.execute(
                conn,
                "leader_session_setup",
                {
                    "schema": self._schema,
                    "statement_timeout": f"{round(t.statement_timeout * 1000)}ms",
                    "lock_timeout": f"{round(t.lock_timeout * 1000)}ms",
                },
            )
            info = db.fetch_one(conn, "leader_session_info")
        except BaseException:
            conn.close()
            raise
        assert info is not None
        self.channel = f"{info['schema']}.{CHANNEL_TOPIC}"
        self._lease, self._lease_attempt, self._reconnect_at = conn, 0, math.inf

    def _reconnect(self, now: float) -> bool:
        try:
            self._open_lease()
        except db.TRANSIENT as exc:
            self._lease_attempt += 1
            delay = self.timings.retry_delay(self._lease_attempt, self._rand)
            self._reconnect_at = now + delay
            self._warn(
                "leadership.reconnect_failed",
                "lease connection failed (attempt %d): %s",
                self._lease_attempt,
                exc,
            )
            return False
        return True

    def _drop_lease(self, reconnect: bool = True) -> None:
        conn, self._lease = self._lease, None
        self._reconnect_at = self._clock() if reconnect else math.inf
        if conn is not None:
            conn.close()

    def _warn(self, event: str, template: str, attempt: int, exc: BaseException) -> None:
        log_attempt_failed(event, template, self.cluster, self.identity.node, attempt, exc)
