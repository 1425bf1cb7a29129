# shellcheck shell=bash
#
# strongswan_peer.sh - strongSwan's charon (IKEv2 + userspace ESP) as an
# independent peer in network namespaces, for interop tests.
#
# Needs root, iproute2, util-linux (unshare), /dev/net/tun and Debian's
# strongswan-charon strongswan-swanctl libcharon-extra-plugins
# libstrongswan-extra-plugins (scripts/deps.sh).  Debian 12 ships
# strongSwan 5.9.8; the host kernel may lack ESP entirely, so charon uses
# its kernel-libipsec plugin: ESP in userspace, packets to and from a TUN
# device (ipsec0) in charon's namespace.  See docs/testing-strongswan.md.
#
# Usage (bash):
#
#   source tests/interop/strongswan_peer.sh
#   trap 'ss_cleanup $ID' EXIT
#   ss_setup ID                         namespaces cyg-ss-ID-a / cyg-ss-ID-b
#   ss_charon_start "$SS_NS_B" DIR_B    a charon in namespace b, files in DIR_B
#   ss_write_conn DIR_B c1 192.0.2.2 192.0.2.1 10.2.0.1/32 10.1.0.1/32 \
#       aes128gcm16-prfsha256-x25519 aes128gcm16 0x0123...
#   ss_load DIR_B
#   ...  (the peer under test initiates to 192.0.2.2, or ss_initiate)
#   ss_wait_sa DIR_B c1 net 20 || echo "no SA"
#   ss_cleanup ID
#
# Topology made by ss_setup ID:
#
#   cyg-ss-ID-a                                     cyg-ss-ID-b
#   ss-ID-a 192.0.2.1/24  <------ veth ------>  ss-ID-b 192.0.2.2/24
#           2001:db8:ff::1/64                           2001:db8:ff::2/64
#   lo      10.1.0.1/32 2001:db8:1::1/128       lo      10.2.0.1/32 2001:db8:2::1/128
#
#   (veth names are cut to 15 characters: "ss" + up to 11 characters of ID
#   + "-a"/"-b").  Either namespace may run charon, or the daemon under
#   test.  IPv6 is on but quiet: no DAD, no router solicitations, no RAs,
#   and interfaces made later (charon's ipsec0 TUN) get no link-local
#   address, so no ICMPv6 chatter reaches charon's TUN or its log.
#
# Functions (all return non-zero on failure and say why on stderr):
#
#   ss_setup ID            make the two namespaces and the veth; ID: letters,
#                          digits, '_' (e.g. $$).  Fails, touching nothing
#                          existing, if a namespace of that name exists or
#                          another live run holds ID (then ss_cleanup ID in
#                          this shell does nothing either).
#   ss_cleanup ID          stop every charon started for ID's namespaces (by
#                          recorded PID), delete the namespaces ss_setup ID
#                          made. Idempotent, safe in an EXIT trap; works from
#                          another process too (it reads the state file).
#   ss_charon_start NS DIR start charon in namespace NS; DIR (created) holds
#                          strongswan.conf, swanctl/, run/ (charon's /run),
#                          charon.vici, charon.log (appended to across
#                          restarts), charon.out (stdout/stderr), charon.pid
#                          ("PID STARTTIME").  Waits (SS_START_TIMEOUT, 30 s)
#                          until vici answers.  One charon per namespace
#                          (it binds UDP 500 and 4500 there).
#   ss_charon_stop DIR     TERM the charon of DIR (its recorded PID only),
#                          KILL after SS_STOP_TIMEOUT (10 s); empties DIR/run.
#   ss_charon_pid DIR      print the PID if that charon still runs (else 1).
#   ss_swanctl DIR ARGS... swanctl ARGS against DIR's charon (--uri added).
#   ss_write_conn DIR NAME LOCAL REMOTE LOCAL_TS REMOTE_TS IKE_PROP ESP_PROP PSK [KEY=VALUE...]
#                          write DIR/swanctl/conf.d/NAME.conf: connection NAME
#                          (IKEv2, PSK both ways) with one child (tunnel mode,
#                          start_action none) and its secret.  TS may be
#                          comma lists and must not cover LOCAL or REMOTE
#                          (kernel-libipsec refuses a route that would
#                          swallow the IKE traffic).  IDs: $SS_LOCAL_ID /
#                          $SS_REMOTE_ID (FQDNs, e.g. a.cygnet.test), else
#                          the addresses LOCAL / REMOTE.
#                          KEY=VALUE extras: child=NAME (net), mode=MODE
#                          (kernel-libipsec: tunnel only), encap=yes,
#                          local_id=ID, remote_id=ID,
#                          ike.OPTION=VALUE / child.OPTION=VALUE (any other
#                          swanctl.conf option of the connection / child,
#                          e.g. ike.remote_port=4501, child.rekey_time=0).
#   ss_remove_conns DIR    delete every connection file of DIR (then ss_load
#                          unloads them from charon).
#   ss_load DIR            swanctl --load-all --clear for DIR's files.
#   ss_initiate DIR IKE CHILD [TIMEOUT]   swanctl --initiate, output in
#                          DIR/initiate.out; returns swanctl's status.
#   ss_terminate DIR IKE [TIMEOUT]        swanctl --terminate --ike IKE.
#   ss_sas DIR [raw|pretty] [ARGS...]     swanctl --list-sas (default: the
#                          human-readable listing).
#   ss_wait_sa DIR IKE [CHILD] [TIMEOUT]  wait (TIMEOUT s, default 20) until
#                          IKE SA IKE is ESTABLISHED and, if CHILD is given
#                          and not "", a CHILD SA CHILD is INSTALLED;
#                          returns 1 on timeout, 2 at once if DIR's charon
#                          is not running.
#   ss_wait_no_sa DIR [IKE] [TIMEOUT]     wait until no IKE SA (named IKE,
#                          or none at all) is listed; 1 on timeout, 2 if
#                          the charon is not running.
#   ss_child_counter DIR IKE CHILD FIELD  print FIELD (bytes-in,
#                          bytes-out, packets-in, packets-out) summed over
#                          the INSTALLED CHILD SAs CHILD of IKE SA IKE (0 if
#                          none).
#   ss_log_lines DIR       line count of DIR/charon.log (to grep only what a
#                          step logged: tail -n +$((N + 1))).
#   ss_write_charon_conf DIR  only write DIR/strongswan.conf and
#                          DIR/swanctl/swanctl.conf, for a charon started
#                          by someone else (tests/e2e/two_site.sh starts one
#                          inside the user-mode-linux guest).
#
# Variables after ss_setup: SS_ID, SS_NS_A, SS_NS_B, SS_IF_A, SS_IF_B,
# SS_A4=192.0.2.1 SS_B4=192.0.2.2 SS_A6=2001:db8:ff::1 SS_B6=2001:db8:ff::2,
# SS_IN_A4=10.1.0.1 SS_IN_B4=10.2.0.1 SS_IN_A6=2001:db8:1::1
# SS_IN_B6=2001:db8:2::1.
#
# Tunables (environment): SS_CHARON (/usr/lib/ipsec/charon), SS_SWANCTL
# (swanctl), SS_START_TIMEOUT (30), SS_STOP_TIMEOUT (10), SS_STATE_DIR
# (${TMPDIR:-/tmp}; holds cyg-ss-ID.state, the record of what ss_setup and
# ss_charon_start made), charon log levels read by ss_charon_start:
# SS_LOG_KEYS=1 (ike = 4, chd = 4: charon logs the IKE and ESP keys, for
# tshark/scapy; test beds only), or SS_LOG_IKE (2), SS_LOG_CHD (1),
# SS_LOG_DEFAULT (1), SS_LOG_KNL (1), SS_LOG_NET (1), SS_LOG_ESP (1),
# SS_LOG_CFG (1) (-1: silent); SS_RETRANSMIT_TRIES (3), SS_RETRANSMIT_TIMEOUT (1.0);
# SS_PLUGINS (the `load` list; keep kernel-libipsec before kernel-netlink),
# SS_VICI_URI (the vici socket in strongswan.conf, for charon and swanctl;
# default unix://DIR/charon.vici),
# SS_CHARON_EXTRA (lines added to the charon { } section, e.g.
# "threads = 4").
#
# Only what this file made is ever touched: namespaces it created (listed
# in the state file), processes by the PID (and start time) recorded when
# they were started.

