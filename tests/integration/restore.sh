#!/usr/bin/env bash
# Restore a running cluster to a stored snapshot (docs/RESTORE.md).
#   restore.sh paused TOPOLOGY   under circulation: checkpoints, then
#                                restore latest --paused; status --snap
#                                equals inspect --snap and the stored
#                                states (snapcmp.py); resume; circulation
#                                goes on; with it off, a snapshot holds
#                                every token and passes
#   restore.sh reference         the stored snapshots of lockstep runs of
#                                the reference cases, restored --paused
#                                into a fresh cluster: status --snap equals
#                                the reference .snap
#   restore.sh stale             50 restores in a row under full
#                                circulation, each paused and compared
#                                exactly, then resumed: no message of an
#                                older epoch is ever handled
#   restore.sh recover           kill -9 of one daemon, then of two, during
#                                circulation with periodic checkpoints;
#                                deploy/cluster.sh recover restarts them and
#                                restores the newest checkpoint: every
#                                token there, the next snapshot passes; a
#                                daemon killed during a restore (stopped
#                                first, so that the restore waits on it):
#                                the restore fails naming it, recover and
#                                a second restore repair the cluster
#   restore.sh half              a coordinator killed after FREEZE, and
#                                after RESTORE (the CLSNAP_RESTORE_CRASH
#                                hook): status says frozen, a second
#                                restore repairs the cluster
#   restore.sh refusals          another topology, a damaged file, a
#                                timed-out entry; snapshots in progress
#                                stored as failed ("aborted")
. "$(dirname "$0")/common.sh"
case_=${1:?usage: restore.sh CASE [TOPOLOGY]}

# paused_equals SEQ TOTAL: the paused cluster's state (status --snap) is
# stored snapshot SEQ (inspect --snap) by the reference comparison.
paused_equals() {
  "$CLSNAP" status --snap >"$WORK/now.snap" || fail "status --snap failed"
  "$CLSNAP" inspect "$1" --snap >"$WORK/stored.snap" || fail "inspect $1 failed"
  "$PYTHON" "$SNAPCMP" "$2" "$WORK/stored.snap" "$WORK/now.snap" ||
    fail "the restored cluster is not snapshot #$1"
}

# settled_snapshot TOTAL: with circulation off, a snapshot passes and
# holds every token.
settled_snapshot() {
  "$CLSNAP" circulate off >/dev/null
  "$CLSNAP" snapshot N1 --json >"$WORK/s.json" || fail "the snapshot after the restore failed"
  "$PYTHON" -c 'import json,sys; s = json.load(open(sys.argv[1])); sys.exit(not (s["ok"] and s["tokens"]["expected"] == int(sys.argv[2])))' \
    "$WORK/s.json" "$1" || fail "the snapshot after the restore does not hold $1 tokens"
}

case $case_ in
paused)
  top=$COS/${2:?topology}
  total=$(total_tokens "$top")
  cluster_up "$top" "$WORK/c"
  export CLSNAP_CLUSTER=$WORK/c/cluster
  "$CLSNAP" circulate on >/dev/null
  # Until a checkpoint catches messages in flight (with 40 tokens, and a
  # slow sanitizer build, ten in a row may all find the channels empty):
  # at most 5 rounds of 10.
  seq=0
  for round in 1 2 3 4 5; do
    "$CLSNAP" checkpoint --every 20ms --count 10 -q >/dev/null
    seq=$("$CLSNAP" history --json | "$PYTHON" -c 'import json,sys; h = [e for e in json.load(sys.stdin) if e["status"] == "completed"]; b = max(h, key=lambda e: e["messages_in_flight"]); print(b["seq"] if b["messages_in_flight"] > 0 else 0)')
    [ "$seq" -eq 0 ] || break
  done
  [ "$seq" -gt 0 ] || fail "no checkpoint under circulation caught a message in flight in 50"
  "$CLSNAP" restore "$seq" --paused >"$WORK/r.txt" || fail "restore --paused failed"
  grep -q "^restored #$seq " "$WORK/r.txt" || fail "restore said: $(cat "$WORK/r.txt")"
  paused_equals "$seq" "$total"
  # Paused: nothing moves, and nothing may be started.
  ! "$CLSNAP" send N1 N2 1 >/dev/null 2>&1 || fail "a SEND went through while paused"
  "$CLSNAP" resume >/dev/null || fail "resume failed"
  ! "$CLSNAP" status --snap >/dev/null 2>&1 || fail "status --snap of a running cluster"
  settled_snapshot "$total"
  echo "ok: $2: restored #$seq paused equals the stored snapshot; resumed, $total tokens"
  ;;

