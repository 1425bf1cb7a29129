#include "shared/sa.h"

#include <gtest/gtest.h>

namespace cygnet {
namespace {

SecretKey key_of(std::size_t n, std::uint8_t fill = 0x5a) {
  std::vector<std::uint8_t> b(n, fill);
  return *SecretKey::from_bytes(b);
}

SaConfig good_gcm() {
  SaConfig sa;
  sa.spi = 0x1000;
  sa.dir = Direction::in;
  sa.src = *IpAddress::parse("192.0.2.1");
  sa.dst = *IpAddress::parse("192.0.2.2");
  sa.cipher = CipherAlg::aes_gcm16_128;
  sa.cipher_key = key_of(20);
  return sa;
}

std::string error_of(const SaConfig& sa) {
  auto r = validate_sa(sa);
  return r.ok() ? std::string("<ok>") : r.error().message;
}

TEST(Sa, GoodConfigsPass) {
  EXPECT_EQ(error_of(good_gcm()), "<ok>");
  for (const auto& ci : cipher_table()) {
    for (const auto& ii : integ_table()) {
      SaConfig sa = good_gcm();
      sa.cipher = ci.alg;
      sa.integ = ii.alg;
      sa.cipher_key = key_of(std::size_t{ci.key_len} + ci.salt_len);
      sa.integ_key = key_of(ii.key_len);
      const bool valid = ci.aead ? ii.alg == IntegAlg::none : ii.alg != IntegAlg::none;
      EXPECT_EQ(validate_sa(sa).ok(), valid) << ci.name << " + " << ii.name << ": " << error_of(sa);
    }
  }
}

TEST(Sa, ReservedSpi) {
  for (std::uint32_t spi : {0u, 1u, 255u}) {
    SaConfig sa = good_gcm();
    sa.spi = spi;
    EXPECT_NE(error_of(sa).find("reserved"), std::string::npos) << spi;
  }
  SaConfig sa = good_gcm();
  sa.spi = 256;
  EXPECT_TRUE(validate_sa(sa).ok());
  sa.spi = 0xffffffff;
  EXPECT_TRUE(validate_sa(sa).ok());
}

TEST(Sa, AddressRules) {
  SaConfig sa = good_gcm();
  sa.dst = *IpAddress::parse("2001:db8::1");
  EXPECT_NE(error_of(sa).find("IPv6"), std::string::npos);
  sa = good_gcm();
  sa.src = IpAddress{};
  EXPECT_FALSE(validate_sa(sa).ok());
  sa = good_gcm();
  sa.dst = *IpAddress::parse("0.0.0.0");
  EXPECT_FALSE(validate_sa(sa).ok());
}

TEST(Sa, KeyLengthsAndMessagesWithoutKeys) {
  SaConfig sa = good_gcm();
  sa.cipher_key = key_of(16, 0xab);  // salt missing
  auto msg = error_of(sa);
  EXPECT_NE(msg.find("20-byte key (16 key + 4 salt)"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("abab"), std::string::npos);
  EXPECT_EQ(msg.find("171"), std::string::npos);  // 0xab in decimal

  sa = good_gcm();
  sa.cipher = CipherAlg::aes_cbc_128;
  sa.cipher_key = key_of(16);
  sa.integ = IntegAlg::hmac_sha256_128;
  sa.integ_key = key_of(20);
  EXPECT_NE(error_of(sa).find("32-byte key"), std::string::npos);
}

TEST(Sa, AlgorithmCombinations) {
  SaConfig sa = good_gcm();
  sa.integ = IntegAlg::hmac_sha1_96;
  sa.integ_key = key_of(20);
  EXPECT_NE(error_of(sa).find("AEAD"), std::string::npos);

  sa = good_gcm();
  sa.cipher = CipherAlg::null;
  sa.cipher_key = SecretKey{};
  EXPECT_NE(error_of(sa).find("integrity"), std::string::npos) << "NULL+NULL is refused";
  sa.integ = IntegAlg::hmac_sha1_96;
  sa.integ_key = key_of(20);
  EXPECT_TRUE(validate_sa(sa).ok());
}

TEST(Sa, ReplayWindow) {
  SaConfig sa = good_gcm();
  for (std::uint32_t w : {32u, 64u, 1024u, 4096u}) {
    sa.replay_window = w;
    EXPECT_TRUE(validate_sa(sa).ok()) << w;
  }
  for (std::uint32_t w : {0u, 31u, 4097u}) {
    sa.replay_window = w;
    EXPECT_FALSE(validate_sa(sa).ok()) << w;
  }
  sa.replay_window = 0;
  sa.anti_replay = false;
  EXPECT_TRUE(validate_sa(sa).ok()) << "0 is fine once anti-replay is explicitly off";
}

TEST(Sa, Lifetimes) {
  SaConfig sa = good_gcm();
  sa.soft.bytes = 100;
  sa.hard.bytes = 50;
  EXPECT_NE(error_of(sa).find("exceeds"), std::string::npos);
  sa.hard.bytes = 100;
  EXPECT_TRUE(validate_sa(sa).ok());
  sa.soft.packets = 10;
  EXPECT_NE(error_of(sa).find("without a hard"), std::string::npos);
  sa.hard.packets = 20;
  sa.hard.add_seconds = 3600;
  EXPECT_TRUE(validate_sa(sa).ok());
}

TEST(Sa, EncapAndSelectors) {
  SaConfig sa = good_gcm();
  sa.encap = UdpEncap{true, 4500, 0};
  EXPECT_FALSE(validate_sa(sa).ok());
  sa.encap = UdpEncap{true, 4500, 4500};
  EXPECT_TRUE(validate_sa(sa).ok());

  Selector s;
  s.src = *IpPrefix::parse("10.0.0.0/8");
  s.dst = *IpPrefix::parse("::/0");
  sa.selectors.push_back(s);
  EXPECT_NE(error_of(sa).find("traffic selector 1"), std::string::npos);
}

TEST(Sa, OuterHeaderAndTfc) {
  SaConfig sa = good_gcm();
  sa.outer_ttl = 0;
  EXPECT_NE(error_of(sa).find("TTL"), std::string::npos);
  sa.outer_ttl = 1;
  sa.tfc_pad_to = 1000;
  EXPECT_TRUE(validate_sa(sa).ok());
  sa.mode = Mode::transport;
  EXPECT_NE(error_of(sa).find("TFC"), std::string::npos);
}

TEST(Sa, AlgorithmNames) {
  for (const auto& ci : cipher_table()) EXPECT_EQ(*cipher_from_name(ci.name), ci.alg);
  for (const auto& ii : integ_table()) EXPECT_EQ(*integ_from_name(ii.name), ii.alg);
  auto bad = cipher_from_name("aes-gcm");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("aes-gcm16-128"), std::string::npos) << "lists the choices";
  EXPECT_FALSE(integ_from_name("sha1").ok());
  EXPECT_EQ(cipher_info(CipherAlg::aes_gcm16_256).ikev2_id, 20);
  EXPECT_EQ(integ_info(IntegAlg::hmac_sha384_192).icv_len, 24);
}

}  // namespace
}  // namespace cygnet
