// ESP encrypt/decrypt per algorithm and payload size, beside the raw
// Intel IPsec-MB job on the same buffers in the same run (the ceiling).
//
//   BM_Esp<Dir>/<algo>/<size>  our EspSa::process() over a burst of 32
//   BM_Raw<Dir>/<algo>/<size>  the same IPsec-MB jobs (same lengths, AAD, in
//                              place), submitted as a burst of 32, nothing else
//   BM_EspManySasPrefetch{Lines,Distance}/sas:N
//                              one packet per SA over N SAs in random order,
//                              three prefetch choices paired burst by burst
//                              (which GCM key lines; how far ahead)
// size 0 means IMIX (7:4:1 of 64, 576 and 1420-byte IP packets).
// Both sides restore their buffers the same way each iteration (inbound:
// a memcpy of the ESP packet, since decryption is in place), so the
// difference is the ESP work: headers, padding, sequence, replay, checks.
// bench/esp_report.py turns a JSON run into the table in docs/benchmarks.md.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "dp/crypto/imb_mgr.h"
#include "dp/esp/esp.h"

namespace {

using namespace cygnet;
using namespace cygnet::dp::esp;

constexpr int kBurst = 32;
constexpr std::uint16_t kRoom = 128;

struct AlgoDef {
  const char* name;
  CipherAlg c;
  IntegAlg i;
};
const AlgoDef kAlgos[] = {
    {"aes-gcm-128", CipherAlg::aes_gcm16_128, IntegAlg::none},
    {"aes-gcm-256", CipherAlg::aes_gcm16_256, IntegAlg::none},
    {"chacha20-poly1305", CipherAlg::chacha20_poly1305, IntegAlg::none},
    {"aes-cbc-128+sha1", CipherAlg::aes_cbc_128, IntegAlg::hmac_sha1_96},
    {"aes-cbc-128+sha256", CipherAlg::aes_cbc_128, IntegAlg::hmac_sha256_128},
    {"aes-cbc-256+sha384", CipherAlg::aes_cbc_256, IntegAlg::hmac_sha384_192},
    {"aes-cbc-256+sha512", CipherAlg::aes_cbc_256, IntegAlg::hmac_sha512_256},
};

SaConfig config(const AlgoDef& a, Direction d) {
  SaConfig sa;
  sa.spi = 0x1000;
  sa.dir = d;
  sa.src = *IpAddress::parse("192.0.2.1");
  sa.dst = *IpAddress::parse("192.0.2.2");
  sa.cipher = a.c;
  sa.integ = a.i;
  std::vector<std::uint8_t> k(64, 0x5a);
  const auto& ci = cipher_info(a.c);
  sa.cipher_key = *SecretKey::from_bytes({k.data(), std::size_t{ci.key_len} + ci.salt_len});
  sa.integ_key = *SecretKey::from_bytes({k.data(), integ_info(a.i).key_len});
  sa.anti_replay = false;  // the benchmark replays the same packets
  return sa;
}

// IP packet length of burst slot i for a size argument (0 = IMIX).
std::uint16_t ip_len(int size, int i) {
  if (size != 0) return static_cast<std::uint16_t>(size);
  const int m = i % 12;
  return m < 7 ? 64 : m < 11 ? 576 : 1420;
}

void ipv4_header(std::uint8_t* p, std::uint16_t len) {
  const std::uint8_t h[20] = {0x45, 0, static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len), 0, 0,
                              0x40, 0, 64, 17, 0, 0, 10, 1, 0, 1, 10, 2, 0, 1};
  std::memcpy(p, h, 20);
}

struct Burst {
  std::vector<std::vector<std::uint8_t>> mem;      // working buffers
  std::vector<std::vector<std::uint8_t>> pristine;  // inbound: the ESP packets to restore
  Packet pkts[kBurst];
  Packet* ptrs[kBurst];
  std::uint64_t bytes = 0;  // IP bytes per burst (inner packets)
};