reference)
  for c in "3nodes.top 3nodes-bidirectional-messages 1" "8nodes.top 8nodes-concurrent-snapshots 5" \
           "10nodes.top 10nodes 10"; do
    set -- $c
    d=$WORK/store-$2
    "$CLSNAP" run "$COS/$1" "$COS/$2.events" --lockstep \
      --delays "$CONFORMANCE_DIR/go-delays.txt" --store "$d" -q \
      --log-dir "$WORK/logs" >/dev/null 2>&1 || fail "run $2 --store failed"
    cluster_up "$COS/$1" "$WORK/c-$2"
    mkdir -p "$WORK/snap-$2"
    for k in $(seq 0 $(($3 - 1))); do
      "$CLSNAP" --cluster "$WORK/c-$2/cluster" restore $((k + 1)) --store "$d" --paused \
        >/dev/null || fail "restore $((k + 1)) of $2 failed"
      "$CLSNAP" --cluster "$WORK/c-$2/cluster" status --snap >"$WORK/snap-$2/$k.snap" ||
        fail "status --snap after restoring $((k + 1)) of $2 failed"
    done
    reference_equal "$COS/$1" "$2" "$3" "$WORK/snap-$2"
    bash "$DEPLOY" down "$WORK/c-$2" >/dev/null
    echo "ok: $2: $3 snapshots restored into a fresh cluster equal the reference"
  done
  ;;

stale)
  top=$COS/8nodes.top
  total=$(total_tokens "$top")
  cluster_up "$top" "$WORK/c"
  export CLSNAP_CLUSTER=$WORK/c/cluster
  "$CLSNAP" circulate on >/dev/null
  "$CLSNAP" checkpoint --every 20ms --count 5 -q >/dev/null
  for i in $(seq 1 50); do
    seq=$((i % 5 + 1))
    "$CLSNAP" restore "$seq" --paused >/dev/null || fail "restore $i failed"
    paused_equals "$seq" "$total"
    "$CLSNAP" resume >/dev/null || fail "resume $i failed"
  done
  "$CLSNAP" status >"$WORK/st.txt" || true
  grep -q "restore epoch 50 " "$WORK/st.txt" ||
    { cat "$WORK/st.txt" >&2; fail "status does not show the restore epoch"; }
  "$CLSNAP" status --json >"$WORK/st.json"
  discarded=$("$PYTHON" -c 'import json,sys; print(sum(s["discarded"] for s in json.load(open(sys.argv[1]))["servers"]))' "$WORK/st.json")
  settled_snapshot "$total"
  echo "ok: 50 restores under circulation, each exactly the stored snapshot; $discarded HELLOs of older epochs refused"
  ;;

