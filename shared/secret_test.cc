#include "shared/secret.h"

#include <gtest/gtest.h>

#include <new>
#include <sstream>

namespace cygnet {
namespace {

TEST(SecretKey, FromHex) {
  auto k = SecretKey::from_hex("0x0a0B:ff");
  ASSERT_TRUE(k.ok());
  ASSERT_EQ(k->size(), 3u);
  EXPECT_EQ(k->bytes()[0], 0x0a);
  EXPECT_EQ(k->bytes()[1], 0x0b);
  EXPECT_EQ(k->bytes()[2], 0xff);
}

TEST(SecretKey, HexErrorsNeverEchoTheKey) {
  auto odd = SecretKey::from_hex("abcdef1");
  ASSERT_FALSE(odd.ok());
  EXPECT_EQ(odd.error().message.find("abcdef"), std::string::npos);
  auto bad = SecretKey::from_hex("deadbeefzz");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message.find("deadbeef"), std::string::npos);
  EXPECT_NE(bad.error().message.find("character 9"), std::string::npos);
  EXPECT_FALSE(SecretKey::from_hex("").ok());
  EXPECT_FALSE(SecretKey::from_hex(std::string(2 * SecretKey::kCapacity + 2, 'a')).ok());
  EXPECT_TRUE(SecretKey::from_hex(std::string(2 * SecretKey::kCapacity, 'a')).ok());
}

TEST(SecretKey, PrintingRedacts) {
  auto k = SecretKey::from_hex("41424344");
  std::ostringstream os;
  os << *k;
  EXPECT_EQ(os.str(), "<key 4 bytes>");
}

TEST(SecretKey, MoveWipesSource) {
  auto k = SecretKey::from_hex("01020304");
  SecretKey a = std::move(*k);
  EXPECT_EQ(a.size(), 4u);
  EXPECT_EQ(k->size(), 0u);  // NOLINT(bugprone-use-after-move): checking the wipe
  for (std::size_t i = 0; i < SecretKey::kCapacity; ++i) EXPECT_EQ(k->data()[i], 0) << i;
}

TEST(SecretKey, DestructorWipesStorage) {
  // Construct in a buffer we own, destroy, then look at the bytes left behind.
  alignas(SecretKey) unsigned char storage[sizeof(SecretKey)];
  auto src = SecretKey::from_hex("ffffffffffffffff");
  auto* k = new (storage) SecretKey(*src);
  const auto* raw = k->data();
  const std::size_t off = static_cast<std::size_t>(raw - reinterpret_cast<const std::uint8_t*>(storage));
  EXPECT_EQ(raw[0], 0xff);
  k->~SecretKey();
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(storage[off + i], 0) << i;
}

TEST(SecretKey, EqualsAndLimits) {
  auto a = SecretKey::from_hex("0102");
  auto b = SecretKey::from_hex("0102");
  auto c = SecretKey::from_hex("0103");
  auto d = SecretKey::from_hex("010203");
  EXPECT_TRUE(a->equals(*b));
  EXPECT_FALSE(a->equals(*c));
  EXPECT_FALSE(a->equals(*d));
  std::uint8_t big[SecretKey::kCapacity + 1] = {};
  EXPECT_FALSE(SecretKey::from_bytes(big).ok());
  EXPECT_TRUE(SecretKey::from_bytes(std::span(big, SecretKey::kCapacity)).ok());
}

}  // namespace
}  // namespace cygnet