Burst make_burst(int size) {
  Burst b;
  for (int i = 0; i < kBurst; ++i) {
    const std::uint16_t len = ip_len(size, i);
    b.mem.emplace_back(len + 2u * kRoom, 0xa5);
    ipv4_header(b.mem.back().data() + kRoom, len);
    b.pkts[i] = Packet{b.mem.back().data(), static_cast<std::uint16_t>(b.mem.back().size()), kRoom, len};
    b.ptrs[i] = &b.pkts[i];
    b.bytes += len;
  }
  return b;
}

void reset_outbound(Burst& b, int size) {
  for (int i = 0; i < kBurst; ++i) {
    const std::uint16_t len = ip_len(size, i);
    b.pkts[i].off = kRoom;
    b.pkts[i].len = len;
    ipv4_header(b.mem[static_cast<std::size_t>(i)].data() + kRoom, len);  // the header was encrypted
    b.ptrs[i] = &b.pkts[i];
  }
}

void reset_inbound(Burst& b) {
  for (int i = 0; i < kBurst; ++i) {
    const auto& src = b.pristine[static_cast<std::size_t>(i)];
    std::memcpy(b.mem[static_cast<std::size_t>(i)].data() + kRoom, src.data(), src.size());
    b.pkts[i].off = kRoom;
    b.pkts[i].len = static_cast<std::uint16_t>(src.size());
    b.ptrs[i] = &b.pkts[i];
  }
}

void finish(benchmark::State& st, const Burst& b, const dp::ImbManager& m) {
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * kBurst);
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * b.bytes));
  st.counters["pkt_bytes_avg"] = static_cast<double>(b.bytes) / kBurst;
  st.SetLabel(m.arch_description());
}

void BM_EspEncrypt(benchmark::State& st) {
  const AlgoDef& a = kAlgos[st.range(0)];
  const int size = static_cast<int>(st.range(1));
  auto m = dp::ImbManager::create();
  auto sa = EspSa::create(config(a, Direction::out), m->get());
  Burst b = make_burst(size);
  for (auto _ : st) {
    reset_outbound(b, size);
    (*sa)->set_next_seq(1);
    if ((*sa)->process(m->get(), b.ptrs, kBurst) != kBurst) st.SkipWithError("packets dropped");
  }
  finish(st, b, *m);
}

void BM_EspDecrypt(benchmark::State& st) {
  const AlgoDef& a = kAlgos[st.range(0)];
  const int size = static_cast<int>(st.range(1));
  auto m = dp::ImbManager::create();
  auto out = EspSa::create(config(a, Direction::out), m->get());
  auto in = EspSa::create(config(a, Direction::in), m->get());
  Burst b = make_burst(size);
  (*out)->process(m->get(), b.ptrs, kBurst);
  for (int i = 0; i < kBurst; ++i) b.pristine.emplace_back(b.pkts[i].data(), b.pkts[i].data() + b.pkts[i].len);
  for (auto _ : st) {
    reset_inbound(b);
    if ((*in)->process(m->get(), b.ptrs, kBurst) != kBurst) st.SkipWithError("packets dropped");
  }
  finish(st, b, *m);
}

// Many SAs, one packet each per burst: the pipeline's 10k-SA case without
// the ports, to choose how EspSa::prefetch is used. Packet k of a burst goes
// out on the next SA of a fixed random order of the N SAs (in allocation
// order they sit side by side and the hardware prefetcher streams them in,
// which real traffic does not allow), so with N >= 10000 an SA's lines
// have left L1 and L2 before it comes round again. The SAs are processed
// one at a time as the dataplane's run_esp does, the SA `ahead` places on
// prefetched first. AES-GCM-128, IP packets of 50 bytes (the pipeline's
// 64-byte frames).
//
// Paired, for a shared and noisy host: consecutive bursts take turns
// between three choices, each burst is timed alone, and a slow spell of
// the host hits all three alike. Counters: ns per packet of each choice.
struct PrefetchChoice {
  const char* counter;
  int lines;  // GCM key lines to name; 0: no prefetch at all; kProbed: gcm_short_packet_lines()
  int ahead;  // prefetch distance in SAs
};
constexpr int kProbed = -1;

