#!/usr/bin/env bash
# A local clsnap cluster: one clsnapd per server of a topology, in the
# background, on 127.0.0.1 with ports the kernel picks.
#
#   deploy/cluster.sh up TOPOLOGY [RUNDIR]   start, configure, write RUNDIR/cluster
#   deploy/cluster.sh status [RUNDIR]        which daemons run; clsnap status
#   deploy/cluster.sh down [RUNDIR]          stop exactly the daemons `up` started
#
# RUNDIR defaults to ./.clsnap. It holds <ID>.pid, <ID>.log (the daemon's
# log), <ID>.out (its READY line) and `cluster` (one `ID HOST:PORT` line per
# server), which `clsnap --cluster RUNDIR/cluster ...` reads.
# Binaries: $CLSNAPD and $CLSNAP if set, else the build tree, else PATH.
# $CLSNAPD_ARGS, if set, is appended to every daemon's command line (e.g.
# "--max-kept 2 --write-cap 4096"; split on spaces), and $CLSNAP_CONFIGURE_ARGS
# to `clsnap configure` (e.g. "--lockstep").
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

die() { echo "cluster.sh: $*" >&2; exit "${2:-1}"; }
usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

find_bin() { # NAME ENVVALUE BUILDPATH
  if [ -n "$2" ]; then echo "$2"; return; fi
  if [ -x "$root/$3" ]; then echo "$root/$3"; return; fi
  command -v "$1" 2>/dev/null || die "cannot find $1: build first (meson setup build && meson compile -C build) or set \$${1^^}"
}

# The server ids of a .top file: the N lines after the count, skipping
# comments and blank lines. clsnap itself validates the file properly.
server_ids() {
  awk '/^[ \t]*(#|$)/ { next }
       n == "" { n = $1; next }
       seen < n { print $1; seen++ }' "$1"
}

alive() { # PIDFILE ID: is the recorded pid still our clsnapd for ID?
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "clsnapd --id $2 "
}

cmd_up() {
  local top=${1:-} rundir=${2:-./.clsnap} id pid port deadline line
  [ -n "$top" ] || { usage >&2; exit 2; }
  [ -r "$top" ] || die "cannot read topology $top" 2
  local clsnapd clsnap
  clsnapd=$(find_bin clsnapd "${CLSNAPD:-}" build/daemon/clsnapd)
  clsnap=$(find_bin clsnap "${CLSNAP:-}" build/coordinator/clsnap)
  mkdir -p "$rundir"
  for f in "$rundir"/*.pid; do
    [ -e "$f" ] || continue
    id=$(basename "$f" .pid)
    if alive "$f" "$id"; then die "$rundir already has a running cluster ($id is up); run: $0 down $rundir"; fi
    rm -f "$f"
  done
  local ids extra=() cfgargs=()
  read -r -a extra <<<"${CLSNAPD_ARGS:-}"
  read -r -a cfgargs <<<"${CLSNAP_CONFIGURE_ARGS:-}"
  ids=$(server_ids "$top")
  [ -n "$ids" ] || die "$top: no servers found" 2
  for id in $ids; do
    rm -f "$rundir/$id.out"
    setsid "$clsnapd" --id "$id" --listen 127.0.0.1:0 ${extra[@]+"${extra[@]}"} \
      >"$rundir/$id.out" 2>"$rundir/$id.log" </dev/null &
    echo $! >"$rundir/$id.pid"
  done
  # Readiness: each daemon prints `READY ID HOST:PORT` once it listens.
  local cluster="$rundir/cluster.tmp"
  echo "# clsnap cluster: topology $(cd "$(dirname "$top")" && pwd)/$(basename "$top")" >"$cluster"
  for id in $ids; do
    deadline=$((SECONDS + 10))
    line=
    while :; do
      line=$(head -n 1 "$rundir/$id.out" 2>/dev/null || true)
      case $line in READY*) break ;; esac
      if ! alive "$rundir/$id.pid" "$id"; then
        cat "$rundir/$id.log" >&2 || true
        cmd_down "$rundir" >/dev/null 2>&1 || true
        die "server $id exited during start-up (log above)"
      fi
      if [ $SECONDS -ge $deadline ]; then
        cmd_down "$rundir" >/dev/null 2>&1 || true
        die "server $id not ready after 10 s (see $rundir/$id.log)"
      fi
      sleep 0.02
    done
    port=${line##* }
    echo "$id $port" >>"$cluster"
  done
  mv "$cluster" "$rundir/cluster"
  if ! "$clsnap" --cluster "$rundir/cluster" configure ${cfgargs[@]+"${cfgargs[@]}"} "$top"; then
    cmd_down "$rundir" >/dev/null 2>&1 || true
    die "configuring the cluster failed; stopped it"
  fi
  echo "cluster up: $(echo $ids | wc -w) servers, $rundir/cluster"
  echo "try: $clsnap --cluster $rundir/cluster status"
}

cmd_status() {
  local rundir=${1:-./.clsnap} f id up=0 down=0
  ls "$rundir"/*.pid >/dev/null 2>&1 || die "no cluster in $rundir"
  for f in "$rundir"/*.pid; do
    id=$(basename "$f" .pid)
    if alive "$f" "$id"; then up=$((up + 1)); else echo "server $id: not running"; down=$((down + 1)); fi
  done
  echo "$up running, $down not running"
  if [ "$up" -gt 0 ] && [ -f "$rundir/cluster" ]; then
    "$(find_bin clsnap "${CLSNAP:-}" build/coordinator/clsnap)" --cluster "$rundir/cluster" status || true
  fi
  [ "$down" -eq 0 ]
}

cmd_down() {
  local rundir=${1:-./.clsnap} f id pid pids=() deadline
  ls "$rundir"/*.pid >/dev/null 2>&1 || { echo "no cluster in $rundir"; return 0; }
  for f in "$rundir"/*.pid; do
    id=$(basename "$f" .pid)
    if alive "$f" "$id"; then
      pid=$(cat "$f")
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  deadline=$((SECONDS + 3))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.02; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$rundir"/*.pid "$rundir/cluster"
  echo "cluster down: stopped ${#pids[@]} servers"
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  status) shift; cmd_status "$@" ;;
  down) shift; cmd_down "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