# SS_* below are this library's public state, read by callers:
# shellcheck disable=SC2034
SS_CHARON=${SS_CHARON:-/usr/lib/ipsec/charon}
SS_SWANCTL=${SS_SWANCTL:-swanctl}
SS_A4=192.0.2.1 SS_B4=192.0.2.2
SS_A6=2001:db8:ff::1 SS_B6=2001:db8:ff::2
SS_IN_A4=10.1.0.1 SS_IN_B4=10.2.0.1
SS_IN_A6=2001:db8:1::1 SS_IN_B6=2001:db8:2::1

_ss_err() { echo "strongswan_peer: $*" >&2; }
_ss_now_ms() { local t; t=$(date +%s%N); echo $((t / 1000000)); }
_ss_state() { echo "${SS_STATE_DIR:-${TMPDIR:-/tmp}}/cyg-ss-$1.state"; }

# Start time (field 22 of /proc/PID/stat) of a process: with the PID it
# names one process for good (a PID may be reused, the pair may not).
_ss_starttime() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  # shellcheck disable=SC2086 # fields on purpose
  set -- $st
  [ "$1" != Z ] && [ "$1" != X ] || return 1   # a zombie is gone already
  echo "${20}"
}

# ---------------------------------------------------------------- namespaces

ss_setup() {
  local id=${1:-}
  if ! [[ $id =~ ^[A-Za-z0-9_]+$ ]]; then _ss_err "ss_setup: bad ID '$id'"; return 2; fi
  local a=cyg-ss-$id-a b=cyg-ss-$id-b state ns
  state=$(_ss_state "$id")
  # shellcheck disable=SC2034 # public state
  SS_ID=$id SS_NS_A=$a SS_NS_B=$b
  SS_IF_A=ss${id:0:11}-a SS_IF_B=ss${id:0:11}-b
  mkdir -p "$(dirname "$state")" || return 1
  if [ -s "$state" ]; then
    if _ss_state_live "$state"; then
      # another run uses this ID: ss_cleanup in this shell must not touch it
      _SS_FOREIGN_IDS="${_SS_FOREIGN_IDS:-} $id "
      _ss_err "ss_setup: ID $id is in use ($state lists live namespaces or charons); left alone"
      return 1
    fi
    rm -f "$state"   # stale record of a run that was killed
  fi
  : > "$state" || return 1
  for ns in "$a" "$b"; do
    if ip netns list | awk '{print $1}' | grep -qxF "$ns"; then
      _ss_err "ss_setup: namespace $ns exists already (not made by this run; left alone)"
      return 1
    fi
    ip netns add "$ns" || { _ss_err "ss_setup: ip netns add $ns failed"; return 1; }
    echo "ns $ns" >> "$state"
  done
  for ns in "$a" "$b"; do
    # IPv6 quiet: no DAD, no router solicitations, no RAs; set before the
    # veth exists so it inherits them.
    ip netns exec "$ns" sysctl -qw \
      net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
      net.ipv6.conf.all.dad_transmits=0 net.ipv6.conf.default.dad_transmits=0 \
      net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0 \
      net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 >/dev/null ||
      { _ss_err "ss_setup: sysctl in $ns failed"; return 1; }
    ip -n "$ns" link set lo up || return 1
  done
  ip -n "$a" link add "$SS_IF_A" type veth peer name "$SS_IF_B" netns "$b" ||
    { _ss_err "ss_setup: veth failed"; return 1; }
  if ! { ip -n "$a" addr add "$SS_A4/24" dev "$SS_IF_A" &&
    ip -n "$b" addr add "$SS_B4/24" dev "$SS_IF_B" &&
    ip -n "$a" -6 addr add "$SS_A6/64" dev "$SS_IF_A" nodad &&
    ip -n "$b" -6 addr add "$SS_B6/64" dev "$SS_IF_B" nodad &&
    ip -n "$a" addr add "$SS_IN_A4/32" dev lo &&
    ip -n "$b" addr add "$SS_IN_B4/32" dev lo &&
    ip -n "$a" -6 addr add "$SS_IN_A6/128" dev lo nodad &&
    ip -n "$b" -6 addr add "$SS_IN_B6/128" dev lo nodad &&
    ip -n "$a" link set "$SS_IF_A" up && ip -n "$b" link set "$SS_IF_B" up; }; then
    _ss_err "ss_setup: addresses failed"; return 1
  fi
  for ns in "$a" "$b"; do
    # Interfaces made from now on (charon's ipsec0) get no IPv6 link-local
    # address: nothing of the kernel's own ICMPv6 (MLD, RS) goes into the TUN.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.addr_gen_mode=1 >/dev/null || true
  done
  # The wire must work before anyone builds on it.  IPv4 does at once;
  # the first ping6 over a fresh veth gets its answer only about 1 s after
  # the link came up (every time here, whatever the ND retransmit time).
  local i up=1
  for i in $(seq 1 20); do
    ip netns exec "$a" ping -c1 -W0.5 -q "$SS_B4" >/dev/null 2>&1 &&
      ip netns exec "$a" ping -6 -c1 -W0.5 -q "$SS_B6" >/dev/null 2>&1 && { up=0; break; }
    sleep 0.1
  done
  [ "$up" = 0 ] && return 0
  _ss_err "ss_setup: the veth between $a and $b passes no traffic"
  return 1
}

