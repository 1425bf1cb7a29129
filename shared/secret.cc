#include "shared/secret.h"

#include <cstring>
#include <ostream>
#include <string>

namespace cygnet {

void secure_zero(void* p, std::size_t n) noexcept {
  // explicit_bzero (glibc >= 2.25) is documented not to be optimised away.
  ::explicit_bzero(p, n);
}

void SecretKey::assign(std::span<const std::uint8_t> b) noexcept {
  secure_zero(buf_.data(), buf_.size());
  len_ = b.size() <= kCapacity ? b.size() : kCapacity;
  if (len_ != 0) std::memcpy(buf_.data(), b.data(), len_);
}

Result<SecretKey> SecretKey::from_bytes(std::span<const std::uint8_t> b) {
  if (b.size() > kCapacity) {
    return make_error("key is " + std::to_string(b.size()) + " bytes, at most " +
                      std::to_string(kCapacity) + " are supported");
  }
  SecretKey k;
  k.assign(b);
  return k;
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

Result<SecretKey> SecretKey::from_hex(std::string_view hex) {
  if (hex.size() >= 2 && hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X')) hex.remove_prefix(2);
  SecretKey k;
  int hi = -1;
  std::size_t pos = 0;
  for (char c : hex) {
    ++pos;
    if (c == ':' && hi < 0) continue;
    int v = hex_value(c);
    if (v < 0) {
      k.wipe();
      return make_error("key: character " + std::to_string(pos) +
                        " is not a hex digit (expected 0-9a-f, optional 0x prefix and ':' between bytes)");
    }
    if (hi < 0) {
      hi = v;
      continue;
    }
    if (k.len_ == kCapacity) {
      k.wipe();
      return make_error("key is longer than " + std::to_string(kCapacity) + " bytes");
    }
    k.buf_[k.len_++] = static_cast<std::uint8_t>((hi << 4) | v);
    hi = -1;
  }
  if (hi >= 0) {
    k.wipe();
    return make_error("key has an odd number of hex digits");
  }
  if (k.len_ == 0) return make_error("key is empty");
  return k;
}

bool SecretKey::equals(const SecretKey& o) const noexcept {
  if (len_ != o.len_) return false;
  std::uint8_t acc = 0;
  for (std::size_t i = 0; i < len_; ++i) acc |= static_cast<std::uint8_t>(buf_[i] ^ o.buf_[i]);
  return acc == 0;
}

std::ostream& operator<<(std::ostream& os, const SecretKey& k) {
  return os << "<key " << k.size() << " bytes>";
}

}  // namespace cygnet
