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

}  // namespace
}  // namespace cygnet::ike
