// SkCipher stand-ins for the codec's tests, fuzzer and tool. NOT crypto:
// the real ciphers are in cp/ike/crypto.
//
//   XorCipher:  "encrypts" by XOR with a byte stream from the IV, ICV is an
//               FNV-1a over assoc | iv | ciphertext. Tampering is detected
//               (well enough for tests), a wrong key fails.
//   NullCipher: open() always succeeds and leaves the text as it is, so the
//               fuzzer reaches the padding check and the inner decoder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "cp/ike/sk_cipher.h"

namespace cygnet::ike::testing {

class XorCipher final : public SkCipher {
 public:
  XorCipher(std::uint8_t key = 0x5a, std::size_t iv = 8, std::size_t icv = 12, std::size_t block = 16)
      : key_(key), iv_(iv), icv_(icv), block_(block) {}
  std::size_t iv_len() const noexcept override { return iv_; }
  std::size_t icv_len() const noexcept override { return icv_; }
  std::size_t block_len() const noexcept override { return block_; }

  Result<void> seal(std::span<const std::uint8_t> assoc, std::span<std::uint8_t> iv, std::span<std::uint8_t> text,
                    std::span<std::uint8_t> icv) override {
    for (std::size_t i = 0; i < iv.size(); ++i) iv[i] = static_cast<std::uint8_t>(counter_ + i * 7);
    ++counter_;
    crypt(iv, text);
    mac(assoc, iv, text, icv);
    return {};
  }
  bool open(std::span<const std::uint8_t> assoc, std::span<const std::uint8_t> iv, std::span<std::uint8_t> text,
            std::span<const std::uint8_t> icv) override {
    std::uint8_t want[64] = {};
    if (icv.size() > sizeof want) return false;
    mac(assoc, iv, text, std::span<std::uint8_t>(want, icv.size()));
    std::uint8_t diff = 0;
    for (std::size_t i = 0; i < icv.size(); ++i) diff |= static_cast<std::uint8_t>(want[i] ^ icv[i]);
    if (diff != 0) return false;
    crypt(iv, text);
    return true;
  }

 private:
  void crypt(std::span<const std::uint8_t> iv, std::span<std::uint8_t> text) const {
    std::uint8_t s = key_;
    for (auto b : iv) s = static_cast<std::uint8_t>(s * 31 + b);
    for (auto& b : text) {
      s = static_cast<std::uint8_t>(s * 167 + 13);
      b ^= s;
    }
  }
  void mac(std::span<const std::uint8_t> assoc, std::span<const std::uint8_t> iv, std::span<const std::uint8_t> text,
           std::span<std::uint8_t> out) const {
    std::uint64_t h = 1469598103934665603ull ^ key_;
    auto eat = [&h](std::span<const std::uint8_t> s) {
      for (auto b : s) h = (h ^ b) * 1099511628211ull;
    };
    eat(assoc);
    eat(iv);
    eat(text);
    for (std::size_t i = 0; i < out.size(); ++i) {
      h = (h ^ i) * 1099511628211ull;
      out[i] = static_cast<std::uint8_t>(h >> 56);
    }
  }
  std::uint8_t key_;
  std::size_t iv_, icv_, block_;
  std::uint8_t counter_ = 1;
};

class NullCipher final : public SkCipher {
 public:
  NullCipher(std::size_t iv = 8, std::size_t icv = 16, std::size_t block = 16) : iv_(iv), icv_(icv), block_(block) {}
  std::size_t iv_len() const noexcept override { return iv_; }
  std::size_t icv_len() const noexcept override { return icv_; }
  std::size_t block_len() const noexcept override { return block_; }
  Result<void> seal(std::span<const std::uint8_t>, std::span<std::uint8_t> iv, std::span<std::uint8_t>,
                    std::span<std::uint8_t> icv) override {
    for (auto& b : iv) b = 0x11;
    for (auto& b : icv) b = 0x22;
    return {};
  }
  bool open(std::span<const std::uint8_t>, std::span<const std::uint8_t>, std::span<std::uint8_t>,
            std::span<const std::uint8_t>) override {
    return true;
  }

 private:
  std::size_t iv_, icv_, block_;
};

}  // namespace cygnet::ike::testing
