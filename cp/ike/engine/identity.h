// The ID payload (RFC 7296 3.5) that stands for a configured identity.
#pragma once

#include "cp/ike/engine/conn.h"
#include "cp/ike/msg/msg.h"

namespace cygnet::ike {

// FQDN, RFC 822 and address identities as they are; `any` (or an address
// that does not parse) becomes `fallback`, our address (2.15 leaves the
// choice of ID to us).
IdPayload id_payload_of(const Identity& id, const IpAddress& fallback, bool responder);

}  // namespace cygnet::ike
