// Decision trees for the SPD classifier (docs/spd.md, "Cut trees").
//
// One CutForest per address family answers "the first policy (lowest
// index) whose selector matches this tuple". Its policies are split into up
// to four subsets by which of the two addresses is wide (a prefix that
// leaves fewer than 8 bits past what all of the family's policies share),
// as EffiCuts does, so that a wide field of one subset does not make the
// tree of another copy rules into every branch. Each subset is one tree:
//
//   - an inner node cuts k (1..8) consecutive bits of one field of the
//     lookup key, the source or destination address or the protocol or a
//     port (17 bits: 0x10000 stands for "unknown", a non-first fragment),
//     and the k bits index its children. Bits that every policy of the
//     node agrees on before the cut are checked at the node (its guard);
//     a tuple that differs there goes to the fallback child, which holds
//     only the policies short enough not to care;
//   - a leaf is the node's policies in evaluation order, each a masked
//     compare of the addresses and range checks on the protocol and ports,
//     ended by a sentinel. A policy that covers the whole region of a node
//     ends its list there: nothing after it can be the first match.
//
// Trees are tried in the order of the best policy they hold; a tree whose
// best policy comes after the match found so far is not entered, and a
// leaf scan stops at the first policy after it. No allocation, lock or
// virtual call on lookup.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "dp/spd/flow.h"
#include "shared/policy.h"

namespace cygnet::dp::spd {

class CutForest {
 public:
  // How lookup_burst walks the trees: all the tuples of a chunk one level
  // at a time together, or each tuple alone (automatic: together only for
  // a forest of one tree over kWalkTogetherBytes).
  enum class Walks : std::uint8_t { automatic, together, single };
  static constexpr std::size_t kWalkTogetherBytes = 256 * 1024;
  struct Limits {
    Walks burst_walks = Walks::automatic;
    std::size_t leaf_rules = 4;   // a node with at most this many policies is a leaf
    unsigned space_factor = 4;    // a cut may at most multiply a node's policy copies by this
    std::size_t max_entries = 0;  // 0: 64 per policy + 65,536; more fails the build
  };

  // rules: all the direction's policies in evaluation order (validated);
  // only those of family `fam` are used. Null if the trees would exceed
  // the memory limit (the caller then uses another structure).
  static std::unique_ptr<CutForest> build(std::span<const Policy> rules, Family fam, const Limits& lim);

  // Lowers `best` to the index of the first matching policy if it comes
  // before `best`. The tuple must be of the forest's family.
  void lookup(const FlowTuple& t, std::uint32_t& best) const noexcept {
    if (v6_) {
      lookup_impl<true>(t, best);
    } else {
      lookup_impl<false>(t, best);
    }
  }

  // The same for a burst: lowers best[i] for tuple t[i], i < n. When the
  // forest walks together, the walks of up to kChunk tuples advance one
  // level at a time, without a branch on where each one is, so the loads
  // of different tuples overlap (rte_acl classifies its bursts in the same
  // spirit); else each tuple is looked up alone.
  static constexpr unsigned kChunk = 16;
  void lookup_burst(const FlowTuple* const* t, unsigned n, std::uint32_t* best) const noexcept {
    if (!walk_together_) {
      for (unsigned i = 0; i < n; ++i) lookup(*t[i], best[i]);
    } else if (v6_) {
      burst_impl<true>(t, n, best);
    } else {
      burst_impl<false>(t, n, best);
    }
  }

  std::size_t tree_count() const noexcept { return trees_.size(); }
  std::size_t node_count() const noexcept { return nodes_.size(); }
  std::size_t memory_bytes() const noexcept;
  // The depth of the deepest path and the longest leaf (policies, no sentinel).
  unsigned max_depth() const noexcept { return max_depth_; }
  std::size_t max_leaf() const noexcept { return max_leaf_; }
  bool walks_together() const noexcept { return walk_together_; }

