// SPD lookup cost per packet (issue 4), all in one run:
//
//   BM_Linear/<shape>/<policies>       the linear reference (Selector::matches loop)
//   BM_Classifier/<shape>/<policies>   our classifier (cut trees): the flow-cache miss path
//   BM_ClassifierBurst/<shape>/<policies>  the same through lookup_burst, bursts of 32
//   BM_Acl/<shape>/<policies>          DPDK rte_acl on the same rules (bench/acl_spd.h), bursts of 32
//   BM_CacheHit/<policies>/<flows>     SpdLookup, every flow already cached (cache sized to hold them)
//   BM_CacheHitBurst/<policies>/<flows>  the same through lookup_burst (32); 32 flows: one burst
//                                      over and over, the cache in L1 (the compute floor)
//   BM_CachedPath/<policies>/<flows>   SpdLookup with a 64k-entry cache: hits while flows fit, misses beyond
//
// shape 0 "gateway": one local /16 to many remote /24 sites, 1 in 10 with a
// TCP port (what a concentrator with many tunnels has); shape 1 "mixed":
// prefix lengths 8/16/24/32 on both sides, protocols and port ranges mixed
// (many tuple groups, the classifier's hard case). Flows are drawn inside
// the policies' prefixes so nearly every lookup matches a policy.
#include <benchmark/benchmark.h>

#include <map>
#include <set>
#include <random>
#include <string>
#include <vector>

#include "bench/acl_spd.h"
#include "dp/spd/classifier.h"
#include "dp/spd/spd.h"

namespace {

using namespace cygnet;
using namespace cygnet::dp::spd;
namespace rcu = cygnet::dp::rcu;

IpPrefix v4prefix(std::uint32_t addr, unsigned len) {
  if (len < 32) addr &= len == 0 ? 0 : ~((1u << (32 - len)) - 1);
  return IpPrefix{IpAddress::v4(addr), static_cast<std::uint8_t>(len)};
}

std::vector<Policy> make_policies(int shape, std::size_t n) {
  std::mt19937_64 rng(1234 + n * 7 + static_cast<unsigned>(shape));
  std::vector<Policy> v;
  v.reserve(n);
  std::set<std::string> seen;  // selectors are unique within a direction (Spd refuses duplicates)
  while (v.size() < n) {
    const std::size_t i = v.size();
    Policy p;
    p.reqid = static_cast<std::uint32_t>(1 + i % 1000);
    p.action = PolicyAction::protect;
    if (shape == 0) {
      // Remote site i: 10.0.0.0/8 onwards, one /24 each; unique by construction.
      p.sel.src = v4prefix(0xc0a80000u, 16);  // 192.168.0.0/16, the local network
      p.sel.dst = v4prefix(0x0a000000u + (static_cast<std::uint32_t>(i) << 8), 24);
      if (i % 10 == 9) {
        p.sel.proto = kProtoTcp;
        p.sel.dport = PortRange{443, 443};
      }
    } else {
      static const unsigned lens[] = {8, 16, 24, 32};
      const std::uint32_t s = 0x0a000000u | static_cast<std::uint32_t>(rng() & 0x00ffffff);
      const std::uint32_t d = 0x0a000000u | static_cast<std::uint32_t>(rng() & 0x00ffffff);
      p.sel.src = v4prefix(s, lens[rng() % 4]);
      p.sel.dst = v4prefix(d, lens[rng() % 4]);
      switch (rng() % 4) {
        case 0: p.sel.proto = kProtoTcp; p.sel.dport = PortRange{static_cast<std::uint16_t>(rng() % 1024), 1023}; break;
        case 1: p.sel.proto = kProtoUdp; p.sel.sport = PortRange{1024, 65535}; break;
        default: break;
      }
      p.priority = static_cast<std::uint32_t>(100 + rng() % 8);
    }
    if (!seen.insert(p.sel.to_string()).second) continue;
    v.push_back(p);
  }
  std::stable_sort(v.begin(), v.end(), [](const Policy& a, const Policy& b) { return a.priority < b.priority; });
  return v;
}

std::vector<FlowTuple> make_flows(const std::vector<Policy>& pols, std::size_t n) {
  std::mt19937_64 rng(99 + n);
  std::vector<FlowTuple> v;
  v.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const Policy& p = pols[rng() % pols.size()];
    FlowKey k;
    auto inside = [&](const IpPrefix& pre) {
      const std::uint32_t host = pre.len == 32 ? 0 : static_cast<std::uint32_t>(rng()) & ((1u << (32 - pre.len)) - 1);
      return IpAddress::v4(pre.addr.v4_host_order() | host);
    };
    k.src = inside(p.sel.src);
    k.dst = inside(p.sel.dst);
    k.proto = p.sel.proto == kProtoAny ? kProtoUdp : p.sel.proto;
    k.sport = p.sel.sport.is_any() ? static_cast<std::uint16_t>(1024 + rng() % 60000) : p.sel.sport.lo;
    k.dport = p.sel.dport.is_any() ? static_cast<std::uint16_t>(rng() % 65536) : p.sel.dport.lo;
    v.push_back(to_tuple(k));
  }
  return v;
}

