#!/usr/bin/env bash
# Two Mycelium nodes in separate network namespaces, joined by a veth pair,
# talk over a TCP link: the link really crosses an interface. Needs root
# (or CAP_NET_ADMIN) and `ip`; when namespaces cannot be created here the
# test says so and exits 77, which CTest reports as skipped.
#
# usage: netns_tcp_test.sh <mycelium-link-peer>
set -euo pipefail

peer_bin=${1:?usage: netns_tcp_test.sh <mycelium-link-peer>}
tag=$$
ns_a=myc-a-$tag
ns_b=myc-b-$tag
veth_a=mya$tag
veth_b=myb$tag
addr_a=10.201.$((tag % 200)).1
addr_b=10.201.$((tag % 200)).2
work=$(mktemp -d)
server_pid=

cleanup() {
  local rc=$?
  set +e
  if [[ -n $server_pid ]]; then
    kill -9 "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  ip netns del "$ns_a" 2>/dev/null
  ip netns del "$ns_b" 2>/dev/null
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT

skip() {
  echo "SKIP: $1"
  exit 77
}

command -v ip >/dev/null || skip "the 'ip' command (iproute2) is not installed"
if ! err=$(ip netns add "$ns_a" 2>&1); then
  skip "cannot create network namespaces here (need root or CAP_NET_ADMIN): $err"
fi
ip netns add "$ns_b"
if ! err=$(ip link add "$veth_a" type veth peer name "$veth_b" 2>&1); then
  skip "cannot create a veth pair here: $err"
fi
ip link set "$veth_a" netns "$ns_a"
ip link set "$veth_b" netns "$ns_b"
ip -n "$ns_a" addr add "$addr_a/24" dev "$veth_a"
ip -n "$ns_b" addr add "$addr_b/24" dev "$veth_b"
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set "$veth_a" up
ip -n "$ns_b" link set "$veth_b" up

# Node A listens on its veth address only: nothing else can reach it.
mkfifo "$work/server.in" "$work/server.out"
exec 4<>"$work/server.in" # keeps node A's stdin open (EOF would stop it)
ip netns exec "$ns_a" "$peer_bin" --kind tcp --listen "$addr_a" --port 0 \
  --name node-a <"$work/server.in" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
exec 3<"$work/server.out"
if ! read -r -t 20 ready <&3; then
  echo "FAIL: node A did not start; its stderr:"; cat "$work/server.err"; exit 1
fi
port=${ready#ready port=}
port=${port%% *}
echo "node A ($ns_a, $addr_a) listens on tcp port $port"
before=$(ip netns exec "$ns_a" cat "/sys/class/net/$veth_a/statistics/rx_bytes")

# Node B, in the other namespace, connects over the veth pair and checks
# that 2000 pings of 1000 bytes come back as matching pongs.
count=2000
if ! out=$(ip netns exec "$ns_b" timeout 120 "$peer_bin" --kind tcp \
             --connect "$addr_a" --port "$port" --name node-b --services none \
             --ping "$count" 2>"$work/client.err"); then
  echo "FAIL: node B could not complete the echo over the veth link; its stderr:"
  cat "$work/client.err"; echo "node A stderr:"; cat "$work/server.err"
  exit 1
fi
echo "$out"
grep -q "echo ok $count" <<<"$out" || { echo "FAIL: unexpected output"; exit 1; }
after=$(ip netns exec "$ns_a" cat "/sys/class/net/$veth_a/statistics/rx_bytes")
crossed=$((after - before))
echo "bytes received on $veth_a during the run: $crossed"
if (( crossed < count * 1000 )); then
  echo "FAIL: only $crossed bytes crossed $veth_a; expected at least $((count * 1000))"
  exit 1
fi
grep -q "established with node 'node-b'" "$work/server.err" \
  || { echo "FAIL: node A did not log the peer"; cat "$work/server.err"; exit 1; }
echo "PASS: $count round trips crossed the veth pair between two namespaces"
