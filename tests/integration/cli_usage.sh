#!/usr/bin/env bash
# The command line, as getopt_long(3) users expect it:
#   every usage error of every command (and of clsnapd) exits 2 with one
#   wording, `clsnap: CMD: MESSAGE` then `Try 'clsnap CMD --help'.`;
#   long options abbreviate, options follow operands, short -h -V -q -j;
#   --delays, --max-delay and --in-process imply --lockstep;
#   the cluster file comes from --cluster, else $CLSNAP_CLUSTER, else
#   ./.clsnap/cluster, and the error without one names all three.
. "$(dirname "$0")/common.sh"
: "${CLSNAPD:?CLSNAPD must point at clsnapd}"
unset CLSNAP_CLUSTER

top=$COS/3nodes.top events=$COS/3nodes-simple.events
n=0

# usage_error CMD MESSAGE ARGS...: clsnap ARGS exits 2, prints nothing on
# stdout, and says exactly "clsnap: CMD: MESSAGE" + the hint (CMD "-": the
# global part, "clsnap: MESSAGE" and "Try 'clsnap --help'.").
usage_error() {
  local cmd=$1 msg=$2 rc=0 want
  shift 2
  (cd "$WORK/empty" && "$CLSNAP" "$@") >"$WORK/out.txt" 2>"$WORK/err.txt" || rc=$?
  if [ "$cmd" = - ]; then
    want=$(printf "clsnap: %s\nTry 'clsnap --help'." "$msg")
  else
    want=$(printf "clsnap: %s: %s\nTry 'clsnap %s --help'." "$cmd" "$msg" "$cmd")
  fi
  [ $rc -eq 2 ] || { cat "$WORK/err.txt"; fail "clsnap $*: exit $rc, expected 2"; }
  [ "$(cat "$WORK/err.txt")" = "$want" ] ||
    { printf 'got:\n%s\nwant:\n%s\n' "$(cat "$WORK/err.txt")" "$want"; fail "clsnap $*: wrong usage error"; }
  [ ! -s "$WORK/out.txt" ] || fail "clsnap $*: printed on stdout"
  n=$((n + 1))
}
mkdir -p "$WORK/empty"
echo "N1 127.0.0.3:9" >"$WORK/c1"

# The global part.
usage_error - "no command given"
usage_error - "unknown command 'frobnicate'" frobnicate
usage_error - "unknown command 'frobnicate'" help frobnicate
usage_error - "unrecognized option '--bogus' (command options go after the command)" --bogus run
usage_error - "option '--cluster' requires an argument" --cluster
usage_error - "option '--version' doesn't allow an argument" --version=1
usage_error - "invalid option -- 'x'" -x status

# Every command: an unknown option, a value missing, a flag given a value.
for cmd in run configure send snapshot collect status shutdown bench checkpoint circulate history inspect restore resume trace diagram explain; do
  usage_error "$cmd" "unrecognized option '--bogus'" "$cmd" --bogus
  usage_error "$cmd" "invalid option -- 'z'" "$cmd" -z
  usage_error "$cmd" "option '--json' doesn't allow an argument" "$cmd" --json=yes
  usage_error "$cmd" "option '--quiet' doesn't allow an argument" "$cmd" --qu=1
  case $cmd in bench|diagram|explain) ;; *)
    usage_error "$cmd" "option '--cluster' requires an argument" "$cmd" --cluster ;;
  esac
done
usage_error bench "unrecognized option '--timeout'" bench --timeout 1

