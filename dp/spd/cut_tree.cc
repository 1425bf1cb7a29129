#include "dp/spd/cut_tree.h"

#include <algorithm>
#include <bit>
#include <unordered_map>

namespace cygnet::dp::spd {

namespace {

// Dimensions: 0 source, 1 destination (addresses, `width` bits, most
// significant first, held in two words each: a[2d], a[2d + 1]); 2 protocol,
// 3 source port, 4 destination port (intervals).
constexpr unsigned kAddrDims = 2;
constexpr unsigned kDims = 5;
constexpr unsigned kMaxCutBits = 8;
constexpr unsigned kMaxDepth = 64;
constexpr unsigned kFieldPos[3] = {34, 17, 0};        // in the key's protocol and ports word
// "Any" ports: every value of the 17-bit field, so also 0x10000, "unknown".
constexpr std::uint32_t kPortsAll = 0x1ffff;

// Word `j` (0: high, 1: low) of the mask of a prefix of `len` bits.
std::uint64_t prefix_word(unsigned len, unsigned j) noexcept {
  const unsigned l = len > 64 * j ? std::min(64u, len - 64 * j) : 0;
  return l == 0 ? 0 : ~std::uint64_t{0} << (64 - l);
}

struct BRule {
  std::uint64_t a[4];  // masked source high, low, destination high, low
  std::uint8_t len[2];
  std::uint32_t lo[3], hi[3];  // protocol, source port, destination port
  std::uint32_t index;
};

struct Region {
  std::uint64_t m[4] = {0, 0, 0, 0};  // address bits fixed on the way here
  std::uint32_t lo[3] = {0, 0, 0};    // interval fields: [lo, lo + 2^free)
  std::uint8_t free[3] = {8, 17, 17};
};

struct VecHash {
  std::size_t operator()(const std::vector<std::uint32_t>& v) const noexcept {
    std::uint64_t h = v.size();
    for (std::uint32_t x : v) h = (h ^ x) * 0x9e3779b97f4a7c15ull + (h >> 29);
    return static_cast<std::size_t>(h);
  }
};

// A candidate cut: `bits` bits of dimension `dim` from bit `off` (address)
// or the top free bits (interval); the guard for addresses.
struct Cut {
  unsigned dim = 0, off = 0, bits = 0;
  std::size_t maxc = 0, total = 0;
  std::uint64_t gmask = 0;  // address space of word 2 * dim + off / 64
  std::uint64_t gval = 0;
  unsigned gmax = 0;        // the last guarded bit
};

}  // namespace

struct ForestBuilder {
  CutForest& f;
  const std::vector<BRule>& rules;
  const CutForest::Limits& lim;
  unsigned width;
  std::size_t budget;
  std::size_t entries = 0;
  bool failed = false;
  std::unordered_map<std::vector<std::uint32_t>, std::uint32_t, VecHash> leaves;
  std::vector<std::size_t> sizes;  // scratch for evaluate()
  std::vector<std::uint32_t> next;

  bool v6() const noexcept { return width == 128; }

  // Whether r matches every tuple of the region, in every dimension but
  // `skip`.
  bool covers(const BRule& r, const Region& g, unsigned skip = kDims) const noexcept {
    for (unsigned d = 0; d < kAddrDims; ++d) {
      for (unsigned j = 0; j < 2 && d != skip; ++j) {
        if (prefix_word(r.len[d], j) & ~g.m[2 * d + j]) return false;
      }
    }
    for (unsigned i = 0; i < 3; ++i) {
      if (i + kAddrDims == skip) continue;
      if (r.lo[i] > g.lo[i] || r.hi[i] < g.lo[i] + ((std::uint32_t{1} << g.free[i]) - 1)) return false;
    }
    return true;
  }

  // Whether r, which covers the region in the other dimensions, covers the
  // cut's child x.
  bool covers_child(const BRule& r, const Cut& c, const Region& g, std::uint32_t x) const noexcept {
    if (c.dim < kAddrDims) {
      const unsigned wi = 2 * c.dim + c.off / 64;
      for (unsigned j = 0; j < 2; ++j) {
        std::uint64_t fixed = g.m[2 * c.dim + j];
        if (2 * c.dim + j == wi) fixed |= c.gmask | window_mask(c);
        if (prefix_word(r.len[c.dim], j) & ~fixed) return false;
      }
      return true;
    }
    const unsigned i = c.dim - kAddrDims;
    const unsigned sh = g.free[i] - c.bits;
    const std::uint32_t clo = g.lo[i] + (x << sh);
    return r.lo[i] <= clo && r.hi[i] >= clo + ((std::uint32_t{1} << sh) - 1);
  }

