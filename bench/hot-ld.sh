#!/usr/bin/env bash
# The list of the code a burrow app runs, for crates/burrow/build.rs to put first in every
# release binary (issue 13, memory; bench/README.md, steps 30 and 34). bench/layout.sh
# orders the functions a profiled run executed with lld's --symbol-ordering-file, whose
# names carry the build's hashes, so its list fits only the build it was taken from. This
# writes the same set as a linker script of glob patterns with the hashes replaced by `*`,
# which any build of the same code can apply, into crates/burrow/hot-code.ld: an `INSERT
# BEFORE .text` script (the linker's default layout stays, with one more output section,
# .text.hot, in front of .text). Rust and the C code built with -ffunction-sections
# (SQLite) put each function in a section `.text.<symbol>`, so a pattern
# `.text.<symbol with its hash globbed>` picks it in any build configuration. Run it again
# when the request path changes: a function the list does not name stays in .text, where
# it costs memory (its 64 KiB around it mapped), not correctness.
#
#   bash bench/hot-ld.sh                 # build unstripped, profile, write the list
#   PROFILE_BIN=… MAP=… bash bench/hot-ld.sh   # profile this (unstripped) binary, no build;
#                                        # MAP: an lld -Map of any build (glibc's files, cold);
#                                        # NOTES_BIN=…: an unstripped notes server as well
#   ORDER=order.txt bash bench/hot-ld.sh # patterns from a kept list of names (KEEP=DIR keeps it)
#   OUT=… LAYOUT_DIR=…                   # the script's path; the cargo target directory
#
# Names, normalised:
#   legacy   _ZN…17h<16 hex>E[.llvm.N]  → _ZN…17h*
#   v0 (std) _R…: crate disambiguators Cs<base62>_ → Cs*_, back-references B<base62>_ →
#            B*_ (their offsets move when a disambiguator's length does), a trailing
#            .llvm.N (ThinLTO's promotion, which varies) → *
#   C        unchanged (SQLite's are stable names)
# glibc's functions (libc.a is built without -ffunction-sections, so they sit in plain
# .text) are named by archive member when MAP (a link map) is given, else left out; a
# string function's member by its name with any CPU variant (memmove-*.o): valgrind's
# CPU picks the AVX2 variants, a machine with AVX-512 the EVEX ones.
#
# Needs valgrind and nm.
set -euo pipefail
export LC_ALL=C

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v valgrind >/dev/null || die "needs valgrind (apt-get install valgrind)"
command -v nm >/dev/null || die "needs nm (binutils)"
need_tools

DIR=${LAYOUT_DIR:-$ROOT/target/layout}
OUT=${OUT:-$ROOT/crates/burrow/hot-code.ld}
if [ -z "${ORDER:-}" ] && [ -z "${PROFILE_BIN:-}" ]; then
    export CARGO_TARGET_DIR=$DIR
    export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="$STATIC_RUSTFLAGS"
    log "building bench-app and notes (static, unstripped, with link maps) into $DIR"
    (cd "$ROOT" && cargo rustc --release --target "$TARGET" -p bench-app \
        --bin bench-app --config profile.release.strip=false -- -C link-arg=-Wl,-Map="$DIR/bench-app.map")
    (cd "$ROOT" && cargo rustc --release --target "$TARGET" -p notes \
        --bin server --config profile.release.strip=false -- -C link-arg=-Wl,-Map="$DIR/notes.map")
    PROFILE_BIN=$DIR/$TARGET/release/bench-app
    NOTES_BIN=${NOTES_BIN:-$DIR/$TARGET/release/server}
    MAP=${MAP:-$DIR/bench-app.map}
    NOTES_MAP=$DIR/notes.map
fi

WORK=$(mktemp -d)
trap 'kill -KILL "${PROFILED:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
if [ -n "${ORDER:-}" ]; then
    log "using ORDER=$ORDER (no profile)"
    cp "$ORDER" "$WORK/order.txt"
else
    profiled_functions "$PROFILE_BIN" "$WORK" "$WORK/order.txt"
    # The notes example too (NOTES_BIN, unstripped): the contrib apps' code, which
    # bench-app does not run.
    if [ -n "${NOTES_BIN:-}" ]; then
        profiled_notes_functions "$NOTES_BIN" "$WORK" "$WORK/notes-order.txt"
        cp "$WORK/order.txt" "$WORK/core-order.txt"
        sort -u "$WORK/order.txt" "$WORK/notes-order.txt" -o "$WORK/order.txt"
    fi
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP" && cp "$WORK"/*order.txt "$WORK"/*callgrind.out "$KEEP/"
    fi
fi
if [ -n "${MAP:-}" ] && [ -n "${NOTES_MAP:-}" ]; then
    cat "$MAP" "$NOTES_MAP" >"$WORK/both.map"
    MAP=$WORK/both.map
fi

