// The layout of the cygnet-dp shared-memory segment (docs/shm.md). Every
// structure here lives in the segment: plain, trivially copyable, standard
// layout, with its offsets pinned by static_asserts. Words that two processes
// touch concurrently are plain integers accessed through std::atomic_ref
// (never through a plain load or store), so the layout stays ours and
// checkable while the accesses are atomic.
//
//   offset 0                       SegmentHeader (512 bytes)
//   clients_offset (512)           client 0: ClientControl (512 bytes)
//                                            command ring: cmd_slots x slot_size
//                                            event ring:   evt_slots x slot_size
//   clients_offset + client_stride client 1: ...
//
// All integers are in host byte order (both ends run on the same host); IP
// addresses are in network byte order as in shared/ip.h.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace cygnet::shm {

// "CYGNTSHM" as the segment's first eight bytes (on a little-endian host).
inline constexpr std::uint64_t kMagic = 0x4d4853544e475943ULL;
inline constexpr std::uint16_t kVersionMajor = 1;  // layout or semantics changed incompatibly
inline constexpr std::uint16_t kVersionMinor = 0;  // message types added; old ones unchanged

inline constexpr std::uint32_t kHeaderSize = 512;
inline constexpr std::uint32_t kControlSize = 512;
inline constexpr std::uint32_t kSlotSize = 1024;  // one message per slot, header included
inline constexpr std::uint32_t kCacheLine = 64;

// Bounds a segment's header must respect; anything else is refused on attach.
inline constexpr std::uint32_t kMinRingSlots = 4;
inline constexpr std::uint32_t kMaxRingSlots = 4096;
inline constexpr std::uint32_t kMaxClients = 16;

inline constexpr std::uint32_t kDefaultRingSlots = 256;
inline constexpr std::uint32_t kDefaultClients = 4;

enum class ServerState : std::uint32_t { starting = 0, ready = 1, stopping = 2 };

struct SegmentHeader {
  std::uint64_t magic;           // kMagic; written last but one, before state
  std::uint16_t version_major;   // kVersionMajor
  std::uint16_t version_minor;   // kVersionMinor
  std::uint32_t header_size;     // kHeaderSize
  std::uint32_t slot_size;       // kSlotSize
  std::uint32_t cmd_slots;       // command ring capacity (power of two)
  std::uint32_t evt_slots;       // event ring capacity (power of two)
  std::uint32_t max_clients;     // number of client blocks
  std::uint32_t control_size;    // kControlSize
  std::uint32_t reserved0;
  std::uint64_t client_stride;   // bytes from one client block to the next
  std::uint64_t clients_offset;  // offset of client block 0 (= kHeaderSize)
  std::uint64_t segment_size;    // total bytes; equals the shm object's size
  std::uint64_t epoch;           // random, non-zero, new at every server start
  std::int32_t server_pid;
  std::uint32_t state;           // ServerState; atomic (release by the server)
  std::uint64_t server_heartbeat;  // atomic; bumped by every ShmServer::poll()
  std::uint64_t created_unix_ns;
  std::uint8_t reserved[kHeaderSize - 96];
};

// One 64-byte line holding one index, so the producer's and the consumer's
// words never share a cache line.
struct alignas(kCacheLine) IndexLine {
  std::uint64_t value;
  std::uint8_t pad[kCacheLine - 8];
};

struct alignas(kCacheLine) OwnerLine {
  // 0: free. Otherwise pid (bits 0-31) | nonce (bits 32-62) | closing (bit 63).
  // Claimed by a client with a CAS from 0, released (set to 0) only by the
  // server after it has wiped and reset the client's rings.
  std::uint64_t owner;
  std::uint64_t heartbeat;   // bumped by the client on every call
  std::uint64_t starttime;   // the client's /proc start time (pid reuse check); 0: unknown
  std::uint64_t reserved[5];
};

