// ShmServer and ShmClient together: the protocol end to end over a real
// POSIX shm segment (docs/shm.md).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include "shared/shm/client.h"
#include "shared/shm/server.h"
#include "shared/shm/test_util.h"

namespace cygnet::shm {
namespace {

using namespace std::chrono_literals;
using testing::FakeHandler;
using testing::make_policy;
using testing::make_sa;
using testing::unique_instance;

constexpr auto kWait = 2000ms;

template <typename T>
std::atomic_ref<T> at(T& w) {
  return std::atomic_ref<T>(w);
}

ShmServer::Options opts(std::uint32_t cmd = kDefaultRingSlots, std::uint32_t evt = kDefaultRingSlots,
                        std::uint32_t clients = kDefaultClients) {
  ShmServer::Options o;
  o.geometry = Geometry{cmd, evt, clients};
  o.liveness_interval = 1h;  // tests call check_clients() when they mean it
  return o;
}

std::unique_ptr<ShmServer> make_server(const std::string& inst, const ShmServer::Options& o = opts()) {
  auto s = ShmServer::create(inst, o);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
  return s.ok() ? std::move(*s) : nullptr;
}

std::unique_ptr<ShmClient> in_process(const ShmServer& s, ShmClient::Options o = {}) {
  auto c = ShmClient::attach_in_process(s, o);
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
  return c.ok() ? std::move(*c) : nullptr;
}

ClientControl& ctl(const ShmServer& s, unsigned slot) {
  return *reinterpret_cast<ClientControl*>(s.segment_bytes().data() + s.geometry().client_offset(slot));
}
SegmentHeader& hdr(const ShmServer& s) { return *reinterpret_cast<SegmentHeader*>(s.segment_bytes().data()); }

// Sends, lets the server poll once, returns the ack.
Ack exchange(ShmServer& s, FakeHandler& h, ShmClient& c, const CommandBody& body) {
  auto id = c.send(body);
  EXPECT_TRUE(id.ok()) << (id.ok() ? "" : id.error().message);
  if (!id.ok()) return Ack{0, 0, Status::internal, 0, "send failed"};
  s.poll(h);
  auto a = c.wait_ack(*id, kWait);
  EXPECT_TRUE(a.ok()) << (a.ok() ? "" : a.error().message);
  return a.ok() ? *a : Ack{0, 0, Status::internal, 0, "no ack"};
}

std::vector<Event> drain_events(ShmClient& c) {
  std::vector<Event> v;
  for (;;) {
    auto e = c.next_event();
    EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
    if (!e.ok() || !e->has_value()) return v;
    v.push_back(std::move(**e));
  }
}

std::vector<Ack> acks_of(const std::vector<Event>& evs) {
  std::vector<Ack> v;
  for (const auto& e : evs)
    if (const auto* a = std::get_if<Ack>(&e.body)) v.push_back(*a);
  return v;
}

bool segment_exists(const std::string& inst) {
  struct stat st {};
  return ::stat(("/dev/shm/cygnet-dp." + inst).c_str(), &st) == 0;
}

// ---- attach, names, layout checks ------------------------------------------------

TEST(ShmAttach, NoServerIsAClearError) {
  const std::string inst = unique_instance();
  auto c = ShmClient::attach(inst);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().message, "cygnet-dp is not running (no /dev/shm/cygnet-dp." + inst + ")");
}

TEST(ShmAttach, InstanceNamesAreValidated) {
  for (std::string bad : {std::string(""), std::string("a/b"), std::string("x.lock"), std::string(65, 'a'),
                          std::string("sp ace"), std::string("nul\0x", 5)}) {
    auto s = ShmServer::create(bad);
    EXPECT_FALSE(s.ok()) << bad;
    auto c = ShmClient::attach(bad);
    EXPECT_FALSE(c.ok()) << bad;
  }
  EXPECT_TRUE(segment_name(std::string(64, 'a')).ok());
  EXPECT_FALSE(validate_shm_name("/a/b").ok());
  EXPECT_FALSE(validate_shm_name("noslash").ok());
  EXPECT_FALSE(validate_shm_name("/").ok());
  EXPECT_TRUE(validate_shm_name("/cygnet-dp.x").ok());
}

TEST(ShmAttach, BadGeometryIsRefusedByTheServer) {
  EXPECT_FALSE(ShmServer::create(unique_instance(), opts(3)).ok());
  EXPECT_FALSE(ShmServer::create(unique_instance(), opts(256, 8192)).ok());
  EXPECT_FALSE(ShmServer::create(unique_instance(), opts(256, 256, 0)).ok());
  EXPECT_FALSE(ShmServer::create(unique_instance(), opts(256, 256, 17)).ok());
}

TEST(ShmAttach, SegmentIsPrivateAndHeaderDescribesIt) {
  const std::string inst = unique_instance();
  auto s = make_server(inst, opts(64, 128, 3));
  ASSERT_TRUE(s);
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/cygnet-dp." + inst).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const Geometry g{64, 128, 3};
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), g.segment_size());
  const SegmentHeader& h = hdr(*s);
  EXPECT_EQ(std::memcmp(&h, "CYGNTSHM", 8), 0);
  EXPECT_EQ(h.cmd_slots, 64u);
  EXPECT_EQ(h.evt_slots, 128u);
  EXPECT_EQ(h.max_clients, 3u);
  EXPECT_EQ(h.server_pid, ::getpid());
  EXPECT_NE(h.epoch, 0u);
  EXPECT_EQ(h.epoch, s->epoch());
  EXPECT_EQ(h.state, static_cast<std::uint32_t>(ServerState::ready));
  s->close();
  EXPECT_FALSE(segment_exists(inst)) << "close() unlinks the segment";
  struct stat lst {};
  EXPECT_NE(::stat(("/dev/shm/cygnet-dp." + inst + ".lock").c_str(), &lst), 0) << "and its lock";
}

