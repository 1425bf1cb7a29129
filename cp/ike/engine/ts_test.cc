#include "cp/ike/engine/ts.h"

#include <gtest/gtest.h>

namespace cygnet::ike {
namespace {

IpAddress ip(const char* s) { return *IpAddress::parse(s); }
TsRange r(const char* lo, const char* hi, std::uint8_t proto = 0, std::uint16_t plo = 0, std::uint16_t phi = 65535) {
  return TsRange{proto, plo, phi, ip(lo), ip(hi)};
}
std::vector<std::string> strs(const std::vector<IpPrefix>& v) {
  std::vector<std::string> o;
  for (const auto& p : v) o.push_back(p.to_string());
  return o;
}

TEST(Ts, RangeToPrefixes) {
  EXPECT_EQ(strs(range_to_prefixes(ip("10.0.0.0"), ip("10.0.255.255"))), std::vector<std::string>{"10.0.0.0/16"});
  EXPECT_EQ(strs(range_to_prefixes(ip("10.0.0.1"), ip("10.0.0.6"))),
            (std::vector<std::string>{"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"}));
  EXPECT_EQ(strs(range_to_prefixes(ip("0.0.0.0"), ip("255.255.255.255"))), std::vector<std::string>{"0.0.0.0/0"});
  EXPECT_EQ(strs(range_to_prefixes(ip("::"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))),
            std::vector<std::string>{"::/0"});
  EXPECT_EQ(strs(range_to_prefixes(ip("2001:db8::"), ip("2001:db8::1:ffff"))), std::vector<std::string>{"2001:db8::/111"});
  EXPECT_EQ(strs(range_to_prefixes(ip("255.255.255.254"), ip("255.255.255.255"))),
            std::vector<std::string>{"255.255.255.254/31"});
  EXPECT_TRUE(range_to_prefixes(ip("10.0.0.2"), ip("10.0.0.1")).empty());
  EXPECT_TRUE(range_to_prefixes(ip("10.0.0.1"), ip("::1")).empty());
}

TEST(Ts, IntersectAndNarrow) {
  auto a = r("10.1.0.0", "10.1.255.255");
  auto b = r("10.1.2.0", "10.1.2.255", 6, 80, 443);
  auto i = intersect(a, b);
  ASSERT_TRUE(i);
  EXPECT_EQ(*i, b);
  EXPECT_FALSE(intersect(r("10.1.0.0", "10.1.0.255", 6), r("10.1.0.0", "10.1.0.255", 17)));
  EXPECT_FALSE(intersect(r("10.1.0.0", "10.1.0.255"), r("10.2.0.0", "10.2.0.255")));
  EXPECT_FALSE(intersect(r("10.1.0.0", "10.1.0.255"), r("2001:db8::", "2001:db8::ff")));
  EXPECT_FALSE(intersect(r("10.1.0.0", "10.1.0.255", 6, 1, 10), r("10.1.0.0", "10.1.0.255", 6, 11, 20)));
  // The peer asks for 0/0; we allow two subnets: both come back, in order.
  auto n = narrow({r("0.0.0.0", "255.255.255.255")}, {r("10.2.0.0", "10.2.0.255"), r("10.3.0.0", "10.3.0.255")});
  ASSERT_EQ(n.size(), 2u);
  EXPECT_EQ(n[0], r("10.2.0.0", "10.2.0.255"));
  EXPECT_EQ(n[1], r("10.3.0.0", "10.3.0.255"));
  EXPECT_TRUE(within(n, {r("10.0.0.0", "10.255.255.255")}));
  EXPECT_FALSE(within(n, {r("10.2.0.0", "10.2.0.255")}));
  EXPECT_FALSE(within({}, {r("10.2.0.0", "10.2.0.255")}));
}

TEST(Ts, Selectors) {
  auto sel = to_selectors({r("10.1.0.0", "10.1.255.255")}, {r("10.2.0.0", "10.2.0.255", 6, 443, 443)});
  ASSERT_EQ(sel.size(), 1u);
  EXPECT_EQ(sel[0].src.to_string(), "10.1.0.0/16");
  EXPECT_EQ(sel[0].dst.to_string(), "10.2.0.0/24");
  EXPECT_EQ(sel[0].proto, 6);
  EXPECT_TRUE(sel[0].sport.is_any());
  EXPECT_EQ(sel[0].dport.lo, 443);
  // A range that is not a prefix becomes several selectors.
  EXPECT_EQ(to_selectors({r("10.0.0.1", "10.0.0.2")}, {r("10.2.0.0", "10.2.0.255")}).size(), 2u);
  // Families never mix.
  EXPECT_TRUE(to_selectors({r("10.0.0.1", "10.0.0.1")}, {r("2001:db8::", "2001:db8::")}).empty());
  // ICMP echo request (type 8): type in the source port range.
  auto icmp = to_selectors({r("10.1.0.1", "10.1.0.1", 1, 8 << 8, (8 << 8) | 255)}, {r("10.2.0.1", "10.2.0.1", 1)});
  ASSERT_EQ(icmp.size(), 1u);
  EXPECT_EQ(icmp[0].sport.lo, 8);
  EXPECT_EQ(icmp[0].sport.hi, 8);
}

TEST(Ts, WireRoundTrip) {
  auto t = r("2001:db8::", "2001:db8::ffff", 17, 500, 4500);
  auto back = ts_from_wire(ts_to_wire(t));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, t);
  TrafficSelector bad = ts_to_wire(t);
  bad.end = ip("2001:db7::");  // end before start
  EXPECT_FALSE(ts_from_wire(bad));
}

}  // namespace
}  // namespace cygnet::ike
