#include "cp/ike/crypto/sk_ciphers.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "cp/ike/crypto/ossl.h"
#include "shared/secret.h"

namespace cygnet::ike {

using detail::Ossl;

namespace {

constexpr std::size_t kAeadIvLen = 8;
constexpr std::size_t kAeadIcvLen = 16;
constexpr std::size_t kAeadNonceLen = kAeadSaltLen + kAeadIvLen;
constexpr std::size_t kCbcBlock = 16;

// A cipher fetched once per thread and name (the fetch by name takes a lock
// and compares names); each caller gets its own reference.
EVP_CIPHER* fetch_cipher(const char* name) {
  thread_local std::array<std::pair<const char*, Ossl<EVP_CIPHER>>, 8> cache{};
  for (auto& [n, c] : cache) {
    if (n != nullptr && std::strcmp(n, name) == 0) return EVP_CIPHER_up_ref(c.get()) == 1 ? c.get() : nullptr;
    if (n == nullptr) {
      c.reset(EVP_CIPHER_fetch(nullptr, name, nullptr));
      if (!c) return nullptr;
      n = name;
      return EVP_CIPHER_up_ref(c.get()) == 1 ? c.get() : nullptr;
    }
  }
  return EVP_CIPHER_fetch(nullptr, name, nullptr);  // more names than slots: fetch each time
}

bool checked_len(std::size_t n) noexcept { return n <= static_cast<std::size_t>(std::numeric_limits<int>::max()); }

// AES-GCM-16 and ChaCha20-Poly1305: nonce = salt | IV (RFC 5282 section 4,
// RFC 7634 section 2), AAD = assoc (RFC 5282 section 5.1).
class AeadCipher final : public SkCipher {
 public:
  static Result<std::unique_ptr<SkCipher>> make(EncrId e, std::uint16_t key_bits, std::span<const std::uint8_t> km) {
    const char* name = e == EncrId::chacha20_poly1305 ? "ChaCha20-Poly1305"
                       : key_bits == 128              ? "AES-128-GCM"
                                                      : "AES-256-GCM";
    auto c = std::unique_ptr<AeadCipher>(new AeadCipher());
    c->cipher_.reset(fetch_cipher(name));
    c->enc_.reset(EVP_CIPHER_CTX_new());
    c->dec_.reset(EVP_CIPHER_CTX_new());
    if (!c->cipher_ || !c->enc_ || !c->dec_) {
      ERR_clear_error();
      return make_error(std::string(name) + " is not available in this OpenSSL");
    }
    const std::size_t klen = km.size() - kAeadSaltLen;
    std::memcpy(c->salt_.data(), km.data() + klen, kAeadSaltLen);
    // Both ciphers take a 12-byte nonce by default, which is salt | IV.
    if (EVP_EncryptInit_ex2(c->enc_.get(), c->cipher_.get(), km.data(), nullptr, nullptr) != 1 ||
        EVP_DecryptInit_ex2(c->dec_.get(), c->cipher_.get(), km.data(), nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_get_iv_length(c->enc_.get()) != static_cast<int>(kAeadNonceLen)) {
      ERR_clear_error();
      return make_error(std::string(name) + ": key setup failed");
    }
    return std::unique_ptr<SkCipher>(std::move(c));
  }

  ~AeadCipher() override { OPENSSL_cleanse(salt_.data(), salt_.size()); }

  std::size_t iv_len() const noexcept override { return kAeadIvLen; }
  std::size_t icv_len() const noexcept override { return kAeadIcvLen; }
  // No alignment is needed by a stream mode (RFC 5282 section 3).
  std::size_t block_len() const noexcept override { return 1; }

  Result<void> seal(std::span<const std::uint8_t> assoc, std::span<std::uint8_t> iv, std::span<std::uint8_t> text,
                    std::span<std::uint8_t> icv) override {
    if (iv.size() != kAeadIvLen || icv.size() != kAeadIcvLen) return make_error("SK seal: IV or ICV has the wrong size");
    if (!checked_len(assoc.size()) || !checked_len(text.size())) return make_error("SK seal: message too long");
    if (exhausted_) return make_error("SK seal: the 2^64 IVs of this key are used up; the IKE SA must be rekeyed");
    const std::uint64_t ctr = counter_;
    if (counter_ == std::numeric_limits<std::uint64_t>::max()) {
      exhausted_ = true;
    } else {
      ++counter_;
    }
    for (std::size_t i = 0; i < kAeadIvLen; ++i) iv[i] = static_cast<std::uint8_t>(ctr >> (8 * (kAeadIvLen - 1 - i)));
    std::array<std::uint8_t, kAeadNonceLen> nonce{};
    make_nonce(iv, nonce);
    int outl = 0;
    bool ok = EVP_EncryptInit_ex2(enc_.get(), nullptr, nullptr, nonce.data(), nullptr) == 1;
    OPENSSL_cleanse(nonce.data(), nonce.size());
    ok = ok && (assoc.empty() ||
                EVP_EncryptUpdate(enc_.get(), nullptr, &outl, assoc.data(), static_cast<int>(assoc.size())) == 1);
    ok = ok && (text.empty() ||
                EVP_EncryptUpdate(enc_.get(), text.data(), &outl, text.data(), static_cast<int>(text.size())) == 1);
    std::uint8_t tail[16];
    ok = ok && EVP_EncryptFinal_ex(enc_.get(), tail, &outl) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(enc_.get(), EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kAeadIcvLen), icv.data()) == 1;
    if (!ok) {
      ERR_clear_error();
      OPENSSL_cleanse(text.data(), text.size());
      return make_error("SK seal: AEAD encryption failed");
    }
    return {};
  }

