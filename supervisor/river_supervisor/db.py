"""The one seam to PostgreSQL: connections and named queries.

Connections are psycopg 3 connections, autocommit unless a caller opens a transaction, tagged with
``application_name`` so operators can see which process holds which session. Nothing here is shared
across a fork: every process opens its own.

``TRANSIENT`` is the one rule for "a later retry can outlive this": every loop catches it, backs off
and tries again, and never exits for it. A connection opened with ``call_timeout`` bounds every call
on the client side (a frozen server answers nothing, so a server-side ``statement_timeout`` never
fires): past the bound the connection is closed and ``CallTimeout`` raised, so no loop blocks longer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row

from .errors import DatabaseUnavailable, first_line
from .redaction import redact_database_url
from .sql import queries

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 5
Params = Mapping[str, Any] | None


class CallTimeout(psycopg.OperationalError):
    """No answer from the database within a connection's ``call_timeout``; the connection is closed."""


# What a later retry can outlive: a lost or refused connection (restart, crash, killed session,
# admin shutdown, too many connections, a call timed out), a read-only database (failover to a
# replica, a full disk's remedy, an Aurora reader), a cancelled statement, a lock or serialization
# conflict, a session ended by idle_in_transaction_session_timeout. Errors in the data or the SQL
# are not here: retrying them cannot help.
TRANSIENT: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # connection failures, 57P01 admin shutdown, 57014 cancel, 55P03, 40001, 53xxx
    psycopg.InterfaceError,  # the connection was already closed or broken
    DatabaseUnavailable,  # db.connect refused
    psycopg.errors.ReadOnlySqlTransaction,  # 25006
    psycopg.errors.IdleInTransactionSessionTimeout,  # 25P03
)


def is_read_only(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.errors.ReadOnlySqlTransaction)


class BoundedConnection(psycopg.Connection[Any]):
    """A connection whose every call (query, fetch, commit, pipeline sync) ends within ``call_timeout``.

    Every blocking operation of a psycopg connection goes through ``wait``; past the bound the
    connection's state is unknown (a statement may be half sent), so it is closed: callers see
    ``CallTimeout``, a ``TRANSIENT`` error, and reconnect with backoff. ``None`` waits forever.
    """

    call_timeout: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        # psycopg 3.3's signature (0.1: its _WAIT_INTERVAL)
        if timeout is not None or self.call_timeout is None:  # psycopg's own bound (notifies, cancel)
            return super().wait(gen, interval, timeout=timeout)
        try:
            return super().wait(gen, interval, timeout=self.call_timeout)
        except psycopg.errors._WaitTimeout:  # psycopg >= 3.3; closing is the only safe state
            self.close()
            raise CallTimeout(f"no answer from the database within {self.call_timeout:g}s") from None


def redact_url(url: str) -> str:
    """The URL (or libpq key=value string) with its password replaced, for logs and error messages."""
    return redact_database_url(url)


def connect(
    url: str,
    *,
    application_name: str = "river-supervisor",
    autocommit: bool = True,
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
    call_timeout: float | None = None,
    **options: Any,
) -> psycopg.Connection[dict[str, Any]]:
    """Open a connection returning rows as dicts, or raise ``DatabaseUnavailable``.

    With ``call_timeout`` every later call on it is bounded (``BoundedConnection``); libpq bounds
    the connect itself by ``connect_timeout`` (at least 2 s: libpq's floor).
    """
    try:
        conn = BoundedConnection.connect(
            url,
            autocommit=autocommit,
            row_factory=dict_row,
            application_name=application_name,
            connect_timeout=connect_timeout,
            **options,
        )
    except psycopg.OperationalError as exc:
        # libpq's first line says what failed ("... port 1 failed: Connection refused"); the
        # lines after it are tab-indented hints.
        raise DatabaseUnavailable(f"database {redact_url(url)}: {first_line(exc)}") from exc
    except psycopg.ProgrammingError as exc:  # malformed conninfo
        raise DatabaseUnavailable(f"database {redact_url(url)}: {exc}") from exc
    conn.call_timeout = call_timeout
    return conn


class LazyConnection:
    """One connection of a long-lived loop: opened on first use, and again after ``drop`` (which a
    loop calls when a ``TRANSIENT`` error ended a call) or once it broke."""

    def __init__(self, url: str, *, application_name: str, connect_timeout: int, call_timeout: float) -> None:
        self._url = url
        self._application_name = application_name
        self._connect_timeout = connect_timeout
        self.call_timeout = call_timeout  # for connections opened from now on
        self._conn: psycopg.Connection[Any] | None = None

    def get(self) -> psycopg.Connection[Any]:
        """The connection, opened now if there is none (raises ``DatabaseUnavailable``)."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(
                self._url,
                application_name=self._application_name,
                connect_timeout=self._connect_timeout,
                call_timeout=self.call_timeout,
            )
        return self._conn

    def drop(self) -> None:
        """Close it (closing a broken connection may fail: nothing is left to do then)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:
                log.debug("closing the %s connection failed: %s", self._application_name, exc)


def query(name: str) -> str:
    return queries[name]


def execute(conn: psycopg.Connection[Any], name: str, params: Params = None) -> int:
    """Run a named statement; return the number of rows it touched."""
    with conn.cursor() as cur:
        cur.execute(queries[name], params)
        return cur.rowcount


def fetch_one(conn: psycopg.Connection[Any], name: str, params: Params = None) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(queries[name], params)
        return cur.fetchone()


def fetch_all(conn: psycopg.Connection[Any], name: str, params: Params = None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(queries[name], params)
        return cur.fetchall()


async def fetch_all_async(
    conn: psycopg.AsyncConnection[Any], name: str, params: Params = None
) -> list[dict[str, Any]]:
    """``fetch_all`` on an asyncio connection (application code enqueuing from async frameworks)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(queries[name], params)
        return await cur.fetchall()
