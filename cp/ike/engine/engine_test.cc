// Two engines, a mocked network and mocked backends, driven message by
// message (issue 6: "in-process tests").
#include "cp/ike/engine/engine.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "cp/ike/engine/engine_harness.h"

namespace cygnet::ike {
namespace {

using namespace enginetest;


TEST(Engine, EstablishesIkeAndChildSa) {
  Pair p;
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  EXPECT_EQ(p.pump(), 4);  // IKE_SA_INIT and IKE_AUTH, request and response
  EXPECT_TRUE(established(*p.a)) << p.logs();
  EXPECT_TRUE(established(*p.b)) << p.logs();
  expect_children_match(p);
  const ChildSaSpec& a = p.ba.installed[0];
  EXPECT_EQ(a.outbound.src, ip("192.0.2.1"));
  EXPECT_EQ(a.outbound.dst, ip("192.0.2.2"));
  EXPECT_EQ(a.outbound.cipher, CipherAlg::aes_gcm16_128);
  EXPECT_FALSE(a.outbound.encap.enabled);
  // Policies: out 10.1/16 -> 10.2/16 and in 10.2/16 -> 10.1/16.
  ASSERT_EQ(a.policies.size(), 2u);
  EXPECT_EQ(a.policies[0].dir, PolicyDir::out);
  EXPECT_EQ(a.policies[0].sel.src.to_string(), "10.1.0.0/16");
  EXPECT_EQ(a.policies[0].sel.dst.to_string(), "10.2.0.0/16");
  EXPECT_EQ(a.policies[1].dir, PolicyDir::in);
  EXPECT_EQ(a.policies[1].sel.src.to_string(), "10.2.0.0/16");
  EXPECT_EQ(a.policies[0].reqid, a.reqid);
  auto sas = p.b->ike_sas();
  ASSERT_EQ(sas.size(), 1u);
  EXPECT_EQ(sas[0].peer_id.to_string(), "fqdn:a.example");
  ASSERT_EQ(sas[0].children.size(), 1u);
  EXPECT_EQ(sas[0].children[0].spi_in, p.bb.installed[0].inbound.spi);
  EXPECT_EQ(p.b->half_open(), 0u);
  EXPECT_EQ(p.a->stats().ike_established, 1u);
}

struct Combo {
  IkeSuite ike;
  EspSuite esp;
};

// Every IKE and ESP transform we offer, in both roles.
TEST(Engine, EveryProposalCombinationBothRoles) {
  const IkeSuite ikes[] = {
      {EncrId::aes_gcm_16, 128, IntegId::none, PrfId::hmac_sha2_256, KeGroup::curve25519},
      {EncrId::aes_gcm_16, 256, IntegId::none, PrfId::hmac_sha2_384, KeGroup::ecp384},
      {EncrId::chacha20_poly1305, 256, IntegId::none, PrfId::hmac_sha2_512, KeGroup::ecp256},
      {EncrId::aes_cbc, 128, IntegId::hmac_sha2_256_128, PrfId::hmac_sha2_256, KeGroup::modp2048},
      {EncrId::aes_cbc, 256, IntegId::hmac_sha2_512_256, PrfId::hmac_sha2_512, KeGroup::ecp521},
      {EncrId::aes_cbc, 256, IntegId::hmac_sha2_384_192, PrfId::hmac_sha2_384, KeGroup::curve25519},
  };
  const EspSuite esps[] = {
      {EncrId::aes_gcm_16, 128, IntegId::none, false},     {EncrId::aes_gcm_16, 256, IntegId::none, true},
      {EncrId::chacha20_poly1305, 256, IntegId::none, false}, {EncrId::aes_cbc, 128, IntegId::hmac_sha2_256_128, false},
      {EncrId::aes_cbc, 256, IntegId::hmac_sha2_384_192, true}, {EncrId::aes_cbc, 256, IntegId::hmac_sha2_512_256, false},
  };
  int runs = 0;
  for (std::size_t i = 0; i < std::size(ikes); ++i) {
    for (std::size_t j = 0; j < std::size(esps); ++j) {
      if (ikes[i].group == KeGroup::modp2048 && j > 1) continue;  // MODP is slow; two ESP suites are enough
      for (bool a_initiates : {true, false}) {
        SCOPED_TRACE(to_string(ikes[i]) + " + " + to_string(esps[j]) + (a_initiates ? " A->B" : " B->A"));
        Connection ca = site(true), cb = site(false);
        // The responder offers more than the initiator; the choice must be the initiator's one.
        ca.ike = {ikes[i]};
        ca.esp = {esps[j]};
        cb.ike = {ikes[(i + 1) % std::size(ikes)], ikes[i]};
        cb.esp = {esps[(j + 1) % std::size(esps)], esps[j]};
        Pair p(config(ca), config(cb));
        Engine& init = a_initiates ? *p.a : *p.b;
        ASSERT_TRUE(init.initiate(a_initiates ? "to-b" : "to-a", p.now));
        p.pump();
        ASSERT_TRUE(established(*p.a)) << p.logs();
        ASSERT_TRUE(established(*p.b)) << p.logs();
        expect_children_match(p);
        auto sas = p.a->ike_sas();
        ASSERT_TRUE(sas[0].suite);
        EXPECT_EQ(*sas[0].suite, ikes[i]);
        ASSERT_EQ(sas[0].children.size(), 1u);
        EXPECT_EQ(sas[0].children[0].suite, esps[j]);
        EXPECT_EQ(p.ba.installed[0].outbound.esn, esps[j].esn);
        ++runs;
      }
    }
  }
  EXPECT_GE(runs, 50);
}

TEST(Engine, NarrowsTrafficSelectors) {
  Connection ca = site(true), cb = site(false);
  ca.remote_ts = {ts("10.0.0.0/8")};
  cb.local_ts = {ts("10.2.1.0/24"), ts("10.2.7.0/24")};
  Pair p(config(ca), config(cb));
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  expect_children_match(p);
  auto sas = p.a->ike_sas();
  ASSERT_EQ(sas[0].children.size(), 1u);
  const auto& rts = sas[0].children[0].remote_ts;
  ASSERT_EQ(rts.size(), 2u);
  EXPECT_EQ(to_string(rts[0]), "10.2.1.0/24");
  EXPECT_EQ(to_string(rts[1]), "10.2.7.0/24");
  // One outbound and one inbound policy per (local, remote) pair.
  EXPECT_EQ(p.ba.installed[0].policies.size(), 4u);
  EXPECT_EQ(p.bb.installed[0].policies.size(), 4u);
}

TEST(Engine, DisjointSelectorsGiveTsUnacceptable) {
  Connection ca = site(true), cb = site(false);
  ca.remote_ts = {ts("10.9.0.0/16")};
  Pair p(config(ca), config(cb));
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  EXPECT_TRUE(established(*p.a));  // the IKE SA stands (RFC 7296 2.21.3)
  EXPECT_TRUE(established(*p.b));
  EXPECT_EQ(p.ba.installed.size(), 0u);
  EXPECT_EQ(p.bb.installed.size(), 0u);
  EXPECT_EQ(p.b->stats().ts_unacceptable, 1u);
  EXPECT_EQ(p.a->stats().ts_unacceptable, 1u);
}

TEST(Engine, NoCommonProposal) {
  Connection ca = site(true), cb = site(false);
  cb.ike = {IkeSuite{EncrId::aes_cbc, 256, IntegId::hmac_sha2_256_128, PrfId::hmac_sha2_256, KeGroup::ecp256}};
  Pair p(config(ca), config(cb));
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  EXPECT_EQ(p.pump(), 2);
  EXPECT_TRUE(p.a->ike_sas().empty());
  EXPECT_TRUE(p.b->ike_sas().empty());
  EXPECT_EQ(p.b->stats().no_proposal_sent, 1u);
}

TEST(Engine, InvalidKePayloadRetryWithTheGroupThePeerWants) {
  Connection ca = site(true), cb = site(false);
  ca.ike = {IkeSuite{EncrId::aes_gcm_16, 128, IntegId::none, PrfId::hmac_sha2_256, KeGroup::curve25519},
            IkeSuite{EncrId::aes_gcm_16, 128, IntegId::none, PrfId::hmac_sha2_256, KeGroup::ecp256}};
  cb.ike = {IkeSuite{EncrId::aes_gcm_16, 128, IntegId::none, PrfId::hmac_sha2_256, KeGroup::ecp256}};
  Pair p(config(ca), config(cb));
  std::vector<std::uint16_t> ke_groups;
  p.filter = [&](bool a_to_b, const Packet& pk) {
    if (a_to_b) {
      auto m = decode(pk.data);
      if (m && m->header.exchange == ExchangeType::ike_sa_init) ke_groups.push_back(find_payload<KePayload>(m.value())->group);
    }
    return true;
  };
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  EXPECT_TRUE(established(*p.a)) << p.logs();
  EXPECT_EQ(ke_groups, (std::vector<std::uint16_t>{31, 19}));
  EXPECT_EQ(p.b->stats().invalid_ke_sent, 1u);
  EXPECT_EQ(p.a->ike_sas()[0].suite->group, KeGroup::ecp256);
  expect_children_match(p);
}

TEST(Engine, CookieAboveTheHalfOpenThreshold) {
  IkeConfig cb = config(site(false));
  cb.cookie_threshold = 0;  // always ask
  Pair p(config(site(true)), std::move(cb));
  int inits = 0;
  bool first_is_cookie = false;
  p.filter = [&](bool a_to_b, const Packet& pk) {
    auto m = decode(pk.data);
    if (a_to_b && m && m->header.exchange == ExchangeType::ike_sa_init && ++inits == 2) {
      const auto* n = std::get_if<NotifyPayload>(&m->payloads[0]);
      first_is_cookie = n != nullptr && n->type == NotifyType::cookie;
    }
    return true;
  };
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  EXPECT_TRUE(established(*p.a)) << p.logs();
  EXPECT_TRUE(established(*p.b));
  EXPECT_EQ(p.b->stats().cookies_sent, 1u);
  EXPECT_EQ(inits, 2);
  EXPECT_TRUE(first_is_cookie);  // RFC 7296 2.6: the COOKIE notify comes first
}

TEST(Engine, WrongPskFailsOnBothSidesAndInstallsNothing) {
  Pair p(config(site(true), "the initiator's secret"), config(site(false), "the responder's secret"));
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  EXPECT_TRUE(p.a->ike_sas().empty()) << p.logs();
  EXPECT_TRUE(p.b->ike_sas().empty());
  EXPECT_EQ(p.a->stats().auth_failed, 1u);
  EXPECT_EQ(p.b->stats().auth_failed, 1u);
  EXPECT_TRUE(p.ba.installed.empty());
  EXPECT_TRUE(p.bb.installed.empty());
  EXPECT_EQ(p.b->half_open(), 0u);
  bool logged = false;
  for (const auto& l : p.log_a) logged |= l.find("AUTHENTICATION_FAILED") != std::string::npos;
  EXPECT_TRUE(logged) << p.logs();
}

TEST(Engine, WrongPeerIdentityIsRefused) {
  Connection cb = site(false);
  cb.remote_id = *Identity::parse("fqdn:someone-else.example");
  Pair p(config(site(true)), config(cb));
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  EXPECT_TRUE(p.b->ike_sas().empty());
  EXPECT_TRUE(p.bb.installed.empty());
  EXPECT_EQ(p.a->stats().auth_failed, 1u);
}

TEST(Engine, LostRequestIsRetransmittedWithBackoff) {
  Pair p;
  int auth_requests = 0;
  p.filter = [&](bool a_to_b, const Packet& pk) {
    auto h = header_of(pk);
    if (a_to_b && h && h->exchange == ExchangeType::ike_auth) return ++auth_requests > 2;  // lose two
    return true;
  };
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  EXPECT_FALSE(established(*p.a));
  const std::uint64_t base = p.a->config().retransmit_base_ms;
  p.now += base - 1;
  p.a->tick(p.now);
  EXPECT_TRUE(p.wa.out.empty());  // not yet
  p.now += 1;
  p.a->tick(p.now);
  EXPECT_EQ(p.wa.out.size(), 1u);
  p.pump();
  p.now += 2 * base - 1;  // the second wait is twice as long
  p.a->tick(p.now);
  EXPECT_TRUE(p.wa.out.empty());
  p.now += 1;
  p.a->tick(p.now);
  p.pump();
  EXPECT_TRUE(established(*p.a)) << p.logs();
  EXPECT_EQ(p.a->stats().retransmits, 2u);
  EXPECT_EQ(auth_requests, 3);
  expect_children_match(p);
}

TEST(Engine, LostResponseIsAnsweredFromTheLastResponse) {
  Pair p;
  int auth_responses = 0;
  p.filter = [&](bool a_to_b, const Packet& pk) {
    auto h = header_of(pk);
    if (!a_to_b && h && h->exchange == ExchangeType::ike_auth) return ++auth_responses > 1;  // lose the first
    return true;
  };
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  EXPECT_TRUE(established(*p.b));
  EXPECT_FALSE(established(*p.a));
  p.now += p.a->config().retransmit_base_ms;
  p.a->tick(p.now);
  p.pump();
  EXPECT_TRUE(established(*p.a)) << p.logs();
  EXPECT_EQ(p.b->stats().dup_requests, 1u);
  EXPECT_EQ(p.bb.installed.size(), 1u);  // the duplicate installed nothing more
  expect_children_match(p);
}

TEST(Engine, DuplicatedAndReplayedRequests) {
  Pair p;
  std::vector<Packet> from_a;
  p.filter = [&](bool a_to_b, const Packet& pk) {
    if (a_to_b) from_a.push_back(pk);
    return true;
  };
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  ASSERT_TRUE(established(*p.b));
  ASSERT_EQ(from_a.size(), 2u);
  // Replay both of A's requests: each is answered from the last response
  // or dropped; nothing new is set up.
  const auto wb_before = p.b->stats().tx;
  p.b->on_datagram(from_a[0].to, from_a[0].from, from_a[0].data, p.now);  // IKE_SA_INIT again
  p.b->on_datagram(from_a[1].to, from_a[1].from, from_a[1].data, p.now);  // IKE_AUTH again
  EXPECT_EQ(p.b->ike_sas().size(), 1u);
  EXPECT_EQ(p.bb.installed.size(), 1u);
  EXPECT_EQ(p.b->half_open(), 0u);
  EXPECT_EQ(p.b->stats().dup_requests, 2u);
  EXPECT_EQ(p.b->stats().tx, wb_before + 2);  // each answered once more
  // After one more exchange (message ID 2), the IKE_AUTH request (ID 1) is
  // outside the window: dropped, not answered.
  ASSERT_TRUE(p.a->check_liveness("to-b", p.now));
  p.pump();
  const auto dropped = p.b->stats().dropped;
  const auto tx = p.b->stats().tx;
  p.b->on_datagram(from_a[1].to, from_a[1].from, from_a[1].data, p.now);
  EXPECT_EQ(p.b->stats().dropped, dropped + 1);
  EXPECT_EQ(p.b->stats().tx, tx);
  EXPECT_EQ(p.bb.installed.size(), 1u);
}

TEST(Engine, TimeoutGivesUp) {
  Pair p;
  p.filter = [](bool, const Packet&) { return false; };  // the network is down
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  for (int i = 0; i < 100 && !p.a->ike_sas().empty(); ++i) {
    p.now += 1000;
    p.a->tick(p.now);
    p.pump();
  }
  EXPECT_TRUE(p.a->ike_sas().empty());
  EXPECT_EQ(p.a->stats().timeouts, 1u);
  EXPECT_EQ(p.a->stats().retransmits, p.a->config().retransmit_tries - 1);
}

TEST(Engine, HalfOpenTimesOut) {
  Pair p;
  p.filter = [](bool a_to_b, const Packet&) { return !a_to_b || true; };
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  // Deliver only the IKE_SA_INIT request.
  Packet req = p.wa.out.front();
  p.wa.out.clear();
  p.b->on_datagram(req.to, req.from, req.data, p.now);
  EXPECT_EQ(p.b->half_open(), 1u);
  p.b->tick(p.now + p.b->config().half_open_timeout_s * 1000ull);
  EXPECT_EQ(p.b->half_open(), 0u);
  EXPECT_TRUE(p.b->ike_sas().empty());
}

TEST(Engine, DeleteRemovesEverythingOnBothSides) {
  Pair p;
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  ASSERT_TRUE(established(*p.b));
  ASSERT_TRUE(p.a->terminate("to-b", p.now));
  p.pump();
  EXPECT_TRUE(p.a->ike_sas().empty());
  EXPECT_TRUE(p.b->ike_sas().empty());
  EXPECT_EQ(p.ba.live(), 0u);
  EXPECT_EQ(p.bb.live(), 0u);
  ASSERT_EQ(p.bb.removed.size(), 1u);
  EXPECT_EQ(p.bb.removed[0].inbound.spi, p.bb.installed[0].inbound.spi);
  EXPECT_TRUE(p.bb.removed[0].inbound.cipher_key.empty());  // the kept copy has no keys
  EXPECT_FALSE(p.a->terminate("to-b", p.now));  // nothing left to terminate
}

TEST(Engine, LivenessCheck) {
  Pair p;
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  ASSERT_TRUE(p.a->check_liveness("to-b", p.now));
  EXPECT_EQ(p.pump(), 2);
  EXPECT_TRUE(established(*p.a));
  EXPECT_TRUE(p.a->check_liveness("to-b", p.now));  // nothing in flight any more
  EXPECT_FALSE(p.a->check_liveness("nope", p.now));
}

TEST(Engine, ForcedEncapsulationMovesToPort4500) {
  Connection ca = site(true);
  ca.force_encap = true;
  Pair p(config(ca), config(site(false)));
  std::vector<std::uint16_t> ports;
  bool markers = true;
  p.filter = [&](bool, const Packet& pk) {
    ports.push_back(pk.to.port);
    if (pk.to.port == 4500) markers &= pk.data.size() > 4 && pk.data[0] == 0 && pk.data[1] == 0 && pk.data[2] == 0 && pk.data[3] == 0;
    return true;
  };
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  EXPECT_TRUE(established(*p.a)) << p.logs();
  EXPECT_EQ(ports, (std::vector<std::uint16_t>{500, 500, 4500, 4500}));
  EXPECT_TRUE(markers);
  expect_children_match(p);
  EXPECT_TRUE(p.ba.installed[0].outbound.encap.enabled);
  EXPECT_TRUE(p.bb.installed[0].inbound.encap.enabled);
  EXPECT_EQ(p.bb.installed[0].inbound.encap.sport, 4500);
  EXPECT_TRUE(p.b->ike_sas()[0].nat_remote);  // B believes A is behind a NAT
}

TEST(Engine, BackendRefusalIsAChildError) {
  Pair p;
  p.bb.refuse = true;
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  EXPECT_TRUE(established(*p.a));
  EXPECT_TRUE(p.ba.installed.empty());
  EXPECT_TRUE(p.bb.installed.empty());
}

TEST(Engine, GarbageIsDroppedAndCounted) {
  Pair p;
  const Endpoint me{ip("192.0.2.2"), 500}, peer{ip("192.0.2.9"), 500};
  std::uint64_t seed = 7;
  for (int i = 0; i < 2000; ++i) {
    Bytes junk(static_cast<std::size_t>(seed % 200));
    for (auto& b : junk) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      b = static_cast<std::uint8_t>(seed >> 56);
    }
    if (junk.size() > 17) junk[17] = 0x20;  // version 2.0, so the header passes now and then
    p.b->on_datagram(me, peer, junk, p.now);
  }
  EXPECT_GT(p.b->stats().dropped, 1000u);
  EXPECT_TRUE(p.b->ike_sas().empty());
}

TEST(Engine, NewerMajorVersionIsAnsweredWithInvalidMajorVersion) {
  Pair p;
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  Packet req = p.wa.out.front();
  p.wa.out.clear();
  req.data[17] = 0x30;  // IKE 3.0
  p.b->on_datagram(req.to, req.from, req.data, p.now);
  ASSERT_EQ(p.wb.out.size(), 1u);
  auto m = decode(p.wb.out.front().data);
  ASSERT_TRUE(m);
  const auto* n = find_payload<NotifyPayload>(m.value());
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->type, NotifyType::invalid_major_version);
  EXPECT_TRUE(p.b->ike_sas().empty());
}