// Built once per (shape, n) and kept for the whole run.
const std::vector<Policy>& policies(int shape, std::size_t n) {
  static std::map<std::pair<int, std::size_t>, std::vector<Policy>> cache;
  auto it = cache.find({shape, n});
  if (it == cache.end()) it = cache.emplace(std::make_pair(shape, n), make_policies(shape, n)).first;
  return it->second;
}

constexpr std::size_t kProbeFlows = 4096;
// Hit-path runs: 0 = size the cache at 4 entries per flow (a 4-way set-
// associative cache at 2 per flow still has ~2-6 % conflict misses).
constexpr std::uint32_t kCacheForFlows = 0;

void per_packet(benchmark::State& st, std::size_t pkts_per_iter) {
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * pkts_per_iter));
}

void BM_Linear(benchmark::State& st) {
  const auto& pols = policies(static_cast<int>(st.range(0)), static_cast<std::size_t>(st.range(1)));
  LinearSpd lin(pols);
  const auto flows = make_flows(pols, kProbeFlows);
  std::vector<FlowKey> keys;
  for (const auto& t : flows) keys.push_back(to_key(t));
  std::size_t i = 0;
  for (auto _ : st) {
    benchmark::DoNotOptimize(lin.lookup(keys[i++ & (kProbeFlows - 1)]));
  }
  per_packet(st, 1);
}

// Our classifier one lookup at a time (burst 1) or through lookup_burst in
// bursts of 32, like rte_acl.
void classify(benchmark::State& st, unsigned burst) {
  const auto& pols = policies(static_cast<int>(st.range(0)), static_cast<std::size_t>(st.range(1)));
  auto cls = Classifier::build(pols, 0x1234567);
  if (!cls) {
    st.SkipWithError(cls.error().message.c_str());
    return;
  }
  const auto flows = make_flows(pols, kProbeFlows);
  std::vector<const FlowTuple*> ptrs;
  for (const auto& t : flows) ptrs.push_back(&t);
  std::int32_t out[32];
  std::size_t i = 0;
  std::int64_t matched = 0;
  for (auto _ : st) {
    if (burst == 1) {
      out[0] = (*cls)->lookup(flows[i++ & (kProbeFlows - 1)]);
      matched += out[0] >= 0;
    } else {
      (*cls)->lookup_burst(ptrs.data() + (i & (kProbeFlows - 1)), burst, out);
      i += burst;
    }
    benchmark::DoNotOptimize(out);
  }
  per_packet(st, burst);
  if (burst != 1) return;
  st.counters["groups"] = static_cast<double>((*cls)->group_count(Family::ipv4));
  if (const CutForest* f = (*cls)->forest(Family::ipv4)) {
    st.counters["trees"] = static_cast<double>(f->tree_count());
    st.counters["depth"] = f->max_depth();
    st.counters["max_leaf"] = static_cast<double>(f->max_leaf());
  }
  st.counters["kib"] = static_cast<double>((*cls)->memory_bytes()) / 1024.0;
  st.counters["matched_pct"] = 100.0 * static_cast<double>(matched) / static_cast<double>(st.iterations());
}
void BM_Classifier(benchmark::State& st) { classify(st, 1); }
void BM_ClassifierBurst(benchmark::State& st) { classify(st, 32); }

