#!/usr/bin/env bash
# DPDK's ipsec-secgw as a baseline for the cygnet-dp pipeline benchmark.
#
#   secgw.sh build [BUILD_DIR]
#       Install what it needs (dpdk-doc, make, gcc, pkg-config, libdpdk-dev)
#       with apt-get if missing, copy /usr/share/dpdk/examples/ipsec-secgw to
#       BUILD_DIR/secgw, patch the copy (RX checksum offload -> 0, which
#       vdevs lack) and build it with make + pkg-config libdpdk.
#       Binary: BUILD_DIR/secgw/build/ipsec-secgw. Nothing is written in the
#       repository.
#   secgw.sh config --sas N --alg aes-gcm-128|aes-cbc-128-sha256 [--inbound] OUT_DIR
#       Write OUT_DIR/secgw.cfg: N outbound IPv4 tunnel SAs (SPI 0x1000+i,
#       192.0.2.1 -> 192.0.2.2, `type cpu-crypto`), N outbound policies
#       dst 10.2.0.0+i/32 -> SA i (10.2.(i>>8).(i&255) for i < 65536, as
#       gen_pcap.py makes the flows), one inbound SA + policy (ipsec-secgw
#       refuses an unprotected port without one) and the routes.
#       --inbound: N inbound SAs (192.0.2.2 -> 192.0.2.1) and N inbound
#       policies dst 10.2.0.0+i/32 -> SA i, one outbound SA + policy.
#   secgw.sh run --pcap FILE (--cfg FILE | --sas N --alg ALG) [options]
#       Run ipsec-secgw outbound: port 0 (protected) = net_pcap
#       rx_pcap=FILE,infinite_rx=1, port 1 (unprotected) = net_null no-rx=1,
#       --vdev crypto_aesni_mb0, its own --file-prefix. After --warmup s,
#       read /ethdev/stats,1 opackets over --windows windows of --seconds s
#       through the telemetry socket and print the median Mpps; then stop
#       the process it started (by PID) and remove its runtime files.
#     options:
#       --lcores "1"       comma-separated lcore ids; lcore j polls queue j
#                          of both ports (default 1)
#       --seconds S        window length (default 5)
#       --warmup W         seconds after the first forwarded packet (default 3)
#       --windows K        consecutive windows, median reported (default 1)
#       --build DIR        where `build` put it (default $CYGNET_BENCH_BUILD
#                          or /tmp/cygnet-bench)
#       --prefix NAME      EAL --file-prefix (default cygbench-secgw-PID)
#       --mbufs N          packet pool size (default: fits the pcap per queue)
#       --replay-window W  -w option of ipsec-secgw (default: not given)
#       --mtu M            ipsec-secgw --mtu (default 2000, at most 2000: it
#                          silently drops ESP packets longer than the MTU,
#                          so 1500 would drop IMIX's 1514-byte frames once
#                          encapsulated)
#       --keep DIR         keep the log and config in DIR (default: a temp dir,
#                          removed unless the run failed)
#       --sink null|pcap   port 1: net_null0,no-rx=1 (default) or
#                          net_pcap1 with an empty rx_pcap per queue (its TX
#                          queues count and drop; the sink compare.sh uses
#                          for both programs, see README)
#       --json             also print one JSON line with all the figures
#       --label TEXT       free text put in the result line
#       --inbound          the other direction: FILE is ESP (gen_pcap.py
#                          --esp ALG), port 0 unprotected (-u 0x1), port 1
#                          protected, the --inbound config; no -w, so no
#                          replay window (the pcap's sequence numbers repeat)
#   secgw.sh check (--sas N --alg ALG | --cfg FILE --pcap FILE) [--lcores L]
#                  [--build DIR] [--keep DIR] [--inbound]
#       Correctness, not speed: send the pcap once (default: one 200-byte
#       packet per SA) through ipsec-secgw, capture port 1 with net_pcap
#       tx_pcap and decrypt every packet with scapy (esp_check.py): right
#       tunnel, SPI, ICV, and inner dst = the SA's policy. --inbound (with
#       --sas): one ESP packet per SA from gen_pcap.py --esp, and every
#       captured packet must be its flow's cleartext (clear_check.py;
#       ipsec-secgw leaves the TTL as it was).
#
# Exit codes: 0 done, 1 failed (message says why, the log is kept), 2 usage.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=${SECGW_SRC:-/usr/share/dpdk/examples/ipsec-secgw}
PY=/usr/bin/python3
# shellcheck source=common.sh
. "$HERE/common.sh"
DEFAULT_BUILD=${CYGNET_BENCH_BUILD:-/tmp/cygnet-bench}

