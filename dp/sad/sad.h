// The security association database for the dataplane (docs/sad.md).
//
// InboundSad:  (SPI, destination address) -> SaHandle, for ESP packets in.
// OutboundSad: reqid -> an immutable SaSet (one SA, or one per core), behind
//              a stable SetSlot index that the policy table and the flow
//              cache store.
//
// One writer thread (the dataplane's main core) changes a table; any number
// of reader threads (workers) look up in it. Readers take no lock, do no
// atomic read-modify-write, no allocation and no syscall: a lookup is a few
// acquire loads (plain moves on x86). Whatever a writer replaces is retired
// through QSBR RCU (dp/rcu.h) and freed only once every online reader has
// called Qsbr::quiescent(); the writer calls reclaim() now and then.
//
// A reader may use a handle or a set it was given until its next quiescent
// point. So after erase() (or set(), clear(), release()) the caller must not
// reuse or free the SA behind the old handle until a grace period has
// passed: defer() runs a function after one.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "dp/prefetch.h"
#include "dp/rcu.h"
#include "dp/spd/flow.h"
#include "shared/ip.h"
#include "shared/result.h"

namespace cygnet::dp::sad {

using spd::kNoSa;
using spd::SaHandle;

// SPIs 1-255 are reserved by IANA, 0 is never sent (RFC 4303 2.1).
inline constexpr std::uint32_t kMinSpi = 256;
// Most inbound SAs sharing one SPI (each with its own destination). They
// share a home bucket, so this keeps their probe sequence short.
inline constexpr unsigned kMaxSasPerSpi = 32;

namespace detail {

inline constexpr unsigned kSlotsPerBucket = 8;
// Longest probe, in buckets, for a reader and for the writer. The writer
// rebuilds the table (new hash key) rather than place an entry further.
inline constexpr unsigned kMaxProbeBuckets = 16;

// A slot is one 64-bit word: SPI in the high half, handle in the low half.
// 0 is an empty slot and kTombstone an erased one: their SPI half is 0,
// which no lookup asks for, so neither ever matches.
inline constexpr std::uint64_t kEmpty = 0;
inline constexpr std::uint64_t kTombstone = 1;

struct alignas(64) Bucket {
  std::atomic<std::uint64_t> w[kSlotsPerBucket];
};
static_assert(sizeof(Bucket) == 64);

// The destination of the entry in the slot with the same index. Written once,
// before the slot word is published with release, and never again while the
// table lives (slots are not reused: an erased slot stays a tombstone until
// the table is rebuilt), so readers read it as plain memory.
struct SlotDst {
  std::uint8_t addr[16];  // IPv4: the first 4 bytes, the rest zero
  std::uint32_t family;   // 4 or 6
};
static_assert(sizeof(SlotDst) == 20);

struct InboundTable {
  std::uint64_t mul = 0;  // multiply-add-shift hash key, random per table
  std::uint64_t add = 0;
  unsigned shift = 0;     // 64 - log2(buckets)
  unsigned probe = 0;     // min(kMaxProbeBuckets, buckets)
  std::size_t mask = 0;   // buckets - 1
  std::size_t slots = 0;  // buckets * kSlotsPerBucket
  std::uint64_t generation = 0;
  std::unique_ptr<Bucket[]> buckets;
  std::unique_ptr<SlotDst[]> dst;

  std::size_t home(std::uint32_t spi) const noexcept {
    return static_cast<std::size_t>((mul * spi + add) >> shift);
  }
  bool dst_is(std::size_t slot, std::uint32_t family, const std::uint8_t* a) const noexcept {
    const SlotDst& d = dst[slot];
    if (d.family != family) return false;
    if (family == 4) return std::memcmp(d.addr, a, 4) == 0;
    return std::memcmp(d.addr, a, 16) == 0;
  }
};

}  // namespace detail

class InboundSad {
 public:
  // Up to 2^26 SAs per hint; the table itself grows past its hint.
  static constexpr std::size_t kMaxCapacityHint = std::size_t{1} << 26;

  // capacity_hint: the number of SAs expected. The table is sized so that
  // many fit without a rebuild, and never shrinks below that size.
  static Result<std::unique_ptr<InboundSad>> create(rcu::Qsbr& qsbr, std::size_t capacity_hint = 1024);

  // Frees everything: every reader must have stopped using the table
  // (waits for online readers to be quiescent, like Retirer::drain()).
  ~InboundSad();
  InboundSad(const InboundSad&) = delete;
  InboundSad& operator=(const InboundSad&) = delete;

  // ---- readers (any thread) ----

