# shellcheck shell=bash
#
# uml_peer.sh - a real Linux kernel ESP/XFRM peer for end-to-end tests.
#
# Boots ONE user-mode-linux guest (Debian package "user-mode-linux",
# /usr/bin/linux.uml, kernel 6.1) whose NIC is a tap attached to a Linux
# bridge in a network namespace chosen by the caller, and runs many command
# scripts inside it during one boot (a boot costs 2-4 s, a job about 0.1-0.2
# s, so batch your checks).  Needs root, /dev/net/tun, iproute2, kmod
# (/sbin/modprobe), coreutils timeout, util-linux setsid/unshare, procps ps,
# and on most current x86 hosts a C compiler (see FPU below).
#
# Usage (bash):
#
#   source tests/e2e/uml_peer.sh
#   trap uml_stop EXIT
#   uml_start RUN_DIR NETNS BRIDGE GUEST_IP_CIDR GUEST_MAC [GUEST_IP6_CIDR]
#   uml_run  SCRIPT_FILE [TIMEOUT]
#   uml_sh   'shell commands' [TIMEOUT]
#   uml_stop
#
# uml_start RUN_DIR NETNS BRIDGE GUEST_IP_CIDR GUEST_MAC [GUEST_IP6_CIDR]
#   RUN_DIR  host directory shared read-write with the guest (created if
#            missing; same absolute path inside the guest; letters, digits
#            and ._/+@- only).  The harness owns RUN_DIR/{q,r,uml,mem,
#            hosttmp} and the files it writes there (console.log = guest
#            console, guest-init.sh, guest-main.sh, guest.env, modules.log,
#            modules.loaded, ready).
#   NETNS    existing network namespace; BRIDGE an existing bridge in it.
#   A tap with a unique name (UML_PEER_TAP) is created in NETNS and enslaved
#   to BRIDGE.  The guest NIC (eth0) gets GUEST_MAC, GUEST_IP_CIDR (e.g.
#   192.0.2.2/24) and, if given, GUEST_IP6_CIDR (nodad; DAD and router
#   solicitations are off everywhere in the guest, so IPv6 addresses work at
#   once).  Without GUEST_IP6_CIDR, IPv6 is disabled on the NIC (a quiet
#   wire); ipv6 and esp6 are loaded either way.  No default route is set.
#   Modules loaded: ipv6 xfrm_user esp4 esp6 (required) and, where the UML
#   build has them as modules, gcm ghash-generic ctr seqiv echainiv authenc
#   authencesn hmac sha512 cbc chacha20poly1305 chacha_generic
#   poly1305_generic ccm cmac xcbc, plus $UML_EXTRA_MODULES (aes and sha256
#   are built in; tunnel/transport mode and UDP encapsulation are part of
#   xfrm/esp4/esp6).  Kernel module autoload works as well.  Returns 0 once
#   the guest takes jobs; on failure prints why (and the console tail) on
#   stderr, cleans up and returns non-zero.
#
# uml_run SCRIPT_FILE [TIMEOUT]
#   Queues a copy of SCRIPT_FILE; the guest runs it as root with /bin/sh
#   (or its #! interpreter), cwd RUN_DIR, stdin /dev/null, PATH
#   /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin, under
#   `timeout TIMEOUT` (default $UML_RUN_TIMEOUT = 60 s).  Waits for it, then
#   prints its stdout and stderr (interleaved) on stdout and returns its exit
#   code (124 = timed out; 125 = harness error, e.g. no guest running or the
#   guest died).  Works in $(...) and from concurrent subshells; jobs run
#   one at a time in submission order.  A job may leave a daemon running for
#   later jobs (`setsid python3 srv.py > /tmp/srv.log 2>&1 < /dev/null &`).
#   Environment of a job: UML_RUN_DIR, UML_GUEST_IF (eth0), UML_GUEST_IP,
#   UML_GUEST_IP6, UML_GUEST_MAC.  Job files, output and exit codes stay
#   in RUN_DIR/r/ID.{sh,out,rc}.
#
# uml_sh 'COMMANDS' [TIMEOUT]   uml_run for a string instead of a file.
#
# uml_stop
#   Asks the guest to power off (sysrq o; even while a job hangs), waits up
#   to $UML_STOP_TIMEOUT (10 s), then signals the guest's process group and
#   kills whatever is left in the guest's own two sessions (our `timeout`
#   wrapper's, and the one linux.uml makes for itself), never anything
#   else; removes the tap.  Idempotent; safe in an EXIT trap and under
#   set -euo pipefail.
#
# uml_console_tail [N]   last N (40) lines of the guest console, on stderr.
#
# State after uml_start: UML_PEER_RUN (absolute RUN_DIR), UML_PEER_NETNS,
# UML_PEER_TAP, UML_PEER_IF (guest NIC), UML_PEER_SID (pid, session and
# process group of the `timeout` wrapper), UML_PEER_UML_SID (linux.uml's
# main pid and session), UML_PEER_BOOT_MS (launch to ready), UML_PEER_FPU.
# One guest per shell: call uml_start in the shell that calls uml_stop (not
# in a pipeline or $(...)); for two guests use two bash processes.  The
# guest is not a job of the calling shell (a bare `wait` does not wait for
# it).
#
# Tunables (environment, read by uml_start): UML_BIN (/usr/bin/linux.uml),
# UML_MEM (256M), UML_BOOT_TIMEOUT (60 s), UML_LIFETIME (3600 s: hard cap on
# the guest's life), UML_RUN_TIMEOUT (60 s), UML_STOP_TIMEOUT (10 s),
# UML_EXTRA_MODULES, UML_NIC (tuntap | vector, see below), UML_HOST_RW=1
# (no read-only host view, see below), UML_FPU (auto | native | shim),
# UML_XSTATE_SHIM (a prebuilt shim .so), CC (compiler for the shim).
#
# NIC: UML_NIC=tuntap (default) uses UML's plain tap driver: no offloads, so
# the guest puts real MTU-sized frames with complete checksums on the
# bridge, as a NIC would.  UML_NIC=vector uses the vector driver (vec0,
# with gro=1) which passes TSO/GSO super-frames and partial checksums
# through the tap; faster, but tcpdump/AF_PACKET on the bridge see frames
# no wire would carry.
#
# FPU: Debian's linux.uml 6.1 cannot run as is on hosts whose XSAVE area is
# bigger than x87+SSE+AVX (AVX-512, PKRU, AMX): the first guest process dies
# ("ptrace set fp regs failed, errno = 14"), and with XSTATE switched off
# guest programs find their vector registers zeroed after page faults.  On
# such hosts (UML_FPU=auto looks at /proc/cpuinfo) linux.uml runs with
# uml_xstate_shim.c preloaded (built with $CC into RUN_DIR/uml at each
# start, about 0.1 s), which gives every guest thread its full register
# state back; see that file.
#
# How it works: the guest's root is the host's "/" over hostfs, mounted
# read-only, with a tmpfs overlay on top; the UML modules are bind-mounted at
# /usr/lib/modules/<version> and the init pivot_roots into the overlay (so
# the kernel's own modprobe calls see the same tree).  RUN_DIR is mounted
# read-write over hostfs.  The command queue lives in RUN_DIR: the host
# writes the job to RUN_DIR/r/ID.sh and then renames a marker ID_TIMEOUT.job
# into RUN_DIR/q/; the guest polls q/ (readdir, every 50 ms; readdir because
# hostfs caches failed lookups), runs the job, writes r/ID.out and then
# r/ID.rc, which the host polls for (every 20 ms).  linux.uml runs inside
# `ip netns exec NETNS`, in a new session under `timeout UML_LIFETIME`;
# unless UML_HOST_RW=1 also in a private mount namespace where every host
# mount is read-only except RUN_DIR (and a private tmpfs for guest RAM), so
# the guest cannot write the host outside RUN_DIR even through a hostfs
# mount of its own.

