// The IKEv2 message codec (RFC 7296 section 3): header and payload types,
// a strict decoder for bytes from the network, an encoder, the SK payload
// (section 3.14) over an abstract SkCipher, and the UDP 4500 framing of
// RFC 3948 / RFC 7296 2.23. No sockets, no crypto. docs/ike-codec.md says
// what is validated and why.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "cp/ike/sk_cipher.h"
#include "shared/ip.h"
#include "shared/result.h"

namespace cygnet::ike {

using Bytes = std::vector<std::uint8_t>;

// ---- limits (docs/ike-codec.md "Caps") ----
inline constexpr std::size_t kHeaderLen = 28;
inline constexpr std::size_t kMaxMessageLen = 65535;  // one UDP datagram (or RFC 8229 frame)
inline constexpr std::size_t kMaxPayloads = 64;       // per chain (outer, and inner of SK)
inline constexpr std::size_t kMaxProposals = 64;      // per SA payload
inline constexpr std::size_t kMaxTransforms = 64;     // per proposal
inline constexpr std::size_t kMaxAttributes = 16;     // per transform
inline constexpr std::size_t kMaxSelectors = 64;      // per TS payload
inline constexpr std::size_t kMaxDeleteSpis = 1024;   // per Delete payload
inline constexpr std::size_t kMinNonce = 16;          // RFC 7296 2.10
inline constexpr std::size_t kMaxNonce = 256;

// ---- header (RFC 7296 3.1) ----
enum class ExchangeType : std::uint8_t {
  ike_sa_init = 34,
  ike_auth = 35,
  create_child_sa = 36,
  informational = 37,
};

enum class PayloadType : std::uint8_t {
  none = 0,
  sa = 33,
  ke = 34,
  idi = 35,
  idr = 36,
  cert = 37,
  certreq = 38,
  auth = 39,
  nonce = 40,
  notify = 41,
  del = 42,
  vendor = 43,
  tsi = 44,
  tsr = 45,
  sk = 46,
  cp = 47,
  eap = 48,
};

inline constexpr std::uint8_t kFlagInitiator = 0x08;
inline constexpr std::uint8_t kFlagVersion = 0x10;
inline constexpr std::uint8_t kFlagResponse = 0x20;

struct Header {
  std::uint64_t spi_i = 0;  // the 8 SPI bytes read as a big-endian number
  std::uint64_t spi_r = 0;
  PayloadType next_payload = PayloadType::none;  // decode: as read; encode: computed
  std::uint8_t major = 2;
  std::uint8_t minor = 0;
  ExchangeType exchange = ExchangeType::ike_sa_init;  // any value is kept; 34..37 are named
  std::uint8_t flags = 0;  // kept as read (RFC 7296 3.1: unknown bits ignored on receipt)
  std::uint32_t message_id = 0;
  std::uint32_t length = 0;  // decode: as read (== datagram length); encode: computed

