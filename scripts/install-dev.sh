#!/usr/bin/env bash
# Install river-supervisor, its first-party plugins and the test tools into the active Python.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e '.[test,embedded]'
for plugin in plugins/*/; do
  [ -f "$plugin/pyproject.toml" ] && python -m pip install -q -e "$plugin"
done
[ -f examples/billing-plugin/pyproject.toml ] && python -m pip install -q -e examples/billing-plugin
# job kinds the process tests run (no-ops, failures, crashes, sleeps)
python -m pip install -q -e tests/process/testjobs
# the interop tests' job kinds, twins of River's Go workers in tests/interop/go
python -m pip install -q -e tests/interop/interopjobs
exit 0
