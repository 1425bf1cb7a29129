#!/usr/bin/env bash
# The harness's own floor: what the pipeline benchmark's ports cost with no
# gateway at all. DPDK's `skeleton` example (basicfwd: rx burst of 32 on one
# port, tx on the other, nothing else) on the same vdevs and core as
# cygnet.sh and secgw.sh.
#
#   floor.sh build [BUILD_DIR]
#       Install what it needs (dpdk-doc, make, gcc, pkg-config, libdpdk-dev)
#       with apt-get if missing, copy /usr/share/dpdk/examples/skeleton to
#       BUILD_DIR/skeleton and build it with make + pkg-config libdpdk.
#       Nothing is written in the repository.
#   floor.sh run --pcap FILE [--lcore N] [--warmup W] [--seconds S]
#                [--windows K] [--build DIR]
#       Port 0 = net_pcap rx_pcap=FILE,infinite_rx=1; port 1 = net_pcap
#       with an empty rx_pcap (TX counts and frees: compare.sh's sink).
#       After W s (default 2) read port 1's opackets over K windows
#       (default 5) of S s (default 2) through DPDK telemetry; print the
#       median Mpps and ns per packet; stop the process it started, by PID.
#
# A gateway on this harness cannot be faster than 1 / (floor time + its own
# work per packet); with the raw crypto time (ceiling.py) that bounds every
# gateway's rate (docs/benchmarks.md).
# Exit codes: 0 done, 1 failed, 2 usage.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
# shellcheck source=common.sh
. "$HERE/common.sh"
SRC=${SKELETON_SRC:-/usr/share/dpdk/examples/skeleton}
DEFAULT_BUILD=${CYGNET_BENCH_BUILD:-/tmp/cygnet-bench}

die() { echo "floor: $*" >&2; exit 1; }
usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

