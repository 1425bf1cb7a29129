// Tests of the IKEv2 codec: round trips of every payload, hand-built byte
// vectors for every rejection (with the notify the daemon must answer),
// every prefix of a valid message, SK seal/open, UDP 4500 framing.
#include "cp/ike/msg/msg.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "cp/ike/msg/samples.h"
#include "cp/ike/msg/test_cipher.h"

namespace cygnet::ike {
namespace {

using testing::NullCipher;
using testing::XorCipher;

// ---- byte builders ----
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
Bytes be16(std::size_t v) { return {static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)}; }

// IKE header with the given first payload; length = 28 + body (or `len`).
Bytes msg(std::uint8_t next, const Bytes& body, std::optional<std::uint32_t> len = {}, std::uint8_t version = 0x20) {
  std::uint32_t l = len ? *len : static_cast<std::uint32_t>(28 + body.size());
  Bytes h = {1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, next, version, 34, 0x08, 0, 0, 0, 0,
             static_cast<std::uint8_t>(l >> 24), static_cast<std::uint8_t>(l >> 16), static_cast<std::uint8_t>(l >> 8),
             static_cast<std::uint8_t>(l)};
  return cat({h, body});
}
// Generic payload header + body; `len` overrides the length field.
Bytes pl(std::uint8_t next, const Bytes& body, bool critical = false, std::optional<std::size_t> len = {}) {
  return cat({{next, static_cast<std::uint8_t>(critical ? 0x80 : 0)}, be16(len ? *len : 4 + body.size()), body});
}
Bytes nonce_body(std::size_t n = 16) { return Bytes(n, 0xab); }
Bytes xform(std::uint8_t last, std::uint8_t type, std::uint16_t id, const Bytes& attrs = {},
                std::optional<std::size_t> len = {}) {
  return cat({{last, 0}, be16(len ? *len : 8 + attrs.size()), {type, 0}, be16(id), attrs});
}
Bytes proposal(std::uint8_t last, std::uint8_t num, std::uint8_t proto, const Bytes& spi, std::uint8_t ntrans,
               const Bytes& transforms, std::optional<std::size_t> len = {}) {
  return cat({{last, 0}, be16(len ? *len : 8 + spi.size() + transforms.size()),
              {num, proto, static_cast<std::uint8_t>(spi.size()), ntrans}, spi, transforms});
}
Bytes keylen(std::uint16_t bits) { return cat({{0x80, 14}, be16(bits)}); }
Bytes ts4(std::uint8_t proto, std::uint16_t p0, std::uint16_t p1, Bytes a0, Bytes a1,
          std::optional<std::size_t> len = {}) {
  return cat({{7, proto}, be16(len ? *len : 16), be16(p0), be16(p1), a0, a1});
}

DecodeError expect_error(const Bytes& b) {
  auto m = decode(b);
  EXPECT_FALSE(m.ok()) << "decoded:\n" << (m.ok() ? to_text(m.value()) : "");
  if (m.ok()) return DecodeError{NotifyType::none, 0, 0, "(decoded)"};
  return m.error();
}

void expect_syntax(const Bytes& b, const std::string& part) {
  DecodeError e = expect_error(b);
  EXPECT_EQ(e.notify, NotifyType::invalid_syntax) << e.message;
  EXPECT_NE(e.message.find(part), std::string::npos) << "message: " << e.message << "\nwanted: " << part;
}

Message normalized(Message m) {
  m.header.length = 0;
  m.header.next_payload = PayloadType::none;
  return m;
}

// ---- hand-built vectors that decode ----

TEST(IkeMsgDecode, MinimalHeaderOnly) {
  Bytes b = msg(0, {});
  auto m = decode(b);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->header.spi_i, 0x0102030405060708ull);
  EXPECT_EQ(m->header.spi_r, 0u);
  EXPECT_EQ(m->header.exchange, ExchangeType::ike_sa_init);
  EXPECT_TRUE(m->header.initiator());
  EXPECT_FALSE(m->header.response());
  EXPECT_EQ(m->header.length, 28u);
  EXPECT_TRUE(m->payloads.empty());
  EXPECT_FALSE(m->sk.has_value());
}

