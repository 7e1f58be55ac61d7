#!/usr/bin/env bash
# SQLite in production: how fast `server backup` copies a large database (MB/s), idle and
# under write load, and how many writes per second go through the single writer connection
# (500-row transactions with `generate-notes`, one row per transaction with POST /notes).
# See bench/README.md ("SQLite: backups and writes") and docs/sqlite.md.
#
# Environment:
#   NOTES        notes generated before the runs (default 200000)
#   RUNS         `server backup` runs on the idle database (default 3)
#   DURATION     wrk duration of each POST run (default 10s)
#   CONNECTIONS  wrk connections of the POST runs (default 8)
#   THREADS      wrk threads (default 2)
#   CONTENT      bytes of content per posted note (default 2000)
#   SERVER_BIN   use this server binary instead of building the static release binary
#   KEEP_OUTPUT  a directory to copy the raw outputs and the server log into
#
# Traffic goes to 127.0.0.1 only. Needs about 3 x the database size of free disk in $TMPDIR.
set -euo pipefail

NOTES=${NOTES:-200000}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-8}
THREADS=${THREADS:-2}
CONTENT=${CONTENT:-2000}
KEEP_OUTPUT=${KEEP_OUTPUT:-}

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_tools
server_binary
make_tmp sqlite
mkdir "$TMP/backups"

mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
# The figures of a `Backed up SRC to DEST (X MB in Y s, Z MB/s; integrity ok)` line.
backup_mbps() { sed -n 's/.* \([0-9.]*\) MB\/s; integrity ok)$/\1/p' "$1"; }
backup_secs() { sed -n 's/.* MB in \([0-9.]*\) s, .*/\1/p' "$1"; }

# --- 1. a large database: generate-notes, 500 rows per transaction ----------------
log "generating $NOTES notes in $DB (generate-notes: 500 rows per transaction)"
t0=$(now_ms)
generate_notes "$NOTES"
GEN_MS=$(($(now_ms) - t0))
GEN_RATE=$((NOTES * 1000 / (GEN_MS > 0 ? GEN_MS : 1)))
DB_BYTES=$(stat -c %s "$DB")
log "database: $(mb "$DB_BYTES") MB; generate-notes: $NOTES rows in $GEN_MS ms ($GEN_RATE rows/s, including start-up and migrations)"

# --- 2. server backup with no server running ---------------------------------------
IDLE_MBPS=()
for i in $(seq 1 "$RUNS"); do
    out=$TMP/backup-idle-$i.out
    "$BIN" --database-dsn "$DB" --log-level warn backup "$TMP/backups/idle-$i.db" >"$out" 2>&1 \
        || { cat "$out" >&2; die "server backup failed (run $i)"; }
    cat "$out" >&2
    rate=$(backup_mbps "$out")
    [ -n "$rate" ] || die "no MB/s figure in the output of server backup: $(cat "$out")"
    IDLE_MBPS+=("$rate")
    rm -f "$TMP/backups/idle-$i.db"
done

# The guide's sqlite3 command on the same file, for comparison (no server, no writes).
SQLITE3_MBPS=-
if command -v sqlite3 >/dev/null 2>&1; then
    t0=$(now_ms)
    sqlite3 "$DB" ".backup $TMP/backups/sqlite3.db" || die "sqlite3 .backup failed"
    ms=$(($(now_ms) - t0))
    SQLITE3_MBPS=$(awk -v b="$(stat -c %s "$TMP/backups/sqlite3.db")" -v ms="$ms" 'BEGIN { printf "%.1f", b / 1e6 / (ms > 0 ? ms : 1) * 1000 }')
    rm -f "$TMP/backups/sqlite3.db"
else
    log "sqlite3 not found: skipping the sqlite3 .backup comparison"
fi

# --- 3. start the server ----------------------------------------------------------
start_server --log-level warn
# The CSRF token of the new-note form and the cookies that go with it.
sign_in
check_status 303 POST /notes "${CSRF_CURL[@]}" --data-urlencode 'title=sqlite.sh check' --data-urlencode 'content=sanity check'

# --- 4. sustained writes: POST /notes, one row per transaction ----------------------
WAL_MAX_FILE=$TMP/wal-max
# Samples the size of the -wal file every 0.1 s while $1 (a PID) runs; writes the maximum.
sample_wal() {
    local max=0 size
    while kill -0 "$1" 2>/dev/null; do
        size=$(stat -c %s "$DB-wal" 2>/dev/null || echo 0)
        if [ "$size" -gt "$max" ]; then max=$size; fi
        sleep 0.1
    done
    echo "$max" >"$WAL_MAX_FILE"
}
WRK_ARGS=(--threads "$THREADS" --connections "$CONNECTIONS" --duration "$DURATION" --timeout 5s --latency
    --script "$BENCH_DIR/post_note.lua" "$BASE/notes" -- "$COOKIE" "$TOKEN" "$CONTENT")