cmd_build() {
  local build=${1:-$DEFAULT_BUILD}
  [ $# -le 1 ] || usage
  [ -n "${SKELETON_SRC:-}" ] || install_example_build_deps || die "could not install the build's packages"
  [ -d "$SRC" ] || die "no $SRC (apt-get install dpdk-doc)"
  case "$(realpath -m "$build")/" in "$(realpath "$HERE/../..")"/*) die "BUILD_DIR must be outside the repository";; esac
  mkdir -p "$build"
  rm -rf "$build/skeleton"
  cp -r "$SRC" "$build/skeleton"
  make -C "$build/skeleton" >"$build/skeleton.build.log" 2>&1 || { tail -20 "$build/skeleton.build.log" >&2; die "build failed"; }
  [ -x "$build/skeleton/build/basicfwd" ] || die "no basicfwd after the build"
  echo "floor: built $build/skeleton/build/basicfwd"
}

RUN_PID="" BG_PID="" PREFIX="" RUN_DIR=""
cleanup() {
  local rc=$?
  if [ -n "$BG_PID" ]; then kill "$BG_PID" 2>/dev/null || true; wait "$BG_PID" 2>/dev/null || true; fi
  if [ -n "$RUN_PID" ]; then
    kill -INT "$RUN_PID" 2>/dev/null || true
    local _
    for _ in $(seq 1 20); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$RUN_PID" 2>/dev/null || true
    wait "$RUN_PID" 2>/dev/null || true
  fi
  remove_prefix_files "$PREFIX"
  if [ -n "$RUN_DIR" ]; then
    if [ "$rc" -ne 0 ]; then echo "floor: log kept in $RUN_DIR" >&2; else rm -rf "$RUN_DIR"; fi
  fi
  exit "$rc"
}

cmd_run() {
  local pcap="" lcore=1 warmup=2 seconds=2 windows=5 build=$DEFAULT_BUILD
  while [ $# -gt 0 ]; do
    case "$1" in
      --pcap) pcap=${2:?}; shift 2;;
      --lcore) lcore=${2:?}; shift 2;;
      --warmup) warmup=${2:?}; shift 2;;
      --seconds) seconds=${2:?}; shift 2;;
      --windows) windows=${2:?}; shift 2;;
      --build) build=${2:?}; shift 2;;
      *) echo "floor: unknown option $1" >&2; usage;;
    esac
  done
  [ -n "$pcap" ] || usage
  [ -r "$pcap" ] || die "cannot read pcap $pcap"
  is_uint "$lcore" && [ "$lcore" -lt "$(nproc)" ] || die "--lcore must be a CPU of this machine (0..$(($(nproc) - 1)))"
  is_num "$warmup" && is_num "$seconds" || die "--warmup and --seconds must be numbers"
  is_uint "$windows" && [ "$windows" -ge 1 ] || die "--windows must be >= 1"
  local bin="$build/skeleton/build/basicfwd"
  [ -x "$bin" ] || die "no basicfwd at $bin (run: $0 build $build)"
  [ "$(id -u)" -eq 0 ] || die "must run as root (hugepages, /var/run/dpdk)"
  [ -n "$(huge_mounts)" ] || die "no hugetlbfs mounted (bash scripts/hugepages/hugepages.sh reserve)"
  local count mean
  read -r count mean < <(pcap_count "$pcap") || die "cannot read $pcap"
  [ "${count:-0}" -gt 0 ] || die "$pcap holds no packets"
  # basicfwd's pool is 2 x 8191 mbufs; infinite_rx keeps the whole pcap in it.
  [ "$count" -le 12000 ] || die "$pcap holds $count packets; basicfwd's pool fits at most 12000"
  pcap=$(realpath "$pcap")

  PREFIX="cygbench-floor-$$"
  RUN_DIR=$(mktemp -d /tmp/floor-run.XXXXXX)
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  write_empty_pcap "$RUN_DIR/empty.pcap"
  SOCK="/var/run/dpdk/$PREFIX/dpdk_telemetry.v2"
  timeout --signal=INT --kill-after=10 300 "$bin" -l "$lcore" -n 4 --no-pci --file-prefix "$PREFIX" --huge-unlink \
    --vdev "net_pcap0,rx_pcap=$pcap,infinite_rx=1" --vdev "net_pcap1,rx_pcap=$RUN_DIR/empty.pcap" \
    </dev/null >"$RUN_DIR/log" 2>&1 &
  RUN_PID=$!
  local t0=$SECONDS
  until [ -S "$SOCK" ] && [ "$(port_stat 1 opackets)" -gt 0 ]; do
    kill -0 "$RUN_PID" 2>/dev/null || { tail -20 "$RUN_DIR/log" >&2; die "basicfwd exited during start-up"; }
    [ $((SECONDS - t0)) -lt 60 ] || die "no packet left port 1 within 60 s"
    sleep 0.5
  done
  run_bg "$RUN_DIR/rate.json" "$PY" "$HERE/telemetry.py" rate "$SOCK" 1 "$warmup" "$seconds" \
    --windows "$windows" --cpu --json || die "measurement failed"
  kill -0 "$RUN_PID" 2>/dev/null || die "basicfwd died during the measurement"
  "$PY" - "$(cat "$RUN_DIR/rate.json")" "$mean" "$lcore" <<'EOF'
import json, sys
res = json.loads(sys.argv[1])
mpps = res["rate"] / 1e6
rates = " ".join(f"{w['rate'] / 1e6:.3f}" for w in res["windows"])
others = max(w.get("cpu_others", 0.0) for w in res["windows"])
print(f"floor: {mpps:.3f} Mpps ({1e3 / mpps:.1f} ns per packet) out of port 1, mean frame {float(sys.argv[2]):.1f} B, "
      f"lcore {sys.argv[3]} (median of {len(res['windows'])} windows: {rates}); other processes up to {others:.2f} CPUs")
EOF
}

[ $# -ge 1 ] || usage
cmd=$1; shift
case "$cmd" in
  build) cmd_build "$@";;
  run) cmd_run "$@";;
  *) usage;;
esac
