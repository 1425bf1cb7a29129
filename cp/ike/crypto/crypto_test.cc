// Tests of the IKE crypto (cp/ike/crypto). Every expected value comes from a
// source nobody here wrote: RFC 4231 (HMAC-SHA2), RFC 5903 section 8 (ECP
// groups 19/20/21), RFC 7748 sections 5.2 and 6.1 (X25519), Project
// Wycheproof (tests/vectors/wycheproof/, Apache-2.0), and values computed by
// Python's hmac/hashlib and the `cryptography` package in
// tests/vectors/ike_kdf_gen.py (output committed as ike_kdf_vectors.json).
// See tests/vectors/README.md.
#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cp/ike/crypto/auth.h"
#include "cp/ike/crypto/cookie.h"
#include "cp/ike/crypto/kdf.h"
#include "cp/ike/crypto/key_exchange.h"
#include "cp/ike/crypto/nat.h"
#include "cp/ike/crypto/prf.h"
#include "cp/ike/crypto/secret_bytes.h"
#include "cp/ike/crypto/sk_ciphers.h"
#include "cp/ike/crypto/transforms.h"
#include "shared/json.h"
#include "shared/secret.h"

#ifndef CYGNET_VECTOR_DIR
#error "CYGNET_VECTOR_DIR must be the absolute path of tests/vectors, as a string literal"
#endif

namespace cygnet::ike {
namespace {

using Bytes = std::vector<std::uint8_t>;
using cygnet::json::JsonValue;

Bytes unhex(std::string_view s) {
  std::string clean;
  for (char c : s) {
    if (c != ' ' && c != '\n') clean.push_back(c);
  }
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Bytes out;
  if (clean.size() % 2 != 0) {
    ADD_FAILURE() << "odd hex length";
    return out;
  }
  for (std::size_t i = 0; i < clean.size(); i += 2) {
    const int hi = nib(clean[i]);
    const int lo = nib(clean[i + 1]);
    if (hi < 0 || lo < 0) {
      ADD_FAILURE() << "bad hex digit";
      return {};
    }
    out.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
  }
  return out;
}

std::string hex(std::span<const std::uint8_t> b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (std::uint8_t x : b) {
    s.push_back(kDigits[x >> 4]);
    s.push_back(kDigits[x & 0xf]);
  }
  return s;
}

Bytes sha256(std::span<const std::uint8_t> b) {
  Bytes out(32);
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(b.data(), b.size(), out.data(), &len, EVP_sha256(), nullptr), 1);
  return out;
}

const JsonValue& load(const std::string& name) {
  static std::map<std::string, JsonValue> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    auto r = cygnet::json::parse_json_file(std::string(CYGNET_VECTOR_DIR) + "/" + name);
    if (!r) {
      ADD_FAILURE() << name << ": " << r.error().message;
      it = cache.emplace(name, JsonValue{}).first;
    } else {
      it = cache.emplace(name, std::move(*r)).first;
    }
  }
  return it->second;
}

const JsonValue& kdf_vectors() { return load("ike_kdf_vectors.json"); }

const JsonValue::Array& cases(const JsonValue& doc, std::string_view key) {
  static const JsonValue::Array kEmpty;
  const auto* a = doc.find_array(key);
  if (a == nullptr) {
    ADD_FAILURE() << "vector file has no array '" << key << "'";
    return kEmpty;
  }
  return *a;
}

Bytes hx(const JsonValue& v, std::string_view key) {
  const std::string* s = v.find_string(key);
  if (s == nullptr) {
    ADD_FAILURE() << "missing string field " << key;
    return {};
  }
  return unhex(*s);
}

std::int64_t num(const JsonValue& v, std::string_view key) {
  auto n = v.find_int(key);
  if (!n) ADD_FAILURE() << "missing integer field " << key;
  return n.value_or(-1);
}

PrfId prf_of(const JsonValue& v, std::string_view key = "prf") {
  auto p = prf_from_id(static_cast<std::uint16_t>(num(v, key)));
  EXPECT_TRUE(p.ok());
  return p.ok() ? *p : PrfId::hmac_sha2_256;
}

Bytes bytes_of(const SecretBytes& k) { return Bytes(k.bytes().begin(), k.bytes().end()); }

std::span<const std::uint8_t, 8> spi8(const Bytes& b) {
  EXPECT_EQ(b.size(), 8u);
  return std::span<const std::uint8_t, 8>(b.data(), 8);
}

SecretKey key_of(const Bytes& b) {
  auto k = SecretKey::from_bytes(b);
  EXPECT_TRUE(k.ok());
  return k.ok() ? std::move(*k) : SecretKey{};
}

// ---------------------------------------------------------------------------
// Zeroizing storage

TEST(SecretBytes, WipeClearsAndKeepsSize) {
  SecretBytes s = SecretBytes::copy_of(unhex("0102030405060708"));
  ASSERT_EQ(s.size(), 8u);
  EXPECT_EQ(hex(s.bytes()), "0102030405060708");
  s.wipe();
  EXPECT_EQ(s.size(), 8u);
  EXPECT_EQ(hex(s.bytes()), "0000000000000000");
}

TEST(SecretBytes, MoveHandsOverTheBufferAndEmptiesTheSource) {
  SecretBytes a = SecretBytes::copy_of(unhex("aabbccdd"));
  const std::uint8_t* buf = a.data();
  SecretBytes b(std::move(a));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): checking the moved-from state is the point
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(b.data(), buf);  // same allocation: no copy was left behind
  EXPECT_EQ(hex(b.bytes()), "aabbccdd");
  SecretBytes c;
  c = std::move(b);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(c.data(), buf);
  c.reset();
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(c.data(), nullptr);
}

TEST(SecretBytes, ConstantTimeCompareAndPrinting) {
  SecretBytes a = SecretBytes::copy_of(unhex("00112233"));
  EXPECT_TRUE(a.equals(unhex("00112233")));
  EXPECT_FALSE(a.equals(unhex("00112234")));
  EXPECT_FALSE(a.equals(unhex("001122")));
  EXPECT_TRUE(ct_equal({}, {}));
  std::ostringstream os;
  os << a;
  EXPECT_EQ(os.str(), "<secret 4 bytes>");
}

TEST(SecretKeyZeroization, MovedFromKeyBufferIsCleared) {
  SecretKey a = key_of(unhex("ffeeddccbbaa99887766554433221100"));
  SecretKey b(std::move(a));
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move)
  // data() points at the fixed in-object buffer, which must be all zero now.
  EXPECT_TRUE(std::all_of(a.data(), a.data() + SecretKey::kCapacity, [](std::uint8_t x) { return x == 0; }));
  EXPECT_EQ(hex(b.bytes()), "ffeeddccbbaa99887766554433221100");
  SecretKey c;
  c = std::move(b);
  EXPECT_TRUE(std::all_of(b.data(), b.data() + SecretKey::kCapacity, [](std::uint8_t x) { return x == 0; }));
  c.wipe();
  EXPECT_TRUE(std::all_of(c.data(), c.data() + SecretKey::kCapacity, [](std::uint8_t x) { return x == 0; }));
}

