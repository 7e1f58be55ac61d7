#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: its own data directory, port, unix socket and
# TLS certificates, so it never touches (or depends on) a system cluster and several can run
# side by side. scripts/test.sh starts one for the whole suite; a test that takes the database
# down (restart, stop-only, start-only) should start its own so it does not break the others.
#
#   pg-cluster.sh start DIR        install PostgreSQL if needed, create and start a cluster in
#                                  DIR, write DIR/env (BURROW_TEST_PG_URL, _CA, _DIR, _PORT)
#   pg-cluster.sh stop DIR         stop it (immediate) and remove DIR; fine if already stopped
#   pg-cluster.sh restart DIR      fast restart, waits until it accepts connections again
#   pg-cluster.sh stop-only DIR [MODE]  stop (fast unless MODE is smart or immediate), keep DIR
#   pg-cluster.sh start-only DIR   start a stopped cluster again, same port and certificates
#
# Runs as root (CI) or as any other user (a developer's machine); postgres refuses to run as
# root, so as root the server runs as the `postgres` system user of the Debian package.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop|restart|stop-only|start-only DIR" >&2
  exit 2
}

fail() {
  echo "FAIL: $*" >&2
  # The server's own words are usually the only useful clue (port taken, bad key file...).
  if [ -n "${dir:-}" ] && [ -s "$dir/log" ]; then
    echo "---- last lines of $dir/log" >&2
    tail -n 20 "$dir/log" >&2 || true
  fi
  exit 1
}

# Written first by `start`: `stop` removes DIR recursively only if it finds this, so a wrong
# argument can never wipe an unrelated directory.
MARKER=.burrow-pg-cluster

# The newest PostgreSQL whose server binaries are all present. Debian installs them outside
# PATH, one directory per major version; PATH is the fallback for other systems.
find_bindir() {
  local d
  while read -r d; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
      echo "$d"
      return 0
    fi
  done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5 -rV)
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null && command -v postgres >/dev/null; then
    dirname "$(command -v pg_ctl)"
    return 0
  fi
  return 1
}

# The binaries of the version that created the cluster, not merely the newest installed one:
# a data directory only runs under its own major version.
cluster_bindir() {
  local v
  v=$(cat "$dir/data/PG_VERSION")
  if [ -x "/usr/lib/postgresql/$v/bin/pg_ctl" ]; then
    echo "/usr/lib/postgresql/$v/bin"
  else
    find_bindir || fail "no PostgreSQL $v binaries to run the cluster in $dir"
  fi
}

# Runs a command as the owner of the cluster. From inside DIR: the unprivileged user may not be
# allowed into the caller's working directory (e.g. under /root), which postgres complains about.
as_owner() {
  if [ "$(id -u)" -eq 0 ] && [ "$owner_uid" -ne 0 ]; then
    (cd "$dir" && setpriv --reuid="$owner_uid" --regid="$owner_gid" --init-groups -- "$@")
  else
    (cd "$dir" && "$@")
  fi
}

# The owner recorded by the filesystem, so stop/restart need no state beyond DIR itself.
load_owner() {
  owner_uid=$(stat -c %u "$dir/data")
  owner_gid=$(stat -c %g "$dir/data")
}

