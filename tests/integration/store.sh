#!/usr/bin/env bash
# The snapshot store and the periodic checkpointer (issue 14), on real
# daemons. Every stored file is re-checked by storecheck.py (hashlib,
# conservation and exact channel states from the stored states), never by
# clsnap's own reading.
#   store.sh atomic      a crash (SIGKILL hook) at every step of a write:
#                        the store stays consistent, history and inspect
#                        say so, the next write cleans up
#   store.sh damage      a flipped byte, a truncated file, a missing file:
#                        inspect names each; history marks the damaged
#   store.sh retention   --keep 3: exactly the 3 newest completed stay
#   store.sh periodic    200 checkpoints at 50 ms on the reference 8-server
#                        topology under circulation, every one stored and
#                        checked, history consistent with the store
#   store.sh timeout     a daemon stopped (SIGSTOP): timed_out stored, the
#                        checkpointer carries on after SIGCONT, the servers
#                        drop it; with --tolerate 1 it ends with a message
#   store.sh interrupt   SIGINT and SIGTERM in the middle of a write: exit
#                        130, nothing partial left
#   store.sh reference   run --lockstep --store of reference cases: each
#                        stored snapshot, printed by inspect --snap, equals
#                        the reference .snap
. "$(dirname "$0")/common.sh"
here=$(cd "$(dirname "$0")" && pwd)
STORECHECK=$here/storecheck.py
case_=${1:?usage: store.sh CASE}

storecheck() { # DIR [options]
  "$PYTHON" "$STORECHECK" "$@" >"$WORK/storecheck.out" 2>&1 ||
    { cat "$WORK/storecheck.out" >&2; fail "storecheck $*"; }
}

# history --json into FILE, then storecheck against it.
history_matches() { # DIR FILE [storecheck options]
  local dir=$1 out=$2
  shift 2
  "$CLSNAP" history --store "$dir" --json >"$out" || fail "history --store $dir failed"
  storecheck "$dir" --history "$out" "$@"
}

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.05
  done
}

count_files() { ls "$1" 2>/dev/null | grep -c -E "^[0-9]+-$2\.json$" || true; }
# no_active CLUSTER_FILE: no server of that cluster has a snapshot in
# progress (status --json into $WORK/st.json).
no_active() {
  "$CLSNAP" --cluster "$1" status --json >"$WORK/st.json" 2>/dev/null
  "$PYTHON" -c 'import json,sys; sys.exit(any(s["in_progress"] for s in json.load(open(sys.argv[1]))["servers"]))' "$WORK/st.json"
}

# at_least DIR STATUS N: DIR holds N files of that status (for wait_for,
# which must evaluate the count each time).
at_least() { [ "$(count_files "$1" "$2")" -ge "$3" ]; }

case $case_ in
atomic)
  cluster_up "$COS/3nodes.top" "$WORK/c"
  export CLSNAP_CLUSTER=$WORK/c/cluster
  "$CLSNAP" send N1 N2 4 >/dev/null
  for step in reserved half-written written synced renamed dir-synced retention; do
    d=$WORK/store-$step
    "$CLSNAP" snapshot N1 --store "$d" -q >/dev/null
    "$CLSNAP" snapshot N2 --store "$d" -q >/dev/null
    rc=0
    CLSNAP_STORE_CRASH=$step "$CLSNAP" snapshot N3 --store "$d" --keep 1 -q \
      >/dev/null 2>&1 || rc=$?
    [ $rc -eq 137 ] || fail "$step: clsnap was not killed at the hook (exit $rc)"
    case $step in
      renamed|dir-synced|retention) want=3 ;;
      *) want=2 ;;
    esac
    last=$(ls "$d" | grep -E '^[0-9]+-completed\.json$' | tail -1)
    [ "$last" = "00000$want-completed.json" ] ||
      fail "$step: the newest file is $last, expected #$want"
    history_matches "$d" "$WORK/h-$step.json"
    "$CLSNAP" inspect latest --store "$d" >"$WORK/i.txt" ||
      fail "$step: inspect latest after the crash failed"
    # The next write takes the next number and removes the crashed write's
    # temporary file.
    "$CLSNAP" snapshot N1 --store "$d" -q >/dev/null
    [ -e "$d/00000$((want + 1))-completed.json" ] ||
      fail "$step: the write after the crash is not #$((want + 1))"
    history_matches "$d" "$WORK/h2-$step.json" --no-tmp --total 13
    echo "ok: crash at $step: $(cat "$WORK/storecheck.out")"
  done
  ;;

