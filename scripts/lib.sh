# Shared by scripts/demo and scripts/test: find or install what clsnap needs.
# Sourced, not run.

CLSNAP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian packages the build and the tests need (python3-jsonschema: the JSON
# contract test validates every command's --json output against
# docs/clsnap.schema.json).
CLSNAP_PKGS=(meson ninja-build pkg-config gcc libc6-dev libuv1-dev libmsgpack-dev libjansson-dev
  libsodium-dev python3 python3-jsonschema)
# The tests also open the trace page in a real browser (tests/integration/
# browser.py: headless Chromium driven by Selenium).
CLSNAP_TEST_PKGS=(chromium chromium-driver python3-selenium)

have_pkg() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# ensure_packages PKG...: install the missing ones when root, otherwise say
# exactly what to run and fail.
ensure_packages() {
  local missing=() p
  if ! command -v dpkg-query >/dev/null 2>&1; then
    # Not Debian: check the tools directly and name what is missing.
    for p in meson ninja pkg-config cc python3; do
      command -v "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    for p in libuv jansson libsodium; do
      pkg-config --exists "$p" 2>/dev/null || missing+=("$p (pkg-config)")
    done
    pkg-config --exists msgpack 2>/dev/null || pkg-config --exists msgpack-c 2>/dev/null ||
      missing+=("msgpack-c (pkg-config)")
    python3 -c 'import jsonschema' 2>/dev/null || missing+=("the python3 jsonschema module")
    if [ ${#missing[@]} -gt 0 ]; then
      echo "clsnap: missing: ${missing[*]}; install them with your package manager" >&2
      exit 2
    fi
    return 0
  fi
  for p in "$@"; do
    have_pkg "$p" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "clsnap: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || { echo "clsnap: apt-get update failed" >&2; exit 2; }
    apt-get install -y -qq "${missing[@]}" >/dev/null ||
      { echo "clsnap: apt-get install ${missing[*]} failed" >&2; exit 2; }
  else
    echo "clsnap: missing Debian packages; run:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 2
  fi
}

# Colour and cursor control only on a terminal, and no colour with NO_COLOR
# set and not empty (https://no-color.org).
use_color() { [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; }

# compile_dir DIR: ninja in DIR. On a terminal its own status line shows how far
# the build is ([N/M], redrawn in place), with plain [N/M] lines instead
# (TERM=dumb) and no compiler colour under NO_COLOR; otherwise it is quiet
# unless it fails, and then prints no escape either (meson builds with
# -fdiagnostics-color=always; an empty GCC_COLORS turns that off).
compile_dir() {
  local dir=$CLSNAP_ROOT/$1
  if use_color; then
    ninja -C "$dir"
  elif [ -t 1 ]; then
    TERM=dumb GCC_COLORS='' ninja -C "$dir"
  else
    GCC_COLORS='' ninja -C "$dir" >/dev/null || { GCC_COLORS='' ninja -C "$dir"; return 1; }
  fi
}

# build DIR [meson options...]: configure once, then compile.
build() {
  local dir=$1
  shift
  if [ ! -f "$CLSNAP_ROOT/$dir/build.ninja" ]; then
    echo "clsnap: configuring $dir/ (meson setup), then building it"
    meson setup "$CLSNAP_ROOT/$dir" "$CLSNAP_ROOT" "$@" >/dev/null ||
      { echo "clsnap: meson setup $dir failed" >&2; exit 1; }
  elif [ $# -gt 0 ]; then
    meson configure "$CLSNAP_ROOT/$dir" "$@" >/dev/null
  fi
  compile_dir "$dir" || { echo "clsnap: build failed" >&2; exit 1; }
}
