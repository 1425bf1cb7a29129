// The packet pipeline over mbufs, without devices: the EAL runs without
// hugepages, frames are built here, handed to Worker::process() as if a
// port had received them, and what the worker sends is captured. Two
// dataplanes ("site A" and "site B") with mirrored SAs let the output of one
// be the input of the other, so both directions are checked end to end.
// (Interop with independent ESP implementations is tests/e2e.)
// GCC 12 sees a null dereference inside std::get_if on vector elements that
// the test has just bounds-checked (a false positive at -O2).
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <map>
#include <set>
#include <vector>

#include "cp/dp_config.h"
#include "dp/app/dataplane.h"
#include "dp/crypto/imb_mgr.h"
#include "shared/shm/client.h"
#include "shared/shm/test_util.h"

namespace cygnet::dp::app {
namespace {

rte_mempool* g_pool = nullptr;

class Env : public ::testing::Environment {
 public:
  void SetUp() override {
    const std::string prefix = "cyg-ptest-" + std::to_string(getpid());
    const char* argv[] = {"pipeline_test", "--no-huge", "-m", "256", "--no-pci", "--file-prefix", prefix.c_str(),
                          "--log-level", "lib.eal:error", "--no-telemetry", "-l", "0"};
    // A skipped environment would pass every test: fail the run instead.
    if (rte_eal_init(static_cast<int>(std::size(argv)), const_cast<char**>(argv)) < 0) {
      std::fprintf(stderr, "pipeline_test: EAL init failed\n");
      std::exit(1);
    }
    g_pool = rte_pktmbuf_pool_create("test_pool", 4095, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    if (g_pool == nullptr) {
      std::fprintf(stderr, "pipeline_test: no mbuf pool\n");
      std::exit(1);
    }
  }
  void TearDown() override { rte_eal_cleanup(); }
};
const auto* g_env = ::testing::AddGlobalTestEnvironment(new Env);

// ---- frames ----

std::uint16_t csum(const std::uint8_t* p, std::size_t n, std::uint32_t s = 0) {
  for (; n > 1; n -= 2, p += 2) s += static_cast<std::uint32_t>((p[0] << 8) | p[1]);
  if (n) s += static_cast<std::uint32_t>(p[0] << 8);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<std::uint16_t>(~s);
}

using Bytes = std::vector<std::uint8_t>;

Bytes ipv4_udp(const char* src, const char* dst, std::size_t payload, bool df = false, std::uint8_t ttl = 64,
               std::uint16_t sport = 1234, std::uint16_t dport = 5678) {
  Bytes b(20 + 8 + payload);
  b[0] = 0x45;
  const auto tot = static_cast<std::uint16_t>(b.size());
  b[2] = static_cast<std::uint8_t>(tot >> 8);
  b[3] = static_cast<std::uint8_t>(tot);
  b[4] = 0x12;
  b[5] = 0x34;
  if (df) b[6] = 0x40;
  b[8] = ttl;
  b[9] = 17;
  auto s = IpAddress::parse(src), d = IpAddress::parse(dst);
  std::memcpy(&b[12], s->bytes.data(), 4);
  std::memcpy(&b[16], d->bytes.data(), 4);
  const std::uint16_t c = csum(b.data(), 20);
  b[10] = static_cast<std::uint8_t>(c >> 8);
  b[11] = static_cast<std::uint8_t>(c);
  b[20] = static_cast<std::uint8_t>(sport >> 8);
  b[21] = static_cast<std::uint8_t>(sport);
  b[22] = static_cast<std::uint8_t>(dport >> 8);
  b[23] = static_cast<std::uint8_t>(dport);
  b[24] = static_cast<std::uint8_t>((8 + payload) >> 8);
  b[25] = static_cast<std::uint8_t>(8 + payload);
  for (std::size_t i = 0; i < payload; ++i) b[28 + i] = static_cast<std::uint8_t>(i * 7 + 1);
  return b;
}

Bytes ipv6_udp(const char* src, const char* dst, std::size_t payload) {
  Bytes b(40 + 8 + payload);
  b[0] = 0x60;
  b[4] = static_cast<std::uint8_t>((8 + payload) >> 8);
  b[5] = static_cast<std::uint8_t>(8 + payload);
  b[6] = 17;
  b[7] = 64;
  std::memcpy(&b[8], IpAddress::parse(src)->bytes.data(), 16);
  std::memcpy(&b[24], IpAddress::parse(dst)->bytes.data(), 16);
  b[40] = 0x04;
  b[42] = 0x13;
  b[44] = static_cast<std::uint8_t>((8 + payload) >> 8);
  b[45] = static_cast<std::uint8_t>(8 + payload);
  return b;
}

Bytes ether(const Bytes& l3, std::uint16_t type = 0x0800) {
  Bytes f(14 + l3.size());
  const std::uint8_t dst[6] = {0x02, 0, 0, 0, 0xaa, 0x01}, src[6] = {0x02, 0, 0, 0, 0xbb, 0x02};
  std::memcpy(&f[0], dst, 6);
  std::memcpy(&f[6], src, 6);
  f[12] = static_cast<std::uint8_t>(type >> 8);
  f[13] = static_cast<std::uint8_t>(type);
  std::memcpy(&f[14], l3.data(), l3.size());
  return f;
}

rte_mbuf* mbuf(const Bytes& f) {
  rte_mbuf* m = rte_pktmbuf_alloc(g_pool);
  EXPECT_NE(m, nullptr);
  auto* p = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(m, static_cast<std::uint16_t>(f.size())));
  EXPECT_NE(p, nullptr);
  std::memcpy(p, f.data(), f.size());
  return m;
}

Bytes bytes_of(rte_mbuf* m) {
  const auto* p = rte_pktmbuf_mtod(m, const std::uint8_t*);
  return Bytes(p, p + m->data_len);
}

// ---- a dataplane with captured tx ----

struct Capture {
  std::map<std::uint16_t, std::vector<Bytes>> sent;  // by port
  unsigned refuse = 0;  // refuse the next N packets (a full tx queue)
};

std::uint16_t capture_tx(void* ctx, std::uint16_t port, std::uint16_t, rte_mbuf** m, std::uint16_t n) {
  auto* c = static_cast<Capture*>(ctx);
  std::uint16_t taken = 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    if (c->refuse > 0) {
      --c->refuse;
      break;
    }
    c->sent[port].push_back(bytes_of(m[i]));
    rte_pktmbuf_free(m[i]);
    ++taken;
  }
  return taken;
}

const char* kSiteA = R"(
dataplane = {
  ports = (
    { name = "lan"; side = "protected"; device = "net_null0"; addresses = [ "10.1.0.1/24", "2001:db8:1::1/64" ]; },
    { name = "wan"; side = "unprotected"; device = "net_null1"; addresses = [ "192.0.2.1/24" ]; mtu = 1400; }
  );
  routes = ( { dst = "10.2.0.0/16"; via = "192.0.2.2"; port = "wan"; },
             { dst = "198.51.100.0/24"; via = "192.0.2.2"; port = "wan"; } );
  neighbours = ( { ip = "192.0.2.2"; mac = "02:00:00:00:02:02"; port = "wan"; },
                 { ip = "10.1.0.2"; mac = "02:00:00:00:01:02"; port = "lan"; } );
  cores = { main = 0; workers = [ 1 ]; };
};)";
const char* kSiteB = R"(
dataplane = {
  ports = (
    { name = "lan"; side = "protected"; device = "net_null0"; addresses = [ "10.2.0.1/16" ]; },
    { name = "wan"; side = "unprotected"; device = "net_null1"; addresses = [ "192.0.2.2/24" ]; }
  );
  routes = ( { dst = "10.1.0.0/24"; via = "192.0.2.1"; port = "wan"; } );
  neighbours = ( { ip = "192.0.2.1"; mac = "02:00:00:00:02:01"; port = "wan"; },
                 { ip = "10.2.0.5"; mac = "02:00:00:00:01:05"; port = "lan"; } );
  cores = { main = 0; workers = [ 1 ]; };
};)";

