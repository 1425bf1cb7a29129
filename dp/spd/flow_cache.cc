#include "dp/spd/flow_cache.h"

#include <sys/random.h>

#include <cstdlib>
#include <new>

namespace cygnet::dp::spd {

void FlowCache::AlignedFree::operator()(CacheEntry* p) const noexcept {
  ::operator delete[](p, std::align_val_t{64});
}

FlowCache::FlowCache(std::uint32_t entries, std::uint64_t seed) {
  std::uint64_t n = kWays;
  while (n < entries && n < (1ull << 30)) n <<= 1;
  auto* mem = static_cast<CacheEntry*>(::operator new[](n * sizeof(CacheEntry), std::align_val_t{64}));
  for (std::uint64_t i = 0; i < n; ++i) new (&mem[i]) CacheEntry{};
  entries_.reset(mem);
  mask_ = n - 1;
  // Five keys from the one seed (splitmix64 steps).
  std::uint64_t x = seed;
  for (auto& k : seed_) {
    x += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    k = z ^ (z >> 31);
  }
}

CacheEntry* FlowCache::insert(const FlowTuple& t, std::uint64_t h, std::uint64_t generation,
                              const Decision& d) noexcept {
  CacheEntry* b = bucket(h);
  CacheEntry* e = nullptr;
  for (unsigned w = 0; w < kWays; ++w) {
    if (b[w].generation != generation) {  // never filled, or from an older table
      e = &b[w];
      break;
    }
  }
  if (e == nullptr) {
    e = &b[victim_++ & (kWays - 1)];
    ++evictions_;
  }
  e->key = t;
  e->generation = generation;
  e->hash = static_cast<std::uint32_t>(h >> 32);
  e->decision = d;
  return e;
}

std::uint64_t random_seed() {
  std::uint64_t s = 0;
  if (getrandom(&s, sizeof s, 0) != static_cast<ssize_t>(sizeof s)) std::abort();  // fail closed
  return s;
}

}  // namespace cygnet::dp::spd
