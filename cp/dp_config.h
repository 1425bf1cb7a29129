// Loader for cygnet-dp's config file (docs/configuration.md, "Dataplane"):
// a top-level `dataplane = { ... }` group with the ports, routes, static
// neighbours, cores, memory sizes, shm instance and exception port, plus the
// optional top-level `sas` and `policies` read by the static loader
// (cp/config.h). Plain C++ over libconfig++: no DPDK needed to load or test.
//
// Every error names the file, the line, the setting path and what was
// expected. The first error stops loading; nothing of a bad file is used.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cp/config.h"
#include "shared/ip.h"
#include "shared/result.h"

namespace cygnet::cfg {

using MacAddress = std::array<std::uint8_t, 6>;

struct PortConfig {
  enum class Side { protected_, unprotected };

  std::string name;    // "wan", "lan": [A-Za-z0-9_-]{1,32}, unique
  std::string device;  // PCI "0000:03:00.0" or a vdev "net_af_packet0,iface=veth1"
  Side side = Side::protected_;
  // Local addresses with their prefix length, e.g. 192.0.2.1/24. Unlike a
  // policy prefix, `addr` keeps its host bits (it is the port's address);
  // `contains()` tells whether an address is on-link.
  std::vector<IpPrefix> addresses;
  std::uint16_t mtu = 1500;
  std::optional<MacAddress> mac;  // override of the device's own MAC
};

struct RouteConfig {
  IpPrefix dst;
  IpAddress via;  // unspecified (family none) = on-link: the destination itself is the next hop
  std::string port;
};

struct NeighbourConfig {
  IpAddress ip;
  MacAddress mac{};
  std::string port;
};

// Limits the loader enforces (docs/configuration.md explains each).
inline constexpr std::size_t kMaxPorts = 32;  // RTE_MAX_ETHPORTS in Debian's DPDK, exception port included
inline constexpr unsigned kMaxCoreId = 1023;
inline constexpr std::size_t kMaxNameLen = 32;  // port names and the shm instance name

struct DpConfig {
  std::vector<PortConfig> ports;
  std::vector<RouteConfig> routes;
  std::vector<NeighbourConfig> neighbours;

  unsigned main_core = 0;
  std::vector<unsigned> worker_cores;  // at least one, distinct, not the main core, <= kMaxCoreId

  std::uint32_t mbufs = 16383;  // mempool size; 2^q - 1 is the most memory-efficient
  std::uint32_t mbuf_cache = 256;
  std::uint32_t rx_ring = 1024;  // descriptors per queue; powers of two
  std::uint32_t tx_ring = 1024;
  std::uint32_t handoff_ring = 1024;         // per core-pair handoff ring; power of two
  std::uint32_t flow_cache_entries = 65536;  // per worker; power of two
  std::uint32_t max_sas = 1u << 20;
  std::uint32_t max_policies = 1u << 17;

  std::string shm_name = "default";  // shm instance: [A-Za-z0-9_-]{1,32}
  // A net_tap or net_virtio_user vdev for traffic to the gateway itself, or
  // empty for none.
  std::string exception_port;

  StaticConfig statics;  // top-level sas = (...) and policies = (...)
  std::vector<std::string> warnings;

  const PortConfig* find_port(std::string_view name) const noexcept;
};

Result<DpConfig> load_dp_file(const std::string& path);
Result<DpConfig> load_dp_string(const std::string& text, const std::string& name = "<string>");

// The config cygnet-dp uses when started without one (the two-site demo):
// protected "lan" on veth cyg-lan (10.1.0.1/24), unprotected "wan" on veth
// cyg-wan (192.0.2.1/24), one worker. Identical to conf/dp-demo.conf (a test
// checks it).
const char* default_dp_config() noexcept;

const char* side_name(PortConfig::Side s) noexcept;  // "protected", "unprotected"
std::string mac_to_string(const MacAddress& m);      // "02:00:00:00:00:01"

// Field validators, exposed for tests and for cygnetctl; messages say what
// was expected but carry no file or line.
Result<MacAddress> parse_mac(std::string_view text);  // "aa:bb:cc:dd:ee:ff", unicast, not all-zero
// A PCI address "DDDD:BB:DD.F" / "BB:DD.F" or a vdev "net_<driver><n>",
// each optionally followed by ",key=value" device arguments.
Result<void> validate_device(std::string_view text);
// The part of a device string before the first ',' ("net_tap0", "0000:03:00.0").
std::string_view device_name(std::string_view device) noexcept;

}  // namespace cygnet::cfg
