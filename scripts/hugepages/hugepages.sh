#!/usr/bin/env bash
# Reserve, report and release 2 MB hugepages for DPDK, idempotently.
#
#   hugepages.sh reserve [PAGES]   ensure at least PAGES (default 512 = 1 GiB)
#                                  2 MB pages are reserved and hugetlbfs is
#                                  mounted at $CYGNET_HUGE_MNT (/dev/hugepages)
#   hugepages.sh status            print reserved / free pages and mounts
#   hugepages.sh release [PAGES]   lower the reservation to PAGES (default 0);
#                                  unmounts our mount point when it reaches 0
#
# Never lowers a reservation on `reserve`, never raises it on `release`.
# Exit codes: 0 done, 1 could not do it (message says why), 2 usage.
set -euo pipefail

SYS=${CYGNET_HUGE_SYSFS:-/sys/kernel/mm/hugepages/hugepages-2048kB}
MNT=${CYGNET_HUGE_MNT:-/dev/hugepages}

die() { echo "hugepages: $*" >&2; exit 1; }
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

is_count() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -le 1048576 ]; }

nr() { cat "$SYS/nr_hugepages"; }
free_pages() { cat "$SYS/free_hugepages"; }

need_sysfs() {
  [ -d "$SYS" ] || die "this kernel has no 2 MB hugepage support ($SYS missing)"
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root to change the hugepage reservation"
}

mounted() { awk -v m="$MNT" '$2 == m && $3 == "hugetlbfs" { f=1 } END { exit !f }' /proc/mounts; }

status() {
  need_sysfs
  echo "2MB hugepages: reserved $(nr), free $(free_pages) ($(( $(nr) * 2 )) MiB reserved)"
  local mounts
  mounts=$(awk '$3 == "hugetlbfs" { print "  " $2 " (" $4 ")" }' /proc/mounts)
  if [ -n "$mounts" ]; then echo "hugetlbfs mounts:"; echo "$mounts"; else echo "hugetlbfs mounts: none"; fi
}

reserve() {
  local want=$1
  need_sysfs
  need_root
  local have
  have=$(nr)
  if [ "$have" -lt "$want" ]; then
    echo "$want" > "$SYS/nr_hugepages" 2>/dev/null || true
    have=$(nr)
    if [ "$have" -lt "$want" ]; then
      # The kernel grants what it can; try compacting memory once, then report.
      sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
      echo 1 > /proc/sys/vm/compact_memory 2>/dev/null || true
      echo "$want" > "$SYS/nr_hugepages" 2>/dev/null || true
      have=$(nr)
    fi
    if [ "$have" -lt "$want" ]; then
      die "asked for $want 2 MB pages but the kernel reserved only $have (memory is fragmented or too small; free memory or ask for fewer)"
    fi
  fi
  if ! mounted; then
    mkdir -p "$MNT"
    mount -t hugetlbfs -o pagesize=2M nodev "$MNT" || die "cannot mount hugetlbfs at $MNT"
  fi
  status
}

release() {
  local to=$1
  need_sysfs
  need_root
  if [ "$(nr)" -gt "$to" ]; then
    echo "$to" > "$SYS/nr_hugepages" || die "cannot lower the reservation to $to"
    # Pages in use stay allocated; the kernel frees them as they are released.
    [ "$(nr)" -le "$to" ] || echo "hugepages: $(( $(nr) - to )) pages are still in use and stay reserved" >&2
  fi
  if [ "$to" -eq 0 ] && [ "$(nr)" -eq 0 ] && mounted; then
    umount "$MNT" || echo "hugepages: $MNT is busy, left mounted" >&2
  fi
  status
}

cmd=${1:-status}
case "$cmd" in
  reserve)
    n=${2:-512}; is_count "$n" || die "page count '$n' is not a number between 0 and 1048576"
    reserve "$n" ;;
  release)
    n=${2:-0}; is_count "$n" || die "page count '$n' is not a number between 0 and 1048576"
    release "$n" ;;
  status) status ;;
  -h|--help|help) usage ;;
  *) echo "hugepages: unknown command '$cmd'" >&2; usage ;;
esac
