#!/usr/bin/env bash
# Traces, diagrams and explanations (issue 16, docs/TRACE.md) on real
# daemons. Every trace is re-read by tracecheck.py (matching, indices,
# FIFO, the recording rule, consistent cuts, the run's own snapshots),
# every SVG by svgcheck.py, every ShiViz log by shivizcheck.py: none of
# them shares code with clsnap.
#   trace.sh lockstep    the seed's token-passing examples 1 and 2 and the
#                        reference 3- and 8-server cases, lockstep, twice:
#                        the same bytes but t_us, checked, drawn, explained
#   trace.sh free        free-running runs with jitter: the same checks
#   trace.sh cluster     trace start/stop/dump on a deployed cluster; a
#                        buffer overrun under circulation gives a dropped
#                        line, and diagram and explain refuse the trace
#   trace.sh browser     the step-through page in headless Chromium
#   trace.sh refusals    bad trace files and arguments, named
#   trace.sh bench       bench --trace under load: every server kept exactly
#                        its room, and made more
. "$(dirname "$0")/common.sh"
here=$(cd "$(dirname "$0")" && pwd)
case_=${1:?usage: trace.sh CASE}

check() { # TRACE [tracecheck options]
  "$PYTHON" "$here/tracecheck.py" "$@" >"$WORK/check.out" 2>&1 ||
    { cat "$WORK/check.out" >&2; fail "tracecheck $*"; }
  cat "$WORK/check.out"
}

# draw TRACE NAME: the SVG and the ShiViz log, each checked against TRACE.
draw() {
  local t=$1 name=$2
  "$CLSNAP" diagram "$t" -o "$WORK/$name.svg" -q || fail "diagram $t"
  "$PYTHON" "$here/svgcheck.py" "$WORK/$name.svg" "$t" ||
    fail "svgcheck $name.svg"
  "$CLSNAP" diagram "$t" --format shiviz -o "$WORK/$name.log" -q ||
    fail "diagram --format shiviz $t"
  "$PYTHON" "$here/shivizcheck.py" "$WORK/$name.log" "$t" ||
    fail "shivizcheck $name.log"
}

# The seed's examples (lecture notes, "Token passing example 1/2"): A and
# B, a channel each way.
seed_examples() {
  printf '2\nA 1\nB 1\nA B\nB A\n' >"$WORK/ab.top"
  # 1: A sends 1 token, A starts the snapshot; B gets the token, then the
  # marker: the token is not recorded (B had it before recording).
  printf 'send A B 1\nsnapshot A\ntick\n' >"$WORK/example1.events"
  # 2: B sends 1 token, A starts the snapshot, then receives the token:
  # recorded (A had recorded its state already).
  printf 'send B A 1\nsnapshot A\ntick\n' >"$WORK/example2.events"
}

# lockstep_case NAME TOPOLOGY EVENTS: two runs, the same trace but t_us,
# each checked against the run's snapshots, drawn and explained.
lockstep_case() {
  local name=$1 top=$2 ev=$3 k n
  for k in 1 2; do
    "$CLSNAP" run "$top" "$ev" --lockstep --delays "$CONFORMANCE_DIR/go-delays.txt" \
      --trace "$WORK/$name.$k.jsonl" --json >"$WORK/$name.$k.json" ||
      fail "run $name ($k)"
  done
  check "$WORK/$name.1.jsonl" --run-json "$WORK/$name.1.json" \
    --lockstep-equal "$WORK/$name.2.jsonl"
  draw "$WORK/$name.1.jsonl" "$name"
  n=$("$PYTHON" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["snapshots"]))' "$WORK/$name.1.json")
  for ((k = 0; k < n; k++)); do
    "$CLSNAP" explain "$WORK/$name.1.jsonl" "$k" >"$WORK/$name.explain.$k" ||
      { cat "$WORK/$name.explain.$k" >&2; fail "explain $name $k"; }
    grep -q "the servers' own records agree" "$WORK/$name.explain.$k" ||
      fail "explain $name $k: no agreement line"
  done
}

