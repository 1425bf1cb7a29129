#include "cp/ike/crypto/key_exchange.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/dh.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "cp/ike/crypto/ossl.h"

namespace cygnet::ike {

using detail::Ossl;

namespace {

constexpr std::array<KeGroup, 5> kGroups = {KeGroup::curve25519, KeGroup::ecp256, KeGroup::ecp384,
                                            KeGroup::ecp521, KeGroup::modp2048};

// RFC 3526 section 3, the 2048-bit MODP group (group 14), generator 2:
// p = 2^2048 - 2^1984 - 1 + 2^64 * { [2^1918 pi] + 124476 }.
constexpr std::uint8_t kModp2048P[256] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34,
    0xC4, 0xC6, 0x62, 0x8B, 0x80, 0xDC, 0x1C, 0xD1, 0x29, 0x02, 0x4E, 0x08, 0x8A, 0x67, 0xCC, 0x74,
    0x02, 0x0B, 0xBE, 0xA6, 0x3B, 0x13, 0x9B, 0x22, 0x51, 0x4A, 0x08, 0x79, 0x8E, 0x34, 0x04, 0xDD,
    0xEF, 0x95, 0x19, 0xB3, 0xCD, 0x3A, 0x43, 0x1B, 0x30, 0x2B, 0x0A, 0x6D, 0xF2, 0x5F, 0x14, 0x37,
    0x4F, 0xE1, 0x35, 0x6D, 0x6D, 0x51, 0xC2, 0x45, 0xE4, 0x85, 0xB5, 0x76, 0x62, 0x5E, 0x7E, 0xC6,
    0xF4, 0x4C, 0x42, 0xE9, 0xA6, 0x37, 0xED, 0x6B, 0x0B, 0xFF, 0x5C, 0xB6, 0xF4, 0x06, 0xB7, 0xED,
    0xEE, 0x38, 0x6B, 0xFB, 0x5A, 0x89, 0x9F, 0xA5, 0xAE, 0x9F, 0x24, 0x11, 0x7C, 0x4B, 0x1F, 0xE6,
    0x49, 0x28, 0x66, 0x51, 0xEC, 0xE4, 0x5B, 0x3D, 0xC2, 0x00, 0x7C, 0xB8, 0xA1, 0x63, 0xBF, 0x05,
    0x98, 0xDA, 0x48, 0x36, 0x1C, 0x55, 0xD3, 0x9A, 0x69, 0x16, 0x3F, 0xA8, 0xFD, 0x24, 0xCF, 0x5F,
    0x83, 0x65, 0x5D, 0x23, 0xDC, 0xA3, 0xAD, 0x96, 0x1C, 0x62, 0xF3, 0x56, 0x20, 0x85, 0x52, 0xBB,
    0x9E, 0xD5, 0x29, 0x07, 0x70, 0x96, 0x96, 0x6D, 0x67, 0x0C, 0x35, 0x4E, 0x4A, 0xBC, 0x98, 0x04,
    0xF1, 0x74, 0x6C, 0x08, 0xCA, 0x18, 0x21, 0x7C, 0x32, 0x90, 0x5E, 0x46, 0x2E, 0x36, 0xCE, 0x3B,
    0xE3, 0x9E, 0x77, 0x2C, 0x18, 0x0E, 0x86, 0x03, 0x9B, 0x27, 0x83, 0xA2, 0xEC, 0x07, 0xA2, 0x8F,
    0xB5, 0xC5, 0x5D, 0xF0, 0x6F, 0x4C, 0x52, 0xC9, 0xDE, 0x2B, 0xCB, 0xF6, 0x95, 0x58, 0x17, 0x18,
    0x39, 0x95, 0x49, 0x7C, 0xEA, 0x95, 0x6A, 0xE5, 0x15, 0xD2, 0x26, 0x18, 0x98, 0xFA, 0x05, 0x10,
    0x15, 0x72, 0x8E, 0x5A, 0x8A, 0xAC, 0xAA, 0x68, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
};
constexpr std::size_t kModpLen = sizeof(kModp2048P);

bool is_ecp(KeGroup g) noexcept { return g == KeGroup::ecp256 || g == KeGroup::ecp384 || g == KeGroup::ecp521; }

std::size_t field_len(KeGroup g) noexcept {
  switch (g) {
    case KeGroup::ecp256: return 32;
    case KeGroup::ecp384: return 48;
    case KeGroup::ecp521: return 66;
    case KeGroup::curve25519: return 32;
    case KeGroup::modp2048: return kModpLen;
  }
  return 0;
}

const char* ec_name(KeGroup g) noexcept {
  switch (g) {
    case KeGroup::ecp256: return "P-256";
    case KeGroup::ecp384: return "P-384";
    case KeGroup::ecp521: return "P-521";
    default: return nullptr;
  }
}

int ec_nid(KeGroup g) noexcept {
  switch (g) {
    case KeGroup::ecp256: return NID_X9_62_prime256v1;
    case KeGroup::ecp384: return NID_secp384r1;
    case KeGroup::ecp521: return NID_secp521r1;
    default: return NID_undef;
  }
}

// Drops whatever OpenSSL queued: our error values say what failed.
Error ossl_error(std::string what) {
  ERR_clear_error();
  return make_error(std::move(what));
}

std::string gname(KeGroup g) { return std::string(group_name(g)); }

// ---- MODP (RFC 3526) ----

struct ModpParams {
  Ossl<BIGNUM> p, g, q;
};

Result<ModpParams> modp_params() {
  ModpParams m;
  m.p.reset(BN_bin2bn(kModp2048P, kModpLen, nullptr));
  m.g.reset(BN_new());
  m.q.reset(BN_new());
  if (!m.p || !m.g || !m.q || BN_set_word(m.g.get(), 2) != 1 || BN_rshift1(m.q.get(), m.p.get()) != 1) {
    return ossl_error("MODP-2048: cannot set up the group parameters");
  }
  return m;
}

// Builds a DH EVP_PKEY over group 14 from optional private and public values.
Result<Ossl<EVP_PKEY>> modp_pkey(const ModpParams& m, const BIGNUM* priv, const BIGNUM* pub) {
  Ossl<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_FFC_P, m.p.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_FFC_Q, m.q.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_FFC_G, m.g.get()) != 1 ||
      (pub != nullptr && OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, pub) != 1) ||
      (priv != nullptr && OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, priv) != 1)) {
    return ossl_error("MODP-2048: cannot build key parameters");
  }
  Ossl<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(bld.get()));
  Ossl<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr));
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return ossl_error("MODP-2048: DH is not available");
  const int selection = priv != nullptr ? EVP_PKEY_KEYPAIR : pub != nullptr ? EVP_PKEY_PUBLIC_KEY : EVP_PKEY_KEY_PARAMETERS;
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, selection, params.get()) != 1) return ossl_error("MODP-2048: key import failed");
  return Ossl<EVP_PKEY>(raw);
}

