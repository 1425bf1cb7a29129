#include "shared/policy.h"

#include <gtest/gtest.h>

namespace cygnet {
namespace {

Selector sel(const char* src, const char* dst, std::uint8_t proto = kProtoAny, const char* sp = "any",
             const char* dp = "any") {
  Selector s;
  s.src = *IpPrefix::parse(src);
  s.dst = *IpPrefix::parse(dst);
  s.proto = proto;
  s.sport = *PortRange::parse(sp);
  s.dport = *PortRange::parse(dp);
  return s;
}

FlowKey flow(const char* src, const char* dst, std::uint8_t proto, std::uint16_t sp, std::uint16_t dp) {
  return FlowKey{*IpAddress::parse(src), *IpAddress::parse(dst), proto, sp, dp};
}

TEST(Selector, MatchesFiveTuple) {
  auto s = sel("10.1.0.0/16", "10.2.0.0/16", kProtoTcp, "any", "80-90");
  EXPECT_TRUE(s.matches(flow("10.1.2.3", "10.2.3.4", kProtoTcp, 5555, 80)));
  EXPECT_TRUE(s.matches(flow("10.1.2.3", "10.2.3.4", kProtoTcp, 5555, 90)));
  EXPECT_FALSE(s.matches(flow("10.1.2.3", "10.2.3.4", kProtoTcp, 5555, 91)));
  EXPECT_FALSE(s.matches(flow("10.1.2.3", "10.2.3.4", kProtoUdp, 5555, 80)));
  EXPECT_FALSE(s.matches(flow("10.3.2.3", "10.2.3.4", kProtoTcp, 5555, 80)));
  EXPECT_FALSE(s.matches(flow("10.1.2.3", "10.4.3.4", kProtoTcp, 5555, 80)));
}

TEST(Selector, AnyProtocolIgnoresPorts) {
  auto s = sel("::/0", "2001:db8::/32");
  EXPECT_TRUE(s.matches(flow("fe80::1", "2001:db8::9", kProtoUdp, 1, 2)));
  EXPECT_TRUE(s.matches(flow("fe80::1", "2001:db8::9", kProtoIcmpv6, 128, 0)));
  EXPECT_FALSE(s.matches(flow("10.0.0.1", "10.0.0.2", kProtoUdp, 1, 2)));
}

TEST(Selector, OpaquePortsMatchOnlyAnyPorts) {
  FlowKey frag = flow("10.1.2.3", "10.2.3.4", kProtoTcp, 0, 0);
  frag.opaque_ports = true;
  EXPECT_TRUE(sel("10.1.0.0/16", "10.2.0.0/16").matches(frag));
  EXPECT_TRUE(sel("10.1.0.0/16", "10.2.0.0/16", kProtoTcp).matches(frag));
  EXPECT_FALSE(sel("10.1.0.0/16", "10.2.0.0/16", kProtoTcp, "0-65534", "any").matches(frag));
  EXPECT_FALSE(sel("10.1.0.0/16", "10.2.0.0/16", kProtoTcp, "any", "0").matches(frag));
  EXPECT_FALSE(sel("10.1.0.0/16", "10.2.0.0/16", kProtoUdp).matches(frag));
}

TEST(Selector, IcmpTypeAndCode) {
  auto s = sel("0.0.0.0/0", "0.0.0.0/0", kProtoIcmp, "8", "0");
  ASSERT_TRUE(validate_selector(s).ok());
  EXPECT_TRUE(s.matches(flow("1.1.1.1", "2.2.2.2", kProtoIcmp, 8, 0)));
  EXPECT_FALSE(s.matches(flow("1.1.1.1", "2.2.2.2", kProtoIcmp, 0, 0)));
}

TEST(Selector, Validation) {
  EXPECT_TRUE(validate_selector(sel("10.0.0.0/8", "10.0.0.0/8", kProtoUdp, "53", "any")).ok());

  auto mixed = sel("10.0.0.0/8", "::/0");
  auto r = validate_selector(mixed);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("IPv6"), std::string::npos);

  auto ports_no_proto = sel("10.0.0.0/8", "10.0.0.0/8", kProtoAny, "any", "80");
  EXPECT_FALSE(validate_selector(ports_no_proto).ok());
  auto ports_gre = sel("10.0.0.0/8", "10.0.0.0/8", 47, "any", "80");
  EXPECT_FALSE(validate_selector(ports_gre).ok());

  auto icmp6 = sel("10.0.0.0/8", "10.0.0.0/8", kProtoIcmpv6);
  EXPECT_FALSE(validate_selector(icmp6).ok());
  auto icmp4 = sel("::/0", "::/0", kProtoIcmp);
  EXPECT_FALSE(validate_selector(icmp4).ok());
  auto type_only = sel("::/0", "::/0", kProtoIcmpv6, "128-129", "any");
  EXPECT_TRUE(validate_selector(type_only).ok()) << "a type range with any code";
  auto big_type = sel("0.0.0.0/0", "0.0.0.0/0", kProtoIcmp, "256", "any");
  EXPECT_FALSE(validate_selector(big_type).ok());

  Selector hostbits = sel("10.0.0.0/8", "10.0.0.0/8");
  hostbits.src.addr = *IpAddress::parse("10.0.0.1");  // built by hand, bypassing the parser
  EXPECT_FALSE(validate_selector(hostbits).ok());

  Selector inverted = sel("10.0.0.0/8", "10.0.0.0/8", kProtoTcp);
  inverted.sport = PortRange{10, 5};
  EXPECT_FALSE(validate_selector(inverted).ok());

  Selector empty;
  EXPECT_FALSE(validate_selector(empty).ok());
}

TEST(Policy, ReqidRules) {
  Policy p;
  p.sel = sel("10.0.0.0/8", "10.0.0.0/8");
  p.action = PolicyAction::protect;
  EXPECT_FALSE(validate_policy(p).ok()) << "protect without reqid";
  p.reqid = 7;
  EXPECT_TRUE(validate_policy(p).ok());
  p.action = PolicyAction::bypass;
  EXPECT_FALSE(validate_policy(p).ok()) << "bypass with reqid";
  p.reqid = 0;
  EXPECT_TRUE(validate_policy(p).ok());
  p.action = PolicyAction::trap;
  p.reqid = 3;
  p.dir = PolicyDir::in;
  EXPECT_FALSE(validate_policy(p).ok()) << "inbound trap";
  p.dir = PolicyDir::out;
  EXPECT_TRUE(validate_policy(p).ok());
}

TEST(Policy, Names) {
  EXPECT_EQ(*proto_from_name("tcp"), kProtoTcp);
  EXPECT_EQ(*proto_from_name("50"), 50);
  EXPECT_FALSE(proto_from_name("256").ok());
  EXPECT_FALSE(proto_from_name("tcpp").ok());
  EXPECT_EQ(*action_from_name("discard"), PolicyAction::discard);
  EXPECT_FALSE(action_from_name("drop").ok());
  EXPECT_EQ(*policy_dir_from_name("in"), PolicyDir::in);
  EXPECT_FALSE(policy_dir_from_name("fwd").ok());
}

}  // namespace
}  // namespace cygnet