// ---------------------------------------------------------------------------
// PRFs: RFC 4231 test cases 1, 2 and 6 (6: a 131-byte key, longer than a block)

TEST(Prf, Rfc4231) {
  struct Case {
    Bytes key;
    std::string data;
    const char* s256;
    const char* s384;
    const char* s512;
  };
  const Case kCases[] = {
      {Bytes(20, 0x0b), "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
       "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
       "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4"
       "be9d914eeb61f1702e696c203a126854"},
      {Bytes{'J', 'e', 'f', 'e'}, "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
       "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
       "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fd"
       "caeab1a34d4a6b4b636e070a38bce737"},
      {Bytes(131, 0xaa), "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
       "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952",
       "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e52"
       "95e64f73f63f0aec8b915a985d786598"},
  };
  for (const auto& c : kCases) {
    const Bytes data(c.data.begin(), c.data.end());
    auto a = prf(PrfId::hmac_sha2_256, c.key, data);
    auto b = prf(PrfId::hmac_sha2_384, c.key, data);
    auto d = prf(PrfId::hmac_sha2_512, c.key, data);
    ASSERT_TRUE(a.ok() && b.ok() && d.ok());
    EXPECT_EQ(hex(a->bytes()), c.s256);
    EXPECT_EQ(hex(b->bytes()), c.s384);
    EXPECT_EQ(hex(d->bytes()), c.s512);
    // Data given in parts is the same as the concatenation.
    const std::span<const std::uint8_t> all(data);
    auto parts = prf(PrfId::hmac_sha2_256, c.key, {all.first(3), all.subspan(3, 0), all.subspan(3)});
    ASSERT_TRUE(parts.ok());
    EXPECT_EQ(hex(parts->bytes()), c.s256);
  }
}

TEST(Prf, IdsAndLengths) {
  EXPECT_EQ(prf_output_len(PrfId::hmac_sha2_256), 32u);
  EXPECT_EQ(prf_output_len(PrfId::hmac_sha2_384), 48u);
  EXPECT_EQ(prf_output_len(PrfId::hmac_sha2_512), 64u);
  EXPECT_EQ(supported_prfs().size(), 3u);
  EXPECT_TRUE(prf_from_id(7).ok());
  auto bad = prf_from_id(2);  // PRF_HMAC_SHA1: not offered
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("PRF transform ID 2"), std::string::npos);
}

// Wycheproof HMAC groups whose tag is the full digest: prf() is plain HMAC.
TEST(Prf, Wycheproof) {
  const std::pair<const char*, PrfId> kFiles[] = {{"wycheproof/hmac_sha256_test.json", PrfId::hmac_sha2_256},
                                                  {"wycheproof/hmac_sha384_test.json", PrfId::hmac_sha2_384},
                                                  {"wycheproof/hmac_sha512_test.json", PrfId::hmac_sha2_512}};
  for (const auto& [file, id] : kFiles) {
    int run = 0, valid = 0;
    for (const auto& g : cases(load(file), "testGroups")) {
      if (g.find_int("tagSize") != static_cast<std::int64_t>(8 * prf_output_len(id))) continue;
      for (const auto& t : cases(g, "tests")) {
        auto out = prf(id, hx(t, "key"), hx(t, "msg"));
        ASSERT_TRUE(out.ok());
        const bool match = hex(out->bytes()) == *t.find_string("tag");
        const bool want_valid = *t.find_string("result") == "valid";
        EXPECT_EQ(match, want_valid) << file << " tcId " << num(t, "tcId");
        ++run;
        valid += want_valid ? 1 : 0;
      }
    }
    // Groups with 3 key sizes (incl. 520 bits, longer than a SHA-256 block).
    EXPECT_EQ(run, 87) << file;
    EXPECT_EQ(valid, 33) << file;
  }
}

TEST(PrfPlus, MatchesPython) {
  int n = 0;
  for (const auto& c : cases(kdf_vectors(), "prf_plus")) {
    const PrfId p = prf_of(c);
    const auto len = static_cast<std::size_t>(num(c, "length"));
    auto out = prf_plus(p, hx(c, "key"), hx(c, "seed"), len);
    ASSERT_TRUE(out.ok()) << out.error().message;
    ASSERT_EQ(out->size(), len);
    if (c.find("out") != nullptr) {
      EXPECT_EQ(hex(out->bytes()), *c.find_string("out")) << "prf " << static_cast<int>(p) << " len " << len;
    } else {
      EXPECT_EQ(hex(sha256(out->bytes())), *c.find_string("out_sha256")) << "len " << len;
      EXPECT_EQ(len, prf_plus_max(p));
    }
    ++n;
  }
  EXPECT_EQ(n, 18);
}

TEST(PrfPlus, RefusesMoreThan255Blocks) {
  for (PrfId p : supported_prfs()) {
    const Bytes key(prf_output_len(p), 0x11);
    auto ok = prf_plus(p, key, Bytes{1, 2, 3}, 255 * prf_output_len(p));
    EXPECT_TRUE(ok.ok());
    auto bad = prf_plus(p, key, Bytes{1, 2, 3}, 255 * prf_output_len(p) + 1);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("255 blocks"), std::string::npos) << bad.error().message;
  }
}

// ---------------------------------------------------------------------------
// Key derivation (RFC 7296 2.14, 2.17, 2.18)

TEST(Kdf, IkeSaKeysMatchPython) {
  int n = 0;
  for (const auto& c : cases(kdf_vectors(), "ike_sa")) {
    IkeSaSuite s;
    s.prf = prf_of(c);
    s.encr = static_cast<EncrId>(num(c, "encr"));
    s.encr_key_bits = static_cast<std::uint16_t>(num(c, "key_bits"));
    s.integ = static_cast<IntegId>(num(c, "integ"));
    const Bytes ni = hx(c, "ni"), nr = hx(c, "nr"), gir = hx(c, "g_ir");
    const Bytes spii = hx(c, "spi_i"), spir = hx(c, "spi_r");
    auto seed = skeyseed(s.prf, ni, nr, gir);
    ASSERT_TRUE(seed.ok()) << seed.error().message;
    EXPECT_EQ(hex(seed->bytes()), *c.find_string("skeyseed"));
    auto k = derive_ike_sa_keys(s, *seed, ni, nr, spi8(spii), spi8(spir));
    ASSERT_TRUE(k.ok()) << k.error().message;
    EXPECT_EQ(hex(k->sk_d.bytes()), *c.find_string("sk_d"));
    EXPECT_EQ(hex(k->sk_ai.bytes()), *c.find_string("sk_ai"));
    EXPECT_EQ(hex(k->sk_ar.bytes()), *c.find_string("sk_ar"));
    EXPECT_EQ(hex(k->sk_ei.bytes()), *c.find_string("sk_ei"));
    EXPECT_EQ(hex(k->sk_er.bytes()), *c.find_string("sk_er"));
    EXPECT_EQ(hex(k->sk_pi.bytes()), *c.find_string("sk_pi"));
    EXPECT_EQ(hex(k->sk_pr.bytes()), *c.find_string("sk_pr"));
    ++n;
  }
  EXPECT_EQ(n, 6);
}

