// ShmBackend against a real ShmServer (in process, polled by a thread) with
// a recording handler standing in for cygnet-dp.
#include "cp/ike/engine/shm_backend.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
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
  shm::Verdict counters(const shm::CountersQuery& q, std::vector<shm::SaCounters>& out, std::uint32_t& next) override {
    next = 0;
    if (q.scope == shm::CounterScope::one && q.sa.spi == 0x1001) {
      shm::SaCounters c;
      c.sa = q.sa;
      c.packets = 7;
      c.bytes = 700;
      out.push_back(c);
    }
    return {};
  }
};

struct Server {
  Recorder rec;
  std::unique_ptr<shm::ShmServer> srv;
  std::atomic<bool> stop{false};
  std::mutex srv_mu;  // poll() on the thread, broadcast() from the test
  std::thread t;
  std::size_t broadcast(const shm::EventBody& ev) {
    std::lock_guard<std::mutex> g(srv_mu);
    return srv->broadcast(ev);
  }
  explicit Server(const std::string& inst) {
    auto s = shm::ShmServer::create(inst);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    if (s.ok()) srv = std::move(*s);
    t = std::thread([this] {
      while (!stop.load()) {
        std::lock_guard<std::mutex> g(srv_mu);
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

// ---- policy owners, traps, events, and the state file ----------------------

Policy trap_policy(std::uint32_t reqid, const char* src, const char* dst) {
  Policy p;
  p.priority = 1100;
  p.dir = PolicyDir::out;
  p.action = PolicyAction::trap;
  p.reqid = reqid;
  p.sel.src = *IpPrefix::parse(src);
  p.sel.dst = *IpPrefix::parse(dst);
  return p;
}

TrapSpec trap(std::uint32_t reqid, const char* src = "10.1.0.0/16", const char* dst = "10.2.0.0/16") {
  TrapSpec t;
  t.connection = "t";
  t.reqid = reqid;
  t.policies = {trap_policy(reqid, src, dst)};
  return t;
}

// The kinds of a batch's changes, as letters: A SA add, D SA delete, p policy
// add, d policy delete; with the policy's action for policies (t, P).
std::string shape(const std::vector<shm::Change>& b) {
  std::string s;
  for (const auto& c : b) {
    if (std::holds_alternative<shm::SaAdd>(c.op)) s += "A ";
    if (std::holds_alternative<shm::SaDelete>(c.op)) s += "D ";
    if (const auto* p = std::get_if<shm::PolicyAdd>(&c.op)) s += p->policy.action == PolicyAction::trap ? "pt " : "pP ";
    if (std::get_if<shm::PolicyDelete>(&c.op)) s += "d ";
  }
  if (!s.empty()) s.pop_back();
  return s;
}

// The backend attached to the test's server (null, with a failure, if not).
std::unique_ptr<ShmBackend> attached(const std::string& inst, ShmBackend::Options o = {}) {
  auto b = ShmBackend::attach(inst, std::move(o));
  EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().message);
  return b.ok() ? std::move(*b) : nullptr;
}

std::vector<std::string> shapes(Server& s) {
  std::lock_guard<std::mutex> g(s.rec.mu);
  std::vector<std::string> v;
  for (const auto& b : s.rec.batches) v.push_back(shape(b));
  return v;
}

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
  ASSERT_EQ(s->rec.batches.size(), 3u);  // each Child SA's SAs, then the policies
  EXPECT_EQ(shape(s->rec.batches[2]), "pP pP");
  EXPECT_EQ(std::get<shm::SaAdd>(s->rec.batches[1][0].op).sa.spi, 0x1003u);
  // The keys came along.
  EXPECT_EQ(std::get<shm::SaAdd>(s->rec.batches[0][0].op).sa.cipher_key.size(), 20u);
}

TEST(ShmBackend, ChildSaTakesTheTrapsPlaceAndGivesItBack) {
  const std::string inst = instance();
  Server s(inst);
  auto b = attached(inst);
  ASSERT_TRUE(s.srv && b);
  ASSERT_TRUE(b->install_trap(trap(7)));
  ASSERT_TRUE(b->install_child(spec(0x1001, 0x2002)));  // its outbound policy has the trap's selector
  ASSERT_TRUE(b->remove_child(spec(0x1001, 0x2002)));
  ASSERT_TRUE(b->remove_trap(trap(7)));
  EXPECT_FALSE(b->remove_trap(trap(7)));  // not there any more
  const std::vector<std::string> want = {
      "pt",               // the trap
      "A A d pP pP",      // both SAs, the trap out, the Child SA's out and in policies
      "d pt d D D",       // the Child SA's out policy, the trap back, its in policy, the SAs
      "d",                // the trap
  };
  EXPECT_EQ(shapes(s), want);
  EXPECT_EQ(b->traps(), 0u);
}

ChildSaSpec without_policies(ChildSaSpec c) {
  c.policies.clear();
  return c;
}

// The engine's rekey: the new Child SA keeps the reqid and comes without
// policies; the old one goes without them; the new one takes them when it
// goes itself. A cygnet-dp restart in between gets the policies back.
TEST(ShmBackend, RekeyedChildSaKeepsThePoliciesOfItsReqid) {
  const std::string inst = instance();
  auto s = std::make_unique<Server>(inst);
  auto b = attached(inst);
  ASSERT_TRUE(s->srv && b);
  ASSERT_TRUE(b->install_child(spec(0x1001, 0x2002)));
  ASSERT_TRUE(b->install_child(without_policies(spec(0x1003, 0x2004))));
  ASSERT_TRUE(b->remove_child(without_policies(spec(0x1001, 0x2002))));
  {
    const std::vector<std::string> want = {"A A pP pP", "A A", "D D"};
    EXPECT_EQ(shapes(*s), want);
  }
  s.reset();
  s = std::make_unique<Server>(inst);  // cygnet-dp restarts
  ASSERT_TRUE(s->srv);
  auto n = b->resync();
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, 1u);
  {
    const std::vector<std::string> want = {"A A", "pP pP"};  // the new SAs, then the reqid's policies
    EXPECT_EQ(shapes(*s), want);
    std::lock_guard<std::mutex> g(s->rec.mu);
    EXPECT_EQ(std::get<shm::SaAdd>(s->rec.batches[0][0].op).sa.spi, 0x1003u);
  }
  ASSERT_TRUE(b->remove_child(spec(0x1003, 0x2004)));  // with the policies it was handed
  const std::vector<std::string> want = {"A A", "pP pP", "d d D D"};
  EXPECT_EQ(shapes(*s), want);
}

// Two Child SAs of one reqid that both bring the same policies: the second
// replaces them in one batch, and removing either keeps them in place.
TEST(ShmBackend, SameReqidSamePoliciesReplaceInOneBatch) {
  const std::string inst = instance();
  Server s(inst);
  auto b = attached(inst);
  ASSERT_TRUE(s.srv && b);
  ASSERT_TRUE(b->install_child(spec(0x1001, 0x2002)));
  ASSERT_TRUE(b->install_child(spec(0x1003, 0x2004)));
  ASSERT_TRUE(b->remove_child(spec(0x1001, 0x2002)));
  ASSERT_TRUE(b->remove_child(spec(0x1003, 0x2004)));
  const std::vector<std::string> want = {"A A pP pP", "A A d pP d pP", "d pP d pP D D", "d d D D"};
  EXPECT_EQ(shapes(s), want);
  std::lock_guard<std::mutex> g(s.rec.mu);
  EXPECT_EQ(std::get<shm::SaDelete>(s.rec.batches[2][4].op).key.spi, 0x2002u);
}

TEST(ShmBackend, AcquireEventsAndCounters) {
  const std::string inst = instance();
  Server s(inst);
  auto b = attached(inst);
  ASSERT_TRUE(s.srv && b);
  ASSERT_TRUE(b->install_child(spec(0x1001, 0x2002)));  // the hello is through: we are subscribed
  shm::Acquire a;
  a.reqid = 0x10042;
  a.flow.src = *IpAddress::parse("10.1.0.5");
  a.flow.dst = *IpAddress::parse("10.2.0.5");
  a.flow.proto = kProtoUdp;
  ASSERT_EQ(s.broadcast(a), 1u);  // to us, the one subscribed client
  std::vector<std::uint32_t> got;
  for (int i = 0; i < 200 && got.empty(); ++i) {
    got = b->take_acquires();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], 0x10042u);
  EXPECT_TRUE(b->take_acquires().empty());  // taken once
  shm::SaExpired x;
  x.hard = false;
  x.sa = shm::SaKey{0x2002, Direction::out, *IpAddress::parse("192.0.2.2")};
  x.reqid = 0x10001;
  x.which = shm::ExpiryKind::packets;
  ASSERT_EQ(s.broadcast(x), 1u);
  std::vector<ShmBackend::Expiry> ex;
  for (int i = 0; i < 200 && ex.empty(); ++i) {
    (void)b->take_acquires();  // reads the events
    ex = b->take_expiries();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0].spi, 0x2002u);
  EXPECT_EQ(ex[0].dir, Direction::out);
  EXPECT_FALSE(ex[0].hard);
  auto u = b->usage(0x1001, Direction::in, *IpAddress::parse("192.0.2.1"));
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(u->packets, 7u);
  EXPECT_EQ(u->bytes, 700u);
  EXPECT_FALSE(b->usage(0x9999, Direction::in, *IpAddress::parse("192.0.2.1")).has_value());
}

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/cygnet-ike-state-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  ShmBackend::Options options() const {
    ShmBackend::Options o;
    o.state_path = path + "/ike.state";
    return o;
  }
};

