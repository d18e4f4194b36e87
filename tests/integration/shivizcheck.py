#!/usr/bin/env python3
"""Check a `clsnap diagram --format shiviz` log against its trace.

  shivizcheck.py FILE.log TRACE

The log must be read entirely by ShiViz's default parser,
`(?<event>.*)\\n(?<host>\\S*) (?<clock>{.*})` (every non-empty line is a
description or a host line of some match, each a whole line); each clock a
JSON object of host -> integer holding the host's own entry. A host's
events are matched, in order, to its server's events in the trace: the same
number per server, the host's own entry 1, 2, 3, ...; each clock is exactly
the standard vector clock (the entrywise maximum of the host's previous
clock and, for a recv or marker_recv, its send's clock, plus one on the own
entry), so every receive's clock exceeds its send's. Descriptions of
record, marker_send and done events name "snapshot" and its id.
Prints a summary line and exits 0, or one line per failure and exits 1;
2 on unreadable input. Imports nothing of clsnap.
"""
import bisect
import json
import re
import sys
from collections import defaultdict

SHIVIZ = re.compile(r"(?P<event>.*)\n(?P<host>\S*) (?P<clock>\{.*\})")


def read_trace(path):
    by_server = defaultdict(list)
    try:
        with open(path, encoding="utf-8") as f:
            for no, line in enumerate(f, 1):
                e = json.loads(line)
                if e["ev"] == "dropped":
                    raise ValueError(f"line {no}: a trace with a gap")
                by_server[e["server"]].append(e)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"shivizcheck: {path}: unreadable trace: {e}", file=sys.stderr)
        sys.exit(2)
    return by_server


def main():
    if len(sys.argv) != 3 or sys.argv[1].startswith("-"):
        print("usage: shivizcheck.py FILE.log TRACE", file=sys.stderr)
        return 2
    log, trace = sys.argv[1], sys.argv[2]
    by_server = read_trace(trace)
    try:
        with open(log, encoding="utf-8", newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        print(f"shivizcheck: {log}: {e}", file=sys.stderr)
        return 2
    fails = []

    def fail(line, what):
        fails.append(f"shivizcheck: {log}:{line}: " if line
                     else f"shivizcheck: {log}: ")
        fails[-1] += what

    if "\r" in text:
        fail(0, "has \\r (ShiViz's . stops there)")
    lines = text.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    covered = {}
    hosts = defaultdict(list)       # host -> [(line, description, clock)]
    for m in SHIVIZ.finditer(text):
        ev = bisect.bisect_right(starts, m.start("event")) - 1
        host = ev + 1
        if m.start("event") != starts[ev] or \
                m.end("clock") != starts[host] + len(lines[host]):
            fail(ev + 1, "a match that is not two whole lines")
            continue
        for k in (ev, host):
            covered[k] = m
        if not m["event"].strip():
            fail(ev + 1, "empty description")
        try:
            clock = json.loads(m["clock"])
            if not isinstance(clock, dict) or not all(
                    type(v) is int and v >= 0 for v in clock.values()):
                raise ValueError("not an object of integers")
            if clock.get(m["host"], 0) < 1:
                raise ValueError(f"no entry for its host {m['host']}")
        except ValueError as e:
            fail(host + 1, f"bad clock {m['clock']}: {e}")
            continue
        clock = {h: v for h, v in clock.items() if v}
        hosts[m["host"]].append((ev + 1, m["event"], clock))
    for k, line in enumerate(lines):
        if line.strip() and k not in covered:
            fail(k + 1, f"not read by ShiViz's parser: {line[:60]!r}")
    if set(hosts) != set(by_server):
        fail(0, f"hosts {sorted(hosts)}, the trace has servers "
             f"{sorted(by_server)}")

    entry = {}                      # (server, i) -> (line, clock)
    for s, evs in sorted(by_server.items()):
        got = hosts.get(s, [])
        if len(got) != len(evs):
            fail(0, f"{len(got)} events of {s}, the trace has {len(evs)}")
            continue
        for k, (e, (line, desc, clock)) in enumerate(zip(evs, got), 1):
            entry[(s, e["i"])] = (line, clock)
            if clock[s] != k:
                fail(line + 1, f"{s}'s own entry {clock[s]}, expected {k}")
            if e["ev"] in ("record", "marker_send", "done") and not (
                    re.search(r"\bsnapshot\b", desc)
                    and re.search(rf"(?<!\d){e['snap']}(?!\d)", desc)):
                fail(line, f"{e['ev']} of snapshot {e['snap']} described "
                     f"as {desc!r}")

    send = {}                       # (src, dst, seq or snap) -> (server, i)
    for s, evs in by_server.items():
        for e in evs:
            if e["ev"] == "send":
                send[(s, e["peer"], "t", e["seq"])] = (s, e["i"])
            elif e["ev"] == "marker_send":
                send[(s, e["peer"], "m", e["snap"])] = (s, e["i"])
    nmsg = 0
    for s, evs in sorted(by_server.items()):
        prev = {}
        for e in evs:
            if (s, e["i"]) not in entry:
                break
            line, clock = entry[(s, e["i"])]
            want = dict(prev)
            src = None
            if e["ev"] in ("recv", "marker_recv"):
                kind, key = ("t", e["seq"]) if e["ev"] == "recv" \
                    else ("m", e["snap"])
                src = entry.get(send.get((e["peer"], s, kind, key)))
                if src is None:
                    fail(line, f"{e['ev']} from {e['peer']} with no send")
                else:
                    nmsg += 1
                    sl, sc = src
                    if any(clock.get(h, 0) < v for h, v in sc.items()) or \
                            clock == sc:
                        fail(line + 1, f"clock {clock} not after its send's "
                             f"(line {sl + 1}) {sc}")
                    for h, v in sc.items():
                        want[h] = max(want.get(h, 0), v)
            want[s] = prev.get(s, 0) + 1
            if clock != want:
                fail(line + 1, f"clock {clock}, the vector clock is {want}")
            prev = clock
    if fails:
        print("\n".join(fails[:30]))
        if len(fails) > 30:
            print(f"shivizcheck: ... and {len(fails) - 30} more")
        return 1
    print(f"shivizcheck: {log}: {len(hosts)} hosts, {len(entry)} events, "
          f"{nmsg} messages received: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
