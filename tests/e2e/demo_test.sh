#!/usr/bin/env bash
# The main job end to end: scripts/demo.sh as it runs for a user (cygnet-ike
# + cygnet-dp on site A, charon inside the user-mode-linux kernel peer on
# site B), without its install and build steps (meson test built the
# binaries), then checks what it printed and what it recorded before its
# teardown:
#   - the demo says OK; ping, UDP echo and the 32 MiB TCP transfer passed;
#   - the SAs were negotiated: cygnet-dp holds two SAs whose SPIs are the
#     ones the kernel peer's XFRM holds, the ones cygnet-ike lists for its
#     Child SA and the ones charon lists as INSTALLED; not the demo's manual
#     SPIs;
#   - both of cygnet-dp's SAs and the kernel's inbound SA counted the
#     traffic (the 1000 UDP datagrams at least);
#   - no key material in the demo's output.
#
#   demo_test.sh BUILD_DIR
set -uo pipefail

BUILD=$(cd "${1:?usage: demo_test.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
[ -x /usr/bin/linux.uml ] || { echo "FAIL: user-mode-linux is not installed (scripts/deps.sh installs it)"; exit 1; }
[ -x /usr/lib/ipsec/charon ] || { echo "FAIL: strongSwan is not installed (scripts/deps.sh installs it)"; exit 1; }

REC=$(mktemp -d /tmp/cygnet-demo-test.XXXXXX)
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$REC"' EXIT
FAILS=()
check() {  # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then echo "  ok   $what"; else echo "  FAIL $what"; FAILS+=("$what"); fi
}

t0=$SECONDS
CYGNET_DEMO_KEYS=ike CYGNET_DEMO_NO_BUILD=1 CYGNET_BUILD_DIR=$BUILD CYGNET_DEMO_RECORD=$REC CYGNET_DEMO_SHM=demotest$$ \
  timeout -k 10 "${DEMO_TIMEOUT:-240}" bash "$HERE/../../scripts/demo.sh" >"$REC/demo.out" 2>&1
rc=$?
echo "--- scripts/demo.sh (exit $rc, $((SECONDS - t0)) s)"
cat "$REC/demo.out"
echo "---"
check "the demo exits 0 and says OK" [ $rc = 0 ]
grep -q '^demo: OK' "$REC/demo.out"
check "the demo's last word is OK" [ $? = 0 ]
got=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$REC/demo.out" | head -1)
check "ping through the tunnel (${got:-no} replies of 5)" [ "${got:-0}" -ge 4 ]
got=$(sed -n 's|^\([0-9]*\)/1000 echoed intact.*|\1|p' "$REC/demo.out")
check "UDP: ${got:-no} of 1000 datagrams echoed intact" [ "${got:-0}" -ge 990 ]
grep -q '^33554432 bytes received by site B' "$REC/demo.out"
check "TCP: all 32 MiB arrived at site B" [ $? = 0 ]
grep -q 'Child SA negotiated and in cygnet-dp' "$REC/demo.out"
check "the demo negotiated (no manual keys)" [ $? = 0 ]
grep -Eiq '[0-9a-f]{32}|aead|enc-key|secret' "$REC/demo.out"
check "no key material in the demo's output" [ $? != 0 ]

for f in dp-sas.json xfrm.txt ike-list.txt swanctl-sas.txt; do
  check "the demo recorded $f" [ -s "$REC/$f" ]
done
# Every listing names the same two SPIs; the counters moved.
$PY - "$REC" <<'EOF'
import json, os, re, sys
rec = sys.argv[1]
def read(name):
    with open(os.path.join(rec, name)) as f:
        return f.read()
fails = []
def check(what, cond):
    print("  %s %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        fails.append(what)
try:
    sas = json.loads(read("dp-sas.json"))
except (OSError, ValueError) as e:
    print("  FAIL cygnet-dp's SA list: %s" % e)
    sys.exit(1)
dp = {}
for s in sas:
    spi = s["spi"] if isinstance(s["spi"], int) else int(str(s["spi"]), 0)
    dp[spi] = s
check("cygnet-dp holds two SAs (%d)" % len(sas), len(sas) == 2)
check("cygnet-dp's SPIs are negotiated ones, not the manual 0x1001/0x2001 (%s)" % sorted(map(hex, dp)),
      not set(dp) & {0x1001, 0x2001})
dirs = sorted(s.get("dir", "?") for s in sas)
check("one outbound and one inbound SA (%s)" % dirs, dirs == ["in", "out"])
for spi, s in sorted(dp.items()):
    check("cygnet-dp SA 0x%08x (%s) counted the traffic (%s packets)" % (spi, s.get("dir"), s.get("packets")),
          s.get("packets", 0) >= 1000)

# ip -s xfrm state: "src A dst B", "proto esp spi 0x...(...)", "N(bytes), M(packets)".
kern, cur = {}, None
for line in read("xfrm.txt").splitlines():
    m = re.match(r"src (\S+) dst (\S+)", line)
    if m:
        cur = {"src": m.group(1), "dst": m.group(2)}
        continue
    m = re.search(r"spi 0x([0-9a-f]+)", line)
    if m and cur is not None:
        kern[int(m.group(1), 16)] = cur
        continue
    m = re.search(r"(\d+)\(bytes\), (\d+)\(packets\)", line)
    if m and cur is not None:
        cur["packets"] = int(m.group(2))
check("the kernel peer's SPIs are cygnet-dp's (%s / %s)" % (sorted(map(hex, kern)), sorted(map(hex, dp))),
      set(kern) == set(dp))
for spi, k in sorted(kern.items()):
    if spi in dp:
        d = dp[spi]
        want = ("192.0.2.1", "192.0.2.2") if d.get("dir") == "out" else ("192.0.2.2", "192.0.2.1")
        check("SA 0x%08x runs %s -> %s on both sides" % (spi, want[0], want[1]), (k["src"], k["dst"]) == want)
inbound = [k for k in kern.values() if k["dst"] == "192.0.2.2"]
check("the kernel decrypted what cygnet-dp sent (%s packets)" % [k.get("packets") for k in inbound],
      len(inbound) == 1 and inbound[0].get("packets", 0) >= 1000)

ike = read("ike-list.txt").lower()
check("cygnet-ike lists an established IKE SA", "established" in ike)
check("cygnet-ike lists both SPIs of its Child SA", all(("%08x" % spi) in ike for spi in dp))
sw = read("swanctl-sas.txt")
check("charon lists the IKE SA ESTABLISHED and the CHILD SA INSTALLED", "ESTABLISHED" in sw and "INSTALLED" in sw)
check("charon's CHILD SA has the same SPIs", all(("%08x" % spi) in sw for spi in dp))
sys.exit(1 if fails else 0)
EOF
check "the negotiated SAs agree on all sides" [ $? = 0 ]

if [ ${#FAILS[@]} -eq 0 ]; then echo "PASS: the demo negotiated and carried traffic"; exit 0; fi
echo "FAIL: ${FAILS[*]}"
exit 1