  // Internals, public for the builder.
  static constexpr std::uint32_t kLeaf = 0x80000000u;
  static constexpr std::uint32_t kEnd = ~std::uint32_t{0};  // the sentinel's index
  static constexpr std::size_t kMaxTrees = 4;
  struct Node {
    std::uint64_t gmask, gval;  // guard on key word `gword`
    std::uint32_t base;         // first child in kids_
    std::uint32_t fallback;     // where a tuple failing the guard goes
    std::uint32_t kmask;        // (1 << bits) - 1
    std::uint8_t word, shift;   // the cut: (key[word] >> shift) & kmask
    std::uint8_t gword;
  };
  struct Rule4 {  // source in the high 32 bits, destination in the low ones
    std::uint64_t aval, amask;
    std::uint32_t index;
    std::uint32_t slo, swid, dlo, dwid;  // 17-bit port ranges: lo and hi - lo
    std::uint8_t pval, pmask;
  };
  struct Rule6 {
    std::uint64_t aval[4], amask[4];  // source high, low, destination high, low
    std::uint32_t index;
    std::uint32_t slo, swid, dlo, dwid;
    std::uint8_t pval, pmask;
  };
  struct Tree {
    std::uint32_t root;
    std::uint32_t best;   // smallest policy index in the tree
    std::uint32_t steps;  // inner nodes on the longest walk from the root to a leaf
  };

 private:
  CutForest() = default;
  static std::unique_ptr<CutForest> build_trees(std::span<const Policy> rules, Family fam, const Limits& lim);
  template <bool V6>
  static constexpr unsigned kWords = V6 ? 5 : 2;  // lookup key words
  template <bool V6>
  static void make_key(const FlowTuple& t, std::uint64_t* key) noexcept;
  template <bool V6>
  std::uint32_t scan(const std::uint64_t* key, const std::uint32_t* leaf, std::uint32_t best) const noexcept;
  std::uint32_t walk(std::uint32_t ref, const std::uint64_t* key) const noexcept;
  template <bool V6>
  void lookup_impl(const FlowTuple& t, std::uint32_t& best) const noexcept;
  template <bool V6>
  void burst_impl(const FlowTuple* const* t, unsigned n, std::uint32_t* best) const noexcept;
  friend struct ForestBuilder;

