#!/usr/bin/env bash
# The test command: lint, then the whole suite against the PostgreSQL of TEST_DATABASE_URL (default
# postgresql://127.0.0.1:5432; never DATABASE_URL); the suite makes and drops its own databases.
# Tests that restart or freeze a server start a private cluster of their own (tests/harness).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m ruff check supervisor tests plugins examples scripts
python -m ruff format --check supervisor tests plugins examples scripts
python -m mypy supervisor/river_supervisor  # strict: see [tool.mypy] in pyproject.toml
python -m pytest "$@"
