#!/usr/bin/env python3
"""Check a clsnap trace (docs/TRACE.md) by an independent reading.

  tracecheck.py TRACE [--run-json RUN.json] [--lockstep-equal OTHER_TRACE]
                [--expect-dropped]

Format: every line a JSON object with exactly the keys of its `ev`, in the
documented order and with the right types; lines ordered by (server byte
order, i); each server's indices 0, 1, 2, ... with no gap (a `dropped` line,
the server's last, accounts for `count` indices; only allowed, and then
required, with --expect-dropped, which skips the checks below).

Semantics: FIFO channels (sends and receives numbered 1, 2, ... per channel,
each recv matching its send's n; markers in the same order on both ends and
with the same `seq`, the count of token messages before them); the
Chandy-Lamport event order (marker_recv, record, marker_sends in peer order,
done only after every inbound marker); tokens after each event follow from
the deltas; `recorded` of every recv equals what the rule says (received
after the receiver's record of S and before S's marker on that channel);
every cut of a snapshot recorded everywhere is consistent; and every
snapshot done everywhere conserves the total. The trace must start before
any send (channels numbered from 1), so that nothing was in flight then.

--run-json: the trace's recorded tokens and channel states (seq and n per
message) must equal `clsnap run --json`'s snapshots (trace snapshot k is
the run's snapshot with "id" k). --lockstep-equal: the two traces must be
the same bytes once `t_us` is removed from every line.

Each failure: `tracecheck: TRACE:LINE: what`, exit 1; success: a summary
line, exit 0; exit 2 on unreadable input. Imports nothing of clsnap.
"""
import argparse
import bisect
import json
import re
import sys
from collections import Counter, defaultdict

COMMON = ["server", "i", "ev"]
KEYS = {
    "send": COMMON + ["peer", "seq", "n", "tokens", "t_us"],
    "recv": COMMON + ["peer", "seq", "n", "recorded", "tokens", "t_us"],
    "marker_send": COMMON + ["peer", "seq", "snap", "tokens", "t_us"],
    "marker_recv": COMMON + ["peer", "seq", "snap", "tokens", "t_us"],
    "record": COMMON + ["snap", "tokens", "t_us"],
    "done": COMMON + ["snap", "tokens", "t_us"],
    "dropped": COMMON + ["count"],
}
# Smallest value of each integer key (seq: 1 for token messages, below).
MINIMUM = {"i": 0, "seq": 0, "n": 1, "snap": 0, "tokens": 0, "t_us": 0,
           "count": 1}
SERVER_ID = re.compile(r"[A-Za-z0-9._-]{1,63}")
T_US = re.compile(r',\s*"t_us"\s*:\s*-?[0-9]+')
MAX_SHOWN = 30


class Obj(list):
    """A JSON object as its (key, value) pairs, in order."""


class Failed(Exception):
    pass