TEST(ShmAttach, VersionMagicAndSizeMismatchesAreClearErrors) {
  const std::string inst = unique_instance();
  auto s = make_server(inst);
  ASSERT_TRUE(s);
  SegmentHeader& h = hdr(*s);
  auto attach_error = [&] {
    auto c = ShmClient::attach(inst);
    return c.ok() ? std::string("attached") : c.error().message;
  };
  h.version_major = 2;
  EXPECT_NE(attach_error().find("protocol version mismatch: cygnet-dp speaks 2.0, this client speaks 1.0"),
            std::string::npos)
      << attach_error();
  h.version_major = kVersionMajor;

  h.magic ^= 1;
  EXPECT_NE(attach_error().find("is not a cygnet-dp segment (magic"), std::string::npos) << attach_error();
  h.magic ^= 1;

  h.slot_size = 512;
  EXPECT_NE(attach_error().find("slot size is 512, expected 1024"), std::string::npos) << attach_error();
  h.slot_size = kSlotSize;

  h.cmd_slots = 512;
  EXPECT_NE(attach_error().find("client stride"), std::string::npos) << attach_error();
  h.cmd_slots = 3;
  EXPECT_NE(attach_error().find("not a power of two"), std::string::npos) << attach_error();
  h.cmd_slots = kDefaultRingSlots;

  h.max_clients = 1000;
  EXPECT_NE(attach_error().find("client slots"), std::string::npos) << attach_error();
  h.max_clients = kDefaultClients;

  h.segment_size += 4096;
  EXPECT_NE(attach_error().find("segment size in the header"), std::string::npos) << attach_error();
  h.segment_size -= 4096;

  h.state = static_cast<std::uint32_t>(ServerState::starting);
  EXPECT_NE(attach_error().find("cygnet-dp is starting"), std::string::npos) << attach_error();
  h.state = 77;
  EXPECT_NE(attach_error().find("unknown server state 77"), std::string::npos) << attach_error();
  h.state = static_cast<std::uint32_t>(ServerState::ready);

  EXPECT_EQ(attach_error(), "attached");
}

TEST(ShmAttach, ForeignShmObjectsAreRefused) {
  const std::string inst = unique_instance();
  const std::string name = "/cygnet-dp." + inst;
  for (std::size_t size : {std::size_t{100}, std::size_t{8192}}) {
    int fd = ::shm_open(name.c_str(), O_CREAT | O_RDWR | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
    std::vector<std::uint8_t> junk(size, 0x5a);
    ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), 0), static_cast<ssize_t>(size));
    ::close(fd);
    auto c = ShmClient::attach(inst);
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.error().message.find(size < kHeaderSize ? "smaller than a segment header" : "not a cygnet-dp segment"),
              std::string::npos)
        << c.error().message;
    ::shm_unlink(name.c_str());
  }
}

TEST(ShmAttach, AllSlotsTakenIsAClearError) {
  auto s = make_server(unique_instance(), opts(16, 16, 2));
  ASSERT_TRUE(s);
  auto a = in_process(*s);
  auto b = in_process(*s);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->slot(), 0u);
  EXPECT_EQ(b->slot(), 1u);
  auto c = ShmClient::attach_in_process(*s, {});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("all 2 client slots"), std::string::npos) << c.error().message;
}

TEST(ShmAttach, SecondServerForALiveInstanceIsRefused) {
  const std::string inst = unique_instance();
  auto a = make_server(inst);
  ASSERT_TRUE(a);
  auto b = ShmServer::create(inst);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("is already running (pid " + std::to_string(::getpid()) + ")"),
            std::string::npos)
      << b.error().message;
  EXPECT_TRUE(segment_exists(inst)) << "the live server's segment stays";
  auto c = in_process(*a);
  EXPECT_TRUE(c);
}

// ---- commands ------------------------------------------------------------------------

TEST(ShmServer, HelloIsAckedWithTheEpoch) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s, {"cygnet-ike", true, 1024});
  ASSERT_TRUE(c);
  EXPECT_EQ(s->poll(h), 1u);
  auto a = c->wait_ack(1, kWait);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->status, Status::ok);
  EXPECT_EQ(a->value, s->epoch());
  EXPECT_EQ(c->epoch(), s->epoch());
  ASSERT_EQ(s->clients().size(), 1u);
  EXPECT_EQ(s->clients().at(0).name, "cygnet-ike");
  EXPECT_TRUE(s->clients().at(0).subscribed);
  EXPECT_EQ(s->clients().at(0).pid, ::getpid());
}

TEST(ShmServer, EverySingleCommandIsAppliedAndAcked) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  const SaKey key{0x2001, Direction::in, IpAddress::v4(0xc6336401)};
  for (const CommandBody& b : std::vector<CommandBody>{SaAdd{make_sa(0x2001)}, SaUpdate{make_sa(0x2001)},
                                                       SaDelete{key}, PolicyAdd{make_policy(5)},
                                                       PolicyDelete{make_policy(5)}}) {
    const Ack a = exchange(*s, h, *c, b);
    EXPECT_EQ(a.status, Status::ok) << a.text;
    EXPECT_EQ(a.value, 1u);
    EXPECT_EQ(a.cmd_type, static_cast<std::uint16_t>(command_type(b)));
  }
  EXPECT_EQ(h.applied.size(), 5u);
  EXPECT_EQ(h.unvalidated, 0u);
  EXPECT_EQ(h.last_sa.spi, 0x2001u);

  h.next = Verdict{Status::exists, "SA 0x2001 exists"};
  const Ack a = exchange(*s, h, *c, SaAdd{make_sa(0x2001)});
  EXPECT_EQ(a.status, Status::exists);
  EXPECT_EQ(a.text, "SA 0x2001 exists");
}

