# shellcheck shell=bash
#
# two_site.sh - the two-site topology of the end-to-end tests and the demo.
#
#   site A: cygnet-dp in namespace $TS_NS_DP, ports on veths (net_af_packet):
#           lan  cyg-lan 02:00:00:00:01:01  10.1.0.1/24 2001:db8:1::1/64
#           wan  cyg-wan 02:00:00:00:02:01  192.0.2.1/24
#           behind it, host 10.1.0.2 / 2001:db8:1::2 (02:00:00:00:01:02) in $TS_NS_LAN
#   site B: a real Linux kernel (user-mode-linux, tests/e2e/uml_peer.sh) at
#           192.0.2.2 (02:00:00:00:02:02) on bridge br0 in $TS_NS_WAN, with
#           the protected addresses 10.2.0.1 and 2001:db8:2::1 on its lo.
#   The exception port (a tap) of the test config leads to $TS_NS_HOST, the
#   gateway's own kernel, holding 192.0.2.1 and 10.1.0.1.
#   The wire between the gateways is br0: captures are taken there.
#   TS_PEER=charon: site B is strongSwan's charon instead (kernel-libipsec,
#           tests/interop/strongswan_peer.sh), running in $TS_NS_WAN on br0
#           itself (192.0.2.2, 02:00:00:00:02:02; 10.2.0.1 on lo), files in
#           RUN_DIR/charon; ts_guest is then not available.
#
#   source tests/e2e/two_site.sh
#   ts_up RUN_DIR CYGNET_DP [CONFIG]   CONFIG: a cygnet-dp config file, or
#                                      "default" for the embedded one
#   ts_guest 'commands'                run commands in the kernel peer
#   ts_guest_daemons [noencap]         echo/sink servers in the kernel peer
#   ts_guest_charon_start              strongSwan's charon inside the kernel
#                                      peer (kernel-netlink: the guest's XFRM
#                                      does the ESP); files in RUN_DIR/uml/charon
#   ts_guest_swanctl ARGS...           swanctl against that charon
#   ts_guest_xfrm                      the kernel peer's SAs with counters, no keys
#   ts_lan CMD...                      run a command in the protected host's namespace
#   ts_ctl ARGS...                     cygnetctl against this cygnet-dp
#   ts_down                            stop everything (safe in an EXIT trap)
#
# Only the namespaces, links and processes made here are touched; processes
# are ended by the PIDs recorded when they were started.

TS_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=uml_peer.sh
. "$TS_HERE/uml_peer.sh"
# shellcheck source=../interop/strongswan_peer.sh
. "$TS_HERE/../interop/strongswan_peer.sh"

TS_ID=${TS_ID:-$$}
TS_NS_DP=cyg-dp-$TS_ID
TS_NS_LAN=cyg-lan-$TS_ID
TS_NS_WAN=cyg-wan-$TS_ID
TS_NS_HOST=cyg-host-$TS_ID
TS_DP_PID=""
TS_CAP_PID=""
TS_RUN=""
TS_INSTANCE=""
TS_CTL=${TS_CTL_BIN:-}

ts_log() { echo "[two-site +$SECONDS s] $*"; }

# The config the tests use: the demo's ports plus IPv6, an exception port
# (a tap into $TS_NS_DP's kernel, which holds the gateway's addresses) and an
# shm instance of its own. Printed on stdout.
# TS_WORKERS=2 gives two workers (queue pairs on every port; the lcores
# are mapped onto the machine's CPUs with --lcores).
ts_config() {
  local inst=$1 w=${TS_WORKERS:-1} q="" workers="1"
  if [ "$w" = 2 ]; then q=",qpairs=2"; workers="1, 2"; fi
  cat <<EOF
dataplane = {
  ports = (
    { name = "lan"; side = "protected"; device = "net_af_packet0,iface=cyg-lan$q";
      addresses = [ "10.1.0.1/24", "2001:db8:1::1/64" ]; },
    { name = "wan"; side = "unprotected"; device = "net_af_packet1,iface=cyg-wan$q";
      addresses = [ "192.0.2.1/24" ]; }
  );
  routes = ( { dst = "10.2.0.0/16"; via = "192.0.2.2"; port = "wan"; } );
  neighbours = (
    { ip = "192.0.2.2"; mac = "02:00:00:00:02:02"; port = "wan"; },
    { ip = "10.1.0.2"; mac = "02:00:00:00:01:02"; port = "lan"; },
    { ip = "2001:db8:1::2"; mac = "02:00:00:00:01:02"; port = "lan"; }
  );
  cores = { main = 0; workers = [ $workers ]; };
  memory = { mbufs = 32767; mbuf_cache = 128; flow_cache_entries = 4096; max_sas = 4096; max_policies = 4096; };
  shm = "$inst";
  # Traffic for the gateway itself reaches this namespace's kernel here.
  exception = "net_tap0,iface=cyg-host";
};
EOF
}

