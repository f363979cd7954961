"""The kinds of value a setting takes, each with its check and its wording for error messages.

A ``Kind`` turns a TOML value (or an environment variable's or flag's text, through ``from_text``)
into the stored value, or raises ``Invalid``; its ``expected`` text completes "expected ..." in the
``ConfigError`` that ``config`` raises, and appears in ``docs/configuration.md``. ``show`` is how a bad
value is echoed; a ``secret`` kind's value never is. Pure (layer 1): nothing here reads the
environment or touches the network.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, time
from typing import Any
from urllib.parse import urlsplit

from .durations import format_duration, parse_duration
from .job_options import QUEUE_NAME_RULE, is_valid_queue_name
from .redaction import redact_database_url, redact_dsn

__all__ = [
    "Invalid",
    "Kind",
    "boolean",
    "choice",
    "database_url",
    "duration",
    "integer",
    "json_table",
    "listen_address",
    "names",
    "queue_name",
    "sentry_dsn",
    "show",
    "split_listen",
    "string",
    "timezone",
]


class Invalid(ValueError):
    """A value is not of its kind; ``expected`` overrides the kind's own wording."""

    def __init__(self, expected: str | None = None, shown: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.shown = shown  # what to print after "got", when the value itself must not be echoed


@dataclass(frozen=True, slots=True)
class Kind:
    """What a setting accepts: ``check`` turns a TOML value into the stored value or raises ``Invalid``."""

    expected: str  # "an integer >= 1": completes "expected ..."
    check: Callable[[Any], Any]
    from_text: Callable[[str], Any] = str  # an environment variable or flag's text -> a TOML value
    secret: bool = False  # never echo a bad value


def show(value: Any) -> str:
    """A bad value as an error message echoes it after "got" (long strings cut, tables and arrays named)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:56] + '..."'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def string() -> Kind:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Invalid()
        return value

    return Kind("a non-empty string", check)


def integer(minimum: int, maximum: int | None = None) -> Kind:
    expected = f"an integer from {minimum} to {maximum}" if maximum else f"an integer >= {minimum}"

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid()
        if value < minimum or (maximum is not None and value > maximum):
            raise Invalid()
        return value

    def from_text(text: str) -> Any:
        try:
            return int(text.strip())
        except ValueError:
            return text

    return Kind(expected, check, from_text)


def duration(minimum: float = 0.0, *, positive: bool = False, note: str = "") -> Kind:
    if positive:
        expected = f'a duration > 0{note} such as "15s", "5m", "1h30m" or a number of seconds'
    elif minimum:
        expected = f"a duration >= {format_duration(minimum)}{note}"
    else:
        expected = f'a duration{note} such as "15s", "5m", "1h30m" or a number of seconds'

    def check(value: Any) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise Invalid() from None
        if seconds < minimum or (positive and seconds == 0):
            raise Invalid()
        return seconds

    return Kind(expected, check)


def boolean() -> Kind:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid()
        return value

    def from_text(text: str) -> Any:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return text

    return Kind("true or false", check, from_text)


def choice(*options: str) -> Kind:
    def check(value: Any) -> str:
        if value not in options:
            raise Invalid()
        return str(value)

    return Kind(" or ".join(f'"{o}"' for o in options), check)


def names() -> Kind:
    def check(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise Invalid()
        return tuple(value)

    def from_text(text: str) -> Any:
        return [part.strip() for part in text.split(",") if part.strip()]

    return Kind("an array of plugin names", check, from_text)


def split_listen(text: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:port"`` for IPv6) as ``(host, port)``; ``ValueError`` if it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(text)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or (":" in host and not text.startswith("[")):
        raise ValueError(text)
    return host, int(port)


def listen_address() -> Kind:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid()
        try:
            split_listen(value)
        except ValueError:
            raise Invalid() from None
        return value

    return Kind('an address "host:port" such as "127.0.0.1:9464" ("[::1]:9464" for IPv6)', check)


def queue_name() -> Kind:
    def check(value: Any) -> str:
        if not is_valid_queue_name(value):
            raise Invalid()
        return str(value)

    return Kind(f"a queue name: {QUEUE_NAME_RULE}", check)


def timezone() -> Kind:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise Invalid()
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise Invalid() from None
        return value

    return Kind('an IANA time zone name such as "UTC" or "Europe/Berlin"', check)


def json_table() -> Kind:
    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(plain(v) for v in value.values())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return not isinstance(value, date | time)  # TOML dates and times have no JSON form

    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not plain(value):
            raise Invalid()
        return value

    return Kind("a table of JSON-compatible values (no TOML dates or times)", check, json.loads)


_LIBPQ_PAIR = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']+)\s*")


def database_url() -> Kind:
    expected = "a postgresql:// or postgres:// URL or a libpq key=value string"

    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Invalid()
        if "://" in value:
            scheme = value.split("://", 1)[0]
            if scheme.lower() not in ("postgresql", "postgres"):
                raise Invalid(shown=f"a {scheme}:// URL" if scheme.isalnum() else "something else")
            try:
                urlsplit(value).port  # noqa: B018 - a port that is no number raises here
            except ValueError:
                raise Invalid(f"{expected} with a numeric port", shown=redact_database_url(value)) from None
            return value
        position = 0
        while position < len(value):
            match = _LIBPQ_PAIR.match(value, position)
            if not match:
                raise Invalid(shown="something else")
            position = match.end()
        return value

    return Kind(expected, check, secret=True)


def sentry_dsn() -> Kind:
    expected = "a Sentry DSN such as https://PUBLIC_KEY@o1.ingest.sentry.io/PROJECT_ID"

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid()
        try:
            parts = urlsplit(value.strip())
            parts.port  # noqa: B018
        except ValueError:
            raise Invalid(shown="an unparseable URL") from None
        project = parts.path.rstrip("/").rsplit("/", 1)[-1]
        ok = parts.scheme in ("http", "https") and parts.username and parts.hostname and project.isdigit()
        if not ok:
            raise Invalid(shown=redact_dsn(value))
        return value.strip()

    return Kind(expected, check, secret=True)