TEST(IkeMsgDecode, HandBuiltSaKeNonce) {
  Bytes sa = cat({proposal(2, 1, 1, {}, 2, cat({xform(3, 1, 12, keylen(256)), xform(0, 4, 19)})),
                  proposal(0, 2, 1, {}, 1, xform(0, 1, 20, keylen(128)))});
  Bytes ke = cat({be16(19), {0, 0}, Bytes(64, 0x42)});
  Bytes b = msg(33, cat({pl(34, sa), pl(40, ke), pl(0, nonce_body(32))}));
  auto m = decode(b);
  ASSERT_TRUE(m.ok()) << m.error().message;
  ASSERT_EQ(m->payloads.size(), 3u);
  const auto& s = std::get<SaPayload>(m->payloads[0]);
  ASSERT_EQ(s.proposals.size(), 2u);
  EXPECT_EQ(s.proposals[0].number, 1);
  EXPECT_EQ(s.proposals[0].protocol, Protocol::ike);
  ASSERT_EQ(s.proposals[0].transforms.size(), 2u);
  EXPECT_EQ(s.proposals[0].transforms[0].type, TransformType::encr);
  EXPECT_EQ(s.proposals[0].transforms[0].id, 12);
  EXPECT_EQ(s.proposals[0].transforms[0].key_length(), std::optional<std::uint16_t>(256));
  EXPECT_EQ(s.proposals[0].transforms[1].type, TransformType::dh);
  EXPECT_EQ(s.proposals[0].transforms[1].key_length(), std::nullopt);
  EXPECT_EQ(s.proposals[1].transforms[0].key_length(), std::optional<std::uint16_t>(128));
  const auto& k = std::get<KePayload>(m->payloads[1]);
  EXPECT_EQ(k.group, 19);
  EXPECT_EQ(k.data, Bytes(64, 0x42));
  EXPECT_EQ(std::get<NoncePayload>(m->payloads[2]).data, nonce_body(32));
  // And our encoder writes exactly these bytes back.
  auto e = encode(m.value());
  ASSERT_TRUE(e.ok()) << e.error().message;
  EXPECT_EQ(e.value(), b);
}

TEST(IkeMsgDecode, EncodeWritesTheRfcLayout) {
  Message m;
  m.header.spi_i = 0x0102030405060708ull;
  m.header.flags = kFlagInitiator;
  m.payloads.push_back(NoncePayload{nonce_body()});
  m.payloads.push_back(NotifyPayload::make(NotifyType::cookie, Bytes{9, 9}));
  auto e = encode(m);
  ASSERT_TRUE(e.ok());
  Bytes want = msg(40, cat({pl(41, nonce_body()), pl(0, {0, 0, 0x40, 0x06, 9, 9})}));
  EXPECT_EQ(e.value(), want);
}

TEST(IkeMsgDecode, NonCriticalUnknownPayloadIsKeptAndSkipped) {
  Bytes b = msg(200, cat({pl(40, {1, 2, 3}), pl(0, nonce_body())}));
  auto m = decode(b);
  ASSERT_TRUE(m.ok()) << m.error().message;
  ASSERT_EQ(m->payloads.size(), 2u);
  const auto& u = std::get<UnknownPayload>(m->payloads[0]);
  EXPECT_EQ(u.type, 200);
  EXPECT_FALSE(u.critical);
  EXPECT_EQ(u.body, (Bytes{1, 2, 3}));
  EXPECT_EQ(std::get<NoncePayload>(m->payloads[1]).data, nonce_body());
  EXPECT_EQ(encode(m.value()).value(), b);
}

TEST(IkeMsgDecode, CriticalBitOnAKnownPayloadIsIgnored) {
  Bytes b = msg(40, pl(0, nonce_body(), true));
  auto m = decode(b);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(std::get<NoncePayload>(m->payloads[0]).data, nonce_body());
}

TEST(IkeMsgDecode, NotifyProtocolIgnoredWithoutSpi) {
  auto m = decode(msg(41, pl(0, {3, 0, 0x40, 0x00})));
  ASSERT_TRUE(m.ok()) << m.error().message;
  const auto& n = std::get<NotifyPayload>(m->payloads[0]);
  EXPECT_EQ(n.type, NotifyType::initial_contact);
  EXPECT_EQ(n.protocol, Protocol::none);
  EXPECT_TRUE(n.spi.empty());
}

// ---- rejections ----

TEST(IkeMsgReject, TruncatedHeaderAnswersNothing) {
  Bytes b = msg(0, {});
  for (std::size_t n = 0; n < 28; ++n) {
    auto m = decode(std::span<const std::uint8_t>(b.data(), n));
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.error().notify, NotifyType::none) << n;
  }
}

TEST(IkeMsgReject, HeaderLength) {
  expect_syntax(msg(0, {}, 29), "header length 29 but the datagram has 28");
  expect_syntax(msg(0, {}, 27), "header length 27 < 28");
  expect_syntax(msg(0, {}, 0), "header length 0 < 28");
  expect_syntax(msg(0, {}, 0xffffffffu), "header length 4294967295");
  // Trailing bytes after the header's length: refused (docs/ike-codec.md).
  Bytes b = msg(0, {});
  b.push_back(0);
  b[27] = 28;
  expect_syntax(b, "trailing bytes are refused");
}

