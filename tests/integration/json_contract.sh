#!/usr/bin/env bash
# One JSON contract (issue 12): every command with --json prints exactly one
# JSON document on stdout, valid against docs/clsnap.schema.json as a whole
# and as that command's definition (schema_check.py):
#   - in success: run (free-running on daemons, seeded lockstep in process,
#     lockstep from a delay file), bench, configure, send, snapshot,
#     snapshot --no-wait then collect, status, shutdown; with the values a
#     user can know beforehand (server ids in order, addresses from the
#     cluster file, the delay source, the token message sent);
#   - in failure: {"error": {...}} with the exact CL_E code and exactly the
#     server, file and line expected (a usage error of each command, an
#     unknown server, a refused send (ENOTOKENS), a refused configure
#     (ESTATE), collect of a missing id (ENOENT), a cluster that is gone
#     (ELOST) or does not answer (ETIMEOUT), a bad topology or cluster file
#     (EINVAL with file and line), a snapshot no marker can complete, run's
#     refused event (events file, line, server; with the snapshots checked
#     before it, in run's result), a bad --snap-dir, an unknown command);
#     the exit status is the expected one and the same as without --json.
#     status and shutdown of a cluster that is gone print their result
#     (every server unreachable), exit 1.
# Every expected value is written here by hand, or read from an input file
# (the cluster file), never taken from clsnap's output.
. "$(dirname "$0")/common.sh"
: "${DEPLOY:?DEPLOY must point at deploy/cluster.sh}"
: "${CLSNAPD:?CLSNAPD must point at the clsnapd binary}"
export CLSNAP CLSNAPD
here=$(cd "$(dirname "$0")" && pwd)
SCHEMA=$here/../../docs/clsnap.schema.json
CHECK=$here/schema_check.py
"$PYTHON" -c 'import jsonschema' 2>/dev/null ||
  fail "the python3 jsonschema module is missing; run:
  sudo apt-get install -y python3-jsonschema
(scripts/test installs it when run as root)"

