"""Errors whose ``str()`` is the one-line message a user sees.

``cli.main()`` maps them to exit codes: configuration and usage errors exit 2, the rest 1.
"""

from __future__ import annotations


class RiverSupervisorError(Exception):
    """Base class: every error the CLI reports without a traceback."""

    exit_code = 1


class ConfigError(RiverSupervisorError):
    """A configuration value is wrong: names the file, the key and what was expected."""

    exit_code = 2

    def __init__(self, path: str | None, key: str | None, expected: str) -> None:
        self.path = path
        self.key = key
        self.expected = expected
        where = ": ".join(part for part in (path, key) if part)
        super().__init__(f"{where}: {expected}" if where else expected)


class UsageError(RiverSupervisorError):
    """A bad command-line argument or combination of arguments."""

    exit_code = 2


class InvalidJob(UsageError, ValueError):
    """A job to insert is invalid (kind, args, queue, priority, ...): the message names the field.

    Raised by ``river_supervisor.enqueue`` and friends, and by ``river-supervisor enqueue``, before
    any SQL runs. A ``ValueError`` too, so application code can treat it as bad input.
    """


class DatabaseUnavailable(RiverSupervisorError):
    """The database cannot be reached; the message names it without its password."""

    exit_code = 2


class SchemaMissing(RiverSupervisorError):
    """The database is reachable but not migrated (run ``river-supervisor migrate``)."""

    exit_code = 2


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

    exit_code = 2


class NotLeader(RiverSupervisorError):
    """A fenced write found that this process no longer holds its term."""

    def __init__(self, service: str, term: int) -> None:
        self.service = service
        self.term = term
        super().__init__(f"{service}: term {term} is no longer held; write refused")
