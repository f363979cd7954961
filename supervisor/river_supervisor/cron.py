"""Schedules: when a periodic job is due. Pure: no clock, no database.

Two kinds of schedule share one interface (``next_after`` and ``slots_between``):

``CronSchedule``
    A five-field cron expression as River's Go library (robfig/cron ``ParseStandard``) accepts it:
    minute, hour, day of month, month, day of week; ``*``, ``?``, lists, ranges, ``N/step`` and
    ``a-b/step``; month and weekday names in any case; the descriptors ``@yearly``, ``@annually``,
    ``@monthly``, ``@weekly``, ``@daily``, ``@midnight``, ``@hourly``; an optional ``CRON_TZ=Zone``
    (or ``TZ=Zone``) prefix, which wins over the schedule's ``timezone``. Day of month and day of week
    combine like River's: with either field a star (``*``, ``?``, ``*/1``) both must match, otherwise
    either may ("``0 12 */2 * 5``" runs on odd days *and* on Fridays; Debian cron would read the
    ``*/2`` as a star and require both, River does not).

    Times are evaluated in the schedule's timezone by cronsim, which follows Debian cron across
    daylight-saving changes:

    - a job at a fixed time (minute and hour both without a leading ``*``), e.g. ``30 2 * * *``,
      runs exactly once on both change days: when 02:30 does not exist (spring) it runs right after
      the jump (03:00 new time); when 02:30 happens twice (autumn) it runs at the first one only;
    - a job with a wildcard minute or hour (``0 * * * *``, ``*/15 * * * *``) follows real time:
      it runs every elapsed hour, so in spring the skipped local hour has no run (23 runs that day)
      and in autumn the repeated hour runs twice (25 runs), one hour of real time apart.

``IntervalSchedule``
    Every N seconds (N >= 1). For ``every = "90s"`` the slots are aligned to a fixed anchor, the
    Unix epoch in UTC: the slots are ``epoch + k * N``. Every host computes the same slots from
    nothing but the schedule, whatever time it started, so a new leader needs no agreement on when
    a cadence began, and ``status`` on any host shows the same next run. ``@every D`` inside a cron
    string keeps River's meaning instead (the conformance cases pin it): the next run is the
    reference time truncated to the second plus D. The enqueuer always chains slots from its
    durable ``last_slot``, so once a schedule has run its grid is stable across leaders either way.

Slots are aware datetimes in UTC. ``next_after(t)`` is the first slot strictly after ``t``;
``slots_between(after, until)`` yields the slots in ``(after, until]`` in order.

Departures from River's Go library (documented exceptions):
- none of River's cron cases are rejected here. cronsim itself refuses some expressions River
  accepts (``?``, descriptors, ``@every``, impossible dates such as ``0 0 30 2 *``); they are
  translated before cronsim sees them, and an impossible date becomes a schedule that never runs,
  as in River.
- cronsim would accept things River rejects (six fields with seconds, weekday ``7``, ``L``, ``W``,
  ``#``); the validator below follows River and rejects them.
- River gives up looking for a match after five years, cronsim after fifty: an expression that
  matches only once in more than five years (none in the cases) would run here and never in River.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .durations import parse_go_duration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_INTERVAL = 1.0  # River: "never less than one second"

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (name, low, high, names) per field, in expression order.
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: index + 1 for index, name in enumerate(_MONTHS)}),
    ("day of week", 0, 6, {name: index for index, name in enumerate(_DAYS)}),
)
_TZ_PREFIX = re.compile(r"^(?:CRON_TZ|TZ)=(\S*)\s*(.*)$", re.DOTALL)


class CronError(ValueError):
    """An expression River would refuse; the text says what is wrong (callers add where)."""


def to_utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime")
    return t.astimezone(UTC)


def zone(name: str | tzinfo) -> tzinfo:
    """A tzinfo from an IANA name (``UTC``, ``Europe/Berlin``) or a tzinfo as is."""
    if isinstance(name, tzinfo):
        return name
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone {name!r} (expected an IANA name such as Europe/Berlin)") from exc


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A cron expression evaluated in ``tz``; ``text`` is what the user wrote."""

    text: str
    tz: tzinfo
    cronsim_expr: str | None  # None: a date that never exists (``0 0 30 2 *``): never runs
    canonical: str = field(default="")  # the five fields after descriptor expansion, for Sentry

    def next_after(self, t: datetime) -> datetime | None:
        return next(self._iterate(t), None)

    def slots_between(self, after: datetime, until: datetime) -> Iterator[datetime]:
        end = to_utc(until)
        for slot in self._iterate(after):
            if slot > end:
                return
            yield slot

    def _iterate(self, after: datetime) -> Iterator[datetime]:
        if self.cronsim_expr is None:
            return
        start = to_utc(after).astimezone(self.tz)
        # cronsim drops microseconds, then ticks one second: truncating can only move ``start``
        # back, so every result is still strictly after ``after``, which we check anyway.
        try:
            for local in CronSim(self.cronsim_expr, start):
                slot = local.astimezone(UTC)
                if slot > after:
                    yield slot
        except CronSimError:  # pragma: no cover - validated at parse time
            return


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """Every ``seconds``; slots on ``anchor + k * seconds``, or River's ``@every`` if no anchor."""

    text: str
    seconds: float
    anchor: datetime | None = EPOCH

    def next_after(self, t: datetime) -> datetime:
        t = to_utc(t)
        step = timedelta(seconds=self.seconds)
        if self.anchor is None:  # River: t truncated to the second, plus the interval
            return t.replace(microsecond=0) + step
        periods = (t - self.anchor) // step + 1
        return self.anchor + periods * step

    def slots_between(self, after: datetime, until: datetime) -> Iterator[datetime]:
        end = to_utc(until)
        slot = self.next_after(after)
        step = timedelta(seconds=self.seconds)
        while slot <= end:
            yield slot
            slot += step


