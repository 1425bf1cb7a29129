// Raw Intel IPsec-MB AES-GCM throughput per payload size: the crypto
// ceiling that ESP processing is compared against (DESIGN.md "How we know").
#include <benchmark/benchmark.h>

#include <array>
#include <vector>

#include "dp/crypto/imb_mgr.h"

namespace {

using cygnet::dp::ImbManager;

void BM_ImbAesGcm128Encrypt(benchmark::State& st) {
  auto m = ImbManager::create();
  if (!m) {
    st.SkipWithError(m.error().message.c_str());
    return;
  }
  IMB_MGR* mgr = m->get();
  alignas(16) gcm_key_data kd{};
  std::array<std::uint8_t, 16> key{1, 2, 3};
  IMB_AES128_GCM_PRE(mgr, key.data(), &kd);
  const auto len = static_cast<std::size_t>(st.range(0));
  std::vector<std::uint8_t> buf(len, 0xa5);
  std::array<std::uint8_t, 12> iv{};
  std::array<std::uint8_t, 8> aad{};
  std::array<std::uint8_t, 16> tag{};
  gcm_context_data ctx{};
  for (auto _ : st) {
    IMB_AES128_GCM_ENC(mgr, &kd, &ctx, buf.data(), buf.data(), len, iv.data(), aad.data(), aad.size(),
                       tag.data(), tag.size());
    benchmark::DoNotOptimize(tag.data());
    ++iv[11];
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * len));
  st.SetLabel(m->arch_description());
}
BENCHMARK(BM_ImbAesGcm128Encrypt)->Arg(64)->Arg(128)->Arg(256)->Arg(512)->Arg(1024)->Arg(1420);

}  // namespace
