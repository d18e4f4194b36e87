#!/usr/bin/env python3
"""Hostile input against live clsnapd daemons, over raw TCP on 127.0.0.1.

  hostile.py garbage RUNDIR CLSNAP TOTAL   attack server N1 of a running
                                           3-node cluster (deploy/cluster.sh,
                                           daemons with --frame-timeout 1500)
  hostile.py input-cap CLSNAPD WORKDIR     one daemon with --input-cap 4096
  hostile.py write-cap CLSNAPD WORKDIR     one daemon with --write-cap 4096 and
                                           an outbound peer that never reads
  hostile.py reply-cap CLSNAPD WORKDIR     a control client that never reads
                                           its replies (64 MiB cap)
  hostile.py collect-cap CLSNAPD WORKDIR   COLLECT with release over the reply
                                           cap: the state stays kept
  hostile.py active-cap CLSNAPD WORKDIR    50000 MARKERs with fresh ids from a
                                           peer: at most 1024 in progress
  hostile.py connect-timeout CLSNAPD WORKDIR  CONNECT to a peer whose listen
                                           backlog is full answers in ~10 s

Every case asserts the real outcome: the daemon closed the bad connection
(recv gives b'' or a reset), its log has a line naming that connection and
why, the daemon is still running, and (garbage) a checked snapshot of the
whole cluster still passes with every token accounted for.

Standard library only; the msgpack encoder and decoder below cover just what
the clsnap wire format uses (ints, str, bin, arrays, maps, nil, bools,
floats). Field layouts: proto/wire.h and docs/PROTOCOL.md.
"""
import hashlib
import hmac
import os
import random
import re
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

# Error codes (common/error.h: CL_E_FIRST_ = -1000, then in this order).
ENOMEM, EINVAL, EPROTO, ETOOBIG, ETYPE, ENOTOKENS, ENOPEER, EEXIST, ENOENT, \
    EAGAIN, ESEQ, EDUP, ESTATE, EFULL, ERANGE, EIO, ETIMEOUT, ELOST = \
    range(-999, -981)

FRAME_TIMEOUT_MS = 1500  # what hostile.sh passes to the daemons


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


# ---- msgpack --------------------------------------------------------------

def pack(o):
    """Encode o: None, bool, int, float, str, bytes, list/tuple, dict."""
    if o is None:
        return b"\xc0"
    if o is True:
        return b"\xc3"
    if o is False:
        return b"\xc2"
    if isinstance(o, int):
        if 0 <= o < 128:
            return bytes([o])
        if -32 <= o < 0:
            return struct.pack("b", o)
        if o >= 0:
            for code, fmt, lim in ((0xcc, ">B", 1 << 8), (0xcd, ">H", 1 << 16),
                                   (0xce, ">I", 1 << 32), (0xcf, ">Q", 1 << 64)):
                if o < lim:
                    return bytes([code]) + struct.pack(fmt, o)
            raise ValueError("int too large")
        for code, fmt, lim in ((0xd0, ">b", 1 << 7), (0xd1, ">h", 1 << 15),
                               (0xd2, ">i", 1 << 31), (0xd3, ">q", 1 << 63)):
            if o >= -lim:
                return bytes([code]) + struct.pack(fmt, o)
        raise ValueError("int too small")
    if isinstance(o, float):
        return b"\xcb" + struct.pack(">d", o)
    if isinstance(o, str):
        b = o.encode()
        n = len(b)
        if n < 32:
            return bytes([0xa0 | n]) + b
        if n < 256:
            return b"\xd9" + bytes([n]) + b
        if n < 65536:
            return b"\xda" + struct.pack(">H", n) + b
        return b"\xdb" + struct.pack(">I", n) + b
    if isinstance(o, (bytes, bytearray)):
        n = len(o)
        if n < 256:
            return b"\xc4" + bytes([n]) + bytes(o)
        return b"\xc6" + struct.pack(">I", n) + bytes(o)
    if isinstance(o, (list, tuple)):
        n = len(o)
        if n < 16:
            head = bytes([0x90 | n])
        elif n < 65536:
            head = b"\xdc" + struct.pack(">H", n)
        else:
            head = b"\xdd" + struct.pack(">I", n)
        return head + b"".join(pack(x) for x in o)
    if isinstance(o, dict):
        n = len(o)
        head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
        return head + b"".join(pack(k) + pack(v) for k, v in o.items())
    raise TypeError(type(o))


class NeedMore(Exception):
    pass


def unpack_one(buf, i=0):
    """Decode one object at buf[i:]; returns (object, next index)."""
    def need(k):
        if i + k > len(buf):
            raise NeedMore()
    need(1)
    b = buf[i]
    i += 1
    if b < 0x80:
        return b, i
    if b >= 0xe0:
        return b - 256, i
    if 0xa0 <= b <= 0xbf or b in (0xd9, 0xda, 0xdb):
        if b <= 0xbf:
            n = b & 0x1f
        else:
            k = {0xd9: 1, 0xda: 2, 0xdb: 4}[b]
            need(k)
            n = int.from_bytes(buf[i:i + k], "big")
            i += k
        need(n)
        return bytes(buf[i:i + n]).decode("utf-8", "replace"), i + n
    if 0x90 <= b <= 0x9f or b in (0xdc, 0xdd):
        if b <= 0x9f:
            n = b & 0x0f
        else:
            k = 2 if b == 0xdc else 4
            need(k)
            n = int.from_bytes(buf[i:i + k], "big")
            i += k
        out = []
        for _ in range(n):
            x, i = unpack_one(buf, i)
            out.append(x)
        return out, i
    if 0x80 <= b <= 0x8f:
        out = {}
        for _ in range(b & 0x0f):
            k, i = unpack_one(buf, i)
            v, i = unpack_one(buf, i)
            out[k] = v
        return out, i
    if b == 0xc0:
        return None, i
    if b in (0xc2, 0xc3):
        return b == 0xc3, i
    fixed = {0xcc: ">B", 0xcd: ">H", 0xce: ">I", 0xcf: ">Q",
             0xd0: ">b", 0xd1: ">h", 0xd2: ">i", 0xd3: ">q",
             0xca: ">f", 0xcb: ">d"}
    if b in fixed:
        k = struct.calcsize(fixed[b])
        need(k)
        return struct.unpack(fixed[b], bytes(buf[i:i + k]))[0], i + k
    if b in (0xc4, 0xc5, 0xc6):
        k = {0xc4: 1, 0xc5: 2, 0xc6: 4}[b]
        need(k)
        n = int.from_bytes(buf[i:i + k], "big")
        i += k
        need(n)
        return bytes(buf[i:i + n]), i + n
    raise ValueError("unsupported msgpack byte 0x%02x" % b)