  // The SA for an ESP packet with this SPI (host order) sent to dst, or
  // kNoSa. dst points at 4 bytes (IPv4) or 16 bytes (IPv6) in network
  // order, e.g. straight into the packet's IP header. Any other family,
  // or an SPI below kMinSpi, gives kNoSa.
  SaHandle lookup(std::uint32_t spi, Family family, const std::uint8_t* dst) const noexcept {
    const auto fam = static_cast<std::uint32_t>(family);
    if (spi < kMinSpi || (fam != 4 && fam != 6)) return kNoSa;
    const detail::InboundTable* t = table_.load(std::memory_order_acquire);
    std::size_t b = t->home(spi);
    for (unsigned i = 0; i < t->probe; ++i) {
      const detail::Bucket& bk = t->buckets[b];
      bool end = false;
      for (unsigned s = 0; s < detail::kSlotsPerBucket; ++s) {
        const std::uint64_t w = bk.w[s].load(std::memory_order_acquire);
        if ((w >> 32) == spi && t->dst_is(b * detail::kSlotsPerBucket + s, fam, dst)) {
          return static_cast<SaHandle>(w);
        }
        end |= (w == detail::kEmpty);
      }
      // Entries go to the first empty slot of their probe sequence and slots
      // never become empty again, so a bucket with an empty slot ends it.
      if (end) return kNoSa;
      b = (b + 1) & t->mask;
    }
    return kNoSa;
  }
  SaHandle lookup(std::uint32_t spi, const IpAddress& dst) const noexcept {
    return lookup(spi, dst.family, dst.bytes.data());
  }
  // Brings what a lookup of spi reads first towards the core, for burst
  // lookups: the home bucket and the destinations of its slots (160
  // bytes, three or four lines). No effect on the result.
  void prefetch(std::uint32_t spi) const noexcept {
    const detail::InboundTable* t = table_.load(std::memory_order_acquire);
    const std::size_t b = t->home(spi);
    prefetch_line(&t->buckets[b]);
    const auto* d = reinterpret_cast<const char*>(&t->dst[b * detail::kSlotsPerBucket]);
    constexpr std::size_t kDstBytes = sizeof(detail::SlotDst) * detail::kSlotsPerBucket;
    for (std::size_t o = 0; o < kDstBytes; o += 64) prefetch_line(d + o);
    prefetch_line(d + kDstBytes - 1);
  }

  // Number of SAs in the table.
  std::size_t size() const noexcept { return live_.load(std::memory_order_relaxed); }
  // Generation of the published table: 1 for the first, +1 per rebuild.
  std::uint64_t generation() const noexcept { return table_.load(std::memory_order_acquire)->generation; }
  // Highest generation of a replaced table freed so far (0: none yet).
  std::uint64_t freed_generation() const noexcept { return freed_gen_.load(std::memory_order_acquire); }

  // ---- the writer (one thread) ----

  // Refused: an SPI below 256, a family other than IPv4/IPv6, a null dst,
  // handle kNoSa, an (SPI, dst) already present (the same SPI with another
  // destination is fine), or a kMaxSasPerSpi+1st SA with one SPI.
  // dst as for lookup().
  Result<void> insert(std::uint32_t spi, Family family, const std::uint8_t* dst, SaHandle sa);
  Result<void> insert(std::uint32_t spi, const IpAddress& dst, SaHandle sa);
  // Removes the entry and returns its handle; an error if there is none.
  // Readers may still return that handle until their next quiescent point.
  Result<SaHandle> erase(std::uint32_t spi, Family family, const std::uint8_t* dst);
  Result<SaHandle> erase(std::uint32_t spi, const IpAddress& dst);

  // Rebuilds the table now (drops tombstones, draws a new hash key) and
  // publishes it; the old one is retired. Inserts and erases do this by
  // themselves when needed.
  void compact();
  // Frees retired tables every reader is done with; returns how many remain.
  std::size_t reclaim() { return retirer_.reclaim(); }
  // Runs fn (on the writer, from a later reclaim()) once every reader has
  // passed a quiescent point: e.g. freeing an erased SA's handle.
  void defer(std::function<void()> fn) { retirer_.retire_fn(std::move(fn)); }

  struct Stats {
    std::size_t size;        // live entries
    std::size_t tombstones;  // erased slots not yet reclaimed by a rebuild
    std::size_t slots;       // capacity of the published table
    std::size_t bytes;       // memory of the published table
    std::uint64_t rebuilds;  // tables built after the first
    std::size_t retired_pending;
  };
  Stats stats() const noexcept;

 private:
  InboundSad(rcu::Qsbr& qsbr, std::size_t min_slots);

  struct Probe {
    std::size_t found = SIZE_MAX;  // slot of the (spi, dst) entry
    std::size_t empty = SIZE_MAX;  // first empty slot of the sequence
    unsigned same_spi = 0;         // live entries with this SPI (any destination)
  };
  Probe probe(const detail::InboundTable& t, std::uint32_t spi, std::uint32_t family,
              const std::uint8_t* dst) const noexcept;
  std::size_t target_slots(std::size_t live) const noexcept;
  void rebuild(std::size_t slots);
  void publish(std::unique_ptr<detail::InboundTable> t);

