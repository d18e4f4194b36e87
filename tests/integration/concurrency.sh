#!/usr/bin/env bash
# Hundreds of snapshots in progress at once (gen_bursts.py): none may be
# lost to a server's retention bound, and every one must check.
#   concurrency.sh chain|ring|dense   lockstep across processes equals the
#                      in-process replay byte for byte and the reference
#                      simulator (refsim.py); free-running with
#                      jitter: every snapshot passes and holds every token
#   concurrency.sh cap       1024 snapshots in progress at one server pass
#                      (lockstep, both backends); 1025 stop the run at once
#                      naming the server, the snapshot, the bound and the
#                      option that raises it
#   concurrency.sh cluster   1000 `clsnap snapshot` calls against a deployed
#                      cluster, up to 8 at a time: each returns its own
#                      snapshot (distinct ids), each holds every token
. "$(dirname "$0")/common.sh"
export CLSNAP CLSNAPD
"$PYTHON" "$(dirname "$0")/gen_bursts.py" "$WORK"

# run NAME ARGS...: clsnap run, output in $WORK/NAME.{txt,err}, .snap files
# in $WORK/NAME/; fails the test if clsnap does.
run() {
  local name=$1
  shift
  "$CLSNAP" run "$@" --quiet --timeout 120 --snap-dir "$WORK/$name" \
    >"$WORK/$name.txt" 2>"$WORK/$name.err" ||
    { rc=$?; tail -n 5 "$WORK/$name.txt" "$WORK/$name.err" >&2; fail "$name: clsnap run exited $rc"; }
}

