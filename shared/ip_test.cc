#include "shared/ip.h"

#include <gtest/gtest.h>

namespace cygnet {
namespace {

TEST(IpAddress, ParsesBothFamilies) {
  auto a = IpAddress::parse("192.0.2.1");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->family, Family::ipv4);
  EXPECT_EQ(a->v4_host_order(), 0xc0000201u);
  EXPECT_EQ(a->to_string(), "192.0.2.1");

  auto b = IpAddress::parse("2001:db8::1");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->family, Family::ipv6);
  EXPECT_EQ(b->bytes[0], 0x20);
  EXPECT_EQ(b->bytes[15], 0x01);
  EXPECT_EQ(b->to_string(), "2001:db8::1");
}

TEST(IpAddress, RejectsGarbage) {
  for (const char* bad : {"", "1.2.3", "1.2.3.256", "::g", "192.0.2.1 ", "a.b.c.d",
                          "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb"}) {
    auto r = IpAddress::parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find("not an IPv4 or IPv6 address"), std::string::npos);
    }
  }
}

TEST(IpAddress, Unspecified) {
  EXPECT_TRUE(IpAddress::parse("0.0.0.0")->is_unspecified());
  EXPECT_TRUE(IpAddress::parse("::")->is_unspecified());
  EXPECT_FALSE(IpAddress::parse("::1")->is_unspecified());
  EXPECT_TRUE(IpAddress{}.is_unspecified());
}

TEST(IpPrefix, ParsesAndContains) {
  auto p = IpPrefix::parse("10.1.0.0/16");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->len, 16);
  EXPECT_TRUE(p->contains(*IpAddress::parse("10.1.255.255")));
  EXPECT_FALSE(p->contains(*IpAddress::parse("10.2.0.0")));
  EXPECT_FALSE(p->contains(*IpAddress::parse("::1"))) << "family mismatch never matches";

  auto odd = IpPrefix::parse("10.1.128.0/17");
  ASSERT_TRUE(odd.ok());
  EXPECT_TRUE(odd->contains(*IpAddress::parse("10.1.200.1")));
  EXPECT_FALSE(odd->contains(*IpAddress::parse("10.1.127.1")));

  auto host = IpPrefix::parse("2001:db8::5");
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->len, 128);
  EXPECT_TRUE(host->contains(*IpAddress::parse("2001:db8::5")));
  EXPECT_FALSE(host->contains(*IpAddress::parse("2001:db8::4")));

  auto all6 = IpPrefix::parse("::/0");
  ASSERT_TRUE(all6.ok());
  EXPECT_TRUE(all6->contains(*IpAddress::parse("ffff::1")));
  EXPECT_FALSE(all6->contains(*IpAddress::parse("1.1.1.1")));

  auto v6_63 = IpPrefix::parse("2001:db8:0:fffe::/63");
  ASSERT_TRUE(v6_63.ok());
  EXPECT_TRUE(v6_63->contains(*IpAddress::parse("2001:db8:0:ffff::1")));
  EXPECT_FALSE(v6_63->contains(*IpAddress::parse("2001:db8:0:fffd::1")));
}

TEST(IpPrefix, RejectsHostBitsAndBadLengths) {
  auto hb = IpPrefix::parse("10.1.0.1/16");
  ASSERT_FALSE(hb.ok());
  EXPECT_NE(hb.error().message.find("host bits"), std::string::npos);
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/33").ok());
  EXPECT_FALSE(IpPrefix::parse("::/129").ok());
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/").ok());
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/8x").ok());
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/-1").ok());
  EXPECT_TRUE(IpPrefix::parse("0.0.0.0/0").ok());
  EXPECT_TRUE(IpPrefix::parse("255.255.255.255/32").ok());
}

TEST(PortRange, Parses) {
  EXPECT_TRUE(PortRange::parse("any")->is_any());
  auto one = PortRange::parse("443");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->lo, 443);
  EXPECT_EQ(one->hi, 443);
  auto r = PortRange::parse("0-65535");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->is_any());
  EXPECT_TRUE(r->contains(0));
  EXPECT_TRUE(r->contains(65535));
  auto hi = PortRange::parse("65535");
  ASSERT_TRUE(hi.ok());
  EXPECT_FALSE(hi->contains(65534));
  EXPECT_EQ(PortRange::parse("1024-2048")->to_string(), "1024-2048");
}

TEST(PortRange, RejectsBad) {
  EXPECT_FALSE(PortRange::parse("65536").ok());
  EXPECT_FALSE(PortRange::parse("2000-1000").ok());
  EXPECT_FALSE(PortRange::parse("-5").ok());
  EXPECT_FALSE(PortRange::parse("1-").ok());
  EXPECT_FALSE(PortRange::parse("http").ok());
}

}  // namespace
}  // namespace cygnet