  bool initiator() const noexcept { return (flags & kFlagInitiator) != 0; }
  bool response() const noexcept { return (flags & kFlagResponse) != 0; }
  bool operator==(const Header&) const = default;
};

// ---- Notify message types (RFC 7296 3.10.1 and IANA) ----
enum class NotifyType : std::uint16_t {
  none = 0,  // in a DecodeError: answer nothing, drop the message
  unsupported_critical_payload = 1,
  invalid_ike_spi = 4,
  invalid_major_version = 5,
  invalid_syntax = 7,
  invalid_message_id = 9,
  invalid_spi = 11,
  no_proposal_chosen = 14,
  invalid_ke_payload = 17,
  authentication_failed = 24,
  single_pair_required = 34,
  no_additional_sas = 35,
  internal_address_failure = 36,
  failed_cp_required = 37,
  ts_unacceptable = 38,
  invalid_selectors = 39,
  temporary_failure = 43,
  child_sa_not_found = 44,
  initial_contact = 16384,
  set_window_size = 16385,
  additional_ts_possible = 16386,
  ipcomp_supported = 16387,
  nat_detection_source_ip = 16388,
  nat_detection_destination_ip = 16389,
  cookie = 16390,
  use_transport_mode = 16391,
  http_cert_lookup_supported = 16392,
  rekey_sa = 16393,
  esp_tfc_padding_not_supported = 16394,
  non_first_fragments_also = 16395,
  mobike_supported = 16396,
  ikev2_fragmentation_supported = 16430,
  signature_hash_algorithms = 16431,
};

// Error types are 1..16383, status types 16384..65535 (RFC 7296 3.10.1).
inline bool notify_is_error(NotifyType t) noexcept {
  auto v = static_cast<std::uint16_t>(t);
  return v != 0 && v < 16384;
}

// ---- SA payload (RFC 7296 3.3) ----
enum class Protocol : std::uint8_t { none = 0, ike = 1, ah = 2, esp = 3 };

enum class TransformType : std::uint8_t { encr = 1, prf = 2, integ = 3, dh = 4, esn = 5 };

inline constexpr std::uint16_t kAttrKeyLength = 14;

struct TransformAttribute {
  std::uint16_t type = 0;  // without the AF bit
  bool tv = true;          // AF = 1: the value is `value`; AF = 0: the value is `data`
  std::uint16_t value = 0;
  Bytes data;
  bool operator==(const TransformAttribute&) const = default;
};

struct Transform {
  TransformType type = TransformType::encr;  // any value is kept
  std::uint16_t id = 0;
  std::vector<TransformAttribute> attributes;

  std::optional<std::uint16_t> key_length() const noexcept;
  static Transform make(TransformType t, std::uint16_t id, std::optional<std::uint16_t> key_len = {});
  bool operator==(const Transform&) const = default;
};

struct Proposal {
  std::uint8_t number = 1;  // decode checks 1, 2, 3...; encode writes them so
  Protocol protocol = Protocol::ike;
  Bytes spi;  // IKE: 0 or 8 bytes; AH/ESP: 4 bytes
  std::vector<Transform> transforms;
  bool operator==(const Proposal&) const = default;
};

struct SaPayload {
  std::vector<Proposal> proposals;
  bool operator==(const SaPayload&) const = default;
};

// ---- the other payloads ----
struct KePayload {  // 3.4
  std::uint16_t group = 0;
  Bytes data;  // at least 1 byte
  bool operator==(const KePayload&) const = default;
};

enum class IdType : std::uint8_t {
  ipv4_addr = 1,
  fqdn = 2,
  rfc822_addr = 3,
  ipv6_addr = 5,
  der_asn1_dn = 9,
  der_asn1_gn = 10,
  key_id = 11,
};

struct IdPayload {  // 3.5
  bool responder = false;  // IDr (36) if true, IDi (35) if false
  IdType type = IdType::fqdn;  // any value is kept; others are opaque bytes
  Bytes data;  // IPv4: 4 bytes, IPv6: 16, others at least 1

  static IdPayload address(const IpAddress& a, bool responder = false);
  static IdPayload text(IdType t, std::string_view s, bool responder = false);
  std::optional<IpAddress> ip() const;  // for ipv4_addr / ipv6_addr
  std::string_view as_text() const noexcept;  // the bytes, for fqdn / rfc822_addr
  // RestOfInitIDPayload / RestOfRespIDPayload (2.15), what AUTH covers: the
  // ID Type, three reserved octets, the data.
  Bytes body() const;
  bool operator==(const IdPayload&) const = default;
};

struct CertPayload {  // 3.6
  std::uint8_t encoding = 4;  // 4: X.509 signature
  Bytes data;
  bool operator==(const CertPayload&) const = default;
};

struct CertReqPayload {  // 3.7
  std::uint8_t encoding = 4;
  Bytes data;  // concatenated SHA-1 hashes of CA public keys
  bool operator==(const CertReqPayload&) const = default;
};

struct AuthPayload {  // 3.8
  std::uint8_t method = 0;  // 1 RSA, 2 PSK, 3 DSS, 9..11 ECDSA, 14 digital signature
  Bytes data;  // at least 1 byte
  bool operator==(const AuthPayload&) const = default;
};

struct NoncePayload {  // 3.9
  Bytes data;  // kMinNonce..kMaxNonce bytes
  bool operator==(const NoncePayload&) const = default;
};

struct NotifyPayload {  // 3.10
  Protocol protocol = Protocol::none;
  Bytes spi;  // 0, 4 or 8 bytes
  NotifyType type = NotifyType::none;  // any value is kept
  Bytes data;

