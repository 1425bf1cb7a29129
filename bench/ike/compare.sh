#!/usr/bin/env bash
# IKE_SA + first CHILD_SA set-ups per second: cygnet-ike beside strongSwan's
# charon, answering the same load generator (bench/ike/ike_loadgen) over a
# veth pair, in the same run, interleaved (cygnet, charon, cygnet, ...).
# docs/benchmarks.md "IKE set-ups".
#
#   bench/ike/compare.sh [options]
#
# Namespaces (tests/interop/strongswan_peer.sh ss_setup, deleted at the end):
# cyg-ss-ID-a holds the generator (192.0.2.1, pinned to --gen-cpu), cyg-ss-ID-b
# the responder of the run (192.0.2.2, pinned to --resp-cpu): cygnet-ike
# (--backend null --quiet: no dataplane, no per-SA log lines) or charon
# (kernel-libipsec: userspace SAs, no routes installed, logging off, DoS
# protection and cookies off, a hash table for its IKE SAs; OpenSSL for
# every algorithm, as cygnet-ike). Each run starts its responder afresh,
# waits until it answers, runs the generator for --warmup + --duration s,
# then stops it by its PID. Both negotiate aes256gcm16-prfsha256-x25519 /
# aes256gcm16 with PSKs; the generator deletes every IKE SA after its
# IKE_AUTH. charon's kernel-libipsec makes it pretend a NAT, so with charon
# IKE_AUTH and the Delete go over UDP 4500 (with cygnet-ike over 500).
#
# The X25519 ceiling and the in-process set-up cost (build/bench/ike_bench,
# pinned to --resp-cpu) are measured at the start and at the end.
#
# options:
#   --rounds R        rounds of (cygnet, charon) (default 5)
#   --duration S      measured seconds per run (default 10)
#   --warmup S        seconds before the window (default 2)
#   -n N              set-ups in flight (default 64)
#   --ke-reuse K      set-ups per generator key pair (default 16)
#   --charon-threads T  charon's worker threads (default: charon's, 16)
#   --no-charon       cygnet-ike only
#   --no-inproc       skip ike_bench
#   --perf            perf record the responders in round 1 (OUT/perf-*.txt)
#   --gen-cpu C       (default 0)    --resp-cpu C   (default 1)
#   --build DIR       (default REPO/build)
#   --out DIR         keep runs.txt, logs, summary (default a new /tmp/cygnet-ike-compare.*)
#   --quick           1 round, 3 s, no warm-up, no ike_bench (a smoke run)
#
# Needs root, charon (strongswan-charon, swanctl, kernel-libipsec), taskset.
# Exit: 0 done (runs that failed are in the table), 1 set-up failed, 2 usage.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3

die() { echo "compare: $*" >&2; exit 1; }
usage() { sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

ROUNDS=5 DURATION=10 WARMUP=2 N=64 KE_REUSE=16 CHARON=1 INPROC=1 PERF=0 THREADS=""
GEN_CPU=0 RESP_CPU=1 BUILD=$REPO/build OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=${2:?}; shift 2;;
    --duration) DURATION=${2:?}; shift 2;;
    --warmup) WARMUP=${2:?}; shift 2;;
    -n) N=${2:?}; shift 2;;
    --ke-reuse) KE_REUSE=${2:?}; shift 2;;
    --charon-threads) THREADS=${2:?}; shift 2;;
    --no-charon) CHARON=0; shift;;
    --no-inproc) INPROC=0; shift;;
    --perf) PERF=1; shift;;
    --gen-cpu) GEN_CPU=${2:?}; shift 2;;
    --resp-cpu) RESP_CPU=${2:?}; shift 2;;
    --build) BUILD=${2:?}; shift 2;;
    --out) OUT=${2:?}; shift 2;;
    --quick) ROUNDS=1 DURATION=3 WARMUP=0 INPROC=0; shift;;
    -h|--help) usage;;
    *) echo "compare: unknown option $1" >&2; usage;;
  esac
