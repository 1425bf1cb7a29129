// Stateless IKE_SA_INIT cookies (RFC 7296 section 2.6):
//   Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>)
// VersionIDofSecret is 4 octets (big-endian), Hash is SHA-256, the secret is
// 32 random octets. The responder keeps only the current and the previous
// secret: a cookie made under either verifies, so rotating does not break
// an exchange in flight; an older one is refused and the initiator gets a
// fresh cookie. Cookies are 36 octets (the limit is 64, section 3.10.1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "shared/ip.h"
#include "shared/result.h"
#include "shared/secret.h"

namespace cygnet::ike {

class CookieSecrets {
 public:
  static constexpr std::size_t kSecretLen = 32;
  static constexpr std::size_t kCookieLen = 4 + 32;

  // A random first secret, version 1 (RAND_bytes).
  static Result<CookieSecrets> create();
  // A known secret (tests, or a secret shared by a cluster).
  static Result<CookieSecrets> from_secret(std::uint32_t version, std::span<const std::uint8_t> secret);

  // The current secret becomes the previous one (the older one is wiped) and a
  // new random secret, version+1, is current. Call it periodically.
  Result<void> rotate();
  Result<void> rotate_to(std::span<const std::uint8_t> secret);

  std::uint32_t current_version() const noexcept { return current_version_; }

  // The cookie for this initiator's IKE_SA_INIT (Ni data, source address, SPIi).
  Result<std::vector<std::uint8_t>> make(std::span<const std::uint8_t> ni, const IpAddress& ip_i,
                                         std::span<const std::uint8_t, 8> spi_i) const;
  // True if the cookie was made for these values under the current or the
  // previous secret. Constant-time in the hash comparison.
  bool verify(std::span<const std::uint8_t> cookie, std::span<const std::uint8_t> ni, const IpAddress& ip_i,
              std::span<const std::uint8_t, 8> spi_i) const;

 private:
  CookieSecrets() = default;
  bool compute(std::uint32_t version, const SecretKey& secret, std::span<const std::uint8_t> ni, const IpAddress& ip,
               std::span<const std::uint8_t, 8> spi, std::uint8_t* out) const;

  SecretKey current_;
  SecretKey previous_;
  std::uint32_t current_version_ = 0;
  bool have_previous_ = false;
};

}  // namespace cygnet::ike
