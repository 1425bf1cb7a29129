#!/usr/bin/env bash
# cygnet-dp beside DPDK's ipsec-secgw on the same pcap, vdevs and cores,
# interleaved, plus the raw IPsec-MB ceiling per size.
#
#   compare.sh [options]
#
# Cases: every size x SA count x worker count for AES-GCM-128, and the
# --cbc cases for AES-CBC-128 + HMAC-SHA256-128. A case with N SAs uses
# gen_pcap.py --flows N (flow i -> SA i, packets cycling over the flows,
# or in a random order with --shuffle).
# For each case, R rounds of: raw ceiling (ceiling.py: esp_bench
# BM_RawEncrypt on the worker's CPU), cygnet-dp (cygnet.sh run), then
# ipsec-secgw (secgw.sh run), each measured the same way: after --warmup s,
# --windows windows of --seconds s of port 1's opackets through telemetry,
# median of the windows; loss = packets port 0 received in the windows that
# port 1 did not send. The table gives the medians over the rounds.
#
# Ports for both: port 0 = net_pcap0, one rx_pcap=PCAP per worker,
# infinite_rx=1; port 1 = net_pcap1 with an empty rx_pcap per worker (its TX
# queues count and drop: the sink; cygnet-dp's config loader refused
# net_null's no-rx=1 argument before commit 0d6176d, README). Cores: 1 worker = CPU 1
# (cygnet-dp: main lcore 0, worker lcore 1; ipsec-secgw: -l 1). W workers
# with W+1 CPUs: lcores 1..W. W workers on W CPUs: ipsec-secgw -l 0..W-1;
# cygnet-dp config cores main 0, workers 1..W plus --dp-eal (default
# "--lcores 0@0,1@1,2@0,..." putting lcore W on CPU 0 with main).
#
# options:
#   --quick            smoke test: 1 SA, 64 B, 1 worker, GCM only, 1 round,
#                      --seconds 2, 1 window, check with 100 SAs
#   --rounds R         rounds per case (default 3)
#   --seconds S        window length (default 2)
#   --windows K        windows per run (default 5)
#   --warmup W         seconds after the first packet out (default 2)
#   --sizes "..."      default "64 1420 imix"
#   --sas "..."        default "1 1000 10000 100000"
#   --workers "..."    default "1 2"
#   --cbc "SAS:SIZE ..."  AES-CBC+SHA256 cases (default "1:64 1:1420"), "" for none
#   --shuffle          packets in a fixed-seed random flow order (gen_pcap.py
#                      --shuffle), for both programs: with flows in order the
#                      hardware prefetcher hides the many-SA misses
#   --no-ceiling       skip the raw IPsec-MB measurement
#   --no-check         skip the correctness check of cygnet-dp's ESP
#   --check-sas "..."  SA counts of the check, GCM (default "1000 100000";
#                      also CBC with 100 SAs)
#   --quiet-wait S     before each run wait up to S s until other processes
#                      use < 0.25 CPU (default 30; 0 = do not wait)
#   --dp-eal "ARGS"    extra EAL args for cygnet-dp when workers + 1 > CPUs
#   --secgw-build DIR  where `secgw.sh build` put ipsec-secgw (default
#                      $CYGNET_BENCH_BUILD or /tmp/cygnet-bench)
#   --out DIR          keep pcaps, per-run JSON (runs.jsonl), logs of failed
#                      runs, the summary (default: a new /tmp/cygnet-compare.*)
#   --json             also print the summary as one JSON object
#   --perf             perf-record cygnet-dp in the first round of each case
#                      (report in OUT/perf-CASE.txt)
#   --inbound          the other direction: ESP pcaps (gen_pcap.py --esp ALG)
#                      into the unprotected port, decrypted packets counted
#                      (cygnet.sh/secgw.sh run --inbound; cases end in /in).
#                      No ceiling (ceiling.py measures encryption); the check
#                      is cygnet.sh check --inbound
#   --per-cpu-sas      cygnet-dp gets one outbound SA per worker for each
#                      reqid (dp_config.py --per-cpu-sas; cases end in
#                      /percpu); ipsec-secgw keeps one SA shared by its lcores
#
# Exit codes: 0 done (even if some runs failed: they are in the table),
# 1 set-up failed or the check failed, 2 usage.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3

