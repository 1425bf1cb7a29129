#!/usr/bin/env bash
# cygnet-dp in the pipeline benchmark, measured as secgw.sh measures
# ipsec-secgw (same vdevs, same telemetry windows).
#
#   cygnet.sh run --pcap FILE --sas N --alg aes-gcm-128|aes-cbc-128-sha256
#                 [options]
#       Write a config (dp_config.py: N outbound SAs and policies, port 0
#       "in" = net_pcap rx_pcap=FILE,infinite_rx=1 with one rx_pcap per
#       worker, port 1 "out" = the sink), start cygnet-dp, wait for its
#       "ready:" line and for port 1 to send, then after --warmup s read
#       /ethdev/stats,1 opackets over --windows windows of --seconds s
#       through the telemetry socket and print the median Mpps; stop it
#       with SIGTERM (it must exit 0) and remove its runtime files.
#     options:
#       --workers W        worker cores (default 1): config cores main 0,
#                          workers 1..W
#       --eal "ARGS"       extra EAL arguments (after cygnet-dp's --), e.g.
#                          "--lcores 0@0,1@1,2@0" to put 3 lcores on 2 CPUs
#                          (cygnet-dp then drops its own -l)
#       --sink pcap|null   port 1: net_pcap1 with an empty rx_pcap per
#                          queue (default; its TX queues count and drop) or
#                          net_null0,no-rx=1 (needs a loader that accepts
#                          '-' in device argument keys: commit 0d6176d)
#       --seconds S        window length (default 5)
#       --warmup W         seconds after the first forwarded packet (default 3)
#       --windows K        consecutive windows, median reported (default 1)
#       --bin FILE         cygnet-dp (default build/dp/app/cygnet-dp)
#       --shm NAME         shm instance / EAL prefix cygnet-NAME
#                          (default bench-PID)
#       --bypass           bypass policies instead of protect (no ESP: the
#                          pipeline and I/O without crypto)
#       --per-cpu-sas      one outbound SA per worker for each reqid
#                          (dp_config.py --per-cpu-sas): no handoff
#       --inbound          the other direction: FILE is ESP (gen_pcap.py
#                          --esp ALG), port 0 unprotected, port 1 protected,
#                          N inbound SAs without anti-replay (dp_config.py
#                          --inbound); the rate is decrypted packets out
#       --perf FILE        also `perf record` the process for one window
#                          length during the windows, report to FILE
#       --keep DIR         keep the log and config in DIR
#       --json             also print one JSON line with all the figures
#       --label TEXT       free text put in the result line
#   cygnet.sh check --sas N --alg ALG [--inbound] [--bin FILE] [--keep DIR]
#       Correctness, not speed: one 200-byte packet per SA (gen_pcap.py),
#       sent once through cygnet-dp (one worker), port 1 captured with
#       net_pcap tx_pcap, every packet decrypted with scapy (esp_check.py
#       --cygnet CONFIG): right tunnel, SPI, ICV, inner dst = the policy of
#       the SA's reqid, every SA seen. --inbound: the packets are ESP made
#       by gen_pcap.py --esp (python's cryptography, checked by scapy's
#       ESP), and every captured packet must be a flow's cleartext packet,
#       TTL one lower (clear_check.py), every flow seen.
#
# Exit codes: 0 done, 1 failed (message says why, the log is kept), 2 usage.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
# shellcheck source=common.sh
. "$HERE/common.sh"

