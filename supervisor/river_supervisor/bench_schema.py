"""The bench's isolation: a scratch schema of its own, migrated, and dropped whatever happens.

Owns the schema's name, the URL whose sessions start in it (``search_path``) and its lifetime. It may
import ``db``, ``schema`` and ``bench_options``; its statements are named queries in ``sql/bench.sql``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from . import db, schema
from .bench_options import BenchError


def scratch_schema_name() -> str:
    # Short: channel names are <schema>.<topic>, and an identifier is at most 63 bytes.
    return f"rs_bench_{os.getpid()}_{secrets.token_hex(3)}"


def with_search_path(url: str, schema_name: str) -> str:
    """``url`` as a libpq key=value string whose sessions start with ``search_path`` = the schema."""
    params = conninfo_to_dict(url)
    options = params.get("options") or ""
    params["options"] = f"{options} -c search_path={schema_name}".strip()
    return make_conninfo("", **params)


def _schema_statement(name: str, schema_name: str) -> sql.Composed:
    return sql.SQL(db.query(name)).format(schema=sql.Identifier(schema_name))


@contextlib.contextmanager
def scratch_schema(database_url: str) -> Iterator[str]:
    """Create, migrate and finally drop a schema of our own; yields a URL that works in it."""
    name = scratch_schema_name()
    with db.connect(database_url, application_name="river-supervisor bench") as admin:
        try:
            admin.execute(_schema_statement("bench_schema_create", name))
        except psycopg.errors.InsufficientPrivilege as exc:
            raise BenchError(
                f"bench: cannot create a scratch schema ({exc.diag.message_primary}); "
                "the bench needs CREATE on the database"
            ) from None
        try:
            url = with_search_path(database_url, name)
            with db.connect(url, application_name="river-supervisor bench") as conn:
                schema.migrate(conn)
            yield url
        finally:
            admin.execute(_schema_statement("bench_schema_drop", name))
