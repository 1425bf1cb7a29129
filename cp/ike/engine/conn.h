// cygnet-ike's view of its configuration: connections (what to negotiate
// with whom) and the pre-shared keys. The libconfig++ loader
// (cp/ike/config/config.h) fills these; the engine (engine.h) only reads them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cp/ike/crypto/key_exchange.h"
#include "cp/ike/crypto/prf.h"
#include "cp/ike/crypto/secret_bytes.h"
#include "cp/ike/crypto/transforms.h"
#include "shared/ip.h"
#include "shared/policy.h"
#include "shared/sa.h"

namespace cygnet::ike {

// One IKE SA proposal: a fully specified combination. The initiator sends
// one IKE proposal per entry, in order; the responder picks the first of its
// own entries that any of the peer's proposals allows.
struct IkeSuite {
  EncrId encr = EncrId::aes_gcm_16;
  std::uint16_t encr_key_bits = 128;
  IntegId integ = IntegId::none;  // none with an AEAD
  PrfId prf = PrfId::hmac_sha2_256;
  KeGroup group = KeGroup::curve25519;
  bool operator==(const IkeSuite&) const = default;
};

// One ESP proposal.
struct EspSuite {
  EncrId encr = EncrId::aes_gcm_16;
  std::uint16_t encr_key_bits = 128;
  IntegId integ = IntegId::none;
  bool esn = false;  // offer/accept extended sequence numbers (RFC 4304)
  // PFS: the key exchange of CREATE_CHILD_SA rekeys and further Child SAs
  // (RFC 7296 1.3.1); none: no KE. The first Child SA has none (1.2).
  std::optional<KeGroup> group = std::nullopt;
  bool operator==(const EspSuite&) const = default;
};

// An identity as configured: "fqdn:gw.example", "user@example" (RFC822),
// an IPv4/IPv6 address, or empty (our address / accept any).
struct Identity {
  enum class Type : std::uint8_t { any = 0, ipv4 = 1, fqdn = 2, rfc822 = 3, ipv6 = 5 };
  Type type = Type::any;
  std::string value;  // text form (the address as text for ipv4/ipv6)
  bool operator==(const Identity&) const = default;
  std::string to_string() const;
  static Result<Identity> parse(std::string_view text);
};

// A traffic selector as configured: a prefix, a protocol (0 = any) and a
// port range (ICMP: type/code as in shared/policy.h).
struct TsConfig {
  IpPrefix prefix;
  std::uint8_t proto = kProtoAny;
  PortRange ports;
  bool operator==(const TsConfig&) const = default;
};

enum class StartAction : std::uint8_t {
  none = 0,   // only when the peer asks (responder)
  start = 1,  // initiate on load
  trap = 2,   // install a trap policy; the dataplane's ACQUIRE starts it
};

struct Connection {
  std::string name;
  IpAddress local_addr;                // our address (source of IKE)
  std::vector<IpPrefix> remote_addrs;  // who may be the peer; the first host is dialled
  std::uint16_t local_port = 500;
  std::uint16_t remote_port = 500;
  Identity local_id;   // any: our address
  Identity remote_id;  // any: accept the peer's
  std::string psk_ref;  // key of the PSK in the secrets file
  std::vector<IkeSuite> ike;
  std::vector<EspSuite> esp;
  std::vector<TsConfig> local_ts;   // empty: our address
  std::vector<TsConfig> remote_ts;  // empty: the peer's address
  Mode mode = Mode::tunnel;
  StartAction start = StartAction::none;
  bool force_encap = false;  // UDP-encapsulate ESP even without a NAT (RFC 7296 2.23)
  std::uint32_t ike_lifetime_s = 14400;
  std::uint32_t child_lifetime_s = 3600;
  // Hard limits of each Child SA's SAs in cygnet-dp (0: none); the soft
  // limit that starts the rekey is 80-90 % of it, like the time.
  std::uint64_t child_lifetime_bytes = 0;
  std::uint64_t child_lifetime_packets = 0;
  std::uint32_t dpd_s = 0;  // liveness check interval; 0: none
  bool operator==(const Connection&) const = default;
};

// The PSKs, by reference (Connection::psk_ref).
using PskMap = std::map<std::string, SecretBytes, std::less<>>;

struct IkeConfig {
  std::vector<Connection> connections;
  PskMap psks;
  // Global settings.
  std::uint32_t cookie_threshold = 512;  // half-open IKE SAs before cookies are asked for
  std::uint32_t half_open_timeout_s = 30;
  std::uint32_t retransmit_base_ms = 1000;  // then doubled, up to retransmit_tries sends
  std::uint32_t retransmit_tries = 5;
  std::uint32_t reqid_base = 0x10000;  // reqids cygnet-ike allocates start here
  // NAT keepalives (RFC 3948 2.3): the side behind a NAT sends a one-byte
  // 0xFF datagram on UDP 4500 this often, to keep the NAT's mapping; 0: none.
  std::uint32_t nat_keepalive_s = 20;
  std::string dataplane_instance = "default";  // the shm segment to push SAs to
};

}  // namespace cygnet::ike
