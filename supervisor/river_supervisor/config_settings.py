"""The settings table: each setting declared once, and the reference rendered from it.

A ``Setting`` row names its section, key, ``Kind`` (``config_values``), default, environment variable,
flag and doc. ``config.load`` validates, reads the environment and applies flags from these rows;
``reference_markdown()`` renders them as ``docs/configuration.md`` (``python -m river_supervisor.config``).
``config`` re-exports ``SETTINGS``, ``Setting`` and ``reference_markdown``. Pure (layer 1).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from typing import Any

from .config_values import (
    Kind,
    boolean,
    choice,
    database_url,
    duration,
    integer,
    json_table,
    listen_address,
    names,
    queue_name,
    sentry_dsn,
    string,
    timezone,
)
from .durations import format_duration
from .job_options import QUEUE_NAME_RULE
from .schedules import MISSED_POLICIES, OVERLAP_POLICIES

__all__ = [
    "BY_SECTION",
    "FIXED_SECTIONS",
    "FLAGS",
    "PERIODIC",
    "QUEUES",
    "SECTIONS",
    "SETTINGS",
    "Setting",
    "cpu_count",
    "reference_markdown",
]


def cpu_count() -> int:
    """The default for ``processes`` (and ``Config.processes``)."""
    if hasattr(os, "sched_getaffinity"):  # the CPUs this process may use, not the machine's
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


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
    _S("", "database_url", database_url(), None, "PostgreSQL to use; unset: `run` starts an embedded one",
       env="DATABASE_URL", flag="database_url"),
    _S("", "embedded_dir", string(), None,
       "data directory of the embedded PostgreSQL used while `database_url` is unset",
       default_doc="`~/.local/share/river-supervisor/embedded`; as root `/var/lib/river-supervisor/embedded`",
       env="RIVER_SUPERVISOR_EMBEDDED_DIR"),
    _S("", "cluster", string(), "default", "leadership namespace: one leader per cluster",
       flag="cluster"),
    _S("", "node", string(), socket.gethostname, "this host's name in leadership, status and Sentry",
       default_doc="the host name", flag="node"),
    _S("", "processes", integer(1), cpu_count, "worker processes", default_doc="the CPU count",
       flag="processes"),
    _S("", "job_timeout", duration(), 60.0, "default job timeout; a plugin's `timeout=` wins; 0: none"),
    _S("", "shutdown_grace", duration(), 30.0, "on SIGTERM, how long running jobs may take to finish"),
    _S("", "poll_interval", duration(positive=True), 1.0, "fetch poll interval without notifications"),
    _S("", "missed_grace", duration(positive=True), 60.0,
       "a periodic slot older than this when a leader reaches it counts as missed (its `missed` policy "
       "applies); younger slots are always enqueued, so a failover loses none"),
    _S(QUEUES, "concurrency", integer(1), 10,
       "jobs of this queue running at once on this host; no [queues] table: one queue `default`"),
    _S("leadership", "ttl", duration(3.0), 15.0, "leader lease length, renewed every ttl/3"),
    _S("sentry", "dsn", sentry_dsn(), None, "Sentry DSN; unset: no Sentry",
       env="SENTRY_DSN", flag="sentry_dsn"),
    _S("sentry", "environment", string(), None, "Sentry environment tag", env="SENTRY_ENVIRONMENT"),
    _S("sentry", "send_job_args", boolean(), False, "include job args in Sentry events"),
    _S("plugins", "enabled", names(), None, "plugins to load", default_doc="all discovered"),
    _S("plugins", "disabled", names(), (), "plugins not to load"),
    _S("maintenance", "rescue_after", duration(positive=True), 3600.0,
       "a running job not heard of for this long is rescued (retried or discarded)"),
    _S("maintenance", "completed_retention", duration(), 86400.0, "completed jobs are deleted after this"),
    _S("maintenance", "cancelled_retention", duration(), 86400.0, "cancelled jobs are deleted after this"),
    _S("maintenance", "discarded_retention", duration(), 604800.0, "discarded jobs are deleted after this"),
    _S("metrics", "listen", listen_address(), None,
       "serve Prometheus metrics on this address (`/metrics`); unset: no endpoint",
       env="RIVER_SUPERVISOR_METRICS_LISTEN"),
    _S(PERIODIC, "id", string(), None, "required, unique; a plugin schedule's id overrides that schedule"),
    _S(PERIODIC, "kind", string(), None, "job kind to enqueue"),
    _S(PERIODIC, "cron", string(), None, "cron expression (5 fields); or `every`, not both"),
    _S(PERIODIC, "every", duration(positive=True), None, "fixed interval; or `cron`, not both"),
    _S(PERIODIC, "timezone", timezone(), "UTC", "time zone the cron expression is read in"),
    _S(PERIODIC, "args", json_table(), None, "job args", default_doc="{}"),
    _S(PERIODIC, "queue", queue_name(), None, "queue to insert into", default_doc="the job's queue"),
    _S(PERIODIC, "priority", integer(1, 4), None, "job priority, 1 (first) to 4", default_doc="the job's"),
    _S(PERIODIC, "max_attempts", integer(1), None, "attempts before the job is discarded",
       default_doc="the job's"),
    _S(PERIODIC, "missed", choice(*MISSED_POLICIES), None,
       "runs missed while no one led: skip them, run the latest, or run all", default_doc="the plugin's"),
    _S(PERIODIC, "missed_cap", integer(1), None, "with missed = \"all\": at most this many catch-up runs"),
    _S(PERIODIC, "overlap", choice(*OVERLAP_POLICIES), None,
       "skip a run while the previous one is unfinished", default_doc="the plugin's"),
    _S(PERIODIC, "monitor", boolean(), None, "report runs as a Sentry cron monitor",
       default_doc="the plugin's"),
    _S(PERIODIC, "enabled", boolean(), True, "false disables the schedule (a plugin's, by id)"),
)
# fmt: on
del _S

SECTIONS = ("", QUEUES, "leadership", "sentry", "plugins", "maintenance", "metrics", PERIODIC)
FIXED_SECTIONS = ("leadership", "sentry", "plugins", "maintenance", "metrics")
BY_SECTION: dict[str, dict[str, Setting]] = {
    section: {r.key: r for r in SETTINGS if r.section == section} for section in SECTIONS
}
FLAGS: dict[str, Setting] = {r.flag: r for r in SETTINGS if r.flag}


def _header(section: str) -> str:
    return {"": "top level", PERIODIC: "[[periodic]]"}.get(section, f"[{section}]")


# --- the reference ----------------------------------------------------------------------------

# The text says "config.py SETTINGS": the table is re-exported as ``config.SETTINGS``, and rewording it
# would change the generated file (tests/unit/test_config.py compares it with docs/configuration.md).
_INTRO = """\
# Configuration reference

