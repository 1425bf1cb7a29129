// The contract between the IKEv2 codec (cp/ike/msg) and the IKE crypto
// (cp/ike/crypto) for the Encrypted and Authenticated payload (SK, RFC 7296
// section 3.14; AEAD per RFC 5282 and RFC 7634).
//
// The codec lays out   IKE header | SK generic header | IV | ciphertext | ICV
// and hands the cipher the bytes it protects; the cipher never parses.
//
//   assoc: the message from the first byte of the IKE header to the last byte
//          of the SK payload's generic header (for an AEAD, its associated
//          data; for encrypt-then-MAC, the start of what the MAC covers,
//          which continues over the IV and the ciphertext).
//   iv:    iv_len() bytes.
//   text:  the plaintext, already padded by the codec to a multiple of
//          block_len() with its Pad Length byte last (section 3.14).
//          Encrypted or decrypted in place.
//   icv:   icv_len() bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "shared/result.h"

namespace cygnet::ike {

class SkCipher {
 public:
  virtual ~SkCipher() = default;
  virtual std::size_t iv_len() const noexcept = 0;
  virtual std::size_t icv_len() const noexcept = 0;
  // The plaintext (padding and Pad Length included) is padded to this.
  virtual std::size_t block_len() const noexcept = 0;

  // Fills iv (fresh, never repeated under one key), encrypts text in place,
  // writes the ICV. An error means nothing may be sent.
  virtual Result<void> seal(std::span<const std::uint8_t> assoc, std::span<std::uint8_t> iv,
                            std::span<std::uint8_t> text, std::span<std::uint8_t> icv) = 0;
  // Checks the ICV in constant time, then decrypts text in place. False on
  // any failure; text is then unspecified and must be discarded.
  virtual bool open(std::span<const std::uint8_t> assoc, std::span<const std::uint8_t> iv,
                    std::span<std::uint8_t> text, std::span<const std::uint8_t> icv) = 0;
};

}  // namespace cygnet::ike
