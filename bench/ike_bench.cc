// IKE_SA + first CHILD_SA set-ups per second per core, in process (issue 6,
// docs/benchmarks.md "IKE set-ups"): a responder Engine (cp/ike/engine) with
// a transport that keeps what it sends and a backend that installs nothing,
// answering the load generator's initiator (bench/ike/initiator.h):
// IKE_SA_INIT, IKE_AUTH (PSK, the first Child SA), then an INFORMATIONAL
// Delete of the IKE SA, so the responder's table stays small.
//
// What is timed: only the responder's Engine::on_datagram() calls, as CPU
// time of this thread (CLOCK_THREAD_CPUTIME_ID: the machine is shared, and
// time other processes take the core is not ours), given to Google
// Benchmark as manual time; resp_wall_us is the same in wall-clock time.
// The initiator's work runs between them, untimed, reported as gen_us (CPU). The counters: init_us / auth_us / delete_us (the
// responder per exchange), setups_per_s (1 / the responder's time per
// set-up, Delete included). The raw X25519 ceiling (key pair + shared
// secret, which every set-up costs the responder once) is measured in the
// same run: BM_X25519_Raw (bare OpenSSL EVP calls) and BM_X25519_KeyExchange
// (cp/ike/crypto's KeyExchange, with its checks).
//
//   taskset -c 1 build/bench/ike_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <ctime>
#include <array>
#include <cstring>
#include <memory>
#include <string>

#include "bench/ike/initiator.h"
#include "cp/ike/config/config.h"
#include "cp/ike/crypto/auth.h"
#include "cp/ike/engine/engine.h"

namespace {

using namespace cygnet;
using namespace cygnet::ike;

double thread_cpu_s() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}
double wall_s() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

const char* const kProposal = "aes256gcm16-prfsha256-x25519";
const char* const kEspProposal = "aes256gcm16";
const char* const kPsk = "a benchmark pre-shared key of 32 bytes";

IpAddress ip(const char* s) { return *IpAddress::parse(s); }

struct KeepLast : Transport {
  Bytes last;
  Endpoint to;
  std::size_t sent = 0;
  void send(const Endpoint&, const Endpoint& remote, std::span<const std::uint8_t> p) override {
    last.assign(p.begin(), p.end());
    to = remote;
    ++sent;
  }
};

struct NullBackend : Backend {
  std::size_t live = 0;
  Result<void> install_child(const ChildSaSpec&) override {
    ++live;
    return {};
  }
  Result<void> remove_child(const ChildSaSpec&) override {
    --live;
    return {};
  }
};

SecretBytes secret(const char* s) {
  return SecretBytes::copy_of(std::span(reinterpret_cast<const std::uint8_t*>(s), std::strlen(s)));
}

// The responder (192.0.2.2) accepts any initiator in 198.18.0.0/15.
IkeConfig responder_config() {
  IkeConfig cfg;
  Connection c;
  c.name = "loadgen";
  c.local_addr = ip("192.0.2.2");
  c.remote_addrs = {*IpPrefix::parse("198.18.0.0/15")};
  c.local_id = *Identity::parse("fqdn:responder.bench");
  c.remote_id = *Identity::parse("fqdn:loadgen.bench");
  c.psk_ref = "bench";
  c.ike = *cfg::parse_ike_proposal(kProposal);
  c.esp = *cfg::parse_esp_proposal(kEspProposal);
  c.local_ts = {*cfg::parse_ts("10.2.0.0/16")};
  c.remote_ts = {*cfg::parse_ts("10.1.0.0/16")};
  cfg.connections.push_back(std::move(c));
  cfg.psks.emplace("bench", secret(kPsk));
  cfg.cookie_threshold = 1000000;
  return cfg;
}

loadgen::InitiatorConfig initiator_config() {
  loadgen::InitiatorConfig c;
  c.local = ip("198.18.0.1");
  c.remote = ip("192.0.2.2");
  c.ike = cfg::parse_ike_proposal(kProposal)->front();
  c.esp = cfg::parse_esp_proposal(kEspProposal)->front();
  c.psk = secret(kPsk);
  c.local_id = *Identity::parse("fqdn:loadgen.bench");
  c.remote_id = *Identity::parse("fqdn:responder.bench");
  c.tsi = {ts_from_config(*cfg::parse_ts("10.1.0.0/24"))};
  c.tsr = {ts_from_config(*cfg::parse_ts("10.2.0.0/24"))};
  return c;
}

std::uint64_t random_spi() {
  std::uint64_t v = 0;
  while (v == 0) {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1) std::abort();
  }
  return v;
}

