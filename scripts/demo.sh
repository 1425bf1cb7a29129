#!/usr/bin/env bash
# The main job: a two-site demo of Cygnet on one machine, as root.
#
#   bash scripts/demo.sh
#
# Installs what is missing (apt-get), builds, reserves hugepages, makes a
# two-site topology in network namespaces and runs
#   site A: cygnet-dp (the embedded default config: ports, routes,
#           neighbours and an exception port for the gateway's own
#           traffic) and cygnet-ike, which negotiates with site B through
#           that exception port and pushes the Child SAs and their policies
#           into cygnet-dp over shm;
#   site B: a real Linux kernel in user-mode-linux doing the ESP with its
#           XFRM, and strongSwan's charon inside that guest (kernel-netlink)
#           answering the IKE.
# cygnet-ike initiates (IKEv2, PSK: a fresh random key in 0600 files, never
# printed; AES-GCM-128 ESP, 10.1.0.0/24 <-> 10.2.0.0/16). Then ping, 1000
# UDP datagrams echoed and a 32 MiB TCP stream go through the tunnel, and it
# prints the IKE and Child SAs, cygnet-dp's SA table with its counters, the
# ports, the kernel peer's SAs with counters (no keys) and the throughput,
# and tears everything down. docs/demo.md tells the decisions.
#
# Environment:
#   CYGNET_BUILD_DIR      the build (default: build/ in the repository)
#   CYGNET_DEMO_KEYS      ike (default) | manual: no IKE; fresh random keys
#                         injected by hand (cygnetctl sa add on site A,
#                         ip xfrm in the guest), cygnet-dp on its embedded
#                         default config as it is
#   CYGNET_DEMO_NO_BUILD  1: no apt-get, no meson/ninja; the binaries must be
#                         in CYGNET_BUILD_DIR already (the system test runs
#                         the demo so, inside meson test)
#   CYGNET_DEMO_SHM       cygnet-dp's shm instance in ike mode (default
#                         "default", the embedded config's)
#   CYGNET_DEMO_RECORD    a folder: before the teardown the demo writes what
#                         it saw there (dp-sas.json, xfrm.txt, ike-list.txt,
#                         swanctl-sas.txt) for tests/e2e/demo_test.sh
# Exit status 0 when the SAs were negotiated (ike mode) and traffic went
# through the tunnel both ways.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${CYGNET_BUILD_DIR:-$repo/build}
keys=${CYGNET_DEMO_KEYS:-ike}
shm=${CYGNET_DEMO_SHM:-default}
record=${CYGNET_DEMO_RECORD:-}
case $keys in ike|manual) ;; *) echo "demo: CYGNET_DEMO_KEYS must be ike or manual, not '$keys'" >&2; exit 2;; esac
[[ $shm =~ ^[A-Za-z0-9_-]{1,32}$ ]] || { echo "demo: CYGNET_DEMO_SHM: 1-32 of [A-Za-z0-9_-], not '$shm'" >&2; exit 2; }
[ -z "$record" ] || [ -d "$record" ] || { echo "demo: CYGNET_DEMO_RECORD: no folder '$record'" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "demo: run as root (namespaces, hugepages, DPDK)" >&2; exit 1; }

dp_bin=$build/dp/app/cygnet-dp ctl_bin=$build/cp/cygnetctl ike_bin=$build/cp/ike/daemon/cygnet-ike
if [ "${CYGNET_DEMO_NO_BUILD:-0}" = 1 ]; then
  for b in "$dp_bin" "$ctl_bin" "$ike_bin"; do
    [ -x "$b" ] || { echo "demo: CYGNET_DEMO_NO_BUILD=1 but $b is not built" >&2; exit 1; }
  done
else
  # shellcheck source=deps.sh
  . "$repo/scripts/deps.sh"
  install_missing "${CYGNET_BUILD_PKGS[@]}"
  echo "== build ($build)"
  if [ ! -f "$build/build.ninja" ]; then meson setup "$build" "$repo" >/dev/null; fi
  ninja -C "$build" dp/app/cygnet-dp cp/cygnetctl cp/ike/daemon/cygnet-ike >/dev/null
fi

if [ "$keys" = ike ]; then
  for b in /usr/lib/ipsec/charon /usr/sbin/swanctl; do
    [ -x "$b" ] || { echo "demo: $b missing: site B's IKE daemon is strongSwan (scripts/deps.sh installs it)" >&2; exit 1; }
  done
fi

echo "== hugepages"
bash "$repo/scripts/hugepages/hugepages.sh" reserve 256

