#!/usr/bin/env bash
# Two cygnet-ike daemons in two network namespaces over real UDP sockets
# (--backend log: nothing is installed, each Child SA is printed), driven by
# cygnetctl: IKE SA and Child SA up with NAT-T forced, matching SPIs, list
# and stats, terminate (Delete reaches the peer), a wrong PSK (both sides
# AUTHENTICATION_FAILED, no Child SA), SIGTERM exits 0.
#
#   tests/ike/ike_daemon_test.sh BUILD_DIR
# Needs root (namespaces); exits 77 (skipped) otherwise.
set -uo pipefail
build=${1:?usage: ike_daemon_test.sh BUILD_DIR}
ike=$build/cp/ike/daemon/cygnet-ike
ctl=$build/cp/cygnetctl
[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }
[ -x "$ike" ] && [ -x "$ctl" ] || { echo "no $ike or $ctl"; exit 1; }

id=$$
na=cyg-ike-$id-a nb=cyg-ike-$id-b
dir=$(mktemp -d /tmp/cygnet-ike-test.XXXXXX)
pids=()
fails=0
ok() { echo "ok - $*"; }
bad() { echo "not ok - $*"; fails=$((fails + 1)); }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  ip netns del "$na" 2>/dev/null
  ip netns del "$nb" 2>/dev/null
  if [ "$fails" -ne 0 ]; then
    for f in "$dir"/*.err "$dir"/*.out; do echo "--- $f"; cat "$f"; done
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

ip netns add "$na" && ip netns add "$nb" || exit 1
ip link add "cia$id" type veth peer name "cib$id"
ip link set "cia$id" netns "$na"
ip link set "cib$id" netns "$nb"
ip -n "$na" addr add 192.0.2.1/24 dev "cia$id"
ip -n "$nb" addr add 192.0.2.2/24 dev "cib$id"
for n in "$na" "$nb"; do ip -n "$n" link set lo up; done
ip -n "$na" link set "cia$id" up
ip -n "$nb" link set "cib$id" up

# conf SIDE PSK [MORE]: a config for side a (initiator) or b; MORE is
# appended to the connection list.
conf() {
  local side=$1 psk=$2 l r ln rn li ri
  if [ "$side" = a ]; then l=192.0.2.1 r=192.0.2.2 ln=10.1.0.0/16 rn=10.2.0.0/16 li=a.example ri=b.example
  else l=192.0.2.2 r=192.0.2.1 ln=10.2.0.0/16 rn=10.1.0.0/16 li=b.example ri=a.example; fi
  printf 'psks = ( { name = "ab"; secret = "%s"; } );\n' "$psk" > "$dir/$side-secrets.conf"
  chmod 600 "$dir/$side-secrets.conf"
  cat > "$dir/$side.conf" <<CONF
ike = { secrets = "$side-secrets.conf"; dataplane_instance = "ike$id$side"; nat_keepalive = 1; };
connections = ( {
  name = "peer"; local_addr = "$l"; remote_addrs = "$r";
  local_id = "fqdn:$li"; remote_id = "fqdn:$ri"; psk = "ab";
  ike = ( "aes256gcm16-prfsha384-ecp384", "aes128gcm16-prfsha256-x25519" );
  esp = ( "aes128-sha256", "aes128gcm16" );
  local_ts = ( "$ln" ); remote_ts = ( "$rn" ); force_encap = true;
}${3:-} );
CONF
}

# start SIDE: runs cygnet-ike for the side, waits for its control socket.
start() {
  local side=$1 ns=$na
  [ "$side" = b ] && ns=$nb
  ip netns exec "$ns" "$ike" -c "$dir/$side.conf" --backend log --control "$dir/$side.sock" \
    >"$dir/$side.out" 2>"$dir/$side.err" &
  pids+=($!)
  eval "pid_$side=$!"
  for _ in $(seq 50); do [ -S "$dir/$side.sock" ] && return 0; sleep 0.1; done
  return 1
}
c() { local side=$1; shift; "$ctl" "$@" --control "$dir/$side.sock"; }
# wait_for SIDE REGEX: until `ike list` matches (10 s).
wait_for() {
  for _ in $(seq 100); do c "$1" ike list 2>/dev/null | grep -Eq "$2" && return 0; sleep 0.1; done
  return 1
}

conf a "a shared secret of some length"
conf b "a shared secret of some length"
start b && start a || { bad "daemons start"; exit 1; }
ok "daemons start"
if c a ike initiate peer >/dev/null; then ok "cygnetctl ike initiate"; else bad "cygnetctl ike initiate"; fi
if wait_for a "peer: established" && wait_for b "peer: established"; then ok "IKE SA established on both"
else bad "IKE SA established on both"; fi
json=$("$ctl" --json ike list --control "$dir/a.sock")
if echo "$json" | /usr/bin/python3 -c '
import json, sys
sa = json.load(sys.stdin)
assert len(sa) == 1 and sa[0]["state"] == "established", sa
assert sa[0]["proposal"] == "aes256gcm16-prfsha384-ecp384", sa[0]["proposal"]
assert sa[0]["local"] == "192.0.2.1:4500" and sa[0]["remote"] == "192.0.2.2:4500", sa[0]
ch = sa[0]["children"]
assert len(ch) == 1 and ch[0]["encap"] and ch[0]["proposal"] == "aes128-sha256", ch
assert ch[0]["local_ts"] == ["10.1.0.0/16"] and ch[0]["remote_ts"] == ["10.2.0.0/16"], ch
'; then ok "ike list --json: proposal, NAT-T on 4500, Child SA"; else bad "ike list --json: $json"; fi
ia=$(grep -o 'child-sa install .*' "$dir/a.out" | grep -o ' in=0x[0-9a-f]*' | cut -d= -f2)
oa=$(grep -o 'child-sa install .*' "$dir/a.out" | grep -o ' out=0x[0-9a-f]*' | cut -d= -f2)
ib=$(grep -o 'child-sa install .*' "$dir/b.out" | grep -o ' in=0x[0-9a-f]*' | cut -d= -f2)
ob=$(grep -o 'child-sa install .*' "$dir/b.out" | grep -o ' out=0x[0-9a-f]*' | cut -d= -f2)
if [ -n "$ia" ] && [ "$ia" = "$ob" ] && [ "$oa" = "$ib" ]; then ok "SPIs match ($ia/$oa)"
else bad "SPIs match: a in=$ia out=$oa, b in=$ib out=$ob"; fi
if grep -q 'encap=yes' "$dir/a.out" && grep -q 'encap=yes' "$dir/b.out"; then ok "UDP encapsulation on both"
else bad "UDP encapsulation on both"; fi
if grep -q 'key_' "$dir/a.out" "$dir/b.out"; then bad "keys printed without --log-keys"; else ok "no keys printed"; fi
st=$(c b ike stats)
if echo "$st" | grep -q '^ike_established 1$' && echo "$st" | grep -q '^child_installed 1$'; then ok "ike stats"
else bad "ike stats: $st"; fi
sleep 1.2  # nat_keepalive = 1: with forced encapsulation each side plays the one behind a NAT
ka=$(c a ike stats | sed -n 's/^keepalives_sent //p'); drb=$(c b ike stats | sed -n 's/^dropped //p')
if [ "${ka:-0}" -ge 1 ] && [ "$drb" = 0 ] && wait_for b "peer: established"; then
  ok "NAT keepalives sent ($ka), taken by the peer without a drop"
else bad "NAT keepalives: sent ${ka:-none}, peer dropped ${drb:-?}"; fi
if c a ike liveness peer >/dev/null; then ok "liveness check sent"; else bad "liveness check"; fi
# By hand: a Child SA rekey, an IKE SA rekey, one more Child SA.
spi_ike=$(c a ike list --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["spi_i"])')
c a ike rekey peer >/dev/null
for _ in $(seq 50); do [ "$(grep -c 'child-sa install' "$dir/b.out")" -ge 2 ] && [ "$(grep -c 'child-sa remove' "$dir/b.out")" -ge 1 ] && break; sleep 0.1; done
if [ "$(grep -c 'child-sa install' "$dir/a.out")" = 2 ] && [ "$(grep -c 'child-sa remove' "$dir/a.out")" = 1 ] &&
   [ "$(grep -c 'child-sa install' "$dir/b.out")" = 2 ] && [ "$(grep -c 'child-sa remove' "$dir/b.out")" = 1 ]; then
  ok "ike rekey: a new Child SA on both sides, the old one removed"
else bad "ike rekey"; fi
c a ike rekey peer --ike >/dev/null
for _ in $(seq 50); do
  now_ike=$(c a ike list --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; v=json.load(sys.stdin); print(v[0]["spi_i"] if len(v)==1 else "")')
  [ -n "$now_ike" ] && [ "$now_ike" != "$spi_ike" ] && break; sleep 0.1
done
if [ -n "$now_ike" ] && [ "$now_ike" != "$spi_ike" ] && wait_for b "peer: established"; then
  ok "ike rekey --ike: a new IKE SA ($spi_ike -> $now_ike)"
else bad "ike rekey --ike ($spi_ike -> ${now_ike:-none})"; fi
c a ike child peer >/dev/null
for _ in $(seq 50); do [ "$(grep -c 'child-sa install' "$dir/b.out")" -ge 3 ] && break; sleep 0.1; done
nch=$(c a ike list --json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0]["children"]))')
if [ "$(grep -c 'child-sa install' "$dir/b.out")" = 3 ] && [ "$nch" = 2 ]; then ok "ike child: a second Child SA"
else bad "ike child: $nch Child SAs"; fi
if c a ike rekey nope 2>/dev/null; then bad "rekey of an unknown connection refused"; else ok "rekey of an unknown connection refused"; fi
c a ike terminate peer >/dev/null
# Three Child SAs were installed on B, one removed by the rekey: two to go.
for _ in $(seq 50); do [ "$(grep -c 'child-sa remove' "$dir/b.out")" = 3 ] && break; sleep 0.1; done
if [ "$(grep -c 'child-sa remove' "$dir/b.out")" = 3 ] && [ -z "$(c b ike list)" ]; then ok "terminate: the peer removed its side"
else bad "terminate: the peer removed its side"; fi
if c a ike initiate nope 2>/dev/null; then bad "unknown connection refused"; else ok "unknown connection refused"; fi
kill -TERM "$pid_a" "$pid_b"
wait "$pid_a"; ra=$?
wait "$pid_b"; rb=$?
pids=()
if [ "$ra" = 0 ] && [ "$rb" = 0 ]; then ok "SIGTERM exits 0"; else bad "SIGTERM exits 0 ($ra, $rb)"; fi

# A wrong PSK: both sides fail with AUTHENTICATION_FAILED, nothing installed.
conf a "the initiator's own secret!"
conf b "the responder's own secret!"
rm -f "$dir"/*.sock
start b && start a || { bad "daemons restart"; exit 1; }
c a ike initiate peer >/dev/null
for _ in $(seq 50); do grep -q AUTHENTICATION_FAILED "$dir/a.err" && break; sleep 0.1; done
if grep -q AUTHENTICATION_FAILED "$dir/a.err" && grep -q AUTHENTICATION_FAILED "$dir/b.err"; then
  ok "wrong PSK: AUTHENTICATION_FAILED on both sides"
else bad "wrong PSK: AUTHENTICATION_FAILED on both sides"; fi
if grep -q 'child-sa install' "$dir/a.out" "$dir/b.out"; then bad "wrong PSK: nothing installed"
else ok "wrong PSK: nothing installed"; fi
if [ -z "$(c a ike list)" ] && [ -z "$(c b ike list)" ]; then ok "wrong PSK: no IKE SA left"
else bad "wrong PSK: no IKE SA left"; fi

# cygnetctl ike load: the same PSK on both sides now, read again without
# a restart; then a new connection with start = trap; then a broken file.
conf a "a shared secret of some length"
conf b "a shared secret of some length"
la=$(c a ike load); lb=$(c b ike load)
if echo "$la" | grep -q 'loaded: 1 connections: 0 added, 0 changed, 0 removed, 1 unchanged' &&
   echo "$lb" | grep -q '1 unchanged'; then ok "ike load: the new secrets are read"
else bad "ike load: $la / $lb"; fi
c a ike initiate peer >/dev/null
if wait_for a "peer: established" && wait_for b "peer: established"; then ok "ike load: the new PSK authenticates"
else bad "ike load: the new PSK authenticates"; fi
conf a "a shared secret of some length" ', {
  name = "ondemand"; local_addr = "192.0.2.1"; remote_addrs = "192.0.2.2"; psk = "ab";
  ike = ( "aes128gcm16-prfsha256-x25519" ); esp = ( "aes128gcm16" );
  local_ts = ( "10.1.0.0/16" ); remote_ts = ( "10.3.0.0/16" ); start = "trap";
}'
la=$(c a ike load)
for _ in $(seq 20); do grep -q 'trap install conn=ondemand' "$dir/a.out" && break; sleep 0.1; done
if echo "$la" | grep -q '2 connections: 1 added, 0 changed, 0 removed, 1 unchanged' &&
   grep -q 'trap install conn=ondemand reqid=[0-9]* policies=1 \[10.1.0.0/16 -> 10.3.0.0/16' "$dir/a.out" &&
   c a ike list | grep -q '^ondemand: trap, reqid' && wait_for a "peer: established"; then
  ok "ike load: a trap connection added, the unchanged one kept its IKE SA"
else bad "ike load with a trap: $la"; grep trap "$dir/a.out"; fi
cp "$dir/a.conf" "$dir/a.conf.good"
echo 'connections = ( { name = "x"; local_addr = "not an address"; } );' > "$dir/a.conf"
la=$(c a ike load 2>&1); rc=$?
if [ "$rc" != 0 ] && echo "$la" | grep -q 'a.conf:1' && echo "$la" | grep -q 'running configuration is unchanged' &&
   wait_for a "peer: established"; then ok "ike load: a broken file is refused, the SAs stay"
else bad "ike load of a broken file: rc=$rc $la"; fi
cp "$dir/a.conf.good" "$dir/a.conf"
conf a "a shared secret of some length"
la=$(c a ike load)
for _ in $(seq 20); do grep -q 'trap remove conn=ondemand' "$dir/a.out" && break; sleep 0.1; done
if echo "$la" | grep -q '1 connections: 0 added, 0 changed, 1 removed, 1 unchanged' &&
   grep -q 'trap remove conn=ondemand' "$dir/a.out"; then ok "ike load: the trap connection removed"
else bad "ike load removing the trap: $la"; fi
kill -TERM "$pid_a" "$pid_b"
wait "$pid_a" "$pid_b"
pids=()

# A secrets file others can read is refused with a clear error.
chmod 644 "$dir/a-secrets.conf"
out=$("$ike" -c "$dir/a.conf" --check 2>&1); rc=$?
if [ "$rc" = 2 ] && echo "$out" | grep -q 'chmod 600'; then ok "secrets file mode 0644 refused"
else bad "secrets file mode 0644 refused: $rc $out"; fi

[ "$fails" -eq 0 ] && echo "all ok" || echo "$fails failed"
[ "$fails" -eq 0 ]