  static std::uint64_t window_mask(const Cut& c) noexcept {
    return (~std::uint64_t{0} >> (64 - c.bits)) << (64 - c.off % 64 - c.bits);
  }

  // The first child at or after x not yet closed by a covering policy.
  std::uint32_t open(std::uint32_t x) noexcept {
    while (next[x] != x) {
      next[x] = next[next[x]];
      x = next[x];
    }
    return x;
  }

  // The index, protocol and port ranges of a leaf policy.
  template <class LeafRule>
  static LeafRule with_ports(LeafRule x, const BRule& r) noexcept {
    x.index = r.index;
    x.slo = r.lo[1];
    x.swid = r.hi[1] - r.lo[1];
    x.dlo = r.lo[2];
    x.dwid = r.hi[2] - r.lo[2];
    const bool one = r.lo[0] == r.hi[0];  // a protocol, or any
    x.pval = one ? static_cast<std::uint8_t>(r.lo[0]) : 0;
    x.pmask = one ? 0xff : 0;
    return x;
  }

  std::uint32_t leaf(const std::vector<std::uint32_t>& list) {
    auto it = leaves.find(list);
    if (it != leaves.end()) return it->second;
    const std::uint32_t at = static_cast<std::uint32_t>(v6() ? f.rules6_.size() : f.rules4_.size());
    entries += list.size() + 1;
    f.max_leaf_ = std::max(f.max_leaf_, list.size());
    for (std::uint32_t i : list) {
      const BRule& r = rules[i];
      if (v6()) {
        CutForest::Rule6 x{};
        for (unsigned w = 0; w < 4; ++w) {
          x.aval[w] = r.a[w];
          x.amask[w] = prefix_word(r.len[w / 2], w % 2);
        }
        f.rules6_.push_back(with_ports(x, r));
      } else {
        CutForest::Rule4 x{};
        x.aval = r.a[0] | r.a[2] >> 32;
        x.amask = prefix_word(r.len[0], 0) | prefix_word(r.len[1], 0) >> 32;
        f.rules4_.push_back(with_ports(x, r));
      }
    }
    if (v6()) {
      CutForest::Rule6 end{};
      end.index = CutForest::kEnd;
      f.rules6_.push_back(end);
    } else {
      CutForest::Rule4 end{};
      end.index = CutForest::kEnd;
      f.rules4_.push_back(end);
    }
    const std::uint32_t ref = at | CutForest::kLeaf;
    leaves.emplace(list, ref);
    return ref;
  }

  // The children range [clo, chi] of rule r for the cut's `bits` bits.
  void range(const BRule& r, const Cut& c, const Region& g, std::uint32_t& clo, std::uint32_t& chi) const noexcept {
    const std::uint32_t all = (std::uint32_t{1} << c.bits) - 1;
    if (c.dim < kAddrDims) {
      const unsigned len = r.len[c.dim];
      if (len <= c.off) {
        clo = 0;
        chi = all;
        return;
      }
      const std::uint64_t w = r.a[2 * c.dim + c.off / 64];
      clo = static_cast<std::uint32_t>(w >> (64 - c.off % 64 - c.bits)) & all;
      chi = len >= c.off + c.bits ? clo : clo | ((std::uint32_t{1} << (c.off + c.bits - len)) - 1);
      return;
    }
    const unsigned i = c.dim - kAddrDims;
    const unsigned sh = g.free[i] - c.bits;
    const std::uint32_t top = g.lo[i] + ((std::uint32_t{1} << g.free[i]) - 1);
    clo = (std::max(r.lo[i], g.lo[i]) - g.lo[i]) >> sh;
    chi = (std::min(r.hi[i], top) - g.lo[i]) >> sh;
  }

