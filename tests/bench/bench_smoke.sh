#!/usr/bin/env bash
# clsnap bench under load: correctness, not speed. A 4-server mesh circulating
# tokens for a second with a snapshot every 50 ms: snapshots must be taken and
# every one must pass both checks; the report must carry its keys. Then the
# same with --baseline: the ceiling and the ratio must be reported.
. "$(dirname "$0")/../integration/common.sh"
: "${CLSNAPD:?CLSNAPD must point at the clsnapd binary}"
: "${CLSNAP_BASELINE:?CLSNAP_BASELINE must point at clsnap-baseline}"

out=$WORK/bench.json
"$CLSNAP" bench --nodes 4 --topology mesh --seconds 1 --snapshot-every-ms 50 \
  --json --daemon "$CLSNAPD" >"$out" 2>"$WORK/bench.err" ||
  { cat "$WORK/bench.err" >&2; fail "clsnap bench exited $?"; }

"$PYTHON" - "$out" <<'PY' || fail "bench report: $(cat "$out")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["snapshots"] > 0, "no snapshot taken"
assert r["snapshots_ok"] == r["snapshots"], "a snapshot failed its checks"
assert r["tokens_per_s"] > 0, "no token moved"
assert r["channels"] == 12, r["channels"]
lat = r["latency_us"]
assert 0 < lat["p50"] <= lat["p99"] <= lat["max"], lat
assert r["rss_kib_max"] > 0, "no RSS read"
PY

# Snapshots slower than ~1 ms make the coordinator pause while the states
# come in (one wake-up for several): a 12-server mesh with a snapshot
# every 20 ms takes that path; every snapshot must still be collected whole.
# --alternate: a second without snapshots, then one with them; both rates
# are reported.
out=$WORK/paused.json
"$CLSNAP" bench --nodes 12 --topology mesh --seconds 2 --snapshot-every-ms 20 \
  --alternate --json --daemon "$CLSNAPD" >"$out" 2>"$WORK/paused.err" ||
  { cat "$WORK/paused.err" >&2; fail "clsnap bench (12 mesh) exited $?"; }
"$PYTHON" - "$out" <<'PY' || fail "bench report (12 mesh): $(cat "$out")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["snapshots"] > 2, "only %d snapshots" % r["snapshots"]
assert r["snapshots_ok"] == r["snapshots"], "a snapshot failed its checks"
assert r["paused"] > 0, "collection never began with a pause"
assert r["tokens_per_s"] > 0 and r["tokens_per_s_without"] > 0, r
assert "snapshot_cost" in r, r
PY
rc=0
"$CLSNAP" bench --nodes 2 --topology ring --seconds 2 --alternate \
  --daemon "$CLSNAPD" >/dev/null 2>"$WORK/alt.err" || rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--alternate needs --snapshot-every-ms" "$WORK/alt.err" ||
  fail "--alternate without snapshots: exit $rc, $(cat "$WORK/alt.err")"

out=$WORK/baseline.json
"$CLSNAP" bench --nodes 3 --topology ring --seconds 1 --warmup-ms 100 \
  --baseline --json --daemon "$CLSNAPD" --baseline-program "$CLSNAP_BASELINE" \
  >"$out" 2>"$WORK/baseline.err" ||
  { cat "$WORK/baseline.err" >&2; fail "clsnap bench --baseline exited $?"; }
"$PYTHON" - "$out" <<'PY' || fail "baseline report: $(cat "$out")"
import json, sys
r = json.load(open(sys.argv[1]))
b = r["baseline"]
assert b["frames_per_s"] > 0 and b["frame_bytes"] == 8, b
assert r["ratio"] > 0, r["ratio"]
assert r["snapshots"] == 0 and r["snapshots_ok"] == 0
PY
assert_no_daemons "$CLSNAPD"
echo "ok"