TEST(IkeMsgReject, MajorVersion) {
  for (std::uint8_t v : {0x30, 0x10, 0x00, 0xf0}) {
    DecodeError e = expect_error(msg(0, {}, {}, v));
    EXPECT_EQ(e.notify, NotifyType::invalid_major_version) << int(v);
    EXPECT_EQ(e.notify_data(), Bytes{0x20});
  }
  // The minor version is ignored (RFC 7296 2.5).
  auto m = decode(msg(0, {}, {}, 0x21));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->header.minor, 1);
}

TEST(IkeMsgReject, PayloadLengths) {
  expect_syntax(msg(40, pl(0, nonce_body(), false, 3)), "payload length 3 < 4");
  expect_syntax(msg(40, pl(0, nonce_body(), false, 0)), "payload length 0 < 4");
  expect_syntax(msg(40, pl(0, nonce_body(), false, 21)), "overruns the message by 1 bytes");
  expect_syntax(msg(40, pl(0, nonce_body(), false, 0xffff)), "overruns the message");
  // Too small: the rest of the body is left over.
  expect_syntax(msg(40, pl(0, nonce_body(), false, 19)), "");
}

TEST(IkeMsgReject, BrokenChain) {
  // The header announces a payload, there is none.
  expect_syntax(msg(40, {}), "payload Ni/Nr (40) announced but the message ends");
  // The last payload announces another.
  expect_syntax(msg(40, pl(41, nonce_body())), "payload N (41) announced but the message ends");
  // A partial generic header.
  expect_syntax(msg(40, cat({pl(41, nonce_body()), {0, 0}})), "announced but the message ends");
  // The chain ends, bytes remain.
  expect_syntax(msg(40, cat({pl(0, nonce_body()), {0, 0, 0, 4}})), "4 bytes after the last payload");
  expect_syntax(msg(0, {0, 0, 0, 4}), "4 bytes after the last payload");
}

TEST(IkeMsgReject, UnknownCriticalPayload) {
  DecodeError e = expect_error(msg(40, cat({pl(200, nonce_body()), pl(0, {1}, true)})));
  EXPECT_EQ(e.notify, NotifyType::unsupported_critical_payload);
  EXPECT_EQ(e.payload_type, 200);
  EXPECT_EQ(e.notify_data(), Bytes{200});
  EXPECT_EQ(e.offset, 28u + 20u);
}

TEST(IkeMsgReject, ProposalTransformCount) {
  Bytes two = cat({xform(3, 1, 12, keylen(128)), xform(0, 3, 12)});
  expect_syntax(msg(33, pl(0, proposal(0, 1, 1, {}, 3, two))), "declares 3 transforms, has 2");
  expect_syntax(msg(33, pl(0, proposal(0, 1, 1, {}, 1, two))), "more transforms than the 1");
  expect_syntax(msg(33, pl(0, proposal(0, 1, 1, {}, 0, {}))), "proposal without transforms");
  // Last Substruc disagreeing with the position.
  expect_syntax(msg(33, pl(0, proposal(0, 1, 1, {}, 2, cat({xform(0, 1, 12), xform(0, 3, 12)})))),
                "transform marked last but more bytes follow");
  expect_syntax(msg(33, pl(0, proposal(0, 1, 1, {}, 1, xform(3, 1, 12)))),
                "transform announces another but the proposal ends");
  expect_syntax(msg(33, pl(0, proposal(0, 1, 1, {}, 1, xform(1, 1, 12)))), "transform Last Substruc 1");
}

TEST(IkeMsgReject, ProposalStructure) {
  Bytes t = xform(0, 1, 12);
  // A lone proposal may carry any number but 0 (a responder's answer, 3.3.1).
  expect_syntax(msg(33, pl(0, proposal(0, 0, 1, {}, 1, t))), "proposal number 0, expected 1");
  expect_syntax(msg(33, pl(0, cat({proposal(2, 1, 1, {}, 1, t), proposal(0, 3, 1, {}, 1, t)}))),
                "proposal number 3, expected 2");
  expect_syntax(msg(33, pl(0, cat({proposal(0, 1, 1, {}, 1, t), proposal(0, 2, 1, {}, 1, t)}))),
                "proposal marked last but more bytes follow");
  expect_syntax(msg(33, pl(0, proposal(2, 1, 1, {}, 1, t))), "proposal announces another");
  expect_syntax(msg(33, pl(0, proposal(0, 1, 4, {}, 1, t))), "proposal protocol 4");
  expect_syntax(msg(33, pl(0, proposal(0, 1, 3, {}, 1, t))), "proposal SPI size 0 for protocol 3");
  expect_syntax(msg(33, pl(0, proposal(0, 1, 1, {1, 2, 3, 4}, 1, t))), "proposal SPI size 4 for protocol 1");
  expect_syntax(msg(33, pl(0, proposal(0, 1, 1, {}, 1, t, 7))), "proposal length 7 < 8");
  expect_syntax(msg(33, pl(0, proposal(0, 1, 1, {}, 1, t, 17))), "proposal length 17 overruns");
  expect_syntax(msg(33, pl(0, proposal(0, 1, 1, {}, 1, xform(0, 1, 12, {}, 9)))),
                "transform length 9 overruns");
  expect_syntax(msg(33, pl(0, proposal(0, 1, 1, {}, 1, xform(0, 1, 12, {}, 7)))), "transform length 7 < 8");
  expect_syntax(msg(33, pl(0, Bytes{})), "SA payload without proposals");
  expect_syntax(msg(33, pl(0, Bytes{0, 0, 0, 8})), "proposal header truncated");
}

