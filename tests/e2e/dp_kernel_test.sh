#!/usr/bin/env bash
# cygnet-dp against a real Linux kernel's ESP (user-mode-linux), end to end:
#
#   dp_kernel_test.sh BUILD_DIR
#
# One topology (tests/e2e/two_site.sh), one kernel boot, then for each of
# AES-GCM-128, AES-CBC-128+HMAC-SHA256 and ChaCha20-Poly1305, each without
# and with UDP encapsulation (RFC 3948): the same manual SAs on both sides
# (cygnetctl on ours, ip xfrm in the kernel), tunnel mode, ping over IPv4
# and over IPv6 (inner) both ways. Once: a TCP and a UDP stream, a bypass
# policy (in clear), a discard policy (dropped and counted). The capture of
# the wire is decrypted by scapy with the same keys, tshark reads the GCM
# and CBC SAs as well, and no cleartext may pass between the protected
# ranges. At the end SIGTERM must stop cygnet-dp cleanly and release its
# shm segment.
set -uo pipefail

BUILD=$(cd "${1:?usage: dp_kernel_test.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
DP=$BUILD/dp/app/cygnet-dp
export TS_CTL_BIN=$BUILD/cp/cygnetctl
PY=/usr/bin/python3  # Debian's, with python3-scapy (not a pyenv one)
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
[ -x /usr/bin/linux.uml ] || { echo "FAIL: user-mode-linux is not installed (scripts/deps.sh installs it)"; exit 1; }

# shellcheck source=two_site.sh
. "$HERE/two_site.sh"
RUN=$(mktemp -d /tmp/cygnet-e2e.XXXXXX)
trap 'ts_down; [ "${KEEP:-0}" = 1 ] || rm -rf "$RUN"' EXIT

FAILS=()
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then echo "  ok   $what"; else echo "  FAIL $what"; FAILS+=("$what"); fi
}
rnd() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

bash "$HERE/../../scripts/hugepages/hugepages.sh" reserve 256 >/dev/null || { echo "FAIL: hugepages"; exit 1; }
ts_up "$RUN" "$DP" || { echo "FAIL: topology did not come up"; exit 1; }

# Policies that stay for the whole run (reqid 1 protects both families).
cat >"$RUN/policies.conf" <<'EOF'
policies = (
  { dir = "out"; priority = 100; action = "protect"; reqid = 1; src = "10.1.0.0/24"; dst = "10.2.0.0/16"; },
  { dir = "in";  priority = 100; action = "protect"; reqid = 1; src = "10.2.0.0/16"; dst = "10.1.0.0/24"; },
  { dir = "out"; priority = 100; action = "protect"; reqid = 1; src = "2001:db8:1::/64"; dst = "2001:db8:2::/48"; },
  { dir = "in";  priority = 100; action = "protect"; reqid = 1; src = "2001:db8:2::/48"; dst = "2001:db8:1::/64"; },
  { dir = "out"; priority = 50;  action = "discard"; src = "10.1.0.0/24"; dst = "10.2.99.0/24"; },
  { dir = "out"; priority = 100; action = "bypass";  src = "10.1.0.0/24"; dst = "192.0.2.0/24"; },
  { dir = "in";  priority = 100; action = "bypass";  src = "192.0.2.0/24"; dst = "10.1.0.0/24"; },
  { dir = "in";  priority = 100; action = "bypass";  src = "192.0.2.2/32"; dst = "192.0.2.1/32"; proto = "icmp"; },
  { dir = "out"; priority = 100; action = "bypass";  src = "192.0.2.1/32"; dst = "192.0.2.2/32"; proto = "icmp"; }
);
EOF
check "policies loaded with cygnetctl" ts_ctl load "$RUN/policies.conf"

ts_guest_daemons
check "guest: ESP-in-UDP socket and echo servers up" [ -e "$RUN/uml/guest-daemons.ready" ]

