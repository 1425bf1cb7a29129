// Status of a command, as cygnet-dp acknowledges it on the event ring: one
// table with the enum value, the name an operator reads and a line of help
// (CONVENTIONS.md, like dp/esp/drop.h). The numeric values travel on the
// wire: append only, never renumber.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace cygnet::shm {

#define CYGNET_SHM_STATUSES(X)                                                                   \
  X(ok, "ok", "applied")                                                                         \
  X(accepted, "accepted", "held in the open batch; applied or discarded as one at batch_commit") \
  X(malformed, "malformed", "a field is out of range or a reserved byte is not zero")            \
  X(unknown_type, "unknown_type", "message type unknown to this protocol version")               \
  X(bad_length, "bad_length", "message length does not match its type or does not fit a slot")  \
  X(bad_version, "bad_version", "message layout or protocol version not supported")              \
  X(invalid, "invalid", "well-formed but refused by validation; the text says why")              \
  X(exists, "exists", "an SA or policy with that key already exists")                            \
  X(not_found, "not_found", "no SA or policy with that key")                                     \
  X(no_batch, "no_batch", "batch_commit or batch_abort without an open batch")                   \
  X(in_batch, "in_batch", "batch_begin inside an open batch; the open batch was discarded")      \
  X(batch_too_big, "batch_too_big", "more commands than one batch may hold; batch discarded")    \
  X(batch_aborted, "batch_aborted", "the open batch was discarded by an earlier rejection")      \
  X(busy, "busy", "cygnet-dp cannot take the change now; retry later")                           \
  X(full, "full", "a table or a ring is full")                                                   \
  X(internal, "internal", "cygnet-dp failed to apply the change; see its log")

enum class Status : std::uint16_t {
#define CYGNET_SHM_STATUS_ENUM(e, name, help) e,
  CYGNET_SHM_STATUSES(CYGNET_SHM_STATUS_ENUM)
#undef CYGNET_SHM_STATUS_ENUM
};

struct StatusInfo {
  std::string_view name;
  std::string_view help;
};

inline constexpr std::array kStatusInfo{
#define CYGNET_SHM_STATUS_INFO(e, name, help) StatusInfo{name, help},
    CYGNET_SHM_STATUSES(CYGNET_SHM_STATUS_INFO)
#undef CYGNET_SHM_STATUS_INFO
};

inline constexpr std::size_t kStatusCount = kStatusInfo.size();

constexpr bool status_valid(std::uint16_t raw) noexcept { return raw < kStatusCount; }

constexpr std::string_view status_name(Status s) noexcept {
  const auto i = static_cast<std::size_t>(s);
  return i < kStatusCount ? kStatusInfo[i].name : std::string_view("?");
}
constexpr std::string_view status_help(Status s) noexcept {
  const auto i = static_cast<std::size_t>(s);
  return i < kStatusCount ? kStatusInfo[i].help : std::string_view("unknown status");
}

}  // namespace cygnet::shm
