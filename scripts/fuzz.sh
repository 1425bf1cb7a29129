#!/usr/bin/env bash
# Fuzz the IKEv2 message codec (cp/ike/msg/fuzz_decode.cc) with libFuzzer.
#
#   scripts/fuzz.sh [SECONDS]        default 60
#
# Builds the target with clang++ -fsanitize=fuzzer,address,undefined (Debian:
# clang-14, libclang-rt-14-dev) into $FUZZ_BUILD_DIR (default build-fuzz/),
# then runs it for SECONDS on a working corpus seeded from the committed one
# (cp/ike/msg/fuzz_corpus/ is only read: new inputs go to
# $FUZZ_BUILD_DIR/corpus). A crash leaves its input as
# $FUZZ_BUILD_DIR/crash-*; reproduce with  $FUZZ_BUILD_DIR/ikemsg_fuzzer FILE.
# Environment: CXX (default clang++-14, then clang++), FUZZ_JOBS (parallel
# fuzzing processes, default 1), FUZZ_ARGS (more libFuzzer flags).
# Exit status: 0 no crash, non-zero on a crash, a leak or a build failure.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
out=${FUZZ_BUILD_DIR:-$repo/build-fuzz}
case $out in /*) ;; *) out=$repo/$out ;; esac
cxx=${CXX:-$(command -v clang++-14 || command -v clang++ || true)}
if [ -z "$cxx" ]; then
  echo "fuzz.sh: clang++ not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi
mkdir -p "$out/corpus"

flags=(-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I"$repo")
echo "fuzz.sh: building $out/ikemsg_fuzzer with $cxx"
"$cxx" "${flags[@]}" -o "$out/ikemsg_fuzzer" \
  "$repo/cp/ike/msg/fuzz_decode.cc" "$repo/cp/ike/msg/msg.cc" "$repo/shared/ip.cc"

echo "fuzz.sh: fuzzing for ${secs}s"
cd "$out"
# -max_len: IKE messages of interest are small; 4096 keeps the search dense.
jobs=()
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS"); fi
# shellcheck disable=SC2086
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ./ikemsg_fuzzer -max_total_time="$secs" -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$out/" "${jobs[@]}" ${FUZZ_ARGS:-} "$out/corpus" "$repo/cp/ike/msg/fuzz_corpus"
