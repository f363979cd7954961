#!/usr/bin/env bash
# Debian packages the test suite drives for real (beyond PostgreSQL, see local-postgres.sh): installed
# only when missing, so a second run is instant. Needs root (CI and the dev machines are).
set -euo pipefail

PACKAGES=(
  # package name          # what needs it
  prometheus              # tests/process/test_metrics.py: a real server scrapes the supervisor
  chromium                # tests/interop/test_river_ui.py drives River UI in it (playwright-core)
)

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
