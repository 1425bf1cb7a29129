# Debian 12 packages Cygnet needs, and a helper that installs the missing
# ones. Sourced by scripts/test.sh (and the demo script).
CYGNET_BUILD_PKGS=(
  g++ meson ninja-build pkg-config
  libdpdk-dev dpdk libipsec-mb-dev libssl-dev libconfig++-dev libboost-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-scapy tshark
  # scapy's ESP and bench/pipeline/gen_pcap.py --esp encrypt with it (only a Recommends of scapy)
  python3-cryptography
  # end-to-end tests: a real kernel ESP peer in user-mode-linux, namespaces
  user-mode-linux kmod iproute2 tcpdump ethtool iputils-ping
  # interop tests: strongSwan's charon as an IKEv2 + ESP peer (tests/interop/strongswan_peer.sh);
  # the standard plugins (openssl, gcm) are only a Recommends, and install_missing skips those
  strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins
  libstrongswan-standard-plugins
)

# install_missing PKG...: apt-get update, then install, only if something is missing.
install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]}; run as root or install them: apt-get install ${missing[*]}" >&2
    return 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || { echo "apt-get update failed" >&2; return 1; }
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || {
    echo "apt-get install ${missing[*]} failed" >&2; return 1; }
}
