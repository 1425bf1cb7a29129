// ESP engine: our own outbound against our own inbound over the whole
// algorithm/mode/family matrix, then adversarial inputs, each dropped with
// its named reason. Interop with independent implementations is in
// tests/interop/ (scapy, tshark) and published vectors in rfc_vectors_test.cc
// and wycheproof_test.cc.
#include "dp/esp/esp.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "dp/crypto/imb_mgr.h"

namespace cygnet::dp::esp {
namespace {

constexpr std::uint16_t kRoom = 128;

struct Buf {
  std::vector<std::uint8_t> mem;
  Packet pkt;
  explicit Buf(const std::vector<std::uint8_t>& bytes, std::uint16_t head = kRoom, std::uint16_t tail = kRoom)
      : mem(bytes.size() + head + tail) {
    if (!bytes.empty()) std::memcpy(mem.data() + head, bytes.data(), bytes.size());
    pkt.buf = mem.data();
    pkt.cap = static_cast<std::uint16_t>(mem.size());
    pkt.off = head;
    pkt.len = static_cast<std::uint16_t>(bytes.size());
  }
  std::vector<std::uint8_t> bytes() const { return {pkt.data(), pkt.data() + pkt.len}; }
};

std::uint16_t sum16(const std::uint8_t* p, std::size_t n) {
  std::uint32_t s = 0;
  for (std::size_t i = 0; i + 1 < n; i += 2) s += (p[i] << 8) | p[i + 1];
  if (n & 1) s += p[n - 1] << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<std::uint16_t>(~s);
}

// An IPv4 or IPv6 UDP packet with `payload` bytes, ToS/traffic class `tos`.
std::vector<std::uint8_t> make_udp(bool v6, std::size_t payload, std::uint8_t tos = 0, std::uint8_t seed = 1) {
  std::vector<std::uint8_t> p;
  const std::size_t udp_len = 8 + payload;
  if (v6) {
    p = {static_cast<std::uint8_t>(0x60 | (tos >> 4)), static_cast<std::uint8_t>(tos << 4), 0, 0,
         static_cast<std::uint8_t>(udp_len >> 8), static_cast<std::uint8_t>(udp_len), 17, 64};
    for (int i = 0; i < 16; ++i) p.push_back(i == 0 ? 0xfd : i == 15 ? 1 : 0);
    for (int i = 0; i < 16; ++i) p.push_back(i == 0 ? 0xfd : i == 15 ? 2 : 0);
  } else {
    const std::size_t total = 20 + udp_len;
    p = {0x45, tos, static_cast<std::uint8_t>(total >> 8), static_cast<std::uint8_t>(total), 0x12, 0x34, 0x40, 0,
         64, 17, 0, 0, 10, 1, 0, 1, 10, 2, 0, 1};
    const std::uint16_t c = sum16(p.data(), 20);
    p[10] = static_cast<std::uint8_t>(c >> 8);
    p[11] = static_cast<std::uint8_t>(c);
  }
  p.insert(p.end(), {0x30, 0x39, 0x00, 0x35, static_cast<std::uint8_t>(udp_len >> 8),
                     static_cast<std::uint8_t>(udp_len), 0, 0});
  for (std::size_t i = 0; i < payload; ++i) p.push_back(static_cast<std::uint8_t>(i * seed + 7));
  return p;
}

SecretKey key(std::size_t n, std::uint8_t base) {
  std::vector<std::uint8_t> b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(base + i);
  return *SecretKey::from_bytes(b);
}

struct Algo {
  CipherAlg c;
  IntegAlg i;
};

const Algo kAlgos[] = {
    {CipherAlg::aes_gcm16_128, IntegAlg::none},        {CipherAlg::aes_gcm16_256, IntegAlg::none},
    {CipherAlg::chacha20_poly1305, IntegAlg::none},    {CipherAlg::aes_cbc_128, IntegAlg::hmac_sha1_96},
    {CipherAlg::aes_cbc_128, IntegAlg::hmac_sha256_128}, {CipherAlg::aes_cbc_256, IntegAlg::hmac_sha384_192},
    {CipherAlg::aes_cbc_256, IntegAlg::hmac_sha512_256}, {CipherAlg::null, IntegAlg::hmac_sha256_128},
};

SaConfig make_cfg(Algo a, Direction dir, Mode mode, bool outer_v6, bool encap, bool esn) {
  SaConfig sa;
  sa.spi = 0x12345678;
  sa.dir = dir;
  sa.mode = mode;
  sa.src = *IpAddress::parse(outer_v6 ? "2001:db8::1" : "192.0.2.1");
  sa.dst = *IpAddress::parse(outer_v6 ? "2001:db8::2" : "192.0.2.2");
  sa.cipher = a.c;
  sa.integ = a.i;
  const auto& ci = cipher_info(a.c);
  sa.cipher_key = key(std::size_t{ci.key_len} + ci.salt_len, 0x10);
  sa.integ_key = key(integ_info(a.i).key_len, 0x80);
  sa.esn = esn;
  sa.encap.enabled = encap;
  return sa;
}

struct Pair {
  ImbManager mgr;
  std::unique_ptr<EspSa> out;
  std::unique_ptr<EspSa> in;
};

Pair make_pair(const SaConfig& base) {
  auto mgr = ImbManager::create();
  EXPECT_TRUE(mgr.ok());
  SaConfig o = base;
  o.dir = Direction::out;
  SaConfig i = base;
  i.dir = Direction::in;
  auto so = EspSa::create(o, mgr->get());
  auto si = EspSa::create(i, mgr->get());
  EXPECT_TRUE(so.ok()) << (so.ok() ? "" : so.error().message);
  EXPECT_TRUE(si.ok()) << (si.ok() ? "" : si.error().message);
  return Pair{std::move(*mgr), std::move(*so), std::move(*si)};
}

DropReason run_one(EspSa& sa, IMB_MGR* mgr, Buf& b) {
  Packet* p = &b.pkt;
  const auto good = sa.process(mgr, &p, 1);
  EXPECT_EQ(good == 1, p->drop == DropReason::none);
  return p->drop;
}

std::string name_of(Algo a) {
  return std::string(cipher_info(a.c).name) + "+" + integ_info(a.i).name;
}

// ------------------------------------------------------------ round trips

// RFC 4301 5.2: after decryption the inner packet must match the SA's
// traffic selectors; anything else is dropped as inner_policy and counted.
TEST(Esp, InnerPacketMustMatchTheSaSelectors) {
  Selector udp53;
  udp53.src = *IpPrefix::parse("10.1.0.0/16");
  udp53.dst = *IpPrefix::parse("10.2.0.0/16");
  udp53.proto = kProtoUdp;
  udp53.dport = PortRange{53, 53};
  auto with = [](std::vector<std::uint8_t> p, std::size_t at, std::uint8_t v) {
    p.at(at) = v;
    if ((p.at(0) >> 4) == 4) {  // keep the inner IPv4 checksum right
      p.at(10) = 0;
      p.at(11) = 0;
      const std::uint16_t c = sum16(p.data(), 20);
      p.at(10) = static_cast<std::uint8_t>(c >> 8);
      p.at(11) = static_cast<std::uint8_t>(c);
    }
    return p;
  };
  for (Mode mode : {Mode::tunnel, Mode::transport}) {
    SCOPED_TRACE(mode_name(mode));
    SaConfig cfg = make_cfg(kAlgos[0], Direction::out, mode, false, false, false);
    cfg.selectors = {udp53};
    Pair pr = make_pair(cfg);
    ASSERT_TRUE(pr.out && pr.in);
    auto roundtrip = [&](const std::vector<std::uint8_t>& pkt) {
      Buf b(pkt);
      EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::none);  // outbound does not check
      return run_one(*pr.in, pr.mgr.get(), b);
    };
    const auto good = make_udp(false, 20);  // 10.1.0.1 -> 10.2.0.1, UDP 12345 -> 53
    EXPECT_EQ(roundtrip(good), DropReason::none);
    EXPECT_EQ(roundtrip(with(good, 23, 54)), DropReason::inner_policy) << "destination port 54";
    EXPECT_EQ(roundtrip(with(good, 12, 11)), DropReason::inner_policy) << "source 11.1.0.1";
    EXPECT_EQ(roundtrip(with(good, 19, 9)), DropReason::none) << "10.2.0.9 is inside 10.2.0.0/16";
    EXPECT_EQ(roundtrip(with(good, 9, kProtoTcp)), DropReason::inner_policy) << "TCP";
    if (mode == Mode::tunnel) {
      EXPECT_EQ(roundtrip(make_udp(true, 20)), DropReason::inner_policy) << "IPv6 inside, IPv4 selectors only";
    }
    EXPECT_EQ(pr.in->counters().drops[DropReason::inner_policy], mode == Mode::tunnel ? 4u : 3u);
    EXPECT_EQ(pr.in->counters().packets, 2u);
  }
  // Several selectors: any one is enough; IPv6 inside a tunnel.
  SaConfig cfg = make_cfg(kAlgos[3], Direction::out, Mode::tunnel, true, true, true);
  Selector v6any;
  v6any.src = *IpPrefix::parse("fd00::/64");
  v6any.dst = *IpPrefix::parse("fd00::2/128");
  cfg.selectors = {udp53, v6any};
  Pair pr = make_pair(cfg);
  ASSERT_TRUE(pr.out && pr.in);
  Buf b6(make_udp(true, 100));
  ASSERT_EQ(run_one(*pr.out, pr.mgr.get(), b6), DropReason::none);
  EXPECT_EQ(run_one(*pr.in, pr.mgr.get(), b6), DropReason::none);
  Buf b4(make_udp(false, 100));
  ASSERT_EQ(run_one(*pr.out, pr.mgr.get(), b4), DropReason::none);
  EXPECT_EQ(run_one(*pr.in, pr.mgr.get(), b4), DropReason::none);
}

TEST(Esp, RoundTripMatrix) {
  int cases = 0;
  for (const Algo& a : kAlgos) {
    for (Mode mode : {Mode::tunnel, Mode::transport}) {
      for (bool outer_v6 : {false, true}) {
        for (bool inner_v6 : {false, true}) {
          if (mode == Mode::transport && inner_v6 != outer_v6) continue;
          for (bool encap : {false, true}) {
            for (bool esn : {false, true}) {
              const std::string what = name_of(a) + " " + mode_name(mode) + (outer_v6 ? " outer6" : " outer4") +
                                       (inner_v6 ? " inner6" : " inner4") + (encap ? " udp" : "") +
                                       (esn ? " esn" : "");
              Pair pr = make_pair(make_cfg(a, Direction::out, mode, outer_v6, encap, esn));
              ASSERT_TRUE(pr.out && pr.in) << what;
              for (std::size_t len : {0u, 1u, 13u, 64u, 255u, 1400u}) {
                const auto orig = make_udp(inner_v6, len, 0xb9, static_cast<std::uint8_t>(len));
                Buf b(orig);
                ASSERT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::none) << what << " len " << len;
                const auto wire = b.bytes();
                // Outer header sanity: protocol, ESP SPI and sequence in place.
                const std::size_t ohl = outer_v6 ? 40 : 20;
                const std::uint8_t proto = outer_v6 ? wire[6] : wire[9];
                EXPECT_EQ(proto, encap ? 17 : 50) << what;
                const std::size_t esp_off = ohl + (encap ? 8 : 0);
                EXPECT_EQ(wire[esp_off], 0x12);
                EXPECT_EQ(wire[esp_off + 3], 0x78);
                if (!outer_v6) {
                  EXPECT_EQ(sum16(wire.data(), 20), 0) << "outer IPv4 checksum " << what;
                }
                if (mode == Mode::tunnel && !outer_v6) {
                  EXPECT_EQ(wire[1], 0xb9) << "DSCP and ECN copied " << what;
                }
                ASSERT_EQ(run_one(*pr.in, pr.mgr.get(), b), DropReason::none) << what << " len " << len;
                EXPECT_EQ(b.bytes(), orig) << what << " len " << len;
                ++cases;
              }
              EXPECT_EQ(pr.out->counters().packets, 6u);
              EXPECT_EQ(pr.in->counters().packets, 6u);
              EXPECT_EQ(pr.in->counters().drops.total(), 0u);
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(cases, 8 * (4 + 2) * 2 * 2 * 6);
}

TEST(Esp, BurstOfMixedSizes) {
  for (const Algo& a : kAlgos) {
    Pair pr = make_pair(make_cfg(a, Direction::out, Mode::tunnel, false, false, false));
    std::vector<std::unique_ptr<Buf>> bufs;
    std::vector<std::vector<std::uint8_t>> orig;
    std::vector<Packet*> ptrs;
    for (int i = 0; i < 70; ++i) {  // more than one internal burst
      orig.push_back(make_udp(i % 2, static_cast<std::size_t>(i * 19 % 1400), 0, static_cast<std::uint8_t>(i)));
      bufs.push_back(std::make_unique<Buf>(orig.back()));
      ptrs.push_back(&bufs.back()->pkt);
    }
    ASSERT_EQ(pr.out->process(pr.mgr.get(), ptrs.data(), 70), 70) << name_of(a);
    ASSERT_EQ(pr.in->process(pr.mgr.get(), ptrs.data(), 70), 70) << name_of(a);
    for (int i = 0; i < 70; ++i) EXPECT_EQ(bufs[static_cast<std::size_t>(i)]->bytes(), orig[static_cast<std::size_t>(i)]) << i;
    EXPECT_EQ(pr.out->next_seq(), 71u);
  }
}

TEST(Esp, CbcIvsAreFreshPerPacket) {
  Pair pr = make_pair(make_cfg({CipherAlg::aes_cbc_128, IntegAlg::hmac_sha256_128}, Direction::out, Mode::tunnel,
                               false, false, false));
  std::set<std::vector<std::uint8_t>> ivs;
  for (int i = 0; i < 100; ++i) {
    Buf b(make_udp(false, 32));
    ASSERT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::none);
    const auto w = b.bytes();
    ivs.insert(std::vector<std::uint8_t>(w.begin() + 28, w.begin() + 44));
  }
  EXPECT_EQ(ivs.size(), 100u);
  // A second SA draws a different IV key: its first IV differs too.
  Pair pr2 = make_pair(make_cfg({CipherAlg::aes_cbc_128, IntegAlg::hmac_sha256_128}, Direction::out, Mode::tunnel,
                                false, false, false));
  Buf b(make_udp(false, 32));
  ASSERT_EQ(run_one(*pr2.out, pr2.mgr.get(), b), DropReason::none);
  const auto w = b.bytes();
  EXPECT_EQ(ivs.count(std::vector<std::uint8_t>(w.begin() + 28, w.begin() + 44)), 0u);
}

TEST(Esp, AeadIvIsTheSequenceNumber) {
  Pair pr = make_pair(make_cfg({CipherAlg::aes_gcm16_128, IntegAlg::none}, Direction::out, Mode::tunnel, false,
                               false, false));
  pr.out->set_next_seq(0x01020304);
  Buf b(make_udp(false, 10));
  ASSERT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::none);
  const auto w = b.bytes();
  const std::vector<std::uint8_t> iv(w.begin() + 28, w.begin() + 36);
  EXPECT_EQ(iv, (std::vector<std::uint8_t>{0, 0, 0, 0, 1, 2, 3, 4}));
}

TEST(Esp, TfcPaddingIsStrippedInbound) {
  SaConfig c = make_cfg({CipherAlg::aes_gcm16_128, IntegAlg::none}, Direction::out, Mode::tunnel, false, false, false);
  c.tfc_pad_to = 600;
  Pair pr = make_pair(c);
  const auto orig = make_udp(false, 40);
  Buf b(orig, kRoom, 700);
  ASSERT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::none);
  EXPECT_GE(b.pkt.len, 600u + 20 + 8 + 8 + 16);
  ASSERT_EQ(run_one(*pr.in, pr.mgr.get(), b), DropReason::none);
  EXPECT_EQ(b.bytes(), orig);
}

TEST(Esp, EcnDecapsulationRfc6040) {
  Pair pr = make_pair(make_cfg({CipherAlg::aes_gcm16_128, IntegAlg::none}, Direction::out, Mode::tunnel, false,
                               false, false));
  struct Case {
    std::uint8_t inner, outer;
    int result;  // -1: dropped
  } cases[] = {{0, 3, -1}, {0, 1, 0}, {2, 3, 3}, {1, 3, 3}, {2, 1, 1}, {1, 2, 1}, {3, 0, 3}};
  for (const auto& c : cases) {
    Buf b(make_udp(false, 20, static_cast<std::uint8_t>(0x20 | c.inner)));
    ASSERT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::none);
    // A router on the path marks the outer header (then fixes its checksum).
    std::uint8_t* o = b.pkt.data();
    o[1] = static_cast<std::uint8_t>((o[1] & 0xfc) | c.outer);
    o[10] = o[11] = 0;
    const std::uint16_t s = sum16(o, 20);
    o[10] = static_cast<std::uint8_t>(s >> 8);
    o[11] = static_cast<std::uint8_t>(s);
    const DropReason r = run_one(*pr.in, pr.mgr.get(), b);
    if (c.result < 0) {
      EXPECT_EQ(r, DropReason::ecn);
    } else {
      ASSERT_EQ(r, DropReason::none);
      EXPECT_EQ(b.pkt.data()[1] & 3, c.result) << int(c.inner) << "/" << int(c.outer);
      EXPECT_EQ(sum16(b.pkt.data(), 20), 0) << "inner checksum fixed";
    }
  }
}

// ------------------------------------------------------------ adversarial

SaConfig gcm_cfg(std::uint32_t replay_window = kDefaultReplayWindow) {
  SaConfig c = make_cfg({CipherAlg::aes_gcm16_128, IntegAlg::none}, Direction::out, Mode::tunnel, false, false, false);
  c.replay_window = replay_window;
  return c;
}

struct Fixture : ::testing::Test {
  explicit Fixture(std::uint32_t replay_window = 64) : pr(make_pair(gcm_cfg(replay_window))) {}
  Pair pr;  // by default a 64-packet window: the edge tests below count in 64s
  std::vector<std::uint8_t> encrypt(std::size_t len = 64) {
    Buf b(make_udp(false, len));
    EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::none);
    return b.bytes();
  }
  DropReason decrypt(const std::vector<std::uint8_t>& wire) {
    Buf b(wire);
    return run_one(*pr.in, pr.mgr.get(), b);
  }
};

void set_total(std::vector<std::uint8_t>& w) {
  w[2] = static_cast<std::uint8_t>(w.size() >> 8);
  w[3] = static_cast<std::uint8_t>(w.size());
  w[10] = w[11] = 0;
  const std::uint16_t s = sum16(w.data(), 20);
  w[10] = static_cast<std::uint8_t>(s >> 8);
  w[11] = static_cast<std::uint8_t>(s);
}

TEST_F(Fixture, ForgedHighSequenceLeavesWindowUnmoved) {
  auto w = encrypt();
  ASSERT_EQ(decrypt(w), DropReason::none);
  auto forged = encrypt();
  forged[24] = 0x7f;  // sequence number 0x7f000002
  EXPECT_EQ(decrypt(forged), DropReason::icv);
  EXPECT_EQ(pr.in->replay().top(), 1u) << "the window did not move";
  auto next = encrypt();  // seq 3 is still accepted
  EXPECT_EQ(decrypt(next), DropReason::none);
  EXPECT_EQ(pr.in->counters().drops[DropReason::icv], 1u);
}

TEST_F(Fixture, ReplaysAtAndBeyondTheWindow) {
  std::vector<std::vector<std::uint8_t>> sent;
  for (int i = 0; i < 100; ++i) sent.push_back(encrypt());
  for (std::size_t i = 0; i < 100; ++i) ASSERT_EQ(decrypt(sent[i]), DropReason::none);
  EXPECT_EQ(decrypt(sent[99]), DropReason::replay) << "top itself";
  EXPECT_EQ(decrypt(sent[99 - 63]), DropReason::replay) << "left edge (seq 37), seen";
  EXPECT_EQ(decrypt(sent[99 - 64]), DropReason::replay_old) << "one beyond the left edge";
  EXPECT_EQ(decrypt(sent[0]), DropReason::replay_old);
  EXPECT_EQ(pr.in->counters().drops[DropReason::replay], 2u);
  EXPECT_EQ(pr.in->counters().drops[DropReason::replay_old], 2u);
}

TEST_F(Fixture, OutOfOrderInsideTheWindowAccepted) {
  std::vector<std::vector<std::uint8_t>> sent;
  for (int i = 0; i < 10; ++i) sent.push_back(encrypt());
  for (int i : {9, 0, 5, 3, 8, 1}) EXPECT_EQ(decrypt(sent[static_cast<std::size_t>(i)]), DropReason::none) << i;
  EXPECT_EQ(decrypt(sent[5]), DropReason::replay);
}

// The default window is wide enough for the reordering a handoff between
// cores causes (docs/dataplane.md, Decisions): a new packet 1023 behind the
// newest is taken, 1024 behind is not.
struct DefaultWindow : Fixture {
  DefaultWindow() : Fixture(SaConfig{}.replay_window) {}
};

TEST_F(DefaultWindow, AcceptsA1023PacketReorder) {
  ASSERT_EQ(SaConfig{}.replay_window, 1024u);
  EXPECT_EQ(pr.in->replay().size(), 1024u);
  std::vector<std::vector<std::uint8_t>> sent;  // seq 1 .. 1025
  for (int i = 0; i < 1025; ++i) sent.push_back(encrypt(16));
  ASSERT_EQ(decrypt(sent[1024]), DropReason::none) << "seq 1025 first";
  EXPECT_EQ(decrypt(sent[1]), DropReason::none) << "seq 2: 1023 behind, the left edge";
  EXPECT_EQ(decrypt(sent[512]), DropReason::none) << "seq 513";
  EXPECT_EQ(decrypt(sent[0]), DropReason::replay_old) << "seq 1: 1024 behind";
  EXPECT_EQ(decrypt(sent[1]), DropReason::replay) << "seq 2 again";
  for (std::size_t i = 2; i < 1024; ++i) {
    if (i == 512) continue;
    ASSERT_EQ(decrypt(sent[i]), DropReason::none) << "seq " << i + 1;
  }
  EXPECT_EQ(pr.in->counters().drops[DropReason::replay_old], 1u);
  EXPECT_EQ(pr.in->counters().drops[DropReason::replay], 1u);
}

TEST_F(Fixture, DuplicateInsideOneBurstAcceptedOnce) {
  const auto w = encrypt();
  Buf a(w), b(w), c(encrypt());
  Packet* ptrs[] = {&a.pkt, &b.pkt, &c.pkt};
  EXPECT_EQ(pr.in->process(pr.mgr.get(), ptrs, 3), 2);
  EXPECT_EQ(ptrs[0], &a.pkt);
  EXPECT_EQ(ptrs[1], &c.pkt) << "good packets first, in order";
  EXPECT_EQ(ptrs[2], &b.pkt);
  EXPECT_EQ(b.pkt.drop, DropReason::replay);
}

TEST_F(Fixture, TruncatedAndRunts) {
  const auto w = encrypt(0);
  for (std::size_t cut : {0u, 1u, 19u, 20u, 27u, 28u, 36u, 40u, 51u}) {
    std::vector<std::uint8_t> t(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(cut));
    if (t.size() >= 20) set_total(t);
    const auto r = decrypt(t);
    EXPECT_TRUE(r == DropReason::runt || r == DropReason::malformed || r == DropReason::block_align) << cut << " "
                                                                                                  << drop_name(r);
  }
  // IP total length larger than what arrived.
  auto lying = w;
  lying[2] = 0x10;
  EXPECT_EQ(decrypt(lying), DropReason::malformed);
}

TEST_F(Fixture, IcvMismatchAnywhere) {
  const auto w = encrypt(100);
  for (std::size_t pos = 28; pos < w.size(); pos += 7) {
    auto t = w;
    t[pos] ^= 0x01;
    EXPECT_EQ(decrypt(t), DropReason::icv) << pos;
  }
  EXPECT_EQ(decrypt(w), DropReason::none) << "the untouched packet still passes";
}

TEST_F(Fixture, WrongSpiAndProtocol) {
  auto w = encrypt();
  w[20] ^= 0xff;
  EXPECT_EQ(decrypt(w), DropReason::spi_mismatch);
  auto u = encrypt();
  u[9] = 6;  // TCP
  set_total(u);
  EXPECT_EQ(decrypt(u), DropReason::not_esp);
}

TEST_F(Fixture, CiphertextNotAligned) {
  auto w = encrypt(64);
  w.push_back(0);  // 1 extra byte
  set_total(w);
  EXPECT_EQ(decrypt(w), DropReason::block_align);
}

TEST(EspTrailer, BadPadLengthPaddingAndNextHeader) {
  // Build packets whose trailer we control: encrypt a crafted "inner packet"
  // with a transport SA, where the whole payload is ours.
  auto mgr = ImbManager::create();
  ASSERT_TRUE(mgr.ok());
  SaConfig c = make_cfg({CipherAlg::aes_gcm16_128, IntegAlg::none}, Direction::in, Mode::tunnel, false, false, false);
  auto in = EspSa::create(c, mgr->get());
  ASSERT_TRUE(in.ok());
  CryptoKeys k;
  ASSERT_TRUE(k.init(mgr->get(), c).ok());
  std::uint32_t seq = 1;
  auto craft = [&](std::vector<std::uint8_t> pt) {
    std::vector<std::uint8_t> w = {0x45, 0, 0, 0, 0, 0, 0, 0, 64, 50, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
                                   0x12, 0x34, 0x56, 0x78, 0, 0, 0, static_cast<std::uint8_t>(seq),
                                   0, 0, 0, 0, 0, 0, 0, static_cast<std::uint8_t>(seq)};
    ++seq;
    std::uint8_t nonce[12];
    std::memcpy(nonce, k.salt, 4);
    std::memcpy(nonce + 4, w.data() + 28, 8);
    std::vector<std::uint8_t> ct(pt.size());
    std::uint8_t tag[16];
    EXPECT_TRUE(oneshot::aead_seal(mgr->get(), k, {nonce, 12}, {w.data() + 20, 8}, pt, ct.data(), tag));
    w.insert(w.end(), ct.begin(), ct.end());
    w.insert(w.end(), tag, tag + 16);
    set_total(w);
    Buf b(w);
    Packet* p = &b.pkt;
    (*in)->process(mgr->get(), &p, 1);
    return p->drop;
  };
  auto inner = make_udp(false, 10);  // 38 bytes
  auto with_trailer = [&](std::vector<std::uint8_t> tail) {
    auto v = inner;
    v.insert(v.end(), tail.begin(), tail.end());
    return v;
  };
  EXPECT_EQ(craft(with_trailer({0, 4})), DropReason::none);           // 38 + 2 = 40: aligned, no padding
  EXPECT_EQ(craft(with_trailer({1, 2, 3, 4, 4, 4})), DropReason::none);
  EXPECT_EQ(craft(with_trailer({1, 2, 9, 4, 4, 4})), DropReason::pad) << "non-monotonic padding";
  EXPECT_EQ(craft(with_trailer({0, 0, 0, 0, 4, 4})), DropReason::pad) << "zero padding";
  EXPECT_EQ(craft(with_trailer({1, 2, 3, 4, 200, 4})), DropReason::pad_len) << "pad length beyond the payload";
  EXPECT_EQ(craft(with_trailer({0, 6})), DropReason::next_header) << "TCP inside a tunnel SA";
  EXPECT_EQ(craft(with_trailer({0, 41})), DropReason::malformed) << "says IPv6, carries IPv4";
  EXPECT_EQ(craft({0, 0, 9, 4}), DropReason::pad_len);
  EXPECT_EQ(craft(with_trailer({1, 2, 3})), DropReason::block_align) << "ciphertext 41 bytes";
  EXPECT_EQ(craft(with_trailer({0, 59})), DropReason::tfc_dummy) << "RFC 4303 2.6 dummy packet";
  EXPECT_EQ(craft({0x45, 0, 0, 9, 0, 0, 0, 4}), DropReason::malformed) << "inner packet shorter than its header";
  EXPECT_EQ(craft({1, 2, 2, 4}), DropReason::malformed) << "zero-length payload";
  EXPECT_EQ(craft({0, 4}), DropReason::runt) << "2 bytes of ciphertext";
  EXPECT_EQ((*in)->counters().packets, 2u);
}

TEST(EspEsn, FreshReceiverRefusesTheEpochBeforeZero) {
  // RFC 4303 A2.2 case B with Th = 0: a low half just below 2^32 would be
  // in epoch -1, which does not exist.
  Pair pr = make_pair(make_cfg({CipherAlg::aes_gcm16_128, IntegAlg::none}, Direction::out, Mode::tunnel, false,
                               false, true));
  pr.out->set_next_seq(0xfffffff0ull);
  Buf b(make_udp(false, 30));
  ASSERT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::none);
  EXPECT_EQ(run_one(*pr.in, pr.mgr.get(), b), DropReason::replay_old);
}

