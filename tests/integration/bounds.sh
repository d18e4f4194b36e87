#!/usr/bin/env bash
# The daemon's bounds, each with its documented behaviour at the limit:
#   bounds.sh input-cap   a frame over --input-cap closes that connection
#                         (logged); frames under it, however many, are served
#   bounds.sh write-cap   an outbound peer that never reads: SENDs are refused
#                         with EFULL once --write-cap bytes are queued, tokens
#                         unchanged; markers are still queued
#   bounds.sh reply-cap   a control client that never reads: past 64 MiB of
#                         queued replies it is disconnected (logged)
#   bounds.sh collect-cap  a COLLECT with release whose 9 MB state takes a
#                         client that never reads past the 64 MiB reply cap:
#                         the client is dropped and the state stays kept
#   bounds.sh active-cap  a peer sending 50000 MARKERs with fresh ids: 1024
#                         snapshots in progress, then the channel is failed
#                         (logged, NOTICE); SNAPSHOT past the cap is EFULL
#   bounds.sh connect-timeout  an outbound peer whose backlog is full (connect
#                         hangs): CONNECT answers ERROR EIO within its window
#   bounds.sh fd-limit    a daemon under ulimit -n 256 flooded with 400 idle
#                         connections refuses the excess with log lines (at
#                         most one a second) and its channels keep working
#   bounds.sh retention   --max-kept 2: of 4 snapshots nobody watches
#                         (snapshot --no-wait) the oldest two are evicted
#                         with a log line, COLLECT says ENOENT; a snapshot a
#                         caller waits for completes and checks
. "$(dirname "$0")/common.sh"
: "${CLSNAPD:?CLSNAPD must point at the clsnapd binary}"
export WORK
hostile=$(dirname "$0")/hostile.py

case ${1:-} in
input-cap | write-cap | reply-cap | collect-cap | active-cap | connect-timeout | fd-limit)
  "$PYTHON" "$hostile" "$1" "$CLSNAPD" "$WORK" || fail "$1 test failed (log: $WORK/A.log)"
  no_sanitizer_reports "$WORK/A.log"
  ;;
retention)
  : "${DEPLOY:?DEPLOY must point at deploy/cluster.sh}"
  export CLSNAP CLSNAPD
  top=$COS/3nodes.top run=$WORK/run
  total=$(total_tokens "$top")
  cleanup_hooks+=("bash '$DEPLOY' down '$run' >/dev/null")
  CLSNAPD_ARGS="--max-kept 2" bash "$DEPLOY" up "$top" "$run" >"$WORK/up.txt" 2>&1 ||
    { cat "$WORK/up.txt" >&2; fail "cluster.sh up failed"; }
  c() { "$CLSNAP" --cluster "$run/cluster" "$@"; }
  # Snapshots nobody watches (--no-wait): their states are kept, at most 2.
  ids=()
  for k in 1 2 3 4; do
    c send N1 N2 1 >/dev/null || fail "send $k failed"
    id=$(c snapshot N1 --no-wait) || fail "snapshot $k --no-wait failed"
    ids+=("$id")
  done
  # Wait (bounded) until none is in progress anywhere.
  for _ in $(seq 200); do
    c status --json >"$WORK/status.json" || fail "status failed"
    "$PYTHON" -c 'import json,sys; sys.exit(any(s["in_progress"] for s in json.load(open(sys.argv[1]))["servers"]))' "$WORK/status.json" && break
    sleep 0.05
  done
  # A snapshot a caller waits for is never dropped, however many states
  # nobody watches come and go around it.
  c snapshot N2 --snap-dir "$WORK/watched" >"$WORK/watched.txt" 2>&1 ||
    { cat "$WORK/watched.txt" >&2; fail "a watched snapshot failed under --max-kept 2"; }
  f=$(ls "$WORK/watched"/*.snap)
  [ "$(snap_tokens "$f")" -eq "$total" ] || fail "watched snapshot holds $(snap_tokens "$f") tokens"
  # Kept: the two newest, on every server.
  c status --json >"$WORK/status.json" || fail "status failed"
  "$PYTHON" - "$WORK/status.json" "${ids[2]}" "${ids[3]}" <<'PY' || fail "kept states are not the two newest"
import json, sys
st = json.load(open(sys.argv[1]))
want = sorted(int(x) for x in sys.argv[2:])
for s in st["servers"]:
    if sorted(s["kept"]) != want:
        sys.exit("%s keeps %s, expected %s" % (s["id"], s["kept"], want))
PY
  # The oldest is gone: collect names it unknown on every server, exit 1.
  if c collect "${ids[0]}" >"$WORK/c1.txt" 2>&1; then fail "collect ${ids[0]} succeeded after eviction"; fi
  for id in N1 N2 N3; do
    grep -q "$id: snapshot ${ids[0]} is unknown on $id (ENOENT)" "$WORK/c1.txt" ||
      { cat "$WORK/c1.txt" >&2; fail "collect of the evicted snapshot does not say ENOENT for $id"; }
    grep -q "dropped the kept state of snapshot ${ids[0]} (over --max-kept 2" "$run/$id.log" ||
      fail "$id logged no eviction of snapshot ${ids[0]}"
    grep -q "dropped the kept state of snapshot ${ids[1]} (over --max-kept 2" "$run/$id.log" ||
      fail "$id logged no eviction of snapshot ${ids[1]}"
    if grep -q "dropped the kept state of snapshot ${ids[2]} " "$run/$id.log"; then
      fail "$id evicted snapshot ${ids[2]}, one of the two newest"
    fi
  done
  # The newest is still there and still checks out.
  c collect "${ids[3]}" >"$WORK/c4.txt" 2>&1 || { cat "$WORK/c4.txt" >&2; fail "collect ${ids[3]} failed"; }
  grep -q "^snapshot ${ids[3]}: ok" "$WORK/c4.txt" || { cat "$WORK/c4.txt" >&2; fail "snapshot ${ids[3]} does not check out"; }
  bash "$DEPLOY" down "$run" >/dev/null || fail "cluster.sh down failed"
  no_sanitizer_reports "$run"/*.log
  echo "ok: retention (kept ${ids[2]} ${ids[3]}, evicted ${ids[0]} ${ids[1]} with log lines)"
  ;;
*)
  fail "usage: bounds.sh input-cap|write-cap|reply-cap|collect-cap|active-cap|connect-timeout|fd-limit|retention"
  ;;
esac