TEST(Kdf, KeyLengthTable) {
  EXPECT_EQ(*encr_keymat_len(EncrId::aes_gcm_16, 128), 20u);
  EXPECT_EQ(*encr_keymat_len(EncrId::aes_gcm_16, 256), 36u);
  EXPECT_EQ(*encr_keymat_len(EncrId::chacha20_poly1305, 0), 36u);
  EXPECT_EQ(*encr_keymat_len(EncrId::aes_cbc, 128), 16u);
  EXPECT_EQ(*encr_keymat_len(EncrId::aes_cbc, 256), 32u);
  EXPECT_FALSE(encr_keymat_len(EncrId::aes_cbc, 192).ok());
  EXPECT_FALSE(encr_keymat_len(EncrId::chacha20_poly1305, 128).ok());
  EXPECT_EQ(integ_key_len(IntegId::hmac_sha2_256_128), 32u);
  EXPECT_EQ(integ_key_len(IntegId::hmac_sha2_384_192), 48u);
  EXPECT_EQ(integ_key_len(IntegId::hmac_sha2_512_256), 64u);
  EXPECT_EQ(integ_icv_len(IntegId::hmac_sha2_256_128), 16u);
  EXPECT_EQ(integ_icv_len(IntegId::hmac_sha2_384_192), 24u);
  EXPECT_EQ(integ_icv_len(IntegId::hmac_sha2_512_256), 32u);
  EXPECT_FALSE(check_suite(EncrId::aes_gcm_16, 256, IntegId::hmac_sha2_256_128).ok());
  EXPECT_FALSE(check_suite(EncrId::aes_cbc, 256, IntegId::none).ok());
  EXPECT_TRUE(check_suite(EncrId::aes_cbc, 256, IntegId::hmac_sha2_256_128).ok());
}

TEST(Kdf, RefusesBadInputs) {
  const Bytes n16(16, 1), n15(15, 1), gir(32, 2);
  EXPECT_FALSE(skeyseed(PrfId::hmac_sha2_256, n15, n16, gir).ok());
  EXPECT_FALSE(skeyseed(PrfId::hmac_sha2_256, n16, n16, {}).ok());
  const SecretKey skd = key_of(Bytes(32, 3));
  EXPECT_FALSE(skeyseed_rekey(PrfId::hmac_sha2_256, skd, {}, n16, n16).ok());
  ChildSaSuite cs;
  EXPECT_FALSE(derive_child_sa_keys(PrfId::hmac_sha2_512, skd, cs, {}, n16, n16).ok());  // SK_d length
}

TEST(Kdf, RekeySkeyseedMatchesPython) {
  int n = 0;
  for (const auto& c : cases(kdf_vectors(), "rekey")) {
    const PrfId old_prf = prf_of(c, "old_prf");
    const SecretKey old_skd = key_of(hx(c, "old_sk_d"));
    const Bytes ni = hx(c, "ni"), nr = hx(c, "nr"), spii = hx(c, "spi_i"), spir = hx(c, "spi_r");
    auto seed = skeyseed_rekey(old_prf, old_skd, hx(c, "g_ir"), ni, nr);
    ASSERT_TRUE(seed.ok()) << seed.error().message;
    EXPECT_EQ(hex(seed->bytes()), *c.find_string("skeyseed"));
    IkeSaSuite s;
    s.prf = prf_of(c);
    s.encr = static_cast<EncrId>(num(c, "encr"));
    s.encr_key_bits = static_cast<std::uint16_t>(num(c, "key_bits"));
    s.integ = static_cast<IntegId>(num(c, "integ"));
    auto k = derive_ike_sa_keys(s, *seed, ni, nr, spi8(spii), spi8(spir));
    ASSERT_TRUE(k.ok()) << k.error().message;
    EXPECT_EQ(hex(k->sk_d.bytes()), *c.find_string("sk_d"));
    EXPECT_EQ(hex(k->sk_pr.bytes()), *c.find_string("sk_pr"));
    ++n;
  }
  EXPECT_EQ(n, 2);
}

TEST(Kdf, ChildSaKeymatMatchesPython) {
  int n = 0;
  for (const auto& c : cases(kdf_vectors(), "child")) {
    ChildSaSuite s;
    s.encr = static_cast<EncrId>(num(c, "encr"));
    s.encr_key_bits = static_cast<std::uint16_t>(num(c, "key_bits"));
    s.integ = static_cast<IntegId>(num(c, "integ"));
    const SecretKey skd = key_of(hx(c, "sk_d"));
    auto k = derive_child_sa_keys(prf_of(c), skd, s, hx(c, "g_ir"), hx(c, "ni"), hx(c, "nr"));
    ASSERT_TRUE(k.ok()) << k.error().message;
    EXPECT_EQ(hex(k->encr_i.bytes()), *c.find_string("encr_i"));
    EXPECT_EQ(hex(k->integ_i.bytes()), *c.find_string("integ_i"));
    EXPECT_EQ(hex(k->encr_r.bytes()), *c.find_string("encr_r"));
    EXPECT_EQ(hex(k->integ_r.bytes()), *c.find_string("integ_r"));
    if (is_aead(s.encr)) {
      EXPECT_EQ(k->encr_i.size(), *encr_keymat_len(s.encr, s.encr_key_bits));  // key + 4-byte salt
      EXPECT_TRUE(k->integ_i.empty());
    }
    ++n;
  }
  EXPECT_EQ(n, 5);
}

// ---------------------------------------------------------------------------
// Key exchange

TEST(KeyExchange, SupportedGroupsAndLengths) {
  EXPECT_EQ(supported_groups().size(), 5u);
  EXPECT_EQ(key_exchange_length(14), 256u);
  EXPECT_EQ(key_exchange_length(19), 64u);
  EXPECT_EQ(key_exchange_length(20), 96u);
  EXPECT_EQ(key_exchange_length(21), 132u);
  EXPECT_EQ(key_exchange_length(31), 32u);
  EXPECT_EQ(key_exchange_length(15), 0u);
  EXPECT_EQ(key_exchange_length(0), 0u);
  EXPECT_FALSE(KeyExchange::create(std::uint16_t{2}).ok());
  EXPECT_FALSE(group_from_id(32).ok());
}

// Fresh key pairs for every group agree with each other.
TEST(KeyExchange, EveryGroupAgrees) {
  for (KeGroup g : supported_groups()) {
    auto a = KeyExchange::create(g);
    auto b = KeyExchange::create(static_cast<std::uint16_t>(g));
    ASSERT_TRUE(a.ok()) << a.error().message;
    ASSERT_TRUE(b.ok()) << b.error().message;
    EXPECT_EQ(a->public_value().size(), key_exchange_length(static_cast<std::uint16_t>(g))) << group_name(g);
    EXPECT_NE(a->public_value(), b->public_value());
    auto sa = a->derive(b->public_value());
    auto sb = b->derive(a->public_value());
    ASSERT_TRUE(sa.ok()) << sa.error().message;
    ASSERT_TRUE(sb.ok()) << sb.error().message;
    EXPECT_EQ(sa->size(), shared_secret_length(g));
    EXPECT_EQ(bytes_of(*sa), bytes_of(*sb)) << group_name(g);
  }
}

