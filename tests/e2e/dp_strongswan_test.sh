#!/usr/bin/env bash
# The whole product against strongSwan: cygnet-ike negotiates with charon
# (Debian 5.9.8, kernel-libipsec) through cygnet-dp's exception port and
# pushes the Child SA into cygnet-dp over the shm rings; then traffic between
# the inner networks flows through cygnet-dp's ESP on one side and charon's
# userspace ESP on the other, both directions. Then the roles swap (charon
# initiates), and a Delete from either side takes the SAs out of cygnet-dp.
#
#   dp_strongswan_test.sh BUILD_DIR
set -uo pipefail

BUILD=$(cd "${1:?usage: dp_strongswan_test.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
export TS_CTL_BIN=$BUILD/cp/cygnetctl TS_PEER=charon
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
[ -x /usr/lib/ipsec/charon ] || { echo "FAIL: strongSwan is not installed (scripts/deps.sh installs it)"; exit 1; }
# shellcheck source=two_site.sh
. "$HERE/two_site.sh"
RUN=$(mktemp -d /tmp/cygnet-e2e-ss.XXXXXX)
IKE_PID=""
stop_ike() {
  [ -n "$IKE_PID" ] || return 0
  kill -TERM "$IKE_PID" 2>/dev/null
  wait "$IKE_PID" 2>/dev/null
  IKE_PID=""
}
cleanup() {
  stop_ike
  if [ ${#FAILS[@]} -ne 0 ]; then
    echo "--- cygnet-ike"; tail -40 "$RUN"/ike*.err 2>/dev/null
    echo "--- cygnet-dp"; tail -20 "$RUN/dp.log" 2>/dev/null
    echo "--- charon"; grep -E "IKE\]|CFG\]|ESP\]|KNL\]" "$RUN/charon/charon.log" 2>/dev/null | tail -40
  fi
  ts_down
  [ "${KEEP:-0}" = 1 ] || rm -rf "$RUN"
}
trap cleanup EXIT
FAILS=()
check() {
  local what=$1; shift
  if "$@"; then echo "  ok   $what"; else echo "  FAIL $what"; FAILS+=("$what"); fi
}
PSK=0x6379676e65742d64702d73747261656e677468206f6620746865207475626521

bash "$HERE/../../scripts/hugepages/hugepages.sh" reserve 256 >/dev/null || { echo "FAIL: hugepages"; exit 1; }
ts_up "$RUN" "$BUILD/dp/app/cygnet-dp" || { echo "FAIL: topology did not come up"; exit 1; }
export SS_LOCAL_ID=charon.cygnet.test SS_REMOTE_ID=gw.cygnet.test
ss_write_conn "$RUN/charon" c1 192.0.2.2 192.0.2.1 10.2.0.1/32 10.1.0.0/24 \
  aes128gcm16-prfsha256-x25519 aes128gcm16 "$PSK" >/dev/null && ss_load "$RUN/charon" >/dev/null
check "charon loaded the connection" [ $? = 0 ]

n=0
# start_ike START [SETTINGS]: cygnet-ike in the gateway's host namespace
# (behind the exception port), Child SAs into this cygnet-dp; SETTINGS are
# added to its connection.
start_ike() {
  n=$((n + 1))
  printf 'psks = ( { name = "c"; secret = "%s"; } );\n' "$PSK" > "$RUN/secrets.conf"
  chmod 600 "$RUN/secrets.conf"
  cat > "$RUN/ike$n.conf" <<CONF
ike = { secrets = "secrets.conf"; dataplane_instance = "$TS_INSTANCE"; };
connections = ( {
  name = "charon"; local_addr = "192.0.2.1"; remote_addrs = "192.0.2.2";
  local_id = "fqdn:gw.cygnet.test"; remote_id = "fqdn:charon.cygnet.test"; psk = "c";
  local_ts = ( "10.1.0.0/24" ); remote_ts = ( "10.2.0.1/32" );
  ike = ( "aes128gcm16-prfsha256-x25519" ); esp = ( "aes128gcm16" );
  start = "$1"; ${2:-}
} );
CONF
  ip netns exec "$TS_NS_HOST" "$BUILD/cp/ike/daemon/cygnet-ike" -c "$RUN/ike$n.conf" --control "$RUN/ike.sock" \
    --state "$RUN/ike.state" >"$RUN/ike$n.out" 2>"$RUN/ike$n.err" &
  IKE_PID=$!
  for _ in $(seq 50); do [ -S "$RUN/ike.sock" ] && return 0; sleep 0.1; done
  return 1
}
dp_sas() { ts_ctl --json sa list 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null; }
dp_spis() { ts_ctl --json sa list 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(" ".join(sorted(str(s["spi"]) for s in json.load(sys.stdin))))' 2>/dev/null; }
dp_policies() {  # ACTION: how many outbound policies of that action cygnet-dp has
  ts_ctl --json policy list 2>/dev/null | /usr/bin/python3 -c '
import json, sys
print(sum(1 for p in json.load(sys.stdin) if p.get("action") == sys.argv[1]))' "$1" 2>/dev/null
}
# traffic LABEL: pings both ways through the tunnel, counters on both sides.
traffic() {
  local label=$1 got
  got=$(ts_lan ping -c 10 -i 0.1 -W 2 10.2.0.1 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
  check "$label: ping 10.1.0.2 -> 10.2.0.1 through cygnet-dp and charon ($got/10)" [ "${got:-0}" -ge 9 ]
  got=$(ip netns exec "$TS_NS_WAN" ping -c 10 -i 0.1 -W 2 -I 10.2.0.1 10.1.0.2 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
  check "$label: ping 10.2.0.1 -> 10.1.0.2, charon's side first ($got/10)" [ "${got:-0}" -ge 9 ]
  local bin
  bin=$(ss_child_counter "$RUN/charon" c1 net packets-in)
  check "$label: charon decrypted what cygnet-dp sent ($bin packets in)" [ "${bin:-0}" -ge 18 ]
  check "$label: cygnet-dp counts packets on both SAs" bash -c "'$TS_CTL_BIN' --instance '$TS_INSTANCE' --json sa list |
    /usr/bin/python3 -c 'import json,sys; sas=json.load(sys.stdin); assert len(sas)==2 and all(s[\"packets\"] >= 18 for s in sas), sas'"
}

# 1. cygnet-ike initiates on start.
start_ike start || FAILS+=("cygnet-ike starts")
check "charon: IKE SA ESTABLISHED, CHILD SA INSTALLED" ss_wait_sa "$RUN/charon" c1 net 30
for _ in $(seq 50); do [ "$(dp_sas)" = 2 ] && break; sleep 0.1; done
check "cygnet-dp has the two negotiated SAs" [ "$(dp_sas)" = 2 ]
traffic "cygnet-ike initiator"
"$TS_CTL_BIN" ike terminate charon --control "$RUN/ike.sock" >/dev/null
check "Delete from cygnet-ike: charon removed its SA" ss_wait_no_sa "$RUN/charon" c1 10
for _ in $(seq 50); do [ "$(dp_sas)" = 0 ] && break; sleep 0.1; done
check "Delete from cygnet-ike: cygnet-dp has no SA left" [ "$(dp_sas)" = 0 ]
stop_ike
rm -f "$RUN/ike.sock"

# 2. charon initiates; cygnet-ike answers.
start_ike none || FAILS+=("cygnet-ike restarts")
ss_initiate "$RUN/charon" c1 net 30 >/dev/null
check "charon initiated: IKE SA ESTABLISHED, CHILD SA INSTALLED" ss_wait_sa "$RUN/charon" c1 net 30
for _ in $(seq 50); do [ "$(dp_sas)" = 2 ] && break; sleep 0.1; done
check "cygnet-dp has the two negotiated SAs" [ "$(dp_sas)" = 2 ]
traffic "cygnet-ike responder"
ss_terminate "$RUN/charon" c1 10 >/dev/null
for _ in $(seq 50); do [ "$(dp_sas)" = 0 ] && break; sleep 0.1; done
check "Delete from charon: cygnet-dp has no SA left" [ "$(dp_sas)" = 0 ]
stop_ike
rm -f "$RUN/ike.sock"

# 3. start = trap: cygnet-dp's ACQUIRE for the first packet starts it.
start_ike trap || FAILS+=("cygnet-ike with a trap")
for _ in $(seq 50); do [ "$(dp_policies trap)" = 1 ] && break; sleep 0.1; done
check "trap: cygnet-dp has the trap policy and no SA" [ "$(dp_policies trap)" = 1 ] && [ "$(dp_sas)" = 0 ]
ts_lan ping -c 3 -i 0.3 -W 1 10.2.0.1 >/dev/null  # the first packets raise the ACQUIRE
check "trap: the ACQUIRE made cygnet-ike initiate" ss_wait_sa "$RUN/charon" c1 net 30
for _ in $(seq 50); do [ "$(dp_sas)" = 2 ] && break; sleep 0.1; done
check "trap: the Child SA's policy took the trap's place" [ "$(dp_policies trap)" = 0 ] && [ "$(dp_sas)" = 2 ]
grep -q 'ACQUIRE (reqid' "$RUN/ike$n.err"
check "trap: cygnet-ike logged the ACQUIRE" [ $? = 0 ]
traffic "trap"
list=$("$TS_CTL_BIN" ike list --control "$RUN/ike.sock")
echo "$list" | grep -Eq 'in: [1-9][0-9]+ packets, [0-9]+ bytes; out: [1-9][0-9]+ packets'
check "ike list: the Child SA's counters from cygnet-dp" [ $? = 0 ]

# charon rekeys the Child SA (same selectors, same reqid in cygnet-ike): the
# new SAs go into cygnet-dp, their policies replace the old ones in the
# same batch, then the old SAs leave on charon's Delete.
old_spis=$(dp_spis)
ss_swanctl "$RUN/charon" --rekey --child net >/dev/null 2>&1
for _ in $(seq 100); do
  now_spis=$(dp_spis)
  [ "$(echo "$now_spis" | wc -w)" = 2 ] && [ -z "$(comm -12 <(tr ' ' '\n' <<<"$old_spis" | sort) <(tr ' ' '\n' <<<"$now_spis" | sort))" ] && break
  sleep 0.1
done
check "rekey by charon: cygnet-dp has two new SAs and not the old ones ($old_spis -> $now_spis)" \
  [ "$(echo "$now_spis" | wc -w)" = 2 ] && [ "$now_spis" != "$old_spis" ]
traffic "after the rekey"

# 4. cygnet-ike dies (SIGKILL): its SAs stay in cygnet-dp with keys no IKE
# SA knows. The next cygnet-ike removes them before it starts anew.
kill -KILL "$IKE_PID"; wait "$IKE_PID" 2>/dev/null; IKE_PID=""
rm -f "$RUN/ike.sock"
check "crash: the orphaned SAs are still in cygnet-dp" [ "$(dp_sas)" = 2 ]
start_ike trap "child_lifetime_packets = 60;" || FAILS+=("cygnet-ike after a crash")
for _ in $(seq 50); do [ "$(dp_policies trap)" = 1 ] && break; sleep 0.1; done
grep -q 'removed 4 SAs and policies an earlier cygnet-ike left' "$RUN/ike$n.err"
check "restart: the leftovers were removed (2 SAs, 2 policies)" [ $? = 0 ]
check "restart: cygnet-dp has the trap again and no SA" [ "$(dp_policies trap)" = 1 ] && [ "$(dp_sas)" = 0 ]
ts_lan ping -c 3 -i 0.3 -W 1 10.2.0.1 >/dev/null
for _ in $(seq 100); do [ "$(dp_sas)" = 2 ] && break; sleep 0.1; done
check "restart: traffic negotiates a new Child SA" [ "$(dp_sas)" = 2 ]
got=$(ts_lan ping -c 10 -i 0.1 -W 2 10.2.0.1 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
check "restart: ping through the new SAs ($got/10)" [ "${got:-0}" -ge 9 ]
# This cygnet-ike gave its Child SAs a limit of 60 packets: cygnet-dp's soft
# expiry (48-54 packets) makes it rekey before the hard one.
old_spis=$(dp_spis)
got=$(ts_lan ping -c 60 -i 0.05 -W 2 10.2.0.1 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
for _ in $(seq 50); do [ "$(dp_spis | wc -w)" = 2 ] && [ "$(dp_spis)" != "$old_spis" ] && break; sleep 0.1; done
now_spis=$(dp_spis)
check "packet lifetime: cygnet-dp's soft expiry made cygnet-ike rekey ($old_spis -> $now_spis)" \
  [ "$(echo "$now_spis" | wc -w)" = 2 ] && [ -z "$(comm -12 <(tr ' ' '\n' <<<"$old_spis" | sort) <(tr ' ' '\n' <<<"$now_spis" | sort))" ]
check "packet lifetime: the ping went on through the rekey ($got/60)" [ "${got:-0}" -ge 57 ]
grep -q 'cygnet-dp: soft byte/packet limit of SA .*rekeying the Child SA' "$RUN/ike$n.err"
check "packet lifetime: cygnet-ike logged cygnet-dp's soft expiry" [ $? = 0 ]
ikes=$(_ss_sa_lines "$RUN/charon" | grep -c '^ike c1 ESTABLISHED')
check "restart: INITIAL_CONTACT made charon drop the old IKE SA ($ikes left)" [ "$ikes" = 1 ]
stop_ike
for _ in $(seq 50); do [ "$(dp_sas)" = 0 ] && break; sleep 0.1; done
check "SIGTERM: cygnet-ike removed its SAs and its trap" [ "$(dp_sas)" = 0 ] && [ "$(dp_policies trap)" = 0 ]

if [ ${#FAILS[@]} -eq 0 ]; then echo "PASS: cygnet-dp + cygnet-ike against strongSwan"; exit 0; fi
echo "FAIL: ${FAILS[*]}"
exit 1
