#!/usr/bin/env bash
# cygnet-dp with two workers against the Linux kernel's ESP (user-mode-linux):
#
#   dp_kernel_2workers_test.sh BUILD_DIR
#
# Every SA has one owner worker (docs/dataplane.md); packets that the other
# worker receives are handed to it over a ring. Here both ports have two
# queues (net_af_packet fanout spreads the flows over them), so traffic of
# one SA pair reaches both workers: pings and a TCP stream must come back
# whole, the SA counters must count every packet once, and both workers must
# have seen traffic.
set -uo pipefail

BUILD=$(cd "${1:?usage: dp_kernel_2workers_test.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
export TS_CTL_BIN=$BUILD/cp/cygnetctl TS_WORKERS=2
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
[ -x /usr/bin/linux.uml ] || { echo "FAIL: user-mode-linux is not installed (scripts/deps.sh installs it)"; exit 1; }
# shellcheck source=two_site.sh
. "$HERE/two_site.sh"
RUN=$(mktemp -d /tmp/cygnet-e2e2.XXXXXX)
trap 'ts_down; [ "${KEEP:-0}" = 1 ] || rm -rf "$RUN"' EXIT
FAILS=()
check() {
  local what=$1; shift
  if "$@"; then echo "  ok   $what"; else echo "  FAIL $what"; FAILS+=("$what"); fi
}
rnd() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

bash "$HERE/../../scripts/hugepages/hugepages.sh" reserve 256 >/dev/null || { echo "FAIL: hugepages"; exit 1; }
ts_up "$RUN" "$BUILD/dp/app/cygnet-dp" || { echo "FAIL: topology did not come up"; exit 1; }
check "two workers" grep -q "2 workers" "$RUN/dp.log"
ts_guest_daemons || FAILS+=("guest daemons")

KO=$(rnd 20) KI=$(rnd 20)
ts_guest "set -e
  ip xfrm state add src 192.0.2.2 dst 192.0.2.1 proto esp spi 0x2001 reqid 2 mode tunnel aead 'rfc4106(gcm(aes))' 0x$KI 128
  ip xfrm policy add src 10.2.0.0/16 dst 10.1.0.0/24 dir out tmpl src 192.0.2.2 dst 192.0.2.1 proto esp reqid 2 mode tunnel
  ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1001 reqid 1 mode tunnel replay-window 128 aead 'rfc4106(gcm(aes))' 0x$KO 128
  ip xfrm policy add src 10.1.0.0/24 dst 10.2.0.0/16 dir in tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel" >/dev/null
check "kernel SAs" [ $? = 0 ]
check "our SAs and policies" bash -c "
  '$TS_CTL_BIN' --instance '$TS_INSTANCE' sa add --spi 0x1001 --dir out --src 192.0.2.1 --dst 192.0.2.2 --reqid 1 --enc aes-gcm16-128 --enc-key 0x$KO &&
  '$TS_CTL_BIN' --instance '$TS_INSTANCE' sa add --spi 0x2001 --dir in --src 192.0.2.2 --dst 192.0.2.1 --reqid 1 --enc aes-gcm16-128 --enc-key 0x$KI &&
  '$TS_CTL_BIN' --instance '$TS_INSTANCE' policy add --dir out --src 10.1.0.0/24 --dst 10.2.0.0/16 --action protect --reqid 1 &&
  '$TS_CTL_BIN' --instance '$TS_INSTANCE' policy add --dir in --src 10.2.0.0/16 --dst 10.1.0.0/24 --action protect --reqid 1" >/dev/null

got=$(ts_lan ping -c 10 -i 0.1 -W 2 10.2.0.1 | sed -n 's/.* \([0-9]*\) received.*/\1/p')
check "ping through the tunnel ($got/10)" [ "${got:-0}" -ge 9 ]
# Many flows, so the fanout of both ports spreads them over both queues.
check "8 TCP streams of 256 KiB, each echoed intact" ts_lan timeout 60 $PY -c '
import os, socket, sys, threading
ok = []
def one(i):
    try:
        d = os.urandom(262144)
        s = socket.create_connection(("10.2.0.1", 5001), timeout=30); s.sendall(d); s.shutdown(socket.SHUT_WR)
        r = b""
        while True:
            b = s.recv(65536)
            if not b: break
            r += b
        ok.append(r == d)
        if r != d: print("stream", i, "came back with", len(r), "bytes")
    except OSError as e:
        print("stream", i, "failed:", e)
t = [threading.Thread(target=one, args=(i,)) for i in range(8)]
[x.start() for x in t]; [x.join() for x in t]
sys.exit(0 if len(ok) == 8 and all(ok) else 1)'
ts_ctl cores | tee "$RUN/cores.txt"
ts_ctl sa list | tee "$RUN/sas.txt"
check "both workers received traffic" $PY -c "
import sys
rows = [l.split() for l in open('$RUN/cores.txt').read().splitlines()[1:]]
sys.exit(0 if len(rows) == 2 and all(int(r[2]) + int(r[3]) > 0 for r in rows) else 1)"
# What the kernel counted equals what we counted, both directions.
ts_guest "ip -s xfrm state" >"$RUN/xfrm.txt"
check "SA packet counts agree with the kernel's (every packet once, none lost to handoff)" $PY -c "
import re, sys
ours = {}
for l in open('$RUN/sas.txt').read().splitlines()[1:]:
    f = l.split(); ours[int(f[0], 16)] = int(f[9])
theirs, spi = {}, None
for l in open('$RUN/xfrm.txt'):
    m = re.search(r'spi 0x([0-9a-f]+)', l)
    if m: spi = int(m.group(1), 16)
    m = re.search(r'\(bytes\), (\d+)\(packets\)', l)
    if m and spi is not None: theirs[spi] = int(m.group(1)); spi = None
print('ours', ours, 'kernel', theirs)
sys.exit(0 if ours and ours == theirs else 1)"
ts_ctl ports | grep -q handoff_full && FAILS+=("handoff_full drops")
check "SIGTERM stops cygnet-dp cleanly" ts_stop_dp

if [ ${#FAILS[@]} -ne 0 ]; then
  echo "FAILED: ${FAILS[*]}"; KEEP=1; echo "run directory kept: $RUN"; exit 1
fi
echo "PASS"
