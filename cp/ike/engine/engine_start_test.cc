// The engine's `start` actions (on load, trap + ACQUIRE), reloading a
// configuration, and INFORMATIONAL before IKE_AUTH.
#include <gtest/gtest.h>

#include <algorithm>

#include "cp/ike/engine/engine_harness.h"

namespace cygnet::ike {
namespace {

using namespace enginetest;

Connection with_start(Connection c, StartAction s) {
  c.start = s;
  return c;
}

std::size_t ike_sas_of(const Engine& e, std::string_view conn) {
  auto v = e.ike_sas();
  return static_cast<std::size_t>(std::count_if(v.begin(), v.end(), [&](const IkeSaInfo& s) { return s.connection == conn; }));
}

bool logged(const std::vector<std::string>& log, std::string_view what) {
  return std::any_of(log.begin(), log.end(), [&](const std::string& l) { return l.find(what) != std::string::npos; });
}

TEST(EngineStart, TrapPoliciesAtStartAndAcquireNegotiates) {
  Pair p(config(with_start(site(true), StartAction::trap)), config(site(false)));
  ASSERT_TRUE(p.a->start(p.now)) << p.logs();
  EXPECT_TRUE(p.wa.out.empty());  // a trap sends nothing by itself
  ASSERT_EQ(p.ba.traps.size(), 1u);
  const TrapSpec& t = p.ba.traps[0];
  EXPECT_EQ(t.connection, "to-b");
  ASSERT_EQ(t.policies.size(), 1u);
  const Policy& pol = t.policies[0];
  EXPECT_EQ(pol.dir, PolicyDir::out);
  EXPECT_EQ(pol.action, PolicyAction::trap);
  EXPECT_EQ(pol.reqid, t.reqid);
  EXPECT_EQ(pol.sel.src, pre("10.1.0.0/16"));
  EXPECT_EQ(pol.sel.dst, pre("10.2.0.0/16"));
  EXPECT_GT(pol.priority, Policy{}.priority);  // below the Child SA's protect policies
  ASSERT_EQ(p.a->traps().size(), 1u);
  EXPECT_EQ(p.a->traps()[0].reqid, t.reqid);

  // An ACQUIRE for someone else's reqid does nothing.
  p.a->on_acquire(t.reqid + 1000, p.now);
  EXPECT_TRUE(p.wa.out.empty());
  EXPECT_TRUE(logged(p.log_a, "no trapped connection")) << p.logs();

  // Two ACQUIREs (two flows) before the answer: one IKE SA.
  p.a->on_acquire(t.reqid, p.now);
  p.a->on_acquire(t.reqid, p.now);
  EXPECT_EQ(ike_sas_of(*p.a, "to-b"), 1u);
  p.pump();
  EXPECT_TRUE(established(*p.a)) << p.logs();
  EXPECT_TRUE(established(*p.b)) << p.logs();
  expect_children_match(p);
  // The Child SA's policies differ from the trap's (own reqid); the trap stays.
  EXPECT_NE(p.ba.installed[0].reqid, t.reqid);
  EXPECT_TRUE(p.ba.traps_removed.empty());
  // Established: a further ACQUIRE (the protect policy before its SA, or
  // the trap's) starts nothing.
  p.a->on_acquire(t.reqid, p.now);
  p.a->on_acquire(p.ba.installed[0].reqid, p.now);
  EXPECT_TRUE(p.wa.out.empty());
  EXPECT_EQ(ike_sas_of(*p.a, "to-b"), 1u);

  // Deleted: the next ACQUIRE negotiates again.
  ASSERT_TRUE(p.a->terminate("to-b", p.now));
  p.pump();
  EXPECT_EQ(ike_sas_of(*p.a, "to-b"), 0u) << p.logs();
  p.a->on_acquire(t.reqid, p.now);
  p.pump();
  EXPECT_TRUE(established(*p.a)) << p.logs();
  EXPECT_EQ(p.ba.installed.size(), 2u);
}

TEST(EngineStart, TrapRemovedWithTheEngine) {
  MockBackend b;
  enginetest::Wire w;
  {
    Engine e(config(with_start(site(true), StartAction::trap)), b, w);
    ASSERT_TRUE(e.start(1000));
    ASSERT_EQ(b.traps.size(), 1u);
  }
  ASSERT_EQ(b.traps_removed.size(), 1u);
  EXPECT_EQ(b.traps_removed[0].reqid, b.traps[0].reqid);
}

TEST(EngineStart, TrapRefusedByTheBackendIsAnError) {
  MockBackend b;
  b.refuse = true;
  enginetest::Wire w;
  std::vector<std::string> log;
  Engine e(config(with_start(site(true), StartAction::trap)), b, w, [&](std::string_view s) { log.emplace_back(s); });
  auto r = e.start(1000);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("1 connections could not be started"), std::string::npos);
  EXPECT_TRUE(logged(log, "trap policies: refused by the test"));
  EXPECT_TRUE(e.traps().empty());
}

TEST(EngineStart, StartOnLoadInitiatesAndNoneWaits) {
  IkeConfig ca = config(with_start(site(true), StartAction::start));
  Connection passive = site(true);
  passive.name = "passive";
  ca.connections.push_back(passive);
  Pair p(std::move(ca), config(site(false)));
  ASSERT_TRUE(p.a->start(p.now));
  EXPECT_EQ(p.wa.out.size(), 1u);  // one IKE_SA_INIT, for "to-b" only
  p.pump();
  EXPECT_EQ(ike_sas_of(*p.a, "to-b"), 1u);
  EXPECT_EQ(ike_sas_of(*p.a, "passive"), 0u);
  EXPECT_TRUE(established(*p.b)) << p.logs();
}

TEST(EngineReload, UnchangedKeepsChangedAndRemovedAreDeleted) {
  auto first_config = [] {
    IkeConfig c = config(site(true));
    Connection second = site(true);
    second.name = "second";
    c.connections.push_back(second);
    return c;
  };
  Pair p(first_config(), config(site(false)));
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  ASSERT_TRUE(established(*p.a)) << p.logs();
  const std::uint64_t spi = p.a->ike_sas()[0].spi_i;

  // Same configuration again: nothing changes, nothing is sent.
  {
    auto r = p.a->reload(first_config(), p.now);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r, "2 connections: 0 added, 0 changed, 0 removed, 2 unchanged");
    EXPECT_TRUE(p.wa.out.empty());
    ASSERT_TRUE(established(*p.a));
    EXPECT_EQ(p.a->ike_sas()[0].spi_i, spi);
    EXPECT_EQ(p.ba.removed.size(), 0u);
    // The IKE SA now points at the new copy: it still answers and deletes.
    ASSERT_TRUE(p.a->check_liveness("to-b", p.now));
    p.pump();
    EXPECT_TRUE(established(*p.a)) << p.logs();
  }

