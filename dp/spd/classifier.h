// SPD classifiers: given the policies of one direction in evaluation order
// (index 0 is tried first), the index of the first policy whose selector
// matches a 5-tuple, or -1.
//
// LinearSpd is the reference: a loop over Selector::matches. Classifier is
// the one the dataplane uses on flow-cache misses: a tuple-space search
// (docs/spd.md). Policies are grouped by (family, source prefix length,
// destination prefix length, protocol given or any); each group is one hash
// probe on the masked addresses and protocol, and groups are tried in the
// order of the best policy they hold, so the search stops as soon as no
// remaining group can hold an earlier match.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

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
  // Every policy must pass validate_policy(). At most 2^24 policies.
  static Result<std::unique_ptr<Classifier>> build(std::span<const Policy> rules, std::uint64_t seed);

  std::int32_t lookup(const FlowTuple& t) const noexcept;

  std::size_t rule_count() const noexcept { return nrules_; }
  std::size_t group_count(Family f) const noexcept;
  std::size_t memory_bytes() const noexcept;

  // Internals, public for the implementation's helpers.
  struct Group {
    std::uint64_t smask[2];
    std::uint64_t dmask[2];
    std::uint32_t best;  // smallest rule index in the group
    std::uint32_t id;
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

 private:
  Classifier() = default;
  std::uint64_t hash(std::uint32_t group, const std::uint64_t s[2], const std::uint64_t d[2],
                     std::uint8_t proto) const noexcept;

  std::vector<Group> groups4_;
  std::vector<Group> groups6_;
  std::vector<Slot> slots_;
  std::vector<RuleRef> refs_;
  std::uint64_t mask_ = 0;  // slots_.size() - 1
  std::uint64_t seed_ = 0;
  std::size_t nrules_ = 0;
};

}  // namespace cygnet::dp::spd