# every_snap_holds DIR TOTAL COUNT
every_snap_holds() {
  local n=0 f
  for f in "$1"/*.snap; do
    [ "$(snap_tokens "$f")" -eq "$2" ] || fail "$f holds $(snap_tokens "$f") tokens, expected $2"
    n=$((n + 1))
  done
  [ "$n" -eq "$3" ] || fail "$1: $n snapshots, expected $3"
}

case ${1:-} in
chain | ring | dense)
  t=$1 top=$WORK/$1.top events=$WORK/$1.events
  total=$(total_tokens "$top")
  want=$(grep -c '^snapshot' "$events")
  run lock "$top" "$events" --lockstep --seed 7 --log-dir "$WORK/logs"
  run inproc "$top" "$events" --lockstep --in-process --seed 7
  diff -q "$WORK/lock.txt" "$WORK/inproc.txt" >/dev/null ||
    { diff "$WORK/lock.txt" "$WORK/inproc.txt" | head >&2; fail "$t: lockstep across processes differs from in-process"; }
  diff -rq "$WORK/lock" "$WORK/inproc" >/dev/null || fail "$t: .snap files differ between the backends"
  grep -q "^$want snapshots: $want passed, 0 failed$" "$WORK/lock.txt" || fail "$t: lockstep: not $want passed"
  every_snap_holds "$WORK/lock" "$total" "$want"
  # The independent oracle (refsim.py) gives the same snapshots.
  "$PYTHON" "$(dirname "$0")/refsim.py" "$top" "$events" "$WORK/oracle" --seed 7 ||
    fail "$t: refsim.py failed"
  pairs=()
  for k in $(seq 0 $((want - 1))); do pairs+=("$WORK/oracle/$k.snap" "$WORK/lock/$k.snap"); done
  "$PYTHON" "$SNAPCMP" "$total" "${pairs[@]}" || fail "$t: lockstep differs from the reference simulator"
  run free "$top" "$events" --jitter-ms 2 --log-dir "$WORK/flogs" --json
  ok=$(grep -c '^      "ok": true,$' "$WORK/free.txt" || true)
  [ "$ok" -eq "$want" ] || fail "$t: free-running: $ok of $want verdicts ok"
  every_snap_holds "$WORK/free" "$total" "$want"
  # Exact channel states, re-checked without clsnap's verdict.
  json_check "$top" "$WORK/free.txt" --events "$events" --expect "$want"
  no_sanitizer_reports "$WORK"/logs/*.log "$WORK"/flogs/*.log
  echo "ok: $t: $want snapshots in lockstep (= in-process) and free-running, all checked"
  ;;
cap)
  top=$WORK/cap.top
  run ok1024 "$top" "$WORK/cap1024.events" --lockstep --log-dir "$WORK/logs"
  grep -q '^1024 snapshots: 1024 passed, 0 failed$' "$WORK/ok1024.txt" || fail "1024 in progress: not all passed"
  run in1024 "$top" "$WORK/cap1024.events" --lockstep --in-process
  grep -q '^1024 snapshots: 1024 passed, 0 failed$' "$WORK/in1024.txt" || fail "1024 in progress in-process: not all passed"
  for mode in --lockstep "--lockstep --in-process"; do
    rc=0
    "$CLSNAP" run "$top" "$WORK/cap1025.events" $mode --quiet --log-dir "$WORK/logs1025" >"$WORK/cap.txt" 2>"$WORK/cap.err" || rc=$?
    [ $rc -eq 1 ] || { cat "$WORK/cap.err" >&2; fail "1025 in progress ($mode): exit $rc, expected 1"; }
    grep -qF "$WORK/cap1025.events:1026: S0 has 1024 snapshots in progress, the most allowed (--max-active 1024); refusing snapshot 1024" "$WORK/cap.err" ||
      { cat "$WORK/cap.err" >&2; fail "1025 in progress ($mode): the error does not name the server, snapshot, bound and option"; }
    head -n 1 "$WORK/cap.err" | grep -q "max-active" || fail "the first error line is not the cause: $(head -n 1 "$WORK/cap.err")"
  done
  no_sanitizer_reports "$WORK"/logs/*.log
  echo "ok: 1024 snapshots in progress at one server pass; the 1025th is refused naming --max-active"
  ;;
cluster)
  : "${DEPLOY:?DEPLOY must point at deploy/cluster.sh}"
  top=$COS/8nodes.top run=$WORK/run
  total=$(total_tokens "$top")
  cleanup_hooks+=("bash '$DEPLOY' down '$run' >/dev/null")
  bash "$DEPLOY" up "$top" "$run" >"$WORK/up.txt" 2>&1 || { cat "$WORK/up.txt" >&2; fail "cluster.sh up failed"; }
  "$CLSNAP" --cluster "$run/cluster" send N1 N2 3 >/dev/null || fail "send failed"
  servers=(N1 N2 N3 N4 N5 N6 N7 N8)
  mkdir -p "$WORK/calls"
  # 1000 callers, 4 at a time (on two cores more only queue), from every
  # server in turn.
  seq 0 999 | xargs -P 4 -I{} sh -c '
    k=$3; s=$(( k % 8 + 1 ))
    "$0" --cluster "$1/cluster" snapshot N$s --quiet --timeout 60 --snap-dir "$2/$k" >"$2/$k.txt" 2>&1 || echo "call $k failed" >>"$2/failed"
  ' "$CLSNAP" "$run" "$WORK/calls" {}
  [ ! -f "$WORK/calls/failed" ] || { head -3 "$WORK/calls/failed" >&2; f=$(head -n 1 "$WORK/calls/failed" | awk "{print \$2}"); cat "$WORK/calls/$f.txt" >&2; fail "$(wc -l <"$WORK/calls/failed") of 1000 snapshot calls failed"; }
  # One .snap per call, each holding every token, 1000 distinct ids.
  "$PYTHON" - "$WORK/calls" "$total" <<'PY' || fail "the snapshots of the 1000 calls do not check out"
import glob, os, re, sys
root, total = sys.argv[1], int(sys.argv[2])
ids = set()
for k in range(1000):
    files = glob.glob(os.path.join(root, str(k), "*.snap"))
    if len(files) != 1:
        sys.exit("call %d wrote %d .snap files" % (k, len(files)))
    lines = open(files[0]).read().split("\n")
    ids.add(lines[0])
    held = 0
    for line in lines[1:]:
        f = line.split()
        m = re.match(r"token\((\d+)\)$", f[2]) if len(f) == 3 else None
        if m:
            held += int(m.group(1))
        elif len(f) == 2:
            held += int(f[1])
    if held != total:
        sys.exit("call %d: %s holds %d tokens, expected %d"
                 % (k, files[0], held, total))
if len(ids) != 1000:
    sys.exit("1000 calls got %d distinct ids" % len(ids))
PY
  bash "$DEPLOY" down "$run" >/dev/null || fail "cluster.sh down failed"
  no_sanitizer_reports "$run"/*.log
  echo "ok: 1000 concurrent snapshot calls, each its own snapshot, every one holding $total tokens"
  ;;
*)
  fail "usage: concurrency.sh chain|ring|dense|cap|cluster"
  ;;
esac