Result<std::vector<std::uint8_t>> bn_param_padded(const EVP_PKEY* key, const char* name, std::size_t len) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) return ossl_error("cannot read the public value");
  Ossl<BIGNUM> bn(raw);
  std::vector<std::uint8_t> out(len);
  if (BN_bn2binpad(bn.get(), out.data(), static_cast<int>(len)) != static_cast<int>(len)) {
    return ossl_error("public value longer than the group allows");
  }
  return out;
}

// RFC 6989 section 2.2: for the safe-prime MODP groups, 1 < y < p-1.
Result<Ossl<EVP_PKEY>> modp_peer(std::span<const std::uint8_t> y_bytes) {
  if (y_bytes.size() != kModpLen) {
    return make_error("MODP-2048 (group 14) public value is " + std::to_string(y_bytes.size()) + " bytes, expected " +
                      std::to_string(kModpLen) + " (RFC 7296 3.4, padded to the prime length)");
  }
  auto m = modp_params();
  if (!m) return m.error();
  Ossl<BIGNUM> y(BN_bin2bn(y_bytes.data(), static_cast<int>(y_bytes.size()), nullptr));
  Ossl<BIGNUM> pm1(BN_dup(m->p.get()));
  if (!y || !pm1 || BN_sub_word(pm1.get(), 1) != 1) return ossl_error("MODP-2048: out of memory");
  if (BN_is_zero(y.get()) || BN_is_one(y.get())) {
    return make_error("MODP-2048 (group 14) public value is 0 or 1 (RFC 6989 2.2 requires 1 < y < p-1)");
  }
  if (BN_cmp(y.get(), pm1.get()) >= 0) {
    return make_error("MODP-2048 (group 14) public value is p-1 or not less than p (RFC 6989 2.2 requires 1 < y < p-1)");
  }
  auto peer = modp_pkey(*m, nullptr, y.get());
  if (!peer) return peer.error();
  // OpenSSL's public key check (with q known) also verifies y^q = 1 mod p:
  // every honest g^x passes (2 is a quadratic residue for this p), so this
  // only refuses values outside the prime-order subgroup.
  Ossl<EVP_PKEY_CTX> vctx(EVP_PKEY_CTX_new_from_pkey(nullptr, peer->get(), nullptr));
  if (!vctx || EVP_PKEY_public_check(vctx.get()) != 1) {
    return ossl_error("MODP-2048 (group 14) public value is not in the prime-order subgroup (y^q != 1 mod p)");
  }
  return peer;
}

