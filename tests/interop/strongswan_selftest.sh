#!/bin/bash
# shellcheck disable=SC2317 # check/trap call functions indirectly
# Self-test of tests/interop/strongswan_peer.sh: charon talking to charon.
#
#   tests/interop/strongswan_selftest.sh [--keep]
#
# Makes the namespaces cyg-ss-st<pid>-a/-b (ss_setup), starts one charon
# in each, and for each case:
#   IKE aes128gcm16-prfsha256-x25519      ESP aes128gcm16       IPv4 outer
#   IKE aes256gcm16-prfsha384-ecp384      ESP aes256gcm16       IPv4 outer
#   IKE chacha20poly1305-prfsha256-x25519 ESP chacha20poly1305  IPv4 outer
#   IKE aes128-sha256-modp2048            ESP aes128-sha256     IPv4 outer
#   IKE aes128gcm16-prfsha256-x25519      ESP aes128gcm16       IPv6 outer
#                                         (inner IPv4 and IPv6, FQDN IDs)
# loads the connection on both sides, checks that 10.2.0.1 is unreachable
# from 10.1.0.1 without the tunnel, initiates from a, waits for the IKE SA
# ESTABLISHED and the CHILD SA INSTALLED on both sides, pings 10.1.0.1 ->
# 10.2.0.1 (and 2001:db8:1::1 -> 2001:db8:2::1 in the IPv6 case) through
# the tunnel, checks that the CHILD SA byte and packet counters grew in
# both directions on both sides, terminates and checks that both sides
# list no SA.  Then a wrong PSK: the initiation must fail, the initiator's
# log must say "received AUTHENTICATION_FAILED notify error", the
# responder's log "MAC mismatched" and an IKE_AUTH response with
# N(AUTH_FAILED) (charon 5.9.8 never spells the responder's side out as
# AUTHENTICATION_FAILED), and neither side may list an SA.  Last,
# ss_charon_stop must end both daemons.
#
# Prints "ok - ..." / "not ok - ..." per check and a summary; the whole run
# is bounded by SS_SELFTEST_TIMEOUT (240 s).  --keep keeps the run
# directory (it is kept anyway when a check fails).
#
# Exit status: 0 all passed, 1 a check failed, 77 skipped (not root, or
# charon / swanctl / iproute2 / unshare / ping / /dev/net/tun missing).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
KEEP=0
[ "${1:-}" = --keep ] && KEEP=1

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root"
[ -x "${SS_CHARON:-/usr/lib/ipsec/charon}" ] || skip "charon not installed (apt-get install strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins)"
command -v "${SS_SWANCTL:-swanctl}" >/dev/null || skip "swanctl not installed (strongswan-swanctl)"
[ -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] || skip "kernel-libipsec plugin missing (libcharon-extra-plugins)"
command -v ip >/dev/null || skip "iproute2 not installed"
command -v unshare >/dev/null || skip "unshare (util-linux) missing"
command -v ping >/dev/null || skip "ping (iputils-ping) not installed"
[ -c /dev/net/tun ] || skip "/dev/net/tun missing (kernel-libipsec needs a TUN device)"

# shellcheck source=tests/interop/strongswan_peer.sh
. "$HERE/strongswan_peer.sh"

# The run proper is a child under `timeout`; this outer shell only waits
# and, whatever happens to the child, runs ss_cleanup for its ID as a
# backstop.  The child cleans up itself in its EXIT trap, but bash 5.2.15
# fails to parse a trap that fires while it expands a "$(...)" inside
# double quotes ("trap: line 2: unexpected EOF while looking for matching
# `)'") and simply carries on.  So on INT/TERM this shell passes TERM on
# and, if the child is still there 15 s later, KILLs the process group
# `timeout` made for it (the child, its charons, nothing else).
if [ -z "${_SS_SELFTEST_ID:-}" ]; then
  export _SS_SELFTEST_ID=st$$
  timeout -k 10 "${SS_SELFTEST_TIMEOUT:-240}" bash "$0" "$@" &
  child=$! signalled=""
  trap 'signalled=$SECONDS; kill -TERM "$child" 2>/dev/null' INT TERM
  while kill -0 "$child" 2>/dev/null; do
    if [ -n "$signalled" ] && [ $((SECONDS - signalled)) -ge 15 ]; then
      echo "# the run did not end on TERM: killing its process group $child"
      kill -KILL -- "-$child" 2>/dev/null
    fi
    sleep 0.2
  done
  wait "$child"; rc=$?
  trap - INT TERM
  if [ -f "$(_ss_state "$_SS_SELFTEST_ID")" ]; then
    echo "# cleaning up after the interrupted run $_SS_SELFTEST_ID"
    ss_cleanup "$_SS_SELFTEST_ID"
  fi
  [ -n "$signalled" ] && [ "$rc" = 0 ] && rc=1
  [ "$rc" = 124 ] && echo "not ok - the self-test did not finish within ${SS_SELFTEST_TIMEOUT:-240} s"
  exit "$rc"