std::string read_file(const std::string& p) {
  std::ifstream f(p);
  std::string all, line;
  while (std::getline(f, line)) all += line + "\n";
  return all;
}

TEST(ShmBackend, LeftoversOfAnEarlierRunAreRemoved) {
  const std::string inst = instance();
  Server s(inst);
  ASSERT_TRUE(s.srv);
  TempDir dir;
  const ShmBackend::Options o = dir.options();
  {
    auto b = attached(inst, o);
    ASSERT_TRUE(b);
    ASSERT_TRUE(b->install_trap(trap(7, "10.1.0.0/16", "10.9.0.0/16")));
    ASSERT_TRUE(b->install_child(spec(0x1001, 0x2002)));
    // cygnet-ike dies here: the backend goes without removing anything.
  }
  const std::string state = read_file(o.state_path);
  EXPECT_NE(state.find("sa 4097 in 192.0.2.1"), std::string::npos) << state;
  EXPECT_NE(state.find("policy out 10.1.0.0/16 10.9.0.0/16 0 0 65535 0 65535"), std::string::npos) << state;
  EXPECT_EQ(state.find("5a5a"), std::string::npos) << state;  // never keys (spec()'s are 0x5a bytes)
  struct stat st {};
  ASSERT_EQ(::stat(o.state_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  {
    std::lock_guard<std::mutex> g(s.rec.mu);
    s.rec.batches.clear();
  }
  auto b = attached(inst, o);
  ASSERT_TRUE(b);
  auto n = b->remove_leftovers();
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, 5u);  // three policies, two SAs
  const std::vector<std::string> want = {"d", "d", "d", "D", "D"};
  EXPECT_EQ(shapes(s), want);
  EXPECT_EQ(read_file(o.state_path).find("\nsa "), std::string::npos);
  // Nothing left the second time.
  auto again = b->remove_leftovers();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);
}