struct ClientControl {
  OwnerLine own;        // 0    written by the client
  IndexLine cmd_prod;   // 64   written by the client (command producer)
  IndexLine cmd_cons;   // 128  written by the server (command consumer)
  IndexLine evt_prod;   // 192  written by the server (event producer)
  IndexLine evt_cons;   // 256  written by the client (event consumer)
  std::uint8_t reserved[kControlSize - 320];
};

inline constexpr std::uint64_t kOwnerPidMask = 0xffffffffULL;
inline constexpr std::uint64_t kOwnerClosing = 1ULL << 63;

static_assert(std::is_trivially_copyable_v<SegmentHeader> && std::is_standard_layout_v<SegmentHeader>);
static_assert(std::is_trivially_copyable_v<ClientControl> && std::is_standard_layout_v<ClientControl>);
static_assert(sizeof(SegmentHeader) == kHeaderSize);
static_assert(offsetof(SegmentHeader, magic) == 0);
static_assert(offsetof(SegmentHeader, version_major) == 8);
static_assert(offsetof(SegmentHeader, header_size) == 12);
static_assert(offsetof(SegmentHeader, slot_size) == 16);
static_assert(offsetof(SegmentHeader, cmd_slots) == 20);
static_assert(offsetof(SegmentHeader, evt_slots) == 24);
static_assert(offsetof(SegmentHeader, max_clients) == 28);
static_assert(offsetof(SegmentHeader, control_size) == 32);
static_assert(offsetof(SegmentHeader, client_stride) == 40);
static_assert(offsetof(SegmentHeader, clients_offset) == 48);
static_assert(offsetof(SegmentHeader, segment_size) == 56);
static_assert(offsetof(SegmentHeader, epoch) == 64);
static_assert(offsetof(SegmentHeader, server_pid) == 72);
static_assert(offsetof(SegmentHeader, state) == 76);
static_assert(offsetof(SegmentHeader, server_heartbeat) == 80);
static_assert(offsetof(SegmentHeader, created_unix_ns) == 88);
static_assert(sizeof(ClientControl) == kControlSize);
static_assert(offsetof(ClientControl, own) == 0);
static_assert(offsetof(ClientControl, cmd_prod) == 64);
static_assert(offsetof(ClientControl, cmd_cons) == 128);
static_assert(offsetof(ClientControl, evt_prod) == 192);
static_assert(offsetof(ClientControl, evt_cons) == 256);
static_assert(offsetof(OwnerLine, heartbeat) == 8 && offsetof(OwnerLine, starttime) == 16);
static_assert(std::atomic_ref<std::uint64_t>::required_alignment <= alignof(std::uint64_t));
static_assert(std::atomic_ref<std::uint32_t>::required_alignment <= alignof(std::uint32_t));
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free,
              "shared-memory words must be lock-free atomics (no process-local locks)");
static_assert(kSlotSize % kCacheLine == 0 && kHeaderSize % kCacheLine == 0);

// Sizes derived from the ring capacities; the same function on both sides.
struct Geometry {
  std::uint32_t cmd_slots = kDefaultRingSlots;
  std::uint32_t evt_slots = kDefaultRingSlots;
  std::uint32_t max_clients = kDefaultClients;

  std::uint64_t client_stride() const noexcept {
    return kControlSize + (std::uint64_t{cmd_slots} + evt_slots) * kSlotSize;
  }
  std::uint64_t segment_size() const noexcept { return kHeaderSize + client_stride() * max_clients; }
  std::uint64_t client_offset(std::uint32_t i) const noexcept { return kHeaderSize + client_stride() * i; }
  std::uint64_t cmd_ring_offset(std::uint32_t i) const noexcept { return client_offset(i) + kControlSize; }
  std::uint64_t evt_ring_offset(std::uint32_t i) const noexcept {
    return cmd_ring_offset(i) + std::uint64_t{cmd_slots} * kSlotSize;
  }
};

constexpr bool is_pow2(std::uint32_t v) noexcept { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace cygnet::shm
