#include "shared/ip.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace cygnet {

const char* family_name(Family f) noexcept {
  switch (f) {
    case Family::ipv4: return "IPv4";
    case Family::ipv6: return "IPv6";
    case Family::none: break;
  }
  return "none";
}

IpAddress IpAddress::v4(std::uint32_t h) noexcept {
  IpAddress a;
  a.family = Family::ipv4;
  a.bytes[0] = static_cast<std::uint8_t>(h >> 24);
  a.bytes[1] = static_cast<std::uint8_t>(h >> 16);
  a.bytes[2] = static_cast<std::uint8_t>(h >> 8);
  a.bytes[3] = static_cast<std::uint8_t>(h);
  return a;
}

IpAddress IpAddress::v4_bytes(const std::uint8_t b[4]) noexcept {
  IpAddress a;
  a.family = Family::ipv4;
  std::memcpy(a.bytes.data(), b, 4);
  return a;
}

IpAddress IpAddress::v6_bytes(const std::uint8_t b[16]) noexcept {
  IpAddress a;
  a.family = Family::ipv6;
  std::memcpy(a.bytes.data(), b, 16);
  return a;
}

Result<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) {
    return make_error("'" + std::string(text) + "' is not an IPv4 or IPv6 address");
  }
  std::string s(text);
  IpAddress a;
  if (s.find(':') == std::string::npos) {
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
      a.family = Family::ipv4;
      return a;
    }
  } else if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.family = Family::ipv6;
    return a;
  }
  return make_error("'" + s + "' is not an IPv4 or IPv6 address");
}

bool IpAddress::is_unspecified() const noexcept {
  if (family == Family::none) return true;
  for (unsigned i = 0; i < bit_width() / 8; ++i)
    if (bytes[i] != 0) return false;
  return true;
}

std::uint32_t IpAddress::v4_host_order() const noexcept {
  return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
         (std::uint32_t{bytes[2]} << 8) | std::uint32_t{bytes[3]};
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == Family::ipv4) {
    inet_ntop(AF_INET, bytes.data(), buf, sizeof buf);
  } else if (family == Family::ipv6) {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  } else {
    return "none";
  }
  return buf;
}

namespace {
bool prefix_bits_clear(const IpAddress& a, unsigned len) {
  for (unsigned bit = len; bit < a.bit_width(); ++bit) {
    if (a.bytes[bit / 8] & (0x80u >> (bit % 8))) return false;
  }
  return true;
}
}  // namespace

Result<IpPrefix> IpPrefix::parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr) return addr.error();
  IpPrefix p;
  p.addr = *addr;
  p.len = static_cast<std::uint8_t>(addr->bit_width());
  if (slash == std::string_view::npos) return p;
  auto lentext = text.substr(slash + 1);
  unsigned len = 0;
  auto [ptr, ec] = std::from_chars(lentext.data(), lentext.data() + lentext.size(), len);
  if (lentext.empty() || ec != std::errc() || ptr != lentext.data() + lentext.size() ||
      len > addr->bit_width()) {
    return make_error("'" + std::string(text) + "': prefix length must be 0-" +
                      std::to_string(addr->bit_width()));
  }
  p.len = static_cast<std::uint8_t>(len);
  if (!prefix_bits_clear(p.addr, len)) {
    return make_error("'" + std::string(text) + "' has bits set beyond the /" + std::to_string(len) +
                      " prefix length (host bits must be zero)");
  }
  return p;
}

IpPrefix IpPrefix::any(Family f) noexcept {
  IpPrefix p;
  p.addr.family = f;
  p.len = 0;
  return p;
}

IpPrefix IpPrefix::host(const IpAddress& a) noexcept {
  IpPrefix p;
  p.addr = a;
  p.len = static_cast<std::uint8_t>(a.bit_width());
  return p;
}

bool IpPrefix::contains(const IpAddress& a) const noexcept {
  if (a.family != addr.family) return false;
  unsigned full = len / 8;
  if (std::memcmp(a.bytes.data(), addr.bytes.data(), full) != 0) return false;
  unsigned rem = len % 8;
  if (rem == 0) return true;
  std::uint8_t mask = static_cast<std::uint8_t>(0xffu << (8 - rem));
  return (a.bytes[full] & mask) == (addr.bytes[full] & mask);
}

std::string IpPrefix::to_string() const { return addr.to_string() + "/" + std::to_string(len); }

Result<PortRange> PortRange::parse(std::string_view text) {
  if (text == "any" || text.empty()) return PortRange{};
  auto parse_one = [](std::string_view t, std::uint16_t& out) {
    unsigned v = 0;
    auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || ptr != t.data() + t.size() || v > 65535) return false;
    out = static_cast<std::uint16_t>(v);
    return true;
  };
  PortRange r;
  auto dash = text.find('-');
  bool ok = dash == std::string_view::npos
                ? parse_one(text, r.lo) && parse_one(text, r.hi)
                : parse_one(text.substr(0, dash), r.lo) && parse_one(text.substr(dash + 1), r.hi);
  if (!ok) {
    return make_error("'" + std::string(text) + "' is not a port or port range (expected 0-65535, 'lo-hi' or 'any')");
  }
  if (r.lo > r.hi) {
    return make_error("port range '" + std::string(text) + "' has its low end above its high end");
  }
  return r;
}

std::string PortRange::to_string() const {
  if (is_any()) return "any";
  if (lo == hi) return std::to_string(lo);
  return std::to_string(lo) + "-" + std::to_string(hi);
}

}  // namespace cygnet
