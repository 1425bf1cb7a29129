// SPD: packet parsing, the classifier and the cached path against the
// linear reference, policy changes, generations, ACQUIRE, RCU publication.
#include "dp/spd/spd.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <thread>

#include "dp/spd/classifier.h"
#include "dp/spd/flow.h"
#include "dp/spd/flow_cache.h"
#include "dp/sad/sad.h"

namespace cygnet::dp::spd {
namespace {

// A random seed per run, printed by each test's trace; CYGNET_TEST_SEED=N
// replays a failing run.
std::uint64_t test_seed() {
  if (const char* env = std::getenv("CYGNET_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  return std::random_device{}();
}

// ------------------------------------------------------------ extract_flow

std::vector<std::uint8_t> ipv4(std::uint8_t proto, std::vector<std::uint8_t> l4, std::uint16_t frag = 0) {
  std::vector<std::uint8_t> p = {0x45, 0, 0, 0, 0, 1, static_cast<std::uint8_t>(frag >> 8),
                                 static_cast<std::uint8_t>(frag), 64, proto, 0, 0, 10, 1, 2, 3, 10, 4, 5, 6};
  p.insert(p.end(), l4.begin(), l4.end());
  p[2] = static_cast<std::uint8_t>(p.size() >> 8);
  p[3] = static_cast<std::uint8_t>(p.size());
  return p;
}

std::vector<std::uint8_t> ipv6(std::uint8_t nh, std::vector<std::uint8_t> rest) {
  std::vector<std::uint8_t> p(40, 0);
  p[0] = 0x60;
  p[6] = nh;
  p[7] = 64;
  p[8] = 0x20;
  p[9] = 0x01;
  p[23] = 1;
  p[24] = 0x20;
  p[25] = 0x01;
  p[39] = 2;
  p.insert(p.end(), rest.begin(), rest.end());
  const auto pl = static_cast<std::uint16_t>(p.size() - 40);
  p[4] = static_cast<std::uint8_t>(pl >> 8);
  p[5] = static_cast<std::uint8_t>(pl);
  return p;
}

TEST(ExtractFlow, Ipv4TcpUdpIcmp) {
  FlowTuple t;
  auto tcp = ipv4(kProtoTcp, {0x01, 0xbb, 0x00, 0x50, 0, 0, 0, 0});
  ASSERT_TRUE(extract_flow(tcp.data(), static_cast<std::uint16_t>(tcp.size()), t));
  EXPECT_EQ(t.family, 4);
  EXPECT_EQ(t.proto, kProtoTcp);
  EXPECT_EQ(t.sport, 443);
  EXPECT_EQ(t.dport, 80);
  EXPECT_EQ(t.src[0], 10);
  EXPECT_EQ(t.dst[3], 6);
  EXPECT_EQ(t.src[4], 0);  // the rest of the 16 bytes is zero
  EXPECT_EQ(t.opaque, 0);

  auto icmp = ipv4(kProtoIcmp, {8, 3, 0, 0});
  ASSERT_TRUE(extract_flow(icmp.data(), static_cast<std::uint16_t>(icmp.size()), t));
  EXPECT_EQ(t.sport, 8);  // type
  EXPECT_EQ(t.dport, 3);  // code

  auto esp = ipv4(50, {1, 2, 3, 4, 5, 6, 7, 8});  // no ports
  ASSERT_TRUE(extract_flow(esp.data(), static_cast<std::uint16_t>(esp.size()), t));
  EXPECT_EQ(t.proto, 50);
  EXPECT_EQ(t.sport, 0);
  EXPECT_EQ(t.dport, 0);
}

TEST(ExtractFlow, Ipv4Fragments) {
  FlowTuple t;
  auto first = ipv4(kProtoUdp, {0x10, 0x00, 0x00, 0x35, 0, 8, 0, 0}, 0x2000);  // MF, offset 0
  ASSERT_TRUE(extract_flow(first.data(), static_cast<std::uint16_t>(first.size()), t));
  EXPECT_EQ(t.opaque, 0);
  EXPECT_EQ(t.dport, 53);
  auto later = ipv4(kProtoUdp, {0xde, 0xad, 0xbe, 0xef}, 0x0010);  // offset 128 bytes
  ASSERT_TRUE(extract_flow(later.data(), static_cast<std::uint16_t>(later.size()), t));
  EXPECT_EQ(t.opaque, 1);
  EXPECT_EQ(t.sport, 0);
  EXPECT_EQ(t.dport, 0);
}

TEST(ExtractFlow, Ipv6ExtensionHeadersAndFragments) {
  FlowTuple t;
  // hop-by-hop (8 bytes) then UDP
  auto p = ipv6(0, {kProtoUdp, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x00, 0x35, 0, 8, 0, 0});
  ASSERT_TRUE(extract_flow(p.data(), static_cast<std::uint16_t>(p.size()), t));
  EXPECT_EQ(t.family, 6);
  EXPECT_EQ(t.proto, kProtoUdp);
  EXPECT_EQ(t.sport, 0x1234);
  EXPECT_EQ(t.dport, 53);
  EXPECT_EQ(t.src[0], 0x20);
  EXPECT_EQ(t.dst[15], 2);
  // fragment header, offset 0: ports read behind it
  auto f0 = ipv6(44, {kProtoTcp, 0, 0x00, 0x01, 0, 0, 0, 1, 0x00, 0x16, 0x01, 0xbb});
  ASSERT_TRUE(extract_flow(f0.data(), static_cast<std::uint16_t>(f0.size()), t));
  EXPECT_EQ(t.opaque, 0);
  EXPECT_EQ(t.sport, 22);
  // fragment header, offset 8: opaque
  auto f1 = ipv6(44, {kProtoTcp, 0, 0x00, 0x08, 0, 0, 0, 1, 0xff, 0xff});
  ASSERT_TRUE(extract_flow(f1.data(), static_cast<std::uint16_t>(f1.size()), t));
  EXPECT_EQ(t.opaque, 1);
  EXPECT_EQ(t.proto, kProtoTcp);
  // ICMPv6 type/code
  auto icmp = ipv6(kProtoIcmpv6, {128, 0, 0, 0});
  ASSERT_TRUE(extract_flow(icmp.data(), static_cast<std::uint16_t>(icmp.size()), t));
  EXPECT_EQ(t.sport, 128);
}

TEST(ExtractFlow, RefusesMalformed) {
  FlowTuple t;
  auto tcp = ipv4(kProtoTcp, {0x01, 0xbb, 0x00, 0x50});
  EXPECT_FALSE(extract_flow(tcp.data(), 19, t));                                         // runt
  EXPECT_FALSE(extract_flow(tcp.data(), static_cast<std::uint16_t>(tcp.size() - 1), t));  // total > len
  auto shortl4 = ipv4(kProtoTcp, {0x01, 0xbb});
  EXPECT_FALSE(extract_flow(shortl4.data(), static_cast<std::uint16_t>(shortl4.size()), t));
  auto badihl = ipv4(kProtoTcp, {0x01, 0xbb, 0x00, 0x50});
  badihl.at(0) = 0x44;
  EXPECT_FALSE(extract_flow(badihl.data(), static_cast<std::uint16_t>(badihl.size()), t));
  auto v5 = ipv4(kProtoTcp, {0x01, 0xbb, 0x00, 0x50});
  v5.at(0) = 0x55;
  EXPECT_FALSE(extract_flow(v5.data(), static_cast<std::uint16_t>(v5.size()), t));
  auto ext = ipv6(60, {kProtoUdp, 4, 0, 0});  // destination options claiming 40 bytes
  EXPECT_FALSE(extract_flow(ext.data(), static_cast<std::uint16_t>(ext.size()), t));
  auto trunc6 = ipv6(kProtoUdp, {0, 1});
  EXPECT_FALSE(extract_flow(trunc6.data(), static_cast<std::uint16_t>(trunc6.size()), t));
}

// ------------------------------------------------ random policies and flows

struct Gen {
  std::mt19937_64 rng;
  explicit Gen(std::uint64_t seed) : rng(seed) {}

  std::uint64_t u(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); }
  bool coin(unsigned pct) { return u(100) < pct; }

  // Addresses from a small pool so prefixes overlap a lot.
  IpAddress addr(Family f) {
    std::uint8_t b[16] = {};
    if (f == Family::ipv4) {
      b[0] = static_cast<std::uint8_t>(10 + u(2));
      b[1] = static_cast<std::uint8_t>(u(4));
      b[2] = static_cast<std::uint8_t>(u(8));
      b[3] = static_cast<std::uint8_t>(u(256));
      return IpAddress::v4_bytes(b);
    }
    b[0] = 0x20;
    b[1] = 0x01;
    b[2] = 0x0d;
    b[3] = static_cast<std::uint8_t>(0xb8 + u(2));
    b[7] = static_cast<std::uint8_t>(u(4));
    b[11] = static_cast<std::uint8_t>(u(8));
    b[15] = static_cast<std::uint8_t>(u(256));
    if (coin(5)) b[15] = 0xff;
    return IpAddress::v6_bytes(b);
  }
  static IpPrefix masked(IpAddress a, unsigned len) {
    for (unsigned i = 0; i < 16; ++i) {
      const unsigned keep = len > i * 8 ? std::min(8u, len - i * 8) : 0;
      a.bytes[i] &= static_cast<std::uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
    }
    return IpPrefix{a, static_cast<std::uint8_t>(len)};
  }
  IpPrefix prefix(Family f) {
    static const unsigned l4[] = {0, 8, 16, 24, 28, 32, 32};
    static const unsigned l6[] = {0, 32, 48, 64, 96, 120, 128, 128};
    const unsigned len = f == Family::ipv4 ? l4[u(std::size(l4))] : l6[u(std::size(l6))];
    return masked(addr(f), len);
  }
  PortRange ports(bool icmp) {
    const std::uint16_t top = icmp ? 255 : 65535;
    switch (u(6)) {
      case 0: case 1: return PortRange{};
      case 2: { auto p = static_cast<std::uint16_t>(u(top + 1u)); return PortRange{p, p}; }
      case 3: return PortRange{0, static_cast<std::uint16_t>(u(top + 1u))};
      case 4: return PortRange{static_cast<std::uint16_t>(u(top + 1u)), top};
      default: {
        auto a = static_cast<std::uint16_t>(u(top + 1u));
        auto b = static_cast<std::uint16_t>(u(top + 1u));
        return PortRange{std::min(a, b), std::max(a, b)};
      }
    }
  }
  Policy policy(Family f, PolicyDir dir) {
    for (;;) {
      Policy p;
      p.dir = dir;
      p.priority = static_cast<std::uint32_t>(100 * (1 + u(4)));  // many ties
      p.action = static_cast<PolicyAction>(u(4));
      p.reqid = static_cast<std::uint32_t>(1 + u(8));
      p.sel.src = prefix(f);
      p.sel.dst = prefix(f);
      const std::uint8_t icmp = f == Family::ipv4 ? kProtoIcmp : kProtoIcmpv6;
      const std::uint8_t protos[] = {kProtoAny, kProtoAny, kProtoTcp, kProtoUdp, icmp, 50};
      p.sel.proto = protos[u(std::size(protos))];
      if (p.sel.proto != kProtoAny && p.sel.proto != 50) {
        p.sel.sport = ports(p.sel.proto == icmp);
        p.sel.dport = ports(p.sel.proto == icmp);
      }
      if (validate_policy(p)) return p;
    }
  }
  std::vector<Policy> policies(std::size_t n, PolicyDir dir) {
    std::vector<Policy> v;
    for (std::size_t i = 0; i < n; ++i) v.push_back(policy(coin(50) ? Family::ipv4 : Family::ipv6, dir));
    return v;
  }
  static IpAddress inside(const IpPrefix& p, Gen& g) {
    IpAddress a = p.addr;
    const unsigned width = a.bit_width();
    for (unsigned bit = p.len; bit < width; ++bit) {
      if (g.coin(50)) a.bytes[bit / 8] |= static_cast<std::uint8_t>(0x80 >> (bit % 8));
    }
    return a;
  }
  std::uint16_t near(const PortRange& r) {
    const int c[] = {r.lo - 1, r.lo, r.lo + 1, r.hi - 1, r.hi, r.hi + 1, static_cast<int>(u(65536))};
    return static_cast<std::uint16_t>(std::clamp(c[u(std::size(c))], 0, 65535));
  }
  // A flow aimed at a policy (often just inside or outside its edges), or random.
  FlowTuple flow(const std::vector<Policy>& pols) {
    FlowKey k;
    if (!pols.empty() && coin(85)) {
      const Policy& p = pols[u(pols.size())];
      k.src = coin(90) ? inside(p.sel.src, *this) : addr(p.sel.src.family());
      k.dst = coin(90) ? inside(p.sel.dst, *this) : addr(p.sel.dst.family());
      k.proto = p.sel.proto != kProtoAny && coin(80) ? p.sel.proto : static_cast<std::uint8_t>(u(3) == 0 ? 6 : 17);
      k.sport = near(p.sel.sport);
      k.dport = near(p.sel.dport);
      if (proto_is_icmp(k.proto)) {
        k.sport &= 0xff;
        k.dport &= 0xff;
      }
    } else {
      const Family f = coin(50) ? Family::ipv4 : Family::ipv6;
      k.src = addr(f);
      k.dst = addr(f);
      k.proto = static_cast<std::uint8_t>(u(3) == 0 ? kProtoTcp : kProtoUdp);
      k.sport = static_cast<std::uint16_t>(u(65536));
      k.dport = static_cast<std::uint16_t>(u(65536));
    }
    if (coin(5)) {
      k.opaque_ports = true;
      k.sport = k.dport = 0;
    }
    return to_tuple(k);
  }
};

std::vector<Policy> sorted_by_priority(std::vector<Policy> v) {
  std::stable_sort(v.begin(), v.end(), [](const Policy& a, const Policy& b) { return a.priority < b.priority; });
  return v;
}

TEST(Classifier, EmptyAndCatchAll) {
  auto empty = Classifier::build({}, 1);
  ASSERT_TRUE(empty);
  FlowKey k{*IpAddress::parse("10.0.0.1"), *IpAddress::parse("10.0.0.2"), kProtoUdp, 1, 2};
  EXPECT_EQ((*empty)->lookup(to_tuple(k)), -1);

  Policy all;
  all.action = PolicyAction::bypass;
  all.sel.src = IpPrefix::any(Family::ipv4);
  all.sel.dst = IpPrefix::any(Family::ipv4);
  std::vector<Policy> v{all};
  auto c = Classifier::build(v, 1);
  ASSERT_TRUE(c);
  EXPECT_EQ((*c)->lookup(to_tuple(k)), 0);
  FlowKey k6{*IpAddress::parse("2001:db8::1"), *IpAddress::parse("2001:db8::2"), kProtoUdp, 1, 2};
  EXPECT_EQ((*c)->lookup(to_tuple(k6)), -1);  // an IPv4 policy never matches IPv6
}

TEST(Classifier, RefusesInvalidPolicy) {
  Policy p;
  p.sel.src = IpPrefix::any(Family::ipv4);
  p.sel.dst = IpPrefix::any(Family::ipv6);
  std::vector<Policy> v{p};
  auto c = Classifier::build(v, 1);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("policy 0"), std::string::npos) << c.error().message;
}

// The classifier gives exactly the linear reference's answer.
TEST(Classifier, DifferentialAgainstLinear) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Gen g(seed);
  std::size_t compared = 0;
  for (std::size_t n : {1u, 2u, 10u, 100u, 1000u, 5000u}) {
    auto pols = sorted_by_priority(g.policies(n, PolicyDir::out));
    LinearSpd lin(pols);
    auto c = Classifier::build(pols, g.rng());
    ASSERT_TRUE(c);
    const std::size_t flows = n >= 1000 ? 100000 : 20000;
    for (std::size_t i = 0; i < flows; ++i) {
      const FlowTuple t = g.flow(pols);
      const std::int32_t want = lin.lookup(t);
      const std::int32_t got = (*c)->lookup(t);
      ASSERT_EQ(got, want) << "n=" << n << " flow " << to_key(t).src.to_string() << " -> "
                           << to_key(t).dst.to_string() << " proto " << int(t.proto) << " " << t.sport << "/"
                           << t.dport << " opaque " << int(t.opaque);
      ++compared;
    }
  }
  EXPECT_GE(compared, 200000u);
}

// Policy sets with 5..64 tuple groups get the group filter (docs/spd.md).
// Prefixes that differ only in the chosen bytes make the window choice
// checkable; flows aimed at the policies and just outside them check that
// the filter never hides a matching group.
TEST(Classifier, GroupFilterGivesTheLinearAnswer) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Gen g(seed);
  struct Case {
    Family fam;
    unsigned vary;     // the byte the addresses differ in
    unsigned window;   // the filter window expected for both fields
  };
  for (const Case c : {Case{Family::ipv4, 2, 1}, Case{Family::ipv4, 3, 2}, Case{Family::ipv6, 5, 4},
                       Case{Family::ipv6, 9, 8}}) {
    const unsigned width = c.fam == Family::ipv4 ? 32 : 128;
    std::vector<Policy> pols;
    std::set<std::string> seen;
    while (pols.size() < 3000) {
      auto pick = [&](void) {
        std::uint8_t b[16] = {10, 1, 2, 3, 0x20, 0x01, 0x0d, 0xb8};
        if (c.fam == Family::ipv6) {
          b[0] = 0x20; b[1] = 0x01; b[2] = 0x0d; b[3] = 0xb8;
        }
        b[c.vary] = static_cast<std::uint8_t>(g.u(256));
        b[c.vary + 1 < width / 8 ? c.vary + 1 : c.vary] ^= static_cast<std::uint8_t>(g.u(4));
        // Prefix lengths that end inside, before and after the varying byte.
        const unsigned lens[] = {c.vary * 8 - 8, c.vary * 8 + 4, c.vary * 8 + 8, c.vary * 8 + 12, width};
        const IpAddress a = c.fam == Family::ipv4 ? IpAddress::v4_bytes(b) : IpAddress::v6_bytes(b);
        return Gen::masked(a, std::min(width, lens[g.u(std::size(lens))]));
      };
      Policy p;
      p.action = PolicyAction::bypass;
      p.priority = static_cast<std::uint32_t>(g.u(4));
      p.sel.src = pick();
      p.sel.dst = pick();
      if (g.coin(30)) {
        p.sel.proto = kProtoTcp;
        p.sel.dport = PortRange{static_cast<std::uint16_t>(g.u(1000)), 1000};
      } else if (g.coin(20)) {
        p.sel.proto = kProtoUdp;
      }
      if (!validate_policy(p) || !seen.insert(p.sel.to_string()).second) continue;
      pols.push_back(p);
    }
    pols = sorted_by_priority(pols);
    auto cls = Classifier::build(pols, g.rng(), Classifier::Mode::tuples);
    ASSERT_TRUE(cls);
    const std::size_t groups = (*cls)->group_count(c.fam);
    ASSERT_GT(groups, Classifier::kFilterMinGroups);
    ASSERT_LE(groups, Classifier::kFilterGroups);
    ASSERT_TRUE((*cls)->filtered(c.fam));
    EXPECT_EQ((*cls)->filter_windows(c.fam), std::make_pair(c.window, c.window));
    LinearSpd lin(pols);
    std::size_t matched = 0;
    for (std::size_t i = 0; i < 50000; ++i) {
      const FlowTuple t = g.flow(pols);
      const std::int32_t want = lin.lookup(t);
      ASSERT_EQ((*cls)->lookup(t), want) << to_key(t).src.to_string() << " -> " << to_key(t).dst.to_string();
      matched += want >= 0;
    }
    EXPECT_GT(matched, 10000u);  // the flows exercise matches, not only misses
  }
}

