#include "dp/spd/classifier.h"

#include <algorithm>
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

}  // namespace

std::int32_t LinearSpd::lookup(const FlowKey& k) const noexcept {
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    if (rules_[i].sel.matches(k)) return static_cast<std::int32_t>(i);
  }
  return -1;
}

std::int32_t LinearSpd::lookup(const FlowTuple& t) const noexcept { return lookup(to_key(t)); }

std::uint64_t Classifier::hash(std::uint32_t group, const std::uint64_t s[2], const std::uint64_t d[2],
                               std::uint8_t proto) const noexcept {
  // Two independent lanes, joined at the end: shorter dependency chains.
  const std::uint64_t a = mix((s[0] ^ seed_) + mix(s[1] ^ (std::uint64_t{group} << 8 | proto)));
  const std::uint64_t b = mix((d[0] ^ (seed_ >> 1)) + mix(d[1] + group));
  return mix(a ^ (b * 0x9e3779b97f4a7c15ull));
}

Result<std::unique_ptr<Classifier>> Classifier::build(std::span<const Policy> rules, std::uint64_t seed) {
  if (rules.size() >= (1u << 24)) return make_error("SPD: too many policies (at most 16,777,215 per direction)");
  std::unique_ptr<Classifier> c(new Classifier());
  c->seed_ = seed;
  c->nrules_ = rules.size();

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
    const Policy& p = rules[i];
    if (auto r = validate_policy(p); !r) {
      return make_error("SPD: policy " + std::to_string(i) + ": " + r.error().message);
    }
    const Selector& sel = p.sel;
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
  for (const KeyRules& k : keys) {
    std::uint64_t i = c->hash(k.group, k.s, k.d, k.proto) & c->mask_;
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
  return c;
}

std::int32_t Classifier::lookup(const FlowTuple& t) const noexcept {
  const std::vector<Group>& groups = t.v6() ? groups6_ : groups4_;
  std::uint64_t s[2], d[2];
  load_addr(t.src, s);
  load_addr(t.dst, d);
  std::uint32_t best = kEmpty;
  for (const Group& g : groups) {
    if (g.best >= best) break;  // no later group can hold an earlier policy
    const std::uint64_t ms[2] = {s[0] & g.smask[0], s[1] & g.smask[1]};
    const std::uint64_t md[2] = {d[0] & g.dmask[0], d[1] & g.dmask[1]};
    const std::uint8_t proto = g.any_proto ? 0 : t.proto;
    for (std::uint64_t i = hash(g.id, ms, md, proto) & mask_;; i = (i + 1) & mask_) {
      const Slot& sl = slots_[i];
      if (sl.group == kEmpty) break;
      if (sl.group != g.id || sl.proto != proto || sl.s[0] != ms[0] || sl.s[1] != ms[1] || sl.d[0] != md[0] ||
          sl.d[1] != md[1]) {
        continue;
      }
      const RuleRef* r = refs_.data() + sl.first;
      for (std::uint32_t k = 0; k < sl.count && r[k].index < best; ++k) {
        if (ref_matches(r[k], t)) {
          best = r[k].index;
          break;
        }
      }
      break;
    }
  }
  return best == kEmpty ? -1 : static_cast<std::int32_t>(best);
}

std::size_t Classifier::group_count(Family f) const noexcept {
  return f == Family::ipv6 ? groups6_.size() : f == Family::ipv4 ? groups4_.size() : 0;
}

std::size_t Classifier::memory_bytes() const noexcept {
  return sizeof(*this) + (groups4_.size() + groups6_.size()) * sizeof(Group) + slots_.size() * sizeof(Slot) +
         refs_.size() * sizeof(RuleRef);
}

}  // namespace cygnet::dp::spd