  // "to-b" changes (another ESP proposal), "second" goes, "third" (start
  // on load) comes.
  IkeConfig cb = config(site(true));
  cb.connections[0].esp = {EspSuite{EncrId::aes_gcm_16, 256, IntegId::none, false}};
  cb.connections[0].start = StartAction::start;
  Connection third = site(true);
  third.name = "third";
  third.start = StartAction::trap;
  cb.connections.push_back(third);
  auto r = p.a->reload(std::move(cb), p.now);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "2 connections: 1 added, 1 changed, 1 removed, 0 unchanged");
  EXPECT_EQ(p.ba.removed.size(), 1u);  // the old Child SA went at once
  EXPECT_EQ(p.ba.traps.size(), 1u);    // "third" trapped
  EXPECT_EQ(p.ba.traps[0].connection, "third");
  p.pump();
  // B saw the Delete of the old IKE SA, then the new one with the new
  // proposal (B allows only AES-GCM-128, so it refuses it).
  EXPECT_EQ(p.bb.removed.size(), 1u) << p.logs();
  EXPECT_TRUE(logged(p.log_a, "changed by the new configuration")) << p.logs();
  auto sas = p.a->ike_sas();
  EXPECT_TRUE(std::none_of(sas.begin(), sas.end(), [&](const IkeSaInfo& s) { return s.spi_i == spi; }));

  // Removing the trapped connection removes its trap.
  IkeConfig cc = config(site(true));
  r = p.a->reload(std::move(cc), p.now);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "1 connections: 0 added, 1 changed, 1 removed, 0 unchanged");
  ASSERT_EQ(p.ba.traps_removed.size(), 1u);
  EXPECT_EQ(p.ba.traps_removed[0].connection, "third");
}

