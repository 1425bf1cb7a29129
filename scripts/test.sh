#!/usr/bin/env bash
# Build Cygnet and run every test suite, on a fresh Debian 12 machine as root.
#
#   scripts/test.sh            install what is missing, then three builds:
#                                build/        everything, -Werror: suites unit, system, interop, bench
#                                build-san/    ASan+UBSan: suite unit
#                                build-tsan/   ThreadSanitizer: the SPD, SAD and shm ring tests
#                                              (data shared with other threads)
#                                build-nodpdk/ -Ddpdk=disabled (cp/ and shared/ only): suite unit
#
# Environment: CYGNET_SKIP_SAN=1 skips the sanitizer builds; CYGNET_BUILD_ROOT
# puts the build folders elsewhere (default: the repository).
# (The ASan and TSan builds skip benchmarks: -Dbench=disabled.)
# Exit status is non-zero if anything fails.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
root=${CYGNET_BUILD_ROOT:-$repo}
# shellcheck source=deps.sh
. "$repo/scripts/deps.sh"

install_missing "${CYGNET_BUILD_PKGS[@]}"

failed=()
step() { echo; echo "=== $* ==="; }

# setup DIR ARGS...: configure (or reconfigure) a build folder.
setup() {
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$repo" "$@" >/dev/null
  else
    meson setup "$dir" "$repo" "$@" >/dev/null
  fi
}

# run_suites DIR SUITE...: build and run the named suites, record failure.
run_suites() {
  local dir=$1; shift
  local args=()
  for s in "$@"; do args+=(--suite "$s"); done
  if ! ninja -C "$dir"; then failed+=("build $dir"); return; fi
  meson test -C "$dir" --print-errorlogs "${args[@]}" || failed+=("tests in $dir ($*)")
}

step "full build (-Werror): unit, system, interop, bench"
setup "$root/build" -Dwerror=true
run_suites "$root/build" unit system interop bench

if [ "${CYGNET_SKIP_SAN:-0}" != 1 ]; then
  step "sanitizer build (ASan+UBSan): unit"
  setup "$root/build-san" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbench=disabled
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=detect_leaks=1 \
    run_suites "$root/build-san" unit
fi

if [ "${CYGNET_SKIP_SAN:-0}" != 1 ]; then
  # The tables published to worker cores (SPD, SAD) are read by one thread
  # while another replaces them: their tests run under ThreadSanitizer too.
  step "ThreadSanitizer build: RCU-published tables and shm rings (dp_spd, dp_sad, shared_shm)"
  setup "$root/build-tsan" -Dwerror=true -Db_sanitize=thread -Db_lundef=false -Dbench=disabled
  if ninja -C "$root/build-tsan" dp/spd/spd_test dp/sad/sad_test shared/shm_test; then
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
      meson test -C "$root/build-tsan" --no-rebuild --print-errorlogs dp_spd dp_sad shared_shm ||
      failed+=("tests in $root/build-tsan (dp_spd dp_sad shared_shm)")
  else
    failed+=("build $root/build-tsan")
  fi
fi

step "control plane only (-Ddpdk=disabled): unit"
setup "$root/build-nodpdk" -Dwerror=true -Ddpdk=disabled -Dbench=disabled
if meson introspect --dependencies "$root/build-nodpdk" | grep -q '"libdpdk"\|IPSec_MB'; then
  failed+=("-Ddpdk=disabled still depends on DPDK or IPsec-MB")
fi
run_suites "$root/build-nodpdk" unit

echo
if [ ${#failed[@]} -ne 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all suites passed"
