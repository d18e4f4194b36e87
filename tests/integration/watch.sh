#!/usr/bin/env bash
# PUSH / LOCAL_STATE against two real daemons: see push.py.
. "$(dirname "$0")/common.sh"
: "${CLSNAPD:?CLSNAPD must point at the clsnapd binary}"
"$PYTHON" "$(dirname "$0")/push.py" "$CLSNAPD" "$WORK" ||
  fail "push test failed (logs: $WORK/A.log $WORK/B.log)"
no_sanitizer_reports "$WORK/A.log" "$WORK/B.log"
