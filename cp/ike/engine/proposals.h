// SA payloads from our suites, and the choice among the peer's proposals
// (RFC 7296 sections 2.7 and 3.3).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "cp/ike/engine/conn.h"
#include "cp/ike/msg/msg.h"

namespace cygnet::ike {

// Initiator: one proposal per suite, numbered from 1. IKE proposals carry
// `spi` (empty in IKE_SA_INIT), ESP proposals our inbound SPI.
SaPayload ike_sa_payload(std::span<const IkeSuite> suites, const Bytes& spi = {});
// with_ke: each suite's PFS group as a key exchange transform
// (CREATE_CHILD_SA); without, none (IKE_AUTH).
SaPayload esp_sa_payload(std::span<const EspSuite> suites, std::uint32_t spi, bool with_ke = false);

// Responder: the first of our suites (our preference) that one of the
// peer's proposals allows, and that proposal's number. `group` narrows the
// IKE choice to suites with that key exchange group (the one the peer's KE
// payload used), when given.
struct IkeChoice {
  IkeSuite suite;
  std::uint8_t number = 0;
};
std::optional<IkeChoice> select_ike(std::span<const IkeSuite> ours, const SaPayload& peer,
                                    std::optional<KeGroup> group = {});
struct EspChoice {
  EspSuite suite;
  std::uint8_t number = 0;
  std::uint32_t peer_spi = 0;
  std::optional<KeGroup> group = std::nullopt;  // CREATE_CHILD_SA: the key exchange chosen (PFS)
};
// ESP proposals in IKE_AUTH may list key exchange transforms (PFS for later
// rekeys); they are ignored there (RFC 7296 1.2: the first Child SA has no KE).
std::optional<EspChoice> select_esp(std::span<const EspSuite> ours, const SaPayload& peer);

// CREATE_CHILD_SA (1.3.1, 1.3.3): the choice with its key exchange. A suite
// of ours with a PFS group needs a proposal listing that group and the
// peer's KE of it; a suite without one takes a proposal without key
// exchange (or with NONE), or follows the peer's KE if the proposal lists
// its group (we accept the PFS the peer asks for). When a proposal fits
// but the KE is of another group, want_group names the one to ask for
// (INVALID_KE_PAYLOAD).
struct EspKeSelection {
  std::optional<EspChoice> choice;
  std::optional<KeGroup> want_group;
};
EspKeSelection select_esp_ke(std::span<const EspSuite> ours, const SaPayload& peer,
                             std::optional<std::uint16_t> ke_group);

// The responder's answer (one proposal, one transform of each type): the
// one proposal we sent, the suite in it. The proposal itself.
SaPayload ike_reply(const IkeChoice& c, const Bytes& spi = {});
SaPayload esp_reply(const EspChoice& c, std::uint32_t our_spi);

// Initiator: the responder's answer must be one proposal naming exactly one
// of our suites.
Result<IkeSuite> accept_ike_reply(std::span<const IkeSuite> ours, const SaPayload& reply);
Result<EspChoice> accept_esp_reply(std::span<const EspSuite> ours, const SaPayload& reply);

std::string to_string(const IkeSuite& s);
std::string to_string(const EspSuite& s);

}  // namespace cygnet::ike