TEST(EspOutbound, RoomChecksAndSequenceExhaustion) {
  Pair pr = make_pair(make_cfg({CipherAlg::aes_gcm16_128, IntegAlg::none}, Direction::out, Mode::tunnel, false,
                               false, false));
  Buf no_head(make_udp(false, 10), 10, kRoom);
  EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), no_head), DropReason::no_headroom);
  Buf no_tail(make_udp(false, 10), kRoom, 5);
  EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), no_tail), DropReason::no_tailroom);
  Buf junk(std::vector<std::uint8_t>{0x99, 1, 2, 3});
  EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), junk), DropReason::malformed);
  EXPECT_EQ(pr.out->next_seq(), 1u) << "dropped packets use no sequence number";

  pr.out->set_next_seq(0xffffffffull);
  Buf last(make_udp(false, 10));
  EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), last), DropReason::none) << "2^32-1 is the last one";
  EXPECT_TRUE(pr.out->seq_exhausted()) << "spent after its last number";
  Buf over(make_udp(false, 10));
  EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), over), DropReason::seq_exhausted);
  EXPECT_TRUE(pr.out->seq_exhausted());
}

TEST(EspOutbound, EsnNeverWrapsPast2To64) {
  // With ESN the counter is 64 bits; after 2^64-1 it must not cycle to 0
  // (which would reuse AES-GCM nonces under the same key).
  Pair pr = make_pair(make_cfg({CipherAlg::aes_gcm16_128, IntegAlg::none}, Direction::out, Mode::tunnel, false,
                               false, true));
  pr.out->set_next_seq(~0ull);
  Buf last(make_udp(false, 10));
  EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), last), DropReason::none);
  for (int i = 0; i < 3; ++i) {
    Buf b(make_udp(false, 10));
    EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::seq_exhausted) << i;
  }
  EXPECT_EQ(pr.out->counters().drops[DropReason::seq_exhausted], 3u);
}

