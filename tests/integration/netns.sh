#!/usr/bin/env bash
# Three hosts in network namespaces this test creates, joined by a bridge
# (in a namespace of its own) and veth pairs, addresses from 198.18.0.0/24.
#   netns.sh cut   N2's link is cut (ip link set down) for 4 s while a
#                  snapshot is in progress and tokens are on their way to
#                  it: the senders break the silent connections after
#                  --peer-timeout, reconnect once the link is back, and the
#                  snapshot completes, exact, with every token
# Needs root; says skipped without it. Every namespace and link it made is
# removed on exit, also on failure; no traffic leaves the namespaces.
. "$(dirname "$0")/common.sh"
export CLSNAP CLSNAPD
if [ "$(id -u)" -ne 0 ]; then
  echo "skipped: netns.sh needs root (network namespaces)"
  exit 77
fi

p=cl$$ # a unique prefix for the namespaces and links of this run
ids=(N1 N2 N3)
pids=()
teardown() {
  local pid ns
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
  for ns in "${p}1" "${p}2" "${p}3" "${p}br"; do ip netns del "$ns" 2>/dev/null; done
  true
}
cleanup_hooks+=(teardown)

ip netns add "${p}br"
ip -n "${p}br" link add br0 type bridge
ip -n "${p}br" link set br0 up
for k in 1 2 3; do
  ip netns add "${p}$k"
  ip link add "${p}h$k" netns "${p}$k" type veth peer name "${p}b$k" netns "${p}br"
  ip -n "${p}$k" addr add "198.18.0.$k/24" dev "${p}h$k"
  ip -n "${p}$k" link set "${p}h$k" up
  ip -n "${p}$k" link set lo up
  ip -n "${p}br" link set "${p}b$k" master br0
  ip -n "${p}br" link set "${p}b$k" up
done

# One daemon per host, peer timeout 1 s; READY gives the port.
: >"$WORK/cluster"
for k in 1 2 3; do
  ip netns exec "${p}$k" "$CLSNAPD" --id "N$k" --listen "198.18.0.$k:0" \
    --peer-timeout 1000 >"$WORK/N$k.out" 2>"$WORK/N$k.log" &
  pids+=($!)
done
for k in 1 2 3; do
  for _ in $(seq 200); do grep -q '^READY' "$WORK/N$k.out" && break; sleep 0.05; done
  read -r _ id addr <"$WORK/N$k.out" || fail "N$k did not say READY"
  echo "$id $addr" >>"$WORK/cluster"
done
# The coordinator runs on host 1; it reaches the others over the bridge.
c() { ip netns exec "${p}1" "$CLSNAP" --cluster "$WORK/cluster" "$@"; }
top=$COS/3nodes.top
total=$(total_tokens "$top")
# Messages wait 0..1500 ms at their sender, so markers and tokens are still
# queued or on the wire when the link goes down.
c configure "$top" --jitter-ms 1500 >"$WORK/configure.txt" 2>&1 ||
  { cat "$WORK/configure.txt" >&2; fail "configure over the bridge failed"; }
c send N1 N2 5 >/dev/null || fail "send N1 N2 5 refused"
c send N1 N3 2 >/dev/null || fail "send N1 N3 2 refused"
c send N2 N3 1 >/dev/null || fail "send N2 N3 1 refused"
c snapshot N1 --timeout 60 --json >"$WORK/snap.json" 2>"$WORK/snap.err" &
spid=$!
cleanup_hooks+=("kill $spid 2>/dev/null")
sleep 0.2
ip -n "${p}br" link set "${p}b2" down
sleep 4
ip -n "${p}br" link set "${p}b2" up
wait $spid || { cat "$WORK/snap.err" >&2; fail "the snapshot across the cut failed"; }
json_check "$top" "$WORK/snap.json" --expect 1
grep -q "acknowledged nothing for" "$WORK/N1.log" "$WORK/N3.log" ||
  fail "no sender broke its silent connection to N2"
grep -q "N2 reconnected" "$WORK/N1.log" "$WORK/N3.log" || grep -q "reconnected: N2 has" "$WORK/N1.log" "$WORK/N3.log" ||
  fail "no sender reconnected to N2"
grep -h "lost channel" "$WORK"/N?.log && fail "a channel was lost"
c status >"$WORK/status.txt" || { cat "$WORK/status.txt"; fail "status after the cut"; }
grep -q "total: $total" "$WORK/status.txt" || { cat "$WORK/status.txt"; fail "status does not hold $total tokens"; }
c shutdown >/dev/null 2>&1 || true
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()
no_sanitizer_reports "$WORK"/N?.log
echo "ok: N2 cut off for 4 s mid-snapshot: reconnected, snapshot exact, $total tokens"
