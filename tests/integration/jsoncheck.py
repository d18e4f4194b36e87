#!/usr/bin/env python3
"""Re-check clsnap's snapshots from its JSON, without clsnap's verdict.

  jsoncheck.py --topology TOP [--events EVENTS] [--expect N]
               [--require-in-flight] [JSON ...]

Reads the output of `clsnap run ... --json` (an object with "snapshots") or
of `clsnap --cluster F snapshot|collect ... --json` (one snapshot object),
from the files named or stdin; several JSON values may follow each other.
Only the raw facts the servers reported are used: "servers" (one
{"id", "tokens"} object per server: its tokens when it recorded its state)
and "channels" (per channel the count of
token messages the source had sent when it recorded, the count the
destination had received when it recorded, and the runs [seq, count, n] the
destination recorded as the channel's state: count messages, sequence
numbers seq .. seq + count - 1, n tokens each). The verdict fields ("ok",
"problems", "tokens", ...) are ignored. For every snapshot:

  - the servers and channels are exactly those of the topology;
  - exact channel state: on every channel the recorded messages are exactly
    received + 1 .. sent, in order, with no gap, repeat or extra;
  - with --events (a free-running or lockstep run of that script), every
    recorded message carries the amount of the `send` event that made it
    (the k-th `send S D` is message k on S->D);
  - conservation: tokens on servers + tokens in recorded messages = the sum
    of the topology's initial tokens.

Prints one line per failure ("snapshot ID: channel S->D: what differs") and
exits 1 on any; also when no snapshot was checked, when --expect N is given
and the count differs, or when --require-in-flight is given and no snapshot
recorded any message (the exact-channel check would then have been vacuous).
Exits 2 on unreadable input. Standalone: imports nothing of clsnap.
"""
import argparse
import json
import sys


def content_lines(path):
    """The lines of a .top or .events file that are not blank or comments."""
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                yield line.split()


def read_topology(path):
    """({server: initial tokens}, {(src, dst)}) of a .top file."""
    lines = list(content_lines(path))
    n = int(lines[0][0])
    servers = {w[0]: int(w[1]) for w in lines[1:1 + n]}
    links = {(w[0], w[1]) for w in lines[1 + n:]}
    return servers, links


def read_sends(path):
    """{(src, dst): [amount of message 1, of message 2, ...]}."""
    sends = {}
    for w in content_lines(path):
        if w[0] == "send":
            sends.setdefault((w[1], w[2]), []).append(int(w[3]))
    return sends


def json_values(text):
    """Every JSON value in text, one after another."""
    dec, i = json.JSONDecoder(), 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return
        value, i = dec.raw_decode(text, i)
        yield value