TEST(EspEsn, WrapAcrossTwoToThe32) {
  for (const Algo& a : {Algo{CipherAlg::aes_gcm16_128, IntegAlg::none},
                        Algo{CipherAlg::aes_cbc_128, IntegAlg::hmac_sha256_128}}) {
    Pair pr = make_pair(make_cfg(a, Direction::out, Mode::tunnel, false, false, true));
    // The receiver first sees 0x80000000 (its window then sits in epoch 0
    // well away from 0), then the sender runs across 2^32.
    pr.out->set_next_seq(0x80000000ull);
    {
      Buf b(make_udp(false, 30));
      ASSERT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::none);
      ASSERT_EQ(run_one(*pr.in, pr.mgr.get(), b), DropReason::none);
    }
    pr.out->set_next_seq(0xfffffffdull);
    std::vector<std::vector<std::uint8_t>> sent;
    for (int i = 0; i < 6; ++i) {
      Buf b(make_udp(false, 30));
      ASSERT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::none);
      sent.push_back(b.bytes());
    }
    EXPECT_EQ(pr.out->next_seq(), 0x100000003ull) << "ESN does not stop at 2^32";
    // Only the low half is on the wire: 0xfffffffd, fffffffe, ffffffff, 0, 1, 2.
    EXPECT_EQ(sent[3][24] | sent[3][25] | sent[3][26] | sent[3][27], 0);
    for (auto& w : sent) {
      Buf b(w);
      EXPECT_EQ(run_one(*pr.in, pr.mgr.get(), b), DropReason::none) << name_of(a);
    }
    EXPECT_EQ(pr.in->replay().top(), 0x100000002ull);
    Buf again(sent[2]);
    EXPECT_EQ(run_one(*pr.in, pr.mgr.get(), again), DropReason::replay);
    // The same packets under a non-ESN SA with the same keys fail the ICV
    // past the wrap (the high half is authenticated).
    Pair plain = make_pair(make_cfg(a, Direction::out, Mode::tunnel, false, false, false));
    Buf wrapped(sent[4]);
    EXPECT_EQ(run_one(*plain.in, plain.mgr.get(), wrapped), DropReason::icv) << name_of(a);
  }
}

