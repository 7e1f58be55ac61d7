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

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_tools
server_binary
make_tmp restart
PID_FILE=$TMP/server.pid
pid_in_file() { tr -d '[:space:]' 2>/dev/null <"$PID_FILE" || true; }
# On exit, also kill the process the PID file names (a successor of SERVER_PID).
cleanup_extra() {
    local pid
    pid=$(pid_in_file)
    if [ -n "$pid" ] && running "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

# --- data and start --------------------------------------------------------------
log "generating $NOTES notes in $DB"
generate_notes "$NOTES"

# The port stays the same across restarts (the new process inherits the listening
# socket). --detach false: the first process stays our child. --log-level info: the log
# has a `SIGHUP received` line per restart.
start_server --log-level info --pid-file "$PID_FILE" --detach false
sign_in # notes are their author's: wrk sends the bench account's cookies
FIRST_PID=$SERVER_PID
for _ in $(seq 1 300); do # 300 x 0.1 s = 30 s
    [ "$(pid_in_file)" = "$FIRST_PID" ] && break
    sleep 0.1
done
[ "$(pid_in_file)" = "$FIRST_PID" ] || { cat "$SERVER_LOG" >&2; die "the PID file does not name PID $FIRST_PID 30 s after start-up"; }
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
        local rc=0
        wait "$FIRST_PID" || rc=$?
        SERVER_PID=
        [ "$rc" = 0 ] || die "the first process exited with $rc after its restart (expected 0)"
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
    wrk --threads "$THREADS" --connections "$CONNECTIONS" --duration 1h --timeout 5s --latency \
        --header "Cookie: $COOKIE" "$@" "$BASE/notes" >"$out" 2>&1 &
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
stop_server "$(pid_in_file)"
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
    wrk_figures "$out"
    non2xx=${WRK_NON2XX:-0}
    sockerr=${WRK_SOCKERR:-0}
    sorted=$(sort -n "$TMP/times-$i.txt")
    count=$(echo "$sorted" | wc -l)
    min=$(echo "$sorted" | head -1)
    max=$(echo "$sorted" | tail -1)
    median=$(echo "$sorted" | sed -n "$(((count + 1) / 2))p")
    printf '%-16s %9s %10s %12s %9s %10s %10s %10s\n' "${NAMES[$i]}" "${WRK_TOTAL:-?}" "${WRK_RPS:-?}" "$non2xx" "$sockerr" "$min" "$median" "$max"
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
