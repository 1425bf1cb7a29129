#include "shared/shm/messages.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>
#include <set>

#include "shared/shm/test_util.h"

namespace cygnet::shm {
namespace {

using testing::make_policy;
using testing::make_sa;

// Encodes, copies into a full slot image (as the ring consumer sees it) and parses.
Status roundtrip(const Command& in, Command& out, std::string& why) {
  MsgBuf b;
  auto r = encode_command(in, b);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  MsgBuf slot;
  std::memcpy(slot.data(), b.data(), b.size());
  std::uint64_t id = 0;
  std::uint16_t type = 0;
  const Status s = parse_command(slot.raw(), out, id, type, why);
  EXPECT_EQ(id, in.id);
  EXPECT_EQ(type, static_cast<std::uint16_t>(command_type(in.body)));
  return s;
}

Status parse_raw(const MsgBuf& b, std::string& why) {
  MsgBuf slot;
  std::memcpy(slot.data(), b.data(), b.size());
  Command out;
  std::uint64_t id = 0;
  std::uint16_t type = 0;
  return parse_command(slot.raw(), out, id, type, why);
}

void expect_same_sa(const SaConfig& a, const SaConfig& b) {
  EXPECT_EQ(a.spi, b.spi);
  EXPECT_EQ(a.dir, b.dir);
  EXPECT_EQ(a.src, b.src);
  EXPECT_EQ(a.dst, b.dst);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.reqid, b.reqid);
  EXPECT_EQ(a.cipher, b.cipher);
  EXPECT_TRUE(a.cipher_key.equals(b.cipher_key));
  EXPECT_EQ(a.cipher_key.size(), b.cipher_key.size());
  EXPECT_EQ(a.integ, b.integ);
  EXPECT_TRUE(a.integ_key.equals(b.integ_key));
  EXPECT_EQ(a.integ_key.size(), b.integ_key.size());
  EXPECT_EQ(a.esn, b.esn);
  EXPECT_EQ(a.anti_replay, b.anti_replay);
  EXPECT_EQ(a.replay_window, b.replay_window);
  EXPECT_EQ(a.encap.enabled, b.encap.enabled);
  EXPECT_EQ(a.encap.sport, b.encap.sport);
  EXPECT_EQ(a.encap.dport, b.encap.dport);
  EXPECT_EQ(a.outer_ttl, b.outer_ttl);
  EXPECT_EQ(a.copy_dscp, b.copy_dscp);
  EXPECT_EQ(a.tfc_pad_to, b.tfc_pad_to);
  EXPECT_EQ(a.soft.bytes, b.soft.bytes);
  EXPECT_EQ(a.soft.packets, b.soft.packets);
  EXPECT_EQ(a.soft.add_seconds, b.soft.add_seconds);
  EXPECT_EQ(a.hard.bytes, b.hard.bytes);
  EXPECT_EQ(a.hard.packets, b.hard.packets);
  EXPECT_EQ(a.hard.add_seconds, b.hard.add_seconds);
  ASSERT_EQ(a.selectors.size(), b.selectors.size());
  for (std::size_t i = 0; i < a.selectors.size(); ++i) {
    EXPECT_EQ(a.selectors.at(i).src, b.selectors.at(i).src);
    EXPECT_EQ(a.selectors.at(i).dst, b.selectors.at(i).dst);
    EXPECT_EQ(a.selectors.at(i).proto, b.selectors.at(i).proto);
    EXPECT_EQ(a.selectors.at(i).sport, b.selectors.at(i).sport);
    EXPECT_EQ(a.selectors.at(i).dport, b.selectors.at(i).dport);
  }
}

TEST(ShmStatus, TableIsComplete) {
  std::set<std::string_view> names;
  for (const auto& s : kStatusInfo) {
    EXPECT_FALSE(s.name.empty());
    EXPECT_FALSE(s.help.empty());
    names.insert(s.name);
  }
  EXPECT_EQ(names.size(), kStatusCount);
  EXPECT_EQ(status_name(Status::batch_too_big), "batch_too_big");
  EXPECT_EQ(status_name(static_cast<Status>(999)), "?");
  EXPECT_FALSE(status_valid(static_cast<std::uint16_t>(kStatusCount)));
}

TEST(ShmMessages, EveryMessageFitsASlotAndTypesAreUnique) {
  std::set<std::uint16_t> types;
  for (const auto& m : kMsgInfo) {
    EXPECT_LE(kMsgHeaderSize + m.payload_size, kSlotSize) << m.name;
    types.insert(static_cast<std::uint16_t>(m.type));
    EXPECT_EQ(msg_info(static_cast<std::uint16_t>(m.type)), &m);
  }
  EXPECT_EQ(types.size(), kMsgInfo.size());
  EXPECT_EQ(msg_info(0x4242), nullptr);
}

TEST(ShmMessages, SaRoundTripEveryAlgorithmWithKeys) {
  int n = 0;
  for (const auto& c : cipher_table()) {
    for (const auto& i : integ_table()) {
      if (c.aead != (i.alg == IntegAlg::none)) continue;  // validate_sa's rule
      SaConfig sa = make_sa(0x1000 + static_cast<std::uint32_t>(n), c.alg, i.alg,
                            static_cast<std::uint8_t>(0x20 + n));
      sa.esn = (n % 2) == 0;
      sa.encap = UdpEncap{true, 4500, 14500};
      sa.tfc_pad_to = 512;
      sa.copy_dscp = false;
      sa.outer_ttl = 17;
      wire::Sa w;
      ASSERT_TRUE(encode_sa(sa, w).ok());
      auto back = decode_sa(w);
      ASSERT_TRUE(back.ok()) << c.name << "/" << i.name << ": " << back.error().message;
      expect_same_sa(sa, *back);
      // And as a whole message, sa_add and sa_update.
      for (bool update : {false, true}) {
        Command in{static_cast<std::uint64_t>(n + 1), update ? CommandBody{SaUpdate{sa}} : CommandBody{SaAdd{sa}}};
        Command out;
        std::string why;
        ASSERT_EQ(roundtrip(in, out, why), Status::ok) << why;
        const SaConfig& got = update ? std::get<SaUpdate>(out.body).sa : std::get<SaAdd>(out.body).sa;
        expect_same_sa(sa, got);
      }
      ++n;
    }
  }
  EXPECT_EQ(n, 3 + 3 * 4);  // 3 AEADs with none, null + 2 CBCs with 4 HMACs
}

TEST(ShmMessages, SaIpv6TransportNoReplayAndEightSelectors) {
  SaConfig sa = make_sa(0xdeadbeef, CipherAlg::chacha20_poly1305);
  sa.src = IpAddress::parse("2001:db8::1").value();
  sa.dst = IpAddress::parse("2001:db8::2").value();
  sa.mode = Mode::transport;
  sa.anti_replay = false;
  sa.replay_window = 0;
  sa.selectors.clear();
  for (int i = 0; i < 8; ++i) {
    Selector s;
    s.src = IpPrefix::parse("2001:db8:" + std::to_string(i) + "::/48").value();
    s.dst = IpPrefix::parse("2001:db8:ff::/64").value();
    s.proto = kProtoIcmpv6;
    s.sport = PortRange{128, 129};
    sa.selectors.push_back(s);
  }
  wire::Sa w;
  ASSERT_TRUE(encode_sa(sa, w).ok());
  auto back = decode_sa(w);
  ASSERT_TRUE(back.ok()) << back.error().message;
  expect_same_sa(sa, *back);

  sa.selectors.push_back(sa.selectors.at(0));
  auto r = encode_sa(sa, w);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("at most 8"), std::string::npos) << r.error().message;
}

