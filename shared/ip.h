// IPv4/IPv6 addresses, prefixes and port ranges used by SAs and policies.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "shared/result.h"

namespace cygnet {

enum class Family : std::uint8_t { none = 0, ipv4 = 4, ipv6 = 6 };

const char* family_name(Family f) noexcept;

// Network byte order storage; IPv4 uses the first 4 bytes, the rest is zero.
struct IpAddress {
  Family family = Family::none;
  std::array<std::uint8_t, 16> bytes{};

  static IpAddress v4(std::uint32_t host_order) noexcept;
  static IpAddress v4_bytes(const std::uint8_t b[4]) noexcept;
  static IpAddress v6_bytes(const std::uint8_t b[16]) noexcept;
  static Result<IpAddress> parse(std::string_view text);

  unsigned bit_width() const noexcept { return family == Family::ipv4 ? 32 : family == Family::ipv6 ? 128 : 0; }
  bool is_unspecified() const noexcept;
  std::uint32_t v4_host_order() const noexcept;
  std::string to_string() const;

  auto operator<=>(const IpAddress&) const = default;
};

struct IpPrefix {
  IpAddress addr;
  std::uint8_t len = 0;

  // "10.0.0.0/8", "2001:db8::/32", or a bare address (a host prefix).
  // Host bits must be zero: "10.0.0.1/8" is refused rather than silently masked.
  static Result<IpPrefix> parse(std::string_view text);
  static IpPrefix any(Family f) noexcept;
  static IpPrefix host(const IpAddress& a) noexcept;

  Family family() const noexcept { return addr.family; }
  bool contains(const IpAddress& a) const noexcept;
  std::string to_string() const;

  auto operator<=>(const IpPrefix&) const = default;
};

struct PortRange {
  std::uint16_t lo = 0;
  std::uint16_t hi = 65535;

  // "any", "443", "1024-65535".
  static Result<PortRange> parse(std::string_view text);
  bool is_any() const noexcept { return lo == 0 && hi == 65535; }
  bool contains(std::uint16_t p) const noexcept { return p >= lo && p <= hi; }
  std::string to_string() const;

  auto operator<=>(const PortRange&) const = default;
};

}  // namespace cygnet
