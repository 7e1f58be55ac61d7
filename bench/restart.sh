#!/usr/bin/env bash
# Zero-downtime restart under load: wrk keeps 32 connections busy on GET /notes while the
# server gets SIGHUP after SIGHUP; reports failed requests and the time from each SIGHUP
# to the new process serving. See bench/README.md ("Restart under load").
#
# Environment:
#   RESTARTS     SIGHUPs per wrk run (default 20)
#   INTERVAL     seconds between the end of one restart and the next SIGHUP (default 1)
#   CONNECTIONS  wrk connections (default 32)
#   THREADS      wrk threads (default 2)
#   NOTES        notes generated before the run (default 1000)
#   SERVER_BIN   use this server binary instead of building the static release binary
#   KEEP_OUTPUT  a directory to copy the raw wrk outputs, the timings and the server log into
#
# Traffic goes to 127.0.0.1 only.
set -euo pipefail

RESTARTS=${RESTARTS:-20}
INTERVAL=${INTERVAL:-1}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
NOTES=${NOTES:-1000}
KEEP_OUTPUT=${KEEP_OUTPUT:-}

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
TARGET=x86_64-unknown-linux-gnu

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'restart.sh: error: %s\n' "$*" >&2; exit 1; }

# --- tools -----------------------------------------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
    log "wrk not found; installing it with apt-get"
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "wrk is missing and we are not root (no sudo either)"
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq wrk >/dev/null
    command -v wrk >/dev/null 2>&1 || die "apt-get did not install wrk"
fi
command -v curl >/dev/null 2>&1 || die "curl is required (readiness checks)"

# --- server binary ---------------------------------------------------------------
if [ -n "${SERVER_BIN:-}" ]; then
    BIN=$SERVER_BIN
    log "using SERVER_BIN=$BIN (no build)"
else
    log "building the static release binary (cargo build --release --target $TARGET -p notes)"
    (cd "$ROOT" && CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --release --target "$TARGET" -p notes)
    BIN=$ROOT/target/$TARGET/release/server
fi
[ -x "$BIN" ] || die "server binary not found or not executable: $BIN"