  // The best cut of dimension `dim` for the list, or bits == 0.
  Cut evaluate(const std::vector<std::uint32_t>& list, const Region& g, unsigned dim) {
    Cut c;
    c.dim = dim;
    unsigned kmax = 0;
    if (dim < kAddrDims) {
      // The first free bit where two policies that both define it differ.
      std::size_t ref = list[0];
      for (std::uint32_t i : list) {
        if (rules[i].len[dim] > rules[ref].len[dim]) ref = i;
      }
      const BRule& rr = rules[ref];
      unsigned o = width;
      for (std::uint32_t i : list) {
        const BRule& r = rules[i];
        for (unsigned j = 0; j < 2 && j * 64 < o; ++j) {
          const std::uint64_t x = (r.a[2 * dim + j] ^ rr.a[2 * dim + j]) & prefix_word(r.len[dim], j) &
                                  ~g.m[2 * dim + j];
          if (x) {
            o = std::min(o, j * 64 + static_cast<unsigned>(std::countl_zero(x)));
            break;
          }
        }
      }
      if (o >= width) return c;
      const unsigned wi = 2 * dim + o / 64;
      while (kmax < kMaxCutBits && o % 64 + kmax < 64 && o + kmax < width &&
             !((g.m[wi] >> (63 - (o + kmax) % 64)) & 1)) {
        ++kmax;
      }
      c.off = o;
      // Guard: the free bits before the cut in its word that the reference
      // defines; every policy defining one of them agrees with it there.
      const std::uint64_t before = o % 64 == 0 ? 0 : ~std::uint64_t{0} << (64 - o % 64);
      c.gmask = before & ~g.m[wi] & prefix_word(rr.len[dim], o / 64);
      c.gval = rr.a[wi] & c.gmask;
      if (c.gmask) c.gmax = (o / 64) * 64 + 63 - static_cast<unsigned>(std::countr_zero(c.gmask));
    } else {
      kmax = std::min<unsigned>(kMaxCutBits, g.free[dim - kAddrDims]);
    }
    if (kmax == 0) return c;
    // The children's list sizes for every width up to kmax, as the build
    // will make them: a child's list ends at the first policy covering it.
    const std::size_t n = list.size();
    Cut probe = c;
    probe.bits = kmax;
    std::vector<std::uint32_t> lo(n), hi(n);
    std::vector<std::uint8_t> other(n);  // covers the region in every other dimension
    for (std::size_t k = 0; k < n; ++k) {
      range(rules[list[k]], probe, g, lo[k], hi[k]);
      other[k] = covers(rules[list[k]], g, dim);
    }
    for (unsigned bits = 1; bits <= kmax; ++bits) {
      const std::size_t nc = std::size_t{1} << bits;
      sizes.assign(nc, 0);
      next.resize(nc + 1);
      for (std::size_t x = 0; x <= nc; ++x) next[x] = static_cast<std::uint32_t>(x);
      Cut cut = c;
      cut.bits = bits;
      std::size_t total = 0;
      for (std::size_t k = 0; k < n && total <= lim.space_factor * n; ++k) {
        const std::uint32_t a = lo[k] >> (kmax - bits), b = hi[k] >> (kmax - bits);
        const BRule& r = rules[list[k]];
        for (std::uint32_t x = open(a); x <= b; x = open(x + 1)) {
          ++sizes[x];
          ++total;
          if (other[k] && covers_child(r, cut, g, x)) next[x] = x + 1;
        }
      }
      if (bits > 1 && total > lim.space_factor * n) break;
      c.bits = bits;
      c.maxc = *std::max_element(sizes.begin(), sizes.end());
      c.total = total;
    }
    return c;
  }