TEST(IkeMsgDecode, LoneProposalKeepsItsNumber) {
  // A responder's SA: the accepted proposal under its number in the request.
  Bytes b = msg(33, pl(0, proposal(0, 3, 3, {1, 2, 3, 4}, 1, xform(0, 1, 12, keylen(128)))));
  auto m = decode(b);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(std::get<SaPayload>(m->payloads[0]).proposals[0].number, 3);
  EXPECT_EQ(encode(m.value()).value(), b);
}

TEST(IkeMsgReject, TransformAttributes) {
  auto sa_with = [](const Bytes& attrs) { return msg(33, pl(0, proposal(0, 1, 1, {}, 1, xform(0, 1, 12, attrs)))); };
  expect_syntax(sa_with({0x80, 14, 1}), "transform attribute truncated");
  expect_syntax(sa_with({0x00, 14, 0, 2, 1, 0}), "Key Length attribute in TLV form");
  expect_syntax(sa_with({0x00, 15, 0, 3, 1, 0}), "transform attribute length 3 overruns");
  expect_syntax(sa_with(cat({keylen(128), keylen(256)})), "attribute type 14 repeated");
  // A TLV attribute of another type is kept.
  auto m = decode(sa_with({0x00, 15, 0, 2, 7, 8}));
  ASSERT_TRUE(m.ok()) << m.error().message;
  const auto& a = std::get<SaPayload>(m->payloads[0]).proposals[0].transforms[0].attributes;
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].type, 15);
  EXPECT_FALSE(a[0].tv);
  EXPECT_EQ(a[0].data, (Bytes{7, 8}));
  EXPECT_EQ(encode(m.value()).value(), sa_with({0x00, 15, 0, 2, 7, 8}));
  auto m2 = decode(sa_with(cat({keylen(128), {0x00, 15, 0, 0}, {0x80, 16, 0, 1}})));
  ASSERT_TRUE(m2.ok()) << m2.error().message;
  EXPECT_EQ(std::get<SaPayload>(m2->payloads[0]).proposals[0].transforms[0].attributes.size(), 3u);
  EXPECT_EQ(encode(m2.value()).value(), sa_with(cat({keylen(128), {0x00, 15, 0, 0}, {0x80, 16, 0, 1}})));
}

TEST(IkeMsgReject, TrafficSelectors) {
  Bytes a0 = {10, 0, 0, 0}, a1 = {10, 0, 0, 255};
  auto ts = [](std::uint8_t n, const Bytes& sels) { return msg(44, pl(0, cat({{n, 0, 0, 0}, sels}))); };
  auto ok = decode(ts(1, ts4(6, 80, 80, a0, a1)));
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  const auto& s = std::get<TsPayload>(ok->payloads[0]).selectors[0];
  EXPECT_EQ(s.ip_protocol, 6);
  EXPECT_EQ(s.start_port, 80);
  EXPECT_EQ(s.start.to_string(), "10.0.0.0");
  EXPECT_EQ(s.end.to_string(), "10.0.0.255");
  // Length 40 for an IPv4 range, or 15.
  expect_syntax(ts(1, cat({ts4(6, 80, 80, a0, a1, 40), Bytes(24, 0)})), "traffic selector type 7 of length 40 (16)");
  expect_syntax(ts(1, cat({ts4(6, 80, 80, a0, a1, 15)})), "");
  // IPv6 of length 16.
  expect_syntax(ts(1, cat({{8, 0}, be16(16), Bytes(12, 0)})), "traffic selector type 8 of length 16 (40)");
  expect_syntax(ts(2, ts4(0, 0, 65535, a0, a1)), "TS payload declares 2 selectors, has 1");
  expect_syntax(ts(1, cat({ts4(0, 0, 65535, a0, a1), ts4(0, 0, 65535, a0, a1)})), "more selectors than the 1");
  expect_syntax(ts(0, {}), "TS payload without selectors");
  expect_syntax(ts(1, ts4(0, 0, 65535, a0, a1, 17)), "traffic selector length 17 out of its payload");
  expect_syntax(msg(44, pl(0, {1, 0})), "TS payload of 2 bytes");
}

