#!/usr/bin/env bash
# Authenticated connections (docs/RELIABILITY.md, "Authentication").
#   auth.sh cluster   deploy/cluster.sh with CLSNAP_SECRET_FILE: the
#                     cluster commands work with the secret; without it or
#                     with a wrong one clsnap says `authentication failed`
#                     naming the server (exit 1, JSON code EAUTH) and the
#                     daemons change nothing; each refusal is one log line.
#                     Then deploy/cluster.sh --secret-file up and status.
#   auth.sh run       clsnap --secret-file S run: the daemons it starts get
#                     the secret and every snapshot passes
#   auth.sh raw       auth.py raw: handshakes byte by byte
#   auth.sh peers     auth.py peers: daemons with different secrets
#   auth.sh files     a secret file group or others may read is refused by
#                     both programs (exit 2, saying how to fix it); a
#                     daemon on a non-loopback address without a secret
#                     warns, with one it does not
. "$(dirname "$0")/common.sh"
here=$(cd "$(dirname "$0")" && pwd)
export CLSNAP CLSNAPD

secret() { # FILE CONTENT: a private secret file
  printf '%s\n' "$2" >"$1"
  chmod 600 "$1"
}

case ${1:-} in
cluster)
  run=$WORK/run top=$COS/3nodes.top
  total=$(total_tokens "$top")
  secret "$WORK/s" "cluster secret"
  secret "$WORK/wrong" "not it"
  CLSNAP_SECRET_FILE=$WORK/s cluster_up "$top" "$run"
  ok() { CLSNAP_SECRET_FILE=$WORK/s "$CLSNAP" --cluster "$run/cluster" "$@"; }
  ok send N1 N2 4 >/dev/null || fail "send with the secret refused"
  ok snapshot N1 --json >"$WORK/snap.json" 2>"$WORK/snap.err" ||
    { cat "$WORK/snap.err" >&2; fail "snapshot with the secret failed"; }
  json_check "$top" "$WORK/snap.json" --expect 1
  ok status --json >"$WORK/before.json" || fail "status with the secret"
  lines_before=$(cat "$run"/*.log | wc -l)
  # Without the secret, and with a wrong one: refused, naming the server.
  for how in none wrong; do
    args=()
    [ $how = wrong ] && args=(--secret-file "$WORK/wrong")
    rc=0
    "$CLSNAP" --cluster "$run/cluster" "${args[@]}" send N1 N2 1 >"$WORK/$how.out" 2>"$WORK/$how.err" || rc=$?
    cat "$WORK/$how.err"
    [ $rc -eq 1 ] || fail "send without the secret ($how) exited $rc, expected 1"
    grep -q "server N[123] (127.0.0.1:[0-9]*): authentication failed" "$WORK/$how.err" ||
      fail "send ($how) does not say authentication failed naming the server"
    rc=0
    "$CLSNAP" --cluster "$run/cluster" "${args[@]}" snapshot N1 --json >"$WORK/$how.json" 2>/dev/null || rc=$?
    [ $rc -eq 1 ] || fail "snapshot ($how) exited $rc, expected 1"
    $PYTHON - "$WORK/$how.json" <<'EOF' || fail "snapshot --json ($how): no EAUTH error naming the server"
import json, sys
e = json.load(open(sys.argv[1]))["error"]
sys.exit(0 if e["code"] == "EAUTH" and e.get("server", "").startswith("N")
         and "authentication failed" in e["message"] else 1)
EOF
  done
  grep -q "authentication failed: wrong secret" "$run"/N1.log || fail "N1 did not log the wrong secret"
  grep -q "closed without authenticating" "$run"/N1.log || fail "N1 did not log the client without a secret"
  # Nothing changed.
  ok status --json >"$WORK/after.json" || fail "status with the secret after the refusals"
  cmp -s "$WORK/before.json" "$WORK/after.json" || { diff "$WORK/before.json" "$WORK/after.json"; fail "refused clients changed the cluster"; }
  ok status | grep -q "total: $total" || fail "status does not hold $total tokens"
  # deploy/cluster.sh --secret-file, not the variable: up gives the daemons
  # the file, status proves it; status without it is refused.
  run2=$WORK/run2
  cleanup_hooks+=("bash '$DEPLOY' down '$run2' >/dev/null")
  bash "$DEPLOY" --secret-file "$WORK/s" up "$top" "$run2" >"$WORK/up2.txt" 2>&1 ||
    { cat "$WORK/up2.txt" >&2; fail "cluster.sh --secret-file up failed"; }
  for id in N1 N2 N3; do
    tr '\0' ' ' <"/proc/$(cat "$run2/$id.pid")/cmdline" | grep -q -- "--secret-file /.*/s " ||
      fail "cluster.sh --secret-file up did not give $id the file"
  done
  bash "$DEPLOY" --secret-file "$WORK/s" status "$run2" >"$WORK/st2.txt" 2>&1 || { cat "$WORK/st2.txt"; fail "cluster.sh --secret-file status failed"; }
  grep -q "total: $total" "$WORK/st2.txt" || { cat "$WORK/st2.txt"; fail "cluster.sh --secret-file status: no total"; }
  bash "$DEPLOY" status "$run2" >"$WORK/st3.txt" 2>&1 || true
  grep -q "server N[123] (127.0.0.1:[0-9]*): authentication failed" "$WORK/st3.txt" ||
    { cat "$WORK/st3.txt"; fail "cluster.sh status without the secret was not refused"; }
  echo "ok: a cluster with a secret serves clsnap with it and refuses it without it or with a wrong one"
  ;;
run)
  secret "$WORK/s" "run secret"
  # A clsnapd that notes its arguments, so the test sees the secret passed.
  printf '#!/usr/bin/env bash\necho "$@" >>"%s/args"\nexec "%s" "$@"\n' "$WORK" "$CLSNAPD" >"$WORK/clsnapd"
  chmod +x "$WORK/clsnapd"
  "$CLSNAP" --secret-file "$WORK/s" run "$COS/8nodes.top" "$COS/8nodes-concurrent-snapshots.events" \
    --daemon "$WORK/clsnapd" --log-dir "$WORK/logs" >"$WORK/out.txt" 2>"$WORK/err.txt" ||
    { cat "$WORK/err.txt" >&2; fail "run with a secret failed"; }
  grep -q " 0 failed" "$WORK/out.txt" || { cat "$WORK/out.txt"; fail "no passing summary"; }
  [ "$(grep -c -- "--secret-file $WORK/s" "$WORK/args")" -eq 8 ] || { cat "$WORK/args"; fail "not every daemon got --secret-file"; }
  grep -h "authentication\|authenticating" "$WORK"/logs/*.log && fail "a daemon logged a refusal"
  echo "ok: run with --secret-file: 8 daemons got it, every snapshot passed"
  ;;
raw | peers)
  $PYTHON "$here/auth.py" "$CLSNAPD" "$WORK" "$1" || fail "auth.py $1 failed"
  ;;
files)
  printf 'open\n' >"$WORK/open"
  chmod 644 "$WORK/open"
  rc=0
  "$CLSNAPD" --id A --listen 127.0.0.1:0 --secret-file "$WORK/open" >/dev/null 2>"$WORK/d.err" || rc=$?
  [ $rc -eq 2 ] || fail "clsnapd with a mode 0644 secret exited $rc, expected 2"
  grep -q "secret file $WORK/open has mode 0644: group or others may use it; make it private with: chmod 600 $WORK/open" "$WORK/d.err" ||
    { cat "$WORK/d.err"; fail "clsnapd does not say what is wrong with the file"; }
  rc=0
  CLSNAP_SECRET_FILE=$WORK/open "$CLSNAP" --cluster /dev/null status >/dev/null 2>"$WORK/c.err" || rc=$?
  [ $rc -eq 2 ] || fail "clsnap with a mode 0644 secret exited $rc, expected 2"
  grep -q "has mode 0644.*chmod 600" "$WORK/c.err" || { cat "$WORK/c.err"; fail "clsnap does not say what is wrong"; }
  # Non-loopback: a warning without a secret, none with one.
  secret "$WORK/s" "files secret"
  for with in no yes; do
    args=()
    [ $with = yes ] && args=(--secret-file "$WORK/s")
    "$CLSNAPD" --id W --listen 0.0.0.0:0 "${args[@]}" >"$WORK/w.out" 2>"$WORK/w-$with.log" &
    pid=$!
    cleanup_hooks+=("kill $pid 2>/dev/null")
    for _ in $(seq 200); do grep -q READY "$WORK/w.out" && break; sleep 0.02; done
    kill $pid; wait $pid || true
  done
  grep -q "warn: listening on 0.0.0.0:0 without --secret-file" "$WORK/w-no.log" || { cat "$WORK/w-no.log"; fail "no warning for 0.0.0.0 without a secret"; }
  grep -q "without --secret-file" "$WORK/w-yes.log" && fail "a warning although the daemon has a secret"
  echo "ok: secret files others may read are refused; 0.0.0.0 without a secret warns"
  ;;
*)
  fail "usage: auth.sh cluster|run|raw|peers|files"
  ;;
esac
