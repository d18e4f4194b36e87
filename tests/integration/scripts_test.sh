#!/usr/bin/env bash
# scripts/test's arguments and its last line, without building or running
# the suite: a copy of scripts/test runs beside a lib.sh whose
# ensure_packages and build do nothing, with a fake `meson` first in PATH
# that writes the test log it is given ($FAKE_LOG) and exits $FAKE_RC.
. "$(dirname "$0")/common.sh"
src=$(cd "$(dirname "$0")/../../scripts" && pwd)

root=$WORK/root
mkdir -p "$root/scripts" "$WORK/shared/conformance" "$WORK/bin"
cp "$src/test" "$src/test_summary.py" "$root/scripts/"
cat >"$root/scripts/lib.sh" <<'EOF'
CLSNAP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLSNAP_PKGS=()
ensure_packages() { :; }
build() { :; }
EOF
cat >"$WORK/bin/meson" <<'EOF'
#!/usr/bin/env bash
# meson test -C DIR ARGS...: record ARGS, write $FAKE_LOG as DIR's test log.
[ "$1" = test ] && [ "$2" = -C ] || exit 99
mkdir -p "$3/meson-logs"
echo "${@:4}" >"$WORK/meson-args"
if [ -n "${FAKE_LOG:-}" ]; then cp "$FAKE_LOG" "$3/meson-logs/testlog.json"; fi
exit "${FAKE_RC:-0}"
EOF
chmod +x "$WORK/bin/meson"
export PATH="$WORK/bin:$PATH" WORK

# t WANT_RC ARGS...: run the copy; its stdout and stderr in $WORK/out, $WORK/err.
t() {
  local want=$1 rc=0
  shift
  rm -f "$WORK/meson-args"
  bash "$root/scripts/test" "$@" >"$WORK/out" 2>"$WORK/err" </dev/null || rc=$?
  [ $rc -eq "$want" ] || { cat "$WORK/out" "$WORK/err" >&2; fail "scripts/test $* exited $rc, expected $want"; }
}
has() { # FILE TEXT: FILE holds TEXT (a fixed string)
  grep -qF -- "$2" "$WORK/$1" || { cat "$WORK/out" "$WORK/err" >&2; fail "$1 lacks '$2'"; }
}

# A missing suite name is a usage error, named, before anything is built.
for args in "--suite" "--suite=" "--suite --sanitize"; do
  # shellcheck disable=SC2086 # the words are the arguments
  t 2 $args
  has err "scripts/test: --suite needs a suite name"
  [ ! -e "$WORK/meson-args" ] || fail "scripts/test $args ran meson"
done
t 2 --bogus
has err "unknown option --bogus"

# No test ran (meson writes no log when no test matches): a failure.
unset FAKE_LOG
t 1 --suite nosuch
has out "0 passed, 0 failed"
has err "scripts/test: no test ran (suite nosuch?)"
has meson-args "--suite nosuch"
: >"$WORK/empty.json"
FAKE_LOG=$WORK/empty.json t 1
has err "scripts/test: no test ran"

# Both spellings of --suite reach meson; the counts come from the log.
for r in OK EXPECTEDFAIL FAIL TIMEOUT SKIP; do echo "{\"name\": \"x\", \"result\": \"$r\"}"; done >"$WORK/log.json"
FAKE_LOG=$WORK/log.json t 0 --suite=unit --suite cluster
has out "2 passed, 2 failed, 1 skipped"
[ "$(cat "$WORK/meson-args")" = "--print-errorlogs --suite unit --suite cluster" ] ||
  fail "meson got: $(cat "$WORK/meson-args")"
# meson's exit status wins when tests ran.
FAKE_LOG=$WORK/log.json FAKE_RC=1 t 1 --suite unit
has out "2 passed, 2 failed, 1 skipped"
echo "ok: scripts/test arguments and summary"
