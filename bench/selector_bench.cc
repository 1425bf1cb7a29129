// Cost of matching a packet's 5-tuple against one selector: the innermost
// step of the linear reference SPD that the classifier is measured against.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "shared/policy.h"

namespace {

using namespace cygnet;

std::vector<FlowKey> make_flows(Family f, std::size_t n) {
  std::mt19937 rng(42);
  std::vector<FlowKey> v(n);
  for (auto& k : v) {
    k.src.family = k.dst.family = f;
    const unsigned bytes = f == Family::ipv4 ? 4 : 16;
    for (unsigned i = 0; i < bytes; ++i) {
      k.src.bytes[i] = static_cast<std::uint8_t>(rng());
      k.dst.bytes[i] = static_cast<std::uint8_t>(rng());
    }
    k.src.bytes[0] = 10;  // half the flows fall in 10.0.0.0/8 (or 0a00::/8)
    if (rng() & 1) k.dst.bytes[0] = 10;
    k.proto = (rng() & 1) ? kProtoTcp : kProtoUdp;
    k.sport = static_cast<std::uint16_t>(rng());
    k.dport = static_cast<std::uint16_t>(rng());
  }
  return v;
}

void BM_SelectorMatch(benchmark::State& st) {
  const Family fam = st.range(0) == 4 ? Family::ipv4 : Family::ipv6;
  Selector s;
  s.src = *IpPrefix::parse(fam == Family::ipv4 ? "10.0.0.0/8" : "a00::/8");
  s.dst = *IpPrefix::parse(fam == Family::ipv4 ? "10.0.0.0/8" : "a00::/8");
  s.proto = kProtoTcp;
  s.dport = PortRange{1024, 65535};
  auto flows = make_flows(fam, 4096);
  std::size_t i = 0;
  std::uint64_t hits = 0;
  for (auto _ : st) {
    hits += s.matches(flows[i++ & 4095]);
  }
  benchmark::DoNotOptimize(hits);
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()));
}
BENCHMARK(BM_SelectorMatch)->Arg(4)->Arg(6);

}  // namespace
