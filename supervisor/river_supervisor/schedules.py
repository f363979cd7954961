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

Missed slots
    ``slot_plan.plan_slots`` decides which due slots a pass enqueues under the ``missed`` policy
    (re-exported here with ``SlotPlan`` and ``MISSED_GRACE``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from .cron import (
    CronError,
    CronSchedule,
    Schedule,
    every_schedule,
    parse_cron,
)
from .durations import format_duration, parse_duration
from .errors import ConfigError
from .slot_plan import DEFAULT_MISSED_CAP, MISSED_GRACE, SlotPlan, plan_slots

__all__ = [
    "DEFAULT_MISSED",
    "DEFAULT_MISSED_CAP",
    "DEFAULT_OVERLAP",
    "MISSED_GRACE",
    "MISSED_POLICIES",
    "OVERLAP_POLICIES",
    "EffectiveSchedule",
    "EffectiveSet",
    "SlotPlan",
    "display_schedule",
    "effective_schedules",
    "monitor_config",
    "plan_slots",
]

# The policies a schedule may name, here only: the configuration file and plugin declarations check these.
MISSED_POLICIES = ("skip", "latest", "all")
OVERLAP_POLICIES = ("allow", "skip")
DEFAULT_MISSED = "latest"
DEFAULT_OVERLAP = "allow"
RIVER_QUEUE, RIVER_PRIORITY, RIVER_MAX_ATTEMPTS = "default", 1, 25

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
