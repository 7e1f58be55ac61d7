#!/usr/bin/env bash
# Instructions per request of bench-app and bench-bare, counted by callgrind: a figure that
# does not move with the machine's load (issue 13; bench/README.md, "Instructions per
# request"). CPU time under wrk drifts by 10–25% from hour to hour on a shared machine;
# the instruction count of the same binary under the same requests moves by less than 1%.
#
#   bash bench/instructions.sh                    # build, then both servers, every workload
#   BARE_BIN=… APP_BIN=… bash bench/instructions.sh   # these binaries (A/B of two builds too)
#   WORKLOADS=plaintext KEEP=/tmp/cg bash bench/instructions.sh   # keep callgrind's files
#   CACHE=1 bash bench/instructions.sh            # also the simulated cache misses per request
#
# For each server and workload: starts the server under `valgrind --tool=callgrind` with
# instrumentation off (the start is not counted), gets the session and CSRF credentials and
# checks the page and a POST (bench/lib.sh's `credentials`), runs wrk (1 thread, 4
# connections) for WARMUP, turns instrumentation on, runs wrk for DURATION, turns it off and
# divides the instructions executed (every thread of the server, user space only: no
# kernel) by the requests wrk counted. Any error or non-2xx/3xx answer fails the run.
# With symbols (an unstripped build: `cargo rustc --release … -- -C strip=none`),
# `callgrind_annotate KEEP/KIND-WORKLOAD.out` says where the instructions go.
#
# CACHE=1 adds callgrind's cache simulation (`--cache-sim=yes`, the host's L1 and last-level
# sizes): misses per request of the first-level instruction cache (I1), the first-level data
# cache (D1, reads and writes) and the last level (LL, both). This VM has no performance
# counters, so the simulation is the only way here to see what the code's size costs; it
# models one core and no prefetcher, so its figures compare two builds, not predict time.
#
# FOOTPRINT=1 adds the code each request runs, in 64-byte lines (bench/footprint.py, from
# callgrind's `--dump-instr=yes`): when it is larger than the instruction cache, each
# request fetches most of it again. `footprint.py KEEP/bare-page.out N KEEP/burrow-page.out
# M` then says which functions make the difference.
#
# BRANCHES=1 adds callgrind's branch-prediction simulation (`--branch-sim=yes`): the
# conditional and indirect branches it mispredicted, per request. Its predictor is a simple
# model, not this CPU's, so again a comparison, not a time.
#
# Environment: BARE_BIN and APP_BIN (both, or the static release builds are built),
# WORKLOADS (plaintext page post), WARMUP (2s), DURATION (4s), KEEP (a directory), CACHE,
# FOOTPRINT, BRANCHES.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WORKLOADS=${WORKLOADS:-plaintext page post}
WARMUP=${WARMUP:-2s}
DURATION=${DURATION:-4s}
command -v valgrind >/dev/null || die "valgrind is missing (apt-get install valgrind)"
need_tools

bench_binaries

make_tmp instructions

# Prints the instructions per request of one workload on a server started from BIN.
count() { # kind bin workload
    local kind=$1 bin=$2 workload=$3 out=$TMP/$1-$3.out
    PORT=$(free_port)
    BASE=http://127.0.0.1:$PORT
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
        --cache-sim="$([ -n "${CACHE:-}" ] && echo yes || echo no)" \
        --branch-sim="$([ -n "${BRANCHES:-}" ] && echo yes || echo no)" \
        --dump-instr="$([ -n "${FOOTPRINT:-}" ] && echo yes || echo no)" \
        "$bin" --host 127.0.0.1 --port "$PORT" --database-dsn "$TMP/$kind-$workload.db" \
        >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    answered "$BASE/plaintext" "$SERVER_PID" 600 "$SERVER_LOG"
    credentials "$kind"
    workload_args "$workload"
    local args=(-t 1 -c 4 "${WORKLOAD_ARGS[@]}")
    wrk -d "$WARMUP" "${args[@]}" >/dev/null
    callgrind_control -i on "$SERVER_PID" >/dev/null 2>&1
    wrk -d "$DURATION" "${args[@]}" >"$TMP/wrk.out"
    callgrind_control -i off "$SERVER_PID" >/dev/null 2>&1
    callgrind_control -d "$SERVER_PID" >/dev/null 2>&1
    stop_server "$SERVER_PID"
    local requests errors
    requests=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
    errors=$(awk '/Non-2xx or 3xx|Socket errors/ {print}' "$TMP/wrk.out")
    [ -z "$errors" ] || die "$kind $workload: $errors"
    [ "${requests:-0}" -gt 0 ] || die "$kind $workload: wrk counted no requests"
    # The dump of the measured stretch is the file with the highest part number. Its
    # `events:` line names the columns of `totals:` (Ir, then the cache events with CACHE).
    local dump
    dump=$(ls -v "$out"* | tail -1)
    [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$dump" "$KEEP/$kind-$workload.out"
    awk -v requests="$requests" '
        /^events:/ { for (i = 2; i <= NF; i++) column[$i] = i }
        /^totals:/ {
            printf "%d %d", requests, $column["Ir"] / requests
            if ("I1mr" in column)
                printf " %.1f %.1f %.1f", $column["I1mr"] / requests,
                    ($column["D1mr"] + $column["D1mw"]) / requests,
                    ($column["ILmr"] + $column["DLmr"] + $column["DLmw"]) / requests
            else
                printf " - - -"
            if ("Bcm" in column)
                printf " %.1f", ($column["Bcm"] + $column["Bim"]) / requests
            else
                printf " -"
        }' "$dump"
    if [ -n "${FOOTPRINT:-}" ]; then
        echo " $(python3 "$BENCH_DIR/footprint.py" "$dump" "$requests")"
    else
        echo " -"
    fi
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

printf '%-10s %14s %14s %8s\n' workload "bare Ir/req" "burrow Ir/req" ratio
for workload in $WORKLOADS; do
    # Command substitutions, so a failing count stops the script (set -e).
    bare=$(count bare "$BARE_BIN" "$workload")
    app=$(count burrow "$APP_BIN" "$workload")
    read -r bare_requests bare bare_i1 bare_d1 bare_ll bare_br bare_lines <<<"$bare"
    read -r app_requests app app_i1 app_d1 app_ll app_br app_lines <<<"$app"
    printf '%-10s %14s %14s %8s   (%s and %s requests)\n' "$workload" "$bare" "$app" \
        "$(ratio "$app" "$bare")" "$bare_requests" "$app_requests"
    if [ -n "${CACHE:-}" ]; then
        for miss in i1 d1 ll; do
            b=bare_$miss a=app_$miss
            printf '  %-8s %14s %14s %8s   (misses per request)\n' "${miss^^}" "${!b}" \
                "${!a}" "$(ratio "${!a}" "${!b}")"
        done
    fi
    if [ -n "${BRANCHES:-}" ]; then
        printf '  %-8s %14s %14s %8s   (mispredicted branches per request)\n' branches \
            "$bare_br" "$app_br" "$(ratio "$app_br" "$bare_br")"
    fi
    if [ -n "${FOOTPRINT:-}" ]; then
        printf '  %-8s %14s %14s %8s   (64-byte lines of code per request)\n' code \
            "$bare_lines" "$app_lines" "$(ratio "$app_lines" "$bare_lines")"
    fi
done
