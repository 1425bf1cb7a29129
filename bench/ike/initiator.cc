#include "bench/ike/initiator.h"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <string>

#include "cp/ike/crypto/auth.h"
#include "cp/ike/crypto/nat.h"
#include "cp/ike/engine/identity.h"
#include "cp/ike/engine/proposals.h"

namespace cygnet::ike::loadgen {

namespace {

constexpr std::size_t kNonceLen = 32;
constexpr unsigned kMaxCookieRounds = 2;

std::array<std::uint8_t, 8> spi_bytes(std::uint64_t v) {
  std::array<std::uint8_t, 8> b{};
  for (std::size_t i = 0; i < 8; ++i) b[i] = static_cast<std::uint8_t>(v >> (56 - 8 * i));
  return b;
}

void fill_random(std::span<std::uint8_t> b) {
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) std::abort();  // no randomness: fail closed
}

bool hash_listed(const Message& m, NotifyType t, const Result<NatHash>& want) {
  if (!want) return false;
  for (const Payload& p : m.payloads) {
    const auto* n = std::get_if<NotifyPayload>(&p);
    if (n != nullptr && n->type == t && n->data.size() == want->size() &&
        std::equal(n->data.begin(), n->data.end(), want->begin())) {
      return true;
    }
  }
  return false;
}

}  // namespace

Error InitiatorSa::fail(std::string why) {
  state_ = SetupState::failed;
  ciphers_ = {};
  keys_.reset();
  return make_error(std::move(why));
}

Result<Bytes> InitiatorSa::seal(ExchangeType ex, std::uint32_t mid, std::span<const Payload> inner) {
  Header h;
  h.spi_i = spi_i_;
  h.spi_r = spi_r_;
  h.exchange = ex;
  h.flags = kFlagInitiator;
  h.message_id = mid;
  return seal_sk(h, inner, *ciphers_.out);
}

Datagram InitiatorSa::frame(Bytes msg) const {
  if (!natt_) return Datagram{std::move(msg), false};
  return Datagram{add_non_esp_marker(msg), true};
}

Bytes InitiatorSa::build_init() {
  Message m;
  m.header.spi_i = spi_i_;
  m.header.exchange = ExchangeType::ike_sa_init;
  m.header.flags = kFlagInitiator;
  if (!cookie_.empty()) m.payloads.push_back(NotifyPayload::make(NotifyType::cookie, cookie_));
  m.payloads.push_back(ike_sa_payload(std::span<const IkeSuite>(&cfg_->ike, 1)));
  m.payloads.push_back(KePayload{static_cast<std::uint16_t>(cfg_->ike.group), ke_->public_value()});
  m.payloads.push_back(NoncePayload{ni_});
  const auto si = spi_bytes(spi_i_);
  const std::array<std::uint8_t, 8> zero{};
  auto src = nat_detection_hash(si, zero, cfg_->local, cfg_->local_port);
  auto dst = nat_detection_hash(si, zero, cfg_->remote, cfg_->remote_port);
  if (src && dst) {
    m.payloads.push_back(NotifyPayload::make(NotifyType::nat_detection_source_ip, Bytes(src->begin(), src->end())));
    m.payloads.push_back(NotifyPayload::make(NotifyType::nat_detection_destination_ip, Bytes(dst->begin(), dst->end())));
  }
  auto bytes = encode(m);
  return bytes ? std::move(*bytes) : Bytes{};
}

Result<Datagram> InitiatorSa::start(const InitiatorConfig& cfg, std::uint64_t spi_i,
                                    std::shared_ptr<const KeyExchange> ke) {
  if (spi_i == 0) return make_error("SPIi must not be zero");
  if (!ke || ke->group() != cfg.ike.group) return make_error("the key pair is not of the proposal's group");
  cfg_ = &cfg;
  ke_ = std::move(ke);
  spi_i_ = spi_i;
  ni_.assign(kNonceLen, 0);
  fill_random(ni_);
  init_request_ = build_init();
  if (init_request_.empty()) return make_error("could not encode IKE_SA_INIT");
  state_ = SetupState::init_sent;
  return Datagram{init_request_, false};
}