// ---- ECP (RFC 5903) ----

Result<Ossl<EC_GROUP>> ec_group(KeGroup g) {
  Ossl<EC_GROUP> grp(EC_GROUP_new_by_curve_name(ec_nid(g)));
  if (!grp) return ossl_error(gname(g) + ": curve not available");
  return grp;
}

Result<Ossl<EVP_PKEY>> ec_pkey(KeGroup g, const BIGNUM* priv, std::span<const std::uint8_t> pub_uncompressed) {
  Ossl<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, ec_name(g), 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, pub_uncompressed.data(),
                                       pub_uncompressed.size()) != 1 ||
      (priv != nullptr && OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, priv) != 1)) {
    return ossl_error(gname(g) + ": cannot build key parameters");
  }
  Ossl<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(bld.get()));
  Ossl<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1) return ossl_error(gname(g) + ": EC not available");
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_fromdata(ctx.get(), &raw, priv != nullptr ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return ossl_error(gname(g) + ": point is not on the curve");
  }
  return Ossl<EVP_PKEY>(raw);
}

// RFC 6989 section 2.3 / RFC 5903 section 7: exact length, coordinates < p,
// on the curve, not the point at infinity.
Result<Ossl<EVP_PKEY>> ec_peer(KeGroup g, std::span<const std::uint8_t> xy) {
  const std::size_t f = field_len(g);
  if (xy.size() != 2 * f) {
    return make_error(gname(g) + " public value is " + std::to_string(xy.size()) + " bytes, expected " +
                      std::to_string(2 * f) + " (x | y, RFC 5903 section 7)");
  }
  if (std::all_of(xy.begin(), xy.end(), [](std::uint8_t b) { return b == 0; })) {
    return make_error(gname(g) + " public value is all zero, which would stand for the point at infinity (RFC 6989 2.3)");
  }
  auto grp = ec_group(g);
  if (!grp) return grp.error();
  Ossl<BN_CTX> bnctx(BN_CTX_new());
  Ossl<BIGNUM> p(BN_new()), a(BN_new()), b(BN_new());
  Ossl<BIGNUM> x(BN_bin2bn(xy.data(), static_cast<int>(f), nullptr));
  Ossl<BIGNUM> y(BN_bin2bn(xy.data() + f, static_cast<int>(f), nullptr));
  if (!bnctx || !p || !a || !b || !x || !y ||
      EC_GROUP_get_curve(grp->get(), p.get(), a.get(), b.get(), bnctx.get()) != 1) {
    return ossl_error(gname(g) + ": out of memory");
  }
  if (BN_cmp(x.get(), p.get()) >= 0) {
    return make_error(gname(g) + " public value: x coordinate is not less than the field prime p (RFC 6989 2.3)");
  }
  if (BN_cmp(y.get(), p.get()) >= 0) {
    return make_error(gname(g) + " public value: y coordinate is not less than the field prime p (RFC 6989 2.3)");
  }
  Ossl<EC_POINT> pt(EC_POINT_new(grp->get()));
  if (!pt) return ossl_error(gname(g) + ": out of memory");
  if (EC_POINT_set_affine_coordinates(grp->get(), pt.get(), x.get(), y.get(), bnctx.get()) != 1 ||
      EC_POINT_is_on_curve(grp->get(), pt.get(), bnctx.get()) != 1) {
    return ossl_error(gname(g) + " public value is not a point on the curve (RFC 6989 2.3)");
  }
  if (EC_POINT_is_at_infinity(grp->get(), pt.get()) == 1) {
    return make_error(gname(g) + " public value is the point at infinity (RFC 6989 2.3)");
  }
  std::vector<std::uint8_t> enc(1 + 2 * f);
  enc[0] = 0x04;
  std::memcpy(enc.data() + 1, xy.data(), 2 * f);
  auto peer = ec_pkey(g, nullptr, enc);
  if (!peer) return peer.error();
  // OpenSSL's full public key check (on the curve, n * Q = infinity).
  Ossl<EVP_PKEY_CTX> vctx(EVP_PKEY_CTX_new_from_pkey(nullptr, peer->get(), nullptr));
  if (!vctx || EVP_PKEY_public_check(vctx.get()) != 1) {
    return ossl_error(gname(g) + " public value failed the public key check (not a point of the prime-order group)");
  }
  return peer;
}

