// IKEv2 pseudorandom functions (RFC 7296 section 2.13; HMAC-SHA2 per RFC 4868).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>

#include "cp/ike/crypto/secret_bytes.h"
#include "shared/result.h"
#include "shared/secret.h"

namespace cygnet::ike {

// IKEv2 Transform Type 2 (PRF) IDs (IANA "Transform Type 2").
enum class PrfId : std::uint16_t {
  hmac_sha2_256 = 5,
  hmac_sha2_384 = 6,
  hmac_sha2_512 = 7,
};

// The supported PRFs, in order of preference.
std::span<const PrfId> supported_prfs() noexcept;
// The PRF for an IANA transform ID, or an error naming the ID.
Result<PrfId> prf_from_id(std::uint16_t transform_id);
const char* prf_name(PrfId p) noexcept;
// Output length of the PRF, which is also its preferred key length
// (RFC 4868 section 2.1.2: the key is the digest size): 32, 48 or 64.
std::size_t prf_output_len(PrfId p) noexcept;

using ByteParts = std::initializer_list<std::span<const std::uint8_t>>;

// prf(key, data): HMAC over the concatenation of the parts. HMAC accepts a
// key of any length (longer than a block: hashed first, RFC 2104). The output
// (at most 64 bytes) is returned in zeroizing storage since it is often a key.
Result<SecretKey> prf(PrfId p, std::span<const std::uint8_t> key, std::span<const std::uint8_t> data);
Result<SecretKey> prf(PrfId p, std::span<const std::uint8_t> key, ByteParts data);

// The largest prf+ output: 255 blocks (the counter is one octet, section 2.13).
std::size_t prf_plus_max(PrfId p) noexcept;

// prf+(key, seed) = T1 | T2 | ...  with T1 = prf(K, S | 0x01),
// Tn = prf(K, Tn-1 | S | n), truncated to `length` bytes. Lengths over
// prf_plus_max() are refused; the seed may be given in at most 8 parts.
Result<SecretBytes> prf_plus(PrfId p, std::span<const std::uint8_t> key, ByteParts seed, std::size_t length);
Result<SecretBytes> prf_plus(PrfId p, std::span<const std::uint8_t> key, std::span<const std::uint8_t> seed,
                             std::size_t length);

}  // namespace cygnet::ike
