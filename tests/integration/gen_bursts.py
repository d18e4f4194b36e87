#!/usr/bin/env python3
"""Scenarios with hundreds of snapshots in progress at once.

  gen_bursts.py DIR

Writes into DIR:
  chain.top/.events   50 servers in a one-way chain S00 -> ... -> S49; S00
                      (no inbound channel) starts 1000 snapshots in one
                      step, with sends down the chain among them
  ring.top/.events    a 50-server ring; S00 starts 1000 snapshots in one
                      step (each stays in progress there until its marker
                      comes round), with sends all round the ring
  dense.top/.events   a 10-server mesh; four servers start 250 snapshots
                      each in the same step, amid sends
  cap.top, cap1024.events, cap1025.events
                      a 3-server ring; S0 starts 1024 snapshots in one
                      step (the --max-active default: all in progress at
                      S0 at once), or 1025
"""
import os
import sys


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def top(ids, links, tokens):
    return ("%d\n" % len(ids) +
            "".join("%s %d\n" % (i, tokens.get(i, 0)) for i in ids) +
            "".join("%s %s\n" % l for l in links))


def main(out):
    ids = ["S%02d" % i for i in range(50)]
    chain = [(ids[i], ids[i + 1]) for i in range(49)]
    ring = chain + [(ids[-1], ids[0])]
    write(os.path.join(out, "chain.top"), top(ids, chain, {"S00": 1000}))
    ev = []
    for k in range(1000):
        if k % 10 == 0:
            ev.append("send S00 S01 1")
        ev.append("snapshot S00")
    ev.append("tick")
    write(os.path.join(out, "chain.events"), "\n".join(ev) + "\n")

    write(os.path.join(out, "ring.top"), top(ids, ring, {i: 20 for i in ids}))
    ev = []
    for k in range(1000):
        if k % 10 == 0:
            ev.append("send %s %s 1" % (ids[k % 50], ids[(k + 1) % 50]))
        ev.append("snapshot S00")
    ev.append("tick")
    write(os.path.join(out, "ring.events"), "\n".join(ev) + "\n")

    m = ["M%d" % i for i in range(10)]
    mesh = [(a, b) for a in m for b in m if a != b]
    write(os.path.join(out, "dense.top"), top(m, mesh, {i: 100 for i in m}))
    ev = []
    for k in range(250):
        for j, s in enumerate(("M0", "M3", "M6", "M9")):
            if k % 25 == 0:
                ev.append("send %s %s 2" % (s, m[(j * 3 + k) % 10]
                                            if m[(j * 3 + k) % 10] != s
                                            else "M1"))
            ev.append("snapshot %s" % s)
    ev.append("tick")
    write(os.path.join(out, "dense.events"), "\n".join(ev) + "\n")

    three = ["S0", "S1", "S2"]
    write(os.path.join(out, "cap.top"),
          top(three, [("S0", "S1"), ("S1", "S2"), ("S2", "S0")],
              {"S0": 10}))
    for n in (1024, 1025):
        write(os.path.join(out, "cap%d.events" % n),
              "send S0 S1 1\n" + "snapshot S0\n" * n + "tick\n")


if __name__ == "__main__":
    main(sys.argv[1])