Result<Datagram> InitiatorSa::on_init_response(std::span<const std::uint8_t> msg) {
  if (state_ != SetupState::init_sent) return make_error("no IKE_SA_INIT is outstanding");
  auto dm = decode(msg);
  if (!dm) return fail("IKE_SA_INIT response: " + dm.error().message);
  const Message& m = dm.value();
  if (m.header.exchange != ExchangeType::ike_sa_init || !m.header.response() || m.header.initiator() ||
      m.header.spi_i != spi_i_ || m.header.message_id != 0) {
    return fail("not the IKE_SA_INIT response to our request");
  }
  if (const NotifyPayload* c = find_notify(m, NotifyType::cookie)) {
    if (cookie_rounds_++ >= kMaxCookieRounds || c->data.empty() || c->data.size() > 64) {
      return fail("the responder keeps asking for a COOKIE");
    }
    cookie_ = c->data;
    init_request_ = build_init();
    return Datagram{init_request_, false};
  }
  if (const NotifyPayload* e = find_error_notify(m)) {
    return fail(std::string("IKE_SA_INIT refused: ") + notify_name(e->type));
  }
  const auto* sap = find_payload<SaPayload>(m);
  const auto* kep = find_payload<KePayload>(m);
  const auto* nonce = find_payload<NoncePayload>(m);
  if (sap == nullptr || kep == nullptr || nonce == nullptr || m.header.spi_r == 0) {
    return fail("IKE_SA_INIT response without SA, KE or Nonce");
  }
  auto suite = accept_ike_reply(std::span<const IkeSuite>(&cfg_->ike, 1), *sap);
  if (!suite) return fail(suite.error().message);
  if (kep->group != static_cast<std::uint16_t>(cfg_->ike.group)) return fail("the responder's KE is of another group");
  auto gir = ke_->derive(kep->data);
  if (!gir) return fail("the responder's KE: " + gir.error().message);
  spi_r_ = m.header.spi_r;
  nr_ = nonce->data;
  init_response_.assign(msg.begin(), msg.end());
  const auto si = spi_bytes(spi_i_), sr = spi_bytes(spi_r_);
  const bool nat_d = find_notify(m, NotifyType::nat_detection_source_ip) != nullptr &&
                     find_notify(m, NotifyType::nat_detection_destination_ip) != nullptr;
  if (nat_d) {
    const bool nat_remote = !hash_listed(m, NotifyType::nat_detection_source_ip,
                                         nat_detection_hash(si, sr, cfg_->remote, cfg_->remote_port));
    const bool nat_local = !hash_listed(m, NotifyType::nat_detection_destination_ip,
                                        nat_detection_hash(si, sr, cfg_->local, cfg_->local_port));
    natt_ = nat_remote || nat_local;
  }
  const IkeSaSuite ks{suite->encr, suite->encr_key_bits, suite->integ, suite->prf};
  auto seed = skeyseed(suite->prf, ni_, nr_, gir->bytes());
  if (!seed) return fail(seed.error().message);
  auto keys = derive_ike_sa_keys(ks, *seed, ni_, nr_, si, sr);
  if (!keys) return fail(keys.error().message);
  auto ciphers = make_sk_ciphers(ks, *keys, true);
  if (!ciphers) return fail(ciphers.error().message);
  keys_.emplace(std::move(*keys));
  ciphers_ = std::move(*ciphers);

  const IdPayload idi = id_payload_of(cfg_->local_id, cfg_->local, false);
  auto auth = psk_auth(suite->prf, cfg_->psk.bytes(), init_request_, nr_, keys_->sk_pi, idi.body());
  if (!auth) return fail(auth.error().message);
  do {
    fill_random(std::span(reinterpret_cast<std::uint8_t*>(&child_spi_in_), sizeof child_spi_in_));
  } while (child_spi_in_ < 256);  // 1..255 are reserved (RFC 4303 2.1)
  std::vector<Payload> p;
  p.reserve(7);
  p.push_back(idi);
  if (cfg_->remote_id.type != Identity::Type::any) p.push_back(id_payload_of(cfg_->remote_id, cfg_->remote, true));
  p.push_back(AuthPayload{2, std::move(*auth)});
  p.push_back(esp_sa_payload(std::span<const EspSuite>(&cfg_->esp, 1), child_spi_in_));
  p.push_back(ts_payload(cfg_->tsi.empty() ? std::vector<TsRange>{ts_host(cfg_->local)} : cfg_->tsi, false));
  p.push_back(ts_payload(cfg_->tsr.empty() ? std::vector<TsRange>{ts_host(cfg_->remote)} : cfg_->tsr, true));
  auto out = seal(ExchangeType::ike_auth, 1, p);
  if (!out) return fail(out.error().message);
  state_ = SetupState::auth_sent;
  return frame(std::move(*out));
}

