#!/usr/bin/env python3
"""The daemon's in-place parser for free-running peer channels (the load
path of `clsnap bench`) against the generic decoder's rules.

One clsnapd (A, free-running, inbound peers P1..P5, no outbound) is driven
over raw sockets; each Pi connection is one scenario:
  P1  the fast path only: 70000 one-token messages (seq crossing every
      integer width) plus some n > 1 and some non-minimal unsigned forms,
      cut into random pieces so that frames straddle reads;
  P2  a frame only the generic decoder takes (n as a signed int8): the
      connection falls back to the decoder and goes on working;
  P3  a sequence gap: refused, the channel closed, the reason logged;
  P4  bytes that are not msgpack after good frames: closed by the decoder's
      rule, with its message;
  P5  seq 0 in the fast form: refused by the decoder's rule.
STATUS tells what A accepted on each channel. Then SHUTDOWN: A must exit
0, and its log must hold no sanitizer report (an ASan/UBSan build writes
them there, leaks at exit included). On failure the log is kept and its
path printed. Standard library only.

Usage: fast_path.py CLSNAPD
"""
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time


# What an ASan/UBSan build of the daemon writes to its stderr (the log).
SANITIZER_REPORTS = ["ERROR: AddressSanitizer", "runtime error:",
                     "LeakSanitizer"]