case $case_ in
lockstep)
  seed_examples
  lockstep_case example1 "$WORK/ab.top" "$WORK/example1.events"
  lockstep_case example2 "$WORK/ab.top" "$WORK/example2.events"
  # What the lecture notes say of each example, in explain's words; the
  # event numbers follow from the notes' event order (example 1: A sends
  # (A0), records (A1) and sends its marker (A2); B receives the token
  # (B0), the marker (B1), records (B2); example 2: B sends (B0); A
  # records (A0), sends its marker (A1), receives the token (A2); B
  # receives the marker (B1), records (B2), sends its marker (B3); A
  # receives it (A3)).
  want_line() { # FILE LINE
    grep -qxF -- "$2" "$1" || { cat "$1" >&2; fail "$1 lacks: $2"; }
  }
  want_line "$WORK/example1.explain.0" "channel A -> B: marker sent by A after 1 token message (event 2), received by B (event 1)"
  want_line "$WORK/example1.explain.0" "  nothing recorded: the channel was empty at the cut"
  want_line "$WORK/example1.explain.0" "  not recorded #1, 1 token: received by B (event 0) before it recorded snapshot 0 (event 2): its recorded tokens include these"
  want_line "$WORK/example2.explain.0" "channel B -> A: marker sent by B after 1 token message (event 3), received by A (event 3)"
  want_line "$WORK/example2.explain.0" "  recorded #1, 1 token: sent by B (event 0) before it recorded snapshot 0 (event 2), received by A (event 2) after it recorded (event 0) and before the marker from B (event 3): in flight across the cut"
  lockstep_case 3nodes "$COS/3nodes.top" "$COS/3nodes-bidirectional-messages.events"
  lockstep_case 8nodes "$COS/8nodes.top" "$COS/8nodes-concurrent-snapshots.events"
  # In process: the same sessions, the same trace (t_us aside: 0 there).
  "$CLSNAP" run "$COS/8nodes.top" "$COS/8nodes-concurrent-snapshots.events" \
    --in-process --delays "$CONFORMANCE_DIR/go-delays.txt" \
    --trace "$WORK/ip.jsonl" -q >/dev/null || fail "run --in-process --trace"
  check "$WORK/ip.jsonl" --lockstep-equal "$WORK/8nodes.1.jsonl"
  ;;
free)
  for c in "8nodes.top 8nodes-concurrent-snapshots.events" "10nodes.top 10nodes.events"; do
    set -- $c
    "$CLSNAP" run "$COS/$1" "$COS/$2" --jitter-ms 3 --trace "$WORK/f.jsonl" \
      --json >"$WORK/f.json" || fail "run $2"
    check "$WORK/f.jsonl" --run-json "$WORK/f.json"
    draw "$WORK/f.jsonl" free
  done
  ;;