TEST(IkeMsgReject, MinimumSizes) {
  expect_syntax(msg(34, pl(0, {0, 19, 0, 0})), "KE payload of 4 bytes");
  expect_syntax(msg(40, pl(0, nonce_body(15))), "nonce of 15 bytes");
  expect_syntax(msg(40, pl(0, nonce_body(257))), "nonce of 257 bytes");
  EXPECT_TRUE(decode(msg(40, pl(0, nonce_body(256)))).ok());
  expect_syntax(msg(35, pl(0, {1, 0, 0, 0, 10, 0, 0})), "ID_IPV4_ADDR of 3 bytes");
  expect_syntax(msg(36, pl(0, cat({{5, 0, 0, 0}, Bytes(15, 1)}))), "ID_IPV6_ADDR of 15 bytes");
  expect_syntax(msg(35, pl(0, {2, 0, 0, 0})), "ID payload of 4 bytes");
  expect_syntax(msg(39, pl(0, {2, 0, 0, 0})), "AUTH payload of 4 bytes");
  expect_syntax(msg(41, pl(0, {0, 0, 0x40})), "Notify payload of 3 bytes");
  expect_syntax(msg(41, pl(0, cat({{0, 0, 0x40, 0x04}, Bytes(19, 0)}))), "NAT_DETECTION notify data of 19 bytes");
  expect_syntax(msg(41, pl(0, {0, 0, 0x40, 0x06})), "COOKIE of 0 bytes");
  expect_syntax(msg(37, pl(0, {4})), "CERT payload of 1 bytes");
  expect_syntax(msg(47, pl(0, {1, 0, 0})), "CP payload of 3 bytes");
  expect_syntax(msg(48, pl(0, {2, 1, 0, 9, 1})), "EAP length 9 but the payload holds 5 bytes");
}

TEST(IkeMsgReject, SpiSizes) {
  expect_syntax(msg(41, pl(0, {3, 3, 0, 11, 1, 2, 3})), "Notify SPI size 3");
  expect_syntax(msg(41, pl(0, {1, 4, 0, 11, 1, 2, 3, 4})), "Notify with a 4-byte SPI for IKE");
  expect_syntax(msg(41, pl(0, cat({{3, 8, 0, 11}, Bytes(8, 1)}))), "Notify with an 8-byte SPI for AH/ESP");
  expect_syntax(msg(41, pl(0, {3, 4, 0, 11, 1, 2})), "Notify SPI overruns");
  expect_syntax(msg(42, pl(0, {3, 4, 0, 2, 1, 2, 3, 4})), "Delete of 2 SPIs of 4 bytes in a body of 8 bytes");
  expect_syntax(msg(42, pl(0, {3, 8, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8})), "Delete SPI size 8 for AH/ESP");
  expect_syntax(msg(42, pl(0, {1, 0, 0, 1})), "Delete of the IKE SA with SPIs");
  expect_syntax(msg(42, pl(0, {3, 4, 0, 0})), "Delete for AH/ESP without SPIs");
  expect_syntax(msg(42, pl(0, {9, 4, 0, 0})), "Delete protocol 9");
  auto m = decode(msg(41, pl(0, {3, 4, 0, 11, 0xde, 0xad, 0xbe, 0xef, 7})));
  ASSERT_TRUE(m.ok()) << m.error().message;
  const auto& n = std::get<NotifyPayload>(m->payloads[0]);
  EXPECT_EQ(n.type, NotifyType::invalid_spi);
  EXPECT_EQ(n.protocol, Protocol::esp);
  EXPECT_EQ(n.spi, (Bytes{0xde, 0xad, 0xbe, 0xef}));
  EXPECT_EQ(n.data, Bytes{7});
}

TEST(IkeMsgReject, Caps) {
  // n empty Vendor ID payloads.
  auto vendors = [](std::size_t n) {
    Bytes chain;
    for (std::size_t i = 0; i < n; ++i) {
      Bytes p = pl(i + 1 == n ? 0 : 43, {});
      chain.insert(chain.end(), p.begin(), p.end());
    }
    return msg(43, chain);
  };
  expect_syntax(vendors(kMaxPayloads + 1), "more than 64 payloads");
  auto ok = decode(vendors(kMaxPayloads));  // exactly 64 is fine
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(ok->payloads.size(), 64u);
  Bytes props;
  for (std::size_t i = 1; i <= kMaxProposals + 1; ++i) {
    Bytes p = proposal(i == kMaxProposals + 1 ? 0 : 2, static_cast<std::uint8_t>(i), 1, {}, 1, xform(0, 1, 12));
    props.insert(props.end(), p.begin(), p.end());
  }
  expect_syntax(msg(33, pl(0, props)), "more than 64 proposals");
}

