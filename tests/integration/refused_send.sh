#!/usr/bin/env bash
# A send event the server cannot cover (issue 12, "Fast, early failures"):
#   free-running, no token on its way to the server: the run fails at once
#     (exit 1, as every refused event), not after --timeout, naming
#     EVENTS:LINE, the server and why;
#   free-running, tokens on their way (held back by --jitter-ms at their
#     sender): the send is tried again until they arrive, and the run passes;
#   lockstep: the refusal names EVENTS:LINE too.
. "$(dirname "$0")/common.sh"

printf '3\nS0 5\nS1 2\nS2 0\nS0 S1\nS1 S2\nS2 S0\n' >"$WORK/three.top"

# Nanoseconds since the epoch, for timing a run without sleeping.
now_ns() { date +%s%N; }

# S1 holds 2, gets 1 from S0 (received well before line 3, or soon after:
# either way nothing is on its way to S1 any more), and is asked for 5.
printf 'send S0 S1 1\ntick 2\nsend S1 S2 5\n' >"$WORK/free.events"
t0=$(now_ns)
rc=0
"$CLSNAP" run "$WORK/three.top" "$WORK/free.events" --timeout 30 \
  --log-dir "$WORK/logs1" >"$WORK/out1.txt" 2>"$WORK/err1.txt" || rc=$?
fast=$((($(now_ns) - t0) / 1000000))
[ $rc -eq 1 ] || { cat "$WORK/err1.txt" >&2; fail "free-running refusal: exit $rc, expected 1"; }
[ $fast -lt 2000 ] || { cat "$WORK/err1.txt" >&2; fail "free-running refusal took $fast ms with nothing in flight (--timeout 30)"; }
grep -qF "$WORK/free.events:3: S1 refused to send 5 tokens to S2: not enough tokens (S1 has 3, none on their way to it)" "$WORK/err1.txt" ||
  { cat "$WORK/err1.txt" >&2; fail "free-running refusal does not name FILE:LINE, the server and the reason"; }
[ ! -s "$WORK/out1.txt" ] || { cat "$WORK/out1.txt" >&2; fail "a failed run printed results"; }

# S0 sends S1 five messages of one token, each delayed 0..200 ms at S0
# (FIFO, so the last arrives after the longest of five delays), and S1 is
# at once asked to pass on all 7 it will hold: the first tries are refused
# while the tokens are on their way, and a later one succeeds.
{ for _ in 1 2 3 4 5; do echo "send S0 S1 1"; done
  printf 'send S1 S2 7\nsnapshot S0\n'; } >"$WORK/jitter.events"
t0=$(now_ns)
rc=0
"$CLSNAP" run "$WORK/three.top" "$WORK/jitter.events" --jitter-ms 200 \
  --seed 7 --timeout 30 --log-dir "$WORK/logs2" --quiet \
  >"$WORK/out2.txt" 2>"$WORK/err2.txt" || rc=$?
ms=$((($(now_ns) - t0) / 1000000))
[ $rc -eq 0 ] || { cat "$WORK/err2.txt" >&2; fail "tokens in flight: exit $rc, expected 0 (the send is retried until they arrive)"; }
grep -q '^1 snapshot: 1 passed, 0 failed$' "$WORK/out2.txt" ||
  { cat "$WORK/out2.txt" "$WORK/err2.txt" >&2; fail "tokens in flight: the snapshot did not pass"; }

# Lockstep refuses at once (the schedule decides, nothing is waited for)
# and names the place in the same form.
printf 'snapshot S0\nsend S1 S2 5\n' >"$WORK/lock.events"
rc=0
"$CLSNAP" run "$WORK/three.top" "$WORK/lock.events" --lockstep \
  --log-dir "$WORK/logs3" >"$WORK/out3.txt" 2>"$WORK/err3.txt" || rc=$?
[ $rc -eq 1 ] || { cat "$WORK/err3.txt" >&2; fail "lockstep refusal: exit $rc, expected 1"; }
grep -qF "$WORK/lock.events:2: S1 has 2 tokens, cannot send 5 to S2" "$WORK/err3.txt" ||
  { cat "$WORK/err3.txt" >&2; fail "lockstep refusal does not name FILE:LINE and the reason"; }
echo "ok: a send nothing can cover failed in $fast ms; with tokens in flight it was retried and the run passed ($ms ms); lockstep names FILE:LINE"
