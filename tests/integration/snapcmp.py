#!/usr/bin/env python3
"""Compare global snapshots the way the reference test suite does, written
independently of clsnap's own C comparison so the tests do not trust the
code they test.

  snapcmp.py TOTAL EXPECTED.snap ACTUAL.snap [EXPECTED.snap ACTUAL.snap ...]

Equal when the ids are equal, every server's token count is equal, the number
of recorded messages is equal and, for every destination, the messages to it
appear in the same order. Also checks that tokens on servers plus tokens in
messages equal TOTAL. Exit 0 if every pair is equal, 1 with a reason per
differing pair.
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


def compare(expected, actual, total):
    exp, act = load(expected), load(actual)
    if exp[0] != act[0]:
        return f"snapshot id {exp[0]} vs {act[0]}"
    if exp[1] != act[1]:
        diff = sorted(set(exp[1].items()) ^ set(act[1].items()))
        return f"server tokens differ: {diff}"
    if len(exp[2]) != len(act[2]):
        return f"{len(exp[2])} recorded messages vs {len(act[2])}"
    if by_dest(exp[2]) != by_dest(act[2]):
        return f"messages per destination differ: {by_dest(exp[2])} vs {by_dest(act[2])}"
    got = sum(act[1].values()) + sum(n for _, _, n in act[2])
    if got != total:
        return f"tokens add up to {got}, expected {total}"
    return None


def main():
    total, files = int(sys.argv[1]), sys.argv[2:]
    if not files or len(files) % 2:
        sys.exit(__doc__)
    bad = 0
    for expected, actual in zip(files[::2], files[1::2]):
        why = compare(expected, actual, total)
        if why:
            print(f"{actual}: differs from {expected}: {why}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
