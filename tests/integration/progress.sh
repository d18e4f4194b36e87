#!/usr/bin/env bash
# The status line of `clsnap run` and `clsnap bench` (coordinator/cmd/
# progress.c), and what an interrupted run prints.
#   progress.sh tty        under a pseudo-terminal (script(1)): run redraws
#                          "run: event N/M, snapshots K/T done" in place and
#                          erases it before its last lines; the same with
#                          NO_COLOR; never an SGR (colour) escape
#   progress.sh pipe       stderr not a terminal: nothing of it, no escape
#                          byte at all; with --progress plain lines, at most
#                          about one a second; with -q or -j never, on a
#                          terminal or not
#   progress.sh bench      bench --seconds 3: a line a second on a terminal
#                          and with --progress in a pipe, none without
#   progress.sh interrupt  SIGINT once a snapshot is done: exit 130, the
#                          checked snapshots printed with their verdicts and
#                          a summary, every other one named on stderr
#   progress.sh interrupt-json  the same with --json: one JSON result with
#                          the checked snapshots (re-checked by
#                          jsoncheck.py), "unchecked" and an EINTR "error"
. "$(dirname "$0")/common.sh"

ESC=$'\033'
CR=$'\r'

# scenario NAME SNAPSHOTS: NAME.top (4 servers, 100 tokens each, a ring
# both ways) and NAME.events in $WORK: per snapshot a token sent by each
# server to the next, a tick after each, the snapshot (initiators in turn),
# then 5 ticks; 9 ticks per snapshot in all.
scenario() {
  printf '4\nA 100\nB 100\nC 100\nD 100\nA B\nB C\nC D\nD A\nB A\nC B\nD C\nA D\n' >"$WORK/$1.top"
  awk -v n="$2" 'BEGIN {
    split("A B C D", id, " ")
    for (k = 0; k < n; k++) {
      for (j = 1; j <= 4; j++) printf "send %s %s 1\ntick\n", id[j], id[j % 4 + 1]
      printf "snapshot %s\ntick 5\n", id[k % 4 + 1]
    }
  }' >"$WORK/$1.events"
}

# on_tty OUTFILE COMMAND...: run COMMAND with stdin, stdout and stderr on
# a pseudo-terminal (script(1), util-linux), what it wrote there in
# OUTFILE; returns its exit status. TERM is set: a dumb terminal gets plain
# lines. Arguments must not hold a single quote.
on_tty() {
  local out=$1 cmd="" a
  shift
  for a in "$@"; do cmd+="'$a' "; done
  TERM=xterm script -qec "$cmd" /dev/null >"$out" </dev/null
}

# has_re FILE REGEX WHY: FILE matches the Python regex (bytes, DOTALL).
has_re() {
  $PYTHON - "$1" "$2" <<'EOF' || { cat -v "$1" | tail -c 2000 >&2; fail "$3"; }
import re, sys
data = open(sys.argv[1], "rb").read()
sys.exit(0 if re.search(sys.argv[2].encode(), data, re.S) else 1)
EOF
}

# no_byte FILE BYTE WHY: FILE holds no BYTE.
no_byte() {
  if grep -q "$2" "$1"; then cat -v "$1" | tail -c 2000 >&2; fail "$3"; fi
}

# no_sgr FILE: not one SGR (colour, bold) escape: ESC [ digits/; m.
no_sgr() {
  if grep -qE "$ESC\\[[0-9;]*m" "$1"; then cat -v "$1" >&2; fail "$1 holds an SGR escape"; fi
}

# A line as cmd/progress draws it on a terminal, and as plain lines.
RUN_TTY='\r(run: event [0-9]+/200, snapshots [0-9]+/20 done)\x1b\[K'
RUN_LINE='^run: event [0-9]+/200, snapshots [0-9]+/20 done$'

