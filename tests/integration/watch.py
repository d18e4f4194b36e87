#!/usr/bin/env python3
"""WATCH and LOCAL_STATE against two real daemons (docs/PROTOCOL.md).

  watch.py CLSNAPD WORKDIR

A and B form a 2-ring (A->B, B->A) over real peer channels. Checked:
- WATCH is accepted before CONFIGURE (a connection's preference);
- a completed snapshot whose id a connection watches reaches it as
  LOCAL_STATE [42, local_state]; a connection that never sent WATCH gets
  COMPLETE; the state is released once pushed (STATUS kept is empty,
  COLLECT says ENOENT);
- the pushed states add up: tokens on servers plus recorded runs equal the
  system's total, with every token sent before the snapshot;
- scope: a watching connection hears nothing of a snapshot it does not
  watch; that state stays kept for COLLECT; a WATCH that arrives after the
  snapshot completed gets the kept state at once;
- WATCH of no id (count 0) is refused (EINVAL), and a connection holds at
  most 64 ranges (EFULL);
- a state that cannot be pushed (more recorded runs than one frame may
  list: 1 100 000 messages whose amounts alternate) gives the watcher
  COMPLETE instead, stays kept, is logged, and COLLECT refuses it with
  ETOOBIG.

Uses the msgpack helpers and process wrappers of hostile.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile import (Control, Daemon, Fail, check, configure,  # noqa: E402
                     record_runs, wait_log, EFULL, EINVAL, ENOENT, ETOOBIG)

TOTAL = 30  # A 20, B 10


def expect_notice(c, want_type, sid, timeout=10):
    """Read until a notification of want_type for snapshot sid; fail on a
    notification of the other kind for it."""
    while True:
        m = c.next_msg(timeout)
        check(isinstance(m, list) and len(m) >= 2, "bad frame %r" % (m,))
        if m[0] == 40 and m[1] == sid:
            check(want_type == 40, "got COMPLETE for %d, expected "
                  "LOCAL_STATE" % sid)
            return m
        if m[0] == 42 and m[1][0] == sid:
            check(want_type == 42, "got LOCAL_STATE for %d, expected "
                  "COMPLETE" % sid)
            return m


def tokens_of(state):
    """Tokens held plus tokens in recorded runs [src, seq, count, n]."""
    return state[2] + sum(r[2] * r[3] for r in state[4])


def too_many_runs(clsnapd, workdir):
    nrec = 1100000  # over CL_WIRE_MAX_ITEMS (2^20) runs
    d = Daemon(clsnapd, workdir, "C")
    try:
        c = Control(d.addr, "pc")
        check(c.call(21, 0, 10)[0] == 30, "WATCH refused")
        configure(c, "C", 5, inn=["P", "Q"], nservers=3)
        p, q = record_runs(d.addr, "C", nrec)
        expect_notice(c, 40, 1, timeout=60)
        wait_log(d.log, "cannot push the state of snapshot 1 (%d recorded "
                 "runs)" % nrec, "it stays kept for COLLECT")
        check(c.status()["kept"] == [1], "the state was not kept")
        r = c.call(15, 1, True)
        check(r[0] == 31 and r[2] == ETOOBIG,
              "COLLECT of a state too big answered %r" % (r[:3],))
        check(d.alive(), "daemon died")
        p.close()
        q.close()
    finally:
        d.stop()


def main(argv):
    clsnapd, workdir = argv[1], argv[2]
    a = Daemon(clsnapd, workdir, "A")
    b = Daemon(clsnapd, workdir, "B")
    try:
        ca, cb = Control(a.addr, "ca"), Control(b.addr, "cb")
        plain = Control(a.addr, "plain")  # never sends WATCH
        r = ca.call(21, 0, 100)
        check(r[0] == 30, "WATCH before CONFIGURE answered %r" % (r,))
        r = cb.call(21, 0, 100)
        check(r[0] == 30, "WATCH answered %r" % (r,))
        r = ca.call(21, 7, 0)
        check(r[0] == 31 and r[2] == EINVAL, "WATCH of count 0 answered %r"
              % (r,))
        for c, sid, tok, peer, addr in ((ca, "A", 20, "B", b.addr),
                                        (cb, "B", 10, "A", a.addr)):
            r = c.call(11, sid, tok, 0 if sid == "A" else 1, 2, 0, 0, 0,
                       [[peer, addr]], [peer], 0)
            check(r[0] == 30, "CONFIGURE %s answered %r" % (sid, r))
        for c in (ca, cb):
            r = c.call(12)
            check(r[0] == 30, "CONNECT answered %r" % (r,))

        # Tokens in flight both ways, then snapshot 5 from A.
        for k in range(5):
            check(ca.call(13, "B", 2)[0] == 30, "SEND A->B refused")
            check(cb.call(13, "A", 1)[0] == 30, "SEND B->A refused")
        r = ca.call(14, 5)
        check(r[0] == 30 and r[2] == 5, "SNAPSHOT answered %r" % (r,))
        sa = expect_notice(ca, 42, 5)[1]
        sb = expect_notice(cb, 42, 5)[1]
        expect_notice(plain, 40, 5)
        check(sa[1] == "A" and sb[1] == "B", "states of %s, %s" %
              (sa[1], sb[1]))
        got = tokens_of(sa) + tokens_of(sb)
        check(got == TOTAL, "pushed states hold %d tokens, expected %d "
              "(%r, %r)" % (got, TOTAL, sa, sb))
        # Sent counts: A sent 5 token messages to B, B 5 to A.
        check(sa[5] == [["B", 5]] and sb[5] == [["A", 5]],
              "sent counts %r, %r" % (sa[5], sb[5]))
        for c in (ca, cb):
            check(c.status()["kept"] == [], "a pushed state was kept")
        r = plain.call(15, 5, False)
        check(r[0] == 31 and r[2] == ENOENT,
              "COLLECT of a pushed state answered %r" % (r,))

        # Snapshot 200 is watched by nobody: ca hears nothing of it, the
        # plain connection gets COMPLETE, the state stays kept.
        r = ca.call(14, 200)
        check(r[0] == 30, "SNAPSHOT 200 answered %r" % (r,))
        expect_notice(plain, 40, 200)
        st = ca.status()  # after it: anything about 200 came before it
        check(st["kept"] == [200], "A keeps %r, expected [200]"
              % (st["kept"],))
        # A WATCH after the fact gets the kept state at once, before its
        # reply (what a request causes comes before the reply).
        cb.req += 1
        cb.send([21, cb.req, 200, 1])
        m = cb.next_msg()
        check(m[0] == 42 and m[1][0] == 200 and m[1][1] == "B",
              "late WATCH: first frame %r, expected B's LOCAL_STATE 200"
              % (m[:2],))
        m = cb.next_msg()
        check(m[0] == 30 and m[1] == cb.req, "late WATCH answered %r" % (m,))
        check(ca.call(15, 200, True)[0] == 32, "COLLECT 200 from A failed")
        check(ca.status()["kept"] == [] and cb.status()["kept"] == [],
              "states of 200 still kept")
        # At most 64 ranges per connection.
        for k in range(63):  # with [0, 100): 64 ranges
            check(ca.call(21, 1000 + k, 1)[0] == 30, "WATCH %d refused" % k)
        r = ca.call(21, 5000, 1)
        check(r[0] == 31 and r[2] == EFULL, "65th WATCH answered %r" % (r,))
        check(a.alive() and b.alive(), "a daemon died")
        too_many_runs(clsnapd, workdir)
        print("ok: watch (LOCAL_STATE to watchers, released; COMPLETE to "
              "others; scoped to the ids watched; late WATCH; COMPLETE for "
              "a state too big)")
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
        return 1
    finally:
        a.stop()
        b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
