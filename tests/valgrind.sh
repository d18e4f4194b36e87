#!/usr/bin/env bash
# The daemons under valgrind (memcheck): every daemon must end with no
# memory errors and no definite or indirect leaks.
#   1. `clsnap run` of the 8-node concurrent-snapshots reference case with
#      jitter and a trace too small for it, each daemon started through
#      tests/valgrind-clsnapd;
#   2. a part of the hostile-input test (tests/integration/hostile.py)
#      against a 3-node deploy/cluster.sh cluster of valgrind'd daemons,
#      which walks the protocol-error and close paths;
#   3. checkpoints that time out on a lockstep cluster (no snapshot
#      completes there without DELIVERs), each dropped on every server
#      (DROP: a snapshot in progress given up, unknown ids remembered),
#      then a restore (FREEZE, RESTORE, PEEK, RESUME) of that cluster, and
#      the daemons stop.
# Uses build/ (CLSNAP and CLSNAPD override), installs valgrind when root.
# Ends with "N passed, N failed", N counting daemons checked.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$root/scripts/lib.sh"
ensure_packages valgrind
CLSNAP=${CLSNAP:-$root/build/coordinator/clsnap}
CLSNAPD=${CLSNAPD:-$root/build/daemon/clsnapd}
if [ ! -x "$CLSNAP" ] || [ ! -x "$CLSNAPD" ]; then build build; fi
CONFORMANCE_DIR=${CONFORMANCE_DIR:-$root/../shared/conformance}
COS=$CONFORMANCE_DIR/cos418
PYTHON=python3
[ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/clsnap-valgrind.XXXXXX")
run=$WORK/run
run2=$WORK/run2
trap 'for r in "$run" "$run2"; do CLSNAPD="$here/valgrind-clsnapd" bash "$root/deploy/cluster.sh" down "$r" >/dev/null 2>&1; done; rm -rf "$WORK"' EXIT
export VALGRIND_CLSNAPD=$CLSNAPD WORK

passed=0 failed=0
# check_log LOG: one daemon's valgrind verdict.
check_log() {
  local log=$1 id
  id=$(basename "$log" .log)
  if grep -q "ERROR SUMMARY: 0 errors" "$log" && ! grep -Eq "(definitely|indirectly) lost: [1-9]" "$log"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $id: valgrind found errors or leaks, or the daemon did not exit cleanly ($log):" >&2
    grep -E "==[0-9]+==" "$log" | tail -n 40 >&2
  fi
}

echo "== clsnap run 8nodes-concurrent-snapshots, daemons under valgrind"
if ! "$CLSNAP" run "$COS/8nodes.top" "$COS/8nodes-concurrent-snapshots.events" \
  --jitter-ms 2 --timeout 120 --daemon "$here/valgrind-clsnapd" \
  --trace "$WORK/t.jsonl" --trace-events 20 \
  --log-dir "$WORK/logs" >"$WORK/run.txt" 2>&1; then
  cat "$WORK/run.txt" >&2
  echo "FAIL: clsnap run under valgrind failed" >&2
  failed=$((failed + 1))
fi
grep -q "5 snapshots: 5 passed, 0 failed" "$WORK/run.txt" ||
  { echo "FAIL: the run did not pass its 5 snapshots" >&2; failed=$((failed + 1)); }
# Traced with room for 20 events each: every daemon kept 20 and dropped
# the rest (the full buffer's path too).
[ "$(grep -c '"ev":"dropped"' "$WORK/t.jsonl" 2>/dev/null)" = 8 ] ||
  { echo "FAIL: the trace does not have a dropped line per daemon" >&2; failed=$((failed + 1)); }
for log in "$WORK"/logs/*.log; do check_log "$log"; done

echo "== hostile input against valgrind'd daemons"
if ! CLSNAPD="$here/valgrind-clsnapd" CLSNAP="$CLSNAP" CLSNAPD_ARGS="--frame-timeout 1500" \
  bash "$root/deploy/cluster.sh" up "$COS/3nodes.top" "$run" >"$WORK/up.txt" 2>&1; then
  cat "$WORK/up.txt" >&2
  echo "FAIL: cluster.sh up under valgrind failed" >&2
  failed=$((failed + 1))
else
  "$PYTHON" "$here/integration/hostile.py" garbage "$run" "$CLSNAP" 13 \
    random_bytes wrong_shape unknown_type over_cap hello before_hello half_frame control ||
    { echo "FAIL: hostile input test under valgrind" >&2; failed=$((failed + 1)); }
  # cluster.sh down: SIGTERM, then up to 3 s before SIGKILL; a daemon still
  # in valgrind's leak check then has no summary and counts as failed.
  bash "$root/deploy/cluster.sh" down "$run" >/dev/null
  for log in "$run"/*.log; do check_log "$log"; done
fi

echo "== timed-out checkpoints dropped on a lockstep cluster of valgrind'd daemons"
if ! CLSNAPD="$here/valgrind-clsnapd" CLSNAP="$CLSNAP" CLSNAP_CONFIGURE_ARGS="--lockstep" \
  bash "$root/deploy/cluster.sh" up "$COS/3nodes.top" "$run2" >"$WORK/up2.txt" 2>&1; then
  cat "$WORK/up2.txt" >&2
  echo "FAIL: cluster.sh up (lockstep) under valgrind failed" >&2
  failed=$((failed + 1))
else
  c2=(--cluster "$run2/cluster")
  "$CLSNAP" "${c2[@]}" send N1 N2 2 >/dev/null
  rc=0
  "$CLSNAP" "${c2[@]}" checkpoint --every 100ms --count 3 --timeout 2s \
    --tolerate 5 --from N2 --store "$WORK/store" >"$WORK/ck.txt" 2>&1 || rc=$?
  if [ $rc -ne 0 ] || [ "$(grep -c 'TIMED OUT' "$WORK/ck.txt")" -ne 3 ]; then
    cat "$WORK/ck.txt" >&2
    echo "FAIL: 3 checkpoints should have timed out (exit $rc)" >&2
    failed=$((failed + 1))
  fi
  "$CLSNAP" "${c2[@]}" status --json >"$WORK/st.json" 2>&1
  "$PYTHON" -c 'import json,sys; sys.exit(any(s["in_progress"] for s in json.load(open(sys.argv[1]))["servers"]))' "$WORK/st.json" ||
    { echo "FAIL: dropped checkpoints stay in progress" >&2; failed=$((failed + 1)); }
  # A restore of that cluster (FREEZE, RESTORE with messages to hold,
  # PEEK, RESUME) to a snapshot of an in-process run of its topology.
  "$CLSNAP" run "$COS/3nodes.top" "$COS/3nodes-bidirectional-messages.events" \
    --in-process --delays "$CONFORMANCE_DIR/go-delays.txt" --store "$WORK/vstore" -q >/dev/null 2>&1
  if ! "$CLSNAP" "${c2[@]}" restore latest --store "$WORK/vstore" --paused \
       >"$WORK/rs.txt" 2>&1 ||
     ! "$CLSNAP" "${c2[@]}" status --snap >"$WORK/now.snap" 2>>"$WORK/rs.txt" ||
     ! "$PYTHON" "$here/integration/snapcmp.py" 13 \
       "$COS/3nodes-bidirectional-messages.snap" "$WORK/now.snap" >>"$WORK/rs.txt" 2>&1 ||
     ! "$CLSNAP" "${c2[@]}" resume >>"$WORK/rs.txt" 2>&1; then
    cat "$WORK/rs.txt" >&2
    echo "FAIL: restore of the lockstep cluster under valgrind" >&2
    failed=$((failed + 1))
  fi
  bash "$root/deploy/cluster.sh" down "$run2" >/dev/null
  for log in "$run2"/*.log; do check_log "$log"; done
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
