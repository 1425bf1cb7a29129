// IKEv2 key derivation: SKEYSEED and the IKE SA keys (RFC 7296 section 2.14),
// SKEYSEED for a rekeyed IKE SA (section 2.18), Child SA KEYMAT (section 2.17).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "cp/ike/crypto/prf.h"
#include "cp/ike/crypto/transforms.h"
#include "shared/result.h"
#include "shared/secret.h"

namespace cygnet::ike {

using Spi = std::span<const std::uint8_t, 8>;  // an IKE SPI as it is on the wire

// The transforms of an IKE SA. integ is IntegId::none with an AEAD and must
// not be none otherwise.
struct IkeSaSuite {
  EncrId encr = EncrId::aes_gcm_16;
  std::uint16_t encr_key_bits = 256;
  IntegId integ = IntegId::none;
  PrfId prf = PrfId::hmac_sha2_256;
};

// Checks the AEAD/integrity combination and the key length; the error names
// the offending transform.
Result<void> check_suite(EncrId encr, std::uint16_t key_bits, IntegId integ);

struct IkeSaKeys {
  SecretKey sk_d;   // prf key length
  SecretKey sk_ai;  // integrity key (empty for an AEAD)
  SecretKey sk_ar;
  SecretKey sk_ei;  // encryption key, salt last for an AEAD
  SecretKey sk_er;
  SecretKey sk_pi;  // prf key length
  SecretKey sk_pr;
};

// SKEYSEED = prf(Ni | Nr, g^ir). With HMAC the key is the whole Ni | Nr (any
// length is a valid HMAC key); RFC 7296 2.14 truncates the nonces to 64 bits
// each only for AES-XCBC-PRF-128 and AES-CMAC-PRF-128, which we do not offer.
Result<SecretKey> skeyseed(PrfId prf, std::span<const std::uint8_t> ni, std::span<const std::uint8_t> nr,
                           std::span<const std::uint8_t> g_ir);

// Rekeyed IKE SA (2.18): SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr),
// computed with the OLD IKE SA's PRF; the new keys then come from
// derive_ike_sa_keys() with the new SA's suite, SPIs and nonces.
Result<SecretKey> skeyseed_rekey(PrfId old_prf, const SecretKey& old_sk_d, std::span<const std::uint8_t> g_ir_new,
                                 std::span<const std::uint8_t> ni, std::span<const std::uint8_t> nr);

// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
//     = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
Result<IkeSaKeys> derive_ike_sa_keys(const IkeSaSuite& suite, const SecretKey& skeyseed,
                                     std::span<const std::uint8_t> ni, std::span<const std::uint8_t> nr, Spi spi_i,
                                     Spi spi_r);

// An ESP Child SA's transforms (the ESP transform IDs are the IKE ones).
struct ChildSaSuite {
  EncrId encr = EncrId::aes_gcm_16;
  std::uint16_t encr_key_bits = 256;
  IntegId integ = IntegId::none;
};

// The four ESP keys, in the order they are taken from KEYMAT (2.17): the
// initiator-to-responder SA's keys first. An AEAD key includes its 4-byte
// salt at the end (RFC 4106 section 8.1, RFC 7634 section 4).
struct ChildSaKeys {
  SecretKey encr_i;
  SecretKey integ_i;  // empty for an AEAD
  SecretKey encr_r;
  SecretKey integ_r;
};

// KEYMAT = prf+(SK_d, Ni | Nr), or prf+(SK_d, g^ir (new) | Ni | Nr) when the
// CREATE_CHILD_SA exchange carried a KE (pass an empty g_ir otherwise).
Result<ChildSaKeys> derive_child_sa_keys(PrfId prf, const SecretKey& sk_d, const ChildSaSuite& suite,
                                         std::span<const std::uint8_t> g_ir, std::span<const std::uint8_t> ni,
                                         std::span<const std::uint8_t> nr);

}  // namespace cygnet::ike
