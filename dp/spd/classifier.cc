#include "dp/spd/classifier.h"

#include <algorithm>
#include <bit>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>

namespace cygnet::dp::spd {

namespace {

inline std::uint64_t mix(std::uint64_t x) noexcept {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  x ^= x >> 32;
  return x;
}

// Byte mask of a prefix length, loaded as two words the way addresses are.
void prefix_mask(unsigned len, std::uint64_t out[2]) noexcept {
  std::uint8_t m[16] = {};
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned bits = len > i * 8 ? std::min(8u, len - i * 8) : 0;
    m[i] = static_cast<std::uint8_t>(bits == 0 ? 0 : 0xff << (8 - bits));
  }
  std::memcpy(out, m, 16);
}

inline void load_addr(const std::uint8_t* a, std::uint64_t out[2]) noexcept { std::memcpy(out, a, 16); }

inline bool ref_matches(const Classifier::RuleRef& r, const FlowTuple& t) noexcept {
  if (r.ports_any) return true;
  if (t.opaque) return false;
  return t.sport >= r.slo && t.sport <= r.shi && t.dport >= r.dlo && t.dport <= r.dhi;
}

inline std::uint32_t window(const std::uint8_t* a, unsigned off) noexcept {
  return static_cast<std::uint32_t>(a[off]) << 8 | a[off + 1];
}

// A set of 16-bit values that clears in the time of what was put in it.
class ValueSet {
 public:
  ValueSet() : bits_(1024, 0) {}
  bool insert(std::uint32_t v) {  // true if v was not in the set
    std::uint64_t& w = bits_[v >> 6];
    const std::uint64_t m = std::uint64_t{1} << (v & 63);
    if (w & m) return false;
    if (w == 0) touched_.push_back(v >> 6);
    w |= m;
    ++size_;
    return true;
  }
  std::size_t size() const noexcept { return size_; }
  void clear() {
    for (std::uint32_t i : touched_) bits_[i] = 0;
    touched_.clear();
    size_ = 0;
  }

 private:
  std::vector<std::uint64_t> bits_;
  std::vector<std::uint32_t> touched_;
  std::size_t size_ = 0;
};

// One field (source or destination) of the group filter: for each group
// (at most kFilterGroups, in evaluation order) the prefixes of its slots.
struct FieldPrefixes {
  unsigned len;                              // the group's prefix length
  std::vector<const std::uint8_t*> prefixes;  // 16 bytes each, masked
};

// Marks, for each value of the window at `off`, the groups a packet with
// that value may match.
void mark_field(const std::vector<FieldPrefixes>& groups, unsigned off, std::vector<std::uint64_t>& table,
                std::uint64_t& all, ValueSet& seen) {
  table.assign(65536, 0);
  all = 0;
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const std::uint64_t bit = std::uint64_t{1} << gi;
    const FieldPrefixes& g = groups[gi];
    if (g.len <= off * 8) {
      all |= bit;
      continue;
    }
    const unsigned k = std::min(g.len - off * 8, 16u);
    for (const std::uint8_t* p : g.prefixes) {
      const std::uint32_t v = window(p, off) >> (16 - k);
      if (!seen.insert(v)) continue;
      const std::uint32_t lo = v << (16 - k), hi = (v + 1) << (16 - k);
      for (std::uint32_t x = lo; x < hi; ++x) table[x] |= bit;
    }
    seen.clear();
  }
}