# UML_PEER_* are this library's public state, read by callers:
# shellcheck disable=SC2034
UML_BIN=${UML_BIN:-/usr/bin/linux.uml}
_UML_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# FPU state handling of linux.uml: "native", or "shim" (LD_PRELOAD of
# uml_xstate_shim.c, built on first use).  Debian's 6.1 build only copes with
# a host XSAVE area of x87+SSE+AVX; any of these CPU flags means a bigger one.
_uml_fpu_mode() {
  case ${UML_FPU:-auto} in
    native|shim) echo "$UML_FPU"; return;;
  esac
  if grep -m1 '^flags' /proc/cpuinfo | grep -qwE 'avx512f|pku|ospke|mpx|amx_tile|avx10'; then
    echo shim
  else
    echo native
  fi
}

# Build the shim into $1 (or use $UML_XSTATE_SHIM if set).
_uml_build_shim() {
  local out=$1 src=$_UML_LIBDIR/uml_xstate_shim.c cc=${CC:-cc}
  if [ -n "${UML_XSTATE_SHIM:-}" ]; then
    [ -r "$UML_XSTATE_SHIM" ] || { _uml_err "UML_XSTATE_SHIM=$UML_XSTATE_SHIM not readable"; return 1; }
    cp "$UML_XSTATE_SHIM" "$out"; return
  fi
  [ -r "$src" ] || { _uml_err "$src missing"; return 1; }
  command -v "$cc" >/dev/null || { _uml_err "this host needs $src built, but there is no C compiler ($cc); set UML_XSTATE_SHIM or install gcc"; return 1; }
  "$cc" -O2 -shared -fPIC -o "$out" "$src" -ldl 2> "$out.log" || {
    _uml_err "building $src failed:"; cat "$out.log" >&2; return 1; }
}

