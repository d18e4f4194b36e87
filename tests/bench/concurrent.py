#!/usr/bin/env python3
"""Wall time and peak memory of 1000 snapshots in progress at once.

  concurrent.py BUILD_DIR [chain|ring ...]

For each scenario of tests/integration/gen_bursts.py named (default: chain
and ring, 50 servers each, 1000 snapshots started in one step), runs
`clsnap run` in the three modes (lockstep across processes, free-running
with 2 ms jitter, lockstep --in-process) and prints a Markdown table: wall
time, the largest and the median peak RSS of one daemon (each daemon logs
its own as it stops), clsnap's peak RSS (its VmHWM, sampled
every 20 ms), and the
summary line clsnap printed. Not a test: the times depend on the machine
and on what else runs on it (use a release build on a quiet machine).
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def vmhwm(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(build, work, name, mode):
    clsnap = os.path.join(build, "coordinator", "clsnap")
    clsnapd = os.path.abspath(os.path.join(build, "daemon", "clsnapd"))
    log_dir = os.path.join(work, "logs-%s-%s" % (name, mode))
    args = {"lockstep": ["--lockstep", "--seed", "7"],
            "free": ["--jitter-ms", "2"],
            "in-process": ["--lockstep", "--in-process", "--seed", "7"]}[mode]
    cmd = [clsnap, "run", os.path.join(work, name + ".top"),
           os.path.join(work, name + ".events"), "--quiet",
           "--timeout", "300", "--daemon", clsnapd, "--log-dir", log_dir] + args
    t0 = time.monotonic()
    out_path = os.path.join(work, "out-%s-%s" % (name, mode))
    fout = open(out_path, "w+")
    p = subprocess.Popen(cmd, stdout=fout, stderr=subprocess.STDOUT)
    # clsnap's own high-water mark, sampled until it exits (its rusage
    # would include the daemons it reaped).
    mine = 0
    while p.poll() is None:
        mine = max(mine, vmhwm(p.pid))
        time.sleep(0.02)
    wall = time.monotonic() - t0
    fout.seek(0)
    out = fout.read()
    fout.close()
    if p.returncode != 0:
        sys.stderr.write(out[-2000:])
        sys.exit("%s %s: clsnap run exited %d" % (name, mode, p.returncode))
    # Each daemon logs its peak RSS as it stops.
    rss = {}
    for f in os.listdir(log_dir) if os.path.isdir(log_dir) else ():
        with open(os.path.join(log_dir, f)) as fh:
            m = re.search(r"stopped \(peak RSS (\d+) KiB\)", fh.read())
        if m is None:
            sys.exit("%s %s: no peak RSS in %s" % (name, mode, f))
        rss[f] = int(m.group(1))
    summary = [l for l in out.splitlines() if " snapshots: " in l][-1]
    return wall, rss, mine, summary


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    build, names = argv[1], argv[2:] or ["chain", "ring"]
    with tempfile.TemporaryDirectory(prefix="clsnap-concurrent.") as work:
        subprocess.run([sys.executable, os.path.join(
            HERE, "..", "integration", "gen_bursts.py"), work], check=True)
        print("| scenario | mode | wall time | peak RSS per daemon, max / "
              "median | clsnap peak RSS | result |")
        print("|---|---|---|---|---|---|")
        for name in names:
            for mode in ("lockstep", "free", "in-process"):
                wall, rss, mine, summary = measure(build, work, name, mode)
                per = ("%d / %d KiB" % (max(rss.values()),
                                        statistics.median(rss.values()))
                       if rss else "(no daemons)")
                print("| %s (50 servers) | %s | %.2f s | %s | %d KiB | %s |"
                      % (name, mode, wall, per, mine, summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