TEST(IkeMsgReject, SkNotLast) {
  // SK followed by a Nonce: SK must be the last payload (RFC 7296 3.14).
  Bytes b = msg(46, cat({pl(40, Bytes(40, 0)), pl(0, nonce_body())}));
  expect_syntax(b, "SK payload is not the last payload");
  // SK after another payload is fine (it is last).
  auto m = decode(msg(40, cat({pl(46, nonce_body()), pl(35, Bytes(40, 0))})));
  ASSERT_TRUE(m.ok()) << m.error().message;
  ASSERT_TRUE(m->sk.has_value());
  EXPECT_EQ(m->sk->inner_next, PayloadType::idi);
  EXPECT_EQ(m->sk->offset, 28u + 20u);
  EXPECT_EQ(m->sk->length, 44u);
  EXPECT_EQ(m->payloads.size(), 1u);
}

// ---- round trips ----

TEST(IkeMsgRoundTrip, EveryPayloadType) {
  std::set<std::size_t> seen;
  for (auto& [name, m] : samples::plain_samples()) {
    auto e = encode(m);
    ASSERT_TRUE(e.ok()) << name << ": " << e.error().message;
    auto d = decode(e.value());
    ASSERT_TRUE(d.ok()) << name << ": " << d.error().message;
    EXPECT_EQ(d->header.length, e->size()) << name;
    EXPECT_EQ(normalized(d.value()), normalized(m)) << name << "\n" << to_text(d.value());
    EXPECT_EQ(encode(d.value()).value(), e.value()) << name;
    for (const auto& p : m.payloads) seen.insert(p.index());
  }
  EXPECT_EQ(seen.size(), std::variant_size_v<Payload>) << "a payload type has no round trip";
}

TEST(IkeMsgRoundTrip, EveryPrefixFailsCleanly) {
  for (auto& [name, m] : samples::plain_samples()) {
    Bytes b = encode(m).value();
    for (std::size_t n = 0; n < b.size(); ++n) {
      Bytes cut(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
      auto d = decode(cut);
      ASSERT_FALSE(d.ok()) << name << " prefix " << n;
      EXPECT_EQ(d.error().notify, n < 28 ? NotifyType::none : NotifyType::invalid_syntax) << name << " " << n;
      // With the header length patched to the prefix, the payloads are cut.
      if (n >= 28) {
        cut[24] = 0;
        cut[25] = 0;
        cut[26] = static_cast<std::uint8_t>(n >> 8);
        cut[27] = static_cast<std::uint8_t>(n);
        auto d2 = decode(cut);
        ASSERT_FALSE(d2.ok()) << name << " patched prefix " << n;
        EXPECT_EQ(d2.error().notify, NotifyType::invalid_syntax) << name << " " << n;
      }
    }
  }
}

TEST(IkeMsgEncode, RefusesWhatDecodeWouldRefuse) {
  Message m;
  m.payloads.push_back(NoncePayload{Bytes(15, 1)});
  EXPECT_FALSE(encode(m).ok());
  m.payloads = {IdPayload{false, IdType::ipv4_addr, Bytes{1, 2, 3}}};
  EXPECT_FALSE(encode(m).ok());
  m.payloads = {SaPayload{}};
  EXPECT_FALSE(encode(m).ok());
  m.payloads = {UnknownPayload{40, false, {}}};
  EXPECT_FALSE(encode(m).ok());
  m.payloads.clear();
  m.sk = SkInfo{};
  auto r = encode(m);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("seal_sk"), std::string::npos);
}

// ---- SK ----

TEST(IkeMsgSk, SealOpenRoundTrip) {
  XorCipher c;
  auto inner = samples::auth_request_inner();
  auto sealed = seal_sk(samples::auth_request_header(), inner, c);
  ASSERT_TRUE(sealed.ok()) << sealed.error().message;
  const Bytes& b = sealed.value();
  auto d = decode(b);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->header.next_payload, PayloadType::sk);
  EXPECT_EQ(d->header.length, b.size());
  ASSERT_TRUE(d->sk.has_value());
  EXPECT_EQ(d->sk->inner_next, PayloadType::idi);
  EXPECT_EQ(d->sk->offset, 28u);
  EXPECT_EQ(d->sk->length, b.size() - 28);
  EXPECT_TRUE(d->payloads.empty());

  auto spans = sk_spans(b, *d->sk, c);
  ASSERT_TRUE(spans.ok()) << spans.error().message;
  EXPECT_EQ(spans->assoc.size(), 32u);
  EXPECT_EQ(spans->iv.size(), 8u);
  EXPECT_EQ(spans->icv.size(), 12u);
  EXPECT_EQ(spans->text.size() % 16, 0u);
  EXPECT_EQ(spans->text.data(), b.data() + 40);
  EXPECT_EQ(spans->icv.data() + 12, b.data() + b.size());

  auto o = open_sk(b, c);
  ASSERT_TRUE(o.ok()) << o.error().message;
  EXPECT_EQ(o->payloads, inner);
  EXPECT_EQ(o->sk->first_inner, std::optional<std::size_t>(0));
  const IdPayload* idi = find_id(o.value(), false);
  const IdPayload* idr = find_id(o.value(), true);
  ASSERT_NE(idi, nullptr);
  ASSERT_NE(idr, nullptr);
  EXPECT_EQ(idi->as_text(), "left.example.net");
  ASSERT_TRUE(idr->ip().has_value());
  EXPECT_EQ(idr->ip()->to_string(), "192.0.2.2");
  EXPECT_NE(find_notify(o.value(), NotifyType::initial_contact), nullptr);
}

