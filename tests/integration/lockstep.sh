#!/usr/bin/env bash
# A reference case in lockstep mode with the reference delay stream: every
# snapshot must equal the expected one by the reference's comparison.
#   lockstep.sh TOPOLOGY EVENTS EXPECTED_PREFIX NSNAPSHOTS
. "$(dirname "$0")/common.sh"
top=$COS/$1 events=$COS/$2 prefix=$3 want=$4
total=$(total_tokens "$top")

"$CLSNAP" run "$top" "$events" --lockstep --delays "$CONFORMANCE_DIR/go-delays.txt" \
  --snap-dir "$WORK/snaps" --log-dir "$WORK/logs" >"$WORK/out.txt" 2>"$WORK/err.txt" ||
  { cat "$WORK/out.txt" "$WORK/err.txt" >&2; fail "clsnap run exited $?"; }

n=$(ls "$WORK/snaps" | wc -l)
[ "$n" -eq "$want" ] || fail "expected $want snapshots, got $n"
pairs=()
for k in $(seq 0 $((want - 1))); do
  if [ "$want" -eq 1 ]; then exp=$COS/$prefix.snap; else exp=$COS/$prefix$k.snap; fi
  pairs+=("$exp" "$WORK/snaps/$k.snap")
done
$PYTHON "$SNAPCMP" "$total" "${pairs[@]}" || fail "snapshots differ from the reference"
echo "$want snapshots equal to the reference"