recover)
  top=$COS/8nodes.top
  total=$(total_tokens "$top")
  cluster_up "$top" "$WORK/c"
  export CLSNAP_CLUSTER=$WORK/c/cluster
  recover() {
    bash "$DEPLOY" recover "$WORK/c" >"$WORK/rec.txt" 2>&1 ||
      { cat "$WORK/rec.txt" >&2; fail "recover failed"; }
    grep -q "^recovered in [0-9]* ms$" "$WORK/rec.txt" || fail "recover said: $(cat "$WORK/rec.txt")"
  }
  for victims in "N3" "N2 N6"; do
    "$CLSNAP" circulate on >/dev/null
    "$CLSNAP" checkpoint --every 50ms --count 30 --tolerate 100 -q >/dev/null 2>&1 &
    ck=$!
    cleanup_hooks+=("kill $ck 2>/dev/null")
    n0=$(ls "$WORK/c/snapshots" 2>/dev/null | grep -c completed || true)
    for _ in $(seq 200); do
      [ "$(ls "$WORK/c/snapshots" 2>/dev/null | grep -c completed || true)" -ge $((n0 + 3)) ] && break
      sleep 0.05
    done
    for v in $victims; do kill -9 "$(cat "$WORK/c/$v.pid")"; done
    wait "$ck" || true
    recover
    grep -q "restarted $(wc -w <<<"$victims") server(s): $victims" "$WORK/rec.txt" ||
      fail "recover did not restart $victims: $(cat "$WORK/rec.txt")"
    settled_snapshot "$total"
    echo "ok: kill -9 of $victims during checkpoints; $(tail -1 "$WORK/rec.txt"); every token there, a snapshot passes"
  done
  # A daemon killed during a restore: stopped first, the restore waits for
  # its FREEZE reply; killed then, the restore fails and says so.
  pid=$(cat "$WORK/c/N4.pid")
  kill -STOP "$pid"
  "$CLSNAP" restore latest --timeout 20s >"$WORK/r.txt" 2>&1 &
  rs=$!
  sleep 0.5
  kill -9 "$pid"
  rc=0
  wait "$rs" || rc=$?
  [ $rc -eq 1 ] && grep -q "N4" "$WORK/r.txt" ||
    { cat "$WORK/r.txt" >&2; fail "the restore that lost N4 did not fail naming it (exit $rc)"; }
  recover
  "$CLSNAP" restore latest >/dev/null || fail "the restore after recover failed"
  settled_snapshot "$total"
  echo "ok: a daemon killed during a restore; recover and a second restore repair the cluster"
  ;;

half)
  top=$COS/8nodes.top
  total=$(total_tokens "$top")
  cluster_up "$top" "$WORK/c"
  export CLSNAP_CLUSTER=$WORK/c/cluster
  "$CLSNAP" circulate on >/dev/null
  "$CLSNAP" checkpoint --every 20ms --count 3 -q >/dev/null
  for step in frozen restored; do
    rc=0
    CLSNAP_RESTORE_CRASH=$step "$CLSNAP" restore latest >/dev/null 2>&1 || rc=$?
    [ $rc -eq 137 ] || fail "$step: the restore was not killed at the hook (exit $rc)"
    "$CLSNAP" status --brief >"$WORK/st.txt" || true
    grep -q " frozen " "$WORK/st.txt" ||
      { cat "$WORK/st.txt" >&2; fail "$step: status does not say the servers are frozen"; }
    "$CLSNAP" restore latest >/dev/null || fail "$step: the second restore failed"
    "$CLSNAP" status --brief >"$WORK/st.txt" || true
    ! grep -q " frozen " "$WORK/st.txt" || fail "$step: still frozen after the second restore"
  done
  settled_snapshot "$total"
  echo "ok: a restore killed after FREEZE and after RESTORE; a second restore repairs the cluster"
  ;;

