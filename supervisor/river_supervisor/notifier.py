"""A LISTEN connection a single-threaded loop can drive: never blocks, never sleeps.

The owner puts ``fileno()`` in its ``select``/``multiprocess.connection.wait`` set, calls
``poll(now)`` when the socket is readable or ``next_deadline()`` has come, and gets back the
notifications received so far. When the connection breaks, ``poll`` closes it and reconnects at
the next deadline with service backoff (1 s doubling to 60 s, ±10 %). After a reconnect it has
already LISTENed again *before* it reports ``reconnected``: the owner must then re-read whatever
state the notifications stood for (a notification sent while we were away is lost, but one sent
after the re-read is not).

Only ``db.TRANSIENT`` errors (a lost or refused connection, a read-only database, ...) are treated
as a lost connection; anything else is a bug and propagates.

An owner may also run its own statements on the connection (``connection``; a worker fetches on
the one it LISTENs on, so no notification falls between a LISTEN and the first read): it reports
a failure with ``lost(exc)``. With ``confirm=True`` the backoff is reset only when the owner says
the connection works (``confirm()``), not by a connect alone (a read-only database accepts
connections and LISTEN, and refuses the first write). ``reports`` words the loss and the return in
the owner's terms (default: the listener's own log lines).

Owns: LISTEN connections and their reconnect. May import: ``db`` (and ``backoff``).
"""

from __future__ import annotations

import logging
import math
import select
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg import sql

from . import db
from .backoff import service_backoff
from .errors import first_line

logger = logging.getLogger(__name__)

# LISTEN and a non-blocking drain are all it runs: neither may hold up the loop on a frozen server.
CONNECT_TIMEOUT = 2
CALL_TIMEOUT = 2.0
# Find a silently dead peer (no FIN/RST) within about 10 s, not the kernel's default two hours.
KEEPALIVE_OPTIONS: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


@dataclass(frozen=True, slots=True)
class Notification:
    channel: str
    payload: str
    pid: int  # the notifying backend


@dataclass(frozen=True, slots=True)
class Batch:
    """What one ``poll`` found: notifications in arrival order, and whether it reconnected."""

    notifications: list[Notification] = field(default_factory=list)
    reconnected: bool = False


def _extra(event: str, **fields: Any) -> dict[str, Any]:
    return {"event": event, **fields}


# The channels to LISTEN on: full names, or a function naming them on each new connection.
Channels = Sequence[str] | Callable[[psycopg.Connection[Any]], Sequence[str]]


def river_channels(*topics: str) -> Callable[[psycopg.Connection[Any]], list[str]]:
    """River's channels for ``topics`` in a connection's current schema (``<schema>.<topic>``)."""

    def named(conn: psycopg.Connection[Any]) -> list[str]:
        row = db.fetch_one(conn, "session_schema")
        assert row is not None
        return [f"{row['schema']}.{topic}" for topic in topics]

    return named


class Reports(Protocol):
    """How a listener's owner reports the connection lost, and back after ``attempts`` failures."""

    def lost(self, attempt: int, delay: float, exc: BaseException) -> None: ...

    def back(self, attempts: int) -> None: ...