  bool v6_ = false;
  bool walk_together_ = false;
  std::vector<Tree> trees_;  // by best
  std::vector<Node> nodes_;
  std::vector<std::uint32_t> kids_;
  std::vector<Rule4> rules4_;
  std::vector<Rule6> rules6_;
  unsigned max_depth_ = 0;
  std::size_t max_leaf_ = 0;
};

namespace detail {

inline std::uint64_t load_be64(const std::uint8_t* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}

// The protocol and ports word of the lookup key: proto << 34 | sport << 17
// | dport, ports 17 bits wide, 0x10000 for both when they are unknown.
inline std::uint64_t misc_word(const FlowTuple& t) noexcept {
  const std::uint64_t sp = t.opaque ? 0x10000u : t.sport;
  const std::uint64_t dp = t.opaque ? 0x10000u : t.dport;
  return std::uint64_t{t.proto} << 34 | sp << 17 | dp;
}

}  // namespace detail

template <bool V6>
inline void CutForest::make_key(const FlowTuple& t, std::uint64_t* key) noexcept {
  if constexpr (V6) {
    key[0] = detail::load_be64(t.src);
    key[1] = detail::load_be64(t.src + 8);
    key[2] = detail::load_be64(t.dst);
    key[3] = detail::load_be64(t.dst + 8);
  } else {
    key[0] = (detail::load_be64(t.src) & 0xffffffff00000000ull) | detail::load_be64(t.dst) >> 32;
  }
  key[kWords<V6> - 1] = detail::misc_word(t);
}

// The leaves one tuple reached, leaf[i] for tree i, scanned in the
// trees' order: each leaf is its policies in evaluation order, then a
// sentinel whose index ends the scan. Returns the first match if it comes
// before `best`, else `best`.
template <bool V6>
inline std::uint32_t CutForest::scan(const std::uint64_t* key, const std::uint32_t* leaf,
                                     std::uint32_t best) const noexcept {
  const std::uint64_t misc = key[kWords<V6> - 1];
  const std::uint32_t proto = static_cast<std::uint32_t>(misc >> 34);
  const std::uint32_t sp = static_cast<std::uint32_t>(misc >> 17) & 0x1ffff;
  const std::uint32_t dp = static_cast<std::uint32_t>(misc) & 0x1ffff;
  std::uint32_t b = best;
  const std::size_t ntrees = trees_.size();
  for (std::size_t i = 0; i < ntrees; ++i) {
    if constexpr (V6) {
      for (const Rule6* r = rules6_.data() + leaf[i]; r->index < b; ++r) {
        const std::uint64_t a = ((key[0] & r->amask[0]) ^ r->aval[0]) | ((key[1] & r->amask[1]) ^ r->aval[1]) |
                                ((key[2] & r->amask[2]) ^ r->aval[2]) | ((key[3] & r->amask[3]) ^ r->aval[3]);
        if ((a == 0) & ((proto & r->pmask) == r->pval) & (sp - r->slo <= r->swid) & (dp - r->dlo <= r->dwid)) {
          b = r->index;
          break;
        }
      }
    } else {
      for (const Rule4* r = rules4_.data() + leaf[i]; r->index < b; ++r) {
        if (((key[0] & r->amask) == r->aval) & ((proto & r->pmask) == r->pval) & (sp - r->slo <= r->swid) &
            (dp - r->dlo <= r->dwid)) {
          b = r->index;
          break;
        }
      }
    }
  }
  return b;
}

// From node or leaf `ref` down to a leaf.
inline std::uint32_t CutForest::walk(std::uint32_t ref, const std::uint64_t* key) const noexcept {
  const Node* nodes = nodes_.data();
  const std::uint32_t* kids = kids_.data();
  while (!(ref & kLeaf)) {
    const Node& n = nodes[ref];
    const std::uint32_t child = kids[n.base + (static_cast<std::uint32_t>(key[n.word] >> n.shift) & n.kmask)];
    ref = (key[n.gword] & n.gmask) == n.gval ? child : n.fallback;
  }
  return ref;
}

template <bool V6>
inline void CutForest::lookup_impl(const FlowTuple& t, std::uint32_t& best) const noexcept {
  std::uint64_t key[kWords<V6>];
  make_key<V6>(t, key);
  // The walks do not depend on each other: all of them first, so their
  // loads overlap, then the leaves in the trees' order.
  std::uint32_t leaf[kMaxTrees];
  const std::size_t ntrees = trees_.size();
  for (std::size_t i = 0; i < ntrees; ++i) leaf[i] = walk(trees_[i].root, key) & ~kLeaf;
  best = scan<V6>(key, leaf, best);
}

template <bool V6>
inline void CutForest::burst_impl(const FlowTuple* const* t, unsigned n, std::uint32_t* best) const noexcept {
  const Node* nodes = nodes_.data();
  const std::uint32_t* kids = kids_.data();
  const std::size_t ntrees = trees_.size();
  for (unsigned base = 0; base < n; base += kChunk) {
    const unsigned m = n - base < kChunk ? n - base : kChunk;
    std::uint64_t key[kChunk][kWords<V6>];
    for (unsigned j = 0; j < m; ++j) make_key<V6>(*t[base + j], key[j]);
    std::uint32_t leaf[kChunk][kMaxTrees];
    for (std::size_t i = 0; i < ntrees; ++i) {
      std::uint32_t ref[kChunk];
      for (unsigned j = 0; j < m; ++j) ref[j] = trees_[i].root;
      // One level for every tuple per step. A tuple at its leaf stays
      // there: it reads node 0 (any node will do; one exists whenever the
      // tree has a step) and keeps its ref. Once fewer than a quarter of
      // the tuples are still inside the tree, each of those finishes its
      // own walk, so a deep path does not make every tuple step on.
      unsigned inner = m;
      for (std::uint32_t s = 0; s < trees_[i].steps && 4 * inner >= m; ++s) {
        inner = 0;
        for (unsigned j = 0; j < m; ++j) {
          const std::uint32_t r = ref[j];
          const std::uint32_t at_leaf = r & kLeaf;
          const Node& nd = nodes[at_leaf ? 0 : r];
          const std::uint32_t child =
              kids[nd.base + (static_cast<std::uint32_t>(key[j][nd.word] >> nd.shift) & nd.kmask)];
          const std::uint32_t next = (key[j][nd.gword] & nd.gmask) == nd.gval ? child : nd.fallback;
          ref[j] = at_leaf ? r : next;
          inner += (ref[j] & kLeaf) == 0;
        }
      }
      for (unsigned j = 0; j < m && inner != 0; ++j) ref[j] = walk(ref[j], key[j]);
      for (unsigned j = 0; j < m; ++j) leaf[j][i] = ref[j] & ~kLeaf;
    }
    for (unsigned j = 0; j < m; ++j) best[base + j] = scan<V6>(key[j], leaf[j], best[base + j]);
  }
}

}  // namespace cygnet::dp::spd
