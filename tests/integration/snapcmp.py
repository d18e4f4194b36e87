#!/usr/bin/env python3
"""Compare global snapshots the way the reference test suite does, written
independently of clsnap's own C comparison so the tests do not trust the
code they test.

  snapcmp.py EXPECTED.snap ACTUAL.snap [TOTAL]

Equal when the ids are equal, every server's token count is equal, the number
of recorded messages is equal and, for every destination, the messages to it
appear in the same order. With TOTAL, also checks tokens on servers plus
tokens in messages equal TOTAL. Exit 0 if equal, 1 with a reason if not.
"""
import re
import sys

MSG = re.compile(r"^(\S+)\s+(\S+)\s+token\((\d+)\)$")


def load(path):
    lines = [l.strip() for l in open(path) if l.strip() and not l.startswith("#")]
    snap_id = int(lines[0])
    servers, msgs = {}, []
    for line in lines[1:]:
        m = MSG.match(line)
        if m:
            msgs.append((m.group(1), m.group(2), int(m.group(3))))
        else:
            sid, tokens = line.split()
            servers[sid] = int(tokens)
    return snap_id, servers, msgs


def by_dest(msgs):
    out = {}
    for src, dst, n in msgs:
        out.setdefault(dst, []).append((src, n))
    return out


def main():
    exp, act = load(sys.argv[1]), load(sys.argv[2])
    why = None
    if exp[0] != act[0]:
        why = f"snapshot id {exp[0]} vs {act[0]}"
    elif exp[1] != act[1]:
        diff = sorted(set(exp[1].items()) ^ set(act[1].items()))
        why = f"server tokens differ: {diff}"
    elif len(exp[2]) != len(act[2]):
        why = f"{len(exp[2])} recorded messages vs {len(act[2])}"
    elif by_dest(exp[2]) != by_dest(act[2]):
        why = f"messages per destination differ: {by_dest(exp[2])} vs {by_dest(act[2])}"
    elif len(sys.argv) > 3:
        total = sum(act[1].values()) + sum(n for _, _, n in act[2])
        if total != int(sys.argv[3]):
            why = f"tokens add up to {total}, expected {sys.argv[3]}"
    if why:
        print(f"{sys.argv[2]}: differs from {sys.argv[1]}: {why}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
