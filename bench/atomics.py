#!/usr/bin/env python3
"""What the servers' atomic read-modify-writes cost, from compare.sh's `PERF` profiles
(bench/README.md, step 51).

An atomic add, exchange or compare-and-swap (x86's `lock`-prefixed instructions and `xchg`
with memory) on a cache line the core holds costs a few nanoseconds; on a line the other
core wrote last it waits for the line to move between the cores (108–173 ns one way on
this VM: step 50). A lock, a shared counter or a reference count that every request
writes on both cores pays that. Callgrind runs one thread at a time and cannot see it;
perf's timer samples can: a sample taken while an instruction waits is attributed to it or
to the next instruction, so the samples at these two addresses, per request, measure the
time requests spent in atomic instructions (the waits above and the atomics' own cost).

    atomics.py PERF_DIR BARE_BIN APP_BIN [TOP]
        for each PERF_DIR/KIND-WORKLOAD-ROUND.data (with its .requests file): samples
        per request, in the binary and at atomic instructions; then the medians per server
        and workload, and burrow's TOP (10) atomic instructions by samples

The binaries must be the ones profiled, unstripped (their symbols name the functions).
"""

import collections
import glob
import os
import re
import statistics
import subprocess
import sys

INSTRUCTION = re.compile(r"^\s*([0-9a-f]+):\s+(.*)$")
MMAP = re.compile(r"PERF_RECORD_MMAP2? .*\[0x([0-9a-f]+)\(0x[0-9a-f]+\) @ 0x([0-9a-f]+) .*\]: r-xp (\S+)$")


def atomic_sites(binary):
    """{address: (function, instruction)} of each atomic instruction and the one after it,
    both keyed to the atomic one's address."""
    disassembly = subprocess.run(
        ["objdump", "-d", "-C", "--no-show-raw-insn", binary], capture_output=True, text=True
    ).stdout
    sites = {}
    function = "?"
    pending = None
    for row in disassembly.splitlines():
        if row.endswith(">:"):
            function = row.split("<", 1)[1][:-2]
            continue
        match = INSTRUCTION.match(row)
        if not match:
            continue
        address, text = int(match.group(1), 16), match.group(2)
        if pending is not None:
            sites[address] = pending
            pending = None
        # `xchg %ax,%ax` is a no-op used as padding; with memory, xchg is atomic.
        if text.startswith("lock ") or (text.startswith("xchg") and "(" in text):
            sites[address] = (address, function, " ".join(text.split()))
            pending = sites[address]
    return sites


def text_delta(binary):
    """The executable segment's virtual address minus its file offset."""
    headers = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True).stdout
    for row in headers.splitlines():
        fields = row.split()
        if fields[:1] == ["LOAD"] and "E" in fields[6:-1]:
            return int(fields[2], 16) - int(fields[1], 16)
    sys.exit(f"{binary}: no executable LOAD segment")


def profile(data, binary, sites, delta):
    """(samples, samples in the binary, samples at atomics, Counter of atomic sites)."""
    script = subprocess.run(
        ["perf", "script", "-i", data, "--show-mmap-events", "-G", "-F", "ip,dso"],
        capture_output=True,
        text=True,
    ).stdout
    name = os.path.basename(binary)
    start = offset = None
    total = inside = atomic = 0
    by_site = collections.Counter()
    for row in script.splitlines():
        if "PERF_RECORD_MMAP" in row:
            match = MMAP.search(row)
            if match and os.path.basename(match.group(3)) == name and start is None:
                start, offset = int(match.group(1), 16), int(match.group(2), 16)
            continue
        fields = row.split()
        if len(fields) < 2 or not re.fullmatch(r"[0-9a-f]+", fields[0]):
            continue
        total += 1
        if start is None or name not in fields[-1]:
            continue
        inside += 1
        site = sites.get(int(fields[0], 16) - start + offset + delta)
        if site:
            atomic += 1
            by_site[site] += 1
    if start is None:
        sys.exit(f"{data}: no executable mapping of {name} (not this binary's profile?)")
    return total, inside, atomic, by_site


def main(args):
    if len(args) not in (3, 4):
        sys.exit(__doc__)
    directory, binaries = args[0], {"bare": args[1], "burrow": args[2]}
    top = int(args[3]) if len(args) == 4 else 10
    known = {kind: (atomic_sites(b), text_delta(b)) for kind, b in binaries.items()}
    rows = collections.defaultdict(list)
    burrow_sites = collections.Counter()
    burrow_samples = 0
    print(f"{'run':28s} {'requests':>9s} {'samples/req':>11s} {'in binary':>9s} "
          f"{'atomics/req':>11s} {'share':>6s}")
    for data in sorted(glob.glob(os.path.join(directory, "*.data"))):
        run = os.path.basename(data)[: -len(".data")]
        kind, workload = run.split("-")[:2]
        with open(data[: -len(".data")] + ".requests") as count:
            requests = int(count.read())
        sites, delta = known[kind]
        total, inside, atomic, by_site = profile(data, binaries[kind], sites, delta)
        per = (total / requests, inside / requests, atomic / requests, atomic / total)
        rows[(workload, kind)].append(per)
        if kind == "burrow":
            burrow_sites.update(by_site)
            burrow_samples += total
        print(f"{run:28s} {requests:9d} {per[0]:11.4f} {per[1]:9.4f} {per[2]:11.5f} "
              f"{100 * per[3]:5.2f}%")
    print("\nMedians (samples per request; share: of all the server's samples):")
    for (workload, kind), per in sorted(rows.items()):
        med = [statistics.median(p[i] for p in per) for i in range(4)]
        print(f"{workload:10s} {kind:7s} {med[0]:11.4f} {med[1]:9.4f} {med[2]:11.5f} "
              f"{100 * med[3]:5.2f}%")
    print(f"\nburrow's atomic instructions with the most samples (of {burrow_samples}):")
    for (address, function, text), samples in burrow_sites.most_common(top):
        print(f"{samples:7d} {100 * samples / burrow_samples:5.2f}%  {hex(address)}  "
              f"{text[:32]:32s} {function[:100]}")


if __name__ == "__main__":
    main(sys.argv[1:])