TEST(EspLifetime, HardPacketLimitDropsAndSoftFlags) {
  SaConfig c = make_cfg({CipherAlg::aes_gcm16_128, IntegAlg::none}, Direction::out, Mode::tunnel, false, false, false);
  c.soft.packets = 2;
  c.hard.packets = 3;
  Pair pr = make_pair(c);
  for (int i = 0; i < 3; ++i) {
    Buf b(make_udp(false, 10));
    EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::none) << i;
    EXPECT_EQ(pr.out->soft_expired(), i >= 1);
  }
  Buf b(make_udp(false, 10));
  EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::sa_expired);
}

// Byte limits count inner packet bytes (38 here); a limit is reached when
// the count gets to it, and the next one is watched from then on.
TEST(EspLifetime, ByteLimitsOneAfterTheOther) {
  SaConfig c = gcm_cfg();
  c.soft.bytes = 100;
  c.hard.bytes = 190;
  Pair pr = make_pair(c);
  for (int i = 1; i <= 5; ++i) {
    Buf b(make_udp(false, 10));
    EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::none) << i;
    EXPECT_EQ(pr.out->soft_expired(), i >= 3) << i << ": " << pr.out->counters().bytes << " bytes";
    EXPECT_EQ(pr.out->hard_expired(), i >= 5) << i << ": " << pr.out->counters().bytes << " bytes";
  }
  Buf b(make_udp(false, 10));
  EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::sa_expired);
  EXPECT_EQ(pr.out->counters().packets, 5u);
}

