// IKEv2 message codec (RFC 7296 section 3). Every read is bounds-checked
// against the enclosing structure; see docs/ike-codec.md.
#include "cp/ike/msg/msg.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace cygnet::ike {

namespace {

using In = std::span<const std::uint8_t>;

std::uint16_t rd16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
std::uint32_t rd32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
std::uint64_t rd64(const std::uint8_t* p) noexcept {
  return (std::uint64_t{rd32(p)} << 32) | rd32(p + 4);
}

void put8(Bytes& b, std::uint8_t v) { b.push_back(v); }
void put16(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}
void put32(Bytes& b, std::uint32_t v) {
  put16(b, static_cast<std::uint16_t>(v >> 16));
  put16(b, static_cast<std::uint16_t>(v));
}
void put64(Bytes& b, std::uint64_t v) {
  put32(b, static_cast<std::uint32_t>(v >> 32));
  put32(b, static_cast<std::uint32_t>(v));
}
void put_bytes(Bytes& b, In s) { b.insert(b.end(), s.begin(), s.end()); }
void set16(Bytes& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v >> 8);
  b[at + 1] = static_cast<std::uint8_t>(v);
}
void set32(Bytes& b, std::size_t at, std::uint32_t v) {
  set16(b, at, static_cast<std::uint16_t>(v >> 16));
  set16(b, at + 2, static_cast<std::uint16_t>(v));
}

Bytes copy(In s) { return Bytes(s.begin(), s.end()); }

DecodeError syntax(std::size_t off, std::string msg) {
  return DecodeError{NotifyType::invalid_syntax, 0, off, std::move(msg)};
}

std::string num(std::size_t v) { return std::to_string(v); }

bool known_payload(std::uint8_t t) noexcept {
  return (t >= 33 && t <= 48);
}

// ---- payload bodies (after the 4-byte generic header) ----
// `off` is the datagram offset of body[0], for error messages.

Decoded<std::vector<TransformAttribute>> decode_attributes(In b, std::size_t off) {
  std::vector<TransformAttribute> out;
  std::size_t pos = 0;
  while (pos < b.size()) {
    if (out.size() >= kMaxAttributes)
      return syntax(off + pos, "more than " + num(kMaxAttributes) + " attributes in a transform");
    if (b.size() - pos < 4) return syntax(off + pos, "transform attribute truncated (needs 4 bytes)");
    TransformAttribute a;
    std::uint16_t t = rd16(&b[pos]);
    a.tv = (t & 0x8000) != 0;
    a.type = t & 0x7fff;
    if (a.tv) {
      a.value = rd16(&b[pos + 2]);
      pos += 4;
    } else {
      std::size_t len = rd16(&b[pos + 2]);
      if (len > b.size() - pos - 4)
        return syntax(off + pos, "transform attribute length " + num(len) + " overruns its transform");
      a.data = copy(b.subspan(pos + 4, len));
      pos += 4 + len;
    }
    if (a.type == kAttrKeyLength && !a.tv)
      return syntax(off, "Key Length attribute in TLV form (RFC 7296 3.3.5: TV only)");
    for (const auto& prev : out)
      if (prev.type == a.type) return syntax(off, "attribute type " + num(a.type) + " repeated in a transform");
    out.push_back(std::move(a));
  }
  return out;
}

Decoded<Payload> decode_sa(In b, std::size_t off) {
  SaPayload sa;
  std::size_t pos = 0;
  if (b.empty()) return syntax(off, "SA payload without proposals");
  while (pos < b.size()) {
    const std::size_t poff = off + pos;
    if (sa.proposals.size() >= kMaxProposals)
      return syntax(poff, "more than " + num(kMaxProposals) + " proposals");
    if (b.size() - pos < 8) return syntax(poff, "proposal header truncated (needs 8 bytes)");
    const std::uint8_t* p = &b[pos];
    std::uint8_t last = p[0];
    std::size_t len = rd16(p + 2);
    if (last != 0 && last != 2) return syntax(poff, "proposal Last Substruc " + num(last) + " (0 or 2)");
    if (len < 8) return syntax(poff, "proposal length " + num(len) + " < 8");
    if (len > b.size() - pos) return syntax(poff, "proposal length " + num(len) + " overruns the SA payload");
    bool ends = pos + len == b.size();
    if (last == 0 && !ends) return syntax(poff, "proposal marked last but more bytes follow");
    if (last == 2 && ends) return syntax(poff, "proposal announces another but the SA payload ends");
    Proposal pr;
    pr.number = p[4];
    // A responder's SA payload holds one proposal, numbered as the one it
    // accepted (RFC 7296 3.3.1); a list is numbered 1, 2, 3...
    const bool lone = sa.proposals.empty() && ends;
    if (lone ? pr.number == 0 : pr.number != sa.proposals.size() + 1)
      return syntax(poff, "proposal number " + num(pr.number) + ", expected " + num(sa.proposals.size() + 1) +
                              " (RFC 7296 3.3.1)");
    std::uint8_t proto = p[5];
    if (proto < 1 || proto > 3) return syntax(poff, "proposal protocol " + num(proto) + " (1 IKE, 2 AH, 3 ESP)");
    pr.protocol = static_cast<Protocol>(proto);
    std::size_t spi_size = p[6];
    bool spi_ok = pr.protocol == Protocol::ike ? (spi_size == 0 || spi_size == 8) : spi_size == 4;
    if (!spi_ok)
      return syntax(poff, "proposal SPI size " + num(spi_size) + " for protocol " + num(proto) +
                              " (IKE: 0 or 8, AH/ESP: 4)");
    std::size_t ntrans = p[7];
    if (ntrans == 0) return syntax(poff, "proposal without transforms");
    if (ntrans > kMaxTransforms) return syntax(poff, "more than " + num(kMaxTransforms) + " transforms");
    if (8 + spi_size > len) return syntax(poff, "proposal SPI overruns the proposal");
    pr.spi = copy(b.subspan(pos + 8, spi_size));
    In tb = b.subspan(pos + 8 + spi_size, len - 8 - spi_size);
    std::size_t toff = poff + 8 + spi_size;
    std::size_t tpos = 0;
    while (tpos < tb.size()) {
      const std::size_t xoff = toff + tpos;
      if (pr.transforms.size() >= ntrans)
        return syntax(xoff, "more transforms than the " + num(ntrans) + " the proposal declares");
      if (tb.size() - tpos < 8) return syntax(xoff, "transform header truncated (needs 8 bytes)");
      const std::uint8_t* t = &tb[tpos];
      std::uint8_t tlast = t[0];
      std::size_t tlen = rd16(t + 2);
      if (tlast != 0 && tlast != 3) return syntax(xoff, "transform Last Substruc " + num(tlast) + " (0 or 3)");
      if (tlen < 8) return syntax(xoff, "transform length " + num(tlen) + " < 8");
      if (tlen > tb.size() - tpos) return syntax(xoff, "transform length " + num(tlen) + " overruns its proposal");
      bool tends = tpos + tlen == tb.size();
      if (tlast == 0 && !tends) return syntax(xoff, "transform marked last but more bytes follow");
      if (tlast == 3 && tends) return syntax(xoff, "transform announces another but the proposal ends");
      Transform tr;
      tr.type = static_cast<TransformType>(t[4]);
      tr.id = rd16(t + 6);
      auto attrs = decode_attributes(tb.subspan(tpos + 8, tlen - 8), xoff + 8);
      if (!attrs) return attrs.error();
      tr.attributes = std::move(attrs).value();
      pr.transforms.push_back(std::move(tr));
      tpos += tlen;
    }
    if (pr.transforms.size() != ntrans)
      return syntax(poff, "proposal declares " + num(ntrans) + " transforms, has " + num(pr.transforms.size()));
    sa.proposals.push_back(std::move(pr));
    pos += len;
  }
  return sa;
}