// One load-generator set-up against the responder: the three exchanges.
// Adds the responder's time per exchange to t[0..2]; false (and a message)
// if the set-up did not complete.
struct Rig {
  KeepLast wire;
  NullBackend backend;
  Engine responder{responder_config(), backend, wire};
  loadgen::InitiatorConfig icfg = initiator_config();
  Endpoint here{ip("192.0.2.2"), 500}, here_natt{ip("192.0.2.2"), 4500};
  Endpoint peer{ip("198.18.0.1"), 500}, peer_natt{ip("198.18.0.1"), 4500};
  std::uint64_t now = 1000;
  double wall = 0;  // the responder's wall-clock seconds

  double deliver(const loadgen::Datagram& d) {
    const double w0 = wall_s(), t0 = thread_cpu_s();
    responder.on_datagram(d.natt ? here_natt : here, d.natt ? peer_natt : peer, d.data, now);
    const double t = thread_cpu_s() - t0;
    wall += wall_s() - w0;
    return t;
  }
  std::span<const std::uint8_t> answer() const {
    std::span<const std::uint8_t> a = wire.last;
    if (wire.to.port != 500) a = a.subspan(4);  // the non-ESP marker
    return a;
  }

  bool setup(std::shared_ptr<const KeyExchange> ke, bool del, double t[3], std::string& err) {
    loadgen::InitiatorSa sa;
    auto init = sa.start(icfg, random_spi(), std::move(ke));
    if (!init) return err = init.error().message, false;
    const std::size_t sent0 = wire.sent;
    t[0] += deliver(*init);
    if (wire.sent == sent0) return err = "no IKE_SA_INIT response", false;
    auto auth = sa.on_init_response(answer());
    if (!auth) return err = auth.error().message, false;
    t[1] += deliver(*auth);
    if (auto r = sa.on_auth_response(answer()); !r) return err = r.error().message, false;
    if (!del) return true;
    auto d = sa.delete_request();
    if (!d) return err = d.error().message, false;
    t[2] += deliver(*d);
    if (auto r = sa.on_delete_response(answer()); !r) return err = r.error().message, false;
    return true;
  }
};

// range(0): IKE SAs kept established in the responder besides the one being
// set up (its table size); range(1): set-ups per generator key pair.
void BM_ResponderSetup(benchmark::State& st) {
  Rig rig;
  const auto live = static_cast<std::size_t>(st.range(0));
  const auto reuse = static_cast<std::int64_t>(st.range(1));
  std::string err;
  double ignore[3] = {0, 0, 0};
  std::shared_ptr<const KeyExchange> ke;
  std::int64_t uses = 0;
  auto next_ke = [&]() {
    if (!ke || uses++ % reuse == 0) {
      auto k = KeyExchange::create(KeGroup::curve25519);
      if (k) ke = std::make_shared<const KeyExchange>(std::move(*k));
    }
    return ke;
  };
  for (std::size_t i = 0; i < live; ++i) {
    if (!rig.setup(next_ke(), false, ignore, err)) {
      st.SkipWithError(("pre-populating: " + err).c_str());
      return;
    }
  }
  double t[3] = {0, 0, 0};
  double gen = 0;
  rig.wall = 0;
  for (auto _ : st) {
    const double before = t[0] + t[1] + t[2];
    const double t0 = thread_cpu_s();
    if (!rig.setup(next_ke(), true, t, err)) {
      st.SkipWithError(err.c_str());
      return;
    }
    const double total = thread_cpu_s() - t0;
    const double resp = t[0] + t[1] + t[2] - before;
    gen += total - resp;
    st.SetIterationTime(resp);
  }
  const double n = static_cast<double>(st.iterations());
  const double resp = t[0] + t[1] + t[2];
  st.counters["init_us"] = t[0] / n * 1e6;
  st.counters["auth_us"] = t[1] / n * 1e6;
  st.counters["delete_us"] = t[2] / n * 1e6;
  st.counters["gen_us"] = gen / n * 1e6;
  st.counters["resp_wall_us"] = rig.wall / n * 1e6;
  st.counters["setups_per_s"] = n / resp;
  st.counters["ike_sas"] = static_cast<double>(rig.responder.ike_sas().size());
  if (rig.backend.live != live) st.SkipWithError("the responder's Child SA count drifted");
}
BENCHMARK(BM_ResponderSetup)
    ->ArgNames({"live", "ke_reuse"})
    ->Args({0, 1})
    ->Args({0, 16})
    ->Args({1000, 16})
    ->Args({10000, 16})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// The X25519 ceiling: a fresh key pair and one shared secret, bare EVP.
