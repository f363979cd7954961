"""river-supervisor plugin ``sql``: job kind ``sql.execute`` runs one SQL statement.

Args (JSON):

- ``sql``: one statement (``REFRESH MATERIALIZED VIEW CONCURRENTLY daily_totals``,
  ``DELETE FROM events WHERE created_at < now() - interval '30 days'``, ...);
- ``params``: a list (for ``%s`` placeholders) or an object (for ``%(name)s``); without params the
  text is sent as is, so a literal ``%`` needs no escaping;
- ``database_url``: where to run it (default: the supervisor's own database, ``job.context``);
- ``timeout``: seconds (number or duration string), applied as ``statement_timeout``.

Each job opens its own autocommit connection (``application_name`` names the job), runs the
statement and closes it. It returns ``{"rowcount": ..., "status": "DELETE 42"}``. A database error
raises ``SqlError`` with the SQLSTATE and PostgreSQL's message, so the job is retried with backoff;
invalid args raise ``JobCancel``. A cancel request cancels the running statement on the server.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from river_supervisor import Job, JobCancel, Plugin
from river_supervisor.plugins import duration_seconds

plugin = Plugin("sql")

CONNECT_TIMEOUT = 10  # seconds


class SqlError(RuntimeError):
    """The statement (or the connection) failed; ``sqlstate`` is PostgreSQL's error code if any."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        self.sqlstate = sqlstate
        super().__init__(message)


@plugin.job("sql.execute")
def execute(job: Job) -> dict[str, Any]:
    sql, params, url, timeout = _parse(job)
    options = f"-c statement_timeout={int(timeout * 1000)}" if timeout else None
    try:
        conn = psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            application_name=f"river-supervisor-sql job {job.id}"[:63],
            **({"options": options} if options else {}),
        )
    except psycopg.Error as exc:
        raise SqlError(f"sql.execute: could not connect: {_message(exc)}", exc.sqlstate) from exc
    done = threading.Event()
    watcher = threading.Thread(target=_cancel_on_request, args=(job, conn, done), daemon=True)
    watcher.start()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return {"rowcount": cur.rowcount, "status": cur.statusmessage}
    except psycopg.Error as exc:
        if job.cancel_requested():
            raise JobCancel("sql.execute: statement cancelled on request") from exc
        if exc.sqlstate == "57014" and timeout:
            raise SqlError(
                f"sql.execute: SQLSTATE 57014: statement timed out after {timeout:g}s (statement_timeout)",
                exc.sqlstate,
            ) from exc
        raise SqlError(f"sql.execute: SQLSTATE {exc.sqlstate or '?'}: {_message(exc)}", exc.sqlstate) from exc
    finally:
        done.set()


def _cancel_on_request(job: Job, conn: psycopg.Connection, done: threading.Event) -> None:
    while not done.is_set():
        if job.wait_for_cancel(0.2):
            if not done.is_set():
                conn.cancel_safe()
            return


def _message(exc: psycopg.Error) -> str:
    primary = exc.diag.message_primary if exc.diag else None
    text = primary or str(exc).strip() or type(exc).__name__
    detail = exc.diag.message_detail if exc.diag else None
    return f"{text} ({detail})" if detail else text


def _parse(job: Job) -> tuple[str, Any, str, float | None]:
    args = job.args
    sql = args.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise JobCancel(f"sql.execute: args.sql must be a non-empty string, got {sql!r:.80}")
    params = args.get("params")
    if params is not None and not isinstance(params, list | dict):
        raise JobCancel(f"sql.execute: args.params must be a list or an object, got {type(params).__name__}")
    url = args.get("database_url") or job.context.database_url
    if not isinstance(url, str) or not url:
        raise JobCancel("sql.execute: no database: give args.database_url or configure database_url")
    timeout = args.get("timeout")
    if timeout is not None:
        try:
            timeout = duration_seconds(timeout)
        except ValueError as exc:
            raise JobCancel(f"sql.execute: args.timeout: {exc}") from None
    return sql, params, url, timeout
