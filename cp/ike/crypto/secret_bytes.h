// SecretBytes: a heap buffer of key material of any length, wiped when it is
// dropped. shared/secret.h's SecretKey holds at most 64 bytes; the IKE crypto
// also needs longer secrets (a MODP-2048 shared secret is 256 bytes, a P-521
// one 66, a PSK or a prf+ stream has no fixed bound), so they live here.
//
// The buffer is allocated once with its final size and never reallocated, so
// no stale copy is left behind; it is overwritten (OPENSSL_cleanse) before it
// is freed. Moving hands the same allocation over (nothing is copied) and
// leaves the source empty. Copies are explicit (clone()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <span>

namespace cygnet::ike {

class SecretBytes {
 public:
  SecretBytes() noexcept = default;
  // n zero bytes.
  explicit SecretBytes(std::size_t n);
  static SecretBytes copy_of(std::span<const std::uint8_t> b);

  ~SecretBytes() { reset(); }
  SecretBytes(SecretBytes&& o) noexcept : buf_(std::move(o.buf_)), len_(o.len_) { o.len_ = 0; }
  SecretBytes& operator=(SecretBytes&& o) noexcept {
    if (this != &o) {
      reset();
      buf_ = std::move(o.buf_);
      len_ = o.len_;
      o.len_ = 0;
    }
    return *this;
  }
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  SecretBytes clone() const { return copy_of(bytes()); }

  std::span<const std::uint8_t> bytes() const noexcept { return {buf_.get(), len_}; }
  std::span<std::uint8_t> mutable_bytes() noexcept { return {buf_.get(), len_}; }
  const std::uint8_t* data() const noexcept { return buf_.get(); }
  std::uint8_t* data() noexcept { return buf_.get(); }
  std::size_t size() const noexcept { return len_; }
  bool empty() const noexcept { return len_ == 0; }

  // Overwrites the contents with zeros; the size is kept.
  void wipe() noexcept;
  // Wipes, frees and leaves the holder empty.
  void reset() noexcept;

  // Constant-time comparison (the length is not secret).
  bool equals(std::span<const std::uint8_t> o) const noexcept;

 private:
  std::unique_ptr<std::uint8_t[]> buf_;
  std::size_t len_ = 0;
};

// Printing a secret never prints the secret.
std::ostream& operator<<(std::ostream& os, const SecretBytes& s);

// Constant-time equality of two byte strings of public length.
bool ct_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept;

}  // namespace cygnet::ike
