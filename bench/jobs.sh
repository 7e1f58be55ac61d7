#!/usr/bin/env bash
# The job queue's figures (docs/guide/jobs.md), on the jobs-demo example (examples/jobs):
#   - jobs/s for no-op jobs (`demo.noop`: the queue's own cost: claim, run, record) and for
#     jobs that write two rows each (`demo.work`), worked by one server with
#     --jobs-workers $WORKERS;
#   - enqueue latency: `Jobs::enqueue`, one transaction per job, measured in the process;
#   - the CPU an idle queue costs: the server's user+system time over $IDLE seconds.
#
#   bash bench/jobs.sh                              # SQLite in a temporary directory
#   JOBS=20000 WORKERS=4 bash bench/jobs.sh
#   DSN=postgres://… bash bench/jobs.sh            # an empty PostgreSQL database
#   JOBS_BIN=target/release/jobs-demo bash bench/jobs.sh   # skip the build
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=x86_64-unknown-linux-gnu
JOBS=${JOBS:-10000}
WORKERS=${WORKERS:-2}
IDLE=${IDLE:-30}

log() { printf '==> %s\n' "$*" >&2; }

if [ -z "${JOBS_BIN:-}" ]; then
  log "building the static release jobs-demo"
  (cd "$ROOT" && CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS='-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs' \
    cargo build --release --target "$TARGET" -p jobs-demo)
  JOBS_BIN=$ROOT/target/$TARGET/release/jobs-demo
fi
TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
DSN=${DSN:-$TMP/app.db}
export SESSION_HASH_KEY=5e5510a0c0ffee00112233445566778899aabbccddeeff00deadbeefcafe0b01
export CSRF_KEY=c5bf00d1e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7c5bf0b02
run() { "$JOBS_BIN" "$@" --database-dsn "$DSN" --log-level warn; }

start_server() {
  "$JOBS_BIN" --port 0 --database-dsn "$DSN" --jobs-workers "$WORKERS" --log-level info \
    >"$TMP/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 200); do
    PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$TMP/server.log" | head -1)
    [ -n "$PORT" ] && grep -q ' ready ' "$TMP/server.log" && return
    sleep 0.05
  done
  cat "$TMP/server.log"; exit 1
}
stop_server() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=; }
completed() { curl -s "http://127.0.0.1:$PORT/healthz/ready" | sed -n 's/.*"completed":\([0-9]*\).*/\1/p'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Work off $JOBS queued jobs of one kind; prints jobs/s and the server's CPU per job.
work() {
  local kind=$1 target=$2
  start_server
  local t0 c0
  t0=$(date +%s.%N); c0=$(cpu_ticks "$SERVER_PID")
  until [ "$(completed)" -ge "$target" ] 2>/dev/null; do sleep 0.05; done
  local t1 c1
  t1=$(date +%s.%N); c1=$(cpu_ticks "$SERVER_PID")
  stop_server
  awk -v n="$JOBS" -v t0="$t0" -v t1="$t1" -v c="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" -v k="$kind" \
    'BEGIN { t = t1 - t0; printf "%-28s %6d jobs in %6.2f s: %7.0f jobs/s, server CPU %5.1f µs per job\n", k, n, t, n / t, c / hz * 1e6 / n }'
}

run migrate >/dev/null

# Idle first, on the empty queue: what a server whose queue has nothing due costs.
start_server
sleep 2
c0=$(cpu_ticks "$SERVER_PID"); sleep "$IDLE"; c1=$(cpu_ticks "$SERVER_PID")
stop_server
awk -v c="$((c1 - c0))" -v s="$IDLE" -v hz="$(getconf CLK_TCK)" \
  'BEGIN { printf "idle queue: %.2f ms of CPU per second (%.3f%% of one core) over %d s\n", c / hz * 1000 / s, c / hz * 100 / s, s }'

log "$(run enqueue --noop --count "$JOBS")"
work "no-op jobs" "$JOBS"
log "$(run enqueue --count "$JOBS" --prefix rows)"
work "jobs writing 2 rows each" "$((JOBS * 2))"
echo "enqueue latency, one transaction per job: $(run enqueue --one-by-one --count 1000 --prefix latency)"
