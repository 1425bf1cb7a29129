// A lean IKEv2 initiator for load generation (docs/benchmarks.md, "IKE
// set-ups"): IKE_SA_INIT, IKE_AUTH with a pre-shared key and the first Child
// SA, then a Delete of the IKE SA. It is what bench/ike/ike_loadgen.cc sends
// to a responder over UDP and what bench/ike_bench.cc feeds to an Engine in
// process.
//
// Everything a responder can check is real: the key exchange (X25519 or any
// group of cp/ike/crypto), SKEYSEED and SK_* (RFC 7296 2.14), the SK payload
// and our AUTH (2.15). The responder's AUTH is verified. Left out, since
// nothing is installed on our side: Child SA keys, retransmissions (a lost
// answer is a timeout for the caller to count), and INVALID_KE_PAYLOAD
// retries (the load generator offers the responder's group). A COOKIE (2.6)
// is answered.
//
// The key pair may be shared by several IKE SAs (RFC 7296 2.12 allows
// reusing a DH exponential); the shared secret is computed for every SA.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "cp/ike/crypto/kdf.h"
#include "cp/ike/crypto/key_exchange.h"
#include "cp/ike/crypto/secret_bytes.h"
#include "cp/ike/crypto/sk_ciphers.h"
#include "cp/ike/engine/conn.h"
#include "cp/ike/engine/ts.h"
#include "cp/ike/msg/msg.h"

namespace cygnet::ike::loadgen {

struct InitiatorConfig {
  IpAddress local, remote;
  std::uint16_t local_port = 500, remote_port = 500;  // IKE_SA_INIT
  std::uint16_t local_natt_port = 4500, remote_natt_port = 4500;  // after a NAT is seen (2.23)
  IkeSuite ike;  // the one IKE proposal
  EspSuite esp;  // the one ESP proposal
  SecretBytes psk;
  Identity local_id;   // IDi; any: our address
  Identity remote_id;  // sent as IDr and required of the responder; any: accept any
  std::vector<TsRange> tsi, tsr;  // empty: our / the responder's address
};

// A datagram to send. natt: from our NAT-T port to the responder's, with
// the non-ESP marker already in front (RFC 3948 2.2).
struct Datagram {
  Bytes data;
  bool natt = false;
};

enum class SetupState : std::uint8_t { idle, init_sent, auth_sent, established, delete_sent, done, failed };

class InitiatorSa {
 public:
  // The IKE_SA_INIT request. `ke` must be of cfg.ike.group; cfg must outlive
  // this object.
  Result<Datagram> start(const InitiatorConfig& cfg, std::uint64_t spi_i, std::shared_ptr<const KeyExchange> ke);
  // The IKE_SA_INIT response (an IKE message, marker removed): the IKE_AUTH
  // request, or the IKE_SA_INIT request again with the responder's COOKIE.
  Result<Datagram> on_init_response(std::span<const std::uint8_t> msg);
  // The IKE_AUTH response: ok if it opens, the responder's AUTH verifies and
  // a Child SA was agreed (one of our ESP proposals, selectors present).
  Result<void> on_auth_response(std::span<const std::uint8_t> msg);
  // A Delete of the IKE SA (INFORMATIONAL request, message ID 2).
  Result<Datagram> delete_request();
  // The answer to it.
  Result<void> on_delete_response(std::span<const std::uint8_t> msg);

  std::uint64_t spi_i() const noexcept { return spi_i_; }
  std::uint64_t spi_r() const noexcept { return spi_r_; }
  SetupState state() const noexcept { return state_; }
  // The responder saw a NAT (or pretended to): IKE_AUTH onwards on NAT-T ports.
  bool natt() const noexcept { return natt_; }
  std::uint32_t child_spi_out() const noexcept { return child_spi_out_; }  // the responder's inbound SPI

 private:
  Error fail(std::string why);
  Bytes build_init();
  Result<Bytes> seal(ExchangeType ex, std::uint32_t mid, std::span<const Payload> inner);
  Datagram frame(Bytes msg) const;

  const InitiatorConfig* cfg_ = nullptr;
  std::shared_ptr<const KeyExchange> ke_;
  std::uint64_t spi_i_ = 0, spi_r_ = 0;
  SetupState state_ = SetupState::idle;
  bool natt_ = false;
  unsigned cookie_rounds_ = 0;
  Bytes ni_, nr_, cookie_;
  Bytes init_request_, init_response_;
  std::optional<IkeSaKeys> keys_;
  SkCipherPair ciphers_;
  std::uint32_t child_spi_in_ = 0, child_spi_out_ = 0;
};

}  // namespace cygnet::ike::loadgen