TEST(Engine, LowOrderCurve25519KeyIsRefused) {
  Pair p;
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  Packet req = p.wa.out.front();
  p.wa.out.clear();
  auto m = decode(req.data);
  ASSERT_TRUE(m);
  for (auto& pl : m->payloads) {
    if (auto* ke = std::get_if<KePayload>(&pl)) std::fill(ke->data.begin(), ke->data.end(), 0);  // u = 0
  }
  auto bytes = encode(m.value());
  ASSERT_TRUE(bytes);
  p.b->on_datagram(req.to, req.from, *bytes, p.now);
  EXPECT_TRUE(p.b->ike_sas().empty());
  ASSERT_EQ(p.wb.out.size(), 1u);
  auto r = decode(p.wb.out.front().data);
  ASSERT_TRUE(r);
  EXPECT_EQ(find_payload<NotifyPayload>(r.value())->type, NotifyType::invalid_syntax);
}

// KE data of the wrong length for its group, and an ECP point off the
// curve: INVALID_SYNTAX, no state (RFC 6989).
TEST(Engine, BadKePayloadsAreRefused) {
  for (int variant = 0; variant < 2; ++variant) {
    Connection ca = site(true), cb = site(false);
    const IkeSuite ecp{EncrId::aes_gcm_16, 128, IntegId::none, PrfId::hmac_sha2_256, KeGroup::ecp256};
    ca.ike = cb.ike = {ecp};
    Pair p(config(ca), config(cb));
    ASSERT_TRUE(p.a->initiate("to-b", p.now));
    Packet req = p.wa.out.front();
    p.wa.out.clear();
    auto m = decode(req.data);
    ASSERT_TRUE(m);
    for (auto& pl : m->payloads) {
      auto* ke = std::get_if<KePayload>(&pl);
      if (ke == nullptr) continue;
      if (variant == 0) {
        ke->data.pop_back();  // 63 bytes for a 64-byte group
      } else {
        ke->data[63] ^= 1;  // y no longer on the curve
      }
    }
    auto bytes = encode(m.value());
    ASSERT_TRUE(bytes);
    p.b->on_datagram(req.to, req.from, *bytes, p.now);
    EXPECT_TRUE(p.b->ike_sas().empty()) << variant;
    EXPECT_EQ(p.b->half_open(), 0u);
    ASSERT_EQ(p.wb.out.size(), 1u);
    auto r = decode(p.wb.out.front().data);
    ASSERT_TRUE(r);
    EXPECT_EQ(find_payload<NotifyPayload>(r.value())->type, NotifyType::invalid_syntax) << variant;
  }
}