void BM_Acl(benchmark::State& st) {
  std::string err;
  if (!cygnet::bench::eal_init_for_bench(&err)) {
    st.SkipWithError(err.c_str());
    return;
  }
  const auto& pols = policies(static_cast<int>(st.range(0)), static_cast<std::size_t>(st.range(1)));
  cygnet::bench::AclSpd::Options opt;
  opt.classify_alg = static_cast<int>(st.range(2));
  auto acl = cygnet::bench::AclSpd::build(pols, opt, &err);
  if (!acl) {
    st.SkipWithError(err.c_str());
    return;
  }
  const auto flows = make_flows(pols, kProbeFlows);
  std::vector<const FlowTuple*> ptrs;
  for (const auto& t : flows) ptrs.push_back(&t);
  std::int32_t out[32];
  std::size_t i = 0;
  for (auto _ : st) {
    acl->classify(ptrs.data() + (i & (kProbeFlows - 1)), 32, out);
    i += 32;
    benchmark::DoNotOptimize(out);
  }
  per_packet(st, 32);
}

// The cached path for `flows` distinct flows (st.range(1)) over the gateway
// policies (st.range(0)), warmed, then looked up in a shuffled order, one at
// a time (burst == 1) or through lookup_burst (how a worker calls it).
void cached(benchmark::State& st, std::uint32_t cache_entries, std::uint16_t burst) {
  const auto& pols = policies(0, static_cast<std::size_t>(st.range(0)));
  const auto nflows = static_cast<std::size_t>(st.range(1));
  rcu::Qsbr q(1);
  Spd spd(q, [](std::uint32_t reqid) -> Result<std::uint32_t> { return reqid; });
  if (auto r = spd.replace(PolicyDir::out, pols); !r) {
    st.SkipWithError(r.error().message.c_str());
    return;
  }
  const std::uint32_t entries = cache_entries ? cache_entries : static_cast<std::uint32_t>(nflows * 4);
  SpdLookup look(spd, PolicyDir::out, entries, {}, 0x5eed);
  auto flows = make_flows(pols, nflows);
  q.online(0);
  look.begin_burst();
  for (const auto& t : flows) look.lookup(t, 0);  // warm
  std::shuffle(flows.begin(), flows.end(), std::mt19937_64(7));
  std::vector<const FlowTuple*> ptrs;
  for (const auto& t : flows) ptrs.push_back(&t);
  for (std::size_t k = 0; k < burst; ++k) ptrs.push_back(&flows[k % nflows]);  // wrap-around tail
  const std::uint64_t h0 = look.hits();
  const std::uint64_t m0 = look.misses();
  SpdLookup::Verdict out[SpdLookup::kMaxBurst];
  std::size_t i = 0;
  for (auto _ : st) {
    if (burst == 1) {
      out[0] = look.lookup(*ptrs[i], 0);
    } else {
      look.lookup_burst(ptrs.data() + i, burst, 0, out);
    }
    i += burst;
    if (i >= nflows) i = 0;
    benchmark::DoNotOptimize(out);
  }
  q.offline(0);
  per_packet(st, burst);
  const double total = static_cast<double>(look.hits() - h0 + look.misses() - m0);
  st.counters["hit_pct"] = total > 0 ? 100.0 * static_cast<double>(look.hits() - h0) / total : 0;
  st.counters["cache_entries"] = look.cache().capacity();
}

void BM_CacheHit(benchmark::State& st) { cached(st, kCacheForFlows, 1); }
void BM_CacheHitBurst(benchmark::State& st) { cached(st, kCacheForFlows, 32); }
void BM_CachedPathBurst(benchmark::State& st) { cached(st, 65536, 32); }
void BM_CachedPath(benchmark::State& st) { cached(st, 65536, 1); }