SaConfig sa(std::uint32_t spi, Direction dir, const char* src, const char* dst, std::uint32_t reqid,
            const char* key_hex = "0102030405060708090a0b0c0d0e0f10a0a1a2a3") {
  SaConfig c;
  c.spi = spi;
  c.dir = dir;
  c.src = *IpAddress::parse(src);
  c.dst = *IpAddress::parse(dst);
  c.reqid = reqid;
  c.cipher = CipherAlg::aes_gcm16_128;
  c.cipher_key = *SecretKey::from_hex(key_hex);
  return c;
}

Policy pol(PolicyDir dir, PolicyAction a, const char* src, const char* dst, std::uint32_t reqid = 0,
           std::uint32_t prio = 100) {
  Policy p;
  p.dir = dir;
  p.action = a;
  p.reqid = reqid;
  p.priority = prio;
  p.sel.src = *IpPrefix::parse(src);
  p.sel.dst = *IpPrefix::parse(dst);
  return p;
}

struct Site {
  cfg::DpConfig cfg;
  ImbManager mgr = ImbManager::create().value();
  ImbManager wmgr = ImbManager::create().value();
  ImbManager wmgr2 = ImbManager::create().value();
  std::unique_ptr<Dataplane> dp;
  std::unique_ptr<Worker> w;
  std::unique_ptr<Worker> w2;  // with two workers
  Capture cap;

  explicit Site(const char* text, unsigned workers = 1) {
    auto c = cfg::load_dp_string(text);
    EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
    cfg = *c;
    std::vector<PortInfo> ports;
    for (std::size_t i = 0; i < cfg.ports.size(); ++i) {
      PortInfo p;
      p.name = cfg.ports[i].name;
      p.dpdk_id = static_cast<std::uint16_t>(i);
      p.protected_side = cfg.ports[i].side == cfg::PortConfig::Side::protected_;
      p.mtu = cfg.ports[i].mtu;
      p.addresses = cfg.ports[i].addresses;
      p.mac = {0x02, 0, 0, 0, static_cast<std::uint8_t>(0x10 + i), 0x01};
      ports.push_back(p);
    }
    if (!cfg.exception_port.empty()) {
      PortInfo p;
      p.name = "exception";
      p.exception = true;
      p.dpdk_id = static_cast<std::uint16_t>(ports.size());
      p.mac = {0x02, 0, 0, 0, 0xee, 0x01};
      ports.push_back(p);
    }
    Dataplane::Options o;
    o.workers = workers;
    o.max_sas = 64;
    o.max_policies = 64;
    o.flow_cache_entries = 256;
    o.handoff_ring = 64;
    auto d = Dataplane::create(cfg, ports, o, mgr.get());
    EXPECT_TRUE(d.ok()) << (d.ok() ? "" : d.error().message);
    dp = std::move(*d);
    w = std::make_unique<Worker>(*dp, 0, g_pool, wmgr.get());
    w->set_tx(capture_tx, &cap);
    if (workers > 1) {
      w2 = std::make_unique<Worker>(*dp, 1, g_pool, wmgr2.get());
      w2->set_tx(capture_tx, &cap);
    }
  }
  ~Site() {
    w2.reset();
    w.reset();
    dp.reset();
  }
  shm::Verdict apply(std::vector<shm::Change> ch) { return dp->apply(ch); }
  void rx(std::uint16_t port, const Bytes& frame, Worker* on = nullptr) {
    rte_mbuf* m = mbuf(frame);
    (on ? on : w.get())->process(port, &m, 1, 1000);
    (on ? on : w.get())->flush();
  }
  std::uint64_t drops(std::uint16_t port, PipeDrop d) const {
    return dp->port_totals(port).drops[static_cast<std::size_t>(d)];
  }
};

template <class T>
const T* event_at(const std::vector<shm::EventBody>& v, std::size_t i) {
  return i < v.size() ? std::get_if<T>(&v[i]) : nullptr;
}

void install_pair(Site& a, Site& b) {
  // A -> B: spi 0x1001; B -> A: spi 0x2001. Keys mirrored.
  ASSERT_EQ(a.apply({{1, shm::SaAdd{sa(0x1001, Direction::out, "192.0.2.1", "192.0.2.2", 1)}},
                     {2, shm::SaAdd{sa(0x2001, Direction::in, "192.0.2.2", "192.0.2.1", 1,
                                       "1112131415161718191a1b1c1d1e1f20b0b1b2b3")}},
                     {3, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::protect, "10.1.0.0/24", "10.2.0.0/16", 1)}},
                     {4, shm::PolicyAdd{pol(PolicyDir::in, PolicyAction::protect, "10.2.0.0/16", "10.1.0.0/24", 1)}}})
                .status,
            shm::Status::ok);
  ASSERT_EQ(b.apply({{1, shm::SaAdd{sa(0x1001, Direction::in, "192.0.2.1", "192.0.2.2", 7)}},
                     {2, shm::SaAdd{sa(0x2001, Direction::out, "192.0.2.2", "192.0.2.1", 7,
                                       "1112131415161718191a1b1c1d1e1f20b0b1b2b3")}},
                     {3, shm::PolicyAdd{pol(PolicyDir::in, PolicyAction::protect, "10.1.0.0/24", "10.2.0.0/16", 7)}},
                     {4, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::protect, "10.2.0.0/16", "10.1.0.0/24", 7)}}})
                .status,
            shm::Status::ok);
}

