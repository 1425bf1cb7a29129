#!/usr/bin/env bash
# System test for scripts/hugepages/hugepages.sh. Restores the reservation it
# found, so it is safe on a machine where something else uses hugepages.
set -uo pipefail
HP=$1
SYS=/sys/kernel/mm/hugepages/hugepages-2048kB
fail=0
check() { if eval "$2"; then echo "ok   - $1"; else echo "FAIL - $1"; fail=1; fi; }

if [ "$(id -u)" -ne 0 ] || [ ! -w "$SYS/nr_hugepages" ]; then
  echo "skipping: needs root and a writable $SYS"; exit 77
fi

before=$(cat $SYS/nr_hugepages)
target=$((before + 8))
mnt=$(mktemp -d /tmp/cygnet-huge.XXXXXX)
export CYGNET_HUGE_MNT=$mnt

out=$(bash "$HP" reserve $target 2>&1); rc=$?
check "reserve exits 0" "[ $rc -eq 0 ]"
check "reserve reaches the target" "[ \$(cat $SYS/nr_hugepages) -ge $target ]"
check "reserve mounts hugetlbfs" "awk -v m=$mnt '\$2==m && \$3==\"hugetlbfs\"{f=1} END{exit !f}' /proc/mounts"
check "reserve reports the count" "grep -q 'reserved $target' <<<\"\$out\""

bash "$HP" reserve $target >/dev/null 2>&1; rc=$?
check "reserve is idempotent" "[ $rc -eq 0 ] && [ \$(grep -c \" $mnt hugetlbfs\" /proc/mounts) -eq 1 ]"
bash "$HP" reserve 1 >/dev/null 2>&1
check "reserve never lowers" "[ \$(cat $SYS/nr_hugepages) -ge $target ]"

out=$(bash "$HP" reserve lots 2>&1); rc=$?
check "bad count is refused with a message" "[ $rc -eq 1 ] && grep -q 'not a number' <<<\"\$out\""
out=$(bash "$HP" frobnicate 2>&1); rc=$?
check "unknown command is a usage error" "[ $rc -eq 2 ] && grep -q 'unknown command' <<<\"\$out\""
out=$(CYGNET_HUGE_SYSFS=/nonexistent bash "$HP" status 2>&1); rc=$?
check "missing sysfs gives a clear error" "[ $rc -eq 1 ] && grep -q 'no 2 MB hugepage support' <<<\"\$out\""

out=$(bash "$HP" status 2>&1); rc=$?
check "status exits 0 and lists the mount" "[ $rc -eq 0 ] && grep -q \"$mnt\" <<<\"\$out\""

bash "$HP" release $before >/dev/null 2>&1; rc=$?
check "release restores the previous count" "[ $rc -eq 0 ] && [ \$(cat $SYS/nr_hugepages) -eq $before ]"
if [ "$before" -eq 0 ]; then
  check "release to 0 unmounts" "! grep -q \" $mnt hugetlbfs\" /proc/mounts"
fi
grep -q " $mnt hugetlbfs" /proc/mounts && umount "$mnt"
rmdir "$mnt"
exit $fail
