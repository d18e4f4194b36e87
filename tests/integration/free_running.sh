#!/usr/bin/env bash
# A reference case in free-running mode: every snapshot must pass both checks
# (clsnap's verdict and jsoncheck.py's from the raw counts) and account for
# every token.
#   free_running.sh TOPOLOGY EVENTS NSNAPSHOTS [JITTER_MS]
. "$(dirname "$0")/common.sh"
top=$COS/$1 events=$COS/$2 want=$3 jitter=${4:-0}
total=$(total_tokens "$top")

"$CLSNAP" run "$top" "$events" --jitter-ms "$jitter" --snap-dir "$WORK/snaps" \
  --log-dir "$WORK/logs" --json >"$WORK/out.json" 2>"$WORK/err.txt" ||
  { cat "$WORK/out.json" "$WORK/err.txt" >&2; fail "clsnap run exited $?"; }

n=$(ls "$WORK/snaps" | wc -l)
[ "$n" -eq "$want" ] || fail "expected $want snapshots, got $n"
for k in $(seq 0 $((want - 1))); do
  f=$WORK/snaps/$k.snap
  [ -f "$f" ] || fail "missing $f"
  got=$(snap_tokens "$f")
  [ "$got" -eq "$total" ] || { cat "$f" >&2; fail "snapshot $k holds $got tokens, topology has $total"; }
  [ "$(head -n 1 "$f")" = "$k" ] || fail "snapshot $k file starts with id $(head -n 1 "$f")"
done
ok=$(grep -c '^      "ok": true,$' "$WORK/out.json" || true)
[ "$ok" -eq "$want" ] || { cat "$WORK/out.json" >&2; fail "$ok of $want verdicts ok"; }
json_check "$top" "$WORK/out.json" --events "$events" --expect "$want"
echo "$want snapshots, $total tokens each, all checks passed"