TEST(Classifier, FewGroupsAreNotFiltered) {
  Gen g(7);
  std::vector<Policy> pols;
  for (unsigned i = 0; i < 200; ++i) {
    Policy p;
    p.action = PolicyAction::discard;
    p.sel.src = Gen::masked(IpAddress::v4(0xc0a80000u), 16);
    p.sel.dst = Gen::masked(IpAddress::v4(0x0a000000u + (i << 8)), 24);
    pols.push_back(p);
  }
  auto cls = Classifier::build(pols, 1, Classifier::Mode::tuples);
  ASSERT_TRUE(cls);
  EXPECT_EQ((*cls)->group_count(Family::ipv4), 1u);
  EXPECT_FALSE((*cls)->filtered(Family::ipv4));
  FlowKey k{*IpAddress::parse("192.168.7.7"), *IpAddress::parse("10.0.5.9"), kProtoUdp, 1, 2};
  EXPECT_EQ((*cls)->lookup(to_tuple(k)), 5);
}

// ------------------------------------------------------------- cut trees

// Policy sets shaped to make the cut trees cut every field, guard shared
// bits, fall back past a guard, stop lists at covering policies and split
// into all four subsets: addresses that share a long prefix (guards), /0,
// short and full-length prefixes (/32, /128) on both sides, nested port
// ranges and ranges touching 0 and 65535 (port cuts), few priorities
// (ties), and catch-alls at random places (covering policies). The trees,
// the tuple-space search and the linear reference must agree on every flow.
struct CutCase {
  Family fam;
  std::size_t n;
};