is_running() {
  [ -f "$dir/data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

# A port nobody listens on right now. Another process may still take it before the server
# binds it, so `start` retries with a new port when the bind fails.
free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    return
  fi
  # A fresh Debian has no python3: probe random high ports; a refused connection means free.
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  fail "no free TCP port found on 127.0.0.1"
}

# A CA and a server certificate it signs, so clients can use sslmode=verify-full with
# DIR/ca.crt rather than trusting any certificate. The SAN holds both names the tests may dial:
# libpq and rustls ignore the CN. P-256 keys: instant to generate, supported by every client.
make_certificates() {
  local cnf="$dir/openssl.cnf"
  cat >"$cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = burrow test CA
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
  openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key"
  openssl req -new -x509 -config "$cnf" -extensions ca -key "$dir/ca.key" \
    -subj "/CN=burrow test CA" -days 3650 -out "$dir/ca.crt"
  openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/server.key"
  openssl req -new -config "$cnf" -key "$dir/server.key" -subj "/CN=localhost" -out "$dir/server.csr"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 \
    -extfile "$cnf" -extensions server -out "$dir/server.crt" 2>/dev/null
  # Nothing signs anything later: a CA key lying around would only be a trap.
  rm -f "$cnf" "$dir/server.csr" "$dir/ca.key"
  # The server refuses a key others can read; the unprivileged test server reads ca.crt.
  chmod 0644 "$dir/ca.crt" "$dir/server.crt"
  chmod 0600 "$dir/server.key"
  chown "$owner_uid:$owner_gid" "$dir/server.key" "$dir/server.crt"
}

# The server settings, in a file of their own that postgresql.conf includes: `start` rewrites
# it when it has to retry on another port. Durability is off: the data is thrown away anyway
# and fsync on a CI disk would make the tests slow. 300 connections: the suite runs many tests
# in parallel, each with its own pool.
write_settings() {
  cat >"$dir/data/burrow.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
ssl = on
ssl_cert_file = '$dir/server.crt'
ssl_key_file = '$dir/server.key'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 64MB
EOF
  chown "$owner_uid:$owner_gid" "$dir/data/burrow.conf"
}

pg_start() {
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 start >/dev/null
}

# Checks the server answers over TCP with the password, with TLS, and that the certificate
# verifies against DIR/ca.crt under both names, the way the tests will connect.
check_connections() {
  local psql="$bindir/psql" q='select ssl from pg_stat_ssl where pid = pg_backend_pid()'
  [ -x "$psql" ] || psql=psql
  local url="postgres://postgres:postgres@127.0.0.1:$port/postgres"
  local url_name="postgres://postgres:postgres@localhost:$port/postgres"
  local ca="sslrootcert=$dir/ca.crt"
  [ "$("$psql" -X -Atq "$url?sslmode=disable" -c "$q")" = f ] || fail "no plain TCP connection"
  "$psql" -X -Atq "$url?sslmode=require" -c 'select version()' >/dev/null || fail "no TLS connection"
  [ "$("$psql" -X -Atq "$url?sslmode=verify-full&$ca" -c "$q")" = t ] ||
    fail "TLS verification against $dir/ca.crt fails for 127.0.0.1"
  [ "$("$psql" -X -Atq "$url_name?sslmode=verify-full&$ca" -c "$q")" = t ] ||
    fail "TLS verification against $dir/ca.crt fails for localhost"
  version=$("$psql" -X -Atq "$url?sslmode=require" -c 'show server_version')
  version=${version%% *}
}

cmd_start() {
  if ! find_bindir >/dev/null; then
    echo "==> installing postgresql"
    # A failure here is reported below, with the one message that matters.
    if apt-get update -qq; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || true
    fi
  fi
  bindir=$(find_bindir) || fail "PostgreSQL (initdb, pg_ctl, postgres) is required by the tests and could not be installed"
  command -v openssl >/dev/null || fail "openssl is required to make the cluster's certificates"

  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  [ -e "$dir/data" ] && fail "$dir already holds a cluster (start-only starts it again)"
  touch "$dir/$MARKER"

  # The cluster's owner: never root (postgres refuses it), preferably the package's own user.
  if [ "$(id -u)" -eq 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin postgres
    fi
    owner_uid=$(id -u postgres)
    owner_gid=$(id -g postgres)
  else
    owner_uid=$(id -u)
    owner_gid=$(id -g)
  fi
  # The owner writes the socket and log into DIR; everyone may traverse it to reach ca.crt.
  chown "$owner_uid:$owner_gid" "$dir"
  chmod 0755 "$dir"

  echo postgres >"$dir/pwfile"
  chown "$owner_uid:$owner_gid" "$dir/pwfile"
  chmod 0600 "$dir/pwfile"
  # Trust on the unix socket, so an admin (or a test) can get in without the password; a
  # password over TCP, which is what the server under test uses. C.UTF-8 exists on every
  # Debian, unlike the caller's LANG, and does not make sorting depend on the machine.
  as_owner "$bindir/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; fail "initdb failed in $dir/data"; }
  rm -f "$dir/pwfile" "$dir/initdb.log"
  chmod 0700 "$dir/data"

  echo "include 'burrow.conf'" >>"$dir/data/postgresql.conf"
  # `host` covers TCP with and without TLS: the tests try both.
  cat >"$dir/data/pg_hba.conf" <<'EOF'
local all all trust
host all all 127.0.0.1/32 scram-sha-256
EOF
  make_certificates

  local attempt
  for attempt in 1 2 3; do
    port=$(free_port)
    write_settings
    : >"$dir/log"
    chown "$owner_uid:$owner_gid" "$dir/log"
    if pg_start; then
      break
    fi
    # Only a port someone took in the meantime is worth another try.
    if [ "$attempt" -eq 3 ] || ! grep -q 'could not bind' "$dir/log"; then
      fail "postgres did not start in $dir"
    fi
    echo "port $port was taken meanwhile, trying another" >&2
  done

  cat >"$dir/env" <<EOF
export BURROW_TEST_PG_URL=postgres://postgres:postgres@127.0.0.1:$port/postgres
export BURROW_TEST_PG_CA=$dir/ca.crt
export BURROW_TEST_PG_DIR=$dir
export BURROW_TEST_PG_PORT=$port
EOF
  chmod 0644 "$dir/env"

  check_connections
  echo "postgres $version listening on 127.0.0.1:$port (tls on), cluster in $dir"
}

# Runs from EXIT traps, after failures of every kind: it reports but never fails.
cmd_stop() {
  [ -d "$dir" ] || return 0
  if [ -f "$dir/data/PG_VERSION" ] && load_owner && bindir=$(cluster_bindir); then
    if is_running; then
      # Immediate: the data is about to be deleted, a clean shutdown would only cost time.
      if ! as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1; then
        # Still up after pg_ctl gave up: kill the postmaster itself, its backends follow it.
        local pid
        pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
        if [ -n "$pid" ]; then
          kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 1
      fi
    fi
  fi
  if [ -e "$dir/$MARKER" ]; then
    rm -rf "$dir" || echo "warning: could not remove all of $dir" >&2
  else
    # Not made by `start` (or `start` failed before it wrote anything): remove only if empty.
    rmdir "$dir" 2>/dev/null || echo "warning: $dir is not a pg-cluster.sh directory, left in place" >&2
  fi
}

# The remaining commands act on an existing cluster made by `start`.
load_cluster() {
  [ -f "$dir/data/PG_VERSION" ] || fail "no cluster in $dir (run: $0 start $dir)"
  load_owner
  bindir=$(cluster_bindir)
}

cmd_restart() {
  load_cluster
  # Fast: the point is to drop every connection, the way a real restart under load does.
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -m fast -w -t 60 restart >/dev/null ||
    fail "postgres did not restart in $dir"
}

cmd_stop_only() {
  local mode=${1:-fast}
  load_cluster
  is_running || return 0
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null ||
    fail "postgres did not stop in $dir"
}

cmd_start_only() {
  load_cluster
  is_running && return 0
  pg_start || fail "postgres did not start again in $dir"
}

[ $# -ge 2 ] || usage
cmd=$1
dir=${2%/}
[ -n "$dir" ] || fail "DIR must not be /"
# Absolute: the paths go into the server's settings and env, and commands run from inside DIR.
if [ -d "$dir" ]; then
  dir=$(cd "$dir" && pwd -P)
fi
shift 2
case "$cmd" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_restart ;;
  stop-only) cmd_stop_only "$@" ;;
  start-only) cmd_start_only ;;
  *) usage ;;
esac