die() { echo "compare: $*" >&2; exit 1; }
usage() { sed -n '2,65p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

ROUNDS=3 SECONDS_W=2 WINDOWS=5 WARMUP=2
SIZES="64 1420 imix" SASL="1 1000 10000 100000" WORKERS="1 2" CBC="1:64 1:1420"
CEILING=1 CHECK=1 CHECK_SAS="1000 100000" QUIET=30 DP_EAL="" OUT="" JSON=0 PERF=0 SHUFFLE=0 INBOUND=0 PERCPU=0
SECGW_BUILD=${CYGNET_BENCH_BUILD:-/tmp/cygnet-bench}
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) ROUNDS=1 SECONDS_W=2 WINDOWS=1 WARMUP=1 SIZES=64 SASL=1 WORKERS=1 CBC="" CHECK_SAS=100; shift;;
    --rounds) ROUNDS=${2:?}; shift 2;;
    --seconds) SECONDS_W=${2:?}; shift 2;;
    --windows) WINDOWS=${2:?}; shift 2;;
    --warmup) WARMUP=${2:?}; shift 2;;
    --sizes) SIZES=${2:?}; shift 2;;
    --sas) SASL=${2:?}; shift 2;;
    --workers) WORKERS=${2:?}; shift 2;;
    --cbc) CBC=${2?}; shift 2;;
    --shuffle) SHUFFLE=1; shift;;
    --no-ceiling) CEILING=0; shift;;
    --no-check) CHECK=0; shift;;
    --check-sas) CHECK_SAS=${2:?}; shift 2;;
    --quiet-wait) QUIET=${2:?}; shift 2;;
    --dp-eal) DP_EAL=${2?}; shift 2;;
    --secgw-build) SECGW_BUILD=${2:?}; shift 2;;
    --out) OUT=${2:?}; shift 2;;
    --json) JSON=1; shift;;
    --perf) PERF=1; shift;;
    --inbound) INBOUND=1; shift;;
    --per-cpu-sas) PERCPU=1; shift;;
    -h|--help) usage;;
    *) echo "compare: unknown option $1" >&2; usage;;
  esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be >= 1"
[[ "$WINDOWS" =~ ^[1-9][0-9]*$ ]] || die "--windows must be >= 1"
[ "$(id -u)" -eq 0 ] || die "must run as root"
[ "$INBOUND" -eq 0 ] || [ "$PERCPU" -eq 0 ] || die "--per-cpu-sas is for the outbound direction"
if [ "$INBOUND" -eq 1 ] && [ "$CEILING" -eq 1 ]; then
  echo "compare: --inbound: no ceiling (ceiling.py measures encryption)" >&2
  CEILING=0
fi
DIR_ARGS=(); CASE_SUFFIX=""
[ "$INBOUND" -eq 0 ] || { DIR_ARGS=(--inbound); CASE_SUFFIX="/in"; }
DP_ARGS=("${DIR_ARGS[@]}")
[ "$PERCPU" -eq 0 ] || { DP_ARGS+=(--per-cpu-sas); CASE_SUFFIX="/percpu"; }
[ -x "$SECGW_BUILD/secgw/build/ipsec-secgw" ] || die "no ipsec-secgw in $SECGW_BUILD (bash $HERE/secgw.sh build $SECGW_BUILD)"
DP_BIN="$REPO/build/dp/app/cygnet-dp"
[ -x "$DP_BIN" ] || die "no $DP_BIN (ninja -C $REPO/build dp/app/cygnet-dp)"
[ "$CEILING" -eq 0 ] || [ -x "$REPO/build/bench/esp_bench" ] || die "no build/bench/esp_bench (or --no-ceiling)"
NCPU=$(nproc)

if [ -z "$OUT" ]; then OUT=$(mktemp -d /tmp/cygnet-compare.XXXXXX); else mkdir -p "$OUT"; OUT=$(realpath "$OUT"); fi
RUNS="$OUT/runs.jsonl"
: >"$RUNS"
echo "compare: results in $OUT" >&2

