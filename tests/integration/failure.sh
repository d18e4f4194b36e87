#!/usr/bin/env bash
# Server and coordinator failures; none may make clsnap hang.
#   failure.sh run-kill          kill -9 one daemon of `clsnap run` (10-node
#                                reference scenario) mid-run
#   failure.sh run-stop          SIGSTOP one daemon mid-run: a server that
#                                hangs is given up on after --timeout
#   failure.sh snapshot-kill     kill -9 a server while `clsnap snapshot`
#                                waits for a snapshot (lockstep cluster)
#   failure.sh snapshot-timeout  a snapshot that cannot complete (lockstep
#                                cluster, nobody delivers) ends at --timeout
#   failure.sh coordinator-kill  kill -9 clsnap mid-snapshot; the daemons
#                                keep running for the next coordinator
#   failure.sh checked-then-fail a run that fails after a snapshot was
#                                checked says it completed
#   failure.sh unreachable       a snapshot whose markers cannot reach a
#                                server is refused before it starts (run,
#                                and snapshot on a deployed cluster)
#   failure.sh term-while-exiting a SIGTERM after the daemon's loop ended
#                                does not kill it
#   failure.sh slow-exit         daemons that acknowledge SHUTDOWN but take
#                                3 s to exit (as under ASan on a busy
#                                machine) are waited for, not killed
. "$(dirname "$0")/common.sh"
export CLSNAP CLSNAPD

now_ms() { date +%s%3N; }

# wait_file FILE PATTERN SECONDS: poll until FILE has a line matching.
wait_file() {
  local deadline=$((SECONDS + $3))
  until grep -qs -- "$2" "$1"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.01
  done
}

case ${1:-} in
term-while-exiting)
  # A SIGTERM that reaches a daemon after its loop ended (a coordinator
  # whose SHUTDOWN reply timed out sends one) must not kill it: it exits 0.
  CLSNAPD_EXIT_DELAY_MS=3000 "$CLSNAPD" --id T1 --listen 127.0.0.1:0 \
    >"$WORK/t1.out" 2>"$WORK/t1.log" &
  pid=$!
  cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  wait_file "$WORK/t1.out" "^READY T1 " 10 || fail "T1 not ready"
  kill -TERM "$pid"
  wait_file "$WORK/t1.log" "loop ended; exiting" 10 || { cat "$WORK/t1.log"; fail "T1 did not reach its way out"; }
  kill -TERM "$pid" 2>/dev/null || true
  rc=0
  wait "$pid" || rc=$?
  [ $rc -eq 0 ] || { cat "$WORK/t1.log"; fail "a SIGTERM while exiting ended the daemon with status $rc"; }
  grep -q "stopped" "$WORK/t1.log" || { cat "$WORK/t1.log"; fail "T1 did not log that it stopped"; }
  echo "ok: a SIGTERM while the daemon exits changes nothing (exit 0)"
  ;;
unreachable)
  # c sends to a, but nothing reaches c: a snapshot from a can never
  # complete. The run is refused before any daemon starts; so is a
  # `clsnap snapshot` from a on a deployed cluster, while one from c works.
  printf '3\na 5\nb 5\nc 5\na b\nc a\n' >"$WORK/un.top"
  printf 'send a b 1\nsnapshot a\n' >"$WORK/un.events"
  for mode in "" --lockstep; do
    rc=0
    "$CLSNAP" run "$WORK/un.top" "$WORK/un.events" $mode --log-dir "$WORK/unlogs" \
      >"$WORK/out.txt" 2>"$WORK/err.txt" || rc=$?
    [ $rc -eq 2 ] || { cat "$WORK/err.txt"; fail "run $mode exited $rc, expected 2"; }
    grep -qF "un.events:2: no marker from a can reach c (no path of channels)" "$WORK/err.txt" ||
      { cat "$WORK/err.txt"; fail "run $mode: the error does not name FILE:LINE, the initiator and c"; }
    [ ! -e "$WORK/unlogs" ] || fail "run $mode started daemons before refusing"
  done
  cluster_up "$WORK/un.top" "$WORK/run"
  rc=0
  "$CLSNAP" --cluster "$WORK/run/cluster" snapshot a >"$WORK/out.txt" 2>"$WORK/err.txt" || rc=$?
  [ $rc -eq 2 ] || { cat "$WORK/err.txt"; fail "snapshot a exited $rc, expected 2"; }
  grep -qF "no marker from a can reach c" "$WORK/err.txt" || { cat "$WORK/err.txt"; fail "snapshot a: c is not named"; }
  "$CLSNAP" --cluster "$WORK/run/cluster" snapshot c >"$WORK/out.txt" 2>"$WORK/err.txt" ||
    { cat "$WORK/err.txt"; fail "snapshot c (which reaches everyone) failed"; }
  grep -q ": ok (tokens 15 = " "$WORK/out.txt" || { cat "$WORK/out.txt"; fail "snapshot c is not ok"; }
  echo "ok: snapshots no marker can complete are refused at once, naming the servers"
  ;;
