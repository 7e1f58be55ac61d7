#!/usr/bin/env python3
"""Event-stream clients for bench/sse.sh: opens STREAMS streams of /notes/events on
127.0.0.1:PORT with COOKIE, as many browsers' EventSource would (each reconnects after the
stream's retry hint, with Last-Event-ID), writes "open" to READY_FILE once every stream
was answered 200, counts the events received until SIGTERM, then prints one JSON line:
streams, events, reconnects, failures, seconds from the first event to the last.

Standard library only; plain HTTP/1.1 on loopback.
"""

import asyncio
import json
import signal
import sys
import time


class Totals:
    def __init__(self):
        self.open = 0
        self.events = 0
        self.reconnects = 0
        self.failures = []
        self.first = None
        self.last = None


async def stream(port, cookie, totals, opened, stop):
    last_id = None
    retry = 1.0
    first = True
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as e:
            totals.failures.append(f"connect: {e}")
            await asyncio.sleep(retry)
            continue
        head = (
            f"GET /notes/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Accept: text/event-stream\r\nCookie: {cookie}\r\n"
        )
        if last_id is not None:
            head += f"Last-Event-ID: {last_id}\r\n"
        writer.write((head + "\r\n").encode())
        try:
            status = await reader.readline()
            if not status.startswith(b"HTTP/1.1 200"):
                totals.failures.append(status.decode(errors="replace").strip())
                writer.close()
                await asyncio.sleep(retry)
                continue
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            if first:
                first = False
                totals.open += 1
                if totals.open == opened[0]:
                    opened[1].set()
            else:
                totals.reconnects += 1
            # The body is chunked; SSE lines never span the chunk-size lines we skip, as
            # the server sends whole blocks per chunk.
            while True:
                line = await reader.readline()
                if not line:
                    break
                if line.startswith(b"event: "):
                    totals.events += 1
                    now = time.monotonic()
                    totals.first = totals.first or now
                    totals.last = now
                elif line.startswith(b"id: "):
                    last_id = line[4:].strip().decode()
                elif line.startswith(b"retry: "):
                    retry = int(line[7:]) / 1000
                elif line == b"0\r\n":
                    break
        except (OSError, asyncio.IncompleteReadError) as e:
            if not stop.is_set():
                totals.failures.append(f"read: {e}")
        writer.close()
        if not stop.is_set():
            await asyncio.sleep(retry)


async def main():
    port, cookie, streams, ready_file = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    totals = Totals()
    stop = asyncio.Event()
    all_open = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    tasks = [
        asyncio.create_task(stream(port, cookie, totals, (streams, all_open), stop))
        for _ in range(streams)
    ]
    await asyncio.wait(
        [asyncio.create_task(all_open.wait()), asyncio.create_task(stop.wait())],
        return_when=asyncio.FIRST_COMPLETED,
    )
    with open(ready_file, "w") as f:
        f.write("open\n" if all_open.is_set() else "stopped\n")
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    span = (totals.last - totals.first) if totals.first else 0.0
    print(
        json.dumps(
            {
                "streams": totals.open,
                "events": totals.events,
                "reconnects": totals.reconnects,
                "failures": len(totals.failures),
                "first_failures": totals.failures[:5],
                "span_seconds": round(span, 3),
            }
        )
    )


asyncio.run(main())
