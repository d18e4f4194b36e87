#!/usr/bin/env bash
# A local clsnap cluster: one clsnapd per server of a topology, in the
# background, on 127.0.0.1 with ports the kernel picks.
#
#   deploy/cluster.sh up TOPOLOGY [RUNDIR]   start, configure, write RUNDIR/cluster
#   deploy/cluster.sh up --no-configure TOPOLOGY [RUNDIR]
#                                            start and write RUNDIR/cluster only,
#                                            for `clsnap --cluster F run` to configure
#   deploy/cluster.sh status [RUNDIR]        which daemons run, clsnap status;
#                                            exits 1 if any daemon is not running
#   deploy/cluster.sh down [RUNDIR]          stop exactly the daemons `up` started
#   deploy/cluster.sh recover [RUNDIR]       restart the daemons that died, on
#                                            their addresses, and restore the
#                                            newest completed snapshot of
#                                            RUNDIR/snapshots
#   deploy/cluster.sh --secret-file FILE COMMAND ...
#                                            the same, with a secret (see below)
#
# RUNDIR defaults to ./.clsnap. It holds <ID>.pid, <ID>.start (the daemon's
# start time, field 22 of /proc/PID/stat: with it a reused pid is not taken
# for the daemon), <ID>.log (the daemon's log), <ID>.out (its READY line) and
# `cluster` (one `ID HOST:PORT` line per server), which
# `clsnap --cluster RUNDIR/cluster ...` reads.
# Binaries: $CLSNAPD and $CLSNAP if set, else the build tree, else PATH.
# $CLSNAP_SECRET_FILE, if set, is every daemon's --secret-file (and clsnap
# reads it too), so the cluster takes only connections that know it.
# `deploy/cluster.sh --secret-file FILE COMMAND ...` is the same as
# CLSNAP_SECRET_FILE=FILE for that command (give it to status too).
# $CLSNAPD_ARGS, if set, is appended to every daemon's command line (e.g.
# "--max-kept 2 --write-cap 4096"; split on spaces), and $CLSNAP_CONFIGURE_ARGS
# to `clsnap configure` (e.g. "--lockstep").
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

die() { echo "cluster.sh: $*" >&2; exit "${2:-1}"; }
usage() { # the comment block at the top of this file
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
}

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

# proc_start PID: the start time of process PID (field 22 of
# /proc/PID/stat, clock ticks since boot), which with the pid names one
# process for good: a pid the kernel reuses gets a later start time. Fails
# when PID is gone or a zombie (state Z: it has exited, only its parent has
# not reaped it yet). The fields are counted after the last ')', since the
# command name in between may hold spaces and parentheses.
proc_start() {
  local stat f
  [[ $1 =~ ^[1-9][0-9]*$ ]] || return 1
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -r -a f <<<"${stat##*)}"
  [ "${#f[@]}" -ge 20 ] && [ "${f[0]}" != Z ] || return 1
  echo "${f[19]}"
}

