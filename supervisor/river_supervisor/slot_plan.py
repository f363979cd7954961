"""Which due slots of a schedule one pass enqueues, under its ``missed`` policy. Pure: no clock or I/O.

Owns ``plan_slots`` and its ``SlotPlan``, the grace that tells an on-time slot from a missed one,
and the bounds of the work (``all``'s cap, ``SCAN_LIMIT``). It may import ``cron`` only; the
policy names themselves are ``schedules``'.

Missed slots (``plan_slots``)
    At each pass the due slots are those in ``(cursor, now]``, where the cursor is the durable
    ``last_slot`` (or the moment the schedule was first registered). A slot is *on time* if it is
    at most ``grace`` old (``now - slot <= grace``, default ``MISSED_GRACE`` = 60 s) and *missed*
    if older. On-time slots are always enqueued, whatever the policy: a leader change, a restart or
    a slow database inside the grace window loses nothing and enqueues each slot exactly once (an
    ``every = "1s"`` schedule across a 2 s failover gets every second). The policy applies only
    to missed slots: ``skip`` enqueues none; ``latest`` enqueues the most recent one unless an
    on-time slot is enqueued anyway (which already is the catch-up run); ``all`` enqueues the most
    recent ``missed_cap``. Slots not enqueued are skipped: the cursor moves past them and the ledger
    records them (one row at the newest skipped slot, with the count and the oldest).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from .cron import IntervalSchedule, Schedule, to_utc

DEFAULT_MISSED_CAP = 100
MISSED_GRACE = 60.0  # seconds: slots younger than this are on time, never "missed"
SCAN_LIMIT = 10_000  # slots looked at when counting missed ones; beyond, the count is a lower bound


@dataclass(frozen=True, slots=True)
class SlotPlan:
    """What one pass does with one schedule's due slots."""

    enqueue: tuple[datetime, ...]  # ascending; on-time slots plus the missed ones the policy keeps
    caught_up: int  # how many of ``enqueue`` were missed slots
    skipped: int  # missed slots not enqueued (a lower bound if not ``skipped_exact``)
    skipped_exact: bool
    skipped_first: datetime | None  # oldest skipped slot, if known
    skipped_last: datetime | None  # newest skipped slot
    last_slot: datetime | None  # the new cursor: the newest slot decided, or None if none was due
    next_run_at: datetime | None  # first slot after the cursor (after ``now`` if nothing was due)


def plan_slots(
    schedule: Schedule,
    cursor: datetime,
    now: datetime,
    *,
    missed: str,
    missed_cap: int | None = None,
    grace: float = MISSED_GRACE,
) -> SlotPlan:
    """Decide the slots in ``(cursor, now]`` under policy ``missed`` (see the module docstring)."""
    cursor, now = to_utc(cursor), to_utc(now)
    boundary = max(cursor, now - timedelta(seconds=grace))  # slots after it are on time
    on_time = tuple(schedule.slots_between(boundary, now))
    keep = {"skip": 0, "latest": 0 if on_time else 1, "all": missed_cap or DEFAULT_MISSED_CAP}[missed]
    # One more than we keep, so the newest skipped slot is known too.
    newest, total, exact, first = _newest_missed(schedule, cursor, boundary, keep + 1)
    kept = newest[len(newest) - keep :] if keep else []
    dropped = newest[: len(newest) - len(kept)]
    skipped = total - len(kept)
    last_slot = on_time[-1] if on_time else (newest[-1] if newest else None)
    return SlotPlan(
        enqueue=(*kept, *on_time),
        caught_up=len(kept),
        skipped=skipped,
        skipped_exact=exact,
        skipped_first=(first if skipped else None),
        skipped_last=(dropped[-1] if dropped else None),
        last_slot=last_slot,
        # max(): a cursor ahead of ``now`` (another host's clock ran ahead) is never re-decided.
        next_run_at=schedule.next_after(max(cursor, now)),
    )


def _newest_missed(
    schedule: Schedule, cursor: datetime, boundary: datetime, count: int
) -> tuple[list[datetime], int, bool, datetime | None]:
    """The newest ``count`` slots in ``(cursor, boundary]``, how many there are, whether that
    number is exact, and the oldest one (if known). Bounded work whatever the gap."""
    if boundary <= cursor:
        return [], 0, True, None
    if isinstance(schedule, IntervalSchedule):
        first = schedule.next_after(cursor)
        if first > boundary:
            return [], 0, True, None
        step = timedelta(seconds=schedule.seconds)
        total = (boundary - first) // step + 1
        last = first + (total - 1) * step
        newest = [last - k * step for k in range(min(count, total))][::-1]
        return newest, total, True, first
    # Cron: count forward from the cursor up to SCAN_LIMIT slots; if the gap holds more, look back
    # from the boundary over growing windows for the newest ``count``.
    window: deque[datetime] = deque(maxlen=count)
    total, first_slot = 0, None
    for slot in schedule.slots_between(cursor, boundary):
        first_slot = first_slot or slot
        window.append(slot)
        total += 1
        if total >= SCAN_LIMIT:
            break
    else:
        return list(window), total, True, first_slot
    span = timedelta(days=1)
    while True:
        start = max(cursor, boundary - span)
        recent: deque[datetime] = deque(maxlen=count)
        seen = 0
        for slot in schedule.slots_between(start, boundary):
            recent.append(slot)
            seen += 1
        if seen >= count or start == cursor:
            return list(recent), max(total, seen), False, first_slot
        span *= 4