TEST(Pipeline, OutboundEncryptsAndPeerDecryptsBothWays) {
  Site a(kSiteA), b(kSiteB);
  install_pair(a, b);
  const Bytes inner = ipv4_udp("10.1.0.2", "10.2.0.5", 100);
  a.rx(0, ether(inner));
  ASSERT_EQ(a.cap.sent[1].size(), 1u);
  const Bytes& esp = a.cap.sent[1][0];
  // Ethernet to the peer gateway's MAC, from the wan port's MAC, IPv4/ESP.
  EXPECT_EQ(Bytes(esp.begin(), esp.begin() + 6), (Bytes{0x02, 0, 0, 0, 0x02, 0x02}));
  EXPECT_EQ(Bytes(esp.begin() + 6, esp.begin() + 12), (Bytes{0x02, 0, 0, 0, 0x11, 0x01}));
  EXPECT_EQ(esp[14 + 9], 50);
  EXPECT_EQ(esp[14 + 20 + 3], 0x01);  // SPI 0x00001001
  EXPECT_EQ(esp[14 + 20 + 2], 0x10);

  b.rx(1, esp);
  ASSERT_EQ(b.cap.sent[0].size(), 1u);
  const Bytes& out = b.cap.sent[0][0];
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 6), (Bytes{0x02, 0, 0, 0, 0x01, 0x05}));
  // A decremented the TTL before encrypting, B after decrypting.
  const Bytes expect = ipv4_udp("10.1.0.2", "10.2.0.5", 100, false, 62);
  EXPECT_EQ(Bytes(out.begin() + 14, out.end()), expect);

  // And back.
  const Bytes reply = ipv4_udp("10.2.0.5", "10.1.0.2", 60);
  b.rx(0, ether(reply));
  ASSERT_EQ(b.cap.sent[1].size(), 1u);
  a.rx(1, b.cap.sent[1][0]);
  ASSERT_EQ(a.cap.sent[0].size(), 1u);
  EXPECT_EQ(a.cap.sent[0][0].size(), 14 + reply.size());

  // A replayed packet is refused by the SA (and counted under its reason).
  b.rx(1, esp);
  EXPECT_EQ(b.cap.sent[0].size(), 1u);
  EXPECT_EQ(b.drops(1, PipeDrop::esp), 1u);
  std::vector<shm::SaCounters> cs;
  std::uint32_t next = 0;
  ASSERT_EQ(b.dp->counters(shm::CountersQuery{}, cs, next).status, shm::Status::ok);
  std::uint64_t replay = 0, good = 0;
  for (const auto& s : cs) {
    replay += s.drops[static_cast<std::size_t>(DropReason::replay)];
    good += s.packets;
  }
  EXPECT_EQ(replay, 1u);
  EXPECT_EQ(good, 2u);
}

TEST(Pipeline, BypassDiscardNoPolicyAndCleartext) {
  Site a(kSiteA), b(kSiteB);
  install_pair(a, b);
  ASSERT_EQ(a.apply({{1, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::bypass, "10.1.0.0/24", "198.51.100.0/25")}},
                     {2, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::discard, "10.1.0.0/24", "198.51.100.128/25")}},
                     {3, shm::PolicyAdd{pol(PolicyDir::in, PolicyAction::bypass, "198.51.100.0/25", "10.1.0.0/24")}}})
                .status,
            shm::Status::ok);
  const Bytes clear = ipv4_udp("10.1.0.2", "198.51.100.7", 40);
  a.rx(0, ether(clear));
  ASSERT_EQ(a.cap.sent[1].size(), 1u);
  EXPECT_EQ(a.cap.sent[1][0][14 + 9], 17);           // still UDP: in clear
  EXPECT_EQ(a.cap.sent[1][0][14 + 8], 63);           // TTL decremented
  EXPECT_EQ(csum(&a.cap.sent[1][0][14], 20), 0);     // checksum still right

  a.rx(0, ether(ipv4_udp("10.1.0.2", "198.51.100.200", 40)));
  EXPECT_EQ(a.drops(0, PipeDrop::discard_policy), 1u);
  a.rx(0, ether(ipv4_udp("10.1.0.2", "203.0.113.1", 40)));
  EXPECT_EQ(a.drops(0, PipeDrop::no_policy), 1u);
  EXPECT_EQ(a.cap.sent[1].size(), 1u);

  // Cleartext from the peer's protected range: the inbound policy wants ESP.
  a.rx(1, ether(ipv4_udp("10.2.0.5", "10.1.0.2", 40)));
  EXPECT_EQ(a.drops(1, PipeDrop::cleartext), 1u);
  // Cleartext that an inbound bypass policy allows is forwarded.
  a.rx(1, ether(ipv4_udp("198.51.100.9", "10.1.0.2", 40)));
  ASSERT_EQ(a.cap.sent[0].size(), 1u);
  // TTL 1 is not forwarded.
  a.rx(0, ether(ipv4_udp("10.1.0.2", "198.51.100.7", 40, false, 1)));
  EXPECT_EQ(a.drops(0, PipeDrop::ttl), 1u);
}

TEST(Pipeline, NoSaRaisesAcquireAndUnknownSpiIsCounted) {
  Site a(kSiteA);
  ASSERT_EQ(a.apply({{1, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::protect, "10.1.0.0/24", "10.2.0.0/16", 9)}},
                     {2, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::trap, "10.1.0.0/24", "10.3.0.0/16", 10)}}})
                .status,
            shm::Status::ok);
  a.rx(0, ether(ipv4_udp("10.1.0.2", "10.2.0.5", 40)));
  a.rx(0, ether(ipv4_udp("10.1.0.2", "10.2.0.5", 40)));  // same flow: one ACQUIRE
  a.rx(0, ether(ipv4_udp("10.1.0.2", "10.3.0.5", 40)));
  EXPECT_EQ(a.drops(0, PipeDrop::no_sa), 2u);
  EXPECT_EQ(a.drops(0, PipeDrop::trap), 1u);
  std::vector<shm::EventBody> ev;
  a.dp->drain_events(ev);
  ASSERT_EQ(ev.size(), 2u);
  const auto* acq = std::get_if<shm::Acquire>(&ev[0]);
  ASSERT_NE(acq, nullptr);
  EXPECT_EQ(acq->reqid, 9u);
  EXPECT_EQ(acq->flow.dst.to_string(), "10.2.0.5");
  EXPECT_EQ(acq->flow.dport, 5678);
  const auto* acq2 = std::get_if<shm::Acquire>(&ev[1]);
  ASSERT_NE(acq2, nullptr);
  EXPECT_EQ(acq2->reqid, 10u);

  // ESP to us with an SPI nobody has.
  Bytes esp = ipv4_udp("192.0.2.2", "192.0.2.1", 40);
  esp[9] = 50;
  esp[10] = esp[11] = 0;
  const std::uint16_t c = csum(esp.data(), 20);
  esp[10] = static_cast<std::uint8_t>(c >> 8);
  esp[11] = static_cast<std::uint8_t>(c);
  a.rx(1, ether(esp));
  EXPECT_EQ(a.drops(1, PipeDrop::unknown_spi), 1u);
  // Garbage and runts are counted, never crash.
  a.rx(1, Bytes{1, 2, 3});
  EXPECT_EQ(a.drops(1, PipeDrop::bad_frame), 1u);
  Bytes bad = ether(ipv4_udp("192.0.2.2", "192.0.2.1", 40));
  bad[14 + 2] = 0xff;  // total length beyond the frame
  a.rx(1, bad);
  EXPECT_EQ(a.drops(1, PipeDrop::malformed), 1u);
}

