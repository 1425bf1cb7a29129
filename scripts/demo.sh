#!/usr/bin/env bash
# The main job: a two-site demo of Cygnet on one machine, as root.
#
#   bash scripts/demo.sh
#
# Installs what is missing (apt-get), builds, reserves hugepages, makes a
# two-site topology in network namespaces, runs cygnet-dp with its embedded
# default config on site A and a real Linux kernel (user-mode-linux) as the
# ESP peer of site B, injects manually keyed AES-GCM-128 SAs with cygnetctl
# (fresh random keys, the same on the kernel side with ip xfrm), pushes ping,
# a UDP and a TCP stream through the tunnel, prints the SA table with its
# counters, the ports and the throughput, and tears everything down.
# (When the IKE daemon lands, the same command negotiates instead.)
#
# Environment: CYGNET_BUILD_DIR (default: build/ in the repository).
# Exit status 0 when traffic went through the tunnel both ways.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${CYGNET_BUILD_DIR:-$repo/build}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (namespaces, hugepages, DPDK)" >&2; exit 1; }

# shellcheck source=deps.sh
. "$repo/scripts/deps.sh"
install_missing "${CYGNET_BUILD_PKGS[@]}"

echo "== build ($build)"
if [ ! -f "$build/build.ninja" ]; then meson setup "$build" "$repo" >/dev/null; fi
ninja -C "$build" dp/app/cygnet-dp cp/cygnetctl >/dev/null

echo "== hugepages"
bash "$repo/scripts/hugepages/hugepages.sh" reserve 256

export TS_CTL_BIN=$build/cp/cygnetctl
# shellcheck source=../tests/e2e/two_site.sh
. "$repo/tests/e2e/two_site.sh"
RUN=$(mktemp -d /tmp/cygnet-demo.XXXXXX)
trap 'ts_down; rm -rf "$RUN"' EXIT

echo "== topology: site A = cygnet-dp (embedded default config), site B = Linux $(/usr/bin/linux.uml --version) in user-mode-linux"
ts_up "$RUN" "$build/dp/app/cygnet-dp" default
ts_guest_daemons

rnd() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
KO=$(rnd 20) KI=$(rnd 20)  # AES-128 key + 4-byte salt, each direction
echo "== SAs: AES-GCM-128, tunnel 192.0.2.1 <-> 192.0.2.2, 10.1.0.0/24 <-> 10.2.0.0/16 (fresh random keys)"
ts_guest "set -e
  ip xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x2001 reqid 2 mode tunnel aead 'rfc4106(gcm(aes))' 0x$KI 128
  ip xfrm policy add src 10.2.0.0/16 dst 10.1.0.0/24 dir out tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 2 mode tunnel
  ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1001 reqid 1 mode tunnel replay-window 64 aead 'rfc4106(gcm(aes))' 0x$KO 128
  ip xfrm policy add src 10.1.0.0/24 dst 10.2.0.0/16 dir in tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel"
umask 077
printf '0x%s\n' "$KO" >"$RUN/out.key"
printf '0x%s\n' "$KI" >"$RUN/in.key"
ts_ctl sa add --spi 0x1001 --dir out --src 192.0.2.1 --dst 192.0.2.2 --reqid 1 --enc aes-gcm16-128 --enc-key-file "$RUN/out.key"
ts_ctl sa add --spi 0x2001 --dir in --src 192.0.2.2 --dst 192.0.2.1 --reqid 1 --enc aes-gcm16-128 --enc-key-file "$RUN/in.key"
ts_ctl policy add --dir out --src 10.1.0.0/24 --dst 10.2.0.0/16 --action protect --reqid 1 --priority 100
ts_ctl policy add --dir in --src 10.2.0.0/16 --dst 10.1.0.0/24 --action protect --reqid 1 --priority 100

ok=1
echo "== ping 10.1.0.2 (site A host) -> 10.2.0.1 (site B, behind the kernel peer)"
ts_lan ping -c 5 -i 0.2 -W 2 10.2.0.1 || ok=0

echo "== UDP: 1000 datagrams of 1200 B echoed by site B"
ts_lan timeout 60 /usr/bin/python3 -c '
import os, socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2); ok = 0; t = time.time()
for i in range(1000):
    d = os.urandom(1200); s.sendto(d, ("10.2.0.1", 5002))
    try:
        r, _ = s.recvfrom(2048); ok += r == d
    except socket.timeout:
        pass
dt = time.time() - t
print("%d/1000 echoed intact, %.1f Mbit/s each way (one datagram in flight)" % (ok, ok * 1200 * 8 / dt / 1e6))
raise SystemExit(0 if ok >= 990 else 1)' || ok=0

echo "== TCP: 32 MiB from site A to site B"
ts_lan timeout 120 /usr/bin/python3 -c '
import socket, time
s = socket.create_connection(("10.2.0.1", 5003), timeout=60); buf = b"\0" * 262144; n = 32 << 20; t = time.time()
for _ in range(n // len(buf)):
    s.sendall(buf)
s.shutdown(socket.SHUT_WR); got = int(s.recv(64)); dt = time.time() - t
print("%d bytes received by site B in %.2f s: %.0f Mbit/s" % (got, dt, got * 8 / dt / 1e6))
raise SystemExit(0 if got == n else 1)' || ok=0

echo "== cygnetctl sa list"
ts_ctl sa list
echo "== cygnetctl ports"
ts_ctl ports
echo "== the kernel peer's SAs (ip -s xfrm state, counters)"
ts_guest "ip -s xfrm state | grep -E '^src|spi|[0-9]+\(bytes\)'"
echo "(the TCP figure is bounded by the user-mode-linux peer, a kernel running as a process: see docs/benchmarks.md for cygnet-dp's own rate)"

ts_stop_dp
if [ $ok = 1 ]; then echo "demo: OK: traffic went through the tunnel both ways"; else echo "demo: FAILED"; exit 1; fi