TEST(ShmMessages, DecodeRefusesWhatValidateSaRefuses) {
  SaConfig sa = make_sa(100);  // reserved SPI
  wire::Sa w;
  ASSERT_TRUE(encode_sa(sa, w).ok());
  SaConfig out;
  std::string why;
  EXPECT_EQ(decode_sa(w, out, why), Status::invalid);
  EXPECT_NE(why.find("reserved"), std::string::npos) << why;
  EXPECT_EQ(why.find("0x"), std::string::npos);

  sa = make_sa(4096);
  sa.cipher_key = testing::key_of(16, 1);  // GCM needs 20
  ASSERT_TRUE(encode_sa(sa, w).ok());
  EXPECT_EQ(decode_sa(w, out, why), Status::invalid);
  EXPECT_NE(why.find("20-byte key"), std::string::npos) << why;
  EXPECT_TRUE(out.cipher_key.empty());  // nothing half-decoded is left with keys
}

TEST(ShmMessages, PolicyRoundTripEveryAction) {
  for (auto a : {PolicyAction::protect, PolicyAction::bypass, PolicyAction::discard, PolicyAction::trap}) {
    Policy p = make_policy(50, a);
    wire::Policy w;
    ASSERT_TRUE(encode_policy(p, w).ok());
    auto back = decode_policy(w);
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(back->priority, p.priority);
    EXPECT_EQ(back->dir, p.dir);
    EXPECT_EQ(back->action, p.action);
    EXPECT_EQ(back->reqid, p.reqid);
    EXPECT_EQ(back->sel.src, p.sel.src);
    EXPECT_EQ(back->sel.dst, p.sel.dst);
    EXPECT_EQ(back->sel.proto, p.sel.proto);
    EXPECT_EQ(back->sel.sport, p.sel.sport);
    EXPECT_EQ(back->sel.dport, p.sel.dport);
  }
  Policy bad = make_policy(50, PolicyAction::bypass);
  bad.reqid = 3;
  wire::Policy w;
  ASSERT_TRUE(encode_policy(bad, w).ok());
  Policy out;
  std::string why;
  EXPECT_EQ(decode_policy(w, out, why), Status::invalid);
  EXPECT_NE(why.find("takes no reqid"), std::string::npos) << why;
}

