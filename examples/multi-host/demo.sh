#!/usr/bin/env bash
# Three "hosts" on one machine against one PostgreSQL: watch leadership move and periodic slots
# continue exactly once. Needs DATABASE_URL and the shell plugin (pip install ./plugins/shell).
set -euo pipefail
cd "$(dirname "$0")"
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL you may write to}"
river-supervisor migrate
pids=()
for node in host-a host-b host-c; do
  river-supervisor run --config river-supervisor.toml --node "$node" --log-format json \
    2>"$node.log" &
  pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' EXIT
sleep 8
river-supervisor status --config river-supervisor.toml
leader_pid=$(river-supervisor status --config river-supervisor.toml --json |
  python3 -c 'import json,sys; s=json.load(sys.stdin); print([n["pid"] for n in s["nodes"] if n["node"]==s["leader"]["node"]][0])')
echo "stopping the leader (pid $leader_pid) with SIGTERM: a peer takes over at once"
kill -TERM "$leader_pid"
sleep 8
river-supervisor status --config river-supervisor.toml
river-supervisor jobs list --kind shell.run --config river-supervisor.toml