_uml_err() { echo "uml_peer: $*" >&2; }
_uml_now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }

# True if the guest wrapper (session leader) we started is still running.
_uml_alive() {
  [ -n "${UML_PEER_SID:-}" ] || return 1
  local st
  st=$(cat "/proc/$UML_PEER_SID/stat" 2>/dev/null) || return 1
  st=${st##*) }                      # drop "pid (comm) "
  # field 3 (state) and 22 (starttime) of /proc/PID/stat
  # shellcheck disable=SC2086 # split into fields on purpose
  set -- $st
  [ "$1" != Z ] && [ "$1" != X ] && [ "${20}" = "${UML_PEER_START:-}" ]
}

# linux.uml calls setsid() itself: its main process (the child of our
# `timeout`, once the exec chain ip-netns-exec/unshare/env is through) heads
# a second session holding its helper and guest-userspace processes.
_uml_note_uml_sid() {
  [ -n "${UML_PEER_SID:-}" ] && [ -z "${UML_PEER_UML_SID:-}" ] || return 0
  local pid comm sid
  while read -r pid comm sid; do
    if [ "$comm" = linux.uml ] && [ "$sid" = "$pid" ]; then UML_PEER_UML_SID=$pid; fi
  done < <(ps -o pid=,comm=,sid= --ppid "$UML_PEER_SID" 2>/dev/null)
}

# Live PIDs in the guest's two sessions (all processes there were started
# by us; a session id is not reused while any member lives).
_uml_session_pids() {
  [ -n "${UML_PEER_SID:-}" ] || return 0
  ps -e -o pid=,sid=,stat= 2>/dev/null |
    awk -v a="$UML_PEER_SID" -v b="${UML_PEER_UML_SID:-none}" \
      '($2 == a || $2 == b) && $3 !~ /^Z/ { print $1 }'
}

uml_console_tail() {
  local n=${1:-40}
  [ -n "${UML_PEER_RUN:-}" ] && [ -f "$UML_PEER_RUN/console.log" ] || return 0
  echo "----- uml_peer: guest console (last $n lines of $UML_PEER_RUN/console.log) -----" >&2
  tail -n "$n" "$UML_PEER_RUN/console.log" >&2
  echo "-----" >&2
}

# Pick a tap name (max 15 chars) unused in namespace $1.
_uml_pick_tap() {
  local ns=$1 i name
  for i in 0 1 2 3 4 5 6 7 8 9; do
    name=$(printf 'ut%x%04x' "$$" $(( (RANDOM + i) & 0xffff )))
    name=${name:0:15}
    ip -n "$ns" link show "$name" >/dev/null 2>&1 || { echo "$name"; return 0; }
  done
  return 1
}

_uml_write_guest_files() {
  local run=$1
  # Stage 1: PID 1 on the read-only hostfs root.  Builds the overlay root,
  # binds the modules and RUN_DIR into it and pivot_roots.
  cat > "$run/guest-init.sh" <<'EOF'
#!/bin/sh
# uml_peer guest stage 1 (PID 1, read-only hostfs root). Generated file.
PATH=/usr/sbin:/usr/bin:/sbin:/bin; export PATH
fail() {
  echo "uml-peer-init: FAILED: $*"
  echo o > /proc/sysrq-trigger; sleep 60; exit 1
}
R=${UML_RUN:?}
mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t tmpfs -o mode=755 tmpfs /run || fail "tmpfs /run"
KV=$(uname -r)
M=/usr/lib/uml/modules/$KV
N=/run/root
[ -r /sys/module/overlay ] || insmod "$M/kernel/fs/overlayfs/overlay.ko" || fail "insmod overlay"
mkdir -p /run/upper /run/work $N || fail "mkdir"
mount -t overlay overlay -o lowerdir=/,upperdir=/run/upper,workdir=/run/work $N || fail "overlay"
mkdir -p $N/usr/lib/modules/$KV $N/.oldroot $N$R || fail "mkdir in overlay"
mount --bind $M $N/usr/lib/modules/$KV || fail "bind modules"
mount -t hostfs -o $R hostfs $N$R || fail "hostfs $R"
for d in /proc /sys; do mount --move $d $N$d || fail "move $d"; done
if mountpoint -q /dev; then mount --move /dev $N/dev || fail "move /dev"
else mount -t devtmpfs devtmpfs $N/dev || fail "devtmpfs"; fi
cd $N || fail "cd"
pivot_root . .oldroot || fail "pivot_root"
exec chroot . /bin/bash "$R/guest-main.sh"
fail "exec stage 2"
EOF

  # Stage 2: PID 1 after pivot_root. Modules, network, then the job loop.
  cat > "$run/guest-main.sh" <<'EOF'
#!/bin/bash
# uml_peer guest stage 2 (PID 1 after pivot_root). Generated file.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LC_ALL=C TERM=dumb
RUN=${UML_RUN:?}
. "$RUN/guest.env"
say() { echo "uml-peer-guest: $*"; }
die() {
  say "FAILED: $*"
  printf '%s\n' "$*" > "$RUN/init-error"
  echo o > /proc/sysrq-trigger; sleep 60; exit 1
}
umount -l /.oldroot
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
# fresh /run and /tmp (instead of the host's, seen through the overlay),
# unless RUN_DIR lives below them
case $RUN/ in /run/*) ;; *) mount -t tmpfs -o mode=755 tmpfs /run;; esac
case $RUN/ in /tmp/*) ;; *) mount -t tmpfs -o mode=1777 tmpfs /tmp;; esac
hostname "$UP_HOSTNAME"

if ! modprobe -a $UP_MODULES > "$RUN/modules.log" 2>&1; then
  for m in $UP_MODULES; do modprobe "$m" >/dev/null 2>&1 || echo "missing: $m"; done >> "$RUN/modules.log"
fi
for m in $UP_REQUIRED_MODULES; do
  [ -d "/sys/module/$m" ] || die "required module $m did not load (see $RUN/modules.log)"
done
cut -d' ' -f1 /proc/modules | sort > "$RUN/modules.loaded"

IF=
for d in /sys/class/net/*; do
  n=${d##*/}; [ "$n" = lo ] && continue
  a=$(cat "$d/address" 2>/dev/null)
  if [ "${a,,}" = "${UP_MAC,,}" ]; then IF=$n; break; fi
  [ -z "$IF" ] && IF=$n
done
[ -n "$IF" ] || die "no network interface"

for c in all default "$IF"; do
  p=/proc/sys/net/ipv6/conf/$c
  echo 0 > $p/accept_dad; echo 0 > $p/accept_ra; echo 0 > $p/dad_transmits
done
[ -n "$UP_IP6" ] || echo 1 > /proc/sys/net/ipv6/conf/$IF/disable_ipv6
ip link set lo up || die "lo up"
if [ "$(cat /sys/class/net/$IF/address)" != "${UP_MAC,,}" ]; then
  ip link set dev "$IF" address "$UP_MAC" || die "set MAC"
fi
ip link set dev "$IF" up || die "$IF up"
ip addr add "$UP_IP" dev "$IF" || die "addr $UP_IP"
if [ -n "$UP_IP6" ]; then ip -6 addr add "$UP_IP6" dev "$IF" nodad || die "addr $UP_IP6"; fi

export UML_RUN_DIR=$RUN UML_GUEST_IF=$IF UML_GUEST_IP=$UP_IP UML_GUEST_IP6=$UP_IP6 UML_GUEST_MAC=$UP_MAC
mkfifo /run/uml-peer-nap && exec 9<>/run/uml-peer-nap || die "nap fifo"
shopt -s nullglob
cd "$RUN" || die "cd $RUN"
printf 'if=%s uptime=%s\n' "$IF" "$(cut -d' ' -f1 /proc/uptime)" > "$RUN/ready.tmp"
mv -f "$RUN/ready.tmp" "$RUN/ready"
say "ready (if=$IF)"

run_job() {  # $1 = ID_TIMEOUT.job (a marker; the job itself is r/ID.sh)
  local b=${1%.job} id to job first rc
  to=${b##*_}; id=${b%_*}
  job=$RUN/r/$id.sh
  first=; IFS= read -r first < "$job"
  if [ "${first:0:2}" = '#!' ]; then
    timeout -k 3 "$to" "$job" < /dev/null > "$RUN/r/$id.out" 2>&1
  else
    timeout -k 3 "$to" /bin/sh "$job" < /dev/null > "$RUN/r/$id.out" 2>&1
  fi
  rc=$?
  echo "$rc" > "$RUN/r/$id.rc"
}

# power-off watcher, separate so that a hung job cannot block uml_stop
# (the glob makes bash read the directory: hostfs would cache a failed
# lookup of the plain name)
(
  while :; do
    for f in "$RUN"/q/hal[t]; do
      say "power off requested"; sync; echo o > /proc/sysrq-trigger; sleep 60
    done
    read -r -t 0.1 -u 9 _
  done
) &

# job loop: run queued jobs one at a time, in name (= submission) order;
# the host removes a job's marker once it has read the result
declare -A seen
while :; do
  ran=0
  for f in "$RUN"/q/*_*.job; do
    f=${f##*/}
    [ -z "${seen[$f]:-}" ] || continue
    seen[$f]=1
    run_job "$f"; ran=1
  done
  [ $ran = 1 ] || read -r -t 0.05 -u 9 _
done
EOF
  chmod 755 "$run/guest-init.sh" "$run/guest-main.sh"
}