TEST(ShmMessages, EveryCommandRoundTrips) {
  const SaKey key{0x1234, Direction::out, IpAddress::parse("2001:db8::9").value()};
  CountersQuery one;
  one.scope = CounterScope::one;
  one.sa = key;
  one.cursor = 5;
  one.max = 10;
  const std::vector<CommandBody> bodies = {
      Hello{42, kHelloSubscribe, kVersionMajor, kVersionMinor, "cygnet-ike"},
      SaAdd{make_sa(0x1001)},
      SaUpdate{make_sa(0x1002)},
      SaDelete{key},
      PolicyAdd{make_policy(10)},
      PolicyDelete{make_policy(10)},
      BatchBegin{17},
      BatchCommit{},
      BatchAbort{},
      CountersQuery{},
      one,
  };
  std::uint64_t id = 100;
  for (const auto& b : bodies) {
    Command in{id++, b};
    Command out;
    std::string why;
    ASSERT_EQ(roundtrip(in, out, why), Status::ok) << msg_name(static_cast<std::uint16_t>(command_type(b))) << ": "
                                                   << why;
    EXPECT_EQ(out.id, in.id);
    EXPECT_EQ(command_type(out.body), command_type(in.body));
    if (const auto* h = std::get_if<Hello>(&out.body)) {
      EXPECT_EQ(h->pid, 42u);
      EXPECT_EQ(h->flags, kHelloSubscribe);
      EXPECT_EQ(h->name, "cygnet-ike");
    }
    if (const auto* d = std::get_if<SaDelete>(&out.body)) {
      EXPECT_EQ(d->key, key);
    }
    if (const auto* p = std::get_if<PolicyDelete>(&out.body)) {
      EXPECT_EQ(p->policy.dir, PolicyDir::out);
      EXPECT_EQ(p->policy.sel.dst, make_policy(10).sel.dst);
    }
    if (const auto* bb = std::get_if<BatchBegin>(&out.body)) {
      EXPECT_EQ(bb->expected, 17u);
    }
    if (const auto* q = std::get_if<CountersQuery>(&out.body); q && q->scope == CounterScope::one) {
      EXPECT_EQ(q->sa, key);
      EXPECT_EQ(q->cursor, 5u);
      EXPECT_EQ(q->max, 10u);
    }
  }
}