log "wrk POST /notes for $DURATION ($CONNECTIONS connections, $CONTENT bytes of content per note)"
wrk "${WRK_ARGS[@]}" >"$TMP/wrk-post.txt" 2>&1 &
WRK_PID=$!
sample_wal "$WRK_PID"
wait "$WRK_PID" || { cat "$TMP/wrk-post.txt" >&2; die "wrk failed"; }
WRK_PID=
cat "$TMP/wrk-post.txt" >&2
WAL_MAX=$(cat "$WAL_MAX_FILE")

# --- 5. server backup while the POST load runs -------------------------------------
log "wrk POST /notes for $DURATION again, with a server backup after 2 s"
wrk "${WRK_ARGS[@]}" >"$TMP/wrk-post-backup.txt" 2>&1 &
WRK_PID=$!
sleep 2
"$BIN" --database-dsn "$DB" --log-level warn backup "$TMP/backups" >"$TMP/backup-load.out" 2>&1 \
    || { cat "$TMP/backup-load.out" >&2; die "server backup under load failed"; }
cat "$TMP/backup-load.out" >&2
kill -0 "$WRK_PID" 2>/dev/null || log "note: wrk had already finished when the backup did (DURATION too short)"
wait "$WRK_PID" || { cat "$TMP/wrk-post-backup.txt" >&2; die "wrk failed"; }
WRK_PID=
cat "$TMP/wrk-post-backup.txt" >&2
LOAD_MBPS=$(backup_mbps "$TMP/backup-load.out")
LOAD_SECS=$(backup_secs "$TMP/backup-load.out")

# --- stop the server ---------------------------------------------------------------
stop_server "$SERVER_PID"

if [ -n "$KEEP_OUTPUT" ]; then
    mkdir -p "$KEEP_OUTPUT"
    cp "$TMP"/*.txt "$TMP"/*.out "$SERVER_LOG" "$KEEP_OUTPUT"/
fi

# --- summary ---------------------------------------------------------------------
summary_post() { # name file
    wrk_figures "$2"
    local rps=${WRK_RPS:-}
    [ -z "$rps" ] || rps=$(awk -v r="$rps" 'BEGIN { printf "%.0f", r }')
    printf '%-44s %9s %9s %9s %9s %8s %8s\n' "$1" "${WRK_TOTAL:-?}" "${rps:-?}" "${WRK_P50:-?}" "${WRK_P99:-?}" \
        "${WRK_NOT303:-?}" "${WRK_SOCKERR:-0}"
    if [ "${WRK_NON2XX:-0}" != 0 ] || [ "${WRK_SOCKERR:-0}" != 0 ] || [ "${WRK_NOT303:-1}" != 0 ]; then
        FAILED=1
    fi
}
FAILED=0
best=$(printf '%s\n' "${IDLE_MBPS[@]}" | sort -g | tail -1)
printf '\nSQLite bench: %s notes generated, database %s MB before the POST runs\n\n' "$NOTES" "$(mb "$DB_BYTES")"
printf '%-44s %s\n' "generate-notes (500 rows per transaction)" "$GEN_RATE rows/s ($NOTES rows in $GEN_MS ms, start-up included)"
printf '%-44s %s\n' "server backup, no server running (MB/s)" "${IDLE_MBPS[*]} (best $best)"
printf '%-44s %s\n' "sqlite3 .backup, no server running (MB/s)" "$SQLITE3_MBPS"
printf '%-44s %s\n' "server backup during the POST load" "${LOAD_MBPS:-?} MB/s (${LOAD_SECS:-?} s)"
printf '%-44s %s\n\n' "-wal file, largest size during POST run 1" "$(mb "$WAL_MAX") MB"
printf '%-44s %9s %9s %9s %9s %8s %8s\n' "POST /notes (1 row per transaction)" requests writes/s p50 p99 not-303 sock-err
summary_post "run 1: writes only" "$TMP/wrk-post.txt"
summary_post "run 2: writes + server backup" "$TMP/wrk-post-backup.txt"

warnings=$(count_warnings)
printf '\nserver exit code after SIGTERM: %s; WARN/ERROR lines in its log: %s\n' "$SERVER_RC" "$warnings"
[ "$warnings" = 0 ] || show_warnings
[ "$SERVER_RC" = 0 ] || die "the server exited with $SERVER_RC after SIGTERM (expected 0)"
[ "$warnings" = 0 ] || die "the server logged warnings or errors (see above)"
[ "$FAILED" = 0 ] || die "some POST requests failed (see the table above)"
