// Per-core flow cache in front of the SPD classifier (docs/spd.md).
//
// One cache per worker core and direction, so no locks: only its core reads
// and writes it. Keyed by the whole FlowTuple with a random per-process hash
// seed (flows chosen by an attacker cannot be aimed at one bucket without
// knowing it). Set-associative: a flow lives in one bucket of kWays entries,
// so a lookup touches at most kWays entries (bounded probes). Entries carry
// the SPD generation they were computed under; a policy change publishes a
// table with a new generation and every older entry simply misses. Nothing
// walks or flushes the cache.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>

#include "dp/prefetch.h"
#include "dp/spd/flow.h"
#include "shared/policy.h"

namespace cygnet::dp::spd {

// What the SPD decided for a flow. Negative results (bypass, discard, no
// policy) are cached as well as positive ones.
struct Decision {
  PolicyAction action = PolicyAction::discard;
  std::uint8_t matched = 0;       // 0: no policy matched (action is the default)
  std::uint8_t acquire_sent = 0;  // trap: an ACQUIRE was raised for this flow
  std::uint8_t reserved = 0;
  std::uint32_t policy = 0;       // index of the policy in the table
  std::uint32_t sa_slot = 0;      // protect/trap: the SA set slot of the policy's reqid
};

struct alignas(64) CacheEntry {
  FlowTuple key;              // 40 bytes
  std::uint64_t generation;   // 0: never filled (published generations start at 1)
  std::uint32_t hash;         // upper half of the flow's hash: a cheap first compare
  Decision decision;          // 12 bytes
};
static_assert(sizeof(CacheEntry) == 64);

class FlowCache {
 public:
  static constexpr unsigned kWays = 4;

  // entries: rounded up to a power of two, at least kWays. seed: the
  // per-process random hash seed (see random_seed()).
  FlowCache(std::uint32_t entries, std::uint64_t seed);

  // Keyed hash of the five words of the tuple: 64x64->128-bit multiplies
  // of key-masked word pairs, folded (the "multiply-and-fold" of
  // wyhash-style hashes), two independent multiplies then one to join.
  std::uint64_t hash(const FlowTuple& t) const noexcept {
    const std::uint64_t a = fold(t.word(0) ^ seed_[0], t.word(1) ^ seed_[1]);
    const std::uint64_t b = fold(t.word(2) ^ seed_[2], t.word(3) ^ seed_[3]);
    return fold(a ^ t.word(4) ^ seed_[4], b ^ 0x9e3779b97f4a7c15ull);
  }

  // The table's base and mask by value: a burst loop holds them in
  // registers (stores of the answers, which have byte fields, would
  // otherwise make the compiler reload the members for every packet).
  struct Slots {
    CacheEntry* entries;
    std::uint64_t mask;

    CacheEntry* bucket(std::uint64_t h) const noexcept {
      return entries + ((h & mask) & ~std::uint64_t{kWays - 1});
    }
    // The entry for t computed under `generation`, or nullptr. The tag
    // and the generation are compared first; the key only on a tag match.
    CacheEntry* find(const FlowTuple& t, std::uint64_t h, std::uint64_t generation) const noexcept {
      CacheEntry* b = bucket(h);
      const auto tag = static_cast<std::uint32_t>(h >> 32);
      for (unsigned w = 0; w < kWays; ++w) {
        CacheEntry& e = b[w];
        if (e.hash == tag && e.generation == generation && e.key == t) return &e;
      }
      return nullptr;
    }
    // Brings the bucket of hash h towards the core (burst lookups).
    void prefetch(std::uint64_t h) const noexcept {
      const CacheEntry* b = bucket(h);
      prefetch_line(b);
      prefetch_line(b + 1);
    }
  };
  Slots slots() const noexcept { return Slots{entries_.get(), mask_}; }

  // The entry for t computed under `generation`, or nullptr.
  CacheEntry* find(const FlowTuple& t, std::uint64_t h, std::uint64_t generation) const noexcept {
    return slots().find(t, h, generation);
  }
  void prefetch(std::uint64_t h) const noexcept { slots().prefetch(h); }

  // Stores a decision for t, replacing a stale entry of the bucket if there
  // is one, else the bucket's entries in turn.
  CacheEntry* insert(const FlowTuple& t, std::uint64_t h, std::uint64_t generation, const Decision& d) noexcept;

  std::uint32_t capacity() const noexcept { return mask_ + 1; }
  std::uint64_t evictions() const noexcept { return evictions_; }

 private:
  CacheEntry* bucket(std::uint64_t h) const noexcept { return slots().bucket(h); }

  struct AlignedFree {
    void operator()(CacheEntry* p) const noexcept;
  };
  std::unique_ptr<CacheEntry[], AlignedFree> entries_;
  std::uint64_t mask_ = 0;
  static std::uint64_t fold(std::uint64_t x, std::uint64_t y) noexcept {
    __extension__ using u128 = unsigned __int128;
    const u128 m = static_cast<u128>(x) * y;
    return static_cast<std::uint64_t>(m) ^ static_cast<std::uint64_t>(m >> 64);
  }
  std::uint64_t seed_[5] = {};
  std::uint64_t evictions_ = 0;
  std::uint32_t victim_ = 0;
};

// 64 random bits from the kernel (getrandom). If the kernel cannot give
// them the process aborts: it never runs with a predictable seed.
std::uint64_t random_seed();

}  // namespace cygnet::dp::spd
