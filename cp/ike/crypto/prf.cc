#include "cp/ike/crypto/prf.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <cstring>
#include <string>

#include "cp/ike/crypto/ossl.h"

namespace cygnet::ike {

namespace {

constexpr std::array<PrfId, 3> kPrfs = {PrfId::hmac_sha2_256, PrfId::hmac_sha2_384, PrfId::hmac_sha2_512};

const char* digest_name(PrfId p) noexcept {
  switch (p) {
    case PrfId::hmac_sha2_256: return "SHA2-256";
    case PrfId::hmac_sha2_384: return "SHA2-384";
    case PrfId::hmac_sha2_512: return "SHA2-512";
  }
  return nullptr;
}

// One HMAC computation over several parts, output written to out (exactly
// prf_output_len bytes).
using PartList = std::span<const std::span<const std::uint8_t>>;

// An HMAC context per PRF with its digest set and no key, made once per
// thread: each computation duplicates it instead of fetching HMAC and the
// digest by name again (each OpenSSL 3 fetch takes a lock and compares
// names; bench/ike_bench BM_ResponderStep, docs/benchmarks.md). The template
// never holds a key; the duplicate that does is freed (and cleared by
// OpenSSL) after each computation.
EVP_MAC_CTX* hmac_template(PrfId p) {
  thread_local std::array<detail::Ossl<EVP_MAC_CTX>, kPrfs.size()> templates;
  std::size_t i = 0;
  while (i < kPrfs.size() && kPrfs[i] != p) ++i;
  if (i == kPrfs.size()) return nullptr;
  if (!templates[i]) {
    detail::Ossl<EVP_MAC> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    if (!mac) return nullptr;
    detail::Ossl<EVP_MAC_CTX> ctx(EVP_MAC_CTX_new(mac.get()));
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_name(p)), 0),
        OSSL_PARAM_construct_end(),
    };
    if (!ctx || EVP_MAC_CTX_set_params(ctx.get(), params) != 1) return nullptr;
    templates[i] = std::move(ctx);
  }
  return templates[i].get();
}

Result<void> hmac_parts(PrfId p, std::span<const std::uint8_t> key, PartList parts, std::uint8_t* out) {
  if (digest_name(p) == nullptr) return make_error("PRF " + std::to_string(static_cast<unsigned>(p)) + " is not supported");
  EVP_MAC_CTX* tmpl = hmac_template(p);
  if (tmpl == nullptr) return make_error("HMAC is not available in this OpenSSL");
  detail::Ossl<EVP_MAC_CTX> ctx(EVP_MAC_CTX_dup(tmpl));
  if (!ctx) return make_error("out of memory (EVP_MAC_CTX_dup)");
  // HMAC with an empty key is legal (RFC 2104); OpenSSL wants a non-null pointer.
  static const std::uint8_t kEmpty[1] = {0};
  const std::uint8_t* k = key.empty() ? kEmpty : key.data();
  if (EVP_MAC_init(ctx.get(), k, key.size(), nullptr) != 1) return make_error("HMAC init failed");
  for (const auto& part : parts) {
    if (part.empty()) continue;
    if (EVP_MAC_update(ctx.get(), part.data(), part.size()) != 1) return make_error("HMAC update failed");
  }
  std::size_t outl = 0;
  const std::size_t want = prf_output_len(p);
  if (EVP_MAC_final(ctx.get(), out, &outl, want) != 1 || outl != want) return make_error("HMAC final failed");
  return {};
}

}  // namespace

std::span<const PrfId> supported_prfs() noexcept { return kPrfs; }

Result<PrfId> prf_from_id(std::uint16_t transform_id) {
  for (PrfId p : kPrfs) {
    if (static_cast<std::uint16_t>(p) == transform_id) return p;
  }
  return make_error("PRF transform ID " + std::to_string(transform_id) +
                    " is not supported (supported: 5 PRF_HMAC_SHA2_256, 6 PRF_HMAC_SHA2_384, 7 PRF_HMAC_SHA2_512)");
}