# True if a state file names a namespace that exists or a charon that runs.
_ss_state_live() {
  local kind val
  while read -r kind val; do
    case $kind in
      ns) ip netns list | awk '{print $1}' | grep -qxF "$val" && return 0 ;;
      dir) ss_charon_pid "$val" >/dev/null && return 0 ;;
    esac
  done < "$1"
  return 1
}

ss_cleanup() {
  local id=${1:-${SS_ID:-}} state kind val
  [ -n "$id" ] || return 0
  case ${_SS_FOREIGN_IDS:-} in *" $id "*) return 0 ;; esac
  state=$(_ss_state "$id")
  [ -f "$state" ] || return 0
  # first every charon (they need the namespace to say goodbye), then the
  # namespaces, newest first
  while read -r kind val; do
    [ "$kind" = dir ] && ss_charon_stop "$val"
  done < "$state"
  tac "$state" | while read -r kind val; do
    if [ "$kind" = ns ] && ip netns list | awk '{print $1}' | grep -qxF "$val"; then
      ip netns del "$val" || _ss_err "ss_cleanup: ip netns del $val failed"
    fi
  done
  rm -f "$state"
  return 0
}

# ---------------------------------------------------------------- charon

_ss_vici() {
  if [ -n "${SS_VICI_URI:-}" ]; then echo "$SS_VICI_URI"; return; fi
  echo "unix://$(cd "$1" 2>/dev/null && pwd || echo "$1")/charon.vici"
}

