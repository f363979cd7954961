"""Configuration: the TOML file, the environment and command-line flags, validated once.

INTERFACE (fixed; other modules rely on it): ``load(path, flags=..., environ=...) -> Config``
and the frozen dataclasses below. Durations are stored as float seconds.

Every setting is one row of ``SETTINGS`` (section, key, kind, default, env var, flag, doc), declared in
``config_settings`` with its kind of value from ``config_values``: ``load`` validates, reads the
environment and applies flags from it, and ``reference_markdown()`` renders ``docs/configuration.md``
from it. Precedence is flag > environment > file > default, decided once per setting;
``Config.sources`` records where each value came from. ``redacted`` prints a config without its
secrets (``redaction``). Only this module reads ``os.environ``; it imports neither psycopg nor
sentry_sdk (layer 1). The names other modules import from here (``SETTINGS``, ``Setting``,
``reference_markdown``, ``parse_duration``, ``redact_database_url``, ``redact_dsn``) are re-exported.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import tomli

from .config_settings import (
    BY_SECTION,
    FIXED_SECTIONS,
    FLAGS,
    PERIODIC,
    QUEUES,
    SETTINGS,
    Setting,
    cpu_count,
    reference_markdown,
)
from .config_values import Invalid, Kind, queue_name, show
from .durations import parse_duration
from .errors import ConfigError
from .redaction import redact_database_url, redact_dsn

__all__ = [
    "DEFAULT_FILE",
    "SETTINGS",
    "Config",
    "LeadershipConfig",
    "MaintenanceConfig",
    "MetricsConfig",
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
    "settings_with_sources",
]

DEFAULT_FILE = "river-supervisor.toml"
QUEUE_NAME = queue_name()  # job_options' rule, as a kind of value


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
class MetricsConfig:
    listen: str | None = None  # "host:port" of the Prometheus endpoint; None: none


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
    processes: int = field(default_factory=cpu_count)
    job_timeout: float = 60.0  # default per job; a plugin's job(timeout=...) overrides; 0: none
    shutdown_grace: float = 30.0
    poll_interval: float = 1.0
    missed_grace: float = 60.0  # periodic slots older than this when reached count as missed
    queues: Mapping[str, QueueConfig] = field(default_factory=lambda: {"default": QueueConfig("default")})
    leadership: LeadershipConfig = field(default_factory=LeadershipConfig)
    sentry: SentryConfig = field(default_factory=SentryConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    maintenance: MaintenanceConfig = field(default_factory=MaintenanceConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    periodic: tuple[PeriodicEntry, ...] = ()
    # Where each value came from, by dotted key: {"database_url": "env DATABASE_URL",
    # "leadership.ttl": "file river-supervisor.toml", "processes": "default", ...}.
    sources: Mapping[str, str] = field(default_factory=dict)

    def redacted(self) -> dict[str, Any]:
        return redacted(self)


def flag_values(args: object) -> dict[str, Any]:
    """The configuration flags found on an argparse namespace (absent ones are skipped)."""
    return {name: getattr(args, name) for name in FLAGS if getattr(args, name, None) is not None}


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
        if name not in FLAGS:
            raise ValueError(f"config.load: unknown flag {name!r} (known: {', '.join(sorted(FLAGS))})")
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
        self, where: str, kind: Kind, value: Any, error: Invalid, *, source: str | None = None
    ) -> ConfigError:
        hide = kind.secret and isinstance(value, str)
        shown = error.shown or ("a value not shown (it may hold a secret)" if hide else show(value))
        message = f"expected {error.expected or kind.expected}, got {shown}"
        return ConfigError(None, source, message) if source else self.fail(where, message)

    def table(self, table: dict[str, Any], section: str, where: str, extra: Sequence[str] = ()) -> None:
        """Reject unknown keys in ``table`` (a ``section`` table shown as ``where``)."""
        known = [*BY_SECTION[section], *extra]
        for key in table:
            if key not in known:
                hint = _suggest(key, known)
                if not hint and section == "":  # a section's key written at the top level?
                    owners = {r.key: r.section for r in SETTINGS if r.section in FIXED_SECTIONS}
                    close = difflib.get_close_matches(key, list(owners), n=1, cutoff=0.6)
                    hint = f" (did you mean `{close[0]}` in [{owners[close[0]]}]?)" if close else ""
                raise self.fail(f"{where} {key}".strip(), f"unknown key{hint}")

    def subtable(self, name: str) -> dict[str, Any]:
        value = self.document.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(name, f"expected a table [{name}], got {show(value)}")
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
        except Invalid as error:
            outside = None if source.startswith("file") else source
            raise self.invalid(where, setting.kind, raw, error, source=outside) from None
        self.sources[setting.dotted] = source
        return value

    def section(self, section: str) -> dict[str, Any]:
        table = self.subtable(section) if section else self.document
        prefix = f"[{section}]" if section else ""
        extra = () if section else ("queues", "periodic", *FIXED_SECTIONS)
        self.table(table, section, prefix, extra)
        return {
            s.key: self.resolve(s, table, f"{prefix} {s.key}".strip()) for s in BY_SECTION[section].values()
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
            try:
                QUEUE_NAME.check(name)  # the [queues.<name>] key: the same rule as a value naming a queue
            except Invalid:
                raise self.fail(where, f"expected {QUEUE_NAME.expected}") from None
            if not isinstance(table, dict):
                raise self.fail(where, f"expected a table, got {show(table)}")
            self.table(table, QUEUES, where)
            concurrency = self.resolve(BY_SECTION[QUEUES]["concurrency"], table, f"{where} concurrency")
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
            for setting in BY_SECTION[PERIODIC].values():
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
        sections = {name: self.section(name) for name in FIXED_SECTIONS}
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
            metrics=MetricsConfig(**sections["metrics"]),
            periodic=self.periodic(),
            sources=dict(sorted(self.sources.items())),
        )


# --- redaction --------------------------------------------------------------------------------


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


def settings_with_sources(cfg: Config) -> list[dict[str, Any]]:
    """Each effective setting (secrets redacted, durations in seconds) with where it came from:
    ``flag --x``, ``env X``, ``file PATH`` or ``default``; for ``check --show-config`` and ``--json``."""
    data = redacted(cfg)
    rows = []
    for key, source in sorted(cfg.sources.items()):
        value: Any = data
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        rows.append({"key": key, "value": value, "source": source})
    return rows


if __name__ == "__main__":
    print(reference_markdown(), end="")
