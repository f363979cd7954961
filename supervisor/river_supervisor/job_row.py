"""A ``river_job`` row as Python sees it, and the guard that turns a missing schema into advice."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from . import db
from .errors import SchemaMissing


@dataclass(frozen=True, slots=True)
class JobRow:
    """A ``river_job`` row."""

    id: int
    kind: str
    args: dict[str, Any]
    queue: str
    priority: int
    state: str
    attempt: int
    max_attempts: int
    attempted_at: datetime | None
    attempted_by: list[str]
    created_at: datetime
    finalized_at: datetime | None
    scheduled_at: datetime
    errors: list[dict[str, Any]]
    metadata: dict[str, Any]
    tags: list[str]
    unique_key: bytes | None
    unique_states: int | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> JobRow:
        return cls(
            id=row["id"],
            kind=row["kind"],
            args=_json(row["args"], {}),
            queue=row["queue"],
            priority=row["priority"],
            state=row["state"],
            attempt=row["attempt"],
            max_attempts=row["max_attempts"],
            attempted_at=row["attempted_at"],
            attempted_by=list(row["attempted_by"] or []),
            created_at=row["created_at"],
            finalized_at=row["finalized_at"],
            scheduled_at=row["scheduled_at"],
            errors=[_json(error, {}) for error in row["errors"] or ()],
            metadata=_json(row["metadata"], {}),
            tags=list(row["tags"] or []),
            unique_key=bytes(row["unique_key"]) if row["unique_key"] is not None else None,
            unique_states=row["unique_states_int"],
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values: ISO 8601 times with offset, the unique key in hex."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, bytes):
                value = value.hex()
            out[name] = value
        return out


def _json(value: Any, default: Any) -> Any:
    # A connection may load jsonb as text: Django registers that loader on its psycopg connections,
    # and application code enqueues on those (``django.db.connection.connection``).
    if value is None:
        return default
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


def schema_guard(exc: psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction) -> SchemaMissing:
    return SchemaMissing(f"river_job is missing ({exc.diag.message_primary}): run river-supervisor migrate")


def run_all(conn: psycopg.Connection[Any], name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    try:
        return db.fetch_all(conn, name, params)
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedObject) as exc:
        raise schema_guard(exc) from exc  # type: ignore[arg-type]