class Checker:
    def __init__(self, path):
        self.path = path
        self.fails = []

    def fail(self, line, what):
        where = f"{self.path}:{line}" if line else self.path
        self.fails.append(f"tracecheck: {where}: {what}")

    def stop_if_failed(self):
        if self.fails:
            raise Failed

    # ---- format, order, indices -------------------------------------
    def read(self, expect_dropped):
        try:
            with open(self.path, "rb") as f:
                data = f.read()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            print(f"tracecheck: {self.path}: {e}", file=sys.stderr)
            sys.exit(2)
        lines = text.split("\n")
        if lines[-1] != "":
            self.fail(len(lines), "last line does not end with \\n")
        else:
            lines.pop()
        events, last, expect_i, dropped = [], None, {}, {}
        for no, raw in enumerate(lines, 1):
            e = self.parse_line(no, raw)
            if e is None:
                continue
            s, i = e["server"], e["i"]
            key = (s.encode(), i)
            if last is not None and key <= last:
                self.fail(no, f"line out of order: ({s}, {i}) after "
                          f"({last[0].decode()}, {last[1]})")
            last = key
            if s in dropped:
                self.fail(no, f"event after {s}'s dropped line {dropped[s]}")
            if i != expect_i.get(s, 0):
                self.fail(no, f"{s}: index {i}, expected {expect_i.get(s, 0)}")
            if e["ev"] == "dropped":
                dropped[s] = no
                if not expect_dropped:
                    self.fail(no, f"{s} dropped {e['count']} events "
                              "(buffer full)")
                expect_i[s] = i + e["count"]
            else:
                expect_i[s] = i + 1
            events.append(e)
        if expect_dropped and not dropped:
            self.fail(0, "no dropped line (--expect-dropped)")
        self.stop_if_failed()
        return events, dropped

    def parse_line(self, no, raw):
        def bad_constant(c):
            raise ValueError(f"{c} is not JSON")
        try:
            pairs = json.loads(raw, object_pairs_hook=Obj,
                               parse_constant=bad_constant)
        except ValueError as e:
            self.fail(no, f"not JSON: {e}")
            return None
        if not isinstance(pairs, Obj):
            self.fail(no, "not a JSON object")
            return None
        keys = [k for k, _ in pairs]
        e = dict(pairs)
        ev = e.get("ev")
        if ev not in KEYS:
            self.fail(no, f"unknown ev {ev!r}")
            return None
        if keys != KEYS[ev]:
            self.fail(no, f"keys {','.join(keys)}; a {ev} has "
                      f"{','.join(KEYS[ev])} in that order")
            return None
        ok = True
        for k, v in e.items():
            if k in ("server", "peer"):
                good = isinstance(v, str) and SERVER_ID.fullmatch(v)
            elif k == "ev":
                good = True
            elif k == "recorded":
                good = (isinstance(v, list)
                        and all(type(x) is int and x >= 0 for x in v)
                        and all(a < b for a, b in zip(v, v[1:])))
            else:
                low = 1 if k == "seq" and ev in ("send", "recv") \
                    else MINIMUM[k]
                good = type(v) is int and v >= low
            if not good:
                self.fail(no, f"bad {k}: {json.dumps(v)}")
                ok = False
        if ok and e.get("peer") == e["server"]:
            self.fail(no, "peer is the server itself")
            ok = False
        e["line"] = no
        return e if ok else None

    # ---- matching, FIFO, event order ----------------------------------
    def structure(self, events, extra_channels):
        self.by_server = defaultdict(list)
        for e in events:
            self.by_server[e["server"]].append(e)
        sends, recvs = defaultdict(list), defaultdict(list)
        msends, mrecvs = defaultdict(list), defaultdict(list)
        self.record, self.done = {}, {}     # (server, snap) -> event
        self.snap_evs = defaultdict(list)   # (server, snap) -> its markers
        sent, received = Counter(), Counter()
        for s, evs in self.by_server.items():
            for e in evs:
                ev, peer = e["ev"], e.get("peer")
                if ev == "send":
                    sends[(s, peer)].append(e)
                    sent[(s, peer)] += 1
                elif ev == "recv":
                    recvs[(peer, s)].append(e)
                    received[(peer, s)] += 1
                elif ev == "marker_send":
                    msends[(s, peer)].append(e)
                    self.snap_evs[(s, e["snap"])].append(e)
                    if e["seq"] != sent[(s, peer)]:
                        self.fail(e["line"], f"marker seq {e['seq']}, but "
                                  f"{sent[(s, peer)]} token messages were "
                                  f"sent on {s}->{peer} before it")
                elif ev == "marker_recv":
                    mrecvs[(peer, s)].append(e)
                    self.snap_evs[(s, e["snap"])].append(e)
                    if e["seq"] != received[(peer, s)]:
                        self.fail(e["line"], f"marker seq {e['seq']}, but "
                                  f"{received[(peer, s)]} token messages "
                                  f"were received on {peer}->{s} before it")
                else:
                    table = self.record if ev == "record" else self.done
                    if (s, e["snap"]) in table:
                        self.fail(e["line"], f"second {ev} of snapshot "
                                  f"{e['snap']} on {s}")
                    table[(s, e["snap"])] = e
        self.channels = (set(sends) | set(recvs) | set(msends) | set(mrecvs)
                         | set(extra_channels))
        self.sends, self.recvs = sends, recvs
        self.mrecv = {}                     # (src, dst, snap) -> event
        for ch in sorted(self.channels):
            self.check_channel(ch, sends[ch], recvs[ch], msends[ch],
                               mrecvs[ch])
        self.stop_if_failed()
        self.recv_i = {ch: [e["i"] for e in v] for ch, v in recvs.items()}
        self.send_i = {ch: [e["i"] for e in v] for ch, v in sends.items()}
        self.outbound, self.inbound = defaultdict(list), defaultdict(list)
        for src, dst in sorted(self.channels):
            self.outbound[src].append(dst)
            self.inbound[dst].append(src)
        self.check_order()
        self.stop_if_failed()

    def check_channel(self, ch, sends, recvs, msends, mrecvs):
        name = "->".join(ch)
        for k, e in enumerate(sends, 1):
            if e["seq"] != k:
                self.fail(e["line"], f"send seq {e['seq']} on {name}, "
                          f"expected {k} (channels number messages 1, 2, ... "
                          "from the start of the trace)")
        for k, e in enumerate(recvs, 1):
            if e["seq"] != k:
                self.fail(e["line"], f"recv seq {e['seq']} on {name}, "
                          f"expected {k} (FIFO)")
            elif k > len(sends):
                self.fail(e["line"], f"recv of {name} #{k}: no such send")
            elif sends[k - 1]["n"] != e["n"]:
                self.fail(e["line"], f"recv n {e['n']}, but send of {name} "
                          f"#{k} (line {sends[k - 1]['line']}) has "
                          f"n {sends[k - 1]['n']}")
        snaps_sent = [e["snap"] for e in msends]
        for k, e in enumerate(mrecvs):
            if k >= len(msends) or msends[k]["snap"] != e["snap"]:
                self.fail(e["line"], f"marker of snapshot {e['snap']} "
                          f"received on {name}, but the markers sent there "
                          f"are for {snaps_sent} (FIFO)")
            elif msends[k]["seq"] != e["seq"]:
                self.fail(e["line"], f"marker seq {e['seq']}, but its "
                          f"marker_send (line {msends[k]['line']}) has seq "
                          f"{msends[k]['seq']}")
            self.mrecv[ch + (e["snap"],)] = e
        if len(set(snaps_sent)) != len(snaps_sent):
            self.fail(msends[0]["line"], f"two markers of one snapshot on "
                      f"{name}: {snaps_sent}")
        lost = msends[len(mrecvs)] if len(mrecvs) < len(msends) else None
        if lost and len(recvs) > lost["seq"]:
            e = lost
            self.fail(recvs[e["seq"]]["line"], f"token message received on "
                      f"{name} after a marker (line {e['line']}) that was "
                      "never received (FIFO)")

    def check_order(self):
        """The Chandy-Lamport order of a server's snapshot events."""
        for (s, snap), rec in self.record.items():
            evs, r = self.snap_evs[(s, snap)], rec["i"]
            before = [e for e in evs if e["ev"] == "marker_recv"
                      and e["i"] < r]
            if before and (len(before) > 1 or before[0]["i"] != r - 1):
                self.fail(before[-1]["line"], f"marker_recv of snapshot "
                          f"{snap} before {s}'s record (line {rec['line']}) "
                          "other than the one just before it")
            ms = [e for e in evs if e["ev"] == "marker_send"]
            if [e["i"] for e in ms] != list(range(r + 1, r + 1 + len(ms))):
                self.fail(rec["line"], f"{s}'s marker_sends of snapshot "
                          f"{snap} do not follow its record at once")
            peers = [e["peer"] for e in ms]
            if peers != sorted(peers, key=str.encode):
                self.fail(rec["line"], f"{s}'s markers of snapshot {snap} "
                          f"go to {peers}, not in id order")
            for dst in self.outbound[s]:
                if dst not in peers:
                    self.fail(rec["line"], f"{s} recorded snapshot {snap} "
                              f"but sent no marker to {dst}")
        for (s, snap), done in self.done.items():
            rec = self.record.get((s, snap))
            if rec is None or rec["i"] > done["i"]:
                self.fail(done["line"], f"snapshot {snap} done on {s} "
                          "before (or without) its record")
            for src in self.inbound[s]:
                m = self.mrecv.get((src, s, snap))
                if m is None or m["i"] > done["i"]:
                    self.fail(done["line"], f"snapshot {snap} done on {s} "
                              f"before the marker from {src}")

    # ---- tokens, recorded, cuts, conservation ---------------------------
    def semantics(self, servers):
        self.initial = {}
        for s, evs in self.by_server.items():
            held = None
            for e in evs:
                d = {"send": -e.get("n", 0), "recv": e.get("n", 0)}.get(
                    e["ev"], 0)
                if held is None:
                    held = e["tokens"] - d
                    self.initial[s] = held
                    if held < 0:
                        self.fail(e["line"], f"{s} would start with {held}")
                elif e["tokens"] != held + d:
                    self.fail(e["line"], f"tokens {e['tokens']}, expected "
                              f"{held + d} ({held} before, {e['ev']})")
                held = e["tokens"]
        self.total = sum(self.initial.values())
        snaps = sorted({snap for _, snap in self.record})
        # snap -> channel -> [(seq, n)] as the recv lines say
        self.recorded_by = defaultdict(lambda: defaultdict(list))
        for ch, recvs in sorted(self.recvs.items()):
            self.check_recorded(ch, recvs, [x for x in snaps
                                            if (ch[1], x) in self.record])
            for e in recvs:
                for snap in e["recorded"]:
                    self.recorded_by[snap][ch].append((e["seq"], e["n"]))
        for snap in snaps:
            if all((s, snap) in self.record for s in servers):
                self.check_cut(snap)
            if all((s, snap) in self.done for s in servers):
                self.check_conservation(snap, servers)
        self.stop_if_failed()

    def check_recorded(self, ch, recvs, snaps):
        """S records m on P->Q when Q receives m after its record of S and
        before S's marker from P; a snapshot Q gave up (DROP, not in the
        trace; S never done at Q) may stop recording earlier."""
        src, dst = ch
        want = [[] for _ in recvs]
        for snap in snaps:
            rec = self.record[(dst, snap)]
            m = self.mrecv.get((src, dst, snap))
            lo = bisect.bisect(self.recv_i[ch], rec["i"])
            hi = bisect.bisect(self.recv_i[ch], m["i"]) if m else len(recvs)
            done, stopped = (dst, snap) in self.done, None
            srec = self.record.get((src, snap))
            for k in range(lo, hi):
                e = recvs[k]
                if not done and snap not in e["recorded"]:
                    stopped = stopped or e
                    continue
                want[k].append(snap)
                if stopped:
                    self.fail(e["line"], f"snapshot {snap} records this "
                              f"message, but not the one of line "
                              f"{stopped['line']} before it")
                send = self.sends[ch][e["seq"] - 1]
                if srec is not None and srec["i"] < send["i"]:
                    self.fail(e["line"], f"snapshot {snap} records this "
                              f"message, sent after {src} recorded")
        for e, w in zip(recvs, want):
            if e["recorded"] != w:
                self.fail(e["line"], f"recorded {e['recorded']}, expected "
                          f"{w} (recv on {src}->{dst} #{e['seq']})")

    def before(self, index, ch, event):
        """How many of a channel's sends or recvs precede event."""
        return bisect.bisect(index.get(ch, []), event["i"])

    def check_cut(self, snap):
        for ch, recvs in sorted(self.recvs.items()):
            # sends come in order: the last recv before the record is enough
            k = self.before(self.recv_i, ch, self.record[(ch[1], snap)])
            if not k:
                continue
            send = self.sends[ch][recvs[k - 1]["seq"] - 1]
            if send["i"] > self.record[(ch[0], snap)]["i"]:
                self.fail(recvs[k - 1]["line"], f"cut of snapshot {snap} is "
                          f"inconsistent: {ch[1]} received before recording "
                          f"a message {ch[0]} sent (line {send['line']}) "
                          "after recording")

    def check_conservation(self, snap, servers):
        on_servers = sum(self.record[(s, snap)]["tokens"] for s in servers)
        in_flight = sum(n for msgs in self.recorded_by[snap].values()
                        for _, n in msgs)
        if on_servers + in_flight != self.total:
            last = max(self.record[(s, snap)]["line"] for s in servers)
            self.fail(last, f"snapshot {snap}: {on_servers} tokens on "
                      f"servers + {in_flight} in flight != total "
                      f"{self.total}")

    # ---- against `clsnap run --json` -------------------------------------
    def compare_run(self, run, servers):
        ids = set()
        for sn in run.get("snapshots", []):
            snap = sn["id"]
            ids.add(snap)

            def line_of(s):
                rec = self.record.get((s, snap))
                return rec["line"] if rec else 0
            got = {s for s in servers if (s, snap) in self.record}
            want = {x["id"] for x in sn["servers"]}
            if got != want:
                self.fail(0, f"snapshot {snap}: the run has states of "
                          f"{sorted(want)}, the trace records of "
                          f"{sorted(got)}")
            for x in sn["servers"]:
                rec = self.record.get((x["id"], snap))
                if rec is not None and rec["tokens"] != x["tokens"]:
                    self.fail(rec["line"], f"snapshot {snap}: {x['id']} "
                              f"recorded {rec['tokens']} tokens, the run says "
                              f"{x['tokens']}")
            if sn["tokens"]["expected"] != self.total:
                self.fail(0, f"snapshot {snap}: the run expects "
                          f"{sn['tokens']['expected']} tokens, the trace "
                          f"holds {self.total}")
            named = set()
            for c in sn["channels"]:
                ch = (c["src"], c["dst"])
                named.add(ch)
                runs = [(seq + k, n) for seq, count, n in c["recorded"]
                        for k in range(count)]
                mine = self.recorded_by[snap].get(ch, [])
                if runs != mine:
                    self.fail(line_of(ch[1]), f"snapshot {snap}: channel "
                              f"{'->'.join(ch)} recorded (seq, n) {mine} in "
                              f"the trace, {runs} in the run")
                for key, end, index in (("sent", 0, self.send_i),
                                        ("received", 1, self.recv_i)):
                    rec = self.record.get((ch[end], snap))
                    if c[key] is None or rec is None:
                        continue
                    k = self.before(index, ch, rec)
                    if k != c[key]:
                        self.fail(rec["line"], f"snapshot {snap}: "
                                  f"{'->'.join(ch)} {key} {k} before the "
                                  f"record, the run says {c[key]}")
            for ch in sorted(self.recorded_by[snap]):
                if ch not in named:
                    self.fail(line_of(ch[1]), f"snapshot {snap} recorded "
                              f"on {'->'.join(ch)}, a channel the run lacks")
            mine = Counter(ch + (n,) for ch, msgs in
                           self.recorded_by[snap].items() for _, n in msgs)
            theirs = Counter((m["src"], m["dst"], m["tokens"])
                             for m in sn["messages"])
            if mine != theirs:
                self.fail(0, f"snapshot {snap}: recorded messages differ "
                          f"from the run's (trace {sorted(mine.elements())}, "
                          f"run {sorted(theirs.elements())})")
        known = ids | set(run.get("unchecked", []))
        for (s, snap), rec in sorted(self.record.items()):
            if snap not in known:
                self.fail(rec["line"], f"snapshot {snap}: not in the run")
                known.add(snap)
        self.stop_if_failed()

    def lockstep_equal(self, other):
        try:
            with open(self.path, "rb") as f:
                a = f.read().decode().split("\n")
            with open(other, "rb") as f:
                b = f.read().decode().split("\n")
        except (OSError, UnicodeDecodeError) as e:
            print(f"tracecheck: {e}", file=sys.stderr)
            sys.exit(2)
        for no, (x, y) in enumerate(zip(a, b), 1):
            if no in (len(a), len(b)) and len(a) != len(b):
                self.fail(no, f"{len(a) - 1} lines, {other} has {len(b) - 1}")
                break
            if T_US.sub("", x) != T_US.sub("", y):
                self.fail(no, f"differs from {other}:{no} (t_us aside)")
                break
        self.stop_if_failed()


