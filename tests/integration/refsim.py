#!/usr/bin/env python3
"""Reference simulator, written from ../shared/conformance/README.md, as an
independent oracle for clsnap's lockstep mode (it shares no code with it).

  refsim.py TOPOLOGY EVENTS OUTDIR --delays FILE
  refsim.py TOPOLOGY EVENTS OUTDIR --seed N [--max-delay D]   (D defaults to 4)

Replays the events the way the course's discrete-time simulator does and
writes the expected global snapshot k (the k-th `snapshot` event) to
OUTDIR/k.snap. Exit 0 on success, 2 on bad input (a send that the server
cannot cover, an unknown link, the delay file running out, a snapshot that
can never complete).

The rules (conformance README, "The reference's scheduling rules"):
- time starts at 0; every send (token or marker), in the order sends
  happen, draws one delay d and is due at now + 1 + d;
- a tick advances time by one, then visits source servers in byte-wise id
  order and, for each, its outbound links in destination id order, and
  delivers the head of the first link whose head is due: at most one
  delivery per source server per tick; a delivery is handled at once;
- Chandy-Lamport: a server starting snapshot k, or receiving k's first
  marker, records its tokens and sends k's marker to every outbound
  neighbour in id order; a token message on SRC->S is recorded for k if S
  has recorded k and has not yet had k's marker from SRC;
- after the last event, tick until every snapshot is complete everywhere.

The seeded delay source is the project's generator (a shared spec, not
scheduling logic): splitmix64 with state = seed, delay = next() % (D + 1).
"""
import os
import sys
from collections import deque

MASK = (1 << 64) - 1


class Bad(Exception):
    pass


def splitmix64(seed):
    """Vigna's splitmix64: yields the 64-bit outputs for the given seed."""
    state = seed & MASK
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


def seeded_delays(seed, max_delay):
    for x in splitmix64(seed):
        yield x % (max_delay + 1)


def file_delays(path):
    used = 0
    with open(path) as f:
        for line in f:
            used += 1
            yield int(line)
    raise Bad(f"{path}: delay file ran out after {used} values")


def content_lines(path):
    """(line number, words) of the non-blank, non-comment lines of a file."""
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                yield n, line.split()


def byid(ids):
    return sorted(ids, key=lambda s: s.encode())


def load_topology(path):
    lines = list(content_lines(path))
    count = int(lines[0][1][0])
    tokens = {w[0]: int(w[1]) for _, w in lines[1:count + 1]}
    links = [(w[0], w[1]) for _, w in lines[count + 1:]]
    if len(tokens) != count or any(a not in tokens or b not in tokens for a, b in links):
        raise Bad(f"{path}: bad topology")
    return tokens, links


class Sim:
    def __init__(self, tokens, links, delays):
        self.now = 0
        self.delays = delays
        self.tokens = dict(tokens)
        self.out = {s: byid(b for a, b in links if a == s) for s in tokens}
        self.inbound = {s: {a for a, b in links if b == s} for s in tokens}
        self.queue = {link: deque() for link in links}  # (due, kind, value)
        # per snapshot k: recorded tokens per server, channels still being
        # recorded per server, and the recorded messages in arrival order
        self.snaps = []

    def send(self, src, dst, kind, value):
        if (src, dst) not in self.queue:
            raise Bad(f"no link {src} -> {dst}")
        due = self.now + 1 + next(self.delays)
        self.queue[(src, dst)].append((due, kind, value))

    def send_tokens(self, src, dst, n):
        if self.tokens[src] < n:
            raise Bad(f"{src} holds {self.tokens[src]} tokens, cannot send {n} at time {self.now}")
        self.tokens[src] -= n
        self.send(src, dst, "token", n)

    def record(self, k, server):
        snap = self.snaps[k]
        snap["tokens"][server] = self.tokens[server]
        snap["open"][server] = set(self.inbound[server])
        for dst in self.out[server]:
            self.send(server, dst, "marker", k)

    def start_snapshot(self, server):
        self.snaps.append({"tokens": {}, "open": {}, "msgs": []})
        self.record(len(self.snaps) - 1, server)

    def handle(self, src, dst, kind, value):
        if kind == "token":
            self.tokens[dst] += value
            for snap in self.snaps:
                if src in snap["open"].get(dst, ()):
                    snap["msgs"].append((src, dst, value))
        else:
            if dst not in self.snaps[value]["tokens"]:
                self.record(value, dst)
            self.snaps[value]["open"][dst].discard(src)

    def tick(self):
        self.now += 1
        for src in byid(self.out):
            for dst in self.out[src]:
                q = self.queue[(src, dst)]
                if q and q[0][0] <= self.now:
                    _, kind, value = q.popleft()
                    self.handle(src, dst, kind, value)
                    break

    def complete(self):
        return all(len(s["tokens"]) == len(self.tokens) and not any(s["open"].values())
                   for s in self.snaps)

    def in_flight(self):
        return any(self.queue.values())


def run(top, events, delays):
    tokens, links = load_topology(top)
    sim = Sim(tokens, links, delays)
    for n, w in content_lines(events):
        try:
            if w[0] == "send" and len(w) == 4:
                sim.send_tokens(w[1], w[2], int(w[3]))
            elif w[0] == "snapshot" and len(w) == 2:
                sim.start_snapshot(w[1])
            elif w[0] == "tick" and len(w) <= 2:
                for _ in range(int(w[1]) if len(w) == 2 else 1):
                    sim.tick()
            else:
                raise Bad("unknown event")
        except (Bad, KeyError, ValueError) as e:
            raise Bad(f"{events}:{n}: {' '.join(w)}: {e}")
    while not sim.complete():
        if not sim.in_flight():
            raise Bad("a snapshot can never complete (nothing in flight)")
        sim.tick()
    return sim.snaps


def snap_text(k, snap):
    lines = [str(k)]
    lines += [f"{s} {snap['tokens'][s]}" for s in byid(snap["tokens"])]
    # grouped by destination in id order; sorted() is stable, so each group
    # keeps arrival order
    for src, dst, n in sorted(snap["msgs"], key=lambda m: m[1].encode()):
        lines.append(f"{src} {dst} token({n})")
    return "\n".join(lines) + "\n"


def main(argv):
    args, opts = [], {}
    it = iter(argv)
    for a in it:
        if a in ("--delays", "--seed", "--max-delay"):
            opts[a] = next(it, None)
        else:
            args.append(a)
    if len(args) != 3 or ("--delays" in opts) == ("--seed" in opts) or None in opts.values():
        sys.exit(__doc__)
    top, events, outdir = args
    if "--delays" in opts:
        delays = file_delays(opts["--delays"])
    else:
        delays = seeded_delays(int(opts["--seed"]), int(opts.get("--max-delay", 4)))
    try:
        snaps = run(top, events, delays)
    except (Bad, OSError) as e:
        print(f"refsim: {e}", file=sys.stderr)
        return 2
    os.makedirs(outdir, exist_ok=True)
    for k, snap in enumerate(snaps):
        with open(os.path.join(outdir, f"{k}.snap"), "w") as f:
            f.write(snap_text(k, snap))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
