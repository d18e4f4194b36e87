#!/usr/bin/env bash
# Channels that survive broken connections (docs/RELIABILITY.md): real
# daemons, real faults, every snapshot still exact and no token lost.
#   reconnect.sh resets     clsnap bench (4-server mesh, circulate load,
#                           a snapshot every 50 ms) while resetter.py
#                           resets 50 peer connections with ss -K: every
#                           snapshot passes (conservation and exact channel
#                           states) and the daemons resent after reconnects
#   reconnect.sh lockstep   a lockstep replay (50-server ring, 1000
#                           snapshots) while peer connections are reset:
#                           the output is byte for byte that of the
#                           in-process replay
#   reconnect.sh stall      a receiver stopped (SIGSTOP) for 4 peer
#                           timeouts with a token on its way: the sender
#                           breaks the silent connection, reconnects once
#                           the receiver runs again, and the next snapshot
#                           is exact with every token
# resets and lockstep need root (ss -K); without it they say skipped.
. "$(dirname "$0")/common.sh"
here=$(cd "$(dirname "$0")" && pwd)
resetter=$here/resetter.py
export CLSNAP CLSNAPD

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "skipped: $1 needs root (ss -K resets connections)"
    exit 77
  fi
}

# lost_early LOGDIR: the "lost channel" lines logged before the first
# daemon took SHUTDOWN (ISO timestamps sort as text). A channel reset just
# as the cluster stops finds its receiver gone (connection refused): that
# one is not a failure of the run.
lost_early() {
  local stop
  stop=$(grep -h "SHUTDOWN requested" "$1"/*.log | cut -d' ' -f1 | sort | head -n 1)
  grep -h "lost channel" "$1"/*.log | awk -v stop="${stop:-9}" '$1 < stop'
}

# reconnects LOGDIR: how many times the daemons' channels were welcomed
# back after a broken connection.
reconnects() {
  cat "$1"/*.log | grep -c "; reconnecting$" || true
}

case ${1:-} in
resets)
  need_root resets
  rc=0
  # bench starts its daemons with --log-level=warn; reconnects are info.
  printf '#!/usr/bin/env bash\nexec "%s" "$@" --log-level=info\n' "$CLSNAPD" >"$WORK/clsnapd"
  chmod +x "$WORK/clsnapd"
  "$CLSNAP" bench --nodes 4 --topology mesh --seconds 8 --warmup-ms 200 \
    --snapshot-every-ms 50 --log-dir "$WORK/logs" --json --daemon "$WORK/clsnapd" \
    >"$WORK/bench.json" 2>"$WORK/bench.err" &
  bpid=$!
  cleanup_hooks+=("kill $bpid 2>/dev/null")
  $PYTHON "$resetter" --parent $bpid --count 50 --interval-ms 60 \
    --timeout 20 >"$WORK/resets.txt" || fail "resetter.py failed"
  wait $bpid || rc=$?
  cat "$WORK/resets.txt"
  [ $rc -eq 0 ] || { cat "$WORK/bench.err" "$WORK/bench.json" >&2; fail "bench exited $rc with connections reset"; }
  n=$(sed -n 's/^resets: //p' "$WORK/resets.txt")
  [ "$n" -ge 10 ] || fail "only $n resets landed during the run"
  $PYTHON - "$WORK/bench.json" <<'EOF' || fail "bench's snapshots under resets"
import json, sys
r = json.load(open(sys.argv[1]))
snaps, ok = r["snapshots"], r["snapshots_ok"]
print("bench under resets: %d snapshots, %d passed, %.0f tokens/s"
      % (snaps, ok, r["tokens_per_s"]))
sys.exit(0 if snaps >= 10 and ok == snaps else 1)
EOF
  k=$(reconnects "$WORK/logs")
  [ "$k" -ge 5 ] || fail "the daemons logged only $k reconnects for $n resets"
  [ -z "$(lost_early "$WORK/logs")" ] || { lost_early "$WORK/logs"; fail "a channel was lost"; }
  no_sanitizer_reports "$WORK"/logs/*.log
  echo "ok: $n resets, $k reconnects, every snapshot exact"
  ;;
lockstep)
  need_root lockstep
  # A 50-server ring, 1000 snapshots started at once amid sends (about 3 s
  # of lockstep replay), while peer connections are reset every 40 ms.
  $PYTHON "$here/gen_bursts.py" "$WORK"
  rc=0
  "$CLSNAP" run "$WORK/ring.top" "$WORK/ring.events" --lockstep --seed 7 \
    --snap-dir "$WORK/procs" --log-dir "$WORK/logs" >"$WORK/procs.txt" 2>"$WORK/procs.err" &
  rpid=$!
  cleanup_hooks+=("kill $rpid 2>/dev/null")
  $PYTHON "$resetter" --parent $rpid --count 50 --interval-ms 40 \
    --timeout 60 >"$WORK/resets.txt" || fail "resetter.py failed"
  wait $rpid || rc=$?
  cat "$WORK/resets.txt"
  [ $rc -eq 0 ] || { tail "$WORK/procs.txt" "$WORK/procs.err" >&2; fail "lockstep run exited $rc with connections reset"; }
  "$CLSNAP" run "$WORK/ring.top" "$WORK/ring.events" --lockstep --seed 7 --in-process \
    --snap-dir "$WORK/inproc" >"$WORK/inproc.txt" 2>"$WORK/inproc.err" ||
    { cat "$WORK/inproc.err" >&2; fail "in-process replay failed"; }
  diff -r "$WORK/inproc" "$WORK/procs" >/dev/null && diff "$WORK/inproc.txt" "$WORK/procs.txt" >&2 ||
    fail "the lockstep run under resets differs from the in-process replay"
  n=$(sed -n 's/^resets: //p' "$WORK/resets.txt")
  k=$(reconnects "$WORK/logs")
  [ "$n" -ge 10 ] || fail "only $n resets landed during the run"
  [ "$k" -ge 5 ] || fail "only $k reconnects for $n resets"
  [ -z "$(lost_early "$WORK/logs")" ] || { lost_early "$WORK/logs"; fail "a channel was lost"; }
  echo "ok: 1000 lockstep snapshots on a 50-ring, $n resets, $k reconnects, output identical to the in-process replay"
  ;;
stall)
  run=$WORK/run top=$COS/3nodes.top
  total=$(total_tokens "$top")
  CLSNAPD_ARGS="--peer-timeout 500" cluster_up "$top" "$run"
  c() { "$CLSNAP" --cluster "$run/cluster" "$@"; }
  victim=$(cat "$run/N2.pid")
  kill -STOP "$victim"
  cleanup_hooks+=("kill -CONT $victim 2>/dev/null")
  # A token and a marker-free send into the stopped N2: N1 says OK (the
  # frame is queued), then hears no acknowledgement.
  c send N1 N2 3 >/dev/null || { kill -CONT "$victim"; fail "send N1 N2 3 refused"; }
  sleep 2
  kill -CONT "$victim"
  grep -q "acknowledged nothing for" "$run/N1.log" || fail "N1 did not break the silent connection"
  c snapshot N1 --json >"$WORK/snap.json" 2>"$WORK/snap.err" ||
    { cat "$WORK/snap.err" >&2; fail "snapshot after the stall failed"; }
  json_check "$top" "$WORK/snap.json" --expect 1
  grep -q "channel N1->N2 reconnected" "$run/N1.log" || fail "N1 did not reconnect to N2"
  grep -h "lost channel" "$run"/*.log && fail "a channel was lost"
  c status >"$WORK/status.txt" || { cat "$WORK/status.txt"; fail "status after the stall"; }
  grep -q "total: $total" "$WORK/status.txt" || { cat "$WORK/status.txt"; fail "status does not hold $total tokens"; }
  echo "ok: a 2 s stall of N2 with a token on its way: reconnected, snapshot exact"
  ;;
*)
  fail "usage: reconnect.sh resets|lockstep|stall"
  ;;
esac