# ---- sockets, logs, processes ---------------------------------------------

def read_challenge(s):
    """The daemon's first frame on every connection: CHALLENGE [5, nonce,
    required]. Returns it."""
    buf = bytearray()
    while True:
        try:
            m, n = unpack_one(buf)
            check(n == len(buf), "bytes after CHALLENGE")
            check(isinstance(m, list) and m[0] == 5 and len(m) == 3 and
                  len(m[1]) == 32, "first frame %r is not a CHALLENGE" % (m,))
            return m
        except NeedMore:
            data = s.recv(4096)
            check(data != b"", "daemon closed before its CHALLENGE")
            buf += data


def auth_frame(secret, challenge, nonce_c):
    """AUTH for a CHALLENGE: HMAC-SHA-256 as docs/PROTOCOL.md says, by
    Python's hmac (not the daemon's libsodium)."""
    mac = hmac.new(secret, b"clsnap-auth-client" + bytes(challenge[1]) +
                   nonce_c, hashlib.sha256).digest()
    return pack([6, nonce_c, mac])


def authed_connect(addr, secret):
    """A connection that proved it knows secret and checked the daemon's
    AUTH_OK; returns (socket, the AUTH bytes it sent)."""
    s = connect(addr, challenge=False)
    ch = read_challenge(s)
    check(ch[2] is True or ch[2] == 1, "the daemon asks for no secret")
    nonce_c = os.urandom(32)
    auth = auth_frame(secret, ch, nonce_c)
    s.sendall(auth)
    buf = bytearray()
    while True:
        try:
            m, n = unpack_one(buf)
            break
        except NeedMore:
            data = s.recv(4096)
            check(data != b"", "daemon closed after AUTH")
            buf += data
    check(n == len(buf), "bytes after AUTH_OK")
    check(m[0] == 7, "AUTH answered %r" % (m,))
    want = hmac.new(secret, b"clsnap-auth-server" + nonce_c + bytes(ch[1]),
                    hashlib.sha256).digest()
    check(bytes(m[1]) == want, "AUTH_OK does not prove the secret")
    return s, auth


def connect(addr, challenge=True):
    """A connection to a daemon, its CHALLENGE read (a daemon without a
    secret asks for no proof: the first frame can follow)."""
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if challenge:
        read_challenge(s)
    return s


def label(s):
    """The address the daemon logs for this connection."""
    h, p = s.getsockname()[:2]
    return "%s:%d" % (h, p)