# Hash-free patterns: Rust's names with the hashes globbed; C names as they are.
normalise() {
    sed -E \
        -e 's/17h[0-9a-f]{16}E.*$/17h*/' \
        -e '/^_R/ { s/Cs[0-9A-Za-z]+_/Cs*_/g; s/B[0-9A-Za-z]*_/B*_/g; s/\.llvm\.[0-9]+$//; s/$/*/ }' \
        | sort -u
}
normalise <"$WORK/order.txt" >"$WORK/patterns.txt"
# Functions without a section of their own (glibc's libc.a and libm.a are built without
# -ffunction-sections; ring's assembly): with MAP (an lld -Map of any build, e.g. the
# profiled one: `-C link-arg=-Wl,-Map=FILE`), each is named by its object file and section
# instead (`*/libc.a:memmove-avx-unaligned-erms.o(.text.avx)`); hashes in rlib and member
# names globbed. Without MAP they stay in the list as `.text.<name>` and match nothing.
: >"$WORK/files.txt"
if [ -n "${MAP:-}" ]; then
    grep -vE '^(_ZN|_R)' "$WORK/patterns.txt" >"$WORK/c-names.txt" || true
    # The map: an input section's line (…  file:(section)), then its symbols' lines.
    awk 'NR == FNR { want[$1] = 1; next }
        $NF ~ /:\(/ { sec = $NF; next }
        NF == 5 && ($5 in want) { print $5, sec }' "$WORK/c-names.txt" "$MAP" | sort -u >"$WORK/where.txt"
    # A name whose section is not .text[.*].<name> is named by its file.
    awk '{ s = $2; sub(/.*:\(/, "", s); sub(/\)$/, "", s) }
        s != (".text." $1) { print $1 }' "$WORK/where.txt" | sort -u >"$WORK/by-file.txt"
    awk '{ s = $2; sub(/.*:\(/, "", s); sub(/\)$/, "", s); f = $2; sub(/:\([^:]*$/, "", f)
        sub(/\)$/, "", f); sub(/\(/, ":", f); sub(/.*\//, "*/", f)
        gsub(/[0-9a-f]{16}/, "*", f); print $1, f "(" s ")" }' "$WORK/where.txt" \
        | awk 'NR == FNR { byfile[$1] = 1; next } ($1 in byfile) { print $2 }' "$WORK/by-file.txt" - \
        | sed -E 's/:([a-z0-9_]+)-[^:()]*\.o\(\.text\.[a-z0-9.]+\)$/:\1-*.o(.text*)/' \
        | sort -u >"$WORK/files.txt"
    comm -23 "$WORK/patterns.txt" "$WORK/by-file.txt" >"$WORK/p2.txt"
    mv "$WORK/p2.txt" "$WORK/patterns.txt"
    # The names LLVM put in .text.unlikely.* (#[cold]) in that build, normalised.
    sed -nE 's/.*:\(\.text\.unlikely\.(.*)\)$/\1/p' "$MAP" | normalise \
        | comm -12 - "$WORK/patterns.txt" >"$WORK/unlikely.txt"
else
    cp "$WORK/patterns.txt" "$WORK/unlikely.txt"
fi
log "$(wc -l <"$WORK/order.txt") functions ran; $(wc -l <"$WORK/patterns.txt") name patterns ($(wc -l <"$WORK/unlikely.txt") of them cold too), $(wc -l <"$WORK/files.txt") file patterns"

# bench-app's functions first, then those only notes ran: lld places the sections one
# input description matches in input order, so a second description keeps notes' part
# (and every instance of its generics in a smaller app, which never runs them) after the
# code every app runs, where a smaller app does not map it.
: >"$WORK/core.txt"
[ -f "$WORK/core-order.txt" ] && normalise <"$WORK/core-order.txt" >"$WORK/core.txt"
for list in patterns unlikely; do
    if [ -s "$WORK/core.txt" ]; then
        comm -12 "$WORK/$list.txt" "$WORK/core.txt" >"$WORK/$list-first.txt"
        comm -23 "$WORK/$list.txt" "$WORK/core.txt" >"$WORK/$list-then.txt"
    else
        cp "$WORK/$list.txt" "$WORK/$list-first.txt"
        : >"$WORK/$list-then.txt"
    fi
done
log "$(wc -l <"$WORK/patterns-first.txt") name patterns first, $(wc -l <"$WORK/patterns-then.txt") after them"

# Each name as .text.<name>, and as .text.unlikely.<name> (LLVM's section for #[cold]
# code, e.g. RawVec::grow_one, which the start runs too) where the map had it there (every
# name without MAP: each pattern costs link time).
{
    echo "/* The functions a burrow app runs to start and answer its first requests, from"
    echo "   profiled runs of bench-app and the notes example (bench/hot-ld.sh writes this"
    echo "   file; do not edit)."
    echo "   crates/burrow/build.rs hands it to lld, which gathers them in .text.hot."
    echo "   Hash-free: the same names match in any build configuration. */"
    echo "SECTIONS"
    echo "{"
    echo "  .text.hot :"
    echo "  {"
    echo "    *("
    sed 's/^/      .text./' "$WORK/patterns-first.txt"
    sed 's/^/      .text.unlikely./' "$WORK/unlikely-first.txt"
    echo "    )"
    sed 's/^/    /' "$WORK/files.txt"
    if [ -s "$WORK/patterns-then.txt" ] || [ -s "$WORK/unlikely-then.txt" ]; then
        echo "    *("
        sed 's/^/      .text./' "$WORK/patterns-then.txt"
        sed 's/^/      .text.unlikely./' "$WORK/unlikely-then.txt"
        echo "    )"
    fi
    echo "  }"
    echo "}"
    echo "INSERT BEFORE .text;"
} >"$OUT"
log "wrote $OUT"
log "release builds for $TARGET now apply it (crates/burrow/build.rs)"
