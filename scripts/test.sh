#!/usr/bin/env bash
# The test command: lint, then the whole suite against the PostgreSQL of TEST_DATABASE_URL /
# DATABASE_URL (default postgresql://127.0.0.1:5432); the suite makes and drops its own database.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m ruff check supervisor tests plugins examples
python -m pytest "$@"