TEST(EngineReload, NewPskIsUsed) {
  Pair p(config(site(true), "the old secret, long enough"), config(site(false), "the new secret, long enough"));
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  EXPECT_FALSE(established(*p.a));  // the PSKs differ
  ASSERT_TRUE(p.a->reload(config(site(true), "the new secret, long enough"), p.now));
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  EXPECT_TRUE(established(*p.a)) << p.logs();
  EXPECT_TRUE(established(*p.b)) << p.logs();
}

// INITIAL_CONTACT (2.4): a restarted initiator's first IKE_AUTH carries it,
// and the responder drops the IKE SA the initiator's earlier run left.
TEST(EngineRestart, InitialContactReplacesTheStaleIkeSa) {
  Pair p;
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  ASSERT_TRUE(established(*p.b)) << p.logs();
  // A second IKE SA from the same run: no INITIAL_CONTACT, B keeps both.
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  EXPECT_EQ(p.b->ike_sas().size(), 2u) << p.logs();
  EXPECT_EQ(p.bb.live(), 2u);
  // A restarts: its new engine knows nothing of the old SAs.
  p.a = std::make_unique<Engine>(config(site(true)), p.ba, p.wa);
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  ASSERT_EQ(p.b->ike_sas().size(), 1u) << p.logs();
  EXPECT_TRUE(established(*p.b));
  EXPECT_EQ(p.bb.live(), 1u);  // the stale Child SAs are gone from B's dataplane
  EXPECT_TRUE(logged(p.log_b, "replaced after INITIAL_CONTACT")) << p.logs();
}