ts_up() {
  local run=$1 dp=$2 conf=${3:-}
  TS_RUN=$run
  mkdir -p "$run"
  ip netns add "$TS_NS_DP" && ip netns add "$TS_NS_LAN" && ip netns add "$TS_NS_WAN" &&
    ip netns add "$TS_NS_HOST" || return 1
  local ns
  for ns in "$TS_NS_DP" "$TS_NS_LAN" "$TS_NS_WAN" "$TS_NS_HOST"; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 \
      net.ipv6.conf.default.router_solicitations=0 net.ipv6.conf.all.router_solicitations=0 >/dev/null
  done
  # The dataplane's veths carry no host IP stack traffic.
  ip netns exec "$TS_NS_DP" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 >/dev/null
  ip link add cyg-lan netns "$TS_NS_DP" address 02:00:00:00:01:01 type veth \
    peer name eth0 netns "$TS_NS_LAN" address 02:00:00:00:01:02 || return 1
  ip link add cyg-wan netns "$TS_NS_DP" address 02:00:00:00:02:01 type veth \
    peer name wan0 netns "$TS_NS_WAN" || return 1
  ip -n "$TS_NS_DP" link set cyg-lan up
  ip -n "$TS_NS_DP" link set cyg-wan up
  ip -n "$TS_NS_WAN" link add br0 type bridge stp_state 0 forward_delay 0
  ip -n "$TS_NS_WAN" link set wan0 master br0 up
  ip -n "$TS_NS_WAN" link set br0 up
  ip netns exec "$TS_NS_WAN" sysctl -qw net.ipv6.conf.br0.disable_ipv6=1 net.ipv6.conf.wan0.disable_ipv6=1 >/dev/null
  ip -n "$TS_NS_LAN" link set eth0 up
  # A veth hands TCP/UDP to af_packet with the checksum left to an offload
  # that never happens (CHECKSUM_PARTIAL): the host computes it itself.
  ip netns exec "$TS_NS_LAN" ethtool -K eth0 tx off >/dev/null
  ip -n "$TS_NS_LAN" addr add 10.1.0.2/24 dev eth0
  ip -n "$TS_NS_LAN" addr add 2001:db8:1::2/64 dev eth0 nodad
  ip -n "$TS_NS_LAN" route add 10.2.0.0/16 via 10.1.0.1
  ip -n "$TS_NS_LAN" route add 192.0.2.0/24 via 10.1.0.1
  ip -n "$TS_NS_LAN" -6 route add 2001:db8:2::/48 via 2001:db8:1::1
  # cygnet-dp answers ARP, not IPv6 neighbour discovery: a static entry.
  ip -n "$TS_NS_LAN" -6 neigh add 2001:db8:1::1 lladdr 02:00:00:00:01:01 dev eth0 nud permanent

  ip netns exec "$TS_NS_WAN" tcpdump -i br0 -n -U -s 2048 --immediate-mode -w "$run/wire.pcap" \
    >"$run/tcpdump.log" 2>&1 &
  TS_CAP_PID=$!

  local args=()
  if [ -z "$conf" ]; then
    TS_INSTANCE=e2e$TS_ID
    ts_config "$TS_INSTANCE" >"$run/dp.conf"
    chmod 600 "$run/dp.conf"
    args=(-c "$run/dp.conf")
  elif [ "$conf" = default ]; then
    TS_INSTANCE=default
  else
    TS_INSTANCE=$(sed -n 's/^ *shm *= *"\([^"]*\)".*/\1/p' "$conf" | head -1)
    TS_INSTANCE=${TS_INSTANCE:-default}
    args=(-c "$conf")
  fi
  if [ "${TS_WORKERS:-1}" = 2 ]; then
    # Three lcores on the CPUs there are: main on 0, workers on the last one
    # (or 0 on a one-CPU machine).
    local last=$(($(nproc) - 1))
    args+=(-- --lcores "0@0,1@$last,2@$last")
  fi
  ip netns exec "$TS_NS_DP" "$dp" "${args[@]}" >"$run/dp.log" 2>&1 &
  TS_DP_PID=$!
  local _
  for _ in $(seq 1 150); do  # up to 30 s
    grep -q 'ready:' "$run/dp.log" 2>/dev/null && break
    kill -0 "$TS_DP_PID" 2>/dev/null || { ts_log "cygnet-dp exited:"; cat "$run/dp.log"; return 1; }
    sleep 0.2
  done
  grep -q 'ready:' "$run/dp.log" || { ts_log "cygnet-dp did not become ready"; cat "$run/dp.log"; return 1; }
  ts_log "cygnet-dp ready (pid $TS_DP_PID, shm instance $TS_INSTANCE)"
  # The exception tap goes to a namespace of its own, the gateway's "host"
  # kernel: net_af_packet only reads a copy of what the veths receive, and
  # a kernel holding the gateway's addresses next to them would take the
  # originals too and answer past the dataplane. (The tap keeps working:
  # cygnet-dp holds its file descriptor.)
  if ip -n "$TS_NS_DP" link show cyg-host >/dev/null 2>&1; then
    ip -n "$TS_NS_DP" link set cyg-host netns "$TS_NS_HOST" || return 1
    ip -n "$TS_NS_HOST" link set cyg-host up
    ip -n "$TS_NS_HOST" addr add 192.0.2.1/24 dev cyg-host
    ip -n "$TS_NS_HOST" addr add 10.1.0.1/24 dev cyg-host
  fi

  if [ "${TS_PEER:-uml}" = charon ]; then
    ip -n "$TS_NS_WAN" link set br0 address 02:00:00:00:02:02
    ip -n "$TS_NS_WAN" addr add 192.0.2.2/24 dev br0
    ip -n "$TS_NS_WAN" addr add 10.2.0.1/32 dev lo
    # As on the LAN side: no checksums left to an offload the veth never does.
    ip netns exec "$TS_NS_WAN" ethtool -K br0 tx off >/dev/null
    ip netns exec "$TS_NS_WAN" ethtool -K wan0 tx off >/dev/null
    ss_charon_start "$TS_NS_WAN" "$run/charon" || return 1
    ts_log "charon up"
    return 0
  fi
  uml_start "$run/uml" "$TS_NS_WAN" br0 192.0.2.2/24 02:00:00:00:02:02 2001:db8:ff::2/64 || return 1
  ts_guest "ip addr add 10.2.0.1/32 dev lo && ip -6 addr add 2001:db8:2::1/128 dev lo &&
    ip route add 10.1.0.0/24 via 192.0.2.1 && ip -6 route add 2001:db8:1::/64 dev \$UML_GUEST_IF" || return 1
  ts_log "kernel peer up"
}