TEST(Pipeline, AnswersArpForItsAddressesOnly) {
  Site a(kSiteA);
  Bytes arp(28);
  const std::uint8_t hdr[8] = {0, 1, 8, 0, 6, 4, 0, 1};
  std::memcpy(arp.data(), hdr, 8);
  const std::uint8_t sha[6] = {0x02, 0, 0, 0, 0x02, 0x02}, spa[4] = {192, 0, 2, 2}, tpa[4] = {192, 0, 2, 1};
  std::memcpy(&arp[8], sha, 6);
  std::memcpy(&arp[14], spa, 4);
  std::memcpy(&arp[24], tpa, 4);
  a.rx(1, ether(arp, 0x0806));
  ASSERT_EQ(a.cap.sent[1].size(), 1u);
  const Bytes& r = a.cap.sent[1][0];
  EXPECT_EQ(r[14 + 7], 2);                                         // reply
  EXPECT_EQ(Bytes(r.begin() + 14 + 8, r.begin() + 14 + 14), (Bytes{0x02, 0, 0, 0, 0x11, 0x01}));  // our MAC
  EXPECT_EQ(Bytes(r.begin() + 14 + 14, r.begin() + 14 + 18), (Bytes{192, 0, 2, 1}));
  EXPECT_EQ(Bytes(r.begin(), r.begin() + 6), Bytes(sha, sha + 6));
  arp[27] = 9;  // 192.0.2.9: not ours
  a.rx(1, ether(arp, 0x0806));
  EXPECT_EQ(a.cap.sent[1].size(), 1u);
  EXPECT_EQ(a.drops(1, PipeDrop::arp), 1u);
}

TEST(Pipeline, PathMtuFragmentsBeforeEncryptionOrSendsIcmp) {
  Site a(kSiteA), b(kSiteB);
  install_pair(a, b);
  // wan MTU 1400: a 1400-byte inner packet does not fit once ESP is added.
  const Bytes big = ipv4_udp("10.1.0.2", "10.2.0.5", 1400 - 28);
  a.rx(0, ether(big));
  ASSERT_EQ(a.cap.sent[1].size(), 2u);  // two fragments, each its own ESP packet
  for (const Bytes& e : a.cap.sent[1]) {
    EXPECT_LE(e.size() - 14, 1400u);
    EXPECT_EQ(e[14 + 9], 50);
  }
  for (const Bytes& e : a.cap.sent[1]) b.rx(1, e);
  ASSERT_EQ(b.cap.sent[0].size(), 2u);
  std::size_t payload = 0;
  for (const Bytes& f : b.cap.sent[0]) {
    EXPECT_EQ(csum(&f[14], 20), 0);
    payload += f.size() - 14 - 20;
  }
  EXPECT_EQ(payload, big.size() - 20);  // the fragments carry the whole datagram
  const std::uint16_t fo1 = static_cast<std::uint16_t>((b.cap.sent[0][0][14 + 6] << 8) | b.cap.sent[0][0][14 + 7]);
  EXPECT_EQ(fo1 & 0x2000, 0x2000);  // more fragments

  // With DF: ICMP "fragmentation needed" back to the sender, on the lan port.
  a.rx(0, ether(ipv4_udp("10.1.0.2", "10.2.0.5", 1400 - 28, true)));
  EXPECT_EQ(a.drops(0, PipeDrop::mtu), 1u);
  ASSERT_EQ(a.cap.sent[0].size(), 1u);
  const Bytes& icmp = a.cap.sent[0][0];
  EXPECT_EQ(icmp[14 + 9], 1);
  EXPECT_EQ(icmp[14 + 20], 3);
  EXPECT_EQ(icmp[14 + 21], 4);
  const unsigned mtu = static_cast<unsigned>((icmp[14 + 26] << 8) | icmp[14 + 27]);
  EXPECT_GT(mtu, 1300u);
  EXPECT_LT(mtu, 1400u);
  EXPECT_EQ(Bytes(icmp.begin() + 14 + 16, icmp.begin() + 14 + 20), (Bytes{10, 1, 0, 2}));
  EXPECT_EQ(csum(&icmp[14], 20), 0);
  EXPECT_EQ(csum(&icmp[14 + 20], icmp.size() - 14 - 20), 0);
}

TEST(Pipeline, Ipv6TooBigForTheTunnelGetsIcmpv6PacketTooBig) {
  Site a(kSiteA);
  ASSERT_EQ(a.apply({{1, shm::SaAdd{sa(0x1001, Direction::out, "192.0.2.1", "192.0.2.2", 1)}},
                     {2, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::protect, "2001:db8:1::/64",
                                            "2001:db8:2::/48", 1)}}})
                .status,
            shm::Status::ok);
  a.rx(0, ether(ipv6_udp("2001:db8:1::2", "2001:db8:2::5", 100), 0x86dd));
  ASSERT_EQ(a.cap.sent[1].size(), 1u);  // a small one goes through (IPv6 in IPv4)
  EXPECT_EQ(a.cap.sent[1][0][14 + 9], 50);
  a.rx(0, ether(ipv6_udp("2001:db8:1::2", "2001:db8:2::5", 1400 - 48), 0x86dd));
  EXPECT_EQ(a.drops(0, PipeDrop::mtu), 1u);
  ASSERT_EQ(a.cap.sent[0].size(), 1u);
  const Bytes& r = a.cap.sent[0][0];
  ASSERT_GE(r.size(), 14u + 48u);
  EXPECT_EQ(r[12], 0x86);
  EXPECT_EQ(r[14 + 6], 58);   // ICMPv6
  EXPECT_EQ(r[14 + 40], 2);   // packet too big (RFC 4443 3.2)
  const IpAddress host = *IpAddress::parse("2001:db8:1::2");
  EXPECT_EQ(Bytes(r.begin() + 14 + 24, r.begin() + 14 + 40), Bytes(host.bytes.begin(), host.bytes.end()));
  const unsigned mtu = static_cast<unsigned>((r[14 + 46] << 8) | r[14 + 47]);
  EXPECT_GT(mtu, 1280u);
  EXPECT_LT(mtu, 1400u);
  // Checksum over the pseudo-header (addresses, length, next header) and the message.
  std::uint32_t ps = 0;
  for (std::size_t i = 14 + 8; i < 14 + 40; i += 2) ps += static_cast<std::uint32_t>((r[i] << 8) | r[i + 1]);
  const std::size_t ilen = r.size() - 14 - 40;
  ps += static_cast<std::uint32_t>(ilen) + 58;
  EXPECT_EQ(csum(&r[14 + 40], ilen, ps), 0);
}