TEST(Engine, HalfOpenFloodStillAnswersALegitimatePeer) {
  IkeConfig cb = config(site(false));
  cb.cookie_threshold = 50;
  Connection any = site(false);
  any.name = "anyone";
  any.remote_addrs = {pre("0.0.0.0/0")};
  any.remote_id = Identity{};
  cb.connections.push_back(any);
  Pair p(config(site(true)), std::move(cb));
  // 500 half-open IKE_SA_INITs from 500 addresses (a spoofing flood: the
  // answers go nowhere).
  for (int i = 0; i < 500; ++i) {
    Engine tmp(config(site(true)), p.ba, p.wa);
    ASSERT_TRUE(tmp.initiate("to-b", p.now));
    Packet req = p.wa.out.back();
    p.wa.out.clear();
    const Endpoint spoofed{IpAddress::v4(0x0a630000u + static_cast<std::uint32_t>(i)), 500};
    p.b->on_datagram(req.to, spoofed, req.data, p.now);
    p.wb.out.clear();
  }
  EXPECT_EQ(p.b->half_open(), 50u);  // state only up to the threshold
  EXPECT_EQ(p.b->stats().cookies_sent, 450u);
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  const auto sas = p.a->ike_sas();
  EXPECT_TRUE(std::any_of(sas.begin(), sas.end(), [](const IkeSaInfo& s) { return s.state == IkeState::established; }))
      << p.logs();
  EXPECT_EQ(p.ba.installed.size(), 1u);
}