uml_start() {
  if [ $# -lt 5 ] || [ $# -gt 6 ]; then
    _uml_err "usage: uml_start RUN_DIR NETNS BRIDGE GUEST_IP_CIDR GUEST_MAC [GUEST_IP6_CIDR]"
    return 2
  fi
  if _uml_alive; then _uml_err "a guest is already running in this shell (sid $UML_PEER_SID)"; return 1; fi
  local run=$1 ns=$2 br=$3 ip4=$4 mac=$5 ip6=${6:-}
  local mem=${UML_MEM:-256M} boot_to=${UML_BOOT_TIMEOUT:-60} life=${UML_LIFETIME:-3600}
  local kv moddir tap m fpu

  # --- preflight
  [ "$(id -u)" = 0 ] || { _uml_err "needs root"; return 1; }
  [ -x "$UML_BIN" ] || { _uml_err "$UML_BIN missing (apt-get install user-mode-linux)"; return 1; }
  if [ ! -x /sbin/modprobe ] || [ ! -x /sbin/insmod ]; then _uml_err "/sbin/modprobe missing (apt-get install kmod)"; return 1; fi
  [ -c /dev/net/tun ] || { _uml_err "/dev/net/tun missing"; return 1; }
  for m in ip timeout setsid unshare ps awk; do
    command -v "$m" >/dev/null || { _uml_err "$m missing"; return 1; }
  done
  [[ $ip4 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$ ]] || { _uml_err "bad GUEST_IP_CIDR '$ip4'"; return 2; }
  [[ $mac =~ ^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$ ]] || { _uml_err "bad GUEST_MAC '$mac'"; return 2; }
  if [ -n "$ip6" ] && ! [[ $ip6 =~ ^[0-9a-fA-F:]+/[0-9]{1,3}$ ]]; then _uml_err "bad GUEST_IP6_CIDR '$ip6'"; return 2; fi
  ip netns exec "$ns" true 2>/dev/null || { _uml_err "network namespace '$ns' not found"; return 1; }
  ip -n "$ns" -d link show "$br" 2>/dev/null | grep -qw bridge || { _uml_err "no bridge '$br' in netns '$ns'"; return 1; }
  kv=$("$UML_BIN" --version 2>/dev/null) || { _uml_err "cannot run $UML_BIN --version"; return 1; }
  moddir=/usr/lib/uml/modules/$kv
  [ -f "$moddir/modules.dep" ] || { _uml_err "no UML modules in $moddir"; return 1; }
  mkdir -p "$run" || return 1
  run=$(cd "$run" && pwd -P) || return 1
  [[ $run =~ ^/[A-Za-z0-9._/+@-]*$ ]] || { _uml_err "RUN_DIR '$run' must not contain spaces, commas or '='"; return 2; }
  fpu=$(_uml_fpu_mode)
  # --- run directory (only the harness's own entries are reset)
  rm -rf "$run/q" "$run/r" "$run/uml" "$run/hosttmp" "$run/ready" "$run/ready.tmp" \
         "$run/init-error" "$run/modules.log" "$run/modules.loaded" "$run/console.log"
  if [ -d "$run/mem" ]; then rmdir "$run/mem" 2>/dev/null || true; fi
  mkdir -p "$run/q" "$run/r" "$run/uml" "$run/hosttmp" "$run/mem" || return 1
  local -a preload=()
  if [ "$fpu" = shim ]; then
    _uml_build_shim "$run/uml/xstate_shim.so" || return 1
    preload=(env "LD_PRELOAD=$run/uml/xstate_shim.so")
  fi
  _uml_write_guest_files "$run"
  {
    printf 'UP_IP=%q\nUP_IP6=%q\nUP_MAC=%q\n' "$ip4" "$ip6" "$mac"
    printf 'UP_HOSTNAME=%q\n' "uml-peer"
    printf 'UP_REQUIRED_MODULES=%q\n' "ipv6 xfrm_user esp4 esp6"
    printf 'UP_MODULES=%q\n' "$(_uml_module_list "$moddir" load)"
    printf 'UP_BUILTIN=%q\n' "$(_uml_module_list "$moddir" builtin)"
  } > "$run/guest.env"

  # --- tap in the caller's namespace, on the caller's bridge
  tap=$(_uml_pick_tap "$ns") || { _uml_err "no free tap name"; return 1; }
  ip -n "$ns" tuntap add dev "$tap" mode tap || { _uml_err "cannot create tap $tap in $ns"; return 1; }
  UML_PEER_FPU=$fpu
  UML_PEER_RUN=$run UML_PEER_NETNS=$ns UML_PEER_TAP=$tap UML_PEER_SID='' UML_PEER_START='' UML_PEER_UML_SID=''
  # a bridge port needs no addresses of its own: keep it off the wire
  ip netns exec "$ns" sh -c "echo 1 > /proc/sys/net/ipv6/conf/$tap/disable_ipv6" 2>/dev/null || true
  if ! ip -n "$ns" link set "$tap" master "$br" up; then
    _uml_err "cannot attach $tap to $br"; uml_stop; return 1
  fi

  # --- launch: own session, hard lifetime cap, optional read-only host view
  local -a wrap=(env TMPDIR=/dev/shm)
  if [ "${UML_HOST_RW:-0}" != 1 ]; then
    # Private mount namespace: RUN_DIR stays writable, a private tmpfs backs
    # the guest RAM (TMPDIR), every other mount becomes read-only.
    # shellcheck disable=SC2016
    wrap=(unshare --mount --propagation private bash -c '
      run=$1; shift
      mount --bind "$run" "$run" || exit 97
      mount -t tmpfs -o mode=700 uml-peer-mem "$run/mem" || exit 97
      while read -r _ _ _ _ mp _; do
        mp=$(printf "%b" "${mp//\\/\\0}")
        case $mp in "$run"|"$run"/*) continue;; esac
        mount -o remount,bind,ro "$mp" 2>/dev/null || [ "$mp" != / ] || exit 97
      done < <(tac /proc/self/mountinfo)
      export TMPDIR=$run/mem
      exec "$@"' uml-peer-ro "$run")
  fi
  local nicarg
  case ${UML_NIC:-tuntap} in
    tuntap) nicarg="eth0=tuntap,$tap,$mac";;
    vector) nicarg="vec0:transport=tap,ifname=$tap,mac=$mac,gro=1";;
    *) _uml_err "UML_NIC must be tuntap or vector"; uml_stop; return 2;;
  esac
  local t0; t0=$(_uml_now_ms)
  # ( ... & ): not a job of the caller's shell, so a bare `wait` there does
  # not wait for the guest
  ( setsid bash -c 'echo "$$ $(cut -d" " -f22 /proc/$$/stat)" > "$0"; exec "$@"' "$run/uml/sid" \
    timeout -k 5 "$life" \
    ip netns exec "$ns" "${wrap[@]}" "${preload[@]}" \
    "$UML_BIN" mem="$mem" rootfstype=hostfs rootflags=/ ro init="$run/guest-init.sh" \
      UML_RUN="$run" "$nicarg" \
      printk.time=1 con=null con0=null,fd:1 ssl=null uml_dir="$run/uml" umid=peer \
    < /dev/null > "$run/console.log" 2>&1 & )
  local i
  for i in $(seq 1 250); do [ -s "$run/uml/sid" ] && break; sleep 0.02; done
  if [ -s "$run/uml/sid" ]; then
    read -r UML_PEER_SID UML_PEER_START < "$run/uml/sid"
  else
    _uml_err "guest wrapper did not start"; uml_stop; return 1
  fi

  # --- wait until the guest's job loop is up
  local deadline=$(( $(_uml_now_ms) + boot_to * 1000 ))
  until [ -f "$run/ready" ]; do
    _uml_note_uml_sid
    if ! _uml_alive; then
      _uml_err "guest exited during boot: $(cat "$run/init-error" 2>/dev/null || echo 'see console')"
      uml_console_tail 40; uml_stop; return 1
    fi
    if [ "$(_uml_now_ms)" -ge "$deadline" ]; then
      _uml_err "guest not ready after ${boot_to}s"
      uml_console_tail 40; uml_stop; return 1
    fi
    sleep 0.05
  done
  UML_PEER_BOOT_MS=$(( $(_uml_now_ms) - t0 ))
  _uml_note_uml_sid
  UML_PEER_IF=$(sed -n 's/^if=\([^ ]*\).*/\1/p' "$run/ready")
  return 0
}

# Modules to load in the guest: the required ones plus whichever of the
# wanted ones this UML build has as a module (built-in ones need no loading;
# they are listed in guest.env as UP_BUILTIN for the record).
_uml_module_list() {
  local moddir=$1 kind=$2 m n out='' builtin='' mods bins
  local want="gcm ghash-generic ctr seqiv echainiv authenc authencesn hmac sha256 sha512 cbc aes
              chacha20poly1305 chacha_generic poly1305_generic ccm cmac xcbc ${UML_EXTRA_MODULES:-}"
  # module names as " a b c " with '-' normalised to '_'
  mods=" $(sed -n 's|^\([^:]*/\)\{0,1\}\([^/:]*\)\.ko[^:]*:.*|\2|p' "$moddir/modules.dep" | tr '\n-' ' _') "
  bins=" $(sed -n 's|^\(.*/\)\{0,1\}\([^/]*\)\.ko$|\2|p' "$moddir/modules.builtin" | tr '\n-' ' _') "
  for m in $want; do
    n=${m//-/_}
    if [[ $mods == *" $n "* ]]; then out="$out $m"
    elif [[ $mods == *" ${n}_generic "* ]]; then out="$out ${n}_generic"
    elif [[ $bins == *" $n "* || $bins == *" ${n}_generic "* ]]; then builtin="$builtin $m"
    fi
  done
  if [ "$kind" = builtin ]; then echo "${builtin# }"; else echo "ipv6 xfrm_user esp4 esp6$out"; fi
}

uml_run() {
  local script=${1:-} to=${2:-${UML_RUN_TIMEOUT:-60}}
  if [ -z "$script" ] || [ ! -r "$script" ]; then _uml_err "uml_run: cannot read script '$script'"; return 125; fi
  if ! [[ $to =~ ^[1-9][0-9]*$ ]]; then _uml_err "uml_run: bad timeout '$to'"; return 125; fi
  if [ -z "${UML_PEER_RUN:-}" ] || ! _uml_alive; then _uml_err "uml_run: no guest running"; return 125; fi
  local run=$UML_PEER_RUN id first=''
  id=$(date +%s%N)-${BASHPID}-$RANDOM
  local job=$run/q/${id}_${to}.job
  cp "$script" "$run/r/$id.sh" || return 125
  IFS= read -r first < "$script" || true
  if [ "${first:0:2}" = '#!' ]; then chmod 755 "$run/r/$id.sh"; fi
  { : > "$run/hosttmp/$id.job" && mv "$run/hosttmp/$id.job" "$job"; } || return 125
  local rcf=$run/r/$id.rc rc='' deadline=$(( $(_uml_now_ms) + (to + 15) * 1000 ))
  while :; do
    # a complete rc file ends with a newline (read fails before that)
    if [ -s "$rcf" ] && IFS= read -r rc < "$rcf"; then break; fi
    if ! _uml_alive; then
      _uml_err "uml_run: guest died while running $script"
      cat "$run/r/$id.out" 2>/dev/null; uml_console_tail 20; return 125
    fi
    if [ "$(_uml_now_ms)" -ge "$deadline" ]; then
      _uml_err "uml_run: no result for $script after $((to + 15))s (guest wedged?)"
      cat "$run/r/$id.out" 2>/dev/null; return 124
    fi
    sleep 0.02
  done
  rm -f "$job"
  cat "$run/r/$id.out" 2>/dev/null
  if [ "$rc" = 124 ]; then _uml_err "uml_run: $script timed out after ${to}s"; fi
  return "$rc"
}

uml_sh() {
  [ -n "${UML_PEER_RUN:-}" ] || { _uml_err "uml_sh: no guest running"; return 125; }
  local f
  f=$(mktemp "$UML_PEER_RUN/hosttmp/sh.XXXXXX") || return 125
  printf '%s\n' "${1:-}" > "$f"
  uml_run "$f" "${2:-${UML_RUN_TIMEOUT:-60}}"
  local rc=$?
  rm -f "$f" || true
  return $rc
}

uml_stop() {
  local run=${UML_PEER_RUN:-} i p
  if [ -n "${UML_PEER_SID:-}" ]; then
    _uml_note_uml_sid
    # a guest that is up powers itself off; one still booting is terminated
    if _uml_alive && [ -f "$run/ready" ]; then
      { : > "$run/hosttmp/halt" && mv -f "$run/hosttmp/halt" "$run/q/halt"; } 2>/dev/null || true
      for ((i = 0; i < ${UML_STOP_TIMEOUT:-10} * 20; i++)); do
        _uml_alive || break
        sleep 0.05
      done
    fi
    if _uml_alive; then
      if [ -f "$run/ready" ]; then _uml_err "guest did not power off; terminating it (session $UML_PEER_SID)"; fi
      # timeout passes the signal on to linux.uml
      kill -TERM -- "-$UML_PEER_SID" 2>/dev/null || true
      for ((i = 0; i < 40; i++)); do _uml_alive || break; sleep 0.05; done
    fi
    # whatever is left in the guest's sessions (linux.uml helpers, ptrace-
    # stopped guest processes whose tracer is gone): kill it
    for ((i = 0; i < 3; i++)); do
      p=$(_uml_session_pids)
      [ -n "$p" ] || break
      # shellcheck disable=SC2086
      kill -KILL $p 2>/dev/null || true
      sleep 0.05
    done
  fi
  if [ -n "${UML_PEER_TAP:-}" ] && [ -n "${UML_PEER_NETNS:-}" ]; then
    ip -n "$UML_PEER_NETNS" link del "$UML_PEER_TAP" 2>/dev/null || true
  fi
  if [ -n "$run" ] && [ -d "$run/mem" ]; then rmdir "$run/mem" 2>/dev/null || true; fi
  UML_PEER_SID='' UML_PEER_START='' UML_PEER_UML_SID='' UML_PEER_TAP='' UML_PEER_NETNS=''
  return 0
}
