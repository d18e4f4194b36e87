#!/usr/bin/env python3
"""Check a clsnap snapshot store independently of clsnap's C code.

  storecheck.py DIR [--history HISTORY.json] [--total N] [--completed N]
                [--no-tmp]

For every file DIR/NNNNNN-STATUS.json (docs/STORE.md):
  - the file is {"format":"clsnap-snapshot-1","sha256":HEX,"snapshot":BODY}
    and HEX is the SHA-256 (hashlib) of BODY's bytes in the file;
  - BODY's seq and status are the file name's;
  - the topology text hashes to its sha256;
  - a completed snapshot conserves tokens (servers + recorded messages =
    the stored topology's total, which must be --total if given) and
    every channel S->D holds exactly the messages D recorded with seqs in
    (received by D, sent by S], in order and without gaps;
  - a failed or timed-out entry has a reason.
With --history, the output of `clsnap history --json` must list exactly
these files with the same seq, id, status, initiator and size. With
--completed, exactly that many completed snapshots must be there. With
--no-tmp, no temporary file (.NNNNNN.tmp) may be left.

Prints one summary line; exits 1 naming every problem.
"""
import argparse
import hashlib
import json
import os
import re
import sys

PREFIX = b'{"format":"clsnap-snapshot-1","sha256":"'
MIDDLE = b'","snapshot":'
NAME = re.compile(r"^(\d+)-(completed|failed|timed_out)\.json$")


def topology_total(text):
    lines = [l.split() for l in text.splitlines() if l.strip() and not l.startswith("#")]
    n = int(lines[0][0])
    return sum(int(t) for _, t in lines[1:1 + n]), {(s, d) for s, d in lines[1 + n:]}


def check_body(path, body, problems):
    """Conservation and exact channel states of one completed snapshot."""
    def bad(msg):
        problems.append(f"{path}: {msg}")
    total, links = topology_total(body["topology"]["text"])
    states = body["states"]
    on_servers = sum(s["tokens"] for s in states)
    in_flight = sum(n * count for s in states for _, _, count, n in s["recorded"])
    if on_servers + in_flight != total:
        bad(f"tokens {on_servers} + {in_flight} != {total}")
    sent = {(s["server"], d): c for s in states for d, c in s["sent"]}
    recv = {(src, s["server"]): c for s in states for src, c in s["received"]}
    if set(sent) != links or set(recv) != links:
        bad("the channels in the states are not the topology's")
    got = {}
    for s in states:
        for src, seq, count, n in s["recorded"]:
            got.setdefault((src, s["server"]), []).extend(range(seq, seq + count))
    for ch in links:
        want = list(range(recv.get(ch, 0) + 1, sent.get(ch, 0) + 1))
        if got.get(ch, []) != want:
            bad(f"channel {ch[0]}->{ch[1]}: recorded {got.get(ch, [])[:5]}..., "
                f"want seqs {want[:5]}... ({len(want)})")
    v = body["verdict"]
    if not v["ok"] or v["server_tokens"] != on_servers or v["channel_tokens"] != in_flight:
        bad(f"stored verdict {v} disagrees")
    return on_servers, in_flight


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--history")
    ap.add_argument("--total", type=int)
    ap.add_argument("--completed", type=int)
    ap.add_argument("--no-tmp", action="store_true")
    a = ap.parse_args()
    problems, found = [], {}
    for name in sorted(os.listdir(a.dir)):
        if a.no_tmp and name.endswith(".tmp"):
            problems.append(f"{a.dir}/{name}: a temporary file is left")
        m = NAME.match(name)
        if not m:
            continue
        path = os.path.join(a.dir, name)
        raw = open(path, "rb").read()
        if not raw.startswith(PREFIX) or raw[len(PREFIX) + 64:len(PREFIX) + 64 + len(MIDDLE)] != MIDDLE \
                or not raw.endswith(b"}\n"):
            problems.append(f"{path}: not a whole snapshot file")
            continue
        want = raw[len(PREFIX):len(PREFIX) + 64].decode()
        body_bytes = raw[len(PREFIX) + 64 + len(MIDDLE):-2]
        if hashlib.sha256(body_bytes).hexdigest() != want:
            problems.append(f"{path}: checksum mismatch")
            continue
        body = json.loads(body_bytes)
        if body["seq"] != int(m.group(1)) or body["status"] != m.group(2):
            problems.append(f"{path}: name and contents disagree")
        topo = body["topology"]
        if topo is not None and hashlib.sha256(topo["text"].encode()).hexdigest() != topo["sha256"]:
            problems.append(f"{path}: topology hash mismatch")
        if body["status"] == "completed":
            check_body(path, body, problems)
            if a.total is not None:
                total, _ = topology_total(topo["text"])
                if total != a.total:
                    problems.append(f"{path}: total {total}, want {a.total}")
        elif not body["reason"]:
            problems.append(f"{path}: {body['status']} without a reason")
        found[body["seq"]] = (body, len(raw), path)
    completed = sum(1 for b, _, _ in found.values() if b["status"] == "completed")
    if a.completed is not None and completed != a.completed:
        problems.append(f"{completed} completed snapshots, want {a.completed}")
    if a.history:
        hist = json.load(open(a.history))
        if [h["seq"] for h in hist] != sorted(found):
            problems.append(f"history lists seqs {[h['seq'] for h in hist]}, the store has {sorted(found)}")
        for h in hist:
            if h["seq"] not in found:
                continue
            body, size, path = found[h["seq"]]
            for key, val in (("id", body["id"]), ("status", body["status"]),
                             ("initiator", body["initiator"]), ("size", size), ("file", path)):
                if h.get(key) != val:
                    problems.append(f"history #{h['seq']}: {key} {h.get(key)!r}, the file says {val!r}")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"storecheck: {len(found)} files, {completed} completed, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
