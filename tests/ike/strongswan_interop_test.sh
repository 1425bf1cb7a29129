#!/usr/bin/env bash
# cygnet-ike against strongSwan's charon (Debian 5.9.8, kernel-libipsec),
# in two namespaces made by tests/interop/strongswan_peer.sh:
#   - for each IKE/ESP proposal pair both support: cygnet-ike as initiator
#     and as responder; the IKE SA is ESTABLISHED and the CHILD SA INSTALLED
#     on charon, established on cygnet-ike, with the same SPIs on both sides
#     and the same negotiated proposal;
#   - IPv6 outer addresses, one proposal, both roles;
#   - traffic selector narrowing by charon as responder;
#   - a wrong PSK: both sides log AUTHENTICATION_FAILED, no SA anywhere;
#   - a Delete from either side removes the SA on the other;
#   - rekeying (CREATE_CHILD_SA): charon with short rekey times rekeys the
#     CHILD SA (with PFS, which cygnet-ike follows) and the IKE SA, with
#     cygnet-ike as responder and as initiator of the IKE SA; cygnet-ike
#     with short lifetimes rekeys both (with PFS) against charon. Each
#     time the new SPIs are on both sides and the old ones gone;
#   - a second CHILD SA that charon asks for on the IKE SA.
# ESN is not here: kernel-libipsec refuses it ("ESN not supported"), so
# charon drops such a CHILD SA; ESN is covered by the in-process tests.
# cygnet-ike runs with --backend log (the Child SA is printed, not
# installed): ESP through cygnet-dp against charon is not part of this test.
#
#   tests/ike/strongswan_interop_test.sh BUILD_DIR
# Exits 77 (skipped) without root or without charon.
set -uo pipefail
build=${1:?usage: strongswan_interop_test.sh BUILD_DIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
ike=$build/cp/ike/daemon/cygnet-ike
ctl=$build/cp/cygnetctl
[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }
[ -x /usr/lib/ipsec/charon ] && command -v swanctl >/dev/null || { echo "skip: strongSwan not installed"; exit 77; }
# shellcheck source=../interop/strongswan_peer.sh
. "$repo/tests/interop/strongswan_peer.sh"

ID=ike$$
dir=$(mktemp -d /tmp/cygnet-ss-interop.XXXXXX)
SB=$dir/charon
ike_pid=""
fails=0
checks=0
ok() { echo "ok - $*"; checks=$((checks + 1)); }
bad() { echo "not ok - $*"; fails=$((fails + 1)); checks=$((checks + 1)); }
cleanup() {
  stop_cygnet
  ss_cleanup "$ID"
  if [ "$fails" -ne 0 ]; then
    echo "--- cygnet-ike log"; cat "$dir"/ike*.err 2>/dev/null | tail -80
    echo "--- charon log"; tail -80 "$SB/charon.log" 2>/dev/null
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

PSK=0x6379676e65742d696e7465726f702d746573742d6b65792d3332627974657321
export SS_LOCAL_ID=charon.cygnet.test SS_REMOTE_ID=cygnet.cygnet.test

ss_setup "$ID" || exit 1
ss_charon_start "$SS_NS_B" "$SB" || exit 1

n=0
# start_cygnet LOCAL REMOTE LOCAL_TS REMOTE_TS IKE ESP [PSK]: cygnet-ike in
# namespace a with one connection "peer".
start_cygnet() {
  n=$((n + 1))
  local psk=${7:-$PSK}
  printf 'psks = ( { name = "ss"; secret = "%s"; } );\n' "$psk" > "$dir/secrets$n.conf"
  chmod 600 "$dir/secrets$n.conf"
  cat > "$dir/ike$n.conf" <<CONF
ike = { secrets = "secrets$n.conf"; dataplane_instance = "ss$ID"; };
connections = ( {
  name = "peer"; local_addr = "$1"; remote_addrs = "$2";
  local_id = "fqdn:$SS_REMOTE_ID"; remote_id = "fqdn:$SS_LOCAL_ID"; psk = "ss";
  local_ts = ( "$3" ); remote_ts = ( "$4" );
  ike = ( "$5" ); esp = ( "$6" );${CYG_EXTRA:+
  $CYG_EXTRA}
} );
CONF
  ip netns exec "$SS_NS_A" "$ike" -c "$dir/ike$n.conf" --backend log --control "$dir/ike.sock" \
    >"$dir/ike$n.out" 2>"$dir/ike$n.err" &
  ike_pid=$!
  for _ in $(seq 50); do [ -S "$dir/ike.sock" ] && return 0; sleep 0.1; done
  return 1
}
stop_cygnet() {
  [ -n "$ike_pid" ] || return 0
  kill -TERM "$ike_pid" 2>/dev/null
  wait "$ike_pid" 2>/dev/null
  ike_pid=""
  rm -f "$dir/ike.sock"
}
c() { "$ctl" "$@" --control "$dir/ike.sock"; }
# Our established IKE SA with one Child SA, as JSON checks; prints "IN OUT PROPOSAL".
our_child() {
  c --json ike list 2>/dev/null | /usr/bin/python3 -c '
import json, sys
sa = [s for s in json.load(sys.stdin) if s["state"] == "established" and s["children"]]
if len(sa) != 1: sys.exit(1)
ch = sa[0]["children"][0]
print(ch["spi_in"][2:], ch["spi_out"][2:], sa[0]["proposal"], ch["proposal"], "encap" if ch["encap"] else "plain")
'
}
wait_ours() {
  for _ in $(seq 100); do our_child >/dev/null && return 0; sleep 0.1; done
  return 1
}
# charon's SPIs of CHILD SA "net": "IN OUT".
their_spis() {
  ss_swanctl "$SB" --list-sas --raw 2>/dev/null | grep -o 'spi-in=[0-9a-f]* spi-out=[0-9a-f]*' | head -1 |
    sed 's/spi-in=//; s/spi-out=//'
}

# check LABEL IKE_PROP ESP_PROP: compares both sides after a negotiation.
check_pair() {
  local label=$1
  if ! ss_wait_sa "$SB" c1 net 20; then bad "$label: charon has an ESTABLISHED IKE SA and INSTALLED CHILD SA"; return; fi
  if ! wait_ours; then bad "$label: cygnet-ike has the IKE SA and the Child SA"; return; fi
  read -r in out _ _ enc <<<"$(our_child)"
  read -r tin tout <<<"$(their_spis)"
  if [ -n "$in" ] && [ "$in" = "$tout" ] && [ "$out" = "$tin" ]; then
    ok "$label: established on both, SPIs agree (ours in $in out $out), $enc"
  else
    bad "$label: SPIs: ours in=$in out=$out, charon in=$tin out=$tout"
  fi
}

v4_pairs=(
  "aes128gcm16-prfsha256-x25519 aes128gcm16"
  "aes256gcm16-prfsha384-ecp384 aes256gcm16"
  "aes128gcm16-prfsha256-ecp256 aes128gcm16"
  "chacha20poly1305-prfsha256-x25519 chacha20poly1305"
  "aes128-sha256-prfsha256-modp2048 aes128-sha256"
  "aes256-sha384-prfsha384-ecp384 aes256-sha384"
  "aes256-sha512-prfsha512-ecp521 aes256-sha512"
)
for pair in "${v4_pairs[@]}"; do
  read -r prop esp <<<"$pair"
  ss_esp=$esp
  for role in initiator responder; do
    ss_write_conn "$SB" c1 "$SS_B4" "$SS_A4" "$SS_IN_B4/32" "$SS_IN_A4/32" "$prop" "$ss_esp" "$PSK" >/dev/null &&
      ss_load "$SB" >/dev/null || { bad "load charon config for $prop"; continue; }
    start_cygnet "$SS_A4" "$SS_B4" "$SS_IN_A4/32" "$SS_IN_B4/32" "$prop" "$esp" || { bad "start cygnet-ike"; continue; }
    if [ "$role" = initiator ]; then
      c ike initiate peer >/dev/null
    else
      ss_initiate "$SB" c1 net 20 >/dev/null
    fi
    check_pair "IPv4 $prop / $esp, cygnet-ike $role"
    # Who deletes: cygnet-ike when it initiated, charon otherwise.
    if [ "$role" = initiator ]; then
      c ike terminate peer >/dev/null
      if ss_wait_no_sa "$SB" c1 10; then ok "  Delete from cygnet-ike: charon removed the IKE SA"
      else bad "  Delete from cygnet-ike: charon removed the IKE SA"; fi
    else
      ss_terminate "$SB" c1 10 >/dev/null
      gone=0
      for _ in $(seq 50); do [ -z "$(c ike list)" ] && gone=1 && break; sleep 0.1; done
      if [ "$gone" = 1 ] && grep -q 'child-sa remove' "$dir/ike$n.out"; then ok "  Delete from charon: cygnet-ike removed everything"
      else bad "  Delete from charon: cygnet-ike removed everything"; fi
    fi
    stop_cygnet
    ss_wait_no_sa "$SB" "" 10 >/dev/null
  done
done

# IPv6 outer addresses (and inner), both roles.
for role in initiator responder; do
  ss_write_conn "$SB" c1 "$SS_B6" "$SS_A6" "$SS_IN_B6/128" "$SS_IN_A6/128" aes128gcm16-prfsha256-x25519 aes128gcm16 "$PSK" >/dev/null &&
    ss_load "$SB" >/dev/null
  start_cygnet "$SS_A6" "$SS_B6" "$SS_IN_A6/128" "$SS_IN_B6/128" aes128gcm16-prfsha256-x25519 aes128gcm16
  if [ "$role" = initiator ]; then c ike initiate peer >/dev/null; else ss_initiate "$SB" c1 net 20 >/dev/null; fi
  check_pair "IPv6 outer, cygnet-ike $role"
  stop_cygnet
  ss_wait_no_sa "$SB" "" 10 >/dev/null
done

# Narrowing: we ask for 10.2.0.0/16, charon allows only its 10.2.0.1/32.
ss_write_conn "$SB" c1 "$SS_B4" "$SS_A4" "$SS_IN_B4/32" "10.1.0.0/16" aes128gcm16-prfsha256-x25519 aes128gcm16 "$PSK" >/dev/null &&
  ss_load "$SB" >/dev/null
start_cygnet "$SS_A4" "$SS_B4" "10.1.0.0/16" "10.2.0.0/16" aes128gcm16-prfsha256-x25519 aes128gcm16
c ike initiate peer >/dev/null
if wait_ours && c --json ike list | grep -q '"remote_ts":\["10.2.0.1/32"\]'; then
  ok "narrowing: charon narrowed our 10.2.0.0/16 to 10.2.0.1/32 and we accepted it"
else bad "narrowing: $(c --json ike list)"; fi
stop_cygnet
ss_wait_no_sa "$SB" "" 10 >/dev/null

# A wrong PSK, both roles: AUTHENTICATION_FAILED on both sides, no SA.
for role in initiator responder; do
  ss_write_conn "$SB" c1 "$SS_B4" "$SS_A4" "$SS_IN_B4/32" "$SS_IN_A4/32" aes128gcm16-prfsha256-x25519 aes128gcm16 "$PSK" >/dev/null &&
    ss_load "$SB" >/dev/null
  start_cygnet "$SS_A4" "$SS_B4" "$SS_IN_A4/32" "$SS_IN_B4/32" aes128gcm16-prfsha256-x25519 aes128gcm16 \
    "not the secret charon has, but long enough"
  from=$(ss_log_lines "$SB")
  if [ "$role" = initiator ]; then c ike initiate peer >/dev/null; else ss_initiate "$SB" c1 net 10 >/dev/null; fi
  for _ in $(seq 100); do grep -q AUTHENTICATION_FAILED "$dir/ike$n.err" && break; sleep 0.1; done
  sleep 0.5
  if grep -q AUTHENTICATION_FAILED "$dir/ike$n.err" && tail -n +"$((from + 1))" "$SB/charon.log" | grep -Eq "AUTHENTICATION_FAILED|N\(AUTH_FAILED\)"; then
    ok "wrong PSK, cygnet-ike $role: AUTHENTICATION_FAILED on both sides"
  else bad "wrong PSK, cygnet-ike $role: AUTHENTICATION_FAILED on both sides"; fi
  if [ -z "$(c ike list)" ] && ! grep -q 'child-sa install' "$dir/ike$n.out" && ss_wait_no_sa "$SB" "" 5; then
    ok "wrong PSK, cygnet-ike $role: no SA on either side"
  else bad "wrong PSK, cygnet-ike $role: no SA on either side"; fi
  stop_cygnet
done

# ---------------------------------------------------------------- rekeying
# "ISPI RSPI IN OUT" of charon's one IKE SA with its one INSTALLED CHILD
# SA, only if that is all it has. A rekeyed CHILD SA stays listed as
# DELETED for charon's delete_rekeyed_delay (5 s; only its inbound SA,
# for late packets): that one is gone as far as the peers are concerned.
their_view() {
  ss_swanctl "$SB" --list-sas --raw 2>/dev/null | /usr/bin/python3 -c '
import re, sys
t = sys.stdin.read()
ike = re.findall(r"initiator-spi=([0-9a-f]+) responder-spi=([0-9a-f]+)", t)
ch = re.findall(r"state=(\w+) [^{}]*?spi-in=([0-9a-f]+) spi-out=([0-9a-f]+)", t)
live = [c for c in ch if c[0] != "DELETED"]
if len(ike) != 1 or len(live) != 1 or live[0][0] != "INSTALLED": sys.exit(1)
print(ike[0][0], ike[0][1], live[0][1], live[0][2])
'
}
# The same of ours: "ISPI RSPI IN OUT" (our IN is charon's OUT).
our_view() {
  c --json ike list 2>/dev/null | /usr/bin/python3 -c '
import json, sys
v = json.load(sys.stdin)
if len(v) != 1 or v[0]["state"] != "established" or len(v[0]["children"]) != 1: sys.exit(1)
s, ch = v[0], v[0]["children"][0]
print(s["spi_i"], s["spi_r"], ch["spi_out"][2:], ch["spi_in"][2:])
'
}
# check_rekeyed LABEL: waits (20 s) until both sides show one IKE SA and
# one CHILD SA, the same SPIs on both, and none of the SPIs they had at
# the start (in $start_view).
check_rekeyed() {
  local label=$1 theirs ours si sr ci co
  read -r si sr ci co <<<"$start_view"
  for _ in $(seq 200); do
    theirs=$(their_view)
    ours=$(our_view)
    [ -n "$theirs" ] && [ "$theirs" = "$ours" ] && {
      read -r ni nr nci nco <<<"$theirs"
      [ "$ni" != "$si" ] && [ "$nr" != "$sr" ] && [ "$nci" != "$ci" ] && [ "$nco" != "$co" ] && break
    }
    sleep 0.1
  done
  read -r ni nr nci nco <<<"${theirs:-- - - -}"
  if [ -n "$theirs" ] && [ "$theirs" = "$ours" ] && [ "$ni" != "$si" ] && [ "$nci" != "$ci" ] && [ "$nco" != "$co" ]; then
    ok "$label: IKE SA ${si:0:8}.. -> ${ni:0:8}.., CHILD SA in/out $ci/$co -> $nci/$nco on both sides, old ones gone (or DELETED on charon)"
  else
    bad "$label: at the start '$start_view', charon now '$theirs', cygnet-ike now '$ours'"
  fi
}
# live_check LABEL: an empty INFORMATIONAL (liveness check) from cygnet-ike
# on the IKE SA it has now reaches charon, so the rekeyed IKE SA's keys
# agree (retried while a rekey of ours has the window).
live_check() {
  local from
  for _ in $(seq 30); do
    from=$(ss_log_lines "$SB")
    if c ike liveness peer >/dev/null 2>&1; then
      for _ in $(seq 20); do
        if tail -n +"$((from + 1))" "$SB/charon.log" | grep -q 'parsed INFORMATIONAL request [0-9]* \[ \]'; then
          ok "$1"
          return
        fi
        sleep 0.1
      done
    fi
    sleep 0.1
  done
  bad "$1"
}
# start_rekey_case ROLE CHARON_EXTRAS...: charon's connection, cygnet-ike
# (lifetimes from CYG_EXTRA), the IKE SA set up by ROLE; start_view set.
start_rekey_case() {
  local role=$1
  shift
  ss_write_conn "$SB" c1 "$SS_B4" "$SS_A4" "$SS_IN_B4/32" "$SS_IN_A4/32" aes128gcm16-prfsha256-x25519 \
    "$SS_REKEY_ESP" "$PSK" "$@" >/dev/null && ss_load "$SB" >/dev/null || { bad "load charon config for rekeying"; return 1; }
  start_cygnet "$SS_A4" "$SS_B4" "$SS_IN_A4/32" "$SS_IN_B4/32" aes128gcm16-prfsha256-x25519 "$CYG_REKEY_ESP" ||
    { bad "start cygnet-ike"; return 1; }
  if [ "$role" = initiator ]; then c ike initiate peer >/dev/null; else ss_initiate "$SB" c1 net 20 >/dev/null; fi
  start_view=""
  for _ in $(seq 100); do start_view=$(our_view) && [ "$start_view" = "$(their_view)" ] && return 0; sleep 0.1; done
  bad "rekeying, cygnet-ike $role: no IKE and CHILD SA to start from"
  return 1
}
end_rekey_case() {
  stop_cygnet
  ss_wait_no_sa "$SB" "" 10 >/dev/null
  CYG_EXTRA=""
}

# charon rekeys (CHILD SA after 3-4 s with PFS, IKE SA after 6-7 s; the
# hard times are given: charon's default over_time, 10 % in whole
# seconds, would be 0 and make them hard expiries);
# cygnet-ike has no PFS group configured and follows charon's KE.
for role in responder initiator; do
  SS_REKEY_ESP=aes128gcm16-x25519 CYG_REKEY_ESP=aes128gcm16
  if start_rekey_case "$role" child.rekey_time=4s child.life_time=30s child.rand_time=1s \
    ike.rekey_time=7s ike.over_time=20s ike.rand_time=1s; then
    from=$(ss_log_lines "$SB")
    check_rekeyed "charon rekeys, cygnet-ike $role of the IKE SA"
    live_check "  a liveness check on the new IKE SA gets through to charon"
    if grep -q 'IKE SA rekeyed by the peer' "$dir/ike$n.err" && c ike list | grep -q 'rekey in'; then
      ok "  cygnet-ike logged the peer's IKE SA rekey; ike list shows the rekey times"
    else bad "  cygnet-ike logged the peer's IKE SA rekey; ike list shows the rekey times"; fi
    if tail -n +"$((from + 1))" "$SB/charon.log" | grep -Eq 'N\((NO_PROP|INVAL_KE|TS_UNACCEPT|TEMP_FAIL|NO_CHILD_SA|CHLD_SA_NOT_FOUND)'; then
      bad "  charon saw an error notify during the rekeys"
    fi
  fi
  end_rekey_case
done

# cygnet-ike rekeys (CHILD SA lifetime 5 s: after 4-4.5 s, with PFS; IKE
# SA lifetime 8 s: after 6.4-7.2 s); charon keeps its long defaults.
SS_REKEY_ESP=aes128gcm16-x25519 CYG_REKEY_ESP=aes128gcm16-x25519
CYG_EXTRA="child_lifetime = 5; ike_lifetime = 8;"
if start_rekey_case initiator; then
  check_rekeyed "cygnet-ike rekeys (lifetimes 5 s / 8 s, PFS)"
  live_check "  a liveness check on the new IKE SA gets through to charon"
  if grep -q 'rekeying Child SA .*(PFS Curve25519' "$dir/ike$n.err" && grep -q 'IKE SA rekeyed, new SPIs' "$dir/ike$n.err"; then
    ok "  cygnet-ike initiated both rekeys, the CHILD SA's with PFS"
  else bad "  cygnet-ike initiated both rekeys, the CHILD SA's with PFS"; fi
fi
end_rekey_case

# A second CHILD SA on the IKE SA (CREATE_CHILD_SA without REKEY_SA):
# charon's connection gets a second child, net2, for 10.2.0.2 === 10.1.0.2,
# within cygnet-ike's 10.2.0.0/16 === 10.1.0.0/16 (kernel-libipsec routes
# from a local inner address: the second pair goes on lo too).
ip -n "$SS_NS_B" addr add 10.2.0.2/32 dev lo 2>/dev/null
ip -n "$SS_NS_A" addr add 10.1.0.2/32 dev lo 2>/dev/null
ss_write_conn "$SB" c1 "$SS_B4" "$SS_A4" "$SS_IN_B4/32" "$SS_IN_A4/32" aes128gcm16-prfsha256-x25519 aes128gcm16 "$PSK" >/dev/null &&
  /usr/bin/python3 - "$SB/swanctl/conf.d/c1.conf" <<'PY' && ss_load "$SB" >/dev/null || bad "load charon config with two children"
import re, sys
p = sys.argv[1]
t = open(p).read()
m = re.search(r"\t\t\tnet \{.*?\n\t\t\t\}\n", t, re.S)
second = m.group(0).replace("net {", "net2 {", 1).replace("10.2.0.1/32", "10.2.0.2/32").replace("10.1.0.1/32", "10.1.0.2/32")
open(p, "w").write(t[:m.end()] + second + t[m.end():])
PY
start_cygnet "$SS_A4" "$SS_B4" "10.1.0.0/16" "10.2.0.0/16" aes128gcm16-prfsha256-x25519 aes128gcm16
c ike initiate peer >/dev/null
if ss_wait_sa "$SB" c1 net 20 && ss_initiate "$SB" c1 net2 20; then
  pairs=""
  for _ in $(seq 50); do
    theirs=$(ss_swanctl "$SB" --list-sas --raw 2>/dev/null | grep -o 'state=INSTALLED [^{}]*spi-in=[0-9a-f]* spi-out=[0-9a-f]*' |
      sed 's/.*spi-in=\([0-9a-f]*\) spi-out=\([0-9a-f]*\)/\2 \1/' | sort | tr '\n' ' ')
    ours=$(c --json ike list 2>/dev/null | /usr/bin/python3 -c '
import json, sys
v = json.load(sys.stdin)
print(" ".join(sorted(c["spi_in"][2:] + " " + c["spi_out"][2:] for s in v for c in s["children"])) + " ")')
    [ "$(wc -w <<<"$theirs")" = 4 ] && [ "$theirs" = "$ours" ] && pairs=$ours && break
    sleep 0.1
  done
  if [ -n "$pairs" ]; then ok "a second CHILD SA from charon on the IKE SA: both installed on both sides ($pairs)"
  else bad "a second CHILD SA: charon '$theirs', cygnet-ike '$ours'"; fi
else
  bad "a second CHILD SA: charon did not get both up"
fi
stop_cygnet
ss_wait_no_sa "$SB" "" 10 >/dev/null

echo "$checks checks, $fails failed"
[ "$fails" -eq 0 ]
