#!/usr/bin/env python3
"""Reset clsnapd peer connections with `ss -K`, as a broken network would.

  resetter.py --parent PID --count N --interval-ms MS --timeout S
  resetter.py --pids PID,PID,... (same options)

Every interval, picks one established daemon-to-daemon connection of the
given daemons (the children of --parent named clsnapd, or --pids) at
random and destroys the sending end's socket (`ss -K`, which also resets
the receiver's end). Control connections (clsnap to a daemon) are left
alone: an outbound peer connection is one a daemon owns whose local port
is not a daemon's listening port. Stops after N resets, after S seconds,
or when the daemons are gone; prints `resets: K` (K resets done). Needs
root (CAP_NET_ADMIN) and a kernel with socket destroy; exits 77 without.
"""
import argparse
import os
import random
import re
import subprocess
import sys
import time

USERS = re.compile(r'pid=(\d+)')


def children(parent):
    out = subprocess.run(["pgrep", "-P", str(parent), "clsnapd"],
                         capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def sockets(state_args):
    out = subprocess.run(["ss", "-tnpH"] + state_args, capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        # [state] recv-q send-q local peer users:(...): the state column is
        # there or not depending on the filter; the addresses are the first
        # two fields that end in :PORT.
        f = [x for x in line.split() if re.search(r':(\d+|\*)$', x)]
        if len(f) < 2:
            continue
        pids = {int(p) for p in USERS.findall(line)}
        yield f[0], f[1], pids


def port(addr):
    return int(addr.rsplit(":", 1)[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parent", type=int)
    ap.add_argument("--pids")
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--interval-ms", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("resetter: needs root for ss -K", file=sys.stderr)
        return 77
    rng = random.Random(a.seed)
    deadline = time.monotonic() + a.timeout
    done = 0
    seen_daemons = False
    while done < a.count and time.monotonic() < deadline:
        time.sleep(a.interval_ms / 1000)
        pids = (children(a.parent) if a.parent else
                {int(p) for p in a.pids.split(",")})
        pids = {p for p in pids if os.path.exists("/proc/%d" % p)}
        if not pids:
            if seen_daemons or (a.parent and
                                not os.path.exists("/proc/%d" % a.parent)):
                break  # the run is over
            continue
        seen_daemons = True
        listening = {port(l) for l, _, ps in
                     sockets(["state", "listening"]) if ps & pids}
        cands = [(l, r) for l, r, ps in sockets(["state", "established"])
                 if ps & pids and port(l) not in listening and
                 port(r) in listening]
        if not cands:
            continue
        l, r = rng.choice(cands)
        res = subprocess.run(["ss", "-K", "src", l, "dst", r],
                             capture_output=True, text=True)
        if l in res.stdout:
            done += 1
    print("resets: %d" % done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
