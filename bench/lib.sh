# shellcheck shell=bash
# Many variables set here are used only by the scripts that source this file:
# shellcheck disable=SC2034
# Shared code of bench/load.sh, bench/restart.sh and bench/sqlite.sh; sourced, not run:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Provides: log/die, the tools (wrk, installed with apt-get if missing; curl), the server
# binary (SERVER_BIN or the static release build), a temporary directory removed on exit
# (also on failure or Ctrl-C, after killing wrk and the server), starting the server on a
# free port of 127.0.0.1 with fixed SESSION_HASH_KEY and CSRF_KEY (so it logs no warning
# about generated keys) and waiting until it is ready, the CSRF credentials of the
# new-note form, stopping the server with SIGTERM, and reading wrk's figures.
#
# Variables it sets and the scripts use: BENCH_DIR ROOT TARGET BIN TMP DB SERVER_LOG
# PORT BASE SERVER_PID WRK_PID COOKIE TOKEN SERVER_RC and WRK_* (see wrk_figures).
# Traffic goes to 127.0.0.1 only.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
TARGET=x86_64-unknown-linux-gnu
# The release command's flags (docs/guide/deployment.md): static, relocations packed.
STATIC_RUSTFLAGS='-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs'
# Keys, so the server logs no warning about generated ones (any 64 hex characters).
export SESSION_HASH_KEY=5e5510a0c0ffee00112233445566778899aabbccddeeff00deadbeefcafe0b01
export CSRF_KEY=c5bf00d1e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7c5bf0b02

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# --- tools -----------------------------------------------------------------------
# wrk (installed with apt-get if missing: needs root or sudo) and curl.
need_tools() {
    if ! command -v wrk >/dev/null 2>&1; then
        log "wrk not found; installing it with apt-get"
        local sudo=()
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null 2>&1 || die "wrk is missing and we are not root (no sudo either)"
            sudo=(sudo)
        fi
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
        command -v wrk >/dev/null 2>&1 || die "apt-get did not install wrk"
    fi
    command -v curl >/dev/null 2>&1 || die "curl is required (readiness checks, CSRF token)"
}

# --- server binary ---------------------------------------------------------------
# Sets BIN: $SERVER_BIN if set, else the static release binary, built as shipped (the
# README's release command; the target-specific variable is the same flag for the same
# target, and the one scripts/test.sh builds with).
server_binary() {
    if [ -n "${SERVER_BIN:-}" ]; then
        BIN=$SERVER_BIN
        log "using SERVER_BIN=$BIN (no build)"
    else
        log "building the static release binary (cargo build --release --target $TARGET -p notes)"
        (cd "$ROOT" && CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="$STATIC_RUSTFLAGS" \
            cargo build --release --target "$TARGET" -p notes)
        BIN=$ROOT/target/$TARGET/release/server
    fi
    [ -x "$BIN" ] || die "server binary not found or not executable: $BIN"
}

# --- processes -------------------------------------------------------------------
# True while the process runs (a zombie, an exited child not yet reaped, does not count).
running() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    case ${stat:0:1} in Z | X) return 1 ;; *) return 0 ;; esac
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# --- temp dir, cleanup -----------------------------------------------------------
SERVER_PID=
WRK_PID=
# On exit: stops wrk (SIGINT) and kills the server (and, through cleanup_extra if the
# script defines it, its own processes), then removes $TMP.
cleanup() {
    if [ -n "$WRK_PID" ]; then kill -INT "$WRK_PID" 2>/dev/null || true; fi
    if [ -n "${PG_BENCH_DB:-}" ]; then
        psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $PG_BENCH_DB WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    if declare -F cleanup_extra >/dev/null; then cleanup_extra; fi
    if [ -n "$SERVER_PID" ] && running "$SERVER_PID"; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    if [ -n "${TMP:-}" ]; then rm -rf "$TMP"; fi
}
# Creates TMP (notes-NAME.XXXXXX in $TMPDIR or /tmp) with SERVER_LOG=$TMP/server.log,
# installs the traps, and sets DB, the --database-dsn: $TMP/app.db, or with
# ENGINE=postgres a fresh database on the cluster at PG_URL (an admin URL such as
# scripts/pg-cluster.sh's BURROW_TEST_PG_URL; needs psql), dropped on exit.
make_tmp() { # name
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/notes-$1.XXXXXX")
    DB=$TMP/app.db
    SERVER_LOG=$TMP/server.log
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if [ "${ENGINE:-sqlite}" = postgres ]; then
        [ -n "${PG_URL:-}" ] || die "ENGINE=postgres needs PG_URL (e.g. from scripts/pg-cluster.sh start DIR; source DIR/env; PG_URL=\$BURROW_TEST_PG_URL)"
        PG_BENCH_DB=bench_$$
        psql "$PG_URL" -qc "CREATE DATABASE $PG_BENCH_DB" >/dev/null || die "cannot create database $PG_BENCH_DB"
        DB="${PG_URL%/*}/$PG_BENCH_DB?sslmode=${PG_SSLMODE:-disable}"
    fi
}