done

IKE=$BUILD/cp/ike/daemon/cygnet-ike
CTL=$BUILD/cp/cygnetctl
GEN=$BUILD/bench/ike/ike_loadgen
BENCH=$BUILD/bench/ike_bench
[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
for x in "$IKE" "$CTL" "$GEN"; do [ -x "$x" ] || die "missing $x (ninja -C $BUILD)"; done
command -v taskset >/dev/null || die "needs taskset (util-linux)"
if [ "$CHARON" = 1 ]; then
  [ -x /usr/lib/ipsec/charon ] && command -v swanctl >/dev/null || die "charon/swanctl not installed (scripts/deps.sh)"
fi

# shellcheck source=../../tests/interop/strongswan_peer.sh
. "$REPO/tests/interop/strongswan_peer.sh"

OUT=${OUT:-$(mktemp -d /tmp/cygnet-ike-compare.XXXXXX)}
mkdir -p "$OUT" || die "cannot make $OUT"
OUT=$(cd "$OUT" && pwd)
ID=ikb$$
SB=$OUT/charon
ike_pid=""
perf_pid=""

stop_cygnet() {
  [ -n "$ike_pid" ] || return 0
  kill -TERM "$ike_pid" 2>/dev/null
  wait "$ike_pid" 2>/dev/null
  ike_pid=""
  rm -f "$OUT/ike.sock"
}
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid" 2>/dev/null; wait "$perf_pid" 2>/dev/null; fi
  stop_cygnet
  ss_cleanup "$ID"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

PROP=aes256gcm16-prfsha256-x25519 ESP=aes256gcm16
PSK=bench-psk-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$PSK" > "$OUT/psk"
printf 'psks = ( { name = "bench"; secret = "%s"; } );\n' "$PSK" > "$OUT/secrets.conf"
chmod 600 "$OUT/psk" "$OUT/secrets.conf"
cat > "$OUT/cygnet.conf" <<CONF
ike = { secrets = "$OUT/secrets.conf"; dataplane_instance = "bench$ID"; cookie_threshold = 1000000; };
connections = ( {
  name = "bench"; local_addr = "192.0.2.2"; remote_addrs = "192.0.2.1";
  local_id = "fqdn:responder.bench"; remote_id = "fqdn:loadgen.bench"; psk = "bench";
  ike = ( "$PROP" ); esp = ( "$ESP" );
  local_ts = ( "10.2.0.0/16" ); remote_ts = ( "10.1.0.0/16" );
} );
CONF

# charon: quiet, no DoS throttling (the generator is one address with N
# half-open SAs), a real hash table, no routes; OpenSSL for all crypto.
export SS_LOG_DEFAULT=-1 SS_LOG_IKE=-1 SS_LOG_CHD=-1 SS_LOG_KNL=-1 SS_LOG_NET=-1 SS_LOG_ESP=-1 SS_LOG_CFG=-1
export SS_PLUGINS="random nonce openssl kdf kernel-libipsec kernel-netlink socket-default vici"
SS_CHARON_EXTRA=$'\tdos_protection = no\n\tcookie_threshold = 1000000\n\tcookie_threshold_ip = 1000000\n\tblock_threshold = 1000000\n\tikesa_table_size = 4096\n\tikesa_table_segments = 16\n\tinstall_routes = no'
[ -n "$THREADS" ] && SS_CHARON_EXTRA+=$'\n\t'"threads = $THREADS"
export SS_CHARON_EXTRA

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs"
  echo "kernel: $(uname -r)"
  echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet 2>/dev/null || echo '+dirty')"
  echo "charon: $(dpkg-query -W -f '${Version}' strongswan-charon 2>/dev/null)"
  echo "settings: rounds=$ROUNDS duration=$DURATION warmup=$WARMUP n=$N ke_reuse=$KE_REUSE charon_threads=${THREADS:-default} gen_cpu=$GEN_CPU resp_cpu=$RESP_CPU"
  echo "uptime at start: $(uptime)"
} | tee "$OUT/machine.txt"

