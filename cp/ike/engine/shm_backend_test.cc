// ShmBackend against a real ShmServer (in process, polled by a thread) with
// a recording handler standing in for cygnet-dp.
#include "cp/ike/engine/shm_backend.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "shared/shm/server.h"

namespace cygnet::ike {
namespace {

struct Recorder : shm::Handler {
  std::mutex mu;
  std::vector<std::vector<shm::Change>> batches;
  bool refuse = false;
  shm::Verdict apply(std::span<const shm::Change> changes) override {
    std::lock_guard<std::mutex> g(mu);
    if (refuse) return shm::Verdict{shm::Status::invalid, "refused by the test"};
    batches.emplace_back(changes.begin(), changes.end());
    return {};
  }
  shm::Verdict counters(const shm::CountersQuery&, std::vector<shm::SaCounters>&, std::uint32_t& next) override {
    next = 0;
    return {};
  }
};

struct Server {
  Recorder rec;
  std::unique_ptr<shm::ShmServer> srv;
  std::atomic<bool> stop{false};
  std::thread t;
  explicit Server(const std::string& inst) {
    auto s = shm::ShmServer::create(inst);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    if (s.ok()) srv = std::move(*s);
    t = std::thread([this] {
      while (!stop.load()) {
        if (srv) srv->poll(rec);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  ~Server() {
    stop = true;
    t.join();
  }
};

ChildSaSpec spec(std::uint32_t spi_in, std::uint32_t spi_out) {
  ChildSaSpec c;
  c.connection = "t";
  c.reqid = 0x10001;
  for (SaConfig* s : {&c.inbound, &c.outbound}) {
    s->reqid = c.reqid;
    s->cipher = CipherAlg::aes_gcm16_128;
    std::vector<std::uint8_t> k(20, 0x5a);
    s->cipher_key = *SecretKey::from_bytes(k);
  }
  c.inbound.spi = spi_in;
  c.inbound.dir = Direction::in;
  c.inbound.src = *IpAddress::parse("192.0.2.2");
  c.inbound.dst = *IpAddress::parse("192.0.2.1");
  c.outbound.spi = spi_out;
  c.outbound.dir = Direction::out;
  c.outbound.src = *IpAddress::parse("192.0.2.1");
  c.outbound.dst = *IpAddress::parse("192.0.2.2");
  Policy out;
  out.dir = PolicyDir::out;
  out.reqid = c.reqid;
  out.sel.src = *IpPrefix::parse("10.1.0.0/16");
  out.sel.dst = *IpPrefix::parse("10.2.0.0/16");
  Policy in = out;
  in.dir = PolicyDir::in;
  std::swap(in.sel.src, in.sel.dst);
  c.policies = {out, in};
  return c;
}

std::string instance() { return "ikeb" + std::to_string(::getpid()); }

TEST(ShmBackend, InstallIsOneBatchInboundFirstAndRemoveIsTheReverse) {
  const std::string inst = instance();
  Server s(inst);
  ASSERT_TRUE(s.srv);
  auto b = ShmBackend::attach(inst);
  ASSERT_TRUE(b.ok()) << b.error().message;
  ASSERT_TRUE((*b)->install_child(spec(0x1001, 0x2002)));
  ASSERT_TRUE((*b)->remove_child(spec(0x1001, 0x2002)));
  std::lock_guard<std::mutex> g(s.rec.mu);
  ASSERT_EQ(s.rec.batches.size(), 2u);
  const auto& add = s.rec.batches[0];
  ASSERT_EQ(add.size(), 4u);
  ASSERT_TRUE(std::holds_alternative<shm::SaAdd>(add[0].op));
  EXPECT_EQ(std::get<shm::SaAdd>(add[0].op).sa.spi, 0x1001u);  // inbound first
  EXPECT_EQ(std::get<shm::SaAdd>(add[1].op).sa.spi, 0x2002u);
  EXPECT_TRUE(std::holds_alternative<shm::PolicyAdd>(add[2].op));
  const auto& del = s.rec.batches[1];
  ASSERT_EQ(del.size(), 4u);
  EXPECT_TRUE(std::holds_alternative<shm::PolicyDelete>(del[0].op));
  ASSERT_TRUE(std::holds_alternative<shm::SaDelete>(del[2].op));
  EXPECT_EQ(std::get<shm::SaDelete>(del[2].op).key.spi, 0x2002u);  // outbound before inbound
  EXPECT_EQ(std::get<shm::SaDelete>(del[3].op).key.spi, 0x1001u);
  EXPECT_EQ((*b)->installed(), 0u);
}

TEST(ShmBackend, RefusalIsAnErrorAndNothingIsKept) {
  const std::string inst = instance();
  Server s(inst);
  ASSERT_TRUE(s.srv);
  s.rec.refuse = true;
  auto b = ShmBackend::attach(inst);
  ASSERT_TRUE(b.ok());
  auto r = (*b)->install_child(spec(0x1001, 0x2002));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("refused by the test"), std::string::npos) << r.error().message;
  EXPECT_EQ((*b)->installed(), 0u);
}

TEST(ShmBackend, NoDataplaneIsAClearError) {
  auto b = ShmBackend::attach("nobody-here-" + instance());
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("cannot reach cygnet-dp"), std::string::npos);
}

TEST(ShmBackend, ResyncAfterTheDataplaneRestarts) {
  const std::string inst = instance();
  auto s = std::make_unique<Server>(inst);
  ASSERT_TRUE(s->srv);
  auto b = ShmBackend::attach(inst);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE((*b)->install_child(spec(0x1001, 0x2002)));
  ASSERT_TRUE((*b)->install_child(spec(0x1003, 0x2004)));
  auto none = (*b)->resync();
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0u);  // nothing restarted
  s.reset();             // cygnet-dp goes away...
  s = std::make_unique<Server>(inst);  // ...and comes back empty
  ASSERT_TRUE(s->srv);
  auto n = (*b)->resync();
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, 2u);
  std::lock_guard<std::mutex> g(s->rec.mu);
  ASSERT_EQ(s->rec.batches.size(), 2u);
  EXPECT_EQ(std::get<shm::SaAdd>(s->rec.batches[1][0].op).sa.spi, 0x1003u);
  // The keys came along.
  EXPECT_EQ(std::get<shm::SaAdd>(s->rec.batches[0][0].op).sa.cipher_key.size(), 20u);
}

}  // namespace
}  // namespace cygnet::ike
