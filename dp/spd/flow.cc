#include "dp/spd/flow.h"

namespace cygnet::dp::spd {

namespace {

inline std::uint16_t rd16(const std::uint8_t* p) noexcept { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }

// Ports (or ICMP type/code) at l4 with `avail` bytes, for protocol `proto`.
inline bool read_ports(std::uint8_t proto, const std::uint8_t* l4, unsigned avail, FlowTuple& t) noexcept {
  if (proto_is_icmp(proto)) {
    if (avail < 2) return false;
    t.sport = l4[0];  // type
    t.dport = l4[1];  // code
    return true;
  }
  if (proto_has_ports(proto)) {
    if (avail < 4) return false;
    t.sport = rd16(l4);
    t.dport = rd16(l4 + 2);
  }
  return true;
}

}  // namespace

TupleSelector TupleSelector::from(const Selector& sel) noexcept {
  TupleSelector r{};
  auto mask = [](unsigned len, std::uint64_t out[2]) {
    std::uint8_t m[16] = {};
    for (unsigned i = 0; i < 16; ++i) {
      const unsigned bits = len > i * 8 ? (len - i * 8 >= 8 ? 8 : len - i * 8) : 0;
      m[i] = static_cast<std::uint8_t>(bits == 0 ? 0 : 0xff << (8 - bits));
    }
    std::memcpy(out, m, 16);
  };
  mask(sel.src.len, r.smask);
  mask(sel.dst.len, r.dmask);
  std::memcpy(r.s, sel.src.addr.bytes.data(), 16);
  std::memcpy(r.d, sel.dst.addr.bytes.data(), 16);
  for (int w = 0; w < 2; ++w) {
    r.s[w] &= r.smask[w];
    r.d[w] &= r.dmask[w];
  }
  r.family = static_cast<std::uint8_t>(sel.src.family());
  r.proto = sel.proto;
  r.slo = sel.sport.lo;
  r.shi = sel.sport.hi;
  r.dlo = sel.dport.lo;
  r.dhi = sel.dport.hi;
  r.ports_any = sel.sport.is_any() && sel.dport.is_any();
  return r;
}

FlowTuple to_tuple(const FlowKey& k) noexcept {
  FlowTuple t{};
  std::memcpy(t.src, k.src.bytes.data(), 16);
  std::memcpy(t.dst, k.dst.bytes.data(), 16);
  t.sport = k.opaque_ports ? 0 : k.sport;
  t.dport = k.opaque_ports ? 0 : k.dport;
  t.proto = k.proto;
  t.family = static_cast<std::uint8_t>(k.src.family);
  t.opaque = k.opaque_ports ? 1 : 0;
  return t;
}

FlowKey to_key(const FlowTuple& t) noexcept {
  FlowKey k;
  k.src = t.v6() ? IpAddress::v6_bytes(t.src) : IpAddress::v4_bytes(t.src);
  k.dst = t.v6() ? IpAddress::v6_bytes(t.dst) : IpAddress::v4_bytes(t.dst);
  k.proto = t.proto;
  k.sport = t.sport;
  k.dport = t.dport;
  k.opaque_ports = t.opaque != 0;
  return k;
}

bool extract_flow(const std::uint8_t* ip, std::uint16_t len, FlowTuple& t) noexcept {
  if (len < 20) return false;
  std::memset(&t, 0, sizeof t);
  const unsigned version = ip[0] >> 4;
  if (version == 4) {
    const unsigned hl = (ip[0] & 0x0fu) * 4u;
    const unsigned total = rd16(ip + 2);
    if (hl < 20 || total < hl || total > len) return false;
    t.family = 4;
    t.proto = ip[9];
    std::memcpy(t.src, ip + 12, 4);
    std::memcpy(t.dst, ip + 16, 4);
    if ((rd16(ip + 6) & 0x1fff) != 0) {  // not the first fragment: ports unknown
      t.opaque = 1;
      return true;
    }
    return read_ports(t.proto, ip + hl, total - hl, t);
  }
  if (version != 6 || len < 40) return false;
  const unsigned total = rd16(ip + 4) + 40u;
  if (total > len) return false;
  t.family = 6;
  std::memcpy(t.src, ip + 8, 16);
  std::memcpy(t.dst, ip + 24, 16);
  unsigned off = 40;
  std::uint8_t nh = ip[6];
  for (;;) {
    if (nh == 0 || nh == 43 || nh == 60) {  // hop-by-hop, routing, destination options
      if (off + 8 > total) return false;
      nh = ip[off];
      off += (ip[off + 1] + 1u) * 8u;
      if (off > total) return false;
    } else if (nh == 44) {  // fragment header (RFC 8200 4.5)
      if (off + 8 > total) return false;
      const bool first = (rd16(ip + off + 2) & 0xfff8) == 0;
      nh = ip[off];
      off += 8;
      if (!first) {
        t.proto = nh;
        t.opaque = 1;
        return true;
      }
    } else {
      break;
    }
  }
  t.proto = nh;
  return read_ports(nh, ip + off, total - off, t);
}

}  // namespace cygnet::dp::spd