TEST(EspLifetime, HardByteLimitBeforeSoftPacketLimit) {
  SaConfig c = gcm_cfg();
  c.soft.packets = 10;
  c.hard.packets = 20;
  c.hard.bytes = 76;
  Pair pr = make_pair(c);
  for (int i = 1; i <= 2; ++i) {
    Buf b(make_udp(false, 10));
    EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::none) << i;
  }
  EXPECT_TRUE(pr.out->hard_expired());
  EXPECT_FALSE(pr.out->soft_expired()) << "2 packets of a soft limit of 10";
  Buf b(make_udp(false, 10));
  EXPECT_EQ(run_one(*pr.out, pr.mgr.get(), b), DropReason::sa_expired);
}

TEST(EspUdp4500, Classification) {
  const std::uint8_t ka[] = {0xff};
  EXPECT_EQ(classify_udp_4500(ka, 1), Udp4500Kind::keepalive);
  const std::uint8_t ike[] = {0, 0, 0, 0, 1, 2, 3, 4, 5};
  EXPECT_EQ(classify_udp_4500(ike, sizeof ike), Udp4500Kind::ike);
  EXPECT_EQ(classify_udp_4500(ike, 4), Udp4500Kind::malformed);
  const std::uint8_t esp[] = {0, 0, 1, 0, 0, 0, 0, 1};
  EXPECT_EQ(classify_udp_4500(esp, sizeof esp), Udp4500Kind::esp);
  EXPECT_EQ(classify_udp_4500(esp, 7), Udp4500Kind::malformed);
  const std::uint8_t zero_byte[] = {0};
  EXPECT_EQ(classify_udp_4500(zero_byte, 1), Udp4500Kind::malformed);
}