// The 16-bit window's byte offset that leaves the fewest candidate groups
// where the policies are: the groups marked at each slot's own prefix,
// summed over (a sample of) the slots; lowest offset on ties. Packets are
// not spread evenly over the address space but gather where the policies
// point, so that is where the filter must discriminate.
unsigned choose_window(const std::vector<FieldPrefixes>& groups, unsigned addr_bytes, unsigned step,
                       ValueSet& seen) {
  std::vector<const std::uint8_t*> sample;
  std::size_t total = 0;
  for (const FieldPrefixes& g : groups) total += g.prefixes.size();
  const std::size_t stride = std::max<std::size_t>(1, total / 4096);
  std::size_t k = 0;
  for (const FieldPrefixes& g : groups) {
    for (const std::uint8_t* p : g.prefixes) {
      if (k++ % stride == 0) sample.push_back(p);
    }
  }
  unsigned best_off = 0;
  std::uint64_t best_cost = ~std::uint64_t{0};
  std::vector<std::uint64_t> table;
  std::uint64_t all = 0;
  for (unsigned off = 0; off + 2 <= addr_bytes; off += step) {
    mark_field(groups, off, table, all, seen);
    std::uint64_t cost = 0;
    for (const std::uint8_t* p : sample) cost += static_cast<std::uint64_t>(std::popcount(table[window(p, off)] | all));
    if (cost < best_cost) {
      best_cost = cost;
      best_off = off;
    }
  }
  return best_off;
}

}  // namespace

std::int32_t LinearSpd::lookup(const FlowKey& k) const noexcept {
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    if (rules_[i].sel.matches(k)) return static_cast<std::int32_t>(i);
  }
  return -1;
}

std::int32_t LinearSpd::lookup(const FlowTuple& t) const noexcept { return lookup(to_key(t)); }

inline std::uint64_t Classifier::hash(std::uint32_t group, const std::uint64_t s[2], const std::uint64_t d[2],
                               std::uint8_t proto) const noexcept {
  // Two independent lanes, joined at the end: shorter dependency chains.
  const std::uint64_t a = mix((s[0] ^ seed_) + mix(s[1] ^ (std::uint64_t{group} << 8 | proto)));
  const std::uint64_t b = mix((d[0] ^ (seed_ >> 1)) + mix(d[1] + group));
  return mix(a ^ (b * 0x9e3779b97f4a7c15ull));
}

Result<std::unique_ptr<Classifier>> Classifier::build(std::span<const Policy> rules, std::uint64_t seed, Mode mode,
                                                      const CutForest::Limits& limits) {
  if (rules.size() >= (1u << 24)) return make_error("SPD: too many policies (at most 16,777,215 per direction)");
  for (std::size_t i = 0; i < rules.size(); ++i) {
    if (auto r = validate_policy(rules[i]); !r) {
      return make_error("SPD: policy " + std::to_string(i) + ": " + r.error().message);
    }
  }
  std::unique_ptr<Classifier> c(new Classifier());
  c->seed_ = seed;
  c->nrules_ = rules.size();
  if (mode != Mode::tuples) {
    c->forest4_ = CutForest::build(rules, Family::ipv4, limits);
    c->forest6_ = CutForest::build(rules, Family::ipv6, limits);
    if (mode == Mode::trees && (!c->forest4_ || !c->forest6_)) {
      return make_error("SPD: the cut trees exceed their memory limit");
    }
    if (c->forest4_ && c->forest6_) return c;
  }
  if (auto r = c->build_tuples(rules); !r) return r.error();
  return c;
}

