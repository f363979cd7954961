"""Enqueueing through a declaration: ``DeclaredJob``, what ``@plugin.job(kind, ...)`` returns.

Owns the handler that also inserts its own kind with the options the plugin declared. Part of the
plugin API, re-exported by ``plugins``: layer 1, it imports ``plugin_job`` and ``plugin_decls``; the
enqueue API (``client``, layer 2: psycopg) only inside its methods, on first use.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from .plugin_decls import JobDecl, JobOptions
from .plugin_job import Job


class DeclaredJob:
    """What ``@plugin.job(kind, ...)`` returns: the handler, still called as ``charge(job)``, that
    can also enqueue its kind from application code with the options the plugin declared.

    ``charge.enqueue(conn, customer=42)`` inserts ``{"customer": 42}`` with the declared queue,
    priority, max_attempts and unique options, on ``conn`` in its transaction (see
    ``river_supervisor.client``); ``await charge.enqueue_async(aconn, ...)`` on an AsyncConnection;
    ``charge.spec(...)`` builds one job for ``river_supervisor.enqueue_many``. Args are a mapping,
    keywords, or both. ``charge.configure(scheduled_in=60, priority=1)`` returns a copy whose inserts
    use those options instead (any of ``enqueue``'s options). Returns ``InsertResult`` as ``enqueue``.
    """

    def __init__(self, decl: JobDecl, overrides: Mapping[str, Any] | None = None) -> None:
        self.decl = decl
        self._overrides = dict(overrides or {})
        functools.update_wrapper(self, decl.handler)  # __name__, __doc__, __wrapped__ of the handler

    def __call__(self, job: Job) -> Any:
        return self.decl.handler(job)

    def __repr__(self) -> str:
        return f"DeclaredJob({self.decl.kind!r}, plugin={self.decl.plugin!r})"

    @property
    def kind(self) -> str:
        return self.decl.kind

    @property
    def options(self) -> JobOptions:
        return self.decl.options

    def configure(self, **options: Any) -> DeclaredJob:
        """A copy whose inserts use ``options`` (``queue=``, ``scheduled_in=``, ...) over the declared."""
        return DeclaredJob(self.decl, {**self._overrides, **options})

    def insert_options(self) -> dict[str, Any]:
        """The options an insert of this kind gets: the declaration's, then ``configure``'s."""
        declared = self.decl.options
        return {
            "queue": declared.queue,
            "priority": declared.priority,
            "max_attempts": declared.max_attempts,
            "unique": declared.unique,
            **self._overrides,
        }

    def spec(self, args: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Any:
        """One job of this kind (a validated ``JobSpec``) for ``enqueue_many``."""
        # Function-local: this module is layer 1 (no psycopg); the client is imported on first use.
        from .client import job_spec

        return job_spec(self.decl.kind, {**(args or {}), **kwargs}, **self.insert_options())

    def enqueue(self, conn: Any, args: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Any:
        """Insert one job of this kind on a psycopg ``Connection``; an ``InsertResult``."""
        from .client import enqueue_many

        return enqueue_many(conn, [self.spec(args, **kwargs)])[0]

    async def enqueue_async(self, conn: Any, args: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Any:
        """Insert one job of this kind on a psycopg ``AsyncConnection``; an ``InsertResult``."""
        from .client import enqueue_many_async

        return (await enqueue_many_async(conn, [self.spec(args, **kwargs)]))[0]