  std::uint32_t build(std::vector<std::uint32_t> list, const Region& g, unsigned depth) {
    if (failed) return CutForest::kLeaf;
    f.max_depth_ = std::max(f.max_depth_, depth);
    for (std::size_t k = 0; k < list.size(); ++k) {
      if (covers(rules[list[k]], g)) {
        list.resize(k + 1);  // nothing after it is ever the first match here
        break;
      }
    }
    if (list.size() <= lim.leaf_rules || depth >= kMaxDepth) return leaf(list);

    // Address bits that every policy here defines and agrees on: a tuple
    // that differs there matches none of them (the node's guard checks
    // them). The cut is chosen as if they were checked.
    const BRule& r0 = rules[list[0]];
    std::uint64_t common[4];
    for (unsigned w = 0; w < 4; ++w) common[w] = ~g.m[w];
    for (std::uint32_t i : list) {
      const BRule& r = rules[i];
      for (unsigned w = 0; w < 4; ++w) common[w] &= prefix_word(r.len[w / 2], w % 2) & ~(r.a[w] ^ r0.a[w]);
    }
    Region ge = g;
    for (unsigned w = 0; w < 4; ++w) ge.m[w] |= common[w];
    Cut best;
    for (unsigned dim = 0; dim < kDims; ++dim) {
      const Cut c = evaluate(list, ge, dim);
      if (c.bits == 0 || c.maxc >= list.size()) continue;
      if (best.bits == 0 || c.maxc < best.maxc || (c.maxc == best.maxc && c.total < best.total)) best = c;
    }
    if (best.bits == 0) return leaf(list);

    const std::size_t nc = std::size_t{1} << best.bits;
    entries += nc;
    if (entries > budget) {
      failed = true;
      return CutForest::kLeaf;
    }
    const auto node = static_cast<std::uint32_t>(f.nodes_.size());
    f.nodes_.push_back(CutForest::Node{});
    const auto base = static_cast<std::uint32_t>(f.kids_.size());
    for (std::size_t x = 0; x < nc; ++x) f.kids_.push_back(0);

    // The guard, on one key word: the common bits there and the bits
    // before an address cut that the policies defining them agree on.
    CutForest::Node nd{};
    Region gc = g;  // the children's region before the cut itself
    std::uint64_t gm[4] = {0, 0, 0, 0}, gv[4] = {0, 0, 0, 0};  // in address words
    unsigned gw = 0;
    if (best.dim < kAddrDims) {
      gw = 2 * best.dim + best.off / 64;
      gm[gw] = best.gmask;
      gv[gw] = best.gval;
    } else if (v6()) {
      for (unsigned w = 1; w < 4; ++w) {
        if (std::popcount(common[w]) > std::popcount(common[gw])) gw = w;
      }
    }
    if (v6()) {
      gm[gw] |= common[gw];
      gv[gw] |= r0.a[gw] & common[gw];
      nd.gword = static_cast<std::uint8_t>(gw);
      nd.gmask = gm[gw];
      nd.gval = gv[gw];
    } else {  // IPv4: the key's first word holds both addresses
      for (unsigned w : {0u, 2u}) {
        gm[w] |= common[w];
        gv[w] |= r0.a[w] & common[w];
      }
      nd.gword = 0;
      nd.gmask = gm[0] | gm[2] >> 32;
      nd.gval = gv[0] | gv[2] >> 32;
    }
    for (unsigned w = 0; w < 4; ++w) gc.m[w] |= gm[w];
    if (best.dim < kAddrDims) best.gmask = 0;  // now part of gc

    // The children's lists, each ending at its first covering policy.
    std::vector<std::vector<std::uint32_t>> sub(nc);
    next.resize(nc + 1);
    for (std::size_t x = 0; x <= nc; ++x) next[x] = static_cast<std::uint32_t>(x);
    for (std::uint32_t i : list) {
      const BRule& r = rules[i];
      std::uint32_t a, b;
      range(r, best, gc, a, b);
      const bool other = covers(r, gc, best.dim);
      for (std::uint32_t x = open(a); x <= b; x = open(x + 1)) {
        sub[x].push_back(i);
        if (other && covers_child(r, best, gc, x)) next[x] = x + 1;
      }
    }
    nd.base = base;
    nd.kmask = static_cast<std::uint32_t>(nc - 1);
    std::uint32_t fallback;
    {
      std::vector<std::uint32_t> rest;  // what a tuple failing the guard may match
      if (best.dim < kAddrDims && gm[gw] != common[gw]) {
        for (std::uint32_t i : list) {
          if (rules[i].len[best.dim] <= best.gmax) rest.push_back(i);
        }
      }
      fallback = build(std::move(rest), g, depth + 1);
    }
    if (best.dim < kAddrDims) {
      const unsigned wi = 2 * best.dim + best.off / 64;
      Region child = gc;
      child.m[wi] |= window_mask(best);
      // Siblings with the same policies share a subtree: below here only
      // the fixed bits' positions matter, not their values.
      std::unordered_map<std::vector<std::uint32_t>, std::uint32_t, VecHash> same;
      for (std::size_t x = 0; x < nc; ++x) {
        auto it = same.find(sub[x]);
        std::uint32_t ref;
        if (it != same.end()) {
          ref = it->second;
        } else {
          ref = build(sub[x], child, depth + 1);
          same.emplace(std::move(sub[x]), ref);
        }
        f.kids_[base + x] = ref;
      }
      if (v6()) {
        nd.word = static_cast<std::uint8_t>(wi);
        nd.shift = static_cast<std::uint8_t>(64 - best.off % 64 - best.bits);
      } else {
        const unsigned down = best.dim == 0 ? 0 : 32;  // IPv4 key: source << 32 | destination
        nd.word = 0;
        nd.shift = static_cast<std::uint8_t>(64 - best.off - best.bits - down);
      }
    } else {
      const unsigned i = best.dim - kAddrDims;
      for (std::size_t x = 0; x < nc; ++x) {
        Region child = gc;
        child.free[i] = static_cast<std::uint8_t>(g.free[i] - best.bits);
        child.lo[i] = g.lo[i] + (static_cast<std::uint32_t>(x) << child.free[i]);
        f.kids_[base + x] = sub[x].empty() ? leaf(sub[x]) : build(std::move(sub[x]), child, depth + 1);
      }
      nd.word = static_cast<std::uint8_t>(v6() ? 4 : 1);
      nd.shift = static_cast<std::uint8_t>(kFieldPos[i] + g.free[i] - best.bits);
    }
    nd.fallback = fallback;
    f.nodes_[node] = nd;
    return node;
  }
};

std::unique_ptr<CutForest> CutForest::build(std::span<const Policy> policies, Family fam, const Limits& lim) {
  std::unique_ptr<CutForest> f = build_trees(policies, fam, lim);
  if (f) {
    // Walking a burst's tuples together pays when the walks miss the
    // CPU's caches: one big tree (benchmarks.md, "Burst walks only for
    // one big tree"). With small or several trees it costs more than it
    // saves, and a burst is looked up one tuple at a time.
    switch (lim.burst_walks) {
      case Walks::automatic:
        f->walk_together_ = f->trees_.size() == 1 && f->memory_bytes() > kWalkTogetherBytes;
        break;
      case Walks::together: f->walk_together_ = true; break;
      case Walks::single: f->walk_together_ = false; break;
    }
  }
  return f;
}

std::unique_ptr<CutForest> CutForest::build_trees(std::span<const Policy> policies, Family fam, const Limits& lim) {
  std::unique_ptr<CutForest> f(new CutForest());
  f->v6_ = fam == Family::ipv6;
  const unsigned width = f->v6_ ? 128 : 32;
  std::vector<BRule> rules;
  for (std::size_t i = 0; i < policies.size(); ++i) {
    const Selector& s = policies[i].sel;
    if (s.src.family() != fam) continue;
    BRule r{};
    const IpPrefix* pre[2] = {&s.src, &s.dst};
    for (unsigned d = 0; d < 2; ++d) {
      r.len[d] = pre[d]->len;
      for (unsigned j = 0; j < 2; ++j) {
        r.a[2 * d + j] = detail::load_be64(pre[d]->addr.bytes.data() + 8 * j) & prefix_word(r.len[d], j);
      }
    }
    if (s.proto == kProtoAny) {
      r.lo[0] = 0;
      r.hi[0] = 255;
    } else {
      r.lo[0] = r.hi[0] = s.proto;
    }
    const bool any = s.proto == kProtoAny || (s.sport.is_any() && s.dport.is_any());
    const PortRange* pr[2] = {&s.sport, &s.dport};
    for (unsigned k = 0; k < 2; ++k) {
      r.lo[1 + k] = any || pr[k]->is_any() ? 0 : pr[k]->lo;
      r.hi[1 + k] = any || pr[k]->is_any() ? kPortsAll : pr[k]->hi;
    }
    r.index = static_cast<std::uint32_t>(i);
    rules.push_back(r);
  }
  if (rules.empty()) return f;
  // A tuple outside the address bits that all of the family's policies
  // share matches none of them; one inside matches the first policy that
  // covers that region, so the policies after it can never be first.
  {
    Region shared;
    for (unsigned w = 0; w < 4; ++w) {
      shared.m[w] = ~std::uint64_t{0};
      for (const BRule& r : rules) shared.m[w] &= prefix_word(r.len[w / 2], w % 2) & ~(r.a[w] ^ rules[0].a[w]);
    }
    ForestBuilder probe{*f, rules, lim, width, 0, 0, false, {}, {}, {}};
    for (std::size_t k = 0; k < rules.size(); ++k) {
      if (probe.covers(rules[k], shared)) {
        rules.resize(k + 1);
        break;
      }
    }
  }
  const std::size_t budget = lim.max_entries ? lim.max_entries : 64 * rules.size() + 65536;

  // Subsets by which addresses are wide: fewer than 8 bits past the first
  // bit where the family's policies differ. Two ways are built: four
  // subsets, and three (the policies with a narrow source in one tree);
  // the three trees win unless they take over 5/4 of the memory, since a
  // lookup walks every tree.
  unsigned first[2];
  {
    ForestBuilder probe{*f, rules, lim, width, 0, 0, false, {}, {}, {}};
    std::vector<std::uint32_t> all(rules.size());
    for (std::size_t i = 0; i < rules.size(); ++i) all[i] = static_cast<std::uint32_t>(i);
    for (unsigned d = 0; d < 2; ++d) {
      const Cut c = probe.evaluate(all, Region{}, d);
      first[d] = c.bits ? c.off : width;
    }
  }
  auto make = [&](bool merge) -> std::unique_ptr<CutForest> {
    std::unique_ptr<CutForest> x(new CutForest());
    x->v6_ = f->v6_;
    std::vector<std::uint32_t> subset[4];
    for (std::size_t i = 0; i < rules.size(); ++i) {
      const unsigned ws = rules[i].len[0] < first[0] + 8 ? 1 : 0;
      const unsigned wd = rules[i].len[1] < first[1] + 8 ? 1 : 0;
      subset[ws * 2 + (ws || !merge ? wd : 0)].push_back(static_cast<std::uint32_t>(i));
    }
    ForestBuilder b{*x, rules, lim, width, budget, 0, false, {}, {}, {}};
    for (auto& sub : subset) {
      if (sub.empty()) continue;
      const std::uint32_t best = rules[sub[0]].index;
      // max_depth_ is the depth of the deepest node built so far; the
      // tree's own goes into its step count (a leaf at depth d is d steps
      // from the root; one more covers an empty child made without build()).
      const unsigned deepest = x->max_depth_;
      x->max_depth_ = 0;
      const std::uint32_t root = b.build(std::move(sub), Region{}, 0);
      if (b.failed) return nullptr;
      const std::uint32_t steps = root & CutForest::kLeaf ? 0 : x->max_depth_ + 1;
      x->max_depth_ = std::max(deepest, x->max_depth_);
      x->trees_.push_back(Tree{root, best, steps});
    }
    std::sort(x->trees_.begin(), x->trees_.end(), [](const Tree& p, const Tree& q) { return p.best < q.best; });
    return x;
  };
  std::unique_ptr<CutForest> four = make(false);
  const bool split = std::any_of(rules.begin(), rules.end(), [&](const BRule& r) {
    return r.len[0] >= first[0] + 8 && r.len[1] < first[1] + 8;
  }) && std::any_of(rules.begin(), rules.end(), [&](const BRule& r) {
    return r.len[0] >= first[0] + 8 && r.len[1] >= first[1] + 8;
  });
  if (!split) return four;  // nothing to merge
  std::unique_ptr<CutForest> three = make(true);
  if (!three) return four;
  if (!four || 4 * three->memory_bytes() <= 5 * four->memory_bytes()) return three;
  return four;
}

std::size_t CutForest::memory_bytes() const noexcept {
  return sizeof(*this) + trees_.size() * sizeof(Tree) + nodes_.size() * sizeof(Node) +
         kids_.size() * sizeof(std::uint32_t) + rules4_.size() * sizeof(Rule4) + rules6_.size() * sizeof(Rule6);
}

}  // namespace cygnet::dp::spd