ts_guest() { uml_sh "$1" "${2:-60}"; }

# In the kernel peer: a UDP socket marked UDP_ENCAP_ESPINUDP on port 4500
# (the kernel decapsulates ESP-in-UDP only on such a socket, which an IKE
# daemon would open; "noencap" leaves it out, for when one runs there), a
# TCP echo server on 10.2.0.1:5001 (echoes all it got once the client shuts
# down its side), a TCP sink on :5003 (answers the byte count) and a UDP
# echo server on :5002. Returns once they listen (processes start slowly
# under UML). Only RUN/uml is shared with the guest.
ts_guest_daemons() {
  local encap=1
  [ "${1:-}" = noencap ] && encap=0
  cat >"$TS_RUN/uml/guest-daemons.py" <<'EOF'
import os, socket, sys, threading
run = sys.argv[1]
if sys.argv[2] == "1":
    e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    e.bind(("0.0.0.0", 4500))
    e.setsockopt(socket.IPPROTO_UDP, 100, 2)  # UDP_ENCAP = 100, UDP_ENCAP_ESPINUDP = 2
def listener(port):
    t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("10.2.0.1", port)); t.listen(64); return t
echo, sink = listener(5001), listener(5003)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("10.2.0.1", 5002))
def echo_one(c):
    data = b""
    while True:
        b = c.recv(65536)
        if not b: break
        data += b
    c.sendall(data); c.close()