# --- processes -------------------------------------------------------------------
# True while the process runs (a zombie, an exited child not yet reaped, does not count).
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    case ${stat:0:1} in Z | X) return 1 ;; *) return 0 ;; esac
}
pid_in_file() { tr -d '[:space:]' 2>/dev/null <"$PID_FILE" || true; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/notes-restart.XXXXXX")
DB=$TMP/app.db
PID_FILE=$TMP/server.pid
SERVER_LOG=$TMP/server.log
FIRST_PID=
WRK_PID=
cleanup() {
    if [ -n "$WRK_PID" ]; then kill -INT "$WRK_PID" 2>/dev/null || true; fi
    local pid
    for pid in "$(pid_in_file)" "$FIRST_PID"; do
        if [ -n "$pid" ] && running "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- data and start --------------------------------------------------------------
log "generating $NOTES notes in $DB"
"$BIN" --database-dsn "$DB" --log-level warn generate-notes --count "$NOTES" >"$TMP/generate.out" 2>&1 \
    || { cat "$TMP/generate.out" >&2; die "generate-notes failed"; }

# --port 0: the port is read from the log; it stays the same across restarts (the new
# process inherits the listening socket). --detach false: the first process stays our child.
log "starting $BIN with --pid-file $PID_FILE --detach false"
"$BIN" --host 127.0.0.1 --port 0 --database-dsn "$DB" --log-level info \
    --pid-file "$PID_FILE" --detach false >"$SERVER_LOG" 2>&1 &
FIRST_PID=$!
PORT=
for _ in $(seq 1 300); do # 300 x 0.1 s = 30 s
    running "$FIRST_PID" || { cat "$SERVER_LOG" >&2; die "the server exited during start-up"; }
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$SERVER_LOG" | head -1)
    if [ -n "$PORT" ] && [ "$(pid_in_file)" = "$FIRST_PID" ] \
        && curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/healthz/ready" 2>/dev/null; then
        break
    fi
    PORT=
    sleep 0.1
done
[ -n "$PORT" ] || { cat "$SERVER_LOG" >&2; die "the server was not ready within 30 s"; }
BASE=http://127.0.0.1:$PORT
log "serving on $BASE, PID $FIRST_PID"

# --- one run: wrk for the whole time, SIGHUPs meanwhile ----------------------------
# Sends SIGHUP to the PID in the PID file, waits until the PID file names a new running
# process and /healthz/live answers (prints the milliseconds this took), then waits until
# the old process has exited (a SIGHUP while it drains would be ignored). Sets RESTART_MS.
RESTART_MS=
restart_once() {
    local old new t0 t1 deadline
    old=$(pid_in_file)
    if [ -z "$old" ] || ! running "$old"; then
        die "the PID file does not name a running server (${old:-empty})"
    fi
    t0=$(now_ms)
    kill -HUP "$old"
    deadline=$((t0 + 60000))
    while :; do
        new=$(pid_in_file)
        if [ -n "$new" ] && [ "$new" != "$old" ] && running "$new" \
            && curl -fsS -o /dev/null --max-time 2 "$BASE/healthz/live" 2>/dev/null; then
            break
        fi
        [ "$(now_ms)" -lt "$deadline" ] || { tail -20 "$SERVER_LOG" >&2; die "no new serving process 60 s after SIGHUP to $old"; }
        sleep 0.005
    done
    t1=$(now_ms)
    while running "$old"; do
        [ "$(now_ms)" -lt "$((t1 + 60000))" ] || die "old process $old still runs 60 s after its successor $new was ready"
        sleep 0.01
    done
    if [ "$old" = "$FIRST_PID" ]; then
        wait "$FIRST_PID" || die "the first process exited with $? after its restart (expected 0)"
    fi
    RESTART_MS=$((t1 - t0))
}

NAMES=()
run() { # name wrk-args...
    local name=$1 i=${#NAMES[@]}
    shift
    local out=$TMP/wrk-$i.txt times=$TMP/times-$i.txt
    : >"$times"
    log "$name: wrk ${THREADS} threads, ${CONNECTIONS} connections $*; $RESTARTS SIGHUPs"
    # A long duration; wrk stops on SIGINT and prints its results then.
    wrk --threads "$THREADS" --connections "$CONNECTIONS" --duration 1h --timeout 5s --latency "$@" "$BASE/notes" >"$out" 2>&1 &
    WRK_PID=$!
    sleep 2 # load before the first SIGHUP
    for n in $(seq 1 "$RESTARTS"); do
        kill -0 "$WRK_PID" 2>/dev/null || { cat "$out" >&2; die "wrk stopped early"; }
        restart_once
        echo "$RESTART_MS" >>"$times"
        printf '    SIGHUP %2d: new process serving after %s ms (PID %s)\n' "$n" "$RESTART_MS" "$(pid_in_file)" >&2
        sleep "$INTERVAL"
    done
    sleep 1 # load after the last restart
    kill -INT "$WRK_PID"
    wait "$WRK_PID" || { cat "$out" >&2; die "wrk failed"; }
    WRK_PID=
    NAMES+=("$name")
}

run "keep-alive"
run "new connections" --header 'Connection: close'

# --- stop ------------------------------------------------------------------------
LAST_PID=$(pid_in_file)
log "stopping PID $LAST_PID (SIGTERM)"
kill -TERM "$LAST_PID"
for _ in $(seq 1 300); do # up to 30 s
    running "$LAST_PID" || break
    sleep 0.1
done
running "$LAST_PID" && die "the server did not exit within 30 s of SIGTERM"
[ -e "$PID_FILE" ] && die "the PID file is left after SIGTERM"

if [ -n "$KEEP_OUTPUT" ]; then
    mkdir -p "$KEEP_OUTPUT"
    cp "$TMP"/wrk-*.txt "$TMP"/times-*.txt "$SERVER_LOG" "$KEEP_OUTPUT"/
fi

# --- summary ---------------------------------------------------------------------
printf '\nnotes server, GET /notes, %s notes, wrk: %s threads, %s connections, %s SIGHUPs per run\n' \
    "$NOTES" "$THREADS" "$CONNECTIONS" "$RESTARTS"
printf '%-16s %9s %10s %12s %9s %10s %10s %10s\n' run requests req/s non-2xx/3xx sock-err 'min ms' 'median ms' 'max ms'
failed=0
for i in "${!NAMES[@]}"; do
    out=$TMP/wrk-$i.txt
    total=$(awk '/ requests in / { print $1 }' "$out")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    sockerr=$(awk '/Socket errors:/ { s = 0; for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i; print s }' "$out")
    non2xx=${non2xx:-0}
    sockerr=${sockerr:-0}
    sorted=$(sort -n "$TMP/times-$i.txt")
    count=$(echo "$sorted" | wc -l)
    min=$(echo "$sorted" | head -1)
    max=$(echo "$sorted" | tail -1)
    median=$(echo "$sorted" | sed -n "$(((count + 1) / 2))p")
    printf '%-16s %9s %10s %12s %9s %10s %10s %10s\n' "${NAMES[$i]}" "${total:-?}" "${rps:-?}" "$non2xx" "$sockerr" "$min" "$median" "$max"
    grep -E 'Socket errors:' "$out" >&2 || true
    if [ "$non2xx" != 0 ] || [ "$sockerr" != 0 ]; then
        failed=1
    fi
done
restarts=$(grep -c 'SIGHUP received' "$SERVER_LOG" || true)
failures=$(grep -c 'restart failed' "$SERVER_LOG" || true)
printf '\nSIGHUPs handled: %s, restarts failed: %s (time = SIGHUP until the PID file names a new process that answers /healthz/live)\n' \
    "$restarts" "$failures"
[ "$failures" = 0 ] || die "some restarts failed (see the server log)"
[ "$failed" = 0 ] || die "some requests failed during restarts (see the table above)"
