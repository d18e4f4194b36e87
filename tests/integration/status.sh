#!/usr/bin/env bash
# What status and send say about a cluster that is not as it should be:
# see status.py (mixed topologies, an overflowing total, a server down,
# snapshot id lists as ranges and --brief).
#   status.sh mixed|overflow|unreachable|lists
. "$(dirname "$0")/common.sh"
: "${CLSNAPD:?CLSNAPD must point at the clsnapd binary}"
case ${1:-} in
overflow | lists) "$PYTHON" "$(dirname "$0")/status.py" "$1" "$CLSNAP" "$WORK" ;;
mixed | unreachable)
  "$PYTHON" "$(dirname "$0")/status.py" "$1" "$CLSNAP" "$CLSNAPD" "$WORK" ;;
*) fail "usage: status.sh mixed|overflow|unreachable|lists" ;;
esac || fail "status $1 test failed"