# --- data --------------------------------------------------------------------------
# Notes belong to their author: the account `bench` (made here if missing) owns them, and
# sign_in signs in as it.
BENCH_USER=bench
create_bench_user() {
    "$BIN" --database-dsn "$DB" --log-level warn users create "$BENCH_USER" >"$TMP/user.out" 2>&1 \
        || grep -q taken "$TMP/user.out" || { cat "$TMP/user.out" >&2; die "users create failed"; }
}
generate_notes() { # count
    create_bench_user
    "$BIN" --database-dsn "$DB" --log-level warn generate-notes --user "$BENCH_USER" --count "$1" \
        >"$TMP/generate.out" 2>&1 || { cat "$TMP/generate.out" >&2; die "generate-notes failed"; }
}

# --- start, stop -----------------------------------------------------------------
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

# Starts `$BIN --host 127.0.0.1 --port PORT --database-dsn $DB ARGS...` on a free port,
# logging to $SERVER_LOG, and waits up to 30 s for GET /healthz/ready to answer 200.
# Sets PORT, BASE and SERVER_PID.
start_server() { # server args...
    PORT=$(free_port)
    BASE=http://127.0.0.1:$PORT
    log "starting $BIN on $BASE"
    "$BIN" --host 127.0.0.1 --port "$PORT" --database-dsn "$DB" "$@" >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 300); do # 300 x 0.1 s = 30 s
        running "$SERVER_PID" || { cat "$SERVER_LOG" >&2; die "the server exited during start-up"; }
        if curl -fsS -o /dev/null --max-time 2 "$BASE/healthz/ready" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    cat "$SERVER_LOG" >&2
    die "/healthz/ready did not answer 200 within 30 s"
}

# Waits until URL answers 200 (TRIES × 0.1 s); dies if PID exits first or it never does.
answered() { # url pid tries log
    for _ in $(seq 1 "$3"); do
        curl -fsS -o /dev/null --max-time 5 "$1" 2>/dev/null && return 0
        running "$2" || { cat "$4" >&2; die "the server exited during its start"; }
        sleep 0.1
    done
    cat "$4" >&2
    die "$1 did not answer 200 within $(($3 / 10)) s"
}

# Sends SIGTERM to PID and waits up to 30 s for it to exit. For
# $SERVER_PID (our child) sets SERVER_RC to its exit status, else to "?"; the caller
# decides when to fail on it (after printing its summary).
stop_server() { # pid
    local pid=$1
    [ -n "$pid" ] || die "no server PID to stop"
    log "stopping PID $pid (SIGTERM)"
    kill -TERM "$pid"
    for _ in $(seq 1 300); do # up to 30 s
        running "$pid" || break
        sleep 0.1
    done
    if running "$pid"; then
        tail -20 "$SERVER_LOG" >&2
        die "the server did not exit within 30 s of SIGTERM"
    fi
    SERVER_RC='?'
    if [ "$pid" = "$SERVER_PID" ]; then
        SERVER_RC=0
        wait "$pid" || SERVER_RC=$?
        SERVER_PID=
    fi
}

# The number of WARN and ERROR lines in the server log; show_warnings prints the first 20.
count_warnings() { grep -c -E 'WARN|ERROR' "$SERVER_LOG" || true; }
show_warnings() { grep -E 'WARN|ERROR' "$SERVER_LOG" | head -20 >&2 || true; }