_ss_write_strongswan_conf() {
  local dir=$1 ike chd
  ike=${SS_LOG_IKE:-2} chd=${SS_LOG_CHD:-1}
  if [ "${SS_LOG_KEYS:-0}" = 1 ]; then ike=4 chd=4; fi
  cat > "$dir/strongswan.conf" <<EOF
# Generated by tests/interop/strongswan_peer.sh (ss_charon_start).
charon {
	# Only these plugins.  With kernel-libipsec, it must come BEFORE
	# kernel-netlink: the first kernel IPsec backend registered wins, and
	# kernel-netlink's (XFRM) fails on a kernel without ESP ("Function not
	# implemented"); kernel-netlink then only does addresses and routes.
	load_modular = no
	load = ${SS_PLUGINS:-random nonce openssl aes sha1 sha2 hmac gcm chapoly curve25519 gmp kdf kernel-libipsec kernel-netlink socket-default vici}
	port = 500
	port_nat_t = 4500
	retransmit_tries = ${SS_RETRANSMIT_TRIES:-3}
	retransmit_timeout = ${SS_RETRANSMIT_TIMEOUT:-1.0}
	install_virtual_ip = no
${SS_CHARON_EXTRA:-}
	plugins {
		vici {
			socket = ${SS_VICI_URI:-unix://$dir/charon.vici}
		}
	}
	filelog {
		main {
			path = $dir/charon.log
			time_format = %H:%M:%S
			append = yes
			flush_line = yes
			default = ${SS_LOG_DEFAULT:-1}
			# ike/chd = 4 log the IKE and CHILD SA keys: test beds only
			ike = $ike
			chd = $chd
			knl = ${SS_LOG_KNL:-1}
			net = ${SS_LOG_NET:-1}
			esp = ${SS_LOG_ESP:-1}
			cfg = ${SS_LOG_CFG:-1}
		}
	}
	syslog {
		daemon {
			default = -1
		}
	}
}
swanctl {
	socket = ${SS_VICI_URI:-unix://$dir/charon.vici}
}
EOF
}

# Write the swanctl.conf that includes the per-connection files.
_ss_write_swanctl_conf() {
  local d=$1/swanctl s
  mkdir -p "$d/conf.d" || return 1
  # swanctl takes its credential folders next to --file: empty ones keep
  # it quiet
  for s in x509 x509ca x509ocsp x509aa x509ac x509crl pubkey private rsa ecdsa bliss pkcs8 pkcs12; do
    mkdir -p "$d/$s"
  done
  [ -f "$d/swanctl.conf" ] || cat > "$d/swanctl.conf" <<'EOF'
# Generated by tests/interop/strongswan_peer.sh: one file per connection
# (ss_write_conn) in conf.d/.
include conf.d/*.conf
EOF
}

ss_write_charon_conf() {
  local dir=${1:-}
  [ -n "$dir" ] || { _ss_err "usage: ss_write_charon_conf DIR"; return 2; }
  mkdir -p "$dir" && _ss_write_strongswan_conf "$dir" && _ss_write_swanctl_conf "$dir"
}

ss_charon_pid() {
  local dir=${1:-} pid st
  [ -f "$dir/charon.pid" ] || return 1
  read -r pid st < "$dir/charon.pid" || return 1
  [ -n "$pid" ] && [ "$(_ss_starttime "$pid")" = "$st" ] || return 1
  echo "$pid"
}

ss_charon_start() {
  local ns=${1:-} dir=${2:-}
  if [ -z "$ns" ] || [ -z "$dir" ]; then _ss_err "usage: ss_charon_start NS DIR"; return 2; fi
  [ -x "$SS_CHARON" ] || { _ss_err "charon not found at $SS_CHARON"; return 1; }
  if ! ip netns list | awk '{print $1}' | grep -qxF "$ns"; then _ss_err "ss_charon_start: no namespace $ns"; return 1; fi
  mkdir -p "$dir" || return 1
  dir=$(cd "$dir" && pwd) || return 1
  case $dir in *[!A-Za-z0-9._/+@-]*) _ss_err "ss_charon_start: DIR '$dir' has characters strongswan.conf would need quoted"; return 1;; esac
  if [ ${#dir} -gt 90 ]; then _ss_err "ss_charon_start: DIR path too long for a unix socket: $dir"; return 1; fi
  local pid
  if pid=$(ss_charon_pid "$dir"); then _ss_err "ss_charon_start: charon $pid of $dir runs already"; return 1; fi
  # this DIR belongs to the namespaces' run: ss_cleanup stops it
  local id=${ns#cyg-ss-}; id=${id%-[ab]}
  if [ "$ns" != "$id" ] && [ -f "$(_ss_state "$id")" ]; then
    grep -qxF "dir $dir" "$(_ss_state "$id")" || echo "dir $dir" >> "$(_ss_state "$id")"
  fi
  rm -rf "$dir/run"; mkdir -p "$dir/run" || return 1
  rm -f "$dir/charon.vici" "$dir/charon.pid"
  _ss_write_strongswan_conf "$dir" && _ss_write_swanctl_conf "$dir" || return 1
  echo "$ns" > "$dir/netns"
  # charon hard-codes /var/run/charon.pid (and refuses to start if it names
  # a live process): each charon gets its own /run, DIR/run bind-mounted in
  # a private mount namespace.  ip netns exec, unshare, sh and env all
  # exec, so $! is charon itself.
  # shellcheck disable=SC2016 # expanded by that sh
  ip netns exec "$ns" unshare -m --propagation private \
    sh -c 'mount --bind "$1" /run && exec env STRONGSWAN_CONF="$2" "$3"' \
    ss-charon "$dir/run" "$dir/strongswan.conf" "$SS_CHARON" \
    < /dev/null >> "$dir/charon.out" 2>&1 &
  pid=$!
  local st
  st=$(_ss_starttime "$pid") || { _ss_err "charon exited at once:"; tail -5 "$dir/charon.out" >&2; return 1; }
  echo "$pid $st" > "$dir/charon.pid"
  local deadline=$(( $(_ss_now_ms) + ${SS_START_TIMEOUT:-30} * 1000 ))
  until ss_swanctl "$dir" --stats >/dev/null 2>&1; do
    if ! ss_charon_pid "$dir" >/dev/null; then
      _ss_err "charon in $ns exited during start-up:"
      tail -n 10 "$dir/charon.out" "$dir/charon.log" >&2 2>/dev/null
      wait "$pid" 2>/dev/null
      rm -f "$dir/charon.pid"
      return 1
    fi
    if [ "$(_ss_now_ms)" -ge "$deadline" ]; then
      _ss_err "charon in $ns: vici not answering after ${SS_START_TIMEOUT:-30}s; stopping it"
      ss_charon_stop "$dir"
      return 1
    fi
    sleep 0.05
  done
  return 0
}

ss_charon_stop() {
  local dir=${1:-} pid i
  [ -n "$dir" ] || return 0
  if pid=$(ss_charon_pid "$dir"); then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < ${SS_STOP_TIMEOUT:-10} * 20; i++)); do
      ss_charon_pid "$dir" >/dev/null || break
      sleep 0.05
    done
    if ss_charon_pid "$dir" >/dev/null; then
      _ss_err "charon $pid ($dir) still running after ${SS_STOP_TIMEOUT:-10}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null
      for ((i = 0; i < 40; i++)); do ss_charon_pid "$dir" >/dev/null || break; sleep 0.05; done
    fi
    # reap it if it is our child (no-op otherwise)
    wait "$pid" 2>/dev/null
  fi
  rm -f "$dir/charon.pid" "$dir/charon.vici"
  if [ -d "$dir/run" ]; then rm -rf "${dir:?}/run"/* 2>/dev/null; fi
  return 0
}

ss_swanctl() {
  local dir=${1:-}
  [ -n "$dir" ] || { _ss_err "usage: ss_swanctl DIR ARGS..."; return 2; }
  shift
  STRONGSWAN_CONF=$dir/strongswan.conf "$SS_SWANCTL" "$@" --uri "$(_ss_vici "$dir")"
}

# ---------------------------------------------------------------- connections

ss_write_conn() {
  if [ $# -lt 9 ]; then
    _ss_err "usage: ss_write_conn DIR NAME LOCAL REMOTE LOCAL_TS REMOTE_TS IKE_PROPOSAL ESP_PROPOSAL PSK [KEY=VALUE...]"
    return 2
  fi
  local dir=$1 name=$2 local=$3 remote=$4 lts=$5 rts=$6 ike=$7 esp=$8 psk=$9
  shift 9
  local child=net mode=tunnel encap=no lid=${SS_LOCAL_ID:-$local} rid=${SS_REMOTE_ID:-$remote}
  local ike_extra="" child_extra="" kv
  for kv in "$@"; do
    case $kv in
      child=*) child=${kv#child=} ;;
      mode=*) mode=${kv#mode=} ;;
      encap=*) encap=${kv#encap=} ;;
      local_id=*) lid=${kv#local_id=} ;;
      remote_id=*) rid=${kv#remote_id=} ;;
      ike.*=*) kv=${kv#ike.}; ike_extra+=$'\t\t'"${kv%%=*} = ${kv#*=}"$'\n' ;;
      child.*=*) kv=${kv#child.}; child_extra+=$'\t\t\t\t'"${kv%%=*} = ${kv#*=}"$'\n' ;;
      *) _ss_err "ss_write_conn: unknown extra '$kv'"; return 2 ;;
    esac
  done
  if ! [[ $name =~ ^[A-Za-z0-9_-]+$ && $child =~ ^[A-Za-z0-9_-]+$ ]]; then
    _ss_err "ss_write_conn: connection/child names: letters, digits, _ and - only"; return 2
  fi
  [ "$mode" = tunnel ] ||
    _ss_err "ss_write_conn: note: kernel-libipsec (5.9.8) installs tunnel-mode SAs only; '$mode' fails with 'IPsec SA: unsupported mode'"
  _ss_write_swanctl_conf "$dir" || return 1
  # a PSK that is not 0x/0s-encoded goes in quotes
  case $psk in 0x*|0s*) ;; *) psk="\"${psk//\"/\\\"}\"" ;; esac
  cat > "$dir/swanctl/conf.d/$name.conf" <<EOF
# Generated by tests/interop/strongswan_peer.sh (ss_write_conn).
connections {
	$name {
		version = 2
		local_addrs = $local
		remote_addrs = $remote
		proposals = $ike
		encap = $encap
		mobike = no
		dpd_delay = 0
$ike_extra		local {
			auth = psk
			id = $lid
		}
		remote {
			auth = psk
			id = $rid
		}
		children {
			$child {
				local_ts = $lts
				remote_ts = $rts
				esp_proposals = $esp
				mode = $mode
				start_action = none
				dpd_action = clear
$child_extra			}
		}
	}
}
secrets {
	ike-$name {
		id-1 = $lid
		id-2 = $rid
		secret = $psk
	}
}
EOF
  chmod 600 "$dir/swanctl/conf.d/$name.conf"
}

ss_remove_conns() {
  local dir=${1:-}
  [ -d "$dir/swanctl/conf.d" ] && rm -f "$dir/swanctl/conf.d/"*.conf
  return 0
}

ss_load() {
  local dir=${1:-}
  [ -n "$dir" ] || { _ss_err "usage: ss_load DIR"; return 2; }
  _ss_write_swanctl_conf "$dir" || return 1
  local out
  if ! out=$(ss_swanctl "$dir" --load-all --clear --noprompt --file "$dir/swanctl/swanctl.conf" 2>&1); then
    _ss_err "ss_load $dir failed:"; echo "$out" >&2
    return 1
  fi
  printf '%s\n' "$out" > "$dir/load.out"
  # swanctl returns 0 when the file does not parse ("invalid config file")
  if grep -qiE 'failed|error|invalid' <<< "$out"; then
    _ss_err "ss_load $dir:"; echo "$out" >&2
    return 1
  fi
  return 0
}

ss_initiate() {
  local dir=$1 ike=$2 child=$3 to=${4:-20}
  ss_swanctl "$dir" --initiate --ike "$ike" --child "$child" --timeout "$to" > "$dir/initiate.out" 2>&1
}

ss_terminate() {
  local dir=$1 ike=$2 to=${3:-20}
  ss_swanctl "$dir" --terminate --ike "$ike" --timeout "$to" > "$dir/terminate.out" 2>&1
}

# ---------------------------------------------------------------- state queries

ss_sas() {
  local dir=${1:-} fmt=${2:-pretty}
  if [ $# -ge 2 ]; then shift 2; else shift $#; fi
  case $fmt in
    raw) ss_swanctl "$dir" --list-sas --raw "$@" ;;
    pretty) ss_swanctl "$dir" --list-sas "$@" ;;
    *) _ss_err "ss_sas DIR [raw|pretty] [ARGS...]"; return 2 ;;
  esac
}

# One line per SA from the raw vici listing:
#   ike NAME STATE
#   child IKE_NAME CHILD_NAME STATE bytes-in bytes-out packets-in packets-out
# (swanctl --raw prints a nested "key=value" / "name {...}" dump per SA.)
_ss_sa_lines() {
  ss_swanctl "$1" --list-sas --raw 2>/dev/null | awk '
    {
      gsub(/[{}]/, " & ")
      for (i = 1; i <= NF; i++) {
        t = $i
        if (t == "{") { depth++; if (i > 1) sec[depth] = $(i - 1); continue }
        if (t == "}") {
          if (depth == 4 && inchild) {
            printf "child %s %s %s %s %s %s %s\n", ike, cname, cst, bi + 0, bo + 0, pi + 0, po + 0
            inchild = 0
          }
          if (depth == 2 && ike != "") { printf "ike %s %s\n", ike, ist; ike = "" }
          depth--; continue
        }
        # depth 1: "list-sa event {"; 2: the IKE SA; 3: child-sas; 4: a CHILD SA
        if (depth == 2 && sec[2] != "" && ike == "") ike = sec[2]
        if (depth == 4 && !inchild) { inchild = 1; cname = ""; cst = ""; bi = bo = pi = po = 0 }
        if (t ~ /=/) {
          k = t; sub(/=.*/, "", k); v = t; sub(/^[^=]*=/, "", v)
          if (depth == 2 && k == "state") ist = v
          if (depth == 4) {
            if (k == "name") cname = v
            else if (k == "state") cst = v
            else if (k == "bytes-in") bi = v
            else if (k == "bytes-out") bo = v
            else if (k == "packets-in") pi = v
            else if (k == "packets-out") po = v
          }
        }
      }
    }'
}

