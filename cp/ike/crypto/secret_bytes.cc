#include "cp/ike/crypto/secret_bytes.h"

#include <openssl/crypto.h>

#include <cstring>
#include <ostream>

namespace cygnet::ike {

SecretBytes::SecretBytes(std::size_t n) : buf_(n != 0 ? std::make_unique<std::uint8_t[]>(n) : nullptr), len_(n) {}

SecretBytes SecretBytes::copy_of(std::span<const std::uint8_t> b) {
  SecretBytes s(b.size());
  if (!b.empty()) std::memcpy(s.buf_.get(), b.data(), b.size());
  return s;
}

void SecretBytes::wipe() noexcept {
  if (buf_ && len_ != 0) OPENSSL_cleanse(buf_.get(), len_);
}

void SecretBytes::reset() noexcept {
  wipe();
  buf_.reset();
  len_ = 0;
}

bool SecretBytes::equals(std::span<const std::uint8_t> o) const noexcept { return ct_equal(bytes(), o); }

bool ct_equal(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::ostream& operator<<(std::ostream& os, const SecretBytes& s) { return os << "<secret " << s.size() << " bytes>"; }

}  // namespace cygnet::ike
