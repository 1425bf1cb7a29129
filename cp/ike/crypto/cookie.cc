#include "cp/ike/crypto/cookie.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <string>

#include "cp/ike/crypto/ossl.h"

namespace cygnet::ike {

namespace {

Result<SecretKey> random_secret() {
  std::array<std::uint8_t, CookieSecrets::kSecretLen> b{};
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
    ERR_clear_error();
    return make_error("cookie secret: RAND_bytes failed");
  }
  auto k = SecretKey::from_bytes(b);
  OPENSSL_cleanse(b.data(), b.size());
  return k;
}

std::size_t addr_len(const IpAddress& ip) noexcept {
  return ip.family == Family::ipv4 ? 4 : ip.family == Family::ipv6 ? 16 : 0;
}

}  // namespace

Result<CookieSecrets> CookieSecrets::create() {
  auto s = random_secret();
  if (!s) return s.error();
  CookieSecrets c;
  c.current_ = std::move(*s);
  c.current_version_ = 1;
  return c;
}

Result<CookieSecrets> CookieSecrets::from_secret(std::uint32_t version, std::span<const std::uint8_t> secret) {
  if (secret.size() != kSecretLen) {
    return make_error("cookie secret must be " + std::to_string(kSecretLen) + " bytes, got " +
                      std::to_string(secret.size()));
  }
  auto s = SecretKey::from_bytes(secret);
  if (!s) return s.error();
  CookieSecrets c;
  c.current_ = std::move(*s);
  c.current_version_ = version;
  return c;
}

Result<void> CookieSecrets::rotate() {
  auto s = random_secret();
  if (!s) return s.error();
  return rotate_to(s->bytes());
}

Result<void> CookieSecrets::rotate_to(std::span<const std::uint8_t> secret) {
  if (secret.size() != kSecretLen) return make_error("cookie secret must be 32 bytes");
  auto s = SecretKey::from_bytes(secret);
  if (!s) return s.error();
  previous_ = std::move(current_);  // the move assignment wipes the older previous_
  current_ = std::move(*s);
  have_previous_ = true;
  ++current_version_;
  return {};
}

bool CookieSecrets::compute(std::uint32_t version, const SecretKey& secret, std::span<const std::uint8_t> ni,
                            const IpAddress& ip, std::span<const std::uint8_t, 8> spi, std::uint8_t* out) const {
  const std::size_t alen = addr_len(ip);
  if (alen == 0 || ni.empty()) return false;
  out[0] = static_cast<std::uint8_t>(version >> 24);
  out[1] = static_cast<std::uint8_t>(version >> 16);
  out[2] = static_cast<std::uint8_t>(version >> 8);
  out[3] = static_cast<std::uint8_t>(version);
  detail::Ossl<EVP_MD_CTX> ctx(EVP_MD_CTX_new());  // freed with its state cleared
  unsigned int len = 0;
  const bool ok = ctx && EVP_DigestInit_ex2(ctx.get(), EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx.get(), ni.data(), ni.size()) == 1 &&
                  EVP_DigestUpdate(ctx.get(), ip.bytes.data(), alen) == 1 &&
                  EVP_DigestUpdate(ctx.get(), spi.data(), spi.size()) == 1 &&
                  EVP_DigestUpdate(ctx.get(), secret.data(), secret.size()) == 1 &&
                  EVP_DigestFinal_ex(ctx.get(), out + 4, &len) == 1 && len == 32;
  if (!ok) ERR_clear_error();
  return ok;
}

Result<std::vector<std::uint8_t>> CookieSecrets::make(std::span<const std::uint8_t> ni, const IpAddress& ip_i,
                                                      std::span<const std::uint8_t, 8> spi_i) const {
  if (addr_len(ip_i) == 0) return make_error("cookie: the address has no family");
  if (ni.empty()) return make_error("cookie: empty nonce");
  std::vector<std::uint8_t> out(kCookieLen);
  if (!compute(current_version_, current_, ni, ip_i, spi_i, out.data())) return make_error("cookie: SHA-256 failed");
  return out;
}

bool CookieSecrets::verify(std::span<const std::uint8_t> cookie, std::span<const std::uint8_t> ni,
                           const IpAddress& ip_i, std::span<const std::uint8_t, 8> spi_i) const {
  if (cookie.size() != kCookieLen) return false;
  const std::uint32_t v = static_cast<std::uint32_t>(cookie[0]) << 24 | static_cast<std::uint32_t>(cookie[1]) << 16 |
                          static_cast<std::uint32_t>(cookie[2]) << 8 | cookie[3];
  const SecretKey* secret = nullptr;
  if (v == current_version_) {
    secret = &current_;
  } else if (have_previous_ && v == current_version_ - 1) {
    secret = &previous_;
  } else {
    return false;
  }
  std::array<std::uint8_t, kCookieLen> want{};
  if (!compute(v, *secret, ni, ip_i, spi_i, want.data())) return false;
  return CRYPTO_memcmp(want.data(), cookie.data(), kCookieLen) == 0;
}

}  // namespace cygnet::ike
