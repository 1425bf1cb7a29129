#include "cp/ike/engine/proposals.h"

#include <string>

namespace cygnet::ike {

namespace {

Transform encr_transform(EncrId e, std::uint16_t bits) {
  if (e == EncrId::chacha20_poly1305) return Transform::make(TransformType::encr, static_cast<std::uint16_t>(e));
  return Transform::make(TransformType::encr, static_cast<std::uint16_t>(e), bits);
}

bool has_encr(const Proposal& p, EncrId e, std::uint16_t bits) {
  for (const Transform& t : p.transforms) {
    if (t.type != TransformType::encr || t.id != static_cast<std::uint16_t>(e)) continue;
    const auto kl = t.key_length();
    if (e == EncrId::chacha20_poly1305 ? (!kl || *kl == 256) : (kl && *kl == bits)) return true;
  }
  return false;
}

bool has(const Proposal& p, TransformType type, std::uint16_t id) {
  for (const Transform& t : p.transforms) {
    if (t.type == type && t.id == id) return true;
  }
  return false;
}

bool has_type(const Proposal& p, TransformType type) {
  for (const Transform& t : p.transforms) {
    if (t.type == type) return true;
  }
  return false;
}

// Integrity: with an AEAD the proposal lists none, or NONE (RFC 5282 8).
bool integ_ok(const Proposal& p, EncrId e, IntegId i) {
  if (is_aead(e)) return !has_type(p, TransformType::integ) || has(p, TransformType::integ, 0);
  return has(p, TransformType::integ, static_cast<std::uint16_t>(i));
}

// ESN: a proposal without an ESN transform means "no ESN" (RFC 7296 3.3.2).
bool esn_ok(const Proposal& p, bool esn) {
  if (!has_type(p, TransformType::esn)) return !esn;
  return has(p, TransformType::esn, esn ? 1 : 0);
}

bool ike_allows(const Proposal& p, const IkeSuite& s) {
  return p.protocol == Protocol::ike && has_encr(p, s.encr, s.encr_key_bits) && integ_ok(p, s.encr, s.integ) &&
         has(p, TransformType::prf, static_cast<std::uint16_t>(s.prf)) &&
         has(p, TransformType::dh, static_cast<std::uint16_t>(s.group));
}

bool esp_allows(const Proposal& p, const EspSuite& s) {
  return p.protocol == Protocol::esp && p.spi.size() == 4 && has_encr(p, s.encr, s.encr_key_bits) &&
         integ_ok(p, s.encr, s.integ) && esn_ok(p, s.esn);
}

Proposal ike_proposal(const IkeSuite& s, std::uint8_t number, const Bytes& spi) {
  Proposal p;
  p.number = number;
  p.protocol = Protocol::ike;
  p.spi = spi;
  p.transforms.push_back(encr_transform(s.encr, s.encr_key_bits));
  p.transforms.push_back(Transform::make(TransformType::prf, static_cast<std::uint16_t>(s.prf)));
  if (!is_aead(s.encr)) p.transforms.push_back(Transform::make(TransformType::integ, static_cast<std::uint16_t>(s.integ)));
  p.transforms.push_back(Transform::make(TransformType::dh, static_cast<std::uint16_t>(s.group)));
  return p;
}

Bytes spi_bytes(std::uint32_t spi) {
  return Bytes{static_cast<std::uint8_t>(spi >> 24), static_cast<std::uint8_t>(spi >> 16),
               static_cast<std::uint8_t>(spi >> 8), static_cast<std::uint8_t>(spi)};
}

Proposal esp_proposal(const EspSuite& s, std::uint8_t number, std::uint32_t spi,
                      std::optional<KeGroup> group = {}) {
  Proposal p;
  p.number = number;
  p.protocol = Protocol::esp;
  p.spi = spi_bytes(spi);
  p.transforms.push_back(encr_transform(s.encr, s.encr_key_bits));
  if (!is_aead(s.encr)) p.transforms.push_back(Transform::make(TransformType::integ, static_cast<std::uint16_t>(s.integ)));
  if (group) p.transforms.push_back(Transform::make(TransformType::dh, static_cast<std::uint16_t>(*group)));
  p.transforms.push_back(Transform::make(TransformType::esn, s.esn ? 1 : 0));
  return p;
}

std::uint32_t spi_value(const Bytes& b) {
  return static_cast<std::uint32_t>(b[0]) << 24 | static_cast<std::uint32_t>(b[1]) << 16 |
         static_cast<std::uint32_t>(b[2]) << 8 | b[3];
}

// The reply's transforms: exactly one of each type the suite uses, and
// nothing else.
bool exact(const Proposal& p, std::size_t want) { return p.transforms.size() == want; }

}  // namespace

SaPayload ike_sa_payload(std::span<const IkeSuite> suites, const Bytes& spi) {
  SaPayload sa;
  std::uint8_t n = 1;
  for (const IkeSuite& s : suites) sa.proposals.push_back(ike_proposal(s, n++, spi));
  return sa;
}

SaPayload esp_sa_payload(std::span<const EspSuite> suites, std::uint32_t spi, bool with_ke) {
  SaPayload sa;
  std::uint8_t n = 1;
  for (const EspSuite& s : suites) sa.proposals.push_back(esp_proposal(s, n++, spi, with_ke ? s.group : std::nullopt));
  return sa;
}

std::optional<IkeChoice> select_ike(std::span<const IkeSuite> ours, const SaPayload& peer,
                                    std::optional<KeGroup> group) {
  for (const IkeSuite& s : ours) {
    if (group && s.group != *group) continue;
    for (const Proposal& p : peer.proposals) {
      if (ike_allows(p, s)) return IkeChoice{s, p.number};
    }
  }
  return std::nullopt;
}

std::optional<EspChoice> select_esp(std::span<const EspSuite> ours, const SaPayload& peer) {
  for (const EspSuite& s : ours) {
    for (const Proposal& p : peer.proposals) {
      if (esp_allows(p, s)) return EspChoice{s, p.number, spi_value(p.spi)};
    }
  }
  return std::nullopt;
}

EspKeSelection select_esp_ke(std::span<const EspSuite> ours, const SaPayload& peer,
                             std::optional<std::uint16_t> ke_group) {
  EspKeSelection r;
  for (const EspSuite& s : ours) {
    for (const Proposal& p : peer.proposals) {
      if (!esp_allows(p, s)) continue;
      const bool any_ke = has_type(p, TransformType::dh);
      const bool none_ok = !any_ke || has(p, TransformType::dh, 0);
      std::optional<KeGroup> g;
      if (s.group) {
        if (!has(p, TransformType::dh, static_cast<std::uint16_t>(*s.group))) continue;
        if (ke_group != static_cast<std::uint16_t>(*s.group)) {
          if (!r.want_group) r.want_group = s.group;
          continue;
        }
        g = s.group;
      } else if (ke_group && *ke_group != 0 && has(p, TransformType::dh, *ke_group) && group_from_id(*ke_group)) {
        g = *group_from_id(*ke_group);  // the peer asks for PFS: follow it
      } else if (!none_ok) {
        // It insists on a key exchange, but its KE is not of one we can do.
        for (const Transform& t : p.transforms) {
          if (t.type != TransformType::dh || t.id == 0 || r.want_group) continue;
          if (auto kg = group_from_id(t.id)) r.want_group = *kg;
        }
        continue;
      }
      EspChoice c{s, p.number, spi_value(p.spi), g};
      r.choice = c;
      r.want_group.reset();
      return r;
    }
  }
  return r;
}

SaPayload ike_reply(const IkeChoice& c, const Bytes& spi) {
  SaPayload sa;
  sa.proposals.push_back(ike_proposal(c.suite, c.number, spi));
  return sa;
}

SaPayload esp_reply(const EspChoice& c, std::uint32_t our_spi) {
  SaPayload sa;
  sa.proposals.push_back(esp_proposal(c.suite, c.number, our_spi, c.group));
  return sa;
}

Result<IkeSuite> accept_ike_reply(std::span<const IkeSuite> ours, const SaPayload& reply) {
  if (reply.proposals.size() != 1) return make_error("the responder's SA payload must hold one proposal");
  const Proposal& p = reply.proposals[0];
  // Its number is the one we gave the suite (ike_sa_payload numbers from 1).
  if (p.number >= 1 && p.number <= ours.size()) {
    const IkeSuite& s = ours[p.number - 1];
    if (ike_allows(p, s) && exact(p, is_aead(s.encr) ? 3 : 4)) return s;
  }
  return make_error("the responder chose a proposal we did not offer");
}

Result<EspChoice> accept_esp_reply(std::span<const EspSuite> ours, const SaPayload& reply) {
  if (reply.proposals.size() != 1) return make_error("the responder's ESP SA payload must hold one proposal");
  const Proposal& p = reply.proposals[0];
  if (p.protocol != Protocol::esp || p.spi.size() != 4) return make_error("the responder's proposal is not ESP");
  if (p.number >= 1 && p.number <= ours.size()) {
    const EspSuite& s = ours[p.number - 1];
    // A key exchange only if we offered the suite with it (CREATE_CHILD_SA).
    const bool ke = s.group && has(p, TransformType::dh, static_cast<std::uint16_t>(*s.group));
    const std::size_t want = (is_aead(s.encr) ? 1 : 2) + (has_type(p, TransformType::esn) ? 1 : 0) + (ke ? 1 : 0);
    if (esp_allows(p, s) && exact(p, want)) {
      return EspChoice{s, p.number, spi_value(p.spi), ke ? s.group : std::nullopt};
    }
  }
  return make_error("the responder chose an ESP proposal we did not offer");
}

std::string to_string(const IkeSuite& s) {
  std::string r = encr_name(s.encr);
  if (s.encr != EncrId::chacha20_poly1305) r += "-" + std::to_string(s.encr_key_bits);
  if (!is_aead(s.encr)) r += std::string("/") + integ_name(s.integ);
  return r + "/" + prf_name(s.prf) + "/" + group_name(s.group);
}

std::string to_string(const EspSuite& s) {
  std::string r = encr_name(s.encr);
  if (s.encr != EncrId::chacha20_poly1305) r += "-" + std::to_string(s.encr_key_bits);
  if (!is_aead(s.encr)) r += std::string("/") + integ_name(s.integ);
  if (s.group) r += std::string("/") + group_name(*s.group);
  return s.esn ? r + "/esn" : r;
}

}  // namespace cygnet::ike