cases=0
# expect WANT DEF [schema_check options] -- CLSNAP_ARGS...: clsnap
# CLSNAP_ARGS... --json must exit WANT and print one DEF document; a
# failure (WANT not 0) must also exit WANT without --json.
expect() {
  local want=$1 def=$2 rc=0 rc_text=0 opts=() out
  shift 2
  while [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  cases=$((cases + 1))
  out=$WORK/case$cases
  "$CLSNAP" "$@" --json >"$out.json" 2>"$out.err" || rc=$?
  [ $rc -eq "$want" ] ||
    { cat "$out.json" "$out.err" >&2; fail "clsnap $* --json: exit $rc, expected $want"; }
  "$PYTHON" "$CHECK" "$SCHEMA" "$def" "$out.json" ${opts[@]+"${opts[@]}"} ||
    { cat "$out.err" >&2; fail "clsnap $* --json: output does not keep the contract"; }
  [ "$want" -ne 0 ] || return 0
  "$CLSNAP" "$@" >"$out.txt" 2>&1 || rc_text=$?
  [ $rc_text -eq "$want" ] ||
    { cat "$out.txt" >&2; fail "clsnap $*: exit $rc_text without --json, $want with it"; }
}
# A key of the last case's JSON document.
last_key() { "$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/case$cases.json" "$1"; }

printf '3\nA 5\nB 0\nC 2\nA B\nB C\nC A\n' >"$WORK/abc.top"
printf 'send A B 2\nsnapshot A\ntick 2\nsnapshot C\n' >"$WORK/abc.events"
printf '# B holds nothing\nsend B C 1\n' >"$WORK/refused.events"
printf '3\nA 5\nB 0\nC x\nA B\n' >"$WORK/bad.top"
printf '2\nP 1\nQ 1\nP Q\n' >"$WORK/oneway.top"
printf 'send P Q 1\nsnapshot Q\n' >"$WORK/oneway.events"
ids='["A", "B", "C"]'

# ---- run ------------------------------------------------------------------
expect 0 run --ids "$ids" --expect '{"mode": "free", "passed": 2, "failed": 0}' -- \
  run "$WORK/abc.top" "$WORK/abc.events" --log-dir "$WORK/logs"
expect 0 run --ids "$ids" --expect '{"mode": "lockstep", "seed": 3, "delays": {"seed": 3, "max": 4}, "passed": 2}' -- \
  run "$WORK/abc.top" "$WORK/abc.events" --in-process --seed 3
expect 0 run --ids "$ids" --expect "{\"mode\": \"lockstep\", \"delays\": \"$CONFORMANCE_DIR/go-delays.txt\"}" -- \
  run "$WORK/abc.top" "$WORK/abc.events" --delays "$CONFORMANCE_DIR/go-delays.txt" --log-dir "$WORK/logs"
expect 2 error --expect '{"code": "EINVAL"}' -- run "$WORK/abc.top"
expect 2 error --expect "{\"code\": \"EINVAL\", \"file\": \"$WORK/bad.top\", \"line\": 4}" -- \
  run "$WORK/bad.top" "$WORK/abc.events" --in-process
expect 2 error --expect "{\"code\": \"EINVAL\", \"server\": \"Q\", \"file\": \"$WORK/oneway.events\", \"line\": 2}" -- \
  run "$WORK/oneway.top" "$WORK/oneway.events"
expect 1 error --expect "{\"code\": \"ENOTOKENS\", \"server\": \"B\", \"file\": \"$WORK/refused.events\", \"line\": 2}" -- \
  run "$WORK/abc.top" "$WORK/refused.events" --log-dir "$WORK/logs"
expect 1 error --expect "{\"code\": \"ENOTOKENS\", \"server\": \"B\", \"file\": \"$WORK/refused.events\", \"line\": 2}" -- \
  run "$WORK/abc.top" "$WORK/refused.events" --in-process
# Stopped after checking snapshot 0: the run's result, with the error.
printf 'snapshot A\ntick 20\nsnapshot B\ntick 20\nsend B C 100\n' >"$WORK/late.events"
expect 1 run --ids "$ids" --expect '{"mode": "lockstep", "passed": 2, "failed": 0, "unchecked": []}' \
  --error "{\"code\": \"ENOTOKENS\", \"server\": \"B\", \"file\": \"$WORK/late.events\", \"line\": 5}" -- \
  run "$WORK/abc.top" "$WORK/late.events" --in-process
: >"$WORK/afile"
expect 2 error --expect "{\"code\": \"EINVAL\", \"file\": \"$WORK/afile\"}" -- \
  run "$WORK/abc.top" "$WORK/abc.events" --in-process --snap-dir "$WORK/afile"
echo "ok: run"

# Help and version are JSON too with --json.
expect 0 help -- run --help
expect 0 help -- help checkpoint
expect 0 help -- inspect -h
expect 0 version -- -V
echo "ok: --help and -V"

# Seeds are 63-bit, so that JSON prints them as they are.
expect 2 error --expect '{"code": "EINVAL"}' -- run "$WORK/abc.top" "$WORK/abc.events" --in-process --seed 9223372036854775808
expect 0 run --expect '{"seed": 9223372036854775807}' -- run "$WORK/abc.top" "$WORK/abc.events" --in-process --seed 9223372036854775807

# Before any command has parsed its options.
expect 2 error --expect '{"code": "EINVAL"}' -- frob
expect 2 error --expect '{"code": "EINVAL"}' -- --bogus status
echo "ok: an unknown command or global option"

# ---- bench ----------------------------------------------------------------
expect 0 bench --expect '{"nodes": 2, "topology": "ring", "snapshot_every_ms": 200}' -- \
  bench --nodes 2 --topology ring --seconds 1 --warmup-ms 100 --snapshot-every-ms 200 \
  --daemon "$CLSNAPD" --log-dir "$WORK/logs"
expect 2 error --expect '{"code": "EINVAL"}' -- bench --nodes 2
echo "ok: bench"

# ---- a cluster: configure, send, snapshot, collect, status, shutdown ---------
run=$WORK/abc
cleanup_hooks+=("bash '$DEPLOY' down '$run' >/dev/null")
bash "$DEPLOY" up --no-configure "$WORK/abc.top" "$run" >"$WORK/up.txt" 2>&1 ||
  { cat "$WORK/up.txt" >&2; fail "cluster.sh up --no-configure failed"; }
cluster=$run/cluster
# What configure and shutdown must list: the cluster file's servers.
endpoints() { # [EXTRA_JSON_MEMBERS]
  awk -v extra="${1:-}" '!/^#/ && NF == 2 { printf "%s{\"id\": \"%s\", \"address\": \"%s\"%s}", n++ ? ", " : "[", $1, $2, extra }
                     END { print "]" }' "$cluster"
}
c=(--cluster "$cluster")

expect 1 error --expect '{"code": "ESTATE", "server": "A"}' -- "${c[@]}" snapshot A
expect 0 configure --expect "{\"servers\": $(endpoints), \"mode\": \"free\", \"channels\": 3, \"tokens\": 7, \"jitter_ms\": 0, \"seed\": 7}" -- \
  "${c[@]}" configure "$WORK/abc.top" --seed 7
expect 1 error --expect '{"code": "ESTATE", "server": "A"}' -- "${c[@]}" configure "$WORK/abc.top"
expect 2 error --expect "{\"code\": \"EINVAL\", \"file\": \"$WORK/bad.top\", \"line\": 4}" -- \
  "${c[@]}" configure "$WORK/bad.top"
expect 2 error --expect '{"code": "EINVAL"}' -- "${c[@]}" configure
echo "ok: configure"

expect 0 send --expect '{"src": "A", "dst": "B", "tokens": 2, "seq": 1}' -- "${c[@]}" send A B 2
expect 1 error --expect '{"code": "ENOTOKENS", "server": "B"}' -- "${c[@]}" send B C 5
expect 2 error --expect '{"code": "EINVAL", "server": "NOPE"}' -- "${c[@]}" send A NOPE 1
expect 2 error --expect '{"code": "EINVAL"}' -- "${c[@]}" send A B
echo "ok: send"

expect 0 snapshot --ids "$ids" --expect '{"ok": true, "complete": true}' -- "${c[@]}" snapshot A
expect 0 snapshot_started --expect '{"server": "C"}' -- "${c[@]}" snapshot C --no-wait
sid=$(last_key id)
expect 0 snapshot --ids "$ids" --expect "{\"id\": $sid, \"ok\": true}" -- "${c[@]}" collect "$sid"
expect 1 error --expect '{"code": "ENOENT", "server": "A"}' -- "${c[@]}" collect 999999
expect 2 error --expect '{"code": "EINVAL", "server": "NOPE"}' -- "${c[@]}" snapshot NOPE
expect 2 error --expect '{"code": "EINVAL"}' -- "${c[@]}" collect abc
echo "ok: snapshot, collect"

# The store: snapshot --store, circulate, checkpoint, history, inspect.
st=$WORK/store
expect 0 snapshot --ids "$ids" --expect '{"ok": true}' -- "${c[@]}" snapshot A --store "$st"
expect 0 circulate --expect '{"circulate": true, "servers": 3}' -- "${c[@]}" circulate on
expect 0 checkpoint --expect "{\"taken\": 3, \"completed\": 3, \"failed\": 0, \"timed_out\": 0, \"store\": \"$st\", \"interrupted\": false}" -- \
  "${c[@]}" checkpoint --every 10ms --count 3 --store "$st"
expect 0 circulate --expect '{"circulate": false, "servers": 3}' -- "${c[@]}" circulate off
expect 0 history -- "${c[@]}" history --store "$st"
"$PYTHON" -c 'import json,sys; h = json.load(open(sys.argv[1])); sys.exit(not ([e["seq"] for e in h] == [1, 2, 3, 4] and all(e["status"] == "completed" and e["ok"] for e in h)))' \
  "$WORK/case$cases.json" || fail "history --json does not list the 4 snapshots stored"
expect 0 inspect --expect "{\"seq\": 4, \"status\": \"completed\", \"file\": \"$st/000004-completed.json\"}" -- \
  "${c[@]}" inspect latest --store "$st"
expect 1 error --expect "{\"code\": \"ENOENT\", \"file\": \"$st\"}" -- "${c[@]}" inspect 99 --store "$st"
printf 'x' >>"$st/000002-completed.json"
expect 1 error --expect "{\"code\": \"EINVAL\", \"file\": \"$st/000002-completed.json\"}" -- \
  "${c[@]}" inspect 2 --store "$st"
expect 2 error --expect '{"code": "EINVAL"}' -- "${c[@]}" checkpoint --every 5x --store "$st"
expect 2 error --expect '{"code": "EINVAL"}' -- "${c[@]}" circulate maybe
expect 0 restore --expect '{"seq": 4, "epoch": 1, "servers": 3, "paused": true}' -- \
  "${c[@]}" restore latest --store "$st" --paused
expect 0 snapshot --ids "$ids" --expect '{"ok": true}' -- "${c[@]}" status --snap
expect 0 resume --expect '{"resumed": 3}' -- "${c[@]}" resume
expect 1 error --expect '{"code": "ESTATE", "server": "A"}' -- "${c[@]}" status --snap
expect 1 error --expect "{\"code\": \"EINVAL\", \"file\": \"$st/000002-completed.json\"}" -- \
  "${c[@]}" restore 2 --store "$st"
echo "ok: store, checkpoint, circulate, history, inspect, restore"

# Traces: start, dump, stop, diagram, explain (docs/TRACE.md).
expect 0 trace --expect '{"tracing": true, "servers": 3}' -- "${c[@]}" trace start
# After the restore any server may hold the tokens: send 1 from one that
# holds some to the next on the ring (A -> B -> C -> A).
"$CLSNAP" "${c[@]}" status --json >"$WORK/st.json" || fail "status"
set -- $("$PYTHON" -c '
import json, sys
ring = {"A": "B", "B": "C", "C": "A"}
s = next(s for s in json.load(open(sys.argv[1]))["servers"] if s["tokens"] > 0)
print(s["id"], ring[s["id"]])' "$WORK/st.json")
"$CLSNAP" "${c[@]}" send "$1" "$2" 1 >/dev/null || fail "send $1 $2 1"
expect 0 snapshot --ids "$ids" --expect '{"ok": true}' -- "${c[@]}" snapshot C
sid=$(last_key id)
expect 0 trace_dump --expect "{\"trace\": \"$WORK/t.jsonl\", \"servers\": 3, \"messages\": 1, \"markers\": 3, \"snapshots\": 1, \"complete\": true}" -- \
  "${c[@]}" trace dump "$WORK/t.jsonl"
expect 0 trace --expect '{"tracing": false, "servers": 3}' -- "${c[@]}" trace stop
expect 0 diagram --expect "{\"diagram\": \"$WORK/t.svg\", \"format\": \"svg\", \"servers\": 3}" -- \
  diagram "$WORK/t.jsonl" -o "$WORK/t.svg"
expect 0 diagram --expect "{\"diagram\": \"$WORK/t.html\", \"format\": \"html\"}" -- \
  diagram "$WORK/t.jsonl" -o "$WORK/t.html"
expect 0 explain --expect "{\"snapshot\": $sid, \"initiator\": \"C\", \"agree\": true, \"tokens_at_start\": 7}" -- \
  explain "$WORK/t.jsonl" "$sid"
expect 2 error --expect "{\"code\": \"ENOENT\", \"file\": \"$WORK/t.jsonl\"}" -- explain "$WORK/t.jsonl" 12
printf 'nope\n' >"$WORK/bad.jsonl"
expect 2 error --expect "{\"code\": \"EINVAL\", \"file\": \"$WORK/bad.jsonl\", \"line\": 1}" -- \
  diagram "$WORK/bad.jsonl"
echo "ok: trace, diagram, explain"

expect 0 status --ids "$ids" --expect '{"initial_tokens": 7, "unreachable": 0, "mixed_topologies": false}' -- "${c[@]}" status
expect 2 error --expect '{"code": "EINVAL"}' -- "${c[@]}" status A
expect 2 error --expect '{"code": "EINVAL"}' -- "${c[@]}" shutdown A
pids=$(cat "$run"/*.pid)
expect 0 shutdown --expect "{\"servers\": $(endpoints ', "ok": true')}" -- "${c[@]}" shutdown
for pid in $pids; do
  for _ in $(seq 100); do running "$pid" || break; sleep 0.05; done
  ! running "$pid" || fail "daemon $pid still runs after shutdown"
done
echo "ok: status, shutdown"

# The cluster is gone: the first server of the cluster file cannot be
# reached; status and shutdown still list every server.
expect 1 error --expect '{"code": "ELOST", "server": "A"}' -- "${c[@]}" send A B 1
expect 1 error --expect '{"code": "ELOST", "server": "A"}' -- "${c[@]}" snapshot B
expect 1 error --expect '{"code": "ELOST", "server": "A"}' -- "${c[@]}" collect 1
expect 1 error --expect '{"code": "ELOST", "server": "A"}' -- "${c[@]}" configure "$WORK/abc.top"
expect 1 status --ids "$ids" --expect '{"unreachable": 3, "in_flight": null}' -- "${c[@]}" status
expect 1 shutdown --ids "$ids" -- "${c[@]}" shutdown
"$PYTHON" -c 'import json,sys; sys.exit(any(s["ok"] for s in json.load(open(sys.argv[1]))["servers"]))' \
  "$WORK/case$cases.json" || fail "shutdown of a cluster that is gone says a server is shutting down"
echo "ok: a cluster that is gone"

# A server that accepts the connection and never answers: ETIMEOUT.
"$PYTHON" -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
time.sleep(120)' >"$WORK/mute.port" &
mute=$!
cleanup_hooks+=("kill $mute 2>/dev/null")
for _ in $(seq 100); do [ -s "$WORK/mute.port" ] && break; sleep 0.05; done
port=$(cat "$WORK/mute.port")
[ -n "$port" ] || fail "the mute listener did not start"
printf 'M 127.0.0.1:%s\nN 127.0.0.1:%s\n' "$port" "$port" >"$WORK/mute.cluster"
expect 1 error --expect '{"code": "ETIMEOUT", "server": "M"}' -- \
  --cluster "$WORK/mute.cluster" send M N 1 --timeout 1
echo "ok: a server that does not answer"

# Bad cluster files.
printf 'A 127.0.0.1:1\n# a comment\nB nonsense\n' >"$WORK/bad.cluster"
expect 2 error --expect "{\"code\": \"EINVAL\", \"file\": \"$WORK/bad.cluster\", \"line\": 3}" -- \
  --cluster "$WORK/bad.cluster" status
expect 2 error --expect "{\"code\": \"EINVAL\", \"file\": \"$WORK/bad.cluster\", \"line\": 3}" -- \
  run "$WORK/abc.top" "$WORK/abc.events" --cluster "$WORK/bad.cluster"
printf 'A 127.0.0.1:1\nB 127.0.0.1:2\n' >"$WORK/ab.cluster"
expect 2 error --expect "{\"code\": \"ENOENT\", \"server\": \"C\", \"file\": \"$WORK/ab.cluster\"}" -- \
  run "$WORK/abc.top" "$WORK/abc.events" --cluster "$WORK/ab.cluster"
expect 2 error --expect "{\"code\": \"ENOENT\", \"server\": \"C\", \"file\": \"$WORK/ab.cluster\"}" -- \
  --cluster "$WORK/ab.cluster" configure "$WORK/abc.top"
echo "ok: bad cluster files"

assert_no_daemons "$CLSNAPD"
echo "ok: $cases --json invocations keep the contract"