cluster)
  cluster_up "$COS/3nodes.top" "$WORK/c"
  C=("$CLSNAP" --cluster "$WORK/c/cluster")
  "${C[@]}" trace start >/dev/null || fail "trace start"
  "${C[@]}" send N1 N2 3 >/dev/null
  "${C[@]}" snapshot N3 -q >/dev/null || fail "snapshot"
  "${C[@]}" send N2 N3 1 >/dev/null
  "${C[@]}" send N1 N3 2 >/dev/null
  "${C[@]}" snapshot N1 -q >/dev/null || fail "snapshot"
  "${C[@]}" trace stop >/dev/null || fail "trace stop"
  "${C[@]}" send N3 N1 1 >/dev/null # not traced
  "${C[@]}" trace dump "$WORK/t.jsonl" >"$WORK/dump.out" || fail "trace dump"
  grep -q "^trace: .* 3 servers (3 token messages, 12 markers, 2 snapshots)" \
    "$WORK/dump.out" || { cat "$WORK/dump.out" >&2; fail "dump summary"; }
  check "$WORK/t.jsonl"
  draw "$WORK/t.jsonl" cluster
  # Dumping again gives the same trace: a dump does not empty the buffers.
  "${C[@]}" trace dump - 2>/dev/null >"$WORK/t2.jsonl" || fail "trace dump -"
  cmp -s "$WORK/t.jsonl" "$WORK/t2.jsonl" || fail "a second dump differs"
  # A small buffer under circulation overflows: one dropped line per
  # server, where its events stop; diagram and explain refuse, naming it.
  "${C[@]}" trace start --events 64 >/dev/null || fail "trace start --events"
  "${C[@]}" circulate on >/dev/null
  sleep 0.3
  "${C[@]}" circulate off >/dev/null
  "${C[@]}" trace dump "$WORK/d.jsonl" >/dev/null 2>&1 || fail "trace dump (dropped)"
  check "$WORK/d.jsonl" --expect-dropped
  set +e
  "$CLSNAP" diagram "$WORK/d.jsonl" -o "$WORK/d.svg" 2>"$WORK/d.err"
  rc=$?
  set -e
  [ $rc = 2 ] || fail "diagram of a trace with a gap: exit $rc, not 2"
  grep -q "d.jsonl:[0-9]*: N[123] dropped [0-9]* events from its event [0-9]* on" "$WORK/d.err" ||
    { cat "$WORK/d.err" >&2; fail "diagram's refusal does not say where"; }
  [ ! -e "$WORK/d.svg" ] || fail "diagram wrote a file for a refused trace"
  set +e
  "$CLSNAP" explain "$WORK/d.jsonl" 0 2>"$WORK/e.err"
  rc=$?
  set -e
  [ $rc = 2 ] && grep -q "dropped" "$WORK/e.err" || fail "explain of a trace with a gap: exit $rc"
  # Traced while tokens circulate: the servers' traces start and stop at
  # slightly different moments, with messages crossing both edges. The
  # trace is whole, draws, and its snapshot is explained with the
  # servers' records agreeing.
  "${C[@]}" circulate on >/dev/null
  "${C[@]}" trace start --events 200000 >/dev/null || fail "trace start (live)"
  "${C[@]}" snapshot N1 -q >/dev/null || fail "snapshot (live)"
  "${C[@]}" trace stop >/dev/null || fail "trace stop (live)"
  "${C[@]}" circulate off >/dev/null
  "${C[@]}" trace dump "$WORK/live.jsonl" >/dev/null || fail "trace dump (live)"
  ! grep -q '"ev":"dropped"' "$WORK/live.jsonl" || fail "live trace overran 200000 events"
  "$CLSNAP" diagram "$WORK/live.jsonl" -o "$WORK/live.svg" -q || fail "diagram of a live trace"
  snap=$(grep -o '"ev":"record","snap":[0-9]*' "$WORK/live.jsonl" | head -1 | grep -o '[0-9]*$')
  "$CLSNAP" explain "$WORK/live.jsonl" "$snap" >"$WORK/live.txt" ||
    { tail -5 "$WORK/live.txt" >&2; fail "explain of a live trace"; }
  grep -q "the servers' own records agree" "$WORK/live.txt" || fail "live: no agreement"
  # Tracing and its reads do not disturb the cluster: a snapshot holds
  # every token.
  "${C[@]}" snapshot N2 -q >/dev/null || fail "snapshot after tracing"
  ;;
browser)
  "$CLSNAP" run "$COS/3nodes.top" "$COS/3nodes-bidirectional-messages.events" \
    --lockstep --delays "$CONFORMANCE_DIR/go-delays.txt" --trace "$WORK/t.jsonl" \
    -q >/dev/null || fail "run --trace"
  "$CLSNAP" diagram "$WORK/t.jsonl" -o "$WORK/t.html" -q || fail "diagram -o t.html"
  "$PYTHON" "$here/svgcheck.py" "$WORK/t.html" "$WORK/t.jsonl" || fail "svgcheck t.html"
  set +e
  /usr/bin/python3 "$here/browser.py" "$WORK/t.html" "$WORK/t.png"
  rc=$?
  set -e
  [ $rc = 0 ] || exit $rc # 77: skipped (no Chromium or Selenium)
  # A trace begun while messages are on their way (sent with jitter just
  # before trace start): the page still shows every
  # token, held or in flight, at every step.
  # Six messages of up to 1 s jitter each: that every one arrives before
  # trace start (a few ms later) is not going to happen.
  cluster_up "$COS/3nodes.top" "$WORK/c" "--jitter-ms 1000"
  C=("$CLSNAP" --cluster "$WORK/c/cluster")
  for k in 1 2 3; do
    "${C[@]}" send N1 N2 1 >/dev/null && "${C[@]}" send N1 N3 1 >/dev/null ||
      fail "send (live)"
  done
  "${C[@]}" trace start >/dev/null || fail "trace start (live)"
  "${C[@]}" snapshot N2 -q >/dev/null || fail "snapshot (live)"
  "${C[@]}" trace dump "$WORK/live.jsonl" >/dev/null || fail "trace dump (live)"
  grep -q '"ev":"recv","peer":"N1"' "$WORK/live.jsonl" ||
    fail "the messages sent before the trace were not received in it"
  "$CLSNAP" diagram "$WORK/live.jsonl" -o "$WORK/live.html" -q || fail "diagram live.html"
  /usr/bin/python3 "$here/browser.py" "$WORK/live.html" "$WORK/live.png" --total ||
    fail "browser: the live page"
  ;;
