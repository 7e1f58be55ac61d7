#!/usr/bin/env python3
"""The code a request runs, counted in 64-byte lines, from a callgrind profile made with
`--dump-instr=yes` (bench/instructions.sh with FOOTPRINT=1 and KEEP=dir).

A line counts when an instruction in it ran at least once per four requests: the request
path's code, not start-up or once-a-second work. When that code is larger than the
first-level instruction cache (32 KiB, 512 lines, on this machine), each request fetches
most of it again from the second level: in bench/README.md's step 45, the simulated I1
misses per request of both servers were within 1–5% of their footprint in lines.

    footprint.py FILE REQUESTS
        the number of lines (instructions.sh prints it per workload)
    footprint.py A.out A_REQUESTS B.out B_REQUESTS [N]
        both totals, then the N functions (callgrind's names: after inlining) whose
        lines differ most between A and B
"""

import re
import sys
from collections import defaultdict

LINE = 64


def lines_by_function(path, requests):
    """{function: set of code lines} for the instructions run >= requests / 4 times."""
    names = {}
    function = None
    address = 0
    calls = None
    runs = defaultdict(int)
    owner = {}
    name_re = re.compile(r"c?fn=\((\d+)\)(?: (.*))?")
    # A cost line is its positions (`positions: instr line`), then the events, `Ir` first
    # (trailing zeros left out).
    ir = 2
    with open(path) as profile:
        for row in profile:
            if row.startswith("positions:"):
                ir = len(row.split()) - 1
                continue
            if row.startswith("fn=") or row.startswith("cfn="):
                m = name_re.match(row.rstrip("\n"))
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                if row.startswith("fn="):
                    function = names.get(m.group(1), "?" + m.group(1))
                continue
            if row.startswith("calls="):
                # The next position line is the call instruction; its cost is the callee's.
                calls = int(row.split()[0][len("calls="):])
                continue
            if function is None or row[0] not in "0123456789+-*":
                continue
            fields = row.split()
            position = fields[0]
            if position.startswith("0x"):
                address = int(position, 16)
            elif position[0] in "+-":
                address += int(position)
            count = calls if calls is not None else int(fields[ir]) if len(fields) > ir else 0
            calls = None
            runs[address] += count
            owner[address] = function
    by_function = defaultdict(set)
    for address, count in runs.items():
        if count * 4 >= requests:
            by_function[owner[address]].add(address // LINE)
    return by_function


def total(by_function):
    return len(set().union(*by_function.values())) if by_function else 0


def main(args):
    if len(args) == 2:
        print(total(lines_by_function(args[0], float(args[1]))))
        return
    if len(args) not in (4, 5):
        sys.exit(__doc__)
    a = lines_by_function(args[0], float(args[1]))
    b = lines_by_function(args[2], float(args[3]))
    top = int(args[4]) if len(args) == 5 else 40
    ta, tb = total(a), total(b)
    print(f"lines per request: {ta} ({ta * LINE / 1024:.1f} KiB) against {tb} "
          f"({tb * LINE / 1024:.1f} KiB)")
    names = sorted(set(a) | set(b), key=lambda n: -abs(len(b.get(n, ())) - len(a.get(n, ()))))
    for name in names[:top]:
        na, nb = len(a.get(name, ())), len(b.get(name, ()))
        print(f"{na:5d} {nb:5d} {nb - na:+5d}  {name[:140]}")


if __name__ == "__main__":
    main(sys.argv[1:])