TEST(Pipeline, BatchesAreAllOrNothingAndUpdateIsRefused) {
  Site a(kSiteA);
  Policy bad = pol(PolicyDir::out, PolicyAction::protect, "10.1.0.0/24", "10.2.0.0/16", 1);
  Policy dup = bad;
  auto v = a.apply({{1, shm::SaAdd{sa(0x1001, Direction::out, "192.0.2.1", "192.0.2.2", 1)}},
                    {2, shm::PolicyAdd{bad}},
                    {3, shm::PolicyAdd{dup}}});  // the same selector twice: refused
  EXPECT_NE(v.status, shm::Status::ok);
  EXPECT_EQ(a.dp->sa_count(), 0u);
  EXPECT_TRUE(a.dp->list_policies().empty());

  ASSERT_EQ(a.apply({{1, shm::SaAdd{sa(0x1001, Direction::out, "192.0.2.1", "192.0.2.2", 1)}}}).status, shm::Status::ok);
  v = a.apply({{2, shm::SaAdd{sa(0x1001, Direction::out, "192.0.2.1", "192.0.2.2", 1)}}});
  EXPECT_EQ(v.status, shm::Status::exists);
  v = a.apply({{3, shm::SaUpdate{sa(0x1001, Direction::out, "192.0.2.1", "192.0.2.2", 1)}}});
  EXPECT_EQ(v.status, shm::Status::invalid);
  EXPECT_NE(v.text.find("not supported"), std::string::npos);
  shm::SaKey k{0x1002, Direction::out, *IpAddress::parse("192.0.2.2")};
  EXPECT_EQ(a.apply({{4, shm::SaDelete{k}}}).status, shm::Status::not_found);
  k.spi = 0x1001;
  EXPECT_EQ(a.apply({{5, shm::SaDelete{k}}}).status, shm::Status::ok);
  EXPECT_EQ(a.dp->sa_count(), 0u);
  // A deleted SA's handle is reused only after every worker was quiescent.
  a.dp->qsbr().quiescent(0);
  a.dp->housekeeping();
}

// An outbound policy on A that sends 10.1.0.0/24 -> 198.51.100.0/24 through
// install_pair's SA, although B's inbound policy for it allows 10.2.0.0/16
// only: B must drop those packets as inner_policy after decrypting them.
void add_policy_outside_peer_selectors(Site& a) {
  ASSERT_EQ(a.apply({{1, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::protect, "10.1.0.0/24", "198.51.100.0/24", 1)}}})
                .status,
            shm::Status::ok);
}

TEST(Pipeline, InnerPacketMustMatchTheSasInboundPolicy) {
  Site a(kSiteA), b(kSiteB);
  install_pair(a, b);
  // B's inbound policy for reqid 7 covers 10.1.0.0/24 -> 10.2.0.0/16 only.
  // A sends 10.1.0.2 -> 10.2.0.5 (allowed) and, with an extra outbound
  // policy of its own, 10.1.0.2 -> 198.51.100.7 through the same SA.
  ASSERT_NO_FATAL_FAILURE(add_policy_outside_peer_selectors(a));
  a.rx(0, ether(ipv4_udp("10.1.0.2", "198.51.100.7", 40)));
  ASSERT_EQ(a.cap.sent[1].size(), 1u);
  b.rx(1, a.cap.sent[1][0]);
  EXPECT_EQ(b.drops(1, PipeDrop::inner_policy), 1u);
  EXPECT_TRUE(b.cap.sent[0].empty());
}

// One receive burst mixing what the inbound path stages separately: ESP of
// an SA that passes, ESP whose inner packet the SA's inbound policy does not
// allow, ESP with an SPI nobody has, and cleartext. The SAD lookups run for
// the burst's ESP together and the decrypted packets meet the SPD in one
// lookup_burst; each packet must still get its own fate, in order.
TEST(Pipeline, InboundBurstMixesPassingInnerPolicyUnknownSpiAndCleartext) {
  Site a(kSiteA), b(kSiteB);
  install_pair(a, b);
  ASSERT_NO_FATAL_FAILURE(add_policy_outside_peer_selectors(a));
  std::vector<Bytes> want;
  for (int k = 0; k < 9; ++k) {
    const bool allowed = k % 3 != 2;  // B allows 10.1.0.0/24 -> 10.2.0.0/16 only
    const auto pl = static_cast<std::size_t>(40 + k);
    a.rx(0, ether(ipv4_udp("10.1.0.2", allowed ? "10.2.0.5" : "198.51.100.7", pl)));
    if (allowed) want.push_back(ipv4_udp("10.1.0.2", "10.2.0.5", pl, false, 62));
  }
  ASSERT_EQ(a.cap.sent[1].size(), 9u);
  std::vector<rte_mbuf*> burst;
  for (std::size_t k = 0; k < 9; ++k) {
    burst.push_back(mbuf(a.cap.sent[1][k]));
    if (k % 3 == 0) {  // the same ESP packet with another SPI
      Bytes f = a.cap.sent[1][k];
      f[14 + 20] ^= 0x5a;
      burst.push_back(mbuf(f));
    }
  }
  burst.push_back(mbuf(ether(ipv4_udp("10.1.0.3", "10.2.0.6", 40))));  // protect policy: must come as ESP
  b.w->process(1, burst.data(), static_cast<std::uint16_t>(burst.size()), 1000);
  b.w->flush();
  std::vector<Bytes> got;
  for (const Bytes& f : b.cap.sent[0]) got.emplace_back(f.begin() + 14, f.end());
  EXPECT_EQ(got, want);
  EXPECT_EQ(b.drops(1, PipeDrop::inner_policy), 3u);
  EXPECT_EQ(b.drops(1, PipeDrop::unknown_spi), 3u);
  EXPECT_EQ(b.drops(1, PipeDrop::cleartext), 1u);
  EXPECT_EQ(b.drops(1, PipeDrop::esp), 0u);
}

TEST(Pipeline, PacketsOfAnotherCoresSaAreHandedOff) {
  Site a(kSiteA, 2), b(kSiteB);
  install_pair(a, b);
  // Both of A's SAs are owned by worker 0 (the first SA of a reqid and the
  // first inbound SA): packets that worker 1 receives are handed to it.
  Bytes reply = ipv4_udp("10.2.0.5", "10.1.0.2", 60);
  b.rx(0, ether(reply));
  ASSERT_EQ(b.cap.sent[1].size(), 1u);
  a.rx(1, b.cap.sent[1][0], a.w2.get());
  EXPECT_TRUE(a.cap.sent[0].empty());  // in the ring to worker 0
  a.w->drain_handoff(1000);
  a.w->flush();
  ASSERT_EQ(a.cap.sent[0].size(), 1u);

  // Outbound SA owned by worker 0; a packet on worker 1 goes the same way.
  a.rx(0, ether(ipv4_udp("10.1.0.2", "10.2.0.5", 40)), a.w2.get());
  EXPECT_TRUE(a.cap.sent[1].empty());
  a.w->drain_handoff(1000);
  a.w->flush();
  ASSERT_EQ(a.cap.sent[1].size(), 1u);
  b.rx(1, a.cap.sent[1][0]);
  EXPECT_EQ(b.cap.sent[0].size(), 1u);
}

// A full handoff ring drops what does not fit, counted as handoff_full on
// the port the packets came in on; what fit reaches the owner intact. The
// ring here holds 63 (Options::handoff_ring = 64).
TEST(Pipeline, FullHandoffRingCountsItsDrops) {
  Site a(kSiteA, 2), b(kSiteB);
  install_pair(a, b);
  const Bytes frame = ether(ipv4_udp("10.1.0.2", "10.2.0.5", 40));
  for (int burst = 0; burst < 3; ++burst) {  // 96 packets for worker 0's SA, on worker 1
    std::vector<rte_mbuf*> m;
    for (int i = 0; i < 32; ++i) m.push_back(mbuf(frame));
    a.w2->process(0, m.data(), static_cast<std::uint16_t>(m.size()), 1000);
  }
  a.w2->flush();
  EXPECT_TRUE(a.cap.sent[1].empty());
  const std::size_t ring = rte_ring_get_capacity(a.dp->handoff(1, 0));
  EXPECT_EQ(a.drops(0, PipeDrop::handoff_full), 96 - ring);
  for (int i = 0; i < 4; ++i) a.w->drain_handoff(1000);
  a.w->flush();
  ASSERT_EQ(a.cap.sent[1].size(), ring);
  for (const Bytes& f : a.cap.sent[1]) b.rx(1, f);
  EXPECT_EQ(b.cap.sent[0].size(), ring);  // every one decrypts at the peer
}

