#!/usr/bin/env bash
# deploy/cluster.sh against the mistakes a real user makes.
#   cluster_deploy.sh stale-pid     two clusters of the same topology; A's
#                                   N1 dies and its pid file names B's N1 (a
#                                   reused pid): A's status, down and up
#                                   must leave B's N1 alone
#   cluster_deploy.sh dotted-id     ids are compared as strings: the pid
#                                   file of N.1 naming the daemon NX1 (same
#                                   start time) is not N.1
#   cluster_deploy.sh status-exit   status exits 0 with every daemon up, 1
#                                   after one is killed, naming it
#   cluster_deploy.sh no-configure  up --no-configure, then
#                                   `clsnap --cluster F run` configures the
#                                   daemons itself and passes
. "$(dirname "$0")/common.sh"
export CLSNAP CLSNAPD

top=$COS/3nodes.top

# kill_wait PID: kill -9 and wait until it is gone (or a zombie).
kill_wait() {
  kill -9 "$1"
  local deadline=$((SECONDS + 10))
  while running "$1"; do
    [ $SECONDS -lt $deadline ] || fail "pid $1 still running 10 s after kill -9"
    sleep 0.02
  done
}

# status_of RUNDIR: cluster.sh status into $WORK/status.txt; echoes its exit.
status_of() {
  local rc=0
  bash "$DEPLOY" status "$1" >"$WORK/status.txt" 2>&1 || rc=$?
  echo $rc
}

# status_down RUNDIR ID UP: cluster.sh status must exit non-zero, say that
# ID is not running, and count UP daemons running and 1 not.
status_down() {
  local rc
  rc=$(status_of "$1")
  [ "$rc" -ne 0 ] || { cat "$WORK/status.txt"; fail "status exited 0 with $2 dead"; }
  grep -qxF "server $2: not running" "$WORK/status.txt" ||
    { cat "$WORK/status.txt"; fail "status does not say $2 is not running"; }
  grep -qxF "$3 running, 1 not running" "$WORK/status.txt" ||
    { cat "$WORK/status.txt"; fail "status does not count $3 running, 1 not"; }
}

case ${1:-} in
stale-pid)
  a=$WORK/a b=$WORK/b
  cluster_up "$top" "$a"
  cluster_up "$top" "$b"
  bpid=$(cat "$b/N1.pid")
  # A's N1 dies and the kernel hands its pid to B's N1: A's N1.pid (and
  # N1.start, kept) are stale.
  kill_wait "$(cat "$a/N1.pid")"
  cp "$a/N1.start" "$WORK/a-N1.start"
  echo "$bpid" >"$a/N1.pid"
  status_down "$a" N1 2
  bash "$DEPLOY" down "$a" >"$WORK/down.txt" 2>&1 || fail "down A failed"
  grep -q "stopped 2 servers" "$WORK/down.txt" || { cat "$WORK/down.txt"; fail "down A did not stop exactly A's 2 live daemons"; }
  running "$bpid" || fail "down A killed B's N1"
  # The stale pid file again, as `down` had not run: up in A must not be
  # refused because of B's N1, and must start A's own N1.
  echo "$bpid" >"$a/N1.pid"
  cp "$WORK/a-N1.start" "$a/N1.start"
  bash "$DEPLOY" up "$top" "$a" >"$WORK/up2.txt" 2>&1 ||
    { cat "$WORK/up2.txt"; fail "up in A refused because of B's N1"; }
  [ "$(cat "$a/N1.pid")" != "$bpid" ] || fail "up in A kept B's N1 as A's"
  [ "$(status_of "$a")" -eq 0 ] || { cat "$WORK/status.txt"; fail "status of A after up exited non-zero"; }
  [ "$(status_of "$b")" -eq 0 ] || { cat "$WORK/status.txt"; fail "B is no longer whole"; }
  bash "$DEPLOY" down "$a" >/dev/null
  running "$bpid" || fail "down A (after up) killed B's N1"
  echo "ok: a stale pid naming another cluster's daemon is not taken for ours"
  ;;
dotted-id)
  dtop=$WORK/dotted.top
  printf '2\nN.1 5\nNX1 0\nN.1 NX1\nNX1 N.1\n' >"$dtop"
  run=$WORK/run
  cluster_up "$dtop" "$run"
  xpid=$(cat "$run/NX1.pid")
  # N.1 dies; its pid file and start time now name NX1 exactly, so only
  # the `--id` argument tells them apart.
  kill_wait "$(cat "$run/N.1.pid")"
  echo "$xpid" >"$run/N.1.pid"
  cp "$run/NX1.start" "$run/N.1.start"
  status_down "$run" N.1 1
  echo "ok: the id N.1 does not match the daemon NX1"
  ;;
status-exit)
  run=$WORK/run
  cluster_up "$top" "$run"
  rc=$(status_of "$run")
  [ "$rc" -eq 0 ] || { cat "$WORK/status.txt"; fail "status exited $rc with every daemon up"; }
  grep -q "^3 running, 0 not running" "$WORK/status.txt" || { cat "$WORK/status.txt"; fail "status does not count 3 running"; }
  kill_wait "$(cat "$run/N2.pid")"
  status_down "$run" N2 2
  echo "ok: status exits 0 with all up, non-zero with N2 killed"
  ;;
no-configure)
  run=$WORK/run
  cleanup_hooks+=("bash '$DEPLOY' down '$run' >/dev/null")
  bash "$DEPLOY" up --no-configure "$top" "$run" >"$WORK/up.txt" 2>&1 ||
    { cat "$WORK/up.txt" >&2; fail "cluster.sh up --no-configure failed"; }
  grep -q "not configured" "$WORK/up.txt" || { cat "$WORK/up.txt"; fail "up --no-configure does not say so"; }
  # An unconfigured cluster: clsnap status shows every server unconfigured.
  "$CLSNAP" --cluster "$run/cluster" status >"$WORK/cstatus.txt" 2>&1 ||
    { cat "$WORK/cstatus.txt"; fail "clsnap status of an unconfigured cluster failed"; }
  for id in N1 N2 N3; do
    grep -q "^$id .*unconfig" "$WORK/cstatus.txt" || { cat "$WORK/cstatus.txt"; fail "status does not show $id unconfigured"; }
  done
  "$CLSNAP" --cluster "$run/cluster" run "$top" "$COS/3nodes-simple.events" --lockstep \
    --delays "$CONFORMANCE_DIR/go-delays.txt" --snap-dir "$WORK/snaps" >"$WORK/out.txt" 2>&1 ||
    { cat "$WORK/out.txt" >&2; fail "clsnap --cluster run on an up --no-configure cluster failed"; }
  reference_equal "$top" 3nodes-simple 1 "$WORK/snaps"
  [ "$(status_of "$run")" -eq 0 ] || { cat "$WORK/status.txt"; fail "a daemon stopped after the run"; }
  echo "ok: up --no-configure leaves configuring to clsnap run"
  ;;
*)
  fail "usage: cluster_deploy.sh stale-pid|dotted-id|status-exit|no-configure"
  ;;
esac