TEST(EspCreate, RefusesInvalidConfig) {
  auto mgr = ImbManager::create();
  ASSERT_TRUE(mgr.ok());
  SaConfig c = make_cfg({CipherAlg::aes_gcm16_128, IntegAlg::none}, Direction::out, Mode::tunnel, false, false, false);
  c.cipher_key = key(16, 0);
  auto r = EspSa::create(c, mgr->get());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("20-byte key"), std::string::npos);
}

#if defined(__x86_64__)
// Called through a pointer, never inlined: its machine code is what a caller
// of EspSa::prefetch gets.
[[gnu::noinline]] void call_prefetch(const EspSa* sa, std::uint16_t lines) { sa->prefetch(false, lines); }

// GCC 12 at -O2 once compiled EspSa::prefetch to nothing (dp/prefetch.h):
// the function's code must hold prefetch instructions (0F 18 /1,
// prefetcht0), not only a return. Scans the first bytes of the non-inlined
// wrapper.
TEST(EspSaPrefetch, IsNotCompiledAway) {
  void (*volatile fn)(const EspSa*, std::uint16_t) = call_prefetch;
  const auto* code = reinterpret_cast<const std::uint8_t*>(fn);
  int prefetches = 0;
  for (int i = 0; i + 2 < 96; ++i)
    if (code[i] == 0x0f && code[i + 1] == 0x18 && ((code[i + 2] >> 3) & 7) == 1) ++prefetches;
  EXPECT_GE(prefetches, 2) << "EspSa::prefetch emits no prefetcht0";
}
#endif

