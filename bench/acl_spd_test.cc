// AclSpd (the rte_acl benchmark peer) must classify exactly like a linear
// scan with Selector::matches plus the opaque rule. Random policy sets with
// adversarial shapes are compared tuple by tuple against that reference.
//
// The seed is fixed so CI is reproducible; set CYGNET_ACL_SEED=<n> to try
// another one. Every failure message carries the seed in use.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bench/acl_spd.h"
#include "dp/spd/flow.h"
#include "shared/policy.h"

namespace cygnet::bench {
namespace {

using cygnet::dp::spd::FlowTuple;

std::uint64_t base_seed() {
  if (const char* s = std::getenv("CYGNET_ACL_SEED")) return std::strtoull(s, nullptr, 0);
  return 0x5eed'ac1'2024ULL;
}

void start_eal() {
  std::string err;
  ASSERT_TRUE(eal_init_for_bench(&err)) << err;
}

// ---- reference ----

// Local FlowTuple -> FlowKey conversion (dp/spd/flow.cc may not exist yet;
// a different name keeps this from clashing with to_key() once it does).
FlowKey key_of(const FlowTuple& t) {
  FlowKey k;
  const Family f = t.family == 4 ? Family::ipv4 : t.family == 6 ? Family::ipv6 : Family::none;
  const std::size_t n = f == Family::ipv4 ? 4 : f == Family::ipv6 ? 16 : 0;
  k.src.family = f;
  k.dst.family = f;
  std::memcpy(k.src.bytes.data(), t.src, n);
  std::memcpy(k.dst.bytes.data(), t.dst, n);
  k.proto = t.proto;
  k.sport = t.sport;
  k.dport = t.dport;
  k.opaque_ports = t.opaque != 0;
  return k;
}

// Selector::matches with the opaque rule: a tuple whose ports are unknown (a
// non-first fragment) matches a selector with a specific protocol only if
// both of its port ranges are the full 0-65535. Selector::matches applies it
// through FlowKey::opaque_ports; it is spelled out here as well so that the
// reference states the rule on its own.
bool ref_matches(const Selector& s, const FlowTuple& t, const FlowKey& k) {
  if (!s.matches(k)) return false;
  if (t.opaque != 0 && s.proto != kProtoAny && !(s.sport.is_any() && s.dport.is_any())) return false;
  return true;
}

std::int32_t linear_lookup(const std::vector<Policy>& rules, const FlowTuple& t) {
  const FlowKey k = key_of(t);
  for (std::size_t i = 0; i < rules.size(); ++i) {
    if (ref_matches(rules[i].sel, t, k)) return static_cast<std::int32_t>(i);
  }
  return -1;
}

// ---- builders ----

// A tuple from text addresses (either family).
FlowTuple tup(const char* src, const char* dst, std::uint8_t proto, std::uint16_t sport, std::uint16_t dport,
              bool opaque = false) {
  FlowTuple t{};
  const IpAddress s = IpAddress::parse(src).value();
  const IpAddress d = IpAddress::parse(dst).value();
  const std::size_t n = s.family == Family::ipv4 ? 4 : 16;
  std::memcpy(t.src, s.bytes.data(), n);
  std::memcpy(t.dst, d.bytes.data(), n);
  t.family = s.family == Family::ipv4 ? 4 : 6;
  t.proto = proto;
  t.sport = sport;
  t.dport = dport;
  t.opaque = opaque ? 1 : 0;
  return t;
}

Policy policy(const char* src, const char* dst, std::uint8_t proto = kProtoAny, PortRange sport = {},
              PortRange dport = {}) {
  Policy p;
  p.action = PolicyAction::bypass;
  p.sel.src = IpPrefix::parse(src).value();
  p.sel.dst = IpPrefix::parse(dst).value();
  p.sel.proto = proto;
  p.sel.sport = sport;
  p.sel.dport = dport;
  return p;
}

std::string tuple_text(const FlowTuple& t) {
  const FlowKey k = key_of(t);
  return k.src.to_string() + " -> " + k.dst.to_string() + " proto " + std::to_string(t.proto) + " sport " +
         std::to_string(t.sport) + " dport " + std::to_string(t.dport) + (t.opaque ? " opaque" : "");
}

std::string rule_text(const std::vector<Policy>& rules, std::int32_t i) {
  if (i < 0) return "-1 (no match)";
  return std::to_string(i) + " [" + rules[static_cast<std::size_t>(i)].sel.to_string() + "]";
}

// ---- random policy sets with adversarial shapes ----

class Gen {
 public:
  explicit Gen(std::uint64_t seed) : rng_(seed) {
    for (int i = 0; i < 48; ++i) pool4_.push_back(random_addr(Family::ipv4));
    for (int i = 0; i < 48; ++i) pool6_.push_back(random_addr(Family::ipv6));
    // Addresses at the edges of the space.
    IpAddress zero4;
    zero4.family = Family::ipv4;
    IpAddress ones4 = zero4;
    std::fill_n(ones4.bytes.begin(), 4, std::uint8_t{0xff});
    IpAddress zero6;
    zero6.family = Family::ipv6;
    IpAddress ones6 = zero6;
    ones6.bytes.fill(0xff);
    pool4_.insert(pool4_.end(), {zero4, ones4});
    pool6_.insert(pool6_.end(), {zero6, ones6});
  }