  std::size_t min_slots_;
  std::unique_ptr<detail::InboundTable> owned_;  // the published table, writer's handle
  std::atomic<const detail::InboundTable*> table_{nullptr};
  std::atomic<std::size_t> live_{0};
  std::atomic<std::uint64_t> freed_gen_{0};
  std::size_t used_ = 0;  // live + tombstones in owned_
  std::uint64_t next_gen_ = 1;
  std::uint64_t rebuilds_ = 0;
  rcu::Retirer retirer_;
};

// ---------------------------------------------------------------------------

// Most SAs in one set (one per core, RFC 9611 style).
inline constexpr std::size_t kMaxSetSize = 16;

// An immutable set of SAs for one reqid. Never changed once published: a
// new set replaces it. count == 0: no SA yet (the caller raises an ACQUIRE).
struct alignas(64) SaSet {
  std::uint32_t count = 0;
  SaHandle sa[kMaxSetSize] = {kNoSa, kNoSa, kNoSa, kNoSa, kNoSa, kNoSa, kNoSa, kNoSa,
                              kNoSa, kNoSa, kNoSa, kNoSa, kNoSa, kNoSa, kNoSa, kNoSa};

  bool empty() const noexcept { return count == 0; }
  // The SA for a core: sa[core % count], or kNoSa if the set is empty.
  SaHandle pick(unsigned core) const noexcept { return count == 0 ? kNoSa : sa[core % count]; }
};

// The set of every slot that has none; static, never freed.
inline constexpr SaSet kEmptySaSet{};

// Index of a reqid's set, stable for as long as the reqid has a slot.
using SetSlot = std::uint32_t;

class OutboundSad {
 public:
  static constexpr std::uint32_t kDefaultMaxSlots = std::uint32_t{1} << 17;  // 131072 policies' SA sets
  static constexpr std::uint32_t kMaxSlotsLimit = std::uint32_t{1} << 24;

  // max_slots: how many reqids may have a slot at once (1..kMaxSlotsLimit).
  // The slot array is allocated once, 8 bytes a slot, and never moves.
  static Result<std::unique_ptr<OutboundSad>> create(rcu::Qsbr& qsbr, std::uint32_t max_slots = kDefaultMaxSlots);

  ~OutboundSad();
  OutboundSad(const OutboundSad&) = delete;
  OutboundSad& operator=(const OutboundSad&) = delete;

  // ---- readers (any thread) ----

  // The set in a slot; never null. A slot out of range, free or cleared
  // gives kEmptySaSet. Valid until the reader's next quiescent point.
  const SaSet* get(SetSlot slot) const noexcept {
    if (slot >= max_slots_) return &kEmptySaSet;
    return slots_[slot].load(std::memory_order_acquire);
  }

  // ---- the writer (one thread) ----

  // The slot of a reqid (nonzero), made with an empty set if it has none.
  // An error when all max_slots are taken.
  Result<SetSlot> slot_for(std::uint32_t reqid);
  // The slot of a reqid, without making one.
  std::optional<SetSlot> find(std::uint32_t reqid) const;
  // Replaces the reqid's set (rekey, per-core SAs), making the slot if
  // needed; the slot index does not change. At most kMaxSetSize handles,
  // none kNoSa, no duplicates; an empty span clears the set.
  Result<SetSlot> set(std::uint32_t reqid, std::span<const SaHandle> sas);
  // Empties the reqid's set, keeping its slot. An error for an unknown reqid.
  Result<void> clear(std::uint32_t reqid);
  // Gives up the reqid's slot: its set empties now and the index is reused
  // only after a grace period. Nothing may refer to the slot any more.
  Result<void> release(std::uint32_t reqid);

  std::size_t size() const noexcept { return by_reqid_.size(); }  // reqids with a slot
  std::uint32_t max_slots() const noexcept { return max_slots_; }
  std::size_t reclaim() { return retirer_.reclaim(); }
  void defer(std::function<void()> fn) { retirer_.retire_fn(std::move(fn)); }
  std::size_t retired_pending() const noexcept { return retirer_.pending(); }

 private:
  OutboundSad(rcu::Qsbr& qsbr, std::uint32_t max_slots);
  void replace(SetSlot slot, const SaSet* next);

  const std::uint32_t max_slots_;
  std::unique_ptr<std::atomic<const SaSet*>[]> slots_;
  std::unordered_map<std::uint32_t, SetSlot> by_reqid_;
  std::vector<SetSlot> free_;  // released slots past their grace period
  SetSlot next_unused_ = 0;
  rcu::Retirer retirer_;
};

}  // namespace cygnet::dp::sad