  static NotifyPayload make(NotifyType t, Bytes data = {});
  bool operator==(const NotifyPayload&) const = default;
};

struct DeletePayload {  // 3.11
  Protocol protocol = Protocol::esp;
  std::uint8_t spi_size = 4;  // IKE: 0; AH/ESP: 4
  std::vector<Bytes> spis;    // none for IKE; each spi_size bytes
  bool operator==(const DeletePayload&) const = default;
};

struct VendorPayload {  // 3.12
  Bytes id;
  bool operator==(const VendorPayload&) const = default;
};

inline constexpr std::uint8_t kTsIpv4AddrRange = 7;
inline constexpr std::uint8_t kTsIpv6AddrRange = 8;

struct TrafficSelector {  // 3.13.1
  std::uint8_t ts_type = kTsIpv4AddrRange;
  std::uint8_t ip_protocol = 0;  // 0: any
  std::uint16_t start_port = 0;
  std::uint16_t end_port = 65535;
  IpAddress start;  // family must match ts_type
  IpAddress end;
  // Another ts_type is kept opaque: the selector's bytes after the 4-byte
  // type/protocol/length header; the fields above are then unused.
  Bytes other;

  static TrafficSelector range(const IpAddress& lo, const IpAddress& hi, std::uint8_t proto = 0,
                               std::uint16_t port_lo = 0, std::uint16_t port_hi = 65535);
  bool operator==(const TrafficSelector&) const = default;
};

struct TsPayload {  // 3.13
  bool responder = false;  // TSr (45) if true, TSi (44) if false
  std::vector<TrafficSelector> selectors;  // at least one
  bool operator==(const TsPayload&) const = default;
};

struct ConfigPayload {  // 3.15, attributes kept opaque
  std::uint8_t cfg_type = 1;  // 1 REQUEST, 2 REPLY, 3 SET, 4 ACK
  Bytes attributes;
  bool operator==(const ConfigPayload&) const = default;
};

struct EapPayload {  // 3.16, the EAP message kept opaque
  Bytes data;
  bool operator==(const EapPayload&) const = default;
};

// A payload type this codec does not know, kept with its critical bit. Only
// a non-critical one survives decoding (RFC 7296 2.5); it is re-encoded as is.
struct UnknownPayload {
  std::uint8_t type = 0;
  bool critical = false;
  Bytes body;
  bool operator==(const UnknownPayload&) const = default;
};

using Payload = std::variant<SaPayload, KePayload, IdPayload, CertPayload, CertReqPayload,
                             AuthPayload, NoncePayload, NotifyPayload, DeletePayload,
                             VendorPayload, TsPayload, ConfigPayload, EapPayload, UnknownPayload>;

PayloadType payload_type(const Payload& p) noexcept;

// Where the SK payload sits in the datagram it was decoded from.
struct SkInfo {
  PayloadType inner_next = PayloadType::none;  // the first inner payload's type
  std::size_t offset = 0;  // of the SK generic header
  std::size_t length = 0;  // the SK payload length, generic header included
  // After open_sk: index in Message::payloads of the first inner payload.
  // Every payload of an opened message is integrity protected (the ones
  // before SK are in the associated data).
  std::optional<std::size_t> first_inner;
  bool operator==(const SkInfo&) const = default;
};

struct Message {
  Header header;
  // Plain message: all payloads. SK message from decode(): the payloads
  // before SK (usually none). After open_sk(): those, then the inner ones.
  std::vector<Payload> payloads;
  std::optional<SkInfo> sk;
  bool operator==(const Message&) const = default;
};

// ---- decoding ----

// What was wrong and how the daemon should answer (RFC 7296 2.21). notify
// none means: answer nothing (too short to answer, or an ICV failure).
struct DecodeError {
  NotifyType notify = NotifyType::invalid_syntax;
  std::uint8_t payload_type = 0;  // unsupported_critical_payload: the type, its notify data
  std::size_t offset = 0;         // in the datagram (or the decrypted SK plaintext)
  std::string message;

