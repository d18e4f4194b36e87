#!/usr/bin/env bash
# Free-running snapshots with token messages in flight: every daemon holds
# each message it sends for a random 0..JITTER_MS ms (FIFO per channel), so
# channel states are not empty and the exact-channel check has something to
# check. jsoncheck.py re-checks every snapshot from the servers' raw counts,
# and the test fails if no snapshot recorded any message at all.
#   in_flight.sh fanin JITTER_MS
#       5 servers in a full mesh; 12 rounds in which four servers send to the
#       fifth and it starts a snapshot in the same step (so it records
#       before their messages can arrive), every other round a second
#       snapshot elsewhere in the same step
#   in_flight.sh random FIRST_SEED COUNT JITTER_MS
#       gen_scenario.py's scenarios FIRST_SEED.., each run with the daemons'
#       jitter seeded by its seed
. "$(dirname "$0")/common.sh"
mode=$1
recorded=0

# Run TOP EVENTS free-running with jitter, check it; adds to $recorded.
#   run_checked TOP EVENTS JITTER_MS SEED NAME
run_checked() {
  local top=$1 events=$2 jitter=$3 seed=$4 name=$5 want out
  want=$(grep -c '^snapshot' "$events")
  "$CLSNAP" run "$top" "$events" --jitter-ms "$jitter" --seed "$seed" --json \
    --log-dir "$WORK/logs-$name" >"$WORK/$name.json" 2>"$WORK/$name.err" ||
    { cat "$WORK/$name.err" >&2; fail "$name: clsnap run exited $? (--seed $seed)"; }
  out=$(json_check "$top" "$WORK/$name.json" --events "$events" --expect "$want") ||
    fail "$name: jsoncheck.py failed (--seed $seed)"
  echo "$name: $out"
  recorded=$((recorded + $(echo "$out" | sed -n 's/.* \([0-9]*\) recorded messages.*/\1/p')))
}

case $mode in
fanin)
  jitter=$2
  ids=(F0 F1 F2 F3 F4)
  {
    echo 5
    for s in "${ids[@]}"; do echo "$s 100"; done
    for s in "${ids[@]}"; do for d in "${ids[@]}"; do [ "$s" = "$d" ] || echo "$s $d"; done; done
  } >"$WORK/fanin.top"
  for r in $(seq 0 11); do
    t=${ids[$((r % 5))]}
    for s in "${ids[@]}"; do [ "$s" = "$t" ] || echo "send $s $t $((r % 3 + 1))"; done
    echo "snapshot $t"
    if [ $((r % 2)) -eq 1 ]; then
      u=${ids[$(((r + 2) % 5))]}
      echo "send $t $u 1"
      echo "snapshot $u"
    fi
    echo tick
  done >"$WORK/fanin.events"
  run_checked "$WORK/fanin.top" "$WORK/fanin.events" "$jitter" 1 fanin
  ;;
random)
  first=$2 count=$3 jitter=$4
  "$PYTHON" "$(dirname "$0")/gen_scenario.py" "$first" "$WORK" "$count"
  for seed in $(seq "$first" $((first + count - 1))); do
    run_checked "$WORK/$seed/s.top" "$WORK/$seed/s.events" "$jitter" "$seed" "seed-$seed"
  done
  ;;
*) fail "unknown mode $mode" ;;
esac
[ "$recorded" -gt 0 ] ||
  fail "no snapshot recorded a message in flight: the exact-channel check checked nothing"
echo "$recorded messages recorded in flight, every channel state exact"