def main():
    ap = argparse.ArgumentParser(
        description="Check a clsnap trace (docs/TRACE.md) independently.")
    ap.add_argument("trace")
    ap.add_argument("--run-json", help="output of `clsnap run ... --json`")
    ap.add_argument("--lockstep-equal", metavar="OTHER_TRACE")
    ap.add_argument("--expect-dropped", action="store_true")
    args = ap.parse_args()
    ck = Checker(args.trace)
    run = None
    if args.run_json:
        try:
            with open(args.run_json) as f:
                run = json.load(f)
            run["servers"], run["snapshots"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            print(f"tracecheck: {args.run_json}: not a run's JSON: {e!r}",
                  file=sys.stderr)
            sys.exit(2)
    try:
        if args.lockstep_equal:
            ck.lockstep_equal(args.lockstep_equal)
        events, dropped = ck.read(args.expect_dropped)
        nserv = len({e["server"] for e in events})
        nev = sum(1 for e in events if e["ev"] != "dropped")
        if args.expect_dropped:
            gone = sum(e["count"] for e in events if e["ev"] == "dropped")
            print(f"tracecheck: {nserv} servers, {nev} events, {gone} "
                  f"dropped on {len(dropped)} servers: ok")
            return 0
        extra = set()
        servers = {e["server"] for e in events}
        if run is not None:
            servers |= {s["id"] for s in run["servers"]}
            extra = {(c["src"], c["dst"]) for sn in run["snapshots"]
                     for c in sn["channels"]}
        ck.structure(events, extra)
        ck.semantics(sorted(servers))
        if run is not None:
            ck.compare_run(run, sorted(servers))
    except Failed:
        for line in ck.fails[:MAX_SHOWN]:
            print(line)
        if len(ck.fails) > MAX_SHOWN:
            print(f"tracecheck: ... and {len(ck.fails) - MAX_SHOWN} more")
        return 1
    sends = [e for v in ck.sends.values() for e in v]
    nrecv = sum(len(v) for v in ck.recvs.values())
    nmark = sum(1 for e in events if e["ev"] == "marker_send")
    snaps = {e["snap"] for e in events if "snap" in e}
    print(f"tracecheck: {len(servers)} servers, {nev} events, {len(sends)} "
          f"token messages ({len(sends) - nrecv} in flight), {nmark} markers, "
          f"{len(snaps)} snapshots: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