// dpd: a liveness check after dpd_s without a word from the peer; a peer
// that stopped answering takes the IKE SA down, and a start = "start"
// connection comes back.
TEST(EngineDpd, LivenessOnATimerAndRestartWhenThePeerIsGone) {
  Connection ca = with_start(site(true), StartAction::start);
  ca.dpd_s = 30;
  Pair p(config(ca), config(site(false)));
  ASSERT_TRUE(p.a->start(p.now));
  p.pump();
  ASSERT_TRUE(established(*p.a)) << p.logs();
  p.now += 29'000;
  p.a->tick(p.now);
  EXPECT_TRUE(p.wa.out.empty());  // not yet
  p.now += 1'000;
  p.a->tick(p.now);
  ASSERT_EQ(p.wa.out.size(), 1u);
  EXPECT_EQ(header_of(p.wa.out.front())->exchange, ExchangeType::informational);
  p.pump();
  EXPECT_TRUE(p.wa.out.empty());
  EXPECT_TRUE(established(*p.a));
  p.a->tick(p.now + 10'000);  // the answer counts as word from the peer
  EXPECT_TRUE(p.wa.out.empty());

  // B goes silent: what A sends is thrown away.
  p.now += 30'000;
  for (int i = 0; i < 100 && established(*p.a); ++i) {
    p.a->tick(p.now);
    p.wa.out.clear();
    p.now += 1'000;
  }
  EXPECT_FALSE(established(*p.a));
  EXPECT_EQ(p.ba.live(), 0u);  // the Child SA went with the IKE SA
  EXPECT_TRUE(logged(p.log_a, "initiating again")) << p.logs();
  EXPECT_EQ(p.a->stats().timeouts, 1u);
  auto sas = p.a->ike_sas();
  ASSERT_EQ(sas.size(), 1u);  // the new attempt
  EXPECT_EQ(sas[0].state, IkeState::init_sent);
}

// Byte and packet limits go to both SAs of a Child SA, the soft one at
// 80-90 % of the hard one.
TEST(EngineLifetimes, ByteAndPacketLimitsReachTheDataplane) {
  Connection ca = site(true);
  ca.child_lifetime_bytes = 1'000'000;
  ca.child_lifetime_packets = 1000;
  Pair p(config(ca), config(site(false)));
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  ASSERT_EQ(p.ba.installed.size(), 1u) << p.logs();
  for (const SaConfig* s : {&p.ba.installed[0].inbound, &p.ba.installed[0].outbound}) {
    EXPECT_EQ(s->hard.bytes, 1'000'000u);
    EXPECT_EQ(s->hard.packets, 1000u);
    EXPECT_GE(s->soft.bytes, 800'000u);
    EXPECT_LE(s->soft.bytes, 900'000u);
    EXPECT_GE(s->soft.packets, 800u);
    EXPECT_LE(s->soft.packets, 900u);
    EXPECT_TRUE(validate_sa(*s)) << "cygnet-dp would refuse it";
  }
  // B has no limits configured: none.
  EXPECT_EQ(p.bb.installed[0].outbound.hard.bytes, 0u);
  EXPECT_EQ(p.bb.installed[0].outbound.soft.packets, 0u);
}

// NAT keepalives (RFC 3948 2.3): the side behind the NAT (here: the one that
// forces encapsulation, which plays it) sends 0xFF on UDP 4500 every
// nat_keepalive_s; the other side does not, and the receiver takes them
// without a word.
TEST(EngineNat, KeepalivesFromTheNatSide) {
  Connection ca = site(true);
  ca.force_encap = true;
  IkeConfig cfa = config(ca);
  cfa.nat_keepalive_s = 20;
  Pair p(std::move(cfa), config(site(false)));
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  ASSERT_TRUE(established(*p.a)) << p.logs();
  p.now += 19'000;
  p.a->tick(p.now);
  p.b->tick(p.now);
  EXPECT_TRUE(p.wa.out.empty());
  p.now += 1'000;
  p.a->tick(p.now);
  p.b->tick(p.now);
  ASSERT_EQ(p.wa.out.size(), 1u);
  const Packet k = p.wa.out.front();
  EXPECT_EQ(k.data, Bytes{0xff});
  EXPECT_EQ(k.from.port, 4500);
  EXPECT_EQ(k.to.port, 4500);
  EXPECT_TRUE(p.wb.out.empty());  // B is not behind a NAT
  const std::uint64_t dropped = p.b->stats().dropped;
  p.pump();
  EXPECT_TRUE(p.wb.out.empty());
  EXPECT_EQ(p.b->stats().dropped, dropped);  // taken, not counted as bad
  EXPECT_EQ(p.a->stats().keepalives_sent, 1u);
  p.now += 20'000;
  p.a->tick(p.now);
  EXPECT_EQ(p.wa.out.size(), 1u);
  EXPECT_EQ(p.a->stats().keepalives_sent, 2u);
}

// Adversarial: INFORMATIONAL on a half-open IKE SA (before IKE_AUTH), both
// in clear and as a tampered copy of the real IKE_AUTH. Dropped, counted;
// the real IKE_AUTH still completes.
TEST(EngineAdversarial, InformationalBeforeIkeAuthIsDropped) {
  Pair p;
  std::optional<Packet> auth;
  p.filter = [&](bool a_to_b, const Packet& pk) {
    auto h = header_of(pk);
    if (a_to_b && h && h->exchange == ExchangeType::ike_auth && !auth) {
      auth = pk;
      return false;
    }
    return true;
  };
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  ASSERT_TRUE(auth.has_value());
  auto h = header_of(*auth);
  ASSERT_TRUE(h);
  ASSERT_EQ(p.b->ike_sas().size(), 1u);
  EXPECT_EQ(p.b->ike_sas()[0].state, IkeState::init_done);

  // In clear: a Delete of the IKE SA without an SK payload.
  Message m;
  m.header = *h;
  m.header.exchange = ExchangeType::informational;
  DeletePayload d;
  d.protocol = Protocol::ike;
  d.spi_size = 0;
  m.payloads.push_back(d);
  auto clear = encode(m);
  ASSERT_TRUE(clear);
  const std::uint64_t dropped0 = p.b->stats().dropped;
  p.b->on_datagram(auth->to, auth->from, clear.value(), p.now);
  // The real IKE_AUTH with its exchange type changed to INFORMATIONAL (the
  // ICV covers the header).
  Bytes tampered = auth->data;
  const std::size_t off = (auth->to.port == 4500 ? 4 : 0) + 18;  // exchange type byte
  ASSERT_EQ(tampered.at(off), static_cast<std::uint8_t>(ExchangeType::ike_auth));
  tampered.at(off) = static_cast<std::uint8_t>(ExchangeType::informational);
  p.b->on_datagram(auth->to, auth->from, tampered, p.now);
  EXPECT_EQ(p.b->stats().dropped, dropped0 + 2);
  EXPECT_TRUE(p.wb.out.empty());  // no answer to either
  EXPECT_TRUE(logged(p.log_b, "dropped a datagram from 192.0.2.1:")) << p.logs();
  ASSERT_EQ(p.b->ike_sas().size(), 1u);
  EXPECT_EQ(p.b->ike_sas()[0].state, IkeState::init_done);

  // The genuine IKE_AUTH still works.
  p.b->on_datagram(auth->to, auth->from, auth->data, p.now);
  p.pump();
  EXPECT_TRUE(established(*p.a)) << p.logs();
  EXPECT_TRUE(established(*p.b)) << p.logs();
}

// Every ID type of the issue (RFC 7296 3.5) on both sides: IPv4, IPv6,
// FQDN, RFC822, and none configured (our address as ID_IPV4_ADDR).
TEST(EngineIds, EveryIdTypeBothWays) {
  struct Case {
    const char* a_id;
    const char* b_id;
    Identity::Type want_a;  // what B sees of A
  };
  const Case cases[] = {
      {"192.0.2.1", "192.0.2.2", Identity::Type::ipv4},
      {"2001:db8::a", "2001:db8::b", Identity::Type::ipv6},
      {"fqdn:a.example", "fqdn:b.example", Identity::Type::fqdn},
      {"alice@a.example", "bob@b.example", Identity::Type::rfc822},
      {"", "", Identity::Type::ipv4},  // none: the address
  };
  for (const Case& c : cases) {
    Connection ca = site(true), cb = site(false);
    ca.local_id = *Identity::parse(c.a_id);
    cb.remote_id = *Identity::parse(c.a_id);
    cb.local_id = *Identity::parse(c.b_id);
    ca.remote_id = *Identity::parse(c.b_id);
    Pair p(config(ca), config(cb));
    ASSERT_TRUE(p.a->initiate("to-b", p.now));
    p.pump();
    ASSERT_TRUE(established(*p.a)) << c.a_id << "\n" << p.logs();
    ASSERT_TRUE(established(*p.b)) << c.a_id << "\n" << p.logs();
    const Identity seen = p.b->ike_sas()[0].peer_id;
    EXPECT_EQ(seen.type, c.want_a) << c.a_id;
    if (*c.a_id != 0) EXPECT_EQ(seen, *Identity::parse(c.a_id)) << c.a_id;
    else EXPECT_EQ(seen.value, "192.0.2.1");
  }
  // The same text as another type is another identity: refused.
  Connection ca = site(true), cb = site(false);
  ca.local_id = *Identity::parse("alice@a.example");
  cb.remote_id = Identity{Identity::Type::fqdn, "alice@a.example"};
  Pair p(config(ca), config(cb));
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  EXPECT_FALSE(established(*p.b)) << p.logs();
  EXPECT_TRUE(p.bb.installed.empty());
}

// A flood of garbage is counted in full and logged once a second.
TEST(EngineAdversarial, DropsAreLoggedAtMostOnceASecond) {
  Pair p;
  const Endpoint to{ip("192.0.2.2"), 500}, from{ip("203.0.113.9"), 500};
  const Bytes junk(10, 0x5a);  // shorter than an IKE header
  for (int i = 0; i < 100; ++i) p.b->on_datagram(to, from, junk, p.now);
  EXPECT_EQ(p.b->stats().dropped, 100u);
  auto lines = [&] {
    return std::count_if(p.log_b.begin(), p.log_b.end(),
                         [](const std::string& l) { return l.find("dropped a datagram from 203.0.113.9") != std::string::npos; });
  };
  EXPECT_EQ(lines(), 1) << p.logs();
  p.now += 1000;
  p.b->on_datagram(to, from, junk, p.now);
  EXPECT_EQ(lines(), 2) << p.logs();
  EXPECT_TRUE(logged(p.log_b, "(and 99 more in the last second, not logged)")) << p.logs();
  EXPECT_TRUE(p.wb.out.empty());
}

}  // namespace
}  // namespace cygnet::ike