std::vector<Policy> cutting_set(Gen& g, const CutCase& c) {
  const unsigned width = c.fam == Family::ipv4 ? 32 : 128;
  auto addr = [&](void) {
    std::uint8_t b[16] = {10, 0, 0, 0};
    if (c.fam == Family::ipv6) {
      b[0] = 0x20; b[1] = 0x01; b[2] = 0x0d; b[3] = 0xb8;
    }
    // A shared prefix (a guard), then a few values in one byte and any in
    // the next, so that prefixes nest and share subtrees.
    const unsigned at = c.fam == Family::ipv4 ? 1 : 6;
    b[at] = static_cast<std::uint8_t>(g.u(4));
    b[at + 1] = static_cast<std::uint8_t>(g.u(256));
    for (unsigned i = at + 2; i < width / 8; ++i) b[i] = static_cast<std::uint8_t>(g.coin(50) ? g.u(256) : 0);
    return c.fam == Family::ipv4 ? IpAddress::v4_bytes(b) : IpAddress::v6_bytes(b);
  };
  auto prefix = [&](void) {
    static const unsigned l4[] = {0, 4, 8, 10, 16, 17, 24, 31, 32, 32};
    static const unsigned l6[] = {0, 16, 32, 48, 56, 64, 65, 96, 127, 128, 128};
    const unsigned len = c.fam == Family::ipv4 ? l4[g.u(std::size(l4))] : l6[g.u(std::size(l6))];
    return Gen::masked(addr(), len);
  };
  auto ports = [&](void) {
    switch (g.u(7)) {
      case 0: return PortRange{};
      case 1: return PortRange{static_cast<std::uint16_t>(g.u(1024)), 1023};  // nested
      case 2: return PortRange{1024, 65535};
      case 3: return PortRange{0, static_cast<std::uint16_t>(g.u(65536))};     // from 0
      case 4: return PortRange{static_cast<std::uint16_t>(g.u(65536)), 65535}; // to 65535
      case 5: { auto p = static_cast<std::uint16_t>(g.coin(50) ? g.u(4) : 65532 + g.u(4)); return PortRange{p, p}; }
      default: { auto p = static_cast<std::uint16_t>(g.u(65536)); return PortRange{p, p}; }
    }
  };
  std::vector<Policy> pols;
  std::set<std::string> seen;
  while (pols.size() < c.n) {
    Policy p;
    p.action = static_cast<PolicyAction>(g.u(4));
    p.reqid = 1;
    p.priority = static_cast<std::uint32_t>(g.u(3));
    p.sel.src = prefix();
    p.sel.dst = prefix();
    const std::uint8_t protos[] = {kProtoAny, kProtoAny, kProtoTcp, kProtoUdp, kProtoTcp, 50};
    p.sel.proto = protos[g.u(std::size(protos))];
    if (p.sel.proto == kProtoTcp || p.sel.proto == kProtoUdp) {
      p.sel.sport = g.coin(60) ? PortRange{} : ports();
      p.sel.dport = ports();
    }
    const bool all = p.sel.src.len == 0 && p.sel.dst.len == 0 && p.sel.proto == kProtoAny;
    if (all || g.coin(1)) {
      // A catch-all of the family, always after every other policy: one
      // drawn at random among the others would end every list at its place
      // (nothing after a covering policy is ever matched) and leave the
      // trees nothing to cut, which is not what this set is for.
      p.priority = 3;
      p.sel.src = IpPrefix::any(c.fam);
      p.sel.dst = IpPrefix::any(c.fam);
      p.sel.proto = kProtoAny;
      p.sel.sport = p.sel.dport = PortRange{};
    }
    if (!validate_policy(p) || !seen.insert(p.sel.to_string()).second) continue;
    pols.push_back(p);
  }
  return sorted_by_priority(pols);
}

