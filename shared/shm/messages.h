// Messages of the cygnet-dp shared-memory protocol (docs/shm.md): fixed
// wire layouts (namespace wire), the domain types both ends use, and the
// conversions between them. Every message is validated by its consumer:
// parse_command() / parse_event() return a Status and a reason, never a
// half-checked value; SA and policy payloads also pass validate_sa() /
// validate_policy().
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

#include "shared/ip.h"
#include "shared/policy.h"
#include "shared/result.h"
#include "shared/sa.h"
#include "shared/secret.h"
#include "shared/shm/layout.h"
#include "shared/shm/status.h"

namespace cygnet::shm {

inline constexpr std::uint16_t kMsgVersion = 1;    // layout version of every message below
inline constexpr std::uint32_t kMsgHeaderSize = 16;
inline constexpr std::size_t kMaxSelectorsPerSa = 8;
inline constexpr std::uint32_t kMaxCountersPerReply = 64;
inline constexpr std::size_t kMaxAckText = 200;
inline constexpr std::size_t kMaxClientName = 31;
inline constexpr std::size_t kMaxDropCounters = 32;
inline constexpr std::uint32_t kHelloSubscribe = 1;  // hello flag: send me asynchronous events

// ---- wire layouts (host byte order; addresses in network order) ----------
namespace wire {

struct Header {
  std::uint16_t type;
  std::uint16_t version;  // kMsgVersion
  std::uint32_t length;   // whole message, header included
  std::uint64_t id;       // commands: chosen by the client, non-zero; events: server sequence
};

struct Selector {  // 48
  std::uint8_t src_family;  // 0, 4 or 6
  std::uint8_t dst_family;
  std::uint8_t src_len;
  std::uint8_t dst_len;
  std::uint8_t proto;
  std::uint8_t reserved[3];
  std::uint16_t sport_lo, sport_hi, dport_lo, dport_hi;
  std::uint8_t src[16];
  std::uint8_t dst[16];
};

inline constexpr std::uint8_t kSaFlagEsn = 1;
inline constexpr std::uint8_t kSaFlagAntiReplay = 2;
inline constexpr std::uint8_t kSaFlagEncap = 4;
inline constexpr std::uint8_t kSaFlagCopyDscp = 8;
inline constexpr std::uint8_t kSaFlagsKnown = 15;

struct Sa {  // 624
  std::uint32_t spi;
  std::uint32_t reqid;
  std::uint32_t replay_window;
  std::uint8_t dir, mode, cipher, integ;
  std::uint8_t src_family, dst_family, cipher_key_len, integ_key_len;
  std::uint8_t flags, outer_ttl, n_selectors, reserved0;
  std::uint16_t tfc_pad_to, encap_sport, encap_dport, reserved1;
  std::uint8_t src[16];
  std::uint8_t dst[16];
  std::uint64_t soft_bytes, soft_packets, soft_seconds;
  std::uint64_t hard_bytes, hard_packets, hard_seconds;
  std::uint8_t cipher_key[SecretKey::kCapacity];
  std::uint8_t integ_key[SecretKey::kCapacity];
  Selector sel[kMaxSelectorsPerSa];
};

struct SaKey {  // 24
  std::uint32_t spi;
  std::uint8_t dir;
  std::uint8_t family;
  std::uint16_t reserved;
  std::uint8_t dst[16];
};

struct Policy {  // 60
  std::uint32_t priority;
  std::uint32_t reqid;
  std::uint8_t dir, action;
  std::uint16_t reserved;
  Selector sel;
};

struct PolicyKey {  // 52: what policy_delete matches (direction and selector)
  std::uint8_t dir;
  std::uint8_t reserved[3];
  Selector sel;
};

struct Hello {  // 48
  std::uint32_t pid;
  std::uint32_t flags;  // kHelloSubscribe
  std::uint16_t major, minor;
  std::uint32_t reserved;
  char name[kMaxClientName + 1];  // printable ASCII, NUL padded
};

struct BatchBegin {  // 8
  std::uint32_t expected;  // 0: unknown; above the server's limit: batch_too_big at once
  std::uint32_t reserved;
};

struct CountersQuery {  // 32
  std::uint8_t scope;  // 0 all, 1 one SA
  std::uint8_t dir, family, reserved;
  std::uint32_t spi;
  std::uint8_t dst[16];
  std::uint32_t cursor;  // 0: from the start; else the previous ack's value
  std::uint32_t max;     // 1..kMaxCountersPerReply
};

struct Ack {  // 224
  std::uint64_t cmd_id;
  std::uint64_t value;  // hello: epoch; batch_commit: commands applied; counters_query: next cursor
  std::uint16_t status;
  std::uint16_t cmd_type;
  std::uint16_t text_len;
  std::uint16_t reserved;
  char text[kMaxAckText];
};

struct SaExpired {  // 48
  std::uint32_t spi;
  std::uint8_t dir, family, which, reserved0;
  std::uint8_t dst[16];
  std::uint32_t reqid, reserved1;
  std::uint64_t bytes, packets;
};

struct SeqExhausted {  // 32
  std::uint32_t spi;
  std::uint8_t dir, family;
  std::uint16_t reserved0;
  std::uint8_t dst[16];
  std::uint32_t reqid, reserved1;
};

struct Acquire {  // 48
  std::uint32_t reqid;
  std::uint32_t policy_index;
  std::uint8_t family, proto;
  std::uint16_t sport, dport;
  std::uint8_t flags;  // 1: opaque ports (non-first fragment)
  std::uint8_t reserved;
  std::uint8_t src[16];
  std::uint8_t dst[16];
};

struct NatChange {  // 64
  std::uint32_t spi;
  std::uint32_t reqid;
  std::uint8_t dir, family, old_family, new_family;
  std::uint16_t old_port, new_port;
  std::uint8_t dst[16];
  std::uint8_t old_addr[16];
  std::uint8_t new_addr[16];
};

struct Counters {  // 312
  std::uint64_t query_id;  // the counters_query's id
  std::uint32_t spi;
  std::uint8_t dir, family, n_drops, reserved0;
  std::uint8_t dst[16];
  std::uint32_t reqid, reserved1;
  std::uint64_t packets, bytes;
  std::uint64_t drops[kMaxDropCounters];  // indexed by the dataplane's drop reason (dp/esp/drop.h)
};

struct EventsLost {  // 8
  std::uint64_t count;
};

#define CYGNET_SHM_WIRE_CHECK(T, size)                                              \
  static_assert(std::is_trivially_copyable_v<T> && std::is_standard_layout_v<T>); \
  static_assert(sizeof(T) == (size))
CYGNET_SHM_WIRE_CHECK(Header, 16);
CYGNET_SHM_WIRE_CHECK(Selector, 48);
CYGNET_SHM_WIRE_CHECK(Sa, 624);
CYGNET_SHM_WIRE_CHECK(SaKey, 24);
CYGNET_SHM_WIRE_CHECK(Policy, 60);
CYGNET_SHM_WIRE_CHECK(PolicyKey, 52);
CYGNET_SHM_WIRE_CHECK(Hello, 48);
CYGNET_SHM_WIRE_CHECK(BatchBegin, 8);
CYGNET_SHM_WIRE_CHECK(CountersQuery, 32);
CYGNET_SHM_WIRE_CHECK(Ack, 224);
CYGNET_SHM_WIRE_CHECK(SaExpired, 48);
CYGNET_SHM_WIRE_CHECK(SeqExhausted, 32);
CYGNET_SHM_WIRE_CHECK(Acquire, 48);
CYGNET_SHM_WIRE_CHECK(NatChange, 64);
CYGNET_SHM_WIRE_CHECK(Counters, 312);
CYGNET_SHM_WIRE_CHECK(EventsLost, 8);
#undef CYGNET_SHM_WIRE_CHECK
static_assert(offsetof(Sa, src) == 32 && offsetof(Sa, soft_bytes) == 64 && offsetof(Sa, cipher_key) == 112 &&
              offsetof(Sa, integ_key) == 176 && offsetof(Sa, sel) == 240);
static_assert(offsetof(Counters, drops) == 56 && offsetof(Ack, text) == 24);

}  // namespace wire

// ---- message types: one table (value, name, payload size, direction) -----
#define CYGNET_SHM_MESSAGES(X)                                           \
  X(hello, 0x0001, sizeof(wire::Hello), true)                            \
  X(sa_add, 0x0002, sizeof(wire::Sa), true)                              \
  X(sa_update, 0x0003, sizeof(wire::Sa), true)                           \
  X(sa_delete, 0x0004, sizeof(wire::SaKey), true)                        \
  X(policy_add, 0x0005, sizeof(wire::Policy), true)                      \
  X(policy_delete, 0x0006, sizeof(wire::PolicyKey), true)                \
  X(batch_begin, 0x0007, sizeof(wire::BatchBegin), true)                 \
  X(batch_commit, 0x0008, 0, true)                                       \
  X(batch_abort, 0x0009, 0, true)                                        \
  X(counters_query, 0x000a, sizeof(wire::CountersQuery), true)           \
  X(ack, 0x8001, sizeof(wire::Ack), false)                               \
  X(sa_soft_expired, 0x8002, sizeof(wire::SaExpired), false)             \
  X(sa_hard_expired, 0x8003, sizeof(wire::SaExpired), false)             \
  X(seq_exhausted, 0x8004, sizeof(wire::SeqExhausted), false)            \
  X(acquire, 0x8005, sizeof(wire::Acquire), false)                       \
  X(nat_mapping_changed, 0x8006, sizeof(wire::NatChange), false)         \
  X(counters, 0x8007, sizeof(wire::Counters), false)                     \
  X(events_lost, 0x8008, sizeof(wire::EventsLost), false)

enum class MsgType : std::uint16_t {
#define CYGNET_SHM_MSG_ENUM(e, value, size, is_cmd) e = value,
  CYGNET_SHM_MESSAGES(CYGNET_SHM_MSG_ENUM)
#undef CYGNET_SHM_MSG_ENUM
};

struct MsgInfo {
  MsgType type;
  std::string_view name;
  std::uint32_t payload_size;
  bool command;  // client -> server; false: event, server -> client
};

inline constexpr std::array kMsgInfo{
#define CYGNET_SHM_MSG_INFO(e, value, size, is_cmd) \
  MsgInfo{MsgType::e, #e, static_cast<std::uint32_t>(size), is_cmd},
    CYGNET_SHM_MESSAGES(CYGNET_SHM_MSG_INFO)
#undef CYGNET_SHM_MSG_INFO
};
static_assert([] {
  for (const auto& m : kMsgInfo)
    if (kMsgHeaderSize + m.payload_size > kSlotSize) return false;
  return true;
}(), "every message must fit one ring slot");

const MsgInfo* msg_info(std::uint16_t raw_type) noexcept;
std::string_view msg_name(std::uint16_t raw_type) noexcept;  // "unknown" if not in the table

// ---- domain types ----------------------------------------------------------

// The key of an SA in the dataplane: (SPI, direction, destination).
struct SaKey {
  std::uint32_t spi = 0;
  Direction dir = Direction::out;
  IpAddress dst;
  bool operator==(const SaKey&) const = default;
};

struct Hello {
  std::uint32_t pid = 0;
  std::uint32_t flags = 0;
  std::uint16_t major = kVersionMajor;
  std::uint16_t minor = kVersionMinor;
  std::string name;
};
struct SaAdd { SaConfig sa; };
struct SaUpdate { SaConfig sa; };
struct SaDelete { SaKey key; };
struct PolicyAdd { Policy policy; };
struct PolicyDelete { Policy policy; };  // only dir and sel travel and matter
struct BatchBegin { std::uint32_t expected = 0; };
struct BatchCommit {};
struct BatchAbort {};
enum class CounterScope : std::uint8_t { all = 0, one = 1 };
struct CountersQuery {
  CounterScope scope = CounterScope::all;
  SaKey sa;  // scope one
  std::uint32_t cursor = 0;
  std::uint32_t max = kMaxCountersPerReply;
};

using CommandBody = std::variant<Hello, SaAdd, SaUpdate, SaDelete, PolicyAdd, PolicyDelete, BatchBegin,
                                 BatchCommit, BatchAbort, CountersQuery>;
struct Command {
  std::uint64_t id = 0;
  CommandBody body;
};
MsgType command_type(const CommandBody& b) noexcept;

struct Ack {
  std::uint64_t cmd_id = 0;
  std::uint64_t value = 0;
  Status status = Status::ok;
  std::uint16_t cmd_type = 0;
  std::string text;
};
enum class ExpiryKind : std::uint8_t { bytes = 1, packets = 2 };
struct SaExpired {
  bool hard = false;
  SaKey sa;
  std::uint32_t reqid = 0;
  ExpiryKind which = ExpiryKind::bytes;
  std::uint64_t bytes = 0;
  std::uint64_t packets = 0;
};
struct SeqExhausted {
  SaKey sa;
  std::uint32_t reqid = 0;
};
struct Acquire {
  std::uint32_t reqid = 0;
  std::uint32_t policy_index = 0;
  FlowKey flow;
};
struct NatMappingChanged {
  SaKey sa;
  std::uint32_t reqid = 0;
  IpAddress old_addr, new_addr;
  std::uint16_t old_port = 0, new_port = 0;
};
struct SaCounters {
  SaKey sa;
  std::uint32_t reqid = 0;
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint8_t n_drops = 0;  // how many of drops[] are meaningful
  std::array<std::uint64_t, kMaxDropCounters> drops{};
};
struct Counters {
  std::uint64_t query_id = 0;
  SaCounters c;
};
struct EventsLost { std::uint64_t count = 0; };

using EventBody = std::variant<Ack, SaExpired, SeqExhausted, Acquire, NatMappingChanged, Counters, EventsLost>;
struct Event {
  std::uint64_t id = 0;
  EventBody body;
};
MsgType event_type(const EventBody& b) noexcept;

// ---- buffers ---------------------------------------------------------------

// One message, at most a slot. Wiped on destruction: it may hold keys.
class MsgBuf {
 public:
  MsgBuf() noexcept = default;
  ~MsgBuf() { wipe(); }
  MsgBuf(const MsgBuf&) noexcept = default;
  MsgBuf& operator=(const MsgBuf&) noexcept = default;
  MsgBuf(MsgBuf&& o) noexcept : buf_(o.buf_), len_(o.len_) { o.wipe(); }
  MsgBuf& operator=(MsgBuf&& o) noexcept {
    if (this != &o) {
      buf_ = o.buf_;
      len_ = o.len_;
      o.wipe();
    }
    return *this;
  }

  std::uint8_t* data() noexcept { return buf_.data(); }
  const std::uint8_t* data() const noexcept { return buf_.data(); }
  std::uint32_t size() const noexcept { return len_; }
  void set_size(std::uint32_t n) noexcept { len_ = n <= kSlotSize ? n : kSlotSize; }
  std::span<const std::uint8_t> bytes() const noexcept { return {buf_.data(), len_}; }
  std::span<std::uint8_t> raw() noexcept { return {buf_.data(), buf_.size()}; }
  void wipe() noexcept {
    secure_zero(buf_.data(), buf_.size());
    len_ = 0;
  }

 private:
  alignas(8) std::array<std::uint8_t, kSlotSize> buf_{};
  std::uint32_t len_ = 0;
};

// ---- conversions -----------------------------------------------------------

// Domain -> wire. Fails only for what the wire cannot carry (more than
// kMaxSelectorsPerSa selectors, a name too long); validity is the consumer's
// to check. `out` is overwritten whole.
Result<void> encode_sa(const SaConfig& sa, wire::Sa& out);
Result<void> encode_policy(const Policy& p, wire::Policy& out);
void encode_sa_key(const SaKey& k, wire::SaKey& out) noexcept;

// Wire -> domain, with the status a consumer acks: malformed (ranges,
// reserved bytes) or invalid (validate_sa / validate_policy said no, `why`
// says why). `out` is only meaningful when ok is returned.
Status decode_sa(const wire::Sa& w, SaConfig& out, std::string& why);
Status decode_policy(const wire::Policy& w, Policy& out, std::string& why);
Status decode_policy_key(const wire::PolicyKey& w, Policy& out, std::string& why);
Status decode_sa_key(const wire::SaKey& w, SaKey& out, std::string& why);
// The same as Results, for callers that need no status.
Result<SaConfig> decode_sa(const wire::Sa& w);
Result<Policy> decode_policy(const wire::Policy& w);

// Whole messages. encode_* writes header and payload into `out`, wiping its
// own temporaries. parse_* reads `raw` (a private copy of a slot, never the
// shared memory itself) and returns ok or the status to reject it with;
// `id` is set from the header whenever the header could be read, so a
// rejection can still be acknowledged by id.
Result<void> encode_command(std::uint64_t id, const CommandBody& body, MsgBuf& out);
Result<void> encode_event(std::uint64_t id, const EventBody& body, MsgBuf& out);
inline Result<void> encode_command(const Command& c, MsgBuf& out) { return encode_command(c.id, c.body, out); }
inline Result<void> encode_event(const Event& e, MsgBuf& out) { return encode_event(e.id, e.body, out); }
Status parse_command(std::span<const std::uint8_t> raw, Command& out, std::uint64_t& id, std::uint16_t& type,
                     std::string& why);
Status parse_event(std::span<const std::uint8_t> raw, Event& out, std::string& why);

// An ack's text: printable ASCII, at most kMaxAckText bytes (longer is cut,
// other bytes become '?').
std::string ack_text(std::string_view s);

}  // namespace cygnet::shm
