#include "cp/ike/crypto/nat.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include "cp/ike/crypto/ossl.h"

namespace cygnet::ike {

namespace {

// SHA-1 fetched once per thread, not looked up by name for every hash.
const EVP_MD* sha1() {
  thread_local detail::Ossl<EVP_MD> md(EVP_MD_fetch(nullptr, "SHA1", nullptr));
  return md.get();
}

}  // namespace

Result<NatHash> nat_detection_hash(std::span<const std::uint8_t, 8> spi_i, std::span<const std::uint8_t, 8> spi_r,
                                   const IpAddress& addr, std::uint16_t port) {
  std::size_t alen = 0;
  if (addr.family == Family::ipv4) {
    alen = 4;
  } else if (addr.family == Family::ipv6) {
    alen = 16;
  } else {
    return make_error("NAT detection: the address has no family (neither IPv4 nor IPv6)");
  }
  const std::uint8_t p[2] = {static_cast<std::uint8_t>(port >> 8), static_cast<std::uint8_t>(port)};
  detail::Ossl<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  NatHash out{};
  unsigned int len = 0;
  if (!ctx || sha1() == nullptr || EVP_DigestInit_ex2(ctx.get(), sha1(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), spi_i.data(), spi_i.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), spi_r.data(), spi_r.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), addr.bytes.data(), alen) != 1 || EVP_DigestUpdate(ctx.get(), p, sizeof p) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1 || len != out.size()) {
    ERR_clear_error();
    return make_error("NAT detection: SHA-1 failed");
  }
  return out;
}

}  // namespace cygnet::ike
