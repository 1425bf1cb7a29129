// ESP crypto on Intel IPsec-MB: per-SA expanded keys, built once when the
// SA is installed, and the job descriptions the burst functions submit.
// No allocation or syscall after CryptoKeys::create().
#pragma once

#include <intel-ipsec-mb.h>

#include <cstdint>
#include <cstring>
#include <span>

#include "shared/result.h"
#include "shared/sa.h"

namespace cygnet::dp::esp {

// Expanded key material of one SA for one algorithm pair. Wiped on destruction.
struct alignas(64) CryptoKeys {
  CipherAlg cipher = CipherAlg::null;
  IntegAlg integ = IntegAlg::none;
  std::uint8_t key_len = 0;    // cipher key bytes (without salt)
  std::uint8_t icv_len = 0;    // bytes of ICV on the wire
  std::uint8_t salt[4] = {};   // AEAD nonce prefix (RFC 4106 4, RFC 7634 2)

  alignas(64) gcm_key_data gcm{};            // AES-GCM
  alignas(16) std::uint32_t aes_enc[60] = {};  // AES-CBC round keys
  alignas(16) std::uint32_t aes_dec[60] = {};
  alignas(16) std::uint8_t chacha_key[32] = {};
  alignas(16) std::uint8_t hmac_ipad[64] = {};  // HMAC inner/outer states
  alignas(16) std::uint8_t hmac_opad[64] = {};

  CryptoKeys() = default;
  CryptoKeys(const CryptoKeys&) = delete;
  CryptoKeys& operator=(const CryptoKeys&) = delete;
  ~CryptoKeys();

  // Expands the SA's keys with `mgr`. The SA must have passed validate_sa().
  Result<void> init(IMB_MGR* mgr, const SaConfig& sa);