TEST(ShmBackend, LeftoversInAnotherDataplaneAreNotTouched) {
  const std::string inst = instance();
  TempDir dir;
  const ShmBackend::Options o = dir.options();
  {
    Server s(inst);
    ASSERT_TRUE(s.srv);
    auto b = attached(inst, o);
    ASSERT_TRUE(b);
    ASSERT_TRUE(b->install_child(spec(0x1001, 0x2002)));
  }
  Server s(inst);  // cygnet-dp restarted too: its tables are new
  ASSERT_TRUE(s.srv);
  auto b = attached(inst, o);
  ASSERT_TRUE(b);
  auto n = b->remove_leftovers();
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, 0u);
  EXPECT_TRUE(shapes(s).empty());
}

TEST(ShmBackend, DamagedStateFileIsAClearError) {
  const std::string inst = instance();
  Server s(inst);
  ASSERT_TRUE(s.srv);
  TempDir dir;
  const ShmBackend::Options o = dir.options();
  auto b = attached(inst, o);  // one client: a slot is freed only when the server polls
  ASSERT_TRUE(b);
  for (const char* text : {"something else\n", "cygnet-ike-state 1\nepoch zz\n", "cygnet-ike-state 1\nsa 1 up 1.2.3.4\n",
                           "cygnet-ike-state 1\npolicy out 10.0.0.0/8 10.1.0.0/16 6 0 65535 0 70000\n",
                           "cygnet-ike-state 1\nfrobnicate\n"}) {
    std::ofstream(o.state_path) << text;
    auto n = b->remove_leftovers();
    ASSERT_FALSE(n.ok()) << text;
    EXPECT_NE(n.error().message.find(o.state_path + ":"), std::string::npos) << n.error().message;
  }
  EXPECT_TRUE(shapes(s).empty());
}

}  // namespace
}  // namespace cygnet::ike
