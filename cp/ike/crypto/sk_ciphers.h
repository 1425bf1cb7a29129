// SK payload ciphers (RFC 7296 section 3.14): the implementations of
// cp/ike/sk_cipher.h for AES-GCM-16 (RFC 5282), ChaCha20-Poly1305 (RFC 7634)
// and AES-CBC with HMAC-SHA2 (RFC 3602, RFC 4868; encrypt-then-MAC).
//
// IV policy (docs/ike-crypto.md): an AEAD's 8-byte IV is a 64-bit big-endian
// counter, starting at 0, kept per cipher object (one object per key, i.e. per
// direction of one IKE SA). A counter can never repeat under a key; a random
// 64-bit IV would repeat with probability ~n^2/2^65 after n messages, and a
// repeated (key, nonce) breaks GCM and Poly1305 completely. seal() refuses to
// run once the counter is exhausted. AES-CBC's IV must be unpredictable
// (RFC 7296 3.14), so it is 16 fresh bytes from RAND_bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "cp/ike/crypto/kdf.h"
#include "cp/ike/crypto/transforms.h"
#include "cp/ike/sk_cipher.h"
#include "shared/result.h"

namespace cygnet::ike {

// The cipher for one direction. encr_key is SK_e (key | salt for an AEAD),
// integ_key is SK_a (empty for an AEAD). The keys are copied into the cipher
// (OpenSSL contexts, freed with their key schedules cleared).
Result<std::unique_ptr<SkCipher>> make_sk_cipher(EncrId encr, std::uint16_t key_bits, IntegId integ,
                                                 std::span<const std::uint8_t> encr_key,
                                                 std::span<const std::uint8_t> integ_key);
// The same from raw transform IDs as negotiated.
Result<std::unique_ptr<SkCipher>> make_sk_cipher(std::uint16_t encr_id, std::uint16_t key_bits,
                                                 std::uint16_t integ_id, std::span<const std::uint8_t> encr_key,
                                                 std::span<const std::uint8_t> integ_key);

// Both directions of an IKE SA for one side: `out` protects what we send
// (SK_ei/SK_ai if we are the original initiator), `in` checks what we get.
struct SkCipherPair {
  std::unique_ptr<SkCipher> out;
  std::unique_ptr<SkCipher> in;
};
Result<SkCipherPair> make_sk_ciphers(const IkeSaSuite& suite, const IkeSaKeys& keys, bool we_are_initiator);

}  // namespace cygnet::ike