Decoded<Payload> decode_ke(In b, std::size_t off) {
  if (b.size() < 5) return syntax(off, "KE payload of " + num(b.size()) + " bytes (needs group, reserved and data)");
  return KePayload{rd16(&b[0]), copy(b.subspan(4))};
}

Decoded<Payload> decode_id(In b, std::size_t off, bool responder) {
  if (b.size() < 5) return syntax(off, "ID payload of " + num(b.size()) + " bytes (needs type, reserved and data)");
  IdPayload id;
  id.responder = responder;
  id.type = static_cast<IdType>(b[0]);
  id.data = copy(b.subspan(4));
  if (id.type == IdType::ipv4_addr && id.data.size() != 4)
    return syntax(off, "ID_IPV4_ADDR of " + num(id.data.size()) + " bytes (4)");
  if (id.type == IdType::ipv6_addr && id.data.size() != 16)
    return syntax(off, "ID_IPV6_ADDR of " + num(id.data.size()) + " bytes (16)");
  return id;
}

Decoded<Payload> decode_auth(In b, std::size_t off) {
  if (b.size() < 5) return syntax(off, "AUTH payload of " + num(b.size()) + " bytes (needs method, reserved and data)");
  return AuthPayload{b[0], copy(b.subspan(4))};
}

Decoded<Payload> decode_nonce(In b, std::size_t off) {
  if (b.size() < kMinNonce || b.size() > kMaxNonce)
    return syntax(off, "nonce of " + num(b.size()) + " bytes (RFC 7296 2.10: 16..256)");
  return NoncePayload{copy(b)};
}

Decoded<Payload> decode_notify(In b, std::size_t off) {
  if (b.size() < 4) return syntax(off, "Notify payload of " + num(b.size()) + " bytes (< 4)");
  NotifyPayload n;
  std::uint8_t proto = b[0];
  std::size_t spi_size = b[1];
  n.type = static_cast<NotifyType>(rd16(&b[2]));
  if (spi_size != 0 && spi_size != 4 && spi_size != 8)
    return syntax(off, "Notify SPI size " + num(spi_size) + " (0, 4 or 8)");
  if (spi_size != 0 && (proto < 1 || proto > 3))
    return syntax(off, "Notify with an SPI for protocol " + num(proto) + " (1 IKE, 2 AH, 3 ESP)");
  if (spi_size == 4 && proto == 1) return syntax(off, "Notify with a 4-byte SPI for IKE");
  if (spi_size == 8 && proto != 1) return syntax(off, "Notify with an 8-byte SPI for AH/ESP");
  // With no SPI the protocol "MUST be ignored on receipt" (3.10).
  n.protocol = spi_size == 0 ? Protocol::none : static_cast<Protocol>(proto);
  if (4 + spi_size > b.size()) return syntax(off, "Notify SPI overruns the payload");
  n.spi = copy(b.subspan(4, spi_size));
  n.data = copy(b.subspan(4 + spi_size));
  if ((n.type == NotifyType::nat_detection_source_ip || n.type == NotifyType::nat_detection_destination_ip) &&
      n.data.size() != 20)
    return syntax(off, "NAT_DETECTION notify data of " + num(n.data.size()) + " bytes (20, SHA-1)");
  if (n.type == NotifyType::cookie && (n.data.empty() || n.data.size() > 64))
    return syntax(off, "COOKIE of " + num(n.data.size()) + " bytes (1..64, RFC 7296 2.6)");
  return n;
}

Decoded<Payload> decode_delete(In b, std::size_t off) {
  if (b.size() < 4) return syntax(off, "Delete payload of " + num(b.size()) + " bytes (< 4)");
  DeletePayload d;
  std::uint8_t proto = b[0];
  d.spi_size = b[1];
  std::size_t n = rd16(&b[2]);
  if (proto == 1) {
    if (d.spi_size != 0 || n != 0) return syntax(off, "Delete of the IKE SA with SPIs (3.11: SPI size 0, no SPIs)");
  } else if (proto == 2 || proto == 3) {
    if (d.spi_size != 4) return syntax(off, "Delete SPI size " + num(d.spi_size) + " for AH/ESP (4)");
    if (n == 0) return syntax(off, "Delete for AH/ESP without SPIs");
  } else {
    return syntax(off, "Delete protocol " + num(proto) + " (1 IKE, 2 AH, 3 ESP)");
  }
  d.protocol = static_cast<Protocol>(proto);
  if (n > kMaxDeleteSpis) return syntax(off, "Delete with more than " + num(kMaxDeleteSpis) + " SPIs");
  if (b.size() != 4 + n * d.spi_size)
    return syntax(off, "Delete of " + num(n) + " SPIs of " + num(d.spi_size) + " bytes in a body of " +
                           num(b.size()) + " bytes");
  for (std::size_t i = 0; i < n; ++i) d.spis.push_back(copy(b.subspan(4 + i * d.spi_size, d.spi_size)));
  return d;
}

