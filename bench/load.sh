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

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
TARGET=x86_64-unknown-linux-gnu

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'load.sh: error: %s\n' "$*" >&2; exit 1; }

# --- wrk -------------------------------------------------------------------------
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
command -v curl >/dev/null 2>&1 || die "curl is required (readiness check)"

# --- server binary ---------------------------------------------------------------
if [ -n "${SERVER_BIN:-}" ]; then
    BIN=$SERVER_BIN
    log "using SERVER_BIN=$BIN (no build)"
else
    log "building the static release binary (cargo build --release --target $TARGET -p notes)"
    (cd "$ROOT" && RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target "$TARGET" -p notes)
    BIN=$ROOT/target/$TARGET/release/server
fi
[ -x "$BIN" ] || die "server binary not found or not executable: $BIN"

# --- temp dir, cleanup -----------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/notes-load.XXXXXX")
SERVER_PID=
cleanup() {
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

# --- data --------------------------------------------------------------------------
log "generating $NOTES notes in $DB"
"$BIN" --database-dsn "$DB" --log-level warn generate-notes --count "$NOTES" >"$TMP/generate.out" 2>&1 \
    || { cat "$TMP/generate.out" >&2; die "generate-notes failed"; }

# --- start the server --------------------------------------------------------------
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 20000))
        # A refused connection means nothing listens there.
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
"$BIN" --host 127.0.0.1 --port "$PORT" --database-dsn "$DB" --log-level "$SERVER_LOG_LEVEL" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

ready=0
for _ in $(seq 1 150); do # 150 x 0.2 s = 30 s
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$SERVER_LOG" >&2
        die "the server exited during start-up"
    fi
    if curl -fsS -o /dev/null --max-time 2 "$BASE/healthz/ready" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.2
done
[ "$ready" = 1 ] || { cat "$SERVER_LOG" >&2; die "/healthz/ready did not answer 200 within 30 s"; }

# Sanity checks: one request per endpoint, so a broken route fails before the load.
check_status() { # expected-status method path [curl args...]
    local want=$1 method=$2 path=$3
    shift 3
    local got
    got=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -X "$method" "$@" "$BASE$path") || got=curl-failed
    [ "$got" = "$want" ] || die "$method $path answered $got, expected $want"
}
sanity_checks() {
    check_status 200 GET /notes
    check_status 200 GET /notes/1
    check_status 303 POST /notes --data-urlencode 'title=load.sh check' --data-urlencode 'content=sanity check'
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
run_wrk "POST /notes" --script "$BENCH_DIR/post_note.lua" "$BASE/notes"
run_wrk "GET /healthz/live" "${GET_ARGS[@]}" "$BASE/healthz/live"

# The server must still answer normally after the load (e.g. writes after clients
# disconnected in the middle of a request).
log "checking every endpoint again after the load"
after_load=ok
(sanity_checks) || after_load=failed

# --- stop the server -------------------------------------------------------------
log "stopping the server (SIGTERM)"
kill -TERM "$SERVER_PID"
for _ in $(seq 1 150); do # up to 30 s
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.2
done
if kill -0 "$SERVER_PID" 2>/dev/null; then
    cat "$SERVER_LOG" >&2
    die "the server did not exit within 30 s of SIGTERM"
fi
server_rc=0
wait "$SERVER_PID" || server_rc=$?
SERVER_PID=

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
    out=$TMP/wrk-$i.txt
    total=$(awk '/ requests in / { print $1 }' "$out")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p50=$(awk '$1 == "50%" { print $2 }' "$out")
    p99=$(awk '$1 == "99%" { print $2 }' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    sockerr=$(awk '/Socket errors:/ { s = 0; for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i; print s }' "$out")
    not303=$(awk '/Unexpected status \(not 303\):/ { print $NF }' "$out")
    non2xx=${non2xx:-0}
    sockerr=${sockerr:-0}
    printf '%-18s %9s %10s %9s %9s %12s %9s %8s\n' "${NAMES[$i]}" "${total:-?}" "${rps:-?}" "${p50:-?}" "${p99:-?}" "$non2xx" "$sockerr" "${not303:--}"
    if [ "$non2xx" != 0 ] || [ "$sockerr" != 0 ] || [ "${not303:-0}" != 0 ]; then
        failed=1
    fi
done

warnings=$(grep -c -E 'WARN|ERROR' "$SERVER_LOG" || true)
printf '\nserver exit code after SIGTERM: %s; WARN/ERROR lines in its log: %s\n' "$server_rc" "$warnings"
if [ "$warnings" != 0 ]; then
    grep -E 'WARN|ERROR' "$SERVER_LOG" | head -20 >&2
fi
[ "$server_rc" = 0 ] || die "the server exited with $server_rc after SIGTERM (expected 0)"
[ "$after_load" = ok ] || die "an endpoint misbehaved after the load (see above)"
[ "$warnings" = 0 ] || die "the server logged warnings or errors (see above)"
[ "$failed" = 0 ] || die "some requests failed (see the table above)"