Result<void> Classifier::build_tuples(std::span<const Policy> rules) {
  Classifier* c = this;

  // Groups keyed by (family, slen, dlen, any proto).
  std::map<std::tuple<int, int, int, bool>, std::uint32_t> group_ids;
  std::vector<Group> groups;
  std::vector<int> group_family;
  struct KeyRules {
    std::uint32_t group;
    std::uint64_t s[2], d[2];
    std::uint8_t proto;
    std::vector<std::uint32_t> idx;
  };
  std::vector<KeyRules> keys;
  // Builder-side hash of a slot key to its position in `keys`.
  struct KeyHash {
    std::size_t operator()(const std::tuple<std::uint32_t, std::uint64_t, std::uint64_t, std::uint64_t,
                                            std::uint64_t, std::uint8_t>& k) const noexcept {
      auto [g, s0, s1, d0, d1, p] = k;
      return mix(s0 ^ mix(s1 ^ mix(d0 ^ mix(d1 ^ (std::uint64_t{g} << 8 | p)))));
    }
  };
  std::unordered_map<std::tuple<std::uint32_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                                std::uint8_t>,
                     std::uint32_t, KeyHash>
      key_pos;
  key_pos.reserve(rules.size());

  for (std::size_t i = 0; i < rules.size(); ++i) {
    const Selector& sel = rules[i].sel;  // validated by build()
    const int fam = static_cast<int>(sel.src.family());
    const bool any = sel.proto == kProtoAny;
    auto [git, fresh] = group_ids.try_emplace({fam, sel.src.len, sel.dst.len, any},
                                              static_cast<std::uint32_t>(groups.size()));
    if (fresh) {
      Group g{};
      prefix_mask(sel.src.len, g.smask);
      prefix_mask(sel.dst.len, g.dmask);
      g.best = static_cast<std::uint32_t>(i);
      g.id = git->second;
      g.slen = sel.src.len;
      g.dlen = sel.dst.len;
      g.any_proto = any;
      groups.push_back(g);
      group_family.push_back(fam);
    }
    const Group& g = groups[git->second];
    std::uint64_t s[2], d[2];
    load_addr(sel.src.addr.bytes.data(), s);
    load_addr(sel.dst.addr.bytes.data(), d);
    for (int w = 0; w < 2; ++w) {
      s[w] &= g.smask[w];
      d[w] &= g.dmask[w];
    }
    const std::uint8_t proto = any ? 0 : sel.proto;
    auto [kit, kfresh] = key_pos.try_emplace({g.id, s[0], s[1], d[0], d[1], proto},
                                             static_cast<std::uint32_t>(keys.size()));
    if (kfresh) keys.push_back(KeyRules{g.id, {s[0], s[1]}, {d[0], d[1]}, proto, {}});
    keys[kit->second].idx.push_back(static_cast<std::uint32_t>(i));
  }

  // Slots: open addressing, load at most 1/2.
  std::size_t cap = 16;
  while (cap < keys.size() * 2) cap <<= 1;
  c->slots_.assign(cap, Slot{{0, 0}, {0, 0}, kEmpty, 0, 0, 0});
  c->mask_ = cap - 1;
  c->refs_.reserve(rules.size());
  std::size_t bits = 4096;
  while (bits < keys.size() * 16) bits <<= 1;
  c->bloom_.assign(bits / 64, 0);
  c->bloom_mask_ = bits - 1;
  for (const KeyRules& k : keys) {
    const std::uint64_t h = c->hash(k.group, k.s, k.d, k.proto);
    const std::uint64_t b = (h >> 32) & c->bloom_mask_;
    c->bloom_[b >> 6] |= std::uint64_t{1} << (b & 63);
    std::uint64_t i = h & c->mask_;
    while (c->slots_[i].group != kEmpty) i = (i + 1) & c->mask_;
    Slot& slot = c->slots_[i];
    slot = Slot{{k.s[0], k.s[1]}, {k.d[0], k.d[1]}, k.group, static_cast<std::uint32_t>(c->refs_.size()),
                static_cast<std::uint32_t>(k.idx.size()), k.proto};
    for (std::uint32_t idx : k.idx) {  // already in evaluation order
      const Selector& sel = rules[idx].sel;
      const bool ports_any = sel.proto == kProtoAny || (sel.sport.is_any() && sel.dport.is_any());
      c->refs_.push_back(RuleRef{idx, sel.sport.lo, sel.sport.hi, sel.dport.lo, sel.dport.hi, ports_any});
    }
  }
  for (std::size_t g = 0; g < groups.size(); ++g) {
    (group_family[g] == static_cast<int>(Family::ipv6) ? c->groups6_ : c->groups4_).push_back(groups[g]);
  }
  auto by_best = [](const Group& a, const Group& b) { return a.best < b.best; };
  std::sort(c->groups4_.begin(), c->groups4_.end(), by_best);
  std::sort(c->groups6_.begin(), c->groups6_.end(), by_best);

  // Group filters, per family, over the first kFilterGroups groups.
  ValueSet seen;
  for (const bool v6 : {false, true}) {
    const std::vector<Group>& gs = v6 ? c->groups6_ : c->groups4_;
    Filter& f = v6 ? c->filter6_ : c->filter4_;
    if (gs.size() <= kFilterMinGroups) continue;
    const std::size_t n = std::min(gs.size(), kFilterGroups);
    std::vector<std::uint32_t> pos(groups.size(), kEmpty);  // group id -> bit
    std::vector<FieldPrefixes> src(n), dst(n);
    for (std::size_t gi = 0; gi < n; ++gi) {
      pos[gs[gi].id] = static_cast<std::uint32_t>(gi);
      src[gi].len = gs[gi].slen;
      dst[gi].len = gs[gi].dlen;
      const std::uint64_t bit = std::uint64_t{1} << gi;
      if (gs[gi].any_proto) {
        for (std::uint64_t& m : f.proto) m |= bit;
      }
    }
    for (const KeyRules& k : keys) {
      const std::uint32_t gi = pos[k.group];
      if (gi == kEmpty) continue;
      src[gi].prefixes.push_back(reinterpret_cast<const std::uint8_t*>(k.s));
      dst[gi].prefixes.push_back(reinterpret_cast<const std::uint8_t*>(k.d));
      if (!gs[gi].any_proto) f.proto[k.proto] |= std::uint64_t{1} << gi;
    }
    const unsigned addr_bytes = v6 ? 16 : 4;
    const unsigned step = v6 ? 2 : 1;  // IPv6: 8 candidate windows, not 15
    f.soff = static_cast<std::uint8_t>(choose_window(src, addr_bytes, step, seen));
    f.doff = static_cast<std::uint8_t>(choose_window(dst, addr_bytes, step, seen));
    mark_field(src, f.soff, f.src, f.src_all, seen);
    mark_field(dst, f.doff, f.dst, f.dst_all, seen);
    f.on = true;
  }
  return {};
}

