#!/usr/bin/env python3
"""Authenticated connections against real daemons, byte by byte.

  auth.py CLSNAPD WORKDIR raw     a daemon with a secret: HELLO, CLIENT or
                                  garbage before AUTH, a wrong secret, a
                                  replayed AUTH, AUTH twice: each closed with
                                  one log line naming the address and an
                                  ERROR saying why, nothing changed; the
                                  right secret works (Python's hmac)
  auth.py CLSNAPD WORKDIR peers   A and B with different secrets: A's
                                  channel to B fails at once, naming why;
                                  with the same secret it comes up
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile import (Control, Daemon, auth_frame, authed_connect,  # noqa: E402
                     check, configure_pair, closed_by_peer, connect, label, pack,
                     read_challenge, send_quietly, unpack_one, NeedMore,
                     wait_log, log_lines)

EAUTH = -1000 + 20  # CL_EAUTH: the 20th code of common/error.h


def secret_file(workdir, name, data):
    path = os.path.join(workdir, name)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    return path


def replies(s):
    """Every frame the daemon sent before closing s."""
    buf, out = bytearray(), []
    s.settimeout(10)
    while True:
        try:
            m, n = unpack_one(buf)
            del buf[:n]
            out.append(m)
            continue
        except NeedMore:
            pass
        try:
            data = s.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            return out
        if not data:
            return out
        buf += data


def one_line(log, who, reason):
    """Exactly one log line names the connection, with the reason."""
    line = wait_log(log, who, reason)
    n = sum(1 for l in log_lines(log) if who in l)
    check(n == 1, "%d log lines name %s, expected 1: %s" % (n, who, line))


def refused(d, data, reason, secret=None, after_auth=False):
    """Send data (after a correct AUTH if after_auth) on a fresh connection:
    the daemon says ERROR EAUTH with the reason and closes; one log line."""
    if after_auth:
        s, _ = authed_connect(d.addr, secret)
    else:
        s = connect(d.addr, challenge=False)
        ch = read_challenge(s)
        check(ch[2] in (True, 1), "the CHALLENGE does not ask for a secret")
    who = label(s)
    send_quietly(s, data)
    got = replies(s)
    errs = [m for m in got if isinstance(m, list) and m[0] == 31]
    check(errs and errs[0][2] == EAUTH and reason in errs[0][3],
          "expected ERROR EAUTH '%s', got %r" % (reason, got))
    one_line(d.log, who, reason)


def raw(clsnapd, workdir):
    key = b"correct horse\nbattery"
    d = Daemon(clsnapd, workdir, "A", "--secret-file",
               secret_file(workdir, "a.secret", key + b"\n"))
    try:
        c = Control(d.addr, "setup", secret=key)
        st0 = c.status()
        c.close()
        required = "authentication required"
        refused(d, pack([10, "nosecret"]), required)
        refused(d, pack([1, "B", "A", 0, 0, 0]), required)
        refused(d, pack([16, 1]), required)
        # Garbage: not a frame at all.
        s = connect(d.addr)
        who = label(s)
        send_quietly(s, b"\xc1\xc1garbage")
        check(closed_by_peer(s, 10), "garbage before AUTH kept the connection")
        one_line(d.log, who, "malformed message")
        # A wrong secret; the right one with a byte changed.
        s = connect(d.addr, challenge=False)
        ch = read_challenge(s)
        who = label(s)
        send_quietly(s, auth_frame(b"wrong", ch, os.urandom(32)))
        got = replies(s)
        check(got and got[0][0] == 31 and got[0][2] == EAUTH and
              "authentication failed" in got[0][3],
              "a wrong secret answered %r" % (got,))
        one_line(d.log, who, "authentication failed: wrong secret")
        # A replayed handshake: the AUTH of a good connection, recorded and
        # sent on a new one (whose CHALLENGE has another nonce).
        s1, recorded = authed_connect(d.addr, key)
        s1.close()
        refused(d, recorded, "authentication failed: wrong secret")
        # AUTH twice.
        s2, again = authed_connect(d.addr, key)
        s2.close()
        refused(d, again, "a second AUTH", secret=key, after_auth=True)
        # Nothing changed; the right secret still works.
        c = Control(d.addr, "after", secret=key)
        st1 = c.status()
        check(st1 == st0, "refused connections changed the daemon: %r -> %r"
              % (st0, st1))
        c.close()
        check(d.alive(), "the daemon died")
    finally:
        rc = d.stop()
    check(rc == 0, "daemon exited %s" % rc)
    # A daemon without a secret asks for none, and refuses an AUTH.
    d = Daemon(clsnapd, workdir, "Z")
    try:
        s = connect(d.addr, challenge=False)
        ch = read_challenge(s)
        check(ch[2] in (False, 0), "a daemon without a secret asks for one")
        who = label(s)
        send_quietly(s, auth_frame(key, ch, os.urandom(32)))
        got = replies(s)
        check(got and got[0][0] == 31 and "does not authenticate" in got[0][3],
              "AUTH to a daemon without a secret answered %r" % (got,))
        one_line(d.log, who, "does not authenticate")
        c = Control(d.addr, "plain")
        check(c.status()["self"] == "Z", "STATUS without a secret")
        c.close()
    finally:
        d.stop()
    print("ok: raw handshakes: required, garbage, wrong, replayed, twice, "
          "no secret")


def peers(clsnapd, workdir):
    ka, kb = b"secret-a", b"secret-b"
    fa = secret_file(workdir, "pa.secret", ka)
    a = Daemon(clsnapd, workdir, "A", "--secret-file", fa)
    b = Daemon(clsnapd, workdir, "B", "--secret-file",
               secret_file(workdir, "pb.secret", kb))
    try:
        ca, cb = Control(a.addr, "ca", secret=ka), Control(b.addr, "cb",
                                                           secret=kb)
        configure_pair(ca, cb, a.addr, b.addr)
        r = ca.call(12, timeout=5)
        check(r[0] == 31 and "cannot connect A to B" in r[3] and
              "authentication failed" in r[3],
              "CONNECT across different secrets answered %r" % (r,))
        wait_log(b.log, "authentication failed: wrong secret")
        wait_log(a.log, "cannot connect channel A->B", "authentication failed")
        ca.close()
        cb.close()
    finally:
        a.stop()
        b.stop()
    # The same secret: up at once.
    a = Daemon(clsnapd, workdir, "A", "--secret-file", fa)
    b = Daemon(clsnapd, workdir, "B", "--secret-file", fa)
    try:
        ca, cb = Control(a.addr, "ca", secret=ka), Control(b.addr, "cb",
                                                           secret=ka)
        configure_pair(ca, cb, a.addr, b.addr)
        for c in (ca, cb):
            r = c.call(12, timeout=10)
            check(r[0] == 30, "CONNECT with one secret answered %r" % (r,))
        check(ca.call(13, "B", 4)[0] == 30, "SEND A->B refused")
        ca.close()
        cb.close()
    finally:
        a.stop()
        b.stop()
    print("ok: peers with different secrets refuse each other at once; "
          "with one secret they connect")


def main(argv):
    try:
        {"raw": raw, "peers": peers}[argv[3]](argv[1], argv[2])
    except Exception as e:  # noqa: BLE001 (a failed check or a crash)
        print("FAIL: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