// ---------------------------------------------------------------- CREATE_CHILD_SA

// A's IKE SA and first Child SA with B.
void up(Pair& p) {
  ASSERT_TRUE(p.a->initiate("to-b", p.now));
  p.pump();
  ASSERT_TRUE(established(*p.a)) << p.logs();
  ASSERT_TRUE(established(*p.b)) << p.logs();
}

bool log_has(const std::vector<std::string>& log, const char* s) {
  return std::any_of(log.begin(), log.end(), [&](const std::string& l) { return l.find(s) != std::string::npos; });
}

std::size_t policies_removed(const MockBackend& b) {
  std::size_t n = 0;
  for (const auto& c : b.removed) n += c.policies.size();
  return n;
}

// The Child SA on each side, after the rekey: one, the new one.
void expect_rekeyed(const Pair& p, const char* what) {
  SCOPED_TRACE(what);
  ASSERT_EQ(p.ba.installed.size(), 2u) << p.logs();
  ASSERT_EQ(p.bb.installed.size(), 2u) << p.logs();
  // New installed before the old removed (2.8), old removed with its SPIs.
  ASSERT_EQ(p.ba.removed.size(), 1u) << p.logs();
  ASSERT_EQ(p.bb.removed.size(), 1u) << p.logs();
  for (const MockBackend* b : {&p.ba, &p.bb}) {
    using E = std::pair<char, std::uint32_t>;
    EXPECT_EQ(b->events, (std::vector<E>{{'i', b->installed[0].inbound.spi}, {'i', b->installed[1].inbound.spi},
                                         {'r', b->installed[0].inbound.spi}}));
  }
  EXPECT_EQ(p.ba.removed[0].inbound.spi, p.ba.installed[0].inbound.spi);
  EXPECT_EQ(p.ba.removed[0].outbound.spi, p.ba.installed[0].outbound.spi);
  EXPECT_EQ(p.bb.removed[0].inbound.spi, p.bb.installed[0].inbound.spi);
  expect_pair(p.ba.installed[1], p.bb.installed[1]);
  EXPECT_NE(p.ba.installed[1].inbound.spi, p.ba.installed[0].inbound.spi);
  EXPECT_NE(p.ba.installed[1].outbound.spi, p.ba.installed[0].outbound.spi);
  EXPECT_FALSE(p.ba.installed[1].outbound.cipher_key.equals(p.ba.installed[0].outbound.cipher_key));
  // The same reqid: the policies stay in the dataplane (neither the new SA
  // brings them again nor does the old one take them away).
  EXPECT_EQ(p.ba.installed[1].reqid, p.ba.installed[0].reqid);
  EXPECT_TRUE(p.ba.installed[1].policies.empty());
  EXPECT_TRUE(p.ba.removed[0].policies.empty());
  EXPECT_TRUE(p.bb.removed[0].policies.empty());
  for (const Engine* e : {p.a.get(), p.b.get()}) {
    auto sas = e->ike_sas();
    ASSERT_EQ(sas.size(), 1u);
    ASSERT_EQ(sas[0].children.size(), 1u) << p.logs();
  }
  EXPECT_EQ(p.a->ike_sas()[0].children[0].spi_in, p.ba.installed[1].inbound.spi);
  EXPECT_EQ(p.b->ike_sas()[0].children[0].spi_in, p.bb.installed[1].inbound.spi);
  EXPECT_EQ(p.ba.live(), 1u);
  EXPECT_EQ(p.bb.live(), 1u);
}

