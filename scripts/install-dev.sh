#!/usr/bin/env bash
# Install river-supervisor, its first-party plugins and the test tools into the active Python.
# The test plugins (job kinds the process tests run) must not land in the quick start's venv: a
# `river-supervisor run` there would then work test kinds. So this refuses the README's quick-start
# venv (.venv at the top of the repository) and says which Python it installs into.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(python -c 'import sys; print(sys.prefix)')
if [ "$prefix" = "$(pwd -P)/.venv" ] || [ "$prefix" = "$(pwd)/.venv" ]; then
  echo "install-dev.sh: $prefix is the quick start's venv; the test plugins would make its" \
       "\`river-supervisor run\` work test job kinds. Use a venv of its own:" \
       "python3 -m venv .venv-dev && . .venv-dev/bin/activate" >&2
  exit 2
fi
echo "install-dev.sh: installing into $prefix" >&2
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
