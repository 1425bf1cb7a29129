// Quiescent-state-based reclamation (QSBR RCU) for tables published to
// worker cores, the model of DPDK's rte_rcu_qsbr, written here so the lookup
// libraries need no EAL and TSan understands every access (docs/spd.md).
//
// Readers (worker cores) load a published pointer with acquire and use it
// freely until they call quiescent(), between bursts. They take no lock and
// do no atomic read-modify-write: quiescent() is one load and one store.
// The single writer publishes a new pointer, then retires the old object;
// it is freed only after every online reader has passed a quiescent point.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <vector>

namespace cygnet::dp::rcu {

class Qsbr {
 public:
  static constexpr std::uint64_t kOffline = ~std::uint64_t{0};

  explicit Qsbr(unsigned max_readers) : slots_(std::make_unique<Slot[]>(max_readers)), n_(max_readers) {
    for (unsigned i = 0; i < n_; ++i) slots_[i].seen.store(kOffline, std::memory_order_relaxed);
  }
  Qsbr(const Qsbr&) = delete;
  Qsbr& operator=(const Qsbr&) = delete;

  unsigned max_readers() const noexcept { return n_; }

  // ---- reader side: reader `id` only ----
  void online(unsigned id) noexcept {
    // A full barrier (exchange), so the slot is visible before the reader's
    // next loads; not on the hot path. (No fence: TSan does not model them.)
    slots_[id].seen.exchange(epoch_.load(std::memory_order_acquire), std::memory_order_seq_cst);
  }
  void offline(unsigned id) noexcept { slots_[id].seen.store(kOffline, std::memory_order_release); }
  // "I hold no reference to anything published before now."
  void quiescent(unsigned id) noexcept {
    slots_[id].seen.store(epoch_.load(std::memory_order_acquire), std::memory_order_release);
  }

  // ---- writer side: one writer thread ----
  // After publishing a new pointer: a token that has passed once every
  // reader that could still see the old pointer has been quiescent.
  std::uint64_t start() noexcept { return epoch_.fetch_add(1, std::memory_order_seq_cst) + 1; }
  bool passed(std::uint64_t token) const noexcept {
    for (unsigned i = 0; i < n_; ++i) {
      const std::uint64_t s = slots_[i].seen.load(std::memory_order_acquire);
      if (s != kOffline && s < token) return false;
    }
    return true;
  }
  void synchronize() noexcept {
    const std::uint64_t t = start();
    while (!passed(t)) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
  }

 private:
  struct alignas(64) Slot {
    std::atomic<std::uint64_t> seen;
  };
  alignas(64) std::atomic<std::uint64_t> epoch_{1};
  std::unique_ptr<Slot[]> slots_;
  unsigned n_;
};

// Writer-side list of retired objects, each freed once its token passed.
class Retirer {
 public:
  explicit Retirer(Qsbr& q) : q_(q) {}
  ~Retirer() { drain(); }
  Retirer(const Retirer&) = delete;
  Retirer& operator=(const Retirer&) = delete;

  template <class T>
  void retire(std::unique_ptr<T> p) {
    if (!p) return;
    T* raw = p.release();
    pending_.push_back({q_.start(), [raw] { delete raw; }});
  }
  void retire_fn(std::function<void()> fn) { pending_.push_back({q_.start(), std::move(fn)}); }
  // Frees what every reader has finished with; returns how many remain.
  std::size_t reclaim() {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < pending_.size(); ++i) {
      if (q_.passed(pending_[i].token)) {
        pending_[i].free();
      } else {
        if (kept != i) pending_[kept] = std::move(pending_[i]);
        ++kept;
      }
    }
    pending_.resize(kept);
    return kept;
  }
  // Waits for all readers, then frees everything.
  void drain() {
    if (pending_.empty()) return;
    q_.synchronize();
    for (auto& e : pending_) e.free();
    pending_.clear();
  }
  std::size_t pending() const noexcept { return pending_.size(); }

 private:
  struct Entry {
    std::uint64_t token;
    std::function<void()> free;
  };
  Qsbr& q_;
  std::vector<Entry> pending_;
};

}  // namespace cygnet::dp::rcu