// A flow near the policies' edges: inside or just outside a prefix (the
// guard's and the cut's bits flipped), ports at the range ends, fragments.
FlowTuple edge_flow(Gen& g, const std::vector<Policy>& pols) {
  FlowTuple t = g.flow(pols);
  const unsigned width = t.v6() ? 128 : 32;
  if (g.coin(30)) {
    const unsigned bit = static_cast<unsigned>(g.u(width));
    (g.coin(50) ? t.src : t.dst)[bit / 8] ^= static_cast<std::uint8_t>(0x80 >> (bit % 8));
  }
  if (g.coin(20)) {
    static const std::uint16_t edges[] = {0, 1, 1023, 1024, 65534, 65535};
    t.sport = edges[g.u(std::size(edges))];
    t.dport = edges[g.u(std::size(edges))];
  }
  return t;
}

TEST(CutTree, DifferentialOnSetsThatCut) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Gen g(seed);
  std::size_t compared = 0, matched = 0;
  for (const CutCase c : {CutCase{Family::ipv4, 50}, CutCase{Family::ipv4, 600}, CutCase{Family::ipv4, 4000},
                          CutCase{Family::ipv6, 50}, CutCase{Family::ipv6, 600}, CutCase{Family::ipv6, 4000}}) {
    const auto pols = cutting_set(g, c);
    auto trees = Classifier::build(pols, g.rng(), Classifier::Mode::trees);
    ASSERT_TRUE(trees) << trees.error().message;
    auto tuples = Classifier::build(pols, g.rng(), Classifier::Mode::tuples);
    ASSERT_TRUE(tuples);
    const CutForest* f = (*trees)->forest(c.fam);
    ASSERT_NE(f, nullptr);
    if (c.n >= 600) {
      EXPECT_GE(f->max_depth(), 3u) << "the set must make the trees cut (n=" << c.n << ", "
                                    << (c.fam == Family::ipv4 ? "IPv4" : "IPv6") << ")";
      EXPECT_GE(f->tree_count(), 3u);  // the subsets of wide and narrow addresses
      EXPECT_LE(f->tree_count(), 4u);
    }
    LinearSpd lin(pols);
    for (std::size_t i = 0; i < 60000; ++i) {
      const FlowTuple t = edge_flow(g, pols);
      const std::int32_t want = lin.lookup(t);
      ASSERT_EQ((*trees)->lookup(t), want)
          << "n=" << c.n << " " << to_key(t).src.to_string() << " -> " << to_key(t).dst.to_string() << " proto "
          << int(t.proto) << " " << t.sport << "/" << t.dport << " opaque " << int(t.opaque);
      ASSERT_EQ((*tuples)->lookup(t), want);
      matched += want >= 0;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 360000u);
  EXPECT_GT(matched, compared / 4);
}

// lookup_burst gives the linear reference's answer for bursts of 1..64
// tuples of both families in any order, with the cut trees and with the
// tuple-space search (a family may use either).
TEST(CutTree, BurstGivesTheLinearAnswer) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Gen g(seed);
  std::size_t compared = 0, matched = 0;
  for (const std::size_t n : {40u, 600u, 3000u}) {
    const auto v4 = cutting_set(g, CutCase{Family::ipv4, n});
    const auto v6 = cutting_set(g, CutCase{Family::ipv6, n});
    std::vector<Policy> pols = v4;  // families never compete: their order between them is free
    pols.insert(pols.end(), v6.begin(), v6.end());
    const auto random = sorted_by_priority(g.policies(n, PolicyDir::out));
    const std::vector<Policy>* sets[] = {&pols, &random};
    for (const std::vector<Policy>* setp : sets) {
      const std::vector<Policy>& set = *setp;
      LinearSpd lin(set);
      struct Way {
        Classifier::Mode mode;
        CutForest::Walks walks;
      };
      for (const Way way : {Way{Classifier::Mode::automatic, CutForest::Walks::automatic},
                            Way{Classifier::Mode::trees, CutForest::Walks::together},
                            Way{Classifier::Mode::trees, CutForest::Walks::single},
                            Way{Classifier::Mode::tuples, CutForest::Walks::automatic}}) {
        const Classifier::Mode mode = way.mode;
        CutForest::Limits lim;
        lim.burst_walks = way.walks;
        auto c = Classifier::build(set, g.rng(), mode, lim);
        ASSERT_TRUE(c) << c.error().message;
        if (mode == Classifier::Mode::trees) {
          const CutForest* f4 = (*c)->forest(Family::ipv4);
          ASSERT_EQ(f4->walks_together(), way.walks == CutForest::Walks::together);
          if (&set == &pols && n >= 600) {
            ASSERT_GE(f4->max_depth(), 3u);  // the walks really advance
          }
        }
        for (int burst = 0; burst < 400; ++burst) {
          const unsigned len = static_cast<unsigned>(1 + g.u(64));
          std::vector<FlowTuple> flows;
          for (unsigned i = 0; i < len; ++i) {
            flows.push_back(&set == &random ? g.flow(set) : edge_flow(g, g.coin(50) ? v4 : v6));
          }
          std::vector<const FlowTuple*> ptrs;
          for (const auto& t : flows) ptrs.push_back(&t);
          std::vector<std::int32_t> out(len, -7);
          (*c)->lookup_burst(ptrs.data(), len, out.data());
          for (unsigned i = 0; i < len; ++i) {
            const std::int32_t want = lin.lookup(flows[i]);
            ASSERT_EQ(out[i], want) << "n=" << n << " mode " << int(mode) << " walks " << int(way.walks)
                                    << " burst of " << len << " at " << i
                                    << ": " << to_key(flows[i]).src.to_string() << " -> "
                                    << to_key(flows[i]).dst.to_string() << " proto " << int(flows[i].proto) << " "
                                    << flows[i].sport << "/" << flows[i].dport;
            matched += want >= 0;
            ++compared;
          }
        }
      }
    }
  }
  EXPECT_GT(compared, 200000u);
  EXPECT_GT(matched, compared / 4);
}