Decoded<Payload> decode_ts(In b, std::size_t off, bool responder) {
  if (b.size() < 4) return syntax(off, "TS payload of " + num(b.size()) + " bytes (< 4)");
  TsPayload ts;
  ts.responder = responder;
  std::size_t n = b[0];
  if (n == 0) return syntax(off, "TS payload without selectors");
  if (n > kMaxSelectors) return syntax(off, "TS payload with more than " + num(kMaxSelectors) + " selectors");
  std::size_t pos = 4;
  while (pos < b.size()) {
    const std::size_t soff = off + pos;
    if (ts.selectors.size() >= n) return syntax(soff, "more selectors than the " + num(n) + " declared");
    if (b.size() - pos < 4) return syntax(soff, "traffic selector header truncated");
    TrafficSelector s;
    s.ts_type = b[pos];
    std::size_t len = rd16(&b[pos + 2]);
    if (len < 4 || len > b.size() - pos) return syntax(soff, "traffic selector length " + num(len) + " out of its payload");
    In body = b.subspan(pos, len);
    if (s.ts_type == kTsIpv4AddrRange || s.ts_type == kTsIpv6AddrRange) {
      std::size_t want = s.ts_type == kTsIpv4AddrRange ? 16 : 40;
      if (len != want)
        return syntax(soff, "traffic selector type " + num(s.ts_type) + " of length " + num(len) + " (" + num(want) + ")");
      s.ip_protocol = body[1];
      s.start_port = rd16(&body[4]);
      s.end_port = rd16(&body[6]);
      if (s.ts_type == kTsIpv4AddrRange) {
        s.start = IpAddress::v4_bytes(&body[8]);
        s.end = IpAddress::v4_bytes(&body[12]);
      } else {
        s.start = IpAddress::v6_bytes(&body[8]);
        s.end = IpAddress::v6_bytes(&body[24]);
      }
    } else {
      s.ip_protocol = body[1];
      s.start_port = 0;
      s.end_port = 0;
      s.other = copy(body.subspan(4));
    }
    ts.selectors.push_back(std::move(s));
    pos += len;
  }
  if (ts.selectors.size() != n)
    return syntax(off, "TS payload declares " + num(n) + " selectors, has " + num(ts.selectors.size()));
  return ts;
}

Decoded<Payload> decode_eap(In b, std::size_t off) {
  // RFC 3748 4: Code, Identifier, Length (the whole EAP packet).
  if (b.size() < 4) return syntax(off, "EAP payload of " + num(b.size()) + " bytes (< 4)");
  if (rd16(&b[2]) != b.size())
    return syntax(off, "EAP length " + num(rd16(&b[2])) + " but the payload holds " + num(b.size()) + " bytes");
  return EapPayload{copy(b)};
}

Decoded<Payload> decode_body(PayloadType t, In b, std::size_t off) {
  switch (t) {
    case PayloadType::sa: return decode_sa(b, off);
    case PayloadType::ke: return decode_ke(b, off);
    case PayloadType::idi: return decode_id(b, off, false);
    case PayloadType::idr: return decode_id(b, off, true);
    case PayloadType::cert: {
      if (b.size() < 2) return syntax(off, "CERT payload of " + num(b.size()) + " bytes (needs encoding and data)");
      return CertPayload{b[0], copy(b.subspan(1))};
    }
    case PayloadType::certreq: {
      if (b.empty()) return syntax(off, "CERTREQ payload without encoding");
      return CertReqPayload{b[0], copy(b.subspan(1))};
    }
    case PayloadType::auth: return decode_auth(b, off);
    case PayloadType::nonce: return decode_nonce(b, off);
    case PayloadType::notify: return decode_notify(b, off);
    case PayloadType::del: return decode_delete(b, off);
    case PayloadType::vendor: return VendorPayload{copy(b)};
    case PayloadType::tsi: return decode_ts(b, off, false);
    case PayloadType::tsr: return decode_ts(b, off, true);
    case PayloadType::cp: {
      if (b.size() < 4) return syntax(off, "CP payload of " + num(b.size()) + " bytes (< 4)");
      return ConfigPayload{b[0], copy(b.subspan(4))};
    }
    case PayloadType::eap: return decode_eap(b, off);
    case PayloadType::none:
    case PayloadType::sk: break;
  }
  return syntax(off, "internal: no decoder for payload type " + num(static_cast<unsigned>(t)));
}

// A payload chain that must exactly fill `chain`. In an outer chain an SK
// payload ends it and must be last (RFC 7296 3.14); in an inner one it is an error.
DecodeError chain_error(std::size_t off, std::string msg) { return syntax(off, std::move(msg)); }

Decoded<std::vector<Payload>> decode_chain(PayloadType first, In chain, std::size_t off, bool inner,
                                           std::optional<SkInfo>* sk) {
  std::vector<Payload> out;
  std::uint8_t next = static_cast<std::uint8_t>(first);
  std::size_t pos = 0;
  std::size_t count = 0;
  while (next != 0) {
    const std::size_t goff = off + pos;
    if (count >= kMaxPayloads) return chain_error(goff, "more than " + num(kMaxPayloads) + " payloads");
    ++count;
    if (chain.size() - pos < 4)
      return chain_error(goff, std::string("payload ") + payload_name(static_cast<PayloadType>(next)) + " (" +
                                   num(next) + ") announced but the message ends");
    const std::uint8_t* g = &chain[pos];
    std::uint8_t after = g[0];
    bool critical = (g[1] & 0x80) != 0;
    std::size_t len = rd16(g + 2);
    if (len < 4) return chain_error(goff, "payload length " + num(len) + " < 4");
    if (len > chain.size() - pos)
      return chain_error(goff, "payload length " + num(len) + " overruns the message by " +
                                   num(len - (chain.size() - pos)) + " bytes");
    In body = chain.subspan(pos + 4, len - 4);
    if (next == static_cast<std::uint8_t>(PayloadType::sk)) {
      if (inner) return chain_error(goff, "SK payload inside an SK payload");
      if (pos + len != chain.size())
        return chain_error(goff, "SK payload is not the last payload (RFC 7296 3.14)");
      *sk = SkInfo{static_cast<PayloadType>(after), goff, len, std::nullopt};
      return out;
    }
    if (known_payload(next)) {
      auto p = decode_body(static_cast<PayloadType>(next), body, goff + 4);
      if (!p) return p.error();
      out.push_back(std::move(p).value());
    } else if (critical) {
      return DecodeError{NotifyType::unsupported_critical_payload, next, goff,
                         "unknown payload type " + num(next) + " with the critical bit set (RFC 7296 2.5)"};
    } else {
      out.push_back(UnknownPayload{next, false, copy(body)});
    }
    next = after;
    pos += len;
  }
  if (pos != chain.size())
    return chain_error(off + pos, num(chain.size() - pos) + " bytes after the last payload");
  return out;
}

// ---- encoding ----

Result<void> fail(std::string msg) { return make_error("IKE encode: " + std::move(msg)); }