case ${1:-} in
tty)
  command -v script >/dev/null || { echo "script(1) not found (util-linux)"; exit 77; }
  # 20 snapshots x 9 ticks x 10 ms: about 2 s, so the line is redrawn
  # (every 100 ms at most) many times.
  scenario long 20
  for nc in "" 1; do
    rc=0
    NO_COLOR=$nc on_tty "$WORK/tty.txt" bash -c \
      "exec \"\$0\" run \"\$1\" \"\$2\" --tick-ms 10 >\"\$3\"" \
      "$CLSNAP" "$WORK/long.top" "$WORK/long.events" "$WORK/out.txt" || rc=$?
    [ $rc -eq 0 ] || { cat -v "$WORK/tty.txt"; fail "run on a terminal (NO_COLOR='$nc') exited $rc"; }
    has_re "$WORK/tty.txt" "$RUN_TTY.*$RUN_TTY" \
      "NO_COLOR='$nc': no status line redrawn in place (\\r, text, \\033[K) at least twice"
    has_re "$WORK/tty.txt" 'snapshots ([1-9]|1[0-9])/20 done' \
      "NO_COLOR='$nc': the line never counted a snapshot done"
    # Erased before the next output, so "ran in" starts a clean line.
    has_re "$WORK/tty.txt" '\x1b\[K\r\x1b\[Kran in ' \
      "NO_COLOR='$nc': the status line is not erased before 'ran in'"
    no_sgr "$WORK/tty.txt"
    no_byte "$WORK/out.txt" "$ESC" "stdout of a run on a terminal holds an escape"
    grep -qx "20 snapshots: 20 passed, 0 failed" "$WORK/out.txt" || fail "the run's summary is missing"
    ! grep -q "run: event" "$WORK/out.txt" || fail "the status line went to stdout"
  done
  # -q and -j: never, even on a terminal and with --progress.
  for opt in -q -j; do
    on_tty "$WORK/tty.txt" "$CLSNAP" run "$WORK/long.top" "$WORK/long.events" \
      --tick-ms 10 --progress $opt || fail "run $opt on a terminal failed"
    ! grep -q "run: event" "$WORK/tty.txt" || fail "run $opt showed the status line"
    no_byte "$WORK/tty.txt" "$ESC" "run $opt on a terminal wrote an escape"
  done
  echo "ok: on a terminal the line is redrawn in place and erased, no colour; none with -q or -j"
  ;;
pipe)
  scenario long 20
  # Not a terminal, no --progress: nothing, and no escape byte at all.
  "$CLSNAP" run "$WORK/long.top" "$WORK/long.events" --tick-ms 10 \
    >"$WORK/out.txt" 2>"$WORK/err.txt" || { cat "$WORK/err.txt"; fail "run failed"; }
  ! grep -q "run: " "$WORK/err.txt" || fail "a status line without a terminal or --progress"
  no_byte "$WORK/err.txt" "$ESC" "stderr in a pipe holds an escape byte"
  no_byte "$WORK/out.txt" "$ESC" "stdout in a pipe holds an escape byte"
  grep -q "^ran in " "$WORK/err.txt" || fail "no 'ran in' line"
  # --progress: plain lines, no escape, no carriage return, and about one
  # a second at most: no more than the run's whole seconds plus one.
  t0=$SECONDS
  "$CLSNAP" run "$WORK/long.top" "$WORK/long.events" --tick-ms 10 --progress \
    >"$WORK/out.txt" 2>"$WORK/err.txt" || { cat "$WORK/err.txt"; fail "run --progress failed"; }
  took=$((SECONDS - t0))
  cat "$WORK/err.txt"
  n=$(grep -cE "$RUN_LINE" "$WORK/err.txt" || true)
  [ "$n" -ge 1 ] || fail "run --progress in a pipe printed no status line"
  [ "$n" -le $((took + 1)) ] || fail "$n status lines in about $took s: more than one a second"
  no_byte "$WORK/err.txt" "$ESC" "--progress in a pipe wrote an escape byte"
  no_byte "$WORK/err.txt" "$CR" "--progress in a pipe wrote a carriage return"
  grep -qx "20 snapshots: 20 passed, 0 failed" "$WORK/out.txt" || fail "the run's summary is missing"
  # -q and -j win over --progress.
  for opt in -q -j; do
    "$CLSNAP" run "$WORK/long.top" "$WORK/long.events" --tick-ms 10 --progress $opt \
      >"$WORK/out.txt" 2>"$WORK/err.txt" || { cat "$WORK/err.txt"; fail "run $opt failed"; }
    ! grep -q "run: " "$WORK/err.txt" || fail "run --progress $opt printed a status line"
  done
  $PYTHON -c 'import json, sys; json.load(open(sys.argv[1]))' "$WORK/out.txt" ||
    fail "stdout of run -j --progress is not one JSON document"
  echo "ok: in a pipe nothing, plain lines with --progress ($n in about $took s), none with -q or -j"
  ;;
