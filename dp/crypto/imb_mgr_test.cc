// Proves the IPsec-MB dependency works: a manager initialises and computes
// the AES-128-GCM test cases 1 and 2 of McGrew & Viega, "The Galois/Counter
// Mode of Operation (GCM)", appendix B.
#include "dp/crypto/imb_mgr.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>

namespace cygnet::dp {
namespace {

TEST(ImbManager, InitialisesWithAesNi) {
  auto m = ImbManager::create();
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_NE(m->get(), nullptr);
  EXPECT_GE(m->arch(), IMB_ARCH_SSE);
  EXPECT_FALSE(m->arch_description().empty());
  std::printf("IPsec-MB %s, code path: %s\n", imb_get_version_str(), m->arch_description().c_str());
}

TEST(ImbManager, AesGcm128KnownAnswers) {
  auto m = ImbManager::create();
  ASSERT_TRUE(m.ok()) << m.error().message;
  IMB_MGR* mgr = m->get();

  alignas(16) gcm_key_data key_data{};
  const std::array<std::uint8_t, 16> key{};  // all-zero key
  IMB_AES128_GCM_PRE(mgr, key.data(), &key_data);
  const std::array<std::uint8_t, 12> iv{};

  // Test case 1: empty plaintext.
  gcm_context_data ctx{};
  std::array<std::uint8_t, 16> tag{};
  IMB_AES128_GCM_ENC(mgr, &key_data, &ctx, nullptr, nullptr, 0, iv.data(), nullptr, 0, tag.data(), tag.size());
  const std::array<std::uint8_t, 16> tag1{0x58, 0xe2, 0xfc, 0xce, 0xfa, 0x7e, 0x30, 0x61,
                                          0x36, 0x7f, 0x1d, 0x57, 0xa4, 0xe7, 0x45, 0x5a};
  EXPECT_EQ(tag, tag1);

  // Test case 2: one zero block.
  const std::array<std::uint8_t, 16> pt{};
  std::array<std::uint8_t, 16> ct{};
  IMB_AES128_GCM_ENC(mgr, &key_data, &ctx, ct.data(), pt.data(), pt.size(), iv.data(), nullptr, 0, tag.data(),
                     tag.size());
  const std::array<std::uint8_t, 16> ct2{0x03, 0x88, 0xda, 0xce, 0x60, 0xb6, 0xa3, 0x92,
                                         0xf3, 0x28, 0xc2, 0xb9, 0x71, 0xb2, 0xfe, 0x78};
  const std::array<std::uint8_t, 16> tag2{0xab, 0x6e, 0x47, 0xd4, 0x2c, 0xec, 0x13, 0xbd,
                                          0xf5, 0x3a, 0x67, 0xb2, 0x12, 0x57, 0xbd, 0xdf};
  EXPECT_EQ(ct, ct2);
  EXPECT_EQ(tag, tag2);

  // And back: decryption returns the plaintext and the same tag.
  std::array<std::uint8_t, 16> back{};
  std::array<std::uint8_t, 16> tag_dec{};
  IMB_AES128_GCM_DEC(mgr, &key_data, &ctx, back.data(), ct.data(), ct.size(), iv.data(), nullptr, 0,
                     tag_dec.data(), tag_dec.size());
  EXPECT_EQ(back, pt);
  EXPECT_EQ(tag_dec, tag2);
}

}  // namespace
}  // namespace cygnet::dp