Result<void> InitiatorSa::on_auth_response(std::span<const std::uint8_t> msg) {
  if (state_ != SetupState::auth_sent) return make_error("no IKE_AUTH is outstanding");
  auto dh = decode_header(msg);
  if (!dh || dh->exchange != ExchangeType::ike_auth || !dh->response() || dh->initiator() || dh->spi_i != spi_i_ ||
      dh->spi_r != spi_r_ || dh->message_id != 1) {
    return make_error("not the IKE_AUTH response to our request");  // not ours: the SA stays as it is
  }
  auto dm = open_sk(msg, *ciphers_.in);
  if (!dm) return fail("IKE_AUTH response does not open: " + dm.error().message);
  const Message& m = dm.value();
  if (find_notify(m, NotifyType::authentication_failed) != nullptr) return fail("AUTHENTICATION_FAILED");
  const IdPayload* idr = find_id(m, true);
  const auto* auth = find_payload<AuthPayload>(m);
  if (idr == nullptr || auth == nullptr) {
    const NotifyPayload* e = find_error_notify(m);
    return fail(std::string("IKE_AUTH response without IDr or AUTH") + (e ? std::string(": ") + notify_name(e->type) : ""));
  }
  if (cfg_->remote_id.type != Identity::Type::any) {
    const IdPayload want = id_payload_of(cfg_->remote_id, cfg_->remote, true);
    if (idr->type != want.type || idr->data != want.data) return fail("the responder's IDr is not the one configured");
  }
  auto want = psk_auth(cfg_->ike.prf, cfg_->psk.bytes(), init_response_, ni_, keys_->sk_pr, idr->body());
  if (auth->method != 2 || !want || !auth_equal(auth->data, *want)) return fail("the responder's AUTH does not verify");
  if (const NotifyPayload* e = find_error_notify(m)) return fail(std::string("no Child SA: ") + notify_name(e->type));
  const auto* sap = find_payload<SaPayload>(m);
  if (sap == nullptr || find_ts(m, false) == nullptr || find_ts(m, true) == nullptr) {
    return fail("no Child SA in the IKE_AUTH response");
  }
  auto esp = accept_esp_reply(std::span<const EspSuite>(&cfg_->esp, 1), *sap);
  if (!esp) return fail("Child SA: " + esp.error().message);
  child_spi_out_ = esp->peer_spi;
  state_ = SetupState::established;
  return {};
}

Result<Datagram> InitiatorSa::delete_request() {
  if (state_ != SetupState::established) return make_error("the IKE SA is not established");
  DeletePayload d;
  d.protocol = Protocol::ike;
  d.spi_size = 0;
  const Payload p = d;
  auto out = seal(ExchangeType::informational, 2, std::span<const Payload>(&p, 1));
  if (!out) return make_error(out.error().message);
  state_ = SetupState::delete_sent;
  return frame(std::move(*out));
}

Result<void> InitiatorSa::on_delete_response(std::span<const std::uint8_t> msg) {
  if (state_ != SetupState::delete_sent) return make_error("no Delete is outstanding");
  auto dh = decode_header(msg);
  if (!dh || dh->exchange != ExchangeType::informational || !dh->response() || dh->message_id != 2 ||
      dh->spi_i != spi_i_ || dh->spi_r != spi_r_) {
    return make_error("not the answer to our Delete");
  }
  auto dm = open_sk(msg, *ciphers_.in);
  if (!dm) return make_error("the answer to our Delete does not open");
  state_ = SetupState::done;
  ciphers_ = {};
  keys_.reset();
  return {};
}

}  // namespace cygnet::ike::loadgen
