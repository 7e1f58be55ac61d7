#!/usr/bin/env bash
# Normal pages under attack: the notes `server` binary serving GET /notes with wrk while
# a hostile client holds hundreds of silent connections and runs expensive searches.
# See bench/README.md ("Under attack").
#
# Three rounds of DURATION each, same server:
#   quiet    wrk alone
#   attack   wrk + SILENT silent connections (reopened as the server closes them) + 8
#            loops of the attack's search (hundreds of one-letter prefixes, refused
#            before it reaches SQLite)
#   costly   wrk + the silent connections + 8 loops of the costliest search the limits
#            allow (12 common words; interrupted at --request-timeout)
# For each: requests/s, latency p50/p99 of GET /notes, non-2xx answers, socket errors,
# and the server's peak RSS (all of it, and the anonymous part, i.e. without the pages
# of the database file SQLite maps), sampled every 100 ms.
#
# Environment:
#   DURATION     per round (default 10s)
#   CONNECTIONS  wrk connections (default 8)
#   SILENT       silent connections (default 500)
#   NOTES        notes generated before the run (default 50000)
#   REQUEST_TIMEOUT  the server's --request-timeout (default 2s)
#   SERVER_BIN   use this server binary instead of building the static release binary
#
# Traffic goes to 127.0.0.1 only.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-8}
SILENT=${SILENT:-500}
NOTES=${NOTES:-50000}
REQUEST_TIMEOUT=${REQUEST_TIMEOUT:-2s}

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_tools
command -v python3 >/dev/null 2>&1 || die "python3 is required (the attacking client)"
server_binary
make_tmp attack

ATTACK_PID=
SAMPLER_PID=
cleanup_extra() {
    for pid in $ATTACK_PID $SAMPLER_PID; do kill "$pid" 2>/dev/null || true; done
}

log "generating $NOTES notes in $DB"
generate_notes "$NOTES"
start_server --log-level warn --request-timeout "$REQUEST_TIMEOUT"
sign_in # notes are their author's: wrk and the attacker send the bench account's cookies
check_status 200 GET /notes

# The attacking client, from 127.0.0.2: SILENT connections that never send a byte
# (reopened when the server closes them), and 8 threads each sending one search after
# another.
cat >"$TMP/attack.py" <<'EOF'
import http.client, signal, socket, sys, threading, time, urllib.parse

# Background jobs of a script ignore SIGINT: the script stops this one with SIGTERM.
def stop_now(*_):
    raise KeyboardInterrupt
signal.signal(signal.SIGTERM, stop_now)

port, silent, kind, cookie = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
letters = "abcdefghijklmnopqrstuvwxyz"
if kind == "attack":
    terms = [a + "*" for a in letters] + [a + b + "*" for a in letters for b in letters][:300]
    query = " OR ".join(terms)
else:
    query = " OR ".join("alpha burrow cedar delta ember fjord granite harbor indigo juniper kestrel lantern".split())
path = "/notes?q=" + urllib.parse.quote(query)
# The attacker is another client address than wrk (127.0.0.1): the server counts
# connections per address, and a real attacker is not the users it slows down.
SOURCE = ("127.0.0.2", 0)
stop = False
answers = {}

def search():
    while not stop:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=SOURCE)
            conn.request("GET", path, headers={"Cookie": cookie})
            status = conn.getresponse().status
            conn.close()
        except Exception:
            status = "error"
        answers[status] = answers.get(status, 0) + 1

def hold():
    socks = []
    while not stop:
        alive = []
        for s in socks:
            try:
                s.setblocking(False)
                if s.recv(1) == b"":
                    s.close()
                    continue
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                continue
            alive.append(s)
        socks = alive
        while len(socks) < silent:
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), 5, SOURCE))
            except OSError:
                break
        time.sleep(0.2)

threads = [threading.Thread(target=search, daemon=True) for _ in range(8)]
threads.append(threading.Thread(target=hold, daemon=True))
for t in threads:
    t.start()
try:
    while True:
        time.sleep(0.5)
except KeyboardInterrupt:
    pass
stop = True
print("search answers:", dict(sorted(answers.items(), key=str)), flush=True)
EOF

# Peak RSS and RssAnon (kB) of the server while a round runs.
sample_rss() { # out-file
    local out=$1 peak=0 peak_anon=0 rss anon
    while running "$SERVER_PID"; do
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
        anon=$(awk '/^RssAnon:/ { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
        [ "${rss:-0}" -gt "$peak" ] && peak=$rss
        [ "${anon:-0}" -gt "$peak_anon" ] && peak_anon=$anon
        echo "$peak $peak_anon" >"$out"
        sleep 0.1
    done
}

ROWS=()
round() { # name attack-kind|none
    local name=$1 kind=$2 out=$TMP/wrk-$1.txt
    if [ "$kind" != none ]; then
        python3 "$TMP/attack.py" "$PORT" "$SILENT" "$kind" "$COOKIE" >"$TMP/attack-$name.txt" 2>&1 &
        ATTACK_PID=$!
        sleep 2 # the silent connections are open, the searches running
    fi
    sample_rss "$TMP/rss-$name.txt" &
    SAMPLER_PID=$!
    log "round $name: wrk -c $CONNECTIONS -d $DURATION GET /notes"
    wrk --threads 2 --connections "$CONNECTIONS" --duration "$DURATION" --timeout 10s --latency \
        --header "Cookie: $COOKIE" "$BASE/notes" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=
    if [ -n "$ATTACK_PID" ]; then
        kill -TERM "$ATTACK_PID" 2>/dev/null || true
        wait "$ATTACK_PID" 2>/dev/null || true
        ATTACK_PID=
        log "$(grep 'search answers' "$TMP/attack-$name.txt" || echo 'search answers: ?')"
        sleep 3 # the server closes what the attacker left open
    fi
    wrk_figures "$out"
    local peak peak_anon
    read -r peak peak_anon <"$TMP/rss-$name.txt"
    ROWS+=("$(printf '%-8s %9s %10s %9s %9s %8s %8s %9s %10s' "$name" "$WRK_TOTAL" "$WRK_RPS" \
        "$WRK_P50" "$WRK_P99" "${WRK_NON2XX:-0}" "${WRK_SOCKERR:-0}" "$((peak / 1024)) MB" \
        "$((peak_anon / 1024)) MB")")
}

round quiet none
round attack attack
round costly costly
check_status 200 GET /notes
rss_after=$(awk '/^RssAnon:/ { print $2 }' "/proc/$SERVER_PID/status")
stop_server "$SERVER_PID"

echo
echo "GET /notes with wrk -c $CONNECTIONS, $DURATION per round, $NOTES notes, --request-timeout $REQUEST_TIMEOUT; attack: $SILENT silent connections + 8 search loops"
printf '%-8s %9s %10s %9s %9s %8s %8s %9s %10s\n' round requests req/s p50 p99 non-2xx sockerr 'peak RSS' 'peak anon'
printf '%s\n' "${ROWS[@]}"
echo "anonymous memory after the rounds: $((rss_after / 1024)) MB; server exit code: $SERVER_RC; WARN/ERROR lines: $(count_warnings)"
[ "$SERVER_RC" = 0 ] || die "the server exited with $SERVER_RC"