checked-then-fail)
  # Snapshot 0 completes and is checked; then an event fails the run. The
  # summary must not call the finished snapshot unfinishable.
  printf '2\na 5\nb 5\na b\nb a\n' >"$WORK/two.top"
  printf 'snapshot a\ntick 50\nsend a b 100\n' >"$WORK/fail.events"
  rc=0
  "$CLSNAP" run "$WORK/two.top" "$WORK/fail.events" --lockstep \
    --log-dir "$WORK/logs" >"$WORK/out.txt" 2>"$WORK/err.txt" || rc=$?
  cat "$WORK/err.txt"
  cat "$WORK/out.txt"
  [ $rc -eq 1 ] || fail "clsnap run exited $rc, expected 1"
  grep -q "a has 5 tokens, cannot send 100 to b" "$WORK/err.txt" || fail "the cause is not named"
  # Printed as a whole run prints it: the .snap text, the verdict, then
  # a summary that says the run did not finish.
  grep -qx "snapshot 0: ok (tokens 10 = 10 on servers + 0 in 0 messages, 2 channels exact)" "$WORK/out.txt" ||
    fail "snapshot 0, checked before the failure, is not printed with its verdict"
  grep -qx "a 5" "$WORK/out.txt" || fail "snapshot 0's .snap text is not printed"
  grep -qx "1 of 1 snapshot checked before the run failed: 1 passed, 0 failed" "$WORK/out.txt" ||
    fail "no summary of the checked snapshots"
  ! grep -q "cannot complete" "$WORK/err.txt" || fail "a finished snapshot is called unfinishable"
  echo "ok: a snapshot checked before the run failed is printed with its verdict"
  ;;
slow-exit)
  # A wrapper that runs the real daemon, then lingers before exiting with
  # its status: the launcher must wait for it, since it said OK to SHUTDOWN.
  printf '#!/usr/bin/env bash\n"%s" "$@"\nrc=$?\nsleep 3\nexit $rc\n' "$CLSNAPD" >"$WORK/slow-clsnapd"
  chmod +x "$WORK/slow-clsnapd"
  rc=0
  "$CLSNAP" run "$COS/3nodes.top" "$COS/3nodes-simple.events" --daemon "$WORK/slow-clsnapd" \
    --log-dir "$WORK/logs" >"$WORK/out.txt" 2>"$WORK/err.txt" || rc=$?
  cat "$WORK/err.txt"
  [ $rc -eq 0 ] || fail "clsnap run exited $rc with daemons slow to exit"
  grep -q " 0 failed" "$WORK/out.txt" || { cat "$WORK/out.txt"; fail "no passing summary"; }
  echo "ok: daemons slow to exit after SHUTDOWN were waited for"
  ;;