TEST(ShmServer, FloodOf100kCommandsThroughTheRingWithAServerThread) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  std::atomic<bool> stop{false};
  std::thread server([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      if (s->poll(h, 64) == 0) std::this_thread::yield();
    }
  });

  constexpr std::uint64_t kCount = 100000;
  std::vector<std::uint64_t> sent;
  sent.reserve(kCount);
  std::uint64_t acks = 0, last_ack = 0, bad = 0;
  auto read_acks = [&] {
    for (;;) {
      auto e = c->next_event();
      if (!e.ok() || !e->has_value()) return;
      if (const auto* a = std::get_if<Ack>(&(**e).body)) {
        if (a->cmd_id <= last_ack || a->status != Status::ok) ++bad;
        last_ack = a->cmd_id;
        ++acks;
      }
    }
  };
  const SaConfig base = make_sa(0x10000);
  const SaAdd add{base};
  std::size_t fulls = 0;
  for (std::uint64_t i = 0; i < kCount;) {
    auto id = i % 2 == 0 ? c->send(add) : c->send(PolicyAdd{make_policy(static_cast<std::uint32_t>(i))});
    if (id.ok()) {
      sent.push_back(*id);
      ++i;
    } else {
      ASSERT_EQ(c->last_failure(), ShmClient::Failure::full) << id.error().message;
      ++fulls;
      read_acks();
      std::this_thread::yield();
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (acks < kCount + 1 && std::chrono::steady_clock::now() < deadline) {
    read_acks();
    std::this_thread::yield();
  }
  stop = true;
  server.join();
  EXPECT_EQ(acks, kCount + 1);  // + the hello
  EXPECT_EQ(bad, 0u);
  ASSERT_EQ(h.applied.size(), kCount);
  for (std::size_t i = 0; i < kCount; ++i) {
    ASSERT_EQ(h.applied.at(i).ids.size(), 1u);
    ASSERT_EQ(h.applied.at(i).ids.at(0), sent.at(i)) << "order preserved at " << i;
  }
  EXPECT_EQ(h.unvalidated, 0u);
  EXPECT_EQ(s->stats().commands, kCount + 1);
  std::printf("flood: %llu commands, ring full %zu times\n", static_cast<unsigned long long>(kCount), fulls);
}

TEST(ShmServer, FullRingIsAnErrorAndNothingIsLost) {
  auto s = make_server(unique_instance(), opts(8, 64));
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  // The hello takes one slot.
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 7; ++i) {
    auto id = c->send(PolicyAdd{make_policy(static_cast<std::uint32_t>(i))});
    ASSERT_TRUE(id.ok()) << id.error().message;
    ids.push_back(*id);
  }
  auto full = c->send(PolicyAdd{make_policy(99)});
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(c->last_failure(), ShmClient::Failure::full);
  EXPECT_NE(full.error().message.find("full"), std::string::npos);
  EXPECT_EQ(s->poll(h), 8u);
  auto again = c->send(PolicyAdd{make_policy(99)});
  ASSERT_TRUE(again.ok());
  ids.push_back(*again);
  s->poll(h);
  auto acks = acks_of(drain_events(*c));
  ASSERT_EQ(acks.size(), 9u);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(acks.at(i + 1).cmd_id, ids.at(i));
    EXPECT_EQ(acks.at(i + 1).status, Status::ok);
  }
  EXPECT_EQ(h.applied.size(), 8u);
}

TEST(ShmServer, FullEventRingHoldsBackCommandsInsteadOfLosingAcks) {
  auto s = make_server(unique_instance(), opts(64, 4));
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(c->send(PolicyAdd{make_policy(static_cast<std::uint32_t>(i))}).ok());
  }
  std::size_t acks = 0;
  for (int round = 0; round < 100 && acks < 21; ++round) {
    s->poll(h);
    acks += acks_of(drain_events(*c)).size();
  }
  EXPECT_EQ(acks, 21u);
  EXPECT_EQ(h.applied.size(), 20u);
}

// A message as the encoder makes it, then broken on purpose.
MsgBuf encoded(std::uint64_t id, const CommandBody& b) {
  MsgBuf m;
  EXPECT_TRUE(encode_command(id, b, m).ok());
  return m;
}