  bool open(std::span<const std::uint8_t> assoc, std::span<const std::uint8_t> iv, std::span<std::uint8_t> text,
            std::span<const std::uint8_t> icv) override {
    if (iv.size() != kAeadIvLen || icv.size() != kAeadIcvLen) return false;
    if (!checked_len(assoc.size()) || !checked_len(text.size())) return false;
    std::array<std::uint8_t, kAeadNonceLen> nonce{};
    make_nonce(iv, nonce);
    std::array<std::uint8_t, kAeadIcvLen> tag{};
    std::memcpy(tag.data(), icv.data(), tag.size());
    int outl = 0;
    bool ok = EVP_DecryptInit_ex2(dec_.get(), nullptr, nullptr, nonce.data(), nullptr) == 1;
    OPENSSL_cleanse(nonce.data(), nonce.size());
    ok = ok && EVP_CIPHER_CTX_ctrl(dec_.get(), EVP_CTRL_AEAD_SET_TAG, static_cast<int>(tag.size()), tag.data()) == 1;
    ok = ok && (assoc.empty() ||
                EVP_DecryptUpdate(dec_.get(), nullptr, &outl, assoc.data(), static_cast<int>(assoc.size())) == 1);
    ok = ok && (text.empty() ||
                EVP_DecryptUpdate(dec_.get(), text.data(), &outl, text.data(), static_cast<int>(text.size())) == 1);
    std::uint8_t tail[16];
    // The tag comparison inside OpenSSL's final step is constant-time.
    ok = ok && EVP_DecryptFinal_ex(dec_.get(), tail, &outl) == 1;
    if (!ok) {
      ERR_clear_error();
      // Do not leave unauthenticated plaintext behind.
      if (!text.empty()) OPENSSL_cleanse(text.data(), text.size());
      return false;
    }
    return true;
  }

 private:
  AeadCipher() = default;

  void make_nonce(std::span<const std::uint8_t> iv, std::array<std::uint8_t, kAeadNonceLen>& nonce) const noexcept {
    std::memcpy(nonce.data(), salt_.data(), kAeadSaltLen);
    std::memcpy(nonce.data() + kAeadSaltLen, iv.data(), kAeadIvLen);
  }

