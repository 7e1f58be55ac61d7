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
#
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
start_server --log-level "$SERVER_LOG_LEVEL"
# Every POST needs the CSRF cookie and token of a loaded form.
fetch_csrf

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
GET_ARGS=()
[ "$GZIP" = 1 ] && GET_ARGS=(--header 'Accept-Encoding: gzip')

NAMES=()
run_wrk() { # name wrk-args...
    local name=$1
    shift
    local out=$TMP/wrk-${#NAMES[@]}.txt
    log "wrk ${WRK_ARGS[*]} $*"
    wrk "${WRK_ARGS[@]}" "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed for $name"; }
    cat "$out" >&2
    NAMES+=("$name")
}

run_wrk "GET /notes" "${GET_ARGS[@]}" "$BASE/notes"
run_wrk "GET /notes/1" "${GET_ARGS[@]}" "$BASE/notes/1"
run_wrk "POST /notes" --script "$BENCH_DIR/post_note.lua" "$BASE/notes" -- "$COOKIE" "$TOKEN"
run_wrk "GET /healthz/live" "${GET_ARGS[@]}" "$BASE/healthz/live"

# The server must still answer normally after the load (e.g. writes after clients
# disconnected in the middle of a request).
log "checking every endpoint again after the load"
after_load=ok
(sanity_checks) || after_load=failed

# --- stop the server -------------------------------------------------------------
stop_server "$SERVER_PID"

if [ -n "$KEEP_OUTPUT" ]; then
    mkdir -p "$KEEP_OUTPUT"
    cp "$TMP"/wrk-*.txt "$SERVER_LOG" "$KEEP_OUTPUT"/
fi

# --- summary ---------------------------------------------------------------------
printf '\nnotes server, %s notes, wrk: %s threads, %s connections, %s per endpoint%s\n' \
    "$NOTES" "$THREADS" "$CONNECTIONS" "$DURATION" "${GET_ARGS[*]:+, gzip}"
printf '%-18s %9s %10s %9s %9s %12s %9s %8s\n' endpoint requests req/s p50 p99 non-2xx/3xx sock-err not-303
failed=0
for i in "${!NAMES[@]}"; do
    wrk_figures "$TMP/wrk-$i.txt"
    non2xx=${WRK_NON2XX:-0}
    sockerr=${WRK_SOCKERR:-0}
    printf '%-18s %9s %10s %9s %9s %12s %9s %8s\n' "${NAMES[$i]}" "${WRK_TOTAL:-?}" "${WRK_RPS:-?}" \
        "${WRK_P50:-?}" "${WRK_P99:-?}" "$non2xx" "$sockerr" "${WRK_NOT303:--}"
    if [ "$non2xx" != 0 ] || [ "$sockerr" != 0 ] || [ "${WRK_NOT303:-0}" != 0 ]; then
        failed=1
    fi
done

warnings=$(count_warnings)
printf '\nserver exit code after SIGTERM: %s; WARN/ERROR lines in its log: %s\n' "$SERVER_RC" "$warnings"
[ "$warnings" = 0 ] || show_warnings
[ "$SERVER_RC" = 0 ] || die "the server exited with $SERVER_RC after SIGTERM (expected 0)"
[ "$after_load" = ok ] || die "an endpoint misbehaved after the load (see above)"
[ "$warnings" = 0 ] || die "the server logged warnings or errors (see above)"
[ "$failed" = 0 ] || die "some requests failed (see the table above)"