class _OwnReports:
    """The listener's own lines: ``listener.disconnected`` and ``listener.reconnected``."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener

    def lost(self, attempt: int, delay: float, exc: BaseException) -> None:
        logger.warning(
            "listener connection lost (attempt %d); reconnecting in %.1fs: %s",
            attempt,
            delay,
            type(exc).__name__,
            extra=_extra(
                "listener.disconnected",
                attempt=attempt,
                sleep_duration=delay,
                error=first_line(exc),
            ),
        )

    def back(self, attempts: int) -> None:
        logger.info(
            "listener reconnected after %d attempts",
            attempts,
            extra=_extra("listener.reconnected", attempt=attempts, channels=list(self._listener.channels)),
        )


class Listener:
    """One connection LISTENing on ``channels`` (full names, ``<schema>.<topic>``)."""

    def __init__(
        self,
        conninfo: str,
        channels: Channels,
        *,
        application_name: str = "river-supervisor-listener",
        clock: Callable[[], float] = time.monotonic,
        backoff: Callable[[int], float] = service_backoff,
        connect_timeout: int = CONNECT_TIMEOUT,
        call_timeout: float = CALL_TIMEOUT,
        confirm: bool = False,
        reports: Reports | None = None,
    ) -> None:
        self.conninfo = conninfo
        self._name_channels = channels if callable(channels) else None
        self.channels: tuple[str, ...] = () if callable(channels) else tuple(channels)
        self.application_name = application_name
        self._clock = clock
        self._backoff = backoff
        self._connect_timeout = connect_timeout
        self._call_timeout = call_timeout
        self._confirm = confirm
        self._reports: Reports = reports if reports is not None else _OwnReports(self)
        self._conn: psycopg.Connection[Any] | None = None
        self._attempt = 0
        self._reconnect_at = math.inf  # no connection wanted until connect()
        self._reconnected = False

    # -- lifecycle ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect and LISTEN now; raise ``DatabaseUnavailable`` (or psycopg's error) if that fails."""
        self._open()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        self._reconnect_at = math.inf
        if conn is not None:
            conn.close()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    @property
    def connection(self) -> psycopg.Connection[Any] | None:
        """The LISTEN connection, for the owner's own statements (``None`` while disconnected)."""
        return self._conn

    def lost(self, exc: BaseException, now: float | None = None) -> None:
        """The owner's statement on ``connection`` failed (a ``db.TRANSIENT`` error): reconnect later."""
        self._fail(self._clock() if now is None else now, exc)

    def confirm(self) -> None:
        """The owner used the connection successfully: report it back and reset the backoff."""
        if self._attempt:
            self._reports.back(self._attempt)
        self._attempt = 0

    def fileno(self) -> int | None:
        """The socket to wait on, or ``None`` while disconnected (``next_deadline`` covers that)."""
        return self._conn.fileno() if self._conn is not None and not self._conn.closed else None

    def next_deadline(self) -> float:
        """When ``poll`` must run even if the socket stays quiet: the next reconnect attempt."""
        return self._reconnect_at if self._conn is None else math.inf

    # -- the loop's calls --------------------------------------------------------------------

    def poll(self, now: float | None = None) -> Batch:
        """Drain what has arrived without blocking; reconnect (and re-LISTEN) when due."""
        now = self._clock() if now is None else now
        reconnected = False
        if self._conn is None:
            if now < self._reconnect_at:
                return Batch()
            try:
                self._open()
            except db.TRANSIENT as exc:
                self._fail(now, exc)
                return Batch()
            reconnected = True
        assert self._conn is not None
        try:
            # A server closing the connection may take two polls to show: libpq reads its FATAL
            # message on one, and reports the closed socket once that becomes readable.
            received = self._drain(self._conn)
        except db.TRANSIENT as exc:
            self._fail(now, exc)
            return Batch(reconnected=reconnected)
        return Batch(received, reconnected)

    def wait(self, timeout: float) -> Batch:
        """Block up to ``timeout`` seconds for a notification or a due reconnect (for simple users)."""
        deadline = self._clock() + timeout
        while True:
            now = self._clock()
            batch = self.poll(now)
            if batch.notifications or batch.reconnected or now >= deadline:
                return batch
            until = min(deadline, self.next_deadline()) - now
            fd = self.fileno()
            if fd is None:
                time.sleep(max(0.0, until))  # nothing to wait on while disconnected
            else:
                select.select([fd], [], [], max(0.0, until))

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _drain(conn: psycopg.Connection[Any]) -> list[Notification]:
        return [Notification(n.channel, n.payload, n.pid) for n in conn.notifies(timeout=0.0)]

    def _open(self) -> None:
        conn = db.connect(
            self.conninfo,
            application_name=self.application_name,
            connect_timeout=self._connect_timeout,
            call_timeout=self._call_timeout,
            **KEEPALIVE_OPTIONS,
        )
        try:
            if self._name_channels is not None:
                self.channels = tuple(self._name_channels(conn))
            for channel in self.channels:
                conn.execute(sql.SQL(db.query("session_listen")).format(channel=sql.Identifier(channel)))
        except BaseException:
            conn.close()
            raise
        self._conn, self._reconnect_at = conn, math.inf
        if not self._confirm:
            self.confirm()

    def _fail(self, now: float, exc: BaseException) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._attempt += 1
        delay = self._backoff(self._attempt)
        self._reconnect_at = now + delay
        self._reports.lost(self._attempt, delay, exc)