Result<void> encode_body(const Payload& p, Bytes& b) {
  return std::visit(
      [&b](const auto& v) -> Result<void> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, SaPayload>) {
          if (v.proposals.empty()) return fail("SA without proposals");
          if (v.proposals.size() > kMaxProposals) return fail("more than " + num(kMaxProposals) + " proposals");
          for (std::size_t i = 0; i < v.proposals.size(); ++i) {
            const Proposal& pr = v.proposals[i];
            std::size_t start = b.size();
            bool spi_ok = pr.protocol == Protocol::ike ? (pr.spi.empty() || pr.spi.size() == 8)
                          : (pr.protocol == Protocol::ah || pr.protocol == Protocol::esp) ? pr.spi.size() == 4
                                                                                         : false;
            if (!spi_ok) return fail("proposal " + num(i + 1) + ": SPI size or protocol");
            if (pr.transforms.empty() || pr.transforms.size() > kMaxTransforms)
              return fail("proposal " + num(i + 1) + ": 1.." + num(kMaxTransforms) + " transforms");
            put8(b, i + 1 == v.proposals.size() ? 0 : 2);
            put8(b, 0);
            put16(b, 0);
            // A lone proposal keeps its number (a responder's answer, 3.3.1).
            const bool lone = v.proposals.size() == 1 && pr.number != 0;
            put8(b, lone ? pr.number : static_cast<std::uint8_t>(i + 1));
            put8(b, static_cast<std::uint8_t>(pr.protocol));
            put8(b, static_cast<std::uint8_t>(pr.spi.size()));
            put8(b, static_cast<std::uint8_t>(pr.transforms.size()));
            put_bytes(b, pr.spi);
            for (std::size_t j = 0; j < pr.transforms.size(); ++j) {
              const Transform& t = pr.transforms[j];
              std::size_t ts = b.size();
              if (t.attributes.size() > kMaxAttributes) return fail("too many attributes");
              put8(b, j + 1 == pr.transforms.size() ? 0 : 3);
              put8(b, 0);
              put16(b, 0);
              put8(b, static_cast<std::uint8_t>(t.type));
              put8(b, 0);
              put16(b, t.id);
              for (std::size_t k = 0; k < t.attributes.size(); ++k) {
                const TransformAttribute& a = t.attributes[k];
                if (a.type > 0x7fff) return fail("attribute type " + num(a.type) + " > 32767");
                if (a.type == kAttrKeyLength && !a.tv) return fail("Key Length attribute must be TV");
                for (std::size_t m = 0; m < k; ++m)
                  if (t.attributes[m].type == a.type) return fail("attribute type repeated");
                if (a.tv) {
                  put16(b, static_cast<std::uint16_t>(0x8000 | a.type));
                  put16(b, a.value);
                } else {
                  if (a.data.size() > 0xffff) return fail("attribute too long");
                  put16(b, a.type);
                  put16(b, static_cast<std::uint16_t>(a.data.size()));
                  put_bytes(b, a.data);
                }
              }
              if (b.size() - ts > 0xffff) return fail("transform too long");
              set16(b, ts + 2, static_cast<std::uint16_t>(b.size() - ts));
            }
            if (b.size() - start > 0xffff) return fail("proposal too long");
            set16(b, start + 2, static_cast<std::uint16_t>(b.size() - start));
          }
        } else if constexpr (std::is_same_v<T, KePayload>) {
          if (v.data.empty()) return fail("KE without data");
          put16(b, v.group);
          put16(b, 0);
          put_bytes(b, v.data);
        } else if constexpr (std::is_same_v<T, IdPayload>) {
          if (v.data.empty()) return fail("ID without data");
          if (v.type == IdType::ipv4_addr && v.data.size() != 4) return fail("ID_IPV4_ADDR must be 4 bytes");
          if (v.type == IdType::ipv6_addr && v.data.size() != 16) return fail("ID_IPV6_ADDR must be 16 bytes");
          put8(b, static_cast<std::uint8_t>(v.type));
          put8(b, 0);
          put16(b, 0);
          put_bytes(b, v.data);
        } else if constexpr (std::is_same_v<T, CertPayload>) {
          if (v.data.empty()) return fail("CERT without data");
          put8(b, v.encoding);
          put_bytes(b, v.data);
        } else if constexpr (std::is_same_v<T, CertReqPayload>) {
          put8(b, v.encoding);
          put_bytes(b, v.data);
        } else if constexpr (std::is_same_v<T, AuthPayload>) {
          if (v.data.empty()) return fail("AUTH without data");
          put8(b, v.method);
          put8(b, 0);
          put16(b, 0);
          put_bytes(b, v.data);
        } else if constexpr (std::is_same_v<T, NoncePayload>) {
          if (v.data.size() < kMinNonce || v.data.size() > kMaxNonce) return fail("nonce must be 16..256 bytes");
          put_bytes(b, v.data);
        } else if constexpr (std::is_same_v<T, NotifyPayload>) {
          std::size_t s = v.spi.size();
          bool ok = s == 0 || (s == 4 && (v.protocol == Protocol::ah || v.protocol == Protocol::esp)) ||
                    (s == 8 && v.protocol == Protocol::ike);
          if (!ok) return fail("Notify SPI size does not fit its protocol");
          if ((v.type == NotifyType::nat_detection_source_ip || v.type == NotifyType::nat_detection_destination_ip) &&
              v.data.size() != 20)
            return fail("NAT_DETECTION data must be 20 bytes");
          if (v.type == NotifyType::cookie && (v.data.empty() || v.data.size() > 64))
            return fail("COOKIE must be 1..64 bytes");
          put8(b, s == 0 ? 0 : static_cast<std::uint8_t>(v.protocol));
          put8(b, static_cast<std::uint8_t>(s));
          put16(b, static_cast<std::uint16_t>(v.type));
          put_bytes(b, v.spi);
          put_bytes(b, v.data);
        } else if constexpr (std::is_same_v<T, DeletePayload>) {
          if (v.protocol == Protocol::ike) {
            if (v.spi_size != 0 || !v.spis.empty()) return fail("Delete of the IKE SA carries no SPIs");
          } else if (v.protocol == Protocol::ah || v.protocol == Protocol::esp) {
            if (v.spi_size != 4 || v.spis.empty()) return fail("Delete for AH/ESP needs 4-byte SPIs");
          } else {
            return fail("Delete protocol");
          }
          if (v.spis.size() > kMaxDeleteSpis) return fail("too many SPIs in Delete");
          put8(b, static_cast<std::uint8_t>(v.protocol));
          put8(b, v.spi_size);
          put16(b, static_cast<std::uint16_t>(v.spis.size()));
          for (const auto& s : v.spis) {
            if (s.size() != v.spi_size) return fail("Delete SPI of the wrong size");
            put_bytes(b, s);
          }
        } else if constexpr (std::is_same_v<T, VendorPayload>) {
          put_bytes(b, v.id);
        } else if constexpr (std::is_same_v<T, TsPayload>) {
          if (v.selectors.empty() || v.selectors.size() > kMaxSelectors) return fail("TS needs 1..64 selectors");
          put8(b, static_cast<std::uint8_t>(v.selectors.size()));
          put8(b, 0);
          put16(b, 0);
          for (const auto& s : v.selectors) {
            if (s.ts_type == kTsIpv4AddrRange || s.ts_type == kTsIpv6AddrRange) {
              Family f = s.ts_type == kTsIpv4AddrRange ? Family::ipv4 : Family::ipv6;
              if (s.start.family != f || s.end.family != f) return fail("selector addresses of the wrong family");
              std::size_t alen = f == Family::ipv4 ? 4 : 16;
              put8(b, s.ts_type);
              put8(b, s.ip_protocol);
              put16(b, static_cast<std::uint16_t>(8 + 2 * alen));
              put16(b, s.start_port);
              put16(b, s.end_port);
              put_bytes(b, In(s.start.bytes.data(), alen));
              put_bytes(b, In(s.end.bytes.data(), alen));
            } else {
              if (s.other.size() > 0xffff - 4) return fail("selector too long");
              put8(b, s.ts_type);
              put8(b, s.ip_protocol);
              put16(b, static_cast<std::uint16_t>(4 + s.other.size()));
              put_bytes(b, s.other);
            }
          }
        } else if constexpr (std::is_same_v<T, ConfigPayload>) {
          put8(b, v.cfg_type);
          put8(b, 0);
          put16(b, 0);
          put_bytes(b, v.attributes);
        } else if constexpr (std::is_same_v<T, EapPayload>) {
          if (v.data.size() < 4 || rd16(&v.data[2]) != v.data.size()) return fail("EAP message length");
          put_bytes(b, v.data);
        } else if constexpr (std::is_same_v<T, UnknownPayload>) {
          if (known_payload(v.type) || v.type == 0) return fail("unknown payload with a known type " + num(v.type));
          put_bytes(b, v.body);
        }
        return {};
      },
      p);
}