slow-reply)
  # N2 takes 5 s to take its SHUTDOWN (a test hook; under ASan on a loaded
  # machine a daemon can be that slow): the launcher's 2 s wait for replies
  # ends, N2 gets SIGTERM, and must not be SIGKILLed 2 s later while it is
  # still alive and on its way out.
  printf '#!/usr/bin/env bash\n[ "$2" = N2 ] && export CLSNAPD_SHUTDOWN_DELAY_MS=5000\nexec "%s" "$@"\n' "$CLSNAPD" >"$WORK/slow-clsnapd"
  chmod +x "$WORK/slow-clsnapd"
  rc=0
  "$CLSNAP" run "$COS/3nodes.top" "$COS/3nodes-simple.events" --daemon "$WORK/slow-clsnapd" \
    --log-dir "$WORK/logs" >"$WORK/out.txt" 2>"$WORK/err.txt" || rc=$?
  cat "$WORK/err.txt"
  [ $rc -eq 0 ] || fail "clsnap run exited $rc with N2 slow to take SHUTDOWN"
  grep -q " 0 failed" "$WORK/out.txt" || { cat "$WORK/out.txt"; fail "no passing summary"; }
  grep -q "stopped (peak RSS" "$WORK/logs/N2.log" || fail "N2 did not stop cleanly"
  echo "ok: a daemon 5 s late to take SHUTDOWN was waited for, not killed"
  ;;