// The other code paths this CPU can run: the probe finds each one's layout.
TEST(GcmShortPacketLines, FollowTheLayoutOfEachCodePath) {
  struct Path {
    const char* name;
    void (*init)(IMB_MGR*);
    std::uint16_t hkey1_line;  // where HashKey^1 is (gcm_keys_*.asm)
    std::uint16_t past;        // lines a short packet must not need
  };
  const Path paths[] = {
      {"sse", init_mb_mgr_sse, 5, 0xff00},  // HashKey^8..1, then their Karatsuba halves (lines 5-7)
      {"avx2", init_mb_mgr_avx2, 5, 0xffc0},
  };
  int probed = 0;
  for (const Path& p : paths) {
    IMB_MGR* mgr = alloc_mb_mgr(0);
    ASSERT_NE(mgr, nullptr);
    p.init(mgr);
    if (imb_get_errno(mgr) != 0) {  // this CPU lacks the path
      free_mb_mgr(mgr);
      continue;
    }
    const std::uint16_t lines = gcm_short_packet_lines(mgr);
    std::printf("%s: 0x%04x\n", p.name, lines);
    EXPECT_TRUE(lines & 1u) << p.name;
    EXPECT_TRUE(lines & (1u << p.hkey1_line)) << p.name;
    EXPECT_EQ(lines & p.past, 0u) << p.name;
    free_mb_mgr(mgr);
    ++probed;
  }
  EXPECT_GE(probed, 1) << "AES-NI machines run the SSE path at least";
}

