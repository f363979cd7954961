"""Leadership: a fenced lease per cluster, held by one supervisor parent.

INTERFACE (fixed; periodic and maintenance rely on it): ``Term`` and ``fenced_transaction``.

The model (River's ``internal/leadership/doc.go``, plus fencing):

- The database decides. One row per cluster in ``river_supervisor_leader``; its expiry is
  ``now() + ttl`` on the database clock; each election draws a new term from
  ``river_supervisor_term_seq``, so terms only grow, across crashes and an emptied table.
- A follower bids every ``poll_interval`` (about 0.75 s at ttl 15 s) with one statement that
  writes nothing unless it wins: it wins a vacant lease, an expired one, or one whose holder's
  lease connection has vanished from ``pg_stat_activity`` (a crashed leader, found long before
  its lease runs out; a paused leader keeps its connection and is replaced only on expiry). A
  ``resigned`` notification makes it bid at once (0-5 ms jitter).
- Any process may ask the leader to step down (River's ``request_resign``, ``request_resign()``
  here, ``river-supervisor leader resign``): the leader resigns as on shutdown and holds off
  bidding for ``REQUESTED_RESIGN_HOLD_OFF`` poll intervals, so a follower takes over at once.
- The leader renews every ``ttl / 3``. Local time only bounds trust: a renewal (or the winning
  bid) sent at monotonic time ``t`` makes the term trusted until ``t + ttl - margin``. A renewal
  that finds no row ends the term (``superseded`` if someone else holds it, else ``lost``); one
  that fails is retried with a short backoff while trust lasts, then ``expired``. A read-only
  database ends the term at once (``lost``): a leader that cannot write must not act as one.
- A lost lease connection (a killed session, a restart) does not end a term whose trust lasts: the
  leader reconnects at once and renews on the new connection, which records its new backend. A
  follower takes over a holder whose lease session has vanished only if that same session is still
  the holder's ``session_grace`` (1 s) after the follower first saw it gone: long enough for a live
  leader to reconnect, short enough for a crash. The first such reconnect of a term is reported
  (``reconnected``), later ones only logged.
- A successor that takes over from a holder that did not resign reports that holder's loss
  (``lost``, about the previous holder: why, and how long nobody led).
- Trust is advisory. What makes a stale leader harmless is ``fenced_transaction``: every
  leader-only write holds this term's row ``FOR SHARE``, so it fails once the term is over and a
  takeover waits for it while it runs.

``Elector`` is a non-blocking state machine for a single-threaded loop: it never sleeps and owns
no thread. The loop waits on ``fileno()`` until ``next_deadline()``, then calls ``step()``, which
returns ``LeadershipEvent`` values for the caller to report (the elector never calls Sentry).
No statement outlives the trust window (``leader_lease``), so an unconfirmed leader steps down on time.

This module is the elector's state machine. The rest, each importable from here: the values
(``leader_terms``), the wording of events and log lines (``leader_events``), the fence
(``leader_fence``), the connections and the lease's statements (``leader_lease``, the elector's base).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from typing import Any

from . import db
from .config import LeadershipConfig
from .leader_events import (
    EventKind,
    LeadershipEvent,
    log_continued,
    log_denied,
    log_election_failed,
    log_event,
    log_lease_lost,
    log_renewal_failed,
    log_renewed,
    log_resign_requested,
    peer_lost,
    term_event,
)
from .leader_fence import fenced_transaction
from .leader_lease import CALL_SLACK, LeaseConnection, request_resign
from .leader_terms import NodeIdentity, Term, Timings, VanishedHolder

__all__ = [
    "CALL_SLACK",
    "REQUESTED_RESIGN_HOLD_OFF",
    "Elector",
    "EventKind",
    "LeadershipEvent",
    "NodeIdentity",
    "Term",
    "Timings",
    "fenced_transaction",
    "request_resign",
]

RESIGN_ATTEMPTS = 3
RESIGNED_JITTER = 0.005  # spread of the bids after a "resigned" notification, s (target: handoff < 25 ms)
POLL_JITTER = 0.10  # followers bid every poll_interval * (1 + [0, 10 %))
# After a requested resign the old leader waits this many poll intervals before bidding again: the
# followers, woken by the "resigned" notification, bid within ms; should none be able to, the old
# leader leads again instead of leaving the cluster leaderless.
REQUESTED_RESIGN_HOLD_OFF = 3


class Elector(LeaseConnection):
    """Campaign for, hold and give up one cluster's lease; driven by ``step()`` from one loop."""

    def __init__(
        self,
        cfg: LeadershipConfig,
        *,
        cluster: str,
        identity: NodeIdentity,
        conninfo: str,
        schema: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        observer: Callable[[LeadershipEvent], None] | None = None,
    ) -> None:
        super().__init__(
            cluster=cluster,
            identity=identity,
            timings=Timings.from_ttl(cfg.ttl),
            conninfo=conninfo,
            schema=schema,
            clock=clock,
            rand=rand,
        )
        self._observer = observer
        self._campaigning = False
        self._next_renew = math.inf
        self._renew_attempt = 0
        self._next_bid = math.inf
        self._bid_attempt = 0
        self._resign_requested = False
        self._term_reconnects = 0  # lease reconnects within the current term (the first is reported)
        self._confirming = False  # a renewal on a new lease connection is due
        self._gone = VanishedHolder(self.timings.session_grace)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the lease connection and LISTEN; the first bid runs on the next ``step()``.

        Raises ``DatabaseUnavailable`` if the database cannot be reached at all; later losses
        are recovered with backoff.
        """
        self._open_lease()
        self._listen()  # LISTEN before the first read of the lease
        self._campaigning = True
        self._next_bid = self._clock()

    def stop(self) -> None:
        """Close both connections (call ``resign()`` first to hand over at once)."""
        self._campaigning = False
        self._term = None
        self._trusted_until = -math.inf
        if self._listener is not None:
            self._listener.close()
        self._drop_lease(reconnect=False)

    # -- what the loop reads -----------------------------------------------------------------

    def next_deadline(self) -> float:
        """Monotonic time at which ``step()`` next wants to run (``inf``: only on a notification)."""
        deadlines = [self._listener.next_deadline() if self._listener is not None else math.inf]
        if self._lease is None:
            deadlines.append(self._reconnect_at)
            if self._term is not None:
                deadlines.append(self._trusted_until)
        elif self._term is not None:
            deadlines += [self._next_renew, self._trusted_until]
        elif self._campaigning:
            deadlines.append(self._next_bid)
        return min(deadlines)

    # -- the state machine -------------------------------------------------------------------

    def step(self, now: float | None = None) -> list[LeadershipEvent]:
        """Drain notifications, then renew (leader) or bid (follower) if due. Never sleeps."""
        now = self._clock() if now is None else now
        events: list[LeadershipEvent] = []
        self._drain(now)
        if self._resign_requested and self._term is not None:
            log_resign_requested(self._term, self.identity.node)
            hold_off = REQUESTED_RESIGN_HOLD_OFF * self.timings.poll_interval
            events += self._give_up(rejoin=True, hold_off=hold_off, detail={"reason": "requested"})
        self._resign_requested = False
        self._check_lease_socket(now)
        if self._term is not None and now >= self._trusted_until:
            self._expire(events)
        if self._lease is None and now >= self._reconnect_at and self._reconnect(now):
            self._next_bid = now  # re-read the lease after a reconnect
            self._next_renew = now  # a leader confirms its term on the new connection at once
        if self._lease is not None and self._term is not None:
            self._lead(now, events)
        if self._lease is not None and self._term is None and self._campaigning and now >= self._next_bid:
            self._bid(now, events)
        return self._publish(events)

    def resign(self, *, rejoin: bool = False) -> list[LeadershipEvent]:
        """Give the lease up now: delete our row, record it and notify followers (one statement).

        Up to ``RESIGN_ATTEMPTS`` tries, reconnecting in between, each bounded by the statement
        timeout. Afterwards the elector stops bidding unless ``rejoin`` (a shutting-down process
        must not win the lease back).
        """
        return self._publish(self._give_up(rejoin=rejoin))

    def _give_up(
        self, *, rejoin: bool, hold_off: float | None = None, detail: dict[str, Any] | None = None
    ) -> list[LeadershipEvent]:
        """``resign``'s work, unpublished; with ``rejoin``, bid again after ``hold_off`` seconds."""
        self._campaigning = rejoin
        held = self._term
        if held is None:
            return []
        events: list[LeadershipEvent] = []
        for attempt in range(1, RESIGN_ATTEMPTS + 1):
            try:
                row = self._resign_row(held)
            except db.TRANSIENT as exc:
                self._warn(
                    "leadership.resign_failed", "resigning leadership failed (attempt %d): %s", attempt, exc
                )
                if self._lease is not None and self._lease.broken:
                    self._drop_lease()
                continue
            if row is not None:
                events.append(self._end_term("resigned", None, dict(detail or {})))
            else:
                events.append(self._ended_elsewhere())
            break
        else:
            # Our lease connection is gone or the database is: followers take over when they see
            # the dead backend or the expiry. Stop acting as leader either way.
            events.append(self._end_term("lost", None, {"reason": "resign_failed"}))
        # only matters with rejoin
        self._next_bid = self._clock() + (self.timings.poll_interval if hold_off is None else hold_off)
        return events

    # -- internals ---------------------------------------------------------------------------

    def filenos(self) -> list[int]:
        """Sockets for the loop's wait set: LISTEN, and the lease (a killed session shows there)."""
        fds = [fd] if (fd := self.fileno()) is not None else []
        wanted = self._term is not None or self._campaigning  # else nothing would read it: no busy loop
        if wanted and self._lease is not None and not self._lease.closed:
            fds.append(self._lease.fileno())
        return fds

    def _check_lease_socket(self, now: float) -> None:
        if self._lease_readable():  # the server ended it, probably: find out now
            self._next_renew = min(self._next_renew, now)
            self._next_bid = min(self._next_bid, now)

    def _expire(self, events: list[LeadershipEvent]) -> None:
        events.append(
            self._end_term("expired", None, {"reason": "trust_lapsed", "attempts": self._renew_attempt})
        )

    def _lease_lost(self, now: float, exc: BaseException) -> None:
        """The lease connection broke while leading: reconnect at once and renew there if trust lasts."""
        held = self._term
        assert held is not None
        self._drop_lease()  # the next step reconnects, then renews (``step``)
        self._term_reconnects += 1
        self._confirming = True
        log_lease_lost(held, max(0.0, self._trusted_until - now), exc)

    def _lead(self, now: float, events: list[LeadershipEvent]) -> None:
        held = self._term
        assert held is not None and self._lease is not None
        if now >= self._trusted_until:
            self._expire(events)
            return
        if now < self._next_renew:
            return
        sent = self._clock()
        self._bound_calls(now)
        try:
            row = self._renew_row(held)
        except db.TRANSIENT as exc:
            if db.is_read_only(exc):
                events.append(self._end_term("lost", None, {"reason": "database_read_only"}))
                return
            if self._lease.broken or self._lease.closed:
                self._lease_lost(now, exc)
                return
            self._renew_attempt += 1
            remaining = self._trusted_until - self._clock()
            delay = min(self.timings.retry_delay(self._renew_attempt, self._rand), max(0.0, remaining))
            self._next_renew = now + delay
            log_renewal_failed(held, self._renew_attempt, remaining, delay, exc)
            return
        if row is None:
            events.append(self._ended_elsewhere())
            return
        self._renew_attempt = 0
        self._trusted_until = self.timings.trusted_until(sent)
        self._next_renew = sent + self.timings.renew_interval
        if self._confirming:  # renewed on a new connection: the term goes on (reported once a term)
            self._confirming = False
            if self._term_reconnects == 1:
                events.append(term_event("reconnected", held, self.identity.node, None, {"reconnects": 1}))
            else:
                log_continued(held, self._term_reconnects)
        log_renewed(held)

    def _bid(self, now: float, events: list[LeadershipEvent]) -> None:
        assert self._lease is not None
        ident = self.identity
        sent = self._clock()
        self._bound_calls(now)
        try:
            row = self._campaign_row(self._gone.takeover_backend(now))
        except db.TRANSIENT as exc:
            if self._lease.broken or self._lease.closed:
                self._drop_lease()
                return
            self._bid_attempt += 1
            delay = self.timings.retry_delay(self._bid_attempt, self._rand)
            self._next_bid = now + delay
            log_election_failed(self.cluster, ident.node, self._bid_attempt, delay, exc)
            return
        self._bid_attempt = 0
        if row is None or not row.get("won", True):
            self._next_bid = now + self.timings.poll_interval * (1.0 + POLL_JITTER * self._rand())
            grace_ends = self._gone.watch(row, now)
            if grace_ends is not None:  # the holder's session is gone: bid again once its grace is over
                self._next_bid = min(self._next_bid, grace_ends)
            log_denied(self.cluster, ident.node)
            return
        self._term = Term(self.cluster, row["leader_id"], row["node"], row["term"], row["elected_at"])
        self._trusted_until = self.timings.trusted_until(sent)
        self._next_renew = sent + self.timings.renew_interval
        self._renew_attempt = 0
        detail = {
            key: row[key]
            for key in ("previous_term", "previous_event", "previous_reason")
            if row[key] is not None
        }
        self._term_reconnects = 0
        self._gone.forget()
        events.append(
            term_event(
                "gained", self._term, self.identity.node, row["previous_leader_id"], detail, row["elected_at"]
            )
        )
        # The holder did not resign: say so (unless it was this process, which has said so itself).
        if (
            row["previous_event"] in ("expired", "superseded")
            and row["previous_leader_id"] != ident.leader_id
        ):
            events.append(peer_lost(row, self.cluster, self.identity))

    def _drain(self, now: float) -> None:
        if self._listener is None:
            return
        batch = self._listener.poll(now)
        if batch.reconnected:
            self._next_bid = min(self._next_bid, now)  # LISTENing again: now re-read the lease
        for note in batch.notifications:
            try:
                message = json.loads(note.payload)
            except ValueError:
                continue
            if not isinstance(message, dict) or message.get("cluster") != self.cluster:
                continue
            if message.get("action") == "request_resign":
                self._resign_requested = self._term is not None
            elif message.get("action") == "resigned" and message.get("leader_id") != self.identity.leader_id:
                self._next_bid = min(self._next_bid, now + RESIGNED_JITTER * self._rand())
                if self._term is not None:  # someone else held the lease: our term is over; confirm now
                    self._next_renew = now

    def _ended_elsewhere(self) -> LeadershipEvent:
        """Our term's row is gone or no longer ours: find out who holds the lease now."""
        holder = self._holder_row()
        held = self._term
        assert held is not None
        if holder is not None and (holder["leader_id"], holder["term"]) != (held.leader_id, held.term):
            return self._end_term(
                "superseded", holder["leader_id"], {"next_term": holder["term"], "next_node": holder["node"]}
            )
        return self._end_term("lost", None, {"reason": "lease_expired" if holder else "lease_row_gone"})

    def _end_term(self, kind: EventKind, other: str | None, detail: dict[str, Any]) -> LeadershipEvent:
        held = self._term
        assert held is not None
        self._term = None
        self._term_reconnects = 0
        self._confirming = False
        self._trusted_until = -math.inf
        self._next_renew = math.inf
        self._renew_attempt = 0
        self._next_bid = -math.inf  # bid at once: re-read the lease
        return term_event(kind, held, self.identity.node, other, detail)

    def _publish(self, events: list[LeadershipEvent]) -> list[LeadershipEvent]:
        for ev in events:
            log_event(ev)
            if self._observer is not None:
                self._observer(ev)
        return events