ss_setup "$ID" >/dev/null || die "ss_setup failed"

inproc() {  # LABEL
  [ "$INPROC" = 1 ] && [ -x "$BENCH" ] || return 0
  taskset -c "$RESP_CPU" "$BENCH" --benchmark_filter='(X25519)|(BM_ResponderSetup/live:0/ke_reuse:16)' \
    --benchmark_min_time=1 --benchmark_format=json > "$OUT/inproc-$1.json" 2>/dev/null || return 0
  "$PY" - "$OUT/inproc-$1.json" "$1" <<'EOF' | tee -a "$OUT/inproc.txt"
import json, sys
d = json.load(open(sys.argv[1]))
out = []
for b in d["benchmarks"]:
    n = b["name"]
    if "per_s" in b: out.append(f"{n.split('/')[0]} {b['per_s']:.0f}/s")
    if "setups_per_s" in b: out.append(f"in-process responder {b['setups_per_s']:.0f} set-ups/s ({b['real_time']:.1f} us)")
print(f"{sys.argv[2]}: " + ", ".join(out))
EOF
}

run_gen() {  # IMPL ROUND PID
  local log=$OUT/gen-$1-$2 line
  ip netns exec "$SS_NS_A" taskset -c "$GEN_CPU" "$GEN" --local "$SS_A4" --remote "$SS_B4" --psk-file "$OUT/psk" \
    --id fqdn:loadgen.bench --remote-id fqdn:responder.bench --tsi 10.1.0.0/16 --tsr 10.2.0.0/16 \
    --ike "$PROP" --esp "$ESP" -n "$N" --duration "$DURATION" --warmup "$WARMUP" --ke-reuse "$KE_REUSE" \
    --responder-pid "$3" --responder-cpu "$RESP_CPU" --quiet > "$log.out" 2> "$log.err"
  line=$(grep '^RESULT' "$log.out" | head -1)
  [ -n "$line" ] || line="RESULT setups=0 failed=1"
  line="impl=$1 round=$2 load=$(cut -d' ' -f1 /proc/loadavg) ${line#RESULT }"
  echo "$line" >> "$OUT/runs.txt"
  echo "  $line"
}

perf_start() {  # PID NAME
  [ "$PERF" = 1 ] && command -v perf >/dev/null || return 0
  perf record -F 499 -g -p "$1" -o "$OUT/perf-$2.data" -- sleep "$(( ${WARMUP%.*} + ${DURATION%.*} ))" \
    > /dev/null 2>&1 &
  perf_pid=$!
}
perf_end() {  # NAME
  [ -n "$perf_pid" ] || return 0
  wait "$perf_pid" 2>/dev/null
  perf_pid=""
  perf report -i "$OUT/perf-$1.data" --stdio --no-children --percent-limit 0.7 2>/dev/null | grep -v '^$' | head -150 > "$OUT/perf-$1.txt"
}

run_cygnet() {  # ROUND
  ip netns exec "$SS_NS_B" taskset -c "$RESP_CPU" "$IKE" -c "$OUT/cygnet.conf" --backend null --quiet \
    --control "$OUT/ike.sock" > "$OUT/cygnet-$1.log" 2>&1 &
  ike_pid=$!
  local i
  for i in $(seq 100); do [ -S "$OUT/ike.sock" ] && break; sleep 0.05; done
  [ -S "$OUT/ike.sock" ] || { echo "  cygnet-ike did not start:"; tail -5 "$OUT/cygnet-$1.log"; stop_cygnet; return 1; }
  [ "$1" = 1 ] && perf_start "$ike_pid" cygnet
  run_gen cygnet "$1" "$ike_pid"
  [ "$1" = 1 ] && perf_end cygnet
  "$CTL" ike stats --control "$OUT/ike.sock" > "$OUT/cygnet-$1.stats" 2>&1
  stop_cygnet
}

