// Security policies (RFC 4301 4.4.1): ordered selectors with an action.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shared/ip.h"
#include "shared/result.h"

namespace cygnet {

inline constexpr std::uint8_t kProtoAny = 0;
inline constexpr std::uint8_t kProtoIcmp = 1;
inline constexpr std::uint8_t kProtoTcp = 6;
inline constexpr std::uint8_t kProtoUdp = 17;
inline constexpr std::uint8_t kProtoIcmpv6 = 58;
inline constexpr std::uint8_t kProtoSctp = 132;
inline constexpr std::uint8_t kProtoUdpLite = 136;

// The 5-tuple of a packet. For ICMP/ICMPv6, sport carries the type and dport
// the code (RFC 4301 4.4.1.1 puts them in the port fields the same way).
struct FlowKey {
  IpAddress src;
  IpAddress dst;
  std::uint8_t proto = 0;
  std::uint16_t sport = 0;
  std::uint16_t dport = 0;
  // A non-first fragment: its ports are unknown (RFC 4301 4.4.1.1 OPAQUE).
  // It matches only selectors whose port ranges are both ANY.
  bool opaque_ports = false;
};

// Selector. proto 0 means any protocol. Port ranges apply to TCP, UDP, SCTP
// and UDP-Lite; for ICMP/ICMPv6 sport is the type range and dport the code
// range (0-255). Both prefixes have the same family.
struct Selector {
  IpPrefix src;
  IpPrefix dst;
  std::uint8_t proto = kProtoAny;
  PortRange sport;
  PortRange dport;

  bool matches(const FlowKey& k) const noexcept;
  std::string to_string() const;
};

Result<void> validate_selector(const Selector& s);
Result<std::uint8_t> proto_from_name(std::string_view name);  // "tcp", "udp", "icmp", "any", or 0-255
bool proto_has_ports(std::uint8_t proto) noexcept;
bool proto_is_icmp(std::uint8_t proto) noexcept;

enum class PolicyAction : std::uint8_t { protect = 0, bypass, discard, trap };
enum class PolicyDir : std::uint8_t { in = 0, out = 1 };

struct Policy {
  // Lower value wins (as in XFRM); equal priorities keep insertion order.
  std::uint32_t priority = 1000;
  PolicyDir dir = PolicyDir::out;
  PolicyAction action = PolicyAction::protect;
  std::uint32_t reqid = 0;  // protect / trap: the SA set this policy uses
  Selector sel;
};

Result<void> validate_policy(const Policy& p);
const char* action_name(PolicyAction a) noexcept;
Result<PolicyAction> action_from_name(std::string_view s);
const char* policy_dir_name(PolicyDir d) noexcept;
Result<PolicyDir> policy_dir_from_name(std::string_view s);

}  // namespace cygnet
