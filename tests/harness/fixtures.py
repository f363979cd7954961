"""Reusable pytest fixtures from the harness; ``tests/conftest.py`` imports them to register them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.sentry_ingest import SentryIngest


@pytest.fixture
def sentry_ingest() -> Iterator[SentryIngest]:
    """A loopback Sentry ingest (real HTTP on 127.0.0.1); ``.dsn`` points any process's SDK at it."""
    ingest = SentryIngest().start()
    try:
        yield ingest
    finally:
        ingest.close()