run-kill)
  top=$COS/10nodes.top events=$COS/10nodes.events timeout=20 victim=N6
  # Ticks of 300 ms: the run takes about 3 s, so the kill lands mid-run
  # even when the machine is busy with other tests.
  "$CLSNAP" run "$top" "$events" --tick-ms 300 --timeout $timeout \
    --log-dir "$WORK/logs" >"$WORK/out.txt" 2>"$WORK/err.txt" &
  pid=$!
  cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  # Mid-run: the first snapshot is under way (act at the first sign).
  wait_file "$WORK/logs/N1.log" "snapshot 0 started here" 30 ||
    { cat "$WORK/err.txt" >&2; fail "the run never started snapshot 0"; }
  daemons=$(pgrep -P $pid | tr '\n' ' ')
  [ "$(echo $daemons | wc -w)" -eq 10 ] || fail "expected 10 daemons under clsnap, found: $daemons"
  vpid=$(pgrep -P $pid -f -- "--id $victim ") || fail "no daemon $victim under clsnap"
  kill -9 "$vpid"
  t0=$(now_ms)
  rc=0
  wait $pid || rc=$?
  took=$(($(now_ms) - t0))
  cat "$WORK/err.txt"
  [ $rc -eq 1 ] || { cat "$WORK/out.txt"; fail "clsnap run exited $rc after $victim was killed, expected 1"; }
  [ $took -lt $((timeout * 1000)) ] || fail "clsnap run took $took ms to give up, over its --timeout of $timeout s"
  grep -q "server $victim .*exited with signal 9" "$WORK/err.txt" || fail "the error does not say $victim was killed"
  grep -Eq "snapshots? [0-9].* cannot complete" "$WORK/err.txt" || fail "the error does not say which snapshots cannot complete"
  # A snapshot that completed everywhere before the kill is printed with
  # its verdict, and must pass; every other one is named as unfinished.
  checked=$(accounted "$WORK/out.txt" "$WORK/err.txt" 10) || { cat "$WORK/out.txt"; fail "the snapshots are not all accounted for"; }
  grep -q "^snapshot [0-9]*: FAILED" "$WORK/out.txt" && fail "a snapshot checked before $victim died failed"
  k=$(echo $checked | wc -w)
  if [ "$k" -gt 0 ]; then
    grep -qx "$k of 10 snapshots checked before the run failed: $k passed, 0 failed" "$WORK/out.txt" ||
      { cat "$WORK/out.txt"; fail "no summary of the snapshots checked before the kill"; }
  else
    [ ! -s "$WORK/out.txt" ] || { cat "$WORK/out.txt"; fail "results printed with no snapshot checked"; }
  fi
  for p in $daemons; do
    if running "$p"; then fail "daemon pid $p outlived clsnap run"; fi
  done
  # The survivors were stopped in order. (Whether they logged the lost
  # channels first races with that stop; snapshot-kill checks the logging.)
  for id in N1 N2 N3 N4 N5 N7 N8 N9 N10; do
    grep -q "shutting down" "$WORK/logs/$id.log" || fail "$id was not stopped in order"
  done
  no_sanitizer_reports "$WORK"/logs/*.log
  echo "ok: run exited 1 in $took ms naming $victim; no daemon left"
  ;;
run-stop)
  top=$COS/10nodes.top events=$COS/10nodes.events timeout=3 victim=N6
  "$CLSNAP" run "$top" "$events" --tick-ms 300 --timeout $timeout \
    --log-dir "$WORK/logs" >"$WORK/out.txt" 2>"$WORK/err.txt" &
  pid=$!
  cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  wait_file "$WORK/logs/N1.log" "snapshot 0 started here" 30 ||
    { cat "$WORK/err.txt" >&2; fail "the run never started snapshot 0"; }
  daemons=$(pgrep -P $pid | tr '\n' ' ')
  vpid=$(pgrep -P $pid -f -- "--id $victim ") || fail "no daemon $victim under clsnap"
  cleanup_hooks+=("kill -9 $vpid 2>/dev/null")
  kill -STOP "$vpid"
  t0=$(now_ms)
  rc=0
  wait $pid || rc=$?
  took=$(($(now_ms) - t0))
  cat "$WORK/err.txt"
  [ $rc -eq 1 ] || fail "clsnap run exited $rc with $victim stopped, expected 1"
  # --timeout to notice, then at most 2 s for SHUTDOWN replies and 2 s of
  # SIGTERM grace before SIGKILL (launcher.h).
  [ $took -lt $(((timeout + 4) * 1000 + 2000)) ] || fail "clsnap run took $took ms with $victim stopped"
  grep -q "no reply from $victim" "$WORK/err.txt" || fail "the error does not name the hung server $victim"
  grep -Eq "snapshots? [0-9].* cannot complete" "$WORK/err.txt" || fail "the error does not say which snapshots cannot complete"
  for p in $daemons; do
    if running "$p"; then fail "daemon pid $p outlived clsnap run"; fi
  done
  echo "ok: run exited 1 in $took ms naming the hung $victim; no daemon left"
  ;;
snapshot-kill)
  run=$WORK/run timeout=30 victim=N3
  # A receiver waits --peer-lost for a sender to reconnect before it counts
  # the channel lost; a short one keeps the test short.
  CLSNAPD_ARGS="--peer-lost 2000" cluster_up "$COS/3nodes.top" "$run" --lockstep
  "$CLSNAP" --cluster "$run/cluster" snapshot N1 --timeout $timeout >"$WORK/out.txt" 2>"$WORK/err.txt" &
  pid=$!
  cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  wait_file "$run/N1.log" "snapshot 1000000 started here" 20 ||
    { cat "$WORK/err.txt" >&2; fail "the snapshot did not start"; }
  kill -9 "$(cat "$run/$victim.pid")"
  t0=$(now_ms)
  rc=0
  wait $pid || rc=$?
  took=$(($(now_ms) - t0))
  cat "$WORK/err.txt"
  [ $rc -eq 1 ] || fail "clsnap snapshot exited $rc after $victim was killed, expected 1"
  [ $took -lt $((timeout * 1000)) ] || fail "clsnap snapshot took $took ms, over its --timeout"
  grep -q "server $victim lost" "$WORK/err.txt" || fail "the error does not name the lost server $victim"
  grep -q "snapshot 1000000 .*cannot complete\|cannot complete.*snapshot 1000000" "$WORK/err.txt" ||
    fail "the error does not name snapshot 1000000 as unable to complete"
  # The survivors log the lost channels and keep serving: N1 at once
  # (nothing listens at N3's address), N2 after --peer-lost.
  wait_file "$run/N1.log" "lost channel N1->N3: cannot reconnect: connection refused" 10 ||
    fail "N1 did not log the lost channel N1->N3"
  wait_file "$run/N2.log" "lost channel N3->N2: N3 did not reconnect within 2000 ms" 10 ||
    fail "N2 did not log the lost channel N3->N2"
  for id in N1 N2; do running "$(cat "$run/$id.pid")" || fail "$id died too"; done
  rc=0
  "$CLSNAP" --cluster "$run/cluster" status >"$WORK/status.txt" 2>&1 || rc=$?
  [ $rc -eq 1 ] || { cat "$WORK/status.txt"; fail "status exited $rc with $victim down, expected 1"; }
  grep -q "^N3 .*unreachable" "$WORK/status.txt" || { cat "$WORK/status.txt"; fail "status does not show N3 unreachable"; }
  grep -q "^N1 .*lockstep" "$WORK/status.txt" || { cat "$WORK/status.txt"; fail "status does not show N1"; }
  bash "$DEPLOY" down "$run" >/dev/null
  no_sanitizer_reports "$run"/N1.log "$run"/N2.log
  echo "ok: snapshot exited 1 in $took ms naming $victim and snapshot 1000000"
  ;;
snapshot-timeout)
  run=$WORK/run
  cluster_up "$COS/3nodes.top" "$run" --lockstep
  t0=$(now_ms)
  rc=0
  "$CLSNAP" --cluster "$run/cluster" snapshot N1 --timeout 2 >"$WORK/out.txt" 2>"$WORK/err.txt" || rc=$?
  took=$(($(now_ms) - t0))
  cat "$WORK/err.txt"
  [ $rc -eq 1 ] || fail "clsnap snapshot exited $rc, expected 1"
  [ $took -lt 6000 ] || fail "clsnap snapshot --timeout 2 took $took ms"
  grep -q "timed out after 2000 ms: snapshot 1000000 not complete on N1" "$WORK/err.txt" ||
    fail "the error does not name the snapshot and the servers it is incomplete on"
  echo "ok: snapshot timed out in $took ms"
  ;;
coordinator-kill)
  # Lockstep: the snapshot cannot finish, so the coordinator dies mid-flight.
  run=$WORK/run
  cluster_up "$COS/3nodes.top" "$run" --lockstep
  "$CLSNAP" --cluster "$run/cluster" snapshot N1 >"$WORK/out.txt" 2>&1 &
  pid=$!
  wait_file "$run/N1.log" "snapshot 1000000 started here" 20 || fail "the snapshot did not start"
  kill -9 $pid
  wait $pid 2>/dev/null || true
  for id in N1 N2 N3; do
    wait_file "$run/$id.log" "client clsnap-$pid .* disconnected" 10 || fail "$id did not notice the coordinator go"
    running "$(cat "$run/$id.pid")" || fail "$id died with the coordinator"
  done
  "$CLSNAP" --cluster "$run/cluster" status >"$WORK/status.txt" 2>&1 ||
    { cat "$WORK/status.txt"; fail "status after the coordinator died failed"; }
  grep -q "^  1 in progress: 1000000$" "$WORK/status.txt" ||
    { cat "$WORK/status.txt"; fail "status does not show the unfinished snapshot"; }
  bash "$DEPLOY" down "$run" >/dev/null
  no_sanitizer_reports "$run"/*.log
  # Free-running: coordinators killed at various points of a snapshot; the
  # next one takes a snapshot that accounts for every token.
  run=$WORK/run2 top=$COS/8nodes.top
  total=$(total_tokens "$top")
  cluster_up "$top" "$run"
  for delay in 0.005 0.02 0.05 0.1; do
    "$CLSNAP" --cluster "$run/cluster" send N1 N2 1 >/dev/null || fail "send failed"
    "$CLSNAP" --cluster "$run/cluster" snapshot N1 >/dev/null 2>&1 &
    pid=$!
    sleep $delay
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
  done
  "$CLSNAP" --cluster "$run/cluster" status >"$WORK/status2.txt" 2>&1 ||
    { cat "$WORK/status2.txt"; fail "status after killed coordinators failed"; }
  grep -q "total: $total tokens on servers of $total configured" "$WORK/status2.txt" ||
    { cat "$WORK/status2.txt"; fail "status does not account for $total tokens"; }
  "$CLSNAP" --cluster "$run/cluster" snapshot N4 --snap-dir "$WORK/snap" >"$WORK/snap.txt" 2>&1 ||
    { cat "$WORK/snap.txt"; fail "snapshot after killed coordinators failed"; }
  f=$(ls "$WORK"/snap/*.snap)
  [ "$(snap_tokens "$f")" -eq "$total" ] || fail "snapshot holds $(snap_tokens "$f") tokens, expected $total"
  for id in $(awk '!/^#/ {print $1}' "$run/cluster"); do
    running "$(cat "$run/$id.pid")" || fail "$id died"
  done
  bash "$DEPLOY" down "$run" >/dev/null
  no_sanitizer_reports "$run"/*.log
  echo "ok: daemons outlived killed coordinators; status and a new snapshot work"
  ;;
*)
  fail "usage: failure.sh run-kill|run-stop|snapshot-kill|snapshot-timeout|coordinator-kill"
  ;;
esac
