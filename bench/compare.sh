#!/usr/bin/env bash
# Burrow against the bare stack it is built on (issue 13, item 1): bench-bare (axum +
# rusqlite + minijinja, bench/bare) and bench-app (the same endpoints on burrow, bench/app)
# under wrk, in alternating rounds, side by side. See bench/README.md, "Burrow against the
# bare stack".
#
#   bash bench/compare.sh                        # 10 s per workload, 2 rounds
#   DURATION=5s ROUNDS=3 bash bench/compare.sh
#   BARE_BIN=… APP_BIN=… bash bench/compare.sh   # skip the build, use these binaries
#
# Each round starts every server afresh on a new database (the same 12 seeded rows) and
# runs the three workloads on it: GET /plaintext, GET /entries, POST /entries. The order
# of the servers alternates (bare, burrow; then burrow, bare; …) so that neither always
# runs first on a machine that warms up or gets busier.
#
# Environment:
#   DURATION     wrk duration per workload (10s)       WARMUP    unmeasured wrk run first (2s)
#   ROUNDS       rounds (2)                            CONNECTIONS  open connections (64)
#   THREADS      wrk threads (2)                       KEEP_OUTPUT  dir for raw wrk outputs and logs
#   BARE_BIN / APP_BIN   binaries to use instead of building
#   APP_ARGS     extra flags for bench-app (none: every burrow default, the access log at
#                info included, written to a file); e.g. APP_ARGS='--log-level warn'
#   WORKLOADS    which of "plaintext page post" to run (all three)
#   PERF         a new or empty directory: `perf record -g` of the server during each
#                measured run, into PERF/KIND-WORKLOAD-ROUND.data (build unstripped for
#                symbols, see bench/README.md), its request count in .requests; at the end
#                bench/atomics.py says what the atomic instructions took per request
#   PERF_FREQ    perf's samples per second and CPU (999)
#   PAUSE        milliseconds each connection waits between an answer and its next
#                request (bench/pace.lua): a fixed load below both servers' capacity, at
#                which p50/p99 compare latency rather than capacity (none: full load)
#   PIN          set (PIN=1): the server runs on CPU 0 only and wrk on the others, so the two
#                do not preempt each other on the same cores (needs 2 CPUs and taskset)
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
APP_ARGS=${APP_ARGS:-}
# wrk's scripts read it (bench/pace.lua, bench/post_entry.lua).
[ -n "${PAUSE:-}" ] && export WRK_PAUSE_MS=$PAUSE
read -r -a WORKLOADS <<<"${WORKLOADS:-plaintext page post}"
SERVER_ON=()
CLIENT_ON=()
if [ -n "${PIN:-}" ]; then
    [ "$(nproc)" -ge 2 ] || die "PIN needs at least 2 CPUs, this machine has $(nproc)"
    command -v taskset >/dev/null || die "PIN needs taskset (util-linux)"
    SERVER_ON=(taskset -c 0)
    CLIENT_ON=(taskset -c "1-$(($(nproc) - 1))")
fi
if [ -n "${PERF:-}" ]; then
    command -v perf >/dev/null || die "PERF needs perf (apt-get install linux-perf)"
    # atomics.py reads every profile in it: another run's would mix with this one's.
    ! compgen -G "$PERF/*.data" >/dev/null ||
        die "PERF=$PERF holds profiles already; give an empty or new directory"
fi
CLK_TCK=$(getconf CLK_TCK)

# --- build ---------------------------------------------------------------------------
# --- one server ----------------------------------------------------------------------
# Starts server KIND (bare or burrow) on a fresh database and a free port; waits up to
# 30 s for GET /plaintext to answer 200. Sets SERVER_PID, PORT, BASE, SERVER_LOG.
start() { # kind round
    local kind=$1 dir=$TMP/$1-$2
    mkdir -p "$dir"
    PORT=$(free_port)
    BASE=http://127.0.0.1:$PORT
    SERVER_LOG=$dir/server.log
    local args=(--host 127.0.0.1 --port "$PORT" --database-dsn "$dir/app.db")
    log "round $2: starting $kind on $BASE"
    if [ "$kind" = bare ]; then
        "${SERVER_ON[@]}" "$BARE_BIN" "${args[@]}" >"$SERVER_LOG" 2>&1 &
    else
        # shellcheck disable=SC2086 # APP_ARGS is a list of flags
        "${SERVER_ON[@]}" "$APP_BIN" "${args[@]}" $APP_ARGS >"$SERVER_LOG" 2>&1 &
    fi
    SERVER_PID=$!
    for _ in $(seq 1 300); do # 300 x 0.1 s = 30 s
        running "$SERVER_PID" || { cat "$SERVER_LOG" >&2; die "$kind exited during start-up"; }
        if curl -fsS -o /dev/null --max-time 2 "$BASE/plaintext" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    cat "$SERVER_LOG" >&2
    die "$kind: GET /plaintext did not answer 200 within 30 s"
}