TEST(ShmServer, MalformedMessagesAreEachRejectedWithAStatus) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  s->poll(h);
  drain_events(*c);

  struct Case {
    const char* what;
    std::vector<std::uint8_t> bytes;
    Status want;
  };
  std::vector<Case> cases;
  auto add = [&](const char* what, MsgBuf m, auto mutate, Status want) {
    std::vector<std::uint8_t> b(m.data(), m.data() + m.size());
    mutate(b);
    cases.push_back(Case{what, std::move(b), want});
  };
  auto set16 = [](std::size_t off, std::uint16_t v) {
    return [=](std::vector<std::uint8_t>& b) { std::memcpy(b.data() + off, &v, 2); };
  };
  auto set32 = [](std::size_t off, std::uint32_t v) {
    return [=](std::vector<std::uint8_t>& b) { std::memcpy(b.data() + off, &v, 4); };
  };
  add("bad type", encoded(501, BatchCommit{}), set16(0, 0x0fff), Status::unknown_type);
  add("event type", encoded(502, BatchCommit{}), set16(0, 0x8003), Status::unknown_type);
  add("bad version", encoded(503, SaAdd{make_sa(0x3000)}), set16(2, 9), Status::bad_version);
  add("length too big", encoded(504, SaAdd{make_sa(0x3000)}), set32(4, 5000), Status::bad_length);
  add("length too small", encoded(505, SaAdd{make_sa(0x3000)}), set32(4, 3), Status::bad_length);
  add("truncated", encoded(506, SaAdd{make_sa(0x3000)}), set32(4, 200), Status::bad_length);
  // Bytes missing behind a header that claims them: a slot has no "end", so
  // the rest reads as zero, and zero keys and lifetimes fail validation.
  add("truncated bytes", encoded(507, SaAdd{make_sa(0x3000)}),
      [](std::vector<std::uint8_t>& b) { b.resize(100); }, Status::invalid);
  add("garbage cipher", encoded(508, SaAdd{make_sa(0x3000)}),
      [](std::vector<std::uint8_t>& b) { b.at(kMsgHeaderSize + offsetof(wire::Sa, cipher)) = 0xee; },
      Status::malformed);
  add("reserved SPI", encoded(509, SaAdd{make_sa(0x3000)}), set32(kMsgHeaderSize + offsetof(wire::Sa, spi), 17),
      Status::invalid);
  add("bad policy action", encoded(510, PolicyAdd{make_policy(1)}),
      [](std::vector<std::uint8_t>& b) { b.at(kMsgHeaderSize + offsetof(wire::Policy, action)) = 9; },
      Status::malformed);
  add("counters max 0", encoded(511, CountersQuery{}),
      set32(kMsgHeaderSize + offsetof(wire::CountersQuery, max), 0), Status::malformed);
  add("hello of another pid", encoded(512, Hello{static_cast<std::uint32_t>(::getpid()) + 1, 0, 1, 0, "x"}),
      [](std::vector<std::uint8_t>&) {}, Status::invalid);
  add("hello of version 2", encoded(513, Hello{static_cast<std::uint32_t>(::getpid()), 0, 2, 0, "x"}),
      [](std::vector<std::uint8_t>&) {}, Status::bad_version);
  add("one byte", encoded(514, BatchCommit{}), [](std::vector<std::uint8_t>& b) { b.resize(1); },
      Status::bad_length);

  for (const auto& k : cases) {
    auto id = c->send_raw(k.bytes);
    ASSERT_TRUE(id.ok()) << k.what << ": " << id.error().message;
    s->poll(h);
    auto acks = acks_of(drain_events(*c));
    ASSERT_EQ(acks.size(), 1u) << k.what;
    EXPECT_EQ(acks.at(0).status, k.want) << k.what << ": " << acks.at(0).text;
    EXPECT_FALSE(acks.at(0).text.empty()) << k.what;
    if (k.bytes.size() >= kMsgHeaderSize) {
      EXPECT_EQ(acks.at(0).cmd_id, *id) << k.what;
    }
  }
  EXPECT_EQ(h.calls, 0u) << "nothing malformed reaches the handler";
}

TEST(ShmServer, RandomGarbageIsAlwaysAckedNeverTrusted) {
  auto s = make_server(unique_instance(), opts(256, 256));
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  s->poll(h);
  drain_events(*c);
  const auto pid = static_cast<std::uint32_t>(::getpid());
  const std::vector<MsgBuf> seeds = {
      encoded(1, SaAdd{make_sa(0x4000)}),
      encoded(1, SaUpdate{make_sa(0x4001, CipherAlg::aes_cbc_128, IntegAlg::hmac_sha256_128)}),
      encoded(1, SaDelete{SaKey{0x4002, Direction::out, IpAddress::v4(9)}}),
      encoded(1, PolicyAdd{make_policy(3)}),
      encoded(1, PolicyDelete{make_policy(3)}),
      encoded(1, BatchBegin{}),
      encoded(1, BatchCommit{}),
      encoded(1, BatchAbort{}),
      encoded(1, CountersQuery{}),
      encoded(1, Hello{pid, 0, 1, 0, "fuzz"}),
  };
  std::mt19937_64 rng(20240601);
  std::multiset<std::uint64_t> want, got;
  std::size_t acked = 0;
  auto drain = [&] {
    for (const auto& a : acks_of(drain_events(*c))) {
      got.insert(a.cmd_id);
      ++acked;
      ASSERT_TRUE(status_valid(static_cast<std::uint16_t>(a.status)));
    }
  };
  constexpr int kMessages = 100000;
  std::array<std::uint8_t, kSlotSize> buf{};
  for (int n = 0; n < kMessages; ++n) {
    const MsgBuf& seed = seeds.at(static_cast<std::size_t>(rng() % seeds.size()));
    buf.fill(0);
    std::memcpy(buf.data(), seed.data(), seed.size());
    const std::uint64_t id = 1000 + static_cast<std::uint64_t>(n);
    std::memcpy(buf.data() + 8, &id, 8);
    const int flips = static_cast<int>(rng() % 5);  // 0: a valid message now and then
    for (int f = 0; f < flips; ++f) {
      const std::size_t span = (rng() % 10 == 0) ? kSlotSize : seed.size();
      std::size_t pos = static_cast<std::size_t>(rng() % span);
      if (pos >= 8 && pos < 16) pos = 16 + pos;  // keep the id, so each ack can be matched
      buf.at(pos) = static_cast<std::uint8_t>(rng());
    }
    std::size_t len = (rng() % 16 == 0) ? 1 + static_cast<std::size_t>(rng() % kSlotSize) : seed.size();
    if (len < kMsgHeaderSize) len = kMsgHeaderSize;
    for (;;) {
      auto r = c->send_raw(std::span<const std::uint8_t>(buf.data(), len));
      if (r.ok()) break;
      ASSERT_EQ(c->last_failure(), ShmClient::Failure::full) << r.error().message;
      s->poll(h);
      drain();
    }
    want.insert(id);
  }
  for (int i = 0; i < 1000 && acked < want.size(); ++i) {
    s->poll(h);
    drain();
  }
  EXPECT_EQ(acked, static_cast<std::size_t>(kMessages));
  EXPECT_TRUE(want == got) << "every message acked exactly once, by its id";
  EXPECT_EQ(h.unvalidated, 0u) << "the handler never saw an unvalidated SA or policy";
  EXPECT_GT(s->stats().rejected, static_cast<std::uint64_t>(kMessages / 2));
  EXPECT_EQ(s->stats().evicted, 0u);
}

