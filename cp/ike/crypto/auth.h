// IKEv2 authentication data for pre-shared keys (RFC 7296 section 2.15).
//
//   InitiatorSignedOctets = RealMessage1 | NonceRData | MACedIDForI
//   MACedIDForI           = prf(SK_pi, RestOfInitIDPayload)
//   AUTH                  = prf(prf(PSK, "Key Pad for IKEv2"), InitiatorSignedOctets)
// and for the responder RealMessage2 | NonceIData | prf(SK_pr, IDr body).
// RestOfInitIDPayload is the ID payload body after the generic header: the
// ID Type octet, 3 reserved octets, then the identification data.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "cp/ike/crypto/prf.h"
#include "shared/result.h"
#include "shared/secret.h"

namespace cygnet::ike {

// prf(SK_p, ID body).
Result<std::vector<std::uint8_t>> maced_id(PrfId prf, const SecretKey& sk_p, std::span<const std::uint8_t> id_body);

// The signed octets: real_message | peer_nonce | prf(SK_p, id_body). For the
// initiator: its IKE_SA_INIT request, Nr, SK_pi, IDi; for the responder: its
// IKE_SA_INIT response, Ni, SK_pr, IDr. Also the input of a signature.
Result<std::vector<std::uint8_t>> signed_octets(PrfId prf, std::span<const std::uint8_t> real_message,
                                                std::span<const std::uint8_t> peer_nonce, const SecretKey& sk_p,
                                                std::span<const std::uint8_t> id_body);

// AUTH data for shared key authentication (Auth Method 2) of the side whose
// message, nonce, SK_p and ID are given.
Result<std::vector<std::uint8_t>> psk_auth(PrfId prf, std::span<const std::uint8_t> psk,
                                           std::span<const std::uint8_t> real_message,
                                           std::span<const std::uint8_t> peer_nonce, const SecretKey& sk_p,
                                           std::span<const std::uint8_t> id_body);

// Checks a received AUTH against the expected value in constant time.
bool auth_equal(std::span<const std::uint8_t> received, std::span<const std::uint8_t> expected) noexcept;

}  // namespace cygnet::ike