// Publishing a policy set: our classifier (Classifier::build), the whole
// Spd table (validation, sorting, SA set slots, classifier), and rte_acl.
void BM_BuildClassifier(benchmark::State& st) {
  const auto& pols = policies(static_cast<int>(st.range(0)), static_cast<std::size_t>(st.range(1)));
  for (auto _ : st) {
    auto c = Classifier::build(pols, 1);
    if (!c) st.SkipWithError(c.error().message.c_str());
    benchmark::DoNotOptimize(c);
  }
}
void BM_BuildSpdTable(benchmark::State& st) {
  const auto& pols = policies(static_cast<int>(st.range(0)), static_cast<std::size_t>(st.range(1)));
  rcu::Qsbr q(1);
  Spd spd(q, [](std::uint32_t reqid) -> Result<std::uint32_t> { return reqid; });
  for (auto _ : st) {
    auto r = spd.replace(PolicyDir::out, pols);
    if (!r) st.SkipWithError(r.error().message.c_str());
  }
}
void BM_BuildAcl(benchmark::State& st) {
  std::string err;
  if (!cygnet::bench::eal_init_for_bench(&err)) {
    st.SkipWithError(err.c_str());
    return;
  }
  const auto& pols = policies(static_cast<int>(st.range(0)), static_cast<std::size_t>(st.range(1)));
  for (auto _ : st) {
    auto acl = cygnet::bench::AclSpd::build(pols, &err);
    if (!acl) st.SkipWithError(err.c_str());
    benchmark::DoNotOptimize(acl);
  }
}

void classifier_args(benchmark::internal::Benchmark* b, bool with_100k) {
  for (int shape : {0, 1}) {
    for (long n : {1L, 100L, 1000L, 10000L, 100000L}) {
      if (n == 100000 && !with_100k) continue;
      b->Args({shape, n});
    }
  }
  b->ArgNames({"shape", "policies"});
}

void build_args(benchmark::internal::Benchmark* b) {
  for (int shape : {0, 1}) {
    for (long n : {1000L, 10000L, 100000L}) {
      if (n == 100000 && shape == 1) continue;
      b->Args({shape, n});
    }
  }
  b->ArgNames({"shape", "policies"})->Unit(benchmark::kMillisecond)->Iterations(2);
}
BENCHMARK(BM_BuildClassifier)->Apply(build_args);
BENCHMARK(BM_BuildSpdTable)->Apply(build_args);
BENCHMARK(BM_BuildAcl)->Apply(build_args);

BENCHMARK(BM_Linear)->Apply([](auto* b) { classifier_args(b, false); });
BENCHMARK(BM_Classifier)->Apply([](auto* b) { classifier_args(b, true); });
BENCHMARK(BM_ClassifierBurst)->Apply([](auto* b) { classifier_args(b, true); });
// rte_acl with each of its x86 methods (enum rte_acl_classify_alg: 0 its own
// pick, 2 SSE, 3 AVX2, 6 AVX-512 x16, 7 AVX-512 x32); one the CPU or EAL's
// SIMD width cannot run is skipped with an error.
BENCHMARK(BM_Acl)->Apply([](auto* b) {
  for (int shape : {0, 1}) {
    for (long n : {1L, 100L, 1000L, 10000L, 100000L}) {
      for (long alg : {0L, 2L, 3L, 6L, 7L}) b->Args({shape, n, alg});
    }
  }
  b->ArgNames({"shape", "policies", "alg"});
});
BENCHMARK(BM_CacheHit)->ArgsProduct({{1, 100, 1000, 10000, 100000}, {1000, 10000, 100000, 1000000}})
    ->ArgNames({"policies", "flows"});
BENCHMARK(BM_CacheHitBurst)->ArgsProduct({{1, 100, 1000, 10000, 100000}, {32, 1000, 10000, 100000, 1000000}})
    ->ArgNames({"policies", "flows"});
BENCHMARK(BM_CachedPathBurst)->ArgsProduct({{1, 1000, 10000}, {1000, 10000, 100000, 1000000}})
    ->ArgNames({"policies", "flows"});
BENCHMARK(BM_CachedPath)->ArgsProduct({{1, 1000, 10000}, {1000, 10000, 100000, 1000000}})
    ->ArgNames({"policies", "flows"});

}  // namespace