# --- requests ----------------------------------------------------------------------
# Dies unless METHOD PATH answers the expected status.
check_status() { # expected-status method path [curl args...]; signed in once sign_in ran
    local want=$1 method=$2 path=$3
    shift 3
    local got
    got=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -X "$method" "${AUTH_CURL[@]}" "$@" "$BASE$path") || got=curl-failed
    [ "$got" = "$want" ] || die "$method $path answered $got, expected $want"
}

# Signs in as BENCH_USER, as a browser follows a sign-in link (docs/notes-contract.md): a
# `users login-link` from the CLI, its page loaded and its form posted with curl. Sets COOKIE
# (the session and CSRF cookies as one Cookie header value), TOKEN (the new-note form's
# csrf_token, to send as X-CSRF-Token), AUTH_CURL (curl args with the cookies: every notes
# page needs them) and CSRF_CURL (with the token too, for POSTs).
AUTH_CURL=()
sign_in() {
    local jar=$TMP/cookies.txt page=$TMP/signin.html link csrf
    create_bench_user
    link=$("$BIN" --database-dsn "$DB" --log-level warn users login-link "$BENCH_USER" \
        | grep -o 'token=[A-Za-z0-9_-]*' | head -1) || die "users login-link failed"
    curl -fsS --max-time 5 -c "$jar" -o "$page" "$BASE/auth/link?$link" || die "GET /auth/link failed"
    csrf=$(grep -o 'name="csrf_token" value="[^"]*"' "$page" | head -1 | sed -E 's/.*value="([^"]*)"/\1/')
    curl -fsS --max-time 5 -b "$jar" -c "$jar" -o /dev/null --data "$link" \
        --data-urlencode "csrf_token=$csrf" "$BASE/auth/link" || die "POST /auth/link failed"
    curl -fsS --max-time 5 -b "$jar" -c "$jar" -o "$page" "$BASE/notes/new" || die "GET /notes/new failed"
    # curl's jar writes HttpOnly cookies as `#HttpOnly_domain …` lines.
    COOKIE=$(sed 's/^#HttpOnly_//' "$jar" | awk '!/^#/ && NF >= 7 { printf "%s%s=%s", sep, $6, $7; sep = "; " }')
    TOKEN=$(grep -o 'name="csrf_token" value="[^"]*"' "$page" | head -1 | sed -E 's/.*value="([^"]*)"/\1/')
    case "$COOKIE" in *_session=*) ;; *) die "signing in set no session cookie" ;; esac
    [ -n "$TOKEN" ] || die "no csrf_token in GET /notes/new"
    AUTH_CURL=(-H "Cookie: $COOKIE")
    CSRF_CURL=(-H "Cookie: $COOKIE" -H "X-CSRF-Token: $TOKEN")
}

# --- wrk output ----------------------------------------------------------------------
# Reads a wrk output file (run with --latency) and sets WRK_TOTAL (requests), WRK_RPS
# (requests/s), WRK_AVG (the mean latency), WRK_P50, WRK_P99, WRK_NON2XX ("Non-2xx or 3xx
# responses"), WRK_SOCKERR (all socket errors: connect, read, write, timeout) and
# WRK_NOT303 (bench/post_note.lua's "Unexpected status (not 303)"); each is empty when the
# line is absent.
wrk_figures() { # file
    WRK_TOTAL=$(awk '/ requests in / { print $1 }' "$1")
    WRK_RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$1")
    # Not the "Latency Distribution" heading.
    WRK_AVG=$(awk '$1 == "Latency" && NF > 2 { print $2 }' "$1")
    WRK_P50=$(awk '$1 == "50%" { print $2 }' "$1")
    WRK_P99=$(awk '$1 == "99%" { print $2 }' "$1")
    WRK_NON2XX=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$1")
    WRK_SOCKERR=$(awk '/Socket errors:/ { s = 0; for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i; print s }' "$1")
    WRK_NOT303=$(awk '/Unexpected status \(not 303\):/ { print $NF }' "$1")
}