run_charon() {  # ROUND
  ss_charon_start "$SS_NS_B" "$SB" || { echo "  charon did not start"; return 1; }
  local pid
  pid=$(ss_charon_pid "$SB") || return 1
  taskset -a -p -c "$RESP_CPU" "$pid" > /dev/null
  SS_LOCAL_ID=responder.bench SS_REMOTE_ID=loadgen.bench \
    ss_write_conn "$SB" bench "$SS_B4" "$SS_A4" 10.2.0.0/16 10.1.0.0/16 "$PROP" "$ESP" "$PSK" >/dev/null &&
    ss_load "$SB" >/dev/null || { echo "  charon: loading the connection failed"; ss_charon_stop "$SB"; return 1; }
  [ "$1" = 1 ] && ss_swanctl "$SB" --list-algs > "$OUT/charon-algs.txt" 2>&1
  [ "$1" = 1 ] && perf_start "$pid" charon
  run_gen charon "$1" "$pid"
  [ "$1" = 1 ] && perf_end charon
  ss_swanctl "$SB" --stats > "$OUT/charon-$1.stats" 2>&1
  ss_charon_stop "$SB"
}

inproc start
: > "$OUT/runs.txt"
for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS ($(cut -d' ' -f1-3 /proc/loadavg))"
  run_cygnet "$r"
  [ "$CHARON" = 1 ] && run_charon "$r"
done
inproc end
echo "uptime at end: $(uptime)" | tee -a "$OUT/machine.txt"

"$PY" - "$OUT/runs.txt" <<'EOF' | tee "$OUT/summary.md"
import statistics as st, sys
runs = []
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split() if "=" in f)
    runs.append(kv)
def med(impl, key):
    v = [float(r[key]) for r in runs if r.get("impl") == impl and key in r and float(r.get("setups", 0)) > 0]
    return (st.median(v), len(v)) if v else (None, 0)
def fmt(x, p=0):
    return "-" if x is None else f"{x:,.{p}f}"
print("| responder | runs | set-ups/s | responder cores used | set-ups per responder CPU-second | generator cores | CPU busy (all) | p50 / p99 ms | failures, timeouts |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for impl in ("cygnet", "charon"):
    rate, n = med(impl, "rate")
    if n == 0:
        continue
    fails = sum(int(r.get("failures", 0)) for r in runs if r.get("impl") == impl)
    tos = sum(int(r.get("timeouts", 0)) for r in runs if r.get("impl") == impl)
    print(f"| {impl} | {n} | {fmt(rate)} | {fmt(med(impl, 'resp_cpu')[0], 2)} | {fmt(med(impl, 'per_core')[0])} | "
          f"{fmt(med(impl, 'gen_cpu')[0], 2)} | {fmt(med(impl, 'cpu_busy')[0], 2)} | "
          f"{fmt(med(impl, 'lat_p50_ms')[0], 1)} / {fmt(med(impl, 'lat_p99_ms')[0], 1)} | {fails}, {tos} |")
c, s = med("cygnet", "rate")[0], med("charon", "rate")[0]
cp, sp = med("cygnet", "per_core")[0], med("charon", "per_core")[0]
if c and s:
    pairs = {}
    for r in runs:
        pairs.setdefault(r["round"], {})[r["impl"]] = r
    ratios = [float(p["cygnet"]["rate"]) / float(p["charon"]["rate"]) for p in pairs.values()
              if "cygnet" in p and "charon" in p and float(p["charon"].get("rate", 0)) > 0]
    print()
    print(f"cygnet/charon: set-ups/s {c / s:.2f}x (medians), per responder CPU-second {cp / sp:.2f}x"
          + (f", per round {', '.join(f'{x:.2f}' for x in ratios)}" if ratios else ""))
EOF
echo "runs, logs and summary in $OUT"
