"""Keeping secrets out of what we print, log and send to Sentry.

Two families of pure functions (layer 1: no psycopg, no sentry_sdk, no state):
- A value known to be a URL: ``redact_database_url`` and ``redact_dsn`` hide its password or keys
  (``config``'s printout and messages, ``db``'s connection errors).
- Anything else: ``redact_text`` finds URL passwords, ``password=`` style values and the known
  ``secrets`` in free text; ``scrub`` applies it to nested event data and blanks sensitive keys;
  ``scrub_event`` also drops job args unless the event was marked with ``ARGS_ALLOWED``. ``alerts``
  runs every Sentry event and breadcrumb through these, with the secrets of its process.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = [
    "ARGS_ALLOWED",
    "REDACTED",
    "redact_database_url",
    "redact_dsn",
    "redact_text",
    "scrub",
    "scrub_event",
    "secret_values",
]

REDACTED = "***"

# --- URLs we know are URLs --------------------------------------------------------------------

_LIBPQ_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']+)")


def redact_database_url(url: str) -> str:
    """``url`` with its password (in the user info, a query parameter or a key=value pair) as ``***``."""
    if "://" not in url:
        return _LIBPQ_PASSWORD.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable database URL>"
    netloc = parts.netloc
    if password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostinfo}"
    query = parts.query
    if "password=" in query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_dsn(dsn: str) -> str:
    """A Sentry DSN without its keys: ``https://***@o1.ingest.sentry.io/42``."""
    try:
        parts = urlsplit(dsn.strip())
    except ValueError:
        return "<unparseable DSN>"
    if not (parts.scheme and parts.netloc):
        return "<not a URL>"
    if "@" not in parts.netloc:
        return dsn.strip()
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


# --- free text and event data -----------------------------------------------------------------

# scheme://user:PASSWORD@host: everything up to the last "@" of the token, so an unencoded "@" in
# a password cannot leak its tail.
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/?#@'\"<>]*:)[^\s'\"<>]*(@)")
_KEYWORD_SECRET = re.compile(
    r"(?i)\b(password|passwd|pwd|pgpassword|secret|sentry_secret|api_key|apikey|token)(['\"]?\s*[=:]\s*)"
    r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s'\"&,;]+)"
)
_SENSITIVE_KEYS = frozenset(
    {"password", "passwd", "pwd", "pgpassword", "secret", "token", "api_key", "apikey", "authorization"}
)
_ARGS_KEYS = frozenset({"args", "job_args"})
ARGS_ALLOWED = "river_supervisor.send_job_args"  # an event's extra key: its job args may go
_MAX_DEPTH = 20


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL passwords, ``password=...`` style values and ``secrets`` replaced."""
    text = _URL_PASSWORD.sub(rf"\1{REDACTED}\2", text)
    text = _KEYWORD_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def secret_values(values: Iterable[str | None]) -> tuple[str, ...]:
    """The secrets in ``values`` (plain strings, or URLs whose password is taken), longest first."""
    found: set[str] = set()
    for value in values:
        if not value:
            continue
        password: str | None
        try:
            password = urllib.parse.urlsplit(value).password if "://" in value else value
        except ValueError:
            password = None
        for candidate in (password, urllib.parse.unquote(password or "")):
            if candidate and len(candidate) >= 4:  # too short a value would blank random text
                found.add(candidate)
    return tuple(sorted(found, key=len, reverse=True))


def scrub(value: Any, secrets: tuple[str, ...] = (), depth: int = 0) -> Any:
    """``value`` with every string redacted and every sensitive key's value blanked (lists for tuples)."""
    if isinstance(value, str):
        return redact_text(value, secrets)
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {
            k: (REDACTED if _is_sensitive_key(k) and value[k] is not None else scrub(v, secrets, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v, secrets, depth + 1) for v in value]
    return value


def scrub_event(event: dict[str, Any], secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    """A Sentry event ready to leave: job args dropped unless marked ``ARGS_ALLOWED``, then scrubbed.

    Takes the marker out of ``event``'s extra and may delete args from it in place.
    """
    extra = event.get("extra")
    allowed = isinstance(extra, dict) and extra.pop(ARGS_ALLOWED, False) is True
    if not allowed:
        _drop_args(event)
    return scrub(event, secrets)  # type: ignore[no-any-return]


def _is_sensitive_key(key: object) -> bool:
    return isinstance(key, str) and key.lower() in _SENSITIVE_KEYS


def _drop_args(event: dict[str, Any]) -> None:
    for section in ("contexts", "extra"):
        holder = event.get(section)
        if not isinstance(holder, dict):
            continue
        for key in [k for k in holder if k in _ARGS_KEYS]:
            del holder[key]
        for inner in holder.values():
            if isinstance(inner, dict):
                for key in [k for k in inner if k in _ARGS_KEYS]:
                    del inner[key]
