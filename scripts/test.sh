#!/usr/bin/env bash
# The whole test suite, on a fresh machine as on a developer's: installs what the tests
# need, then checks formatting and lints, runs every test against the static release
# `server` binary, and checks that binary is static and free of OpenSSL and aws-lc.
# CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-gnu
BIN="target/$TARGET/release/server"

# Tools the tests use: setpriv (run the server as an unprivileged user), file and ldd
# (static linkage check), pebble + pebble-challtestsrv (the ACME CA of the TLS tests),
# openssl (the CLI only: a TLS 1.1 client for the TLS tests), chromium + chromedriver (the
# headless browser of the browser tests), sqlite3 (the guide's `.backup` beside a running
# server in the SQLite tests), python3-aiosmtpd (the SMTP server mail tests send to, run by
# Debian's /usr/bin/python3). A missing tool is installed, or the run fails loudly.
# PostgreSQL is not in this list: scripts/pg-cluster.sh installs it when it starts the cluster.
missing=()
command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null || missing+=(pebble)
command -v openssl >/dev/null || missing+=(openssl)
command -v setpriv >/dev/null && command -v unshare >/dev/null || missing+=(util-linux)
command -v file >/dev/null || missing+=(file)
command -v ldd >/dev/null || missing+=(libc-bin)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for tool in setpriv unshare file ldd pebble pebble-challtestsrv openssl chromium chromedriver sqlite3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is required by the tests and could not be installed"; exit 1; }
done
/usr/bin/python3 -c 'import aiosmtpd' || { echo "FAIL: python3-aiosmtpd is required by the tests and could not be installed"; exit 1; }

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Everything the run leaves behind goes in one EXIT trap (a second `trap ... EXIT` would
# replace the first), which also runs on failure and on SIGTERM. Each step tolerates failure:
# under `set -e` a failing command would skip the rest and replace the run's exit status.
pgdir=
root=
cleanup() {
  if [ -n "$pgdir" ]; then scripts/pg-cluster.sh stop "$pgdir" || true; fi
  if [ -n "$root" ]; then rm -rf "$root" || true; fi
}
trap cleanup EXIT

# The PostgreSQL tests share one throwaway cluster (PostgreSQL is installed if missing); the
# URL, CA file, directory and port reach them as BURROW_TEST_PG_*. A test that restarts or
# stops the database should start a cluster of its own with $BURROW_TEST_PG_SCRIPT, or it
# breaks the tests running beside it.
echo "==> PostgreSQL cluster for the tests"
pgdir=$(mktemp -d /tmp/burrow-pg.XXXXXX)
scripts/pg-cluster.sh start "$pgdir"
# shellcheck source=/dev/null
source "$pgdir/env"
export BURROW_TEST_PG_SCRIPT="$PWD/scripts/pg-cluster.sh"

# One build serves both the tests and the shipped binary: the tests drive
# $BIN (CARGO_BIN_EXE_server), the static executable the release command produces.
echo "==> cargo test (release, static, $TARGET)"
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS='-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs'
# Every binary first: the restart tests swap the server for the hello example beside it.
# `--tests` too, so that this build resolves features as `cargo test` does (dev-dependencies
# such as reqwest turn on more features of shared crates): `cargo test` then reuses it
# instead of compiling burrow and every binary a second time.
cargo build --workspace --bins --tests --release --target "$TARGET" --locked
cargo test --workspace --release --target "$TARGET" --locked

echo "==> static binary check"
file "$BIN"
file "$BIN" | grep -Eq 'static(-pie)? linked|statically linked' || { echo "FAIL: $BIN is not statically linked"; exit 1; }
ldd_out=$(ldd "$BIN" 2>&1 || true)
echo "ldd: $ldd_out"
echo "$ldd_out" | grep -Eq 'not a dynamic executable|statically linked' || { echo "FAIL: ldd sees $BIN as dynamic"; exit 1; }
ls -l "$BIN"

echo "==> the code every request runs comes first (crates/burrow/hot-code.ld), relocations packed"
# The section table is read into a variable first: `readelf | grep -q` under pipefail fails
# whenever grep exits on its match before readelf has written the rest (SIGPIPE).
sections=$(readelf -SW "$BIN")
hot=$(awk '{ for (i = 1; i < NF; i++) if ($i == ".text.hot") print $(i + 4) }' <<<"$sections")
echo ".text.hot: ${hot:-none} bytes (hex)"
[ -n "$hot" ] && [ $((16#$hot)) -ge $((1 << 20)) ] \
  || { echo "FAIL: $BIN has no .text.hot of 1 MiB or more: the code order was not applied"; exit 1; }
grep -q '\.relr\.dyn' <<<"$sections" \
  || { echo "FAIL: $BIN has no .relr.dyn: its relocations are not packed"; exit 1; }

echo "==> the binary allocates with burrow's allocator (mimalloc prints its statistics)"
stats=$(MIMALLOC_SHOW_STATS=1 "$BIN" --version 2>&1 >/dev/null)
grep -q '^heap stats:' <<<"$stats" \
  || { echo "FAIL: $BIN does not allocate with burrow::Allocator (mimalloc)"; exit 1; }
echo "ok"

echo "==> the binary alone: runs in an empty chroot (no libc, no /etc)"
root=$(mktemp -d)
cp "$BIN" "$root/server"
mkdir "$root/data"
chroot "$root" /server --version
chroot "$root" /server migrate --database-dsn sqlite:////data/app.db --log-level warn
test -s "$root/data/app.db" || { echo "FAIL: no database created in the chroot"; exit 1; }
# PostgreSQL from the same binary: no libpq, no OpenSSL, no CA bundle on the host. TLS
# verified against the cluster's CA (copied in), by IP, as nothing resolves names there.
# SCRAM's nonce comes from /dev/urandom in a static glibc build (getrandom 0.4 cannot find
# libc's getrandom() without dlsym, and polls /dev/random once first): device files every
# host and container has.
mkdir "$root/dev"
mknod -m 444 "$root/dev/random" c 1 8
mknod -m 444 "$root/dev/urandom" c 1 9
psql "$BURROW_TEST_PG_URL" -qc "CREATE DATABASE chroot_check" >/dev/null
cp "$BURROW_TEST_PG_CA" "$root/ca.crt"
pg_chroot="postgres://postgres:postgres@127.0.0.1:$BURROW_TEST_PG_PORT/chroot_check?sslmode=verify-full&sslrootcert=/ca.crt"
chroot "$root" /server migrate --database-dsn "$pg_chroot" --log-level warn
chroot "$root" /server migrate --list --database-dsn "$pg_chroot" | tail -1 | grep -q ' 0 pending' \
  || { echo "FAIL: migrations not applied on PostgreSQL from the chroot"; exit 1; }

echo "==> deploy/Dockerfile ships this static binary"
grep -q "RUSTFLAGS='-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs' cargo build --release --locked --target $TARGET -p notes" deploy/Dockerfile
grep -q "cp target/$TARGET/release/server /server" deploy/Dockerfile
grep -q "FROM gcr.io/distroless/static" deploy/Dockerfile
echo "ok"

echo "==> dependency tree: no OpenSSL, no aws-lc"
forbidden=$(cargo tree --workspace --target all -e normal,build,dev --prefix none --locked | awk '{print $1}' | grep -Ex 'openssl-sys|openssl|aws-lc-sys|aws-lc-rs|native-tls' | sort -u || true)
if [ -n "$forbidden" ]; then
  echo "FAIL: forbidden crates in the dependency tree: $forbidden"
  exit 1
fi
echo "none found"

echo "==> all checks passed"