  Bytes notify_data() const;  // the Notification Data to send with `notify`
  Error to_error() const;     // "offset N: message (INVALID_SYNTAX)"
};

template <typename T>
class [[nodiscard]] Decoded {
 public:
  Decoded(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Decoded(DecodeError err) : v_(std::in_place_index<1>, std::move(err)) {}  // NOLINT
  // From anything T is built from (a payload struct into a Payload).
  template <typename U>
    requires(!std::is_same_v<std::remove_cvref_t<U>, T> && !std::is_same_v<std::remove_cvref_t<U>, DecodeError> &&
             std::is_constructible_v<T, U &&>)
  Decoded(U&& u) : v_(std::in_place_index<0>, std::forward<U>(u)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const DecodeError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, DecodeError> v_;
};

// The header alone (for an SPI lookup before the full decode). Checks the
// size (>= 28), the major version and the length field against the datagram.
Decoded<Header> decode_header(std::span<const std::uint8_t> datagram);

// The whole message. An SK payload is not opened: Message::sk says where it is.
Decoded<Message> decode(std::span<const std::uint8_t> datagram);

// The SK payload split for the cipher's sizes (spans into `datagram`).
struct SkSpans {
  std::span<const std::uint8_t> assoc;
  std::span<const std::uint8_t> iv;
  std::span<const std::uint8_t> text;
  std::span<const std::uint8_t> icv;
};
Decoded<SkSpans> sk_spans(std::span<const std::uint8_t> datagram, const SkInfo& sk,
                          const SkCipher& cipher);

// decode(), then check the SK sizes, cipher.open() (failure: notify none,
// drop silently), strip the padding and decode the inner chain.
Decoded<Message> open_sk(std::span<const std::uint8_t> datagram, SkCipher& cipher);

// ---- encoding ----

// A plain message (no sk). Header next_payload and length are computed.
Result<Bytes> encode(const Message& m);
// header | SK(inner payloads, padded, IV and ICV from the cipher).
Result<Bytes> seal_sk(const Header& h, std::span<const Payload> inner, SkCipher& cipher);

// ---- UDP 4500 framing (RFC 3948 2.2, RFC 7296 2.23) ----
enum class Udp4500Kind : std::uint8_t { ike, esp, keepalive, invalid };
struct Udp4500 {
  Udp4500Kind kind = Udp4500Kind::invalid;
  std::span<const std::uint8_t> data;  // ike: without the non-ESP marker; esp: all
};
Udp4500 classify_udp4500(std::span<const std::uint8_t> udp_payload) noexcept;
Bytes add_non_esp_marker(std::span<const std::uint8_t> ike_message);

// ---- helpers for the state machine ----

// The header's length field if at least 28 bytes are there (for framing).
std::optional<std::uint32_t> message_length(std::span<const std::uint8_t> data) noexcept;

template <typename T>
const T* find_payload(const Message& m) noexcept {
  for (const auto& p : m.payloads)
    if (const T* t = std::get_if<T>(&p)) return t;
  return nullptr;
}
const NotifyPayload* find_notify(const Message& m, NotifyType t) noexcept;
const IdPayload* find_id(const Message& m, bool responder) noexcept;
const TsPayload* find_ts(const Message& m, bool responder) noexcept;
// The first error notify (type 1..16383), for a response that reports one.
const NotifyPayload* find_error_notify(const Message& m) noexcept;

const char* notify_name(NotifyType t) noexcept;      // "INVALID_SYNTAX", or "?"
const char* payload_name(PayloadType t) noexcept;    // "SA", "KE", ..., or "?"
const char* exchange_name(ExchangeType t) noexcept;  // "IKE_SA_INIT", ..., or "?"

// A stable text form, one line per payload, proposal, transform, selector
// (ikemsg_tool, the interop tests). Prints every field, data in hex: only
// for messages as they are on the wire, which carry no key material.
std::string to_text(const Message& m);

}  // namespace cygnet::ike
