#!/usr/bin/env bash
# bench-app's code laid out in the order a profiled run executes it, against the default
# layout (issue 13, memory; bench/README.md, step 23). Not part of any build: this
# measures what a profile-ordered binary would save.
#
#   bash bench/layout.sh                 # build, profile, relink, then compare.sh on both
#   ROUNDS=3 DURATION=10s bash bench/layout.sh
#   LAYOUT_DIR=…                         # the cargo target directory (target/layout)
#
# 1. builds bench-app statically, unstripped (symbols are the ordering's names), into
#    target/layout;
# 2. runs it under callgrind: the start, GET /plaintext, then what compare.sh checks
#    before it measures (GET /login, GET /entries, POST /entries with the session cookie,
#    the CSRF cookie and token, and without the token), SIGTERM;
# 3. writes every function callgrind saw run that the binary defines, by name, to
#    target/layout/order.txt, and links bench-app again with lld's
#    `--symbol-ordering-file` (those functions first, together);
# 4. runs bench/compare.sh with the default layout as "bare" and the ordered one as
#    "burrow" (same code, so the ratios are the layout's), after printing each binary's
#    resident code right after its start.
#
# Symbol names carry hashes of the build's configuration, so the order is only good for
# the build it was taken from. Needs valgrind (apt-get install valgrind) and root for
# dropping the page cache before each start (otherwise skipped, and said so).
set -euo pipefail
# comm needs sort's order.
export LC_ALL=C

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v valgrind >/dev/null || die "needs valgrind (apt-get install valgrind)"
command -v nm >/dev/null || die "needs nm (binutils)"
need_tools

DIR=${LAYOUT_DIR:-$ROOT/target/layout}
BIN=$DIR/$TARGET/release/bench-app
export CARGO_TARGET_DIR=$DIR
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="$STATIC_RUSTFLAGS"
KEEP=(--config profile.release.strip=false)

log "building bench-app (static, unstripped) into $DIR"
(cd "$ROOT" && cargo build --release --target "$TARGET" -p bench-app "${KEEP[@]}")
cp "$BIN" "$DIR/bench-app.default"

# --- the profile -----------------------------------------------------------------------
WORK=$(mktemp -d)
trap 'kill -KILL "${PROFILED:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
profiled_functions "$DIR/bench-app.default" "$WORK" "$DIR/order.txt"

log "linking bench-app with its functions in that order"
(cd "$ROOT" && cargo rustc --release --target "$TARGET" -p bench-app --bin bench-app "${KEEP[@]}" \
    -- -C link-arg=-Wl,--symbol-ordering-file="$DIR/order.txt" \
    -C link-arg=-Wl,--no-warn-symbol-ordering)
cp "$BIN" "$DIR/bench-app.ordered"

# --- resident code right after the start -----------------------------------------------
for kind in default ordered; do
    if [ "$(id -u)" = 0 ]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches
    else
        log "not root: the page cache is not dropped before the start"
    fi
    PORT=$(free_port)
    "$DIR/bench-app.$kind" --host 127.0.0.1 --port "$PORT" --database-dsn "$WORK/$kind.db" \
        >"$WORK/$kind.log" 2>&1 &
    PROFILED=$!
    answered "http://127.0.0.1:$PORT/entries" "$PROFILED" 300 "$WORK/$kind.log"
    CODE=$(awk '/^[0-9a-f]+-[0-9a-f]+ r-xp .*bench-app/ { code = 1; next }
        /^[0-9a-f]+-[0-9a-f]+ / { code = 0 }
        code && /^Rss:/ { print $2; exit }' "/proc/$PROFILED/smaps")
    log "$kind layout: $CODE KiB of code resident after the start and one page ($(grep VmRSS "/proc/$PROFILED/status" | awk '{print $2}') KiB in all)"
    kill -TERM "$PROFILED"
    wait "$PROFILED" || true
    PROFILED=
done

log "compare.sh: \"bare\" is the default layout, \"burrow\" the ordered one"
BARE_BIN=$DIR/bench-app.default APP_BIN=$DIR/bench-app.ordered bash "$BENCH_DIR/compare.sh"
