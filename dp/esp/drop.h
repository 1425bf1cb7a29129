// Why a packet was dropped: one table with the enum value, the name an
// operator reads and a line of help (CONVENTIONS.md, after VPP's errors).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace cygnet::dp {

#define CYGNET_DROP_REASONS(X)                                                              \
  X(none, "ok", "not dropped")                                                              \
  X(malformed, "malformed", "IP header or lengths inconsistent")                            \
  X(runt, "runt", "too short for the ESP header, IV, trailer and ICV")                      \
  X(not_esp, "not_esp", "neither ESP nor ESP-in-UDP as the SA expects")                     \
  X(spi_mismatch, "spi_mismatch", "SPI is not this SA's")                                   \
  X(block_align, "block_align", "ciphertext not a multiple of the cipher block")            \
  X(replay, "replay", "sequence number already received")                                   \
  X(replay_old, "replay_old", "sequence number left of the replay window")                  \
  X(icv, "icv", "integrity check value mismatch")                                           \
  X(pad_len, "pad_len", "pad length longer than the payload")                               \
  X(pad, "pad", "padding bytes are not 1, 2, 3, ... (RFC 4303 2.4)")                        \
  X(next_header, "next_header", "next header not allowed for the SA's mode")                \
  X(ecn, "ecn", "outer CE on a not-ECN-capable inner packet (RFC 6040 4.2)")                  \
  X(inner_policy, "inner_policy", "inner packet outside the SA's traffic selectors (RFC 4301 5.2)") \
  X(tfc_dummy, "tfc_dummy", "dummy packet (next header 59, RFC 4303 2.6), discarded")       \
  X(no_headroom, "no_headroom", "no room in the buffer for the ESP headers")                \
  X(no_tailroom, "no_tailroom", "no room in the buffer for the ESP trailer and ICV")        \
  X(too_big, "too_big", "packet would exceed 65535 bytes")                                  \
  X(seq_exhausted, "seq_exhausted", "outbound sequence numbers used up; rekey (RFC 4303 3.3.3)") \
  X(sa_expired, "sa_expired", "hard byte or packet lifetime reached")                       \
  X(crypto_error, "crypto_error", "IPsec-MB reported a job error")

enum class DropReason : std::uint8_t {
#define CYGNET_DROP_ENUM(e, name, help) e,
  CYGNET_DROP_REASONS(CYGNET_DROP_ENUM)
#undef CYGNET_DROP_ENUM
};

struct DropInfo {
  std::string_view name;
  std::string_view help;
};

inline constexpr std::array kDropInfo{
#define CYGNET_DROP_INFO(e, name, help) DropInfo{name, help},
    CYGNET_DROP_REASONS(CYGNET_DROP_INFO)
#undef CYGNET_DROP_INFO
};

inline constexpr std::size_t kDropReasonCount = kDropInfo.size();

constexpr std::string_view drop_name(DropReason r) noexcept { return kDropInfo[static_cast<std::size_t>(r)].name; }
constexpr std::string_view drop_help(DropReason r) noexcept { return kDropInfo[static_cast<std::size_t>(r)].help; }

}  // namespace cygnet::dp