  Ossl<EVP_CIPHER> cipher_;
  Ossl<EVP_CIPHER_CTX> enc_;
  Ossl<EVP_CIPHER_CTX> dec_;
  std::array<std::uint8_t, kAeadSaltLen> salt_{};
  std::uint64_t counter_ = 0;
  bool exhausted_ = false;
};

// AES-CBC + HMAC-SHA2-*: encrypt, then MAC over assoc | IV | ciphertext,
// truncated (RFC 7296 3.14, RFC 4868 2.1.1).
class CbcHmacCipher final : public SkCipher {
 public:
  static Result<std::unique_ptr<SkCipher>> make(std::uint16_t key_bits, IntegId integ,
                                                std::span<const std::uint8_t> ekey,
                                                std::span<const std::uint8_t> akey) {
    auto c = std::unique_ptr<CbcHmacCipher>(new CbcHmacCipher());
    c->icv_len_ = integ_icv_len(integ);
    const char* md = integ == IntegId::hmac_sha2_256_128   ? "SHA2-256"
                     : integ == IntegId::hmac_sha2_384_192 ? "SHA2-384"
                                                           : "SHA2-512";
    c->cipher_.reset(fetch_cipher(key_bits == 128 ? "AES-128-CBC" : "AES-256-CBC"));
    c->enc_.reset(EVP_CIPHER_CTX_new());
    c->dec_.reset(EVP_CIPHER_CTX_new());
    Ossl<EVP_MAC> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    if (!c->cipher_ || !c->enc_ || !c->dec_ || !mac) {
      ERR_clear_error();
      return make_error("AES-CBC or HMAC is not available in this OpenSSL");
    }
    c->mac_.reset(EVP_MAC_CTX_new(mac.get()));
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(md), 0),
        OSSL_PARAM_construct_end(),
    };
    if (!c->mac_ || EVP_MAC_init(c->mac_.get(), akey.data(), akey.size(), params) != 1 ||
        EVP_EncryptInit_ex2(c->enc_.get(), c->cipher_.get(), ekey.data(), nullptr, nullptr) != 1 ||
        EVP_DecryptInit_ex2(c->dec_.get(), c->cipher_.get(), ekey.data(), nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_set_padding(c->enc_.get(), 0) != 1 || EVP_CIPHER_CTX_set_padding(c->dec_.get(), 0) != 1) {
      ERR_clear_error();
      return make_error("AES-CBC/HMAC key setup failed");
    }
    return std::unique_ptr<SkCipher>(std::move(c));
  }

  std::size_t iv_len() const noexcept override { return kCbcBlock; }
  std::size_t icv_len() const noexcept override { return icv_len_; }
  std::size_t block_len() const noexcept override { return kCbcBlock; }

  Result<void> seal(std::span<const std::uint8_t> assoc, std::span<std::uint8_t> iv, std::span<std::uint8_t> text,
                    std::span<std::uint8_t> icv) override {
    if (iv.size() != kCbcBlock || icv.size() != icv_len_) return make_error("SK seal: IV or ICV has the wrong size");
    if (text.empty() || text.size() % kCbcBlock != 0) {
      return make_error("SK seal: AES-CBC plaintext must be a non-empty multiple of 16 bytes (padded by the codec)");
    }
    if (!checked_len(text.size())) return make_error("SK seal: message too long");
    if (RAND_bytes(iv.data(), static_cast<int>(iv.size())) != 1) {
      ERR_clear_error();
      return make_error("SK seal: no random IV (RAND_bytes failed)");
    }
    int outl = 0;
    bool ok = EVP_EncryptInit_ex2(enc_.get(), nullptr, nullptr, iv.data(), nullptr) == 1 &&
              EVP_EncryptUpdate(enc_.get(), text.data(), &outl, text.data(), static_cast<int>(text.size())) == 1 &&
              outl == static_cast<int>(text.size());
    std::uint8_t tail[kCbcBlock];
    ok = ok && EVP_EncryptFinal_ex(enc_.get(), tail, &outl) == 1 && outl == 0;
    std::array<std::uint8_t, 64> full{};
    ok = ok && mac(assoc, iv, text, full);
    if (!ok) {
      ERR_clear_error();
      OPENSSL_cleanse(text.data(), text.size());
      return make_error("SK seal: AES-CBC/HMAC failed");
    }
    std::memcpy(icv.data(), full.data(), icv_len_);
    return {};
  }

  bool open(std::span<const std::uint8_t> assoc, std::span<const std::uint8_t> iv, std::span<std::uint8_t> text,
            std::span<const std::uint8_t> icv) override {
    if (iv.size() != kCbcBlock || icv.size() != icv_len_) return false;
    if (text.empty() || text.size() % kCbcBlock != 0 || !checked_len(text.size())) return false;
    std::array<std::uint8_t, 64> full{};
    if (!mac(assoc, iv, text, full)) {
      ERR_clear_error();
      return false;
    }
    // Constant-time comparison of the truncated ICV, before any decryption.
    if (CRYPTO_memcmp(full.data(), icv.data(), icv_len_) != 0) return false;
    int outl = 0;
    bool ok = EVP_DecryptInit_ex2(dec_.get(), nullptr, nullptr, iv.data(), nullptr) == 1 &&
              EVP_DecryptUpdate(dec_.get(), text.data(), &outl, text.data(), static_cast<int>(text.size())) == 1;
    std::uint8_t tail[kCbcBlock];
    int taill = 0;
    ok = ok && EVP_DecryptFinal_ex(dec_.get(), tail, &taill) == 1 &&
         static_cast<std::size_t>(outl + taill) == text.size();
    if (!ok) {
      ERR_clear_error();
      OPENSSL_cleanse(text.data(), text.size());
      return false;
    }
    return true;
  }