# --- bench-app's browser (compare.sh, layout.sh) -----------------------------------
# Needs BASE (the server's URL) and TMP (a directory for the answers).
#
# The browser's credentials: the session cookie from GET /login, then the CSRF cookie and
# the form's token from GET /entries. Sets COOKIE and TOKEN; checks the page (signed in,
# 12 rows, the security headers) and one POST (303).
credentials() { # kind
    local h=$TMP/headers page=$TMP/page.html session csrf
    curl -fsS --max-time 5 -D "$h" -o /dev/null "$BASE/login" || die "$1: GET /login failed"
    session=$(grep -i '^set-cookie: _session=' "$h" | sed -E 's/^[^:]*: *//; s/;.*//' | tr -d '\r')
    [ -n "$session" ] || die "$1: GET /login set no _session cookie"
    curl -fsS --max-time 5 -D "$h" -o "$page" -H "Cookie: $session" "$BASE/entries" \
        || die "$1: GET /entries failed"
    csrf=$(grep -i '^set-cookie: _csrf=' "$h" | sed -E 's/^[^:]*: *//; s/;.*//' | tr -d '\r')
    [ -n "$csrf" ] || die "$1: GET /entries set no _csrf cookie"
    COOKIE="$session; $csrf"
    TOKEN=$(grep -o 'name="csrf_token" value="[^"]*"' "$page" | head -1 | sed -E 's/.*value="([^"]*)"/\1/')
    [ -n "$TOKEN" ] || die "$1: no csrf_token in GET /entries"
    check_page "$1" "$COOKIE"
    local h2 name
    for name in x-content-type-options x-frame-options referrer-policy cross-origin-opener-policy; do
        grep -qi "^$name:" "$h" || die "$1: GET /entries lacks the $name header"
    done
    check_post "$1" "$COOKIE" "$TOKEN"
    # The same request without the token must be refused.
    h2=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -H "Cookie: $COOKIE" \
        --data 'name=a&message=b' "$BASE/entries")
    [ "$h2" = 403 ] || die "$1: POST /entries without a token answered $h2, expected 403"
}

# The functions an unstripped bench-app BIN defines that ran under callgrind during its
# start, GET /plaintext and what `credentials` checks, one name a line, sorted, into OUT
# (layout.sh, hot-ld.sh). WORK keeps callgrind.out; PROFILED is the server's PID while it
# runs (for the caller's trap). Needs valgrind and nm.
profiled_functions() { # bin work out
    local bin=$1 work=$2 out=$3
    start_profiled "$bin" "$work/app.db" "$work/callgrind.out" "$work/valgrind.log" /plaintext
    # GET /login, GET /entries and POSTs with and without the CSRF token.
    TMP=$work
    credentials profiled
    ran_functions "$bin" "$work/callgrind.out" "$out"
}

# The same for an unstripped notes `server` BIN (hot-ld.sh): its start, then a signed-in
# browser's pages, a new note, the health checks and the sign-in pages, so that the list
# covers the contrib apps' code too.
profiled_notes_functions() { # bin work out
    local bin=$1 work=$2 out=$3
    BIN=$bin TMP=$work DB=$work/notes.db
    generate_notes 20
    start_profiled "$bin" "$DB" "$work/notes-callgrind.out" "$work/notes-valgrind.log" /healthz/ready
    sign_in
    check_status 200 GET /notes
    check_status 200 GET /notes/1
    check_status 200 GET /notes/new
    check_status 303 POST /notes "${CSRF_CURL[@]}" --data-urlencode 'title=profiled' \
        --data-urlencode 'content=a note'
    check_status 200 GET /healthz/live
    AUTH_CURL=()
    check_status 200 GET /auth/login
    check_status 200 GET /auth/register
    check_status 303 GET /notes
    ran_functions "$bin" "$work/notes-callgrind.out" "$out"
}

# Starts BIN under callgrind on DB and waits until PATH answers 200; sets BASE and PROFILED.
start_profiled() { # bin db callgrind-out valgrind-log path
    local port
    port=$(free_port)
    BASE=http://127.0.0.1:$port
    log "profiling $1 under callgrind on $BASE"
    valgrind --tool=callgrind --demangle=no --callgrind-out-file="$3" \
        "$1" --host 127.0.0.1 --port "$port" --database-dsn "$2" >"$4.server" 2>"$4" &
    PROFILED=$!
    answered "$BASE$5" "$PROFILED" 600 "$4" # valgrind starts slowly
}