TEST(KeyExchange, Modp2048PrimeIsRfc3526) {
  // SHA-256 of p as computed by ike_kdf_gen.py from the RFC 3526 formula
  // 2^2048 - 2^1984 - 1 + 2^64 * { [2^1918 pi] + 124476 }.
  EXPECT_EQ(modp2048_prime().size(), 256u);
  EXPECT_EQ(hex(sha256(modp2048_prime())), *kdf_vectors().find_string("modp2048_prime_sha256"));
}

TEST(KeyExchange, Modp2048KnownExponents) {
  // x = 1 would be refused by the range check; x = 2 gives g^x = 4, x = 3
  // gives 8 (p is 2048 bits, so no reduction). Shared (g^2)^3 = 64.
  auto a = KeyExchange::from_private(KeGroup::modp2048, Bytes{0x02});
  auto b = KeyExchange::from_private(KeGroup::modp2048, Bytes{0x03});
  ASSERT_TRUE(a.ok()) << a.error().message;
  ASSERT_TRUE(b.ok()) << b.error().message;
  Bytes four(256, 0), eight(256, 0), sixty_four(256, 0);
  four[255] = 4;
  eight[255] = 8;
  sixty_four[255] = 64;
  EXPECT_EQ(a->public_value(), four);
  EXPECT_EQ(b->public_value(), eight);
  auto s = a->derive(b->public_value());
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(bytes_of(*s), sixty_four);  // padded to the prime length
}

TEST(KeyExchange, Modp2048RejectsBadPublicValues) {
  auto kx = KeyExchange::create(KeGroup::modp2048);
  ASSERT_TRUE(kx.ok());
  const Bytes p(modp2048_prime().begin(), modp2048_prime().end());
  Bytes zero(256, 0), one(256, 0), pm1 = p, pm2 = p, ff(256, 0xff);
  one[255] = 1;
  pm1[255] -= 1;  // p ends in 0xff: no borrow
  pm2[255] -= 2;
  struct Bad {
    Bytes y;
    const char* why;
  };
  const Bad kBad[] = {
      {zero, "0 or 1"}, {one, "0 or 1"}, {pm1, "p-1 or not less than p"}, {p, "p-1 or not less than p"},
      {ff, "p-1 or not less than p"}, {Bytes(255, 0x22), "255 bytes"}, {Bytes(257, 0x22), "257 bytes"},
      {Bytes{}, "0 bytes"},
      // p - 2 = -2 mod p is a quadratic non-residue (p = 7 mod 8, p = 3 mod 4):
      // outside the prime-order subgroup.
      {pm2, "prime-order subgroup"},
  };
  for (const auto& b : kBad) {
    auto r = kx->derive(b.y);
    ASSERT_FALSE(r.ok()) << b.why;
    EXPECT_NE(r.error().message.find(b.why), std::string::npos) << r.error().message;
  }
  Bytes two(256, 0);
  two[255] = 2;
  EXPECT_TRUE(kx->derive(two).ok());  // the generator itself is a valid public value
}

struct EcpVector {
  KeGroup g;
  const char* i;
  const char* gix;
  const char* giy;
  const char* r;
  const char* grx;
  const char* gry;
  const char* girx;
};

// RFC 5903 section 8.1, 8.2 and 8.3.
const EcpVector kRfc5903[] = {
    {KeGroup::ecp256, "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
     "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180",
     "5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3",
     "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
     "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63",
     "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
     "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE"},
    {KeGroup::ecp384,
     "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194",
     "667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6DE3AC808ACB4BDB4C88732AEE95F41AA",
     "9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38EEB9FCFF3C2C947DAE69B4C634573A81C",
     "41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942E0308312916B8ED2960E4BD55A7448FC",
     "E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D0D1AC43A0336DEF96FDA41D0774A3571",
     "DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FFF83FA40142209DFF5EAAD96DB9E6386C",
     "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746"},
    {KeGroup::ecp521,
     "0037ADE9319A89F4DABDB3EF411AACCCA5123C61ACAB57B5393DCE47608172A095AA85A30FE1C2952C6771D937BA9777"
     "F5957B2639BAB072462F68C27A57382D4A52",
     "0015417E84DBF28C0AD3C278713349DC7DF153C897A1891BD98BAB4357C9ECBEE1E3BF42E00B8E380AEAE57C2D107564"
     "941885942AF5A7F4601723C4195D176CED3E",
     "017CAE20B6641D2EEB695786D8C946146239D099E18E1D5A514C739D7CB4A10AD8A788015AC405D7799DC75E7B7D5B6C"
     "F2261A6A7F1507438BF01BEB6CA3926F9582",
     "0145BA99A847AF43793FDD0E872E7CDFA16BE30FDC780F97BCCC3F078380201E9C677D600B343757A3BDBF2A3163E4C2"
     "F869CCA7458AA4A4EFFC311F5CB151685EB9",
     "00D0B3975AC4B799F5BEA16D5E13E9AF971D5E9B984C9F39728B5E5739735A219B97C356436ADC6E95BB0352F6BE64A6"
     "C2912D4EF2D0433CED2B6171640012D9460F",
     "015C68226383956E3BD066E797B623C27CE0EAC2F551A10C2C724D9852077B87220B6536C5C408A1D2AEBB8E86D678AE"
     "49CB57091F4732296579AB44FCD17F0FC56A",
     "01144C7D79AE6956BC8EDB8E7C787C4521CB086FA64407F97894E5E6B2D79B04D1427E73CA4BAA240A34786859810C06"
     "B3C715A3A8CC3151F2BEE417996D19F3DDEA"},
};

Bytes cat(const Bytes& a, const Bytes& b) {
  Bytes o = a;
  o.insert(o.end(), b.begin(), b.end());
  return o;
}

TEST(KeyExchange, Rfc5903Vectors) {
  for (const auto& v : kRfc5903) {
    auto i = KeyExchange::from_private(v.g, unhex(v.i));
    auto r = KeyExchange::from_private(v.g, unhex(v.r));
    ASSERT_TRUE(i.ok()) << i.error().message;
    ASSERT_TRUE(r.ok()) << r.error().message;
    // The KE payload is x | y without the 0x04 prefix (RFC 5903 section 7).
    EXPECT_EQ(i->public_value(), cat(unhex(v.gix), unhex(v.giy))) << group_name(v.g);
    EXPECT_EQ(r->public_value(), cat(unhex(v.grx), unhex(v.gry))) << group_name(v.g);
    auto si = i->derive(r->public_value());
    auto sr = r->derive(i->public_value());
    ASSERT_TRUE(si.ok()) << si.error().message;
    ASSERT_TRUE(sr.ok()) << sr.error().message;
    EXPECT_EQ(bytes_of(*si), unhex(v.girx)) << group_name(v.g);
    EXPECT_EQ(bytes_of(*sr), unhex(v.girx)) << group_name(v.g);
  }
}

