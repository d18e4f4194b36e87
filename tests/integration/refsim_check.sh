#!/usr/bin/env bash
# The oracle checked against the reference: refsim.py (the independent
# reference simulator the differential tests trust) must reproduce every
# expected snapshot of a reference case with go-delays.txt, by the
# reference's comparison; and its seeded generator must give splitmix64's
# published outputs for seed 0.
#   refsim_check.sh TOPOLOGY EVENTS EXPECTED_PREFIX NSNAPSHOTS
. "$(dirname "$0")/common.sh"
here=$(dirname "$0")
top=$COS/$1 events=$COS/$2 prefix=$3 want=$4

$PYTHON "$here/refsim.py" "$top" "$events" "$WORK/snaps" \
  --delays "$CONFORMANCE_DIR/go-delays.txt" || fail "refsim.py exited $?"
reference_equal "$top" "$prefix" "$want" "$WORK/snaps"

# splitmix64 seeded with 0: the published first outputs (Vigna's reference).
$PYTHON - "$here" <<'PY' || fail "refsim.py's seeded generator is not splitmix64"
import itertools, sys
sys.path.insert(0, sys.argv[1])
import refsim
got = list(itertools.islice(refsim.splitmix64(0), 4))
want = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, 0xF88BB8A8724C81EC]
if got != want:
    sys.exit(f"splitmix64(0) gives {[hex(x) for x in got]}, expected {[hex(x) for x in want]}")
PY
echo "refsim.py reproduces $want reference snapshots; splitmix64 vectors ok"