TEST(Engine, ChildRekeyInitiatedByEitherSide) {
  for (bool a_rekeys : {true, false}) {
    SCOPED_TRACE(a_rekeys ? "A rekeys" : "B rekeys");
    Pair p;
    up(p);
    ASSERT_EQ(p.ba.installed.size(), 1u);
    Engine& r = a_rekeys ? *p.a : *p.b;
    ASSERT_TRUE(r.rekey(a_rekeys ? "to-b" : "to-a", false, p.now));
    // CREATE_CHILD_SA request and response, then the Delete of the old one and its answer.
    EXPECT_EQ(p.pump(), 4);
    expect_rekeyed(p, "after the rekey");
    EXPECT_EQ(p.a->stats().child_rekeyed, 1u);
    EXPECT_EQ(p.b->stats().child_rekeyed, 1u);
    // The new SA's keys are of the new nonces: a second rekey gives others again.
    ASSERT_TRUE(r.rekey(a_rekeys ? "to-b" : "to-a", false, p.now));
    p.pump();
    ASSERT_EQ(p.ba.installed.size(), 3u);
    expect_pair(p.ba.installed[2], p.bb.installed[2]);
    EXPECT_EQ(p.ba.live(), 1u);
    // Terminate: the last Child SA takes the policies with it.
    ASSERT_TRUE(p.a->terminate("to-b", p.now));
    p.pump();
    EXPECT_EQ(policies_removed(p.ba), 2u);
    EXPECT_EQ(policies_removed(p.bb), 2u);
  }
}

TEST(Engine, ChildRekeyWithPfs) {
  const EspSuite pfs{EncrId::aes_gcm_16, 128, IntegId::none, false, KeGroup::curve25519};
  for (bool b_configured : {true, false}) {
    SCOPED_TRACE(b_configured ? "both ask for PFS" : "only A asks; B follows");
    Connection ca = site(true), cb = site(false);
    ca.esp = {pfs};
    if (b_configured) cb.esp = {pfs};
    Pair p(config(ca), config(cb));
    up(p);
    ASSERT_TRUE(established(*p.b));
    ASSERT_TRUE(p.a->rekey("to-b", false, p.now));
    p.pump();
    expect_rekeyed(p, "PFS");
    EXPECT_TRUE(log_has(p.log_a, "(PFS Curve25519")) << p.logs();
    // Both record the key exchange done (the first Child SA had none).
    EXPECT_EQ(p.a->ike_sas()[0].children[0].suite.group, KeGroup::curve25519);
    EXPECT_EQ(p.b->ike_sas()[0].children[0].suite.group, KeGroup::curve25519);
  }
}

TEST(Engine, ChildRekeyPfsGroupRetriedOnInvalidKePayload) {
  Connection ca = site(true), cb = site(false);
  ca.esp = {EspSuite{EncrId::aes_gcm_16, 128, IntegId::none, false, KeGroup::curve25519},
            EspSuite{EncrId::aes_gcm_16, 128, IntegId::none, false, KeGroup::ecp256}};
  cb.esp = {EspSuite{EncrId::aes_gcm_16, 128, IntegId::none, false, KeGroup::ecp256}};
  Pair p(config(ca), config(cb));
  up(p);
  ASSERT_TRUE(p.a->rekey("to-b", false, p.now));
  p.pump();
  EXPECT_EQ(p.b->stats().invalid_ke_sent, 1u);
  EXPECT_TRUE(log_has(p.log_b, "INVALID_KE_PAYLOAD")) << p.logs();
  expect_rekeyed(p, "after the retry with ecp256");
  EXPECT_EQ(p.a->ike_sas()[0].children[0].suite.group, KeGroup::ecp256);
}

TEST(Engine, ChildRekeyErrors) {
  {
    SCOPED_TRACE("NO_PROPOSAL_CHOSEN: B insists on PFS with a group A does not offer");
    Connection ca = site(true), cb = site(false);
    cb.esp = {EspSuite{EncrId::aes_gcm_16, 128, IntegId::none, false, KeGroup::ecp256}};
    Pair p(config(ca), config(cb));
    up(p);
    ASSERT_EQ(p.ba.installed.size(), 1u);  // IKE_AUTH has no KE: the first Child SA is made
    ASSERT_TRUE(p.a->rekey("to-b", false, p.now));
    EXPECT_EQ(p.pump(), 2);
    EXPECT_EQ(p.b->stats().no_proposal_sent, 1u);
    EXPECT_TRUE(log_has(p.log_a, "refused: NO_PROPOSAL_CHOSEN")) << p.logs();
    EXPECT_EQ(p.ba.installed.size(), 1u);
    EXPECT_EQ(p.bb.installed.size(), 1u);
    EXPECT_EQ(p.ba.live(), 1u);  // the old one stays
    EXPECT_TRUE(established(*p.a));
    EXPECT_TRUE(p.a->check_liveness("to-b", p.now));  // the window is free again
    EXPECT_EQ(p.pump(), 2);
  }
  {
    SCOPED_TRACE("CHILD_SA_NOT_FOUND: B's Child SA expired while A's rekey of it was on the way");
    Connection ca = site(true), cb = site(false);
    cb.child_lifetime_s = 100;
    Pair p(config(ca), config(cb));
    up(p);
    p.now += 100 * 1000;
    ASSERT_TRUE(p.a->rekey("to-b", false, p.now));
    p.b->tick(p.now);  // hard lifetime: B removes it and sends a Delete
    p.pump();
    EXPECT_TRUE(log_has(p.log_b, "CHILD_SA_NOT_FOUND")) << p.logs();
    EXPECT_TRUE(log_has(p.log_a, "refused: CHILD_SA_NOT_FOUND")) << p.logs();
    EXPECT_EQ(p.b->stats().expired, 1u);
    EXPECT_EQ(p.ba.live(), 0u);
    EXPECT_EQ(p.bb.live(), 0u);
    EXPECT_TRUE(established(*p.a));
    EXPECT_TRUE(established(*p.b));
  }
}

