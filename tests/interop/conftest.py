"""Fixtures of the interop suite: River's Go programs, built once per run, and a fresh database each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.harness import database
from tests.interop import river_go
from tests.interop.sides import Sides, sides_fixture

CATALOG = Path(__file__).resolve().parents[1] / "conformance" / "catalog.sql"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = river_go.go_missing_reason()
    for item in items:
        if reason and item.get_closest_marker("interop"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def riverinterop_bin() -> Path:
    return river_go.build("riverinterop")


@pytest.fixture
def fresh_url() -> Iterator[str]:
    """An empty database of this test's own (River's and our migrations both start from nothing)."""
    name = database.create_database()
    yield database.with_database(database.admin_url(), name)
    database.drop_database(name)


@pytest.fixture
def river(riverinterop_bin: Path, fresh_url: str) -> river_go.RiverGo:
    return river_go.RiverGo(riverinterop_bin, fresh_url)


@pytest.fixture
def sides(river: river_go.RiverGo, tmp_path: Path) -> Iterator[Sides]:
    """The fresh database migrated by us, River's client and our supervisors to start on it."""
    yield from sides_fixture(river, tmp_path)


def catalog(url: str) -> list[str]:
    """River's tables, indexes, constraints, enum and functions, one sorted line each."""
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(CATALOG.read_text())]
