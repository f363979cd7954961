"""Effective schedules and the ``missed`` policy. Pure: no clock, no database.

Where schedules come from
    Plugins declare schedules (``plugin.periodic(...)``, duck-typed: any object with ``id``,
    ``kind``, ``cron``/``every`` ... and ``plugin``); ``[[periodic]]`` entries of the configuration
    file add new ones, override a declared one by ``id`` (the fields present in the file win;
    ``cron`` and ``every`` replace each other) or disable it (``enabled = false``).
    ``effective_schedules`` returns the result with every default resolved, the ids disabled, and
    the problems ``check`` reports (a kind with no handler on this host) without raising.

Defaults
    - ``missed = "latest"``: after an outage the schedule runs once to catch up, then follows its
      cadence. That is what users of a single cron host expect of a nightly job that was due while
      the host was down (anacron's behaviour); ``skip`` silently loses the run (River OSS's
      complaint), ``all`` floods the queue after a long outage (River Pro's issue #1035).
    - ``missed_cap = 100`` for ``all``: only the most recent 100 missed slots are enqueued.
    - ``overlap = "allow"`` (River's behaviour); queue, priority and max_attempts come from the
      kind's plugin options when the kind is known here, else River's defaults.

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

import hashlib
import json
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .cron import (
    CronError,
    CronSchedule,
    IntervalSchedule,
    Schedule,
    every_schedule,
    parse_cron,
    to_utc,
)
from .durations import format_duration, parse_duration
from .errors import ConfigError

# The policies a schedule may name, here only: the configuration file and plugin declarations check these.
MISSED_POLICIES = ("skip", "latest", "all")
OVERLAP_POLICIES = ("allow", "skip")
DEFAULT_MISSED = "latest"
DEFAULT_MISSED_CAP = 100
DEFAULT_OVERLAP = "allow"
MISSED_GRACE = 60.0  # seconds: slots younger than this are on time, never "missed"
RIVER_QUEUE, RIVER_PRIORITY, RIVER_MAX_ATTEMPTS = "default", 1, 25
SCAN_LIMIT = 10_000  # slots looked at when counting missed ones; beyond, the count is a lower bound

_ENTRY_FIELDS = (
    "kind",
    "cron",
    "every",
    "timezone",
    "args",
    "queue",
    "priority",
    "max_attempts",
    "missed",
    "missed_cap",
    "overlap",
    "monitor",
)
# What an unset PeriodicEntry field holds, to tell "present in the file" from "default".
_ENTRY_DEFAULTS: dict[str, Any] = {"timezone": "UTC", "args": {}, "enabled": True}


@dataclass(frozen=True, slots=True)
class EffectiveSchedule:
    """One schedule as this host runs it, every default resolved."""

    id: str
    kind: str
    cron: str | None
    every: float | None
    timezone: str
    args: Mapping[str, Any]
    queue: str
    priority: int
    max_attempts: int
    missed: str
    missed_cap: int | None
    overlap: str
    monitor: bool
    defined_by: str  # "plugin:<name>", "config", or "plugin:<name>+config" for an override
    schedule: Schedule = field(compare=False, repr=False)

    @property
    def schedule_text(self) -> str:
        """The schedule as stored and compared: ``cron:<expr> tz=<zone>`` or ``every:<seconds>``."""
        if self.cron is not None:
            return f"cron:{self.cron} tz={self.timezone}"
        return f"every:{self.every:g}"

    def definition(self) -> dict[str, Any]:
        """The fields that decide what is enqueued and when: canonical JSON for fingerprints."""
        return {
            "id": self.id,
            "kind": self.kind,
            "cron": self.cron,
            "every": self.every,
            "timezone": self.timezone,
            "args": json.loads(json.dumps(dict(self.args), sort_keys=True, default=str)),
            "queue": self.queue,
            "priority": self.priority,
            "max_attempts": self.max_attempts,
            "missed": self.missed,
            "missed_cap": self.missed_cap,
            "overlap": self.overlap,
        }

    def digest(self) -> str:
        text = json.dumps(self.definition(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class EffectiveSet:
    schedules: tuple[EffectiveSchedule, ...]
    disabled: frozenset[str]
    problems: tuple[dict[str, Any], ...]

    def by_id(self) -> dict[str, EffectiveSchedule]:
        return {schedule.id: schedule for schedule in self.schedules}


def effective_schedules(
    decls: Iterable[Any],
    entries: Iterable[Any] = (),
    *,
    kinds: Mapping[str, Any] | None = None,
    path: str | None = None,
) -> EffectiveSet:
    """Merge plugin declarations with ``[[periodic]]`` entries; raise ``ConfigError`` on a bad one.

    ``kinds`` maps each job kind handled on this host to its options (anything with ``queue``,
    ``priority``, ``max_attempts``); ``None`` means unknown, and then no kind is reported missing.
    """
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    for decl in decls:
        plugin = getattr(decl, "plugin", None) or "?"
        if decl.id in merged:
            raise ConfigError(
                f"plugin {plugin}", f"periodic id={decl.id}", f"also declared by {origin[decl.id]}"
            )
        merged[decl.id] = {name: getattr(decl, name, None) for name in _ENTRY_FIELDS}
        merged[decl.id]["enabled"] = getattr(decl, "enabled", True)
        origin[decl.id] = f"plugin:{plugin}"
    seen: set[str] = set()
    for entry in entries:
        where = f"[[periodic]] id={entry.id}"
        if entry.id in seen:
            raise ConfigError(path, where, "defined twice in the file")
        seen.add(entry.id)
        present = _present_fields(entry)
        values = merged.setdefault(entry.id, {})
        origin[entry.id] = f"{origin[entry.id]}+config" if entry.id in origin else "config"
        if "cron" in present or "every" in present:
            values.pop("cron", None)
            values.pop("every", None)
        for name in present:
            values[name] = getattr(entry, name)
    schedules: list[EffectiveSchedule] = []
    disabled: set[str] = set()
    problems: list[dict[str, Any]] = []
    for schedule_id, values in merged.items():
        if values.get("enabled") is False:
            disabled.add(schedule_id)
            continue
        where_path = path if "config" in origin[schedule_id] else origin[schedule_id].replace(":", " ")
        resolved = _resolve(schedule_id, values, origin[schedule_id], kinds, where_path)
        schedules.append(resolved)
        if kinds is not None and resolved.kind not in kinds:
            problems.append(
                {
                    "kind": "periodic_kind_unknown",
                    "id": schedule_id,
                    "job_kind": resolved.kind,
                    "message": f"periodic {schedule_id}: no plugin here handles kind {resolved.kind!r}",
                }
            )
    schedules.sort(key=lambda s: s.id)
    return EffectiveSet(tuple(schedules), frozenset(disabled), tuple(problems))


def _present_fields(entry: Any) -> set[str]:
    """Fields the file sets. Prefers the entry's own record (``present``/``fields_set``); otherwise
    a field counts as present when it differs from its default (so a file cannot override a
    plugin's timezone back to ``UTC`` or its args back to ``{}`` without such a record)."""
    for attribute in ("given", "present", "fields_set"):
        recorded = getattr(entry, attribute, None)
        if recorded:  # empty: an entry built in code, not read from a file
            return {name for name in recorded if name in (*_ENTRY_FIELDS, "enabled")}
    found = set()
    for name in (*_ENTRY_FIELDS, "enabled"):
        value = getattr(entry, name, None)
        if value is not None and value != _ENTRY_DEFAULTS.get(name):
            found.add(name)
    return found


def _resolve(
    schedule_id: str,
    values: Mapping[str, Any],
    origin: str,
    kinds: Mapping[str, Any] | None,
    path: str | None,
) -> EffectiveSchedule:
    where = f"[[periodic]] id={schedule_id}"
    kind = values.get("kind")
    if not kind:
        raise ConfigError(path, f"{where}: kind", "a job kind is required")
    cron, every = values.get("cron"), values.get("every")
    if (cron is None) == (every is None):
        raise ConfigError(path, where, "give exactly one of cron or every")
    timezone = values.get("timezone") or "UTC"
    try:
        if cron is not None:
            schedule: Schedule = parse_cron(cron, timezone)
        else:
            every = _seconds(every)
            schedule = every_schedule(every)
    except CronError as exc:
        raise ConfigError(path, f"{where}: {'cron' if cron is not None else 'every'}", str(exc)) from None
    missed = values.get("missed") or DEFAULT_MISSED
    if missed not in MISSED_POLICIES:
        raise ConfigError(path, f"{where}: missed", f"one of {', '.join(MISSED_POLICIES)}, got {missed!r}")
    cap = values.get("missed_cap")
    if missed == "all":
        cap = DEFAULT_MISSED_CAP if cap is None else cap
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise ConfigError(path, f"{where}: missed_cap", f"a positive integer, got {cap!r}")
    else:
        cap = None
    overlap = values.get("overlap") or DEFAULT_OVERLAP
    if overlap not in OVERLAP_POLICIES:
        raise ConfigError(path, f"{where}: overlap", f"one of {', '.join(OVERLAP_POLICIES)}, got {overlap!r}")
    options = (kinds or {}).get(kind)

    def pick(name: str, default: Any) -> Any:
        value = values.get(name)
        if value is None and options is not None:
            value = getattr(options, name, None)
        return default if value is None else value

    return EffectiveSchedule(
        id=schedule_id,
        kind=kind,
        cron=cron,
        every=every,
        timezone=timezone,
        args=dict(values.get("args") or {}),
        queue=pick("queue", RIVER_QUEUE),
        priority=int(pick("priority", RIVER_PRIORITY)),
        max_attempts=int(pick("max_attempts", RIVER_MAX_ATTEMPTS)),
        missed=missed,
        missed_cap=cap,
        overlap=overlap,
        monitor=bool(values.get("monitor") or False),
        defined_by=origin,
        schedule=schedule,
    )


def _seconds(value: object) -> float:
    """``every`` arrives in seconds from config and plugins; a string is read as the file reads it."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise CronError(f"{exc}, got {value!r}") from None


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


def monitor_config(
    schedule: EffectiveSchedule, *, checkin_margin: int = 5, max_runtime: int = 30
) -> dict[str, Any]:
    """Sentry Crons ``monitor_config`` for a schedule (margins in minutes, as Sentry wants).

    Sentry knows crontab and interval schedules in whole minutes or larger units: an interval is
    expressed in the largest unit that divides it, and one under a minute (or not a whole number of
    minutes) is rounded up to whole minutes.
    """
    config: dict[str, Any] = {"checkin_margin": checkin_margin, "max_runtime": max_runtime}
    inner = schedule.schedule
    if isinstance(inner, CronSchedule):
        config["schedule"] = {"type": "crontab", "value": inner.canonical}
        config["timezone"] = getattr(inner.tz, "key", None) or (
            "UTC" if inner.tz is UTC else schedule.timezone
        )
        return config
    minutes = max(1, math.ceil(inner.seconds / 60))
    for unit, size in (("week", 7 * 24 * 60), ("day", 24 * 60), ("hour", 60), ("minute", 1)):
        if minutes % size == 0:
            config["schedule"] = {"type": "interval", "value": minutes // size, "unit": unit}
            break
    config["timezone"] = "UTC"
    return config


def display_schedule(text: str) -> str:
    """``schedule_text`` for people: ``every:10`` -> ``every 10s``, ``cron:0 3 * * * tz=UTC`` ->
    ``0 3 * * * (UTC)``; anything else unchanged."""
    if text.startswith("every:"):
        try:
            return f"every {format_duration(float(text[len('every:') :]))}"
        except ValueError:
            return text
    if text.startswith("cron:"):
        expression, _, zone = text[len("cron:") :].rpartition(" tz=")
        return f"{expression} ({zone})" if expression else text[len("cron:") :]
    return text
