#include "cp/ike/engine/identity.h"

namespace cygnet::ike {

IdPayload id_payload_of(const Identity& id, const IpAddress& fallback, bool responder) {
  switch (id.type) {
    case Identity::Type::fqdn: return IdPayload::text(IdType::fqdn, id.value, responder);
    case Identity::Type::rfc822: return IdPayload::text(IdType::rfc822_addr, id.value, responder);
    case Identity::Type::ipv4:
    case Identity::Type::ipv6:
      if (auto a = IpAddress::parse(id.value)) return IdPayload::address(*a, responder);
      break;
    case Identity::Type::any:
      break;
  }
  return IdPayload::address(fallback, responder);
}

}  // namespace cygnet::ike
