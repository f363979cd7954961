#!/usr/bin/env bash
# River's benchmark workload beside `river-supervisor bench`, on one database in one run: N no-op
# jobs inserted in bulk, then worked; prints both throughputs and their ratio.
#
#   DATABASE_URL=postgresql://... bash scripts/compare.sh [JOBS]      (default 20000)
#
# River's side is tests/interop/go/cmd/riverinterop `bench` (River v0.51.2's client, the workload
# of cmd/river's `river bench --num-total-jobs`; cmd/river itself is not served by the module proxy
# here), run twice: as river-supervisor's default shape (2 clients x 100 workers, like 2 processes
# x 100 concurrency) and as River's bench runs (1 client x 2,000 workers). Each run works in a
# scratch schema of its own, dropped at the end. Needs Go, and the project installed in the active
# Python (scripts/install-dev.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

url=${DATABASE_URL:-${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}}
jobs=${1:-20000}
command -v go >/dev/null || { echo "compare.sh: go is not installed (River's side is a Go program)" >&2; exit 2; }

(cd tests/interop/go && GOFLAGS=-mod=readonly GOTOOLCHAIN=local go build -o bin/riverinterop ./cmd/riverinterop)
river=tests/interop/go/bin/riverinterop

echo "compare: River, 2 clients x 100 workers, $jobs jobs" >&2
river_2x100=$("$river" bench --database-url "$url" --jobs "$jobs" --clients 2 --max-workers 100)
echo "compare: River, 1 client x 2000 workers (River's bench settings), $jobs jobs" >&2
river_1x2000=$("$river" bench --database-url "$url" --jobs "$jobs" --clients 1 --max-workers 2000)
echo "compare: river-supervisor bench, 2 processes x 100 concurrency, $jobs jobs" >&2
ours=$(python -m river_supervisor bench --database-url "$url" --jobs "$jobs" --processes 2 --concurrency 100 --json)

python - "$river_2x100" "$river_1x2000" "$ours" <<'EOF'
import json, os, platform, sys

river_2x100, river_1x2000, ours = (json.loads(arg) for arg in sys.argv[1:])
machine = ours["machine"]
print(f"machine: {machine['cpus']} CPUs, {platform.machine()}, PostgreSQL {machine['postgres']},"
      f" Python {machine['python']}, load average {os.getloadavg()[0]:.2f} at the end")
print(f"{ours['jobs']:,} no-op jobs each; work = jobs / (last finalized_at - first attempted_at), database clock")
print()
print(f"{'implementation':<44} {'work jobs/s':>12} {'insert jobs/s':>14}")
rows = [
    ("River v0.51.2, 2 clients x 100 workers", river_2x100["work_jobs_per_s"], river_2x100["insert_jobs_per_s"], "InsertMany"),
    ("River v0.51.2, 1 client x 2,000 workers", river_1x2000["work_jobs_per_s"], river_1x2000["insert_jobs_per_s"], "InsertMany"),
    ("river-supervisor, 2 processes x 100", ours["work_jobs_per_second"], ours["insert_jobs_per_second"], "COPY"),
]
for name, work, insert, how in rows:
    print(f"{name:<44} {work:>12,.0f} {insert:>9,.0f} ({how})")
print()
print(f"ratio river-supervisor / River (2 x 100): {ours['work_jobs_per_second'] / river_2x100['work_jobs_per_s']:.2f}")
print(f"ratio river-supervisor / River (1 x 2,000): {ours['work_jobs_per_second'] / river_1x2000['work_jobs_per_s']:.2f}")
EOF