export TS_CTL_BIN=$ctl_bin
unset SS_LOG_KEYS  # charon's key logging (strongswan_peer.sh): never in the demo
# shellcheck source=../tests/e2e/two_site.sh
. "$repo/tests/e2e/two_site.sh"
RUN=$(mktemp -d /tmp/cygnet-demo.XXXXXX)
IKE_PID=""
stop_ike() {  # SIGTERM: cygnet-ike deletes its IKE SAs and takes its SAs out of cygnet-dp
  [ -n "$IKE_PID" ] || return 0
  kill -TERM "$IKE_PID" 2>/dev/null || true
  wait "$IKE_PID" 2>/dev/null || true
  IKE_PID=""
}
# set +e: one step of the teardown that fails (a process already gone) must
# not skip the rest.
trap 'set +e; stop_ike; ts_down; rm -rf "$RUN"' EXIT
dp_sa_count() { ts_ctl --json sa list 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null; }

mask=$(umask)
rnd() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
ok=1
if [ "$keys" = manual ]; then
  echo "== topology: site A = cygnet-dp (embedded default config), site B = Linux $(/usr/bin/linux.uml --version) in user-mode-linux"
  ts_up "$RUN" "$dp_bin" default
  ts_guest_daemons
  KO=$(rnd 20) KI=$(rnd 20)  # AES-128 key + 4-byte salt, each direction
  echo "== SAs by hand: AES-GCM-128, tunnel 192.0.2.1 <-> 192.0.2.2, 10.1.0.0/24 <-> 10.2.0.0/16 (fresh random keys)"
  ts_guest "set -e
    ip xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x2001 reqid 2 mode tunnel aead 'rfc4106(gcm(aes))' 0x$KI 128
    ip xfrm policy add src 10.2.0.0/16 dst 10.1.0.0/24 dir out tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 2 mode tunnel
    ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1001 reqid 1 mode tunnel replay-window 64 aead 'rfc4106(gcm(aes))' 0x$KO 128
    ip xfrm policy add src 10.1.0.0/24 dst 10.2.0.0/16 dir in tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel"
  umask 077
  printf '0x%s\n' "$KO" >"$RUN/out.key"
  printf '0x%s\n' "$KI" >"$RUN/in.key"
  umask "$mask"
  ts_ctl sa add --spi 0x1001 --dir out --src 192.0.2.1 --dst 192.0.2.2 --reqid 1 --enc aes-gcm16-128 --enc-key-file "$RUN/out.key"
  ts_ctl sa add --spi 0x2001 --dir in --src 192.0.2.2 --dst 192.0.2.1 --reqid 1 --enc aes-gcm16-128 --enc-key-file "$RUN/in.key"
  ts_ctl policy add --dir out --src 10.1.0.0/24 --dst 10.2.0.0/16 --action protect --reqid 1 --priority 100
  ts_ctl policy add --dir in --src 10.2.0.0/16 --dst 10.1.0.0/24 --action protect --reqid 1 --priority 100
else
  # The embedded default config has an exception port (a tap): cygnet-ike's
  # IKE reaches the wire through it. ts_up moves the tap into the gateway's
  # own kernel namespace, which holds 192.0.2.1. With CYGNET_DEMO_SHM (the
  # test's own instance) the same text is run from a file with only the shm
  # name changed (conf/dp-demo.conf is the embedded config byte for byte).
  echo "== topology: site A = cygnet-dp (embedded default config) and cygnet-ike,"
  echo "   site B = Linux $(/usr/bin/linux.uml --version) in user-mode-linux with strongSwan's charon inside"
  if [ "$shm" = default ]; then
    ts_up "$RUN" "$dp_bin" default
  else
    grep -q '^  shm = "default";$' "$repo/conf/dp-demo.conf" ||
      { echo "demo: conf/dp-demo.conf no longer has the line '  shm = \"default\";'" >&2; exit 1; }
    sed -e "s|^  shm = \"default\";\$|  shm = \"$shm\";|" "$repo/conf/dp-demo.conf" >"$RUN/dp.conf"
    ts_up "$RUN" "$dp_bin" "$RUN/dp.conf"
  fi
  ts_guest_daemons noencap
  t0=$SECONDS
  ts_guest_charon_start
  echo "   charon up in the kernel peer ($((SECONDS - t0)) s; kernel-netlink: the guest's XFRM does the ESP)"

  PSK=0x$(rnd 32)
  umask 077
  printf 'psks = ( { name = "site-b"; secret = "%s"; } );\n' "$PSK" >"$RUN/ike-secrets.conf"
  cat >"$RUN/ike.conf" <<CONF