  std::uint64_t u(std::uint64_t lo, std::uint64_t hi) { return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng_); }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }

  IpAddress random_addr(Family f) {
    IpAddress a;
    a.family = f;
    const std::size_t n = f == Family::ipv4 ? 4 : 16;
    for (std::size_t i = 0; i < n; ++i) a.bytes[i] = static_cast<std::uint8_t>(u(0, 255));
    return a;
  }

  // Prefix lengths: mostly the byte-aligned ones, some arbitrary.
  std::uint8_t prefix_len(Family f) {
    const unsigned w = f == Family::ipv4 ? 32 : 128;
    const unsigned q = w / 4;  // 8 or 32
    const auto r = u(0, 99);
    if (r < 3) return 0;
    if (r < 13) return static_cast<std::uint8_t>(q);
    if (r < 33) return static_cast<std::uint8_t>(2 * q);
    if (r < 58) return static_cast<std::uint8_t>(3 * q);
    if (r < 85) return static_cast<std::uint8_t>(w);
    return static_cast<std::uint8_t>(u(1, w - 1));
  }

  static IpAddress masked(IpAddress a, unsigned len) {
    const unsigned n = a.family == Family::ipv4 ? 4 : 16;
    for (unsigned i = 0; i < n; ++i) {
      const unsigned start = 8 * i;
      if (len >= start + 8) continue;
      const unsigned keep = len > start ? len - start : 0;
      a.bytes[i] &= static_cast<std::uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
    }
    return a;
  }

  IpPrefix prefix(Family f) {
    const auto& pool = f == Family::ipv4 ? pool4_ : pool6_;
    IpAddress a = chance(0.9) ? pool[u(0, pool.size() - 1)] : random_addr(f);
    // Nearby networks: perturb one random bit of a pool address.
    if (chance(0.3)) {
      const unsigned bit = static_cast<unsigned>(u(0, a.bit_width() - 1));
      a.bytes[bit / 8] ^= static_cast<std::uint8_t>(0x80 >> (bit % 8));
    }
    IpPrefix p;
    p.len = prefix_len(f);
    p.addr = masked(a, p.len);
    return p;
  }

  std::uint16_t port_value() {
    static constexpr std::uint16_t kPorts[] = {0, 1, 2, 22, 53, 80, 443, 500, 1023, 1024, 1025, 4500, 8080,
                                               32767, 32768, 65533, 65534, 65535};
    if (chance(0.7)) return kPorts[u(0, std::size(kPorts) - 1)];
    return static_cast<std::uint16_t>(u(0, 65535));
  }