CHILD=""
on_exit() { if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null || true; wait "$CHILD" 2>/dev/null || true; fi; }
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Children run in the background so that a signal reaches them at once.
bg() { "$@" & CHILD=$!; local rc=0; wait "$CHILD" || rc=$?; CHILD=""; return "$rc"; }

quiet_wait() {  # wait until the machine is idle (nothing of ours runs now)
  [ "$QUIET" -gt 0 ] || return 0
  "$PY" - "$QUIET" <<'EOF' >&2
import os, sys, time
def busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6]
hz = os.sysconf("SC_CLK_TCK")
deadline = time.monotonic() + float(sys.argv[1])
waited = False
while True:
    b0, t0 = busy(), time.monotonic()
    time.sleep(1.0)
    load = (busy() - b0) / hz / (time.monotonic() - t0)
    if load < 0.25:
        break
    if time.monotonic() > deadline:
        print(f"compare: other processes still use {load:.2f} CPUs; running anyway")
        break
    if not waited:
        print(f"compare: other processes use {load:.2f} CPUs; waiting up to {sys.argv[1]} s")
        waited = True
EOF
}

record() {  # TOOL CASE ROUND JSONLINE-or-error
  "$PY" - "$@" >>"$RUNS" <<'EOF'
import json, sys
tool, case, rnd, payload = sys.argv[1:5]
try:
    d = json.loads(payload)
except ValueError:
    d = {"error": payload}
d.update({"tool": tool, "case": case, "round": int(rnd)})
print(json.dumps(d))
EOF
}

# Cases: "alg sas size workers"
CASES=()
for w in $WORKERS; do
  for n in $SASL; do
    for s in $SIZES; do CASES+=("aes-gcm-128 $n $s $w"); done
  done
  for cs in $CBC; do CASES+=("aes-cbc-128-sha256 ${cs%%:*} ${cs##*:} $w"); done
done

