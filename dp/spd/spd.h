// The SPD as the dataplane uses it (docs/spd.md):
//
//   Spd        writer side, on the main core: keeps the policies of both
//              directions, builds an immutable SpdTable per direction off the
//              hot path and publishes it with RCU. A batch of changes
//              publishes once. Every publication has a new generation.
//   SpdLookup  reader side, one per worker core and direction: the flow
//              cache in front of the published table's classifier, and the
//              ACQUIRE rate limit for trap policies.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "dp/rcu.h"
#include "dp/spd/classifier.h"
#include "dp/spd/flow_cache.h"
#include "shared/policy.h"
#include "shared/result.h"

namespace cygnet::dp::spd {

// One direction's published policies. Immutable once published.
struct SpdTable {
  std::uint64_t generation = 0;
  PolicyAction default_action = PolicyAction::discard;
  std::vector<Policy> rules;            // evaluation order: priority, then insertion order
  std::vector<std::uint32_t> sa_slot;   // per rule: the SA set slot of its reqid (protect, trap)
  std::unique_ptr<Classifier> cls;

  Decision decide(std::int32_t idx) const noexcept {
    Decision d;
    if (idx < 0) {
      d.action = default_action;
      return d;
    }
    const auto i = static_cast<std::size_t>(idx);
    d.action = rules[i].action;
    d.matched = 1;
    d.policy = static_cast<std::uint32_t>(idx);
    d.sa_slot = sa_slot[i];
    return d;
  }
};

class Spd {
 public:
  // reqid -> the slot of its SA set (OutboundSad::slot_for); called while
  // building a table, for protect and trap policies.
  using SlotResolver = std::function<Result<std::uint32_t>(std::uint32_t reqid)>;

  struct Options {
    // RFC 4301 4.4.1 / 5: a packet no policy matches is discarded. Tests
    // and labs may choose bypass, never by default.
    PolicyAction default_out = PolicyAction::discard;
    PolicyAction default_in = PolicyAction::discard;
    std::uint64_t seed = 0;  // classifier hash seed; 0: random_seed()
  };

  Spd(rcu::Qsbr& qsbr, SlotResolver resolve, Options opt);
  Spd(rcu::Qsbr& qsbr, SlotResolver resolve) : Spd(qsbr, std::move(resolve), Options{}) {}
  ~Spd();
  Spd(const Spd&) = delete;
  Spd& operator=(const Spd&) = delete;

  // One change; a batch is applied whole or not at all, then published once.
  struct Change {
    enum class Op : std::uint8_t { add, remove } op = Op::add;
    Policy policy;  // remove: matched by direction and selector (as XFRM does)
  };
  Result<void> apply(const std::vector<Change>& batch);
  Result<void> add(const Policy& p) { return apply({Change{Change::Op::add, p}}); }
  Result<void> remove(const Policy& p) { return apply({Change{Change::Op::remove, p}}); }
  // Replaces every policy of one direction.
  Result<void> replace(PolicyDir dir, std::vector<Policy> policies);

  // Readers: the current table (acquire). Valid until the reader's next
  // quiescent point.
  const SpdTable* current(PolicyDir dir) const noexcept {
    return tables_[static_cast<int>(dir)].load(std::memory_order_acquire);
  }
  std::uint64_t generation() const noexcept { return generation_; }
  // Frees tables every reader has finished with.
  std::size_t reclaim() { return retirer_.reclaim(); }
  std::size_t size(PolicyDir dir) const noexcept { return policies_[static_cast<int>(dir)].size(); }

 private:
  Result<std::unique_ptr<SpdTable>> build_table(PolicyDir dir, std::vector<Policy> policies) const;
  void install(PolicyDir dir, std::unique_ptr<SpdTable> table);

  rcu::Qsbr& qsbr_;
  rcu::Retirer retirer_;
  SlotResolver resolve_;
  Options opt_;
  std::uint64_t generation_ = 0;
  std::vector<Policy> policies_[2];  // per direction, in insertion order
  std::atomic<const SpdTable*> tables_[2] = {nullptr, nullptr};
};

// ACQUIRE rate limit: a token bucket per core.
struct AcquireLimit {
  std::uint32_t per_second = 100;
  std::uint32_t burst = 20;
};

class SpdLookup {
 public:
  SpdLookup(const Spd& spd, PolicyDir dir, std::uint32_t cache_entries, AcquireLimit limit = {},
            std::uint64_t seed = 0);

  // Once per burst, after the core's last quiescent point.
  void begin_burst() noexcept { table_ = spd_.current(dir_); }