TEST(Pipeline, LifetimesRaiseSoftAndHardExpiryOnce) {
  Site a(kSiteA), b(kSiteB);
  SaConfig out = sa(0x1001, Direction::out, "192.0.2.1", "192.0.2.2", 1);
  out.soft.packets = 2;
  out.hard.packets = 3;
  ASSERT_EQ(a.apply({{1, shm::SaAdd{out}},
                     {2, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::protect, "10.1.0.0/24", "10.2.0.0/16", 1)}}})
                .status,
            shm::Status::ok);
  for (int i = 0; i < 5; ++i) a.rx(0, ether(ipv4_udp("10.1.0.2", "10.2.0.5", 40)));
  EXPECT_EQ(a.cap.sent[1].size(), 3u);  // the hard limit stops the SA
  EXPECT_EQ(a.drops(0, PipeDrop::esp), 2u);
  std::vector<shm::EventBody> ev;
  a.dp->drain_events(ev);
  ASSERT_EQ(ev.size(), 2u);
  const auto* soft = event_at<shm::SaExpired>(ev, 0);
  const auto* hard = event_at<shm::SaExpired>(ev, 1);
  ASSERT_NE(soft, nullptr);
  ASSERT_NE(hard, nullptr);
  EXPECT_FALSE(soft->hard);
  EXPECT_TRUE(hard->hard);
  EXPECT_EQ(soft->which, shm::ExpiryKind::packets);
  EXPECT_EQ(hard->packets, 3u);
  EXPECT_EQ(hard->sa.spi, 0x1001u);
  EXPECT_EQ(hard->reqid, 1u);
}

TEST(Pipeline, EspInUdpFromANewSourcePortIsANatMappingChange) {
  Site a(kSiteA), b(kSiteB);
  SaConfig in = sa(0x2001, Direction::in, "192.0.2.2", "192.0.2.1", 1, "1112131415161718191a1b1c1d1e1f20b0b1b2b3");
  in.encap.enabled = true;
  SaConfig out = sa(0x2001, Direction::out, "192.0.2.2", "192.0.2.1", 7, "1112131415161718191a1b1c1d1e1f20b0b1b2b3");
  out.encap.enabled = true;
  ASSERT_EQ(a.apply({{1, shm::SaAdd{in}},
                     {2, shm::PolicyAdd{pol(PolicyDir::in, PolicyAction::protect, "10.2.0.0/16", "10.1.0.0/24", 1)}}})
                .status,
            shm::Status::ok);
  ASSERT_EQ(b.apply({{1, shm::SaAdd{out}},
                     {2, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::protect, "10.2.0.0/16", "10.1.0.0/24", 7)}}})
                .status,
            shm::Status::ok);
  for (int i = 0; i < 3; ++i) b.rx(0, ether(ipv4_udp("10.2.0.5", "10.1.0.2", 40)));
  ASSERT_EQ(b.cap.sent[1].size(), 3u);
  EXPECT_EQ(b.cap.sent[1][0][14 + 9], 17);  // UDP-encapsulated
  a.rx(1, b.cap.sent[1][0]);  // from 4500: the mapping as configured
  std::vector<shm::EventBody> ev;
  a.dp->drain_events(ev);
  EXPECT_TRUE(ev.empty());
  Bytes moved = b.cap.sent[1][1];
  moved[14 + 20] = 0x12;  // source port 4500 (0x1194) -> 0x1294 = 4756: a NAT rebinding
  moved[14 + 20 + 6] = moved[14 + 20 + 7] = 0;  // no UDP checksum (IPv4 allows it)
  a.rx(1, moved);
  a.rx(1, [&] { Bytes m = b.cap.sent[1][2]; m[14 + 20] = 0x12; m[14 + 26] = m[14 + 27] = 0; return m; }());
  a.dp->drain_events(ev);
  ASSERT_EQ(ev.size(), 1u);  // once per change
  const auto* nat = event_at<shm::NatMappingChanged>(ev, 0);
  ASSERT_NE(nat, nullptr);
  EXPECT_EQ(nat->old_port, 4500);
  EXPECT_EQ(nat->new_port, 0x1294);
  EXPECT_EQ(nat->new_addr.to_string(), "192.0.2.2");
  EXPECT_EQ(a.cap.sent[0].size(), 3u);  // every packet still delivered
}

TEST(Pipeline, TrafficForTheGatewayGoesToTheExceptionPortOnlyIfAllowed) {
  std::string conf = kSiteA;
  conf.insert(conf.rfind("};"), "  exception = \"net_tap0,iface=cyg-host\";\n");
  Site a(conf.c_str());
  constexpr std::uint16_t kExc = 2;
  ASSERT_EQ(a.apply({{1, shm::PolicyAdd{pol(PolicyDir::in, PolicyAction::bypass, "192.0.2.2/32", "192.0.2.1/32")}},
                     {2, shm::PolicyAdd{pol(PolicyDir::in, PolicyAction::protect, "192.0.2.3/32", "192.0.2.1/32", 4)}},
                     {3, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::bypass, "192.0.2.1/32", "192.0.2.2/32")}}})
                .status,
            shm::Status::ok);
  // Allowed by an inbound bypass policy: to the host kernel, addressed to its tap.
  a.rx(1, ether(ipv4_udp("192.0.2.2", "192.0.2.1", 20, false, 64, 40000, 7)));
  ASSERT_EQ(a.cap.sent[kExc].size(), 1u);
  EXPECT_EQ(Bytes(a.cap.sent[kExc][0].begin(), a.cap.sent[kExc][0].begin() + 6), (Bytes{0x02, 0, 0, 0, 0xee, 0x01}));
  // No policy: dropped (default discard), not handed to the kernel.
  a.rx(1, ether(ipv4_udp("192.0.2.9", "192.0.2.1", 20)));
  EXPECT_EQ(a.drops(1, PipeDrop::no_policy), 1u);
  // A protect policy covers it: cleartext refused.
  a.rx(1, ether(ipv4_udp("192.0.2.3", "192.0.2.1", 20)));
  EXPECT_EQ(a.drops(1, PipeDrop::cleartext), 1u);
  // IKE on UDP 500 always reaches the kernel.
  a.rx(1, ether(ipv4_udp("192.0.2.9", "192.0.2.1", 20, false, 64, 500, 500)));
  EXPECT_EQ(a.cap.sent[kExc].size(), 2u);
  // From the kernel: IKE bypasses the SPD, the rest meets it; no TTL change.
  a.rx(kExc, ether(ipv4_udp("192.0.2.1", "192.0.2.9", 20, false, 64, 500, 500)));
  a.rx(kExc, ether(ipv4_udp("192.0.2.1", "192.0.2.2", 20, false, 64, 7, 40000)));
  a.rx(kExc, ether(ipv4_udp("192.0.2.1", "198.51.100.1", 20)));
  EXPECT_EQ(a.drops(kExc, PipeDrop::no_neighbour), 1u);  // 192.0.2.9 is on-link but has no neighbour entry
  ASSERT_EQ(a.cap.sent[1].size(), 1u);
  EXPECT_EQ(a.cap.sent[1][0][14 + 8], 64);
  EXPECT_EQ(Bytes(a.cap.sent[1][0].begin(), a.cap.sent[1][0].begin() + 6), (Bytes{0x02, 0, 0, 0, 0x02, 0x02}));
  EXPECT_EQ(a.drops(kExc, PipeDrop::no_policy), 1u);
  // The kernel's ARP for any next hop gets the dataplane's proxy answer.
  Bytes arp(28);
  const std::uint8_t hdr[8] = {0, 1, 8, 0, 6, 4, 0, 1}, spa[4] = {192, 0, 2, 1}, tpa[4] = {192, 0, 2, 2};
  std::memcpy(arp.data(), hdr, 8);
  std::memcpy(&arp[14], spa, 4);
  std::memcpy(&arp[24], tpa, 4);
  a.rx(kExc, ether(arp, 0x0806));
  ASSERT_EQ(a.cap.sent[kExc].size(), 3u);
  EXPECT_EQ(a.cap.sent[kExc][2][14 + 7], 2);
}