// Every policy of one shape with its own port, so the lists end only at
// exact ports; ties keep insertion order; a family with no policy matches
// nothing.
TEST(CutTree, PortsTiesAndEmptyFamily) {
  std::vector<Policy> pols;
  for (std::uint32_t port : {0u, 1u, 1023u, 1024u, 65534u, 65535u}) {
    for (int dup = 0; dup < 2; ++dup) {
      Policy p;
      p.action = PolicyAction::bypass;
      p.priority = 5;  // all tied
      p.sel.src = dup ? IpPrefix::any(Family::ipv4) : *IpPrefix::parse("10.0.0.0/8");
      p.sel.dst = *IpPrefix::parse("192.0.2.7/32");
      p.sel.proto = kProtoUdp;
      p.sel.dport = PortRange{static_cast<std::uint16_t>(port), static_cast<std::uint16_t>(port)};
      pols.push_back(p);
    }
  }
  auto c = Classifier::build(pols, 3, Classifier::Mode::trees);
  ASSERT_TRUE(c);
  LinearSpd lin(pols);
  for (std::uint32_t port = 0; port < 65536; ++port) {
    for (const char* src : {"10.1.2.3", "11.1.2.3"}) {
      FlowKey k{*IpAddress::parse(src), *IpAddress::parse("192.0.2.7"), kProtoUdp, 7,
                static_cast<std::uint16_t>(port)};
      const FlowTuple t = to_tuple(k);
      ASSERT_EQ((*c)->lookup(t), lin.lookup(t)) << src << " port " << port;
    }
  }
  FlowKey frag{*IpAddress::parse("10.1.2.3"), *IpAddress::parse("192.0.2.7"), kProtoUdp, 0, 0, true};
  EXPECT_EQ((*c)->lookup(to_tuple(frag)), -1);  // ports unknown: no port-specific policy matches
  FlowKey v6{*IpAddress::parse("2001:db8::1"), *IpAddress::parse("2001:db8::2"), kProtoUdp, 7, 0};
  EXPECT_EQ((*c)->lookup(to_tuple(v6)), -1);
  ASSERT_NE((*c)->forest(Family::ipv6), nullptr);
  EXPECT_EQ((*c)->forest(Family::ipv6)->tree_count(), 0u);
}

// A guard checks the bits before a cut that the policies defining them
// agree on; a tuple that differs there goes to the fallback, which must
// still hold every policy short enough not to define the bit, up to and
// including one whose prefix ends just before the last guarded bit.
TEST(CutTree, GuardFallbackKeepsPoliciesEndingAtTheGuard) {
  for (const Family fam : {Family::ipv4, Family::ipv6}) {
    const unsigned width = fam == Family::ipv4 ? 32 : 128;
    for (const unsigned len : {8u, 15u, 23u, 26u, 64u, 100u, 119u}) {
      if (len + 3 > width) continue;
      std::uint8_t base[16] = {10, 0, 0, 0};
      if (fam == Family::ipv6) {
        base[0] = 0x20; base[1] = 0x01; base[2] = 0x0d; base[3] = 0xb8;
      }
      auto host = [&](unsigned j, bool flip) {  // base + j in the low bits, bit `len` flipped if flip
        std::uint8_t b[16];
        std::memcpy(b, base, 16);
        b[width / 8 - 1] = static_cast<std::uint8_t>(j);
        if (flip) b[len / 8] ^= static_cast<std::uint8_t>(0x80 >> (len % 8));
        return fam == Family::ipv4 ? IpAddress::v4_bytes(b) : IpAddress::v6_bytes(b);
      };
      std::vector<Policy> pols;
      const unsigned hosts = width - len - 1 >= 6 ? 64u : 1u << (width - len - 1);
      for (unsigned j = 0; j < hosts; ++j) {  // full-length prefixes, differing after bit `len`
        Policy p;
        p.action = PolicyAction::protect;
        p.reqid = 1;
        p.sel.src = IpPrefix{host(j, false), static_cast<std::uint8_t>(width)};
        p.sel.dst = IpPrefix::any(fam);
        pols.push_back(p);
      }
      Policy shortp;
      shortp.action = PolicyAction::bypass;
      shortp.sel.src = Gen::masked(host(0, false), len);  // does not define bit `len`
      shortp.sel.dst = IpPrefix::any(fam);
      pols.push_back(shortp);
      auto c = Classifier::build(pols, 9, Classifier::Mode::trees);
      ASSERT_TRUE(c) << c.error().message;
      LinearSpd lin(pols);
      for (unsigned j = 0; j < hosts; ++j) {
        for (const bool flip : {false, true}) {
          FlowKey k{host(j, flip), host(1, false), kProtoUdp, 1, 2};
          const FlowTuple t = to_tuple(k);
          ASSERT_EQ((*c)->lookup(t), lin.lookup(t)) << "len " << len << " host " << j << " flip " << flip;
          if (flip) {
            ASSERT_EQ(lin.lookup(t), static_cast<std::int32_t>(hosts)) << "len " << len << " " << k.src.to_string();
          }
        }
      }
    }
  }
}

// Past the memory limit the trees are not built; the classifier falls back
// to the tuple-space search for that family and still answers right.
TEST(CutTree, MemoryLimitFallsBackToTuples) {
  Gen g(17);
  const auto pols = cutting_set(g, CutCase{Family::ipv4, 2000});
  CutForest::Limits tight;
  tight.max_entries = 1000;
  EXPECT_EQ(CutForest::build(pols, Family::ipv4, tight), nullptr);
  EXPECT_NE(CutForest::build(pols, Family::ipv4, CutForest::Limits{}), nullptr);
  auto c = Classifier::build(pols, 3, Classifier::Mode::automatic, tight);
  ASSERT_TRUE(c);
  EXPECT_EQ((*c)->forest(Family::ipv4), nullptr);
  EXPECT_GT((*c)->group_count(Family::ipv4), 0u);
  LinearSpd lin(pols);
  for (int i = 0; i < 20000; ++i) {
    const FlowTuple t = edge_flow(g, pols);
    ASSERT_EQ((*c)->lookup(t), lin.lookup(t));
  }
  EXPECT_FALSE(Classifier::build(pols, 3, Classifier::Mode::trees, tight));
}

// lookup_burst walks a chunk's tuples together only where that pays: a
// forest of one tree too big for the CPU's caches (the gateway shape with
// thousands of sites). Small forests and forests of several trees look the
// tuples up one at a time (docs/spd.md, "Burst lookup").
TEST(CutTree, BurstWalksTogetherOnlyForOneBigTree) {
  auto gateway = [](unsigned sites) {
    std::vector<Policy> pols;
    for (unsigned i = 0; i < sites; ++i) {
      Policy p;
      p.action = PolicyAction::bypass;
      p.priority = 10;
      p.sel.src = *IpPrefix::parse("10.1.0.0/16");
      p.sel.dst = *IpPrefix::parse("172." + std::to_string(16 + i / 65536 % 16) + "." + std::to_string(i / 256 % 256) +
                                   "." + std::to_string(i % 256) + "/32");
      pols.push_back(p);
    }
    return pols;
  };
  const auto big = CutForest::build(gateway(20000), Family::ipv4, CutForest::Limits{});
  ASSERT_NE(big, nullptr);
  ASSERT_EQ(big->tree_count(), 1u);
  ASSERT_GT(big->memory_bytes(), CutForest::kWalkTogetherBytes);
  EXPECT_TRUE(big->walks_together());
  const auto small = CutForest::build(gateway(100), Family::ipv4, CutForest::Limits{});
  ASSERT_NE(small, nullptr);
  ASSERT_LE(small->memory_bytes(), CutForest::kWalkTogetherBytes);
  EXPECT_FALSE(small->walks_together());
  // Several trees: wide and narrow sources and destinations mixed.
  Gen g(23);
  const auto mixed = CutForest::build(cutting_set(g, CutCase{Family::ipv4, 3000}), Family::ipv4, CutForest::Limits{});
  ASSERT_NE(mixed, nullptr);
  ASSERT_GT(mixed->tree_count(), 1u);
  ASSERT_GT(mixed->memory_bytes(), CutForest::kWalkTogetherBytes);  // big enough: the tree count decides
  EXPECT_FALSE(mixed->walks_together());
  CutForest::Limits forced;
  forced.burst_walks = CutForest::Walks::together;
  EXPECT_TRUE(CutForest::build(gateway(100), Family::ipv4, forced)->walks_together());
}

// ------------------------------------------------------------- flow cache