  PortRange port_range(bool icmp) {
    const std::uint16_t top = icmp ? 255 : 65535;
    PortRange r;
    const auto k = u(0, 99);
    if (k < 30) return r;  // any
    if (k < 50) {          // single port
      r.lo = r.hi = icmp ? static_cast<std::uint16_t>(u(0, 255)) : port_value();
    } else if (k < 60) {  // touching 0
      r.lo = 0;
      r.hi = static_cast<std::uint16_t>(icmp ? u(0, top) : std::min<std::uint16_t>(port_value(), 65534));
    } else if (k < 70) {  // touching 65535 (or 255 for ICMP)
      r.lo = static_cast<std::uint16_t>(icmp ? u(1, top) : std::max<std::uint16_t>(port_value(), 1));
      r.hi = top;
    } else {
      std::uint16_t a = icmp ? static_cast<std::uint16_t>(u(0, top)) : port_value();
      std::uint16_t b = icmp ? static_cast<std::uint16_t>(u(0, top)) : port_value();
      if (a > b) std::swap(a, b);
      r.lo = a;
      r.hi = b;
    }
    return r;
  }

  Policy rule() {
    const Family f = chance(0.5) ? Family::ipv4 : Family::ipv6;
    Policy p;
    p.action = PolicyAction::bypass;
    const unsigned q = f == Family::ipv4 ? 8 : 32;
    for (int tries = 0;; ++tries) {
      p.sel.src = prefix(f);
      p.sel.dst = prefix(f);
      // Very wide rules shadow everything behind them; keep them rare.
      if (p.sel.src.len > q || p.sel.dst.len > q || tries > 3 || chance(0.1)) break;
    }
    const auto k = u(0, 99);
    if (k < 25) {
      p.sel.proto = kProtoAny;
      // Ports on "any": Selector::matches ignores them (validate_selector
      // would refuse this; the classifier must still agree with matches).
      if (chance(0.05)) {
        p.sel.sport = port_range(false);
        p.sel.dport = port_range(false);
      }
      return p;
    }
    if (k < 55) p.sel.proto = kProtoTcp;
    else if (k < 80) p.sel.proto = kProtoUdp;
    else if (k < 90) p.sel.proto = f == Family::ipv4 ? kProtoIcmp : kProtoIcmpv6;
    else p.sel.proto = chance(0.5) ? kProtoSctp : static_cast<std::uint8_t>(u(1, 255));
    const bool icmp = proto_is_icmp(p.sel.proto);
    p.sel.sport = port_range(icmp);
    p.sel.dport = port_range(icmp);
    return p;
  }

  std::vector<Policy> rules(std::size_t n) {
    std::vector<Policy> v;
    v.reserve(n);
    for (std::size_t i = 0; i < n; ++i) v.push_back(rule());
    return v;
  }

  // A site network (10.<site>.0.0/16, 2001:db8:<site>::/48), a subnet of it
  // (/24, /64) or a host in it.
  IpPrefix site_prefix(Family f) {
    IpPrefix p;
    p.addr.family = f;
    const auto site = static_cast<std::uint8_t>(u(0, 255));
    const auto k = u(0, 99);
    if (f == Family::ipv4) {
      p.addr.bytes[0] = 10;
      p.addr.bytes[1] = site;
      p.len = k < 10 ? 16 : k < 50 ? 24 : 32;
      if (p.len >= 24) p.addr.bytes[2] = static_cast<std::uint8_t>(u(0, 255));
      if (p.len == 32) p.addr.bytes[3] = static_cast<std::uint8_t>(u(1, 254));
    } else {
      const std::uint8_t head[] = {0x20, 0x01, 0x0d, 0xb8, 0x00, site};
      std::copy(std::begin(head), std::end(head), p.addr.bytes.begin());
      p.len = k < 10 ? 48 : k < 50 ? 64 : 128;
      if (p.len >= 64) p.addr.bytes[7] = static_cast<std::uint8_t>(u(0, 255));
      if (p.len == 128) p.addr.bytes[15] = static_cast<std::uint8_t>(u(1, 254));
    }
    return p;
  }

