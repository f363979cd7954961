"""Durations as people write them: ``"15s"``, ``"5m"``, ``"1h30m"``, ``"2d"``, ``"250ms"``, or seconds.

A string is a sequence of ``<number><unit>`` parts with units in descending order (``d``, ``h``,
``m``, ``s``, ``ms``), each used at most once, so ``"1h30m"`` reads one way only. A bare number
(``90``, ``1.5`` or the string ``"90"``) is seconds. Negative, infinite, NaN and malformed values are
rejected with a ``ValueError`` whose text is what the user should have written. The configuration
file, plugin declarations (``plugins.duration_seconds``) and schedules all read durations so.

The one other grammar is Go's ``time.ParseDuration`` (``parse_go_duration``): River reads a cron
expression's ``@every 1h30m`` with it, so ``cron`` reads that part as River does, not as above.
"""

from __future__ import annotations

import math
import re

EXPECTED = 'a duration such as "15s", "5m", "1h30m", "250ms" or a number of seconds'

# Order matters: a part's unit must come after every unit before it in this tuple.
_UNITS: tuple[tuple[str, float], ...] = (
    ("d", 86400.0),
    ("h", 3600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("ms", 0.001),
)
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: object) -> float:
    """Seconds in ``value``; ``ValueError`` (saying what was expected) if it is not a duration."""
    if isinstance(value, bool):  # bool is an int; ``true`` is no duration
        raise ValueError(EXPECTED)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value.strip())
    else:
        raise ValueError(EXPECTED)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(EXPECTED)
    return seconds


def _parse_text(text: str) -> float:
    if _NUMBER.fullmatch(text):
        return float(text)
    units = [unit for unit, _ in _UNITS]
    scale = dict(_UNITS)
    total, position, last = 0.0, 0, -1
    for match in _PART.finditer(text):
        if match.start() != position:
            raise ValueError(EXPECTED)
        rank = units.index(match.group(2))
        if rank <= last:  # "30m1h", "1h1h": out of order or repeated
            raise ValueError(EXPECTED)
        total += float(match.group(1)) * scale[match.group(2)]
        position, last = match.end(), rank
    if position == 0 or position != len(text):
        raise ValueError(EXPECTED)
    return total


# Go's time.ParseDuration: unsigned decimal numbers with units, in any order, repeats allowed.
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration (``1h30m``, ``1.5h``, ``90s``, ``500ms``); ``ValueError`` if it is not one.

    Go accepts a bare ``0`` (zero); River's ``@every`` has no use for it, so it is refused here too.
    """
    text = text.strip()
    total, position = 0.0, 0
    for match in _GO_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"{text!r}: not a Go duration (expected e.g. 90s, 1h30m, 1.5h)")
    return total


def format_duration(seconds: float) -> str:
    """The shortest string ``parse_duration`` reads back as ``seconds`` (``3600`` -> ``"1h"``)."""
    if seconds == 0:
        return "0s"
    millis = round(seconds * 1000)
    if abs(millis - seconds * 1000) > 1e-6:
        return f"{seconds:g}s"
    parts = []
    for unit, size in _UNITS:
        count, millis = divmod(millis, round(size * 1000))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