// Appends the chain; `first` receives the type of its first payload.
Result<void> encode_chain(std::span<const Payload> ps, Bytes& b, PayloadType* first) {
  if (ps.size() > kMaxPayloads) return fail("more than " + num(kMaxPayloads) + " payloads");
  *first = ps.empty() ? PayloadType::none : payload_type(ps[0]);
  for (std::size_t i = 0; i < ps.size(); ++i) {
    std::size_t start = b.size();
    PayloadType nx = i + 1 < ps.size() ? payload_type(ps[i + 1]) : PayloadType::none;
    bool critical = false;
    if (const auto* u = std::get_if<UnknownPayload>(&ps[i])) critical = u->critical;
    put8(b, static_cast<std::uint8_t>(nx));
    put8(b, critical ? 0x80 : 0);
    put16(b, 0);
    auto r = encode_body(ps[i], b);
    if (!r) return r;
    if (b.size() - start > 0xffff) return fail(std::string(payload_name(payload_type(ps[i]))) + " payload too long");
    set16(b, start + 2, static_cast<std::uint16_t>(b.size() - start));
  }
  return {};
}

void put_header(Bytes& b, const Header& h, PayloadType next) {
  put64(b, h.spi_i);
  put64(b, h.spi_r);
  put8(b, static_cast<std::uint8_t>(next));
  put8(b, static_cast<std::uint8_t>((h.major << 4) | (h.minor & 0x0f)));
  put8(b, static_cast<std::uint8_t>(h.exchange));
  put8(b, h.flags);
  put32(b, h.message_id);
  put32(b, 0);  // length, set when known
}

std::string hex(In s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (auto c : s) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

}  // namespace

// ---- small members ----

std::optional<std::uint16_t> Transform::key_length() const noexcept {
  for (const auto& a : attributes)
    if (a.type == kAttrKeyLength && a.tv) return a.value;
  return std::nullopt;
}

Transform Transform::make(TransformType t, std::uint16_t id, std::optional<std::uint16_t> key_len) {
  Transform tr;
  tr.type = t;
  tr.id = id;
  if (key_len) tr.attributes.push_back(TransformAttribute{kAttrKeyLength, true, *key_len, {}});
  return tr;
}

IdPayload IdPayload::address(const IpAddress& a, bool responder) {
  IdPayload id;
  id.responder = responder;
  id.type = a.family == Family::ipv6 ? IdType::ipv6_addr : IdType::ipv4_addr;
  id.data.assign(a.bytes.begin(), a.bytes.begin() + (a.family == Family::ipv6 ? 16 : 4));
  return id;
}

IdPayload IdPayload::text(IdType t, std::string_view s, bool responder) {
  IdPayload id;
  id.responder = responder;
  id.type = t;
  id.data.assign(s.begin(), s.end());
  return id;
}

std::optional<IpAddress> IdPayload::ip() const {
  if (type == IdType::ipv4_addr && data.size() == 4) return IpAddress::v4_bytes(data.data());
  if (type == IdType::ipv6_addr && data.size() == 16) return IpAddress::v6_bytes(data.data());
  return std::nullopt;
}

Bytes IdPayload::body() const {
  // Element by element: GCC 12 warns falsely on vector::insert here.
  Bytes b;
  b.reserve(4 + data.size());
  b.push_back(static_cast<std::uint8_t>(type));
  for (int i = 0; i < 3; ++i) b.push_back(0);
  for (std::uint8_t x : data) b.push_back(x);
  return b;
}

std::string_view IdPayload::as_text() const noexcept {
  return std::string_view(reinterpret_cast<const char*>(data.data()), data.size());
}

NotifyPayload NotifyPayload::make(NotifyType t, Bytes d) {
  NotifyPayload n;
  n.type = t;
  n.data = std::move(d);
  return n;
}

TrafficSelector TrafficSelector::range(const IpAddress& lo, const IpAddress& hi, std::uint8_t proto,
                                       std::uint16_t port_lo, std::uint16_t port_hi) {
  TrafficSelector s;
  s.ts_type = lo.family == Family::ipv6 ? kTsIpv6AddrRange : kTsIpv4AddrRange;
  s.ip_protocol = proto;
  s.start_port = port_lo;
  s.end_port = port_hi;
  s.start = lo;
  s.end = hi;
  return s;
}

