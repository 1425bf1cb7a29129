// Known-answer tests of the ESP crypto layer (dp/esp/crypto.h) against
// Project Wycheproof (C2SP/wycheproof testvectors_v1, tests/vectors/README.md):
// AES-GCM and ChaCha20-Poly1305 groups with ESP parameters (RFC 4106, 7634)
// through oneshot::aead_seal/aead_open, HMAC-SHA1/256/384/512 groups with
// ESP key lengths (RFC 2404, 4868) through oneshot::hmac.
#include "dp/esp/crypto.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dp/crypto/imb_mgr.h"
#include "shared/sa.h"
#include "shared/secret.h"
#include "shared/json.h"

#ifndef CYGNET_VECTOR_DIR
#error "CYGNET_VECTOR_DIR must be the absolute path of tests/vectors/wycheproof, as a string literal"
#endif

namespace cygnet::dp::esp {
namespace {

using Bytes = std::vector<std::uint8_t>;
using cygnet::json::JsonValue;

std::optional<Bytes> from_hex(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Bytes out(s.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(s[2 * i]);
    const int lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::string to_hex(std::span<const std::uint8_t> b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (std::uint8_t x : b) {
    s.push_back(kDigits[x >> 4]);
    s.push_back(kDigits[x & 0xf]);
  }
  return s;
}

std::string errno_text(IMB_MGR* mgr) {
  const int e = imb_get_errno(mgr);
  return "imb_get_errno = " + std::to_string(e) + " (" + imb_get_strerror(e) + ")";
}

// Keys are expanded on one manager and jobs run on another (same code path,
// so the expanded keys are interchangeable). CryptoKeys::init() reads the
// manager's errno, which a refused job leaves set (see
// EspCryptoKeys.InitAfterRefusedJob); keeping jobs off the key manager
// stops a refused tag length or empty message from failing every later
// init, so each vector's own result is what is reported.
struct Managers {
  IMB_MGR* keys;
  IMB_MGR* jobs;
};

// A Wycheproof file, parsed and checked: algorithm name, test count.
struct VectorFile {
  std::string name;
  JsonValue doc;
  const JsonValue::Array* groups = nullptr;
};

void load_vectors(const char* file, std::string_view algorithm, VectorFile& out) {
  out.name = file;
  const std::string path = std::string(CYGNET_VECTOR_DIR) + "/" + file;
  auto parsed = cygnet::json::parse_json_file(path);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  out.doc = std::move(parsed.value());
  const std::string* alg = out.doc.find_string("algorithm");
  ASSERT_NE(alg, nullptr) << path << ": no \"algorithm\"";
  ASSERT_EQ(*alg, algorithm) << path;
  out.groups = out.doc.find_array("testGroups");
  ASSERT_NE(out.groups, nullptr) << path << ": no \"testGroups\" array";
  const auto declared = out.doc.find_int("numberOfTests");
  ASSERT_TRUE(declared.has_value()) << path << ": no \"numberOfTests\"";
  std::int64_t listed = 0;
  for (const JsonValue& g : *out.groups) {
    const auto* tests = g.find_array("tests");
    ASSERT_NE(tests, nullptr) << path << ": a group without \"tests\"";
    listed += static_cast<std::int64_t>(tests->size());
  }
  ASSERT_EQ(listed, *declared) << path << ": numberOfTests does not match the tests listed";
}

enum class Expect { valid, invalid };

// The fields every test case has; hex fields are decoded by the caller.
struct CaseHeader {
  std::int64_t tc_id = -1;
  Expect expect = Expect::invalid;
};

bool read_header(const VectorFile& vf, const JsonValue& tc, CaseHeader& h) {
  const auto id = tc.find_int("tcId");
  const std::string* result = tc.find_string("result");
  if (!id || result == nullptr) {
    ADD_FAILURE() << vf.name << ": test case without tcId or result";
    return false;
  }
  h.tc_id = *id;
  if (*result == "valid" || *result == "acceptable") {
    h.expect = Expect::valid;
  } else if (*result == "invalid") {
    h.expect = Expect::invalid;
  } else {
    ADD_FAILURE() << vf.name << " tcId " << h.tc_id << ": unknown result \"" << *result << "\"";
    return false;
  }
  return true;
}

bool hex_field(const VectorFile& vf, const CaseHeader& h, const JsonValue& tc, const char* key, Bytes& out) {
  const std::string* s = tc.find_string(key);
  if (s == nullptr) {
    ADD_FAILURE() << vf.name << " tcId " << h.tc_id << ": no string field \"" << key << "\"";
    return false;
  }
  auto b = from_hex(*s);
  if (!b) {
    ADD_FAILURE() << vf.name << " tcId " << h.tc_id << ": field \"" << key << "\" is not hex";
    return false;
  }
  out = std::move(*b);
  return true;
}

SaConfig base_sa() {
  SaConfig sa;
  sa.spi = 0x1000;
  sa.dir = Direction::out;
  sa.src = IpAddress::v4(0xc0000201);  // 192.0.2.1
  sa.dst = IpAddress::v4(0xc0000202);  // 192.0.2.2
  sa.mode = Mode::tunnel;
  return sa;
}

// ---------------------------------------------------------------------------
// AEAD

struct AeadVariant {
  std::int64_t key_bits;
  CipherAlg cipher;
  const char* label;
};

struct AeadCounts {
  int valid = 0;
  int invalid = 0;
};

struct AeadReport {
  std::map<std::string, AeadCounts> by_variant;
  int skipped = 0;  // cases in groups without ESP parameters
  int total() const {
    int n = 0;
    for (const auto& [label, c] : by_variant) n += c.valid + c.invalid;
    return n;
  }
};

// The 4 salt bytes RFC 4106 / 7634 append to the key. oneshot:: takes the
// whole 12-byte nonce, so their value must not matter.
constexpr std::uint8_t kSalt[4] = {0xde, 0xad, 0xbe, 0xef};

void run_aead_case(const Managers& m, const VectorFile& vf, const AeadVariant& var, const JsonValue& tc,
                   AeadReport& report) {
  CaseHeader h;
  if (!read_header(vf, tc, h)) return;
  SCOPED_TRACE(vf.name + " tcId " + std::to_string(h.tc_id) + " (" + var.label + ")");
  Bytes key, iv, aad, msg, ct, tag;
  if (!hex_field(vf, h, tc, "key", key) || !hex_field(vf, h, tc, "iv", iv) || !hex_field(vf, h, tc, "aad", aad) ||
      !hex_field(vf, h, tc, "msg", msg) || !hex_field(vf, h, tc, "ct", ct) || !hex_field(vf, h, tc, "tag", tag)) {
    return;
  }
  if (key.size() * 8 != static_cast<std::size_t>(var.key_bits) || iv.size() != 12) {
    ADD_FAILURE() << "key or IV size does not match the group";
    return;
  }

  SaConfig sa = base_sa();
  sa.cipher = var.cipher;
  sa.integ = IntegAlg::none;
  Bytes key_salt = key;
  key_salt.insert(key_salt.end(), std::begin(kSalt), std::end(kSalt));
  auto sk = SecretKey::from_bytes(key_salt);
  if (!sk.ok()) {
    ADD_FAILURE() << sk.error().message;
    return;
  }
  sa.cipher_key = std::move(sk.value());
  CryptoKeys keys;
  auto init = keys.init(m.keys, sa);
  if (!init.ok()) {
    ADD_FAILURE() << "CryptoKeys::init: " << init.error().message;
    return;
  }
  EXPECT_TRUE(keys.aead());
  EXPECT_EQ(keys.icv_len, 16);

  AeadCounts& counts = report.by_variant[var.label];
  if (h.expect == Expect::valid) {
    ++counts.valid;
    ASSERT_EQ(tag.size(), 16u) << "valid case with a tag that is not 128 bits";
    ASSERT_EQ(ct.size(), msg.size()) << "valid case with ct and msg of different lengths";
    Bytes ct_out(msg.size());
    Bytes tag_out(16);
    const bool sealed = oneshot::aead_seal(m.jobs, keys, iv, aad, msg, ct_out.data(), tag_out.data());
    EXPECT_TRUE(sealed) << "aead_seal failed: " << errno_text(m.jobs) << " (msg " << msg.size() << " bytes, aad "
                        << aad.size() << " bytes)";
    if (sealed) {
      EXPECT_EQ(to_hex(ct_out), to_hex(ct)) << "ciphertext differs";
      EXPECT_EQ(to_hex(tag_out), to_hex(tag)) << "tag differs";
    }
    Bytes pt_out(ct.size());
    const bool opened = oneshot::aead_open(m.jobs, keys, iv, aad, ct, tag, pt_out.data());
    EXPECT_TRUE(opened) << "aead_open rejected a valid ciphertext: " << errno_text(m.jobs) << " (ct " << ct.size()
                        << " bytes, aad " << aad.size() << " bytes)";
    if (opened) {
      EXPECT_EQ(to_hex(pt_out), to_hex(msg)) << "decrypted plaintext differs";
    }
  } else {
    // Modified tags and ciphertexts: seal cannot produce them, only open is checked.
    ++counts.invalid;
    Bytes pt_out(ct.size());
    EXPECT_FALSE(oneshot::aead_open(m.jobs, keys, iv, aad, ct, tag, pt_out.data()))
        << "aead_open accepted an invalid ciphertext/tag";
  }
}

void run_aead_file(const Managers& m, const char* file, std::string_view algorithm, std::span<const AeadVariant> variants,
                   AeadReport& report) {
  VectorFile vf;
  ASSERT_NO_FATAL_FAILURE(load_vectors(file, algorithm, vf));
  for (const JsonValue& g : *vf.groups) {
    const auto* tests = g.find_array("tests");
    const auto iv_bits = g.find_int("ivSize");
    const auto tag_bits = g.find_int("tagSize");
    const auto key_bits = g.find_int("keySize");
    ASSERT_TRUE(iv_bits && tag_bits && key_bits) << file << ": group without ivSize/tagSize/keySize";
    const AeadVariant* var = nullptr;
    if (*iv_bits == 96 && *tag_bits == 128) {
      for (const auto& v : variants) {
        if (v.key_bits == *key_bits) var = &v;
      }
    }
    if (var == nullptr) {
      report.skipped += static_cast<int>(tests->size());
      continue;
    }
    for (const JsonValue& tc : *tests) run_aead_case(m, vf, *var, tc, report);
  }
}

void print_aead_report(const char* file, std::span<const AeadVariant> variants, const AeadReport& r) {
  std::printf("[wycheproof] %s: %d cases run, %d skipped (IV, tag or key size not used by ESP)\n", file, r.total(),
              r.skipped);
  for (const auto& v : variants) {
    auto it = r.by_variant.find(v.label);
    const AeadCounts c = it == r.by_variant.end() ? AeadCounts{} : it->second;
    std::printf("[wycheproof]   %-20s %3d cases (%d valid: seal+open, %d invalid: open)\n", v.label,
                c.valid + c.invalid, c.valid, c.invalid);
  }
}

class Wycheproof : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = ImbManager::create();
    ASSERT_TRUE(k.ok()) << k.error().message;
    auto j = ImbManager::create();
    ASSERT_TRUE(j.ok()) << j.error().message;
    ASSERT_EQ(k->arch(), j->arch());
    keys_mgr_.emplace(std::move(k.value()));
    jobs_mgr_.emplace(std::move(j.value()));
  }
  Managers mgrs() const { return {keys_mgr_->get(), jobs_mgr_->get()}; }

 private:
  std::optional<ImbManager> keys_mgr_;
  std::optional<ImbManager> jobs_mgr_;
};

TEST_F(Wycheproof, AesGcmEsp) {
  static constexpr AeadVariant kVariants[] = {
      {128, CipherAlg::aes_gcm16_128, "AES-128-GCM (ESP)"},
      {256, CipherAlg::aes_gcm16_256, "AES-256-GCM (ESP)"},
  };
  AeadReport r;
  ASSERT_NO_FATAL_FAILURE(run_aead_file(mgrs(), "aes_gcm_test.json", "AES-GCM", kVariants, r));
  print_aead_report("aes_gcm_test.json", kVariants, r);
  ASSERT_GT(r.total(), 0);
  for (const auto& v : kVariants) {
    EXPECT_GT(r.by_variant[v.label].valid, 0) << v.label;
    EXPECT_GT(r.by_variant[v.label].invalid, 0) << v.label;
  }
}

TEST_F(Wycheproof, ChaCha20Poly1305Esp) {
  static constexpr AeadVariant kVariants[] = {
      {256, CipherAlg::chacha20_poly1305, "ChaCha20-Poly1305"},
  };
  AeadReport r;
  ASSERT_NO_FATAL_FAILURE(
      run_aead_file(mgrs(), "chacha20_poly1305_test.json", "CHACHA20-POLY1305", kVariants, r));
  print_aead_report("chacha20_poly1305_test.json", kVariants, r);
  ASSERT_GT(r.total(), 0);
  EXPECT_GT(r.by_variant[kVariants[0].label].valid, 0);
  EXPECT_GT(r.by_variant[kVariants[0].label].invalid, 0);
}

// ---------------------------------------------------------------------------
// HMAC

struct HmacSpec {
  const char* file;
  const char* algorithm;  // "algorithm" in the file
  IntegAlg integ;
  std::int64_t key_bits;   // ESP key length
  std::uint32_t icv_len;   // ESP truncated ICV, bytes
  std::uint32_t full_len;  // untruncated digest, bytes
};

struct TagSizeCounts {
  int valid = 0;
  int invalid = 0;
  int rejected = 0;  // cases skipped because IPsec-MB refuses this tag length
  int tests = 0;     // cases in groups of this tag size
  std::string reject_reason;
};

struct HmacReport {
  std::map<std::uint32_t, TagSizeCounts> by_tag;  // group tag length in bytes
  int cases_run = 0;        // cases with at least one check
  int valid_cases = 0;      // valid cases in groups with the ESP key length
  int esp_checked = 0;      // valid cases whose ESP-length ICV was computed and compared
  int esp_full_icv = 0;     // ... of which the expected tag covered the whole ESP ICV
  int full_checked = 0;     // valid cases whose full-length HMAC was computed and compared
  int skipped = 0;          // cases in groups with other key lengths
  int empty_refused = 0;    // cases with an empty message, which IPsec-MB refuses
  std::string empty_reason;
};

void run_hmac_case(const Managers& m, const VectorFile& vf, const HmacSpec& spec, std::uint32_t tag_len,
                   const JsonValue& tc, HmacReport& report) {
  CaseHeader h;
  if (!read_header(vf, tc, h)) return;
  SCOPED_TRACE(vf.name + " tcId " + std::to_string(h.tc_id) + " (tag " + std::to_string(tag_len * 8) + " bits)");
  Bytes key, msg, tag;
  if (!hex_field(vf, h, tc, "key", key) || !hex_field(vf, h, tc, "msg", msg) || !hex_field(vf, h, tc, "tag", tag)) {
    return;
  }
  if (key.size() * 8 != static_cast<std::size_t>(spec.key_bits)) {
    ADD_FAILURE() << "key size does not match the group";
    return;
  }
  if (h.expect == Expect::valid && tag.size() != tag_len) {
    ADD_FAILURE() << "valid case whose tag length does not match the group";
    return;
  }

  SaConfig sa = base_sa();
  sa.cipher = CipherAlg::null;
  sa.integ = spec.integ;
  auto sk = SecretKey::from_bytes(key);
  if (!sk.ok()) {
    ADD_FAILURE() << sk.error().message;
    return;
  }
  sa.integ_key = std::move(sk.value());
  CryptoKeys keys;
  auto init = keys.init(m.keys, sa);
  if (!init.ok()) {
    ADD_FAILURE() << "CryptoKeys::init: " << init.error().message;
    return;
  }
  EXPECT_EQ(keys.icv_len, spec.icv_len);

  // IPsec-MB's job API refuses HMAC over zero bytes (IMB_ERR_JOB_AUTH_LEN;
  // IMB_ERR_JOB_NULL_SRC comes first if the span has no data pointer, so an
  // empty message is passed with a valid one). ESP always authenticates at
  // least its 8-byte header, so such a case is counted apart, not failed, as
  // long as it is refused rather than answered wrongly; should a later
  // library or crypto.cc compute it, it is checked like any other.
  static const std::uint8_t kNothing = 0;
  const std::span<const std::uint8_t> input = msg.empty() ? std::span(&kNothing, 0) : std::span(msg);
  if (input.empty()) {
    Bytes probe(spec.icv_len);
    if (!oneshot::hmac(m.jobs, keys, input, probe.data(), spec.icv_len)) {
      ++report.empty_refused;
      report.empty_reason = errno_text(m.jobs);
      return;
    }
  }

  TagSizeCounts& counts = report.by_tag[tag_len];
  ++counts.tests;
  bool ran = false;

  // 1. The group's own tag length, if IPsec-MB takes it.
  Bytes out(tag_len);
  if (oneshot::hmac(m.jobs, keys, input, out.data(), tag_len)) {
    ran = true;
    if (h.expect == Expect::valid) {
      ++counts.valid;
      EXPECT_EQ(to_hex(out), to_hex(tag)) << "HMAC differs from the expected tag";
    } else {
      ++counts.invalid;
      EXPECT_NE(to_hex(out), to_hex(tag)) << "HMAC equals a tag marked invalid";
    }
  } else {
    const bool esp_or_full = tag_len == spec.icv_len || tag_len == spec.full_len;
    const int e = imb_get_errno(m.jobs);
    if (esp_or_full || e != IMB_ERR_JOB_AUTH_TAG_LEN) {
      ADD_FAILURE() << "oneshot::hmac failed for " << tag_len << "-byte tag (ESP ICV " << spec.icv_len
                    << ", full " << spec.full_len << "), msg " << msg.size() << " bytes: " << errno_text(m.jobs);
    } else {
      ++counts.rejected;
      counts.reject_reason = errno_text(m.jobs);
    }
  }

  if (h.expect != Expect::valid) {
    if (ran) ++report.cases_run;
    return;
  }
  ++report.valid_cases;

  // 2. The ESP ICV length: must work; it is a prefix of the full HMAC, as is
  // the expected tag, so they agree on their common length.
  Bytes esp(spec.icv_len);
  if (oneshot::hmac(m.jobs, keys, input, esp.data(), spec.icv_len)) {
    ran = true;
    ++report.esp_checked;
    const std::size_t n = std::min<std::size_t>(spec.icv_len, tag.size());
    if (n == spec.icv_len) ++report.esp_full_icv;
    EXPECT_EQ(to_hex(std::span(esp).first(n)), to_hex(std::span(tag).first(n)))
        << "ESP-truncated ICV (" << spec.icv_len << " bytes) differs from the expected tag's first " << n << " bytes";
  } else {
    ADD_FAILURE() << "oneshot::hmac failed for the ESP ICV length " << spec.icv_len << ", msg " << msg.size()
                  << " bytes: " << errno_text(m.jobs);
  }

  // 3. The full digest: must work; the expected tag is its prefix.
  Bytes full(spec.full_len);
  if (oneshot::hmac(m.jobs, keys, input, full.data(), spec.full_len)) {
    ran = true;
    ++report.full_checked;
    EXPECT_EQ(to_hex(std::span(full).first(tag.size())), to_hex(tag))
        << "full-length HMAC does not start with the expected tag";
  } else {
    ADD_FAILURE() << "oneshot::hmac failed for the full length " << spec.full_len << ", msg " << msg.size()
                  << " bytes: " << errno_text(m.jobs);
  }
  if (ran) ++report.cases_run;
}

void run_hmac_file(const Managers& m, const HmacSpec& spec, HmacReport& report) {
  VectorFile vf;
  ASSERT_NO_FATAL_FAILURE(load_vectors(spec.file, spec.algorithm, vf));
  for (const JsonValue& g : *vf.groups) {
    const auto* tests = g.find_array("tests");
    const auto tag_bits = g.find_int("tagSize");
    const auto key_bits = g.find_int("keySize");
    ASSERT_TRUE(tag_bits && key_bits) << spec.file << ": group without tagSize/keySize";
    ASSERT_TRUE(*tag_bits > 0 && *tag_bits % 8 == 0 && *tag_bits <= spec.full_len * 8)
        << spec.file << ": tagSize " << *tag_bits;
    if (*key_bits != spec.key_bits) {
      report.skipped += static_cast<int>(tests->size());
      continue;
    }
    const auto tag_len = static_cast<std::uint32_t>(*tag_bits / 8);
    for (const JsonValue& tc : *tests) run_hmac_case(m, vf, spec, tag_len, tc, report);
    // IPsec-MB accepts a tag length or not, whatever the case.
    const TagSizeCounts& c = report.by_tag[tag_len];
    EXPECT_TRUE(c.rejected == 0 || c.rejected == c.tests)
        << spec.file << ": tag length " << tag_len << " rejected for " << c.rejected << " of " << c.tests << " cases";
  }
}

void check_hmac(const Managers& m, const HmacSpec& spec) {
  HmacReport r;
  ASSERT_NO_FATAL_FAILURE(run_hmac_file(m, spec, r));
  std::printf("[wycheproof] %s (%s, key %lld bits): %d cases run, %d skipped (other key sizes)\n", spec.file,
              spec.algorithm, static_cast<long long>(spec.key_bits), r.cases_run, r.skipped);
  for (const auto& [len, c] : r.by_tag) {
    if (c.rejected > 0) {
      std::printf("[wycheproof]   tag %3u bits: %d cases, length refused by IPsec-MB (%s); valid ones checked "
                  "via the ESP and full lengths below\n",
                  len * 8, c.tests, c.reject_reason.c_str());
    } else {
      std::printf("[wycheproof]   tag %3u bits: %d cases (%d valid: equal, %d invalid: differ)\n", len * 8,
                  c.valid + c.invalid, c.valid, c.invalid);
    }
  }
  std::printf("[wycheproof]   ESP ICV %u bits on %d valid cases (%d compared over the whole ICV), full %u bits on "
              "%d valid cases\n",
              spec.icv_len * 8, r.esp_checked, r.esp_full_icv, spec.full_len * 8, r.full_checked);
  if (r.empty_refused > 0) {
    std::printf("[wycheproof]   %d cases with an empty message not run: IPsec-MB refuses zero-length HMAC jobs "
                "(%s)\n",
                r.empty_refused, r.empty_reason.c_str());
  }

  ASSERT_GT(r.cases_run, 0) << spec.file;
  ASSERT_GT(r.valid_cases, 0) << spec.file;
  // The ESP length must have worked for every valid case, and been compared
  // over the whole ICV at least once.
  EXPECT_EQ(r.esp_checked, r.valid_cases) << spec.file;
  EXPECT_EQ(r.full_checked, r.valid_cases) << spec.file;
  EXPECT_GT(r.esp_full_icv, 0) << spec.file;
  // The ESP and full lengths, where the file has groups for them, ran with
  // both valid and invalid cases.
  for (std::uint32_t len : {spec.icv_len, spec.full_len}) {
    auto it = r.by_tag.find(len);
    if (it == r.by_tag.end()) continue;
    EXPECT_EQ(it->second.rejected, 0) << spec.file << " tag " << len * 8 << " bits";
    EXPECT_GT(it->second.valid, 0) << spec.file << " tag " << len * 8 << " bits";
    EXPECT_GT(it->second.invalid, 0) << spec.file << " tag " << len * 8 << " bits";
  }
  EXPECT_TRUE(r.by_tag.count(spec.full_len) == 1 || r.by_tag.count(spec.icv_len) == 1)
      << spec.file << ": neither an ESP nor a full-length group";
}

TEST_F(Wycheproof, HmacSha1Esp) {
  check_hmac(mgrs(), {"hmac_sha1_test.json", "HMACSHA1", IntegAlg::hmac_sha1_96, 160, 12, 20});
}

TEST_F(Wycheproof, HmacSha256Esp) {
  check_hmac(mgrs(), {"hmac_sha256_test.json", "HMACSHA256", IntegAlg::hmac_sha256_128, 256, 16, 32});
}

TEST_F(Wycheproof, HmacSha384Esp) {
  check_hmac(mgrs(), {"hmac_sha384_test.json", "HMACSHA384", IntegAlg::hmac_sha384_192, 384, 24, 48});
}

TEST_F(Wycheproof, HmacSha512Esp) {
  check_hmac(mgrs(), {"hmac_sha512_test.json", "HMACSHA512", IntegAlg::hmac_sha512_256, 512, 32, 64});
}

// ---------------------------------------------------------------------------
// Not from Wycheproof: the manager interplay the tests above work around.

// CryptoKeys::init() must not fail because an earlier job on the same manager
// was refused: IPsec-MB's key expansion functions do not take the manager,
// so they neither set nor clear its errno, and a refused job (a malformed
// packet, a bad tag length) leaves it set until the next job succeeds.
TEST(EspCryptoKeys, InitAfterRefusedJob) {
  auto owner = ImbManager::create();
  ASSERT_TRUE(owner.ok()) << owner.error().message;
  IMB_MGR* mgr = owner->get();

  // RFC 2202 section 3, test case 1.
  SaConfig hmac_sa = base_sa();
  hmac_sa.cipher = CipherAlg::null;
  hmac_sa.integ = IntegAlg::hmac_sha1_96;
  const Bytes hmac_key(20, 0x0b);
  hmac_sa.integ_key = std::move(SecretKey::from_bytes(hmac_key).value());
  const std::string_view text = "Hi There";
  const std::span msg(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());

  SaConfig gcm_sa = base_sa();
  gcm_sa.cipher = CipherAlg::aes_gcm16_128;
  gcm_sa.integ = IntegAlg::none;
  gcm_sa.cipher_key = std::move(SecretKey::from_bytes(Bytes(20, 0x42)).value());

  CryptoKeys keys;
  ASSERT_TRUE(keys.init(mgr, hmac_sa).ok());
  Bytes tag(20);
  ASSERT_TRUE(oneshot::hmac(mgr, keys, msg, tag.data(), 20)) << errno_text(mgr);
  EXPECT_EQ(to_hex(tag), "b617318655057264e28bc0b6fb378c8ef146be00");

  for (const SaConfig* sa : {&hmac_sa, &gcm_sa}) {
    SCOPED_TRACE(sa->cipher == CipherAlg::null ? "null + hmac-sha1-96 SA" : "aes-gcm16-128 SA");
    // A job IPsec-MB refuses: HMAC-SHA1 takes 12- or 20-byte tags only.
    ASSERT_FALSE(oneshot::hmac(mgr, keys, msg, tag.data(), 10));
    ASSERT_EQ(imb_get_errno(mgr), IMB_ERR_JOB_AUTH_TAG_LEN);
    CryptoKeys again;
    auto r = again.init(mgr, *sa);
    EXPECT_TRUE(r.ok()) << "CryptoKeys::init failed after a refused job on the same manager: "
                        << (r.ok() ? "" : r.error().message);
  }

  // The manager itself is fine.
  ASSERT_TRUE(oneshot::hmac(mgr, keys, msg, tag.data(), 12)) << errno_text(mgr);
  EXPECT_EQ(to_hex(std::span(tag).first(12)), "b617318655057264e28bc0b6");
}

}  // namespace
}  // namespace cygnet::dp::esp