die() { echo "cygnet: $*" >&2; exit 1; }
usage() { sed -n '2,51p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
RUN_PID=""      # timeout(1) wrapping cygnet-dp
RUN_DIR=""
KEEP_RUN_DIR=0
SHM=""
PREFIX=""
SOCK=""
LOG=""
BG_PID=""
STOP_RC=""

stop_ours() {  # SIGTERM (cygnet-dp stops cleanly on it); STOP_RC = its exit status
  [ -n "$RUN_PID" ] || return 0
  STOP_RC=0
  if kill -0 "$RUN_PID" 2>/dev/null; then
    kill -TERM "$RUN_PID" 2>/dev/null || true   # timeout(1) forwards it
    for _ in $(seq 1 150); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$RUN_PID" 2>/dev/null; then
      echo "cygnet: pid $RUN_PID did not stop on SIGTERM in 15 s, killing it" >&2
      local child
      for child in $(pgrep -P "$RUN_PID" || true); do kill -KILL "$child" 2>/dev/null || true; done
      kill -KILL "$RUN_PID" 2>/dev/null || true
    fi
  fi
  wait "$RUN_PID" 2>/dev/null || STOP_RC=$?
  RUN_PID=""
}

cleanup_run() {
  local rc=$?
  if [ -n "$BG_PID" ]; then kill "$BG_PID" 2>/dev/null || true; wait "$BG_PID" 2>/dev/null || true; fi
  stop_ours
  remove_prefix_files "$PREFIX"
  [ -z "$SHM" ] || rm -f "/dev/shm/cygnet-dp.$SHM"
  if [ -n "$RUN_DIR" ] && [ -d "$RUN_DIR" ]; then
    if [ "$rc" -ne 0 ] || [ "$KEEP_RUN_DIR" -eq 1 ]; then
      echo "cygnet: log and config kept in $RUN_DIR" >&2
    else
      rm -rf "$RUN_DIR"
    fi
  fi
  exit "$rc"
}

prepare() {  # BIN KEEP
  BIN=$1
  [ -x "$BIN" ] || die "no cygnet-dp at $BIN (ninja -C $REPO/build dp/app/cygnet-dp)"
  [ "$(id -u)" -eq 0 ] || die "must run as root (hugepages, /var/run/dpdk)"
  [ -n "$(huge_mounts)" ] || die "no hugetlbfs mounted (bash scripts/hugepages/hugepages.sh reserve)"
  [[ "$SHM" =~ ^[A-Za-z0-9_-]{1,32}$ ]] || die "--shm: 1-32 of [A-Za-z0-9_-]"
  PREFIX="cygnet-$SHM"
  SOCK="/var/run/dpdk/$PREFIX/dpdk_telemetry.v2"
  if [ -e "/var/run/dpdk/$PREFIX" ] && [ -S "$SOCK" ] \
     && "$PY" "$HERE/telemetry.py" "$SOCK" /info >/dev/null 2>&1; then
    PREFIX=""; die "a DPDK process already runs with prefix cygnet-$SHM: pick another --shm"
  fi
  if [ -n "$2" ]; then mkdir -p "$2"; RUN_DIR=$(realpath "$2"); KEEP_RUN_DIR=1
  else RUN_DIR=$(mktemp -d /tmp/cygnet-run.XXXXXX); fi
  trap cleanup_run EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  rm -rf "/var/run/dpdk/$PREFIX"
  LOG="$RUN_DIR/cygnet-dp.log"
}

start_dp() {  # CONF LIMIT_SECONDS EAL_EXTRA...
  local conf=$1 limit=$2
  shift 2
  local -a cmd=("$BIN" -c "$conf" -- --huge-unlink "$@")
  printf '%q ' "${cmd[@]}" >"$RUN_DIR/cmdline"; echo >>"$RUN_DIR/cmdline"
  echo "cygnet: starting $(cat "$RUN_DIR/cmdline")" >&2
  timeout --signal=TERM --kill-after=15 "$limit" "${cmd[@]}" </dev/null >"$LOG" 2>&1 &
  RUN_PID=$!
}

# Until "ready:" and port 1 has sent; then the telemetry socket must be ours.
wait_forwarding() {  # TIMEOUT
  local t0=$SECONDS
  while :; do
    kill -0 "$RUN_PID" 2>/dev/null || { tail -25 "$LOG" >&2; die "cygnet-dp exited during start-up (log: $LOG)"; }
    if grep -q 'ready:' "$LOG" && [ -S "$SOCK" ] && [ "$(port_stat 1 opackets)" -gt 0 ]; then break; fi
    [ $((SECONDS - t0)) -lt "$1" ] || { tail -25 "$LOG" >&2; die "no packet left port 1 within $1 s of start (log: $LOG)"; }
    sleep 0.2
  done
  STARTUP=$((SECONDS - t0))
  TPID=$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import telemetry as t
with t.Telemetry(sys.argv[2]) as c: print(c.pid)' "$HERE" "$SOCK")
  [ "$(ps -o ppid= -p "$TPID" | tr -d ' ')" = "$RUN_PID" ] \
    || die "telemetry socket $SOCK is served by pid $TPID, not by the cygnet-dp we started"
  ARCH=$(sed -n 's/.*ready:.*IPsec-MB \(.*\)$/\1/p' "$LOG" | head -1)
}

cmd_run() {
  local pcap="" sas="" alg="" workers=1 eal="" sink=pcap seconds=5 warmup=3 windows=1 inbound=0
  local bin="$REPO/build/dp/app/cygnet-dp" keep="" json=0 label="" perf="" bypass=0 percpu=0
  SHM="bench-$$"
  while [ $# -gt 0 ]; do
    case "$1" in
      --pcap) pcap=${2:?}; shift 2;;
      --sas) sas=${2:?}; shift 2;;
      --alg) alg=${2:?}; shift 2;;
      --workers) workers=${2:?}; shift 2;;
      --eal) eal=${2?}; shift 2;;
      --sink) sink=${2:?}; shift 2;;
      --seconds) seconds=${2:?}; shift 2;;
      --warmup) warmup=${2:?}; shift 2;;
      --windows) windows=${2:?}; shift 2;;
      --bin) bin=${2:?}; shift 2;;
      --shm) SHM=${2:?}; shift 2;;
      --perf) perf=${2:?}; shift 2;;
      --bypass) bypass=1; shift;;
      --inbound) inbound=1; shift;;
      --per-cpu-sas) percpu=1; shift;;
      --keep) keep=${2:?}; shift 2;;
      --json) json=1; shift;;
      --label) label=${2:?}; shift 2;;
      *) echo "cygnet: unknown option $1" >&2; usage;;
    esac
  done
  [ -n "$pcap" ] && [ -n "$sas" ] && [ -n "$alg" ] || usage
  [ -r "$pcap" ] || die "cannot read pcap $pcap"
  is_uint "$sas" && [ "$sas" -ge 1 ] && [ "$sas" -le 100000 ] || die "--sas must be 1..100000"
  is_uint "$workers" && [ "$workers" -ge 1 ] || die "--workers must be >= 1"
  case "$sink" in null|pcap) ;; *) die "--sink must be pcap or null";; esac
  is_num "$seconds" && is_num "$warmup" || die "--seconds and --warmup must be numbers"
  is_uint "$windows" && [ "$windows" -ge 1 ] || die "--windows must be >= 1"
  [ -z "$perf" ] || command -v perf >/dev/null || die "--perf needs perf (apt-get install -y linux-perf)"
  prepare "$bin" "$keep"
  pcap=$(realpath "$pcap")
  read -r PCAP_COUNT PCAP_MEAN < <(pcap_count "$pcap") || die "cannot read $pcap"
  [ "${PCAP_COUNT:-0}" -gt 0 ] || die "$pcap holds no packets"

  local conf="$RUN_DIR/dp.conf"
  local -a sink_arg=()
  [ "$sink" = pcap ] || sink_arg=(--out-device net_null0,no-rx=1)
  [ "$bypass" -eq 0 ] || sink_arg+=(--bypass)
  [ "$inbound" -eq 0 ] || sink_arg+=(--inbound)
  [ "$percpu" -eq 0 ] || sink_arg+=(--per-cpu-sas)
  "$PY" "$HERE/dp_config.py" --sas "$sas" --alg "$alg" --pcap "$pcap" --pcap-packets "$PCAP_COUNT" \
    --workers "$workers" --shm "$SHM" "${sink_arg[@]}" "$conf" >&2
  local limit
  limit=$("$PY" -c "import math; print(math.ceil(300 + $warmup + $windows * $seconds * 1.5))")
  local -a extra=()
  [ -z "$eal" ] || read -r -a extra <<<"$eal"
  start_dp "$conf" "$limit" "${extra[@]}"
  wait_forwarding 240

  local perf_pid=""
  if [ -n "$perf" ]; then
    ( sleep "$warmup"; perf record -o "$RUN_DIR/perf.data" -p "$TPID" -- sleep "$seconds" \
        >"$RUN_DIR/perf-record.log" 2>&1 ) &
    perf_pid=$!
  fi
  run_bg "$RUN_DIR/rate.json" "$PY" "$HERE/telemetry.py" rate "$SOCK" 1 "$warmup" "$seconds" \
    --windows "$windows" --also 0:ipackets --cpu --json \
    || { tail -25 "$LOG" >&2; die "measurement failed (log: $LOG)"; }
  local res s0 s1 c0 c1 load
  res=$(cat "$RUN_DIR/rate.json")
  s0=$("$PY" "$HERE/telemetry.py" "$SOCK" /ethdev/stats,0)
  s1=$("$PY" "$HERE/telemetry.py" "$SOCK" /ethdev/stats,1)
  c0=$("$PY" "$HERE/telemetry.py" "$SOCK" /cygnet/port,0)
  c1=$("$PY" "$HERE/telemetry.py" "$SOCK" /cygnet/port,1)
  load=$(cut -d' ' -f1 /proc/loadavg)
  kill -0 "$RUN_PID" 2>/dev/null || die "cygnet-dp died during the measurement (log: $LOG)"
  if [ -n "$perf_pid" ]; then
    wait "$perf_pid" || true
    perf report -i "$RUN_DIR/perf.data" --no-children --sort symbol --stdio 2>/dev/null \
      | grep -v '^$' | head -120 >"$perf" || true
    echo "cygnet: perf report in $perf" >&2
  fi
  stop_ours
  [ "$STOP_RC" = 0 ] || { tail -25 "$LOG" >&2; die "cygnet-dp exited with status $STOP_RC on SIGTERM, not 0 (log: $LOG)"; }

  BENCH_DIRECTION=$([ "$inbound" -eq 1 ] && echo in || echo out) \
  "$PY" - "$res" "$s0" "$s1" "$c0" "$c1" "$json" "$label" "$pcap" "$PCAP_COUNT" "$PCAP_MEAN" "$sas" \
    "$workers" "$TPID" "$load" "$ARCH" "$STARTUP" "$eal" <<'EOF'