stop() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
        running "$SERVER_PID" || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# utime + stime of PID in clock ticks.
cpu_ticks() {
    local stat
    stat=$(cat "/proc/$1/stat")
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat"
}
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# wrk's latency ("812.00us", "1.52ms", "2.01s") in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else { print "" }
    }'
}

# Runs one workload against the running server; appends a line to $RESULTS:
# round kind workload rps p50_ms p99_ms cpu_us_per_request hwm_kib errors mean_ms
measure() { # round kind workload
    local round=$1 kind=$2 workload=$3 out=$TMP/wrk-$2-$3-$1.txt
    local wrk_args=(--latency -t "$THREADS" -c "$CONNECTIONS" --timeout 5s)
    local pace=()
    [ -n "${PAUSE:-}" ] && pace=(--script "$BENCH_DIR/pace.lua")
    workload_args "$workload" "${pace[@]}"
    wrk_args+=("${WORKLOAD_ARGS[@]}")
    "${CLIENT_ON[@]}" wrk -d "$WARMUP" "${wrk_args[@]}" >/dev/null
    local before after
    before=$(cpu_ticks "$SERVER_PID")
    local perf_pid=
    if [ -n "${PERF:-}" ]; then
        mkdir -p "$PERF"
        perf record -q -F "${PERF_FREQ:-999}" -g -p "$SERVER_PID" \
            -o "$PERF/$kind-$workload-$round.data" 2>/dev/null &
        perf_pid=$!
    fi
    "${CLIENT_ON[@]}" wrk -d "$DURATION" "${wrk_args[@]}" >"$out"
    after=$(cpu_ticks "$SERVER_PID")
    if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
    running "$SERVER_PID" || { tail -20 "$SERVER_LOG" >&2; die "$kind died during $workload"; }
    wrk_figures "$out"
    [ -n "$WRK_TOTAL" ] && [ "$WRK_TOTAL" -gt 0 ] || { cat "$out" >&2; die "$kind $workload: no requests"; }
    if [ -n "$perf_pid" ]; then echo "$WRK_TOTAL" >"$PERF/$kind-$workload-$round.requests"; fi
    local errors=$((${WRK_NON2XX:-0} + ${WRK_SOCKERR:-0} + ${WRK_NOT303:-0}))
    local cpu_us
    cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$WRK_TOTAL" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    echo "$round $kind $workload $WRK_RPS $(to_ms "$WRK_P50") $(to_ms "$WRK_P99") $cpu_us $(hwm_kib "$SERVER_PID") $errors $(to_ms "$WRK_AVG")" >>"$RESULTS"
    log "round $round $kind $workload: $WRK_RPS req/s, p50 $WRK_P50, p99 $WRK_P99, $cpu_us µs CPU/request, errors $errors"
}

