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
                           [], [], [], [], 5]]


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