damage)
  cluster_up "$COS/3nodes.top" "$WORK/c"
  export CLSNAP_CLUSTER=$WORK/c/cluster
  d=$WORK/c/snapshots # the default: beside the cluster file
  for i in 1 2 3 4; do "$CLSNAP" snapshot N1 --store "$d" -q >/dev/null; done
  "$CLSNAP" history >/dev/null || fail "history of the default store failed"
  # A flipped byte in the body (a token count), a truncated file, a
  # missing file.
  f1=$d/000001-completed.json f2=$d/000002-completed.json
  "$PYTHON" -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); i = b.index(b"\"tokens\":") + 9; b[i] = ord("9") if b[i] != ord("9") else ord("8"); open(p, "wb").write(b)' "$f1"
  head -c 300 "$f2" >"$f2.cut" && mv "$f2.cut" "$f2"
  rm "$d/000003-completed.json"
  expect_inspect() { # SEQ WHAT...
    local seq=$1 rc=0
    shift
    "$CLSNAP" inspect "$seq" >"$WORK/out" 2>"$WORK/err" || rc=$?
    [ $rc -eq 1 ] || { cat "$WORK/out" "$WORK/err" >&2; fail "inspect $seq: exit $rc, expected 1"; }
    for w in "$@"; do
      grep -qF -- "$w" "$WORK/err" || { cat "$WORK/err" >&2; fail "inspect $seq does not say: $w"; }
    done
  }
  expect_inspect 1 "$f1" "checksum mismatch"
  expect_inspect 2 "$f2" "truncated"
  expect_inspect 3 "no snapshot #3"
  "$CLSNAP" inspect 4 >/dev/null || fail "inspect 4 (undamaged) failed"
  rc=0
  "$CLSNAP" history >"$WORK/h.txt" 2>"$WORK/h.err" || rc=$?
  [ $rc -eq 1 ] || fail "history of a damaged store: exit $rc, expected 1"
  [ "$(grep -c DAMAGED "$WORK/h.txt")" -eq 3 ] || # two rows and the total
    { cat "$WORK/h.txt" >&2; fail "history does not mark both damaged files"; }
  grep -q "checksum mismatch" "$WORK/h.txt" && grep -q truncated "$WORK/h.txt" ||
    fail "history does not say what is wrong"
  # A mistyped store is said, not shown empty.
  rc=0
  "$CLSNAP" history --store "$WORK/no-such-store" >/dev/null 2>"$WORK/err" || rc=$?
  [ $rc -eq 1 ] && grep -qF "history: $WORK/no-such-store: no snapshot store there (no such directory)" "$WORK/err" ||
    { cat "$WORK/err" >&2; fail "history of a missing store: exit $rc"; }
  echo "ok: damage named by inspect and history"
  ;;

retention)
  cluster_up "$COS/3nodes.top" "$WORK/c"
  export CLSNAP_CLUSTER=$WORK/c/cluster
  d=$WORK/store
  for i in 1 2 3 4 5 6; do "$CLSNAP" snapshot N2 --store "$d" --keep 3 -q >/dev/null; done
  [ "$(ls "$d" | grep -E '\.json$' | tr '\n' ' ')" = \
    "000004-completed.json 000005-completed.json 000006-completed.json " ] ||
    fail "--keep 3 left: $(ls "$d")"
  history_matches "$d" "$WORK/h.json" --completed 3 --no-tmp
  # The checkpointer keeps the same way.
  "$CLSNAP" checkpoint --every 10ms --count 5 --keep 2 --store "$d" -q >/dev/null
  [ "$(count_files "$d" completed)" -eq 2 ] || fail "checkpoint --keep 2 left: $(ls "$d")"
  [ -e "$d/000011-completed.json" ] || fail "the newest checkpoint is not #11: $(ls "$d")"
  echo "ok: retention keeps exactly N"
  ;;

periodic)
  cluster_up "$COS/8nodes.top" "$WORK/c"
  export CLSNAP_CLUSTER=$WORK/c/cluster
  total=$(total_tokens "$COS/8nodes.top")
  "$CLSNAP" circulate on >/dev/null
  "$CLSNAP" checkpoint --every 50ms --count 200 --keep 0 --rotate --json \
    >"$WORK/ck.json" 2>"$WORK/ck.err" || { cat "$WORK/ck.err" >&2; fail "checkpoint failed"; }
  "$CLSNAP" circulate off >/dev/null
  "$PYTHON" - "$WORK/ck.json" <<'EOF' || fail "the checkpointer's report is wrong"