// gcm_short_packet_lines: the probed lines are where IPsec-MB's layout for
// this code path puts what a short packet needs, and they are enough.
TEST(GcmShortPacketLines, MatchTheCodePathsKeyLayoutAndSufficeForEncryptAndDecrypt) {
  auto m = ImbManager::create();
  ASSERT_TRUE(m.ok()) << m.error().message;
  IMB_MGR* mgr = m->get();
  const std::uint16_t lines = gcm_short_packet_lines(mgr);
  std::printf("%s: GCM key lines read by a short packet: 0x%04x\n", m->arch_description().c_str(), lines);
  EXPECT_TRUE(lines & 1u) << "the first round key is read by every packet";
  // The layouts in IPsec-MB's gcm_keys_*.asm: after 240 bytes of round keys,
  // VAES AVX-512 stores HashKey^48 ... HashKey^1 (HashKey^1 at byte 992, line
  // 15), AVX2 and plain AVX-512 HashKey^8 ... HashKey^1 (HashKey^1 at byte
  // 352, line 5). A short packet multiplies by the lowest powers only.
  const auto f = mgr->features;
  if (m->arch() == IMB_ARCH_AVX512 && (f & IMB_FEATURE_VAES) && (f & IMB_FEATURE_VPCLMULQDQ)) {
    EXPECT_TRUE(lines & (1u << 15)) << "HashKey^1";
    EXPECT_EQ(lines & 0x0ff0u, 0u) << "lines 4-11 hold HashKey^47 to HashKey^16, for long messages";
  } else if (m->arch() == IMB_ARCH_AVX2 || m->arch() == IMB_ARCH_AVX512) {
    EXPECT_TRUE(lines & (1u << 5)) << "HashKey^1";
    EXPECT_EQ(lines & 0xffc0u, 0u) << "nothing past HashKey^1";
  }
  // Enough: with every other line of the key data garbled, the direct GCM
  // API (not the job API the probe uses) encrypts and decrypts a 52-byte
  // ESP payload with 8 bytes of AAD exactly as with the intact keys.
  for (const bool aes256 : {false, true}) {
    std::uint8_t key[32];
    for (unsigned i = 0; i < sizeof key; ++i) key[i] = static_cast<std::uint8_t>(0xc0 ^ i);
    alignas(64) gcm_key_data good{};
    alignas(64) gcm_key_data bad{};
    if (aes256) {
      IMB_AES256_GCM_PRE(mgr, key, &good);
    } else {
      IMB_AES128_GCM_PRE(mgr, key, &good);
    }
    std::memcpy(&bad, &good, sizeof good);
    auto* b = reinterpret_cast<std::uint8_t*>(&bad);
    for (std::size_t i = 0; i < sizeof bad; ++i)
      if (!(lines & (1u << (i / 64)))) b[i] = static_cast<std::uint8_t>(~b[i]);
    const std::uint8_t iv[12] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};
    const std::uint8_t aad[8] = {0, 0, 0x20, 0x02, 0, 0, 0, 7};
    std::uint8_t pt[52];
    for (unsigned i = 0; i < sizeof pt; ++i) pt[i] = static_cast<std::uint8_t>(3 * i + 1);
    std::uint8_t ct_good[52], ct_bad[52], back[52], tag_good[16], tag_bad[16], tag_dec[16];
    gcm_context_data ctx{};
    const auto enc = [&](const gcm_key_data& k, std::uint8_t* out, const std::uint8_t* in, std::uint8_t* tag) {
      if (aes256) {
        IMB_AES256_GCM_ENC(mgr, &k, &ctx, out, in, sizeof pt, iv, aad, sizeof aad, tag, 16);
      } else {
        IMB_AES128_GCM_ENC(mgr, &k, &ctx, out, in, sizeof pt, iv, aad, sizeof aad, tag, 16);
      }
    };
    enc(good, ct_good, pt, tag_good);
    enc(bad, ct_bad, pt, tag_bad);
    EXPECT_EQ(0, std::memcmp(ct_good, ct_bad, sizeof pt)) << (aes256 ? "AES-256" : "AES-128");
    EXPECT_EQ(0, std::memcmp(tag_good, tag_bad, 16)) << (aes256 ? "AES-256" : "AES-128");
    if (aes256) {
      IMB_AES256_GCM_DEC(mgr, &bad, &ctx, back, ct_good, sizeof pt, iv, aad, sizeof aad, tag_dec, 16);
    } else {
      IMB_AES128_GCM_DEC(mgr, &bad, &ctx, back, ct_good, sizeof pt, iv, aad, sizeof aad, tag_dec, 16);
    }
    EXPECT_EQ(0, std::memcmp(back, pt, sizeof pt)) << (aes256 ? "AES-256" : "AES-128");
    EXPECT_EQ(0, std::memcmp(tag_dec, tag_good, 16)) << (aes256 ? "AES-256" : "AES-128");
    // And the garbling is real: garbling every line breaks the tag.
    std::memset(&bad, 0x5a, sizeof bad);
    enc(bad, ct_bad, pt, tag_bad);
    EXPECT_NE(0, std::memcmp(tag_good, tag_bad, 16));
  }
}

}  // namespace
}  // namespace cygnet::dp::esp