die() { echo "secgw: $*" >&2; exit 1; }
usage() { sed -n '2,63p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
# ---------------------------------------------------------------- build
cmd_build() {
  local build=${1:-$DEFAULT_BUILD}
  [ $# -le 1 ] || usage
  [ -n "${SECGW_SRC:-}" ] || install_example_build_deps || die "could not install the build's packages"
  [ -f "$SRC/ipsec-secgw.c" ] || die "no ipsec-secgw source at $SRC (apt-get install -y dpdk-doc)"
  command -v pkg-config >/dev/null || die "pkg-config missing (apt-get install -y pkg-config)"
  pkg-config --exists libdpdk || die "pkg-config finds no libdpdk (apt-get install -y libdpdk-dev)"
  command -v make >/dev/null && command -v cc >/dev/null || die "make/cc missing (apt-get install -y build-essential)"
  case "$(realpath -m "$build")/" in
    "$(realpath "$HERE/../..")"/*) die "BUILD_DIR must be outside the repository (ipsec-secgw's code is not to be put in it)";;
  esac
  mkdir -p "$build"
  local dst="$build/secgw"
  rm -rf "$dst" "$build/common"
  cp -r "$SRC" "$dst"
  # ipsec-secgw's Makefile has -I../common (NEON helpers); bring it along.
  [ -d "$SRC/../common" ] && cp -r "$SRC/../common" "$build/common"
  chmod -R u+w "$dst"
  local f="$dst/ipsec-secgw.c"
  grep -q '\.offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,' "$f" \
    || die "cannot find the RX checksum offload line in $f: the source changed, patch by hand"
  sed -i 's/\.offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,/.offloads = 0, \/* patched by cygnet bench: vdevs lack RX checksum offload *\//' "$f"
  grep -q 'RTE_ETH_RX_OFFLOAD_CHECKSUM,' "$f" && die "patch of $f did not apply"
  echo "secgw: building $(pkg-config --modversion libdpdk) ipsec-secgw in $dst"
  make -C "$dst" -j"$(nproc)" >"$build/secgw-build.log" 2>&1 \
    || { tail -30 "$build/secgw-build.log" >&2; die "make failed (full log: $build/secgw-build.log)"; }
  [ -x "$dst/build/ipsec-secgw" ] || die "build produced no $dst/build/ipsec-secgw"
  echo "secgw: built $dst/build/ipsec-secgw"
}

# ---------------------------------------------------------------- config
# Fixed example keys (the same for every SA; they change nothing in speed).
GCM_KEY="2b:7e:15:16:28:ae:d2:a6:ab:f7:15:88:09:cf:4f:3c:ca:fe:ba:be"  # 16-byte key + 4-byte salt
CBC_KEY="2b:7e:15:16:28:ae:d2:a6:ab:f7:15:88:09:cf:4f:3c"
HMAC_KEY="0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b:0b"

write_config() {  # SAS ALG FILE [in]
  local sas=$1 alg=$2 out=$3 dir=${4:-out} crypto
  case "$alg" in
    aes-gcm-128) crypto="aead_algo aes-128-gcm aead_key $GCM_KEY";;
    aes-cbc-128-sha256) crypto="cipher_algo aes-128-cbc cipher_key $CBC_KEY auth_algo sha256-hmac auth_key $HMAC_KEY";;
    *) die "unknown --alg '$alg' (aes-gcm-128 or aes-cbc-128-sha256)";;
  esac
  "$PY" - "$sas" "$alg" "$crypto" "$dir" >"$out" <<'EOF'
import sys
n, alg, crypto, direction = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def ip(a): return "%d.%d.%d.%d" % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)
DST = (10 << 24) | (2 << 16)
w = sys.stdout.write
other = "in" if direction == "out" else "out"
ends = {"out": "src 192.0.2.1 dst 192.0.2.2", "in": "src 192.0.2.2 dst 192.0.2.1"}
w(f"# ipsec-secgw config written by cygnet bench/pipeline/secgw.sh: {n} {direction}bound SAs, {alg}\n")
arrow = "->" if direction == "out" else "<-"
w(f"# {direction}bound policies: dst 10.2.0.0+i/32 {arrow} SA i (SPI 0x1000+i, written in decimal)\n")
for i in range(n):
    w(f"sp ipv4 {direction} esp protect {0x1000 + i} pri 1 dst {ip(DST + i)}/32 sport 0:65535 dport 0:65535\n")
if direction == "out":
    w("# inbound policy (ipsec-secgw needs an inbound SA for the unprotected port)\n")
    w("sp ipv4 in esp protect 1 pri 1 dst 10.1.0.0/16 sport 0:65535 dport 0:65535\n")
else:
    w("# one outbound policy and SA (for the protected port)\n")
    w("sp ipv4 out esp protect 1 pri 1 dst 10.9.0.0/16 sport 0:65535 dport 0:65535\n")
for i in range(n):
    w(f"sa {direction} {0x1000 + i} {crypto} mode ipv4-tunnel {ends[direction]} type cpu-crypto\n")
w(f"sa {other} 1 {crypto} mode ipv4-tunnel {ends[other]} type cpu-crypto\n")
if direction == "out":
    w("# routes: ESP to the peer out of port 1, decrypted traffic back to port 0\n")
    w("rt ipv4 dst 192.0.2.2/32 port 1\n")
    w("rt ipv4 dst 10.1.0.0/16 port 0\n")
else:
    w("# routes: decrypted traffic out of port 1 (protected), ESP to the peer out of port 0\n")
    w("rt ipv4 dst 10.2.0.0/15 port 1\n")
    w("rt ipv4 dst 192.0.2.2/32 port 0\n")
EOF
}

cmd_config() {
  local sas="" alg="" out="" dir=out
  while [ $# -gt 0 ]; do
    case "$1" in
      --sas) sas=${2:?}; shift 2;;
      --alg) alg=${2:?}; shift 2;;
      --inbound) dir=in; shift;;
      -*) echo "secgw: unknown option $1" >&2; usage;;
      *) [ -z "$out" ] || usage; out=$1; shift;;
    esac
  done
  [ -n "$sas" ] && [ -n "$alg" ] && [ -n "$out" ] || usage
  is_uint "$sas" && [ "$sas" -ge 1 ] && [ "$sas" -le 100000 ] || die "--sas must be 1..100000"
  mkdir -p "$out"
  write_config "$sas" "$alg" "$out/secgw.cfg" "$dir"
  echo "secgw: wrote $out/secgw.cfg ($sas ${dir}bound SAs, $alg)"
}

# ---------------------------------------------------------------- run
RUN_PID=""      # the process we started: timeout(1) wrapping ipsec-secgw
RUN_DIR=""
KEEP_RUN_DIR=0
PREFIX=""
SOCK=""
LOG=""
DIRECTION=out   # --inbound: in

stop_ours() {
  [ -n "$RUN_PID" ] || return 0
  if kill -0 "$RUN_PID" 2>/dev/null; then
    # timeout(1) forwards SIGINT to ipsec-secgw, which quits cleanly on it.
    kill -INT "$RUN_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$RUN_PID" 2>/dev/null; then
      echo "secgw: pid $RUN_PID did not stop on SIGINT in 10 s, killing it" >&2
      local child
      for child in $(pgrep -P "$RUN_PID" || true); do kill -KILL "$child" 2>/dev/null || true; done
      kill -KILL "$RUN_PID" 2>/dev/null || true
    fi
  fi
  wait "$RUN_PID" 2>/dev/null || true
  RUN_PID=""
}

BG_PID=""       # a helper of ours (the telemetry sampler) running in the background

# Long helpers run in the background and are waited for, so that a signal to
# this script is handled at once, not when the helper ends.
cleanup_run() {
  local rc=$?
  if [ -n "$BG_PID" ]; then kill "$BG_PID" 2>/dev/null || true; wait "$BG_PID" 2>/dev/null || true; fi
  stop_ours
  remove_prefix_files "$PREFIX"
  if [ -n "$RUN_DIR" ] && [ -d "$RUN_DIR" ]; then
    if [ "$rc" -ne 0 ] || [ "$KEEP_RUN_DIR" -eq 1 ]; then
      echo "secgw: log and config kept in $RUN_DIR" >&2
    else
      rm -rf "$RUN_DIR"
    fi
  fi
  exit "$rc"
}

# Common checks and set-up of run and check; sets globals used by start_secgw.
prepare() {  # PCAP CFG SAS ALG LCORES BUILD KEEP
  local pcap=$1 cfg=$2 sas=$3 alg=$4 lcores=$5 build=$6 keep=$7
  [ -n "$pcap" ] || { echo "secgw: needs --pcap" >&2; usage; }
  [ -r "$pcap" ] || die "cannot read pcap $pcap"
  if [ -z "$cfg" ]; then
    [ -n "$sas" ] && [ -n "$alg" ] || die "needs --cfg FILE or --sas N --alg ALG"
    is_uint "$sas" && [ "$sas" -ge 1 ] && [ "$sas" -le 100000 ] || die "--sas must be 1..100000"
    case "$alg" in aes-gcm-128|aes-cbc-128-sha256) ;; *) die "unknown --alg '$alg' (aes-gcm-128 or aes-cbc-128-sha256)";; esac
  else
    [ -z "$sas" ] && [ -z "$alg" ] || die "give --cfg or --sas/--alg, not both"
    [ -r "$cfg" ] || die "cannot read config $cfg"
  fi
  [[ "$lcores" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--lcores must be a comma-separated list of lcore ids, e.g. \"1\" or \"0,1\""
  [[ "$PREFIX" =~ ^[A-Za-z0-9_.-]+$ ]] || die "--prefix may hold only letters, digits, _ . -"
  BIN="$build/secgw/build/ipsec-secgw"
  [ -x "$BIN" ] || die "no ipsec-secgw binary at $BIN (run: $0 build $build)"
  [ "$(id -u)" -eq 0 ] || die "must run as root (hugepages, /var/run/dpdk)"
  [ -n "$(huge_mounts)" ] || die "no hugetlbfs mounted (bash scripts/hugepages/hugepages.sh reserve)"
  SOCK="/var/run/dpdk/$PREFIX/dpdk_telemetry.v2"
  if [ -e "/var/run/dpdk/$PREFIX" ]; then
    if [ -S "$SOCK" ] && "$PY" "$HERE/telemetry.py" "$SOCK" /info >/dev/null 2>&1; then
      die "a DPDK process already runs with --file-prefix $PREFIX: pick another --prefix"
    fi
    PREFIX_STALE=1
  fi
  IFS=, read -r -a LC <<<"$lcores"
  NQ=${#LC[@]}
  local dup j
  dup=$(printf '%s\n' "${LC[@]}" | sort -n | uniq -d)
  [ -z "$dup" ] || die "--lcores lists lcore $dup twice"
  for j in "${LC[@]}"; do
    [ "$j" -lt "$(nproc)" ] || die "lcore $j does not exist here ($(nproc) CPUs)"
  done
  read -r PCAP_COUNT PCAP_MEAN < <(pcap_count "$pcap") || die "cannot read $pcap"
  [ "${PCAP_COUNT:-0}" -gt 0 ] || die "$pcap holds no packets"

  if [ -n "$keep" ]; then mkdir -p "$keep"; RUN_DIR=$(realpath "$keep"); KEEP_RUN_DIR=1
  else RUN_DIR=$(mktemp -d /tmp/secgw-run.XXXXXX); fi
  trap cleanup_run EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # A dead run of ours with this prefix may have left files: they go now.
  [ "${PREFIX_STALE:-0}" -eq 0 ] || rm -rf "/var/run/dpdk/$PREFIX"
  if [ -z "$cfg" ]; then
    CFG="$RUN_DIR/secgw.cfg"
    write_config "$sas" "$alg" "$CFG" "$DIRECTION"
  else
    CFG=$(realpath "$cfg")
  fi
  NSAS=$(grep -c "^sa $DIRECTION" "$CFG" || true)
  LOG="$RUN_DIR/secgw.log"
}

# start_secgw PORT0_VDEV PORT1_VDEV MBUFS LIMIT_SECONDS [extra app args]
start_secgw() {
  local p0=$1 p1=$2 mbufs=$3 limit=$4
  shift 4
  local qcfg="" j
  for j in $(seq 0 $((NQ - 1))); do qcfg+="(0,$j,${LC[$j]}),(1,$j,${LC[$j]}),"; done
  qcfg=${qcfg%,}
  local lcores
  lcores=$(IFS=,; echo "${LC[*]}")
  local -a eal=(-l "$lcores" -n 4 --no-pci --file-prefix "$PREFIX" --huge-unlink
    --vdev "$p0" --vdev "$p1" --vdev crypto_aesni_mb0)
  local unprotected=0x2
  [ "$DIRECTION" = out ] || unprotected=0x1
  local -a app=(-p 0x3 -P -u "$unprotected" --config="$qcfg" -f "$CFG" -l -s "$mbufs" "$@")
  printf '%q ' "$BIN" "${eal[@]}" -- "${app[@]}" >"$RUN_DIR/cmdline"; echo >>"$RUN_DIR/cmdline"
  echo "secgw: starting $(cat "$RUN_DIR/cmdline")" >&2
  # timeout(1) is the safety net: it ends ipsec-secgw even if this script dies.
  timeout --signal=INT --kill-after=15 "$limit" "$BIN" "${eal[@]}" -- "${app[@]}" \
    </dev/null >"$LOG" 2>&1 &
  RUN_PID=$!
}

# Wait until port 1 has sent packets (start-up with many SAs and ACL rules
# takes seconds), then make sure the telemetry socket is our process's.
wait_forwarding() {  # TIMEOUT
  local t0=$SECONDS
  while :; do
    kill -0 "$RUN_PID" 2>/dev/null || { tail -25 "$LOG" >&2; die "ipsec-secgw exited during start-up (log: $LOG)"; }
    if [ -S "$SOCK" ] && [ "$(port_stat 1 opackets)" -gt 0 ]; then break; fi
    [ $((SECONDS - t0)) -lt "$1" ] || { tail -25 "$LOG" >&2; die "no packet left port 1 within $1 s of start (log: $LOG)"; }
    sleep 0.5
  done
  TPID=$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import telemetry as t
with t.Telemetry(sys.argv[2]) as c: print(c.pid)' "$HERE" "$SOCK")
  [ "$(ps -o ppid= -p "$TPID" | tr -d ' ')" = "$RUN_PID" ] \
    || die "telemetry socket $SOCK is served by pid $TPID, not by the ipsec-secgw we started"
}

cmd_run() {
  local pcap="" cfg="" sas="" alg="" lcores="1" seconds=5 warmup=3 windows=1
  local build=$DEFAULT_BUILD mbufs="" replay="" mtu=2000 keep="" json=0 label="" sink=null
  PREFIX="cygbench-secgw-$$"
  while [ $# -gt 0 ]; do
    case "$1" in
      --pcap) pcap=${2:?}; shift 2;;
      --cfg) cfg=${2:?}; shift 2;;
      --sas) sas=${2:?}; shift 2;;
      --alg) alg=${2:?}; shift 2;;
      --lcores) lcores=${2:?}; shift 2;;
      --seconds) seconds=${2:?}; shift 2;;
      --warmup) warmup=${2:?}; shift 2;;
      --windows) windows=${2:?}; shift 2;;
      --build) build=${2:?}; shift 2;;
      --prefix) PREFIX=${2:?}; shift 2;;
      --mbufs) mbufs=${2:?}; shift 2;;
      --replay-window) replay=${2:?}; shift 2;;
      --mtu) mtu=${2:?}; shift 2;;
      --keep) keep=${2:?}; shift 2;;
      --json) json=1; shift;;
      --label) label=${2:?}; shift 2;;
      --sink) sink=${2:?}; shift 2;;
      --inbound) DIRECTION=in; shift;;
      *) echo "secgw: unknown option $1" >&2; usage;;
    esac
  done
  case "$sink" in null|pcap) ;; *) die "--sink must be null or pcap";; esac
  is_num "$seconds" && is_num "$warmup" || die "--seconds and --warmup must be numbers"
  is_uint "$windows" && [ "$windows" -ge 1 ] || die "--windows must be >= 1"
  [ -z "$mbufs" ] || is_uint "$mbufs" || die "--mbufs must be a number"
  [ -z "$replay" ] || is_uint "$replay" || die "--replay-window must be a number"
  is_uint "$mtu" && [ "$mtu" -ge 576 ] && [ "$mtu" -le 2000 ] || die "--mtu must be 576..2000"
  prepare "$pcap" "$cfg" "$sas" "$alg" "$lcores" "$build" "$keep"
  pcap=$(realpath "$pcap")
  if [ -z "$mbufs" ]; then
    # net_pcap's infinite_rx keeps a copy of the whole pcap in mbufs of the
    # port's pool, per RX queue; add room for rings, caches and crypto.
    mbufs=$(( NQ * PCAP_COUNT + 16384 + NQ * 4096 ))
    [ "$mbufs" -ge 32768 ] || mbufs=32768
  fi
  local pcap_args="" j
  for j in $(seq 1 "$NQ"); do pcap_args+="rx_pcap=$pcap,"; done  # one RX queue per rx_pcap
  local limit
  limit=$("$PY" -c "import math; print(math.ceil(120 + $warmup + $windows * $seconds * 1.5))")
  local -a extra=(--mtu "$mtu")
  [ -z "$replay" ] || extra+=(-w "$replay")
  local sink_dev="net_null0,no-rx=1"
  if [ "$sink" = pcap ]; then
    write_empty_pcap "$RUN_DIR/empty.pcap"
    sink_dev="net_pcap1"
    for j in $(seq 1 "$NQ"); do sink_dev+=",rx_pcap=$RUN_DIR/empty.pcap"; done
  fi
  start_secgw "net_pcap0,${pcap_args}infinite_rx=1" "$sink_dev" "$mbufs" "$limit" "${extra[@]}"
  wait_forwarding 90

  local res s0 s1 load
  run_bg "$RUN_DIR/rate.json" "$PY" "$HERE/telemetry.py" rate "$SOCK" 1 "$warmup" "$seconds" \
    --windows "$windows" --also 0:ipackets --cpu --json \
    || { tail -25 "$LOG" >&2; die "measurement failed (log: $LOG)"; }
  res=$(cat "$RUN_DIR/rate.json")
  s0=$("$PY" "$HERE/telemetry.py" "$SOCK" /ethdev/stats,0)
  s1=$("$PY" "$HERE/telemetry.py" "$SOCK" /ethdev/stats,1)
  load=$(cut -d' ' -f1 /proc/loadavg)
  kill -0 "$RUN_PID" 2>/dev/null || die "ipsec-secgw died during the measurement (log: $LOG)"
  stop_ours

  BENCH_DIRECTION=$DIRECTION \
  "$PY" - "$res" "$s0" "$s1" "$json" "$label" "$pcap" "$PCAP_COUNT" "$PCAP_MEAN" "$NSAS" "$lcores" "$TPID" "$load" <<'EOF'
import json, os, sys
direction = os.environ["BENCH_DIRECTION"]
res = json.loads(sys.argv[1])
s0 = json.loads(sys.argv[2])["/ethdev/stats"]
s1 = json.loads(sys.argv[3])["/ethdev/stats"]
as_json, label, pcap, count, mean, nsas, lcores, pid, load = sys.argv[4:13]
mpps = res["rate"] / 1e6
rates = " ".join(f"{w['rate'] / 1e6:.3f}" for w in res["windows"])
rx = sorted(w["also"]["0:ipackets"] for w in res["windows"])[len(res["windows"]) // 2] / 1e6
rx_total = sum(w["also"]["0:ipackets"] * w["seconds"] for w in res["windows"])
tx_total = sum(w["delta"] for w in res["windows"])
loss = 1 - tx_total / rx_total if rx_total else 0.0
others = sorted(w.get("cpu_others", 0.0) for w in res["windows"])[len(res["windows"]) // 2]
steal = sorted(w.get("cpu_steal", 0.0) for w in res["windows"])[len(res["windows"]) // 2]
gbps = mpps * float(mean) * 8 / 1e3
print(f"secgw: {label + ': ' if label else ''}{mpps:.3f} Mpps out of port 1 "
      f"(median of {len(res['windows'])} x {res['windows'][0]['seconds']:.1f} s: {rates}); "
      f"{gbps:.2f} Gbit/s of {'cleartext' if direction == 'out' else 'ESP'} frames in "
      f"(mean {float(mean):.1f} B); {direction}bound, "
      f"{nsas} SAs, lcores {lcores}; port0 rx {s0['ipackets']} missed {s0['imissed']} "
      f"nombuf {s0['rx_nombuf']}, port1 tx {s1['opackets']} errors {s1['oerrors']}; "
      f"in the windows: rx {rx:.3f} Mpps, {max(0.0, 100 * loss):.2f}% not sent; "
      f"other processes {others:.2f} CPUs, steal {steal:.2f}; loadavg {load}")
if loss > 0.01:
    print(f"secgw: WARNING: {100 * loss:.1f}% of the packets received in the windows were not sent "
          "(dropped by ipsec-secgw: MTU, no SA/route, full rings; see --keep and its log)", file=sys.stderr)
if as_json == "1":
    print(json.dumps({"tool": "ipsec-secgw", "label": label, "direction": direction, "mpps": mpps,
                      "gbps_in": gbps,
                      "rx_mpps": rx, "loss": loss, "cpu_others": others, "cpu_steal": steal,
                      "windows_mpps": [w["rate"] / 1e6 for w in res["windows"]],
                      "pcap": pcap, "pcap_packets": int(count), "mean_frame": float(mean),
                      "sas": int(nsas), "lcores": lcores, "pid": int(pid), "loadavg1": float(load),
                      "port0": s0, "port1": s1}))
EOF
}

# check: send a pcap once (no infinite_rx) through ipsec-secgw, capture port
# 1 with net_pcap tx_pcap and decrypt every packet with scapy (esp_check.py).
cmd_check() {
  local pcap="" cfg="" sas="" alg="" lcores="1" build=$DEFAULT_BUILD keep=""
  PREFIX="cygbench-secgw-check-$$"
  while [ $# -gt 0 ]; do
    case "$1" in
      --pcap) pcap=${2:?}; shift 2;;
      --cfg) cfg=${2:?}; shift 2;;
      --sas) sas=${2:?}; shift 2;;
      --alg) alg=${2:?}; shift 2;;
      --lcores) lcores=${2:?}; shift 2;;
      --build) build=${2:?}; shift 2;;
      --prefix) PREFIX=${2:?}; shift 2;;
      --keep) keep=${2:?}; shift 2;;
      --inbound) DIRECTION=in; shift;;
      *) echo "secgw: unknown option $1" >&2; usage;;
    esac
  done
  local made_pcap=0
  if [ "$DIRECTION" = in ] && { [ -n "$pcap" ] || [ -z "$sas" ] || [ -z "$alg" ]; }; then
    die "check --inbound makes its own ESP packets: give --sas N --alg ALG, not --pcap/--cfg"
  fi
  if [ -z "$pcap" ]; then
    [ -n "$sas" ] || die "check needs --pcap FILE or --sas N (to make one packet per SA)"
    pcap=$(mktemp /tmp/secgw-check.XXXXXX.pcap); made_pcap=1
    local -a gen=(--no-verify)
    [ "$DIRECTION" = out ] || gen=(--esp "$alg" --verify-samples 16)
    "$PY" "$HERE/gen_pcap.py" --size 200 --flows "$sas" --count "$sas" "${gen[@]}" "$pcap" >/dev/null
  fi
  prepare "$pcap" "$cfg" "$sas" "$alg" "$lcores" "$build" "$keep"
  [ "$made_pcap" -eq 0 ] || mv "$pcap" "$RUN_DIR/in.pcap"
  [ "$made_pcap" -eq 0 ] || pcap="$RUN_DIR/in.pcap"
  [ "$NQ" -eq 1 ] || die "check uses one lcore"
  local out="$RUN_DIR/esp.pcap"
  [ "$DIRECTION" = out ] || out="$RUN_DIR/clear.pcap"
  start_secgw "net_pcap0,rx_pcap=$(realpath "$pcap")" "net_pcap1,tx_pcap=$out" \
    $(( PCAP_COUNT + 32768 )) 150 --mtu 2000
  wait_forwarding 90
  local t0=$SECONDS sent=0
  while [ $((SECONDS - t0)) -lt 30 ]; do
    sent=$(port_stat 1 opackets)
    [ "$sent" -lt "$PCAP_COUNT" ] || break
    sleep 0.5
  done
  stop_ours   # net_pcap flushes and closes the capture on a clean exit
  echo "secgw: check: $sent of $PCAP_COUNT packets left port 1 (${DIRECTION}bound)"
  [ "$sent" -eq "$PCAP_COUNT" ] || die "ipsec-secgw sent $sent of $PCAP_COUNT packets (log: $LOG)"
  if [ "$DIRECTION" = in ]; then
    "$PY" "$HERE/clear_check.py" --size 200 --flows "$sas" --expect "$sas" --ttl 64 "$out" \
      || die "cleartext check failed (capture: $out)"
    return
  fi
  local flows
  flows=$("$PY" -c '
import sys
from scapy.all import RawPcapReader, Ether, IP
r = RawPcapReader(sys.argv[1]); print(len({Ether(p)[IP].dst for p, _ in r})); r.close()' "$pcap")
  "$PY" "$HERE/esp_check.py" --cfg "$CFG" --expect "$PCAP_COUNT" --flows "$flows" "$out" \
    || die "ESP check failed (capture: $out)"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  build) cmd_build "$@";;
  config) cmd_config "$@";;
  run) cmd_run "$@";;
  check) cmd_check "$@";;
  -h|--help|help|"") usage;;
  *) echo "secgw: unknown command '$cmd'" >&2; usage;;
esac
