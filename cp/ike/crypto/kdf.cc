#include "cp/ike/crypto/kdf.h"

#include <algorithm>
#include <string>

namespace cygnet::ike {

namespace {

// RFC 7296 2.10: nonces are 16 to 256 octets.
Result<void> check_nonces(std::span<const std::uint8_t> ni, std::span<const std::uint8_t> nr) {
  if (ni.size() < 16 || ni.size() > 256 || nr.size() < 16 || nr.size() > 256) {
    return make_error("nonce lengths " + std::to_string(ni.size()) + "/" + std::to_string(nr.size()) +
                      " outside 16..256 octets (RFC 7296 2.10)");
  }
  return {};
}

// Takes the next n bytes of the stream into a SecretKey.
class Taker {
 public:
  explicit Taker(const SecretBytes& s) : s_(s) {}
  SecretKey take(std::size_t n) {
    auto k = SecretKey::from_bytes(s_.bytes().subspan(pos_, n));
    pos_ += n;
    return k ? std::move(*k) : SecretKey{};  // n <= 64 is checked by the callers
  }

 private:
  const SecretBytes& s_;
  std::size_t pos_ = 0;
};

}  // namespace

Result<void> check_suite(EncrId encr, std::uint16_t key_bits, IntegId integ) {
  auto e = encr_keymat_len(encr, key_bits);
  if (!e) return e.error();
  if (is_aead(encr) && integ != IntegId::none) {
    return make_error(std::string(encr_name(encr)) + " is an AEAD: the integrity transform must be NONE, got " +
                      integ_name(integ) + " (RFC 5282 section 8)");
  }
  if (!is_aead(encr) && integ == IntegId::none) {
    return make_error(std::string(encr_name(encr)) + " needs an integrity transform");
  }
  return {};
}

Result<SecretKey> skeyseed(PrfId prf_id, std::span<const std::uint8_t> ni, std::span<const std::uint8_t> nr,
                           std::span<const std::uint8_t> g_ir) {
  if (auto c = check_nonces(ni, nr); !c) return c.error();
  if (g_ir.empty()) return make_error("SKEYSEED: empty shared secret");
  // The key is Ni | Nr: concatenate into zeroizing storage (the nonces are
  // public, but this keeps one code path for keys).
  SecretBytes key(ni.size() + nr.size());
  std::copy(ni.begin(), ni.end(), key.data());
  std::copy(nr.begin(), nr.end(), key.data() + ni.size());
  return prf(prf_id, key.bytes(), g_ir);
}

Result<SecretKey> skeyseed_rekey(PrfId old_prf, const SecretKey& old_sk_d, std::span<const std::uint8_t> g_ir_new,
                                 std::span<const std::uint8_t> ni, std::span<const std::uint8_t> nr) {
  if (auto c = check_nonces(ni, nr); !c) return c.error();
  if (old_sk_d.empty()) return make_error("rekey SKEYSEED: old SK_d is empty");
  if (g_ir_new.empty()) return make_error("rekey SKEYSEED: an IKE SA rekey needs a new KE (RFC 7296 2.18)");
  return prf(old_prf, old_sk_d.bytes(), {g_ir_new, ni, nr});
}

Result<IkeSaKeys> derive_ike_sa_keys(const IkeSaSuite& suite, const SecretKey& seed, std::span<const std::uint8_t> ni,
                                     std::span<const std::uint8_t> nr, Spi spi_i, Spi spi_r) {
  if (auto c = check_suite(suite.encr, suite.encr_key_bits, suite.integ); !c) return c.error();
  if (auto c = check_nonces(ni, nr); !c) return c.error();
  const std::size_t lp = prf_output_len(suite.prf);
  const std::size_t la = integ_key_len(suite.integ);
  const std::size_t le = *encr_keymat_len(suite.encr, suite.encr_key_bits);
  const std::size_t total = 3 * lp + 2 * la + 2 * le;
  auto stream = prf_plus(suite.prf, seed.bytes(), {ni, nr, std::span<const std::uint8_t>(spi_i),
                                                   std::span<const std::uint8_t>(spi_r)},
                         total);
  if (!stream) return stream.error();
  Taker t(*stream);
  IkeSaKeys k;
  k.sk_d = t.take(lp);
  k.sk_ai = t.take(la);
  k.sk_ar = t.take(la);
  k.sk_ei = t.take(le);
  k.sk_er = t.take(le);
  k.sk_pi = t.take(lp);
  k.sk_pr = t.take(lp);
  return k;
}

Result<ChildSaKeys> derive_child_sa_keys(PrfId prf_id, const SecretKey& sk_d, const ChildSaSuite& suite,
                                         std::span<const std::uint8_t> g_ir, std::span<const std::uint8_t> ni,
                                         std::span<const std::uint8_t> nr) {
  if (auto c = check_suite(suite.encr, suite.encr_key_bits, suite.integ); !c) return c.error();
  if (auto c = check_nonces(ni, nr); !c) return c.error();
  if (sk_d.size() != prf_output_len(prf_id)) return make_error("KEYMAT: SK_d does not match the PRF's key length");
  const std::size_t la = integ_key_len(suite.integ);
  const std::size_t le = *encr_keymat_len(suite.encr, suite.encr_key_bits);
  const std::size_t total = 2 * (la + le);
  Result<SecretBytes> stream = g_ir.empty() ? prf_plus(prf_id, sk_d.bytes(), {ni, nr}, total)
                                            : prf_plus(prf_id, sk_d.bytes(), {g_ir, ni, nr}, total);
  if (!stream) return stream.error();
  Taker t(*stream);
  ChildSaKeys k;
  k.encr_i = t.take(le);
  k.integ_i = t.take(la);
  k.encr_r = t.take(le);
  k.integ_r = t.take(la);
  return k;
}

}  // namespace cygnet::ike
