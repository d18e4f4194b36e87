#!/usr/bin/env bash
# What status and send say about a cluster that is not as it should be:
# see status.py (mixed topologies, an overflowing total, a server down).
#   status.sh mixed|overflow|unreachable
. "$(dirname "$0")/common.sh"
: "${CLSNAPD:?CLSNAPD must point at the clsnapd binary}"
case ${1:-} in
overflow) "$PYTHON" "$(dirname "$0")/status.py" overflow "$CLSNAP" "$WORK" ;;
mixed | unreachable)
  "$PYTHON" "$(dirname "$0")/status.py" "$1" "$CLSNAP" "$CLSNAPD" "$WORK" ;;
*) fail "usage: status.sh mixed|overflow|unreachable" ;;
esac || fail "status $1 test failed"
