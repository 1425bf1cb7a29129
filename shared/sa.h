// Security Association configuration shared by cygnet-ike, cygnetctl and
// cygnet-dp: algorithms, keys, addresses, lifetimes, replay, encapsulation.
// validate_sa() is the single gate every SA passes (config, CLI, IKE, rings).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shared/ip.h"
#include "shared/policy.h"
#include "shared/result.h"
#include "shared/secret.h"

namespace cygnet {

enum class Direction : std::uint8_t { in = 0, out = 1 };
enum class Mode : std::uint8_t { tunnel = 0, transport = 1 };

// ESP encryption transforms (IKEv2 transform type 1 ids in the table).
enum class CipherAlg : std::uint8_t {
  null = 0,           // RFC 2410, debugging only, needs an integrity algorithm
  aes_cbc_128,        // RFC 3602
  aes_cbc_256,
  aes_gcm16_128,      // RFC 4106, 16-byte ICV
  aes_gcm16_256,
  chacha20_poly1305,  // RFC 7634
};

// ESP integrity transforms (IKEv2 transform type 3).
enum class IntegAlg : std::uint8_t {
  none = 0,          // only with an AEAD cipher
  hmac_sha1_96,      // RFC 2404
  hmac_sha256_128,   // RFC 4868
  hmac_sha384_192,
  hmac_sha512_256,
};

struct CipherInfo {
  CipherAlg alg;
  const char* name;     // as written in config and on the CLI
  std::uint16_t ikev2_id;
  std::uint8_t key_len;   // bytes, excluding salt
  std::uint8_t salt_len;  // bytes appended to the key material (RFC 4106 / 7634)
  std::uint8_t iv_len;    // bytes of IV on the wire
  std::uint8_t block;     // padding alignment of the ciphertext
  std::uint8_t icv_len;   // AEAD tag length, 0 otherwise
  bool aead;
};

struct IntegInfo {
  IntegAlg alg;
  const char* name;
  std::uint16_t ikev2_id;
  std::uint8_t key_len;
  std::uint8_t icv_len;  // truncated ICV on the wire
};

std::span<const CipherInfo> cipher_table() noexcept;
std::span<const IntegInfo> integ_table() noexcept;
const CipherInfo& cipher_info(CipherAlg a) noexcept;
const IntegInfo& integ_info(IntegAlg a) noexcept;
Result<CipherAlg> cipher_from_name(std::string_view name);
Result<IntegAlg> integ_from_name(std::string_view name);

// Limits of the SA. 0 means "no limit". Time is kept by the control plane;
// bytes and packets are counted by the dataplane.
struct Lifetime {
  std::uint64_t bytes = 0;
  std::uint64_t packets = 0;
  std::uint64_t add_seconds = 0;
};

struct UdpEncap {  // RFC 3948 ESP-in-UDP
  bool enabled = false;
  std::uint16_t sport = 4500;
  std::uint16_t dport = 4500;
};

// Larger than RFC 4303's suggested 64: packets of one SA that arrive on
// another core's queue reach the owner core later than those on its own
// (docs/dataplane.md, "Decisions"). The window's bitmap has room for 4096
// whatever the size, so a wider window costs nothing per packet.
inline constexpr std::uint32_t kDefaultReplayWindow = 1024;
inline constexpr std::uint32_t kMinReplayWindow = 32;    // RFC 4303 3.4.3
inline constexpr std::uint32_t kMaxReplayWindow = 4096;

struct SaConfig {
  std::uint32_t spi = 0;
  Direction dir = Direction::out;
  IpAddress src;  // outer source (tunnel) / our or peer's address (transport)
  IpAddress dst;
  Mode mode = Mode::tunnel;
  std::uint32_t reqid = 0;  // ties the SA to policies; 0 = none

  CipherAlg cipher = CipherAlg::aes_gcm16_128;
  SecretKey cipher_key;  // key followed by salt for AEAD
  IntegAlg integ = IntegAlg::none;
  SecretKey integ_key;

  bool esn = false;          // RFC 4304 extended sequence numbers
  bool anti_replay = true;   // inbound only; false must be asked for explicitly
  std::uint32_t replay_window = kDefaultReplayWindow;

  UdpEncap encap;

  // Outbound tunnel-mode header choices.
  std::uint8_t outer_ttl = 64;  // TTL / hop limit of the outer header
  bool copy_dscp = true;        // copy the inner DSCP to the outer header
  // TFC padding (RFC 4303 2.7): pad the inner packet with zeros up to this
  // many bytes before encryption; 0 = off. Tunnel mode only.
  std::uint16_t tfc_pad_to = 0;

  Lifetime soft;
  Lifetime hard;

  // Inbound: the inner packet must match one of these after decryption
  // (RFC 4301 5.2). Empty means "any" only in transport mode with no policy.
  std::vector<Selector> selectors;
};

// Checks everything that can be checked without other state: SPI range,
// address families, algorithm/key combinations and lengths, replay window,
// lifetimes and encapsulation. Error messages never include key bytes.
Result<void> validate_sa(const SaConfig& sa);

const char* direction_name(Direction d) noexcept;
const char* mode_name(Mode m) noexcept;
Result<Direction> direction_from_name(std::string_view s);
Result<Mode> mode_from_name(std::string_view s);

}  // namespace cygnet