void many_sas_paired(benchmark::State& st, const PrefetchChoice (&choice)[3]) {
  const auto nsas = static_cast<std::size_t>(st.range(0));
  constexpr int kSize = 50;
  auto m = dp::ImbManager::create();
  std::vector<std::unique_ptr<EspSa>> sas;
  for (std::size_t i = 0; i < nsas; ++i) {
    SaConfig cfg = config(kAlgos[0], Direction::out);
    cfg.spi = static_cast<std::uint32_t>(0x1000 + i);
    auto sa = EspSa::create(cfg, m->get());
    if (!sa) {
      st.SkipWithError(sa.error().message.c_str());
      return;
    }
    sas.push_back(std::move(*sa));
  }
  std::vector<EspSa*> order;
  for (auto& sa : sas) order.push_back(sa.get());
  std::shuffle(order.begin(), order.end(), std::mt19937_64(7));
  const std::uint16_t probed = gcm_short_packet_lines(m->get());
  std::uint16_t lines[3];
  for (int c = 0; c < 3; ++c)
    lines[c] = choice[c].lines == kProbed ? probed : static_cast<std::uint16_t>(choice[c].lines);
  double ns[3] = {0, 0, 0};
  Burst b = make_burst(kSize);
  std::size_t first = 0;
  std::uint64_t turn = 0;
  EspSa* cur[kBurst];
  for (auto _ : st) {
    const auto c = static_cast<std::size_t>(turn++ % 3);
    const int ahead = choice[c].ahead;
    reset_outbound(b, kSize);
    const auto t0 = std::chrono::steady_clock::now();
    for (int k = 0; k < kBurst; ++k) cur[k] = order[(first + static_cast<std::size_t>(k)) % nsas];
    first = (first + kBurst) % nsas;
    if (lines[c] != 0)
      for (int k = 0; k < ahead && k < kBurst; ++k) cur[k]->prefetch(false, lines[c]);
    int good = 0;
    for (int k = 0; k < kBurst; ++k) {
      if (lines[c] != 0 && k + ahead < kBurst) cur[k + ahead]->prefetch(false, lines[c]);
      Packet* p = b.ptrs[k];
      good += cur[k]->process(m->get(), &p, 1);
    }
    ns[c] += static_cast<double>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
    if (good != kBurst) st.SkipWithError("packets dropped");
  }
  finish(st, b, *m);
  const double per = static_cast<double>(turn / 3) * kBurst;  // packets per choice (the last turns dropped: < 1 %)
  if (per > 0)
    for (int c = 0; c < 3; ++c) st.counters[choice[c].counter] = ns[c] / per;
  st.counters["gcm_lines"] = probed;
}

// Which GCM key lines: none, lines 0-5 (what the dataplane named on every
// code path before gcm_short_packet_lines), the probed lines; distance 8.
void BM_EspManySasPrefetchLines(benchmark::State& st) {
  static constexpr PrefetchChoice kChoices[3] = {{"ns_none", 0, 8}, {"ns_fixed", 0x3f, 8}, {"ns_probed", kProbed, 8}};
  many_sas_paired(st, kChoices);
}
// How far ahead (kSaPrefetchAhead in dp/app/dataplane.h): 4, 8 or 16 SAs.
void BM_EspManySasPrefetchDistance(benchmark::State& st) {
  static constexpr PrefetchChoice kChoices[3] = {{"ns_d4", kProbed, 4}, {"ns_d8", kProbed, 8}, {"ns_d16", kProbed, 16}};
  many_sas_paired(st, kChoices);
}
BENCHMARK(BM_EspManySasPrefetchLines)->Arg(1)->Arg(1000)->Arg(10000)->Arg(100000)->ArgName("sas");
BENCHMARK(BM_EspManySasPrefetchDistance)->Arg(1)->Arg(1000)->Arg(10000)->Arg(100000)->ArgName("sas");