# Set once the daemon has a log, so that a failure keeps it and names it.
kept_log = None


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    if kept_log is not None:
        print("daemon log kept: " + kept_log, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


# ---- msgpack, just enough -------------------------------------------------

def uint(v):
    """Shortest unsigned form, as msgpack-c writes it."""
    if v <= 0x7F:
        return bytes([v])
    if v <= 0xFF:
        return b"\xcc" + struct.pack(">B", v)
    if v <= 0xFFFF:
        return b"\xcd" + struct.pack(">H", v)
    if v <= 0xFFFFFFFF:
        return b"\xce" + struct.pack(">I", v)
    return b"\xcf" + struct.pack(">Q", v)


def pack(o):
    if isinstance(o, bool):
        return b"\xc3" if o else b"\xc2"
    if isinstance(o, int):
        check(o >= 0, "negative ints not needed here")
        return uint(o)
    if isinstance(o, str):
        b = o.encode()
        check(len(b) < 32, "short strings only")
        return bytes([0xA0 | len(b)]) + b
    if isinstance(o, list):
        check(len(o) < 16, "short arrays only")
        return bytes([0x90 | len(o)]) + b"".join(pack(x) for x in o)
    fail("cannot pack %r" % (o,))


def unpack(buf, i=0):
    """One object from buf at i: (object, next index), or None if short."""
    if i >= len(buf):
        return None
    b = buf[i]
    if b <= 0x7F:
        return b, i + 1
    if 0x90 <= b <= 0x9F or b in (0xDC, 0xDD):
        if b <= 0x9F:
            n, j = b & 0x0F, i + 1
        elif b == 0xDC:
            if i + 3 > len(buf):
                return None
            n, j = struct.unpack(">H", buf[i + 1:i + 3])[0], i + 3
        else:
            if i + 5 > len(buf):
                return None
            n, j = struct.unpack(">I", buf[i + 1:i + 5])[0], i + 5
        out = []
        for _ in range(n):
            r = unpack(buf, j)
            if r is None:
                return None
            out.append(r[0])
            j = r[1]
        return out, j
    if 0xA0 <= b <= 0xBF or b in (0xD9, 0xDA):
        if b <= 0xBF:
            n, j = b & 0x1F, i + 1
        elif b == 0xD9:
            if i + 2 > len(buf):
                return None
            n, j = buf[i + 1], i + 2
        else:
            if i + 3 > len(buf):
                return None
            n, j = struct.unpack(">H", buf[i + 1:i + 3])[0], i + 3
        if j + n > len(buf):
            return None
        return buf[j:j + n].decode(), j + n
    if b in (0xC2, 0xC3):
        return b == 0xC3, i + 1
    if b == 0xC4:  # bin 8 (a CHALLENGE's nonce)
        if i + 2 > len(buf) or i + 2 + buf[i + 1] > len(buf):
            return None
        return bytes(buf[i + 2:i + 2 + buf[i + 1]]), i + 2 + buf[i + 1]
    sizes = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
             0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
    if b in sizes:
        k = struct.calcsize(sizes[b])
        if i + 1 + k > len(buf):
            return None
        return struct.unpack(sizes[b], buf[i + 1:i + 1 + k])[0], i + 1 + k
    if b == 0xC0:
        return None, i + 1
    if b in (0xC2, 0xC3):
        return b == 0xC3, i + 1
    fail("unexpected msgpack byte 0x%02x in a reply" % b)


class Control:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b""
        self.req = 0
        self.s.sendall(pack([10, "fastpath"]))

    def call(self, typ, *fields):
        self.req += 1
        self.s.sendall(pack([typ, self.req] + list(fields)))
        while True:
            r = unpack(self.buf)
            if r is not None:
                self.buf = self.buf[r[1]:]
                m = r[0]
                if m[0] in (5, 40, 41):  # CHALLENGE, COMPLETE, NOTICE
                    continue
                check(m[1] == self.req, "reply to %d: %r" % (self.req, m))
                return m
            data = self.s.recv(65536)
            check(data, "daemon closed the control connection")
            self.buf += data

    def received(self):
        """{peer: (received, connected)} and the tokens held."""
        m = self.call(16)
        check(m[0] == 33, "STATUS answered %r" % (m,))
        st = m[2]
        return {p[0]: (p[1], p[2]) for p in st[6]}, st[1]


def token(seq, n=1):
    return b"\x93\x02" + uint(seq) + uint(n)


def send_in_pieces(s, data, rng):
    i = 0
    while i < len(data):
        k = rng.choice([1, 2, 3, 5, 7, 13, 64, 1000, 40000])
        s.sendall(data[i:i + k])
        i += k


def wait_for(cond, what, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.02)
    fail("timed out waiting for " + what)


def stop(c, p):
    """SHUTDOWN over the control connection; A must say OK and exit. The
    30 s match the launcher's grace for a daemon that acknowledged
    SHUTDOWN (an ASan build's leak scan at exit is slow). Returns the exit
    status."""
    r = c.call(18)
    check(r[0] == 30, "SHUTDOWN answered %r" % (r,))
    try:
        return p.wait(30)
    except subprocess.TimeoutExpired:
        fail("daemon still running 30 s after SHUTDOWN")


def main():
    global kept_log
    clsnapd = sys.argv[1]
    work = tempfile.mkdtemp(prefix="clsnap-fastpath.")
    rng = random.Random(7)
    kept_log = work + "/A.log"
    log = open(kept_log, "w+")
    p = subprocess.Popen([clsnapd, "--id", "A", "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = p.stdout.readline().split()
        check(len(line) == 3 and line[0] == "READY", "no READY: %r" % line)
        addr = line[2]
        c = Control(addr)
        peers = ["P1", "P2", "P3", "P4", "P5"]
        r = c.call(11, "A", 0, 0, 6, 0, 0, 0, [], peers, 0)
        check(r[0] == 30, "CONFIGURE answered %r" % (r,))
        r = c.call(12)
        check(r[0] == 30, "CONNECT answered %r" % (r,))
        host, port = addr.rsplit(":", 1)
        socks = {}
        for pid in peers:
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(pack([1, pid, "A", 0, 0, 0]))
            socks[pid] = s
        # HELLO alone first: the daemon switches to the fast parser once its
        # decoder is empty.
        wait_for(lambda: all(v[1] for v in c.received()[0].values()),
                 "all channels up")

        # P1: fast forms only, cut anywhere.
        frames, tokens = [], 0
        for seq in range(1, 70001):
            n = 1
            if seq % 997 == 0:
                n = 5
            if seq % 1009 == 0:
                n = 300  # two-byte n
            f = token(seq, n)
            if seq % 1013 == 0 and seq <= 0xFFFF:
                # non-minimal but fast forms: seq as uint32, n as uint8
                f = b"\x93\x02\xce" + struct.pack(">I", seq) + b"\xcc" + bytes([n])
            frames.append(f)
            tokens += n
        send_in_pieces(socks["P1"], b"".join(frames), rng)

        # P2: fast, then n as int8 (decoder only), then more of both forms.
        data = token(1) + token(2) + b"\x93\x02\x03\xd0\x04" + token(4, 2)
        data += b"".join(token(s) for s in range(5, 2001))
        send_in_pieces(socks["P2"], data, rng)
        p2_tokens = 1 + 1 + 4 + 2 + (2000 - 4)

        # P3: a gap after two good frames.
        socks["P3"].sendall(token(1) + token(2) + token(4))
        # P4: not msgpack at all after one good frame.
        socks["P4"].sendall(token(1) + b"\xc1\xc1\xc1")
        # P5: seq 0 in the fast form.
        socks["P5"].sendall(token(1) + b"\x93\x02\x00\x01")

        def settled():
            got, _ = c.received()
            return (got["P1"][0] == 70000 and got["P2"][0] == 2000 and
                    not got["P3"][1] and not got["P4"][1] and
                    not got["P5"][1])
        wait_for(settled, "every channel to settle")
        got, held = c.received()
        check(got["P3"][0] == 2, "P3 accepted %d messages" % got["P3"][0])
        check(got["P4"][0] == 1, "P4 accepted %d messages" % got["P4"][0])
        check(got["P5"][0] == 1, "P5 accepted %d messages" % got["P5"][0])
        check(got["P1"][1] and got["P2"][1], "a good channel was closed")
        check(held == tokens + p2_tokens + 2 + 1 + 1,
              "A holds %d tokens, expected %d" %
              (held, tokens + p2_tokens + 4))
        log.flush()
        text = open(work + "/A.log").read()
        for needle in ["TOKEN seq 4 out of order (expected 3)",
                       "lost channel P4->A: protocol error: malformed message",
                       "lost channel P5->A: protocol error: malformed message"]:
            check(needle in text, "log lacks %r:\n%s" % (needle, text))
        check(p.poll() is None, "daemon died")
        code = stop(c, p)
    except (OSError, ValueError) as e:
        fail("%s; daemon log:\n%s" % (e, open(kept_log).read()))
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()
    text = open(kept_log).read()
    found = [r for r in SANITIZER_REPORTS if r in text]
    # The report first: a leak also makes the exit status nonzero.
    check(not found, "sanitizer report in the daemon log (%s):\n%s"
          % (", ".join(found), text[-4000:]))
    check(code == 0, "daemon exited with status %d after SHUTDOWN%s"
          % (code, " (signal %d)" % -code if code < 0 else ""))
    print("ok: %d + %d messages accepted, 3 bad channels refused, exit 0"
          % (got["P1"][0], got["P2"][0]))
    shutil.rmtree(work)


main()
