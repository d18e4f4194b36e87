#!/usr/bin/env bash
# A reference case in lockstep mode with the reference delay stream: every
# snapshot must equal the expected one by the reference's comparison, and
# pass jsoncheck.py's checks of the servers' raw counts.
#   lockstep.sh TOPOLOGY EVENTS EXPECTED_PREFIX NSNAPSHOTS
. "$(dirname "$0")/common.sh"
top=$COS/$1 events=$COS/$2 prefix=$3 want=$4

"$CLSNAP" run "$top" "$events" --lockstep --delays "$CONFORMANCE_DIR/go-delays.txt" \
  --snap-dir "$WORK/snaps" --log-dir "$WORK/logs" --json >"$WORK/out.json" 2>"$WORK/err.txt" ||
  { cat "$WORK/out.json" "$WORK/err.txt" >&2; fail "clsnap run exited $?"; }

reference_equal "$top" "$prefix" "$want" "$WORK/snaps"
json_check "$top" "$WORK/out.json" --events "$events" --expect "$want"
echo "$want snapshots equal to the reference"
