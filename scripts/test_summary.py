#!/usr/bin/env python3
"""The last line of scripts/test: "N passed, N failed[, N skipped]" counted
from meson's test log (one JSON object per test, the file meson test writes
as meson-logs/testlog.json).

    test_summary.py TESTLOG [SUITE...]

Exits 0 when at least one test ran (whether it passed is meson's exit
status to report), 1 when none did: a run that tested nothing, such as
`--suite` with a name no test has, must not look like a pass. The SUITEs,
those scripts/test asked for, only name the likely cause.
"""
import json
import sys


def count(lines):
    """(passed, failed, skipped) over the test log's lines."""
    passed = failed = skipped = 0
    for line in lines:
        if not line.strip():
            continue
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
    return passed, failed, skipped


def main(argv):
    if len(argv) < 2:
        print("usage: test_summary.py TESTLOG [SUITE...]", file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []  # meson writes no log when no test matched
    passed, failed, skipped = count(lines)
    tail = f", {skipped} skipped" if skipped else ""
    print(f"{passed} passed, {failed} failed{tail}")
    if passed + failed + skipped == 0:
        hint = f"suite {', '.join(argv[2:])}?" if len(argv) > 2 else "no tests defined?"
        print(f"scripts/test: no test ran ({hint})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