TEST(KeyExchange, EcpRejectsBadPublicValues) {
  for (const auto& v : kRfc5903) {
    auto i = KeyExchange::from_private(v.g, unhex(v.i));
    ASSERT_TRUE(i.ok());
    const Bytes x = unhex(v.grx), y = unhex(v.gry);
    const std::size_t f = x.size();
    Bytes y1 = y;
    y1.back() ^= 1;
    Bytes big_x(f, 0xff);  // all-ones is >= p for P-256, P-384 and P-521
    if (v.g == KeGroup::ecp521) big_x[0] = 0x01;  // 2^521 - 1 = p: the smallest value not below p
    struct Bad {
      Bytes pub;
      const char* why;
    };
    const Bad kBad[] = {
        {cat(x, y1), "not a point on the curve"},
        {Bytes(2 * f, 0), "point at infinity"},
        {cat(big_x, y), "x coordinate is not less than the field prime"},
        {cat(x, big_x), "y coordinate is not less than the field prime"},
        {cat(Bytes{0x04}, cat(x, y)), "bytes, expected"},  // SEC1 prefix is not IKE's encoding
        {x, "bytes, expected"},
    };
    for (const auto& b : kBad) {
      auto s = i->derive(b.pub);
      ASSERT_FALSE(s.ok()) << group_name(v.g) << " " << b.why;
      EXPECT_NE(s.error().message.find(b.why), std::string::npos) << s.error().message;
    }
  }
}

