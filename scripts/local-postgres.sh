#!/usr/bin/env bash
# Make a PostgreSQL answer on 127.0.0.1:5432 for the test suite: when nothing answers there, install
# Debian's postgresql (if missing), let 127.0.0.1 and ::1 in with trust authentication, start the
# newest cluster and wait until it accepts connections. Needs root (CI and the dev machines are).
set -euo pipefail

if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  exit 0
fi

if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
  echo "local-postgres: installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q postgresql postgresql-contrib
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
if [ ! -d "/etc/postgresql/$version/main" ]; then
  pg_createcluster "$version" main
fi
conf=/etc/postgresql/$version/main

# Trust on loopback only: the suite connects as postgres over TCP with no password.
hba=$conf/pg_hba.conf
if ! grep -q '^# river-supervisor: trust loopback' "$hba"; then
  {
    echo "# river-supervisor: trust loopback"
    echo "host    all             all             127.0.0.1/32            trust"
    echo "host    all             all             ::1/128                 trust"
    echo "host    replication     all             127.0.0.1/32            trust"
    cat "$hba"
  } >"$hba.new"
  mv "$hba.new" "$hba"
  chown postgres:postgres "$hba"
fi
# The process tests run several supervisors at once, each with a handful of connections.
echo "max_connections = 300" >"$conf/conf.d/river-supervisor.conf"
chown postgres:postgres "$conf/conf.d/river-supervisor.conf"

echo "local-postgres: starting cluster $version/main"
pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster "$version" main restart
for _ in $(seq 1 120); do
  pg_isready -h 127.0.0.1 -p 5432 -q && exit 0
  sleep 0.5
done
echo "local-postgres: PostgreSQL did not answer on 127.0.0.1:5432 within 60 s" >&2
exit 1
