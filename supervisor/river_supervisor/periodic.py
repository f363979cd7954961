"""The periodic enqueuer: a leader-only service that turns schedule slots into River jobs.

Model
    Each schedule has durable state in ``river_supervisor_periodic``: ``last_slot`` (the newest
    slot decided, enqueued or skipped), ``next_run_at``, ``last_job_id`` and ``defined_by`` (the
    node of the leader that last defined it). A slot ledger, ``river_supervisor_periodic_slot``
    with primary key ``(cluster, periodic_id, slot)``, records every decision. A new leader reads
    ``last_slot`` and continues from there: nothing runs twice, and whatever was missed while no
    host led follows the schedule's ``missed`` policy (``schedules.plan_slots``: slots younger
    than ``missed_grace`` are never "missed").

    Each pass runs in ONE fenced transaction (``leadership.fenced_transaction``: the lease row is
    held FOR SHARE, so a takeover waits for it, and a term no longer held raises ``NotLeader``
    before anything is written). One statement claims the slots in the ledger, inserts the jobs
    for the newly claimed ones, advances ``last_slot`` and notifies River's ``river_insert``
    channel. The ledger's ``ON CONFLICT DO NOTHING`` means a slot can never be enqueued twice,
    whatever the memory of any process says.

    A job is a normal River row: the schedule's kind, args, queue, priority and max_attempts,
    ``scheduled_at`` = the slot, state ``available``, tags ``["periodic"]`` and metadata
    ``{"periodic": true, "river:periodic_job_id": id, "river_supervisor:slot": slot}``.

Shape (STYLE.md, "Shape of a leader-only service")
    ``on_gained(conn, term, now)`` registers the schedules, loads their state, and runs the first
    pass (which decides the missed slots and logs what it skipped and caught up);
    ``tick(conn, term, now)`` runs a pass when something is due and returns when it next wants to
    run; ``on_lost()`` drops memory and writes nothing. No threads, no sleeps, no ``is_leader``.

Orphans (schedules with durable state this leader does not define) are not touched; they are
reported after each gain, with the node that defined them (see ``drift``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from . import db
from .drift import Finding, Orphan, find_orphans
from .leadership import Term, fenced_transaction
from .schedules import MISSED_GRACE, EffectiveSchedule, SlotPlan, plan_slots

logger = logging.getLogger(__name__)

LEDGER_RETENTION = timedelta(days=7)
PRUNE_INTERVAL = timedelta(minutes=10)
PRUNE_BATCH = 1000
MAX_SLEEP = timedelta(minutes=10)  # wake at least this often (pruning, a schedule that never runs)

Observer = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class ClaimedSlot:
    periodic_id: str
    slot: datetime
    outcome: str  # enqueued | skipped_missed | skipped_overlap
    job_id: int | None


@dataclass(slots=True)
class PassResult:
    """What one pass wrote (for logs, observers and tests)."""

    claimed: list[ClaimedSlot] = field(default_factory=list)
    plans: dict[str, SlotPlan] = field(default_factory=dict)
    pruned: int = 0

    @property
    def enqueued(self) -> list[ClaimedSlot]:
        return [slot for slot in self.claimed if slot.outcome == "enqueued"]


def _extra(event: str, **fields: Any) -> dict[str, Any]:
    return {"event": f"periodic.{event}", **fields}


class PeriodicEnqueuer:
    """Enqueues this leader's schedules; see the module docstring."""

    name = "periodic"

    def __init__(
        self,
        schedules: Sequence[EffectiveSchedule],
        *,
        cluster: str,
        node: str,
        observer: Observer | None = None,
        disabled: Iterable[str] = (),
        missed_grace: float = MISSED_GRACE,
        ledger_retention: timedelta = LEDGER_RETENTION,
        report: Callable[[Finding], None] | None = None,
    ) -> None:
        ids = [schedule.id for schedule in schedules]
        if len(ids) != len(set(ids)):
            raise ValueError("periodic schedule ids must be unique")
        self.schedules = tuple(schedules)
        self.cluster = cluster
        self.node = node
        self.disabled = frozenset(disabled)
        self.missed_grace = missed_grace
        self.ledger_retention = ledger_retention
        self._observer = observer
        self._report = report  # each orphan, once per term gained (the supervisor sends it to Sentry)
        self._cursors: dict[str, datetime] | None = None  # None: not leading
        self._next: dict[str, datetime | None] = {}
        self._last_prune: datetime | None = None
        self.orphans: list[Orphan] = []
        self.last_result: PassResult | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def on_gained(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> None:
        """Register the schedules, load their durable state, decide missed slots and write them.

        Two fenced transactions: one registers and reads, one writes the first pass. Slots are
        planned between them, outside any transaction (planning a long gap of a cron schedule can
        take a while, and a leader idle inside a transaction would hold the lease row); nothing
        can change the state in between, since only the term holder writes it.
        """
        now = now.astimezone(UTC)
        with fenced_transaction(conn, term, self.name):
            rows = db.fetch_all(
                conn,
                "periodic_register_many",
                {
                    "cluster": self.cluster,
                    "node": self.node,
                    "now": now,
                    "ids": [s.id for s in self.schedules],
                    "kinds": [s.kind for s in self.schedules],
                    "schedules": [s.schedule_text for s in self.schedules],
                },
            )
            listed = db.fetch_all(conn, "periodic_list", {"cluster": self.cluster})
        cursors = {
            row["id"]: row["registered_at"]
            if row["last_slot"] is None
            else max(row["last_slot"], row["registered_at"])
            for row in rows
        }
        result = self._pass(conn, term, now, cursors)
        self.orphans = find_orphans(listed, self.schedules, self.disabled)
        logger.info(
            "periodic: leading %d schedule(s) in cluster %s (term %d)",
            len(self.schedules),
            self.cluster,
            term.term,
            extra=_extra("gained", cluster=self.cluster, node=self.node, term=term.term),
        )
        for orphan in self.orphans:
            logger.warning(
                "periodic %s: the cluster ran it before (defined by %s) but this leader does not "
                "define it; it is not enqueued",
                orphan.id,
                orphan.defined_by or "an unknown node",
                extra=_extra(
                    "orphan", cluster=self.cluster, periodic_id=orphan.id, defined_by=orphan.defined_by
                ),
            )
            if self._report is not None:
                self._report(orphan)
        self._notify("gained", {"term": term.term, "result": result, "orphans": list(self.orphans)})

    def tick(self, conn: psycopg.Connection[Any], term: Term, now: datetime) -> datetime:
        """Enqueue every due slot in one fenced transaction; return when to run next (UTC)."""
        if self._cursors is None:
            raise RuntimeError("PeriodicEnqueuer.tick() before on_gained()")
        now = now.astimezone(UTC)
        due = any(at is not None and at <= now for at in self._next.values())
        if due or self._prune_due(now):
            result = self._pass(conn, term, now, dict(self._cursors))
            self._notify("tick", {"term": term.term, "result": result})
        return self.next_wake(now)

    def on_lost(self) -> None:
        """Forget everything; the next leader reads the durable state."""
        self._cursors = None
        self._next = {}
        self._last_prune = None

    def next_wake(self, now: datetime) -> datetime:
        wakes = [at for at in self._next.values() if at is not None]
        wakes.append(now + MAX_SLEEP)
        if self._last_prune is not None:
            wakes.append(self._last_prune + PRUNE_INTERVAL)
        return max(min(wakes), now)

    # -- one pass ----------------------------------------------------------------------------------

    def _pass(
        self, conn: psycopg.Connection[Any], term: Term, now: datetime, cursors: dict[str, datetime]
    ) -> PassResult:
        """Plan every schedule (no transaction open), then write every decision in one statement
        and prune a bounded batch, in one fenced transaction. Memory changes only after commit."""
        result = PassResult()
        rows: list[dict[str, Any]] = []
        states: list[tuple[str, datetime | None, datetime | None]] = []
        for schedule in self.schedules:
            cursor = cursors.get(schedule.id, now)
            plan = plan_slots(
                schedule.schedule,
                cursor,
                now,
                missed=schedule.missed,
                missed_cap=schedule.missed_cap,
                grace=self.missed_grace,
            )
            result.plans[schedule.id] = plan
            rows.extend(self._ledger_rows(schedule, plan))
            states.append((schedule.id, plan.last_slot, plan.next_run_at))
            if plan.last_slot is not None:
                cursors[schedule.id] = max(cursor, plan.last_slot)
        prune = self._prune_due(now)
        with fenced_transaction(conn, term, self.name):
            claimed = db.fetch_all(conn, "periodic_enqueue_many", self._params(term, rows, states))
            if prune:
                result.pruned = db.execute(
                    conn,
                    "periodic_prune_slots",
                    {"cluster": self.cluster, "before": now - self.ledger_retention, "limit": PRUNE_BATCH},
                )
        result.claimed = [
            ClaimedSlot(row["periodic_id"], row["slot"], row["outcome"], row["job_id"]) for row in claimed
        ]
        self._commit(result, cursors, now, pruned=prune)
        return result

    def _ledger_rows(self, schedule: EffectiveSchedule, plan: SlotPlan) -> list[dict[str, Any]]:
        rows = []
        if plan.skipped and plan.skipped_last is not None:
            detail = {
                "missed": schedule.missed,
                "count": plan.skipped,
                "exact": plan.skipped_exact,
                "first": plan.skipped_first.isoformat() if plan.skipped_first else None,
            }
            rows.append(self._row(schedule, plan.skipped_last, "skipped_missed", detail))
        enqueue = list(plan.enqueue)
        if schedule.overlap == "skip" and len(enqueue) > 1:
            # Only the newest can run; the older ones would overlap with it.
            for slot in enqueue[:-1]:
                rows.append(self._row(schedule, slot, "skipped_overlap", {"overlap": "skip"}))
            enqueue = enqueue[-1:]
        for slot in enqueue:
            rows.append(self._row(schedule, slot, "enqueued", {}))
        return rows

    @staticmethod
    def _row(
        schedule: EffectiveSchedule, slot: datetime, outcome: str, detail: dict[str, Any]
    ) -> dict[str, Any]:
        return {"schedule": schedule, "slot": slot, "outcome": outcome, "detail": detail}

    def _params(
        self,
        term: Term,
        rows: list[dict[str, Any]],
        states: list[tuple[str, datetime | None, datetime | None]],
    ) -> dict[str, Any]:
        schedules = [row["schedule"] for row in rows]
        return {
            "cluster": self.cluster,
            "term": term.term,
            "leader_id": term.leader_id,
            "ids": [s.id for s in schedules],
            "slots": [row["slot"] for row in rows],
            "outcomes": [row["outcome"] for row in rows],
            "kinds": [s.kind for s in schedules],
            "args": [json.dumps(dict(s.args), separators=(",", ":"), default=str) for s in schedules],
            "queues": [s.queue for s in schedules],
            "priorities": [s.priority for s in schedules],
            "max_attempts": [s.max_attempts for s in schedules],
            "overlap_skip": [s.overlap == "skip" for s in schedules],
            "details": [json.dumps(row["detail"]) for row in rows],
            "state_ids": [state[0] for state in states],
            "last_slots": [state[1] for state in states],
            "next_run_ats": [state[2] for state in states],
        }

    def _prune_due(self, now: datetime) -> bool:
        return self._last_prune is None or now >= self._last_prune + PRUNE_INTERVAL

    def _commit(
        self, result: PassResult, cursors: dict[str, datetime], now: datetime, *, pruned: bool
    ) -> None:
        """After the transaction committed: adopt its cursors, log what changed."""
        self._cursors = cursors
        self._next = {schedule_id: plan.next_run_at for schedule_id, plan in result.plans.items()}
        if pruned:
            self._last_prune = now
        self.last_result = result
        claimed_by_id: dict[str, list[ClaimedSlot]] = {}
        for slot in result.claimed:
            claimed_by_id.setdefault(slot.periodic_id, []).append(slot)
        for schedule in self.schedules:
            plan = result.plans.get(schedule.id)
            mine = claimed_by_id.get(schedule.id, [])
            if plan is not None and (plan.skipped or plan.caught_up):
                logger.warning(
                    "periodic %s: %s%d missed slot(s) skipped, %d caught up (missed=%s)",
                    schedule.id,
                    "" if plan.skipped_exact else "at least ",
                    plan.skipped,
                    plan.caught_up,
                    schedule.missed,
                    extra=_extra(
                        "missed",
                        cluster=self.cluster,
                        periodic_id=schedule.id,
                        skipped=plan.skipped,
                        caught_up=plan.caught_up,
                        first_skipped=plan.skipped_first.isoformat() if plan.skipped_first else None,
                        last_skipped=plan.skipped_last.isoformat() if plan.skipped_last else None,
                    ),
                )
            overlapped = [slot for slot in mine if slot.outcome == "skipped_overlap"]
            if overlapped:
                logger.info(
                    "periodic %s: %d slot(s) skipped, the previous run is still active (overlap=skip)",
                    schedule.id,
                    len(overlapped),
                    extra=_extra("overlap", cluster=self.cluster, periodic_id=schedule.id),
                )
        enqueued = result.enqueued
        if enqueued:
            # One short INFO line per pass (2,000 schedules made one 145 KB line a minute); each job
            # at DEBUG, for whoever is looking for one.
            schedules = len({s.periodic_id for s in enqueued})
            logger.info(
                "periodic: enqueued %d job(s) for %d schedule(s)",
                len(enqueued),
                schedules,
                extra=_extra("enqueued", cluster=self.cluster, jobs=len(enqueued), schedules=schedules),
            )
            if logger.isEnabledFor(logging.DEBUG):
                for s in enqueued:
                    logger.debug(
                        "periodic %s: enqueued job %d for slot %s",
                        s.periodic_id,
                        s.job_id,
                        s.slot.isoformat(),
                        extra=_extra("enqueued_job", cluster=self.cluster, periodic_id=s.periodic_id),
                    )

    def _notify(self, event: str, data: dict[str, Any]) -> None:
        if self._observer is not None:
            self._observer(event, data)


def stored_state(conn: psycopg.Connection[Any], cluster: str) -> list[dict[str, Any]]:
    """Read-only: every schedule with durable state in ``cluster`` (``periodic_list`` rows: id,
    kind, schedule, last_slot, next_run_at, last_job_id, defined_by, registered_at, updated_at)."""
    return db.fetch_all(conn, "periodic_list", {"cluster": cluster})


def schedule_status(
    conn: psycopg.Connection[Any], cluster: str, schedules: Sequence[EffectiveSchedule], now: datetime
) -> list[dict[str, Any]]:
    """``status --json``'s ``periodic`` list: this host's schedules, with the cluster's durable
    state (``last_slot``; ``next_run_at`` stored by the leader, else computed here). Times are
    ISO 8601 with offset (UTC); ``null`` when unknown."""
    stored = {row["id"]: row for row in db.fetch_all(conn, "periodic_list", {"cluster": cluster})}
    out = []
    for schedule in schedules:
        row = stored.get(schedule.id)
        last_slot = row["last_slot"] if row else None
        next_run_at = row["next_run_at"] if row else None
        if next_run_at is None or next_run_at <= now:
            next_run_at = schedule.schedule.next_after(max(now, last_slot) if last_slot else now)
        out.append(
            {
                "id": schedule.id,
                "kind": schedule.kind,
                "last_slot": _iso(last_slot),
                "next_run_at": _iso(next_run_at),
            }
        )
    return out


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None
