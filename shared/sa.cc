#include "shared/sa.h"

#include <array>

namespace cygnet {

namespace {

// IKEv2 transform ids: IANA "Transform Type 1 / 3" registries.
constexpr std::array<CipherInfo, 6> kCiphers{{
    {CipherAlg::null, "null", 11, 0, 0, 0, 4, 0, false},
    {CipherAlg::aes_cbc_128, "aes-cbc-128", 12, 16, 0, 16, 16, 0, false},
    {CipherAlg::aes_cbc_256, "aes-cbc-256", 12, 32, 0, 16, 16, 0, false},
    {CipherAlg::aes_gcm16_128, "aes-gcm16-128", 20, 16, 4, 8, 4, 16, true},
    {CipherAlg::aes_gcm16_256, "aes-gcm16-256", 20, 32, 4, 8, 4, 16, true},
    {CipherAlg::chacha20_poly1305, "chacha20-poly1305", 28, 32, 4, 8, 4, 16, true},
}};

constexpr std::array<IntegInfo, 5> kIntegs{{
    {IntegAlg::none, "none", 0, 0, 0},
    {IntegAlg::hmac_sha1_96, "hmac-sha1-96", 2, 20, 12},
    {IntegAlg::hmac_sha256_128, "hmac-sha256-128", 12, 32, 16},
    {IntegAlg::hmac_sha384_192, "hmac-sha384-192", 13, 48, 24},
    {IntegAlg::hmac_sha512_256, "hmac-sha512-256", 14, 64, 32},
}};

static_assert([] {
  for (std::size_t i = 0; i < kCiphers.size(); ++i)
    if (static_cast<std::size_t>(kCiphers[i].alg) != i) return false;
  for (std::size_t i = 0; i < kIntegs.size(); ++i)
    if (static_cast<std::size_t>(kIntegs[i].alg) != i) return false;
  return true;
}(), "algorithm tables must be indexed by their enum");

std::string names_of_ciphers() {
  std::string s;
  for (const auto& c : kCiphers) s += (s.empty() ? "" : ", ") + std::string(c.name);
  return s;
}
std::string names_of_integs() {
  std::string s;
  for (const auto& c : kIntegs) s += (s.empty() ? "" : ", ") + std::string(c.name);
  return s;
}

Result<void> check_lifetime_pair(std::uint64_t soft, std::uint64_t hard, const char* what) {
  if (soft != 0 && hard != 0 && soft > hard) {
    return make_error(std::string("soft ") + what + " lifetime (" + std::to_string(soft) +
                      ") exceeds the hard one (" + std::to_string(hard) + ")");
  }
  if (soft != 0 && hard == 0) {
    return make_error(std::string("soft ") + what + " lifetime set without a hard one");
  }
  return {};
}

}  // namespace

std::span<const CipherInfo> cipher_table() noexcept { return kCiphers; }
std::span<const IntegInfo> integ_table() noexcept { return kIntegs; }
const CipherInfo& cipher_info(CipherAlg a) noexcept { return kCiphers[static_cast<std::size_t>(a)]; }
const IntegInfo& integ_info(IntegAlg a) noexcept { return kIntegs[static_cast<std::size_t>(a)]; }

Result<CipherAlg> cipher_from_name(std::string_view name) {
  for (const auto& c : kCiphers)
    if (name == c.name) return c.alg;
  return make_error("unknown encryption algorithm '" + std::string(name) + "' (expected one of: " +
                    names_of_ciphers() + ")");
}

Result<IntegAlg> integ_from_name(std::string_view name) {
  for (const auto& c : kIntegs)
    if (name == c.name) return c.alg;
  return make_error("unknown integrity algorithm '" + std::string(name) + "' (expected one of: " +
                    names_of_integs() + ")");
}

const char* direction_name(Direction d) noexcept { return d == Direction::in ? "in" : "out"; }
const char* mode_name(Mode m) noexcept { return m == Mode::tunnel ? "tunnel" : "transport"; }

Result<Direction> direction_from_name(std::string_view s) {
  if (s == "in") return Direction::in;
  if (s == "out") return Direction::out;
  return make_error("direction '" + std::string(s) + "' is neither 'in' nor 'out'");
}

Result<Mode> mode_from_name(std::string_view s) {
  if (s == "tunnel") return Mode::tunnel;
  if (s == "transport") return Mode::transport;
  return make_error("mode '" + std::string(s) + "' is neither 'tunnel' nor 'transport'");
}

Result<void> validate_sa(const SaConfig& sa) {
  // RFC 4303 2.1: SPI 0 is reserved for local use, 1-255 reserved by IANA.
  if (sa.spi < 256) {
    return make_error("SPI " + std::to_string(sa.spi) + " is reserved (RFC 4303 2.1: must be >= 256)");
  }
  if (sa.src.family == Family::none || sa.dst.family == Family::none) {
    return make_error("SA needs both a source and a destination address");
  }
  if (sa.src.family != sa.dst.family) {
    return make_error(std::string("SA source is ") + family_name(sa.src.family) + " but destination is " +
                      family_name(sa.dst.family));
  }
  if (sa.src.is_unspecified() || sa.dst.is_unspecified()) {
    return make_error("SA source and destination must not be the unspecified address");
  }

  const auto& ci = cipher_info(sa.cipher);
  const auto& ii = integ_info(sa.integ);
  if (ci.aead && sa.integ != IntegAlg::none) {
    return make_error(std::string(ci.name) + " is an AEAD cipher: integrity must be 'none' (RFC 4106/7634)");
  }
  if (!ci.aead && sa.integ == IntegAlg::none) {
    // RFC 4303 3.2 allows confidentiality-only, but it is unsafe; we refuse it,
    // and NULL+NULL is forbidden outright (RFC 4303 3.2).
    return make_error(std::string(ci.name) + " needs an integrity algorithm (confidentiality-only ESP is refused)");
  }
  const std::size_t want_ck = std::size_t{ci.key_len} + ci.salt_len;
  if (sa.cipher_key.size() != want_ck) {
    return make_error(std::string(ci.name) + " needs a " + std::to_string(want_ck) + "-byte key" +
                      (ci.salt_len ? " (" + std::to_string(ci.key_len) + " key + " +
                                         std::to_string(ci.salt_len) + " salt)"
                                   : std::string()) +
                      ", got " + std::to_string(sa.cipher_key.size()));
  }
  if (sa.integ_key.size() != ii.key_len) {
    return make_error(std::string(ii.name) + " needs a " + std::to_string(ii.key_len) + "-byte key, got " +
                      std::to_string(sa.integ_key.size()));
  }

  if (sa.anti_replay) {
    if (sa.replay_window < kMinReplayWindow || sa.replay_window > kMaxReplayWindow) {
      return make_error("replay window " + std::to_string(sa.replay_window) + " is outside " +
                        std::to_string(kMinReplayWindow) + "-" + std::to_string(kMaxReplayWindow) +
                        " (disable anti-replay explicitly instead of using 0)");
    }
  }

  if (sa.outer_ttl == 0) return make_error("outer TTL must be 1-255");
  if (sa.tfc_pad_to != 0 && sa.mode != Mode::tunnel) {
    return make_error("TFC padding needs tunnel mode (a transport-mode payload has no length of its own)");
  }
  if (sa.encap.enabled && (sa.encap.sport == 0 || sa.encap.dport == 0)) {
    return make_error("UDP encapsulation needs non-zero source and destination ports");
  }

  if (auto r = check_lifetime_pair(sa.soft.bytes, sa.hard.bytes, "byte"); !r) return r;
  if (auto r = check_lifetime_pair(sa.soft.packets, sa.hard.packets, "packet"); !r) return r;
  if (auto r = check_lifetime_pair(sa.soft.add_seconds, sa.hard.add_seconds, "time"); !r) return r;

  for (std::size_t i = 0; i < sa.selectors.size(); ++i) {
    if (auto r = validate_selector(sa.selectors[i]); !r) {
      return make_error("traffic selector " + std::to_string(i + 1) + ": " + r.error().message);
    }
  }
  return {};
}

}  // namespace cygnet