fi

ID=$_SS_SELFTEST_ID
RUN=$(mktemp -d "${TMPDIR:-/tmp}/ss-selftest.XXXXXX")
A=$RUN/a B=$RUN/b
WAIT=${SS_SELFTEST_WAIT:-20}    # seconds for an SA to come up or go away
T0=$(date +%s%N)

PASSES=0 FAILS=0 FAILED=()
ok() { echo "ok - $*"; PASSES=$((PASSES + 1)); }
notok() { echo "not ok - $*"; FAILS=$((FAILS + 1)); FAILED+=("$*"); }
check() { local name=$1; shift; if "$@"; then ok "$name"; else notok "$name"; fi; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

cleanup() {
  local rc=$?
  trap - EXIT
  ss_cleanup "$ID"
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then echo "run directory kept: $RUN"
  else rm -rf "$RUN"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 1' INT TERM

summary_and_exit() {
  echo "# summary: $PASSES passed, $FAILS failed, $(ms_since "$T0") ms"
  local f
  for f in "${FAILED[@]}"; do echo "#   failed: $f"; done
  [ "$FAILS" = 0 ] && exit 0
  exit 1
}

fatal() { notok "$*"; summary_and_exit; }

# ---------------------------------------------------------------- set-up
t=$(date +%s%N)
ss_setup "$ID" || fatal "ss_setup $ID"
ok "ss_setup: $SS_NS_A and $SS_NS_B linked, v4 and v6 ping across the veth ($(ms_since "$t") ms)"
t=$(date +%s%N)
ss_charon_start "$SS_NS_A" "$A" || fatal "charon starts in $SS_NS_A"
ss_charon_start "$SS_NS_B" "$B" || fatal "charon starts in $SS_NS_B"
ok "charon runs in both namespaces, vici answers (pids $(ss_charon_pid "$A") $(ss_charon_pid "$B"), $(ms_since "$t") ms)"
grep -q 'created TUN device' "$A/charon.log" && grep -q 'created TUN device' "$B/charon.log"
check "kernel-libipsec made its TUN device on both sides" test $? = 0

PSK=0x4379676e65742d7374726f6e677377616e2d73656c66746573742d707368   # "Cygnet-strongswan-selftest-psk"

# ping_count NS SRC DST [-6]: prints the number of echo replies out of 3
ping_count() {
  # shellcheck disable=SC2086 # $4: no word or one option
  ip netns exec "$1" ping ${4:-} -c 3 -i 0.2 -W 2 -I "$2" "$3" 2>&1 | awk '/received/ { print $4 }'
}

# run_case N FAMILY IKE ESP
run_case() {
  local n=$1 fam=$2 ike=$3 esp=$4 c=c$1 la lb tsa tsb tag i
  tag="case $n ($ike / $esp, IPv$fam outer)"
  if [ "$fam" = 6 ]; then
    la=$SS_A6 lb=$SS_B6
    tsa=$SS_IN_A4/32,$SS_IN_A6/128 tsb=$SS_IN_B4/32,$SS_IN_B6/128
  else
    la=$SS_A4 lb=$SS_B4 tsa=$SS_IN_A4/32 tsb=$SS_IN_B4/32
  fi
  ss_remove_conns "$A"; ss_remove_conns "$B"
  if [ "$fam" = 6 ]; then
    SS_LOCAL_ID=a.cygnet.test SS_REMOTE_ID=b.cygnet.test \
      ss_write_conn "$A" "$c" "$la" "$lb" "$tsa" "$tsb" "$ike" "$esp" "$PSK" &&
    SS_LOCAL_ID=b.cygnet.test SS_REMOTE_ID=a.cygnet.test \
      ss_write_conn "$B" "$c" "$lb" "$la" "$tsb" "$tsa" "$ike" "$esp" "$PSK"
  else
    ss_write_conn "$A" "$c" "$la" "$lb" "$tsa" "$tsb" "$ike" "$esp" "$PSK" &&
      ss_write_conn "$B" "$c" "$lb" "$la" "$tsb" "$tsa" "$ike" "$esp" "$PSK"
  fi || { notok "$tag: ss_write_conn"; return; }
  if ss_load "$A" && ss_load "$B"; then ok "$tag: connection loaded on both sides"
  else notok "$tag: connection loaded on both sides"; return; fi

  i=$(ip netns exec "$SS_NS_A" ping -c 1 -W 0.5 -I "$SS_IN_A4" "$SS_IN_B4" 2>&1 | awk '/received/ { print $4 }')
  check "$tag: no path from $SS_IN_A4 to $SS_IN_B4 without the tunnel" test "${i:-0}" = 0

  local t ms
  t=$(date +%s%N)
  if ! ss_initiate "$A" "$c" net "$WAIT"; then
    notok "$tag: swanctl --initiate from a: $(tail -n 3 "$A/initiate.out" | tr '\n' ' ')"
    return
  fi
  ms=$(ms_since "$t")
  ok "$tag: initiated from a, CHILD SA up in $ms ms"
  if ss_wait_sa "$A" "$c" net "$WAIT" && ss_wait_sa "$B" "$c" net "$WAIT"; then
    ok "$tag: IKE SA ESTABLISHED and CHILD SA INSTALLED on both sides"
  else
    notok "$tag: IKE SA ESTABLISHED and CHILD SA INSTALLED on both sides"
    ss_sas "$A"; ss_sas "$B"
    return
  fi
  ss_sas "$A" > "$RUN/$c-a.sas" 2>&1
  local ao0 ai0 bo0 bi0 ao ai bo bi ap bp
  ao0=$(ss_child_counter "$A" "$c" net bytes-out) ai0=$(ss_child_counter "$A" "$c" net bytes-in)
  bo0=$(ss_child_counter "$B" "$c" net bytes-out) bi0=$(ss_child_counter "$B" "$c" net bytes-in)
  i=$(ping_count "$SS_NS_A" "$SS_IN_A4" "$SS_IN_B4")
  check "$tag: ping $SS_IN_A4 -> $SS_IN_B4 through the tunnel (${i:-0}/3 replies)" test "${i:-0}" = 3
  if [ "$fam" = 6 ]; then
    i=$(ping_count "$SS_NS_A" "$SS_IN_A6" "$SS_IN_B6" -6)
    check "$tag: ping -6 $SS_IN_A6 -> $SS_IN_B6 through the tunnel (${i:-0}/3 replies)" test "${i:-0}" = 3
  fi
  ao=$(ss_child_counter "$A" "$c" net bytes-out) ai=$(ss_child_counter "$A" "$c" net bytes-in)
  bo=$(ss_child_counter "$B" "$c" net bytes-out) bi=$(ss_child_counter "$B" "$c" net bytes-in)
  ap=$(ss_child_counter "$A" "$c" net packets-out) bp=$(ss_child_counter "$B" "$c" net packets-in)
  if [ "$ao" -gt "$ao0" ] && [ "$ai" -gt "$ai0" ] && [ "$bo" -gt "$bo0" ] && [ "$bi" -gt "$bi0" ] &&
     [ "$ap" -ge 3 ] && [ "$bp" -ge 3 ]; then
    ok "$tag: CHILD SA counters grew (a out $ao0->$ao in $ai0->$ai, b in $bi0->$bi out $bo0->$bo bytes)"
  else
    notok "$tag: CHILD SA counters grew (a out $ao0->$ao in $ai0->$ai pkts out $ap, b in $bi0->$bi out $bo0->$bo pkts in $bp)"
  fi
  if ss_terminate "$A" "$c" "$WAIT"; then ok "$tag: terminated from a"
  else notok "$tag: terminate from a: $(tail -n 3 "$A/terminate.out" | tr '\n' ' ')"; fi
  if ss_wait_no_sa "$A" "" "$WAIT" && ss_wait_no_sa "$B" "" "$WAIT"; then ok "$tag: no SA left on either side"
  else notok "$tag: no SA left on either side"; ss_sas "$A"; ss_sas "$B"; fi
}

n=0
while read -r fam ike esp; do
  [ -n "$fam" ] || continue
  n=$((n + 1))
  t=$(date +%s%N)
  run_case "$n" "$fam" "$ike" "$esp"
  echo "# case $n took $(ms_since "$t") ms"
done <<'EOF'
4 aes128gcm16-prfsha256-x25519 aes128gcm16
4 aes256gcm16-prfsha384-ecp384 aes256gcm16
4 chacha20poly1305-prfsha256-x25519 chacha20poly1305
4 aes128-sha256-modp2048 aes128-sha256
6 aes128gcm16-prfsha256-x25519 aes128gcm16
EOF

# ---------------------------------------------------------------- wrong PSK
tag="wrong PSK"
ss_remove_conns "$A"; ss_remove_conns "$B"
ss_write_conn "$A" bad "$SS_A4" "$SS_B4" "$SS_IN_A4/32" "$SS_IN_B4/32" \
  aes128gcm16-prfsha256-x25519 aes128gcm16 "the initiator's idea of the key" &&
  ss_write_conn "$B" bad "$SS_B4" "$SS_A4" "$SS_IN_B4/32" "$SS_IN_A4/32" \
    aes128gcm16-prfsha256-x25519 aes128gcm16 "the responder's idea of the key"
check "$tag: connections written" test $? = 0
load_both() { ss_load "$A" && ss_load "$B"; }
check "$tag: connections loaded" load_both
la=$(ss_log_lines "$A") lb=$(ss_log_lines "$B")
# what a charon logged since the line count $2 was taken
log_since() { tail -n +$(($2 + 1)) "$1/charon.log"; }
initiator_says() { log_since "$A" "$la" | grep -q "received AUTHENTICATION_FAILED notify error"; }
responder_says() {
  log_since "$B" "$lb" | grep -q "MAC mismatched" &&
    log_since "$B" "$lb" | grep -qE "generating IKE_AUTH response [0-9]+ \[ N\(AUTH_FAILED\) \]"
}
no_sa_at_all() {
  ss_wait_no_sa "$A" "" 5 && ss_wait_no_sa "$B" "" 5 &&
    ! ss_sas "$A" raw | grep -q "state=" && ! ss_sas "$B" raw | grep -q "state="
}
if ss_initiate "$A" bad net "$WAIT"; then notok "$tag: initiation fails"
else ok "$tag: initiation fails (swanctl: $(grep -m1 -oE 'received [A-Z_]+ notify error' "$A/initiate.out" || tail -n 1 "$A/initiate.out"))"; fi
sleep 0.3   # let the responder's log line land
check "$tag: initiator's log: received AUTHENTICATION_FAILED notify error" initiator_says
check "$tag: responder's log: MAC mismatched, IKE_AUTH response with N(AUTH_FAILED)" responder_says
check "$tag: no SA listed on either side" no_sa_at_all

# ---------------------------------------------------------------- stop
pa=$(ss_charon_pid "$A") pb=$(ss_charon_pid "$B")
t=$(date +%s%N)
ss_charon_stop "$A"; ss_charon_stop "$B"
if ! ss_charon_pid "$A" >/dev/null && ! ss_charon_pid "$B" >/dev/null &&
   ! kill -0 "$pa" 2>/dev/null && ! kill -0 "$pb" 2>/dev/null; then
  ok "ss_charon_stop ended both charons ($(ms_since "$t") ms)"
else
  notok "ss_charon_stop ended both charons"
fi
summary_and_exit
