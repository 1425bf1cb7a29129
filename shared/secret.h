// Key material with zeroizing storage. Keys never live in std::string or
// std::vector (whose reallocations leave copies behind): a fixed buffer that
// is wiped on destruction, on move-from and on assignment.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <span>
#include <string_view>

#include "shared/result.h"

namespace cygnet {

// Overwrite memory in a way the compiler may not elide.
void secure_zero(void* p, std::size_t n) noexcept;

class SecretKey {
 public:
  // Largest key any supported algorithm needs: HMAC-SHA-512 (64 bytes);
  // AES-256-GCM / ChaCha20-Poly1305 need 32 + 4 bytes of salt.
  static constexpr std::size_t kCapacity = 64;

  SecretKey() noexcept = default;
  ~SecretKey() { wipe(); }
  SecretKey(const SecretKey& o) noexcept { assign(o.bytes()); }
  SecretKey(SecretKey&& o) noexcept {
    assign(o.bytes());
    o.wipe();
  }
  SecretKey& operator=(const SecretKey& o) noexcept {
    if (this != &o) assign(o.bytes());
    return *this;
  }
  SecretKey& operator=(SecretKey&& o) noexcept {
    if (this != &o) {
      assign(o.bytes());
      o.wipe();
    }
    return *this;
  }

  // Copies at most kCapacity bytes; returns an error if the input is longer.
  static Result<SecretKey> from_bytes(std::span<const std::uint8_t> b);
  // Hex with optional "0x" prefix; ':' separators allowed ("0a:1b:...").
  // The error message never contains the input.
  static Result<SecretKey> from_hex(std::string_view hex);

  std::span<const std::uint8_t> bytes() const noexcept { return {buf_.data(), len_}; }
  const std::uint8_t* data() const noexcept { return buf_.data(); }
  std::size_t size() const noexcept { return len_; }
  bool empty() const noexcept { return len_ == 0; }

  // Constant-time comparison (length is not secret).
  bool equals(const SecretKey& o) const noexcept;

  void wipe() noexcept {
    secure_zero(buf_.data(), buf_.size());
    len_ = 0;
  }

 private:
  void assign(std::span<const std::uint8_t> b) noexcept;

  std::array<std::uint8_t, kCapacity> buf_{};
  std::size_t len_ = 0;
};

// Printing a key never prints the key.
std::ostream& operator<<(std::ostream& os, const SecretKey& k);

}  // namespace cygnet
