#include "shared/policy.h"

#include <charconv>

namespace cygnet {

bool proto_has_ports(std::uint8_t p) noexcept {
  return p == kProtoTcp || p == kProtoUdp || p == kProtoSctp || p == kProtoUdpLite;
}

bool proto_is_icmp(std::uint8_t p) noexcept { return p == kProtoIcmp || p == kProtoIcmpv6; }

bool Selector::matches(const FlowKey& k) const noexcept {
  if (!src.contains(k.src) || !dst.contains(k.dst)) return false;
  if (proto == kProtoAny) return true;
  if (k.proto != proto) return false;
  if (k.opaque_ports) return sport.is_any() && dport.is_any();
  return sport.contains(k.sport) && dport.contains(k.dport);
}

std::string Selector::to_string() const {
  std::string s = src.to_string() + " -> " + dst.to_string();
  if (proto != kProtoAny) {
    s += " proto " + std::to_string(proto);
    if (proto_is_icmp(proto)) {
      if (!sport.is_any() || !dport.is_any()) s += " type " + sport.to_string() + " code " + dport.to_string();
    } else if (!sport.is_any() || !dport.is_any()) {
      s += " sport " + sport.to_string() + " dport " + dport.to_string();
    }
  }
  return s;
}

Result<void> validate_selector(const Selector& s) {
  if (s.src.family() == Family::none || s.dst.family() == Family::none) {
    return make_error("selector needs source and destination prefixes");
  }
  if (s.src.family() != s.dst.family()) {
    return make_error(std::string("selector source is ") + family_name(s.src.family()) +
                      " but destination is " + family_name(s.dst.family()));
  }
  if (s.src.len > s.src.addr.bit_width() || s.dst.len > s.dst.addr.bit_width()) {
    return make_error("selector prefix length is longer than the address");
  }
  for (const IpPrefix* p : {&s.src, &s.dst}) {
    if (!IpPrefix::parse(p->to_string())) {
      return make_error("selector prefix " + p->to_string() + " has host bits set");
    }
  }
  if (s.sport.lo > s.sport.hi || s.dport.lo > s.dport.hi) {
    return make_error("selector port range has its low end above its high end");
  }
  const bool ports_given = !s.sport.is_any() || !s.dport.is_any();
  if (s.proto == kProtoIcmp && s.src.family() == Family::ipv6) {
    return make_error("protocol icmp (1) with IPv6 selectors: use icmpv6 (58)");
  }
  if (s.proto == kProtoIcmpv6 && s.src.family() == Family::ipv4) {
    return make_error("protocol icmpv6 (58) with IPv4 selectors: use icmp (1)");
  }
  if (proto_is_icmp(s.proto)) {
    auto bad = [](const PortRange& r) { return !r.is_any() && r.hi > 255; };
    if (bad(s.sport) || bad(s.dport)) {
      return make_error("ICMP type and code ranges must be within 0-255");
    }
  } else if (ports_given && !proto_has_ports(s.proto)) {
    return make_error("port ranges need protocol tcp, udp, sctp or udplite (protocol is " +
                      std::to_string(s.proto) + ")");
  }
  return {};
}

Result<std::uint8_t> proto_from_name(std::string_view n) {
  if (n == "any") return kProtoAny;
  if (n == "icmp") return kProtoIcmp;
  if (n == "tcp") return kProtoTcp;
  if (n == "udp") return kProtoUdp;
  if (n == "icmpv6" || n == "ipv6-icmp") return kProtoIcmpv6;
  if (n == "sctp") return kProtoSctp;
  if (n == "udplite") return kProtoUdpLite;
  unsigned v = 0;
  auto [ptr, ec] = std::from_chars(n.data(), n.data() + n.size(), v);
  if (!n.empty() && ec == std::errc() && ptr == n.data() + n.size() && v <= 255) {
    return static_cast<std::uint8_t>(v);
  }
  return make_error("protocol '" + std::string(n) +
                    "' is not one of any, icmp, tcp, udp, icmpv6, sctp, udplite or a number 0-255");
}

Result<void> validate_policy(const Policy& p) {
  if (auto r = validate_selector(p.sel); !r) return r;
  const bool needs_reqid = p.action == PolicyAction::protect || p.action == PolicyAction::trap;
  if (needs_reqid && p.reqid == 0) {
    return make_error(std::string("a '") + action_name(p.action) + "' policy needs a non-zero reqid");
  }
  if (!needs_reqid && p.reqid != 0) {
    return make_error(std::string("a '") + action_name(p.action) + "' policy takes no reqid");
  }
  if (p.dir == PolicyDir::in && p.action == PolicyAction::trap) {
    return make_error("'trap' applies to outbound policies only");
  }
  return {};
}

const char* action_name(PolicyAction a) noexcept {
  switch (a) {
    case PolicyAction::protect: return "protect";
    case PolicyAction::bypass: return "bypass";
    case PolicyAction::discard: return "discard";
    case PolicyAction::trap: return "trap";
  }
  return "?";
}

Result<PolicyAction> action_from_name(std::string_view s) {
  for (auto a : {PolicyAction::protect, PolicyAction::bypass, PolicyAction::discard, PolicyAction::trap})
    if (s == action_name(a)) return a;
  return make_error("action '" + std::string(s) + "' is not one of protect, bypass, discard, trap");
}

const char* policy_dir_name(PolicyDir d) noexcept { return d == PolicyDir::in ? "in" : "out"; }

Result<PolicyDir> policy_dir_from_name(std::string_view s) {
  if (s == "in") return PolicyDir::in;
  if (s == "out") return PolicyDir::out;
  return make_error("direction '" + std::string(s) + "' is neither 'in' nor 'out'");
}

}  // namespace cygnet
