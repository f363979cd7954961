"""The parent's record of what became of a dead worker's jobs: written at once, never given up.

When a worker ends, the parent hands what it knew of it (``children.WorkerHandle.ended``) to the
queue core (``fates.record``), which decides each job's fate. If the database cannot take it now
(restarting, read-only, frozen), the ledger keeps it and tries again with service backoff (up to
``RETRY_CAP`` apart), in the order the workers died, until it is written.

Owns: the parent's pending fates. May import: ``db``, ``fates``, ``children``, ``backoff``, ``errors``.
"""

from __future__ import annotations

import logging
import math
import time

from . import db, fates
from .backoff import service_backoff
from .children import ExitReport, WorkerHandle
from .errors import first_line

log = logging.getLogger(__name__)

RETRY_CAP = 10.0  # seconds between tries to record a dead worker's jobs while the database is away


class FateLedger:
    """Fates written on the parent's connection (``conn``: a ``db.LazyConnection``)."""

    def __init__(self, conn: db.LazyConnection) -> None:
        self._conn = conn
        self._pending: list[tuple[WorkerHandle, ExitReport]] = []
        self.due = math.inf  # monotonic: the next retry
        self._attempts = 0

    def record(self, handle: WorkerHandle, report: ExitReport) -> None:
        """Write the fate of the jobs ``handle`` held now; if the database cannot take it, keep it."""
        if not self._write(handle, report):
            self._pending.append((handle, report))
            self.due = min(self.due, time.monotonic() + service_backoff(1, cap=RETRY_CAP))

    def retry(self, now: float, *, force: bool = False) -> None:
        """Write what is pending once it is due (``force``: now, a last try before exiting)."""
        if not self._pending or (now < self.due and not force):
            return
        pending, self._pending = self._pending, []
        for handle, report in pending:
            if not self._pending and self._write(handle, report, retry=True):
                continue
            self._pending.append((handle, report))  # after the first failure, keep the rest
        if self._pending:
            self._attempts += 1
            self.due = now + service_backoff(self._attempts, cap=RETRY_CAP)
        else:
            self._attempts, self.due = 0, math.inf

    def _write(self, handle: WorkerHandle, report: ExitReport, retry: bool = False) -> bool:
        """The queue core decides what each job becomes (``fates``); False: the database is away."""
        try:
            fates.record(self._conn.get(), handle.ended(report))
        except db.TRANSIENT as exc:
            if not retry:
                log.warning(
                    "could not record the fate of %d jobs of worker %d yet: %s; retrying until it answers",
                    len(handle.held),
                    handle.index,
                    first_line(exc),
                    extra={"event": "worker.fate_unrecorded", "worker": handle.index},
                )
            self._conn.drop()
            return False
        if retry:
            log.info(
                "recorded the fate of the jobs of worker %d (pid %s)",
                handle.index,
                handle.pid,
                extra={"event": "worker.fate_recorded", "worker": handle.index},
            )
        return True
