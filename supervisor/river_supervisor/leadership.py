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
Each SQL statement it runs is bounded by ``statement_timeout`` (at most ttl/3) on the server and,
for a server that answers nothing (frozen, a dead network), by the client: no call outlives the
trust window (``db.BoundedConnection``), so an unconfirmed leader steps down on time.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import secrets
import select
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg

from . import db
from .backoff import service_backoff
from .config import LeadershipConfig
from .errors import NotLeader, first_line
from .notifier import KEEPALIVE_OPTIONS, Listener

logger = logging.getLogger(__name__)

FENCE_LOCK_TIMEOUT_MS = 2000
FENCE_IDLE_TIMEOUT_MS = 5000

CHANNEL_TOPIC = "river_supervisor_leadership"
LEADER_ID_MAX = 127
RESIGN_ATTEMPTS = 3
RESIGNED_JITTER = 0.005  # spread of the bids after a "resigned" notification, s (target: handoff < 25 ms)
POLL_JITTER = 0.10  # followers bid every poll_interval * (1 + [0, 10 %))
# After a requested resign the old leader waits this many poll intervals before bidding again: the
# followers, woken by the "resigned" notification, bid within ms; should none be able to, the old
# leader leads again instead of leaving the cluster leaderless.
REQUESTED_RESIGN_HOLD_OFF = 3

EventKind = Literal["gained", "resigned", "lost", "expired", "superseded", "reconnected"]
CALL_SLACK = 0.5  # the client gives up this long after the server's statement_timeout would have
MIN_CONNECT_TIMEOUT = 2  # libpq's floor: a smaller connect_timeout is taken as 2 s


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


def request_resign(conn: psycopg.Connection[Any], cluster: str) -> datetime:
    """Ask ``cluster``'s leader to step down (River's ``request_resign`` on our leadership channel,
    naming the cluster); returns the database time the request was sent."""
    row = db.fetch_one(conn, "leader_request_resign", {"cluster": cluster})
    assert row is not None
    sent_at: datetime = row["sent_at"]
    return sent_at


@dataclass(frozen=True, slots=True)
class Timings:
    """Every interval of the elector, derived from the lease length alone."""

    ttl: float
    renew_interval: float  # ttl / 3 (River: 5 s of 15 s)
    margin: float  # trust ends this long before the lease could: clock rate error, send-to-now() gap
    poll_interval: float  # follower bids: ttl / 20 within [0.25 s, 1 s], for crash failover < 2 s
    statement_timeout: float  # bounds each statement of a step: a stuck database cannot stall the loop
    lock_timeout: float  # a takeover waits this long for a fenced transaction, then retries later
    retry_cap: float  # renewal, bid and reconnect retries back off 1 s doubling up to this
    session_grace: float  # a holder whose lease session vanished has this long to come back on a new one

    @classmethod
    def from_ttl(cls, ttl: float) -> Timings:
        if not ttl > 0:
            raise ValueError(f"leadership ttl must be positive, not {ttl}")
        third = ttl / 3
        return cls(
            ttl=ttl,
            renew_interval=third,
            margin=min(max(1.0, ttl / 10), ttl / 4),
            poll_interval=min(max(ttl / 20, 0.25), 1.0),
            statement_timeout=min(5.0, third),
            lock_timeout=min(2.0, third),
            retry_cap=max(third, 0.1),
            session_grace=min(1.0, third),
        )

    def trusted_until(self, sent: float) -> float:
        """Trust granted by a renewal or bid that was *sent* at monotonic time ``sent``."""
        return sent + self.ttl - self.margin

    def retry_delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        return service_backoff(attempt, base=min(1.0, self.retry_cap), cap=self.retry_cap, rand=rand)


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """One supervisor process: node name, pid and a random boot id, never mistaken for another."""

    node: str
    pid: int
    boot_id: str

    @classmethod
    def current(cls, node: str) -> NodeIdentity:
        return cls(node=node, pid=os.getpid(), boot_id=secrets.token_hex(6))

    @property
    def leader_id(self) -> str:
        """``node:pid:boot_id``, at most 127 characters (a long node name is cut, never the rest)."""
        suffix = f":{self.pid}:{self.boot_id}"
        return self.node[: LEADER_ID_MAX - len(suffix)] + suffix

    node_id = leader_id  # the node registry's key is the same string


