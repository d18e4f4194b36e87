#!/usr/bin/env bash
# Snapshot ids the servers pick themselves, on a running 4-server ring
# (N1 -> N2 -> N3 -> N4 -> N1, ranks 0..3).
#
#   snapshot_ids.sh order   48 `clsnap snapshot SERVER --quiet` calls from
#                           the four servers, 4 at a time: every id
#                           is unique, and a call that started after
#                           another had finished got the larger id
#   snapshot_ids.sh status  snapshots started one after another (each
#                           completed before the next) with --no-wait:
#                           the ids `status` lists as ranges and `status
#                           --brief`, written out by hand
. "$(dirname "$0")/common.sh"
export CLSNAP CLSNAPD
run=$WORK/run
top=$WORK/ring4.top
printf '# four servers in a ring\n4\nN1 10\nN2 10\nN3 10\nN4 10\nN1 N2\nN2 N3\nN3 N4\nN4 N1\n' >"$top"

c() { "$CLSNAP" --cluster "$run/cluster" "$@"; }

# Microseconds of the wall clock (no fork: the bash variable).
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }

# One call: snapshot from server $2; writes "$1 start_us end_us rc id" to
# $WORK/call.$1 (id from the verdict line, "-" if there is none). Start is
# taken before the process starts and end after it exited, so "end of A <
# start of B" here implies A finished before B began.
one_call() {
  local k=$1 sv=$2 t0 t1 rc=0 id
  t0=$(now_us)
  c snapshot "$sv" --quiet >"$WORK/out.$k" 2>"$WORK/err.$k" || rc=$?
  t1=$(now_us)
  id=$(sed -n 's/^snapshot \([0-9]*\): ok .*/\1/p' "$WORK/out.$k")
  echo "$k $t0 $t1 $rc ${id:--}" >"$WORK/call.$k"
}

# wait_kept N: until every server keeps N snapshot states (status --json).
wait_kept() {
  local i
  for i in $(seq 500); do
    c status --json >"$WORK/st.json" 2>/dev/null || true
    "$PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if all(len(s.get("kept", [])) == int(sys.argv[2]) for s in d["servers"]) else 1)' \
      "$WORK/st.json" "$1" 2>/dev/null && return 0
    sleep 0.01
  done
  cat "$WORK/st.json" >&2
  fail "the servers do not all keep $1 snapshots"
}

case ${1:-} in
order)
  cluster_up "$top" "$run"
  # Servers in an uneven pattern (N1 most, N3 least): with plain round
  # robin each server's own count would keep its ids in order by itself.
  pattern=(N1 N1 N2 N4 N4 N4 N3 N1 N2 N2 N3 N1)
  calls=48 width=4
  for k in $(seq 1 $calls); do
    while [ "$(jobs -rp | wc -l)" -ge $width ]; do wait -n || true; done
    one_call "$k" "${pattern[$(((k - 1) % ${#pattern[@]}))]}" &
  done
  wait
  cat "$WORK"/call.* >"$WORK/calls.txt"
  for k in $(seq 1 $calls); do
    read -r _ _ _ rc id <"$WORK/call.$k"
    [ "$rc" -eq 0 ] && [ "$id" != - ] ||
      { cat "$WORK/out.$k" "$WORK/err.$k" >&2; fail "call $k exited $rc"; }
  done
  "$PYTHON" - "$WORK/calls.txt" <<'PY' || fail "snapshot ids out of order"
import sys
calls = [tuple(int(x) for x in l.split()) for l in open(sys.argv[1])]
ids = [c[4] for c in calls]
if len(set(ids)) != len(ids):
    sys.exit("FAIL: ids repeat: %s" % sorted(ids))
ordered = overlapping = 0
for a in calls:
    for b in calls:
        if a is b:
            continue
        if a[2] < b[1]:  # a ended before b started
            ordered += 1
            if not a[4] < b[4]:
                sys.exit("FAIL: call %d (id %d) ended before call %d (id %d) "
                         "started" % (a[0], a[4], b[0], b[4]))
        elif b[2] >= a[1] and a[0] < b[0]:
            overlapping += 1
# The check means something only if some calls ran one after another and
# some ran at once.
if ordered == 0 or overlapping == 0:
    sys.exit("FAIL: %d ordered pairs, %d overlapping" % (ordered, overlapping))
print("ok: %d unique ids %d..%d; %d ordered pairs grow, %d pairs overlapped"
      % (len(ids), min(ids), max(ids), ordered, overlapping))
PY
  ;;
status)
  cluster_up "$top" "$run"
  # One after another, each complete everywhere before the next starts:
  # N1..N4 take 1000000..1000003, N1 1000004; N1 again skips to its next
  # residue, 1000008, and N3 takes the first of its own above that.
  n=0
  for sv in N1 N2 N3 N4 N1 N1 N3; do
    c snapshot "$sv" --no-wait >>"$WORK/started.txt" || fail "snapshot $sv --no-wait failed"
    n=$((n + 1))
    wait_kept $n
  done
  [ "$(tr '\n' ' ' <"$WORK/started.txt")" = "1000000 1000001 1000002 1000003 1000004 1000008 1000010 " ] ||
    fail "ids started: $(tr '\n' ' ' <"$WORK/started.txt")"
  c status >"$WORK/status.txt" || { cat "$WORK/status.txt" >&2; fail "status failed"; }
  [ "$(grep -c '^  7 kept: 1000000\.\.1000004, 1000008, 1000010$' "$WORK/status.txt")" -eq 4 ] ||
    { cat "$WORK/status.txt" >&2; fail "status does not list the kept ids as ranges on all four servers"; }
  ! grep -q "in progress" "$WORK/status.txt" || { cat "$WORK/status.txt" >&2; fail "status shows snapshots in progress"; }
  total="total: 40 tokens on servers of 40 configured (0 in flight)"
  [ "$(tail -n 1 "$WORK/status.txt")" = "$total" ] || fail "status total line: $(tail -n 1 "$WORK/status.txt")"
  c status --brief >"$WORK/brief.txt" || { cat "$WORK/brief.txt" >&2; fail "status --brief failed"; }
  [ "$(wc -l <"$WORK/brief.txt")" -eq 5 ] || { cat "$WORK/brief.txt" >&2; fail "status --brief is not 5 lines"; }
  for sv in N1 N2 N3 N4; do
    addr=$(awk -v id=$sv '$1 == id { print $2 }' "$run/cluster")
    line=$(grep "^$sv " "$WORK/brief.txt" | tr -s ' ')
    [ "$line" = "$sv $addr 10 tokens free 0 in progress 7 kept connected" ] ||
      { cat "$WORK/brief.txt" >&2; fail "status --brief line of $sv: $line"; }
  done
  [ "$(tail -n 1 "$WORK/brief.txt")" = "$total" ] || fail "status --brief total line: $(tail -n 1 "$WORK/brief.txt")"
  cat "$WORK/brief.txt"
  echo "ok: 7 kept: 1000000..1000004, 1000008, 1000010 on every server"
  ;;
*) fail "usage: snapshot_ids.sh order|status" ;;
esac