PayloadType payload_type(const Payload& p) noexcept {
  switch (p.index()) {
    case 0: return PayloadType::sa;
    case 1: return PayloadType::ke;
    case 2: return std::get<IdPayload>(p).responder ? PayloadType::idr : PayloadType::idi;
    case 3: return PayloadType::cert;
    case 4: return PayloadType::certreq;
    case 5: return PayloadType::auth;
    case 6: return PayloadType::nonce;
    case 7: return PayloadType::notify;
    case 8: return PayloadType::del;
    case 9: return PayloadType::vendor;
    case 10: return std::get<TsPayload>(p).responder ? PayloadType::tsr : PayloadType::tsi;
    case 11: return PayloadType::cp;
    case 12: return PayloadType::eap;
    default: return static_cast<PayloadType>(std::get<UnknownPayload>(p).type);
  }
}

Bytes DecodeError::notify_data() const {
  if (notify == NotifyType::unsupported_critical_payload) return Bytes{payload_type};
  if (notify == NotifyType::invalid_major_version) return Bytes{0x20};  // RFC 7296 2.5: we speak 2.0
  return {};
}

Error DecodeError::to_error() const {
  return make_error("IKE message, offset " + num(offset) + ": " + message + " (" + notify_name(notify) + ")");
}

// ---- decoding ----

Decoded<Header> decode_header(std::span<const std::uint8_t> d) {
  if (d.size() < kHeaderLen)
    return DecodeError{NotifyType::none, 0, 0, "datagram of " + num(d.size()) + " bytes, shorter than the IKE header (28)"};
  Header h;
  h.spi_i = rd64(&d[0]);
  h.spi_r = rd64(&d[8]);
  h.next_payload = static_cast<PayloadType>(d[16]);
  h.major = d[17] >> 4;
  h.minor = d[17] & 0x0f;
  h.exchange = static_cast<ExchangeType>(d[18]);
  h.flags = d[19];
  h.message_id = rd32(&d[20]);
  h.length = rd32(&d[24]);
  if (h.major != 2)
    return DecodeError{NotifyType::invalid_major_version, 0, 17,
                       "IKE major version " + num(h.major) + " (this is IKEv2: 2)"};
  if (h.length < kHeaderLen) return syntax(24, "header length " + num(h.length) + " < 28");
  if (h.length > d.size())
    return syntax(24, "header length " + num(h.length) + " but the datagram has " + num(d.size()) + " bytes");
  if (h.length != d.size())
    return syntax(24, "header length " + num(h.length) + " but the datagram has " + num(d.size()) +
                          " bytes (trailing bytes are refused)");
  if (h.length > kMaxMessageLen) return syntax(24, "message longer than " + num(kMaxMessageLen) + " bytes");
  return h;
}

Decoded<Message> decode(std::span<const std::uint8_t> d) {
  auto h = decode_header(d);
  if (!h) return h.error();
  Message m;
  m.header = h.value();
  auto ps = decode_chain(m.header.next_payload, d.subspan(kHeaderLen), kHeaderLen, false, &m.sk);
  if (!ps) return ps.error();
  m.payloads = std::move(ps).value();
  return m;
}

namespace {
struct SkLayout {
  std::size_t assoc_len, iv_off, iv_len, text_off, text_len, icv_off, icv_len;
};

Decoded<SkLayout> sk_layout(std::size_t datagram_len, const SkInfo& sk, const SkCipher& c) {
  std::size_t iv = c.iv_len(), icv = c.icv_len(), blk = std::max<std::size_t>(c.block_len(), 1);
  if (sk.length < 4 || sk.offset + sk.length != datagram_len || sk.offset > datagram_len)
    return syntax(sk.offset, "SK payload does not end the message");
  std::size_t body = sk.length - 4;
  if (iv > body || icv > body - iv || body - iv - icv == 0)
    return syntax(sk.offset, "SK payload of " + num(sk.length) + " bytes cannot hold IV (" + num(iv) + "), ICV (" +
                                 num(icv) + ") and a Pad Length byte");
  std::size_t text = body - iv - icv;
  if (text % blk != 0)
    return syntax(sk.offset, "SK ciphertext of " + num(text) + " bytes, not a multiple of the block size " + num(blk));
  std::size_t base = sk.offset + 4;
  return SkLayout{base, base, iv, base + iv, text, base + iv + text, icv};
}
}  // namespace

Decoded<SkSpans> sk_spans(std::span<const std::uint8_t> d, const SkInfo& sk, const SkCipher& c) {
  auto l = sk_layout(d.size(), sk, c);
  if (!l) return l.error();
  const SkLayout& x = l.value();
  return SkSpans{d.subspan(0, x.assoc_len), d.subspan(x.iv_off, x.iv_len), d.subspan(x.text_off, x.text_len),
                 d.subspan(x.icv_off, x.icv_len)};
}

Decoded<Message> open_sk(std::span<const std::uint8_t> d, SkCipher& c) {
  auto dm = decode(d);
  if (!dm) return dm.error();
  Message m = std::move(dm).value();
  if (!m.sk) return syntax(kHeaderLen, "message has no SK payload");
  if (m.sk->first_inner) return syntax(kHeaderLen, "internal: SK already opened");
  auto l = sk_layout(d.size(), *m.sk, c);
  if (!l) return l.error();
  const SkLayout& x = l.value();
  Bytes buf(d.begin(), d.end());
  std::span<std::uint8_t> all(buf);
  if (!c.open(all.subspan(0, x.assoc_len), all.subspan(x.iv_off, x.iv_len), all.subspan(x.text_off, x.text_len),
              all.subspan(x.icv_off, x.icv_len)))
    return DecodeError{NotifyType::none, 0, x.icv_off, "SK integrity check failed (dropped, RFC 7296 2.21.2)"};
  std::size_t pad = buf[x.text_off + x.text_len - 1];
  if (pad + 1 > x.text_len)
    return syntax(x.text_off + x.text_len - 1,
                  "SK Pad Length " + num(pad) + " exceeds the " + num(x.text_len) + "-byte plaintext");
  In inner = In(buf).subspan(x.text_off, x.text_len - 1 - pad);
  auto ps = decode_chain(m.sk->inner_next, inner, x.text_off, true, nullptr);
  if (!ps) return ps.error();
  m.sk->first_inner = m.payloads.size();
  for (auto& p : ps.value()) m.payloads.push_back(std::move(p));
  return m;
}

// ---- encoding ----

Result<Bytes> encode(const Message& m) {
  if (m.sk) return make_error("IKE encode: a message with an SK payload is built by seal_sk()");
  Bytes b;
  b.reserve(256);
  put_header(b, m.header, PayloadType::none);
  PayloadType first = PayloadType::none;
  auto r = encode_chain(m.payloads, b, &first);
  if (!r) return r.error();
  if (b.size() > kMaxMessageLen) return make_error("IKE encode: message longer than " + num(kMaxMessageLen) + " bytes");
  b[16] = static_cast<std::uint8_t>(first);
  set32(b, 24, static_cast<std::uint32_t>(b.size()));
  return b;
}

