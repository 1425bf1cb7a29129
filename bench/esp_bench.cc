// ESP encrypt/decrypt per algorithm and payload size, beside the raw
// Intel IPsec-MB job on the same buffers in the same run (the ceiling).
//
//   BM_Esp<Dir>/<algo>/<size>  our EspSa::process() over a burst of 32
//   BM_Raw<Dir>/<algo>/<size>  the same IPsec-MB jobs (same lengths, AAD, in
//                              place), submitted as a burst of 32, nothing else
// size 0 means IMIX (7:4:1 of 64, 576 and 1420-byte IP packets).
// Both sides restore their buffers the same way each iteration (inbound:
// a memcpy of the ESP packet, since decryption is in place), so the
// difference is the ESP work: headers, padding, sequence, replay, checks.
// bench/esp_report.py turns a JSON run into the table in docs/benchmarks.md.
#include <benchmark/benchmark.h>

#include <cstring>
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