inline std::uint64_t Classifier::key_hash(const Group& g, const FlowTuple& t, const std::uint64_t s[2],
                                          const std::uint64_t d[2]) const noexcept {
  const std::uint64_t ms[2] = {s[0] & g.smask[0], s[1] & g.smask[1]};
  const std::uint64_t md[2] = {d[0] & g.dmask[0], d[1] & g.dmask[1]};
  return hash(g.id, ms, md, g.any_proto ? 0 : t.proto);
}

inline bool Classifier::maybe_present(std::uint64_t h) const noexcept {
  const std::uint64_t b = (h >> 32) & bloom_mask_;
  return (bloom_[b >> 6] >> (b & 63)) & 1;
}

inline void Classifier::probe(const Group& g, const FlowTuple& t, const std::uint64_t s[2],
                              const std::uint64_t d[2], std::uint32_t& best) const noexcept {
  const std::uint64_t h = key_hash(g, t, s, d);
  if (maybe_present(h)) probe_at(g, t, s, d, h & mask_, best);
}

inline void Classifier::probe_at(const Group& g, const FlowTuple& t, const std::uint64_t s[2],
                                 const std::uint64_t d[2], std::uint64_t start, std::uint32_t& best) const noexcept {
  const std::uint64_t ms[2] = {s[0] & g.smask[0], s[1] & g.smask[1]};
  const std::uint64_t md[2] = {d[0] & g.dmask[0], d[1] & g.dmask[1]};
  const std::uint8_t proto = g.any_proto ? 0 : t.proto;
  for (std::uint64_t i = start;; i = (i + 1) & mask_) {
    const Slot& sl = slots_[i];
    if (sl.group == kEmpty) return;
    if (sl.group != g.id || sl.proto != proto || sl.s[0] != ms[0] || sl.s[1] != ms[1] || sl.d[0] != md[0] ||
        sl.d[1] != md[1]) {
      continue;
    }
    const RuleRef* r = refs_.data() + sl.first;
    for (std::uint32_t k = 0; k < sl.count && r[k].index < best; ++k) {
      if (ref_matches(r[k], t)) {
        best = r[k].index;
        return;
      }
    }
    return;
  }
}