import json, sys
r = json.load(open(sys.argv[1]))
c = r["checkpoints"]
assert r["taken"] == 200 and r["completed"] == 200, r
assert [x["seq"] for x in c] == list(range(1, 201)), "seqs"
assert all(x["status"] == "completed" for x in c)
ids = [x["id"] for x in c]
assert ids == sorted(ids) and len(set(ids)) == 200, "ids in trigger order"
print("checkpoint: 200 completed, latency p50 %d us, p99 %d us; write p50 %d us, p99 %d us"
      % (r["latency_us"]["p50"], r["latency_us"]["p99"], r["write_us"]["p50"], r["write_us"]["p99"]))
EOF
  history_matches "$WORK/c/snapshots" "$WORK/h.json" --completed 200 --total "$total" --no-tmp
  # Under load: most checkpoints caught messages in flight.
  inflight=$("$PYTHON" -c 'import json,sys; print(sum(1 for h in json.load(open(sys.argv[1])) if h["messages_in_flight"] > 0))' "$WORK/h.json")
  [ "$inflight" -ge 20 ] || fail "only $inflight of 200 checkpoints recorded messages in flight: was the load on?"
  echo "ok: $(cat "$WORK/storecheck.out"); $inflight with messages in flight"
  ;;

timeout)
  cluster_up "$COS/3nodes.top" "$WORK/c"
  export CLSNAP_CLUSTER=$WORK/c/cluster
  d=$WORK/c/snapshots
  pid=$(cat "$WORK/c/N2.pid")
  cleanup_hooks=("kill -CONT $pid 2>/dev/null" "${cleanup_hooks[@]}")
  "$CLSNAP" circulate on >/dev/null
  "$CLSNAP" checkpoint --every 100ms --timeout 300ms --count 40 --tolerate 1000 \
    --rotate --keep 0 >"$WORK/ck.out" 2>&1 &
  ck=$!
  cleanup_hooks+=("kill $ck 2>/dev/null")
  wait_for 20 at_least "$d" completed 3 ||
    { cat "$WORK/ck.out" >&2; ls -la "$d" >&2; fail "no checkpoints before the stop"; }
  kill -STOP "$pid"
  wait_for 20 at_least "$d" timed_out 2 || fail "no timed_out checkpoint while N2 is stopped"
  kill -CONT "$pid"
  rc=0
  wait "$ck" || rc=$?
  [ $rc -eq 0 ] || { cat "$WORK/ck.out" >&2; fail "checkpoint exited $rc"; }
  grep -q "TIMED OUT" "$WORK/ck.out" || fail "no TIMED OUT line"
  last_bad=$(ls "$d" | grep timed_out | tail -1 | cut -d- -f1)
  last_ok=$(ls "$d" | grep completed | tail -1 | cut -d- -f1)
  [ "$((10#$last_ok))" -gt "$((10#$last_bad))" ] ||
    fail "no checkpoint completed after SIGCONT"
  history_matches "$d" "$WORK/h.json" --no-tmp --total 13
  # The servers dropped what timed out: nothing stays in progress.
  wait_for 10 no_active "$CLSNAP_CLUSTER" || { cat "$WORK/st.json" >&2; fail "snapshots stay in progress after the timeouts"; }
  echo "ok: $(grep -c 'TIMED OUT' "$WORK/ck.out") timed out while N2 was stopped, the checkpointer went on"
  # --tolerate 1: two in a row fail it, with a message that says so.
  d2=$WORK/store2
  "$CLSNAP" checkpoint --every 100ms --timeout 300ms --tolerate 1 --store "$d2" \
    >"$WORK/ck2.out" 2>"$WORK/ck2.err" &
  ck=$!
  cleanup_hooks+=("kill $ck 2>/dev/null")
  wait_for 20 at_least "$d2" completed 1 || fail "--tolerate 1: no checkpoint before the stop"
  kill -STOP "$pid"
  gone() { ! kill -0 "$ck" 2>/dev/null; }
  wait_for 20 gone || fail "--tolerate 1: the checkpointer did not stop"
  kill -CONT "$pid"
  rc=0
  wait "$ck" || rc=$?
  [ $rc -eq 1 ] || { cat "$WORK/ck2.out" "$WORK/ck2.err" >&2; fail "--tolerate 1: exit $rc, expected 1"; }
  grep -q "2 checkpoints in a row failed or timed out (more than --tolerate 1)" "$WORK/ck2.err" ||
    { cat "$WORK/ck2.err" >&2; fail "--tolerate 1: no clear message"; }
  [ "$(count_files "$d2" timed_out)" -ge 2 ] || fail "--tolerate 1: not 2 timed_out stored"
  history_matches "$d2" "$WORK/h3.json" --no-tmp
  "$CLSNAP" circulate off >/dev/null
  history_matches "$d" "$WORK/h2.json" --no-tmp
  echo "ok: --tolerate 1 ends with a message"
  ;;