// Converts Wycheproof's big-endian private value (may carry a leading 00 or
// be shorter) to exactly `len` bytes.
std::optional<Bytes> fixed_len(Bytes b, std::size_t len) {
  while (b.size() > len && b.front() == 0) b.erase(b.begin());
  if (b.size() > len) return std::nullopt;
  Bytes out(len - b.size(), 0);
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

TEST(KeyExchange, WycheproofP256Ecpoint) {
  int run = 0, rejected = 0, skipped_compressed = 0, skipped_other = 0;
  for (const auto& g : cases(load("wycheproof/ecdh_secp256r1_ecpoint_test.json"), "testGroups")) {
    ASSERT_EQ(*g.find_string("curve"), "secp256r1");
    for (const auto& t : cases(g, "tests")) {
      const Bytes pub = hx(t, "public");
      const std::string& result = *t.find_string("result");
      if (pub.size() == 33 && (pub[0] == 0x02 || pub[0] == 0x03)) {
        ++skipped_compressed;  // IKE has no compressed encoding (RFC 5903 section 7)
        continue;
      }
      if (pub.size() != 65 || pub[0] != 0x04) {
        ++skipped_other;
        continue;
      }
      auto priv = fixed_len(hx(t, "private"), 32);
      ASSERT_TRUE(priv.has_value()) << "tcId " << num(t, "tcId");
      auto kx = KeyExchange::from_private(KeGroup::ecp256, *priv);
      ASSERT_TRUE(kx.ok()) << kx.error().message;
      auto s = kx->derive(std::span<const std::uint8_t>(pub).subspan(1));  // x | y
      ++run;
      if (result == "valid") {
        ASSERT_TRUE(s.ok()) << "tcId " << num(t, "tcId") << ": " << s.error().message;
        EXPECT_EQ(hex(s->bytes()), *t.find_string("shared")) << "tcId " << num(t, "tcId");
      } else {
        EXPECT_FALSE(s.ok()) << "tcId " << num(t, "tcId") << " (" << result << ") was accepted";
        ++rejected;
      }
    }
  }
  EXPECT_EQ(run, 346);
  EXPECT_EQ(rejected, 16);  // the InvalidCurveAttack points
  EXPECT_EQ(skipped_compressed, 8);
  EXPECT_EQ(skipped_other, 1);  // the empty encoding
}

// P-384 vectors carry the peer's key as DER SubjectPublicKeyInfo. The cases
// whose encoding is exactly the standard named-curve header followed by an
// uncompressed point are run (the point becomes IKE's x | y); other
// encodings (ASN.1 variants, compressed points, other curves) and the
// "acceptable" cases are skipped and counted.
TEST(KeyExchange, WycheproofP384) {
  const std::string kHeader = "3076301006072a8648ce3d020106052b8104002203620004";
  int run = 0, rejected = 0, skipped_encoding = 0, skipped_acceptable = 0;
  for (const auto& g : cases(load("wycheproof/ecdh_secp384r1_test.json"), "testGroups")) {
    ASSERT_EQ(*g.find_string("curve"), "secp384r1");
    for (const auto& t : cases(g, "tests")) {
      const std::string& pub_hex = *t.find_string("public");
      const std::string& result = *t.find_string("result");
      if (pub_hex.size() != kHeader.size() + 192 || pub_hex.compare(0, kHeader.size(), kHeader) != 0) {
        ++skipped_encoding;
        continue;
      }
      if (result == "acceptable") {
        ++skipped_acceptable;
        continue;
      }
      auto priv = fixed_len(hx(t, "private"), 48);
      ASSERT_TRUE(priv.has_value()) << "tcId " << num(t, "tcId");
      auto kx = KeyExchange::from_private(KeGroup::ecp384, *priv);
      ASSERT_TRUE(kx.ok()) << kx.error().message;
      auto s = kx->derive(unhex(std::string_view(pub_hex).substr(kHeader.size())));
      ++run;
      if (result == "valid") {
        ASSERT_TRUE(s.ok()) << "tcId " << num(t, "tcId") << ": " << s.error().message;
        EXPECT_EQ(hex(s->bytes()), *t.find_string("shared")) << "tcId " << num(t, "tcId");
      } else {
        EXPECT_FALSE(s.ok()) << "tcId " << num(t, "tcId") << " was accepted";
        ++rejected;
      }
    }
  }
  EXPECT_EQ(run, 789);
  EXPECT_EQ(rejected, 18);  // 16 invalid-curve points, one off-curve, (0, 0)
  EXPECT_EQ(skipped_acceptable, 1);
  EXPECT_EQ(skipped_encoding, 257);
}

TEST(KeyExchange, Rfc7748X25519) {
  // RFC 7748 section 6.1.
  const Bytes a_priv = unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const Bytes b_priv = unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  auto a = KeyExchange::from_private(KeGroup::curve25519, a_priv);
  auto b = KeyExchange::from_private(KeGroup::curve25519, b_priv);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(hex(a->public_value()), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  EXPECT_EQ(hex(b->public_value()), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  auto s1 = a->derive(b->public_value());
  auto s2 = b->derive(a->public_value());
  ASSERT_TRUE(s1.ok() && s2.ok());
  EXPECT_EQ(hex(s1->bytes()), "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  EXPECT_EQ(hex(s2->bytes()), "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  // RFC 7748 section 5.2, first scalar multiplication vector.
  auto c = KeyExchange::from_private(KeGroup::curve25519,
                                     unhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"));
  ASSERT_TRUE(c.ok());
  auto s3 = c->derive(unhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"));
  ASSERT_TRUE(s3.ok());
  EXPECT_EQ(hex(s3->bytes()), "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
  // Refusals: the wrong length, and low-order points (here u = 0 and u = 1).
  auto bad_len = a->derive(Bytes(31, 9));
  ASSERT_FALSE(bad_len.ok());
  EXPECT_NE(bad_len.error().message.find("expected 32"), std::string::npos);
  Bytes u1(32, 0);
  u1[0] = 1;
  for (const Bytes& low : {Bytes(32, 0), u1}) {
    auto z = a->derive(low);
    ASSERT_FALSE(z.ok());
    EXPECT_NE(z.error().message.find("all zero"), std::string::npos) << z.error().message;
  }
}

// Every Wycheproof X25519 case: the result must match, except where the
// shared secret is zero (low-order public values), which must be refused.
TEST(KeyExchange, WycheproofX25519) {
  int run = 0, zero = 0;
  for (const auto& g : cases(load("wycheproof/x25519_test.json"), "testGroups")) {
    for (const auto& t : cases(g, "tests")) {
      const Bytes shared = hx(t, "shared");
      auto kx = KeyExchange::from_private(KeGroup::curve25519, hx(t, "private"));
      ASSERT_TRUE(kx.ok()) << kx.error().message;
      auto s = kx->derive(hx(t, "public"));
      ++run;
      const bool all_zero = std::all_of(shared.begin(), shared.end(), [](std::uint8_t b) { return b == 0; });
      if (all_zero) {
        ++zero;
        ASSERT_FALSE(s.ok()) << "tcId " << num(t, "tcId") << " low-order point accepted";
        EXPECT_NE(s.error().message.find("low-order"), std::string::npos);
      } else {
        ASSERT_TRUE(s.ok()) << "tcId " << num(t, "tcId") << ": " << s.error().message;
        EXPECT_EQ(bytes_of(*s), shared) << "tcId " << num(t, "tcId") << " (" << *t.find_string("result") << ")";
      }
    }
  }
  EXPECT_EQ(run, 518);
  EXPECT_GT(zero, 20);
}

// ---------------------------------------------------------------------------
// SK payload ciphers

struct Suite {
  EncrId encr;
  std::uint16_t bits;
  IntegId integ;
};

const Suite kSuites[] = {
    {EncrId::aes_gcm_16, 128, IntegId::none},
    {EncrId::aes_gcm_16, 256, IntegId::none},
    {EncrId::chacha20_poly1305, 0, IntegId::none},
    {EncrId::aes_cbc, 128, IntegId::hmac_sha2_256_128},
    {EncrId::aes_cbc, 256, IntegId::hmac_sha2_256_128},
    {EncrId::aes_cbc, 128, IntegId::hmac_sha2_384_192},
    {EncrId::aes_cbc, 256, IntegId::hmac_sha2_384_192},
    {EncrId::aes_cbc, 256, IntegId::hmac_sha2_512_256},
};

std::unique_ptr<SkCipher> cipher_for(const Suite& s, std::uint8_t seed = 7) {
  const Bytes ek(*encr_keymat_len(s.encr, s.bits), seed);
  const Bytes ak(integ_key_len(s.integ), static_cast<std::uint8_t>(seed + 1));
  auto c = make_sk_cipher(s.encr, s.bits, s.integ, ek, ak);
  EXPECT_TRUE(c.ok()) << c.error().message;
  return c.ok() ? std::move(*c) : nullptr;
}

struct Sealed {
  Bytes assoc, iv, text, icv;
};

Sealed seal_one(SkCipher& c, std::size_t assoc_len, std::size_t text_len) {
  Sealed m;
  m.assoc.resize(assoc_len);
  for (std::size_t i = 0; i < assoc_len; ++i) m.assoc[i] = static_cast<std::uint8_t>(i * 3 + 1);
  m.iv.resize(c.iv_len());
  m.text.resize(text_len);
  for (std::size_t i = 0; i < text_len; ++i) m.text[i] = static_cast<std::uint8_t>(i * 7 + 5);
  m.icv.resize(c.icv_len());
  auto r = c.seal(m.assoc, m.iv, m.text, m.icv);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return m;
}

TEST(SkCipher, RoundTripAndTamperEverySuite) {
  for (const auto& s : kSuites) {
    auto c = cipher_for(s);
    ASSERT_NE(c, nullptr);
    const std::size_t text_len = 3 * c->block_len() * 16;  // 48 for AEAD, 768 for CBC... a multiple of the block
    EXPECT_EQ(c->icv_len(), is_aead(s.encr) ? 16u : integ_icv_len(s.integ));
    EXPECT_EQ(c->iv_len(), is_aead(s.encr) ? 8u : 16u);
    const Sealed m = seal_one(*c, 28, text_len);
    Bytes plain(text_len);
    for (std::size_t i = 0; i < text_len; ++i) plain[i] = static_cast<std::uint8_t>(i * 7 + 5);
    EXPECT_NE(m.text, plain) << encr_name(s.encr);
    {
      Bytes t = m.text;
      ASSERT_TRUE(c->open(m.assoc, m.iv, t, m.icv)) << encr_name(s.encr);
      EXPECT_EQ(t, plain);
    }
    // A peer object with the same keys opens it too.
    {
      auto peer = cipher_for(s);
      Bytes t = m.text;
      ASSERT_TRUE(peer->open(m.assoc, m.iv, t, m.icv));
      EXPECT_EQ(t, plain);
    }
    // One flipped bit anywhere: assoc, IV, ciphertext, ICV.
    auto flip_all = [&](Bytes Sealed::*field) {
      const Bytes& f = m.*field;
      for (std::size_t i = 0; i < f.size(); ++i) {
        for (int bit : {0, 7}) {
          Sealed x = m;
          (x.*field)[i] ^= static_cast<std::uint8_t>(1u << bit);
          EXPECT_FALSE(c->open(x.assoc, x.iv, x.text, x.icv)) << encr_name(s.encr) << " byte " << i;
        }
      }
    };
    flip_all(&Sealed::assoc);
    flip_all(&Sealed::iv);
    flip_all(&Sealed::text);
    flip_all(&Sealed::icv);
    // The failures left the cipher usable: the genuine message still opens.
    {
      Bytes t = m.text;
      ASSERT_TRUE(c->open(m.assoc, m.iv, t, m.icv)) << encr_name(s.encr);
      EXPECT_EQ(t, plain);
    }
    // A different key does not open it.
    auto other = cipher_for(s, 9);
    Bytes t = m.text;
    EXPECT_FALSE(other->open(m.assoc, m.iv, t, m.icv));
    // Truncated assoc / wrong sizes.
    Bytes t2 = m.text;
    EXPECT_FALSE(c->open(std::span<const std::uint8_t>(m.assoc).first(27), m.iv, t2, m.icv));
    EXPECT_FALSE(c->open(m.assoc, std::span<const std::uint8_t>(m.iv).first(m.iv.size() - 1), t2, m.icv));
    EXPECT_FALSE(c->open(m.assoc, m.iv, t2, std::span<const std::uint8_t>(m.icv).first(m.icv.size() - 1)));
  }
}

TEST(SkCipher, IvsNeverRepeat) {
  for (const auto& s : kSuites) {
    auto c = cipher_for(s);
    ASSERT_NE(c, nullptr);
    std::set<Bytes> seen;
    for (int i = 0; i < 5000; ++i) {
      Bytes iv(c->iv_len()), text(c->block_len() * 16), icv(c->icv_len());
      ASSERT_TRUE(c->seal({}, iv, text, icv).ok());
      EXPECT_TRUE(seen.insert(iv).second) << encr_name(s.encr) << " repeated an IV at message " << i;
    }
    if (is_aead(s.encr)) {
      // The counter: 0, 1, ..., 4999, then 5000 (big-endian).
      Bytes iv(8), text(16), icv(16);
      ASSERT_TRUE(c->seal({}, iv, text, icv).ok());
      EXPECT_EQ(hex(iv), "0000000000001388");
    }
  }
}

TEST(SkCipher, AeadSealMatchesPython) {
  int n = 0;
  for (const auto& v : cases(kdf_vectors(), "sk_aead")) {
    const auto encr = static_cast<EncrId>(num(v, "encr"));
    const auto bits = static_cast<std::uint16_t>(num(v, "key_bits"));
    auto c = make_sk_cipher(static_cast<std::uint16_t>(encr), bits, 0, hx(v, "key"), {});
    ASSERT_TRUE(c.ok()) << c.error().message;
    const Bytes assoc = hx(v, "assoc"), plain = hx(v, "plaintext");
    const auto& seals = cases(v, "seals");
    ASSERT_EQ(seals.size(), 3u);
    // The first two seals use IV 0 and 1 (the counter).
    for (std::size_t k = 0; k < 2; ++k) {
      Bytes iv(8), text = plain, icv(16);
      ASSERT_TRUE((*c)->seal(assoc, iv, text, icv).ok());
      EXPECT_EQ(hex(iv), *seals[k].find_string("iv"));
      EXPECT_EQ(hex(text), *seals[k].find_string("ciphertext")) << encr_name(encr) << " seal " << k;
      EXPECT_EQ(hex(icv), *seals[k].find_string("icv")) << encr_name(encr) << " seal " << k;
    }
    // Python's packet with an arbitrary IV opens.
    for (const auto& s : seals) {
      Bytes text = hx(s, "ciphertext");
      ASSERT_TRUE((*c)->open(assoc, hx(s, "iv"), text, hx(s, "icv"))) << encr_name(encr);
      EXPECT_EQ(text, plain);
    }
    ++n;
  }
  EXPECT_EQ(n, 4);
}

TEST(SkCipher, CbcOpenMatchesPython) {
  int n = 0;
  for (const auto& v : cases(kdf_vectors(), "sk_cbc")) {
    auto c = make_sk_cipher(12, static_cast<std::uint16_t>(num(v, "key_bits")),
                            static_cast<std::uint16_t>(num(v, "integ")), hx(v, "encr_key"), hx(v, "integ_key"));
    ASSERT_TRUE(c.ok()) << c.error().message;
    Bytes text = hx(v, "ciphertext");
    const Bytes icv = hx(v, "icv");
    EXPECT_EQ(icv.size(), (*c)->icv_len());
    ASSERT_TRUE((*c)->open(hx(v, "assoc"), hx(v, "iv"), text, icv));
    EXPECT_EQ(hex(text), *v.find_string("plaintext"));
    ++n;
  }
  EXPECT_EQ(n, 3);
}

// Wycheproof AES-GCM / ChaCha20-Poly1305 through the IKE construction:
// the 12-byte nonce is split into salt (first 4, appended to the key) and
// the 8-byte IV; open() must accept exactly the valid cases.
TEST(SkCipher, WycheproofAeadOpen) {
  struct File {
    const char* name;
    EncrId encr;
  };
  struct Want {
    File f;
    int run;
    int invalid;
  };
  for (const Want w : {Want{{"wycheproof/aes_gcm_test.json", EncrId::aes_gcm_16}, 133, 54},
                       Want{{"wycheproof/chacha20_poly1305_test.json", EncrId::chacha20_poly1305}, 316, 60}}) {
    const File f = w.f;
    int run = 0, invalid = 0;
    for (const auto& g : cases(load(f.name), "testGroups")) {
      const auto ks = g.find_int("keySize").value_or(0);
      if (g.find_int("ivSize") != 96 || g.find_int("tagSize") != 128) continue;
      if (f.encr == EncrId::aes_gcm_16 && ks != 128 && ks != 256) continue;
      if (f.encr == EncrId::chacha20_poly1305 && ks != 256) continue;
      for (const auto& t : cases(g, "tests")) {
        const Bytes nonce = hx(t, "iv");
        Bytes km = hx(t, "key");
        km.insert(km.end(), nonce.begin(), nonce.begin() + 4);
        auto c = make_sk_cipher(f.encr, f.encr == EncrId::aes_gcm_16 ? static_cast<std::uint16_t>(ks) : 0,
                                IntegId::none, km, {});
        ASSERT_TRUE(c.ok()) << c.error().message;
        Bytes text = hx(t, "ct");
        const bool ok = (*c)->open(hx(t, "aad"), std::span<const std::uint8_t>(nonce).subspan(4), text, hx(t, "tag"));
        const bool valid = *t.find_string("result") == "valid";
        EXPECT_EQ(ok, valid) << f.name << " tcId " << num(t, "tcId");
        if (ok && valid) {
          EXPECT_EQ(hex(text), *t.find_string("msg")) << f.name << " tcId " << num(t, "tcId");
        }
        ++run;
        invalid += valid ? 0 : 1;
      }
    }
    EXPECT_EQ(run, w.run) << f.name;
    EXPECT_EQ(invalid, w.invalid) << f.name;
  }
}

TEST(SkCipher, FactoryRefusesBadKeysAndSuites) {
  const Bytes k36(36, 1), k32(32, 1), k20(20, 1), k16(16, 1);
  EXPECT_TRUE(make_sk_cipher(EncrId::aes_gcm_16, 256, IntegId::none, k36, {}).ok());
  EXPECT_FALSE(make_sk_cipher(EncrId::aes_gcm_16, 256, IntegId::none, k32, {}).ok());  // no salt
  EXPECT_FALSE(make_sk_cipher(EncrId::aes_gcm_16, 128, IntegId::none, k36, {}).ok());
  EXPECT_TRUE(make_sk_cipher(EncrId::aes_gcm_16, 128, IntegId::none, k20, {}).ok());
  EXPECT_FALSE(make_sk_cipher(EncrId::aes_gcm_16, 256, IntegId::hmac_sha2_256_128, k36, k32).ok());
  EXPECT_FALSE(make_sk_cipher(EncrId::aes_cbc, 128, IntegId::none, k16, {}).ok());
  EXPECT_FALSE(make_sk_cipher(EncrId::aes_cbc, 128, IntegId::hmac_sha2_256_128, k16, k16).ok());
  EXPECT_FALSE(make_sk_cipher(std::uint16_t{3}, 0, 0, k16, {}).ok());  // 3DES: not offered
  auto r = make_sk_cipher(EncrId::chacha20_poly1305, 0, IntegId::none, k32, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("36 bytes"), std::string::npos) << r.error().message;
  // CBC needs whole blocks.
  auto c = make_sk_cipher(EncrId::aes_cbc, 128, IntegId::hmac_sha2_256_128, k16, k32);
  ASSERT_TRUE(c.ok());
  Bytes iv(16), text(15), icv(16);
  EXPECT_FALSE((*c)->seal({}, iv, text, icv).ok());
}

TEST(SkCipher, PairFromIkeSaKeys) {
  for (const auto& s : kSuites) {
    IkeSaSuite suite{s.encr, s.bits, s.integ, PrfId::hmac_sha2_256};
    auto seed = skeyseed(suite.prf, Bytes(32, 1), Bytes(32, 2), Bytes(32, 3));
    ASSERT_TRUE(seed.ok());
    const Bytes spii(8, 4), spir(8, 5);
    auto keys = derive_ike_sa_keys(suite, *seed, Bytes(32, 1), Bytes(32, 2), spi8(spii), spi8(spir));
    ASSERT_TRUE(keys.ok());
    auto init = make_sk_ciphers(suite, *keys, true);
    auto resp = make_sk_ciphers(suite, *keys, false);
    ASSERT_TRUE(init.ok() && resp.ok());
    const Sealed m = seal_one(*init->out, 32, 64);
    Bytes t = m.text;
    EXPECT_TRUE(resp->in->open(m.assoc, m.iv, t, m.icv));
    t = m.text;
    EXPECT_FALSE(init->in->open(m.assoc, m.iv, t, m.icv));  // the other direction's key
  }
}

// ---------------------------------------------------------------------------
// PSK AUTH (RFC 7296 2.15)

TEST(PskAuth, MatchesPython) {
  int n = 0;
  for (const auto& v : cases(kdf_vectors(), "psk_auth")) {
    const PrfId p = prf_of(v);
    const SecretKey skp = key_of(hx(v, "sk_p"));
    const Bytes psk = hx(v, "psk"), msg = hx(v, "message"), nonce = hx(v, "nonce"), id = hx(v, "id_body");
    auto m = maced_id(p, skp, id);
    ASSERT_TRUE(m.ok()) << m.error().message;
    EXPECT_EQ(hex(*m), *v.find_string("maced_id"));
    auto so = signed_octets(p, msg, nonce, skp, id);
    ASSERT_TRUE(so.ok());
    EXPECT_EQ(*so, cat(cat(msg, nonce), *m));
    auto a = psk_auth(p, psk, msg, nonce, skp, id);
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_EQ(hex(*a), *v.find_string("auth"));
    EXPECT_TRUE(auth_equal(*a, hx(v, "auth")));
    // A wrong PSK, nonce or ID gives another AUTH.
    Bytes wrong_psk = psk;
    wrong_psk.back() ^= 0x01;
    auto w = psk_auth(p, wrong_psk, msg, nonce, skp, id);
    ASSERT_TRUE(w.ok());
    EXPECT_FALSE(auth_equal(*w, *a));
    Bytes wrong_id = id;
    wrong_id.back() ^= 0x80;
    auto wi = psk_auth(p, psk, msg, nonce, skp, wrong_id);
    ASSERT_TRUE(wi.ok());
    EXPECT_FALSE(auth_equal(*wi, *a));
    ++n;
  }
  EXPECT_EQ(n, 3);
  EXPECT_FALSE(auth_equal(Bytes(32, 1), Bytes(31, 1)));
  const SecretKey skp = key_of(Bytes(32, 1));
  EXPECT_FALSE(psk_auth(PrfId::hmac_sha2_256, {}, Bytes(10, 1), Bytes(16, 1), skp, Bytes(8, 1)).ok());
  EXPECT_FALSE(psk_auth(PrfId::hmac_sha2_384, Bytes(4, 1), Bytes(10, 1), Bytes(16, 1), skp, Bytes(8, 1)).ok());
}

// ---------------------------------------------------------------------------
// NAT detection (2.23) and cookies (2.6)

TEST(NatDetection, MatchesPython) {
  int n = 0;
  for (const auto& v : cases(kdf_vectors(), "nat")) {
    auto ip = IpAddress::parse(*v.find_string("ip"));
    ASSERT_TRUE(ip.ok());
    const Bytes si = hx(v, "spi_i"), sr = hx(v, "spi_r");
    auto h = nat_detection_hash(spi8(si), spi8(sr), *ip, static_cast<std::uint16_t>(num(v, "port")));
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(hex(*h), *v.find_string("hash")) << *v.find_string("ip");
    auto other_port = nat_detection_hash(spi8(si), spi8(sr), *ip, static_cast<std::uint16_t>(num(v, "port") + 1));
    ASSERT_TRUE(other_port.ok());
    EXPECT_NE(*other_port, *h);
    ++n;
  }
  EXPECT_EQ(n, 4);
  const Bytes z(8, 0);
  EXPECT_FALSE(nat_detection_hash(spi8(z), spi8(z), IpAddress{}, 500).ok());
}

TEST(Cookie, MatchesPythonAndRotates) {
  int n = 0;
  for (const auto& v : cases(kdf_vectors(), "cookie")) {
    auto ip = IpAddress::parse(*v.find_string("ip"));
    ASSERT_TRUE(ip.ok());
    const Bytes ni = hx(v, "ni"), spi = hx(v, "spi_i");
    auto jar = CookieSecrets::from_secret(static_cast<std::uint32_t>(num(v, "version")), hx(v, "secret"));
    ASSERT_TRUE(jar.ok());
    auto c = jar->make(ni, *ip, spi8(spi));
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(hex(*c), *v.find_string("cookie"));
    EXPECT_TRUE(jar->verify(*c, ni, *ip, spi8(spi)));
    // Another nonce, SPI or address does not verify; neither does a flipped bit.
    Bytes ni2 = ni;
    ni2[0] ^= 1;
    EXPECT_FALSE(jar->verify(*c, ni2, *ip, spi8(spi)));
    Bytes spi2 = spi;
    spi2[7] ^= 1;
    EXPECT_FALSE(jar->verify(*c, ni, *ip, spi8(spi2)));
    auto ip2 = IpAddress::parse(ip->family == Family::ipv4 ? "192.0.2.45" : "2001:db8::45");
    ASSERT_TRUE(ip2.ok());
    EXPECT_FALSE(jar->verify(*c, ni, *ip2, spi8(spi)));
    for (std::size_t i = 0; i < c->size(); ++i) {
      Bytes bad = *c;
      bad[i] ^= 0x10;
      EXPECT_FALSE(jar->verify(bad, ni, *ip, spi8(spi))) << "byte " << i;
    }
    // After one rotation the cookie still verifies (previous secret); a new
    // one carries the new version; after a second rotation the first is dead.
    ASSERT_TRUE(jar->rotate().ok());
    EXPECT_TRUE(jar->verify(*c, ni, *ip, spi8(spi)));
    auto c2 = jar->make(ni, *ip, spi8(spi));
    ASSERT_TRUE(c2.ok());
    EXPECT_NE(*c2, *c);
    EXPECT_TRUE(jar->verify(*c2, ni, *ip, spi8(spi)));
    ASSERT_TRUE(jar->rotate().ok());
    EXPECT_FALSE(jar->verify(*c, ni, *ip, spi8(spi)));
    EXPECT_TRUE(jar->verify(*c2, ni, *ip, spi8(spi)));
    ++n;
  }
  EXPECT_EQ(n, 2);
  auto fresh = CookieSecrets::create();
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->current_version(), 1u);
  EXPECT_FALSE(CookieSecrets::from_secret(1, Bytes(16, 1)).ok());
}

}  // namespace
}  // namespace cygnet::ike