echo "[]" >"$RUN/sas.json"
add_json() {  # spi src dst enc enc_key integ_key encap
  $PY - "$RUN/sas.json" "$@" <<'EOF'
import json, sys
p, spi, src, dst, enc, ek, ik, encap = sys.argv[1:]
v = json.load(open(p))
v.append({"spi": int(spi, 16), "src": src, "dst": dst, "enc": enc, "enc_key": ek, "integ_key": ik,
          "encap": encap == "1"})
json.dump(v, open(p, "w"))
EOF
}

i=0
for alg in aes-gcm16-128 aes-cbc-128 chacha20-poly1305; do
  for encap in 0 1; do
    i=$((i + 1))
    spi_o=$(printf '0x%08x' $((0x1000 + i)))  # A -> B
    spi_i=$(printf '0x%08x' $((0x2000 + i)))  # B -> A
    ik_o="" ik_i=""
    case $alg in
      aes-gcm16-128) ek_o=$(rnd 20) ek_i=$(rnd 20)
        kx_o="aead 'rfc4106(gcm(aes))' 0x$ek_o 128"; kx_i="aead 'rfc4106(gcm(aes))' 0x$ek_i 128"
        ours_o=(--enc aes-gcm16-128 --enc-key "0x$ek_o"); ours_i=(--enc aes-gcm16-128 --enc-key "0x$ek_i");;
      aes-cbc-128) ek_o=$(rnd 16) ek_i=$(rnd 16) ik_o=$(rnd 32) ik_i=$(rnd 32)
        kx_o="enc 'cbc(aes)' 0x$ek_o auth-trunc 'hmac(sha256)' 0x$ik_o 128"
        kx_i="enc 'cbc(aes)' 0x$ek_i auth-trunc 'hmac(sha256)' 0x$ik_i 128"
        ours_o=(--enc aes-cbc-128 --enc-key "0x$ek_o" --integ hmac-sha256-128 --integ-key "0x$ik_o")
        ours_i=(--enc aes-cbc-128 --enc-key "0x$ek_i" --integ hmac-sha256-128 --integ-key "0x$ik_i");;
      chacha20-poly1305) ek_o=$(rnd 36) ek_i=$(rnd 36)
        kx_o="aead 'rfc7539esp(chacha20,poly1305)' 0x$ek_o 128"; kx_i="aead 'rfc7539esp(chacha20,poly1305)' 0x$ek_i 128"
        ours_o=(--enc chacha20-poly1305 --enc-key "0x$ek_o"); ours_i=(--enc chacha20-poly1305 --enc-key "0x$ek_i");;
    esac
    enc_ours=() enc_k=""
    if [ $encap = 1 ]; then enc_ours=(--encap 4500:4500); enc_k="encap espinudp 4500 4500 0.0.0.0"; fi
    name="$alg$([ $encap = 1 ] && echo ' +udp-encap')"
    echo "== $name (A->B spi $spi_o, B->A spi $spi_i)"
    add_json "$spi_o" 192.0.2.1 192.0.2.2 "$alg" "$ek_o" "$ik_o" "$encap"
    add_json "$spi_i" 192.0.2.2 192.0.2.1 "$alg" "$ek_i" "$ik_i" "$encap"
    # Kernel side, in the order that never leaks cleartext: out SA, out
    # policy, in SA, in policy. One SA pair carries IPv4 and IPv6 inner
    # packets: af-unspec lets an IPv4 tunnel state serve IPv6 policies.
    ts_guest "set -e
      ip xfrm policy flush; ip xfrm state flush
      ip xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi $spi_i reqid 2 mode tunnel flag af-unspec $kx_i $enc_k
      ip xfrm policy add src 10.2.0.0/16 dst 10.1.0.0/24 dir out tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 2 mode tunnel
      ip xfrm policy add src 2001:db8:2::/48 dst 2001:db8:1::/64 dir out tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 2 mode tunnel
      ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi $spi_o reqid 1 mode tunnel flag af-unspec replay-window 64 $kx_o $enc_k
      ip xfrm policy add src 10.1.0.0/24 dst 10.2.0.0/16 dir in tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel
      ip xfrm policy add src 2001:db8:1::/64 dst 2001:db8:2::/48 dir in tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel" \
      >"$RUN/xfrm-$i.log" 2>&1
    check "$name: kernel SAs installed" [ $? = 0 ]
    check "$name: our outbound SA" ts_ctl sa add --spi "$spi_o" --dir out --src 192.0.2.1 --dst 192.0.2.2 \
      --reqid 1 "${ours_o[@]}" "${enc_ours[@]}"
    check "$name: our inbound SA" ts_ctl sa add --spi "$spi_i" --dir in --src 192.0.2.2 --dst 192.0.2.1 \
      --reqid 1 "${ours_i[@]}" "${enc_ours[@]}"
    # The first packet may wait for the kernel's ARP; 5 sent, 4 must return.
    got=$(ts_lan ping -c 5 -i 0.2 -W 2 10.2.0.1 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
    check "$name: IPv4 ping through the tunnel ($got/5)" [ "${got:-0}" -ge 4 ]
    got6=$(ts_lan ping -6 -c 5 -i 0.2 -W 2 2001:db8:2::1 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
    check "$name: IPv6-in-IPv4 ping through the tunnel ($got6/5)" [ "${got6:-0}" -ge 4 ]
    # The kernel's view: its SAs counted the packets both ways.
    ts_guest "ip -s xfrm state" >"$RUN/xfrm-state-$i.txt" 2>&1
    ts_ctl sa list >"$RUN/sa-list-$i.txt" 2>&1
    if [ $i = 1 ]; then
      # A TCP stream (64 KiB each way, echoed and compared) and a UDP stream.
      check "TCP stream: 64 KiB echoed intact through the tunnel" ts_lan timeout 30 $PY -c '
import os, socket, sys
d = os.urandom(65536)
s = socket.create_connection(("10.2.0.1", 5001), timeout=20); s.sendall(d); s.shutdown(socket.SHUT_WR)
r = b""
while True:
    b = s.recv(65536)
    if not b: break
    r += b
sys.exit(0 if r == d else 1)'
      check "UDP stream: 200 datagrams of 1000 B, at least 190 echoed intact" \
        ts_lan timeout 60 $PY "$HERE/udp_echo.py" 10.2.0.1 5002 200 1000 190
      # Bypass: the peer gateway's own address is reached in clear.
      got=$(ts_lan ping -c 3 -i 0.2 -W 2 192.0.2.2 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
      check "bypass policy: ping 192.0.2.2 in clear ($got/3)" [ "${got:-0}" -ge 2 ]
      # The exception port: the gateway's own kernel answers pings that an
      # inbound bypass policy lets in, and IKE (UDP 500) always.
      got=$(ts_guest "ping -c 3 -i 0.3 -W 2 192.0.2.1" | sed -n 's/.* \([0-9]*\) received.*/\1/p')
      check "exception port: the kernel peer pings the gateway's host kernel ($got/3)" [ "${got:-0}" -ge 2 ]
      ts_host $PY -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("192.0.2.1", 500)); s.settimeout(30)
d, a = s.recvfrom(2048); s.sendto(d[::-1], a)' &
      ike_pid=$!
      sleep 0.5
      check "exception port: IKE on UDP 500 reaches the host kernel and its answer comes back" ts_guest "python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((\"192.0.2.2\", 500)); s.settimeout(5)
s.sendto(b\"ike-sa-init?\", (\"192.0.2.1\", 500))
d, a = s.recvfrom(2048); sys.exit(0 if d == b\"?tini-as-eki\" else 1)'"
      wait $ike_pid 2>/dev/null
      # UDP to the gateway matches no inbound bypass policy: never reaches
      # the host kernel (which listens), counted as no_policy.
      ts_host $PY -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("192.0.2.1", 9999)); s.settimeout(4)
try:
    s.recvfrom(2048); open(sys.argv[1], "w").write("reached")
except socket.timeout:
    pass' "$RUN/udp9999" &
      udp_pid=$!
      sleep 0.5
      ts_guest "python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(3): s.sendto(b\"x\", (\"192.0.2.1\", 9999))'" >/dev/null
      wait $udp_pid 2>/dev/null
      check "exception port: cleartext UDP to the gateway without a bypass policy never reaches its kernel" \
        [ ! -e "$RUN/udp9999" ]
      # Discard: nothing to 10.2.99.0/24 leaves, and the drop is counted.
      ts_lan ping -c 3 -i 0.2 -W 1 10.2.99.1 >/dev/null 2>&1
      check "discard policy: the 3 pings are dropped and counted on the lan port" bash -c \
        "'$TS_CTL_BIN' --instance '$TS_INSTANCE' ports | grep -Eq 'discard_policy=[3-9]'"
    fi
    check "$name: our SAs deleted" ts_ctl sa delete --spi "$spi_o" --dir out --dst 192.0.2.2
    ts_ctl sa delete --spi "$spi_i" --dir in --dst 192.0.2.1 >/dev/null
  done
done
ts_ctl ports >"$RUN/ports.txt" 2>&1
cat "$RUN/ports.txt"

check "SIGTERM stops cygnet-dp with status 0 and releases its shm segment" ts_stop_dp
uml_stop
ts_capture_stop

echo "== the wire, read by scapy with the same keys"
$PY "$HERE/wire_check.py" "$RUN/sas.json" "$RUN/wire.pcap" >"$RUN/wire.json"
cat "$RUN/wire.json"
check "no cleartext between the protected ranges on the wire" $PY -c "
import json, sys; sys.exit(json.load(open('$RUN/wire.json'))['cleartext_between_protected_ranges'] != 0)"
check "every ESP packet decrypts (ICV ok), both directions, v4 and v6 inner, encapsulated where asked" $PY -c "
import json, sys
w = json.load(open('$RUN/wire.json'))['sas']
sas = json.load(open('$RUN/sas.json'))
bad = []
for s in sas:
    e = w[hex(s['spi'])]
    inner = e['inner']
    req = 'request' if s['src'] == '192.0.2.1' else 'reply'
    if e['bad'] or e['decrypted'] < 8 or inner.get('icmp_echo_' + req, 0) < 4 or inner.get('icmpv6_echo_' + req, 0) < 4:
        bad.append((hex(s['spi']), e))
    if s['encap'] != (e['udp_encap'] == e['seen']):
        bad.append((hex(s['spi']), 'encapsulation', e))
print(bad if bad else 'all SAs ok'); sys.exit(1 if bad else 0)"
# tshark as a second reader (it has no ChaCha20-Poly1305).
uat=()
while read -r spi src dst enc ek ik; do
  case $enc in
    aes-gcm16-128) uat+=(-o "uat:esp_sa:\"IPv4\",\"$src\",\"$dst\",\"$spi\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x$ek\",\"NULL\",\"\"");;
    aes-cbc-128) uat+=(-o "uat:esp_sa:\"IPv4\",\"$src\",\"$dst\",\"$spi\",\"AES-CBC [RFC3602]\",\"0x$ek\",\"HMAC-SHA-256-128 [RFC4868]\",\"0x$ik\"");;
  esac
done < <($PY -c "
import json
for s in json.load(open('$RUN/sas.json')):
    print('0x%08x' % s['spi'], s['src'], s['dst'], s['enc'], s['enc_key'], s['integ_key'] or '-')")
ndec=$(tshark -n -r "$RUN/wire.pcap" -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE \
  "${uat[@]}" -Y 'esp && (icmp || icmpv6)' 2>/dev/null | wc -l)
check "tshark decrypts the GCM and CBC SAs' pings ($ndec packets)" [ "$ndec" -ge 32 ]

if [ ${#FAILS[@]} -ne 0 ]; then
  echo "FAILED: ${FAILS[*]}"
  KEEP=1
  echo "run directory kept: $RUN"; tail -20 "$RUN/dp.log"
  exit 1
fi
echo "PASS"
