#!/usr/bin/env bash
# The admin's figures on a big table (issue 16): the notes list of /admin/notes/ with
# $ROWS notes (100,000), under wrk: the first page, a full-text search (a common word and
# a phrase), a filter, a sort by an unindexed column and a deep page; then the CSV and JSON
# exports of the whole table (rows/s) and the server's resident memory before, during
# and after them (streaming keeps it flat). See bench/README.md, "The admin".
#
#   bash bench/admin.sh
#   ROWS=20000 DURATION=5s bash bench/admin.sh
#   SERVER_BIN=target/release/server bash bench/admin.sh   # skip the build
#   ENGINE=postgres PG_URL=… bash bench/admin.sh
#
# Environment: ROWS (100000), DURATION per workload (10s), CONNECTIONS (8), THREADS (2),
# SERVER_BIN, ENGINE/PG_URL as for bench/load.sh. Traffic goes to 127.0.0.1 only.
set -euo pipefail

ROWS=${ROWS:-100000}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-8}
THREADS=${THREADS:-2}

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_tools
server_binary
make_tmp admin

log "generating $ROWS notes in $DB"
started=$(now_ms)
generate_notes "$ROWS"
log "generated in $(($(now_ms) - started)) ms"
start_server --log-level warn
# The bench account is the first one, so an admin.
sign_in

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }
# RSS in MiB as anonymous (the process's own) + file-backed (the database file SQLite maps
# with mmap_size, and the executable: shared with the page cache, dropped first).
rss_parts() {
    awk '/^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } END { printf "%.1f anon + %.1f file", a / 1024, f / 1024 }' \
        "/proc/$SERVER_PID/status"
}

# Every workload is checked once first: a broken page fails before the load.
WORKLOADS=(
    "first page|/admin/notes/"
    "search, common word|/admin/notes/?q=zephyr"
    "search, phrase|/admin/notes/?q=%22alpha+burrow%22"
    "filter by author|/admin/notes/?user_id=1"
    "sort by title|/admin/notes/?sort=title"
    "deep page (80,000th row)|/admin/notes/?page=4000"
)
for entry in "${WORKLOADS[@]}"; do
    check_status 200 GET "${entry#*|}"
done

WRK_ARGS=(--threads "$THREADS" --connections "$CONNECTIONS" --duration "$DURATION" --timeout 10s --latency)
i=0
for entry in "${WORKLOADS[@]}"; do
    path=${entry#*|}
    log "wrk ${WRK_ARGS[*]} $BASE$path"
    wrk "${WRK_ARGS[@]}" --header "Cookie: $COOKIE" "$BASE$path" >"$TMP/wrk-$i.txt" 2>&1 \
        || { cat "$TMP/wrk-$i.txt" >&2; die "wrk failed for $path"; }
    i=$((i + 1))
done
rss_before=$(rss_kib)
parts_before=$(rss_parts)

# Exports: the whole table, timed by curl; the server's RSS sampled every 20 ms meanwhile.
export_figures=()
for format in csv json; do
    peak_file=$TMP/peak-$format
    echo "$rss_before" >"$peak_file"
    (
        peak=$rss_before
        while running "$SERVER_PID"; do
            now=$(rss_kib)
            [ "$now" -gt "$peak" ] && peak=$now && echo "$peak" >"$peak_file"
            sleep 0.02
        done
    ) &
    sampler=$!
    out=$TMP/export.$format
    timing=$(curl -fsS --max-time 300 -H "Cookie: $COOKIE" -o "$out" -w '%{time_total} %{size_download}' \
        "$BASE/admin/notes/export.$format") || die "export.$format failed"
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    seconds=${timing% *}
    bytes=${timing#* }
    if [ "$format" = csv ]; then
        rows=$(($(grep -c $'\r$' "$out") - 1))
    else
        rows=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$out")
    fi
    [ "$rows" = "$ROWS" ] || die "export.$format has $rows rows, expected $ROWS"
    export_figures+=("$format|$rows|$bytes|$seconds|$(cat "$peak_file")")
done
rss_after=$(rss_kib)
parts_after=$(rss_parts)
stop_server "$SERVER_PID"

printf '\nadmin on %s, %s notes, wrk: %s connections, %s per workload\n' \
    "${ENGINE:-sqlite}" "$ROWS" "$CONNECTIONS" "$DURATION"
printf '%-26s %9s %9s %9s %12s\n' workload req/s p50 p99 non-2xx/3xx
failed=0
i=0
for entry in "${WORKLOADS[@]}"; do
    wrk_figures "$TMP/wrk-$i.txt"
    printf '%-26s %9s %9s %9s %12s\n' "${entry%%|*}" "${WRK_RPS:-?}" "${WRK_P50:-?}" "${WRK_P99:-?}" "${WRK_NON2XX:-0}"
    [ "${WRK_NON2XX:-0}" = 0 ] && [ "${WRK_SOCKERR:-0}" = 0 ] || failed=1
    i=$((i + 1))
done
printf '\n%-8s %9s %12s %9s %11s %22s\n' export rows bytes seconds rows/s 'peak RSS during (MiB)'
for figure in "${export_figures[@]}"; do
    IFS='|' read -r format rows bytes seconds peak <<<"$figure"
    rate=$(awk -v r="$rows" -v s="$seconds" 'BEGIN { printf "%.0f", r / s }')
    printf '%-8s %9s %12s %9s %11s %22s\n' "$format" "$rows" "$bytes" "$seconds" "$rate" \
        "$(awk -v k="$peak" 'BEGIN { printf "%.1f", k / 1024 }')"
done
printf '\nserver RSS: %.1f MiB (%s) after the list load, %.1f MiB (%s) after the exports\n' \
    "$(awk -v k="$rss_before" 'BEGIN { print k / 1024 }')" "$parts_before" \
    "$(awk -v k="$rss_after" 'BEGIN { print k / 1024 }')" "$parts_after"
[ "$SERVER_RC" = 0 ] || die "the server exited with $SERVER_RC after SIGTERM"
if [ "$failed" != 0 ]; then
    show_warnings
    die "some requests failed"
fi