TEST(IkeMsgSk, PaddingAlwaysFillsTheBlock) {
  for (std::size_t blk : {1u, 4u, 8u, 16u}) {
    for (std::size_t n = 16; n < 40; ++n) {
      NullCipher c(8, 16, blk);
      std::vector<Payload> inner = {NoncePayload{Bytes(n, 7)}};
      auto b = seal_sk(samples::auth_request_header(), inner, c).value();
      std::size_t text = b.size() - 28 - 4 - 8 - 16;
      EXPECT_EQ(text % blk, 0u);
      std::size_t pad = b[28 + 4 + 8 + text - 1];
      EXPECT_LT(pad, blk);
      EXPECT_EQ(4 + n + pad + 1, text);  // minimal padding
      auto o = open_sk(b, c);
      ASSERT_TRUE(o.ok()) << o.error().message;
      EXPECT_EQ(o->payloads, inner);
    }
  }
}

TEST(IkeMsgSk, TamperedIcvIsDroppedSilently) {
  XorCipher c;
  auto b = seal_sk(samples::auth_request_header(), samples::auth_request_inner(), c).value();
  for (std::size_t at : {std::size_t{5}, std::size_t{40}, b.size() - 1}) {
    Bytes t = b;
    t[at] ^= 1;
    auto o = open_sk(t, c);
    ASSERT_FALSE(o.ok()) << at;
    EXPECT_EQ(o.error().notify, NotifyType::none) << at;
  }
  XorCipher other(0x11);
  auto o = open_sk(b, other);
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.error().notify, NotifyType::none);
}

TEST(IkeMsgSk, BadPadLength) {
  NullCipher c;
  std::vector<Payload> inner = {NoncePayload{Bytes(16, 7)}};
  Bytes b = seal_sk(samples::auth_request_header(), inner, c).value();
  // 4 + 16 payload + 11 padding + 1 = 32 bytes of text, pad length byte last.
  std::size_t pad_at = b.size() - 16 - 1;
  ASSERT_EQ(b[pad_at], 11);
  b[pad_at] = 32;
  auto o = open_sk(b, c);
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.error().notify, NotifyType::invalid_syntax);
  EXPECT_NE(o.error().message.find("Pad Length 32 exceeds the 32-byte plaintext"), std::string::npos)
      << o.error().message;
  // A Pad Length that eats into the inner payloads breaks their chain.
  b[pad_at] = 12;
  o = open_sk(b, c);
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.error().notify, NotifyType::invalid_syntax);
  // 31 leaves no payload while the SK announces a Nonce.
  b[pad_at] = 31;
  o = open_sk(b, c);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.error().message.find("announced but the message ends"), std::string::npos) << o.error().message;
}

TEST(IkeMsgSk, SizesChecked) {
  NullCipher c(8, 16, 16);
  Bytes b = seal_sk(samples::auth_request_header(), std::vector<Payload>{NoncePayload{Bytes(16, 7)}}, c).value();
  NullCipher wrong_block(8, 16, 12);  // 32 bytes of text is not a multiple of 12
  auto o = open_sk(b, wrong_block);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.error().message.find("not a multiple of the block size 12"), std::string::npos) << o.error().message;
  NullCipher huge_icv(8, 60, 16);
  o = open_sk(b, huge_icv);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.error().message.find("cannot hold IV"), std::string::npos) << o.error().message;
  // An SK payload with nothing but IV and ICV (no Pad Length byte).
  Bytes empty = msg(46, pl(40, Bytes(24, 0)));
  o = open_sk(empty, c);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.error().message.find("cannot hold IV"), std::string::npos);
  // A message without SK.
  o = open_sk(msg(40, pl(0, nonce_body())), c);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.error().message.find("no SK payload"), std::string::npos);
}

TEST(IkeMsgSk, SkInsideSkRefused) {
  NullCipher c;
  // Inner plaintext: an SK payload header, by hand.
  Bytes text = cat({pl(0, Bytes(4, 0)), Bytes(7, 0), Bytes{7}});  // 8 + 7 + 1 = 16
  Bytes sk = cat({Bytes(8, 0x11), text, Bytes(16, 0x22)});
  Bytes b = msg(46, pl(46, sk));
  auto o = open_sk(b, c);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.error().message.find("SK payload inside an SK payload"), std::string::npos) << o.error().message;
}