TEST(Engine, SimultaneousChildRekeyLowestNonceLoses) {
  for (int round = 0; round < 8; ++round) {  // the nonces are random: either side may win
    // Odd rounds lose the first answer to each Delete: the loser's Delete
    // of its redundant SA then comes while the winner's old one waits.
    const bool lose_delete_answers = round % 2 == 1;
    SCOPED_TRACE(round);
    Pair p;
    up(p);
    int lost[2] = {0, 0};
    p.filter = [&](bool a_to_b, const Packet& pk) {
      auto h = header_of(pk);
      const bool answer = h && h->exchange == ExchangeType::informational && h->response();
      return !(lose_delete_answers && answer && lost[a_to_b ? 0 : 1]++ == 0);
    };
    ASSERT_TRUE(p.a->rekey("to-b", false, p.now));
    ASSERT_TRUE(p.b->rekey("to-a", false, p.now));
    p.pump();
    p.now += p.a->config().retransmit_base_ms;
    p.a->tick(p.now);
    p.b->tick(p.now);
    p.pump();
    EXPECT_EQ(p.a->stats().rekey_collisions, 1u) << p.logs();
    EXPECT_EQ(p.b->stats().rekey_collisions, 1u);
    // Three SA pairs were made (old, two new); one stays, the same on both.
    ASSERT_EQ(p.ba.installed.size(), 3u) << p.logs();
    ASSERT_EQ(p.bb.installed.size(), 3u);
    EXPECT_EQ(p.ba.live(), 1u) << p.logs();
    EXPECT_EQ(p.bb.live(), 1u) << p.logs();
    auto a = p.a->ike_sas(), b = p.b->ike_sas();
    ASSERT_EQ(a.size(), 1u);
    ASSERT_EQ(a[0].children.size(), 1u);
    ASSERT_EQ(b[0].children.size(), 1u);
    EXPECT_EQ(a[0].children[0].spi_in, b[0].children[0].spi_out);
    EXPECT_EQ(a[0].children[0].spi_out, b[0].children[0].spi_in);
    EXPECT_NE(a[0].children[0].spi_in, p.ba.installed[0].inbound.spi);
    for (const auto& s : p.ba.installed) {
      if (s.inbound.spi == a[0].children[0].spi_in) {
        for (const auto& t : p.bb.installed) {
          if (t.outbound.spi == s.inbound.spi) expect_pair(s, t);
        }
      }
    }
    // The policies were never taken out; the survivor has them.
    EXPECT_EQ(policies_removed(p.ba), 0u);
    EXPECT_EQ(policies_removed(p.bb), 0u);
    ASSERT_TRUE(p.a->terminate("to-b", p.now));
    p.pump();
    EXPECT_EQ(policies_removed(p.ba), 2u);
    EXPECT_EQ(policies_removed(p.bb), 2u);
  }
}

TEST(Engine, LostAndDuplicatedCreateChildSa) {
  {
    SCOPED_TRACE("the request is lost once");
    Pair p;
    up(p);
    int lost = 0;
    p.filter = [&](bool a_to_b, const Packet& pk) {
      auto h = header_of(pk);
      return !(a_to_b && h && h->exchange == ExchangeType::create_child_sa && lost++ == 0);
    };
    ASSERT_TRUE(p.a->rekey("to-b", false, p.now));
    p.pump();
    EXPECT_EQ(p.ba.installed.size(), 1u);
    p.now += p.a->config().retransmit_base_ms;
    p.a->tick(p.now);
    p.pump();
    expect_rekeyed(p, "after the retransmission");
    EXPECT_EQ(p.a->stats().retransmits, 1u);
  }
  {
    SCOPED_TRACE("the response is lost once: answered again from the last response");
    Pair p;
    up(p);
    int lost = 0;
    p.filter = [&](bool a_to_b, const Packet& pk) {
      auto h = header_of(pk);
      return !(!a_to_b && h && h->exchange == ExchangeType::create_child_sa && lost++ == 0);
    };
    ASSERT_TRUE(p.a->rekey("to-b", false, p.now));
    p.pump();
    EXPECT_EQ(p.bb.installed.size(), 2u);  // B made the new one
    p.now += p.a->config().retransmit_base_ms;
    p.a->tick(p.now);
    p.pump();
    EXPECT_EQ(p.b->stats().dup_requests, 1u);
    expect_rekeyed(p, "after the retransmission");  // B installed nothing more
  }
  {
    SCOPED_TRACE("the request arrives twice");
    Pair p;
    up(p);
    p.filter = [&](bool a_to_b, const Packet& pk) {
      auto h = header_of(pk);
      if (a_to_b && h && h->exchange == ExchangeType::create_child_sa) p.b->on_datagram(pk.to, pk.from, pk.data, p.now);
      return true;
    };
    ASSERT_TRUE(p.a->rekey("to-b", false, p.now));
    p.pump();
    EXPECT_EQ(p.b->stats().dup_requests, 1u);
    expect_rekeyed(p, "after the duplicate");
  }
}

TEST(Engine, AdditionalChildSa) {
  Pair p;
  up(p);
  // A CREATE_CHILD_SA without REKEY_SA (1.3.1): B narrows and installs it
  // as a Child SA of its own, with its own reqid and policies.
  ASSERT_TRUE(p.a->create_child("to-b", p.now));
  EXPECT_EQ(p.pump(), 2);
  ASSERT_EQ(p.ba.installed.size(), 2u) << p.logs();
  ASSERT_EQ(p.bb.installed.size(), 2u);
  expect_pair(p.ba.installed[1], p.bb.installed[1]);
  EXPECT_NE(p.bb.installed[1].reqid, p.bb.installed[0].reqid);
  EXPECT_EQ(p.bb.installed[1].policies.size(), 2u);
  EXPECT_EQ(p.b->ike_sas()[0].children.size(), 2u);
  EXPECT_EQ(p.ba.live(), 2u);
  // Both are rekeyed and deleted on their own.
  ASSERT_TRUE(p.b->rekey("to-a", false, p.now));
  p.pump();
  EXPECT_EQ(p.ba.live(), 2u);
  EXPECT_EQ(p.bb.live(), 2u);
  ASSERT_TRUE(p.a->terminate("to-b", p.now));
  p.pump();
  EXPECT_EQ(p.bb.live(), 0u);
  EXPECT_EQ(policies_removed(p.bb), 4u);
}

// ---------------------------------------------------------------- transport mode

// Host-to-host: the selectors are the two gateways' own addresses.
Connection host(bool a, Mode mode) {
  Connection c = site(a);
  c.mode = mode;
  c.local_ts = {ts(a ? "192.0.2.1/32" : "192.0.2.2/32")};
  c.remote_ts = {ts(a ? "192.0.2.2/32" : "192.0.2.1/32")};
  return c;
}

void expect_mode(const MockBackend& b, std::size_t i, Mode m) {
  ASSERT_LT(i, b.installed.size());
  EXPECT_EQ(b.installed[i].inbound.mode, m);
  EXPECT_EQ(b.installed[i].outbound.mode, m);
}

