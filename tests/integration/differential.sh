#!/usr/bin/env bash
# Differential test on generated scenarios. Lockstep replay across real
# clsnapd processes must produce
#  1. the snapshots refsim.py (an independent reference simulator, checked
#     against the reference suite by refsim_check.sh) expects, by the
#     reference's comparison (snapcmp.py): this is what checks the scheduling,
#     since both clsnap runs below share coordinator/check/schedule.c;
#  2. exactly what the in-process replay of the same node core with the same
#     scheduling rules and delays produces (same bytes).
#   differential.sh FIRST_SEED COUNT
. "$(dirname "$0")/common.sh"
first=$1 count=$2
gen=$(dirname "$0")/gen_scenario.py
refsim=$(dirname "$0")/refsim.py
failed=()
$PYTHON "$gen" "$first" "$WORK" "$count"
for seed in $(seq "$first" $((first + count - 1))); do
  d=$WORK/$seed
  total=$(total_tokens "$d/s.top")
  if ! $PYTHON "$refsim" "$d/s.top" "$d/s.events" "$d/expected" --seed "$seed"; then
    failed+=("$seed(refsim failed)"); continue
  fi
  if ! "$CLSNAP" run "$d/s.top" "$d/s.events" --lockstep --seed "$seed" \
      --snap-dir "$d/procs" --log-dir "$d/logs" >"$d/procs.txt" 2>"$d/procs.err"; then
    cat "$d/procs.txt" "$d/procs.err" >&2
    failed+=("$seed(multi-process run failed)"); continue
  fi
  if ! "$CLSNAP" run "$d/s.top" "$d/s.events" --lockstep --seed "$seed" --in-process \
      --snap-dir "$d/inproc" >"$d/inproc.txt" 2>"$d/inproc.err"; then
    cat "$d/inproc.txt" "$d/inproc.err" >&2
    failed+=("$seed(in-process run failed)"); continue
  fi
  nexp=$(ls "$d/expected" | wc -l) ngot=$(ls "$d/procs" | wc -l)
  if [ "$nexp" -ne "$ngot" ]; then
    failed+=("$seed($ngot snapshots, refsim expects $nexp)"); continue
  fi
  pairs=()
  for f in "$d"/expected/*.snap; do pairs+=("$f" "$d/procs/${f##*/}"); done
  if ! $PYTHON "$SNAPCMP" "$total" "${pairs[@]}" >&2; then
    failed+=("$seed(differs from refsim.py)"); continue
  fi
  if ! diff -r "$d/inproc" "$d/procs" >&2 || ! diff "$d/inproc.txt" "$d/procs.txt" >&2; then
    failed+=("$seed(outputs differ)"); continue
  fi
  for f in "$d"/procs/*.snap; do
    [ "$(snap_tokens "$f")" -eq "$total" ] || failed+=("$seed($f holds $(snap_tokens "$f") of $total tokens)")
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  fail "seeds failing (reproduce: gen_scenario.py SEED DIR, then clsnap run DIR/SEED/s.top DIR/SEED/s.events --lockstep --seed SEED, and refsim.py DIR/SEED/s.top DIR/SEED/s.events OUT --seed SEED): ${failed[*]}"
fi
echo "$count scenarios from seed $first: multi-process equals refsim.py and in-process"
