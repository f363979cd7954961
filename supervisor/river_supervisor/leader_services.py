"""The leader-only services and how they run: the ``LeaderService`` protocol and its runner.

Every leader-only service (job scheduler, rescuers, cleaners, periodic enqueuer, drift watch) has
River's shape: ``on_gained(conn, term, now)`` once per term, ``tick(conn, term, now)`` doing one
bounded batch in a transaction fenced by the term and returning when it next wants to run
(seconds, or a wall-clock time), ``on_lost()`` dropping memory. No threads, sleeps or leadership
checks inside; a service that finds something to report hands it to the ``report`` callback it
was built with (``drift.Finding``), never through the runner.

``ServiceRunner`` runs the ticks that are due while the term is trusted. A fenced write refused
(``NotLeader``) means the term is over: the runner says so and the owner steps down at once. A
failed tick is retried with service backoff; three failed starts of one service mean this node
should give the lease up rather than lead half-working (River's rule).

Owns: running leader services. May import: ``db``, ``leadership`` (Term), ``errors``, ``backoff``.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg

from . import db
from .backoff import service_backoff
from .errors import NotLeader, first_line
from .leadership import Term

log = logging.getLogger(__name__)

# A fenced transaction ended by idle_in_transaction_session_timeout raises InternalError.
SERVICE_ERRORS: tuple[type[BaseException], ...] = (
    *db.TRANSIENT,  # what a later retry can outlive: back off, never exit
    psycopg.errors.IdleInTransactionSessionTimeout,
    psycopg.errors.LockNotAvailable,
)
MAX_START_FAILURES = 3


class LeaderService(Protocol):
    name: str

    def on_gained(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> None: ...

    def tick(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> float | datetime: ...

    def on_lost(self) -> None: ...


class Verdict(enum.Enum):
    """What a run of the due services tells the owner about its term."""

    KEEP = "keep"
    FENCED = "fenced"  # a fenced write was refused: the term is over, step down at once
    START_FAILED = "start_failed"  # a service could not start MAX_START_FAILURES times: give the lease up


@dataclass(slots=True)
class _ServiceState:
    service: LeaderService
    due: float = 0.0
    failures: int = 0
    gained: bool = False


class ServiceRunner:
    """Runs leader services' ticks on the owner's connection (``session``: bounded by the term's trust).

    ``drop`` closes that connection after a failure; ``on_transient`` tells the owner a database
    write just failed for a reason a retry can outlive.
    """

    def __init__(
        self,
        services: Sequence[LeaderService],
        *,
        session: Callable[[], psycopg.Connection[Any]],
        drop: Callable[[], None],
        on_transient: Callable[[], None],
    ) -> None:
        self._states = [_ServiceState(service) for service in services]
        self._session = session
        self._drop = drop
        self._on_transient = on_transient

    def next_deadline(self) -> float:
        return min((state.due for state in self._states), default=math.inf)

    def gained_services(self) -> list[LeaderService]:
        return [state.service for state in self._states if state.gained]

    def term_gained(self) -> None:
        """A new term: every service starts again at once, with no failures counted."""
        for state in self._states:
            state.due = 0.0
            state.failures = 0

    def lose(self) -> None:
        """The term is over (or the services are replaced): each started service forgets it."""
        for state in self._states:
            if state.gained:
                state.service.on_lost()
                state.gained = False

    def run(self, now: float, term: Term, trusted: Callable[[], bool], gain_at: datetime | None) -> Verdict:
        """Run every due service while ``trusted()``; a service starts with ``on_gained`` at
        ``gain_at`` (default: now)."""
        wall = datetime.now(UTC)
        gain_at = gain_at or wall
        for state in self._states:
            if now < state.due or not trusted():
                continue
            try:
                conn = self._session()
                if not state.gained:
                    state.service.on_gained(conn, term, gain_at)
                    state.gained = True
                wake = state.service.tick(conn, term, wall)
                state.failures = 0
                state.due = now + (wake - wall).total_seconds() if isinstance(wake, datetime) else now + wake
            except NotLeader:
                log.error(
                    "%s: fenced write refused for term %d; stepping down",
                    state.service.name,
                    term.term,
                    extra={"event": "leadership.fenced", "service": state.service.name, "term": term.term},
                )
                return Verdict.FENCED
            except SERVICE_ERRORS as exc:
                if self._failed(state, now, exc):
                    return Verdict.START_FAILED
        return Verdict.KEEP

    def _failed(self, state: _ServiceState, now: float, exc: BaseException) -> bool:
        """Back off; True when the service could not start too many times in a row."""
        if isinstance(exc, db.TRANSIENT):
            self._on_transient()
        state.failures += 1
        delay = service_backoff(state.failures)
        state.due = now + delay
        log.warning(
            "%s failed (attempt %d): %s; next try in %.1fs",
            state.service.name,
            state.failures,
            first_line(exc),
            delay,
            extra={"event": "service.failed", "service": state.service.name, "attempt": state.failures},
        )
        self._drop()
        if state.gained or state.failures < MAX_START_FAILURES:
            return False
        log.error(
            "%s could not start %d times: giving the lease up for another node",
            state.service.name,
            state.failures,
            extra={"event": "leadership.service_start_failed", "service": state.service.name},
        )
        return True