import json, os, sys
direction = os.environ["BENCH_DIRECTION"]
res = json.loads(sys.argv[1])
s0 = json.loads(sys.argv[2])["/ethdev/stats"]
s1 = json.loads(sys.argv[3])["/ethdev/stats"]
c0 = json.loads(sys.argv[4])["/cygnet/port"]
c1 = json.loads(sys.argv[5])["/cygnet/port"]
as_json, label, pcap, count, mean, nsas, workers, pid, load, arch, startup, eal = sys.argv[6:18]
mpps = res["rate"] / 1e6
rates = " ".join(f"{w['rate'] / 1e6:.3f}" for w in res["windows"])
rx = sorted(w["also"]["0:ipackets"] for w in res["windows"])[len(res["windows"]) // 2] / 1e6
rx_total = sum(w["also"]["0:ipackets"] * w["seconds"] for w in res["windows"])
tx_total = sum(w["delta"] for w in res["windows"])
loss = 1 - tx_total / rx_total if rx_total else 0.0
others = sorted(w.get("cpu_others", 0.0) for w in res["windows"])[len(res["windows"]) // 2]
steal = sorted(w.get("cpu_steal", 0.0) for w in res["windows"])[len(res["windows"]) // 2]
gbps = mpps * float(mean) * 8 / 1e3
drops = {f"{c['name']}:{k[5:]}": v for c in (c0, c1) for k, v in c.items() if k.startswith("drop_") and v}
print(f"cygnet: {label + ': ' if label else ''}{mpps:.3f} Mpps out of port 1 "
      f"(median of {len(res['windows'])} x {res['windows'][0]['seconds']:.1f} s: {rates}); "
      f"{gbps:.2f} Gbit/s of {'cleartext' if direction == 'out' else 'ESP'} frames in "
      f"(mean {float(mean):.1f} B); {direction}bound, "
      f"{nsas} SAs, {workers} worker(s), IPsec-MB {arch}, ready+forwarding after {startup} s; "
      f"port0 rx {s0['ipackets']} missed {s0['imissed']} nombuf {s0['rx_nombuf']}, "
      f"port1 tx {s1['opackets']} errors {s1['oerrors']}; drops {drops or 'none'}; "
      f"in the windows: rx {rx:.3f} Mpps, {max(0.0, 100 * loss):.2f}% not sent; "
      f"other processes {others:.2f} CPUs, steal {steal:.2f}; loadavg {load}")
if loss > 0.01:
    print(f"cygnet: WARNING: {100 * loss:.1f}% of the packets received in the windows were not sent "
          f"(drops: {drops})", file=sys.stderr)
if as_json == "1":
    print(json.dumps({"tool": "cygnet-dp", "label": label, "direction": direction, "mpps": mpps,
                      "gbps_in": gbps,
                      "rx_mpps": rx, "loss": loss, "cpu_others": others, "cpu_steal": steal,
                      "windows_mpps": [w["rate"] / 1e6 for w in res["windows"]],
                      "pcap": pcap, "pcap_packets": int(count), "mean_frame": float(mean),
                      "sas": int(nsas), "workers": int(workers), "eal_extra": eal, "pid": int(pid),
                      "loadavg1": float(load), "ipsec_mb": arch, "startup_s": int(startup),
                      "drops": drops, "port0": s0, "port1": s1}))
EOF
}

cmd_check() {
  local sas="" alg="" bin="$REPO/build/dp/app/cygnet-dp" keep="" inbound=0
  SHM="bench-check-$$"
  while [ $# -gt 0 ]; do
    case "$1" in
      --sas) sas=${2:?}; shift 2;;
      --alg) alg=${2:?}; shift 2;;
      --bin) bin=${2:?}; shift 2;;
      --shm) SHM=${2:?}; shift 2;;
      --keep) keep=${2:?}; shift 2;;
      --inbound) inbound=1; shift;;
      *) echo "cygnet: unknown option $1" >&2; usage;;
    esac
  done
  [ -n "$sas" ] && [ -n "$alg" ] || usage
  is_uint "$sas" && [ "$sas" -ge 1 ] && [ "$sas" -le 100000 ] || die "--sas must be 1..100000"
  prepare "$bin" "$keep"
  local in="$RUN_DIR/in.pcap" out="$RUN_DIR/esp.pcap" conf="$RUN_DIR/dp.conf"
  local -a gen=(--no-verify) dir=()
  if [ "$inbound" -eq 1 ]; then
    out="$RUN_DIR/clear.pcap"
    gen=(--esp "$alg" --verify-samples 16)   # scapy decrypts a sample: the input is right
    dir=(--inbound)
  fi
  "$PY" "$HERE/gen_pcap.py" --size 200 --flows "$sas" --count "$sas" "${gen[@]}" "$in" >&2
  "$PY" "$HERE/dp_config.py" --sas "$sas" --alg "$alg" --pcap "$in" --once --capture "$out" \
    --shm "$SHM" "${dir[@]}" "$conf" >&2
  start_dp "$conf" 300
  wait_forwarding 240
  local t0=$SECONDS sent=0
  while [ $((SECONDS - t0)) -lt 30 ]; do
    sent=$(port_stat 1 opackets)
    [ "$sent" -lt "$sas" ] || break
    sleep 0.5
  done
  sleep 1
  sent=$(port_stat 1 opackets)
  local c0
  c0=$("$PY" "$HERE/telemetry.py" "$SOCK" /cygnet/port,0)
  stop_ours   # net_pcap flushes and closes the capture on a clean exit
  [ "$STOP_RC" = 0 ] || die "cygnet-dp exited with status $STOP_RC on SIGTERM, not 0 (log: $LOG)"
  echo "cygnet: check: $sent of $sas packets left port 1 ($alg$([ "$inbound" -eq 0 ] || echo ", inbound"))"
  [ "$sent" -eq "$sas" ] || die "cygnet-dp sent $sent of $sas packets (port 0: $c0; log: $LOG)"
  if [ "$inbound" -eq 1 ]; then
    "$PY" "$HERE/clear_check.py" --size 200 --flows "$sas" --expect "$sas" "$out" \
      || die "cleartext check failed (capture: $out)"
  else
    "$PY" "$HERE/esp_check.py" --cygnet "$conf" --expect "$sas" --flows "$sas" "$out" \
      || die "ESP check failed (capture: $out)"
  fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  run) cmd_run "$@";;
  check) cmd_check "$@";;
  -h|--help|help|"") usage;;
  *) echo "cygnet: unknown command '$cmd'" >&2; usage;;
esac