refusals)
  printf '{"server":"N1","i":0,"ev":"send","peer":"N2","seq":1,"n":1,"tokens":0,"t_us":1}\nnot json\n' >"$WORK/bad.jsonl"
  set +e
  "$CLSNAP" diagram "$WORK/bad.jsonl" -o "$WORK/bad.svg" 2>"$WORK/err"; rc=$?
  set -e
  [ $rc = 2 ] && grep -q "bad.jsonl:2: not JSON" "$WORK/err" || { cat "$WORK/err" >&2; fail "a line that is not JSON"; }
  # Receives of messages sent before or after the sender's trace are fine
  # (#4, #8: traces of a running cluster start and end at slightly
  # different moments); one its sender's trace should hold (#6, between
  # #5 and #7) is not.
  { printf '{"server":"N1","i":0,"ev":"send","peer":"N2","seq":5,"n":1,"tokens":1,"t_us":1}\n'
    printf '{"server":"N1","i":1,"ev":"send","peer":"N2","seq":7,"n":1,"tokens":0,"t_us":1}\n'
    printf '{"server":"N2","i":0,"ev":"recv","peer":"N1","seq":4,"n":2,"recorded":[],"tokens":2,"t_us":1}\n'
    printf '{"server":"N2","i":1,"ev":"recv","peer":"N1","seq":5,"n":1,"recorded":[],"tokens":3,"t_us":1}\n'
    printf '{"server":"N2","i":2,"ev":"recv","peer":"N1","seq":6,"n":1,"recorded":[],"tokens":4,"t_us":1}\n'; } >"$WORK/orphan.jsonl"
  set +e
  "$CLSNAP" explain "$WORK/orphan.jsonl" 0 2>"$WORK/err"; rc=$?
  set -e
  [ $rc = 2 ] && grep -q "orphan.jsonl:5: N2's event 2 receives token message #6 from N1, which N1's trace should hold but does not (it sends #5 and #7)" "$WORK/err" ||
    { cat "$WORK/err" >&2; fail "a receive with no send"; }
  { sed -n 1p "$WORK/orphan.jsonl"; sed -n 3,4p "$WORK/orphan.jsonl"; } >"$WORK/before.jsonl"
  "$CLSNAP" diagram "$WORK/before.jsonl" -o "$WORK/before.svg" -q ||
    fail "a message sent before the trace is refused"
  grep -q 'class="msg token" data-src="N1" data-dst="N2" data-seq="4"><title>N1 -> N2 #4, 2 tokens, sent before the trace began' \
    "$WORK/before.svg" || fail "the message sent before the trace is not drawn"
  # Trace files are input: a crash of an earlier version (two servers
  # record a snapshot with no marker before), values past 2^50, an
  # output that is no regular file.
  printf '{"server":"A","i":0,"ev":"record","snap":0,"tokens":1,"t_us":0}\n{"server":"B","i":0,"ev":"record","snap":0,"tokens":1,"t_us":0}\n' >"$WORK/two.jsonl"
  "$CLSNAP" explain "$WORK/two.jsonl" 0 >"$WORK/two.out" || fail "explain two.jsonl"
  grep -q "B: recorded 1 token at its event 0 (it started the snapshot)" "$WORK/two.out" ||
    { cat "$WORK/two.out" >&2; fail "explain two.jsonl: B's line"; }
  printf '{"server":"A","i":0,"ev":"record","snap":0,"tokens":9223372036854775807,"t_us":0}\n' >"$WORK/big.jsonl"
  set +e
  "$CLSNAP" explain "$WORK/big.jsonl" 0 2>"$WORK/err"; rc=$?
  set -e
  [ $rc = 2 ] && grep -q 'big.jsonl:1: record needs "tokens", from 0 to 2^50' "$WORK/err" ||
    { cat "$WORK/err" >&2; fail "tokens past 2^50"; }
  # Written through, not replaced: a symlink (as /dev/stdout is) and a
  # named pipe.
  ln -s "$WORK/real.svg" "$WORK/link.svg"
  "$CLSNAP" diagram "$WORK/before.jsonl" -o "$WORK/link.svg" -q || fail "diagram -o link.svg"
  [ -L "$WORK/link.svg" ] || fail "diagram -o replaced a symlink"
  grep -q "<svg" "$WORK/real.svg" || fail "diagram -o link.svg wrote nothing through it"
  mkfifo "$WORK/fifo"
  cat "$WORK/fifo" >"$WORK/stdout.svg" &
  "$CLSNAP" diagram "$WORK/before.jsonl" -o "$WORK/fifo" -q || fail "diagram -o fifo"
  wait
  [ -p "$WORK/fifo" ] || fail "diagram -o replaced a named pipe"
  grep -q "<svg" "$WORK/stdout.svg" || fail "diagram -o fifo wrote no SVG"
  printf '{"server":"N1","i":1,"ev":"record","snap":0,"tokens":1,"t_us":1}\n' >"$WORK/start.jsonl"
  set +e
  "$CLSNAP" diagram "$WORK/start.jsonl" 2>"$WORK/err" >/dev/null; rc=$?
  set -e
  [ $rc = 2 ] && grep -q "start.jsonl:1: N1's first event has index 1" "$WORK/err" ||
    { cat "$WORK/err" >&2; fail "a trace without its start"; }
  "$CLSNAP" run "$COS/2nodes.top" "$COS/2nodes-message.events" --lockstep \
    --trace "$WORK/t.jsonl" -q >/dev/null || fail "run --trace"
  set +e
  "$CLSNAP" explain "$WORK/t.jsonl" 7 2>"$WORK/err"; rc=$?
  set -e
  [ $rc = 2 ] && grep -q "has no snapshot 7 (it has: 0)" "$WORK/err" ||
    { cat "$WORK/err" >&2; fail "an unknown snapshot"; }
  set +e
  "$CLSNAP" diagram "$WORK/t.jsonl" --snap 0,x 2>"$WORK/err"; rc=$?
  set -e
  [ $rc = 2 ] && grep -q "not a list of numbers" "$WORK/err" || fail "--snap 0,x"
  set +e
  "$CLSNAP" run "$COS/2nodes.top" "$COS/2nodes-message.events" --trace-events 10 2>"$WORK/err"; rc=$?
  set -e
  [ $rc = 2 ] && grep -q "\-\-trace-events goes with --trace" "$WORK/err" || fail "--trace-events alone"
  # A window and a selection still give a diagram that checks.
  "$CLSNAP" diagram "$WORK/t.jsonl" --snap 0 --from 2 --to 6 -o "$WORK/w.svg" -q || fail "diagram --from --to"
  "$CLSNAP" diagram "$WORK/t.jsonl" --servers N1 -o "$WORK/s.svg" -q || fail "diagram --servers"
  ;;
bench)
  "$CLSNAP" bench --nodes 3 --topology ring --seconds 1 --warmup-ms 100 \
    --trace --trace-events 1000 --json >"$WORK/b.json" || fail "bench --trace"
  "$PYTHON" -c '
import json, sys
t = json.load(open(sys.argv[1]))["trace"]
assert t["events_per_server"] == 1000 and t["kept"] == 3000 and t["made"] > 3000, t
' "$WORK/b.json" || fail "bench --trace: not 1000 kept per server"
  ;;
*)
  fail "unknown case $case_"
  ;;
esac
assert_no_daemons
echo "trace.sh $case_: ok"
