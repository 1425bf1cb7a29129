// SPD classifiers: given the policies of one direction in evaluation order
// (index 0 is tried first), the index of the first policy whose selector
// matches a 5-tuple, or -1.
//
// LinearSpd is the reference: a loop over Selector::matches. Classifier is
// the one the dataplane uses on flow-cache misses (docs/spd.md): per family,
// cut trees (CutForest, dp/spd/cut_tree.h), or, for a family whose trees
// would pass their memory limit, a tuple-space search. Its policies are
// grouped by (family, source prefix length, destination prefix length,
// protocol given or any); each group is one hash probe on the masked
// addresses and protocol, and groups are tried in the order of the best
// policy they hold, so the search stops as soon as no remaining group can
// hold an earlier match.
//
// With more than a few groups, a per-family group filter cuts the probes:
// a 16-bit window of the source and of the destination address, each an
// index into a table of the groups (a 64-bit mask, the first 64 groups in
// order) that hold a policy whose prefix agrees with the packet there, and
// a table by protocol. Only the groups in all three masks are probed.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "dp/spd/cut_tree.h"
#include "dp/spd/flow.h"
#include "shared/policy.h"
#include "shared/result.h"

namespace cygnet::dp::spd {

class LinearSpd {
 public:
  explicit LinearSpd(std::vector<Policy> rules) : rules_(std::move(rules)) {}
  std::int32_t lookup(const FlowTuple& t) const noexcept;
  std::int32_t lookup(const FlowKey& k) const noexcept;
  const std::vector<Policy>& rules() const noexcept { return rules_; }

 private:
  std::vector<Policy> rules_;
};

class Classifier {
 public:
  // How a family's policies are searched. automatic: cut trees (CutForest),
  // or the tuple-space search for a family whose trees would exceed their
  // memory limit. trees: cut trees or a build error. tuples: tuple space.
  enum class Mode : std::uint8_t { automatic, trees, tuples };

  // Every policy must pass validate_policy(). At most 2^24 policies.
  static Result<std::unique_ptr<Classifier>> build(std::span<const Policy> rules, std::uint64_t seed,
                                                   Mode mode = Mode::automatic,
                                                   const CutForest::Limits& limits = {});

  std::int32_t lookup(const FlowTuple& t) const noexcept {
    const CutForest* f = t.v6() ? forest6_.get() : forest4_.get();
    if (f == nullptr) return lookup_tuples(t);
    std::uint32_t best = kEmpty;
    f->lookup(t, best);
    return best == kEmpty ? -1 : static_cast<std::int32_t>(best);
  }
  // out[i] = lookup(*t[i]) for every i < n, tuples of either family in any
  // order: the cut trees of each family walk up to CutForest::kChunk
  // tuples together (the flow cache's misses of one rx burst).
  void lookup_burst(const FlowTuple* const* t, unsigned n, std::int32_t* out) const noexcept;
  // The family's cut trees, or null when it uses the tuple-space search.
  const CutForest* forest(Family f) const noexcept {
    return f == Family::ipv6 ? forest6_.get() : f == Family::ipv4 ? forest4_.get() : nullptr;
  }

  std::size_t rule_count() const noexcept { return nrules_; }
  std::size_t group_count(Family f) const noexcept;
  // Tuple-space search only (no groups while the family uses trees).
  // Whether the group filter is built for the family, and its windows
  // (byte offsets into the address); for tests and benchmarks.
  bool filtered(Family f) const noexcept;
  std::pair<unsigned, unsigned> filter_windows(Family f) const noexcept;
  std::size_t memory_bytes() const noexcept;

  // Families with more groups than this get the group filter.
  static constexpr std::size_t kFilterMinGroups = 4;
  static constexpr std::size_t kFilterGroups = 64;  // groups the masks cover

  // Internals, public for the implementation's helpers.
  struct Group {
    std::uint64_t smask[2];
    std::uint64_t dmask[2];
    std::uint32_t best;  // smallest rule index in the group
    std::uint32_t id;
    std::uint8_t slen, dlen;  // prefix lengths
    bool any_proto;
  };
  struct Slot {  // one hash entry: a (group, masked src, masked dst, proto) key
    std::uint64_t s[2];
    std::uint64_t d[2];
    std::uint32_t group;  // kEmpty when unused
    std::uint32_t first;  // into refs_
    std::uint32_t count;
    std::uint8_t proto;
  };
  struct RuleRef {  // rules of one slot, in evaluation order
    std::uint32_t index;
    std::uint16_t slo, shi, dlo, dhi;
    bool ports_any;
  };
  static constexpr std::uint32_t kEmpty = ~std::uint32_t{0};

  struct Filter {
    std::vector<std::uint64_t> src, dst;  // 65536 masks each, by the 16-bit window
    std::uint64_t src_all = 0, dst_all = 0;  // groups whose prefixes end before the window
    std::array<std::uint64_t, 256> proto{};  // by protocol
    std::uint8_t soff = 0, doff = 0;         // byte offset of each window
    bool on = false;
  };

 private:
  Classifier() = default;
  Result<void> build_tuples(std::span<const Policy> rules);
  std::int32_t lookup_tuples(const FlowTuple& t) const noexcept;
  std::uint64_t candidates(const FlowTuple& t, const std::vector<Group>& groups, const Filter& f) const noexcept;
  std::uint64_t key_hash(const Group& g, const FlowTuple& t, const std::uint64_t s[2],
                         const std::uint64_t d[2]) const noexcept;
  bool maybe_present(std::uint64_t h) const noexcept;
  void probe(const Group& g, const FlowTuple& t, const std::uint64_t s[2], const std::uint64_t d[2],
             std::uint32_t& best) const noexcept;
  void probe_at(const Group& g, const FlowTuple& t, const std::uint64_t s[2], const std::uint64_t d[2],
                std::uint64_t start, std::uint32_t& best) const noexcept;
  std::uint64_t hash(std::uint32_t group, const std::uint64_t s[2], const std::uint64_t d[2],
                     std::uint8_t proto) const noexcept;

  std::unique_ptr<CutForest> forest4_, forest6_;
  std::vector<Group> groups4_;
  std::vector<Group> groups6_;
  Filter filter4_, filter6_;
  std::vector<Slot> slots_;
  std::vector<RuleRef> refs_;
  // One bit per hash of every slot key (16 bits per key): a probe that
  // finds its bit clear cannot hit, and skips the slot table.
  std::vector<std::uint64_t> bloom_;
  std::uint64_t bloom_mask_ = 0;
  std::uint64_t mask_ = 0;  // slots_.size() - 1
  std::uint64_t seed_ = 0;
  std::size_t nrules_ = 0;
};

}  // namespace cygnet::dp::spd