# alive RUNDIR ID: is RUNDIR/ID.pid still the clsnapd that `up` started for
# ID in RUNDIR? The pid must be running with the start time `up` recorded
# in RUNDIR/ID.start, and its arguments must hold `...clsnapd --id ID`
# (whole arguments compared as strings), so neither a reused pid nor the
# daemon of another cluster with the same ids passes.
alive() {
  local pid start argv i
  pid=$(cat "$1/$2.pid" 2>/dev/null) || return 1
  start=$(cat "$1/$2.start" 2>/dev/null) || return 1
  [ -n "$start" ] && [ "$(proc_start "$pid")" = "$start" ] || return 1
  { mapfile -d '' -t argv <"/proc/$pid/cmdline"; } 2>/dev/null || return 1
  for ((i = 0; i + 2 < ${#argv[@]}; i++)); do
    [[ ${argv[i]} == *clsnapd && ${argv[i + 1]} == --id && ${argv[i + 2]} == "$2" ]] && return 0
  done
  return 1
}

cmd_up() {
  local configure=1
  case ${1:-} in --no-configure) configure=0; shift ;; esac
  local top=${1:-} rundir=${2:-./.clsnap} id pid port deadline line
  [ -n "$top" ] && [ $# -le 2 ] || { usage >&2; exit 2; }
  [ -r "$top" ] || die "cannot read topology $top" 2
  local clsnapd clsnap
  clsnapd=$(find_bin clsnapd "${CLSNAPD:-}" build/daemon/clsnapd)
  clsnap=$(find_bin clsnap "${CLSNAP:-}" build/coordinator/clsnap)
  mkdir -p "$rundir"
  for f in "$rundir"/*.pid; do
    [ -e "$f" ] || continue
    id=$(basename "$f" .pid)
    if alive "$rundir" "$id"; then die "$rundir already has a running cluster ($id is up); run: $0 down $rundir"; fi
    rm -f "$f" "$rundir/$id.start"
  done
  local ids extra=() cfgargs=()
  read -r -a extra <<<"${CLSNAPD_ARGS:-}"
  read -r -a cfgargs <<<"${CLSNAP_CONFIGURE_ARGS:-}"
  # A secret for clsnap (CLSNAP_SECRET_FILE) is the daemons' secret too.
  if [ -n "${CLSNAP_SECRET_FILE:-}" ]; then
    [ -r "$CLSNAP_SECRET_FILE" ] || die "cannot read \$CLSNAP_SECRET_FILE ($CLSNAP_SECRET_FILE)" 2
    extra+=(--secret-file "$(cd "$(dirname "$CLSNAP_SECRET_FILE")" && pwd)/$(basename "$CLSNAP_SECRET_FILE")")
  fi
  ids=$(server_ids "$top")
  [ -n "$ids" ] || die "$top: no servers found" 2
  for id in $ids; do
    rm -f "$rundir/$id.out"
    setsid "$clsnapd" --id "$id" --listen 127.0.0.1:0 ${extra[@]+"${extra[@]}"} \
      >"$rundir/$id.out" 2>"$rundir/$id.log" </dev/null &
    pid=$!
    # The start time first: a pid file without it names no daemon.
    proc_start "$pid" >"$rundir/$id.start" || true
    echo "$pid" >"$rundir/$id.pid"
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
      if ! alive "$rundir" "$id"; then
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
  local n
  n=$(wc -w <<<"$ids")
  if [ $configure -eq 0 ]; then
    echo "cluster up, not configured: $n servers, $rundir/cluster"
    echo "try: $clsnap --cluster $rundir/cluster run $top EVENTS"
    return 0
  fi
  if ! "$clsnap" --cluster "$rundir/cluster" configure ${cfgargs[@]+"${cfgargs[@]}"} "$top"; then
    cmd_down "$rundir" >/dev/null 2>&1 || true
    die "configuring the cluster failed; stopped it"
  fi
  echo "cluster up: $n servers, $rundir/cluster"
  # clsnap finds ./.clsnap/cluster by itself, and $CLSNAP_CLUSTER anywhere.
  if [ "$rundir" -ef ./.clsnap ]; then
    echo "try: $clsnap status"
  else
    echo "try: export CLSNAP_CLUSTER=$rundir/cluster; $clsnap status"
  fi
}

cmd_status() {
  local rundir=${1:-./.clsnap} f id up=0 down=0
  ls "$rundir"/*.pid >/dev/null 2>&1 || die "no cluster in $rundir"
  for f in "$rundir"/*.pid; do
    id=$(basename "$f" .pid)
    if alive "$rundir" "$id"; then up=$((up + 1)); else echo "server $id: not running"; down=$((down + 1)); fi
  done
  echo "$up running, $down not running"
  if [ "$up" -gt 0 ] && [ -f "$rundir/cluster" ]; then
    "$(find_bin clsnap "${CLSNAP:-}" build/coordinator/clsnap)" --cluster "$rundir/cluster" status || true
  fi
  [ "$down" -eq 0 ]
}

cmd_down() {
  local rundir=${1:-./.clsnap} f id ids=() deadline
  ls "$rundir"/*.pid >/dev/null 2>&1 || { echo "no cluster in $rundir"; return 0; }
  for f in "$rundir"/*.pid; do
    id=$(basename "$f" .pid)
    if alive "$rundir" "$id"; then
      kill -TERM "$(cat "$f")" 2>/dev/null || true
      ids+=("$id")
    fi
  done
  # Waited for with alive, not kill -0: a daemon that exited stays a zombie
  # until whoever adopted it reaps it, and its pid must not be signalled
  # once it may have been reused.
  deadline=$((SECONDS + 3))
  for id in ${ids[@]+"${ids[@]}"}; do
    while alive "$rundir" "$id" && [ $SECONDS -lt $deadline ]; do sleep 0.02; done
    if alive "$rundir" "$id"; then kill -KILL "$(cat "$rundir/$id.pid")" 2>/dev/null || true; fi
  done
  rm -f "$rundir"/*.pid "$rundir"/*.start "$rundir/cluster"
  echo "cluster down: stopped ${#ids[@]} servers"
}

# The daemons' extra arguments: $CLSNAPD_ARGS and the secret, as up gives
# them. Sets the array `extra`.
daemon_args() {
  extra=()
  read -r -a extra <<<"${CLSNAPD_ARGS:-}"
  if [ -n "${CLSNAP_SECRET_FILE:-}" ]; then
    [ -r "$CLSNAP_SECRET_FILE" ] || die "cannot read \$CLSNAP_SECRET_FILE ($CLSNAP_SECRET_FILE)" 2
    extra+=(--secret-file "$(cd "$(dirname "$CLSNAP_SECRET_FILE")" && pwd)/$(basename "$CLSNAP_SECRET_FILE")")
  fi
}

cmd_recover() {
  local rundir=${1:-./.clsnap} id addr pid t0 restarted=() deadline line extra
  [ -f "$rundir/cluster" ] || die "no cluster in $rundir (no $rundir/cluster)"
  local clsnapd clsnap
  clsnapd=$(find_bin clsnapd "${CLSNAPD:-}" build/daemon/clsnapd)
  clsnap=$(find_bin clsnap "${CLSNAP:-}" build/coordinator/clsnap)
  daemon_args
  t0=$(date +%s%N)
  while read -r id addr; do
    case $id in ''|'#'*) continue ;; esac
    alive "$rundir" "$id" && continue
    rm -f "$rundir/$id.out"
    # The same id on the same address: the others reconnect to it there.
    setsid "$clsnapd" --id "$id" --listen "$addr" ${extra[@]+"${extra[@]}"} \
      >"$rundir/$id.out" 2>>"$rundir/$id.log" </dev/null &
    pid=$!
    proc_start "$pid" >"$rundir/$id.start" || true
    echo "$pid" >"$rundir/$id.pid"
    restarted+=("$id")
  done <"$rundir/cluster"
  for id in ${restarted[@]+"${restarted[@]}"}; do
    deadline=$((SECONDS + 10))
    while :; do
      line=$(head -n 1 "$rundir/$id.out" 2>/dev/null || true)
      case $line in READY*) break ;; esac
      alive "$rundir" "$id" || { tail -n 5 "$rundir/$id.log" >&2; die "server $id exited while restarting (log above)"; }
      [ $SECONDS -lt $deadline ] || die "server $id not ready after 10 s (see $rundir/$id.log)"
      sleep 0.02
    done
  done
  if [ ${#restarted[@]} -gt 0 ]; then
    echo "restarted ${#restarted[@]} server(s): ${restarted[*]}"
  else
    echo "every server runs"
  fi
  "$clsnap" --cluster "$rundir/cluster" restore latest --store "$rundir/snapshots" ||
    die "the restore failed; run $0 recover $rundir again"
  echo "recovered in $((($(date +%s%N) - t0) / 1000000)) ms"
}

# The global option, before the command: it sets $CLSNAP_SECRET_FILE,
# which up passes to the daemons and clsnap reads.
while :; do
  case ${1:-} in
    --secret-file) [ $# -ge 2 ] || { usage >&2; exit 2; }; export CLSNAP_SECRET_FILE=$2; shift 2 ;;
    --secret-file=*) export CLSNAP_SECRET_FILE=${1#*=}; shift ;;
    *) break ;;
  esac
done

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  status) shift; cmd_status "$@" ;;
  down) shift; cmd_down "$@" ;;
  recover) shift; cmd_recover "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