@dataclass(frozen=True, slots=True)
class LeadershipEvent:
    """One leadership change seen by this process; ``leader_id``/``term`` is the term it is about."""

    kind: EventKind
    cluster: str
    node: str
    leader_id: str
    term: int
    other_leader_id: str | None  # previous holder (gained) or next holder (superseded)
    at: datetime
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def level(self) -> int:
        return logging.INFO if self.kind in ("gained", "resigned") else logging.WARNING

    @property
    def ends_term(self) -> bool:
        """Whether this process stopped leading: not on a gain, a reconnect, or a peer's loss it reports."""
        return self.kind not in ("gained", "reconnected") and not self.reported_by_successor

    @property
    def reported_by_successor(self) -> bool:
        """The loss of a holder that did not resign, reported by the node that replaced it."""
        return "reported_by" in self.detail

    def message(self) -> str:
        """The one wording of this change, for the log line and the Sentry event alike."""
        if self.reported_by_successor:
            return _peer_lost_message(self)
        where = f"cluster {self.cluster} (term {self.term})"
        text = {
            "gained": f"leadership gained: node {self.node} leads {where}",
            "resigned": f"leadership resigned: node {self.node} stepped down in {where}",
            "lost": f"leadership lost: node {self.node} no longer leads {where}",
            "expired": f"leadership expired: the lease of {self.leader_id} in {where} was not renewed"
            " within the trust window",
            "superseded": f"leadership superseded: node {self.node} was replaced in {where}",
            "reconnected": f"leadership reconnected: node {self.node} lost its lease connection in {where};"
            " the term continues on a new one",
        }.get(self.kind, f"leadership {self.kind}: node {self.node} in {where}")
        if self.other_leader_id and self.kind != "reconnected":
            text += f", {'previous' if self.kind == 'gained' else 'next'} holder {self.other_leader_id}"
        return text


_LOSS_REASONS = {
    "session_gone": "its lease session vanished (a crash, a kill, a lost host)",
    "lease_expired": "its lease expired without renewal (paused, cut off, or its database was away)",
}


def _peer_lost_message(ev: LeadershipEvent) -> str:
    """The loss of a holder that did not resign, as its successor reports it."""
    reason = str(ev.detail.get("reason"))
    gap = ev.detail.get("leaderless_seconds")
    took = f"node {ev.detail.get('reported_by')} took over (term {ev.detail.get('next_term')})"
    leaderless = f" after {gap:.1f} s without a leader" if isinstance(gap, int | float) else ""
    return (
        f"leadership lost: node {ev.node} (term {ev.term}) in cluster {ev.cluster}:"
        f" {_LOSS_REASONS.get(reason, reason)}; {took}{leaderless}"
    )


def _extra(event: str, cluster: str, node: str, term: int | None, **fields: Any) -> dict[str, Any]:
    return {"event": event, "cluster": cluster, "node": node, "term": term, **fields}


def log_event(ev: LeadershipEvent) -> None:
    # not this process's own loss: its log event says so
    name = "leadership.peer_lost" if ev.reported_by_successor else f"leadership.{ev.kind}"
    logger.log(
        ev.level,
        "%s",
        ev.message(),
        extra=_extra(
            name,
            ev.cluster,
            ev.node,
            ev.term,
            leadership_event=ev.kind,
            leader_id=ev.leader_id,
            other_leader_id=ev.other_leader_id,
            detail=dict(ev.detail),
        ),
    )