// The raw ceiling: the same crypto jobs ESP submits for these packets
// (payload + padding + trailer, 8-byte AAD or ESP header + IV authenticated),
// on the same buffers, with no ESP processing around them.
template <bool kEncrypt>
void raw(benchmark::State& st) {
  const AlgoDef& a = kAlgos[st.range(0)];
  const int size = static_cast<int>(st.range(1));
  auto m = dp::ImbManager::create();
  IMB_MGR* mgr = m->get();
  CryptoKeys keys;
  SaConfig cfg = config(a, Direction::out);
  if (!keys.init(mgr, cfg)) st.SkipWithError("key setup");
  const auto& ci = cipher_info(a.c);
  Burst b = make_burst(size);
  std::uint32_t ct_len[kBurst];
  for (int i = 0; i < kBurst; ++i) {
    const unsigned block = ci.block;
    const unsigned len = ip_len(size, i);
    ct_len[i] = len + 2 + (block - (len + 2) % block) % block;
  }
  for (int i = 0; i < kBurst; ++i) b.pristine.emplace_back(b.mem[static_cast<std::size_t>(i)]);
  alignas(16) std::uint8_t nonce[12] = {1, 2, 3, 4};
  alignas(16) std::uint8_t tags[kBurst][32];
  const std::uint32_t hdr = 8 + ci.iv_len;
  for (auto _ : st) {
    if constexpr (kEncrypt) {
      reset_outbound(b, size);  // same restore as BM_EspEncrypt
    } else {
      for (int i = 0; i < kBurst; ++i) {  // same restore as BM_EspDecrypt
        auto& mem = b.mem[static_cast<std::size_t>(i)];
        std::memcpy(mem.data() + kRoom - hdr, b.pristine[static_cast<std::size_t>(i)].data() + kRoom - hdr,
                    hdr + ct_len[i] + keys.icv_len + 20);
      }
    }
    for (int i = 0; i < kBurst; ++i) {
      std::uint8_t* esp = b.mem[static_cast<std::size_t>(i)].data() + kRoom - hdr;
      if (keys.aead() && keys.cipher != CipherAlg::chacha20_poly1305) {  // as EspSa: the direct GCM API
        gcm_in_place(mgr, keys, keys.key_len, kEncrypt, nonce, esp, 8, esp + hdr, ct_len[i], tags[i]);
        continue;
      }
      IMB_JOB* job = IMB_GET_NEXT_JOB(mgr);
      if (keys.aead()) {
        fill_aead_job(job, keys, kEncrypt, nonce, esp, 8, esp + hdr, esp + hdr, ct_len[i], tags[i]);
      } else {
        fill_cbc_hmac_job(job, keys, kEncrypt, esp, 0, hdr + ct_len[i], hdr, ct_len[i], esp + 8, tags[i],
                          keys.icv_len);
      }
      job->user_data = nullptr;
      IMB_SUBMIT_JOB(mgr);
    }
    while (IMB_FLUSH_JOB(mgr) != nullptr) {
    }
    benchmark::DoNotOptimize(tags);
  }
  finish(st, b, *m);
}
void BM_RawEncrypt(benchmark::State& st) { raw<true>(st); }
void BM_RawDecrypt(benchmark::State& st) { raw<false>(st); }

void args(benchmark::internal::Benchmark* b) {
  for (int a = 0; a < static_cast<int>(std::size(kAlgos)); ++a) {
    for (int size : {64, 128, 256, 512, 1024, 1420, 0}) b->Args({a, size});
  }
  b->ArgNames({"algo", "size"});
}

// Interleave ours and the ceiling per argument set by registering in turn.
BENCHMARK(BM_RawEncrypt)->Apply(args);
BENCHMARK(BM_EspEncrypt)->Apply(args);
BENCHMARK(BM_RawDecrypt)->Apply(args);
BENCHMARK(BM_EspDecrypt)->Apply(args);

}  // namespace
