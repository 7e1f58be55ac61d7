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

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
TARGET=x86_64-unknown-linux-gnu
# Keys, so the server logs no warning about generated ones (any 64 hex characters).
export SESSION_HASH_KEY=5e5510a0c0ffee00112233445566778899aabbccddeeff00deadbeefcafe0b01
export CSRF_KEY=c5bf00d1e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7c5bf0b02

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'sqlite.sh: error: %s\n' "$*" >&2; exit 1; }

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
command -v curl >/dev/null 2>&1 || die "curl is required (readiness check, CSRF token)"

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

# --- temp dir, cleanup -----------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/notes-sqlite.XXXXXX")
SERVER_PID=
WRK_PID=
cleanup() {
    if [ -n "$WRK_PID" ]; then kill -INT "$WRK_PID" 2>/dev/null || true; fi
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DB=$TMP/app.db
SERVER_LOG=$TMP/server.log
mkdir "$TMP/backups"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
# The figures of a `Backed up SRC to DEST (X MB in Y s, Z MB/s; integrity ok)` line.
backup_mbps() { sed -n 's/.* \([0-9.]*\) MB\/s; integrity ok)$/\1/p' "$1"; }
backup_secs() { sed -n 's/.* MB in \([0-9.]*\) s, .*/\1/p' "$1"; }

# --- 1. a large database: generate-notes, 500 rows per transaction ----------------
log "generating $NOTES notes in $DB (generate-notes: 500 rows per transaction)"
t0=$(now_ms)
"$BIN" --database-dsn "$DB" --log-level warn generate-notes --count "$NOTES" >"$TMP/generate.out" 2>&1 \
    || { cat "$TMP/generate.out" >&2; die "generate-notes failed"; }
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
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "found no free port"
}
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
log "starting $BIN on $BASE"
"$BIN" --host 127.0.0.1 --port "$PORT" --database-dsn "$DB" --log-level warn >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
ready=0
for _ in $(seq 1 150); do # 150 x 0.2 s = 30 s
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$SERVER_LOG" >&2; die "the server exited during start-up"; }
    if curl -fsS -o /dev/null --max-time 2 "$BASE/healthz/ready" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.2
done
[ "$ready" = 1 ] || { cat "$SERVER_LOG" >&2; die "/healthz/ready did not answer 200 within 30 s"; }

# The CSRF token of the new-note form and the cookies that go with it.
curl -fsS -D "$TMP/form.headers" -o "$TMP/form.html" "$BASE/notes/new" || die "GET /notes/new failed"
COOKIE=$(grep -i '^set-cookie:' "$TMP/form.headers" | sed -E 's/^[^:]*: *//; s/;.*//' | tr -d '\r' | paste -sd ';' - | sed 's/;/; /g')
TOKEN=$(grep -o 'name="csrf_token" value="[^"]*"' "$TMP/form.html" | head -1 | sed -E 's/.*value="([^"]*)"/\1/')
[ -n "$TOKEN" ] || die "no csrf_token in GET /notes/new"
got=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -H "Cookie: $COOKIE" -H "X-CSRF-Token: $TOKEN" \
    --data-urlencode 'title=sqlite.sh check' --data-urlencode 'content=sanity check' "$BASE/notes") || got=curl-failed
[ "$got" = 303 ] || die "POST /notes with the form's token answered $got, expected 303"

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
    --script "$BENCH_DIR/post_note_csrf.lua" "$BASE/notes" -- "$COOKIE" "$TOKEN" "$CONTENT")

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
log "stopping the server (SIGTERM)"
kill -TERM "$SERVER_PID"
for _ in $(seq 1 150); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.2
done
kill -0 "$SERVER_PID" 2>/dev/null && { cat "$SERVER_LOG" >&2; die "the server did not exit within 30 s of SIGTERM"; }
server_rc=0
wait "$SERVER_PID" || server_rc=$?
SERVER_PID=

if [ -n "$KEEP_OUTPUT" ]; then
    mkdir -p "$KEEP_OUTPUT"
    cp "$TMP"/*.txt "$TMP"/*.out "$SERVER_LOG" "$KEEP_OUTPUT"/
fi

# --- summary ---------------------------------------------------------------------
wrk_field() { # file awk-program
    awk "$2" "$1"
}
summary_post() { # name file
    local total rps p50 p99 non2xx sockerr not303
    total=$(wrk_field "$2" '/ requests in / { print $1 }')
    rps=$(wrk_field "$2" '/^Requests\/sec:/ { printf "%.0f", $2 }')
    p50=$(wrk_field "$2" '$1 == "50%" { print $2 }')
    p99=$(wrk_field "$2" '$1 == "99%" { print $2 }')
    non2xx=$(wrk_field "$2" '/Non-2xx or 3xx responses:/ { print $NF }')
    sockerr=$(wrk_field "$2" '/Socket errors:/ { s = 0; for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i; print s }')
    not303=$(wrk_field "$2" '/Unexpected status \(not 303\):/ { print $NF }')
    printf '%-44s %9s %9s %9s %9s %8s %8s\n' "$1" "${total:-?}" "${rps:-?}" "${p50:-?}" "${p99:-?}" "${not303:-?}" "${sockerr:-0}"
    if [ "${non2xx:-0}" != 0 ] || [ "${sockerr:-0}" != 0 ] || [ "${not303:-1}" != 0 ]; then
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

warnings=$(grep -c -E 'WARN|ERROR' "$SERVER_LOG" || true)
printf '\nserver exit code after SIGTERM: %s; WARN/ERROR lines in its log: %s\n' "$server_rc" "$warnings"
[ "$warnings" = 0 ] || grep -E 'WARN|ERROR' "$SERVER_LOG" | head -20 >&2
[ "$server_rc" = 0 ] || die "the server exited with $server_rc after SIGTERM (expected 0)"
[ "$warnings" = 0 ] || die "the server logged warnings or errors (see above)"
[ "$FAILED" = 0 ] || die "some POST requests failed (see the table above)"