void BM_X25519_Raw(benchmark::State& st) {
  EVP_PKEY* peer = EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519");
  EVP_PKEY_CTX* gen = EVP_PKEY_CTX_new_from_name(nullptr, "X25519", nullptr);
  if (peer == nullptr || gen == nullptr || EVP_PKEY_keygen_init(gen) != 1) {
    st.SkipWithError("X25519 not available");
    return;
  }
  unsigned char secret_out[32];
  for (auto _ : st) {
    EVP_PKEY* k = nullptr;
    if (EVP_PKEY_keygen(gen, &k) != 1) {
      st.SkipWithError("keygen failed");
      break;
    }
    EVP_PKEY_CTX* d = EVP_PKEY_CTX_new_from_pkey(nullptr, k, nullptr);
    std::size_t len = sizeof secret_out;
    if (d == nullptr || EVP_PKEY_derive_init(d) != 1 || EVP_PKEY_derive_set_peer(d, peer) != 1 ||
        EVP_PKEY_derive(d, secret_out, &len) != 1) {
      st.SkipWithError("derive failed");
    }
    benchmark::DoNotOptimize(secret_out);
    EVP_PKEY_CTX_free(d);
    EVP_PKEY_free(k);
  }
  EVP_PKEY_CTX_free(gen);
  EVP_PKEY_free(peer);
  st.counters["per_s"] = benchmark::Counter(static_cast<double>(st.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_X25519_Raw)->Unit(benchmark::kMicrosecond);

// The same through cp/ike/crypto's KeyExchange (what the engine calls).
void BM_X25519_KeyExchange(benchmark::State& st) {
  auto peer = KeyExchange::create(KeGroup::curve25519);
  if (!peer) {
    st.SkipWithError(peer.error().message.c_str());
    return;
  }
  for (auto _ : st) {
    auto k = KeyExchange::create(KeGroup::curve25519);
    auto s = k->derive(peer->public_value());
    if (!s) st.SkipWithError(s.error().message.c_str());
    benchmark::DoNotOptimize(s->data());
  }
  st.counters["per_s"] = benchmark::Counter(static_cast<double>(st.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_X25519_KeyExchange)->Unit(benchmark::kMicrosecond);

// The responder's steps one at a time, to see where a set-up's time goes:
// 0 key pair, 1 shared secret, 2 SKEYSEED + SK_*, 3 the two SK ciphers,
// 4 one PSK AUTH (the responder computes two), 5 one prf (HMAC-SHA256 of
// 64 bytes), 6 Child SA KEYMAT.
void BM_ResponderStep(benchmark::State& st) {
  auto a = KeyExchange::create(KeGroup::curve25519);
  auto b = KeyExchange::create(KeGroup::curve25519);
  Bytes ni(32, 1), nr(32, 2), msg(300, 3), id(20, 4);
  const std::array<std::uint8_t, 8> si{1, 2, 3, 4, 5, 6, 7, 8}, sr{8, 7, 6, 5, 4, 3, 2, 1};
  const IkeSaSuite ks{EncrId::aes_gcm_16, 256, IntegId::none, PrfId::hmac_sha2_256};
  auto gir = a->derive(b->public_value());
  auto seed = skeyseed(ks.prf, ni, nr, gir->bytes());
  auto keys = derive_ike_sa_keys(ks, *seed, ni, nr, si, sr);
  const SecretBytes psk = secret(kPsk);
  const std::int64_t step = st.range(0);
  for (auto _ : st) {
    bool ok = true;
    switch (step) {
      case 0: ok = KeyExchange::create(KeGroup::curve25519).ok(); break;
      case 1: ok = a->derive(b->public_value()).ok(); break;
      case 2: {
        auto s2 = skeyseed(ks.prf, ni, nr, gir->bytes());
        ok = s2 && derive_ike_sa_keys(ks, *s2, ni, nr, si, sr).ok();
        break;
      }
      case 3: ok = make_sk_ciphers(ks, *keys, false).ok(); break;
      case 4: ok = psk_auth(ks.prf, psk.bytes(), msg, ni, keys->sk_pr, id).ok(); break;
      case 5: ok = prf(ks.prf, keys->sk_d.bytes(), std::span<const std::uint8_t>(msg).first(64)).ok(); break;
      case 6: ok = derive_child_sa_keys(ks.prf, keys->sk_d, ChildSaSuite{EncrId::aes_gcm_16, 256, IntegId::none}, {}, ni, nr).ok(); break;
      default: break;
    }
    if (!ok) st.SkipWithError("step failed");
  }
  static const char* const names[] = {"keypair", "shared_secret", "skeyseed_sk", "sk_ciphers", "psk_auth", "prf", "keymat"};
  st.SetLabel(names[step]);
}
BENCHMARK(BM_ResponderStep)->DenseRange(0, 6)->Unit(benchmark::kMicrosecond);

}  // namespace