inline std::uint64_t Classifier::candidates(const FlowTuple& t, const std::vector<Group>& groups,
                                            const Filter& f) const noexcept {
  if (!f.on) return groups.size() >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << groups.size()) - 1;
  return (f.src[window(t.src, f.soff)] | f.src_all) & (f.dst[window(t.dst, f.doff)] | f.dst_all) & f.proto[t.proto];
}

void Classifier::lookup_burst(const FlowTuple* const* t, unsigned n, std::int32_t* out) const noexcept {
  constexpr unsigned kChunk = CutForest::kChunk;
  for (unsigned base = 0; base < n; base += kChunk) {
    const unsigned m = n - base < kChunk ? n - base : kChunk;
    const FlowTuple* of[2][kChunk];  // by family: IPv4, IPv6
    unsigned at[2][kChunk];
    unsigned count[2] = {0, 0};
    for (unsigned j = 0; j < m; ++j) {
      const FlowTuple* x = t[base + j];
      const unsigned v6 = x->v6() ? 1 : 0;
      if ((v6 ? forest6_ : forest4_) == nullptr) {
        out[base + j] = lookup_tuples(*x);
      } else {
        of[v6][count[v6]] = x;
        at[v6][count[v6]++] = base + j;
      }
    }
    for (unsigned v6 = 0; v6 < 2; ++v6) {
      if (count[v6] == 0) continue;
      std::uint32_t best[kChunk];
      for (unsigned k = 0; k < count[v6]; ++k) best[k] = kEmpty;
      (v6 ? forest6_ : forest4_)->lookup_burst(of[v6], count[v6], best);
      for (unsigned k = 0; k < count[v6]; ++k) {
        out[at[v6][k]] = best[k] == kEmpty ? -1 : static_cast<std::int32_t>(best[k]);
      }
    }
  }
}

std::int32_t Classifier::lookup_tuples(const FlowTuple& t) const noexcept {
  const bool v6 = t.v6();
  const std::vector<Group>& groups = v6 ? groups6_ : groups4_;
  const Filter& f = v6 ? filter6_ : filter4_;
  std::uint64_t s[2], d[2];
  load_addr(t.src, s);
  load_addr(t.dst, d);
  std::uint32_t best = kEmpty;
  // The first kFilterGroups groups: those the filter allows, in evaluation
  // order; then the rest, one by one.
  for (std::uint64_t c = candidates(t, groups, f); c != 0; c &= c - 1) {
    const Group& g = groups[static_cast<std::size_t>(std::countr_zero(c))];
    if (g.best >= best) break;
    probe(g, t, s, d, best);
  }
  for (std::size_t i = kFilterGroups; i < groups.size(); ++i) {
    const Group& g = groups[i];
    if (g.best >= best) break;  // no later group can hold an earlier policy
    probe(g, t, s, d, best);
  }
  return best == kEmpty ? -1 : static_cast<std::int32_t>(best);
}

std::size_t Classifier::group_count(Family f) const noexcept {
  return f == Family::ipv6 ? groups6_.size() : f == Family::ipv4 ? groups4_.size() : 0;
}

bool Classifier::filtered(Family f) const noexcept {
  return f == Family::ipv6 ? filter6_.on : f == Family::ipv4 ? filter4_.on : false;
}

std::pair<unsigned, unsigned> Classifier::filter_windows(Family f) const noexcept {
  const Filter& fl = f == Family::ipv6 ? filter6_ : filter4_;
  return {fl.soff, fl.doff};
}

std::size_t Classifier::memory_bytes() const noexcept {
  return sizeof(*this) + (forest4_ ? forest4_->memory_bytes() : 0) + (forest6_ ? forest6_->memory_bytes() : 0) +
         (groups4_.size() + groups6_.size()) * sizeof(Group) + slots_.size() * sizeof(Slot) +
         refs_.size() * sizeof(RuleRef) + bloom_.size() * sizeof(std::uint64_t) +
         (filter4_.src.size() + filter4_.dst.size() + filter6_.src.size() + filter6_.dst.size()) *
             sizeof(std::uint64_t);
}

}  // namespace cygnet::dp::spd