  // Shaped like a large gateway SPD: site subnets and hosts on both sides,
  // any protocol or a service port, few port ranges.
  Policy site_rule() {
    const Family f = chance(0.5) ? Family::ipv4 : Family::ipv6;
    Policy p;
    p.action = PolicyAction::protect;
    p.reqid = 1;
    p.sel.src = site_prefix(f);
    p.sel.dst = site_prefix(f);
    const auto k = u(0, 99);
    if (k < 40) return p;
    if (k < 90) {
      p.sel.proto = k < 70 ? kProtoTcp : kProtoUdp;
      const auto r = u(0, 99);
      if (r < 60) p.sel.dport.lo = p.sel.dport.hi = port_value();
      else if (r < 70) p.sel.dport = {1024, 65535};
      if (chance(0.1)) p.sel.sport.lo = p.sel.sport.hi = port_value();
      return p;
    }
    p.sel.proto = f == Family::ipv4 ? kProtoIcmp : kProtoIcmpv6;
    if (chance(0.5)) p.sel.sport.lo = p.sel.sport.hi = static_cast<std::uint16_t>(u(0, 255));
    return p;
  }

  std::vector<Policy> site_rules(std::size_t n) {
    std::vector<Policy> v;
    v.reserve(n);
    for (std::size_t i = 0; i < n; ++i) v.push_back(site_rule());
    return v;
  }

  // An address inside p, or (sometimes) just outside it.
  IpAddress addr_near(const IpPrefix& p) {
    IpAddress a = random_addr(p.family());
    const unsigned len = p.len;
    for (unsigned i = 0; i < 16; ++i) {
      const unsigned start = 8 * i;
      if (start >= len) break;
      const unsigned keep = len - start >= 8 ? 8 : len - start;
      const auto m = static_cast<std::uint8_t>(0xff << (8 - keep));
      a.bytes[i] = static_cast<std::uint8_t>((p.addr.bytes[i] & m) | (a.bytes[i] & ~m));
    }
    if (len > 0 && chance(0.15)) {  // flip the last prefix bit: one step outside
      const unsigned bit = len - 1;
      a.bytes[bit / 8] ^= static_cast<std::uint8_t>(0x80 >> (bit % 8));
    }
    return a;
  }

  std::uint16_t port_near(const PortRange& r) {
    const auto k = u(0, 99);
    if (k < 65) {
      switch (u(0, 3)) {
        case 0: return r.lo == 0 ? r.lo : static_cast<std::uint16_t>(r.lo - 1);
        case 1: return r.lo;
        case 2: return r.hi;
        default: return r.hi == 65535 ? r.hi : static_cast<std::uint16_t>(r.hi + 1);
      }
    }
    if (k < 85) return static_cast<std::uint16_t>(u(r.lo, r.hi));
    return port_value();
  }

  std::uint8_t proto_value(Family f) {
    static constexpr std::uint8_t kProtos[] = {0, kProtoTcp, kProtoUdp, kProtoSctp, 50};
    if (chance(0.2)) return f == Family::ipv4 ? kProtoIcmp : kProtoIcmpv6;
    if (chance(0.1)) return static_cast<std::uint8_t>(u(0, 255));
    return kProtos[u(0, std::size(kProtos) - 1)];
  }

  FlowTuple tuple(const std::vector<Policy>& rules) {
    FlowTuple t{};
    IpAddress s;
    IpAddress d;
    std::uint8_t proto;
    PortRange sr;
    PortRange dr;
    if (!rules.empty() && chance(0.85)) {
      const Selector& sel = rules[u(0, rules.size() - 1)].sel;
      s = addr_near(sel.src);
      // Sometimes take the destination from another rule of the family.
      const Selector& other = rules[u(0, rules.size() - 1)].sel;
      d = addr_near(chance(0.1) && other.dst.family() == sel.dst.family() ? other.dst : sel.dst);
      proto = sel.proto != kProtoAny && chance(0.75) ? sel.proto : proto_value(sel.src.family());
      sr = sel.sport;
      dr = sel.dport;
    } else {
      const Family f = chance(0.5) ? Family::ipv4 : Family::ipv6;
      s = chance(0.5) ? addr_near(prefix(f)) : random_addr(f);
      d = chance(0.5) ? addr_near(prefix(f)) : random_addr(f);
      proto = proto_value(f);
      sr = port_range(false);
      dr = port_range(false);
    }
    const std::size_t n = s.family == Family::ipv4 ? 4 : 16;
    std::memcpy(t.src, s.bytes.data(), n);
    std::memcpy(t.dst, d.bytes.data(), n);
    t.family = s.family == Family::ipv4 ? 4 : 6;
    t.proto = proto;
    t.sport = port_near(sr);
    t.dport = port_near(dr);
    if (chance(0.12)) {  // a non-first fragment: ports unknown
      t.opaque = 1;
      // extract_flow() leaves ports 0; other values must not matter either.
      if (chance(0.7)) t.sport = t.dport = 0;
    }
    return t;
  }