const char* prf_name(PrfId p) noexcept {
  switch (p) {
    case PrfId::hmac_sha2_256: return "PRF_HMAC_SHA2_256";
    case PrfId::hmac_sha2_384: return "PRF_HMAC_SHA2_384";
    case PrfId::hmac_sha2_512: return "PRF_HMAC_SHA2_512";
  }
  return "unknown PRF";
}

std::size_t prf_output_len(PrfId p) noexcept {
  switch (p) {
    case PrfId::hmac_sha2_256: return 32;
    case PrfId::hmac_sha2_384: return 48;
    case PrfId::hmac_sha2_512: return 64;
  }
  return 0;
}

std::size_t prf_plus_max(PrfId p) noexcept { return 255 * prf_output_len(p); }

Result<SecretKey> prf(PrfId p, std::span<const std::uint8_t> key, ByteParts data) {
  std::array<std::uint8_t, SecretKey::kCapacity> out{};
  auto r = hmac_parts(p, key, PartList(data.begin(), data.size()), out.data());
  if (!r) {
    OPENSSL_cleanse(out.data(), out.size());
    return r.error();
  }
  auto k = SecretKey::from_bytes(std::span<const std::uint8_t>(out.data(), prf_output_len(p)));
  OPENSSL_cleanse(out.data(), out.size());
  return k;
}

Result<SecretKey> prf(PrfId p, std::span<const std::uint8_t> key, std::span<const std::uint8_t> data) {
  return prf(p, key, ByteParts{data});
}

Result<SecretBytes> prf_plus(PrfId p, std::span<const std::uint8_t> key, ByteParts seed, std::size_t length) {
  const std::size_t h = prf_output_len(p);
  if (h == 0) return make_error("PRF " + std::to_string(static_cast<unsigned>(p)) + " is not supported");
  if (length > prf_plus_max(p)) {
    return make_error("prf+ asked for " + std::to_string(length) + " bytes; " + prf_name(p) +
                      " gives at most 255 blocks (" + std::to_string(prf_plus_max(p)) + " bytes, RFC 7296 2.13)");
  }
  if (seed.size() > 8) return make_error("prf+: at most 8 seed parts");
  SecretBytes out(length);
  std::array<std::uint8_t, SecretKey::kCapacity> t{};  // T(n-1), then T(n)
  std::size_t done = 0;
  for (unsigned n = 1; done < length; ++n) {
    const std::uint8_t counter = static_cast<std::uint8_t>(n);
    std::span<const std::uint8_t> prev(t.data(), n == 1 ? 0 : h);
    // T(n) = prf(K, T(n-1) | S | n), fed part by part (S itself is in parts).
    std::array<std::span<const std::uint8_t>, 10> all{};
    std::size_t cnt = 0;
    all[cnt++] = prev;
    for (const auto& s : seed) all[cnt++] = s;
    all[cnt++] = std::span<const std::uint8_t>(&counter, 1);
    std::array<std::uint8_t, SecretKey::kCapacity> next{};
    auto r = hmac_parts(p, key, PartList(all.data(), cnt), next.data());
    std::memcpy(t.data(), next.data(), h);
    OPENSSL_cleanse(next.data(), next.size());
    if (!r) {
      OPENSSL_cleanse(t.data(), t.size());
      return r.error();
    }
    const std::size_t take = length - done < h ? length - done : h;
    std::memcpy(out.data() + done, t.data(), take);
    done += take;
  }
  OPENSSL_cleanse(t.data(), t.size());
  return out;
}

Result<SecretBytes> prf_plus(PrfId p, std::span<const std::uint8_t> key, std::span<const std::uint8_t> seed,
                             std::size_t length) {
  return prf_plus(p, key, ByteParts{seed}, length);
}

}  // namespace cygnet::ike
