#!/usr/bin/env bash
# Failures a user should see at once, not after the work:
#   output that cannot be written (stdout on /dev/full) fails the command;
#   a --snap-dir that is a regular file, or under one, is refused before
#   any daemon starts (run) or any server is asked (snapshot).
. "$(dirname "$0")/common.sh"

top=$COS/3nodes.top events=$COS/3nodes-simple.events
for args in "run $top $events" "run $top $events --lockstep --in-process" "--help" "run --help"; do
  rc=0
  # shellcheck disable=SC2086
  "$CLSNAP" $args >/dev/full 2>"$WORK/err.txt" || rc=$?
  [ $rc -eq 1 ] || { cat "$WORK/err.txt"; fail "clsnap $args >/dev/full exited $rc, expected 1"; }
  grep -q "write error on standard output" "$WORK/err.txt" ||
    { cat "$WORK/err.txt"; fail "clsnap $args >/dev/full does not say it could not write"; }
done

: >"$WORK/afile"
for dir in "$WORK/afile" "$WORK/afile/sub"; do
  rc=0
  "$CLSNAP" run "$top" "$events" --snap-dir "$dir" --log-dir "$WORK/logs" \
    >"$WORK/out.txt" 2>"$WORK/err.txt" || rc=$?
  [ $rc -eq 2 ] || { cat "$WORK/err.txt"; fail "run --snap-dir $dir exited $rc, expected 2"; }
  grep -qF -- "--snap-dir $dir: " "$WORK/err.txt" || { cat "$WORK/err.txt"; fail "the error does not name --snap-dir $dir"; }
  [ ! -e "$WORK/logs" ] || fail "run --snap-dir $dir started daemons before refusing"
  [ ! -s "$WORK/out.txt" ] || fail "run --snap-dir $dir printed results"
done
# A cluster command refuses it before asking any server (this address
# answers nothing, so asking would fail differently).
echo "N1 127.0.0.3:9" >"$WORK/cluster"
rc=0
"$CLSNAP" --cluster "$WORK/cluster" snapshot N1 --snap-dir "$WORK/afile" 2>"$WORK/err.txt" || rc=$?
[ $rc -eq 2 ] && grep -q "not a directory" "$WORK/err.txt" ||
  { cat "$WORK/err.txt"; fail "snapshot --snap-dir FILE: exit $rc"; }
echo "ok: unwritable output fails; a bad --snap-dir is refused at once"

# Every early failure comes in under a second with exit 2, before any
# daemon starts (the daemon stand-in records any start), with FILE:LINE for
# a bad input file.
printf '#!/bin/sh\ntouch "%s/started"\nexit 1\n' "$WORK" >"$WORK/fake-clsnapd"
chmod +x "$WORK/fake-clsnapd"
printf '2\nA 1\nB x\n' >"$WORK/bad.top"
printf 'frobnicate N1\n' >"$WORK/bad.events"
printf '1\nx\n' >"$WORK/bad.delays"
early() { # WANT-ON-STDERR RUN-ARGS...
  local want=$1 rc=0 t0 ms
  shift
  t0=$(date +%s%N)
  "$CLSNAP" run "$@" --daemon "$WORK/fake-clsnapd" >"$WORK/out.txt" 2>"$WORK/err.txt" || rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  [ $rc -eq 2 ] || { cat "$WORK/err.txt"; fail "run $*: exit $rc, expected 2"; }
  grep -qF -- "$want" "$WORK/err.txt" || { cat "$WORK/err.txt"; fail "run $*: no '$want'"; }
  [ ! -e "$WORK/started" ] || fail "run $*: started a daemon before refusing"
  [ "$ms" -lt 1000 ] || fail "run $*: took $ms ms to refuse"
}
early "$WORK/bad.top:3: " "$WORK/bad.top" "$events"
early "$WORK/bad.events:1: " "$top" "$WORK/bad.events"
early "$WORK/bad.delays:2: " "$top" "$events" --delays "$WORK/bad.delays"
early "$WORK/nope.delays: " "$top" "$events" --delays "$WORK/nope.delays"
early "--log-dir $WORK/afile: not a directory" "$top" "$events" --log-dir "$WORK/afile"
early "--snap-dir $WORK/afile: not a directory" "$top" "$events" --snap-dir "$WORK/afile"
early "use either --delays or --seed" "$top" "$events" --delays x --seed 1
early "unrecognized option '--frobnicate'" "$top" "$events" --frobnicate
rc=0
"$CLSNAP" run "$top" "$events" --daemon "$WORK/nope/clsnapd" 2>"$WORK/err.txt" || rc=$?
[ $rc -eq 2 ] && grep -qF "cannot run clsnapd at $WORK/nope/clsnapd" "$WORK/err.txt" ||
  { cat "$WORK/err.txt"; fail "run --daemon MISSING: exit $rc"; }
echo "ok: early failures come in under a second, before any daemon starts"