def is_count(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def seqs(a, b):
    return f"seq {a}" if a == b else f"seqs {a}..{b}"


def expected(received, sent):
    return seqs(received + 1, sent) if sent > received else "nothing"


def show_runs(runs):
    """The runs as [seq, count, n] lists, at most 8 of them."""
    if not runs:
        return "nothing"
    text = " ".join(json.dumps(r) for r in runs[:8])
    return text + (f" and {len(runs) - 8} more runs" if len(runs) > 8 else "")


def well_formed(r):
    """A run is [seq, count, n], each a whole number >= 1."""
    return (isinstance(r, list) and len(r) == 3 and
            all(is_count(x) and x >= 1 for x in r))


def check_runs(runs, received, sent, amounts):
    """Problems of one channel's (well-formed) recorded runs against
    (received, sent] and, when amounts is a list, the amounts sent."""
    problems, nxt = [], received + 1
    for seq, count, n in runs:
        last = seq + count - 1
        if seq > nxt and nxt <= sent:
            problems.append(f"{seqs(nxt, min(seq - 1, sent))} missing (not recorded)")
        if seq < nxt:
            problems.append(f"{seqs(seq, min(last, nxt - 1))} recorded again, "
                            f"out of order, or already received before the "
                            f"snapshot (received {received})")
        if last > sent:
            problems.append(f"{seqs(max(seq, sent + 1), last)} recorded but "
                            f"not sent before the source recorded (sent {sent})")
        if amounts is not None:
            for s in range(seq, min(last, len(amounts)) + 1):
                if amounts[s - 1] != n:
                    problems.append(f"seq {s} recorded as {n} tokens, "
                                    f"sent as {amounts[s - 1]}")
                    break
            if last > len(amounts):
                problems.append(f"{seqs(max(seq, len(amounts) + 1), last)} "
                                f"recorded but the events send only "
                                f"{len(amounts)} messages")
        nxt = max(nxt, last + 1)
    if nxt <= sent:
        problems.append(f"{seqs(nxt, sent)} missing (not recorded)")
    return problems


class Checker:
    def __init__(self, servers, links, sends):
        self.servers, self.links, self.sends = servers, links, sends
        self.total = sum(servers.values())
        self.failures = self.snapshots = self.channels = self.recorded = 0

    def fail(self, sid, what):
        """One failure line, about snapshot sid or (None) the whole input."""
        self.failures += 1
        print(f"snapshot {sid}: {what}" if sid is not None else f"jsoncheck: {what}")

    def balances(self, sid, servers):
        """{id: tokens} of a snapshot's "servers" list, or None (failed)."""
        if not isinstance(servers, list) or not all(
                isinstance(s, dict) and isinstance(s.get("id"), str)
                for s in servers):
            self.fail(sid, "\"servers\" is not a list of {\"id\", \"tokens\"} "
                           "objects")
            return None
        out = {}
        for s in servers:
            if s["id"] in out:
                self.fail(sid, f"server {s['id']}: listed twice")
            out[s["id"]] = s.get("tokens")
        return out

    def snapshot(self, snap):
        sid = snap.get("id", "?")
        self.snapshots += 1
        balances, channels = snap.get("servers"), snap.get("channels")
        if not isinstance(channels, list):
            self.fail(sid, "no \"channels\" list")
            return
        balances = self.balances(sid, balances)
        if balances is None:
            return
        for s in sorted(set(self.servers) - set(balances)):
            self.fail(sid, f"server {s}: no local state")
        for s in sorted(set(balances) - set(self.servers)):
            self.fail(sid, f"server {s}: not in the topology")
        held = 0
        for s, n in sorted(balances.items()):
            if not is_count(n):
                self.fail(sid, f"server {s}: token balance {json.dumps(n)}")
            else:
                held += n
        in_channels, seen = 0, set()
        for c in channels:
            key = (c.get("src"), c.get("dst"))
            name = f"channel {key[0]}->{key[1]}"
            if key in seen:
                self.fail(sid, f"{name}: listed twice")
                continue
            seen.add(key)
            if key not in self.links:
                self.fail(sid, f"{name}: not in the topology")
            sent, received, runs = c.get("sent"), c.get("received"), c.get("recorded")
            if not isinstance(runs, list) or not all(well_formed(r) for r in runs):
                self.fail(sid, f"{name}: malformed recorded runs {json.dumps(runs)}")
                continue
            in_channels += sum(count * n for _, count, n in runs)
            self.recorded += sum(count for _, count, _ in runs)
            if not is_count(sent):
                self.fail(sid, f"{name}: source's sent count is {json.dumps(sent)}")
            if not is_count(received):
                self.fail(sid, f"{name}: destination's received count is "
                               f"{json.dumps(received)}")
            if not (is_count(sent) and is_count(received)):
                continue
            self.channels += 1
            if received > sent:
                self.fail(sid, f"{name}: destination received {received} "
                               f"messages, source sent only {sent}")
            amounts = self.sends.get(key, []) if self.sends is not None else None
            for p in check_runs(runs, received, sent, amounts):
                self.fail(sid, f"{name}: {p}; recorded {show_runs(runs)}, "
                               f"expected {expected(received, sent)}")
        for a, b in sorted(self.links - seen):
            self.fail(sid, f"channel {a}->{b}: missing from the snapshot")
        if held + in_channels != self.total:
            self.fail(sid, f"tokens not conserved: {held} on servers + "
                           f"{in_channels} in recorded messages = "
                           f"{held + in_channels}, topology has {self.total}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--topology", required=True)
    ap.add_argument("--events")
    ap.add_argument("--expect", type=int)
    ap.add_argument("--require-in-flight", action="store_true")
    ap.add_argument("json", nargs="*")
    a = ap.parse_args()
    try:
        servers, links = read_topology(a.topology)
        sends = read_sends(a.events) if a.events else None
        texts = [sys.stdin.read()] if not a.json else \
            [open(p).read() if p != "-" else sys.stdin.read() for p in a.json]
        values = [v for t in texts for v in json_values(t)]
    except (OSError, ValueError, IndexError) as e:
        print(f"jsoncheck: cannot read input: {e}", file=sys.stderr)
        return 2
    ck = Checker(servers, links, sends)
    for v in values:
        for snap in v["snapshots"] if isinstance(v, dict) and "snapshots" in v else [v]:
            if isinstance(snap, dict):
                ck.snapshot(snap)
            else:
                ck.fail(None, f"not a snapshot object: {json.dumps(snap)[:200]}")
    if ck.snapshots == 0:
        ck.fail(None, "no snapshots in the input: nothing was checked")
    if a.expect is not None and ck.snapshots != a.expect:
        ck.fail(None, f"{ck.snapshots} snapshots checked, expected {a.expect}")
    if a.require_in_flight and ck.recorded == 0:
        ck.fail(None, "no snapshot recorded a message in flight: the exact "
                     "channel check had nothing to check")
    if ck.failures:
        return 1
    print(f"jsoncheck: {ck.snapshots} snapshots, {ck.channels} channel states, "
          f"{ck.recorded} recorded messages: conserved and exact")
    return 0


if __name__ == "__main__":
    sys.exit(main())