def tcp_echo():  # a thread per connection: clients may come at once
    while True:
        c, _ = echo.accept()
        threading.Thread(target=echo_one, args=(c,), daemon=True).start()
def tcp_sink():
    while True:
        c, _ = sink.accept(); n = 0
        while True:
            b = c.recv(262144)
            if not b: break
            n += len(b)
        c.sendall(str(n).encode()); c.close()
def udp_echo():
    while True:
        d, a = u.recvfrom(4096); u.sendto(d, a)
for f in (tcp_echo, tcp_sink, udp_echo):
    threading.Thread(target=f, daemon=True).start()
open(os.path.join(run, "guest-daemons.ready"), "w").close()
threading.Event().wait()
EOF
  rm -f "$TS_RUN/uml/guest-daemons.ready"
  ts_guest "setsid python3 $TS_RUN/uml/guest-daemons.py $TS_RUN/uml $encap >$TS_RUN/uml/guest-daemons.log 2>&1 &" >/dev/null
  for _ in $(seq 1 100); do [ -e "$TS_RUN/uml/guest-daemons.ready" ] && return 0; sleep 0.2; done
  cat "$TS_RUN/uml/guest-daemons.log" >&2
  return 1
}
# strongSwan's charon as site B's IKE daemon, inside the kernel peer, with
# kernel-netlink and without kernel-libipsec: the negotiated SAs and
# policies go into the guest kernel's XFRM, which does the ESP. Its files
# (strongswan.conf, swanctl/, charon.log, charon.out) are in
# RUN_DIR/uml/charon, shared with the guest; the vici socket is in the
# guest's own /run (a unix socket on hostfs would not connect). The guest
# PID is kept in charon.gpid for ts_guest_charon_stop. Start-up takes about
# 5 s under UML. The plugins ($TS_CHARON_PLUGINS) are the fewest that work:
# openssl gives the RNG, AES-GCM, SHA-2/HMAC and X25519, but not the IKEv2
# PRF+ ("KDF_PRF with PRF_HMAC_SHA2_256 not supported" without kdf). Load connections with ts_guest_swanctl --load-all (files
# written with ss_write_conn "$TS_CHARON_DIR" ...).
TS_CHARON_URI=unix:///run/charon.vici
ts_guest_charon_start() {
  TS_CHARON_DIR=$TS_RUN/uml/charon
  SS_VICI_URI=$TS_CHARON_URI SS_PLUGINS=${TS_CHARON_PLUGINS:-nonce openssl kdf kernel-netlink socket-default vici} \
    ss_write_charon_conf "$TS_CHARON_DIR" || return 1
  ts_guest "setsid env STRONGSWAN_CONF=$TS_CHARON_DIR/strongswan.conf $SS_CHARON \
      </dev/null >>$TS_CHARON_DIR/charon.out 2>&1 &
    echo \$! >$TS_CHARON_DIR/charon.gpid
    for i in \$(seq 300); do
      $SS_SWANCTL --stats --uri $TS_CHARON_URI >/dev/null 2>&1 && exit 0
      kill -0 \$(cat $TS_CHARON_DIR/charon.gpid) 2>/dev/null || break
      sleep 0.2
    done
    echo 'charon in the kernel peer did not start:'; tail -5 $TS_CHARON_DIR/charon.out $TS_CHARON_DIR/charon.log
    exit 1" 90
}
ts_guest_swanctl() {
  local a q=""
  for a in "$@"; do q+=" $(printf '%q' "$a")"; done
  ts_guest "STRONGSWAN_CONF=$TS_CHARON_DIR/strongswan.conf $SS_SWANCTL$q --uri $TS_CHARON_URI" "${TS_SWANCTL_TIMEOUT:-60}"
}
ts_guest_charon_stop() {
  [ -n "${TS_CHARON_DIR:-}" ] && [ -s "$TS_CHARON_DIR/charon.gpid" ] || return 0
  ts_guest "p=\$(cat $TS_CHARON_DIR/charon.gpid); kill -TERM \$p 2>/dev/null || exit 0
    for i in \$(seq 50); do kill -0 \$p 2>/dev/null || exit 0; sleep 0.1; done; kill -KILL \$p" 20 >/dev/null
  rm -f "$TS_CHARON_DIR/charon.gpid"
}

