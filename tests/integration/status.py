#!/usr/bin/env python3
"""What `clsnap status` and `clsnap send` say when the cluster is not what
it should be.

  status.py mixed CLSNAP CLSNAPD WORKDIR
      Three daemons configured from two topologies (N1 with one config id,
      N2 and N3 with another), as two `configure` runs at once can leave
      them: N2's CONNECT fails naming the refusal; `status` warns and exits
      1; a send on the refused channel is refused at once with the tokens
      left where they were; a send on a good channel arrives.
  status.py overflow CLSNAP WORKDIR
      Two fake daemons report 2^62 tokens each: the total does not fit, and
      status says so (exit 1) instead of wrapping to a negative number.
  status.py unreachable CLSNAP CLSNAPD WORKDIR
      One server of the cluster file is down: status prints the total of
      the reachable ones, says the in-flight count is unknown, exits 1.
  status.py lists CLSNAP WORKDIR
      Four fake daemons report snapshot ids out of order, with runs, gaps,
      more ranges than a line shows and ids next to 2^64, and channels up
      and down: the table shows each list sorted and as ranges, --brief one
      line per server; both end with the same total line. Every expected
      line is written out here.
"""
import os
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile import Control, Daemon, Fail, FakeServer, check  # noqa: E402


def clsnap(binary, cluster, *args, timeout=20):
    p = subprocess.run([binary, "--cluster", cluster] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def write_cluster(path, entries):
    with open(path, "w") as f:
        for sid, addr in entries:
            f.write("%s %s\n" % (sid, addr))


def configure(c, sid, tokens, outs, ins, cfg):
    r = c.call(11, sid, tokens, int(sid[1]) - 1, 3, 0, 0, 0,
               [list(o) for o in outs], list(ins), cfg)
    check(r[0] == 30, "CONFIGURE %s answered %r" % (sid, r))


def mixed(binary, clsnapd, workdir):
    d = {sid: Daemon(clsnapd, workdir, sid) for sid in ("N1", "N2", "N3")}
    try:
        cluster = os.path.join(workdir, "cluster")
        write_cluster(cluster, [(s, d[s].addr) for s in ("N1", "N2", "N3")])
        c = {s: Control(d[s].addr) for s in d}
        # A ring N1 -> N2 -> N3 -> N1 and back N2 -> N1; N1 from topology 1,
        # N2 and N3 from topology 2.
        configure(c["N1"], "N1", 5, [("N2", d["N2"].addr)], ["N2", "N3"], 1)
        configure(c["N2"], "N2", 5, [("N1", d["N1"].addr),
                                     ("N3", d["N3"].addr)], ["N1"], 2)
        configure(c["N3"], "N3", 5, [("N1", d["N1"].addr)], ["N2"], 2)
        r = c["N2"].call(12, timeout=20)
        check(r[0] == 31 and "cannot connect N2 to N1" in r[3] and
              "configured from another topology" in r[3],
              "CONNECT of N2 answered %r" % (r,))
        rc, out, err = clsnap(binary, cluster, "status")
        check(rc == 1, "status exited %d on a mixed cluster" % rc)
        check("configured from different topologies" in out,
              "status gives no warning:\n" + out)
        rc, out, err = clsnap(binary, cluster, "send", "N2", "N1", "2")
        check(rc == 1 and "N2 refused" in err and "N2->N1" in err,
              "send on the refused channel: exit %d, %r" % (rc, err))
        check(c["N2"].status()["tokens"] == 5,
              "a refused send moved N2's tokens")
        rc, out, err = clsnap(binary, cluster, "send", "N2", "N3", "2")
        check(rc == 0, "send on a good channel failed: %r" % err)
        for _ in range(200):
            if c["N3"].status()["tokens"] == 7:
                break
            threading.Event().wait(0.01)
        check(c["N3"].status()["tokens"] == 7, "N3 did not get the 2 tokens")
        print("ok: mixed topologies refused, reported, no token stranded")
    finally:
        for x in d.values():
            x.stop()


class FakeDaemon(FakeServer):
    """Answers STATUS as a configured server holding `tokens`."""

    def __init__(self, sid, tokens):
        self.sid, self.tokens = sid, tokens
        super().__init__(self.status)

    def status(self, m):
        if m[0] != 16:
            return None
        return [33, m[1], [self.sid, self.tokens, self.tokens, False, True,
                           [], [], [], [], 5, 0, False, False, 0, 0]]


class ListDaemon(FakeServer):
    """Answers STATUS with the given fields (lockstep, channels, ids)."""

    def __init__(self, sid, tokens, lockstep, outs, ins, active, kept):
        self.sid = sid
        self.reply = [sid, tokens, tokens, lockstep, True, outs, ins,
                      active, kept, 5, 0, False, False, 0, 0]
        super().__init__(self.status)

    def status(self, m):
        return [33, m[1], self.reply] if m[0] == 16 else None


def squeezed(text):
    """The lines of text with runs of spaces made one (the columns' widths
    depend on the fake servers' port numbers)."""
    return [" ".join(line.split()) for line in text.splitlines()]


def lists(binary, workdir):
    top = 2 ** 64 - 1
    fakes = [
        ListDaemon("N1", 7, False, [["N2", 3, True, 0]], [["N2", 1, True, 0]],
                   [1000009, 1000001, 1000005],
                   [1000012, 1000010, 1000011, 7, 1000000, 1000003, 1000001,
                    1000002, 5, 6]),
        ListDaemon("N2", 3, True, [["N1", 1, False, 0]], [["N1", 3, True, 2]],
                   [1000000 + 2 * k for k in range(19, -1, -1)], []),
        ListDaemon("N3", 0, False, [], [],
                   [19, 17, 18, 15, 13, 11, 9, 7, 5, 3, 1],
                   [16, 14, 12, 10, 8, 6, 4, 2]),
        ListDaemon("N4", 0, False, [], [], [], [top, 0, top - 1]),
    ]
    cluster = os.path.join(workdir, "cluster")
    write_cluster(cluster, [(f.sid, f.addr) for f in fakes])
    a = [f.addr for f in fakes]
    total = "total: 10 tokens on servers of 10 configured (0 in flight)"
    rc, out, err = clsnap(binary, cluster, "status")
    check(rc == 0, "status exited %d: %s" % (rc, err))
    want = [
        "SERVER ADDRESS TOKENS MODE ACTIVE KEPT",
        "N1 %s 7 free 3 10" % a[0],
        "-> N2 sent 3 connected queued 0 B",
        "<- N2 recv 1 connected held 0",
        "3 in progress: 1000001, 1000005, 1000009",
        "10 kept: 5..7, 1000000..1000003, 1000010..1000012",
        "N2 %s 3 lockstep 20 0" % a[1],
        "-> N1 sent 1 DISCONNECTED queued 0 B",
        "<- N1 recv 3 connected held 2",
        "20 in progress: 1000000, 1000002, 1000004, 1000006, 1000008, "
        "1000010, 1000012, 1000014, ... (12 more)",
        "N3 %s 0 free 11 8" % a[2],
        "11 in progress: 1, 3, 5, 7, 9, 11, 13, 15, ... (3 more)",
        "8 kept: 2, 4, 6, 8, 10, 12, 14, 16",
        "N4 %s 0 free 0 3" % a[3],
        "3 kept: 0, 18446744073709551614..18446744073709551615",
        total,
    ]
    got = squeezed(out)
    check(got == [" ".join(w.split()) for w in want],
          "status printed:\n%s\nexpected (spaces squeezed):\n%s" %
          (out, "\n".join(want)))
    # The id lines keep their two-space indent, and the total its bytes.
    check("\n  10 kept: 5..7, 1000000..1000003, 1000010..1000012\n" in out,
          "kept line not indented by two spaces:\n" + out)
    check(out.endswith("\n" + total + "\n"), "total line:\n" + out)
    rc, out, err = clsnap(binary, cluster, "status", "--brief")
    check(rc == 0, "status --brief exited %d: %s" % (rc, err))
    want = [
        "N1 %s 7 tokens free 3 in progress 10 kept connected" % a[0],
        "N2 %s 3 tokens lockstep 20 in progress 0 kept 1 of 2 channels down"
        % a[1],
        "N3 %s 0 tokens free 11 in progress 8 kept no channels" % a[2],
        "N4 %s 0 tokens free 0 in progress 3 kept no channels" % a[3],
        total,
    ]
    check(squeezed(out) == want, "status --brief printed:\n%s\nexpected "
          "(spaces squeezed):\n%s" % (out, "\n".join(want)))
    check(out.endswith("\n" + total + "\n"), "--brief total line:\n" + out)
    print("ok: status lists ids sorted as ranges; --brief: " +
          out.splitlines()[1])


def overflow(binary, workdir):
    fakes = [FakeDaemon("N1", 1 << 62), FakeDaemon("N2", 1 << 62)]
    cluster = os.path.join(workdir, "cluster")
    write_cluster(cluster, [(f.sid, f.addr) for f in fakes])
    rc, out, err = clsnap(binary, cluster, "status")
    check(rc == 1, "status exited %d" % rc)
    check("total: unknown" in out and "-" not in out.split("total:")[1],
          "status output:\n" + out)
    check("runtime error" not in err, "sanitizer: " + err)
    rc, out, err = clsnap(binary, cluster, "status", "--json")
    check(rc == 1 and '"tokens": null' in out, "status --json:\n" + out)
    print("ok: an overflowing total is reported, not wrapped")


def unreachable(binary, clsnapd, workdir):
    d = Daemon(clsnapd, workdir, "N1")
    try:
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        port = dead.getsockname()[1]
        dead.close()  # nothing listens there now
        c = Control(d.addr)
        r = c.call(11, "N1", 7, 0, 2, 0, 0, 0, [], [], 3)
        check(r[0] == 30, "CONFIGURE answered %r" % (r,))
        cluster = os.path.join(workdir, "cluster")
        write_cluster(cluster, [("N1", d.addr), ("N2", "127.0.0.1:%d" % port)])
        rc, out, err = clsnap(binary, cluster, "status")
        check(rc == 1, "status exited %d" % rc)
        line = [l for l in out.splitlines() if l.startswith("total:")]
        check(line and "in flight unknown: 1 server unreachable" in line[0]
              and "-" not in line[0], "status output:\n" + out)
        print("ok: " + line[0])
    finally:
        d.stop()


def main(argv):
    try:
        if argv[1] == "mixed":
            mixed(argv[2], argv[3], argv[4])
        elif argv[1] == "overflow":
            overflow(argv[2], argv[3])
        elif argv[1] == "lists":
            lists(argv[2], argv[3])
        elif argv[1] == "unreachable":
            unreachable(argv[2], argv[3], argv[4])
        else:
            print(__doc__)
            return 2
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
