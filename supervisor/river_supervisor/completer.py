"""Batched recording of job outcomes, as River's BatchCompleter.

Workers ``submit()`` outcomes from any thread; one background thread writes them with one
statement per batch: as soon as ``batch_size`` are waiting, else on every ``max_wait`` (ticks of
``tick`` seconds). At most ``max_batch`` rows go into one statement; ``submit`` blocks while
``max_backlog`` are waiting. A batch that fails on a connection error is kept and retried after a
reconnect with backoff; any other error is retried a few times, then logged and dropped (the
rescuer will find those jobs).

``on_flushed(job_ids)`` is called from the completer thread after each recorded batch, so a
worker knows which jobs are safely written.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import psycopg

from . import db
from .retry import Outcome, record_outcomes

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
        max_failures: int = 3,
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
        self.max_failures = max_failures
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
        failures = 0
        delay = 0.1
        while True:
            try:
                record_outcomes(self._connection(), batch)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                log.warning(
                    "recording %d job outcomes failed, retrying: %s",
                    len(batch),
                    exc,
                    extra={"event": "queue.completer_retry", "jobs": len(batch), "delay": delay},
                )
                if self._connect is not None and self._conn is not None:
                    self._conn.close()
                    self._conn = None
                time.sleep(delay * random.uniform(0.9, 1.1))  # backoff between reconnects
                delay = min(delay * 2, 5.0)
                continue
            except Exception:
                failures += 1
                if failures < self.max_failures:
                    continue
                log.exception(
                    "dropping %d job outcomes after %d failures",
                    len(batch),
                    failures,
                    extra={"event": "queue.completer_dropped", "jobs": len(batch)},
                )
                self._finish(len(batch), dropped=True)
                return
            if self.on_flushed is not None:  # before _finish: flush() returns after the callback
                try:
                    self.on_flushed([outcome.job_id for outcome in batch])
                except Exception:
                    log.exception("on_flushed callback failed", extra={"event": "queue.completer_callback"})
            self._finish(len(batch), dropped=False)
            return

    def _finish(self, count: int, *, dropped: bool) -> None:
        with self._cond:
            self._done += count
            if dropped:
                self.dropped += count
            else:
                self.recorded += count
            self._cond.notify_all()