bench)
  command -v script >/dev/null || { echo "script(1) not found (util-linux)"; exit 77; }
  bench=(bench --nodes 3 --topology ring --seconds 3 --snapshot-every-ms 50
         --warmup-ms 100 --log-dir "$WORK/logs")
  on_tty "$WORK/tty.txt" "$CLSNAP" "${bench[@]}" || { cat -v "$WORK/tty.txt"; fail "bench on a terminal failed"; }
  line='bench: %d/3 s, [0-9]+\.[0-9] M token messages/s, snapshots [0-9]+ \([0-9]+ passed\)'
  has_re "$WORK/tty.txt" "\\r$(printf "$line" 1)\\x1b\\[K.*\\r$(printf "$line" 2)\\x1b\\[K" \
    "bench on a terminal: no line at 1 s and 2 s, redrawn in place"
  has_re "$WORK/tty.txt" '\x1b\[K\r\x1b\[K3 nodes, ring' "bench: the line is not erased before the results"
  no_sgr "$WORK/tty.txt"
  "$CLSNAP" "${bench[@]}" --progress >"$WORK/out.txt" 2>"$WORK/err.txt" ||
    { cat "$WORK/err.txt"; fail "bench --progress failed"; }
  cat "$WORK/err.txt"
  grep -Eqx "$(printf "$line" 1)" "$WORK/err.txt" || fail "bench --progress in a pipe: no plain line at 1 s"
  grep -Eqx "$(printf "$line" 2)" "$WORK/err.txt" || fail "bench --progress in a pipe: no plain line at 2 s"
  no_byte "$WORK/err.txt" "$ESC" "bench --progress in a pipe wrote an escape byte"
  no_byte "$WORK/err.txt" "$CR" "bench --progress in a pipe wrote a carriage return"
  "$CLSNAP" "${bench[@]}" >"$WORK/out.txt" 2>"$WORK/err.txt" || { cat "$WORK/err.txt"; fail "bench failed"; }
  ! grep -q "bench: " "$WORK/err.txt" || fail "bench in a pipe without --progress printed a status line"
  no_byte "$WORK/err.txt" "$ESC" "bench in a pipe wrote an escape byte"
  grep -q "^snapshots: " "$WORK/out.txt" || fail "bench printed no results"
  echo "ok: bench shows a line a second on a terminal and with --progress, none in a pipe without"
  ;;