# Operands and values, command by command.
usage_error run "needs TOPOLOGY and EVENTS files" run
usage_error run "needs TOPOLOGY and EVENTS files" run "$top"
usage_error run "unexpected argument 'extra'" run "$top" "$events" extra
usage_error run "option '--s' is ambiguous; possibilities: '--seed' '--snap-dir' '--store'" run --s 1 "$top" "$events"
usage_error run "option '--timeout' requires an argument" run "$top" "$events" --timeout
usage_error run "--timeout: 'soon' is not a duration (N, Nms, Ns or Nm; a bare number is seconds)" run "$top" "$events" --timeout soon
usage_error run "--timeout: 0 is out of range (1ms..86400s)" run "$top" "$events" --timeout 0
usage_error run "--timeout: '5h' is not a duration (N, Nms, Ns or Nm; a bare number is seconds)" run "$top" "$events" --timeout 5h
usage_error run "--keep goes with --store" run "$top" "$events" --keep 2
usage_error run "--seed: '-1' is not a whole number" run "$top" "$events" --seed -1
usage_error run "--seed: 9223372036854775808 is out of range (0..9223372036854775807)" run "$top" "$events" --seed 9223372036854775808
usage_error run "use either --delays or --seed, not both" run "$top" "$events" --delays "$events" --seed 2
usage_error run "use either --delays or --max-delay, not both" run "$top" "$events" --delays "$events" --max-delay 2
usage_error run "--in-process and --cluster exclude each other" run "$top" "$events" --in-process --cluster "$WORK/c1"
usage_error run "--tick-ms is for free-running runs; a lockstep run's ticks take no wall time" run "$top" "$events" --lockstep --tick-ms 3
usage_error configure "needs the TOPOLOGY file" configure --cluster "$WORK/c1"
usage_error configure "unexpected argument 'x'" configure --cluster "$WORK/c1" "$top" x
usage_error configure "--jitter-ms: 70000 is out of range (0..60000)" configure --cluster "$WORK/c1" "$top" --jitter-ms 70000
usage_error send "needs SRC, DEST and N" send --cluster "$WORK/c1" N1 N1
usage_error send "N: 0 is out of range (1..1099511627776)" send --cluster "$WORK/c1" N1 N1 0
usage_error send "unknown server 'N9' (not in the cluster file $WORK/c1)" send --cluster "$WORK/c1" N1 N9 1
usage_error snapshot "needs the server ID to start it at" snapshot --cluster "$WORK/c1"
usage_error snapshot "unknown server 'N9' (not in the cluster file $WORK/c1)" snapshot N9 --cluster "$WORK/c1"
usage_error collect "needs the SNAPSHOT_ID" collect --cluster "$WORK/c1"
usage_error collect "SNAPSHOT_ID: 'x1' is not a whole number" collect --cluster "$WORK/c1" x1
usage_error status "unexpected argument 'now'" status now --cluster "$WORK/c1"
usage_error shutdown "unexpected argument 'now'" shutdown --cluster "$WORK/c1" now
usage_error collect "--timeout: 86401 is out of range (1ms..86400s)" collect 1 --cluster "$WORK/c1" --timeout 86401
usage_error checkpoint "needs --every DURATION (e.g. --every 5s)" checkpoint --cluster "$WORK/c1"
usage_error checkpoint "--every: 0ms is out of range (1ms..86400s)" checkpoint --cluster "$WORK/c1" --every 0ms
usage_error checkpoint "--from and --rotate exclude each other" checkpoint --cluster "$WORK/c1" --every 1 --from A --rotate
usage_error circulate "needs on or off" circulate --cluster "$WORK/c1" maybe
usage_error trace "needs start, stop or dump FILE" trace
usage_error trace "needs start, stop or dump FILE" trace begin
usage_error trace "dump needs FILE (- for standard output)" trace dump
usage_error trace "--events goes with start" trace stop --events 5
usage_error trace "--events: 1 is out of range (2..16777216)" trace start --events 1
usage_error diagram "needs a TRACE file" diagram
usage_error diagram "--format is svg, html or shiviz, not 'png'" diagram t.jsonl --format png
usage_error diagram "--to 2 is before --from 5" diagram t.jsonl --from 5 --to 2
usage_error explain "needs a TRACE file and a SNAPSHOT id" explain t.jsonl
usage_error run "--trace-events goes with --trace" run "$top" "$events" --trace-events 9
usage_error bench "--trace-events goes with --trace" bench --nodes 2 --topology ring --seconds 1 --trace-events 9
usage_error restore "needs SEQ (a number from clsnap history) or latest" restore --cluster "$WORK/c1"
usage_error resume "unexpected argument 'x'" resume --cluster "$WORK/c1" x
usage_error inspect "needs SEQ (a number from clsnap history) or latest" inspect --store "$WORK"
usage_error inspect "SEQ: 'first' is not a whole number" inspect first --store "$WORK"
usage_error history "unexpected argument 'x'" history x --store "$WORK"
usage_error snapshot "--keep goes with --store" snapshot N1 --cluster "$WORK/c1" --keep 3
usage_error bench "needs --nodes, --topology and --seconds" bench --nodes 2
usage_error bench "--topology must be ring or mesh, not 'star'" bench --nodes 2 --topology star --seconds 1
usage_error bench "--nodes: 1 is out of range (2..256)" bench --nodes 1 --topology ring --seconds 1
usage_error bench "--idle and --baseline exclude each other" bench --nodes 2 --topology ring --seconds 1 --idle --baseline
# Without a cluster: the error names all three places.
for cmd in "configure $top" "send N1 N2 1" "snapshot N1" "collect 1" status shutdown \
  "checkpoint --every 1" "circulate on" history "inspect latest" "restore latest" resume; do
  # shellcheck disable=SC2086
  usage_error "${cmd%% *}" "which cluster? give --cluster FILE, set CLSNAP_CLUSTER, or run where ./.clsnap/cluster exists (deploy/cluster.sh up writes it)" $cmd
done
echo "ok: $n usage errors, each exit 2 with one wording"