interrupt)
  cluster_up "$COS/3nodes.top" "$WORK/c"
  export CLSNAP_CLUSTER=$WORK/c/cluster
  "$CLSNAP" circulate on >/dev/null
  for sig in INT TERM; do
    d=$WORK/store-$sig
    CLSNAP_STORE_DELAY_MS=500 "$CLSNAP" checkpoint --every 50ms --store "$d" \
      >"$WORK/ck.out" 2>"$WORK/ck.err" &
    ck=$!
    cleanup_hooks+=("kill $ck 2>/dev/null")
    # A write in the middle: a temporary file with bytes in it.
    writing() { find "$d" -name '.*.tmp' -size +0 2>/dev/null | grep -q .; }
    wait_for 20 writing || fail "SIG$sig: no write in progress seen"
    kill -"$sig" "$ck"
    rc=0
    wait "$ck" || rc=$?
    [ $rc -eq 130 ] || { cat "$WORK/ck.err" >&2; fail "SIG$sig: exit $rc, expected 130"; }
    grep -q "nothing partial is left" "$WORK/ck.err" || fail "SIG$sig: no message"
    grep -q "checkpoints:" "$WORK/ck.out" || fail "SIG$sig: no summary"
    storecheck "$d" --no-tmp
    [ "$(count_files "$d" completed)" -ge 1 ] || fail "SIG$sig: the write in progress was not finished"
    echo "ok: SIG$sig in the middle of a write: $(cat "$WORK/storecheck.out")"
  done
  "$CLSNAP" circulate off >/dev/null
  # SIGINT while a checkpoint is in flight: on a lockstep cluster no
  # snapshot completes without DELIVERs, so the checkpoint waits, started.
  cluster_up "$COS/3nodes.top" "$WORK/l" --lockstep
  d=$WORK/store-inflight
  "$CLSNAP" --cluster "$WORK/l/cluster" checkpoint --every 1s --timeout 60s \
    --store "$d" >"$WORK/ck.out" 2>"$WORK/ck.err" &
  ck=$!
  cleanup_hooks+=("kill $ck 2>/dev/null")
  wait_for 20 eval '! no_active "$WORK/l/cluster"' || fail "the checkpoint never started"
  kill -INT "$ck"
  rc=0
  wait "$ck" || rc=$?
  [ $rc -eq 130 ] || { cat "$WORK/ck.err" >&2; fail "SIGINT in flight: exit $rc, expected 130"; }
  [ -z "$(ls -A "$d" | grep -v '^\.lock$')" ] || fail "SIGINT in flight left: $(ls -A "$d")"
  # It was given up on the servers (DROP), not left running there.
  wait_for 10 no_active "$WORK/l/cluster" ||
    { cat "$WORK/st.json" >&2; fail "the interrupted checkpoint stays in progress"; }
  echo "ok: SIGINT with a checkpoint in flight: nothing stored, dropped on the servers"
  ;;

reference)
  for c in "8nodes.top 8nodes-concurrent-snapshots 5" "10nodes.top 10nodes 10"; do
    set -- $c
    d=$WORK/store-$2
    "$CLSNAP" run "$COS/$1" "$COS/$2.events" --lockstep \
      --delays "$CONFORMANCE_DIR/go-delays.txt" --store "$d" -q \
      --log-dir "$WORK/logs" >/dev/null 2>&1 || fail "run $2 --store failed"
    storecheck "$d" --completed "$3" --total "$(total_tokens "$COS/$1")" --no-tmp
    mkdir -p "$WORK/snap-$2"
    for k in $(seq 0 $(($3 - 1))); do
      "$CLSNAP" inspect $((k + 1)) --store "$d" --snap >"$WORK/snap-$2/$k.snap" ||
        fail "inspect $((k + 1)) of $2 failed"
    done
    reference_equal "$COS/$1" "$2" "$3" "$WORK/snap-$2"
    echo "ok: $2: $3 stored snapshots equal the reference"
  done
  ;;

*) fail "unknown case $case_" ;;
esac
assert_no_daemons "$CLSNAPD"
