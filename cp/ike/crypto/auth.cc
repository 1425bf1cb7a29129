#include "cp/ike/crypto/auth.h"

#include <string_view>

#include "cp/ike/crypto/secret_bytes.h"

namespace cygnet::ike {

namespace {
constexpr std::string_view kKeyPad = "Key Pad for IKEv2";  // 17 octets, no terminator (2.15)

std::span<const std::uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
}  // namespace

Result<std::vector<std::uint8_t>> maced_id(PrfId prf_id, const SecretKey& sk_p, std::span<const std::uint8_t> id_body) {
  if (sk_p.size() != prf_output_len(prf_id)) return make_error("AUTH: SK_p does not match the PRF's key length");
  if (id_body.size() < 4) return make_error("AUTH: the ID payload body is shorter than its 4-octet type/reserved header");
  auto m = prf(prf_id, sk_p.bytes(), id_body);
  if (!m) return m.error();
  return std::vector<std::uint8_t>(m->bytes().begin(), m->bytes().end());
}

Result<std::vector<std::uint8_t>> signed_octets(PrfId prf_id, std::span<const std::uint8_t> real_message,
                                                std::span<const std::uint8_t> peer_nonce, const SecretKey& sk_p,
                                                std::span<const std::uint8_t> id_body) {
  if (real_message.empty() || peer_nonce.empty()) return make_error("AUTH: empty message or nonce");
  auto id = maced_id(prf_id, sk_p, id_body);
  if (!id) return id.error();
  std::vector<std::uint8_t> out;
  out.reserve(real_message.size() + peer_nonce.size() + id->size());
  out.insert(out.end(), real_message.begin(), real_message.end());
  out.insert(out.end(), peer_nonce.begin(), peer_nonce.end());
  out.insert(out.end(), id->begin(), id->end());
  return out;
}

Result<std::vector<std::uint8_t>> psk_auth(PrfId prf_id, std::span<const std::uint8_t> psk,
                                           std::span<const std::uint8_t> real_message,
                                           std::span<const std::uint8_t> peer_nonce, const SecretKey& sk_p,
                                           std::span<const std::uint8_t> id_body) {
  if (psk.empty()) return make_error("AUTH: the pre-shared key is empty");
  auto octets = signed_octets(prf_id, real_message, peer_nonce, sk_p, id_body);
  if (!octets) return octets.error();
  auto padded = prf(prf_id, psk, as_bytes(kKeyPad));  // a key: SecretKey, wiped on drop
  if (!padded) return padded.error();
  auto auth = prf(prf_id, padded->bytes(), *octets);
  if (!auth) return auth.error();
  return std::vector<std::uint8_t>(auth->bytes().begin(), auth->bytes().end());
}

bool auth_equal(std::span<const std::uint8_t> received, std::span<const std::uint8_t> expected) noexcept {
  return ct_equal(received, expected);
}

}  // namespace cygnet::ike