TEST(IkeMsgSk, UnknownCriticalInnerPayload) {
  NullCipher c;
  std::vector<Payload> inner = {UnknownPayload{99, true, {1}}};
  Bytes b = seal_sk(samples::auth_request_header(), inner, c).value();
  auto o = open_sk(b, c);
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.error().notify, NotifyType::unsupported_critical_payload);
  EXPECT_EQ(o.error().payload_type, 99);
}

// ---- UDP 4500, helpers ----

TEST(IkeMsgNatT, Classify) {
  Bytes ike = encode(samples::sa_init_request()).value();
  Bytes framed = add_non_esp_marker(ike);
  ASSERT_EQ(framed.size(), ike.size() + 4);
  EXPECT_EQ(Bytes(framed.begin(), framed.begin() + 4), Bytes(4, 0));
  auto c = classify_udp4500(framed);
  EXPECT_EQ(c.kind, Udp4500Kind::ike);
  EXPECT_EQ(Bytes(c.data.begin(), c.data.end()), ike);
  EXPECT_EQ(classify_udp4500(Bytes{0xff}).kind, Udp4500Kind::keepalive);
  Bytes esp = {0, 0, 0x10, 1, 0, 0, 0, 1};
  c = classify_udp4500(esp);
  EXPECT_EQ(c.kind, Udp4500Kind::esp);
  EXPECT_EQ(c.data.size(), 8u);
  EXPECT_EQ(classify_udp4500(Bytes{}).kind, Udp4500Kind::invalid);
  EXPECT_EQ(classify_udp4500(Bytes{0xfe}).kind, Udp4500Kind::invalid);
  EXPECT_EQ(classify_udp4500(Bytes{0, 0, 0}).kind, Udp4500Kind::invalid);
  EXPECT_EQ(classify_udp4500(Bytes{0xff, 0xff}).kind, Udp4500Kind::invalid);
  c = classify_udp4500(Bytes{0, 0, 0, 0});
  EXPECT_EQ(c.kind, Udp4500Kind::ike);
  EXPECT_TRUE(c.data.empty());
}

TEST(IkeMsgHelpers, FindAndLength) {
  Bytes b = encode(samples::sa_init_request()).value();
  EXPECT_EQ(message_length(b), std::optional<std::uint32_t>(300));
  EXPECT_EQ(message_length(std::span<const std::uint8_t>(b.data(), 27)), std::nullopt);
  auto h = decode_header(b);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->spi_i, 0x0102030405060708ull);
  EXPECT_EQ(h->next_payload, PayloadType::sa);
  auto m = decode(b).value();
  const NotifyPayload* n = find_notify(m, NotifyType::nat_detection_destination_ip);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->data, samples::pattern(20, 0x30));
  EXPECT_EQ(find_notify(m, NotifyType::cookie), nullptr);
  EXPECT_EQ(find_error_notify(m), nullptr);
  const KePayload* ke = find_payload<KePayload>(m);
  ASSERT_NE(ke, nullptr);
  EXPECT_EQ(ke->group, 19);
  EXPECT_EQ(find_payload<TsPayload>(m), nullptr);
  m.payloads.push_back(NotifyPayload::make(NotifyType::no_proposal_chosen));
  const NotifyPayload* err = find_error_notify(m);
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->type, NotifyType::no_proposal_chosen);
  EXPECT_STREQ(notify_name(NotifyType::ts_unacceptable), "TS_UNACCEPTABLE");
  EXPECT_STREQ(exchange_name(ExchangeType::create_child_sa), "CREATE_CHILD_SA");
  EXPECT_STREQ(payload_name(PayloadType::sk), "SK");
  DecodeError e{NotifyType::invalid_syntax, 0, 31, "x"};
  EXPECT_EQ(e.to_error().message, "IKE message, offset 31: x (INVALID_SYNTAX)");
}

}  // namespace
}  // namespace cygnet::ike

namespace cygnet::ike {
namespace {

// RestOfInitIDPayload (RFC 7296 2.15): ID Type, 3 reserved octets, the data.
TEST(IkeMsgId, BodyIsWhatAuthCovers) {
  EXPECT_EQ(IdPayload::text(IdType::fqdn, "gw.a").body(), (Bytes{2, 0, 0, 0, 'g', 'w', '.', 'a'}));
  EXPECT_EQ(IdPayload::address(*IpAddress::parse("192.0.2.1"), true).body(), (Bytes{1, 0, 0, 0, 192, 0, 2, 1}));
}

}  // namespace
}  // namespace cygnet::ike