Result<Bytes> seal_sk(const Header& h, std::span<const Payload> inner, SkCipher& c) {
  std::size_t iv = c.iv_len(), icv = c.icv_len(), blk = std::max<std::size_t>(c.block_len(), 1);
  Bytes plain;
  PayloadType first = PayloadType::none;
  auto r = encode_chain(inner, plain, &first);
  if (!r) return r.error();
  if (blk > 256) return make_error("IKE encode: cipher block length " + num(blk) + " > 256");
  std::size_t pad = (blk - (plain.size() + 1) % blk) % blk;
  std::size_t text = plain.size() + pad + 1;
  std::size_t total = kHeaderLen + 4 + iv + text + icv;
  if (total > kMaxMessageLen) return make_error("IKE encode: message longer than " + num(kMaxMessageLen) + " bytes");
  Bytes b;
  b.reserve(total);
  put_header(b, h, PayloadType::sk);
  put8(b, static_cast<std::uint8_t>(first));
  put8(b, 0);
  put16(b, static_cast<std::uint16_t>(total - kHeaderLen));
  b.resize(b.size() + iv, 0);
  put_bytes(b, plain);
  b.resize(b.size() + pad, 0);
  put8(b, static_cast<std::uint8_t>(pad));
  b.resize(b.size() + icv, 0);
  set32(b, 24, static_cast<std::uint32_t>(total));
  std::span<std::uint8_t> all(b);
  auto s = c.seal(all.subspan(0, kHeaderLen + 4), all.subspan(kHeaderLen + 4, iv),
                  all.subspan(kHeaderLen + 4 + iv, text), all.subspan(kHeaderLen + 4 + iv + text, icv));
  if (!s) return s.error();
  return b;
}

// ---- UDP 4500 ----

Udp4500 classify_udp4500(std::span<const std::uint8_t> u) noexcept {
  if (u.size() == 1 && u[0] == 0xff) return {Udp4500Kind::keepalive, u};  // RFC 3948 2.3
  if (u.size() < 4) return {Udp4500Kind::invalid, u};
  if (u[0] == 0 && u[1] == 0 && u[2] == 0 && u[3] == 0) return {Udp4500Kind::ike, u.subspan(4)};  // RFC 3948 2.2
  return {Udp4500Kind::esp, u};  // a non-zero SPI (RFC 4303 2.1)
}

Bytes add_non_esp_marker(std::span<const std::uint8_t> ike) {
  Bytes b(4, 0);
  b.insert(b.end(), ike.begin(), ike.end());
  return b;
}

// ---- helpers ----

std::optional<std::uint32_t> message_length(std::span<const std::uint8_t> d) noexcept {
  if (d.size() < kHeaderLen) return std::nullopt;
  return rd32(&d[24]);
}

const NotifyPayload* find_notify(const Message& m, NotifyType t) noexcept {
  for (const auto& p : m.payloads)
    if (const auto* n = std::get_if<NotifyPayload>(&p); n && n->type == t) return n;
  return nullptr;
}

const NotifyPayload* find_error_notify(const Message& m) noexcept {
  for (const auto& p : m.payloads)
    if (const auto* n = std::get_if<NotifyPayload>(&p); n && notify_is_error(n->type)) return n;
  return nullptr;
}

const IdPayload* find_id(const Message& m, bool responder) noexcept {
  for (const auto& p : m.payloads)
    if (const auto* n = std::get_if<IdPayload>(&p); n && n->responder == responder) return n;
  return nullptr;
}

const TsPayload* find_ts(const Message& m, bool responder) noexcept {
  for (const auto& p : m.payloads)
    if (const auto* n = std::get_if<TsPayload>(&p); n && n->responder == responder) return n;
  return nullptr;
}

const char* notify_name(NotifyType t) noexcept {
  switch (t) {
    case NotifyType::none: return "NONE";
    case NotifyType::unsupported_critical_payload: return "UNSUPPORTED_CRITICAL_PAYLOAD";
    case NotifyType::invalid_ike_spi: return "INVALID_IKE_SPI";
    case NotifyType::invalid_major_version: return "INVALID_MAJOR_VERSION";
    case NotifyType::invalid_syntax: return "INVALID_SYNTAX";
    case NotifyType::invalid_message_id: return "INVALID_MESSAGE_ID";
    case NotifyType::invalid_spi: return "INVALID_SPI";
    case NotifyType::no_proposal_chosen: return "NO_PROPOSAL_CHOSEN";
    case NotifyType::invalid_ke_payload: return "INVALID_KE_PAYLOAD";
    case NotifyType::authentication_failed: return "AUTHENTICATION_FAILED";
    case NotifyType::single_pair_required: return "SINGLE_PAIR_REQUIRED";
    case NotifyType::no_additional_sas: return "NO_ADDITIONAL_SAS";
    case NotifyType::internal_address_failure: return "INTERNAL_ADDRESS_FAILURE";
    case NotifyType::failed_cp_required: return "FAILED_CP_REQUIRED";
    case NotifyType::ts_unacceptable: return "TS_UNACCEPTABLE";
    case NotifyType::invalid_selectors: return "INVALID_SELECTORS";
    case NotifyType::temporary_failure: return "TEMPORARY_FAILURE";
    case NotifyType::child_sa_not_found: return "CHILD_SA_NOT_FOUND";
    case NotifyType::initial_contact: return "INITIAL_CONTACT";
    case NotifyType::set_window_size: return "SET_WINDOW_SIZE";
    case NotifyType::additional_ts_possible: return "ADDITIONAL_TS_POSSIBLE";
    case NotifyType::ipcomp_supported: return "IPCOMP_SUPPORTED";
    case NotifyType::nat_detection_source_ip: return "NAT_DETECTION_SOURCE_IP";
    case NotifyType::nat_detection_destination_ip: return "NAT_DETECTION_DESTINATION_IP";
    case NotifyType::cookie: return "COOKIE";
    case NotifyType::use_transport_mode: return "USE_TRANSPORT_MODE";
    case NotifyType::http_cert_lookup_supported: return "HTTP_CERT_LOOKUP_SUPPORTED";
    case NotifyType::rekey_sa: return "REKEY_SA";
    case NotifyType::esp_tfc_padding_not_supported: return "ESP_TFC_PADDING_NOT_SUPPORTED";
    case NotifyType::non_first_fragments_also: return "NON_FIRST_FRAGMENTS_ALSO";
    case NotifyType::mobike_supported: return "MOBIKE_SUPPORTED";
    case NotifyType::ikev2_fragmentation_supported: return "IKEV2_FRAGMENTATION_SUPPORTED";
    case NotifyType::signature_hash_algorithms: return "SIGNATURE_HASH_ALGORITHMS";
  }
  return "?";
}