Result<std::vector<std::uint8_t>> ec_public_xy(KeGroup g, const EVP_PKEY* key) {
  const std::size_t f = field_len(g);
  std::vector<std::uint8_t> enc(1 + 2 * f);
  std::size_t len = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, enc.data(), enc.size(), &len) != 1 ||
      len != enc.size() || enc[0] != 0x04) {
    return ossl_error(gname(g) + ": cannot read the public point uncompressed");
  }
  return std::vector<std::uint8_t>(enc.begin() + 1, enc.end());
}

}  // namespace

struct KeyExchange::Impl {
  Ossl<EVP_PKEY> key;
};

std::span<const KeGroup> supported_groups() noexcept { return kGroups; }

Result<KeGroup> group_from_id(std::uint16_t transform_id) {
  for (KeGroup g : kGroups) {
    if (static_cast<std::uint16_t>(g) == transform_id) return g;
  }
  return make_error("key exchange method " + std::to_string(transform_id) +
                    " is not supported (supported: 14 MODP-2048, 19 ECP-256, 20 ECP-384, 21 ECP-521, 31 Curve25519)");
}

const char* group_name(KeGroup g) noexcept {
  switch (g) {
    case KeGroup::modp2048: return "MODP-2048 (group 14)";
    case KeGroup::ecp256: return "ECP-256 (group 19)";
    case KeGroup::ecp384: return "ECP-384 (group 20)";
    case KeGroup::ecp521: return "ECP-521 (group 21)";
    case KeGroup::curve25519: return "Curve25519 (group 31)";
  }
  return "unknown group";
}

std::size_t key_exchange_length(std::uint16_t group) noexcept {
  for (KeGroup g : kGroups) {
    if (static_cast<std::uint16_t>(g) == group) return is_ecp(g) ? 2 * field_len(g) : field_len(g);
  }
  return 0;
}

std::size_t shared_secret_length(KeGroup g) noexcept { return field_len(g); }

std::span<const std::uint8_t> modp2048_prime() noexcept { return kModp2048P; }

KeyExchange::KeyExchange(KeGroup g, std::unique_ptr<Impl> impl, std::vector<std::uint8_t> pub) noexcept
    : group_(g), impl_(std::move(impl)), public_(std::move(pub)) {}
KeyExchange::KeyExchange(KeyExchange&&) noexcept = default;
KeyExchange& KeyExchange::operator=(KeyExchange&&) noexcept = default;
KeyExchange::~KeyExchange() = default;

Result<KeyExchange> KeyExchange::create(std::uint16_t group_id) {
  auto g = group_from_id(group_id);
  if (!g) return g.error();
  return create(*g);
}