// ---- hostile indices -------------------------------------------------------------------

TEST(ShmServer, HostileCommandProducerIndexEvictsTheClient) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  s->poll(h);
  at(ctl(*s, c->slot()).cmd_prod.value).store(1'000'000);  // far ahead of anything written
  s->poll(h);
  EXPECT_EQ(s->stats().evicted, 1u);
  EXPECT_FALSE(c->attached());
  auto r = c->send(BatchCommit{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(c->last_failure(), ShmClient::Failure::not_attached);
  ASSERT_EQ(h.gone.size(), 1u);
  EXPECT_NE(h.gone.at(0).find("corrupt"), std::string::npos) << h.gone.at(0);
  EXPECT_EQ(h.calls, 0u);
  // The slot was wiped and freed: a new client works in it.
  c.reset();
  auto d = in_process(*s);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->slot(), 0u);
  EXPECT_EQ(exchange(*s, h, *d, PolicyAdd{make_policy(1)}).status, Status::ok);
}

TEST(ShmServer, HostileEventConsumerIndexEvictsTheClient) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  s->poll(h);
  drain_events(*c);
  at(ctl(*s, c->slot()).evt_cons.value).store(12345);  // beyond what the server produced
  ASSERT_TRUE(c->send(PolicyAdd{make_policy(1)}).ok());
  s->poll(h);
  EXPECT_EQ(s->stats().evicted, 1u);
  EXPECT_FALSE(c->attached());
}

TEST(ShmClient, HostileServerIndicesAreErrorsNotCrashes) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  s->poll(h);
  ClientControl& k = ctl(*s, c->slot());
  at(k.evt_prod.value).store(999'999);
  auto e = c->next_event();
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.error().message.find("corrupt"), std::string::npos) << e.error().message;
  at(k.cmd_cons.value).store(77);  // the consumer is "ahead" of what we produced
  auto r = c->send(BatchCommit{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(c->last_failure(), ShmClient::Failure::corrupt);
}

TEST(ShmServer, GarbageOwnerWordsAreFreed) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  at(ctl(*s, 1).own.owner).store((1ULL << 32) | 0);                // pid 0: kill(0) would hit our group
  at(ctl(*s, 2).own.owner).store((1ULL << 32) | 0xffffffffULL);    // pid -1 as pid_t
  at(ctl(*s, 3).own.owner).store((1ULL << 32) | 0x80000000ULL);    // beyond pid_t
  s->check_clients(h);
  for (unsigned i = 1; i <= 3; ++i) {
    EXPECT_EQ(at(ctl(*s, i).own.owner).load(), 0u) << i;
  }
  ASSERT_EQ(h.gone.size(), 3u);
  EXPECT_NE(h.gone.at(0).find("not a process id"), std::string::npos) << h.gone.at(0);
}

// ---- batches -------------------------------------------------------------------------

TEST(ShmServer, BatchIsAppliedOnceAtCommit) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  EXPECT_EQ(exchange(*s, h, *c, BatchBegin{3}).status, Status::ok);
  for (std::uint32_t i = 0; i < 3; ++i) {
    const Ack a = exchange(*s, h, *c, SaAdd{make_sa(0x6000 + i)});
    EXPECT_EQ(a.status, Status::accepted);
    EXPECT_EQ(a.value, i + 1);
  }
  EXPECT_EQ(h.calls, 0u) << "nothing applied before the commit";
  const Ack commit = exchange(*s, h, *c, BatchCommit{});
  EXPECT_EQ(commit.status, Status::ok) << commit.text;
  EXPECT_EQ(commit.value, 3u);
  ASSERT_EQ(h.applied.size(), 1u);
  EXPECT_EQ(h.applied.at(0).ids.size(), 3u);
  EXPECT_EQ(exchange(*s, h, *c, BatchCommit{}).status, Status::no_batch);
  EXPECT_EQ(exchange(*s, h, *c, BatchAbort{}).status, Status::no_batch);
}

TEST(ShmServer, BatchAbortDiscards) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  exchange(*s, h, *c, BatchBegin{});
  exchange(*s, h, *c, SaAdd{make_sa(0x6100)});
  exchange(*s, h, *c, PolicyAdd{make_policy(1)});
  const Ack a = exchange(*s, h, *c, BatchAbort{});
  EXPECT_EQ(a.status, Status::ok);
  EXPECT_EQ(a.value, 2u);
  EXPECT_EQ(h.calls, 0u);
  EXPECT_EQ(exchange(*s, h, *c, SaAdd{make_sa(0x6100)}).status, Status::ok) << "back to single commands";
  EXPECT_EQ(h.applied.size(), 1u);
}