// The shm server in front of the real dataplane: a client that dies inside
// a batch changes nothing; a batch with one bad change changes nothing and
// says which; garbage is acked with a status.
TEST(Pipeline, ShmBatchesReachTheDataplaneWholeOrNotAtAll) {
  Site a(kSiteA);
  const std::string inst = shm::testing::unique_instance();
  auto srv = shm::ShmServer::create(inst);
  ASSERT_TRUE(srv.ok()) << srv.error().message;
  shm::ShmServer& server = **srv;

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto c = shm::ShmClient::attach(inst, {"doomed", false, 16});
    if (!c.ok()) ::_exit(2);
    int rc = 0;
    if (!(*c)->batch_begin().ok()) rc = 3;
    if (rc == 0 && !(*c)->sa_add(sa(0x1001, Direction::out, "192.0.2.1", "192.0.2.2", 1)).ok()) rc = 4;
    if (rc == 0 && !(*c)->policy_add(pol(PolicyDir::out, PolicyAction::protect, "10.1.0.0/24", "10.2.0.0/16", 1)).ok())
      rc = 5;
    ::_exit(rc);  // no commit, no detach: as if killed
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  server.poll(*a.dp);
  server.check_clients(*a.dp);
  EXPECT_EQ(a.dp->sa_count(), 0u);
  EXPECT_TRUE(a.dp->list_policies().empty());
  EXPECT_EQ(server.stats().batches_discarded, 1u);

  auto c = shm::ShmClient::attach_in_process(server, {"test", false, 64});
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto exchange = [&](const shm::CommandBody& body) {
    auto id = (*c)->send(body);
    EXPECT_TRUE(id.ok());
    server.poll(*a.dp);
    auto ack = (*c)->wait_ack(*id, std::chrono::milliseconds(2000));
    EXPECT_TRUE(ack.ok());
    return ack.ok() ? *ack : shm::Ack{};
  };
  EXPECT_EQ(exchange(shm::BatchBegin{3}).status, shm::Status::ok);
  EXPECT_EQ(exchange(shm::SaAdd{sa(0x1001, Direction::out, "192.0.2.1", "192.0.2.2", 1)}).status,
            shm::Status::accepted);
  EXPECT_EQ(exchange(shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::protect, "10.1.0.0/24", "10.2.0.0/16", 1)})
                .status,
            shm::Status::accepted);
  EXPECT_EQ(exchange(shm::SaDelete{shm::SaKey{0x9999, Direction::out, *IpAddress::parse("192.0.2.2")}}).status,
            shm::Status::accepted);
  const shm::Ack commit = exchange(shm::BatchCommit{});
  EXPECT_EQ(commit.status, shm::Status::not_found);
  EXPECT_NE(commit.text.find("change"), std::string::npos) << commit.text;
  EXPECT_EQ(a.dp->sa_count(), 0u);
  EXPECT_TRUE(a.dp->list_policies().empty());

  const std::uint8_t garbage[40] = {0xde, 0xad, 0xbe, 0xef};
  auto gid = (*c)->send_raw(garbage);
  ASSERT_TRUE(gid.ok());
  server.poll(*a.dp);
  auto gack = (*c)->wait_ack(*gid, std::chrono::milliseconds(2000));
  ASSERT_TRUE(gack.ok());
  EXPECT_NE(gack->status, shm::Status::ok);

  EXPECT_EQ(exchange(shm::SaAdd{sa(0x1001, Direction::out, "192.0.2.1", "192.0.2.2", 1)}).status, shm::Status::ok);
  EXPECT_EQ(a.dp->sa_count(), 1u);
}

TEST(Pipeline, PerCpuSasLetEachWorkerUseItsOwnSa) {
  Site a(kSiteA, 2);
  // Two outbound SAs for one policy (RFC 9611 style): one per worker, no handoff.
  ASSERT_EQ(a.apply({{1, shm::SaAdd{sa(0x1001, Direction::out, "192.0.2.1", "192.0.2.2", 1)}},
                     {2, shm::SaAdd{sa(0x1002, Direction::out, "192.0.2.1", "192.0.2.2", 1)}},
                     {3, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::protect, "10.1.0.0/24", "10.2.0.0/16", 1)}}})
                .status,
            shm::Status::ok);
  a.rx(0, ether(ipv4_udp("10.1.0.2", "10.2.0.5", 40)), a.w.get());
  a.rx(0, ether(ipv4_udp("10.1.0.2", "10.2.0.5", 40)), a.w2.get());
  ASSERT_EQ(a.cap.sent[1].size(), 2u);  // both sent at once: neither waited in a handoff ring
  const auto spi_of = [](const Bytes& f) { return (f[14 + 20 + 2] << 8) | f[14 + 20 + 3]; };
  EXPECT_NE(spi_of(a.cap.sent[1][0]), spi_of(a.cap.sent[1][1]));
  // The first SAs of different policies spread over the workers.
  ASSERT_EQ(a.apply({{4, shm::SaAdd{sa(0x2001, Direction::out, "192.0.2.1", "192.0.2.2", 2)}},
                     {5, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::protect, "10.1.0.0/24", "198.51.100.0/24", 2)}}})
                .status,
            shm::Status::ok);
  std::size_t next = 0;
  std::set<unsigned> owners;
  for (const auto& v : a.dp->list_sas(0, 16, next))
    if (v.cfg.reqid == 2 || v.cfg.spi == 0x1001) owners.insert(v.owner);
  EXPECT_EQ(owners.size(), 2u);
}

