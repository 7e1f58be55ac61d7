#!/usr/bin/env bash
# HTTP load test of the notes `server` binary with wrk. See bench/README.md.
#
# Environment:
#   DURATION     wrk duration per endpoint (default 10s)
#   CONNECTIONS  open connections (default 32)
#   THREADS      wrk threads (default 2)
#   NOTES        notes generated before the run (default 1000)
#   SERVER_BIN   use this server binary instead of building the static release binary
#   GZIP=1       send `Accept-Encoding: gzip` with the GET requests
#   KEEP_OUTPUT  a directory to copy the raw wrk outputs and the server log into
#   SERVER_LOG_LEVEL  the server's --log-level (default warn; info logs every request)
#   ENGINE=postgres   run on a fresh database of the PostgreSQL cluster at PG_URL
#   INSTANCES=2  two servers on the same database (PostgreSQL), each loaded by its own
#                wrk with half the connections at the same time; figures are summed
#
# Two instances share the machine's 2 cores with wrk and PostgreSQL: the figure shows that
# they serve one database correctly at once, not how they scale across hosts.
# Traffic goes to 127.0.0.1 only.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
NOTES=${NOTES:-1000}
GZIP=${GZIP:-0}
KEEP_OUTPUT=${KEEP_OUTPUT:-}
SERVER_LOG_LEVEL=${SERVER_LOG_LEVEL:-warn}

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_tools
server_binary
make_tmp load

# --- data, start -------------------------------------------------------------------
log "generating $NOTES notes in $DB"
generate_notes "$NOTES"
INSTANCES=${INSTANCES:-1}
start_server --log-level "$SERVER_LOG_LEVEL"
BASES=("$BASE")
PIDS=("$SERVER_PID")
if [ "$INSTANCES" = 2 ]; then
    [ "${ENGINE:-sqlite}" = postgres ] || die "INSTANCES=2 needs ENGINE=postgres"
    FIRST_LOG=$SERVER_LOG FIRST_PID=$SERVER_PID FIRST_BASE=$BASE
    SERVER_LOG=$TMP/server2.log
    start_server --log-level "$SERVER_LOG_LEVEL"
    BASES+=("$BASE")
    PIDS+=("$SERVER_PID")
    SECOND_PID=$SERVER_PID
    cleanup_extra() { kill -KILL "$FIRST_PID" "$SECOND_PID" 2>/dev/null || true; }
    SERVER_LOG=$FIRST_LOG SERVER_PID=$FIRST_PID BASE=$FIRST_BASE
fi
# Notes are their author's: every request signs in as the bench account (the instances
# share keys and the database, so one session serves both).
sign_in

# Sanity checks: one request per endpoint, so a broken route fails before the load.
sanity_checks() {
    check_status 200 GET /notes
    check_status 200 GET /notes/1
    check_status 303 POST /notes "${CSRF_CURL[@]}" --data-urlencode 'title=load.sh check' --data-urlencode 'content=sanity check'
    check_status 200 GET /healthz/live
    check_status 200 GET /healthz/ready
}
sanity_checks

# --- load ------------------------------------------------------------------------
WRK_ARGS=(--threads "$THREADS" --connections "$CONNECTIONS" --duration "$DURATION" --timeout 5s --latency)
GET_ARGS=(--header "Cookie: $COOKIE")
[ "$GZIP" = 1 ] && GET_ARGS+=(--header 'Accept-Encoding: gzip')

if [ "$INSTANCES" = 2 ]; then
    WRK_ARGS=(--threads 1 --connections $((CONNECTIONS / 2)) --duration "$DURATION" --timeout 5s --latency)
fi
NAMES=()
# Runs wrk against PATH on every instance at once (one output file per instance).
run_wrk() { # name path wrk-args...
    local name=$1 path=$2
    shift 2
    local n=${#NAMES[@]} i pids=()
    for i in "${!BASES[@]}"; do
        log "wrk ${WRK_ARGS[*]} ${BASES[$i]}$path $*"
        wrk "${WRK_ARGS[@]}" "${BASES[$i]}$path" "$@" >"$TMP/wrk-$n-$i.txt" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || { cat "$TMP/wrk-$n-$i.txt" >&2; die "wrk failed for $name"; }
        cat "$TMP/wrk-$n-$i.txt" >&2
    done
    NAMES+=("$name")
}

run_wrk "GET /notes" /notes "${GET_ARGS[@]}"
run_wrk "GET /notes/1" /notes/1 "${GET_ARGS[@]}"
run_wrk "POST /notes" /notes --script "$BENCH_DIR/post_note.lua" -- "$COOKIE" "$TOKEN"
run_wrk "GET /healthz/live" /healthz/live "${GET_ARGS[@]}"

# The server must still answer normally after the load (e.g. writes after clients
# disconnected in the middle of a request).
log "checking every endpoint again after the load"
after_load=ok
(sanity_checks) || after_load=failed

# --- stop the server -------------------------------------------------------------
if [ "$INSTANCES" = 2 ]; then
    stop_server "$SECOND_PID"
    cleanup_extra() { :; }
fi
stop_server "$SERVER_PID"

if [ -n "$KEEP_OUTPUT" ]; then
    mkdir -p "$KEEP_OUTPUT"
    cp "$TMP"/wrk-*.txt "$TMP"/server*.log "$KEEP_OUTPUT"/
fi

# --- summary ---------------------------------------------------------------------
printf '\nnotes server on %s (%s instance(s)), %s notes, wrk: %s connections in all, %s per endpoint%s\n' \
    "${ENGINE:-sqlite}" "$INSTANCES" "$NOTES" "$CONNECTIONS" "$DURATION" "${GET_ARGS[*]:+, gzip}"
printf '%-18s %9s %10s %9s %9s %12s %9s %8s\n' endpoint requests req/s p50 p99 non-2xx/3xx sock-err not-303
failed=0
for i in "${!NAMES[@]}"; do
    for j in "${!BASES[@]}"; do
        wrk_figures "$TMP/wrk-$i-$j.txt"
        non2xx=${WRK_NON2XX:-0}
        sockerr=${WRK_SOCKERR:-0}
        label=${NAMES[$i]}
        [ "$INSTANCES" = 1 ] || label="${NAMES[$i]} #$((j + 1))"
        printf '%-18s %9s %10s %9s %9s %12s %9s %8s\n' "$label" "${WRK_TOTAL:-?}" "${WRK_RPS:-?}" \
            "${WRK_P50:-?}" "${WRK_P99:-?}" "$non2xx" "$sockerr" "${WRK_NOT303:--}"
        if [ "$non2xx" != 0 ] || [ "$sockerr" != 0 ] || [ "${WRK_NOT303:-0}" != 0 ]; then
            failed=1
        fi
    done
done

warnings=$(count_warnings)
printf '\nserver exit code after SIGTERM: %s; WARN/ERROR lines in its log: %s\n' "$SERVER_RC" "$warnings"
[ "$warnings" = 0 ] || show_warnings
[ "$SERVER_RC" = 0 ] || die "the server exited with $SERVER_RC after SIGTERM (expected 0)"
[ "$after_load" = ok ] || die "an endpoint misbehaved after the load (see above)"
[ "$warnings" = 0 ] || die "the server logged warnings or errors (see above)"
[ "$failed" = 0 ] || die "some requests failed (see the table above)"