refusals)
  cluster_up "$COS/3nodes.top" "$WORK/c"
  export CLSNAP_CLUSTER=$WORK/c/cluster
  "$CLSNAP" snapshot N1 --store "$WORK/c/snapshots" -q >/dev/null
  # Another topology's snapshot.
  "$CLSNAP" run "$COS/2nodes.top" "$COS/2nodes-simple.events" --in-process \
    --store "$WORK/other" -q >/dev/null
  expect_refusal() { # WANT_EXIT TEXT ARGS...
    local want=$1 text=$2 rc=0
    shift 2
    "$CLSNAP" restore "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
    [ $rc -eq "$want" ] && grep -qF -- "$text" "$WORK/err" ||
      { cat "$WORK/out" "$WORK/err" >&2; fail "restore $*: exit $rc, expected $want and: $text"; }
  }
  expect_refusal 2 "was taken on another topology" latest --store "$WORK/other"
  cp "$WORK/c/snapshots/000001-completed.json" "$WORK/c/snapshots/000001.bak"
  printf 'x' >>"$WORK/c/snapshots/000001-completed.json"
  expect_refusal 1 "000001-completed.json: truncated" 1
  mv "$WORK/c/snapshots/000001.bak" "$WORK/c/snapshots/000001-completed.json"
  # A timed-out entry: a lockstep cluster never completes one.
  cluster_up "$COS/3nodes.top" "$WORK/l" --lockstep
  "$CLSNAP" --cluster "$WORK/l/cluster" checkpoint --every 10ms --count 1 \
    --timeout 200ms --tolerate 1 -q >/dev/null 2>&1 || true
  expect_refusal 1 "timed_out, there is nothing to restore" 1 --cluster "$WORK/l/cluster"
  # A snapshot in progress (lockstep: it waits for DELIVERs) is aborted by
  # a restore and stored as failed.
  "$CLSNAP" --cluster "$WORK/l/cluster" snapshot N2 --no-wait >/dev/null
  "$CLSNAP" --cluster "$WORK/l/cluster" restore latest --store "$WORK/c/snapshots" \
    >"$WORK/r.txt" || fail "restore of the lockstep cluster failed"
  grep -q "1 snapshot in progress aborted" "$WORK/r.txt" ||
    { cat "$WORK/r.txt" >&2; fail "the snapshots in progress were not aborted"; }
  "$CLSNAP" history --store "$WORK/c/snapshots" >"$WORK/h.txt" || true
  grep -q "aborted by the restore to #1" "$WORK/h.txt" ||
    { cat "$WORK/h.txt" >&2; fail "no failed entry for the aborted snapshots"; }
  "$CLSNAP" --cluster "$WORK/l/cluster" status --json >"$WORK/st.json"
  "$PYTHON" -c 'import json,sys; sys.exit(any(s["in_progress"] for s in json.load(open(sys.argv[1]))["servers"]))' "$WORK/st.json" ||
    fail "snapshots still in progress after the restore"
  # Bad requests straight on the wire, to the 3-node cluster's N1: a
  # RESTORE whose state names a channel N1 does not have, lists one twice
  # or records messages from a server with no channel to N1; RESUME and
  # PEEK after a FREEZE with no RESTORE; FREEZE at an old epoch. Each is
  # refused and N1 stays sound (a snapshot passes afterwards).
  addr=$(awk '$1 == "N1" { print $2 }' "$WORK/c/cluster")
  "$PYTHON" - "$(dirname "$0")" "$addr" <<'PY' || fail "raw restore requests"
import sys
sys.path.insert(0, sys.argv[1])
from hostile import Control
c = Control(sys.argv[2])
st = c.status()
epoch = 1000
def expect(reply, words):
    assert reply[0] == 31 and words in reply[3], reply
assert c.call(24, epoch)[0] == 30                 # FREEZE
expect(c.call(26), "without a RESTORE")          # RESUME before RESTORE
expect(c.call(27), "restored and paused")        # PEEK before RESTORE
expect(c.call(24, epoch), "at epoch")            # FREEZE at the same epoch
state = lambda rec, sent, recv: [0, "N1", 5, 10, rec, sent, recv]
good_sent = [["N2", 0], ["N3", 0]]
good_recv = [["N2", 0], ["N3", 0]]
expect(c.call(25, epoch, False, state([["N9", 1, 1, 1]], good_sent, good_recv)), "no channel")
expect(c.call(25, epoch, False, state([], [["N2", 0], ["N2", 0]], good_recv)), "twice")
expect(c.call(25, epoch, False, state([], [["N2", 0], ["N9", 0]], good_recv)), "no channel")
expect(c.call(25, epoch, False, state([["N2", 3, 1, 1]], good_sent, good_recv)), "start at seq 3")
PY
  "$CLSNAP" restore latest >/dev/null || fail "a restore after the bad requests failed"
  "$CLSNAP" snapshot N1 -q >/dev/null || fail "a snapshot after the bad requests failed"
  echo "ok: refusals named; snapshots in progress aborted and stored as failed; bad RESTOREs refused"
  ;;

*) fail "unknown case $case_" ;;
esac
assert_no_daemons "$CLSNAPD"