interrupt)
  # 40 snapshots x 9 ticks x 20 ms: about 7 s, interrupted after the
  # first snapshot is checked (the status line says so), long before.
  scenario long 40
  "$CLSNAP" run "$WORK/long.top" "$WORK/long.events" --tick-ms 20 --progress \
    --log-dir "$WORK/logs" >"$WORK/out.txt" 2>"$WORK/err.txt" &
  pid=$!
  cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  done_before=0
  for _ in $(seq 300); do # 30 s at most
    done_before=$(sed -n 's/^run: event [0-9]*\/400, snapshots \([0-9]*\)\/40 done$/\1/p' "$WORK/err.txt" | tail -1)
    [ "${done_before:-0}" -ge 1 ] && break
    running $pid || break
    sleep 0.1
  done
  [ "${done_before:-0}" -ge 1 ] || { cat "$WORK/err.txt"; fail "no status line counted a snapshot done"; }
  daemons=$(pgrep -P $pid | tr '\n' ' ')
  kill -INT $pid
  for _ in $(seq 300); do running $pid || break; sleep 0.1; done # 30 s at most
  ! running $pid || fail "clsnap run still running 30 s after SIGINT"
  rc=0
  wait $pid || rc=$?
  cat "$WORK/out.txt" "$WORK/err.txt"
  [ $rc -eq 130 ] || fail "an interrupted run exited $rc, expected 130"
  grep -qx "clsnap: interrupted; stopping the servers" "$WORK/err.txt" || fail "the interrupt is not named"
  # Every snapshot checked before is printed as a whole run prints it
  # (with -q off: its .snap text, then the verdict), and the summary
  # counts them.
  checked=$(accounted "$WORK/out.txt" "$WORK/err.txt" 40) || fail "the 40 snapshots are not all accounted for"
  k=$(echo $checked | wc -w)
  [ "$k" -ge "$done_before" ] || fail "$k snapshots printed, but $done_before were done before the interrupt"
  grep -qx "snapshot 0: ok (tokens 400 = 400 on servers + 0 in 0 messages, 8 channels exact)" "$WORK/out.txt" ||
    fail "snapshot 0 is not printed with its verdict"
  [ "$(grep -c "^snapshot [0-9]*: ok (tokens 400 = " "$WORK/out.txt")" -eq "$k" ] || fail "not every printed snapshot passed"
  [ "$(grep -cx "A [0-9]*" "$WORK/out.txt")" -eq "$k" ] || fail "the .snap texts are not printed"
  grep -qx "$k of 40 snapshots checked before the run was interrupted: $k passed, 0 failed" "$WORK/out.txt" ||
    fail "no summary of the checked snapshots"
  grep -Eq "^clsnap: snapshots [0-9]+-39 never started$" "$WORK/err.txt" || fail "the snapshots never started are not named"
  ! grep -q "cannot complete" "$WORK/err.txt" || fail "an interrupted run says 'cannot complete'"
  for p in $daemons; do
    if running "$p"; then fail "daemon pid $p outlived the interrupted run"; fi
  done
  echo "ok: interrupted after $done_before done: exit 130, $k snapshots printed with verdicts"
  ;;
interrupt-json)
  scenario long 40
  "$CLSNAP" run "$WORK/long.top" "$WORK/long.events" --tick-ms 20 --json \
    --log-dir "$WORK/logs" >"$WORK/out.json" 2>"$WORK/err.txt" &
  pid=$!
  cleanup_hooks+=("kill -9 $pid 2>/dev/null")
  # Until every server logged snapshot 1 complete (snapshot 0 completed
  # some 180 ms before, so clsnap has its states).
  for _ in $(seq 300); do # 30 s at most
    [ "$(grep -l "snapshot 1 complete" "$WORK"/logs/*.log 2>/dev/null | wc -l)" -eq 4 ] && break
    running $pid || break
    sleep 0.1
  done
  [ "$(grep -l "snapshot 1 complete" "$WORK"/logs/*.log 2>/dev/null | wc -l)" -eq 4 ] ||
    { cat "$WORK/err.txt"; fail "snapshot 1 never completed on every server"; }
  kill -INT $pid
  for _ in $(seq 300); do running $pid || break; sleep 0.1; done # 30 s at most
  ! running $pid || fail "clsnap run --json still running 30 s after SIGINT"
  rc=0
  wait $pid || rc=$?
  cat "$WORK/err.txt"
  [ $rc -eq 130 ] || fail "an interrupted run --json exited $rc, expected 130"
  $PYTHON - "$WORK/out.json" <<'EOF' || { cat "$WORK/out.json" >&2; fail "the JSON result of an interrupted run is wrong"; }
import json, sys
o = json.load(open(sys.argv[1]))  # one document, nothing after it
ids = [s["id"] for s in o["snapshots"]]
assert 0 in ids, "snapshot 0 is not in the result"
assert all(s["ok"] for s in o["snapshots"]), "a checked snapshot failed"
assert o["passed"] == len(ids) and o["failed"] == 0, "passed/failed do not count the snapshots"
assert sorted(ids + o["unchecked"]) == list(range(40)), "snapshots and unchecked are not 0..39 once each"
assert o["error"]["code"] == "EINTR", "error code %r" % o["error"]["code"]
assert o["error"]["message"].startswith("interrupted"), o["error"]["message"]
EOF
  json_check "$WORK/long.top" "$WORK/out.json" --events "$WORK/long.events"
  "$PYTHON" "$(dirname "$0")/schema_check.py" "$(dirname "$0")/../../docs/clsnap.schema.json" \
    run "$WORK/out.json" --error '{"code": "EINTR"}' ||
    fail "the JSON result of an interrupted run does not keep docs/clsnap.schema.json"
  echo "ok: an interrupted run --json prints its checked snapshots, unchecked ids and an EINTR error"
  ;;
*)
  fail "unknown case '${1:-}'"
  ;;
esac