class Elector:
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
        self.cluster = cluster
        self.identity = identity
        self.timings = Timings.from_ttl(cfg.ttl)
        self._conninfo = conninfo
        self._schema = schema
        self._clock = clock
        self._rand = rand
        self._observer = observer
        self.channel: str | None = None
        self._lease: psycopg.Connection[Any] | None = None
        self._listener: Listener | None = None
        self._campaigning = False
        self._term: Term | None = None
        self._trusted_until = -math.inf
        self._next_renew = math.inf
        self._renew_attempt = 0
        self._next_bid = math.inf
        self._bid_attempt = 0
        self._lease_attempt = 0
        self._reconnect_at = math.inf
        self._resign_requested = False
        self._term_reconnects = 0  # lease reconnects within the current term (the first is reported)
        self._confirming = False  # a renewal on a new lease connection is due
        self._gone: tuple[int, int, float] | None = None  # (term, backend pid, first seen gone) of the holder

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the lease connection and LISTEN; the first bid runs on the next ``step()``.

        Raises ``DatabaseUnavailable`` if the database cannot be reached at all; later losses
        are recovered with backoff.
        """
        self._open_lease()
        assert self.channel is not None
        self._listener = Listener(
            self._conninfo,
            [self.channel],
            application_name=f"river-supervisor listen {self.identity.leader_id}"[:63],
            clock=self._clock,
            backoff=lambda attempt: self.timings.retry_delay(attempt, self._rand),
        )
        self._listener.connect()  # LISTEN before the first read of the lease
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
            logger.info(
                "resigning leadership of cluster %s on request",
                self.cluster,
                extra=_extra(
                    "leadership.resign_requested", self.cluster, self.identity.node, self._term.term
                ),
            )
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
        params = {"cluster": held.cluster, "leader_id": held.leader_id, "term": held.term}
        for attempt in range(1, RESIGN_ATTEMPTS + 1):
            try:
                if self._lease is None:
                    self._open_lease()
                assert self._lease is not None
                self._bound_calls(self._clock(), by_trust=False)
                row = db.fetch_one(self._lease, "leader_resign", params)
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
        """An idle lease connection turns readable when the server ends it: use it now to find out."""
        if self._lease is None or self._lease.closed:
            return
        try:
            readable, _, _ = select.select([self._lease.fileno()], [], [], 0)
        except (OSError, ValueError):
            readable = [True]
        if readable:
            self._next_renew = min(self._next_renew, now)
            self._next_bid = min(self._next_bid, now)

    def _expire(self, events: list[LeadershipEvent]) -> None:
        events.append(
            self._end_term("expired", None, {"reason": "trust_lapsed", "attempts": self._renew_attempt})
        )

    def _bound_calls(self, now: float, *, by_trust: bool = True) -> None:
        """No call of a leader outlives its trust (it must step down on time); none outlives the bound."""
        assert self._lease is not None
        bound = self.timings.statement_timeout + CALL_SLACK
        if by_trust and self._term is not None:
            bound = min(bound, max(0.05, self._trusted_until - now))
        self._lease.call_timeout = bound  # type: ignore[attr-defined]

    def _lease_lost(self, now: float, exc: BaseException) -> None:
        """The lease connection broke while leading: reconnect at once and renew there if trust lasts."""
        held = self._term
        assert held is not None
        self._drop_lease()  # the next step reconnects, then renews (``step``)
        self._term_reconnects += 1
        self._confirming = True
        logger.warning(
            "lease connection lost while leading cluster %s (term %d): %s; reconnecting, trusted %.1fs more",
            held.cluster,
            held.term,
            first_line(exc),
            max(0.0, self._trusted_until - now),
            extra=_extra("leadership.lease_lost", held.cluster, held.node, held.term, error=first_line(exc)),
        )

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
            row = db.fetch_one(
                self._lease,
                "leader_renew",
                {
                    "cluster": held.cluster,
                    "leader_id": held.leader_id,
                    "term": held.term,
                    "ttl": self.timings.ttl,
                },
            )
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
            logger.warning(
                "renewing leadership failed (attempt %d); trusted for %.1fs more: %s",
                self._renew_attempt,
                remaining,
                first_line(exc),
                extra=_extra(
                    "leadership.renewal_failed",
                    held.cluster,
                    held.node,
                    held.term,
                    attempt=self._renew_attempt,
                    trust_remaining=remaining,
                    sleep_duration=delay,
                    error=first_line(exc),
                ),
            )
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
                events.append(self._event("reconnected", held, None, {"reconnects": 1}))
            else:
                logger.info(
                    "term %d of cluster %s continues on a new lease connection (reconnect %d of this term)",
                    held.term,
                    held.cluster,
                    self._term_reconnects,
                    extra=_extra("leadership.continued", held.cluster, held.node, held.term),
                )
        logger.debug(
            "renewed leadership of cluster %s (term %d)",
            held.cluster,
            held.term,
            extra=_extra("leadership.renewed", held.cluster, held.node, held.term),
        )

    def _bid(self, now: float, events: list[LeadershipEvent]) -> None:
        assert self._lease is not None
        ident = self.identity
        sent = self._clock()
        self._bound_calls(now)
        try:
            row = db.fetch_one(
                self._lease,
                "leader_campaign",
                {
                    "cluster": self.cluster,
                    "leader_id": ident.leader_id,
                    "node": ident.node,
                    "pid": ident.pid,
                    "ttl": self.timings.ttl,
                    "gone_backend": self._gone_backend(now),
                },
            )
        except db.TRANSIENT as exc:
            if self._lease.broken or self._lease.closed:
                self._drop_lease()
                return
            self._bid_attempt += 1
            delay = self.timings.retry_delay(self._bid_attempt, self._rand)
            self._next_bid = now + delay
            logger.warning(
                "election attempt failed (attempt %d); retrying in %.1fs: %s",
                self._bid_attempt,
                delay,
                first_line(exc),
                extra=_extra(
                    "leadership.election_failed",
                    self.cluster,
                    ident.node,
                    None,
                    attempt=self._bid_attempt,
                    sleep_duration=delay,
                    error=first_line(exc),
                ),
            )
            return
        self._bid_attempt = 0
        if row is None or not row.get("won", True):
            self._next_bid = now + self.timings.poll_interval * (1.0 + POLL_JITTER * self._rand())
            if self._watch_gone(row, now):  # bid again as soon as the grace is over
                self._next_bid = min(self._next_bid, self._gone[2] + self.timings.session_grace)  # type: ignore[index]
            logger.debug(
                "election denied for cluster %s",
                self.cluster,
                extra=_extra("leadership.denied", self.cluster, ident.node, None),
            )
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
        self._gone = None
        events.append(self._event("gained", self._term, row["previous_leader_id"], detail, row["elected_at"]))
        # The holder did not resign: say so (unless it was this process, which has said so itself).
        if (
            row["previous_event"] in ("expired", "superseded")
            and row["previous_leader_id"] != ident.leader_id
        ):
            events.append(self._peer_lost(row))

    def _watch_gone(self, holder: Mapping[str, Any] | None, now: float) -> bool:
        """Remember since when the holder's lease session has been gone (to time its grace)."""
        if holder is None or not holder.get("backend_gone"):
            self._gone = None
            return False
        key = (holder["term"], holder["backend_pid"])
        if self._gone is None or self._gone[:2] != key:
            self._gone = (*key, now)
        return True

    def _gone_backend(self, now: float) -> int | None:
        """The holder's vanished session, once it has stayed gone for the grace: may be taken over."""
        if self._gone is not None and now - self._gone[2] >= self.timings.session_grace:
            return self._gone[1]
        return None

    def _peer_lost(self, row: Mapping[str, Any]) -> LeadershipEvent:
        """The loss of the holder we replaced, as that holder would report it (if it could)."""
        reason = "lease_expired" if row["previous_event"] == "expired" else "session_gone"
        leaderless = None
        if row.get("previous_renewed_at") is not None:
            leaderless = round(max(0.0, (row["elected_at"] - row["previous_renewed_at"]).total_seconds()), 3)
        return LeadershipEvent(
            kind="lost",
            cluster=self.cluster,
            node=row["previous_node"] or "",
            leader_id=row["previous_leader_id"],
            term=row["previous_term"],
            other_leader_id=self.identity.leader_id,
            at=row["elected_at"],
            detail={
                "reason": reason,
                "leaderless_seconds": leaderless,  # from its last renewal to our election
                "next_term": row["term"],
                "reported_by": self.identity.node,
            },
        )

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
        holder = None
        if self._lease is not None and not self._lease.closed:
            try:
                self._bound_calls(self._clock(), by_trust=False)
                holder = db.fetch_one(self._lease, "leader_get", {"cluster": self.cluster})
            except db.TRANSIENT:
                holder = None
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
        return self._event(kind, held, other, detail)

    def _event(
        self,
        kind: EventKind,
        held: Term,
        other: str | None,
        detail: dict[str, Any],
        at: datetime | None = None,
    ) -> LeadershipEvent:
        return LeadershipEvent(
            kind=kind,
            cluster=held.cluster,
            node=self.identity.node,
            leader_id=held.leader_id,
            term=held.term,
            other_leader_id=other,
            at=at or datetime.now(UTC),
            detail=detail,
        )

    def _publish(self, events: list[LeadershipEvent]) -> list[LeadershipEvent]:
        for ev in events:
            log_event(ev)
            if self._observer is not None:
                self._observer(ev)
        return events

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
        logger.warning(
            template,
            attempt,
            first_line(exc),
            extra=_extra(
                event, self.cluster, self.identity.node, None, attempt=attempt, error=first_line(exc)
            ),
        )