// SPI -> the sequence numbers of its packets in the order sent, from
// Ethernet + IPv4 (no options) + ESP frames.
std::map<std::uint32_t, std::vector<std::uint32_t>> seqs_by_spi(const std::vector<Bytes>& frames) {
  std::map<std::uint32_t, std::vector<std::uint32_t>> seqs;
  const auto be32 = [](const Bytes& f, std::size_t o) {
    return (std::uint32_t{f[o]} << 24) | (std::uint32_t{f[o + 1]} << 16) | (std::uint32_t{f[o + 2]} << 8) | f[o + 3];
  };
  for (const Bytes& f : frames) {
    EXPECT_GE(f.size(), 14u + 20u + 8u);
    if (f.size() < 14u + 20u + 8u) continue;
    seqs[be32(f, 14 + 20)].push_back(be32(f, 14 + 20 + 4));
  }
  return seqs;
}

TEST(Pipeline, InterleavedSasInOneBurstKeepEachSasOrder) {
  Site a(kSiteA);
  ASSERT_EQ(a.apply({{1, shm::SaAdd{sa(0x1001, Direction::out, "192.0.2.1", "192.0.2.2", 1)}},
                     {2, shm::SaAdd{sa(0x1002, Direction::out, "192.0.2.1", "192.0.2.2", 2)}},
                     {3, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::protect, "10.1.0.0/24", "10.2.0.0/16", 1)}},
                     {4, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::protect, "10.1.0.0/24", "198.51.100.0/24", 2)}}})
                .status,
            shm::Status::ok);
  rte_mbuf* m[6];
  for (int i = 0; i < 6; ++i)
    m[i] = mbuf(ether(ipv4_udp("10.1.0.2", i % 2 ? "198.51.100.7" : "10.2.0.5", 40 + i)));
  a.w->process(0, m, 6, 1000);
  a.w->flush();
  ASSERT_EQ(a.cap.sent[1].size(), 6u);
  std::map<std::uint32_t, std::vector<std::uint32_t>> seqs = seqs_by_spi(a.cap.sent[1]);
  EXPECT_EQ(seqs[0x1001], (std::vector<std::uint32_t>{1, 2, 3}));
  EXPECT_EQ(seqs[0x1002], (std::vector<std::uint32_t>{1, 2, 3}));
}

TEST(Pipeline, BurstOfMoreSasThanThePrefetchDistanceGetsThroughBothWays) {
  // A burst whose packets belong to more SAs than kSaPrefetchAhead: the
  // later SAs are prefetched by run_esp while the earlier ones encrypt (or
  // decrypt). Every packet must still go out with its own SA, in order per
  // SA, and the peer must decrypt the whole burst.
  constexpr int kSas = 20;
  static_assert(kSas > static_cast<int>(kSaPrefetchAhead) + 4);
  Site a(kSiteA), b(kSiteB);
  std::vector<shm::Change> ca, cb;
  // SA i protects the traffic from 10.1.0.(10 + i) (B has one neighbour on
  // its LAN, 10.2.0.5, so the SAs differ by source).
  std::vector<std::string> nets;
  for (int i = 0; i < kSas; ++i) nets.push_back("10.1.0." + std::to_string(10 + i) + "/32");
  std::uint64_t id = 1;
  for (int i = 0; i < kSas; ++i) {
    const auto spi = static_cast<std::uint32_t>(0x1100 + i);
    const auto reqid = static_cast<std::uint32_t>(i + 1);
    ca.push_back({id, shm::SaAdd{sa(spi, Direction::out, "192.0.2.1", "192.0.2.2", reqid)}});
    ca.push_back({id + 1, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::protect, nets[i].c_str(), "10.2.0.0/16", reqid)}});
    cb.push_back({id, shm::SaAdd{sa(spi, Direction::in, "192.0.2.1", "192.0.2.2", reqid)}});
    cb.push_back({id + 1, shm::PolicyAdd{pol(PolicyDir::in, PolicyAction::protect, nets[i].c_str(), "10.2.0.0/16", reqid)}});
    id += 2;
  }
  ASSERT_EQ(a.apply(ca).status, shm::Status::ok);
  ASSERT_EQ(b.apply(cb).status, shm::Status::ok);

  constexpr int kN = kBurst;
  rte_mbuf* m[kN];
  for (int k = 0; k < kN; ++k) {
    const std::string src = "10.1.0." + std::to_string(10 + k % kSas);
    m[k] = mbuf(ether(ipv4_udp(src.c_str(), "10.2.0.5", 30 + static_cast<std::size_t>(k))));
  }
  a.w->process(0, m, kN, 1000);
  a.w->flush();
  ASSERT_EQ(a.cap.sent[1].size(), static_cast<std::size_t>(kN));
  std::map<std::uint32_t, std::vector<std::uint32_t>> seqs = seqs_by_spi(a.cap.sent[1]);
  ASSERT_EQ(seqs.size(), static_cast<std::size_t>(kSas));
  for (int i = 0; i < kSas; ++i) {
    const std::size_t want = static_cast<std::size_t>(kN / kSas + (i < kN % kSas ? 1 : 0));
    std::vector<std::uint32_t> expect;
    for (std::size_t s = 1; s <= want; ++s) expect.push_back(static_cast<std::uint32_t>(s));
    EXPECT_EQ(seqs[static_cast<std::uint32_t>(0x1100 + i)], expect) << "SA " << i;
  }

  rte_mbuf* e[kN];
  for (int k = 0; k < kN; ++k) e[k] = mbuf(a.cap.sent[1][static_cast<std::size_t>(k)]);
  b.w->process(1, e, kN, 1000);
  b.w->flush();
  ASSERT_EQ(b.cap.sent[0].size(), static_cast<std::size_t>(kN));
  std::multiset<Bytes> got, want;
  for (const Bytes& f : b.cap.sent[0]) got.insert(Bytes(f.begin() + 14, f.end()));
  for (int k = 0; k < kN; ++k) {
    const std::string src = "10.1.0." + std::to_string(10 + k % kSas);
    want.insert(ipv4_udp(src.c_str(), "10.2.0.5", 30 + static_cast<std::size_t>(k), false, 62));
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(b.drops(1, PipeDrop::esp), 0u);
}

TEST(Pipeline, FullTxQueueIsCounted) {
  Site a(kSiteA);
  ASSERT_EQ(a.apply({{1, shm::PolicyAdd{pol(PolicyDir::out, PolicyAction::bypass, "10.1.0.0/24", "198.51.100.0/24")}}})
                .status,
            shm::Status::ok);
  a.cap.refuse = 1;
  a.rx(0, ether(ipv4_udp("10.1.0.2", "198.51.100.7", 40)));
  EXPECT_EQ(a.drops(1, PipeDrop::tx_full), 1u);
  EXPECT_EQ(a.dp->port_totals(1).tx_packets, 0u);
  a.rx(0, ether(ipv4_udp("10.1.0.2", "198.51.100.7", 40)));
  EXPECT_EQ(a.dp->port_totals(1).tx_packets, 1u);
}

}  // namespace
}  // namespace cygnet::dp::app