ss_wait_sa() {
  local dir=$1 ike=$2 child=${3:-} to=${4:-20} lines deadline
  deadline=$(( $(_ss_now_ms) + to * 1000 ))
  while :; do
    ss_charon_pid "$dir" >/dev/null || { _ss_err "ss_wait_sa: no charon running for $dir"; return 2; }
    lines=$(_ss_sa_lines "$dir")
    if grep -qxF "ike $ike ESTABLISHED" <<< "$lines"; then
      [ -z "$child" ] && return 0
      awk -v i="$ike" -v c="$child" '$1 == "child" && $2 == i && $3 == c && $4 == "INSTALLED" { f = 1 } END { exit !f }' <<< "$lines" && return 0
    fi
    [ "$(_ss_now_ms)" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}

ss_wait_no_sa() {
  local dir=$1 ike=${2:-} to=${3:-20} lines deadline
  deadline=$(( $(_ss_now_ms) + to * 1000 ))
  while :; do
    ss_charon_pid "$dir" >/dev/null || { _ss_err "ss_wait_no_sa: no charon running for $dir"; return 2; }
    lines=$(_ss_sa_lines "$dir")
    if [ -z "$ike" ]; then
      grep -q '^ike ' <<< "$lines" || return 0
    else
      awk -v i="$ike" '$1 == "ike" && $2 == i { f = 1 } END { exit f }' <<< "$lines" && return 0
    fi
    [ "$(_ss_now_ms)" -ge "$deadline" ] && return 1
    sleep 0.1
  done
}

ss_child_counter() {
  local dir=$1 ike=$2 child=$3 field=$4 col
  case $field in
    bytes-in) col=5 ;; bytes-out) col=6 ;; packets-in) col=7 ;; packets-out) col=8 ;;
    *) _ss_err "ss_child_counter: FIELD is bytes-in|bytes-out|packets-in|packets-out"; return 2 ;;
  esac
  _ss_sa_lines "$dir" | awk -v i="$ike" -v c="$child" -v col="$col" \
    '$1 == "child" && $2 == i && $3 == c && $4 == "INSTALLED" { s += $col } END { print s + 0 }'
}

ss_log_lines() {
  if [ -f "$1/charon.log" ]; then wc -l < "$1/charon.log"; else echo 0; fi
}