TEST(FlowCache, HitMissGenerationAndBoundedWays) {
  FlowCache cache(64, 42);
  EXPECT_EQ(cache.capacity(), 64u);
  FlowKey k{*IpAddress::parse("10.0.0.1"), *IpAddress::parse("10.0.0.2"), kProtoUdp, 1, 2};
  const FlowTuple t = to_tuple(k);
  const std::uint64_t h = cache.hash(t);
  EXPECT_EQ(cache.find(t, h, 1), nullptr);
  Decision d;
  d.action = PolicyAction::bypass;
  d.policy = 7;
  cache.insert(t, h, 1, d);
  ASSERT_NE(cache.find(t, h, 1), nullptr);
  EXPECT_EQ(cache.find(t, h, 1)->decision.policy, 7u);
  EXPECT_EQ(cache.find(t, h, 2), nullptr);  // a newer generation: stale entries miss

  // Different seeds give different hashes (the seed is really used).
  FlowCache other(64, 43);
  EXPECT_NE(other.hash(t), h);

  // More flows than ways in one bucket: the oldest is evicted, never more
  // than kWays entries are looked at.
  std::vector<FlowTuple> same_bucket;
  for (std::uint16_t p = 0; same_bucket.size() < FlowCache::kWays + 2; ++p) {
    k.sport = p;
    const FlowTuple x = to_tuple(k);
    if ((cache.hash(x) & 63 & ~3ull) == (h & 63 & ~3ull)) same_bucket.push_back(x);
  }
  for (const auto& x : same_bucket) cache.insert(x, cache.hash(x), 1, d);
  EXPECT_GE(cache.evictions(), 2u);
  unsigned present = 0;
  for (const auto& x : same_bucket) present += cache.find(x, cache.hash(x), 1) != nullptr;
  EXPECT_EQ(present, FlowCache::kWays);
}

// ------------------------------------------------------- the cached path

std::uint32_t slot_of(std::uint32_t reqid) { return reqid * 10; }

struct Fixture {
  rcu::Qsbr q{4};
  Spd spd{q, [](std::uint32_t reqid) -> Result<std::uint32_t> { return slot_of(reqid); },
          Spd::Options{PolicyAction::discard, PolicyAction::discard, 99}};
};

bool same_selector(const Policy& a, const Policy& b) {
  return a.sel.src == b.sel.src && a.sel.dst == b.sel.dst && a.sel.proto == b.sel.proto &&
         a.sel.sport == b.sel.sport && a.sel.dport == b.sel.dport;
}

void expect_same(const SpdLookup::Verdict& v, const std::vector<Policy>& sorted, std::int32_t want) {
  if (want < 0) {
    EXPECT_EQ(v.decision.matched, 0);
    EXPECT_EQ(v.decision.action, PolicyAction::discard);
    return;
  }
  const Policy& p = sorted[static_cast<std::size_t>(want)];
  EXPECT_EQ(v.decision.matched, 1);
  EXPECT_EQ(v.decision.policy, static_cast<std::uint32_t>(want));
  EXPECT_EQ(v.decision.action, p.action);
  if (p.action == PolicyAction::protect || p.action == PolicyAction::trap) {
    EXPECT_EQ(v.decision.sa_slot, slot_of(p.reqid));
  }
}

// Cached lookups equal the linear reference before and after policy
// changes; flows are replayed so most lookups are cache hits.
TEST(SpdLookup, CachedPathDifferentialAcrossChanges) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Gen g(seed);
  Fixture f;
  SpdLookup look(f.spd, PolicyDir::out, 4096, AcquireLimit{1000000, 1000000}, g.rng());
  f.q.online(0);
  // A failure returns early: go offline anyway, or ~Spd waits for this reader forever.
  struct Offline {
    rcu::Qsbr& q;
    ~Offline() { q.offline(0); }
  } offline{f.q};
  std::vector<Policy> current;
  std::size_t compared = 0;
  for (int round = 0; round < 8; ++round) {
    // Change: add some policies, remove some (a batch publishes once).
    std::vector<Spd::Change> batch;
    for (int i = 0; i < 300; ++i) {
      Policy p = g.policy(g.coin(50) ? Family::ipv4 : Family::ipv6, PolicyDir::out);
      bool dup = false;
      for (const auto& c : current) dup |= same_selector(c, p);
      for (const auto& c : batch) dup |= same_selector(c.policy, p);
      if (!dup) batch.push_back({Spd::Change::Op::add, p});
    }
    for (int i = 0; i < 100 && !current.empty(); ++i) {
      const std::size_t victim = g.u(current.size());
      batch.push_back({Spd::Change::Op::remove, current[victim]});
      current.erase(current.begin() + static_cast<std::ptrdiff_t>(victim));
    }
    for (const auto& c : batch) {
      if (c.op == Spd::Change::Op::add) current.push_back(c.policy);
    }
    const std::uint64_t gen_before = f.spd.generation();
    ASSERT_TRUE(f.spd.apply(batch)) << "round " << round;
    EXPECT_EQ(f.spd.generation(), gen_before + 1);  // one publication per batch
    const auto sorted = sorted_by_priority(current);
    LinearSpd lin(sorted);
    std::vector<FlowTuple> flows;
    for (int i = 0; i < 2000; ++i) flows.push_back(g.flow(sorted));
    for (int pass = 0; pass < 20; ++pass) {
      look.begin_burst();
      for (const FlowTuple& t : flows) {
        const auto v = look.lookup(t, 0);
        const std::int32_t want = lin.lookup(t);
        expect_same(v, sorted, want);
        if (::testing::Test::HasFailure()) FAIL() << "round " << round << " pass " << pass;
        ++compared;
      }
      f.q.quiescent(0);
      f.spd.reclaim();
    }
  }
  EXPECT_GE(compared, 300000u);
  EXPECT_GT(look.hits(), look.misses());  // the cache really answered
}

// 100,000 policies (a gateway with that many remote /24 sites): added as
// one batch, then half removed in another; answers equal the reference.
TEST(Spd, HundredThousandPolicies) {
  Fixture f;
  std::vector<Policy> pols;
  for (std::uint32_t i = 0; i < 100000; ++i) {
    Policy p;
    p.action = i % 7 == 0 ? PolicyAction::bypass : PolicyAction::protect;
    p.reqid = p.action == PolicyAction::protect ? 1 + i % 5000 : 0;
    p.sel.src = *IpPrefix::parse("192.168.0.0/16");
    p.sel.dst = IpPrefix{IpAddress::v4(0x0a000000u + (i << 8)), 24};
    pols.push_back(p);
  }
  {
    auto r = f.spd.replace(PolicyDir::out, pols);
    ASSERT_TRUE(r) << r.error().message;
  }
  EXPECT_EQ(f.spd.size(PolicyDir::out), 100000u);
  std::vector<Spd::Change> drop;
  for (std::size_t i = 0; i < pols.size(); i += 2) drop.push_back({Spd::Change::Op::remove, pols[i]});
  ASSERT_TRUE(f.spd.apply(drop));
  EXPECT_EQ(f.spd.size(PolicyDir::out), 50000u);
  std::vector<Policy> left;
  for (std::size_t i = 1; i < pols.size(); i += 2) left.push_back(pols[i]);
  LinearSpd lin(left);  // same priority everywhere: insertion order
  SpdLookup look(f.spd, PolicyDir::out, 4096, {}, 11);
  look.begin_burst();
  Gen g(5);
  for (int i = 0; i < 2000; ++i) {
    const std::uint32_t site = static_cast<std::uint32_t>(g.u(100000));
    FlowKey k{IpAddress::v4(0xc0a80000u | static_cast<std::uint32_t>(g.u(65536))),
              IpAddress::v4(0x0a000000u + (site << 8) + static_cast<std::uint32_t>(g.u(256))), kProtoTcp,
              static_cast<std::uint16_t>(g.u(65536)), 443};
    const FlowTuple t = to_tuple(k);
    expect_same(look.lookup(t, 0), left, lin.lookup(t));
    ASSERT_FALSE(::testing::Test::HasFailure()) << "site " << site;
  }
}

