#!/usr/bin/env python3
"""clsnap's checks and jsoncheck.py's, on the same made-up local states.

  crosscheck.py CLSNAP

Three fake servers (threads on 127.0.0.1) answer COLLECT with local states
made up here, and `clsnap --cluster F collect 7 --json` checks them: first a
right snapshot (three servers, two token messages in flight on A->B), then
variants each wrong in one way (a recorded message missing, one recorded
that was not sent, or already received, or recorded twice, out of order, on
the wrong channel, a channel nobody reported, a token too many).

For the right one clsnap must exit 0 with "ok": true and jsoncheck.py must
pass; for each wrong one clsnap must exit 1 with "ok": false, and
jsoncheck.py must fail, both naming the channel at fault. So a verifier
that passes everything fails here, and so does a jsoncheck.py that does.
Every time, clsnap's "channels" must be exactly the states' counts and runs.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile import EPROTO, FakeServer  # noqa: E402

SID = 7
TOPOLOGY = "3\nA 10\nB 3\nC 0\nA B\nB A\nA C\nC A\nB C\nC B\n"


def right():
    """A sent B three messages (3, 2, 1 tokens: seqs 1..3); B had received
    seq 1 when it recorded, and recorded 2..3. B sent C one (2 tokens)."""
    return {
        "A": {"tokens": 4, "initial": 10, "runs": [],
              "sent": {"B": 3, "C": 0}, "recv": {"B": 0, "C": 0}},
        "B": {"tokens": 4, "initial": 3, "runs": [["A", 2, 1, 2], ["A", 3, 1, 1]],
              "sent": {"A": 0, "C": 1}, "recv": {"A": 1, "C": 0}},
        "C": {"tokens": 2, "initial": 0, "runs": [],
              "sent": {"A": 0, "B": 0}, "recv": {"A": 0, "B": 1}},
    }


def gap(s):
    s["B"]["runs"].pop(0)            # seq 2 not recorded...
    s["B"]["tokens"] += 2            # ...its tokens counted at B instead


def extra(s):
    s["A"]["sent"]["B"] = 2          # seq 3 recorded, not sent
    s["A"]["tokens"] += 1
    s["C"]["tokens"] -= 1


def early(s):
    s["B"]["recv"]["A"] = 2          # seq 2 received before, and recorded


def twice(s):
    s["B"]["runs"].append(["A", 3, 1, 1])
    s["C"]["tokens"] -= 1


def reordered(s):
    s["B"]["runs"].reverse()


def wrong_channel(s):
    s["B"]["runs"][1][0] = "C"       # seq 3 of A->B filed under C->B


def unreported(s):
    del s["A"]["sent"]["B"]


def token_too_many(s):
    s["C"]["tokens"] += 1


# name, change, channel both must name (None: conservation only)
CASES = [
    ("right", None, None),
    ("gap", gap, "A->B"),
    ("extra", extra, "A->B"),
    ("early", early, "A->B"),
    ("twice", twice, "A->B"),
    ("reordered", reordered, "A->B"),
    ("wrong-channel", wrong_channel, "C->B"),
    ("unreported", unreported, "A->B"),
    ("token-too-many", token_too_many, None),
]


def wire_state(server, st):
    return [SID, server, st["tokens"], st["initial"], st["runs"],
            sorted([d, n] for d, n in st["sent"].items()),
            sorted([s, n] for s, n in st["recv"].items())]


def expected_channels(states):
    """The "channels" clsnap must print for these states."""
    keys = set()
    for sv, st in states.items():
        keys |= {(sv, d) for d in st["sent"]} | {(s, sv) for s in st["recv"]}
        keys |= {(r[0], sv) for r in st["runs"]}
    return [{"src": a, "dst": b, "sent": states[a]["sent"].get(b),
             "received": states[b]["recv"].get(a),
             "recorded": [r[1:] for r in states[b]["runs"] if r[0] == a]}
            for a, b in sorted(keys)]


def fake_server(name, current):
    """Answers COLLECT with server name's state in current["now"]."""
    def answer(m):
        if m[0] == 15:  # COLLECT [15, req, id, release]
            return [32, m[1], wire_state(name, current["now"][name])]
        if m[0] != 10:  # anything but CLIENT
            return [31, m[1], EPROTO, "not a real server"]
        return None
    return FakeServer(answer)


def main(clsnap, work):
    here = os.path.dirname(os.path.abspath(__file__))
    top = os.path.join(work, "crosscheck.top")
    with open(top, "w") as f:
        f.write(TOPOLOGY)
    current = {"now": right()}
    servers = {n: fake_server(n, current) for n in ("A", "B", "C")}
    cluster = os.path.join(work, "crosscheck.cluster")
    with open(cluster, "w") as f:
        f.write("".join("%s %s\n" % (n, s.addr) for n, s in servers.items()))
    failures = []
    for name, change, channel in CASES:
        states = right()
        if change:
            change(states)
        current["now"] = states
        p = subprocess.run([clsnap, "--cluster", cluster, "collect", str(SID),
                            "--json", "--timeout", "10"],
                           capture_output=True, text=True)
        try:
            snap = json.loads(p.stdout)
        except ValueError:
            failures.append(f"{name}: clsnap exited {p.returncode} without "
                            f"JSON: {p.stdout.strip()} {p.stderr.strip()}")
            continue
        j = subprocess.run([sys.executable, os.path.join(here, "jsoncheck.py"),
                            "--topology", top], input=p.stdout,
                           capture_output=True, text=True)
        said = " | ".join(snap.get("problems", []))
        found = j.stdout.strip().replace("\n", " | ")
        if snap.get("channels") != expected_channels(states):
            failures.append(f"{name}: clsnap's channels {snap.get('channels')} "
                            f"are not the states' {expected_channels(states)}")
        if change is None:
            if p.returncode != 0 or snap.get("ok") is not True:
                failures.append(f"{name}: clsnap rejected a right snapshot "
                                f"(exit {p.returncode}): {said}")
            if j.returncode != 0:
                failures.append(f"{name}: jsoncheck.py rejected a right "
                                f"snapshot: {found}")
            continue
        if p.returncode != 1 or snap.get("ok") is not False:
            failures.append(f"{name}: clsnap passed a wrong snapshot "
                            f"(exit {p.returncode}, ok {snap.get('ok')})")
        elif channel and channel not in said:
            failures.append(f"{name}: clsnap's problems do not name {channel}: {said}")
        if j.returncode != 1:
            failures.append(f"{name}: jsoncheck.py passed a wrong snapshot")
        elif channel and f"channel {channel}:" not in found:
            failures.append(f"{name}: jsoncheck.py does not name {channel}: {found}")
        print(f"{name}: clsnap: {said}\n{name}: jsoncheck.py: {found}")
    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="clsnap-crosscheck.") as work:
        sys.exit(main(sys.argv[1], work))
