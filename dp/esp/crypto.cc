#include "dp/esp/crypto.h"

#include <cstring>

#include "shared/secret.h"

namespace cygnet::dp::esp {

namespace {

IMB_HASH_ALG imb_hash(IntegAlg a) noexcept {
  switch (a) {
    case IntegAlg::hmac_sha1_96: return IMB_AUTH_HMAC_SHA_1;
    case IntegAlg::hmac_sha256_128: return IMB_AUTH_HMAC_SHA_256;
    case IntegAlg::hmac_sha384_192: return IMB_AUTH_HMAC_SHA_384;
    case IntegAlg::hmac_sha512_256: return IMB_AUTH_HMAC_SHA_512;
    case IntegAlg::none: break;
  }
  return IMB_AUTH_NULL;
}

// RFC 2104: the inner and outer hash states after one block of key^ipad and
// key^opad, which IPsec-MB takes instead of the key.
void hmac_precompute(IMB_MGR* mgr, IntegAlg a, std::span<const std::uint8_t> key, std::uint8_t* ipad_state,
                     std::uint8_t* opad_state) {
  const std::size_t block = (a == IntegAlg::hmac_sha384_192 || a == IntegAlg::hmac_sha512_256) ? 128 : 64;
  alignas(16) std::uint8_t ipad[128];
  alignas(16) std::uint8_t opad[128];
  std::memset(ipad, 0x36, block);
  std::memset(opad, 0x5c, block);
  for (std::size_t i = 0; i < key.size() && i < block; ++i) {  // ESP keys are never longer than a block
    ipad[i] ^= key[i];
    opad[i] ^= key[i];
  }
  switch (a) {
    case IntegAlg::hmac_sha1_96:
      IMB_SHA1_ONE_BLOCK(mgr, ipad, ipad_state);
      IMB_SHA1_ONE_BLOCK(mgr, opad, opad_state);
      break;
    case IntegAlg::hmac_sha256_128:
      IMB_SHA256_ONE_BLOCK(mgr, ipad, ipad_state);
      IMB_SHA256_ONE_BLOCK(mgr, opad, opad_state);
      break;
    case IntegAlg::hmac_sha384_192:
      IMB_SHA384_ONE_BLOCK(mgr, ipad, ipad_state);
      IMB_SHA384_ONE_BLOCK(mgr, opad, opad_state);
      break;
    case IntegAlg::hmac_sha512_256:
      IMB_SHA512_ONE_BLOCK(mgr, ipad, ipad_state);
      IMB_SHA512_ONE_BLOCK(mgr, opad, opad_state);
      break;
    case IntegAlg::none: break;
  }
  secure_zero(ipad, sizeof ipad);
  secure_zero(opad, sizeof opad);
}

IMB_JOB* run_one(IMB_MGR* mgr, IMB_JOB* job) {
  IMB_JOB* done = IMB_SUBMIT_JOB(mgr);
  while (done == nullptr) done = IMB_FLUSH_JOB(mgr);
  (void)job;
  return done;
}

}  // namespace

CryptoKeys::~CryptoKeys() { secure_zero(this, sizeof *this); }

Result<void> CryptoKeys::init(IMB_MGR* mgr, const SaConfig& sa) {
  const auto& ci = cipher_info(sa.cipher);
  const auto& ii = integ_info(sa.integ);
  if (sa.cipher_key.size() != std::size_t{ci.key_len} + ci.salt_len || sa.integ_key.size() != ii.key_len) {
    return make_error("ESP: key lengths do not match the algorithms (SA not validated?)");
  }
  cipher = sa.cipher;
  integ = sa.integ;
  key_len = ci.key_len;
  icv_len = ci.aead ? ci.icv_len : ii.icv_len;
  const std::uint8_t* key = sa.cipher_key.data();
  if (ci.salt_len) std::memcpy(salt, key + ci.key_len, 4);
  switch (sa.cipher) {
    case CipherAlg::aes_gcm16_128: IMB_AES128_GCM_PRE(mgr, key, &gcm); break;
    case CipherAlg::aes_gcm16_256: IMB_AES256_GCM_PRE(mgr, key, &gcm); break;
    case CipherAlg::chacha20_poly1305: std::memcpy(chacha_key, key, 32); break;
    case CipherAlg::aes_cbc_128: IMB_AES_KEYEXP_128(mgr, key, aes_enc, aes_dec); break;
    case CipherAlg::aes_cbc_256: IMB_AES_KEYEXP_256(mgr, key, aes_enc, aes_dec); break;
    case CipherAlg::null: break;
  }
  if (sa.integ != IntegAlg::none) hmac_precompute(mgr, sa.integ, sa.integ_key.bytes(), hmac_ipad, hmac_opad);
  // No imb_get_errno() check here: key expansion does not set or clear the
  // manager's errno, so it would report an earlier job's error.
  return {};
}

std::uint16_t gcm_short_packet_lines(IMB_MGR* mgr) {
  constexpr unsigned kLines = (sizeof(gcm_key_data) + 63) / 64;
  static_assert(kLines <= 16, "the line mask is 16 bits");
  constexpr std::uint16_t kAll = static_cast<std::uint16_t>((1u << kLines) - 1);
  // A throwaway key; nothing secret goes through here.
  std::uint8_t key[32];
  for (unsigned i = 0; i < sizeof key; ++i) key[i] = static_cast<std::uint8_t>(0x30 + i);
  const std::uint8_t nonce[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const std::uint8_t aad[8] = {0, 0, 0x10, 0x01, 0, 0, 0, 1};  // SPI + sequence number
  std::uint8_t msg[128];
  for (unsigned i = 0; i < sizeof msg; ++i) msg[i] = static_cast<std::uint8_t>(i * 7);
  struct Out {
    std::uint8_t ct[sizeof msg];
    std::uint8_t tag[16];
  };
  // Encrypts msg[0, len) with `keys`; false if the job failed.
  const auto encrypt = [&](const CryptoKeys& keys, CipherAlg alg, std::uint8_t key_len, std::uint32_t len,
                           Out& out) {
    std::memset(&out, 0, sizeof out);
    IMB_JOB* job = IMB_GET_NEXT_JOB(mgr);
    fill_aead_job(job, keys, alg, key_len, true, nonce, aad, sizeof aad, msg, out.ct, len, out.tag);
    IMB_JOB* done = run_one(mgr, job);
    return done != nullptr && done->status == IMB_STATUS_COMPLETED;
  };
  CryptoKeys ref, changed;
  std::uint16_t lines = 0;
  for (const bool aes256 : {false, true}) {
    const CipherAlg alg = aes256 ? CipherAlg::aes_gcm16_256 : CipherAlg::aes_gcm16_128;
    const std::uint8_t key_len = aes256 ? 32 : 16;
    if (aes256) {
      IMB_AES256_GCM_PRE(mgr, key, &ref.gcm);
    } else {
      IMB_AES128_GCM_PRE(mgr, key, &ref.gcm);
    }
    for (const std::uint32_t len : {40u, 52u, 128u}) {
      Out want, got;
      if (!encrypt(ref, alg, key_len, len, want)) return kAll;
      for (unsigned l = 0; l < kLines; ++l) {
        std::memcpy(&changed.gcm, &ref.gcm, sizeof ref.gcm);
        auto* b = reinterpret_cast<std::uint8_t*>(&changed.gcm);
        for (std::size_t i = 64 * l; i < 64 * l + 64 && i < sizeof changed.gcm; ++i) b[i] ^= 0xa5;
        if (!encrypt(changed, alg, key_len, len, got)) return kAll;
        if (std::memcmp(&want, &got, sizeof want) != 0) lines = static_cast<std::uint16_t>(lines | (1u << l));
      }
    }
  }
  return lines != 0 ? lines : kAll;
}

void fill_aead_job(IMB_JOB* job, const CryptoKeys& k, CipherAlg cipher, std::uint8_t key_len, bool encrypt,
                   const std::uint8_t* nonce, const std::uint8_t* aad, std::uint32_t aad_len, const std::uint8_t* src,
                   std::uint8_t* dst, std::uint32_t len, std::uint8_t* tag) {
  job->cipher_direction = encrypt ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
  job->chain_order = encrypt ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
  job->src = src;
  job->dst = dst;
  job->cipher_start_src_offset_in_bytes = 0;
  job->msg_len_to_cipher_in_bytes = len;
  job->hash_start_src_offset_in_bytes = 0;
  job->msg_len_to_hash_in_bytes = len;
  job->iv = nonce;
  job->iv_len_in_bytes = 12;
  job->auth_tag_output = tag;
  job->auth_tag_output_len_in_bytes = 16;
  if (cipher == CipherAlg::chacha20_poly1305) {
    job->cipher_mode = IMB_CIPHER_CHACHA20_POLY1305;
    job->hash_alg = IMB_AUTH_CHACHA20_POLY1305;
    job->enc_keys = k.chacha_key;
    job->dec_keys = k.chacha_key;
    job->key_len_in_bytes = 32;
    job->u.CHACHA20_POLY1305.aad = aad;
    job->u.CHACHA20_POLY1305.aad_len_in_bytes = aad_len;
  } else {
    job->cipher_mode = IMB_CIPHER_GCM;
    job->hash_alg = IMB_AUTH_AES_GMAC;
    job->enc_keys = &k.gcm;
    job->dec_keys = &k.gcm;
    job->key_len_in_bytes = key_len;
    job->u.GCM.aad = aad;
    job->u.GCM.aad_len_in_bytes = aad_len;
  }
}

void fill_cbc_hmac_job(IMB_JOB* job, const CryptoKeys& k, bool encrypt, std::uint8_t* buf,
                       std::uint32_t auth_off, std::uint32_t auth_len, std::uint32_t ciph_off,
                       std::uint32_t ciph_len, const std::uint8_t* iv, std::uint8_t* tag,
                       std::uint32_t tag_len) {
  job->cipher_direction = encrypt ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
  job->chain_order = encrypt ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
  job->src = buf;
  job->dst = buf + ciph_off;
  job->cipher_start_src_offset_in_bytes = ciph_off;
  job->msg_len_to_cipher_in_bytes = ciph_len;
  job->hash_start_src_offset_in_bytes = auth_off;
  job->msg_len_to_hash_in_bytes = auth_len;
  job->auth_tag_output = tag;
  job->auth_tag_output_len_in_bytes = tag_len;
  job->hash_alg = imb_hash(k.integ);
  job->u.HMAC._hashed_auth_key_xor_ipad = k.hmac_ipad;
  job->u.HMAC._hashed_auth_key_xor_opad = k.hmac_opad;
  if (k.cipher == CipherAlg::null) {
    job->cipher_mode = IMB_CIPHER_NULL;
    job->enc_keys = nullptr;
    job->dec_keys = nullptr;
    job->key_len_in_bytes = 0;
    job->iv = nullptr;
    job->iv_len_in_bytes = 0;
  } else {
    job->cipher_mode = IMB_CIPHER_CBC;
    job->enc_keys = k.aes_enc;
    job->dec_keys = k.aes_dec;
    job->key_len_in_bytes = k.key_len;
    job->iv = iv;
    job->iv_len_in_bytes = 16;
  }
}

namespace oneshot {

bool aead_seal(IMB_MGR* mgr, const CryptoKeys& k, std::span<const std::uint8_t> nonce12,
               std::span<const std::uint8_t> aad, std::span<const std::uint8_t> pt, std::uint8_t* ct,
               std::uint8_t* tag16) {
  if (nonce12.size() != 12 || !k.aead()) return false;
  IMB_JOB* job = IMB_GET_NEXT_JOB(mgr);
  fill_aead_job(job, k, true, nonce12.data(), aad.data(), static_cast<std::uint32_t>(aad.size()), pt.data(), ct,
                static_cast<std::uint32_t>(pt.size()), tag16);
  return run_one(mgr, job)->status == IMB_STATUS_COMPLETED;
}

bool aead_open(IMB_MGR* mgr, const CryptoKeys& k, std::span<const std::uint8_t> nonce12,
               std::span<const std::uint8_t> aad, std::span<const std::uint8_t> ct,
               std::span<const std::uint8_t> tag16, std::uint8_t* pt) {
  if (nonce12.size() != 12 || tag16.size() != 16 || !k.aead()) return false;
  std::uint8_t computed[16];
  IMB_JOB* job = IMB_GET_NEXT_JOB(mgr);
  fill_aead_job(job, k, false, nonce12.data(), aad.data(), static_cast<std::uint32_t>(aad.size()), ct.data(), pt,
                static_cast<std::uint32_t>(ct.size()), computed);
  if (run_one(mgr, job)->status != IMB_STATUS_COMPLETED) return false;
  return icv_equal(computed, tag16.data(), 16);
}

bool hmac(IMB_MGR* mgr, const CryptoKeys& k, std::span<const std::uint8_t> msg, std::uint8_t* tag,
          std::uint32_t tag_len) {
  if (k.integ == IntegAlg::none || tag_len == 0 || msg.empty()) return false;  // IPsec-MB refuses empty HMAC input
  // NULL cipher over nothing; hash over the whole message (const is kept:
  // with a NULL cipher and no cipher length nothing is written to buf).
  IMB_JOB* job = IMB_GET_NEXT_JOB(mgr);
  fill_cbc_hmac_job(job, k, true, const_cast<std::uint8_t*>(msg.data()), 0,
                    static_cast<std::uint32_t>(msg.size()), 0, 0, nullptr, tag, tag_len);
  job->cipher_mode = IMB_CIPHER_NULL;
  job->iv = nullptr;
  job->iv_len_in_bytes = 0;
  return run_one(mgr, job)->status == IMB_STATUS_COMPLETED;
}

}  // namespace oneshot

}  // namespace cygnet::dp::esp