TEST(SpdLookup, NegativeResultsAreCached) {
  Fixture f;
  Policy byp;
  byp.action = PolicyAction::bypass;
  byp.sel.src = *IpPrefix::parse("10.0.0.0/8");
  byp.sel.dst = IpPrefix::any(Family::ipv4);
  ASSERT_TRUE(f.spd.add(byp));
  SpdLookup look(f.spd, PolicyDir::out, 256, {}, 5);
  look.begin_burst();
  FlowKey k{*IpAddress::parse("10.0.0.1"), *IpAddress::parse("192.0.2.1"), kProtoUdp, 1, 2};
  FlowKey none{*IpAddress::parse("172.16.0.1"), *IpAddress::parse("192.0.2.1"), kProtoUdp, 1, 2};
  EXPECT_EQ(look.lookup(to_tuple(k), 0).decision.action, PolicyAction::bypass);
  EXPECT_EQ(look.lookup(to_tuple(none), 0).decision.action, PolicyAction::discard);  // no policy: discard
  EXPECT_EQ(look.misses(), 2u);
  EXPECT_EQ(look.lookup(to_tuple(k), 0).decision.action, PolicyAction::bypass);
  EXPECT_EQ(look.lookup(to_tuple(none), 0).decision.matched, 0);
  EXPECT_EQ(look.hits(), 2u);
  // A change makes both miss once, with the new answer.
  Policy disc = byp;
  disc.priority = 1;
  disc.action = PolicyAction::discard;
  disc.sel.src = *IpPrefix::parse("10.0.0.0/24");
  ASSERT_TRUE(f.spd.add(disc));
  look.begin_burst();
  EXPECT_EQ(look.lookup(to_tuple(k), 0).decision.action, PolicyAction::discard);
  EXPECT_EQ(look.misses(), 3u);
}

// A trap policy for everything to 192.0.2.0/24, reqid 3.
void add_trap(Fixture& f) {
  Policy trap;
  trap.action = PolicyAction::trap;
  trap.reqid = 3;
  trap.sel.src = IpPrefix::any(Family::ipv4);
  trap.sel.dst = *IpPrefix::parse("192.0.2.0/24");
  ASSERT_TRUE(f.spd.add(trap));
}