  bool aead() const noexcept {
    return cipher == CipherAlg::aes_gcm16_128 || cipher == CipherAlg::aes_gcm16_256 ||
           cipher == CipherAlg::chacha20_poly1305;
  }
};

// The 64-byte lines of a gcm_key_data (bit l: bytes 64*l to 64*l+63) that
// AES-GCM of a short packet reads on `mgr`'s code path: what a prefetch of
// an SA's GCM keys should name. IPsec-MB's code paths lay out the GHASH keys
// differently (AVX2 and plain AVX-512: the 8 powers of H right after the
// round keys; VAES AVX-512: 48 powers, the lowest 16 last, at bytes
// 752-1007), so the lines are found by probing, not assumed: short
// messages (3, 4 and 8 blocks, 8 bytes of AAD, AES-128 and AES-256) are
// encrypted with one line of the key data changed at a time, and a line
// whose change changes the ciphertext or the tag is read. About 100 jobs
// with a throwaway key; call once per manager, off the hot path. If a probe
// job fails, every line is returned (prefetching more is safe).
std::uint16_t gcm_short_packet_lines(IMB_MGR* mgr);

// Describe an AEAD operation (AES-GCM or ChaCha20-Poly1305) in `job`.
// nonce: 12 bytes; tag: where the tag is written (encrypt) or computed to
// (decrypt; the caller compares it with the received one).
// cipher and key_len: k.cipher and k.key_len, passed by callers that keep
// copies beside their hot state (k's header line is then not read).
void fill_aead_job(IMB_JOB* job, const CryptoKeys& k, CipherAlg cipher, std::uint8_t key_len, bool encrypt,
                   const std::uint8_t* nonce, const std::uint8_t* aad, std::uint32_t aad_len, const std::uint8_t* src,
                   std::uint8_t* dst, std::uint32_t len, std::uint8_t* tag);
inline void fill_aead_job(IMB_JOB* job, const CryptoKeys& k, bool encrypt, const std::uint8_t* nonce,
                          const std::uint8_t* aad, std::uint32_t aad_len, const std::uint8_t* src, std::uint8_t* dst,
                          std::uint32_t len, std::uint8_t* tag) {
  fill_aead_job(job, k, k.cipher, k.key_len, encrypt, nonce, aad, aad_len, src, dst, len, tag);
}

// AES-GCM in place through IPsec-MB's direct GCM API rather than a job:
// no job manager, so no per-packet job fill, submit checks and dispatch
// (docs/esp.md, "Crypto"). nonce: 12 bytes; tag: 16 bytes, written
// (encrypt) or computed (decrypt; the caller compares it with the received
// one). key_len: 16 or 32 (k.key_len).
inline void gcm_in_place(IMB_MGR* mgr, const CryptoKeys& k, std::uint8_t key_len, bool encrypt,
                         const std::uint8_t* nonce, const std::uint8_t* aad, std::uint32_t aad_len, std::uint8_t* buf,
                         std::uint32_t len, std::uint8_t* tag) noexcept {
  gcm_context_data ctx;
  if (key_len == 32) {
    if (encrypt) {
      IMB_AES256_GCM_ENC(mgr, &k.gcm, &ctx, buf, buf, len, nonce, aad, aad_len, tag, 16);
    } else {
      IMB_AES256_GCM_DEC(mgr, &k.gcm, &ctx, buf, buf, len, nonce, aad, aad_len, tag, 16);
    }
  } else if (encrypt) {
    IMB_AES128_GCM_ENC(mgr, &k.gcm, &ctx, buf, buf, len, nonce, aad, aad_len, tag, 16);
  } else {
    IMB_AES128_GCM_DEC(mgr, &k.gcm, &ctx, buf, buf, len, nonce, aad, aad_len, tag, 16);
  }
}

// Describe a cipher+HMAC operation (AES-CBC or NULL with HMAC-SHA*) in `job`.
// The HMAC covers [buf + auth_off, buf + auth_off + auth_len); the cipher
// runs in place over [buf + ciph_off, + ciph_len) with `iv` (16 bytes, CBC).
// Encrypt: cipher then hash. Decrypt: hash then cipher.
void fill_cbc_hmac_job(IMB_JOB* job, const CryptoKeys& k, bool encrypt, std::uint8_t* buf,
                       std::uint32_t auth_off, std::uint32_t auth_len, std::uint32_t ciph_off,
                       std::uint32_t ciph_len, const std::uint8_t* iv, std::uint8_t* tag,
                       std::uint32_t tag_len);

// Constant-time comparison of an ICV (no early exit). Inline: once per
// inbound packet. ICVs are 12, 16, 24 or 32 bytes, so words first.
inline bool icv_equal(const std::uint8_t* a, const std::uint8_t* b, std::size_t n) noexcept {
  std::uint32_t acc = 0;
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    std::uint32_t x;
    std::uint32_t y;
    std::memcpy(&x, a + i, 4);
    std::memcpy(&y, b + i, 4);
    acc |= x ^ y;
  }
  for (; i < n; ++i) acc |= static_cast<std::uint32_t>(a[i] ^ b[i]);
  return acc == 0;
}

// Single-shot helpers over the same job descriptions, for known-answer tests
// (Wycheproof, RFC vectors). Not for the packet path.
namespace oneshot {
// Returns false if the manager reported a job error.
bool aead_seal(IMB_MGR* mgr, const CryptoKeys& k, std::span<const std::uint8_t> nonce12,
               std::span<const std::uint8_t> aad, std::span<const std::uint8_t> pt, std::uint8_t* ct,
               std::uint8_t* tag16);
// Returns true only if the tag verifies; `pt` is written either way.
bool aead_open(IMB_MGR* mgr, const CryptoKeys& k, std::span<const std::uint8_t> nonce12,
               std::span<const std::uint8_t> aad, std::span<const std::uint8_t> ct,
               std::span<const std::uint8_t> tag16, std::uint8_t* pt);
// HMAC of `msg` (not empty) with the SA's integrity key, truncated to
// tag_len bytes: IPsec-MB 1.3 accepts the ESP size or the full digest size.
bool hmac(IMB_MGR* mgr, const CryptoKeys& k, std::span<const std::uint8_t> msg, std::uint8_t* tag,
          std::uint32_t tag_len);
}  // namespace oneshot

}  // namespace cygnet::dp::esp