TEST(ShmServer, BatchOverTheLimitIsDiscardedWhole) {
  auto o = opts();
  o.max_batch = 4;
  auto s = make_server(unique_instance(), o);
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  exchange(*s, h, *c, BatchBegin{});
  for (std::uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(exchange(*s, h, *c, SaAdd{make_sa(0x6200 + i)}).status, Status::accepted);
  }
  EXPECT_EQ(exchange(*s, h, *c, SaAdd{make_sa(0x6204)}).status, Status::batch_too_big);
  EXPECT_EQ(exchange(*s, h, *c, SaAdd{make_sa(0x6205)}).status, Status::batch_aborted);
  const Ack commit = exchange(*s, h, *c, BatchCommit{});
  EXPECT_EQ(commit.status, Status::batch_too_big);
  EXPECT_NE(commit.text.find("nothing applied"), std::string::npos) << commit.text;
  EXPECT_EQ(h.calls, 0u);

  // Announced too big: refused at batch_begin, members and commit follow suit.
  EXPECT_EQ(exchange(*s, h, *c, BatchBegin{5}).status, Status::batch_too_big);
  EXPECT_EQ(exchange(*s, h, *c, SaAdd{make_sa(0x6206)}).status, Status::batch_aborted);
  EXPECT_EQ(exchange(*s, h, *c, BatchCommit{}).status, Status::batch_too_big);
  EXPECT_EQ(h.calls, 0u);
}

TEST(ShmServer, AnInvalidMemberDiscardsTheBatch) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  exchange(*s, h, *c, BatchBegin{});
  EXPECT_EQ(exchange(*s, h, *c, SaAdd{make_sa(0x6300)}).status, Status::accepted);
  EXPECT_EQ(exchange(*s, h, *c, SaAdd{make_sa(12)}).status, Status::invalid);
  EXPECT_EQ(exchange(*s, h, *c, SaAdd{make_sa(0x6301)}).status, Status::batch_aborted);
  const Ack commit = exchange(*s, h, *c, BatchCommit{});
  EXPECT_EQ(commit.status, Status::invalid);
  EXPECT_NE(commit.text.find("SPI 12 is reserved"), std::string::npos) << commit.text;
  EXPECT_EQ(h.calls, 0u);
}

TEST(ShmServer, HandlerRefusalOfABatchIsTheCommitsStatus) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  exchange(*s, h, *c, BatchBegin{});
  exchange(*s, h, *c, SaAdd{make_sa(0x6400)});
  h.next = Verdict{Status::full, "SAD is full"};
  const Ack commit = exchange(*s, h, *c, BatchCommit{});
  EXPECT_EQ(commit.status, Status::full);
  EXPECT_NE(commit.text.find("SAD is full"), std::string::npos) << commit.text;
  EXPECT_EQ(h.applied.size(), 0u);
}

TEST(ShmServer, NestedBeginAndReHelloDiscardTheOpenBatch) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  exchange(*s, h, *c, BatchBegin{});
  exchange(*s, h, *c, SaAdd{make_sa(0x6500)});
  EXPECT_EQ(exchange(*s, h, *c, BatchBegin{}).status, Status::in_batch);
  EXPECT_EQ(exchange(*s, h, *c, BatchCommit{}).status, Status::in_batch);
  EXPECT_EQ(h.calls, 0u);

  exchange(*s, h, *c, BatchBegin{});
  exchange(*s, h, *c, SaAdd{make_sa(0x6501)});
  const Ack hello = exchange(*s, h, *c, Hello{static_cast<std::uint32_t>(::getpid()), 0, 1, 0, "again"});
  EXPECT_EQ(hello.status, Status::ok);
  EXPECT_NE(hello.text.find("open batch of 1 commands was discarded"), std::string::npos) << hello.text;
  EXPECT_EQ(exchange(*s, h, *c, BatchCommit{}).status, Status::no_batch);
  EXPECT_EQ(h.calls, 0u);
}

TEST(ShmServer, CleanDetachMidBatchAppliesNothingAndFreesTheSlot) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(PolicyAdd{make_policy(1)}).ok());  // published before detaching: handled
  ASSERT_TRUE(c->batch_begin().ok());
  ASSERT_TRUE(c->sa_add(make_sa(0x6600)).ok());
  const unsigned slot = c->slot();
  c.reset();
  s->poll(h);
  EXPECT_EQ(h.applied.size(), 1u);
  EXPECT_EQ(h.applied_changes(), 1u);
  EXPECT_EQ(at(ctl(*s, slot).own.owner).load(), 0u);
  EXPECT_EQ(s->stats().batches_discarded, 1u);
  EXPECT_TRUE(s->clients().empty());
}

// fork() a client that claims a slot, opens a batch, sends SAs and dies.
pid_t fork_client(const std::string& inst, bool commit) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  int rc = 0;
  {
    auto c = ShmClient::attach(inst, {"doomed", false, 16});
    if (!c.ok()) ::_exit(2);
    if (!(*c)->batch_begin().ok()) rc = 3;
    for (std::uint32_t i = 0; i < 5 && rc == 0; ++i) {
      if (!(*c)->sa_add(make_sa(0x7000 + i)).ok()) rc = 4;
    }
    if (commit && rc == 0 && !(*c)->batch_commit().ok()) rc = 5;
    ::_exit(rc);  // no detach, no destructor: as if killed
  }
}