  struct Verdict {
    Decision decision;
    bool acquire = false;  // trap: raise an ACQUIRE for this flow now
  };
  // now_ns: a monotonic clock, for the ACQUIRE rate limit only.
  Verdict lookup(const FlowTuple& t, std::uint64_t now_ns) noexcept {
    Verdict v;
    lookup_hashed(t, cache_.hash(t), now_ns, v);
    return v;
  }
  [[gnu::always_inline]] void lookup_hashed(const FlowTuple& t, std::uint64_t h, std::uint64_t now_ns,
                                            Verdict& v) noexcept {
    v.acquire = false;
    if (table_ == nullptr) {  // nothing published yet: discard
      v.decision = Decision{};
      return;
    }
    CacheEntry* e = cache_.find(t, h, table_->generation);
    if (e != nullptr) {
      ++hits_;
    } else {
      ++misses_;
      e = cache_.insert(t, h, table_->generation, table_->decide(table_->cls->lookup(t)));
    }
    answer(*e, now_ns, v);
  }
  // A burst: hashes every tuple and prefetches its bucket first, then
  // looks them up, so the cache lines of one packet arrive while the
  // previous ones are decided. The misses go to the classifier together
  // (Classifier::lookup_burst), then into the cache in the burst's order;
  // a later packet of a flow that an earlier one of the burst inserted is
  // a hit, as it would be one packet at a time. n <= kMaxBurst.
  static constexpr std::uint16_t kMaxBurst = 64;
  void lookup_burst(const FlowTuple* const* t, std::uint16_t n, std::uint64_t now_ns, Verdict* out) noexcept {
    std::uint64_t h[kMaxBurst];
    if (n > kMaxBurst) n = kMaxBurst;
    if (table_ == nullptr) {  // nothing published yet: discard
      for (std::uint16_t i = 0; i < n; ++i) out[i] = Verdict{};
      return;
    }
    const FlowCache::Slots slots = cache_.slots();
    const std::uint64_t generation = table_->generation;
    for (std::uint16_t i = 0; i < n; ++i) {
      h[i] = cache_.hash(*t[i]);
      slots.prefetch(h[i]);
    }
    const FlowTuple* miss[kMaxBurst];
    std::uint16_t at[kMaxBurst];
    std::uint16_t nmiss = 0;
    std::uint64_t hits = 0;
    for (std::uint16_t i = 0; i < n; ++i) {
      CacheEntry* e = slots.find(*t[i], h[i], generation);
      if (e == nullptr) {
        miss[nmiss] = t[i];
        at[nmiss++] = i;
      } else {
        ++hits;
        answer(*e, now_ns, out[i]);
      }
    }
    hits_ += hits;
    if (nmiss != 0) [[unlikely]] {
      classify_misses(t, h, miss, at, nmiss, now_ns, out);
    }
  }

  // Protect policy whose SA set is still empty: ask for an SA like a trap.
  bool request_acquire(const FlowTuple& t, std::uint64_t now_ns) noexcept;

  // The table of the current burst (after begin_burst), or null.
  const SpdTable* table() const noexcept { return table_; }
  std::uint64_t hits() const noexcept { return hits_; }
  std::uint64_t misses() const noexcept { return misses_; }
  std::uint64_t acquires() const noexcept { return acquires_; }
  std::uint64_t acquires_limited() const noexcept { return limited_; }
  const FlowCache& cache() const noexcept { return cache_; }

 private:
  bool take_acquire(CacheEntry& e, std::uint64_t now_ns) noexcept;
  // lookup_burst's misses: classified together, then cached in order.
  void classify_misses(const FlowTuple* const* t, const std::uint64_t* h, const FlowTuple* const* miss,
                       const std::uint16_t* at, std::uint16_t nmiss, std::uint64_t now_ns, Verdict* out) noexcept;
  [[gnu::always_inline]] void answer(CacheEntry& e, std::uint64_t now_ns, Verdict& v) noexcept {
    v.decision = e.decision;
    v.acquire = false;
    if (e.decision.action == PolicyAction::trap && !e.decision.acquire_sent) [[unlikely]] {
      v.acquire = take_acquire(e, now_ns);
    }
  }

  const Spd& spd_;
  PolicyDir dir_;
  const SpdTable* table_ = nullptr;
  FlowCache cache_;
  AcquireLimit limit_;
  std::uint64_t tokens_x1e9_ = 0;  // tokens scaled by 1e9 (refill is per_second * ns)
  std::uint64_t last_ns_ = 0;
  bool primed_ = false;
  std::uint64_t hits_ = 0, misses_ = 0, acquires_ = 0, limited_ = 0;
};

}  // namespace cygnet::dp::spd
