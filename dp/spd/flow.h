// The hot-path 5-tuple: fixed layout raw bytes, hashed and compared as
// bytes by the flow cache and the classifiers. Built from a packet by
// extract_flow() or from a FlowKey (shared/policy.h) by to_tuple().
#pragma once

#include <cstdint>
#include <cstring>

#include "shared/policy.h"

namespace cygnet::dp::spd {

// Index of an SA in the dataplane's SA store; kNoSa when there is none.
using SaHandle = std::uint32_t;
inline constexpr SaHandle kNoSa = ~SaHandle{0};

struct alignas(8) FlowTuple {
  std::uint8_t src[16];  // network order; IPv4 uses the first 4 bytes, the rest is zero
  std::uint8_t dst[16];
  std::uint16_t sport;   // host order; ICMP/ICMPv6: the type
  std::uint16_t dport;   // host order; ICMP/ICMPv6: the code
  std::uint8_t proto;    // IPv4 protocol / IPv6 upper-layer next header
  std::uint8_t family;   // 4 or 6
  std::uint8_t opaque;   // 1: ports unknown (a non-first fragment), see docs/spd.md
  std::uint8_t zero;     // always 0, so whole-tuple byte comparison is exact

  bool v6() const noexcept { return family == 6; }
  // Word i (0..4) of the tuple's 40 bytes, loaded in place: the hash and
  // the compare read the tuple as five registers, with no copy to the stack.
  std::uint64_t word(unsigned i) const noexcept {
    std::uint64_t w;
    std::memcpy(&w, reinterpret_cast<const unsigned char*>(this) + 8 * i, sizeof w);
    return w;
  }
  // Five 64-bit words compared at once (no memcmp call on the hot path).
  bool operator==(const FlowTuple& o) const noexcept {
    return ((word(0) ^ o.word(0)) | (word(1) ^ o.word(1)) | (word(2) ^ o.word(2)) | (word(3) ^ o.word(3)) |
            (word(4) ^ o.word(4))) == 0;
  }
};
static_assert(sizeof(FlowTuple) == 40);

// A Selector compiled for matching FlowTuples without conversions: masked
// addresses as words. Same answers as Selector::matches (to_key(t)).
struct TupleSelector {
  std::uint64_t s[2], smask[2], d[2], dmask[2];
  std::uint16_t slo, shi, dlo, dhi;
  std::uint8_t family;
  std::uint8_t proto;  // 0: any
  bool ports_any;

  static TupleSelector from(const Selector& sel) noexcept;
  bool matches(const FlowTuple& t) const noexcept {
    if (t.family != family) return false;
    std::uint64_t ts[2], td[2];
    std::memcpy(ts, t.src, 16);
    std::memcpy(td, t.dst, 16);
    if (((ts[0] & smask[0]) ^ s[0]) | ((ts[1] & smask[1]) ^ s[1]) | ((td[0] & dmask[0]) ^ d[0]) |
        ((td[1] & dmask[1]) ^ d[1])) {
      return false;
    }
    if (proto == 0) return true;
    if (t.proto != proto) return false;
    if (ports_any) return true;
    if (t.opaque) return false;
    return t.sport >= slo && t.sport <= shi && t.dport >= dlo && t.dport <= dhi;
  }
};

// From the control-plane type (tests, references, the CLI).
FlowTuple to_tuple(const FlowKey& k) noexcept;
FlowKey to_key(const FlowTuple& t) noexcept;

// Parses the IP packet at ip[0..len) into its 5-tuple. IPv6 extension
// headers (hop-by-hop, routing, destination options, fragment) are walked.
// Non-first fragments have no ports: opaque = 1, ports 0. A first fragment
// too short for the ports, or a malformed header, returns false.
bool extract_flow(const std::uint8_t* ip, std::uint16_t len, FlowTuple& out) noexcept;

}  // namespace cygnet::dp::spd