<!-- Generated from river_supervisor/config.py SETTINGS by reference_markdown(); do not edit.
     Regenerate: python -m river_supervisor.config > docs/configuration.md -->

river-supervisor reads a TOML file: `--config PATH`, else `river-supervisor.toml` in the working
directory if there is one, else it runs on defaults. Each value is taken once, by precedence:
command-line flag > environment variable > file > default; `river-supervisor check --show-config`
shows each value and where it came from (`--json`: `settings`). Unknown keys and bad values stop
the program with one line naming the file, the key and what was expected (exit code 2).

Durations are strings such as `"15s"`, `"5m"`, `"1h30m"`, `"2d"` or `"250ms"` (units d, h, m, s,
ms, largest first, each at most once), or numbers of seconds. `database_url` is a `postgresql://`
or `postgres://` URL or a libpq `key=value` string. Empty environment variables count as unset.

Examples: `examples/config/minimal.toml` (one host) and `examples/config/production.toml`
(several hosts, Sentry, periodic jobs).
"""

_SECTION_NOTES = {
    "metrics": 'A Prometheus endpoint on the supervisor parent, one per host (README, "Metrics", lists what'
    " it serves). Bind it to loopback or a private network: it has no authentication.",
    QUEUES: "One table per queue this host works, e.g. `[queues.default]`. Queue names follow River's rule,"
    f" everywhere (this file, plugins, `enqueue`, inserts): {QUEUE_NAME_RULE}.",
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
    for section in SECTIONS:
        lines += [f"## {_header(section) if not section else f'`{_header(section)}`'}", ""]
        if section in _SECTION_NOTES:
            lines += [_SECTION_NOTES[section], ""]
        lines += ["| key | type | default | environment | flag | description |", "|---|---|---|---|---|---|"]
        for s in BY_SECTION[section].values():
            env = f"`{s.env}`" if s.env else ""
            flag = f"`{s.option}`" if s.option else ""
            lines.append(f"| `{s.key}` | {_type_doc(s)} | {_default_doc(s)} | {env} | {flag} | {s.doc} |")
        lines.append("")
    return "\n".join(lines)
