#include "cp/ike/crypto/transforms.h"

#include <string>

namespace cygnet::ike {

bool is_aead(EncrId e) noexcept { return e == EncrId::aes_gcm_16 || e == EncrId::chacha20_poly1305; }

const char* encr_name(EncrId e) noexcept {
  switch (e) {
    case EncrId::aes_cbc: return "ENCR_AES_CBC";
    case EncrId::aes_gcm_16: return "ENCR_AES_GCM_16";
    case EncrId::chacha20_poly1305: return "ENCR_CHACHA20_POLY1305";
  }
  return "unknown encryption";
}

const char* integ_name(IntegId i) noexcept {
  switch (i) {
    case IntegId::none: return "NONE";
    case IntegId::hmac_sha2_256_128: return "AUTH_HMAC_SHA2_256_128";
    case IntegId::hmac_sha2_384_192: return "AUTH_HMAC_SHA2_384_192";
    case IntegId::hmac_sha2_512_256: return "AUTH_HMAC_SHA2_512_256";
  }
  return "unknown integrity";
}

Result<EncrId> encr_from_id(std::uint16_t id, std::uint16_t key_bits) {
  switch (id) {
    case 12:
    case 20:
      if (key_bits != 128 && key_bits != 256) {
        return make_error(std::string(id == 12 ? "ENCR_AES_CBC" : "ENCR_AES_GCM_16") + " key length " +
                          std::to_string(key_bits) + " is not supported (128 or 256)");
      }
      return static_cast<EncrId>(id);
    case 28:
      if (key_bits != 0 && key_bits != 256) {
        return make_error("ENCR_CHACHA20_POLY1305 takes no key length attribute (or 256), got " +
                          std::to_string(key_bits));
      }
      return EncrId::chacha20_poly1305;
    default:
      return make_error("encryption transform " + std::to_string(id) +
                        " is not supported (12 ENCR_AES_CBC, 20 ENCR_AES_GCM_16, 28 ENCR_CHACHA20_POLY1305)");
  }
}

Result<IntegId> integ_from_id(std::uint16_t id) {
  switch (id) {
    case 0:
    case 12:
    case 13:
    case 14: return static_cast<IntegId>(id);
    default:
      return make_error("integrity transform " + std::to_string(id) +
                        " is not supported (12 AUTH_HMAC_SHA2_256_128, 13 AUTH_HMAC_SHA2_384_192, "
                        "14 AUTH_HMAC_SHA2_512_256)");
  }
}

Result<std::size_t> encr_keymat_len(EncrId e, std::uint16_t key_bits) {
  auto checked = encr_from_id(static_cast<std::uint16_t>(e), key_bits);
  if (!checked) return checked.error();
  switch (e) {
    case EncrId::aes_cbc: return std::size_t{key_bits / 8u};
    case EncrId::aes_gcm_16: return std::size_t{key_bits / 8u + kAeadSaltLen};
    case EncrId::chacha20_poly1305: return std::size_t{32 + kAeadSaltLen};
  }
  return make_error("unknown encryption transform");
}

std::size_t integ_key_len(IntegId i) noexcept {
  switch (i) {
    case IntegId::none: return 0;
    case IntegId::hmac_sha2_256_128: return 32;
    case IntegId::hmac_sha2_384_192: return 48;
    case IntegId::hmac_sha2_512_256: return 64;
  }
  return 0;
}

std::size_t integ_icv_len(IntegId i) noexcept { return integ_key_len(i) / 2; }

}  // namespace cygnet::ike
