#!/usr/bin/env bash
# Live updates at scale: STREAMS open event streams (/notes/events) of one signed-in user on
# the notes server, while wrk creates notes (each publishes one `notes-changed` event to
# every stream); reports the server's RSS before and with the streams open, the memory per
# stream, and the events delivered per second. See bench/README.md ("Live updates").
#
# Environment:
#   STREAMS      open streams (default 1000)
#   DURATION     wrk duration of the POST run that publishes the events (default 10s)
#   CONNECTIONS  wrk connections of the POST run (default 4)
#   SERVER_BIN   use this server binary instead of building the static release binary
#   KEEP_OUTPUT  a directory to copy the raw outputs and the server log into
#
# The streams come from bench/sse_client.py (python3, standard library), all from
# 127.0.0.1: the server runs with --max-connections-per-ip 0 and --sse-max-streams-per-ip 0.
# Traffic goes to 127.0.0.1 only.
set -euo pipefail

STREAMS=${STREAMS:-1000}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-4}
KEEP_OUTPUT=${KEEP_OUTPUT:-}

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_tools
command -v python3 >/dev/null 2>&1 || die "python3 is required (bench/sse_client.py)"
server_binary
make_tmp sse
CLIENT_PID=
cleanup_extra() {
    if [ -n "$CLIENT_PID" ]; then kill -KILL "$CLIENT_PID" 2>/dev/null || true; fi
}
# The client holds a socket per stream.
ulimit -n "$((STREAMS + 256))" 2>/dev/null || die "cannot raise the open-file limit to $((STREAMS + 256))"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }

start_server --log-level warn --max-connections-per-ip 0 --sse-max-streams-per-ip 0 \
    --sse-max-streams "$((STREAMS + 100))"
sign_in
# A few requests first, so the baseline RSS is that of a server that has served pages.
for _ in 1 2 3 4 5; do check_status 200 GET /notes; done
RSS_BEFORE=$(rss_kib)

log "opening $STREAMS event streams"
READY=$TMP/client.ready
python3 "$BENCH_DIR/sse_client.py" "$PORT" "$COOKIE" "$STREAMS" "$READY" >"$TMP/client.json" 2>"$TMP/client.err" &
CLIENT_PID=$!
for _ in $(seq 1 600); do # 600 x 0.1 s = 60 s
    [ -s "$READY" ] && break
    running "$CLIENT_PID" || { cat "$TMP/client.err" >&2; die "the stream client exited"; }
    sleep 0.1
done
[ "$(cat "$READY" 2>/dev/null)" = open ] || die "not all $STREAMS streams opened within 60 s"
sleep 1 # let the allocator settle after the burst of connections
RSS_OPEN=$(rss_kib)

log "wrk POST /notes for $DURATION ($CONNECTIONS connections): one event to every stream per note"
wrk --threads 2 --connections "$CONNECTIONS" --duration "$DURATION" --timeout 5s --latency \
    --script "$BENCH_DIR/post_note.lua" "$BASE/notes" -- "$COOKIE" "$TOKEN" >"$TMP/wrk-post.txt" 2>&1 &
WRK_PID=$!
wait "$WRK_PID" || { cat "$TMP/wrk-post.txt" >&2; die "wrk failed"; }
WRK_PID=
sleep 2 # the last events reach the streams
RSS_AFTER=$(rss_kib)
kill -TERM "$CLIENT_PID"
wait "$CLIENT_PID" || { cat "$TMP/client.err" >&2; die "the stream client failed"; }
CLIENT_PID=
wrk_figures "$TMP/wrk-post.txt"
stop_server "$SERVER_PID"

CLIENT=$(cat "$TMP/client.json")
field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$CLIENT" "$1"; }
EVENTS=$(field events)
SPAN=$(field span_seconds)
NOTES=$((WRK_TOTAL - ${WRK_NOT303:-0}))
EXPECTED=$((NOTES * STREAMS))
RATE=$(awk -v e="$EVENTS" -v s="$SPAN" 'BEGIN { if (s > 0) printf "%.0f", e / s; else print 0 }')
PER_STREAM=$(awk -v a="$RSS_OPEN" -v b="$RSS_BEFORE" -v n="$STREAMS" 'BEGIN { printf "%.1f", (a - b) / n }')

if [ -n "$KEEP_OUTPUT" ]; then
    mkdir -p "$KEEP_OUTPUT"
    cp "$TMP/wrk-post.txt" "$TMP/client.json" "$SERVER_LOG" "$KEEP_OUTPUT/"
fi

cat <<EOF
== Live updates: $STREAMS open streams ==
server RSS before the streams:   $RSS_BEFORE KiB
server RSS with $STREAMS streams:   $RSS_OPEN KiB ($PER_STREAM KiB per stream)
server RSS after the events:      $RSS_AFTER KiB
notes created (events published): $NOTES (${WRK_RPS} POST/s, p50 ${WRK_P50}, p99 ${WRK_P99})
events delivered:                 $EVENTS in ${SPAN} s: $RATE events/s ($EXPECTED expected from the POSTs wrk counted; a POST still in flight when wrk stopped adds one per stream)
stream reconnects:                $(field reconnects) (a stream more than 64 events behind is ended and reconnects)
client failures:                  $(field failures)
server exit status:               $SERVER_RC
EOF
[ "$(field streams)" = "$STREAMS" ] || die "only $(field streams) of $STREAMS streams opened"
[ "$(field failures)" = 0 ] || die "client failures: $(field first_failures)"
[ "$SERVER_RC" = 0 ] || die "the server exited with $SERVER_RC"