 private:
  std::mt19937_64 rng_;
  std::vector<IpAddress> pool4_;
  std::vector<IpAddress> pool6_;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Classifies `tuples` with both and reports up to 10 differences.
// Returns the number of tuples compared.
std::size_t compare_with_reference(const AclSpd& acl, const std::vector<Policy>& rules,
                                   const std::vector<FlowTuple>& tuples, std::set<std::int32_t>* hit) {
  std::vector<const FlowTuple*> ptrs;
  ptrs.reserve(tuples.size());
  for (const auto& t : tuples) ptrs.push_back(&t);
  std::vector<std::int32_t> got(tuples.size(), -2);
  // Uneven batch sizes exercise the batching in classify().
  for (std::size_t at = 0, step = 1; at < tuples.size(); at += step, step = step * 3 % 257 + 1) {
    const std::size_t m = std::min(step, tuples.size() - at);
    acl.classify(ptrs.data() + at, static_cast<std::uint32_t>(m), got.data() + at);
  }
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < tuples.size(); ++i) {
    const std::int32_t want = linear_lookup(rules, tuples[i]);
    if (hit) hit->insert(want);
    std::int32_t one = got[i];
    if (i % 11 == 0) one = acl.classify_one(tuples[i]);
    if (got[i] != want || one != want) {
      if (++mismatches <= 10) {
        ADD_FAILURE() << "tuple " << i << ": " << tuple_text(tuples[i]) << "\n  linear:   " << rule_text(rules, want)
                      << "\n  rte_acl:  " << rule_text(rules, got[i]) << " (classify_one: " << rule_text(rules, one)
                      << ")";
      }
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << tuples.size() << " tuples";
  return tuples.size();
}

// ---- tests ----

TEST(AclSpd, EmptyRuleSetMatchesNothing) {
  start_eal();
  std::string err;
  auto acl = AclSpd::build({}, &err);
  ASSERT_NE(acl, nullptr) << err;
  EXPECT_EQ(acl->classify_one(tup("10.0.0.1", "10.0.0.2", kProtoTcp, 1, 2)), -1);
  EXPECT_EQ(acl->classify_one(tup("2001:db8::1", "2001:db8::2", kProtoUdp, 1, 2, true)), -1);
  FlowTuple t4 = tup("0.0.0.0", "255.255.255.255", 0, 0, 0);
  const FlowTuple* p[] = {&t4, &t4};
  std::int32_t out[2] = {7, 7};
  acl->classify(p, 2, out);
  EXPECT_EQ(out[0], -1);
  EXPECT_EQ(out[1], -1);
}

TEST(AclSpd, OnlyOneFamilyHasRules) {
  start_eal();
  std::string err;
  auto acl = AclSpd::build({policy("0.0.0.0/0", "0.0.0.0/0")}, &err);
  ASSERT_NE(acl, nullptr) << err;
  EXPECT_EQ(acl->classify_one(tup("10.0.0.1", "10.0.0.2", kProtoTcp, 1, 2)), 0);
  EXPECT_EQ(acl->classify_one(tup("::1", "::2", kProtoTcp, 1, 2)), -1);
  FlowTuple bad = tup("10.0.0.1", "10.0.0.2", kProtoTcp, 1, 2);
  bad.family = 0;
  EXPECT_EQ(acl->classify_one(bad), -1);
}

TEST(AclSpd, FirstMatchOpaqueAndPrefixWords) {
  start_eal();
  const std::vector<Policy> rules = {
      policy("10.0.0.0/8", "192.168.1.0/24", kProtoTcp, {}, {443, 443}),  // 0
      policy("10.0.0.0/8", "192.168.1.0/24", kProtoTcp),                  // 1: any ports, accepts fragments
      policy("10.1.0.0/16", "192.168.0.0/16", kProtoUdp, {0, 0}, {}),     // 2: sport 0 only
      policy("10.0.0.0/8", "0.0.0.0/0"),                                  // 3
      policy("2001:db8:ab00::/40", "::/0", kProtoTcp, {1024, 65535}, {}), // 4: /40 spans two words
      policy("2001:db8::/32", "::/0"),                                    // 5
      policy("::/0", "2001:db8::1/128", kProtoIcmpv6, {128, 128}, {0, 0}),  // 6: echo request
  };
  std::string err;
  auto acl = AclSpd::build(rules, &err);
  ASSERT_NE(acl, nullptr) << err;
  struct Case {
    FlowTuple t;
    std::int32_t want;
  };
  const Case cases[] = {
      {tup("10.2.3.4", "192.168.1.9", kProtoTcp, 5555, 443), 0},
      {tup("10.2.3.4", "192.168.1.9", kProtoTcp, 5555, 444), 1},
      {tup("10.2.3.4", "192.168.1.9", kProtoTcp, 0, 0, true), 1},  // fragment: rule 0 cannot match
      {tup("10.1.3.4", "192.168.2.9", kProtoUdp, 0, 53), 2},
      {tup("10.1.3.4", "192.168.2.9", kProtoUdp, 0, 0, true), 3},  // fragment skips the port rule
      {tup("10.1.3.4", "192.168.2.9", kProtoUdp, 1, 53), 3},
      {tup("11.0.0.1", "192.168.1.9", kProtoTcp, 5555, 443), -1},
      {tup("2001:db8:abff::1", "::9", kProtoTcp, 1024, 1), 4},
      {tup("2001:db8:abff::1", "::9", kProtoTcp, 1023, 1), 5},
      {tup("2001:db8:ac00::1", "::9", kProtoTcp, 1024, 1), 5},   // outside the /40 in the second word
      {tup("2001:db8:abff::1", "::9", kProtoTcp, 0, 0, true), 5},
      {tup("2001:db9::1", "2001:db8::1", kProtoIcmpv6, 128, 0), 6},
      {tup("2001:db9::1", "2001:db8::1", kProtoIcmpv6, 129, 0), -1},
      {tup("2001:db9::1", "2001:db8::1", kProtoIcmpv6, 0, 0, true), -1},
  };
  for (const auto& c : cases) {
    ASSERT_EQ(linear_lookup(rules, c.t), c.want) << tuple_text(c.t) << " (reference)";
    EXPECT_EQ(acl->classify_one(c.t), c.want) << tuple_text(c.t);
  }
}

TEST(AclSpd, RefusesMalformedRules) {
  start_eal();
  std::vector<Policy> rules = {policy("10.0.0.0/8", "10.0.0.0/8"), policy("10.0.0.0/8", "::/0")};
  std::string err;
  EXPECT_EQ(AclSpd::build(rules, &err), nullptr);
  EXPECT_NE(err.find("rule 1"), std::string::npos) << err;
  rules[1] = policy("10.0.0.0/8", "10.0.0.0/8", kProtoTcp);
  rules[1].sel.dport = {10, 9};
  err.clear();
  EXPECT_EQ(AclSpd::build(rules, &err), nullptr);
  EXPECT_NE(err.find("low end above"), std::string::npos) << err;
}

TEST(AclSpd, MatchesLinearReferenceOnRandomPolicySets) {
  start_eal();
  struct Round {
    const char* shape;  // "adversarial" (Gen::rule) or "site" (Gen::site_rule)
    std::size_t rules;
    std::size_t tuples;
    bool catch_all;              // end with a match-everything rule per family
    std::size_t rules_per_ctx;   // AclSpd::Options::max_rules_per_context
  };
  const Round rounds[] = {
      {"adversarial", 1000, 60000, false, 0},
      {"adversarial", 3000, 50000, true, 700},  // 5 contexts per family
      {"adversarial", 10000, 60000, false, 0},
      {"site", 10000, 40000, false, 0},
  };
  std::size_t compared = 0;
  for (std::size_t r = 0; r < std::size(rounds); ++r) {
    const Round& rd = rounds[r];
    const std::uint64_t seed = base_seed() + r;
    SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with CYGNET_ACL_SEED=" + std::to_string(base_seed()) + ")");
    Gen gen(seed);
    std::vector<Policy> rules = std::string(rd.shape) == "site" ? gen.site_rules(rd.rules) : gen.rules(rd.rules);
    if (rd.catch_all) {
      rules.push_back(policy("0.0.0.0/0", "0.0.0.0/0"));
      rules.push_back(policy("::/0", "::/0"));
    }
    std::vector<FlowTuple> tuples;
    tuples.reserve(rd.tuples);
    for (std::size_t i = 0; i < rd.tuples; ++i) tuples.push_back(gen.tuple(rules));

    std::string err;
    AclSpd::Options opt;
    opt.max_rules_per_context = rd.rules_per_ctx;
    const auto t0 = std::chrono::steady_clock::now();
    auto acl = AclSpd::build(rules, opt, &err);
    const double build_s = seconds_since(t0);
    ASSERT_NE(acl, nullptr) << err;

    std::set<std::int32_t> hit;
    compared += compare_with_reference(*acl, rules, tuples, &hit);
    const auto unmatched = hit.count(-1) ? std::count_if(tuples.begin(), tuples.end(), [&](const FlowTuple& t) {
      return linear_lookup(rules, t) < 0;
    }) : 0;
    std::printf("[ acl_spd  ] seed %llu: %zu %s rules in %zu contexts built in %.3f s (%.1f MiB DPDK heap); "
                "%zu tuples, %zu distinct rules hit, %lld unmatched\n",
                static_cast<unsigned long long>(seed), rules.size(), rd.shape, acl->num_contexts(), build_s,
                static_cast<double>(acl->memory_bytes()) / (1 << 20), tuples.size(), hit.size() - hit.count(-1),
                static_cast<long long>(unmatched));
    // The tuples must reach deep into the rule list, or the comparison is weak.
    EXPECT_GT(hit.size(), rules.size() / 5);
  }
  RecordProperty("tuples_compared", static_cast<int>(compared));
  std::printf("[ acl_spd  ] %zu tuples compared in total\n", compared);
}

// rte_acl builds 100,000 rules of a gateway-like shape into one trie per
// family. (100,000 of the adversarial rules above need more than the 8 tries
// rte_acl allows per context: that takes Options::max_rules_per_context.)
TEST(AclSpd, Builds100kRules) {
  start_eal();
  const std::uint64_t seed = base_seed() + 100;
  SCOPED_TRACE("seed " + std::to_string(seed));
  Gen gen(seed);
  const std::vector<Policy> rules = gen.site_rules(100000);
  std::string err;
  const auto t0 = std::chrono::steady_clock::now();
  auto acl = AclSpd::build(rules, &err);
  const double build_s = seconds_since(t0);
  ASSERT_NE(acl, nullptr) << err;
  EXPECT_EQ(acl->num_contexts(), 2u);
  std::printf("[ acl_spd  ] %zu site rules built in %.3f s (%.1f MiB DPDK heap)\n", rules.size(), build_s,
              static_cast<double>(acl->memory_bytes()) / (1 << 20));
  std::vector<FlowTuple> tuples;
  for (int i = 0; i < 4000; ++i) tuples.push_back(gen.tuple(rules));
  compare_with_reference(*acl, rules, tuples, nullptr);
}

}  // namespace
}  // namespace cygnet::bench