ike = { secrets = "ike-secrets.conf"; dataplane_instance = "$shm"; };
connections = ( {
  name = "site-b"; local_addr = "192.0.2.1"; remote_addrs = "192.0.2.2";
  local_id = "fqdn:site-a.cygnet.test"; remote_id = "fqdn:site-b.cygnet.test"; psk = "site-b";
  local_ts = ( "10.1.0.0/24" ); remote_ts = ( "10.2.0.0/16" );
  ike = ( "aes128gcm16-prfsha256-x25519" ); esp = ( "aes128gcm16" );
  start = "start";
} );
CONF
  SS_LOCAL_ID=site-b.cygnet.test SS_REMOTE_ID=site-a.cygnet.test ss_write_conn "$TS_CHARON_DIR" site-a \
    192.0.2.2 192.0.2.1 10.2.0.0/16 10.1.0.0/24 aes128gcm16-prfsha256-x25519 aes128gcm16 "$PSK"
  umask "$mask"
  unset PSK
  # (swanctl says "invalid config file" and exits 0 when the file does not parse)
  if ! load=$(ts_guest_swanctl --load-all --clear --noprompt --file "$TS_CHARON_DIR/swanctl/swanctl.conf" 2>&1) ||
    grep -qiE 'failed|error|invalid' <<<"$load"; then
    echo "demo: swanctl could not load site B's connection:"; echo "$load"; exit 1
  fi
  echo "== IKEv2: cygnet-ike (site A) initiates to charon (site B): PSK (fresh random, in 0600 files),"
  echo "   IKE aes128gcm16-prfsha256-x25519, ESP AES-GCM-128, tunnel 10.1.0.0/24 <-> 10.2.0.0/16"
  t0=$SECONDS
  ip netns exec "$TS_NS_HOST" "$ike_bin" -c "$RUN/ike.conf" --control "$RUN/ike.sock" --state "$RUN/ike.state" \
    >"$RUN/ike.out" 2>"$RUN/ike.log" &
  IKE_PID=$!
  while [ $((SECONDS - t0)) -lt 30 ]; do  # about 1 s here; the UML peer is slow on a busy machine
    [ "$(dp_sa_count)" = 2 ] && break
    kill -0 "$IKE_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$(dp_sa_count)" != 2 ]; then
    echo "demo: FAILED: no Child SA in cygnet-dp after $((SECONDS - t0)) s; cygnet-ike said:"
    tail -20 "$RUN/ike.log"
    echo "charon said:"; grep -E 'IKE\]|CFG\]|KNL\]' "$TS_CHARON_DIR/charon.log" | tail -20
    exit 1
  fi
  echo "   Child SA negotiated and in cygnet-dp after $((SECONDS - t0)) s"
fi

echo "== ping 10.1.0.2 (site A host) -> 10.2.0.1 (site B, behind the kernel peer)"
ts_lan ping -c 5 -i 0.2 -W 2 10.2.0.1 || ok=0

echo "== UDP: 1000 datagrams of 1200 B echoed by site B"
ts_lan timeout 60 /usr/bin/python3 "$repo/tests/e2e/udp_echo.py" 10.2.0.1 5002 1000 1200 990 || ok=0

echo "== TCP: 32 MiB from site A to site B"
ts_lan timeout 120 /usr/bin/python3 -c '
import socket, time
buf = b"\0" * 262144; n = 32 << 20; t = time.time()
try:
    s = socket.create_connection(("10.2.0.1", 5003), timeout=30)
    for _ in range(n // len(buf)):
        s.sendall(buf)
    s.shutdown(socket.SHUT_WR); got = int(s.recv(64)); dt = time.time() - t
except (OSError, ValueError) as e:
    raise SystemExit("TCP transfer failed: %s" % e)
print("%d bytes received by site B in %.2f s: %.0f Mbit/s" % (got, dt, got * 8 / dt / 1e6))
raise SystemExit(0 if got == n else 1)' || ok=0

if [ "$keys" = ike ]; then
  echo "== cygnetctl ike list (cygnet-ike's IKE and Child SAs, with cygnet-dp's counters)"
  "$ctl_bin" ike list --control "$RUN/ike.sock" | tee "$RUN/ike-list.txt" || ok=0
  echo "== swanctl --list-sas (charon in the kernel peer)"
  ts_guest_swanctl --list-sas | tee "$RUN/swanctl-sas.txt" || ok=0
fi
echo "== cygnetctl sa list"
ts_ctl sa list || ok=0
echo "== cygnetctl ports"
ts_ctl ports || ok=0
echo "== the kernel peer's SAs (ip -s xfrm state: addresses, SPIs, counters; keys filtered out)"
ts_guest_xfrm | tee "$RUN/xfrm.txt" || ok=0
echo "(the TCP figure is bounded by the user-mode-linux peer, a kernel running as a process: see docs/benchmarks.md for cygnet-dp's own rate)"

if [ -n "$record" ]; then
  ts_ctl --json sa list >"$record/dp-sas.json"
  cp "$RUN/xfrm.txt" "$record/xfrm.txt"
  if [ "$keys" = ike ]; then cp "$RUN/ike-list.txt" "$RUN/swanctl-sas.txt" "$record/"; fi
fi

if [ "$keys" = ike ]; then
  stop_ike
  n=$(dp_sa_count)
  if [ "$n" = 0 ]; then echo "== cygnet-ike stopped: it deleted the IKE SA and took its SAs out of cygnet-dp"
  else echo "demo: cygnet-ike stopped but cygnet-dp still has $n SAs"; ok=0; fi
fi
ts_stop_dp
if [ $ok = 1 ]; then echo "demo: OK: traffic went through the tunnel both ways"; else echo "demo: FAILED"; exit 1; fi
