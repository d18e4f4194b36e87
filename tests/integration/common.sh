# Helpers for the integration tests (sourced). Each test gets a scratch dir
# that is removed on exit, and `fail` to stop with a message.
set -euo pipefail

: "${CLSNAP:?CLSNAP must point at the clsnap binary}"
: "${CONFORMANCE_DIR:?CONFORMANCE_DIR must point at shared/conformance}"
COS=$CONFORMANCE_DIR/cos418
SNAPCMP=$(dirname "${BASH_SOURCE[0]}")/snapcmp.py
JSONCHECK=$(dirname "${BASH_SOURCE[0]}")/jsoncheck.py
# The system interpreter starts in a tenth of the time of a version-manager
# shim; any python3 will do.
PYTHON=python3
[ -x /usr/bin/python3 ] && PYTHON=/usr/bin/python3

WORK=$(mktemp -d "${TMPDIR:-/tmp}/clsnap-test.XXXXXX")
cleanup_hooks=()
# On exit, after the cleanup hooks (which stop the daemons, so their exit
# reports are written): any sanitizer report in any log under $WORK fails
# the test, whatever it asserted.
on_exit() {
  local rc=$? h hit
  for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
  hit=$(grep -rl -E "ERROR: (Address|Leak)Sanitizer|runtime error:" \
    --include='*.log' "$WORK" 2>/dev/null || true)
  if [ -n "$hit" ]; then
    grep -h -A12 -E "ERROR: (Address|Leak)Sanitizer|runtime error:" $hit >&2
    echo "FAIL: sanitizer report in $hit" >&2
    rc=1
  fi
  rm -rf "$WORK"
  exit $rc
}
trap on_exit EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# Total tokens of a .top file, computed here rather than trusted from clsnap.
total_tokens() {
  awk '/^[ \t]*(#|$)/ { next }
       n == "" { n = $1; next }
       seen < n { sum += $2; seen++ }
       END { print sum }' "$1"
}

# Tokens in one .snap file: servers plus recorded messages.
snap_tokens() {
  awk 'NR == 1 { next }
       /token\(/ { gsub(/.*token\(|\)/, ""); sum += $0; next }
       NF == 2 { sum += $2 }
       END { print sum + 0 }' "$1"
}

# A reference case's snapshots: DIR must hold exactly WANT files 0.snap ...,
# each equal to the expected PREFIX.snap (one snapshot) or PREFIX<k>.snap by
# the reference's comparison (snapcmp.py), with the tokens of TOPOLOGY.
#   reference_equal TOPOLOGY PREFIX WANT DIR
reference_equal() {
  local top=$1 prefix=$2 want=$3 dir=$4 n k exp pairs=()
  n=$(ls "$dir" | wc -l)
  [ "$n" -eq "$want" ] || fail "expected $want snapshots, got $n"
  for k in $(seq 0 $((want - 1))); do
    if [ "$want" -eq 1 ]; then exp=$COS/$prefix.snap; else exp=$COS/$prefix$k.snap; fi
    pairs+=("$exp" "$dir/$k.snap")
  done
  $PYTHON "$SNAPCMP" "$(total_tokens "$top")" "${pairs[@]}" ||
    fail "snapshots differ from the reference"
}

# running PID: is PID a live process? Unlike kill -0, a zombie (a process
# that exited and that whoever adopted it has not reaped yet) is not.
running() {
  local stat f
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -r -a f <<<"${stat##*)}"
  [ "${f[0]:-Z}" != Z ]
}

# cluster_up TOPOLOGY RUNDIR [CONFIGURE_ARGS]: a deploy/cluster.sh cluster,
# stopped when the test exits.
cluster_up() {
  : "${DEPLOY:?DEPLOY must point at deploy/cluster.sh}"
  cleanup_hooks+=("bash '$DEPLOY' down '$2' >/dev/null")
  CLSNAP_CONFIGURE_ARGS="${3:-}" bash "$DEPLOY" up "$1" "$2" >"$WORK/up.txt" 2>&1 ||
    { cat "$WORK/up.txt" >&2; fail "cluster.sh up failed"; }
}

# Re-check the snapshots in clsnap's JSON output from the servers' raw
# counts alone (jsoncheck.py: conservation and exact channel states, not
# clsnap's verdict); prints its summary line, fails the test on any problem.
#   json_check TOPOLOGY JSON_FILE... [jsoncheck.py options]
json_check() {
  local top=$1 out
  shift
  out=$("$PYTHON" "$JSONCHECK" --topology "$top" "$@") ||
    { echo "$out" >&2; fail "jsoncheck.py found problems in $*"; }
  echo "$out"
}

# No clsnapd process may outlive a test. Matches daemons started from this
# test's binaries only, so parallel tests do not see each other's.
assert_no_daemons() {
  local left
  left=$(pgrep -f -- "--listen 127.0.0.1:0" -a 2>/dev/null | grep -F "$1" || true)
  [ -z "$left" ] || fail "daemons left behind: $left"
}

# Fail if a daemon log holds an ASan/LSan/UBSan report (the sanitizer build
# writes them to the daemon's stderr, which is its log).
no_sanitizer_reports() {
  local hit
  hit=$(grep -l -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$@" 2>/dev/null || true)
  [ -z "$hit" ] || { grep -h -A12 -E "ERROR: (Address|Leak)Sanitizer|runtime error:" $hit >&2; fail "sanitizer report in $hit"; }
}

# accounted OUT ERR TOTAL: after a run that failed, each of snapshots
# 0..TOTAL-1 is either printed with its verdict in OUT ("snapshot K: ...")
# or named in ERR as one that did not get there ("snapshots 3-9 cannot
# complete", "snapshot 2 completed on every server, not checked ..."), and
# not both. The ids of OUT's checked snapshots go to stdout.
accounted() {
  awk -v total="$3" '
    { file = FILENAME == ARGV[1] ? 1 : 2 }
    file == 1 && /^snapshot [0-9]+: / { id = $2; sub(/:/, "", id); seen[id]++; print id; next }
    file == 2 && /^clsnap: snapshots? [0-9]/ && /cannot complete|not checked|never started|had not completed/ {
      n = split($0, w, " ")
      for (i = 3; i <= n; i++) {
        if (w[i] !~ /^[0-9]+(-[0-9]+)?$/) break
        split(w[i], r, "-"); hi = (2 in r) ? r[2] : r[1]
        for (k = r[1] + 0; k <= hi + 0; k++) seen[k]++
        delete r
      }
    }
    END {
      for (k = 0; k < total; k++)
        if (seen[k] != 1) { printf "snapshot %d accounted for %d times\n", k, seen[k] > "/dev/stderr"; bad = 1 }
      exit bad
    }' "$1" "$2"
}
