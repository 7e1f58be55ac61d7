#!/usr/bin/env python3
"""Memory per idle keep-alive connection (bench/README.md, step 22).

    python3 bench/idle_conns.py BINARY [COUNT] [-- SERVER FLAGS...]

Starts BINARY (bench-bare or bench-app) on a fresh database, opens 50 connections, then
COUNT more (2000), each sending one request and reading its answer, and prints the
server's anonymous memory before and after the COUNT, per connection. burrow caps
connections per client address (512 by default): pass `-- --max-connections-per-ip 5000`.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time


def main():
    args = sys.argv[1:]
    flags = args[args.index("--") + 1 :] if "--" in args else []
    args = args[: args.index("--")] if "--" in args else args
    binary, count = args[0], int(args[1]) if len(args) > 1 else 2000
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        command = [binary, "--host", "127.0.0.1", "--port", str(port)]
        command += ["--database-dsn", os.path.join(tmp, "app.db"), *flags]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            measure(server.pid, port, count, os.path.basename(binary))
        finally:
            server.kill()
            server.wait()


def anonymous_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise RuntimeError("no RssAnon in /proc/PID/status")


def measure(pid, port, count, name):
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        sys.exit(f"{name} did not start listening on port {port}")
    conns = []

    def open_conns(n):
        opened = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
        for conn in opened:
            conn.sendall(b"GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n")
        for conn in opened:
            if not conn.recv(4096).startswith(b"HTTP/1.1 200"):
                sys.exit(f"{name}: a connection was not answered 200")
        conns.extend(opened)

    open_conns(50)
    time.sleep(0.5)
    before = anonymous_kib(pid)
    open_conns(count)
    time.sleep(0.5)
    after = anonymous_kib(pid)
    print(
        f"{name}: {count} idle connections: anonymous memory {before / 1024:.1f} -> "
        f"{after / 1024:.1f} MiB, {(after - before) / count:.1f} KiB per connection"
    )
    for conn in conns:
        conn.close()


if __name__ == "__main__":
    main()
