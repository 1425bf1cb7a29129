#include "dp/spd/spd.h"

#include <algorithm>
#include <string>
#include <unordered_map>

namespace cygnet::dp::spd {

namespace {

// A policy's identity within a direction (as XFRM: direction + selector),
// as bytes for the batch index.
std::string selector_key(const Selector& s) {
  std::string k;
  k.reserve(44);
  k.push_back(static_cast<char>(s.src.family()));
  k.append(reinterpret_cast<const char*>(s.src.addr.bytes.data()), 16);
  k.push_back(static_cast<char>(s.src.len));
  k.append(reinterpret_cast<const char*>(s.dst.addr.bytes.data()), 16);
  k.push_back(static_cast<char>(s.dst.len));
  k.push_back(static_cast<char>(s.proto));
  for (std::uint16_t v : {s.sport.lo, s.sport.hi, s.dport.lo, s.dport.hi}) {
    k.push_back(static_cast<char>(v >> 8));
    k.push_back(static_cast<char>(v));
  }
  return k;
}

int dir_index(PolicyDir d) noexcept { return static_cast<int>(d); }

}  // namespace

Spd::Spd(rcu::Qsbr& qsbr, SlotResolver resolve, Options opt)
    : qsbr_(qsbr), retirer_(qsbr), resolve_(std::move(resolve)), opt_(opt) {
  if (opt_.seed == 0) opt_.seed = random_seed();
  for (PolicyDir d : {PolicyDir::in, PolicyDir::out}) {
    auto t = build_table(d, {});  // empty: every packet gets the default action
    if (t) install(d, std::move(*t));
  }
}

Spd::~Spd() {
  for (auto& t : tables_) {
    const SpdTable* old = t.exchange(nullptr, std::memory_order_acq_rel);
    retirer_.retire(std::unique_ptr<const SpdTable>(old));
  }
  retirer_.drain();
}

Result<std::unique_ptr<SpdTable>> Spd::build_table(PolicyDir dir, std::vector<Policy> policies) const {
  std::stable_sort(policies.begin(), policies.end(),
                   [](const Policy& a, const Policy& b) { return a.priority < b.priority; });
  auto table = std::make_unique<SpdTable>();
  table->default_action = dir == PolicyDir::out ? opt_.default_out : opt_.default_in;
  table->sa_slot.assign(policies.size(), 0);
  for (std::size_t i = 0; i < policies.size(); ++i) {
    const Policy& p = policies[i];
    if (p.action == PolicyAction::protect || p.action == PolicyAction::trap) {
      if (!resolve_) return make_error("SPD: no SA set resolver for reqid " + std::to_string(p.reqid));
      auto slot = resolve_(p.reqid);
      if (!slot) return make_error("SPD: reqid " + std::to_string(p.reqid) + ": " + slot.error().message);
      table->sa_slot[i] = *slot;
    }
  }
  auto cls = Classifier::build(policies, opt_.seed);
  if (!cls) return cls.error();
  table->cls = std::move(*cls);
  table->rules = std::move(policies);
  return table;
}

void Spd::install(PolicyDir dir, std::unique_ptr<SpdTable> table) {
  table->generation = ++generation_;
  const SpdTable* old = tables_[dir_index(dir)].exchange(table.release(), std::memory_order_acq_rel);
  // Freed once every reader has passed a quiescent point after this store.
  retirer_.retire(std::unique_ptr<const SpdTable>(old));
}

Result<void> Spd::apply(const std::vector<Change>& batch) {
  // Work on copies: a batch that fails anywhere changes nothing. Policies
  // are found by selector through a hash index, so a batch of k changes
  // over n policies costs O(n + k), also at 100,000 policies.
  struct Work {
    bool touched = false;
    std::vector<Policy> v;
    std::vector<bool> removed;
    std::unordered_map<std::string, std::size_t> index;  // selector -> position in v
  };
  Work work[2];
  auto prepare = [&](int d) -> Work& {
    Work& w = work[d];
    if (!w.touched) {
      w.touched = true;
      w.v = policies_[d];
      w.removed.assign(w.v.size(), false);
      w.index.reserve(w.v.size() + batch.size());
      for (std::size_t i = 0; i < w.v.size(); ++i) w.index.emplace(selector_key(w.v[i].sel), i);
    }
    return w;
  };
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Change& c = batch[i];
    const int d = dir_index(c.policy.dir);
    if (d != 0 && d != 1) return make_error("SPD change " + std::to_string(i + 1) + ": bad direction");
    Work& w = prepare(d);
    const std::string key = selector_key(c.policy.sel);
    auto it = w.index.find(key);
    if (c.op == Change::Op::add) {
      if (auto r = validate_policy(c.policy); !r) {
        return make_error("SPD change " + std::to_string(i + 1) + ": " + r.error().message);
      }
      if (it != w.index.end()) {
        return make_error("SPD change " + std::to_string(i + 1) + ": a " + policy_dir_name(c.policy.dir) +
                          " policy for " + c.policy.sel.to_string() + " exists already");
      }
      w.index.emplace(key, w.v.size());
      w.v.push_back(c.policy);
      w.removed.push_back(false);
    } else {
      if (it == w.index.end()) {
        return make_error("SPD change " + std::to_string(i + 1) + ": no " + policy_dir_name(c.policy.dir) +
                          " policy for " + c.policy.sel.to_string());
      }
      w.removed[it->second] = true;
      w.index.erase(it);
    }
  }
  // Build every table before publishing any, so a failure publishes nothing.
  std::vector<Policy> next[2];
  std::unique_ptr<SpdTable> built[2];
  for (int d = 0; d < 2; ++d) {
    Work& w = work[d];
    if (!w.touched) continue;
    next[d].reserve(w.v.size());
    for (std::size_t i = 0; i < w.v.size(); ++i) {
      if (!w.removed[i]) next[d].push_back(std::move(w.v[i]));
    }
    auto t = build_table(static_cast<PolicyDir>(d), next[d]);
    if (!t) return t.error();
    built[d] = std::move(*t);
  }
  for (int d = 0; d < 2; ++d) {
    if (!work[d].touched) continue;
    install(static_cast<PolicyDir>(d), std::move(built[d]));
    policies_[d] = std::move(next[d]);
  }
  retirer_.reclaim();
  return {};
}