TEST(ShmServer, ClientDyingMidBatchAppliesNothingAndFreesTheSlot) {
  const std::string inst = unique_instance();
  auto s = make_server(inst);
  ASSERT_TRUE(s);
  FakeHandler h;
  const pid_t child = fork_client(inst, false);
  ASSERT_GT(child, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_NE(at(ctl(*s, 0).own.owner).load() & kOwnerPidMask, 0u) << "the child still owns slot 0";

  s->check_clients(h);
  EXPECT_EQ(h.calls, 0u) << "the half batch never reached the handler";
  EXPECT_EQ(s->stats().batches_discarded, 1u);
  EXPECT_EQ(at(ctl(*s, 0).own.owner).load(), 0u);
  ASSERT_EQ(h.gone.size(), 1u);
  EXPECT_NE(h.gone.at(0).find(std::to_string(child)), std::string::npos) << h.gone.at(0);
  // Unconsumed key material of the dead client is gone from the segment too.
  const auto seg = s->segment_bytes();
  const SecretKey k = make_sa(0x7000).cipher_key;
  EXPECT_EQ(std::search(seg.begin(), seg.end(), k.data(), k.data() + k.size()), seg.end());

  auto c = in_process(*s);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->slot(), 0u);
  EXPECT_EQ(exchange(*s, h, *c, SaAdd{make_sa(0x7100)}).status, Status::ok);
}

TEST(ShmServer, ClientDyingAfterCommitHasItsBatchApplied) {
  const std::string inst = unique_instance();
  auto s = make_server(inst);
  ASSERT_TRUE(s);
  FakeHandler h;
  const pid_t child = fork_client(inst, true);
  ASSERT_GT(child, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_EQ(WEXITSTATUS(status), 0);
  s->check_clients(h);
  ASSERT_EQ(h.applied.size(), 1u);
  EXPECT_EQ(h.applied.at(0).ids.size(), 5u);
  EXPECT_EQ(at(ctl(*s, 0).own.owner).load(), 0u);
}

TEST(ShmServer, ClientWithoutHeartbeatIsDropped) {
  auto o = opts();
  o.liveness_interval = 0ms;
  o.heartbeat_timeout = 250ms;
  auto s = make_server(unique_instance(), o);
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  for (int i = 0; i < 8; ++i) {
    s->poll(h);
    std::this_thread::sleep_for(20ms);
    c->heartbeat();
  }
  EXPECT_TRUE(c->attached());
  s->poll(h);  // sees the last heartbeat
  std::this_thread::sleep_for(500ms);
  s->poll(h);
  EXPECT_FALSE(c->attached());
  ASSERT_EQ(h.gone.size(), 1u);
  EXPECT_NE(h.gone.at(0).find("no heartbeat"), std::string::npos) << h.gone.at(0);
}

// ---- restart ---------------------------------------------------------------------------

TEST(ShmClient, ServerRestartIsSeenAndReattachWorks) {
  const std::string inst = unique_instance();
  auto s = make_server(inst);
  ASSERT_TRUE(s);
  FakeHandler h;
  auto ca = ShmClient::attach(inst);
  ASSERT_TRUE(ca.ok()) << ca.error().message;
  auto& c = *ca;
  EXPECT_EQ(exchange(*s, h, *c, PolicyAdd{make_policy(1)}).status, Status::ok);
  EXPECT_FALSE(c->server_restarted());
  const std::uint64_t old_epoch = c->epoch();

  s->close();  // what cygnet-dp does on SIGTERM
  EXPECT_FALSE(segment_exists(inst));
  EXPECT_TRUE(c->server_restarted());
  auto r = c->send(PolicyAdd{make_policy(2)});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(c->last_failure(), ShmClient::Failure::server_gone);
  auto no = c->reattach();
  ASSERT_FALSE(no.ok());
  EXPECT_NE(no.error().message.find("cygnet-dp is not running"), std::string::npos);

  auto s2 = make_server(inst);
  ASSERT_TRUE(s2);
  EXPECT_NE(s2->epoch(), old_epoch);
  auto ok = c->reattach();
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(c->epoch(), s2->epoch());
  EXPECT_FALSE(c->server_restarted());
  FakeHandler h2;
  EXPECT_EQ(exchange(*s2, h2, *c, PolicyAdd{make_policy(2)}).status, Status::ok);
  EXPECT_EQ(h2.applied.size(), 1u);
}

TEST(ShmClient, ServerReplacedUnderTheSameNameIsSeen) {
  const std::string inst = unique_instance();
  auto s = make_server(inst);
  ASSERT_TRUE(s);
  auto c = ShmClient::attach(inst);
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE((*c)->server_restarted());
  // A new segment under the name (as after a crash and restart) while the
  // old header still says ready.
  ASSERT_EQ(::shm_unlink(("/cygnet-dp." + inst).c_str()), 0);
  EXPECT_TRUE((*c)->server_restarted()) << "segment gone";
  int fd = ::shm_open(("/cygnet-dp." + inst).c_str(), O_CREAT | O_RDWR | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_TRUE((*c)->server_restarted()) << "another segment";
}

TEST(ShmServer, StaleSegmentOfADeadServerIsReplaced) {
  const std::string inst = unique_instance();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto s = ShmServer::create(inst);
    if (!s.ok()) ::_exit(2);
    ::_exit(0);  // dies holding the segment: no close()
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_EQ(WEXITSTATUS(status), 0);
  ASSERT_TRUE(segment_exists(inst));

  auto c = ShmClient::attach(inst);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("left by pid " + std::to_string(child) + ", which is gone"), std::string::npos)
      << c.error().message;

  auto s = make_server(inst);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->replaced_stale());
  EXPECT_EQ(hdr(*s).server_pid, ::getpid());
  auto c2 = ShmClient::attach(inst);
  EXPECT_TRUE(c2.ok());
}

// ---- keys, counters, events ----------------------------------------------------------------

