// An SPD classifier built on DPDK's rte_acl, used as the peer of our own
// classifiers in the SPD lookup benchmarks (lookup cost per packet against a
// linear SPD and rte_acl in the same run). It is not part of the dataplane.
//
// Semantics are exactly those of a linear scan over the rules, in order,
// with Selector::matches (shared/policy.cc), including the opaque rule
// (FlowTuple::opaque, FlowKey::opaque_ports): a tuple with opaque = 1 (a
// non-first fragment, ports unknown) matches a selector with a specific
// protocol only if both of its port ranges are the full 0-65535. The first
// matching rule wins.
//
// rte_acl layout (see acl_spd.cc for the details): rte_acl reads its input
// from a byte buffer in network order, with the first field one byte long
// and every later group of fields exactly 4 bytes. FlowTuple keeps its ports
// in host order, so classify() packs each tuple into a small buffer first:
//
//   IPv4: proto | pad[3] | src[4]  | dst[4]  | sport dport | opaque (be32 0/1)
//   IPv6: proto | pad[3] | src[16] | dst[16] | sport dport | opaque (be32 0/1)
//
// That copy is part of the per-packet cost measured for rte_acl, as it
// would be for any user of rte_acl whose key is not already laid out this way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dp/spd/flow.h"
#include "shared/policy.h"

struct rte_acl_ctx;

namespace cygnet::bench {

// Starts DPDK's EAL once per process for benchmarks and tests: no hugepages
// (--no-huge -m 2048: the heap is reserved, not touched, so it costs address
// space rather than memory), no PCI, no shared config files, no telemetry,
// EAL logging at error level only. The single EAL lcore is the first CPU of
// the calling thread's affinity mask, so a process started under
// `taskset -c N` stays on CPU N (EAL pins the main thread to its lcore).
// Returns false and sets *err on failure; later calls return the first
// outcome again (EAL cannot be started twice).
bool eal_init_for_bench(std::string* err);

class AclSpd {
 public:
  // Default upper bound on rte_acl's run-time structures per context.
  static constexpr std::size_t kMaxRuntimeBytes = std::size_t{256} << 20;

  struct Options {
    // Rules per rte_acl context. 0: one context per address family, which
    // is how rte_acl is meant to be used. rte_acl spreads a context's rules
    // over at most 8 tries and fails beyond that ("Exceeded max number of
    // tries"); large sets of wide, overlapping, range-heavy rules hit that
    // limit (see acl_spd_test.cc). With a limit here, the rules of a family
    // are cut, in order, into consecutive chunks, one context each; a lookup
    // then runs every context of the tuple's family and the lowest matching
    // index wins, which keeps first-match semantics exact.
    std::size_t max_rules_per_context = 0;
    // Passed to rte_acl_build as rte_acl_config.max_size. rte_acl first
    // tries its largest trie size and splits the rules into more tries until
    // the result fits; 0 would make it always split as much as it can, which
    // makes lookups slower.
    std::size_t max_runtime_bytes = kMaxRuntimeBytes;
    // rte_acl's classify method (enum rte_acl_classify_alg): 0 keeps the
    // one rte_acl picks for the CPU and EAL's SIMD width; another value is
    // set with rte_acl_set_ctx_classify, and the build fails if this CPU
    // or EAL cannot run it.
    int classify_alg = 0;
  };

  // rules: the policies of one direction in the order they must be tried;
  // the FIRST matching rule (lowest index) wins. IPv4 and IPv6 policies may
  // be mixed (separate rte_acl contexts per family). A rule whose selector
  // has no family, mixed families, a prefix longer than the address or (with
  // a specific protocol) a port range with lo > hi is refused with a message
  // naming its index. EAL must be up (eal_init_for_bench). Returns nullptr
  // and sets *err on failure.
  static std::unique_ptr<AclSpd> build(const std::vector<cygnet::Policy>& rules, std::string* err);
  static std::unique_ptr<AclSpd> build(const std::vector<cygnet::Policy>& rules, const Options& options,
                                       std::string* err);

  ~AclSpd();
  AclSpd(const AclSpd&) = delete;
  AclSpd& operator=(const AclSpd&) = delete;

  // For each tuple: the index into `rules` of the first matching rule, or -1.
  // Tuples whose family is neither 4 nor 6 match nothing. Safe to call from
  // several threads at once.
  void classify(const cygnet::dp::spd::FlowTuple* const* tuples, std::uint32_t n, std::int32_t* out) const;
  std::int32_t classify_one(const cygnet::dp::spd::FlowTuple& t) const;

  std::size_t num_rules() const noexcept { return num_rules_; }
  // rte_acl contexts built (IPv4 + IPv6).
  std::size_t num_contexts() const noexcept { return ctx4_.size() + ctx6_.size(); }
  // Bytes of DPDK heap taken by the build (rules plus run-time tries),
  // measured around it: only meaningful when nothing else allocates from the
  // DPDK heap meanwhile.
  std::size_t memory_bytes() const noexcept { return memory_bytes_; }

 private:
  AclSpd() = default;

  std::vector<rte_acl_ctx*> ctx4_;  // in rule order; empty when there is no IPv4 rule
  std::vector<rte_acl_ctx*> ctx6_;
  std::size_t num_rules_ = 0;
  std::size_t memory_bytes_ = 0;
};

}  // namespace cygnet::bench
