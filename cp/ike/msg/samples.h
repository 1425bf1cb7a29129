// Sample messages shaped like a real exchange, for the tests, the fuzzer's
// seed corpus and ikemsg_tool (tests/interop/ikev2_scapy_test.py knows the
// same field values). Not API for the daemon.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "cp/ike/msg/msg.h"

namespace cygnet::ike::samples {

inline Bytes pattern(std::size_t n, std::uint8_t start) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(start + i);
  return b;
}

inline IpAddress v4(const char* s) { return IpAddress::parse(s).value(); }

// IKE_SA_INIT request: SA (two proposals: AES-CBC-256/SHA2-256/ECP-256 and
// AES-GCM-16-128/X25519), KE, Ni, NAT_DETECTION_SOURCE_IP/DESTINATION_IP,
// SIGNATURE_HASH_ALGORITHMS, a vendor ID.
inline Message sa_init_request() {
  Message m;
  m.header.spi_i = 0x0102030405060708ull;
  m.header.spi_r = 0;
  m.header.exchange = ExchangeType::ike_sa_init;
  m.header.flags = kFlagInitiator;
  m.header.message_id = 0;
  SaPayload sa;
  Proposal p1;
  p1.number = 1;
  p1.protocol = Protocol::ike;
  p1.transforms = {Transform::make(TransformType::encr, 12, 256), Transform::make(TransformType::prf, 5),
                   Transform::make(TransformType::integ, 12), Transform::make(TransformType::dh, 19)};
  Proposal p2;
  p2.number = 2;
  p2.protocol = Protocol::ike;
  p2.transforms = {Transform::make(TransformType::encr, 20, 128), Transform::make(TransformType::prf, 7),
                   Transform::make(TransformType::dh, 31)};
  sa.proposals = {p1, p2};
  m.payloads.push_back(sa);
  m.payloads.push_back(KePayload{19, pattern(64, 0x40)});
  m.payloads.push_back(NoncePayload{pattern(32, 0xa0)});
  m.payloads.push_back(NotifyPayload::make(NotifyType::nat_detection_source_ip, pattern(20, 0x10)));
  m.payloads.push_back(NotifyPayload::make(NotifyType::nat_detection_destination_ip, pattern(20, 0x30)));
  m.payloads.push_back(NotifyPayload::make(NotifyType::signature_hash_algorithms, Bytes{0, 2, 0, 3, 0, 4}));
  m.payloads.push_back(VendorPayload{Bytes{'c', 'y', 'g', 'n', 'e', 't'}});
  return m;
}

// IKE_SA_INIT response: one proposal chosen, KE, Nr, CERTREQ.
inline Message sa_init_response() {
  Message m;
  m.header.spi_i = 0x0102030405060708ull;
  m.header.spi_r = 0x1112131415161718ull;
  m.header.exchange = ExchangeType::ike_sa_init;
  m.header.flags = kFlagResponse;
  SaPayload sa;
  Proposal p;
  p.number = 1;
  p.protocol = Protocol::ike;
  p.transforms = {Transform::make(TransformType::encr, 20, 128), Transform::make(TransformType::prf, 7),
                  Transform::make(TransformType::dh, 31)};
  sa.proposals = {p};
  m.payloads.push_back(sa);
  m.payloads.push_back(KePayload{31, pattern(32, 0x50)});
  m.payloads.push_back(NoncePayload{pattern(32, 0xb0)});
  m.payloads.push_back(CertReqPayload{4, pattern(20, 0x70)});
  return m;
}