TEST(ShmServer, KeyBytesAreWipedFromTheSlotOnceConsumed) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  SaConfig sa = make_sa(0x8000, CipherAlg::aes_cbc_256, IntegAlg::hmac_sha512_256, 0xc3);
  const SecretKey ck = sa.cipher_key;
  const SecretKey ik = sa.integ_key;
  const auto seg = s->segment_bytes();
  auto found = [&](const SecretKey& k) {
    return std::search(seg.begin(), seg.end(), k.data(), k.data() + k.size()) != seg.end();
  };
  ASSERT_TRUE(c->sa_add(sa).ok());
  EXPECT_TRUE(found(ck)) << "in the slot while it waits";
  EXPECT_TRUE(found(ik));
  s->poll(h);
  EXPECT_FALSE(found(ck)) << "wiped right after the server copied it out";
  EXPECT_FALSE(found(ik));
  EXPECT_TRUE(h.last_sa.cipher_key.equals(ck));
  EXPECT_TRUE(h.last_sa.integ_key.equals(ik));
  // The slot the command used is all zero.
  const std::uint8_t* slot = seg.data() + s->geometry().cmd_ring_offset(c->slot()) + kSlotSize;  // after the hello
  EXPECT_TRUE(std::all_of(slot, slot + kSlotSize, [](std::uint8_t b) { return b == 0; }));
}

TEST(ShmServer, CountersQueryStreamsRecordsThenTheAck) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  h.counter_records = 3;
  h.counter_next = 3;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  s->poll(h);
  drain_events(*c);
  CountersQuery q;
  q.max = 2;
  auto id = c->counters_query(q);
  ASSERT_TRUE(id.ok());
  s->poll(h);
  const auto evs = drain_events(*c);
  ASSERT_EQ(evs.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    const auto* k = std::get_if<Counters>(&evs.at(static_cast<std::size_t>(i)).body);
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(k->query_id, *id);
    EXPECT_EQ(k->c.n_drops, 3);
    EXPECT_EQ(k->c.packets, 10u + static_cast<std::uint64_t>(i));
  }
  const auto* a = std::get_if<Ack>(&evs.at(2).body);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->status, Status::ok);
  EXPECT_EQ(a->value, 3u) << "next cursor";
}

TEST(ShmServer, AsyncEventsGoToSubscribersAndLossesAreReported) {
  auto o = opts(16, 4);
  o.max_async_backlog = 2;
  auto s = make_server(unique_instance(), o);
  ASSERT_TRUE(s);
  FakeHandler h;
  auto ike = in_process(*s, {"cygnet-ike", true, 1024});
  auto ctl_client = in_process(*s, {"cygnetctl", false, 1024});
  ASSERT_TRUE(ike && ctl_client);
  s->poll(h);  // both hellos; their acks take one event slot each
  const SaKey key{0x9000, Direction::out, IpAddress::v4(0xc6336401)};
  for (std::uint32_t i = 0; i < 10; ++i) s->broadcast(SeqExhausted{key, i});
  auto first = drain_events(*ike);
  ASSERT_EQ(first.size(), 4u);  // hello ack + 3 (the ring holds 4)
  EXPECT_EQ(acks_of(first).size(), 1u);
  s->poll(h);
  auto second = drain_events(*ike);
  ASSERT_EQ(second.size(), 3u);  // 2 from the backlog, then the loss report
  EXPECT_EQ(std::get<SeqExhausted>(second.at(1).body).reqid, 4u);
  const auto* lost = std::get_if<EventsLost>(&second.at(2).body);
  ASSERT_NE(lost, nullptr);
  EXPECT_EQ(lost->count, 5u);
  EXPECT_EQ(s->stats().events_lost, 5u);
  EXPECT_EQ(drain_events(*ctl_client).size(), 1u) << "only its hello ack: not subscribed";

  // Every other event kind reaches a subscriber intact.
  s->broadcast(SaExpired{true, key, 1, ExpiryKind::packets, 10, 20});
  s->broadcast(Acquire{7, 3, FlowKey{IpAddress::v4(1), IpAddress::v4(2), kProtoTcp, 1, 2, false}});
  s->broadcast(NatMappingChanged{key, 1, IpAddress::v4(3), IpAddress::v4(4), 4500, 4501});
  s->poll(h);
  const auto more = drain_events(*ike);
  ASSERT_EQ(more.size(), 3u);
  EXPECT_TRUE(std::holds_alternative<SaExpired>(more.at(0).body));
  EXPECT_TRUE(std::holds_alternative<Acquire>(more.at(1).body));
  EXPECT_TRUE(std::holds_alternative<NatMappingChanged>(more.at(2).body));
}

TEST(ShmClient, SendAndWaitTimesOutWhenNobodyPolls) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  auto a = c->send_and_wait(BatchCommit{}, 30ms);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().message.find("no ack from cygnet-dp for command 2 within 30 ms"), std::string::npos)
      << a.error().message;
}

TEST(ShmClient, SendAndWaitWithAServerThread) {
  auto s = make_server(unique_instance());
  ASSERT_TRUE(s);
  FakeHandler h;
  auto c = in_process(*s);
  ASSERT_TRUE(c);
  std::atomic<bool> stop{false};
  std::thread server([&] {
    while (!stop) {
      s->poll(h);
      std::this_thread::sleep_for(100us);
    }
  });
  auto a = c->send_and_wait(SaAdd{make_sa(0xa000)}, 5s);
  stop = true;
  server.join();
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->status, Status::ok);
  auto hello = c->next_event();  // the hello ack was kept, not lost
  ASSERT_TRUE(hello.ok() && hello->has_value());
  EXPECT_EQ(std::get<Ack>((**hello).body).cmd_id, 1u);
}

}  // namespace
}  // namespace cygnet::shm