Result<KeyExchange> KeyExchange::create(KeGroup group) {
  auto impl = std::make_unique<Impl>();
  std::vector<std::uint8_t> pub;
  if (group == KeGroup::modp2048) {
    auto m = modp_params();
    if (!m) return m.error();
    auto domain = modp_pkey(*m, nullptr, nullptr);
    if (!domain) return domain.error();
    Ossl<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, domain->get(), nullptr));
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_generate(ctx.get(), &raw) != 1) {
      return ossl_error(gname(group) + ": key generation failed");
    }
    impl->key.reset(raw);
    auto v = bn_param_padded(raw, OSSL_PKEY_PARAM_PUB_KEY, kModpLen);
    if (!v) return v.error();
    pub = std::move(*v);
  } else if (is_ecp(group)) {
    Ossl<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_group_name(ctx.get(), ec_name(group)) != 1 || EVP_PKEY_generate(ctx.get(), &raw) != 1) {
      return ossl_error(gname(group) + ": key generation failed");
    }
    impl->key.reset(raw);
    auto v = ec_public_xy(group, raw);
    if (!v) return v.error();
    pub = std::move(*v);
  } else if (group == KeGroup::curve25519) {
    // One key generation context per thread (it holds no key): not a
    // fetch by name for every key pair.
    thread_local Ossl<EVP_PKEY_CTX> gen = [] {
      Ossl<EVP_PKEY_CTX> c(EVP_PKEY_CTX_new_from_name(nullptr, "X25519", nullptr));
      if (c && EVP_PKEY_keygen_init(c.get()) != 1) c.reset();
      return c;
    }();
    EVP_PKEY* raw = nullptr;
    if (gen && EVP_PKEY_generate(gen.get(), &raw) == 1) impl->key.reset(raw);
    if (!impl->key) return ossl_error(gname(group) + ": key generation failed");
    pub.resize(32);
    std::size_t len = pub.size();
    if (EVP_PKEY_get_raw_public_key(impl->key.get(), pub.data(), &len) != 1 || len != 32) {
      return ossl_error(gname(group) + ": cannot read the public key");
    }
  } else {
    return make_error("key exchange method " + std::to_string(static_cast<unsigned>(group)) + " is not supported");
  }
  return KeyExchange(group, std::move(impl), std::move(pub));
}

Result<KeyExchange> KeyExchange::from_private(KeGroup group, std::span<const std::uint8_t> priv) {
  auto impl = std::make_unique<Impl>();
  std::vector<std::uint8_t> pub;
  if (group == KeGroup::modp2048) {
    if (priv.empty() || priv.size() > kModpLen) return make_error("MODP-2048 private value must be 1..256 bytes");
    auto m = modp_params();
    if (!m) return m.error();
    Ossl<BIGNUM> x(BN_secure_new());
    Ossl<BIGNUM> y(BN_new());
    Ossl<BN_CTX> bnctx(BN_CTX_secure_new());
    if (!x || !y || !bnctx || BN_bin2bn(priv.data(), static_cast<int>(priv.size()), x.get()) == nullptr) {
      return ossl_error("MODP-2048: out of memory");
    }
    BN_set_flags(x.get(), BN_FLG_CONSTTIME);
    if (BN_is_zero(x.get()) || BN_cmp(x.get(), m->q.get()) >= 0) {
      return make_error("MODP-2048 private value must be in [1, q-1], q = (p-1)/2");
    }
    if (BN_mod_exp(y.get(), m->g.get(), x.get(), m->p.get(), bnctx.get()) != 1) return ossl_error("MODP-2048: g^x failed");
    auto key = modp_pkey(*m, x.get(), y.get());
    if (!key) return key.error();
    impl->key = std::move(*key);
    pub.resize(kModpLen);
    if (BN_bn2binpad(y.get(), pub.data(), static_cast<int>(kModpLen)) != static_cast<int>(kModpLen)) {
      return ossl_error("MODP-2048: public value too long");
    }
  } else if (is_ecp(group)) {
    const std::size_t f = field_len(group);
    if (priv.size() != f) {
      return make_error(gname(group) + " private value is " + std::to_string(priv.size()) + " bytes, expected " +
                        std::to_string(f));
    }
    auto grp = ec_group(group);
    if (!grp) return grp.error();
    Ossl<BIGNUM> d(BN_secure_new());
    Ossl<BN_CTX> bnctx(BN_CTX_secure_new());
    Ossl<EC_POINT> q(EC_POINT_new(grp->get()));
    if (!d || !bnctx || !q || BN_bin2bn(priv.data(), static_cast<int>(f), d.get()) == nullptr) {
      return ossl_error(gname(group) + ": out of memory");
    }
    BN_set_flags(d.get(), BN_FLG_CONSTTIME);
    if (BN_is_zero(d.get()) || BN_cmp(d.get(), EC_GROUP_get0_order(grp->get())) >= 0) {
      return make_error(gname(group) + " private value must be in [1, n-1]");
    }
    std::vector<std::uint8_t> enc(1 + 2 * f);
    if (EC_POINT_mul(grp->get(), q.get(), d.get(), nullptr, nullptr, bnctx.get()) != 1 ||
        EC_POINT_point2oct(grp->get(), q.get(), POINT_CONVERSION_UNCOMPRESSED, enc.data(), enc.size(), bnctx.get()) !=
            enc.size()) {
      return ossl_error(gname(group) + ": d * G failed");
    }
    auto key = ec_pkey(group, d.get(), enc);
    if (!key) return key.error();
    impl->key = std::move(*key);
    pub.assign(enc.begin() + 1, enc.end());
  } else if (group == KeGroup::curve25519) {
    if (priv.size() != 32) return make_error("X25519 private value must be 32 bytes");
    impl->key.reset(EVP_PKEY_new_raw_private_key_ex(nullptr, "X25519", nullptr, priv.data(), priv.size()));
    if (!impl->key) return ossl_error("X25519: cannot import the private key");
    pub.resize(32);
    std::size_t len = pub.size();
    if (EVP_PKEY_get_raw_public_key(impl->key.get(), pub.data(), &len) != 1 || len != 32) {
      return ossl_error("X25519: cannot read the public key");
    }
  } else {
    return make_error("key exchange method " + std::to_string(static_cast<unsigned>(group)) + " is not supported");
  }
  return KeyExchange(group, std::move(impl), std::move(pub));
}