// The inner payloads of an IKE_AUTH request: IDi (FQDN), AUTH (PSK), SA
// (ESP, AES-CBC-128 + HMAC-SHA2-256, no ESN), TSi/TSr, INITIAL_CONTACT,
// a CP request.
inline std::vector<Payload> auth_request_inner() {
  std::vector<Payload> v;
  v.push_back(IdPayload::text(IdType::fqdn, "left.example.net"));
  v.push_back(IdPayload::address(v4("192.0.2.2"), true));  // IDr: the wanted responder
  v.push_back(AuthPayload{2, pattern(32, 0xc0)});
  v.push_back(NotifyPayload::make(NotifyType::initial_contact));
  SaPayload sa;
  Proposal p;
  p.number = 1;
  p.protocol = Protocol::esp;
  p.spi = Bytes{0xc0, 0x01, 0x02, 0x03};
  p.transforms = {Transform::make(TransformType::encr, 12, 128), Transform::make(TransformType::integ, 12),
                  Transform::make(TransformType::esn, 0)};
  sa.proposals = {p};
  v.push_back(sa);
  TsPayload tsi;
  tsi.selectors = {TrafficSelector::range(v4("10.1.0.0"), v4("10.1.255.255")),
                   TrafficSelector::range(v4("10.9.0.1"), v4("10.9.0.1"), 6, 443, 443)};
  TsPayload tsr;
  tsr.responder = true;
  tsr.selectors = {TrafficSelector::range(IpAddress::parse("2001:db8::").value(),
                                          IpAddress::parse("2001:db8::ffff").value(), 17, 1024, 65535)};
  v.push_back(tsi);
  v.push_back(tsr);
  v.push_back(ConfigPayload{1, Bytes{0, 1, 0, 0}});
  return v;
}

inline Header auth_request_header() {
  Header h;
  h.spi_i = 0x0102030405060708ull;
  h.spi_r = 0x1112131415161718ull;
  h.exchange = ExchangeType::ike_auth;
  h.flags = kFlagInitiator;
  h.message_id = 1;
  return h;
}

// IKE_AUTH-shaped message as a plain message (the same payloads as
// auth_request_inner, not encrypted): what scapy builds and reads.
inline Message auth_request_plain() {
  Message m;
  m.header = auth_request_header();
  m.payloads = auth_request_inner();
  return m;
}

// INFORMATIONAL with Delete payloads (ESP SPIs, then the IKE SA), plain.
inline Message informational_delete() {
  Message m;
  m.header = auth_request_header();
  m.header.exchange = ExchangeType::informational;
  m.header.message_id = 7;
  m.payloads.push_back(DeletePayload{Protocol::esp, 4, {Bytes{1, 2, 3, 4}, Bytes{5, 6, 7, 8}}});
  m.payloads.push_back(DeletePayload{Protocol::ike, 0, {}});
  return m;
}

// Everything else: CERT, EAP, a notify with an ESP SPI (REKEY_SA), an
// 8-byte IKE SPI proposal, an opaque ID and TS type, and a
// non-critical unknown payload.
inline Message misc() {
  Message m;
  m.header = auth_request_header();
  m.header.exchange = ExchangeType::create_child_sa;
  m.header.message_id = 3;
  m.header.flags = kFlagInitiator | kFlagResponse;
  m.payloads.push_back(CertPayload{4, pattern(40, 0x01)});
  m.payloads.push_back(EapPayload{Bytes{2, 7, 0, 6, 1, 'x'}});
  NotifyPayload n = NotifyPayload::make(NotifyType::rekey_sa);
  n.protocol = Protocol::esp;
  n.spi = Bytes{0xaa, 0xbb, 0xcc, 0xdd};
  m.payloads.push_back(n);
  SaPayload sa;
  Proposal p;
  p.protocol = Protocol::ike;
  p.spi = pattern(8, 0x90);
  // (A TLV attribute would be legal, but scapy cannot read one: the unit
  // test round-trips it.)
  p.transforms = {Transform::make(TransformType::encr, 12, 192), Transform::make(TransformType::prf, 2), Transform::make(TransformType::integ, 2),
                  Transform::make(TransformType::dh, 14)};
  sa.proposals = {p};
  m.payloads.push_back(sa);
  IdPayload id;
  id.type = IdType::key_id;
  id.data = pattern(5, 0x33);
  m.payloads.push_back(id);
  TsPayload ts;
  TrafficSelector other;
  other.ts_type = 10;
  other.ip_protocol = 0;
  other.start_port = 0;
  other.end_port = 0;
  other.other = pattern(6, 0x44);
  ts.selectors = {other, TrafficSelector::range(v4("0.0.0.0"), v4("255.255.255.255"))};
  m.payloads.push_back(ts);
  m.payloads.push_back(UnknownPayload{200, false, pattern(3, 0x55)});
  return m;
}

inline std::vector<std::pair<std::string, Message>> plain_samples() {
  return {{"sa_init_request", sa_init_request()},
          {"sa_init_response", sa_init_response()},
          {"auth_request_plain", auth_request_plain()},
          {"informational_delete", informational_delete()},
          {"misc", misc()}};
}

}  // namespace cygnet::ike::samples
