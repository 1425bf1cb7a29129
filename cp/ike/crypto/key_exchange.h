// IKEv2 key exchange (RFC 7296 section 1.2 and appendix B; RFC 3526 MODP,
// RFC 5903 ECP, RFC 8031 Curve25519), with peer public value validation
// per RFC 6989 and RFC 7748 section 6.1. See docs/ike-crypto.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "cp/ike/crypto/secret_bytes.h"
#include "shared/result.h"

namespace cygnet::ike {

// IKEv2 Transform Type 4 (Key Exchange Method) IDs.
enum class KeGroup : std::uint16_t {
  modp2048 = 14,    // RFC 3526 section 3
  ecp256 = 19,      // RFC 5903 section 3.1
  ecp384 = 20,      // RFC 5903 section 3.2
  ecp521 = 21,      // RFC 5903 section 3.3
  curve25519 = 31,  // RFC 8031
};

// The supported groups, in order of preference (strongest-cheapest first).
std::span<const KeGroup> supported_groups() noexcept;
Result<KeGroup> group_from_id(std::uint16_t transform_id);
const char* group_name(KeGroup g) noexcept;
// Length of the Key Exchange Data in a KE payload for the group (also the
// length of the shared secret, except for ECP where it is half of it):
// 256, 64, 96, 132, 32. 0 for an ID that is not supported.
std::size_t key_exchange_length(std::uint16_t group) noexcept;
std::size_t shared_secret_length(KeGroup g) noexcept;

// The MODP-2048 prime p as embedded (256 bytes, big-endian), for the test that
// checks it against RFC 3526.
std::span<const std::uint8_t> modp2048_prime() noexcept;

// One side of one exchange: a fresh key pair whose private half never leaves
// OpenSSL (EVP_PKEY, freed with its private key cleared).
class KeyExchange {
 public:
  // Generates a key pair for the group.
  static Result<KeyExchange> create(KeGroup group);
  static Result<KeyExchange> create(std::uint16_t group_id);
  // A key pair from a known private value, for known-answer tests:
  // MODP: the exponent x (1 <= x < p-1, big-endian, any length up to 256);
  // ECP: the scalar d (big-endian, exactly the field length, 1 <= d < n);
  // X25519: the 32-byte scalar (RFC 7748 section 5).
  static Result<KeyExchange> from_private(KeGroup group, std::span<const std::uint8_t> priv);

  KeyExchange(KeyExchange&&) noexcept;
  KeyExchange& operator=(KeyExchange&&) noexcept;
  ~KeyExchange();

  KeGroup group() const noexcept { return group_; }
  // Our Key Exchange Data for the KE payload (RFC 7296 3.4): MODP: g^x mod p,
  // big-endian, zero-padded to the prime length; ECP: x | y, each zero-padded
  // to the field length, without the 0x04 prefix (RFC 5903 section 7);
  // X25519: the 32-byte u-coordinate (RFC 8031 section 2).
  const std::vector<std::uint8_t>& public_value() const noexcept { return public_; }

  // Validates the peer's Key Exchange Data (RFC 6989, RFC 7748 6.1) and
  // computes the shared secret g^ir: MODP: padded to the prime length; ECP:
  // the x coordinate padded to the field length (RFC 5903 section 7);
  // X25519: 32 bytes. Every refusal says why.
  Result<SecretBytes> derive(std::span<const std::uint8_t> peer_public) const;

 private:
  struct Impl;
  KeyExchange(KeGroup g, std::unique_ptr<Impl> impl, std::vector<std::uint8_t> pub) noexcept;

  KeGroup group_;
  std::unique_ptr<Impl> impl_;
  std::vector<std::uint8_t> public_;
};

}  // namespace cygnet::ike