# --- main ----------------------------------------------------------------------------
need_tools
bench_binaries
TMP=$(mktemp -d "${TMPDIR:-/tmp}/compare.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
RESULTS=$TMP/results.txt
: >"$RESULTS"

echo "load before starting: $(uptime)"
echo "$(nproc) CPUs; wrk: $THREADS threads, $CONNECTIONS connections, $DURATION per workload (+ $WARMUP warm-up), $ROUNDS rounds"
[ -n "${PAUSE:-}" ] && echo "each connection pauses $PAUSE ms between an answer and its next request (PAUSE)"
echo "bench-app flags: ${APP_ARGS:-(defaults)}"
if [ -n "${PIN:-}" ]; then echo "pinned: servers on CPU 0, wrk on CPUs 1-$(($(nproc) - 1))"; fi

OTHER_COOKIE= OTHER_TOKEN= OTHER_KIND=
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order=(bare burrow); else order=(burrow bare); fi
    for kind in "${order[@]}"; do
        start "$kind" "$round"
        credentials "$kind"
        # The two servers share the cookie format and the keys (lib.sh sets
        # SESSION_HASH_KEY and CSRF_KEY): the other server's cookie and token work here too.
        if [ -n "$OTHER_KIND" ] && [ "$OTHER_KIND" != "$kind" ]; then
            check_page "$kind (with $OTHER_KIND's cookies)" "$OTHER_COOKIE"
            check_post "$kind (with $OTHER_KIND's cookies)" "$OTHER_COOKIE" "$OTHER_TOKEN"
        fi
        OTHER_COOKIE=$COOKIE OTHER_TOKEN=$TOKEN OTHER_KIND=$kind
        for workload in "${WORKLOADS[@]}"; do
            measure "$round" "$kind" "$workload"
        done
        if [ -n "${KEEP_OUTPUT:-}" ]; then
            mkdir -p "$KEEP_OUTPUT"
            cp "$SERVER_LOG" "$KEEP_OUTPUT/server-$kind-$round.log"
        fi
        stop
    done
done
echo "load after the runs: $(uptime)"
if [ -n "${KEEP_OUTPUT:-}" ]; then cp "$TMP"/wrk-*.txt "$RESULTS" "$KEEP_OUTPUT/"; fi

# --- table ---------------------------------------------------------------------------
echo
echo "Every round (p50/p99 in ms, CPU in µs of server CPU time per request, peak RSS = VmHWM so far):"
awk 'BEGIN { printf "%-6s %-10s %-7s %10s %8s %8s %8s %9s %7s\n", "round", "workload", "server", "req/s", "p50", "p99", "CPU µs", "RSS MiB", "errors" }
     { printf "%-6s %-10s %-7s %10.0f %8.2f %8.2f %8.1f %9.1f %7d\n", $1, $3, $2, $4, $5, $6, $7, $8 / 1024, $9 }' "$RESULTS"
echo
# The tables' awk functions: a list of numbers ("1.5 0.9 2") sorted into an array, its
# median, and its median with its range.
STATS='
function sorted(list, a,   n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n
}
function median(list,   a, n) { n = sorted(list, a); return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
function spread(list,   a, n) { n = sorted(list, a); return sprintf("%.2f× (%.2f-%.2f)", median(list), a[1], a[n]) }
'
echo "Medians across rounds (burrow / bare: req/s ratio, CPU per request ratio):"
awk "$STATS"'
{ k = $3 SUBSEP $2; rps[k] = rps[k] " " $4; p50[k] = p50[k] " " $5; p99[k] = p99[k] " " $6
  cpu[k] = cpu[k] " " $7; if ($8 > hwm[k]) hwm[k] = $8; err[k] += $9 }
END {
    printf "%-10s %-7s %10s %8s %8s %8s %9s %7s\n", "workload", "server", "req/s", "p50", "p99", "CPU µs", "peak MiB", "errors"
    split("plaintext page post", w, " ")
    for (i = 1; i <= 3; i++) {
        # A workload left out by WORKLOADS has no figures (and no ratio line).
        delete m_rps; delete m_cpu
        for (s = 1; s <= 2; s++) {
            kind = s == 1 ? "bare" : "burrow"; k = w[i] SUBSEP kind
            if (!(k in rps)) continue
            m_rps[kind] = median(rps[k]); m_cpu[kind] = median(cpu[k])
            printf "%-10s %-7s %10.0f %8.2f %8.2f %8.1f %9.1f %7d\n", w[i], kind, m_rps[kind], median(p50[k]), median(p99[k]), m_cpu[kind], hwm[k] / 1024, err[k]
        }
        if (m_rps["bare"] > 0 && m_cpu["bare"] > 0 && m_rps["burrow"] > 0)
            printf "%-10s %-7s %10.2f× req/s, %.2f× CPU per request\n", w[i], "ratio", m_rps["burrow"] / m_rps["bare"], m_cpu["burrow"] / m_cpu["bare"]
    }
}' "$RESULTS"
echo
echo "Paired rounds (burrow / bare within each round: median, then lowest-highest):"
awk "$STATS"'
{ k = $1 SUBSEP $3 SUBSEP $2; rps[k] = $4; p99[k] = $6; cpu[k] = $7
  # p99 over the mean latency: how long the tail is for the load the server carried. At
  # full load the mean is connections / req/s (Little: the requests in flight are their
  # rate times their time), so a server that does fewer requests per second has a higher
  # p99 with a tail of the same shape.
  if ($10 > 0) shape[$3 SUBSEP $2] = shape[$3 SUBSEP $2] " " $6 / $10
  rounds[$1] = 1 }
END {
    printf "%-10s %-21s %-21s %-21s %-12s %s\n", "workload", "CPU per request", "req/s", "p99", "p99 lower", "p99 / mean (bare, burrow)"
    split("plaintext page post", w, " ")
    for (i = 1; i <= 3; i++) {
        c = r = p = ""; n = lower = 0
        for (round in rounds) {
            b = round SUBSEP w[i] SUBSEP "bare"; a = round SUBSEP w[i] SUBSEP "burrow"
            if (!(b in cpu) || !(a in cpu) || cpu[b] == 0 || rps[b] == 0 || p99[b] == 0) continue
            c = c " " cpu[a] / cpu[b]; r = r " " rps[a] / rps[b]; p = p " " p99[a] / p99[b]
            n++; if (p99[a] <= p99[b]) lower++
        }
        if (n == 0) continue
        printf "%-10s %-22s %-22s %-22s %-12s %.2f, %.2f\n", w[i], spread(c), spread(r), spread(p), lower " of " n,
            median(shape[w[i] SUBSEP "bare"]), median(shape[w[i] SUBSEP "burrow"])
    }
}' "$RESULTS"
if [ -n "${PERF:-}" ]; then
    echo
    echo "Atomic instructions (perf's samples at them, per request; bench/atomics.py):"
    python3 "$BENCH_DIR/atomics.py" "$PERF" "$BARE_BIN" "$APP_BIN"
fi
errors=$(awk '{ s += $9 } END { print s + 0 }' "$RESULTS")
[ "$errors" = 0 ] || die "$errors responses were errors or not the expected status (see the table)"