const char* payload_name(PayloadType t) noexcept {
  switch (t) {
    case PayloadType::none: return "NONE";
    case PayloadType::sa: return "SA";
    case PayloadType::ke: return "KE";
    case PayloadType::idi: return "IDi";
    case PayloadType::idr: return "IDr";
    case PayloadType::cert: return "CERT";
    case PayloadType::certreq: return "CERTREQ";
    case PayloadType::auth: return "AUTH";
    case PayloadType::nonce: return "Ni/Nr";
    case PayloadType::notify: return "N";
    case PayloadType::del: return "D";
    case PayloadType::vendor: return "V";
    case PayloadType::tsi: return "TSi";
    case PayloadType::tsr: return "TSr";
    case PayloadType::sk: return "SK";
    case PayloadType::cp: return "CP";
    case PayloadType::eap: return "EAP";
  }
  return "?";
}

const char* exchange_name(ExchangeType t) noexcept {
  switch (t) {
    case ExchangeType::ike_sa_init: return "IKE_SA_INIT";
    case ExchangeType::ike_auth: return "IKE_AUTH";
    case ExchangeType::create_child_sa: return "CREATE_CHILD_SA";
    case ExchangeType::informational: return "INFORMATIONAL";
  }
  return "?";
}

std::string to_text(const Message& m) {
  std::string o;
  char buf[160];
  const Header& h = m.header;
  std::snprintf(buf, sizeof buf,
                "header spi_i=%016llx spi_r=%016llx next=%u version=%u.%u exchange=%u flags=0x%02x msgid=%u "
                "length=%u\n",
                static_cast<unsigned long long>(h.spi_i), static_cast<unsigned long long>(h.spi_r),
                static_cast<unsigned>(h.next_payload), static_cast<unsigned>(h.major), static_cast<unsigned>(h.minor),
                static_cast<unsigned>(h.exchange), static_cast<unsigned>(h.flags), h.message_id, h.length);
  o += buf;
  for (std::size_t i = 0; i < m.payloads.size(); ++i) {
    if (m.sk && m.sk->first_inner && *m.sk->first_inner == i) o += "inner\n";
    std::visit(
        [&o](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, SaPayload>) {
            o += "SA\n";
            for (const auto& p : v.proposals) {
              o += " proposal num=" + num(p.number) + " protocol=" + num(static_cast<unsigned>(p.protocol)) +
                   " spi=" + hex(p.spi) + " transforms=" + num(p.transforms.size()) + "\n";
              for (const auto& t : p.transforms) {
                o += "  transform type=" + num(static_cast<unsigned>(t.type)) + " id=" + num(t.id);
                if (auto k = t.key_length()) o += " keylen=" + num(*k);
                o += "\n";
                for (const auto& a : t.attributes)
                  if (a.type != kAttrKeyLength)
                    o += "   attr type=" + num(a.type) +
                         (a.tv ? " value=" + num(a.value) : " data=" + hex(a.data)) + "\n";
              }
            }
          } else if constexpr (std::is_same_v<T, KePayload>) {
            o += "KE group=" + num(v.group) + " data=" + hex(v.data) + "\n";
          } else if constexpr (std::is_same_v<T, IdPayload>) {
            o += std::string(v.responder ? "IDr" : "IDi") + " type=" + num(static_cast<unsigned>(v.type)) +
                 " data=" + hex(v.data) + "\n";
          } else if constexpr (std::is_same_v<T, CertPayload>) {
            o += "CERT encoding=" + num(v.encoding) + " data=" + hex(v.data) + "\n";
          } else if constexpr (std::is_same_v<T, CertReqPayload>) {
            o += "CERTREQ encoding=" + num(v.encoding) + " data=" + hex(v.data) + "\n";
          } else if constexpr (std::is_same_v<T, AuthPayload>) {
            o += "AUTH method=" + num(v.method) + " data=" + hex(v.data) + "\n";
          } else if constexpr (std::is_same_v<T, NoncePayload>) {
            o += "NONCE data=" + hex(v.data) + "\n";
          } else if constexpr (std::is_same_v<T, NotifyPayload>) {
            o += "N protocol=" + num(static_cast<unsigned>(v.protocol)) + " spi=" + hex(v.spi) +
                 " type=" + num(static_cast<unsigned>(v.type)) + " data=" + hex(v.data) + "\n";
          } else if constexpr (std::is_same_v<T, DeletePayload>) {
            o += "D protocol=" + num(static_cast<unsigned>(v.protocol)) + " spi_size=" + num(v.spi_size) + " spis=";
            for (std::size_t k = 0; k < v.spis.size(); ++k) o += (k ? "," : "") + hex(v.spis[k]);
            o += "\n";
          } else if constexpr (std::is_same_v<T, VendorPayload>) {
            o += "V data=" + hex(v.id) + "\n";
          } else if constexpr (std::is_same_v<T, TsPayload>) {
            o += std::string(v.responder ? "TSr" : "TSi") + " count=" + num(v.selectors.size()) + "\n";
            for (const auto& s : v.selectors) {
              if (s.ts_type == kTsIpv4AddrRange || s.ts_type == kTsIpv6AddrRange)
                o += " ts type=" + num(s.ts_type) + " proto=" + num(s.ip_protocol) + " ports=" + num(s.start_port) +
                     "-" + num(s.end_port) + " start=" + s.start.to_string() + " end=" + s.end.to_string() + "\n";
              else
                o += " ts type=" + num(s.ts_type) + " proto=" + num(s.ip_protocol) + " data=" + hex(s.other) + "\n";
            }
          } else if constexpr (std::is_same_v<T, ConfigPayload>) {
            o += "CP type=" + num(v.cfg_type) + " data=" + hex(v.attributes) + "\n";
          } else if constexpr (std::is_same_v<T, EapPayload>) {
            o += "EAP data=" + hex(v.data) + "\n";
          } else if constexpr (std::is_same_v<T, UnknownPayload>) {
            o += "UNKNOWN type=" + num(v.type) + " critical=" + num(v.critical) + " data=" + hex(v.body) + "\n";
          }
        },
        m.payloads[i]);
  }
  if (m.sk)
    o += "SK inner_next=" + num(static_cast<unsigned>(m.sk->inner_next)) + " offset=" + num(m.sk->offset) +
         " length=" + num(m.sk->length) + (m.sk->first_inner ? " opened" : "") + "\n";
  return o;
}

}  // namespace cygnet::ike