# Stops PROFILED and writes the functions of BIN that ran (callgrind's file) into OUT.
ran_functions() { # bin callgrind-out out
    local work
    work=$(dirname "$2")
    kill -TERM "$PROFILED"
    wait "$PROFILED" || true
    PROFILED=
    # callgrind names a function once, at its first appearance (fn= or cfn=), then by number.
    grep -E '^c?fn=\([0-9]+\) ' "$2" | sed -E 's/^c?fn=\([0-9]+\) //' \
        | LC_ALL=C sort -u >"$work/ran.txt"
    # i: glibc's ifunc resolvers, which the start runs to pick each string function.
    nm --defined-only "$1" | awk '$2 ~ /^[tTwWi]$/ { print $3 }' | LC_ALL=C sort -u \
        >"$work/defined.txt"
    LC_ALL=C comm -12 "$work/ran.txt" "$work/defined.txt" >"$3"
    log "$(wc -l <"$3") functions ran (of $(wc -l <"$work/defined.txt") in the binary)"
}

# bench-bare and bench-app (compare.sh, instructions.sh): BARE_BIN and APP_BIN when both are
# set, else the static release builds, built now.
bench_binaries() {
    if [ -n "${BARE_BIN:-}" ] && [ -n "${APP_BIN:-}" ]; then
        log "using BARE_BIN=$BARE_BIN and APP_BIN=$APP_BIN (no build)"
    else
        log "building both static release binaries (cargo build --release --target $TARGET -p bench-bare -p bench-app)"
        (cd "$ROOT" && CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="$STATIC_RUSTFLAGS" \
            cargo build --release --target "$TARGET" -p bench-bare -p bench-app)
        BARE_BIN=$ROOT/target/$TARGET/release/bench-bare
        APP_BIN=$ROOT/target/$TARGET/release/bench-app
    fi
    [ -x "$BARE_BIN" ] || die "not an executable: $BARE_BIN"
    [ -x "$APP_BIN" ] || die "not an executable: $APP_BIN"
}

# wrk's arguments for a workload of bench-app/bench-bare once `credentials` ran: sets
# WORKLOAD_ARGS. ARGS (e.g. a pacing script) go before the URL of the GET workloads.
workload_args() { # workload [args...]
    case $1 in
        plaintext) WORKLOAD_ARGS=("${@:2}" -H "Cookie: $COOKIE" "$BASE/plaintext") ;;
        page) WORKLOAD_ARGS=("${@:2}" -H "Cookie: $COOKIE" "$BASE/entries") ;;
        post) WORKLOAD_ARGS=(--script "$BENCH_DIR/post_entry.lua" "$BASE/entries" -- "$COOKIE" "$TOKEN" "$BASE") ;;
        *) die "unknown workload: $1" ;;
    esac
}

check_page() { # kind cookie
    local page=$TMP/check.html rows
    curl -fsS --max-time 5 -o "$page" -H "Cookie: $2" "$BASE/entries" || die "$1: GET /entries failed"
    grep -q 'Signed in as bench' "$page" || die "$1: the session cookie was not read (no 'Signed in as bench')"
    rows=$(grep -c '<li id="entry-' "$page" || true)
    [ "$rows" = 12 ] || die "$1: GET /entries shows $rows rows, expected 12"
    # Escaped `<` and `&` of the seeded rows (Bob's and Grace's stay among the 12 newest
    # after the script's few check POSTs).
    grep -q '1 &lt; 2 &amp;&amp; 3 &gt; 2' "$page" || die "$1: the page is not autoescaped"
}

check_post() { # kind cookie token
    local got
    got=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -H "Cookie: $2" -H "Origin: $BASE" \
        --data "csrf_token=$3&name=check&message=one+row" "$BASE/entries")
    [ "$got" = 303 ] || die "$1: POST /entries answered $got, expected 303"
}