// Both ends want transport mode (USE_TRANSPORT_MODE, RFC 7296 1.3.1): the
// first Child SA, a further one and rekeys are all transport mode SAs.
TEST(Engine, TransportModeWhenBothWantIt) {
  Pair p(config(host(true, Mode::transport)), config(host(false, Mode::transport)));
  up(p);
  expect_children_match(p);
  expect_mode(p.ba, 0, Mode::transport);
  expect_mode(p.bb, 0, Mode::transport);
  ASSERT_EQ(p.a->ike_sas()[0].children.size(), 1u);
  EXPECT_EQ(p.a->ike_sas()[0].children[0].mode, Mode::transport);
  EXPECT_EQ(p.b->ike_sas()[0].children[0].mode, Mode::transport);
  EXPECT_EQ(p.ba.installed[0].policies.size(), 2u);
  // A further Child SA, then a rekey from B and one from A keep the mode.
  const std::function<Result<void>()> steps[] = {
      [&] { return p.a->create_child("to-b", p.now); },
      [&] { return p.b->rekey("to-a", false, p.now); },
      [&] { return p.a->rekey("to-b", false, p.now); },
  };
  for (std::size_t i = 0; i < std::size(steps); ++i) {
    SCOPED_TRACE("step " + std::to_string(i));
    ASSERT_TRUE(steps[i]());
    p.pump();
    ASSERT_EQ(p.ba.installed.size(), i + 2) << p.logs();
    ASSERT_EQ(p.bb.installed.size(), i + 2) << p.logs();
    expect_pair(p.ba.installed[i + 1], p.bb.installed[i + 1]);
    expect_mode(p.ba, i + 1, Mode::transport);
    expect_mode(p.bb, i + 1, Mode::transport);
  }
  EXPECT_EQ(p.ba.live(), 2u);
  EXPECT_EQ(p.bb.live(), 2u);
  EXPECT_EQ(p.a->stats().mode_refused + p.b->stats().mode_refused, 0u);
  // Tunnel mode stays the default: the same hosts in tunnel mode give tunnel SAs.
  Pair t(config(host(true, Mode::tunnel)), config(host(false, Mode::tunnel)));
  up(t);
  expect_mode(t.ba, 0, Mode::tunnel);
  expect_mode(t.bb, 0, Mode::tunnel);
}

// The initiator asks for transport mode, the responder wants tunnel mode:
// the responder declines by answering without USE_TRANSPORT_MODE and
// installs a tunnel mode SA (1.3.1); the initiator, which must not accept
// it, installs nothing and deletes it; the IKE SA stays.
TEST(Engine, TransportRequestedTunnelAnsweredIsDeleted) {
  Pair p(config(host(true, Mode::transport)), config(host(false, Mode::tunnel)));
  up(p);
  EXPECT_EQ(p.ba.installed.size(), 0u) << p.logs();
  ASSERT_EQ(p.bb.installed.size(), 1u) << p.logs();
  expect_mode(p.bb, 0, Mode::tunnel);
  EXPECT_EQ(p.bb.live(), 0u) << "A's Delete removes B's tunnel mode SA\n" << p.logs();
  EXPECT_EQ(p.a->stats().mode_refused, 1u);
  EXPECT_TRUE(log_has(p.log_a, "the responder chose tunnel mode, we want transport")) << p.logs();
  EXPECT_TRUE(established(*p.a));
  EXPECT_TRUE(established(*p.b));
  EXPECT_TRUE(p.a->ike_sas()[0].children.empty());
  EXPECT_TRUE(p.b->ike_sas()[0].children.empty());
  // A further Child SA asked for later meets the same answer.
  ASSERT_TRUE(p.a->create_child("to-b", p.now));
  p.pump();
  EXPECT_EQ(p.ba.installed.size(), 0u);
  EXPECT_EQ(p.bb.live(), 0u) << p.logs();
  EXPECT_EQ(p.a->stats().mode_refused, 2u);
  EXPECT_TRUE(established(*p.a));
}

// The initiator wants tunnel mode, the responder insists on transport: the
// responder refuses the Child SA with NO_PROPOSAL_CHOSEN, nothing is
// installed on either side, the IKE SA stays.
TEST(Engine, TunnelRequestedFromATransportOnlyResponderIsRefused) {
  Pair p(config(host(true, Mode::tunnel)), config(host(false, Mode::transport)));
  up(p);
  EXPECT_EQ(p.ba.installed.size(), 0u) << p.logs();
  EXPECT_EQ(p.bb.installed.size(), 0u) << p.logs();
  EXPECT_EQ(p.b->stats().mode_refused, 1u);
  EXPECT_TRUE(log_has(p.log_b, "transport mode required")) << p.logs();
  EXPECT_TRUE(log_has(p.log_a, "NO_PROPOSAL_CHOSEN")) << p.logs();
  EXPECT_TRUE(established(*p.a));
  EXPECT_TRUE(established(*p.b));
  ASSERT_TRUE(p.a->create_child("to-b", p.now));
  p.pump();
  EXPECT_EQ(p.ba.installed.size(), 0u);
  EXPECT_EQ(p.bb.installed.size(), 0u);
  EXPECT_EQ(p.b->stats().mode_refused, 2u);
}

TEST(Engine, IkeSaRekeyEitherSide) {
  for (bool a_rekeys : {true, false}) {
    SCOPED_TRACE(a_rekeys ? "A rekeys" : "B rekeys");
    Pair p;
    up(p);
    const auto old_a = p.a->ike_sas()[0];
    Engine& r = a_rekeys ? *p.a : *p.b;
    ASSERT_TRUE(r.rekey(a_rekeys ? "to-b" : "to-a", true, p.now));
    // CREATE_CHILD_SA and the Delete of the old IKE SA.
    EXPECT_EQ(p.pump(), 4) << p.logs();
    auto a = p.a->ike_sas(), b = p.b->ike_sas();
    ASSERT_EQ(a.size(), 1u) << p.logs();
    ASSERT_EQ(b.size(), 1u) << p.logs();
    EXPECT_NE(a[0].spi_i, old_a.spi_i);
    EXPECT_NE(a[0].spi_r, old_a.spi_r);
    EXPECT_EQ(a[0].spi_i, b[0].spi_i);
    EXPECT_EQ(a[0].spi_r, b[0].spi_r);
    EXPECT_EQ(a[0].initiator, a_rekeys);  // the rekey's initiator is the new SA's (2.18)
    EXPECT_EQ(a[0].state, IkeState::established);
    EXPECT_EQ(b[0].state, IkeState::established);
    // The Child SA moved, untouched.
    ASSERT_EQ(a[0].children.size(), 1u);
    EXPECT_EQ(a[0].children[0].spi_in, old_a.children[0].spi_in);
    EXPECT_EQ(p.ba.installed.size(), 1u);
    EXPECT_TRUE(p.ba.removed.empty());
    EXPECT_TRUE(p.bb.removed.empty());
    EXPECT_EQ(p.a->stats().ike_rekeyed, 1u);
    EXPECT_EQ(p.b->stats().ike_rekeyed, 1u);
    // The new SA's keys carry the next exchanges: liveness both ways, a
    // Child SA rekey (KEYMAT from the new SK_d), and a second IKE rekey.
    const auto dropped_a = p.a->stats().dropped, dropped_b = p.b->stats().dropped;
    ASSERT_TRUE(p.a->check_liveness("to-b", p.now));
    EXPECT_EQ(p.pump(), 2);
    ASSERT_TRUE(p.b->check_liveness("to-a", p.now));
    EXPECT_EQ(p.pump(), 2);
    EXPECT_EQ(p.a->stats().dropped, dropped_a);
    EXPECT_EQ(p.b->stats().dropped, dropped_b);
    ASSERT_TRUE(p.b->rekey("to-a", false, p.now));
    p.pump();
    expect_rekeyed(p, "a Child SA rekey on the new IKE SA");
    ASSERT_TRUE(r.rekey(a_rekeys ? "to-b" : "to-a", true, p.now));
    p.pump();
    EXPECT_EQ(p.a->ike_sas().size(), 1u);
    EXPECT_EQ(p.a->ike_sas()[0].spi_i, p.b->ike_sas()[0].spi_i);
    EXPECT_EQ(p.a->ike_sas()[0].children.size(), 1u);
    // And the end: terminate on the new SA removes everything on both sides.
    ASSERT_TRUE(p.b->terminate("to-a", p.now));
    p.pump();
    EXPECT_TRUE(p.a->ike_sas().empty());
    EXPECT_TRUE(p.b->ike_sas().empty());
    EXPECT_EQ(p.ba.live(), 0u);
    EXPECT_EQ(p.bb.live(), 0u);
  }
}