# The kernel peer's SAs (ip -s xfrm state) with their counters: address,
# SPI and counter lines only, never a key ("ip xfrm state" prints them).
ts_guest_xfrm() {
  local out
  out=$(ts_guest "ip -s xfrm state") || return 1
  grep -vE '^[[:space:]]*(aead|enc|auth|auth-trunc|comp) ' <<<"$out" | grep -E '^src|spi|[0-9]+\(bytes\)' ||
    echo "(no SAs)"
}
ts_lan() { ip netns exec "$TS_NS_LAN" "$@"; }
ts_host() { ip netns exec "$TS_NS_HOST" "$@"; }  # the gateway's own kernel (behind the exception port)
ts_ctl() { "$TS_CTL" --instance "$TS_INSTANCE" "$@"; }

# Stops cygnet-dp with SIGTERM; returns its exit status (and 1 if the shm
# segment is left behind).
ts_stop_dp() {
  [ -n "$TS_DP_PID" ] || return 0
  kill -TERM "$TS_DP_PID" 2>/dev/null
  local rc=0
  wait "$TS_DP_PID" || rc=$?
  TS_DP_PID=""
  if [ -e "/dev/shm/cygnet-dp.$TS_INSTANCE" ]; then
    ts_log "shm segment /dev/shm/cygnet-dp.$TS_INSTANCE left behind"
    rc=1
  fi
  return $rc
}

ts_down() {
  # Under a caller's set -e, one step that fails (a process gone already)
  # must not skip the rest.
  local opts=$-
  set +e
  ts_guest_charon_stop 2>/dev/null
  uml_stop 2>/dev/null
  [ -n "$TS_RUN" ] && [ -d "$TS_RUN/charon" ] && ss_charon_stop "$TS_RUN/charon" 2>/dev/null
  if [ -n "$TS_DP_PID" ]; then
    kill -TERM "$TS_DP_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$TS_DP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$TS_DP_PID" 2>/dev/null
    wait "$TS_DP_PID" 2>/dev/null
    TS_DP_PID=""
  fi
  if [ -n "$TS_CAP_PID" ]; then
    kill -INT "$TS_CAP_PID" 2>/dev/null
    wait "$TS_CAP_PID" 2>/dev/null
    TS_CAP_PID=""
  fi
  local ns
  for ns in "$TS_NS_DP" "$TS_NS_LAN" "$TS_NS_WAN" "$TS_NS_HOST"; do
    ip netns list 2>/dev/null | grep -qw "$ns" && ip netns del "$ns"
  done
  case $opts in *e*) set -e ;; esac
  return 0
}

# Flushes the capture so far (tcpdump writes with -U: packet-buffered).
ts_capture_stop() {
  if [ -n "$TS_CAP_PID" ]; then
    sleep 0.3
    kill -INT "$TS_CAP_PID" 2>/dev/null
    wait "$TS_CAP_PID" 2>/dev/null
    TS_CAP_PID=""
  fi
}
