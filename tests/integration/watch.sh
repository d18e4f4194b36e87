#!/usr/bin/env bash
# WATCH / LOCAL_STATE against two real daemons: see watch.py.
. "$(dirname "$0")/common.sh"
: "${CLSNAPD:?CLSNAPD must point at the clsnapd binary}"
"$PYTHON" "$(dirname "$0")/watch.py" "$CLSNAPD" "$WORK" ||
  fail "watch test failed (logs: $WORK/A.log $WORK/B.log)"
no_sanitizer_reports "$WORK/A.log" "$WORK/B.log"