def send_quietly(s, data):
    """sendall that tolerates the daemon closing first (over-cap input)."""
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def closed_by_peer(s, timeout):
    """True once the daemon closed s (EOF or reset) within timeout seconds;
    anything it sent before closing is read and discarded."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        s.settimeout(left)
        try:
            if s.recv(65536) == b"":
                return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True


def closed_now(s):
    """True if the daemon has already closed s; reads what is waiting."""
    s.setblocking(False)
    try:
        while True:
            if s.recv(65536) == b"":
                return True
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        s.setblocking(True)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Fail("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(0.02)


def log_lines(path):
    with open(path, errors="replace") as f:
        return f.read().splitlines()


def wait_log(path, *needles, timeout=10):
    """The first log line containing every needle (str or compiled regex)."""
    def find():
        for line in log_lines(path):
            if all((n.search(line) if hasattr(n, "search") else n in line)
                   for n in needles):
                return line
        return None
    try:
        return wait_for(find, timeout, "a log line with %r in %s" %
                        (needles, path))
    except Fail:
        tail = "\n".join(log_lines(path)[-15:])
        raise Fail("no line with %r in %s; it ends:\n%s" % (needles, path, tail))


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Control:
    """A control connection: CLIENT first, then requests with req ids."""

    def __init__(self, addr, name="hostile", secret=None):
        self.s = authed_connect(addr, secret)[0] if secret else connect(addr)
        self.buf = bytearray()
        self.req = 0
        self.s.sendall(pack([10, name]))

    def send(self, msg):
        self.s.sendall(pack(msg))

    def next_msg(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            try:
                m, n = unpack_one(self.buf)
                del self.buf[:n]
                return m
            except NeedMore:
                pass
            left = deadline - time.monotonic()
            check(left > 0, "no reply from the daemon within %s s" % timeout)
            self.s.settimeout(left)
            try:
                data = self.s.recv(1 << 20)
            except socket.timeout:
                continue
            check(data != b"", "daemon closed the control connection")
            self.buf += data

    def call(self, typ, *fields, timeout=10):
        """Send [typ, req, fields...] and return the reply echoing req
        (notifications in between are skipped)."""
        self.req += 1
        req = self.req
        self.send([typ, req] + list(fields))
        while True:
            m = self.next_msg(timeout)
            if isinstance(m, list) and len(m) > 1 and \
                    m[0] in (30, 31, 32, 33, 34) \
                    and m[1] == req:
                return m

    def status(self):
        r = self.call(16)
        check(r[0] == 33, "STATUS answered with %r" % (r,))
        st = r[2]
        return {"self": st[0], "tokens": st[1], "initial": st[2],
                "out": st[5], "in": st[6], "active": st[7], "kept": st[8],
                "config": st[9]}

    def close(self):
        self.s.close()


class FakeServer:
    """Stands in for a daemon towards clsnap: listens on 127.0.0.1 (addr)
    and answers every frame m of every connection with answer(m), a message
    to send back or None."""

    def __init__(self, answer):
        self.answer = answer
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.addr = "127.0.0.1:%d" % self.ls.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, s):
        buf = bytearray()
        s.sendall(pack([5, bytes(32), False]))  # a daemon speaks first
        with s:
            while True:
                try:
                    m, n = unpack_one(buf)
                except NeedMore:
                    data = s.recv(1 << 16)
                    if not data:
                        return
                    buf += data
                    continue
                del buf[:n]
                reply = self.answer(m)
                if reply is not None:
                    s.sendall(pack(reply))


def read_cluster(rundir):
    servers = {}
    for line in open(os.path.join(rundir, "cluster")):
        line = line.strip()
        if line and not line.startswith("#"):
            sid, addr = line.split()
            servers[sid] = addr
    return servers


def snap_tokens(path):
    """Tokens in a .snap file: servers plus recorded messages."""
    total = 0
    lines = [l.split() for l in open(path) if l.strip()]
    for f in lines[1:]:
        if len(f) == 3 and f[2].startswith("token("):
            total += int(f[2][6:-1])
        elif len(f) == 2:
            total += int(f[1])
    return total


# ---- garbage against a live cluster ---------------------------------------

class Garbage:
    def __init__(self, rundir, clsnap, total):
        self.rundir, self.clsnap, self.total = rundir, clsnap, int(total)
        self.servers = read_cluster(rundir)
        self.addr = self.servers["N1"]
        self.log = os.path.join(rundir, "N1.log")
        self.pids = {sid: int(open(os.path.join(rundir, sid + ".pid")).read())
                     for sid in self.servers}
        self.nsnap = 0
        # HELLO carries the topology's config id: the daemons' own.
        c = Control(self.addr)
        self.cfg = c.status()["config"]
        c.close()

    def hello(self, src, dst, cfg=None, incarnation=0):
        return pack([1, src, dst, self.cfg if cfg is None else cfg,
                     incarnation, 0])

    def cluster_ok(self):
        """Every daemon runs and a checked snapshot accounts for every
        token."""
        for sid, pid in self.pids.items():
            check(alive(pid), "daemon %s (pid %d) is gone" % (sid, pid))
        self.nsnap += 1
        # Traffic on the channels into and out of N1 first, so the snapshot
        # also checks that they still carry tokens in order.
        src, dst = ("N2", "N1") if self.nsnap % 2 else ("N1", "N2")
        p = subprocess.run([self.clsnap, "--cluster",
                            os.path.join(self.rundir, "cluster"), "send", src,
                            dst, "1"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        check(p.returncode == 0, "send %s %s 1 failed: %s" % (src, dst, p.stdout))
        d = tempfile.mkdtemp(prefix="snap%d." % self.nsnap,
                             dir=os.environ.get("WORK"))
        p = subprocess.run([self.clsnap, "--cluster",
                            os.path.join(self.rundir, "cluster"), "snapshot",
                            "N1", "--snap-dir", d, "--timeout", "20"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        check(p.returncode == 0, "snapshot after the attack failed (exit %d):\n%s"
              % (p.returncode, p.stdout))
        files = os.listdir(d)
        check(len(files) == 1, "expected one .snap file, got %r" % files)
        got = snap_tokens(os.path.join(d, files[0]))
        check(got == self.total, "snapshot holds %d tokens, topology has %d"
              % (got, self.total))

    def expect_refused(self, data, *reasons, timeout=10):
        """Send data on a fresh connection; the daemon must close it and log
        a line naming the connection with one of the reasons."""
        s = connect(self.addr)
        who = label(s)
        send_quietly(s, data)
        check(closed_by_peer(s, timeout),
              "daemon did not close %s after %d bytes" % (who, len(data)))
        s.close()
        return self.expect_line(who, reasons)

    def expect_line(self, who, reasons, timeout=10):
        pat = re.compile(r"\b%s\b.*(%s)" % (re.escape(who),
                                         "|".join(re.escape(r) for r in reasons)))
        return wait_log(self.log, pat, timeout=timeout)

    # Each case: attack, then the whole cluster must still work.

    def case_random_bytes(self):
        rng = random.Random(418)
        socks = []
        for k in range(24):
            size = rng.choice([1, 2, 7, 64, 1000, 4096, 65536])
            data = bytes(rng.getrandbits(8) for _ in range(size))
            s = connect(self.addr)
            send_quietly(s, data)
            socks.append((s, label(s), data))
        # Some random prefixes are valid but unfinished msgpack: those wait
        # for the frame timeout, the rest fail at once.
        for s, who, data in socks:
            check(closed_by_peer(s, FRAME_TIMEOUT_MS / 1000 * 2 + 5),
                  "daemon kept %s open after %d random bytes beginning %s"
                  % (who, len(data), data[:8].hex()))
            s.close()
            self.expect_line(who, ["malformed message", "unknown message type",
                                   "size cap", "input cap",
                                   "no complete first frame",
                                   "expected HELLO or CLIENT"])

    def case_wrong_shape(self):
        shapes = [5, "hello", {"a": 1}, [], [1], [1, 5, 6], [1, "N2"],
                  [1, "N2", "N1", "extra"], [10], [10, 7], ["x", 1], [1.5],
                  [1, "bad id!", "N1"], [1, "", "N1"], [2, 0, 5], [2, 1, 0],
                  [2, 1, -5], [3, "x"], None, True, b"\x01\x02",
                  [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]
        for shape in shapes:
            self.expect_refused(pack(shape), "malformed message")
        # Byte-level: 0xc1 is never used; 10000 nested arrays.
        self.expect_refused(b"\xc1", "malformed message")
        self.expect_refused(b"\x91" * 10000, "malformed message")

    def case_unknown_type(self):
        for shape in ([99, 1, 2], [0], [43, "x"], [200], [9, 1], [20, 1, 1],
                      [35, 1, 2]):
            self.expect_refused(pack(shape), "unknown message type")

    def case_over_cap(self):
        # A str frame larger than the 1 MiB default cap, and an array header
        # declaring more elements than the cap can hold: refused from the
        # header alone.
        self.expect_refused(pack([10, "x" * (2 << 20)]), "size cap", "input cap")
        self.expect_refused(b"\xdd" + struct.pack(">I", 1 << 20) + b"\x01",
                            "size cap", "input cap")
        self.expect_refused(b"\xdd\xff\xff\xff\xff", "malformed message",
                            "size cap", "input cap")

    def case_hello(self):
        self.expect_refused(self.hello("N9", "N1"),
                            "HELLO from N9, which has no channel to N1")
        self.expect_refused(self.hello("N1", "N1"),
                            "HELLO from N1, which has no channel to N1")
        self.expect_refused(self.hello("N2", "N3"),
                            "HELLO from N2 is addressed to N3, this is N1")
        # Another topology's daemon (another config id) is refused, and is
        # told why.
        s = connect(self.addr)
        who = label(s)
        send_quietly(s, self.hello("N2", "N1", self.cfg ^ 1))
        reply = b""
        s.settimeout(10)
        try:
            while True:
                data = s.recv(4096)
                if not data:
                    break
                reply += data
        except OSError:
            pass
        s.close()
        check(b"configured from another topology" in reply,
              "a refused peer was not told why: %r" % reply[:80])
        self.expect_line(who, ["configured from another topology"])
        # N2->N1 is up: a HELLO for it from another process (not the real
        # N2's incarnation) must not take it over (cluster_ok takes a
        # snapshot over that channel).
        self.expect_refused(self.hello("N2", "N1"),
                            "HELLO for channel N2->N1 from another N2 "
                            "process")
        self.expect_refused(self.hello("N2", "N1") + pack([2, 1, 5]),
                            "HELLO for channel N2->N1 from another N2 "
                            "process")

    def case_before_hello(self):
        self.expect_refused(pack([2, 1, 5]), "first frame is TOKEN")
        self.expect_refused(pack([3, 7]), "first frame is MARKER")
        self.expect_refused(pack([16, 1]), "first frame is STATUS")
        self.expect_refused(pack([40, 1, "N1"]), "first frame is COMPLETE")

    def case_half_frame(self):
        frame = self.hello("N2", "N1")
        t0 = time.monotonic()
        self.expect_refused(frame[:3], "no complete first frame within",
                            timeout=FRAME_TIMEOUT_MS / 1000 * 2 + 5)
        check(time.monotonic() - t0 >= FRAME_TIMEOUT_MS / 1000 * 0.9,
              "half frame closed before the frame timeout")
        self.expect_refused(b"", "no complete first frame within",
                            timeout=FRAME_TIMEOUT_MS / 1000 * 2 + 5)
        # On a control connection: a request cut short.
        c = Control(self.addr)
        who = label(c.s)
        st = c.status()
        check(st["self"] == "N1", "STATUS names %r" % st["self"])
        c.s.sendall(pack([16, 99])[:1])
        check(closed_by_peer(c.s, FRAME_TIMEOUT_MS / 1000 * 2 + 5),
              "daemon kept a control connection with half a frame open")
        self.expect_line(who, ["frame incomplete for"])
        c.close()

    def case_control(self):
        """Refused control requests change nothing and keep the connection;
        garbage after CLIENT closes it."""
        c = Control(self.addr)
        before = c.status()
        tokens = before["tokens"]
        probes = [
            ((13, "N2", tokens + 1), ENOTOKENS, "cannot send"),
            ((13, "N9", 1), ENOPEER, "no channel to N9"),
            ((13, "N2", 0), EINVAL, "at least 1"),
            ((13, "N1", 1), ENOPEER, "no channel to N1"),
            ((17, "N2"), ESTATE, "lockstep"),
            ((15, 987654321, 0), ENOENT, "unknown"),
            ((11, "N1", 5, 0, 3, 0, 0, 0, [], [], 0), ESTATE,
             "already configured"),
            ((28, True, (1 << 64) - 1), ERANGE, "at most"),
        ]
        for req, code, text in probes:
            try:
                r = c.call(*req)
            except Fail:
                # n = 0 may already be invalid on the wire: then the daemon
                # closes the connection instead; go on with a new one.
                check(code == EINVAL, "no reply to %r" % (req,))
                self.expect_line(label(c.s), ["malformed message"])
                c.close()
                c = Control(self.addr)
                continue
            check(r[0] == 31 and r[2] == code and text in r[3],
                  "%r: expected ERROR %d '%s', got %r" % (req, code, text, r))
        # TRACE_READ of any range answers (empty when nothing is there).
        for first, most in ((0, 0), ((1 << 64) - 1, (1 << 64) - 1),
                            (5, 1 << 40)):
            r = c.call(29, first, most)
            check(r[0] == 34 and r[4] == [],
                  "TRACE_READ %d %d answered %r" % (first, most, r))
        after = c.status()
        check(after["tokens"] == tokens,
              "refused requests changed N1's tokens: %d -> %d"
              % (tokens, after["tokens"]))
        who = label(c.s)
        c.s.sendall(self.hello("N2", "N1"))
        check(closed_by_peer(c.s, 10), "HELLO on a control connection kept it")
        self.expect_line(who, ["unexpected HELLO on a control connection"])
        c.close()
        c = Control(self.addr)
        who = label(c.s)
        c.s.sendall(b"\xc1garbage")
        check(closed_by_peer(c.s, 10), "garbage on a control connection kept it")
        self.expect_line(who, ["malformed message"])
        c.close()

    def case_many_connections(self):
        # 3000 connections opened and dropped, 100 at a time, a third of
        # them after a byte of a frame. A STATUS round trip after each batch
        # keeps the listen backlog (128) from overflowing, which would only
        # make the kernel drop SYNs and the test slow.
        host, port = self.addr.rsplit(":", 1)
        pace = Control(self.addr)
        for batch in range(30):
            socks = []
            for k in range(100):
                s = socket.socket()
                s.connect((host, int(port)))
                if k % 3 == 0:
                    s.send(b"\x93")
                socks.append(s)
            for s in socks:
                s.close()
            check(pace.status()["self"] == "N1", "STATUS during the flood")
        pace.close()
        c = Control(self.addr)
        check(c.status()["self"] == "N1", "STATUS after the flood")
        c.close()
        # Past the connection cap: 1200 control connections that stay idle
        # (an idle client is legitimate, so the frame timeout does not
        # apply). The daemon refuses the excess with a log line and keeps
        # serving the ones it took; once they go, new clients get in.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 1200
        if soft < want + 64:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE,
                                   (min(hard, 4096), hard))
            except (ValueError, OSError):
                pass
        if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < want + 64:
            print("note: skipped the connection cap (fd limit %d)" % soft)
            return
        socks = []
        for k in range(want):
            # Past the cap the daemon closes before any CHALLENGE.
            s = connect(self.addr, challenge=False)
            s.sendall(pack([10, "flood%d" % k]) + pack([16, 1]))
            socks.append(s)
            if k % 100 == 99:  # pace: the last one was accepted and served
                s.settimeout(10)
                try:
                    s.recv(1)
                except (OSError, socket.timeout):
                    pass
        line = wait_log(self.log, re.compile(r"refusing 127\.0\.0\.1:\d+: "
                                             r"already 1024 connections"))
        # The last one is past the cap whatever else holds slots; once it is
        # refused, every earlier connection has been accepted or refused.
        check(closed_by_peer(socks[-1], 10), "connection %d of %d was not "
              "refused past the cap" % (want, want))
        refused = [s for s in socks if closed_now(s)]
        # The cluster's own peer channels hold slots too (2 inbound here).
        check(want - 1024 <= len(refused) <= want - 1024 + 4,
              "%d of %d connections were refused past the cap of 1024"
              % (len(refused), want))
        # Refusals are logged at most once a second, with a count.
        check(len(open(self.log).read().split("already 1024 connections"))
              - 1 <= 25, "refusals are not rate-limited in the log")
        kept = [s for s in socks if s not in refused]
        c = kept[0]
        c.sendall(pack([16, 2]))
        c.settimeout(10)
        check(c.recv(1)[:1] == b"\x93", "no STATUS reply on a kept connection")
        for s in socks:
            s.close()
        def back():
            try:
                c = Control(self.addr)
                ok = c.status()["self"] == "N1"
                c.close()
                return ok
            except (Fail, OSError):
                return False
        wait_for(back, 10, "a new client to get in after the flood")

    def run(self, cases):
        self.cluster_ok()
        for name in cases:
            getattr(self, "case_" + name)()
            self.cluster_ok()
            print("ok: %s" % name)


# ---- bounds with a daemon of our own ----------------------------------------

class Daemon:
    def __init__(self, clsnapd, workdir, sid, *args, nofile=None):
        self.log = os.path.join(workdir, sid + ".log")

        def limit():
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.p = subprocess.Popen([clsnapd, "--id", sid, "--listen",
                                   "127.0.0.1:0"] + list(args),
                                  stdout=subprocess.PIPE,
                                  stderr=open(self.log, "w"), text=True,
                                  preexec_fn=limit)
        line = self.p.stdout.readline().split()
        check(len(line) == 3 and line[0] == "READY",
              "daemon did not print READY: %r" % line)
        self.addr = line[2]

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


def configure(c, sid, tokens, out=(), inn=(), nservers=2, cfg=0):
    """CONFIGURE (config id cfg: the HELLOs of this test's peers carry 0)
    then CONNECT."""
    r = c.call(11, sid, tokens, 0, nservers, 0, 0, 0, [list(o) for o in out],
               list(inn), cfg)
    check(r[0] == 30, "CONFIGURE answered %r" % (r,))
    r = c.call(12)
    check(r[0] == 30, "CONNECT answered %r" % (r,))


def configure_pair(ca, cb, a_addr, b_addr):
    """CONFIGURE daemons A and B (10 tokens each) with a channel each way,
    through their control connections ca and cb; no CONNECT yet."""
    for c, sid, peer, addr in ((ca, "A", "B", b_addr), (cb, "B", "A", a_addr)):
        r = c.call(11, sid, 10, 0 if sid == "A" else 1, 2, 0, 0, 0,
                   [[peer, addr]], [peer], 0)
        check(r[0] == 30, "CONFIGURE %s answered %r" % (sid, r))


def input_cap(clsnapd, workdir):
    d = Daemon(clsnapd, workdir, "A", "--input-cap", "4096")
    try:
        # One frame over the cap: closed for that reason.
        s = connect(d.addr)
        who = label(s)
        send_quietly(s, pack([10, "x" * 5000]))
        check(closed_by_peer(s, 10), "frame over the cap kept the connection")
        wait_log(d.log, who, "frame over the input cap of 4096 bytes")
        # Under the cap the same frame is refused for its content instead.
        s = connect(d.addr)
        who = label(s)
        send_quietly(s, pack([10, "x" * 3000]))
        check(closed_by_peer(s, 10), "bad CLIENT name kept the connection")
        line = wait_log(d.log, who, "malformed message")
        check("cap" not in line, "3000-byte frame hit the cap: " + line)
        # The cap bounds what is buffered, not what a connection may send:
        # 3000 pipelined requests (9000 bytes) in one write all get replies.
        c = Control(d.addr)
        reqs = b"".join(pack([16, k]) for k in range(1, 3001))
        check(len(reqs) > 8192, "pipelined requests too short")
        c.s.sendall(reqs)
        for k in range(1, 3001):
            m = c.next_msg()
            check(m[0] == 33 and m[1] == k, "reply %d is %r" % (k, m[:2]))
        # Then an over-cap frame on that control connection closes it.
        who = label(c.s)
        send_quietly(c.s, pack([13, 1, "x" * 8000, 1]))
        check(closed_by_peer(c.s, 10), "over-cap request kept the connection")
        wait_log(d.log, who, "frame over the input cap of 4096 bytes")
        check(d.alive(), "daemon died")
        c = Control(d.addr)
        check(c.status()["self"] == "A", "STATUS after the cap")
        c.close()
    finally:
        rc = d.stop()
    check(rc == 0, "daemon exited %s after SIGTERM" % rc)
    print("ok: input cap")


def write_cap(clsnapd, workdir):
    cap = 4096
    # The peer: takes the connection, says WELCOME, and never reads.
    sink = socket.socket()
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.bind(("127.0.0.1", 0))
    sink.listen(1)
    peer = "127.0.0.1:%d" % sink.getsockname()[1]
    # The peer never acknowledges either: a long peer timeout keeps the
    # daemon from breaking and reconnecting while the test fills the cap.
    d = Daemon(clsnapd, workdir, "A", "--write-cap", str(cap),
               "--peer-timeout", "3600000")
    tokens = 10 ** 7
    accepted = []

    def welcome():
        s, _ = sink.accept()
        # A daemon without a secret: CHALLENGE, then (after A's HELLO)
        # WELCOME with no frames had.
        s.sendall(pack([5, bytes(32), False]) + pack([4, "B", 0]))
        accepted.append(s)

    try:
        c = Control(d.addr)
        t = threading.Thread(target=welcome, daemon=True)
        t.start()
        configure(c, "A", tokens, out=[("B", peer)])
        t.join(10)
        # Fill the channel fast: circulate mode sends one token per message
        # while the queue is under the cap, until the peer's window and the
        # socket buffers are full and the daemon's own queue reaches the
        # cap. Then it stalls: the token count stops moving.
        r = c.call(19, 1)
        check(r[0] == 30, "CIRCULATE answered %r" % (r,))
        last = [None, time.monotonic()]
        def stalled():
            t = c.status()["tokens"]
            if t != last[0]:
                last[:] = [t, time.monotonic()]
            return t < tokens and time.monotonic() - last[1] > 0.5
        wait_for(stalled, 60, "circulation to stall against a peer that "
                 "does not read")
        r = c.call(19, 0)
        check(r[0] == 30, "CIRCULATE off answered %r" % (r,))
        # SEND until refused: a few may still fit under the cap.
        sent = tokens - c.status()["tokens"]
        full = None
        for k in range(1000):
            r = c.call(13, "B", 1)
            if r[0] == 31:
                check(r[2] == EFULL, "SEND refused with %r, expected EFULL" % (r,))
                full = r
                break
            check(r[0] == 30 and r[3][0][:3] == ["B", 2, 1], "SEND: %r" % (r,))
            sent += 1
        check(full is not None, "1000 SENDs past a full channel all accepted")
        text = full[3]
        check("channel A->B" in text and "write cap %d" % cap in text,
              "EFULL text does not name the channel and cap: %r" % text)
        st = c.status()
        check(st["tokens"] == tokens - sent,
              "A holds %d tokens after %d accepted sends of 1, expected %d"
              % (st["tokens"], sent, tokens - sent))
        out = st["out"][0]
        # Every message carried one token: none lost, none made up.
        check(out[0] == "B" and out[1] == sent and out[2] == 1,
              "outbound status %r (sent %d)" % (out, sent))
        check(out[3] <= cap, "queued %d bytes, over the cap %d" % (out[3], cap))
        # Still full a while later: more sends are refused, change nothing.
        time.sleep(0.3)
        for _ in range(10):
            r = c.call(13, "B", 1)
            check(r[0] == 31 and r[2] == EFULL, "send past the cap: %r" % (r,))
        check(c.status()["tokens"] == tokens - sent, "refused sends moved tokens")
        # Markers are always queued: a snapshot still starts and completes
        # (A has no inbound channels) with the tokens A holds.
        r = c.call(14, None)
        check(r[0] == 30 and r[3] == [["B", 3, r[2], 0]],
              "SNAPSHOT at the cap answered %r" % (r,))
        st2 = c.call(15, r[2], 1)
        check(st2[0] == 32 and st2[2][2] == tokens - sent,
              "COLLECT answered %r" % (st2[:2],))
        check(c.status()["out"][0][3] > out[3], "the marker was not queued")
        check(d.alive(), "daemon died")
        c.close()
    finally:
        rc = d.stop()
        for s in accepted:
            s.close()
        sink.close()
    check(rc == 0, "daemon exited %s after SIGTERM" % rc)
    print("ok: write cap (%d token messages queued or sent, then EFULL: %s)"
          % (sent, text))


def reply_cap(clsnapd, workdir):
    d = Daemon(clsnapd, workdir, "A")
    try:
        c = Control(d.addr)
        # 500 outbound peers (never connected) make each STATUS reply about
        # 8 KB, so 20000 requests ask for some 160 MB of replies.
        configure_only = c.call(11, "A", 5, 0, 501, 0, 0, 0,
                                [["P%03d" % i, "127.0.0.1:9"]
                                 for i in range(500)], [], 0)
        check(configure_only[0] == 30, "CONFIGURE answered %r"
              % (configure_only,))
        size = len(pack([33, 1, ["A", 5, 5, 0, 1,
                                 [["P%03d" % i, 0, 0, 0] for i in range(500)],
                                 [], [], [], 0, 0, False, False, 0, 0]]))
        n = (80 << 20) // size
        who = label(c.s)
        c.s.sendall(b"".join(pack([16, k]) for k in range(1000, 1000 + n)))
        wait_log(d.log, who, "over %d bytes of replies queued (client not "
                 "reading); closing it" % (64 << 20), timeout=60)
        check(closed_by_peer(c.s, 30), "the client was not disconnected")
        check(d.alive(), "daemon died")
        c2 = Control(d.addr)
        st = c2.status()
        check(st["tokens"] == 5 and len(st["out"]) == 500,
              "STATUS after the cap: %r" % ({k: st[k] for k in ("self", "tokens")},))
        c2.close()
    finally:
        rc = d.stop()
    check(rc == 0, "daemon exited %s after SIGTERM" % rc)
    print("ok: reply cap (%d requests of %d-byte replies)" % (n, size))


def active_cap(clsnapd, workdir):
    cap = 1024  # CL_NODE_ACTIVE_MAX (daemon/node.h)
    d = Daemon(clsnapd, workdir, "A")
    try:
        c = Control(d.addr)
        # Two inbound channels, only P connected: every MARKER from P with a
        # fresh id starts a snapshot that stays in progress (Q's is open).
        configure(c, "A", 5, inn=["P", "Q"], nservers=3)
        p = connect(d.addr)
        # The trigger of the review: far more fresh markers than the cap,
        # in one write. The first `cap` are taken, the next one fails the
        # channel, the rest are never read.
        n = 50000
        send_quietly(p, pack([1, "P", "A", 0, 0, 0]) +
                     b"".join(pack([3, k]) for k in range(1, n + 1)))
        check(closed_by_peer(p, 20), "a marker past the cap kept the channel")
        why = ("MARKER for snapshot %d would start one more than the %d "
               "snapshots in progress allowed" % (cap + 1, cap))
        wait_log(d.log, "lost channel P->A: protocol error: " + why)
        notice = None
        while notice is None:
            m = c.next_msg()
            if isinstance(m, list) and m[0] == 41:
                notice = m
        check(notice[1] == "P" and why in notice[2],
              "NOTICE for the lost channel: %r" % (notice,))
        st = c.status()
        check(len(st["active"]) == cap and st["active"][0] == 1 and
              st["active"][-1] == cap,
              "%d snapshots in progress after %d markers, expected %d"
              % (len(st["active"]), n, cap))
        check(st["tokens"] == 5 and st["kept"] == [], "tokens or kept changed")
        # A local start past the cap: ERROR EFULL with a clear text.
        r = c.call(14, 77777)
        check(r[0] == 31 and r[2] == EFULL,
              "SNAPSHOT past the cap answered %r" % (r,))
        want = ("A has %d snapshots in progress, the most allowed "
                "(--max-active %d); refusing snapshot 77777" % (cap, cap))
        check(r[3] == want, "EFULL text %r, expected %r" % (r[3], want))
        st = c.status()
        check(len(st["active"]) == cap and 77777 not in st["active"],
              "the refused snapshot changed the node: %d active"
              % len(st["active"]))
        check(d.alive(), "daemon died")
        c.close()
    finally:
        rc = d.stop()
    check(rc == 0, "daemon exited %s after SIGTERM" % rc)
    print("ok: active cap (%d markers, %d snapshots in progress; %s)"
          % (n, cap, want))


def connect_timeout(clsnapd, workdir):
    # An outbound peer whose listen backlog is full: the kernel drops the
    # daemon's SYNs, so its connect neither succeeds nor fails (Linux would
    # retry for about two minutes). CONNECT must still answer once its
    # 10 s window is over.
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(0)
    peer = "127.0.0.1:%d" % sink.getsockname()[1]
    fill = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(sink.getsockname())
        fill.append(f)
    time.sleep(0.3)
    probe = socket.socket()
    probe.settimeout(1)
    try:
        probe.connect(sink.getsockname())
        hangs = False
    except socket.timeout:
        hangs = True
    except OSError:
        hangs = False
    probe.close()
    check(hangs, "a full backlog did not make connects hang here; the test "
          "cannot set up its trigger")
    d = Daemon(clsnapd, workdir, "A")
    try:
        c = Control(d.addr)
        r = c.call(11, "A", 5, 0, 2, 0, 0, 0, [["B", peer]], [], 0)
        check(r[0] == 30, "CONFIGURE answered %r" % (r,))
        t0 = time.monotonic()
        r = c.call(12, timeout=20)
        took = time.monotonic() - t0
        check(r[0] == 31 and r[2] == EIO, "CONNECT answered %r" % (r,))
        check(9 <= took <= 15, "CONNECT answered after %.1f s" % took)
        text = r[3]
        check("A to B at %s" % peer in text and "timed out" in text,
              "CONNECT error text %r does not name the peer, address and "
              "timeout" % text)
        wait_log(d.log, "cannot connect channel A->B to %s" % peer)
        check(c.status()["self"] == "A", "STATUS after the failed CONNECT")
        check(d.alive(), "daemon died")
        c.close()
    finally:
        rc = d.stop()
        for f in fill:
            f.close()
        sink.close()
    check(rc == 0, "daemon exited %s after SIGTERM" % rc)
    print("ok: connect timeout (ERROR after %.1f s: %s)" % (took, text))


def record_runs(addr, sid, nrec):
    """Snapshot 1 on daemon sid (configured with inbound peers P and Q)
    records nrec messages on Q->sid: P's marker starts it, Q's tokens are
    recorded, Q's marker completes it. They carry 1 and 2 tokens in turn,
    so no two of them share a run: the state lists nrec runs. Returns the
    two peer sockets (the caller closes them)."""
    p = connect(addr)
    p.sendall(pack([1, "P", sid, 0, 0, 0]) + pack([3, 1]))
    q = connect(addr)
    q.sendall(pack([1, "Q", sid, 0, 0, 0]) + b"".join(
        b"\x93\x02\xce" + struct.pack(">I", k) + bytes([1 + k % 2])
        for k in range(1, nrec + 1)) + pack([3, 1]))
    return p, q


def collect_cap(clsnapd, workdir):
    """COLLECT with release whose STATE reply takes a client that does not
    read past the 64 MiB reply cap: the client is disconnected and never
    gets the state, so the state must stay kept."""
    cap = 64 << 20
    nrec = 1000000
    d = Daemon(clsnapd, workdir, "A")
    try:
        c = Control(d.addr)
        configure(c, "A", 5, inn=["P", "Q"], nservers=3)
        p, q = record_runs(d.addr, "A", nrec)
        wait_for(lambda: c.status()["kept"] == [1], 60,
                 "snapshot 1 to complete")
        # Exact reply sizes, with req ids of one encoded size (0xce). The
        # STATE is measured as raw bytes (decoding it here would be slow):
        # nothing else is sent to this client meanwhile.
        base = 1 << 20
        def collect_raw(req, release):
            check(len(c.buf) == 0, "unread bytes on the control connection")
            c.send([15, req, 1, release])
            raw = bytearray()
            c.s.settimeout(2)
            while True:
                try:
                    data = c.s.recv(1 << 20)
                except socket.timeout:
                    break
                check(data != b"", "daemon closed the control connection")
                raw += data
            head = b"\x93\x20\xce" + struct.pack(">I", req)  # [32, req, ..
            check(bytes(raw[:len(head)]) == head,
                  "COLLECT of snapshot 1 answered %r..." % bytes(raw[:16]))
            return len(raw)
        ssize = collect_raw(base, 0)
        c.req = base
        st = c.call(16)
        check(st[0] == 33 and st[2][8] == [1], "STATUS answered %r" % (st,))
        stsize = len(pack(st))
        # A client that never reads: coarse filler of COLLECTs without
        # release, fine filler of STATUS, to just under the cap (bytes the
        # kernel takes off the daemon's queue only make it lower), then
        # the COLLECT with release, which cannot fit.
        k = (cap - 4096) // ssize
        m = (cap - 4096 - k * ssize) // stsize
        check(ssize > 8 << 20, "state of %d bytes is too small to cross the "
              "cap whatever the kernel buffers" % ssize)
        n = socket.socket()
        n.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        n.connect(tuple([d.addr.rsplit(":", 1)[0],
                         int(d.addr.rsplit(":", 1)[1])]))
        who = label(n)
        req = base
        reqs = [pack([10, "deaf"])]
        for _ in range(k):
            req += 1
            reqs.append(pack([15, req, 1, 0]))
        for _ in range(m):
            req += 1
            reqs.append(pack([16, req]))
        req += 1
        reqs.append(pack([15, req, 1, 1]))
        n.sendall(b"".join(reqs))
        wait_log(d.log, who, "over %d bytes of replies queued (client not "
                 "reading); closing it" % cap, timeout=60)
        check(closed_by_peer(n, 30), "the client was not disconnected")
        st = c.status()
        check(st["kept"] == [1], "the state of snapshot 1 was released "
              "though its STATE reply was never delivered (kept %r)"
              % (st["kept"],))
        check(collect_raw(base + 2, 1) == ssize, "COLLECT after the cap")
        c.req = base + 2
        check(c.status()["kept"] == [], "a delivered release kept the state")
        check(d.alive(), "daemon died")
        p.close()
        q.close()
        c.close()
    finally:
        rc = d.stop()
    check(rc == 0, "daemon exited %s after SIGTERM" % rc)
    print("ok: collect over the reply cap (%d COLLECTs of %d bytes, %d "
          "STATUS of %d, then COLLECT release: state kept)"
          % (k, ssize, m, stsize))


def fd_limit(clsnapd, workdir):
    """A daemon under `ulimit -n 256` flooded with 400 idle connections:
    it refuses what it cannot hold with log lines (at most one a second),
    and its cluster channels keep working through it and after it."""
    a = Daemon(clsnapd, workdir, "A", nofile=256)
    b = Daemon(clsnapd, workdir, "B")
    flood = []
    try:
        ca, cb = Control(a.addr, "ca"), Control(b.addr, "cb")
        configure_pair(ca, cb, a.addr, b.addr)
        for c in (ca, cb):
            check(c.call(12)[0] == 30, "CONNECT failed")
        for k in range(400):
            try:
                # Past the cap the daemon closes at once, before any
                # CHALLENGE: do not wait for one.
                s = connect(a.addr, challenge=False)
                s.sendall(pack([10, "idle%d" % k]))
                flood.append(s)
            except OSError:
                pass
        line = wait_log(a.log, "refusing", "set by ulimit -n")
        check(len(open(a.log).read().split("refusing")) - 1 <= 5,
              "refusals are not rate-limited in the log")
        # The channels carry tokens both ways while the flood holds on.
        check(cb.call(13, "A", 3)[0] == 30, "SEND B->A refused")
        check(ca.call(13, "B", 2)[0] == 30, "SEND A->B refused")
        r = ca.call(14, 9)
        check(r[0] == 30, "SNAPSHOT during the flood answered %r" % (r,))
        for s in flood:
            s.close()
        flood = []
        for c in (ca, cb):
            r = c.call(15, 9, True, timeout=10)
            while r[0] == 31 and r[2] == EAGAIN:
                time.sleep(0.05)
                r = c.call(15, 9, True)
            check(r[0] == 32, "COLLECT 9 answered %r" % (r[:4],))
        st = ca.status()
        check(all(o[2] for o in st["out"]) and all(i[2] for i in st["in"]),
              "a channel of A was lost: %r %r" % (st["out"], st["in"]))
        check("lost channel" not in open(a.log).read(),
              "A lost a channel under the flood")
        check(a.alive() and b.alive(), "a daemon died")
        print("ok: fd limit (%s)" % line.strip()[-120:])
    finally:
        for s in flood:
            s.close()
        a.stop()
        b.stop()


def main(argv):
    try:
        if argv[1] == "garbage":
            cases = argv[5:] or ["random_bytes", "wrong_shape", "unknown_type",
                                 "over_cap", "hello", "before_hello",
                                 "half_frame", "control", "many_connections"]
            Garbage(argv[2], argv[3], argv[4]).run(cases)
        elif argv[1] == "input-cap":
            input_cap(argv[2], argv[3])
        elif argv[1] == "write-cap":
            write_cap(argv[2], argv[3])
        elif argv[1] == "reply-cap":
            reply_cap(argv[2], argv[3])
        elif argv[1] == "active-cap":
            active_cap(argv[2], argv[3])
        elif argv[1] == "collect-cap":
            collect_cap(argv[2], argv[3])
        elif argv[1] == "connect-timeout":
            connect_timeout(argv[2], argv[3])
        elif argv[1] == "fd-limit":
            fd_limit(argv[2], argv[3])
        else:
            print(__doc__)
            return 2
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