TEST(ShmMessages, EveryEventRoundTrips) {
  const SaKey key{0x4321, Direction::in, IpAddress::v4(0xc6336401)};
  SaCounters c;
  c.sa = key;
  c.reqid = 9;
  c.packets = 1;
  c.bytes = 2;
  c.n_drops = 32;
  for (std::size_t i = 0; i < 32; ++i) c.drops.at(i) = i * 3;
  Acquire acq;
  acq.reqid = 5;
  acq.policy_index = 77;
  acq.flow = FlowKey{IpAddress::v4(0x0a000001), IpAddress::v4(0x0a010001), kProtoUdp, 5000, 53, true};
  const std::vector<EventBody> bodies = {
      Ack{99, 12345, Status::invalid, static_cast<std::uint16_t>(MsgType::sa_add), "SPI 1 is reserved"},
      SaExpired{false, key, 9, ExpiryKind::bytes, 1000, 10},
      SaExpired{true, key, 9, ExpiryKind::packets, 2000, 20},
      SeqExhausted{key, 9},
      acq,
      NatMappingChanged{key, 9, IpAddress::v4(0xcb007101), IpAddress::v4(0xcb007102), 4500, 31000},
      Counters{1234, c},
      EventsLost{17},
  };
  std::uint64_t id = 1;
  for (const auto& b : bodies) {
    MsgBuf buf;
    ASSERT_TRUE(encode_event(Event{id, b}, buf).ok());
    MsgBuf slot;
    std::memcpy(slot.data(), buf.data(), buf.size());
    Event out;
    std::string why;
    ASSERT_EQ(parse_event(slot.raw(), out, why), Status::ok) << why;
    EXPECT_EQ(out.id, id);
    EXPECT_EQ(event_type(out.body), event_type(b));
    ++id;
    if (const auto* a = std::get_if<Ack>(&out.body)) {
      EXPECT_EQ(a->cmd_id, 99u);
      EXPECT_EQ(a->value, 12345u);
      EXPECT_EQ(a->status, Status::invalid);
      EXPECT_EQ(a->text, "SPI 1 is reserved");
    }
    if (const auto* x = std::get_if<SaExpired>(&out.body)) {
      EXPECT_EQ(x->sa, key);
      EXPECT_EQ(x->which, x->hard ? ExpiryKind::packets : ExpiryKind::bytes);
    }
    if (const auto* a = std::get_if<Acquire>(&out.body)) {
      EXPECT_EQ(a->policy_index, 77u);
      EXPECT_EQ(a->flow.src, acq.flow.src);
      EXPECT_EQ(a->flow.dport, 53);
      EXPECT_TRUE(a->flow.opaque_ports);
    }
    if (const auto* n = std::get_if<NatMappingChanged>(&out.body)) {
      EXPECT_EQ(n->new_port, 31000);
      EXPECT_EQ(n->new_addr, IpAddress::v4(0xcb007102));
    }
    if (const auto* k = std::get_if<Counters>(&out.body)) {
      EXPECT_EQ(k->query_id, 1234u);
      EXPECT_EQ(k->c.n_drops, 32);
      EXPECT_EQ(k->c.drops.at(31), 93u);
    }
    if (const auto* l = std::get_if<EventsLost>(&out.body)) {
      EXPECT_EQ(l->count, 17u);
    }
  }
}

TEST(ShmMessages, AckTextIsSanitisedAndBounded) {
  std::string t(500, 'x');
  t[3] = '\n';
  const std::string s = ack_text(t);
  EXPECT_EQ(s.size(), kMaxAckText);
  EXPECT_EQ(s[3], '?');
}

// A valid sa_add, to be broken one field at a time.
MsgBuf valid_sa_add() {
  MsgBuf b;
  EXPECT_TRUE(encode_command(Command{7, SaAdd{make_sa(0x5000)}}, b).ok());
  return b;
}

template <typename T>
void poke(MsgBuf& b, std::size_t offset, T v) {
  std::memcpy(b.data() + offset, &v, sizeof v);
}

constexpr std::size_t kP = kMsgHeaderSize;  // payload offset