TEST(SpdLookup, TrapRaisesOneAcquirePerFlowRateLimited) {
  Fixture f;
  add_trap(f);
  SpdLookup look(f.spd, PolicyDir::out, 1024, AcquireLimit{10, 3}, 5);
  look.begin_burst();
  auto flow = [](int i) {
    FlowKey k{*IpAddress::parse("10.0.0.1"), *IpAddress::parse("192.0.2.1"), kProtoUdp,
              static_cast<std::uint16_t>(1000 + i), 53};
    return to_tuple(k);
  };
  const std::uint64_t t0 = 1'000'000'000;
  auto v = look.lookup(flow(0), t0);
  EXPECT_EQ(v.decision.action, PolicyAction::trap);
  EXPECT_EQ(v.decision.sa_slot, slot_of(3));
  EXPECT_TRUE(v.acquire);
  EXPECT_FALSE(look.lookup(flow(0), t0).acquire);  // once per flow
  EXPECT_FALSE(look.lookup(flow(0), t0 + 5'000'000'000).acquire);
  EXPECT_TRUE(look.lookup(flow(1), t0).acquire);
  EXPECT_TRUE(look.lookup(flow(2), t0).acquire);   // burst of 3 used up
  EXPECT_FALSE(look.lookup(flow(3), t0).acquire);  // limited
  EXPECT_EQ(look.acquires_limited(), 1u);
  EXPECT_FALSE(look.lookup(flow(3), t0 + 50'000'000).acquire);  // 0.5 token
  EXPECT_TRUE(look.lookup(flow(3), t0 + 100'000'000).acquire);  // a limited flow gets its turn later
  EXPECT_EQ(look.acquires(), 4u);
  // A protect policy without SAs asks the same way, once.
  EXPECT_FALSE(look.request_acquire(flow(3), t0 + 10'000'000'000));  // already sent for this flow
  EXPECT_TRUE(look.request_acquire(flow(4), t0 + 10'000'000'000) == false);  // not looked up: no entry
  look.lookup(flow(5), t0 + 10'000'000'000);  // raises it itself (trap)
  EXPECT_EQ(look.acquires(), 5u);
}

// SpdLookup::lookup_burst classifies a burst's misses together: answers
// equal the reference, a flow repeated within a burst is classified and
// cached once (its later packets are hits), and a trap flow repeated in a
// burst raises one ACQUIRE.
TEST(SpdLookup, BurstMissesGiveTheReferenceAnswerOnce) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  Gen g(seed);
  Fixture f;
  std::vector<Spd::Change> batch;
  for (const Policy& p : g.policies(800, PolicyDir::out)) {
    bool dup = false;  // the same selector twice is refused
    for (const auto& c : batch) dup |= same_selector(c.policy, p);
    if (!dup) batch.push_back({Spd::Change::Op::add, p});
  }
  ASSERT_TRUE(f.spd.apply(batch));
  std::vector<Policy> current;
  for (const auto& c : batch) current.push_back(c.policy);
  const auto sorted = sorted_by_priority(current);
  LinearSpd lin(sorted);
  // The cache must keep every flow so that each is classified exactly
  // once. It is 4-way set-associative with a random hash, so some bucket
  // can receive five of the flows and evict one: with 3,000 flows in
  // 65,536 entries (16,384 buckets) that happens in about 2.4 % of seeds
  // (Poisson, mean 0.18 per bucket), which made this test flaky. With
  // 2^20 entries (262,144 buckets) the chance is about 4e-7 per run.
  SpdLookup look(f.spd, PolicyDir::out, 1u << 20, AcquireLimit{1000000, 1000000}, g.rng());
  look.begin_burst();
  std::vector<FlowTuple> flows;  // distinct ones
  std::set<std::string> names;
  while (flows.size() < 3000) {
    const FlowTuple t = g.flow(sorted);
    const FlowKey k = to_key(t);
    if (names.insert(k.src.to_string() + " " + k.dst.to_string() + " " + std::to_string(k.proto) + " " +
                     std::to_string(k.sport) + " " + std::to_string(k.dport) + " " + std::to_string(k.opaque_ports))
            .second) {
      flows.push_back(t);
    }
  }
  std::set<std::size_t> seen;
  std::size_t looked = 0;
  for (int burst = 0; burst < 300; ++burst) {
    const unsigned len = static_cast<unsigned>(1 + g.u(SpdLookup::kMaxBurst));
    std::vector<std::size_t> which;
    for (unsigned i = 0; i < len; ++i) {
      // Often the same flow again within the burst.
      which.push_back(i > 0 && g.coin(30) ? which[g.u(i)] : g.u(flows.size()));
    }
    std::vector<const FlowTuple*> ptrs;
    for (const std::size_t w : which) ptrs.push_back(&flows[w]);
    std::vector<SpdLookup::Verdict> out(len);
    look.lookup_burst(ptrs.data(), static_cast<std::uint16_t>(len), 0, out.data());
    for (unsigned i = 0; i < len; ++i) {
      expect_same(out[i], sorted, lin.lookup(flows[which[i]]));
      if (::testing::Test::HasFailure()) FAIL() << "burst " << burst << " packet " << i;
      seen.insert(which[i]);
    }
    looked += len;
  }
  EXPECT_EQ(look.hits() + look.misses(), looked);
  ASSERT_EQ(look.cache().evictions(), 0u);  // 3,000 flows in 2^20 entries: see above
  EXPECT_EQ(look.misses(), seen.size());     // each flow classified once, even when repeated in its burst

  Fixture t;
  add_trap(t);
  SpdLookup tl(t.spd, PolicyDir::out, 1024, AcquireLimit{10, 10}, 5);
  tl.begin_burst();
  const FlowTuple a =
      to_tuple(FlowKey{*IpAddress::parse("10.0.0.1"), *IpAddress::parse("192.0.2.1"), kProtoUdp, 1, 53});
  const FlowTuple b =
      to_tuple(FlowKey{*IpAddress::parse("10.0.0.2"), *IpAddress::parse("192.0.2.1"), kProtoUdp, 1, 53});
  const FlowTuple* burst[] = {&a, &a, &b, &a, &b};
  SpdLookup::Verdict v[5];
  tl.lookup_burst(burst, 5, 1'000'000'000, v);
  const bool want[] = {true, false, true, false, false};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(v[i].decision.action, PolicyAction::trap) << i;
    EXPECT_EQ(v[i].acquire, want[i]) << i;
  }
  EXPECT_EQ(tl.acquires(), 2u);
  EXPECT_EQ(tl.misses(), 2u);
  EXPECT_EQ(tl.hits(), 3u);
}

TEST(Spd, BatchIsAllOrNothing) {
  Fixture f;
  Policy a;
  a.action = PolicyAction::bypass;
  a.sel.src = *IpPrefix::parse("10.0.0.0/8");
  a.sel.dst = IpPrefix::any(Family::ipv4);
  ASSERT_TRUE(f.spd.add(a));
  const std::uint64_t gen = f.spd.generation();
  const SpdTable* before = f.spd.current(PolicyDir::out);
  Policy b = a;
  b.sel.src = *IpPrefix::parse("11.0.0.0/8");
  Policy bad = a;
  bad.sel.dst = IpPrefix::any(Family::ipv6);  // family mismatch
  auto r = f.spd.apply({{Spd::Change::Op::add, b}, {Spd::Change::Op::add, bad}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("change 2"), std::string::npos) << r.error().message;
  EXPECT_EQ(f.spd.generation(), gen);
  EXPECT_EQ(f.spd.current(PolicyDir::out), before);
  EXPECT_EQ(f.spd.size(PolicyDir::out), 1u);
  // Duplicates and unknown removals are refused with a reason.
  auto dup = f.spd.add(a);
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().message.find("exists already"), std::string::npos);
  auto gone = f.spd.remove(b);
  ASSERT_FALSE(gone);
  EXPECT_NE(gone.error().message.find("no out policy"), std::string::npos) << gone.error().message;
  // A reqid the resolver refuses fails the batch too.
  rcu::Qsbr q(1);
  Spd strict(q, [](std::uint32_t) -> Result<std::uint32_t> { return make_error("SA set table full"); });
  Policy prot = a;
  prot.action = PolicyAction::protect;
  prot.reqid = 9;
  auto full = strict.add(prot);
  ASSERT_FALSE(full);
  EXPECT_NE(full.error().message.find("SA set table full"), std::string::npos);
  EXPECT_EQ(strict.size(PolicyDir::out), 0u);
}

// The SPD wired to the real outbound SAD: a protect decision names the
// reqid's SA set slot; a rekey replaces the set in place, so cached
// decisions stay valid (no new SPD generation) and give the new SA.
TEST(Spd, ProtectResolvesThroughTheOutboundSad) {
  rcu::Qsbr q(1);
  auto out = sad::OutboundSad::create(q, 1024);
  ASSERT_TRUE(out);
  Spd spd(q, [&](std::uint32_t reqid) { return (*out)->slot_for(reqid); });
  Policy p;
  p.action = PolicyAction::protect;
  p.reqid = 42;
  p.sel.src = *IpPrefix::parse("10.1.0.0/16");
  p.sel.dst = *IpPrefix::parse("10.2.0.0/16");
  ASSERT_TRUE(spd.add(p));
  q.online(0);
  SpdLookup look(spd, PolicyDir::out, 64, AcquireLimit{100, 10}, 3);
  FlowKey k{*IpAddress::parse("10.1.0.1"), *IpAddress::parse("10.2.0.1"), kProtoUdp, 1, 2};
  const FlowTuple t = to_tuple(k);
  look.begin_burst();
  auto v = look.lookup(t, 0);
  ASSERT_EQ(v.decision.action, PolicyAction::protect);
  EXPECT_TRUE((*out)->get(v.decision.sa_slot)->empty());  // no SA yet
  EXPECT_TRUE(look.request_acquire(t, 0));                // so the worker asks for one, once
  EXPECT_FALSE(look.request_acquire(t, 0));

  const SaHandle first[] = {7, 8};
  ASSERT_TRUE((*out)->set(42, first));
  const std::uint64_t gen = spd.generation();
  v = look.lookup(t, 0);
  EXPECT_EQ((*out)->get(v.decision.sa_slot)->pick(0), 7u);
  EXPECT_EQ((*out)->get(v.decision.sa_slot)->pick(1), 8u);
  const SaHandle rekeyed[] = {9};
  ASSERT_TRUE((*out)->set(42, rekeyed));
  q.quiescent(0);
  look.begin_burst();
  const std::uint64_t hits = look.hits();
  v = look.lookup(t, 0);
  EXPECT_EQ(look.hits(), hits + 1);  // the cached decision is still good
  EXPECT_EQ(spd.generation(), gen);
  EXPECT_EQ((*out)->get(v.decision.sa_slot)->pick(1), 9u);
  q.offline(0);
}

// ------------------------------------------------------------------- RCU

TEST(Rcu, OldTableFreedOnlyAfterEveryReaderIsQuiescent) {
  Fixture f;
  f.q.online(0);
  f.q.online(1);
  SpdLookup look(f.spd, PolicyDir::out, 64, {}, 1);
  look.begin_burst();  // reader 0 now holds the current table
  f.spd.reclaim();
  const std::size_t base = f.spd.reclaim();
  Policy a;
  a.action = PolicyAction::bypass;
  a.sel.src = IpPrefix::any(Family::ipv4);
  a.sel.dst = IpPrefix::any(Family::ipv4);
  ASSERT_TRUE(f.spd.add(a));
  EXPECT_EQ(f.spd.reclaim(), base + 1);  // readers 0 and 1 have not been quiescent
  f.q.quiescent(0);
  EXPECT_EQ(f.spd.reclaim(), base + 1);  // reader 1 still may hold it
  f.q.offline(1);                        // an offline reader holds nothing
  EXPECT_EQ(f.spd.reclaim(), 0u);
  f.q.offline(0);
}

// Two threads: once the writer has published version k (and said so), a
// reader never gets a decision from a table older than k, cache or not.
// Run under ThreadSanitizer by scripts/test.sh as well.
TEST(Rcu, NoDecisionFromAnOldTableAfterPublication) {
  rcu::Qsbr q(2);
  Spd spd(q, [](std::uint32_t reqid) -> Result<std::uint32_t> { return reqid; });
  auto version = [](std::uint32_t k) {
    Policy p;
    p.action = PolicyAction::protect;
    p.reqid = k;  // the decision carries the version as its SA slot
    p.sel.src = IpPrefix::any(Family::ipv4);
    p.sel.dst = IpPrefix::any(Family::ipv4);
    return p;
  };
  ASSERT_TRUE(spd.add(version(1)));
  std::atomic<std::uint32_t> published{1};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> lookups{0};
  std::atomic<std::uint32_t> bad{0};
  constexpr std::uint32_t kVersions = 400;

  std::thread reader([&] {
    q.online(0);
    SpdLookup look(spd, PolicyDir::out, 256, {}, 7);
    FlowKey k{*IpAddress::parse("10.0.0.1"), *IpAddress::parse("10.0.0.2"), kProtoUdp, 1, 2};
    std::vector<FlowTuple> flows;
    for (std::uint16_t i = 0; i < 16; ++i) {
      k.sport = i;
      flows.push_back(to_tuple(k));
    }
    while (!stop.load(std::memory_order_acquire)) {
      const std::uint32_t seen = published.load(std::memory_order_acquire);
      look.begin_burst();
      for (const auto& t : flows) {
        const auto v = look.lookup(t, 0);
        if (v.decision.sa_slot < seen) bad.fetch_add(1, std::memory_order_relaxed);
      }
      lookups.fetch_add(flows.size(), std::memory_order_relaxed);
      q.quiescent(0);
    }
    q.offline(0);
  });

  for (std::uint32_t k = 2; k <= kVersions; ++k) {
    ASSERT_TRUE(spd.replace(PolicyDir::out, {version(k)}));
    published.store(k, std::memory_order_release);
    spd.reclaim();
    if (k % 50 == 0) {  // let the reader run between bursts of changes
      const std::uint64_t n = lookups.load();
      while (lookups.load() < n + 64) std::this_thread::yield();
    }
  }
  stop.store(true, std::memory_order_release);
  reader.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(lookups.load(), 0u);
  spd.reclaim();
}

}  // namespace
}  // namespace cygnet::dp::spd