Schedule = CronSchedule | IntervalSchedule


def _every_seconds(text: str) -> float:
    """``@every``'s duration, read as River reads it (Go's grammar)."""
    if not text:
        raise CronError("@every needs a duration such as 90s or 1h30m")
    try:
        return parse_go_duration(text)
    except ValueError:
        raise CronError(f"@every {text}: not a duration (expected e.g. 90s, 1h30m, 1.5h)") from None


def every_schedule(seconds: float) -> IntervalSchedule:
    """``every = N`` seconds from configuration: epoch-aligned slots."""
    if seconds < MIN_INTERVAL:
        raise CronError(f"every must be at least {MIN_INTERVAL:g}s, got {seconds:g}s")
    return IntervalSchedule(text=f"every {seconds:g}s", seconds=float(seconds), anchor=EPOCH)


def parse_cron(expression: str, timezone: str | tzinfo = "UTC") -> Schedule:
    """Parse ``expression`` (River's syntax); raise ``CronError`` naming what is wrong."""
    text = expression.strip()
    tz = zone(timezone)
    prefix = _TZ_PREFIX.match(text)
    if prefix:
        if not prefix.group(1):
            raise CronError("CRON_TZ= needs a zone name")
        tz = zone(prefix.group(1))
        text = prefix.group(2).strip()
    if not text:
        raise CronError("empty cron expression")
    if text.startswith("@every"):
        rest = text[len("@every") :]
        if rest and not rest[0].isspace():
            raise CronError(f"unknown descriptor {text.split()[0]!r}")
        seconds = _every_seconds(rest.strip())
        # River: shorter than a second becomes one second; fractions of a second are truncated.
        seconds = max(1.0, float(int(seconds)))
        return IntervalSchedule(text=expression.strip(), seconds=seconds, anchor=None)
    if text.startswith("@"):
        name = text.split()[0]
        if name.lower() not in _DESCRIPTORS or len(text.split()) != 1:
            known = ", ".join(_DESCRIPTORS)
            raise CronError(f"unknown descriptor {name!r} (expected one of {known} or @every)")
        text = _DESCRIPTORS[name.lower()]
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}")
    values = [_parse_field(raw, index) for index, raw in enumerate(fields)]
    canonical = " ".join(fields).replace("?", "*")  # Sentry and Debian cron know no "?"
    # minute and hour keep their text (a leading star decides cronsim's DST handling, as in
    # Debian); day of month and weekday become "*" or an explicit list, so that their AND/OR
    # combination is River's (see the module docstring).
    parts = [fields[0].replace("?", "*"), fields[1].replace("?", "*"), "", fields[3].replace("?", "*"), ""]
    for index in (2, 4):
        numbers, star = values[index]
        parts[index] = "*" if star else ",".join(str(n) for n in sorted(numbers))
    expr = " ".join(parts)
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError:
        # Fields are valid by River's rules, so this is cronsim's "no month has that day" check:
        # River accepts the expression and never runs it; so do we.
        return CronSchedule(text=expression.strip(), tz=tz, cronsim_expr=None, canonical=canonical)
    return CronSchedule(text=expression.strip(), tz=tz, cronsim_expr=expr, canonical=canonical)


def _parse_field(raw: str, index: int) -> tuple[set[int], bool]:
    """The values a field matches and whether it is a "star" (robfig's starBit)."""
    name, low, high, names = _FIELDS[index]
    values: set[int] = set()
    star = False
    for term in raw.split(","):
        term_values, term_star = _parse_term(term, name, low, high, names)
        values |= term_values
        star = star or term_star
    return values, star


def _parse_term(term: str, name: str, low: int, high: int, names: dict[str, int]) -> tuple[set[int], bool]:
    range_part, *steps = term.split("/")
    if len(steps) > 1:
        raise CronError(f"{name}: {term!r}: too many slashes")
    bounds = range_part.split("-")
    star = False
    if bounds == ["*"] or bounds == ["?"]:
        start, end, star = low, high, True
    elif len(bounds) == 1:
        start = end = _value(bounds[0], name, low, high, names)
    elif len(bounds) == 2:
        start = _value(bounds[0], name, low, high, names)
        end = _value(bounds[1], name, low, high, names)
    else:
        raise CronError(f"{name}: {term!r}: too many hyphens")
    step = 1
    if steps:
        if not steps[0].isdigit():
            raise CronError(f"{name}: {term!r}: step must be a positive number")
        step = int(steps[0])
        if step == 0:
            raise CronError(f"{name}: {term!r}: step must be a positive number")
        if len(bounds) == 1 and not star:  # "N/step" means "N-max/step"
            end = high
        if step > 1:
            star = False
    if start > end:
        raise CronError(f"{name}: {term!r}: range start is after its end")
    return set(range(start, end + 1, step)), star


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise CronError(f"{name}: {text!r} is not a number{' or a name' if names else ''}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name}: {value} is out of range {low}-{high}")
    return value
