"""Configuration: the TOML file, the environment and command-line flags, validated once.

INTERFACE (fixed; other modules rely on it): ``load(path, flags=..., environ=...) -> Config``
and the frozen dataclasses below. Durations are stored as float seconds.

Every setting is one row of ``SETTINGS`` (section, key, kind, default, env var, flag, doc): ``load``
validates, reads the environment and applies flags from it, and ``reference_markdown()`` renders
``docs/configuration.md`` from it. Precedence is flag > environment > file > default, decided once
per setting; ``Config.sources`` records where each value came from. Only this module reads
``os.environ``; it imports neither psycopg nor sentry_sdk (layer 1).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import socket
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import tomli

from .durations import format_duration, parse_duration
from .errors import ConfigError

__all__ = [
    "DEFAULT_FILE",
    "SETTINGS",
    "Config",
    "LeadershipConfig",
    "MaintenanceConfig",
    "PeriodicEntry",
    "PluginsConfig",
    "QueueConfig",
    "SentryConfig",
    "Setting",
    "flag_values",
    "load",
    "parse_duration",
    "redact_database_url",
    "redact_dsn",
    "redacted",
    "reference_markdown",
]

DEFAULT_FILE = "river-supervisor.toml"


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):  # the CPUs this process may use, not the machine's
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class QueueConfig:
    name: str
    concurrency: int = 10  # jobs of this queue running at once on this host


@dataclass(frozen=True, slots=True)
class LeadershipConfig:
    ttl: float = 15.0  # lease length; renewed every ttl/3


@dataclass(frozen=True, slots=True)
class SentryConfig:
    dsn: str | None = None
    environment: str | None = None
    send_job_args: bool = False  # job args stay out of Sentry unless asked


@dataclass(frozen=True, slots=True)
class PluginsConfig:
    enabled: tuple[str, ...] | None = None  # None: every discovered plugin
    disabled: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MaintenanceConfig:
    rescue_after: float = 3600.0
    completed_retention: float = 86400.0
    cancelled_retention: float = 86400.0
    discarded_retention: float = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class PeriodicEntry:
    id: str
    kind: str | None = None
    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    args: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    missed: str | None = None  # skip | latest | all
    missed_cap: int | None = None
    overlap: str | None = None  # allow | skip
    monitor: bool | None = None
    enabled: bool = True
    # The keys the file set: an entry whose id matches a plugin schedule overrides only these.
    given: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Config:
    path: str | None = None
    database_url: str | None = None
    embedded_dir: str | None = None  # None: embedded.data_dir()'s per-user default
    cluster: str = "default"
    node: str = field(default_factory=socket.gethostname)
    processes: int = field(default_factory=_cpu_count)
    job_timeout: float = 60.0  # default per job; a plugin's job(timeout=...) overrides; 0: none
    shutdown_grace: float = 30.0
    poll_interval: float = 1.0
    missed_grace: float = 60.0  # periodic slots older than this when reached count as missed
    queues: Mapping[str, QueueConfig] = field(default_factory=lambda: {"default": QueueConfig("default")})
    leadership: LeadershipConfig = field(default_factory=LeadershipConfig)
    sentry: SentryConfig = field(default_factory=SentryConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    maintenance: MaintenanceConfig = field(default_factory=MaintenanceConfig)
    periodic: tuple[PeriodicEntry, ...] = ()
    # Where each value came from, by dotted key: {"database_url": "env DATABASE_URL",
    # "leadership.ttl": "file river-supervisor.toml", "processes": "default", ...}.
    sources: Mapping[str, str] = field(default_factory=dict)

    def redacted(self) -> dict[str, Any]:
        return redacted(self)


# --- kinds of value ---------------------------------------------------------------------------


class _Invalid(ValueError):
    """A value is not of its kind; ``expected`` overrides the kind's own wording."""

    def __init__(self, expected: str | None = None, shown: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.shown = shown  # what to print after "got", when the value itself must not be echoed


@dataclass(frozen=True, slots=True)
class Kind:
    """What a setting accepts: ``check`` turns a TOML value into the stored value or raises ``_Invalid``."""

    expected: str  # "an integer >= 1": completes "expected ..."
    check: Callable[[Any], Any]
    from_text: Callable[[str], Any] = str  # an environment variable or flag's text -> a TOML value
    secret: bool = False  # never echo a bad value


def _show(value: Any) -> str:
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


def _string() -> Kind:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _Invalid()
        return value

    return Kind("a non-empty string", check)


def _integer(minimum: int, maximum: int | None = None) -> Kind:
    expected = f"an integer from {minimum} to {maximum}" if maximum else f"an integer >= {minimum}"

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid()
        if value < minimum or (maximum is not None and value > maximum):
            raise _Invalid()
        return value

    def from_text(text: str) -> Any:
        try:
            return int(text.strip())
        except ValueError:
            return text

    return Kind(expected, check, from_text)


def _duration(minimum: float = 0.0, *, positive: bool = False, note: str = "") -> Kind:
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
            raise _Invalid() from None
        if seconds < minimum or (positive and seconds == 0):
            raise _Invalid()
        return seconds

    return Kind(expected, check)


def _boolean() -> Kind:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise _Invalid()
        return value

    def from_text(text: str) -> Any:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return text

    return Kind("true or false", check, from_text)


def _choice(*options: str) -> Kind:
    def check(value: Any) -> str:
        if value not in options:
            raise _Invalid()
        return value

    return Kind(" or ".join(f'"{o}"' for o in options), check)


def _names() -> Kind:
    def check(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise _Invalid()
        return tuple(value)

    def from_text(text: str) -> Any:
        return [part.strip() for part in text.split(",") if part.strip()]

    return Kind("an array of plugin names", check, from_text)


# River's rule for queue names (riverqueue/river client.go validateQueueName).
_QUEUE_NAME = re.compile(r"(?:[a-z0-9])+(?:[_|\-]?[a-z0-9]+)*")


def _queue_name_ok(name: object) -> bool:
    return isinstance(name, str) and len(name) <= 64 and _QUEUE_NAME.fullmatch(name) is not None


def _queue_name() -> Kind:
    def check(value: Any) -> str:
        if not _queue_name_ok(value):
            raise _Invalid()
        return value

    return Kind("a queue name: lower-case letters and digits joined by _ or -, at most 64 characters", check)


def _timezone() -> Kind:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise _Invalid()
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise _Invalid() from None
        return value

    return Kind('an IANA time zone name such as "UTC" or "Europe/Berlin"', check)


def _json_table() -> Kind:
    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(plain(v) for v in value.values())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return not isinstance(value, date | time)  # TOML dates and times have no JSON form

    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not plain(value):
            raise _Invalid()
        return value

    return Kind("a table of JSON-compatible values (no TOML dates or times)", check, json.loads)


_LIBPQ_PAIR = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']+)\s*")


def _database_url() -> Kind:
    expected = "a postgresql:// or postgres:// URL or a libpq key=value string"

    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _Invalid()
        if "://" in value:
            scheme = value.split("://", 1)[0]
            if scheme.lower() not in ("postgresql", "postgres"):
                raise _Invalid(shown=f"a {scheme}:// URL" if scheme.isalnum() else "something else")
            try:
                urlsplit(value).port  # noqa: B018 - a port that is no number raises here
            except ValueError:
                raise _Invalid(f"{expected} with a numeric port", shown=redact_database_url(value)) from None
            return value
        position = 0
        while position < len(value):
            match = _LIBPQ_PAIR.match(value, position)
            if not match:
                raise _Invalid(shown="something else")
            position = match.end()
        return value

    return Kind(expected, check, secret=True)


def _sentry_dsn() -> Kind:
    expected = "a Sentry DSN such as https://PUBLIC_KEY@o1.ingest.sentry.io/PROJECT_ID"

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _Invalid()
        try:
            parts = urlsplit(value.strip())
            parts.port  # noqa: B018
        except ValueError:
            raise _Invalid(shown="an unparseable URL") from None
        project = parts.path.rstrip("/").rsplit("/", 1)[-1]
        ok = parts.scheme in ("http", "https") and parts.username and parts.hostname and project.isdigit()
        if not ok:
            raise _Invalid(shown=redact_dsn(value))
        return value.strip()

    return Kind(expected, check, secret=True)


# --- the settings table -----------------------------------------------------------------------

QUEUES = "queues.<name>"
PERIODIC = "[periodic]"


@dataclass(frozen=True, slots=True)
class Setting:
    section: str  # "" (top level), "leadership", ..., QUEUES or PERIODIC
    key: str
    kind: Kind
    default: Any  # a value, or a callable for host-dependent defaults
    doc: str
    env: str | None = None
    flag: str | None = None  # the ``flags`` key; the command-line option is --flag-with-dashes
    default_doc: str | None = None

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.key}" if self.section else self.key

    @property
    def option(self) -> str | None:
        return "--" + self.flag.replace("_", "-") if self.flag else None


_S = Setting
# fmt: off
SETTINGS: tuple[Setting, ...] = (
    _S("", "database_url", _database_url(), None, "PostgreSQL to use; unset: `run` starts an embedded one",
       env="DATABASE_URL", flag="database_url"),
    _S("", "embedded_dir", _string(), None,
       "data directory of the embedded PostgreSQL used while `database_url` is unset",
       default_doc="`~/.local/share/river-supervisor/embedded`; as root `/var/lib/river-supervisor/embedded`",
       env="RIVER_SUPERVISOR_EMBEDDED_DIR"),
    _S("", "cluster", _string(), "default", "leadership namespace: one leader per cluster",
       flag="cluster"),
    _S("", "node", _string(), socket.gethostname, "this host's name in leadership, status and Sentry",
       default_doc="the host name", flag="node"),
    _S("", "processes", _integer(1), _cpu_count, "worker processes", default_doc="the CPU count",
       flag="processes"),
    _S("", "job_timeout", _duration(), 60.0, "default job timeout; a plugin's `timeout=` wins; 0: none"),
    _S("", "shutdown_grace", _duration(), 30.0, "on SIGTERM, how long running jobs may take to finish"),
    _S("", "poll_interval", _duration(positive=True), 1.0, "fetch poll interval without notifications"),
    _S("", "missed_grace", _duration(positive=True), 60.0,
       "a periodic slot older than this when a leader reaches it counts as missed (its `missed` policy "
       "applies); younger slots are always enqueued, so a failover loses none"),
    _S(QUEUES, "concurrency", _integer(1), 10,
       "jobs of this queue running at once on this host; no [queues] table: one queue `default`"),
    _S("leadership", "ttl", _duration(3.0), 15.0, "leader lease length, renewed every ttl/3"),
    _S("sentry", "dsn", _sentry_dsn(), None, "Sentry DSN; unset: no Sentry",
       env="SENTRY_DSN", flag="sentry_dsn"),
    _S("sentry", "environment", _string(), None, "Sentry environment tag", env="SENTRY_ENVIRONMENT"),
    _S("sentry", "send_job_args", _boolean(), False, "include job args in Sentry events"),
    _S("plugins", "enabled", _names(), None, "plugins to load", default_doc="all discovered"),
    _S("plugins", "disabled", _names(), (), "plugins not to load"),
    _S("maintenance", "rescue_after", _duration(positive=True), 3600.0,
       "a running job not heard of for this long is rescued (retried or discarded)"),
    _S("maintenance", "completed_retention", _duration(), 86400.0, "completed jobs are deleted after this"),
    _S("maintenance", "cancelled_retention", _duration(), 86400.0, "cancelled jobs are deleted after this"),
    _S("maintenance", "discarded_retention", _duration(), 604800.0, "discarded jobs are deleted after this"),
    _S(PERIODIC, "id", _string(), None, "required, unique; a plugin schedule's id overrides that schedule"),
    _S(PERIODIC, "kind", _string(), None, "job kind to enqueue"),
    _S(PERIODIC, "cron", _string(), None, "cron expression (5 fields); or `every`, not both"),
    _S(PERIODIC, "every", _duration(positive=True), None, "fixed interval; or `cron`, not both"),
    _S(PERIODIC, "timezone", _timezone(), "UTC", "time zone the cron expression is read in"),
    _S(PERIODIC, "args", _json_table(), None, "job args", default_doc="{}"),
    _S(PERIODIC, "queue", _queue_name(), None, "queue to insert into", default_doc="the job's queue"),
    _S(PERIODIC, "priority", _integer(1, 4), None, "job priority, 1 (first) to 4", default_doc="the job's"),
    _S(PERIODIC, "max_attempts", _integer(1), None, "attempts before the job is discarded",
       default_doc="the job's"),
    _S(PERIODIC, "missed", _choice("skip", "latest", "all"), None,
       "runs missed while no one led: skip them, run the latest, or run all", default_doc="the plugin's"),
    _S(PERIODIC, "missed_cap", _integer(1), None, "with missed = \"all\": at most this many catch-up runs"),
    _S(PERIODIC, "overlap", _choice("allow", "skip"), None, "skip a run while the previous one is unfinished",
       default_doc="the plugin's"),
    _S(PERIODIC, "monitor", _boolean(), None, "report runs as a Sentry cron monitor",
       default_doc="the plugin's"),
    _S(PERIODIC, "enabled", _boolean(), True, "false disables the schedule (a plugin's, by id)"),
)
# fmt: on
del _S

_SECTIONS = ("", QUEUES, "leadership", "sentry", "plugins", "maintenance", PERIODIC)
_FIXED_SECTIONS = ("leadership", "sentry", "plugins", "maintenance")
_BY_SECTION: dict[str, dict[str, Setting]] = {
    section: {r.key: r for r in SETTINGS if r.section == section} for section in _SECTIONS
}
_FLAGS: dict[str, Setting] = {r.flag: r for r in SETTINGS if r.flag}


def _header(section: str) -> str:
    return {"": "top level", PERIODIC: "[[periodic]]"}.get(section, f"[{section}]")


def flag_values(args: object) -> dict[str, Any]:
    """The configuration flags found on an argparse namespace (absent ones are skipped)."""
    return {name: getattr(args, name) for name in _FLAGS if getattr(args, name, None) is not None}


# --- loading ----------------------------------------------------------------------------------


def load(
    path: str | None = None,
    *,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Read ``path`` (else ``river-supervisor.toml`` if present), apply flag > env > file > default.

    Raises ``ConfigError`` naming the file (or variable, or flag), the key and what was expected.
    """
    environ = os.environ if environ is None else environ
    given_flags = {k: v for k, v in (flags or {}).items() if v is not None}
    for name in given_flags:
        if name not in _FLAGS:
            raise ValueError(f"config.load: unknown flag {name!r} (known: {', '.join(sorted(_FLAGS))})")
    if path is None and os.path.isfile(DEFAULT_FILE):
        path = DEFAULT_FILE
    document = _read(path) if path is not None else {}
    return _Loader(path, document, environ, given_flags).config()


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomli.load(handle)
    except FileNotFoundError:
        raise ConfigError(path, None, "configuration file not found") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read the configuration file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, f"not UTF-8 text (byte {exc.start})") from exc
    except tomli.TOMLDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ConfigError(path, None, f"invalid TOML at {where}: {exc.msg}") from exc


def _suggest(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


class _Loader:
    """One pass over the file, the environment and the flags; raises at the first bad value."""

    def __init__(
        self, path: str | None, document: dict[str, Any], environ: Mapping[str, str], flags: Mapping[str, Any]
    ) -> None:
        self.path = path
        self.document = document
        self.environ = environ
        self.flags = flags
        self.sources: dict[str, str] = {}

    def fail(self, where: str, expected: str) -> ConfigError:
        return ConfigError(self.path, where, expected)

    def invalid(
        self, where: str, kind: Kind, value: Any, error: _Invalid, *, source: str | None = None
    ) -> ConfigError:
        hide = kind.secret and isinstance(value, str)
        shown = error.shown or ("a value not shown (it may hold a secret)" if hide else _show(value))
        message = f"expected {error.expected or kind.expected}, got {shown}"
        return ConfigError(None, source, message) if source else self.fail(where, message)

    def table(self, table: dict[str, Any], section: str, where: str, extra: Sequence[str] = ()) -> None:
        """Reject unknown keys in ``table`` (a ``section`` table shown as ``where``)."""
        known = [*_BY_SECTION[section], *extra]
        for key in table:
            if key not in known:
                hint = _suggest(key, known)
                if not hint and section == "":  # a section's key written at the top level?
                    owners = {r.key: r.section for r in SETTINGS if r.section in _FIXED_SECTIONS}
                    close = difflib.get_close_matches(key, list(owners), n=1, cutoff=0.6)
                    hint = f" (did you mean `{close[0]}` in [{owners[close[0]]}]?)" if close else ""
                raise self.fail(f"{where} {key}".strip(), f"unknown key{hint}")

    def subtable(self, name: str) -> dict[str, Any]:
        value = self.document.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(name, f"expected a table [{name}], got {_show(value)}")
        return value

    def resolve(self, setting: Setting, table: Mapping[str, Any], where: str) -> Any:
        """The setting's value by precedence flag > env > file > default, recording its source."""
        if setting.flag and setting.flag in self.flags:
            raw, source = self.flags[setting.flag], f"flag {setting.option}"
            if isinstance(raw, str):
                raw = setting.kind.from_text(raw)
        elif setting.env and self.environ.get(setting.env, "").strip():
            raw, source = setting.kind.from_text(self.environ[setting.env]), f"env {setting.env}"
        elif setting.key in table:
            raw, source = table[setting.key], f"file {self.path}"
        else:
            self.sources[setting.dotted] = "default"
            return setting.default() if callable(setting.default) else setting.default
        try:
            value = setting.kind.check(raw)
        except _Invalid as error:
            outside = None if source.startswith("file") else source
            raise self.invalid(where, setting.kind, raw, error, source=outside) from None
        self.sources[setting.dotted] = source
        return value

    def section(self, section: str) -> dict[str, Any]:
        table = self.subtable(section) if section else self.document
        prefix = f"[{section}]" if section else ""
        extra = () if section else ("queues", "periodic", *_FIXED_SECTIONS)
        self.table(table, section, prefix, extra)
        return {
            s.key: self.resolve(s, table, f"{prefix} {s.key}".strip()) for s in _BY_SECTION[section].values()
        }

    def queues(self) -> dict[str, QueueConfig]:
        if "queues" not in self.document:
            self.sources["queues"] = "default"
            return {"default": QueueConfig("default")}
        tables = self.subtable("queues")
        if not tables:
            raise self.fail("[queues]", "expected at least one [queues.<name>] table")
        queues = {}
        for name, table in tables.items():
            where = f"[queues.{name}]"
            if not _queue_name_ok(name):
                raise self.fail(where, f"expected {_queue_name().expected}")
            if not isinstance(table, dict):
                raise self.fail(where, f"expected a table, got {_show(table)}")
            self.table(table, QUEUES, where)
            concurrency = self.resolve(_BY_SECTION[QUEUES]["concurrency"], table, f"{where} concurrency")
            self.sources[f"queues.{name}.concurrency"] = self.sources.pop(f"{QUEUES}.concurrency")
            queues[name] = QueueConfig(name, concurrency)
        self.sources["queues"] = f"file {self.path}"
        return queues

    def periodic(self) -> tuple[PeriodicEntry, ...]:
        entries = self.document.get("periodic", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise self.fail("periodic", "expected an array of tables [[periodic]]")
        result: list[PeriodicEntry] = []
        seen: set[str] = set()
        for number, entry in enumerate(entries, 1):
            label = f"[[periodic]] #{number}"
            if isinstance(entry.get("id"), str) and entry["id"].strip():
                label = f'[[periodic]] id "{entry["id"]}"'
            self.table(entry, PERIODIC, label)
            if "id" not in entry:
                raise self.fail(label, "expected an `id` key (a unique name for the schedule)")
            values = {}
            for setting in _BY_SECTION[PERIODIC].values():
                if setting.key in entry:
                    values[setting.key] = self.resolve(setting, entry, f"{label} {setting.key}")
            for key in values:
                self.sources.pop(f"{PERIODIC}.{key}", None)
            if values["id"] in seen:
                raise self.fail(f"{label} id", "expected a unique id: an earlier [[periodic]] entry has it")
            seen.add(values["id"])
            if "cron" in values and "every" in values:
                raise self.fail(f"{label} every", "expected either `cron` or `every`, not both")
            if "missed_cap" in values and values.get("missed", "all") != "all":
                raise self.fail(f"{label} missed_cap", 'expected only with missed = "all"')
            result.append(PeriodicEntry(**values, given=frozenset(values)))
        if "periodic" in self.document:
            self.sources["periodic"] = f"file {self.path}"
        return tuple(result)

    def config(self) -> Config:
        top = self.section("")
        sections = {name: self.section(name) for name in _FIXED_SECTIONS}
        plugins = sections["plugins"]
        both = set(plugins["enabled"] or ()) & set(plugins["disabled"])
        if both:
            raise self.fail("[plugins] disabled", f"expected no plugin also in `enabled`, got {sorted(both)}")
        return Config(
            path=self.path,
            **top,
            queues=self.queues(),
            leadership=LeadershipConfig(**sections["leadership"]),
            sentry=SentryConfig(**sections["sentry"]),
            plugins=PluginsConfig(**plugins),
            maintenance=MaintenanceConfig(**sections["maintenance"]),
            periodic=self.periodic(),
            sources=dict(sorted(self.sources.items())),
        )


# --- redaction --------------------------------------------------------------------------------

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


def redacted(cfg: Config) -> dict[str, Any]:
    """The effective configuration as plain data (durations in seconds) without secrets, for printing."""
    data = dataclasses.asdict(cfg)
    if cfg.database_url:
        data["database_url"] = redact_database_url(cfg.database_url)
    if cfg.sentry.dsn:
        data["sentry"]["dsn"] = redact_dsn(cfg.sentry.dsn)
    for entry in data["periodic"]:
        entry["given"] = sorted(entry["given"])
    return data


# --- the reference ----------------------------------------------------------------------------

_INTRO = """\
# Configuration reference

<!-- Generated from river_supervisor/config.py SETTINGS by reference_markdown(); do not edit.
     Regenerate: python -m river_supervisor.config > docs/configuration.md -->

river-supervisor reads a TOML file: `--config PATH`, else `river-supervisor.toml` in the working
directory if there is one, else it runs on defaults. Each value is taken once, by precedence:
command-line flag > environment variable > file > default; `river-supervisor check` shows where
each value came from. Unknown keys and bad values stop the program with one line naming the
file, the key and what was expected (exit code 2).

Durations are strings such as `"15s"`, `"5m"`, `"1h30m"`, `"2d"` or `"250ms"` (units d, h, m, s,
ms, largest first, each at most once), or numbers of seconds. `database_url` is a `postgresql://`
or `postgres://` URL or a libpq `key=value` string. Empty environment variables count as unset.

Examples: `examples/config/minimal.toml` (one host) and `examples/config/production.toml`
(several hosts, Sentry, periodic jobs).
"""

_SECTION_NOTES = {
    QUEUES: "One table per queue this host works, e.g. `[queues.default]`. Queue names follow River's rule:"
    " lower-case letters and digits joined by `_` or `-`, at most 64 characters.",
    PERIODIC: "An array of tables. An entry whose `id` matches a plugin's schedule overrides only the keys"
    " it sets (or disables it with `enabled = false`); any other entry needs `kind` and one of `cron` and"
    ' `every`, which is checked when plugins are loaded. `missed_cap` goes with `missed = "all"`.',
}


def _default_doc(setting: Setting) -> str:
    if setting.default_doc is not None:
        return setting.default_doc
    default = setting.default
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float) and "duration" in setting.kind.expected:
        return f'`"{format_duration(default)}"`'
    if isinstance(default, str):
        return f'`"{default}"`'
    if isinstance(default, tuple):
        return "`[]`"
    return f"`{default}`"


def _type_doc(setting: Setting) -> str:
    text = setting.kind.expected
    text = text.split(" such as ")[0] if "duration" in text else text
    return re.sub(r"^an? ", "", text).replace("|", "\\|")


def reference_markdown() -> str:
    """``docs/configuration.md``: every setting with its type, default, variable, flag and meaning."""
    lines = [_INTRO]
    for section in _SECTIONS:
        lines += [f"## {_header(section) if not section else f'`{_header(section)}`'}", ""]
        if section in _SECTION_NOTES:
            lines += [_SECTION_NOTES[section], ""]
        lines += ["| key | type | default | environment | flag | description |", "|---|---|---|---|---|---|"]
        for s in _BY_SECTION[section].values():
            env = f"`{s.env}`" if s.env else ""
            flag = f"`{s.option}`" if s.option else ""
            lines.append(f"| `{s.key}` | {_type_doc(s)} | {_default_doc(s)} | {env} | {flag} | {s.doc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown(), end="")