Result<SecretBytes> KeyExchange::derive(std::span<const std::uint8_t> peer_public) const {
  Ossl<EVP_PKEY> peer;
  if (group_ == KeGroup::modp2048) {
    auto p = modp_peer(peer_public);
    if (!p) return p.error();
    peer = std::move(*p);
  } else if (is_ecp(group_)) {
    auto p = ec_peer(group_, peer_public);
    if (!p) return p.error();
    peer = std::move(*p);
  } else {
    if (peer_public.size() != 32) {
      return make_error("Curve25519 (group 31) public value is " + std::to_string(peer_public.size()) +
                        " bytes, expected 32 (RFC 8031 section 2)");
    }
    peer.reset(EVP_PKEY_new_raw_public_key_ex(nullptr, "X25519", nullptr, peer_public.data(), peer_public.size()));
    if (!peer) return ossl_error("Curve25519 (group 31): cannot import the public value");
  }

  Ossl<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, impl_->key.get(), nullptr));
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1) return ossl_error(gname(group_) + ": derive init failed");
  if (group_ == KeGroup::modp2048 && EVP_PKEY_CTX_set_dh_pad(ctx.get(), 1) != 1) {
    return ossl_error(gname(group_) + ": cannot ask for a padded secret");
  }
  // The peer was validated above.
  if (EVP_PKEY_derive_set_peer_ex(ctx.get(), peer.get(), 0) != 1) return ossl_error(gname(group_) + ": bad peer key");
  std::size_t len = 0;
  if (EVP_PKEY_derive(ctx.get(), nullptr, &len) != 1 || len == 0) return ossl_error(gname(group_) + ": derive failed");
  SecretBytes raw(len);
  if (EVP_PKEY_derive(ctx.get(), raw.data(), &len) != 1) {
    if (group_ == KeGroup::curve25519) {
      // OpenSSL refuses exactly one case: an all-zero result.
      return ossl_error(
          "Curve25519 (group 31) shared secret is all zero: the peer sent a low-order point (RFC 7748 section 6.1)");
    }
    return ossl_error(gname(group_) + ": derive failed");
  }
  const std::size_t want = field_len(group_);
  if (len > want) return make_error(gname(group_) + ": shared secret longer than expected");
  SecretBytes out(want);
  std::memcpy(out.data() + (want - len), raw.data(), len);  // left-pad (RFC 7296 2.14)
  if (group_ == KeGroup::curve25519) {
    std::uint8_t acc = 0;
    for (std::uint8_t b : out.bytes()) acc |= b;
    if (acc == 0) {
      return make_error(
          "Curve25519 (group 31) shared secret is all zero: the peer sent a low-order point (RFC 7748 section 6.1)");
    }
  }
  return out;
}

}  // namespace cygnet::ike
