#include "cp/ike/engine/ts.h"

#include <algorithm>

namespace cygnet::ike {

namespace {

__extension__ typedef unsigned __int128 u128;

u128 to_int(const IpAddress& a) {
  u128 v = 0;
  const unsigned n = a.bit_width() / 8;
  for (unsigned i = 0; i < n; ++i) v = v << 8 | a.bytes[i];
  return v;
}

IpAddress from_int(u128 v, Family f) {
  IpAddress a;
  a.family = f;
  const unsigned n = f == Family::ipv4 ? 4 : 16;
  for (unsigned i = n; i-- > 0;) {
    a.bytes[i] = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
  return a;
}

IpAddress last_of(const IpPrefix& p) {
  const unsigned w = p.addr.bit_width();
  const u128 base = to_int(p.addr);
  const unsigned host = w - p.len;
  const u128 span = host == 128 ? ~u128{0} : (u128{1} << host) - 1;
  return from_int(base | span, p.family());
}

// ICMP type/code ranges as a Selector's port fields (shared/policy.h: type
// in the source range, code in the destination range).
void icmp_fields(const TsRange& r, Selector& s) {
  if (r.port_lo == 0 && r.port_hi == 65535) return;
  s.sport = PortRange{static_cast<std::uint16_t>(r.port_lo >> 8), static_cast<std::uint16_t>(r.port_hi >> 8)};
  if ((r.port_lo >> 8) == (r.port_hi >> 8)) {
    s.dport = PortRange{static_cast<std::uint16_t>(r.port_lo & 0xff), static_cast<std::uint16_t>(r.port_hi & 0xff)};
  }
}

}  // namespace

TsRange ts_from_config(const TsConfig& c) {
  TsRange r;
  r.proto = c.proto;
  r.port_lo = c.ports.lo;
  r.port_hi = c.ports.hi;
  r.lo = c.prefix.addr;
  r.hi = last_of(c.prefix);
  return r;
}

TsRange ts_host(const IpAddress& a) {
  TsRange r;
  r.lo = r.hi = a;
  return r;
}

TrafficSelector ts_to_wire(const TsRange& r) {
  return TrafficSelector::range(r.lo, r.hi, r.proto, r.port_lo, r.port_hi);
}

std::optional<TsRange> ts_from_wire(const TrafficSelector& t) {
  if (t.ts_type != kTsIpv4AddrRange && t.ts_type != kTsIpv6AddrRange) return std::nullopt;
  if (t.start.family != t.end.family || t.end < t.start || t.end_port < t.start_port) return std::nullopt;
  return TsRange{t.ip_protocol, t.start_port, t.end_port, t.start, t.end};
}

std::vector<TsRange> ts_from_payload(const TsPayload& p) {
  std::vector<TsRange> v;
  for (const TrafficSelector& t : p.selectors) {
    if (auto r = ts_from_wire(t)) v.push_back(*r);
  }
  return v;
}

TsPayload ts_payload(const std::vector<TsRange>& v, bool responder) {
  TsPayload p;
  p.responder = responder;
  for (const TsRange& r : v) p.selectors.push_back(ts_to_wire(r));
  return p;
}

std::optional<TsRange> intersect(const TsRange& a, const TsRange& b) {
  if (a.lo.family != b.lo.family) return std::nullopt;
  if (a.proto != 0 && b.proto != 0 && a.proto != b.proto) return std::nullopt;
  TsRange r;
  r.proto = a.proto != 0 ? a.proto : b.proto;
  r.port_lo = std::max(a.port_lo, b.port_lo);
  r.port_hi = std::min(a.port_hi, b.port_hi);
  r.lo = std::max(a.lo, b.lo);
  r.hi = std::min(a.hi, b.hi);
  if (r.port_lo > r.port_hi || r.hi < r.lo) return std::nullopt;
  return r;
}

std::vector<TsRange> narrow(const std::vector<TsRange>& peer, const std::vector<TsRange>& ours) {
  std::vector<TsRange> out;
  for (const TsRange& p : peer) {
    for (const TsRange& o : ours) {
      auto r = intersect(p, o);
      if (r && std::find(out.begin(), out.end(), *r) == out.end()) out.push_back(*r);
    }
  }
  return out;
}

bool within(const std::vector<TsRange>& got, const std::vector<TsRange>& proposed) {
  if (got.empty()) return false;
  for (const TsRange& g : got) {
    bool ok = false;
    for (const TsRange& p : proposed) {
      if (auto r = intersect(g, p); r && *r == g) {
        ok = true;
        break;
      }
    }
    if (!ok) return false;
  }
  return true;
}

std::vector<IpPrefix> range_to_prefixes(const IpAddress& lo, const IpAddress& hi) {
  std::vector<IpPrefix> out;
  if (lo.family != hi.family || hi < lo || lo.family == Family::none) return out;
  const unsigned w = lo.bit_width();
  u128 a = to_int(lo);
  const u128 b = to_int(hi);
  for (;;) {
    // The largest block that starts at a and stays within b.
    unsigned host = 0;
    while (host < w) {
      const u128 size = u128{1} << host;  // host < 128 here
      if ((a & size) != 0) break;          // a must be aligned to the next size
      const u128 next = host + 1 == 128 ? ~u128{0} : (u128{1} << (host + 1)) - 1;
      if (a + next > b || a + next < a) break;
      ++host;
    }
    out.push_back(IpPrefix{from_int(a, lo.family), static_cast<std::uint8_t>(w - host)});
    const u128 last = host == 128 ? ~u128{0} : a + ((u128{1} << host) - 1);
    if (last >= b) break;
    a = last + 1;
  }
  return out;
}

std::vector<Selector> to_selectors(const std::vector<TsRange>& src, const std::vector<TsRange>& dst) {
  std::vector<Selector> out;
  for (const TsRange& s : src) {
    for (const TsRange& d : dst) {
      if (s.lo.family != d.lo.family) continue;
      if (s.proto != 0 && d.proto != 0 && s.proto != d.proto) continue;
      const std::uint8_t proto = s.proto != 0 ? s.proto : d.proto;
      for (const IpPrefix& sp : range_to_prefixes(s.lo, s.hi)) {
        for (const IpPrefix& dp : range_to_prefixes(d.lo, d.hi)) {
          Selector sel;
          sel.src = sp;
          sel.dst = dp;
          sel.proto = proto;
          if (proto_is_icmp(proto)) {
            icmp_fields(s.proto != 0 ? s : d, sel);
          } else if (proto != kProtoAny) {
            sel.sport = PortRange{s.port_lo, s.port_hi};
            sel.dport = PortRange{d.port_lo, d.port_hi};
          }
          if (std::find_if(out.begin(), out.end(), [&](const Selector& x) { return x.to_string() == sel.to_string(); }) ==
              out.end()) {
            out.push_back(sel);
          }
        }
      }
    }
  }
  return out;
}

std::string to_string(const TsRange& r) {
  std::string s;
  const auto pre = range_to_prefixes(r.lo, r.hi);
  if (pre.size() == 1) {
    s = pre[0].to_string();
  } else {
    s = r.lo.to_string() + "-" + r.hi.to_string();
  }
  if (r.proto != 0) s += " proto " + std::to_string(r.proto);
  if (r.port_lo != 0 || r.port_hi != 65535) s += " ports " + std::to_string(r.port_lo) + "-" + std::to_string(r.port_hi);
  return s;
}

}  // namespace cygnet::ike
