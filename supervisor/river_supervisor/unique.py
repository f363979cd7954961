"""River's unique jobs: the options, the state bitmask and the unique key.

River (``internal/dbunique``) hashes a string built from the job's kind, its arguments, a time
bucket and its queue with SHA-256, stores the digest in ``river_job.unique_key`` and the set of
states in which the key is held in ``unique_states`` (``bit(8)``). A partial unique index over
``unique_key`` where ``river_job_state_in_bitmask(unique_states, state)`` enforces it.

The hashed string, with each part present only when its option asks for it::

    &kind=<kind>&args=<args, top-level keys sorted>&period=<RFC 3339 bucket start>&queue=<queue>

Arguments are hashed as River's Go client encodes them (``encoding/json``): compact, HTML-safe
escapes, Go's float formatting. Nested objects keep their insertion order (Go keeps wire order).
The conformance goldens in riverqueue/river ``conformance/fixtures/unique_keys.json`` check this.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from .errors import InvalidJob

# River's state -> bit value in unique_states (protocol.json job_states.unique_bit).
STATE_BITS: Mapping[str, int] = {
    "available": 1,
    "cancelled": 2,
    "completed": 4,
    "discarded": 8,
    "pending": 16,
    "retryable": 32,
    "running": 64,
    "scheduled": 128,
}
DEFAULT_UNIQUE_STATES: tuple[str, ...] = (
    "available",
    "completed",
    "pending",
    "retryable",
    "running",
    "scheduled",
)
# A custom state set must keep these, or a job could be inserted twice while one is in flight.
REQUIRED_UNIQUE_STATES: tuple[str, ...] = ("available", "pending", "running", "scheduled")
_GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class UniqueOpts:
    """River's ``UniqueOpts``: which dimensions make two jobs duplicates of each other."""

    by_args: bool = False
    by_period: float | None = None  # seconds; jobs in the same bucket of this length collide
    by_queue: bool = False
    by_state: tuple[str, ...] | None = None  # default: River's default set (bitmask 245)
    exclude_kind: bool = False

    def validate(self) -> None:
        if self.by_period is not None and not (math.isfinite(self.by_period) and self.by_period >= 1):
            raise InvalidJob(f"unique.by_period: must be at least 1 second, got {self.by_period!r}")
        if self.by_state is not None:
            unknown = [s for s in self.by_state if s not in STATE_BITS]
            if unknown:
                raise InvalidJob(f"unique.by_state: unknown job state {unknown[0]!r}")
            missing = [s for s in REQUIRED_UNIQUE_STATES if s not in self.by_state]
            if missing:
                raise InvalidJob(
                    "unique.by_state: must include "
                    + ", ".join(REQUIRED_UNIQUE_STATES)
                    + f" (missing {', '.join(missing)})"
                )

    def states_bitmask(self) -> int:
        return states_to_bitmask(self.by_state or DEFAULT_UNIQUE_STATES)


def states_to_bitmask(states: Iterable[str]) -> int:
    mask = 0
    for state in states:
        mask |= STATE_BITS[state]
    return mask


def unique_key(
    opts: UniqueOpts,
    *,
    kind: str,
    args: Mapping[str, Any],
    queue: str,
    scheduled_at: datetime | None,
    now: datetime,
) -> bytes:
    """The SHA-256 digest River stores in ``unique_key`` for a job with these options."""
    return hashlib.sha256(unique_key_string(opts, kind, args, queue, scheduled_at, now).encode()).digest()


def unique_key_string(
    opts: UniqueOpts,
    kind: str,
    args: Mapping[str, Any],
    queue: str,
    scheduled_at: datetime | None,
    now: datetime,
) -> str:
    parts: list[str] = []
    if not opts.exclude_kind:
        parts.append("&kind=" + kind)
    if opts.by_args:
        members = [_top_level_key(str(key)) + ":" + go_json(args[key]) for key in sorted(args, key=str)]
        parts.append("&args={" + ",".join(members) + "}")
    if opts.by_period:
        bucket = truncate(scheduled_at or now, opts.by_period)
        parts.append("&period=" + bucket.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if opts.by_queue:
        parts.append("&queue=" + queue)
    return "".join(parts)


def truncate(moment: datetime, period: float) -> datetime:
    """Go's ``time.Truncate``: round down to a multiple of ``period`` since January 1, year 1 UTC."""
    if moment.tzinfo is None:
        raise ValueError("truncate needs an aware datetime")
    micros = (moment.astimezone(UTC) - _GO_ZERO_TIME) // timedelta(microseconds=1)
    step = round(period * 1_000_000)
    return _GO_ZERO_TIME + timedelta(microseconds=micros - micros % step)


# --- Go's encoding/json, for the values Python's json module produces --------------------------

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _go_string(text: str) -> str:
    out = ['"']
    for char in text:
        escaped = _ESCAPES.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        elif "\ud800" <= char <= "\udfff":  # lone surrogate: Go writes U+FFFD
            out.append("\ufffd")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _top_level_key(key: str) -> str:
    # River rebuilds the top level with sjson, which quotes a key as is unless it holds a control
    # character, a non-ASCII character, a quote or a backslash; then it uses Go's json.Marshal.
    if any(c < " " or c > "\x7f" or c in '"\\' for c in key):
        return _go_string(key)
    return '"' + key + '"'


def _go_float(value: float) -> str:
    if not math.isfinite(value):
        raise InvalidJob(f"args: {value!r} is not valid JSON")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    magnitude = abs(value)
    if 1e-6 <= magnitude < 1e21:
        text = format(Decimal(repr(value)), "f")
        return text[:-2] if text.endswith(".0") else text
    text = repr(value)  # shortest digits, exponent form in this range
    mantissa, _, exponent = text.partition("e")
    sign, digits = exponent[0], exponent[1:].lstrip("0") or "0"
    if sign == "+" and len(digits) < 2:
        digits = digits.rjust(2, "0")
    return f"{mantissa}e{sign}{digits}"


def go_json(value: Any) -> str:
    """``value`` encoded as Go's ``json.Marshal`` encodes the equivalent Go value."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(_go_string(str(k)) + ":" + go_json(v) for k, v in value.items()) + "}"
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    raise InvalidJob(f"args: {type(value).__name__} is not JSON-serialisable")
