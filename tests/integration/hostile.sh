#!/usr/bin/env bash
# Garbage on a live daemon: raw connections to N1 of a running 3-node cluster
# send random bytes, msgpack of the wrong shape, unknown types, frames over
# the cap, bad HELLOs, tokens before HELLO, half frames, thousands of
# connections (tests/integration/hostile.py). After each attack the daemon
# must have closed the connection with a log line saying why, every daemon
# must still run, and a checked snapshot must account for every token.
#   hostile.sh [CASE...]     default: every case
. "$(dirname "$0")/common.sh"
: "${DEPLOY:?DEPLOY must point at deploy/cluster.sh}"
export CLSNAP CLSNAPD WORK
top=$COS/3nodes.top
run=$WORK/run
total=$(total_tokens "$top")
cleanup_hooks+=("bash '$DEPLOY' down '$run' >/dev/null")

# A short frame timeout so that half frames are dropped within the test.
CLSNAPD_ARGS="--frame-timeout 1500" bash "$DEPLOY" up "$top" "$run" >"$WORK/up.txt" 2>&1 ||
  { cat "$WORK/up.txt" >&2; fail "cluster.sh up failed"; }
"$PYTHON" "$(dirname "$0")/hostile.py" garbage "$run" "$CLSNAP" "$total" "$@" ||
  fail "hostile input test failed (N1 log: $run/N1.log)"
# Stop the daemons now so that a sanitizer's exit report lands in the logs.
bash "$DEPLOY" down "$run" >/dev/null || fail "cluster.sh down failed"
no_sanitizer_reports "$run"/*.log
echo "every attack refused and logged; the cluster kept its $total tokens"