TEST(Engine, SimultaneousIkeSaRekey) {
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE(round);
    Pair p;
    up(p);
    const auto old_a = p.a->ike_sas()[0];
    ASSERT_TRUE(p.a->rekey("to-b", true, p.now));
    ASSERT_TRUE(p.b->rekey("to-a", true, p.now));
    p.pump();
    EXPECT_EQ(p.a->stats().rekey_collisions, 1u) << p.logs();
    EXPECT_EQ(p.b->stats().rekey_collisions, 1u);
    auto a = p.a->ike_sas(), b = p.b->ike_sas();
    ASSERT_EQ(a.size(), 1u) << p.logs();
    ASSERT_EQ(b.size(), 1u) << p.logs();
    EXPECT_NE(a[0].spi_i, old_a.spi_i);
    EXPECT_EQ(a[0].spi_i, b[0].spi_i);
    EXPECT_EQ(a[0].spi_r, b[0].spi_r);
    ASSERT_EQ(a[0].children.size(), 1u);
    ASSERT_EQ(b[0].children.size(), 1u);
    EXPECT_EQ(p.ba.live(), 1u);
    ASSERT_TRUE(p.a->check_liveness("to-b", p.now));
    EXPECT_EQ(p.pump(), 2);
    ASSERT_TRUE(p.a->rekey("to-b", false, p.now));
    p.pump();
    expect_rekeyed(p, "a Child SA rekey on the surviving IKE SA");
  }
}

TEST(Engine, LifetimesRekeyAtTheSoftTimeAndDeleteAtTheHardOne) {
  {
    SCOPED_TRACE("Child SA: soft");
    Connection ca = site(true), cb = site(false);
    ca.child_lifetime_s = 100;
    cb.child_lifetime_s = 1000;
    Pair p(config(ca), config(cb));
    const std::uint64_t t0 = p.now;
    up(p);
    const auto info = p.a->ike_sas()[0].children[0];
    EXPECT_EQ(info.expire_at_ms, t0 + 100000);
    EXPECT_GT(info.rekey_at_ms, t0 + 80000);  // 10 % margin and up to 10 % jitter before it
    EXPECT_LE(info.rekey_at_ms, t0 + 90000);
    p.now = t0 + 80000;
    p.a->tick(p.now);
    p.b->tick(p.now);
    EXPECT_EQ(p.pump(), 0);
    p.now = t0 + 90000;
    p.a->tick(p.now);
    p.b->tick(p.now);
    p.pump();
    expect_rekeyed(p, "by A's soft lifetime");
    const auto renewed = p.a->ike_sas()[0].children[0];
    EXPECT_EQ(renewed.expire_at_ms, p.now + 100000);
  }
  {
    SCOPED_TRACE("Child SA: hard, when every rekey is refused");
    Connection ca = site(true), cb = site(false);
    ca.child_lifetime_s = 100;
    cb.esp = {EspSuite{EncrId::aes_gcm_16, 128, IntegId::none, false, KeGroup::ecp256}};
    Pair p(config(ca), config(cb));
    const std::uint64_t t0 = p.now;
    up(p);
    for (p.now = t0 + 80000; p.now < t0 + 100000; p.now += 1000) {
      p.a->tick(p.now);
      p.pump();
    }
    EXPECT_GE(p.b->stats().no_proposal_sent, 2u);  // tried again every few seconds
    EXPECT_EQ(p.ba.live(), 1u);
    p.now = t0 + 100000;
    p.a->tick(p.now);
    p.pump();
    EXPECT_EQ(p.a->stats().expired, 1u);
    EXPECT_EQ(p.ba.live(), 0u);
    EXPECT_EQ(p.bb.live(), 0u);  // B got the Delete
    EXPECT_TRUE(established(*p.a));  // the IKE SA stays
  }
  {
    SCOPED_TRACE("IKE SA: soft");
    Connection ca = site(true), cb = site(false);
    ca.ike_lifetime_s = 200;
    cb.ike_lifetime_s = 2000;
    Pair p(config(ca), config(cb));
    const std::uint64_t t0 = p.now;
    up(p);
    const auto old = p.a->ike_sas()[0];
    EXPECT_EQ(old.expire_at_ms, t0 + 200000);
    p.now = t0 + 180000;
    p.a->tick(p.now);
    p.b->tick(p.now);
    p.pump();
    auto a = p.a->ike_sas();
    ASSERT_EQ(a.size(), 1u) << p.logs();
    EXPECT_NE(a[0].spi_i, old.spi_i);
    EXPECT_EQ(a[0].expire_at_ms, p.now + 200000);
    EXPECT_EQ(a[0].children.size(), 1u);
    EXPECT_EQ(p.b->stats().ike_rekeyed, 1u);
  }
  {
    SCOPED_TRACE("IKE SA: hard, when the rekey gets no answer");
    IkeConfig ca = config(site(true));
    ca.connections[0].ike_lifetime_s = 100;
    ca.retransmit_tries = 100;  // it would give up later than the hard time
    Pair p(std::move(ca), config(site(false)));
    const std::uint64_t t0 = p.now;
    up(p);
    p.filter = [](bool a_to_b, const Packet& pk) {
      auto h = header_of(pk);
      return !(a_to_b && h && h->exchange == ExchangeType::create_child_sa);
    };
    for (p.now = t0 + 80000; p.now <= t0 + 100000; p.now += 500) {
      p.a->tick(p.now);
      p.pump();
    }
    EXPECT_TRUE(p.a->ike_sas().empty()) << p.logs();
    EXPECT_EQ(p.a->stats().expired, 1u);
    EXPECT_EQ(p.a->stats().timeouts, 0u);
    EXPECT_EQ(p.ba.live(), 0u);
  }
}

TEST(Engine, DataplaneLifetimeEvents) {
  Pair p;
  up(p);
  p.a->on_child_expire(p.ba.installed[0].inbound.spi, false, p.now);  // soft bytes/packets
  p.pump();
  expect_rekeyed(p, "after a soft limit");
  p.a->on_child_expire(p.ba.installed[1].inbound.spi, true, p.now);  // hard
  p.pump();
  EXPECT_EQ(p.ba.live(), 0u);
  EXPECT_EQ(p.bb.live(), 0u);
}

}  // namespace
}  // namespace cygnet::ike
