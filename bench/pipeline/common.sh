# Helpers shared by cygnet.sh, secgw.sh and floor.sh (sourced; they set HERE, REPO, PY,
# and SOCK before calling port_stat).

# install_example_build_deps: what building a DPDK example from Debian's
# dpdk-doc needs (the source, make, a C compiler, pkg-config, libdpdk-dev),
# installed with apt-get when missing (scripts/deps.sh's install_missing).
# Skipped when SRC points elsewhere than Debian's copy.
install_example_build_deps() {
  # shellcheck source=../../scripts/deps.sh
  . "$HERE/../../scripts/deps.sh"
  install_missing dpdk-doc make gcc pkg-config libdpdk-dev
}

huge_mounts() { awk '$3 == "hugetlbfs" { print $2 }' /proc/mounts; }

is_num() { [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; }

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

pcap_count() {  # prints: number of packets, mean frame length
  "$PY" - "$1" <<'EOF'
import struct, sys
with open(sys.argv[1], "rb") as f:
    hdr = f.read(24)
    if len(hdr) < 24 or struct.unpack("<I", hdr[:4])[0] not in (0xA1B2C3D4, 0xA1B23C4D):
        sys.exit("not a little-endian pcap file: " + sys.argv[1])
    n = total = 0
    while True:
        rec = f.read(16)
        if len(rec) < 16:
            break
        incl = struct.unpack("<IIII", rec)[2]
        f.seek(incl, 1)
        n += 1
        total += incl
print(n, total / n if n else 0)
EOF
}

run_bg() {  # OUTFILE CMD...
  local out=$1
  shift
  "$@" >"$out" &
  BG_PID=$!
  local rc=0
  wait "$BG_PID" || rc=$?
  BG_PID=""
  return "$rc"
}

port_stat() {  # PORT FIELD (0 if unreadable)
  "$PY" "$HERE/telemetry.py" "$SOCK" "/ethdev/stats,$1" 2>/dev/null \
    | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["/ethdev/stats"][sys.argv[1]])' "$2" 2>/dev/null \
    || echo 0
}

write_empty_pcap() {  # FILE: a pcap with no packets (net_pcap rx that never delivers)
  "$PY" -c 'import struct, sys; open(sys.argv[1], "wb").write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))' "$1"
}

remove_prefix_files() {  # PREFIX: an EAL --file-prefix's runtime folder and hugepage files (ours, ended)
  [ -n "$1" ] || return 0
  rm -rf "/var/run/dpdk/$1"
  local m
  for m in $(huge_mounts); do rm -f "$m/${1}map_"* 2>/dev/null || true; done
}