echo "compare: machine: $(lscpu | sed -n 's/^Model name: *//p'), $NCPU CPUs; $(pkg-config --modversion libdpdk 2>/dev/null | sed 's/^/DPDK /'); loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "compare: ${#CASES[@]} cases x $ROUNDS rounds; runs: warm-up $WARMUP s, $WINDOWS x $SECONDS_W s windows" >&2

# ---- correctness of cygnet-dp's output
if [ "$CHECK" -eq 1 ]; then
  for n in $CHECK_SAS; do
    echo "compare: check: cygnet-dp ESP, $n SAs, aes-gcm-128" >&2
    bg bash "$HERE/cygnet.sh" check "${DIR_ARGS[@]}" --sas "$n" --alg aes-gcm-128 >"$OUT/check-gcm-$n.txt" 2>&1 \
      || { cat "$OUT/check-gcm-$n.txt" >&2; die "check failed (cygnet-dp, $n SAs, aes-gcm-128)"; }
    grep -E "^(esp_check|clear_check):" "$OUT/check-gcm-$n.txt" >&2
  done
  echo "compare: check: cygnet-dp ESP, 100 SAs, aes-cbc-128-sha256" >&2
  bg bash "$HERE/cygnet.sh" check "${DIR_ARGS[@]}" --sas 100 --alg aes-cbc-128-sha256 >"$OUT/check-cbc-100.txt" 2>&1 \
    || { cat "$OUT/check-cbc-100.txt" >&2; die "check failed (cygnet-dp, 100 SAs, aes-cbc-128-sha256)"; }
  grep -E "^(esp_check|clear_check):" "$OUT/check-cbc-100.txt" >&2
fi

DP_2W_FAILED=""   # worker counts whose cygnet-dp start-up failed (not retried)
for c in "${CASES[@]}"; do
  read -r alg n size w <<<"$c"
  name="$alg/${n}sa/$size/${w}w$CASE_SUFFIX"
  gen=(--size "$size" --flows "$n"); tag="$size-$n"
  [ "$SHUFFLE" -eq 0 ] || { gen+=(--shuffle); tag+="-shuffled"; }
  [ "$INBOUND" -eq 0 ] || { gen+=(--esp "$alg"); tag+="-esp-$alg"; }
  pcap="$OUT/pcap-$tag.pcap"
  [ -s "$pcap" ] || "$PY" "$HERE/gen_pcap.py" "${gen[@]}" "$pcap" >&2
  # cores
  if [ "$NCPU" -ge $((w + 1)) ]; then
    lc=$(seq -s, 1 "$w"); dp_eal=""; ceil_cpu=1
  else
    lc=$(seq -s, 0 $((w - 1)))
    if [ -n "$DP_EAL" ]; then dp_eal=$DP_EAL
    else dp_eal="--lcores 0@0"; for j in $(seq 1 "$w"); do dp_eal+=",$j@$(( j % NCPU ))"; done; fi
    ceil_cpu=1
  fi
  for r in $(seq 1 "$ROUNDS"); do
    echo "compare: == $name round $r/$ROUNDS" >&2
    if [ "$CEILING" -eq 1 ]; then
      quiet_wait
      if res=$(bg "$PY" "$HERE/ceiling.py" --alg "$alg" --cpu "$ceil_cpu" --sizes "$size" --repetitions 5 --min-time 0.1 2>"$OUT/ceiling.err"); then
        record ceiling "$name" "$r" "$res"
      else
        record ceiling "$name" "$r" "ceiling failed: $(tail -1 "$OUT/ceiling.err")"
      fi
    fi
    # cygnet-dp
    if [[ " $DP_2W_FAILED " == *" $w "* ]]; then
      record cygnet-dp "$name" "$r" "not run: cygnet-dp failed to start with $w workers before"
    else
      quiet_wait
      perf_args=()
      [ "$PERF" -eq 0 ] || [ "$r" -ne 1 ] || perf_args=(--perf "$OUT/perf-${name//\//_}.txt")
      log="$OUT/run-cygnet-${name//\//_}-r$r.log"
      if bg bash "$HERE/cygnet.sh" run --pcap "$pcap" --sas "$n" --alg "$alg" --workers "$w" \
           --eal "$dp_eal" --warmup "$WARMUP" --seconds "$SECONDS_W" --windows "$WINDOWS" \
           --label "$name r$r" --json "${DP_ARGS[@]}" "${perf_args[@]}" >"$log.out" 2>"$log"; then
        grep '^cygnet:' "$log.out" >&2 || true
        record cygnet-dp "$name" "$r" "$(grep '^{' "$log.out" | tail -1)"
        rm -f "$log" "$log.out"
      else
        err=$(grep -E '^(cygnet:|EAL:|cygnet-dp:)' "$log" | grep -v 'starting\|kept in' | tail -3 | tr '\n' ' ')
        echo "compare: cygnet-dp FAILED ($name r$r): $err (log: $log)" >&2
        record cygnet-dp "$name" "$r" "failed: $err"
        if grep -q 'exited during start-up' "$log"; then DP_2W_FAILED+=" $w"; fi
      fi
    fi
    # ipsec-secgw
    quiet_wait
    log="$OUT/run-secgw-${name//\//_}-r$r.log"
    if bg bash "$HERE/secgw.sh" run --build "$SECGW_BUILD" --pcap "$pcap" --sas "$n" --alg "$alg" \
         --lcores "$lc" --sink pcap --warmup "$WARMUP" --seconds "$SECONDS_W" --windows "$WINDOWS" \
         --label "$name r$r" --json "${DIR_ARGS[@]}" >"$log.out" 2>"$log"; then
      grep '^secgw:' "$log.out" >&2 || true
      record ipsec-secgw "$name" "$r" "$(grep '^{' "$log.out" | tail -1)"
      rm -f "$log" "$log.out"
    else
      err=$(grep -E '^secgw:' "$log" | grep -v 'starting\|kept in' | tail -2 | tr '\n' ' ')
      echo "compare: ipsec-secgw FAILED ($name r$r): $err (log: $log)" >&2
      record ipsec-secgw "$name" "$r" "failed: $err"
    fi
  done
done

"$PY" "$HERE/compare_report.py" "$RUNS" --json-too "$JSON" | tee "$OUT/summary.txt"