TEST(ShmMessages, MalformedCommandsGetTheRightStatus) {
  struct Case {
    const char* what;
    std::function<void(MsgBuf&)> mutate;
    Status want;
  };
  const std::vector<Case> cases = {
      {"unknown type", [](MsgBuf& b) { poke<std::uint16_t>(b, 0, 0x0777); }, Status::unknown_type},
      {"event type as command", [](MsgBuf& b) { poke<std::uint16_t>(b, 0, 0x8001); }, Status::unknown_type},
      {"version 2", [](MsgBuf& b) { poke<std::uint16_t>(b, 2, 2); }, Status::bad_version},
      {"length too big", [](MsgBuf& b) { poke<std::uint32_t>(b, 4, kSlotSize + 1); }, Status::bad_length},
      {"length huge", [](MsgBuf& b) { poke<std::uint32_t>(b, 4, 0xffffffffu); }, Status::bad_length},
      {"length too small", [](MsgBuf& b) { poke<std::uint32_t>(b, 4, 8); }, Status::bad_length},
      {"truncated payload", [](MsgBuf& b) { poke<std::uint32_t>(b, 4, b.size() - 1); }, Status::bad_length},
      {"trailing bytes", [](MsgBuf& b) { poke<std::uint32_t>(b, 4, b.size() + 8); }, Status::bad_length},
      {"id 0", [](MsgBuf& b) { poke<std::uint64_t>(b, 8, 0); }, Status::malformed},
      {"direction 2", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, dir), 2); }, Status::malformed},
      {"mode 9", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, mode), 9); }, Status::malformed},
      {"cipher 200", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, cipher), 200); },
       Status::malformed},
      {"integ 6", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, integ), 6); }, Status::malformed},
      {"family 5", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, src_family), 5); },
       Status::malformed},
      {"v4 address tail", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, dst) + 9, 1); },
       Status::malformed},
      {"key length 65", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, cipher_key_len), 65); },
       Status::malformed},
      {"byte past the key", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, cipher_key) + 30, 1); },
       Status::malformed},
      {"unknown flag", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, flags), 0x80); },
       Status::malformed},
      {"reserved byte", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, reserved0), 1); },
       Status::malformed},
      {"9 selectors", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, n_selectors), 9); },
       Status::malformed},
      {"unused selector set", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, sel) + 48 + 4, 6); },
       Status::malformed},
      {"selector reserved", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, sel) + 5, 1); },
       Status::malformed},
      {"reserved SPI", [](MsgBuf& b) { poke<std::uint32_t>(b, kP + offsetof(wire::Sa, spi), 5); }, Status::invalid},
      {"key too short", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, cipher_key_len), 19); },
       Status::malformed},  // byte 19 of the key is then "past the key" and not zero
      {"soft above hard", [](MsgBuf& b) { poke<std::uint64_t>(b, kP + offsetof(wire::Sa, soft_bytes), 5000); },
       Status::invalid},
      {"prefix too long", [](MsgBuf& b) { poke<std::uint8_t>(b, kP + offsetof(wire::Sa, sel) + 2, 33); },
       Status::invalid},
  };
  for (const auto& c : cases) {
    MsgBuf b = valid_sa_add();
    c.mutate(b);
    std::string why;
    EXPECT_EQ(parse_raw(b, why), c.want) << c.what << ": " << why;
    EXPECT_FALSE(why.empty()) << c.what;
  }
}

TEST(ShmMessages, ShortRawBufferIsBadLength) {
  std::array<std::uint8_t, 8> tiny{};
  Command out;
  std::uint64_t id = 1;
  std::uint16_t type = 1;
  std::string why;
  EXPECT_EQ(parse_command(tiny, out, id, type, why), Status::bad_length);
  Event e;
  EXPECT_EQ(parse_event(tiny, e, why), Status::bad_length);
}

TEST(ShmMessages, MalformedEventsAreRefused) {
  MsgBuf b;
  ASSERT_TRUE(encode_event(Event{3, Ack{1, 0, Status::ok, 2, "fine"}}, b).ok());
  auto parse = [](const MsgBuf& m, std::string& why) {
    MsgBuf slot;
    std::memcpy(slot.data(), m.data(), m.size());
    Event e;
    return parse_event(slot.raw(), e, why);
  };
  std::string why;
  MsgBuf x = b;
  poke<std::uint16_t>(x, kP + offsetof(wire::Ack, status), 999);
  EXPECT_EQ(parse(x, why), Status::malformed) << why;
  x = b;
  poke<std::uint16_t>(x, kP + offsetof(wire::Ack, text_len), 201);
  EXPECT_EQ(parse(x, why), Status::malformed) << why;
  x = b;
  poke<std::uint8_t>(x, kP + offsetof(wire::Ack, text), 1);
  EXPECT_EQ(parse(x, why), Status::malformed) << why;
  x = b;
  poke<std::uint16_t>(x, 0, static_cast<std::uint16_t>(MsgType::sa_add));
  EXPECT_EQ(parse(x, why), Status::unknown_type) << why;

  ASSERT_TRUE(encode_event(Event{4, Counters{1, SaCounters{SaKey{999, Direction::in, IpAddress::v4(1)}, 0, 0, 0, 2, {}}}}, b)
                  .ok());
  x = b;
  poke<std::uint8_t>(x, kP + offsetof(wire::Counters, n_drops), 33);
  EXPECT_EQ(parse(x, why), Status::malformed) << why;
  x = b;
  poke<std::uint64_t>(x, kP + offsetof(wire::Counters, drops) + 8 * 5, 1);
  EXPECT_EQ(parse(x, why), Status::malformed) << why;
}

