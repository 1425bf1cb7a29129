// The SAD (dp/sad/): building the inbound table and looking up in it.
//
//   BM_InboundInsert/hint:N   an empty InboundSad made with capacity hint N
//                             (1M: no rebuild; 0: grows from the smallest
//                             table), then 1M inserts; one timed iteration,
//                             creation included. ns_per_insert = time / 1M.
//   BM_InboundLookupHit/N     bursts of 32 lookups of present keys in random
//   BM_InboundLookupMiss/N    order in a table of N SAs; Miss: random SPIs
//                             that are not there (a scan, a spoofed SPI).
//   BM_OutboundGet/N          slot -> SaSet -> pick(core), random slots.
// Keys: unique random SPIs to 4 local addresses (2 IPv4, 2 IPv6), as a
// gateway's inbound SAs are. Run for figures with
//   taskset -c 1 sad_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "dp/sad/sad.h"

namespace {

using namespace cygnet;
using namespace cygnet::dp::sad;

constexpr int kBurst = 32;
constexpr std::size_t kMillion = 1'000'000;
constexpr std::size_t kStream = std::size_t{1} << 16;  // lookup keys cycled through

const IpAddress& local_dst(std::size_t i) {
  static const IpAddress d[4] = {*IpAddress::parse("192.0.2.1"), *IpAddress::parse("2001:db8::1"),
                                 *IpAddress::parse("192.0.2.2"), *IpAddress::parse("2001:db8::2")};
  return d[i % 4];
}

// A bijection on 32 bits: distinct i give distinct SPIs, spread over the range.
std::uint32_t scramble(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// The first n SPIs (>= kMinSpi) of the bijection, from `from` on; the
// misses use the ones after the hits, so they are never present.
std::vector<std::uint32_t> spis(std::size_t n, std::uint32_t from = 1) {
  std::vector<std::uint32_t> v;
  v.reserve(n);
  for (std::uint32_t i = from; v.size() < n; ++i) {
    const std::uint32_t s = scramble(i);
    if (s >= kMinSpi) v.push_back(s);
  }
  return v;
}

const std::vector<std::uint32_t>& million_spis() {
  static const std::vector<std::uint32_t> v = spis(kMillion);
  return v;
}

dp::rcu::Qsbr& qsbr() {
  static dp::rcu::Qsbr q(1);  // no reader goes online here: nothing is retired while timed
  return q;
}

void BM_InboundInsert(benchmark::State& st) {
  const auto hint = static_cast<std::size_t>(st.range(0));
  const auto& keys = million_spis();
  double ns = 0;
  std::uint64_t rebuilds = 0;
  for (auto _ : st) {
    const auto t0 = std::chrono::steady_clock::now();
    auto sad = InboundSad::create(qsbr(), hint);
    for (std::size_t i = 0; i < kMillion; ++i) {
      if (!(*sad)->insert(keys[i], local_dst(i), static_cast<SaHandle>(i)).ok()) {
        st.SkipWithError("insert refused");
        break;
      }
    }
    const auto t1 = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(t1 - t0).count();
    st.SetIterationTime(s);
    ns += s * 1e9;
    rebuilds = (*sad)->stats().rebuilds;
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations() * kMillion));
  st.counters["ns_per_insert"] = ns / static_cast<double>(st.iterations() * kMillion);
  st.counters["rebuilds"] = static_cast<double>(rebuilds);
}
BENCHMARK(BM_InboundInsert)
    ->ArgName("hint")
    ->Arg(kMillion)
    ->Arg(0)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Tables of n SAs, built once per process and kept for every run.
const InboundSad& table(std::size_t n) {
  static std::map<std::size_t, std::unique_ptr<InboundSad>> cache;
  auto& t = cache[n];
  if (!t) {
    t = InboundSad::create(qsbr(), n).value();
    const auto& keys = million_spis();
    for (std::size_t i = 0; i < n; ++i) (void)t->insert(keys[i], local_dst(i), static_cast<SaHandle>(i));
  }
  return *t;
}

struct Probe {
  std::uint32_t spi;
  std::uint32_t dst;
};

void lookups(benchmark::State& st, bool hit) {
  const auto n = static_cast<std::size_t>(st.range(0));
  const InboundSad& sad = table(n);
  std::vector<Probe> stream(kStream);
  std::mt19937_64 rng(1);
  const auto& keys = million_spis();
  const auto misses = hit ? std::vector<std::uint32_t>{} : spis(kStream, 0x40000000);
  for (std::size_t i = 0; i < kStream; ++i) {
    const std::size_t k = rng() % n;
    stream[i] = hit ? Probe{keys[k], static_cast<std::uint32_t>(k % 4)}
                    : Probe{misses[i], static_cast<std::uint32_t>(k % 4)};
  }
  std::size_t pos = 0;
  std::uint64_t found = 0;
  for (auto _ : st) {
    for (int j = 0; j < kBurst; ++j) {
      const Probe& p = stream[pos++ & (kStream - 1)];
      const IpAddress& d = local_dst(p.dst);
      found += sad.lookup(p.spi, d.family, d.bytes.data()) != kNoSa;
    }
  }
  benchmark::DoNotOptimize(found);
  const auto total = static_cast<std::uint64_t>(st.iterations()) * kBurst;
  if (found != (hit ? total : 0)) st.SkipWithError("wrong lookup result");
  st.SetItemsProcessed(static_cast<std::int64_t>(total));
  st.counters["ns_per_lookup"] =
      benchmark::Counter(static_cast<double>(total), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_InboundLookupHit(benchmark::State& st) { lookups(st, true); }
void BM_InboundLookupMiss(benchmark::State& st) { lookups(st, false); }
BENCHMARK(BM_InboundLookupHit)->RangeMultiplier(10)->Range(1000, kMillion);
BENCHMARK(BM_InboundLookupMiss)->RangeMultiplier(10)->Range(1000, kMillion);

void BM_OutboundGet(benchmark::State& st) {
  const auto n = static_cast<std::uint32_t>(st.range(0));
  auto out = OutboundSad::create(qsbr(), n).value();
  std::vector<SetSlot> slots;
  for (std::uint32_t r = 1; r <= n; ++r) {
    const SaHandle h[] = {r, r + n, r + 2 * n, r + 3 * n};
    slots.push_back(*out->set(r, h));
  }
  std::mt19937 rng(2);
  std::vector<SetSlot> stream(kStream);
  for (auto& s : stream) s = slots[rng() % n];
  std::size_t pos = 0;
  std::uint64_t sum = 0;
  for (auto _ : st) {
    for (int j = 0; j < kBurst; ++j) {
      sum += out->get(stream[pos & (kStream - 1)])->pick(static_cast<unsigned>(pos));
      ++pos;
    }
  }
  benchmark::DoNotOptimize(sum);
  const auto total = static_cast<std::uint64_t>(st.iterations()) * kBurst;
  st.SetItemsProcessed(static_cast<std::int64_t>(total));
  st.counters["ns_per_get"] =
      benchmark::Counter(static_cast<double>(total), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_OutboundGet)->Arg(100'000);

}  // namespace