# clsnapd: the same parser and wordings, its own name.
dusage() {
  local msg=$1 rc=0
  shift
  "$CLSNAPD" "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || rc=$?
  [ $rc -eq 2 ] && [ "$(cat "$WORK/err.txt")" = "$(printf "clsnapd: %s\nTry 'clsnapd --help'." "$msg")" ] ||
    { cat "$WORK/err.txt"; fail "clsnapd $*: exit $rc or wrong wording"; }
}
dusage "unrecognized option '--bogus'" --bogus
dusage "ambiguous option '--max'" --max 3
dusage "option '--id' requires an argument" --id
dusage "option '--help' doesn't allow an argument" --help=1
dusage "unexpected argument 'extra'" --id N1 --listen 127.0.0.1:0 extra
dusage "missing --listen" --id N1
[ "$("$CLSNAPD" --version)" = "clsnapd $("$CLSNAP" --version | cut -d' ' -f2)" ] || fail "clsnapd --version"
[ "$("$CLSNAPD" -V)" = "$("$CLSNAPD" --version)" ] || fail "clsnapd -V"
"$CLSNAPD" -h | grep -q "^Usage: clsnapd --id ID --listen HOST:PORT" || fail "clsnapd -h"
# Abbreviated options start a daemon (it answers and stops on SIGTERM).
"$CLSNAPD" --id N1 --lis 127.0.0.1:0 --log-l warn >"$WORK/ready.txt" 2>"$WORK/d.log" &
dpid=$!
cleanup_hooks+=("kill $dpid 2>/dev/null; wait $dpid 2>/dev/null")
for _ in $(seq 100); do grep -q READY "$WORK/ready.txt" && break; sleep 0.05; done
grep -q "^READY N1 127.0.0.1:" "$WORK/ready.txt" || fail "clsnapd with abbreviated options did not start"
kill $dpid; wait $dpid || fail "clsnapd did not stop cleanly"
echo "ok: clsnapd usage errors, --version, abbreviations"

# Help and version, short and long, on stdout with exit 0.
for h in -h --help --he; do
  "$CLSNAP" $h | head -1 | grep -q "^Usage: clsnap " || fail "clsnap $h"
  for cmd in run configure send snapshot collect status shutdown bench checkpoint circulate history inspect restore resume trace diagram explain; do
    "$CLSNAP" "$cmd" $h | head -1 | grep -q "^Usage: clsnap .*$cmd" || fail "clsnap $cmd $h"
  done
done
[ "$("$CLSNAP" -V)" = "$("$CLSNAP" --version)" ] || fail "clsnap -V"

# Abbreviations, options after operands, -q and -j, and what implies
# --lockstep: each of these is a lockstep run (its ticks are on stderr).
"$CLSNAP" run "$top" "$events" --lock --in-p -q >"$WORK/q.txt" 2>"$WORK/e.txt" || fail "run --lock --in-p -q"
grep -q "^1 snapshot: 1 passed, 0 failed$" "$WORK/q.txt" || fail "-q output: $(cat "$WORK/q.txt")"
! grep -q "^S" "$WORK/q.txt" || fail "-q still prints the .snap text"
for opt in "--delays $CONFORMANCE_DIR/go-delays.txt" "--max-delay 2" "--in-process" "--in-process --seed 3"; do
  # shellcheck disable=SC2086
  "$CLSNAP" run "$top" $opt "$events" -q >"$WORK/o.txt" 2>"$WORK/e.txt" ||
    { cat "$WORK/e.txt"; fail "run $opt"; }
  grep -q "^ran in .*: [0-9]* ticks, [0-9]* peer messages$" "$WORK/e.txt" ||
    { cat "$WORK/e.txt"; fail "run $opt was not a lockstep run"; }
done
"$CLSNAP" run -j "$top" "$events" --in-process >"$WORK/j.txt" 2>/dev/null || fail "run -j"
"$PYTHON" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["mode"] == "lockstep", d["mode"]' "$WORK/j.txt" ||
  fail "run -j --in-process: not lockstep JSON"
# `--` ends the options: a file named like an option is an operand.
cp "$top" "$WORK/--lockstep"
(cd "$WORK" && "$CLSNAP" run -q -- --lockstep "$events" >/dev/null 2>&1) || fail "run -- --lockstep EVENTS"
echo "ok: abbreviations, options after operands, -q -j, implied --lockstep, --"

# Where the cluster is: --cluster, else $CLSNAP_CLUSTER, else
# ./.clsnap/cluster. A missing file is an error naming that file, so each
# case shows which one was read.
mkdir -p "$WORK/d/.clsnap"
echo "N1 127.0.0.3:9" >"$WORK/d/.clsnap/cluster"
where() { # expected-file ARGS...: status fails naming expected-file
  local want=$1
  shift
  (cd "$WORK/d" && "$CLSNAP" "$@" status --timeout 1) >"$WORK/err.txt" 2>&1 || true
  grep -qF "$want" "$WORK/err.txt" || { cat "$WORK/err.txt"; fail "status $*: did not read $want"; }
}
where "$WORK/opt.cluster" --cluster "$WORK/opt.cluster"
CLSNAP_CLUSTER=$WORK/env.cluster where "$WORK/env.cluster"
CLSNAP_CLUSTER=$WORK/env.cluster where "$WORK/opt.cluster" --cluster "$WORK/opt.cluster"
# the default file is read: its one server N1 is unreachable, named by id
where "N1"
CLSNAP_CLUSTER= where "N1"
echo "ok: cluster lookup: --cluster > CLSNAP_CLUSTER > ./.clsnap/cluster"
