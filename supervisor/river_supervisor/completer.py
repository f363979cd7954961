"""Batched recording of job outcomes, as River's BatchCompleter.

Workers ``submit()`` outcomes from any thread; one background thread writes them with one
statement per batch: as soon as ``batch_size`` are waiting, else on every ``max_wait`` (ticks of
``tick`` seconds). At most ``max_batch`` rows go into one statement; ``submit`` blocks while
``max_backlog`` are waiting.

An outcome is never dropped for the database's sake: a batch that fails with a ``db.TRANSIENT``
error (connection lost or refused, restart, read-only, call timeout) is kept and retried, after a
reconnect, with backoff (0.1 s doubling to 5 s) until the database answers. Any other error is the
data's: the batch is split in halves until the row that fails is alone, so the rest lands; that row
is then written without its texts (``_plain``), saying why. Only if even that fails is the one
outcome given up (logged; the job stays held, so its worker's exit records it lost).

``on_flushed(job_ids)`` is called from the completer thread after each recorded batch, so a
worker knows which jobs are safely written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import psycopg

from . import db
from .backoff import service_backoff
from .errors import first_line
from .retry import Cancelled, Completed, Failed, Outcome, record_outcomes

log = logging.getLogger(__name__)

Connect = Callable[[], psycopg.Connection[Any]]


class Completer:
    def __init__(
        self,
        connection: psycopg.Connection[Any] | Connect | str,
        *,
        on_flushed: Callable[[list[int]], None] | None = None,
        batch_size: int = 100,
        tick: float = 0.05,
        max_wait: float = 0.25,
        max_batch: int = 5_000,
        max_backlog: int = 10_000,
        retry_cap: float = 5.0,
    ) -> None:
        if isinstance(connection, psycopg.Connection):
            self._conn: psycopg.Connection[Any] | None = connection
            self._connect: Connect | None = None
        elif isinstance(connection, str):
            url = connection
            self._conn = None
            self._connect = lambda: db.connect(url, application_name="river-supervisor completer")
        else:
            self._conn = None
            self._connect = connection
        self.batch_size = batch_size
        self.tick = tick
        self.max_wait = max_wait
        self.max_batch = max_batch
        self.max_backlog = max_backlog
        self.retry_cap = retry_cap
        self.on_flushed = on_flushed
        self._pending: deque[Outcome] = deque()
        self._cond = threading.Condition()
        self._submitted = 0
        self._done = 0  # recorded or dropped
        self._flush_wanted = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self.recorded = 0
        self.dropped = 0

    def start(self) -> Completer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="river-completer", daemon=True)
            self._thread.start()
        return self

    def submit(self, outcome: Outcome) -> None:
        with self._cond:
            if self._closing:
                raise RuntimeError("completer is closed")
            while len(self._pending) >= self.max_backlog and not self._closing:
                self._cond.wait(self.tick)
            self._pending.append(outcome)
            self._submitted += 1
            if len(self._pending) >= self.batch_size:
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is recorded (or dropped); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            self._flush_wanted = True
            self._cond.notify_all()
            while self._done < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else self.tick)
            return True

    def close(self, timeout: float | None = 10.0) -> bool:
        """Record what is waiting, stop the thread; False if it did not finish within ``timeout``."""
        flushed = self.flush(timeout) if self._thread is not None else not self._pending
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._connect is not None and self._conn is not None:
            self._conn.close()
        return flushed

    # --- the completer thread -------------------------------------------------------------------

    def _next_batch(self) -> list[Outcome] | None:
        ticks = 0
        with self._cond:
            while True:
                if self._pending and (
                    len(self._pending) >= self.batch_size
                    or self._flush_wanted
                    or self._closing
                    or ticks * self.tick >= self.max_wait
                ):
                    count = min(len(self._pending), self.max_batch)
                    batch = [self._pending.popleft() for _ in range(count)]
                    if not self._pending:
                        self._flush_wanted = False
                    return batch
                if self._closing:
                    return None
                if not self._pending:
                    self._flush_wanted = False
                    ticks = 0
                self._cond.wait(self.tick)
                ticks += 1

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            if self._connect is None:
                raise psycopg.InterfaceError("completer connection is closed and cannot be reopened")
            self._conn = self._connect()
        return self._conn

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._write(batch)

    def _write(self, batch: list[Outcome]) -> None:
        """Record ``batch``, retrying what the database may outlive for as long as it takes."""
        attempt = 0
        while True:
            try:
                dropped = self._write_isolating(batch)
            except db.TRANSIENT as exc:
                attempt += 1
                delay = service_backoff(attempt, base=0.1, cap=self.retry_cap)
                if attempt == 1 or attempt % 10 == 0:  # say it, not once per retry
                    log.warning(
                        "recording %d job outcomes failed (attempt %d), keeping them and retrying: %s",
                        len(batch),
                        attempt,
                        first_line(exc),
                        extra={"event": "queue.completer_retry", "jobs": len(batch), "attempt": attempt},
                    )
                self._reset_connection()
                self._pause(delay)
                continue
            if attempt:
                log.info(
                    "recorded %d job outcomes after %d failed attempts",
                    len(batch),
                    attempt,
                    extra={"event": "queue.completer_recovered", "jobs": len(batch), "attempt": attempt},
                )
            recorded = [o.job_id for o in batch if o.job_id not in dropped]
            if self.on_flushed is not None and recorded:  # before _finish: flush() returns after it
                try:
                    self.on_flushed(recorded)
                except Exception:
                    log.exception("on_flushed callback failed", extra={"event": "queue.completer_callback"})
            self._finish(len(recorded), dropped=False)
            self._finish(len(dropped), dropped=True)
            return

    def _write_isolating(self, batch: list[Outcome]) -> set[int]:
        """Write ``batch``; on an error of the data, halve it until the bad row is alone.

        Returns the ids given up (normally none). ``db.TRANSIENT`` errors propagate: the caller
        retries the whole batch (rows already written are left alone: only running rows change).
        """
        try:
            record_outcomes(self._connection(), batch)
            return set()
        except db.TRANSIENT:
            raise
        except Exception as exc:
            if len(batch) > 1:
                middle = len(batch) // 2
                return self._write_isolating(batch[:middle]) | self._write_isolating(batch[middle:])
            return self._write_alone(batch[0], exc)

    def _write_alone(self, outcome: Outcome, exc: Exception) -> set[int]:
        reason = first_line(exc)
        plain = _plain(outcome, reason)
        log.error(
            "job %d: its outcome could not be stored (%s); recording it without its texts",
            outcome.job_id,
            reason,
            extra={"event": "queue.outcome_unstorable", "job_id": outcome.job_id},
        )
        try:
            if plain is not None:
                record_outcomes(self._connection(), [plain])
                return set()
        except db.TRANSIENT:
            raise
        except Exception as again:
            reason = first_line(again)
        log.error(
            "job %d: giving its outcome up (%s); its worker's exit will record the job lost",
            outcome.job_id,
            reason,
            extra={"event": "queue.completer_dropped", "job_id": outcome.job_id},
        )
        return {outcome.job_id}

    def _reset_connection(self) -> None:
        if self._connect is not None and self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:  # closing a broken connection: nothing left to do
                log.debug("closing the completer connection failed: %s", exc)
            self._conn = None

    def _pause(self, delay: float) -> None:
        """Wait ``delay`` seconds between retries (a closing completer keeps retrying: close() bounds it)."""
        with self._cond:
            self._cond.wait(delay)

    def _finish(self, count: int, *, dropped: bool) -> None:
        with self._cond:
            self._done += count
            if dropped:
                self.dropped += count
            else:
                self.recorded += count
            self._cond.notify_all()


def _plain(outcome: Outcome, reason: str) -> Outcome | None:
    """The outcome without the texts user code gave it (the error, trace or output that failed)."""
    note = f"the job's own error text could not be stored: {reason}"
    if isinstance(outcome, Completed):
        return Completed(job_id=outcome.job_id) if outcome.output is not None else None
    if isinstance(outcome, Failed):
        return Failed(outcome.job_id, outcome.attempt, outcome.max_attempts, note, None, outcome.errors_count)
    if isinstance(outcome, Cancelled):
        return Cancelled(outcome.job_id, outcome.attempt, note)
    return None  # Snoozed, Interrupted: nothing of user code in them
