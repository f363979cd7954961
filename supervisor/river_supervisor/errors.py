"""Errors whose ``str()`` is the one-line message a user sees, and the exit codes they map to.

``cli.main()`` maps them to exit codes (the README's table): configuration and usage errors exit 2,
an unreachable database 69, the rest 1.
"""

from __future__ import annotations

# The exit codes of every command, one table (README "Exit codes").
EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and failed, or found problems (check, health)
EXIT_USAGE = 2  # usage or configuration error: fix the command line or the file (argparse's too)
EXIT_UNAVAILABLE = 69  # the database cannot be reached: try again later (sysexits.h EX_UNAVAILABLE)
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report it


def first_line(error: BaseException | str) -> str:
    """An error's first line (libpq adds tab-indented hints below it): the one way an exception, or
    a stored error text, is shown in a log line, a warning or a one-line CLI error. An exception with
    no text shows its type; an empty text stays empty."""
    text = str(error).strip()
    if text:
        return text.splitlines()[0]
    return "" if isinstance(error, str) else type(error).__name__


class RiverSupervisorError(Exception):
    """Base class: every error the CLI reports without a traceback."""

    exit_code = EXIT_FAILED


class ConfigError(RiverSupervisorError):
    """A configuration value is wrong: names the file, the key and what was expected."""

    exit_code = EXIT_USAGE

    def __init__(self, path: str | None, key: str | None, expected: str) -> None:
        self.path = path
        self.key = key
        self.expected = expected
        where = ": ".join(part for part in (path, key) if part)
        super().__init__(f"{where}: {expected}" if where else expected)


class UsageError(RiverSupervisorError):
    """A bad command-line argument or combination of arguments."""

    exit_code = EXIT_USAGE


class InvalidJob(UsageError, ValueError):
    """A job to insert is invalid (kind, args, queue, priority, ...): the message names the field.

    Raised by ``river_supervisor.enqueue`` and friends, and by ``river-supervisor enqueue``, before
    any SQL runs. A ``ValueError`` too, so application code can treat it as bad input.
    """


class DatabaseUnavailable(RiverSupervisorError):
    """The database cannot be reached; the message names it without its password. Its own exit
    code, so a health check or a deploy script can tell "try again" from "fix the input"."""

    exit_code = EXIT_UNAVAILABLE


class SchemaMissing(RiverSupervisorError):
    """The database is reachable but not migrated (run ``river-supervisor migrate``)."""

    exit_code = EXIT_USAGE


class SchemaTooNew(RiverSupervisorError):
    """The database has migrations newer than this package knows: refused, nothing changed."""

    exit_code = 2


class JobNotFound(RiverSupervisorError):
    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id}: not found")


class QueueNotFound(RiverSupervisorError):
    """A queue named for pause or resume has no ``river_queue`` row (River's ``ErrNotFound``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"queue {name}: not found (no host has served it within River's 24 h retention;"
            " `river-supervisor queues list` shows the known queues)"
        )


class PluginLoadError(RiverSupervisorError):
    """A plugin could not be loaded; the others still are."""

    def __init__(self, name: str, distribution: str | None, error: str) -> None:
        self.name = name
        self.distribution = distribution
        self.error = error
        dist = f" ({distribution})" if distribution else ""
        super().__init__(f"plugin {name}{dist}: {error}")


class PluginConflict(RiverSupervisorError):
    """Two plugins claim the same job kind or periodic id."""

    exit_code = EXIT_USAGE


class NotLeader(RiverSupervisorError):
    """A fenced write found that this process no longer holds its term."""

    def __init__(self, service: str, term: int) -> None:
        self.service = service
        self.term = term
        super().__init__(f"{service}: term {term} is no longer held; write refused")
