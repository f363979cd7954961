"""The one seam to PostgreSQL: connections and named queries.

Connections are plain psycopg 3 connections, autocommit unless a caller opens a transaction,
tagged with ``application_name`` so operators can see which process holds which session. Nothing
here is shared across a fork: every process opens its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from .errors import DatabaseUnavailable
from .redaction import redact_database_url
from .sql import queries

DEFAULT_CONNECT_TIMEOUT = 5
Params = Mapping[str, Any] | None


def redact_url(url: str) -> str:
    """The URL (or libpq key=value string) with its password replaced, for logs and error messages."""
    return redact_database_url(url)


def connect(
    url: str,
    *,
    application_name: str = "river-supervisor",
    autocommit: bool = True,
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
    **options: Any,
) -> psycopg.Connection[dict[str, Any]]:
    """Open a connection returning rows as dicts, or raise ``DatabaseUnavailable``."""
    try:
        return psycopg.connect(
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
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"database {redact_url(url)}: {reason}") from exc
    except psycopg.ProgrammingError as exc:  # malformed conninfo
        raise DatabaseUnavailable(f"database {redact_url(url)}: {exc}") from exc


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


@contextmanager
def transaction(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """A transaction on ``conn`` (a savepoint if one is already open)."""
    with conn.transaction():
        yield conn