Result<void> Spd::replace(PolicyDir dir, std::vector<Policy> policies) {
  std::vector<Change> batch;
  for (const Policy& p : policies_[dir_index(dir)]) batch.push_back(Change{Change::Op::remove, p});
  for (Policy& p : policies) {
    if (p.dir != dir) return make_error(std::string("SPD replace: a policy is not ") + policy_dir_name(dir));
    batch.push_back(Change{Change::Op::add, std::move(p)});
  }
  return apply(batch);
}

SpdLookup::SpdLookup(const Spd& spd, PolicyDir dir, std::uint32_t cache_entries, AcquireLimit limit,
                     std::uint64_t seed)
    : spd_(spd), dir_(dir), cache_(cache_entries, seed ? seed : random_seed()), limit_(limit) {}

bool SpdLookup::take_acquire(CacheEntry& e, std::uint64_t now_ns) noexcept {
  constexpr std::uint64_t kScale = 1'000'000'000ull;
  const std::uint64_t cap = std::uint64_t{limit_.burst} * kScale;
  if (!primed_) {
    tokens_x1e9_ = cap;
    last_ns_ = now_ns;
    primed_ = true;
  } else if (now_ns > last_ns_) {
    const std::uint64_t dt = std::min<std::uint64_t>(now_ns - last_ns_, 10 * kScale);  // no overflow
    tokens_x1e9_ = std::min(cap, tokens_x1e9_ + dt * limit_.per_second);
    last_ns_ = now_ns;
  }
  if (tokens_x1e9_ < kScale) {
    ++limited_;
    return false;  // not marked: a later packet of the flow may still raise it
  }
  tokens_x1e9_ -= kScale;
  e.decision.acquire_sent = 1;
  ++acquires_;
  return true;
}

bool SpdLookup::request_acquire(const FlowTuple& t, std::uint64_t now_ns) noexcept {
  if (table_ == nullptr) return false;
  CacheEntry* e = cache_.find(t, cache_.hash(t), table_->generation);
  if (e == nullptr || e->decision.acquire_sent) return false;
  return take_acquire(*e, now_ns);
}

void SpdLookup::classify_misses(const FlowTuple* const* t, const std::uint64_t* h, const FlowTuple* const* miss,
                                const std::uint16_t* at, std::uint16_t nmiss, std::uint64_t now_ns,
                                Verdict* out) noexcept {
  std::int32_t idx[kMaxBurst];
  table_->cls->lookup_burst(miss, nmiss, idx);
  for (std::uint16_t k = 0; k < nmiss; ++k) {
    const std::uint16_t i = at[k];
    CacheEntry* e = cache_.find(*t[i], h[i], table_->generation);  // inserted by an earlier miss of the burst?
    if (e != nullptr) {
      ++hits_;
    } else {
      ++misses_;
      e = cache_.insert(*t[i], h[i], table_->generation, table_->decide(idx[k]));
    }
    answer(*e, now_ns, out[i]);
  }
}

}  // namespace cygnet::dp::spd