 private:
  CbcHmacCipher() = default;

  bool mac(std::span<const std::uint8_t> assoc, std::span<const std::uint8_t> iv, std::span<const std::uint8_t> text,
           std::array<std::uint8_t, 64>& out) {
    Ossl<EVP_MAC_CTX> m(EVP_MAC_CTX_dup(mac_.get()));  // keyed template, reused per message
    std::size_t outl = 0;
    return m && (assoc.empty() || EVP_MAC_update(m.get(), assoc.data(), assoc.size()) == 1) &&
           EVP_MAC_update(m.get(), iv.data(), iv.size()) == 1 &&
           EVP_MAC_update(m.get(), text.data(), text.size()) == 1 &&
           EVP_MAC_final(m.get(), out.data(), &outl, out.size()) == 1 && outl >= icv_len_;
  }

  Ossl<EVP_CIPHER> cipher_;
  Ossl<EVP_CIPHER_CTX> enc_;
  Ossl<EVP_CIPHER_CTX> dec_;
  Ossl<EVP_MAC_CTX> mac_;
  std::size_t icv_len_ = 0;
};

}  // namespace

Result<std::unique_ptr<SkCipher>> make_sk_cipher(EncrId encr, std::uint16_t key_bits, IntegId integ,
                                                 std::span<const std::uint8_t> encr_key,
                                                 std::span<const std::uint8_t> integ_key) {
  if (auto c = check_suite(encr, key_bits, integ); !c) return c.error();
  const std::size_t want_e = *encr_keymat_len(encr, key_bits);
  if (encr_key.size() != want_e) {
    return make_error(std::string(encr_name(encr)) + " needs " + std::to_string(want_e) +
                      " bytes of encryption key material" + (is_aead(encr) ? " (key and 4-byte salt)" : "") + ", got " +
                      std::to_string(encr_key.size()));
  }
  if (is_aead(encr)) {
    if (!integ_key.empty()) return make_error(std::string(encr_name(encr)) + " takes no integrity key");
    return AeadCipher::make(encr, key_bits, encr_key);
  }
  if (integ_key.size() != integ_key_len(integ)) {
    return make_error(std::string(integ_name(integ)) + " needs a " + std::to_string(integ_key_len(integ)) +
                      "-byte key, got " + std::to_string(integ_key.size()));
  }
  return CbcHmacCipher::make(key_bits, integ, encr_key, integ_key);
}

Result<std::unique_ptr<SkCipher>> make_sk_cipher(std::uint16_t encr_id, std::uint16_t key_bits,
                                                 std::uint16_t integ_id, std::span<const std::uint8_t> encr_key,
                                                 std::span<const std::uint8_t> integ_key) {
  auto e = encr_from_id(encr_id, key_bits);
  if (!e) return e.error();
  auto i = integ_from_id(integ_id);
  if (!i) return i.error();
  return make_sk_cipher(*e, key_bits, *i, encr_key, integ_key);
}

Result<SkCipherPair> make_sk_ciphers(const IkeSaSuite& suite, const IkeSaKeys& keys, bool we_are_initiator) {
  const SecretKey& eo = we_are_initiator ? keys.sk_ei : keys.sk_er;
  const SecretKey& ao = we_are_initiator ? keys.sk_ai : keys.sk_ar;
  const SecretKey& ei = we_are_initiator ? keys.sk_er : keys.sk_ei;
  const SecretKey& ai = we_are_initiator ? keys.sk_ar : keys.sk_ai;
  auto out = make_sk_cipher(suite.encr, suite.encr_key_bits, suite.integ, eo.bytes(), ao.bytes());
  if (!out) return out.error();
  auto in = make_sk_cipher(suite.encr, suite.encr_key_bits, suite.integ, ei.bytes(), ai.bytes());
  if (!in) return in.error();
  return SkCipherPair{std::move(*out), std::move(*in)};
}

}  // namespace cygnet::ike