// Seeded random mutation of valid messages: never a crash, never an
// unvalidated SA or policy, always a status from the table.
TEST(ShmMessages, RandomMutationsNeverCrashOrPassUnvalidated) {
  std::mt19937_64 rng(0xC7C7E7);
  std::vector<MsgBuf> seeds;
  const std::vector<CommandBody> bodies = {
      Hello{1, 0, kVersionMajor, kVersionMinor, "x"}, SaAdd{make_sa(0x7000)},
      SaUpdate{make_sa(0x7001, CipherAlg::aes_cbc_256, IntegAlg::hmac_sha512_256)},
      SaDelete{SaKey{0x7002, Direction::in, IpAddress::v4(5)}}, PolicyAdd{make_policy(1)},
      PolicyDelete{make_policy(1)}, BatchBegin{}, BatchCommit{}, BatchAbort{}, CountersQuery{}};
  for (const auto& body : bodies) {
    seeds.emplace_back();
    ASSERT_TRUE(encode_command(9, body, seeds.back()).ok());
  }
  std::array<std::size_t, kStatusCount> seen{};
  const int kRounds = 100000;
  for (int n = 0; n < kRounds; ++n) {
    const MsgBuf& seed = seeds.at(static_cast<std::size_t>(rng() % seeds.size()));
    MsgBuf slot;
    std::memcpy(slot.data(), seed.data(), seed.size());
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Mostly inside the message, sometimes the header, sometimes anywhere in the slot.
      const std::size_t span = (rng() % 8 == 0) ? kSlotSize : seed.size();
      const std::size_t at = static_cast<std::size_t>(rng() % span);
      switch (rng() % 3) {
        case 0: slot.data()[at] = static_cast<std::uint8_t>(rng()); break;
        case 1: slot.data()[at] ^= static_cast<std::uint8_t>(1u << (rng() % 8)); break;
        default: slot.data()[at] = (rng() % 2) ? 0xff : 0x00; break;
      }
    }
    Command out;
    std::uint64_t id = 0;
    std::uint16_t type = 0;
    std::string why;
    const Status s = parse_command(slot.raw(), out, id, type, why);
    ASSERT_LT(static_cast<std::size_t>(s), kStatusCount);
    ++seen.at(static_cast<std::size_t>(s));
    if (s == Status::ok) {
      if (const auto* a = std::get_if<SaAdd>(&out.body)) {
        ASSERT_TRUE(validate_sa(a->sa).ok());
      }
      if (const auto* u = std::get_if<SaUpdate>(&out.body)) {
        ASSERT_TRUE(validate_sa(u->sa).ok());
      }
      if (const auto* p = std::get_if<PolicyAdd>(&out.body)) {
        ASSERT_TRUE(validate_policy(p->policy).ok());
      }
    } else {
      ASSERT_FALSE(why.empty());
    }
  }
  for (Status s : {Status::ok, Status::malformed, Status::unknown_type, Status::bad_length, Status::bad_version,
                   Status::invalid}) {
    EXPECT_GT(seen.at(static_cast<std::size_t>(s)), 0u) << status_name(s);
  }
}

TEST(ShmMessages, RandomEventMutationsNeverCrash) {
  std::mt19937_64 rng(42);
  MsgBuf seed;
  ASSERT_TRUE(encode_event(Event{1, Ack{1, 2, Status::ok, 2, "text"}}, seed).ok());
  for (int n = 0; n < 20000; ++n) {
    MsgBuf slot;
    std::memcpy(slot.data(), seed.data(), seed.size());
    slot.data()[rng() % seed.size()] = static_cast<std::uint8_t>(rng());
    slot.data()[rng() % kMsgHeaderSize] ^= static_cast<std::uint8_t>(rng() % 2);
    Event e;
    std::string why;
    ASSERT_LT(static_cast<std::size_t>(parse_event(slot.raw(), e, why)), kStatusCount);
  }
}

TEST(ShmMessages, EncoderRefusesWhatTheWireCannotCarry) {
  MsgBuf b;
  EXPECT_FALSE(encode_command(0, BatchCommit{}, b).ok());
  EXPECT_FALSE(encode_command(1, Hello{1, 0, 1, 0, std::string(40, 'a')}, b).ok());
  EXPECT_FALSE(encode_command(1, Hello{1, 0, 1, 0, ""}, b).ok());
  SaCounters c;
  c.n_drops = 33;
  EXPECT_FALSE(encode_event(Event{1, Counters{1, c}}, b).ok());
}

}  // namespace
}  // namespace cygnet::shm
