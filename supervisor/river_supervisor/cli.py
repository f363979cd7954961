"""``river-supervisor``: argument parsing, logging set-up and the mapping of errors to exit codes.

Each command lives in ``river_supervisor.commands.<name>`` with ``add_arguments(parser)`` and
``run(args) -> int``. This module alone turns exceptions into the one-line
``river-supervisor: error: ...`` message and an exit code (``errors.EXIT_*``: 0 ok, 1 failed,
2 usage/config, 69 database unavailable, 130 interrupted), with a traceback only under ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    RiverSupervisorError,
    first_line,
)

PROG = "river-supervisor"

COMMANDS: dict[str, str] = {
    "run": "run the supervisor: worker processes, leadership, periodic jobs",
    "migrate": "create or upgrade the database schema",
    "plugins": "list discovered plugins, their job kinds, schedules and load errors",
    "check": "validate configuration and plugins; report drift against the live cluster",
    "status": "leader, nodes, drift, schedules and queue counts",
    "health": "exit 0 when this host's supervisor is up, its workers ready and the database answers",
    "enqueue": "insert a job",
    "jobs": "list, show, retry or cancel jobs",
    "queues": "list queues; pause or resume them on every host (River's river_queue)",
    "leader": "ask the cluster's leader to step down so another host leads",
    "bench": "measure throughput and latency on the configured database",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line and exit 2 (as argparse does) without the usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{PROG}: error: {self.prog}: {message}\n")
        raise SystemExit(EXIT_USAGE)


def add_common_arguments(parser: argparse.ArgumentParser, *, nested: bool = False) -> None:
    """The options every command takes. ``nested``: a sub-command's copy (``jobs list --config``),
    which leaves the command's value alone unless given (argparse would reset it to the default)."""

    def option(*names: str, **kwargs: object) -> None:
        if nested:
            kwargs["default"] = argparse.SUPPRESS
        parser.add_argument(*names, **kwargs)  # type: ignore[arg-type]

    option("--config", metavar="PATH", help="configuration file (TOML)")
    option("--database-url", metavar="URL", help="PostgreSQL URL (env DATABASE_URL)")
    option("--sentry-dsn", metavar="DSN", help="Sentry DSN (env SENTRY_DSN)")
    option("--debug", action="store_true", help="show tracebacks and debug logs")
    option(
        "--log-level",
        default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default INFO, DEBUG with --debug)",
    )
    option("--log-format", default="text", choices=["text", "json"], help="log line format")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="River-compatible job supervisor")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, help_text in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        add_common_arguments(command_parser)
        importlib.import_module(f".commands.{name}", __package__).add_arguments(command_parser)
    return parser


def configure_logging(level: str, fmt: str) -> None:
    from .logs import install

    install(level=level, fmt=fmt)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):  # bare `river-supervisor`: the command list
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    level = args.log_level or ("DEBUG" if args.debug else "INFO")
    configure_logging(level, args.log_format)
    command = importlib.import_module(f".commands.{args.command}", __package__)
    try:
        return int(command.run(args) or 0)
    except RiverSupervisorError as exc:
        if args.debug:
            logging.getLogger(__name__).exception("%s failed", args.command)
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say so in one line, show the traceback on --debug
        if args.debug:
            raise
        if _unavailable(exc):  # the database went away (or went read-only) mid-command: "try again"
            sys.stderr.write(f"{PROG}: error: {args.command}: database unavailable: {first_line(exc)}\n")
            return EXIT_UNAVAILABLE
        sys.stderr.write(
            f"{PROG}: error: {args.command}: unexpected {type(exc).__name__}: {exc}"
            " (run again with --debug for the traceback)\n"
        )
        return EXIT_FAILED


def _unavailable(exc: BaseException) -> bool:
    """A ``db.TRANSIENT`` error (try again later), except a cancelled statement (a timeout: a
    command's own bound, not the database going away)."""
    import psycopg  # every command that can lose a connection has imported it already

    from . import db

    return isinstance(exc, db.TRANSIENT) and not isinstance(exc, psycopg.errors.QueryCanceled)
