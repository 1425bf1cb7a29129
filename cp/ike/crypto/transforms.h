// IKEv2 transform IDs used by the IKE crypto (IANA "Internet Key Exchange
// Version 2 (IKEv2) Parameters", Transform Types 1 and 3) and the key
// lengths they need (RFC 7296 2.14/2.17, RFC 5282, RFC 4106, RFC 7634,
// RFC 3602, RFC 4868).
#pragma once

#include <cstddef>
#include <cstdint>

#include "shared/result.h"

namespace cygnet::ike {

// Transform Type 1 (Encryption Algorithm).
enum class EncrId : std::uint16_t {
  aes_cbc = 12,            // ENCR_AES_CBC, RFC 3602 / RFC 7296
  aes_gcm_16 = 20,         // ENCR_AES_GCM_16, RFC 5282 (IKE) / RFC 4106 (ESP)
  chacha20_poly1305 = 28,  // ENCR_CHACHA20_POLY1305, RFC 7634
};

// Transform Type 3 (Integrity Algorithm).
enum class IntegId : std::uint16_t {
  none = 0,
  hmac_sha2_256_128 = 12,  // AUTH_HMAC_SHA2_256_128, RFC 4868
  hmac_sha2_384_192 = 13,  // AUTH_HMAC_SHA2_384_192
  hmac_sha2_512_256 = 14,  // AUTH_HMAC_SHA2_512_256
};

// Salt appended to an AEAD key in the keying material: 4 bytes for AES-GCM
// (RFC 5282 section 7.1 for IKE, RFC 4106 section 8.1 for ESP) and for
// ChaCha20-Poly1305 (RFC 7634 section 2 / section 4).
inline constexpr std::size_t kAeadSaltLen = 4;

bool is_aead(EncrId e) noexcept;
const char* encr_name(EncrId e) noexcept;
const char* integ_name(IntegId i) noexcept;

// The encryption transform for (ID, Key Length attribute in bits). ChaCha20
// has no Key Length attribute: 0 or 256 are accepted.
Result<EncrId> encr_from_id(std::uint16_t id, std::uint16_t key_bits);
Result<IntegId> integ_from_id(std::uint16_t id);

// Bytes of keying material for the cipher, AEAD salt included:
// AES-CBC 16/32, AES-GCM 16+4/32+4, ChaCha20-Poly1305 32+4.
Result<std::size_t> encr_keymat_len(EncrId e, std::uint16_t key_bits);
// Integrity key length (the HMAC digest length, RFC 4868 2.1.1): 32/48/64; 0 for none.
std::size_t integ_key_len(IntegId i) noexcept;
// Length of the truncated ICV: 16/24/32; 0 for none.
std::size_t integ_icv_len(IntegId i) noexcept;

}  // namespace cygnet::ike
