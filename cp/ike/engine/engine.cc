#include "cp/ike/engine/engine.h"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <string>

#include "cp/ike/crypto/auth.h"
#include "cp/ike/crypto/nat.h"
#include "cp/ike/engine/identity.h"

namespace cygnet::ike {

namespace {

constexpr std::size_t kNonceLen = 32;
constexpr unsigned kMaxInitRetries = 3;  // COOKIE and INVALID_KE_PAYLOAD rounds

using Spi8 = std::array<std::uint8_t, 8>;

Spi8 spi8(std::uint64_t v) {
  Spi8 b;
  for (int i = 7; i >= 0; --i) {
    b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
  return b;
}

Bytes random_bytes(std::size_t n) {
  Bytes b(n);
  if (RAND_bytes(b.data(), static_cast<int>(n)) != 1) std::abort();  // no randomness: fail closed
  return b;
}

std::uint64_t random_u64() {
  std::uint64_t v = 0;
  for (std::uint8_t x : random_bytes(8)) v = v << 8 | x;
  return v;
}

std::vector<const NotifyPayload*> all_notifies(const Message& m, NotifyType t) {
  std::vector<const NotifyPayload*> v;
  for (const Payload& p : m.payloads) {
    if (const auto* n = std::get_if<NotifyPayload>(&p); n && n->type == t) v.push_back(n);
  }
  return v;
}

const SaPayload* find_sa(const Message& m) { return find_payload<SaPayload>(m); }

Identity identity_of(const IdPayload& id) {
  Identity r;
  switch (id.type) {
    case IdType::ipv4_addr:
    case IdType::ipv6_addr:
      if (auto a = id.ip()) {
        r.type = id.type == IdType::ipv4_addr ? Identity::Type::ipv4 : Identity::Type::ipv6;
        r.value = a->to_string();
      }
      break;
    case IdType::fqdn:
      r.type = Identity::Type::fqdn;
      r.value = std::string(id.as_text());
      break;
    case IdType::rfc822_addr:
      r.type = Identity::Type::rfc822;
      r.value = std::string(id.as_text());
      break;
    default:
      break;  // other types never match a configured identity
  }
  return r;
}

bool prefix_list_contains(const std::vector<IpPrefix>& v, const IpAddress& a) {
  if (v.empty()) return true;
  return std::any_of(v.begin(), v.end(), [&](const IpPrefix& p) { return p.contains(a); });
}

// A connection's local address: ours, or unspecified (any of ours of the family).
bool local_matches(const Connection& c, const IpAddress& local) {
  if (c.local_addr.family == Family::none) return true;
  if (c.local_addr.is_unspecified()) return c.local_addr.family == local.family;
  return c.local_addr == local;
}

Result<CipherAlg> esp_cipher(const EspSuite& s) {
  for (const CipherInfo& c : cipher_table()) {
    if (c.ikev2_id == static_cast<std::uint16_t>(s.encr) && c.key_len * 8u == s.encr_key_bits) return c.alg;
  }
  return make_error(std::string("ESP cipher ") + encr_name(s.encr) + " " + std::to_string(s.encr_key_bits) +
                    " is not one the dataplane has");
}

Result<IntegAlg> esp_integ(const EspSuite& s) {
  if (s.integ == IntegId::none) return IntegAlg::none;
  for (const IntegInfo& i : integ_table()) {
    if (i.ikev2_id == static_cast<std::uint16_t>(s.integ)) return i.alg;
  }
  return make_error(std::string("ESP integrity ") + integ_name(s.integ) + " is not one the dataplane has");
}

void wipe_keys(SaConfig& c) {
  c.cipher_key = SecretKey{};
  c.integ_key = SecretKey{};
}

}  // namespace

struct Engine::IkeSa {
  const Connection* conn = nullptr;
  bool initiator = false;
  std::uint64_t spi_i = 0, spi_r = 0;
  IkeState state = IkeState::init_sent;
  Endpoint local, remote;
  std::optional<IkeSuite> suite;
  KeGroup group = KeGroup::curve25519;  // initiator: the group of our KE
  std::optional<KeyExchange> ke;
  Bytes ni, nr;
  Bytes init_request, init_response;  // RealMessage1 and 2 (section 2.15)
  Bytes cookie;
  unsigned init_retries = 0;
  bool natt = false;  // the peer sent NAT detection payloads
  bool nat_local = false, nat_remote = false;
  std::optional<IkeSaKeys> keys;
  SkCipherPair ciphers;
  std::uint32_t next_mid = 0;  // our next request
  std::uint32_t peer_mid = 0;  // the peer's next request
  std::optional<std::pair<std::uint32_t, Bytes>> last_response;
  struct Pending {
    Bytes msg;
    std::uint32_t mid = 0;
    ExchangeType ex = ExchangeType::informational;
    std::uint64_t next_ms = 0;
    std::uint32_t sends = 0;
  };
  std::optional<Pending> pending;
  struct Child {
    ChildSaInfo info;
    ChildSaSpec spec;  // as installed, keys wiped
  };
  std::vector<Child> children;
  std::uint32_t child_spi_in = 0;  // initiator: the first Child SA's inbound SPI
  std::vector<TsRange> child_local_ts, child_remote_ts;
  Identity peer_id;
  std::uint64_t created_ms = 0;

  std::uint64_t our_spi() const { return initiator ? spi_i : spi_r; }
  bool encap() const { return nat_local || nat_remote || (conn && conn->force_encap); }
};

std::string Endpoint::to_string() const {
  return (addr.family == Family::ipv6 ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" + std::to_string(port);
}

const char* state_name(IkeState s) noexcept {
  switch (s) {
    case IkeState::init_sent: return "init-sent";
    case IkeState::auth_sent: return "auth-sent";
    case IkeState::init_done: return "half-open";
    case IkeState::established: return "established";
    case IkeState::deleting: return "deleting";
    case IkeState::dead: return "dead";
  }
  return "?";
}

Engine::Engine(IkeConfig cfg, Backend& backend, Transport& transport, Log log)
    : cfg_(std::move(cfg)), backend_(backend), transport_(transport), log_(std::move(log)) {
  next_reqid_ = cfg_.reqid_base;
  auto c = CookieSecrets::create();
  if (!c) std::abort();  // no randomness: fail closed
  cookies_ = std::move(*c);
}

Engine::~Engine() {
  for (auto& [spi, sa] : sas_) remove_children(*sa);
}

void Engine::log(std::string_view s) const {
  if (log_) log_(s);
}

Engine::IkeSa* Engine::find(std::uint64_t our_spi) {
  auto it = sas_.find(our_spi);
  return it == sas_.end() || it->second->state == IkeState::dead ? nullptr : it->second.get();
}

std::uint32_t Engine::alloc_esp_spi() {
  for (;;) {
    std::uint32_t v = static_cast<std::uint32_t>(random_u64());
    if (v < 256) continue;  // 1..255 are reserved (RFC 4303 2.1)
    if (esp_spis_.insert(v).second) return v;  // unique among ours
  }
}

// ---------------------------------------------------------------- sending

void Engine::send(IkeSa& sa, Bytes msg) {
  if (sa.local.port != 500) msg = add_non_esp_marker(msg);  // UDP 4500 (RFC 3948 2.2)
  transport_.send(sa.local, sa.remote, msg);
  ++stats_.tx;
}

void Engine::send_request(IkeSa& sa, Bytes msg, std::uint64_t now_ms) {
  IkeSa::Pending p;
  p.msg = msg;
  p.mid = sa.next_mid++;
  auto h = decode_header(msg);
  p.ex = h ? h->exchange : ExchangeType::informational;
  p.next_ms = now_ms + cfg_.retransmit_base_ms;
  p.sends = 1;
  sa.pending = std::move(p);
  send(sa, std::move(msg));
}

void Engine::send_response(IkeSa& sa, std::uint32_t mid, Bytes msg) {
  sa.last_response = std::make_pair(mid, msg);
  sa.peer_mid = mid + 1;
  send(sa, std::move(msg));
}

void Engine::send_plain_notify(const Endpoint& local, const Endpoint& remote, const Header& req, NotifyType t,
                               Bytes data) {
  Message m;
  m.header.spi_i = req.spi_i;
  m.header.spi_r = req.exchange == ExchangeType::ike_sa_init ? 0 : req.spi_r;
  m.header.exchange = req.exchange;
  m.header.flags = static_cast<std::uint8_t>(kFlagResponse | (req.initiator() ? 0 : kFlagInitiator));
  m.header.message_id = req.message_id;
  m.payloads.push_back(NotifyPayload::make(t, std::move(data)));
  auto bytes = encode(m);
  if (!bytes) return;
  Bytes out = local.port != 500 ? add_non_esp_marker(*bytes) : std::move(*bytes);
  transport_.send(local, remote, out);
  ++stats_.tx;
}

Result<Bytes> Engine::seal(IkeSa& sa, ExchangeType ex, bool response, std::uint32_t mid,
                           std::span<const Payload> inner) {
  Header h;
  h.spi_i = sa.spi_i;
  h.spi_r = sa.spi_r;
  h.exchange = ex;
  h.flags = static_cast<std::uint8_t>((sa.initiator ? kFlagInitiator : 0) | (response ? kFlagResponse : 0));
  h.message_id = mid;
  return seal_sk(h, inner, *sa.ciphers.out);
}

Bytes Engine::id_body(const IdPayload& id) const { return id.body(); }

IdPayload Engine::our_id(const IkeSa& sa, bool responder) const {
  return id_payload_of(sa.conn->local_id, sa.local.addr, responder);
}

const SecretBytes* Engine::psk_for(const Connection& c) const {
  auto it = cfg_.psks.find(c.psk_ref);
  return it == cfg_.psks.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------- initiator

Result<void> Engine::initiate(std::string_view name, std::uint64_t now_ms) {
  const Connection* conn = nullptr;
  for (const Connection& c : cfg_.connections) {
    if (c.name == name) conn = &c;
  }
  if (conn == nullptr) return make_error("no connection named '" + std::string(name) + "'");
  if (conn->ike.empty()) return make_error("connection '" + conn->name + "' has no IKE proposals");
  if (conn->remote_addrs.empty() || conn->remote_addrs[0].len != conn->remote_addrs[0].addr.bit_width()) {
    return make_error("connection '" + conn->name + "' has no single remote address to initiate to");
  }
  if (psk_for(*conn) == nullptr) return make_error("connection '" + conn->name + "': its PSK is not loaded");
  auto sa = std::make_unique<IkeSa>();
  sa->conn = conn;
  sa->initiator = true;
  do {
    sa->spi_i = random_u64();
  } while (sa->spi_i == 0 || sas_.count(sa->spi_i) != 0);
  sa->local = Endpoint{conn->local_addr, conn->local_port};
  sa->remote = Endpoint{conn->remote_addrs[0].addr, conn->remote_port};
  sa->group = conn->ike[0].group;
  sa->created_ms = now_ms;
  IkeSa& ref = *sa;
  sas_.emplace(sa->spi_i, std::move(sa));
  if (auto r = start_init(ref, now_ms); !r) {
    kill(ref, r.error().message);
    reap();
    return r;
  }
  log("initiating " + conn->name + " to " + ref.remote.to_string());
  return {};
}

Bytes Engine::build_init_request(IkeSa& sa) {
  Message m;
  m.header.spi_i = sa.spi_i;
  m.header.exchange = ExchangeType::ike_sa_init;
  m.header.flags = kFlagInitiator;
  if (!sa.cookie.empty()) m.payloads.push_back(NotifyPayload::make(NotifyType::cookie, sa.cookie));
  m.payloads.push_back(ike_sa_payload(sa.conn->ike));
  m.payloads.push_back(KePayload{static_cast<std::uint16_t>(sa.group), sa.ke->public_value()});
  m.payloads.push_back(NoncePayload{sa.ni});
  const Spi8 si = spi8(sa.spi_i), zero{};
  auto src = nat_detection_hash(si, zero, sa.local.addr, sa.local.port);
  auto dst = nat_detection_hash(si, zero, sa.remote.addr, sa.remote.port);
  if (src && dst) {
    // Forced encapsulation: a source hash that cannot match makes the
    // peer see a NAT in front of us (RFC 7296 2.23 allows pretending).
    Bytes s = sa.conn->force_encap ? random_bytes(20) : Bytes(src->begin(), src->end());
    m.payloads.push_back(NotifyPayload::make(NotifyType::nat_detection_source_ip, std::move(s)));
    m.payloads.push_back(NotifyPayload::make(NotifyType::nat_detection_destination_ip, Bytes(dst->begin(), dst->end())));
  }
  auto bytes = encode(m);
  return bytes ? std::move(*bytes) : Bytes{};
}

Result<void> Engine::start_init(IkeSa& sa, std::uint64_t now_ms) {
  auto ke = KeyExchange::create(sa.group);
  if (!ke) return make_error("key exchange: " + ke.error().message);
  sa.ke.emplace(std::move(*ke));
  if (sa.ni.empty()) sa.ni = random_bytes(kNonceLen);
  sa.init_request = build_init_request(sa);
  if (sa.init_request.empty()) return make_error("could not encode IKE_SA_INIT");
  sa.next_mid = 0;
  sa.state = IkeState::init_sent;
  send_request(sa, sa.init_request, now_ms);
  return {};
}

void Engine::on_init_response(IkeSa& sa, std::span<const std::uint8_t> msg, const Message& m,
                              std::uint64_t now_ms) {
  if (const NotifyPayload* c = find_notify(m, NotifyType::cookie)) {
    if (sa.init_retries++ >= kMaxInitRetries || c->data.empty() || c->data.size() > 64) {
      kill(sa, "the responder keeps asking for a cookie");
      return;
    }
    sa.cookie = c->data;
    sa.init_request = build_init_request(sa);
    sa.next_mid = 0;
    send_request(sa, sa.init_request, now_ms);
    return;
  }
  if (const NotifyPayload* n = find_notify(m, NotifyType::invalid_ke_payload)) {
    std::optional<KeGroup> want;
    if (n->data.size() == 2) {
      const std::uint16_t g = static_cast<std::uint16_t>(n->data[0] << 8 | n->data[1]);
      for (const IkeSuite& s : sa.conn->ike) {
        if (static_cast<std::uint16_t>(s.group) == g) want = s.group;
      }
    }
    if (!want || *want == sa.group || sa.init_retries++ >= kMaxInitRetries) {
      kill(sa, "INVALID_KE_PAYLOAD for a group we did not offer");
      return;
    }
    log(sa.conn->name + ": the responder wants group " + group_name(*want) + ", retrying");
    sa.group = *want;
    if (auto r = start_init(sa, now_ms); !r) kill(sa, r.error().message);
    return;
  }
  if (const NotifyPayload* e = find_error_notify(m)) {
    if (e->type == NotifyType::authentication_failed) ++stats_.auth_failed;
    kill(sa, "IKE_SA_INIT refused: " + std::string(notify_name(e->type)));
    return;
  }
  const auto* sap = find_sa(m);
  const auto* ke = find_payload<KePayload>(m);
  const auto* nonce = find_payload<NoncePayload>(m);
  if (sap == nullptr || ke == nullptr || nonce == nullptr || m.header.spi_r == 0) {
    kill(sa, "IKE_SA_INIT response without SA, KE or Nonce");
    return;
  }
  auto suite = accept_ike_reply(sa.conn->ike, *sap);
  if (!suite) {
    kill(sa, suite.error().message);
    return;
  }
  if (suite->group != sa.group || ke->group != static_cast<std::uint16_t>(sa.group)) {
    kill(sa, "the responder's KE is not of the group it chose");
    return;
  }
  auto gir = sa.ke->derive(ke->data);
  if (!gir) {
    kill(sa, "the responder's KE: " + gir.error().message);
    return;
  }
  sa.spi_r = m.header.spi_r;
  sa.nr = nonce->data;
  sa.suite = *suite;
  sa.init_response.assign(msg.begin(), msg.end());
  // NAT detection (2.23): the responder's view of both ends.
  const Spi8 si = spi8(sa.spi_i), sr = spi8(sa.spi_r);
  auto srcs = all_notifies(m, NotifyType::nat_detection_source_ip);
  auto dsts = all_notifies(m, NotifyType::nat_detection_destination_ip);
  sa.natt = !srcs.empty() && !dsts.empty();
  if (sa.natt) {
    auto want_src = nat_detection_hash(si, sr, sa.remote.addr, sa.remote.port);
    auto want_dst = nat_detection_hash(si, sr, sa.local.addr, sa.local.port);
    auto match = [](const std::vector<const NotifyPayload*>& v, const Result<NatHash>& h) {
      return h && std::any_of(v.begin(), v.end(), [&](const NotifyPayload* n) {
               return n->data.size() == h->size() && std::equal(n->data.begin(), n->data.end(), h->begin());
             });
    };
    sa.nat_remote = !match(srcs, want_src);
    sa.nat_local = !match(dsts, want_dst);
  }
  const IkeSaSuite ks{suite->encr, suite->encr_key_bits, suite->integ, suite->prf};
  auto seed = skeyseed(suite->prf, sa.ni, sa.nr, gir->bytes());
  if (!seed) {
    kill(sa, seed.error().message);
    return;
  }
  auto keys = derive_ike_sa_keys(ks, *seed, sa.ni, sa.nr, si, sr);
  if (!keys) {
    kill(sa, keys.error().message);
    return;
  }
  auto ciphers = make_sk_ciphers(ks, *keys, true);
  if (!ciphers) {
    kill(sa, ciphers.error().message);
    return;
  }
  sa.keys.emplace(std::move(*keys));
  sa.ciphers = std::move(*ciphers);
  sa.ke.reset();
  sa.pending.reset();
  if (sa.natt && sa.encap()) {  // float to 4500 for IKE_AUTH (2.23)
    sa.local.port = 4500;
    sa.remote.port = 4500;
  }

  // IKE_AUTH.
  const SecretBytes* psk = psk_for(*sa.conn);
  const IdPayload idi = our_id(sa, false);
  auto auth = psk_auth(suite->prf, psk->bytes(), sa.init_request, sa.nr, sa.keys->sk_pi, id_body(idi));
  if (!auth) {
    kill(sa, auth.error().message);
    return;
  }
  sa.child_spi_in = alloc_esp_spi();
  sa.child_local_ts.clear();
  sa.child_remote_ts.clear();
  for (const TsConfig& t : sa.conn->local_ts) sa.child_local_ts.push_back(ts_from_config(t));
  for (const TsConfig& t : sa.conn->remote_ts) sa.child_remote_ts.push_back(ts_from_config(t));
  if (sa.child_local_ts.empty()) sa.child_local_ts.push_back(ts_host(sa.conn->local_addr));
  if (sa.child_remote_ts.empty()) sa.child_remote_ts.push_back(ts_host(sa.remote.addr));
  std::vector<Payload> p;
  p.push_back(idi);
  if (sa.conn->remote_id.type != Identity::Type::any) {
    const Identity& r = sa.conn->remote_id;
    IdPayload idr;
    if (r.type == Identity::Type::fqdn) idr = IdPayload::text(IdType::fqdn, r.value, true);
    else if (r.type == Identity::Type::rfc822) idr = IdPayload::text(IdType::rfc822_addr, r.value, true);
    else if (auto a = IpAddress::parse(r.value)) idr = IdPayload::address(*a, true);
    p.push_back(idr);
  }
  p.push_back(AuthPayload{2, std::move(*auth)});
  if (sa.conn->mode == Mode::transport) p.push_back(NotifyPayload::make(NotifyType::use_transport_mode));
  p.push_back(esp_sa_payload(sa.conn->esp, sa.child_spi_in));
  p.push_back(ts_payload(sa.child_local_ts, false));
  p.push_back(ts_payload(sa.child_remote_ts, true));
  auto out = seal(sa, ExchangeType::ike_auth, false, sa.next_mid, p);
  if (!out) {
    kill(sa, out.error().message);
    return;
  }
  sa.state = IkeState::auth_sent;
  send_request(sa, std::move(*out), now_ms);
}

void Engine::on_auth_response(IkeSa& sa, const Message& m, std::uint64_t now_ms) {
  sa.pending.reset();
  if (const NotifyPayload* f = find_notify(m, NotifyType::authentication_failed)) {
    (void)f;
    ++stats_.auth_failed;
    kill(sa, "the responder refused our authentication (AUTHENTICATION_FAILED)");
    return;
  }
  const IdPayload* idr = find_id(m, true);
  const auto* auth = find_payload<AuthPayload>(m);
  if (idr == nullptr || auth == nullptr) {
    const NotifyPayload* e = find_error_notify(m);
    kill(sa, "IKE_AUTH response without IDr or AUTH" + (e ? ": " + std::string(notify_name(e->type)) : std::string()));
    return;
  }
  const Identity peer = identity_of(*idr);
  if (sa.conn->remote_id.type != Identity::Type::any && !(peer == sa.conn->remote_id)) {
    ++stats_.auth_failed;
    kill(sa, "the responder is " + peer.to_string() + ", not " + sa.conn->remote_id.to_string());
    return;
  }
  const SecretBytes* psk = psk_for(*sa.conn);
  auto want = psk_auth(sa.suite->prf, psk->bytes(), sa.init_response, sa.ni, sa.keys->sk_pr, id_body(*idr));
  if (auth->method != 2 || !want || !auth_equal(auth->data, *want)) {
    ++stats_.auth_failed;
    kill(sa, "the responder's AUTH does not verify (AUTHENTICATION_FAILED)");
    return;
  }
  sa.state = IkeState::established;
  sa.peer_id = peer;
  ++stats_.ike_established;
  log(sa.conn->name + ": IKE SA established with " + sa.remote.to_string() + " (" + to_string(*sa.suite) + ")");

  if (const NotifyPayload* e = find_error_notify(m)) {
    if (e->type == NotifyType::ts_unacceptable) ++stats_.ts_unacceptable;
    log(sa.conn->name + ": no Child SA: " + std::string(notify_name(e->type)));
    return;
  }
  const auto* sap = find_sa(m);
  const TsPayload* tsi = find_ts(m, false);
  const TsPayload* tsr = find_ts(m, true);
  if (sap == nullptr || tsi == nullptr || tsr == nullptr) {
    log(sa.conn->name + ": no Child SA in the IKE_AUTH response");
    return;
  }
  auto choice = accept_esp_reply(sa.conn->esp, *sap);
  if (!choice) {
    log(sa.conn->name + ": " + choice.error().message);
    return;
  }
  auto got_i = ts_from_payload(*tsi), got_r = ts_from_payload(*tsr);
  if (!within(got_i, sa.child_local_ts) || !within(got_r, sa.child_remote_ts)) {
    ++stats_.ts_unacceptable;
    log(sa.conn->name + ": the responder's traffic selectors are not within ours");
    return;
  }
  const bool transport = find_notify(m, NotifyType::use_transport_mode) != nullptr;
  if ((sa.conn->mode == Mode::transport) != transport) {
    log(sa.conn->name + ": the responder did not agree to the mode");
    return;
  }
  if (auto r = install_child(sa, *choice, sa.child_spi_in, sa.conn->mode, got_i, got_r, now_ms); !r) {
    log(sa.conn->name + ": Child SA not installed: " + r.error().message);
  }
}

// ---------------------------------------------------------------- responder

void Engine::on_init_request(const Endpoint& local, const Endpoint& remote, std::span<const std::uint8_t> msg,
                             const Message& m, std::uint64_t now_ms) {
  const Header& h = m.header;
  const auto* sap = find_sa(m);
  const auto* ke = find_payload<KePayload>(m);
  const auto* nonce = find_payload<NoncePayload>(m);
  if (sap == nullptr || ke == nullptr || nonce == nullptr) {
    ++stats_.dropped;
    send_plain_notify(local, remote, h, NotifyType::invalid_syntax);
    return;
  }
  const Spi8 si = spi8(h.spi_i);
  if (half_open_ >= cfg_.cookie_threshold) {  // 2.6: prove the address first
    const NotifyPayload* c = m.payloads.empty() ? nullptr : std::get_if<NotifyPayload>(&m.payloads[0]);
    const bool ok = c != nullptr && c->type == NotifyType::cookie &&
                    cookies_->verify(c->data, nonce->data, remote.addr, si);
    if (!ok) {
      auto cookie = cookies_->make(nonce->data, remote.addr, si);
      if (cookie) {
        ++stats_.cookies_sent;
        send_plain_notify(local, remote, h, NotifyType::cookie, std::move(*cookie));
      }
      return;
    }
  }
  const Connection* conn = nullptr;
  for (const Connection& c : cfg_.connections) {
    if (local_matches(c, local.addr) && prefix_list_contains(c.remote_addrs, remote.addr)) {
      conn = &c;
      break;
    }
  }
  if (conn == nullptr) {
    ++stats_.no_proposal_sent;
    log("IKE_SA_INIT from " + remote.to_string() + ": no connection for this peer");
    send_plain_notify(local, remote, h, NotifyType::no_proposal_chosen);
    return;
  }
  std::optional<IkeChoice> choice;
  if (auto g = group_from_id(ke->group)) choice = select_ike(conn->ike, *sap, *g);
  if (!choice) {
    if (auto other = select_ike(conn->ike, *sap)) {  // acceptable, but with another group (1.2)
      ++stats_.invalid_ke_sent;
      const auto g = static_cast<std::uint16_t>(other->suite.group);
      send_plain_notify(local, remote, h, NotifyType::invalid_ke_payload,
                        Bytes{static_cast<std::uint8_t>(g >> 8), static_cast<std::uint8_t>(g)});
    } else {
      ++stats_.no_proposal_sent;
      log("IKE_SA_INIT from " + remote.to_string() + ": no acceptable proposal");
      send_plain_notify(local, remote, h, NotifyType::no_proposal_chosen);
    }
    return;
  }
  auto ours = KeyExchange::create(choice->suite.group);
  if (!ours) {
    log("key exchange: " + ours.error().message);
    return;
  }
  auto gir = ours->derive(ke->data);
  if (!gir) {  // RFC 6989: a bad public value
    ++stats_.dropped;
    log("IKE_SA_INIT from " + remote.to_string() + ": bad KE: " + gir.error().message);
    send_plain_notify(local, remote, h, NotifyType::invalid_syntax);
    return;
  }
  auto sa = std::make_unique<IkeSa>();
  sa->conn = conn;
  sa->initiator = false;
  sa->spi_i = h.spi_i;
  do {
    sa->spi_r = random_u64();
  } while (sa->spi_r == 0 || sas_.count(sa->spi_r) != 0);
  sa->local = local;
  sa->remote = remote;
  sa->suite = choice->suite;
  sa->ni = nonce->data;
  sa->nr = random_bytes(kNonceLen);
  sa->created_ms = now_ms;
  sa->init_request.assign(msg.begin(), msg.end());
  const Spi8 zero{}, sr = spi8(sa->spi_r);
  auto srcs = all_notifies(m, NotifyType::nat_detection_source_ip);
  auto dsts = all_notifies(m, NotifyType::nat_detection_destination_ip);
  sa->natt = !srcs.empty() && !dsts.empty();
  auto match = [](const std::vector<const NotifyPayload*>& v, const Result<NatHash>& want) {
    return want && std::any_of(v.begin(), v.end(), [&](const NotifyPayload* n) {
             return n->data.size() == want->size() && std::equal(n->data.begin(), n->data.end(), want->begin());
           });
  };
  if (sa->natt) {
    sa->nat_remote = !match(srcs, nat_detection_hash(si, zero, remote.addr, remote.port));
    sa->nat_local = !match(dsts, nat_detection_hash(si, zero, local.addr, local.port));
  }
  const IkeSuite& s = choice->suite;
  const IkeSaSuite ks{s.encr, s.encr_key_bits, s.integ, s.prf};
  auto seed = skeyseed(s.prf, sa->ni, sa->nr, gir->bytes());
  auto keys = seed ? derive_ike_sa_keys(ks, *seed, sa->ni, sa->nr, si, sr) : Result<IkeSaKeys>(seed.error());
  auto ciphers = keys ? make_sk_ciphers(ks, *keys, false) : Result<SkCipherPair>(keys.error());
  if (!ciphers) {
    log("IKE SA keys: " + ciphers.error().message);
    return;
  }
  sa->keys.emplace(std::move(*keys));
  sa->ciphers = std::move(*ciphers);

  Message r;
  r.header.spi_i = sa->spi_i;
  r.header.spi_r = sa->spi_r;
  r.header.exchange = ExchangeType::ike_sa_init;
  r.header.flags = kFlagResponse;
  r.payloads.push_back(ike_reply(*choice));
  r.payloads.push_back(KePayload{static_cast<std::uint16_t>(s.group), ours->public_value()});
  r.payloads.push_back(NoncePayload{sa->nr});
  if (sa->natt) {
    auto src = nat_detection_hash(si, sr, local.addr, local.port);
    auto dst = nat_detection_hash(si, sr, remote.addr, remote.port);
    if (src && dst) {
      Bytes sb = conn->force_encap ? random_bytes(20) : Bytes(src->begin(), src->end());
      r.payloads.push_back(NotifyPayload::make(NotifyType::nat_detection_source_ip, std::move(sb)));
      r.payloads.push_back(NotifyPayload::make(NotifyType::nat_detection_destination_ip, Bytes(dst->begin(), dst->end())));
    }
  }
  auto bytes = encode(r);
  if (!bytes) return;
  sa->init_response = *bytes;
  sa->state = IkeState::init_done;
  ++half_open_;
  IkeSa& ref = *sa;
  by_spi_i_.emplace(sa->spi_i, sa->spi_r);
  sas_.emplace(sa->spi_r, std::move(sa));
  send_response(ref, 0, std::move(*bytes));
}

void Engine::on_auth_request(IkeSa& sa, const Message& m, std::uint64_t now_ms) {
  const std::uint32_t mid = m.header.message_id;
  const IdPayload* idi = find_id(m, false);
  const auto* auth = find_payload<AuthPayload>(m);
  auto refuse_auth = [&](std::string why) {
    ++stats_.auth_failed;
    log("IKE_AUTH from " + sa.remote.to_string() + ": " + why + " (AUTHENTICATION_FAILED)");
    const Payload n = NotifyPayload::make(NotifyType::authentication_failed);
    if (auto out = seal(sa, ExchangeType::ike_auth, true, mid, std::span<const Payload>(&n, 1))) {
      send_response(sa, mid, std::move(*out));
    }
    kill(sa, "authentication failed");
  };
  if (idi == nullptr || auth == nullptr) {
    refuse_auth("no IDi or AUTH");
    return;
  }
  const Identity peer = identity_of(*idi);
  // The connection: this peer's address and, if one is configured, its ID.
  const Connection* conn = nullptr;
  for (const Connection& c : cfg_.connections) {
    if (local_matches(c, sa.local.addr) && prefix_list_contains(c.remote_addrs, sa.remote.addr) &&
        (c.remote_id.type == Identity::Type::any || c.remote_id == peer) && select_ike(c.ike, ike_reply({*sa.suite, 1}))) {
      conn = &c;
      break;
    }
  }
  if (conn == nullptr) {
    refuse_auth("no connection for identity " + peer.to_string());
    return;
  }
  sa.conn = conn;
  const SecretBytes* psk = psk_for(*conn);
  if (psk == nullptr) {
    refuse_auth("no PSK for connection " + conn->name);
    return;
  }
  auto want = psk_auth(sa.suite->prf, psk->bytes(), sa.init_request, sa.nr, sa.keys->sk_pi, id_body(*idi));
  if (auth->method != 2 || !want || !auth_equal(auth->data, *want)) {
    refuse_auth("AUTH of " + peer.to_string() + " does not verify");
    return;
  }
  sa.state = IkeState::established;
  sa.peer_id = peer;
  --half_open_;
  ++stats_.ike_established;
  log(conn->name + ": IKE SA established with " + sa.remote.to_string() + " (" + to_string(*sa.suite) + ")");

  const IdPayload idr = our_id(sa, true);
  auto my_auth = psk_auth(sa.suite->prf, psk->bytes(), sa.init_response, sa.ni, sa.keys->sk_pr, id_body(idr));
  if (!my_auth) {
    kill(sa, my_auth.error().message);
    return;
  }
  std::vector<Payload> out;
  out.push_back(idr);
  out.push_back(AuthPayload{2, std::move(*my_auth)});

  // The first Child SA.
  const auto* sap = find_sa(m);
  const TsPayload* tsi = find_ts(m, false);
  const TsPayload* tsr = find_ts(m, true);
  auto child_error = [&](NotifyType t, std::string why) {
    log(conn->name + ": no Child SA: " + why + " (" + std::string(notify_name(t)) + ")");
    out.push_back(NotifyPayload::make(t));
  };
  if (sap != nullptr && tsi != nullptr && tsr != nullptr) {
    std::vector<TsRange> our_local, our_remote;
    for (const TsConfig& t : conn->local_ts) our_local.push_back(ts_from_config(t));
    for (const TsConfig& t : conn->remote_ts) our_remote.push_back(ts_from_config(t));
    if (our_local.empty()) our_local.push_back(ts_host(sa.local.addr));
    if (our_remote.empty()) our_remote.push_back(ts_host(sa.remote.addr));
    const bool want_transport = find_notify(m, NotifyType::use_transport_mode) != nullptr;
    auto choice = select_esp(conn->esp, *sap);
    auto ts_i = narrow(ts_from_payload(*tsi), our_remote);
    auto ts_r = narrow(ts_from_payload(*tsr), our_local);
    if (!choice) {
      ++stats_.no_proposal_sent;
      child_error(NotifyType::no_proposal_chosen, "no acceptable ESP proposal");
    } else if (ts_i.empty() || ts_r.empty()) {
      ++stats_.ts_unacceptable;
      child_error(NotifyType::ts_unacceptable, "traffic selectors do not overlap ours");
    } else if (conn->mode == Mode::transport && !want_transport) {
      ++stats_.no_proposal_sent;
      child_error(NotifyType::no_proposal_chosen, "transport mode required");
    } else {
      const Mode mode = want_transport && conn->mode == Mode::transport ? Mode::transport : Mode::tunnel;
      const std::uint32_t spi_in = alloc_esp_spi();
      if (auto r = install_child(sa, *choice, spi_in, mode, ts_r, ts_i, now_ms); !r) {
        esp_spis_.erase(spi_in);
        child_error(NotifyType::temporary_failure, "the dataplane refused it: " + r.error().message);
      } else {
        if (mode == Mode::transport) out.push_back(NotifyPayload::make(NotifyType::use_transport_mode));
        out.push_back(esp_reply(*choice, spi_in));
        out.push_back(ts_payload(ts_i, false));
        out.push_back(ts_payload(ts_r, true));
      }
    }
  }
  auto bytes = seal(sa, ExchangeType::ike_auth, true, mid, out);
  if (!bytes) {
    kill(sa, bytes.error().message);
    return;
  }
  send_response(sa, mid, std::move(*bytes));
}

// ---------------------------------------------------------------- Child SAs

Result<void> Engine::install_child(IkeSa& sa, const EspChoice& esp, std::uint32_t spi_in, Mode mode,
                                   std::vector<TsRange> local_ts, std::vector<TsRange> remote_ts,
                                   std::uint64_t now_ms) {
  auto cipher = esp_cipher(esp.suite);
  if (!cipher) return cipher.error();
  auto integ = esp_integ(esp.suite);
  if (!integ) return integ.error();
  const ChildSaSuite cs{esp.suite.encr, esp.suite.encr_key_bits, esp.suite.integ};
  auto km = derive_child_sa_keys(sa.suite->prf, sa.keys->sk_d, cs, {}, sa.ni, sa.nr);
  if (!km) return km.error();
  // KEYMAT's first keys protect initiator -> responder traffic (2.17).
  const SecretKey& in_e = sa.initiator ? km->encr_r : km->encr_i;
  const SecretKey& in_a = sa.initiator ? km->integ_r : km->integ_i;
  const SecretKey& out_e = sa.initiator ? km->encr_i : km->encr_r;
  const SecretKey& out_a = sa.initiator ? km->integ_i : km->integ_r;

  ChildSaSpec spec;
  spec.connection = sa.conn->name;
  spec.reqid = next_reqid_++;
  const bool encap = sa.natt && sa.encap();
  for (SaConfig* c : {&spec.inbound, &spec.outbound}) {
    c->mode = mode;
    c->reqid = spec.reqid;
    c->cipher = *cipher;
    c->integ = *integ;
    c->esn = esp.suite.esn;
    c->encap.enabled = encap;
  }
  spec.inbound.spi = spi_in;
  spec.inbound.dir = Direction::in;
  spec.inbound.src = sa.remote.addr;
  spec.inbound.dst = sa.local.addr;
  spec.inbound.cipher_key = in_e;
  spec.inbound.integ_key = in_a;
  spec.inbound.encap.sport = sa.remote.port;  // the peer's source port
  spec.inbound.encap.dport = sa.local.port;
  spec.inbound.selectors = to_selectors(remote_ts, local_ts);
  spec.outbound.spi = esp.peer_spi;
  spec.outbound.dir = Direction::out;
  spec.outbound.src = sa.local.addr;
  spec.outbound.dst = sa.remote.addr;
  spec.outbound.cipher_key = out_e;
  spec.outbound.integ_key = out_a;
  spec.outbound.encap.sport = sa.local.port;
  spec.outbound.encap.dport = sa.remote.port;
  spec.outbound.selectors = to_selectors(local_ts, remote_ts);
  for (const Selector& s : spec.outbound.selectors) {
    Policy p;
    p.dir = PolicyDir::out;
    p.action = PolicyAction::protect;
    p.reqid = spec.reqid;
    p.sel = s;
    spec.policies.push_back(p);
  }
  for (const Selector& s : spec.inbound.selectors) {
    Policy p;
    p.dir = PolicyDir::in;
    p.action = PolicyAction::protect;
    p.reqid = spec.reqid;
    p.sel = s;
    spec.policies.push_back(p);
  }
  auto r = backend_.install_child(spec);
  wipe_keys(spec.inbound);
  wipe_keys(spec.outbound);
  if (!r) return r;
  IkeSa::Child c;
  c.info.reqid = spec.reqid;
  c.info.spi_in = spi_in;
  c.info.spi_out = esp.peer_spi;
  c.info.suite = esp.suite;
  c.info.mode = mode;
  c.info.encap = encap;
  c.info.local_ts = std::move(local_ts);
  c.info.remote_ts = std::move(remote_ts);
  c.info.established_ms = now_ms;
  c.spec = std::move(spec);
  sa.children.push_back(std::move(c));
  ++stats_.child_installed;
  char spis[64];
  std::snprintf(spis, sizeof spis, "in 0x%08x out 0x%08x", spi_in, esp.peer_spi);
  log(sa.conn->name + ": Child SA installed, " + spis + " (" + to_string(esp.suite) +
      (mode == Mode::transport ? ", transport" : ", tunnel") + (encap ? ", UDP-encapsulated" : "") + ")");
  return {};
}

void Engine::remove_children(IkeSa& sa) {
  for (auto& c : sa.children) {
    if (auto r = backend_.remove_child(c.spec); !r) log("removing a Child SA: " + r.error().message);
    ++stats_.child_removed;
    esp_spis_.erase(c.info.spi_in);
  }
  sa.children.clear();
}

void Engine::kill(IkeSa& sa, std::string_view why) {
  if (sa.state == IkeState::dead) return;
  log((sa.conn ? sa.conn->name : std::string("IKE SA")) + " with " + sa.remote.to_string() + ": " + std::string(why));
  remove_children(sa);
  if (sa.child_spi_in != 0) esp_spis_.erase(sa.child_spi_in);  // initiator: also if never installed
  if (sa.state == IkeState::init_done) --half_open_;
  sa.state = IkeState::dead;
  dead_.push_back(sa.our_spi());
  sa.pending.reset();
}

// Erases the IKE SAs kill() marked, without walking the table (it runs
// after every datagram).
void Engine::reap() {
  for (const std::uint64_t spi : dead_) {
    auto it = sas_.find(spi);
    if (it == sas_.end() || it->second->state != IkeState::dead) continue;
    if (!it->second->initiator) {
      auto [a, b] = by_spi_i_.equal_range(it->second->spi_i);
      for (auto j = a; j != b; ++j) {
        if (j->second == it->first) {
          by_spi_i_.erase(j);
          break;
        }
      }
    }
    sas_.erase(it);
  }
  dead_.clear();
}

// ---------------------------------------------------------------- INFORMATIONAL

Result<void> Engine::terminate(std::string_view name, std::uint64_t now_ms) {
  bool any = false;
  for (auto& [spi, sa] : sas_) {
    if (sa->conn == nullptr || sa->conn->name != name || sa->state == IkeState::dead) continue;
    any = true;
    if (sa->state != IkeState::established) {
      kill(*sa, "terminated");
      continue;
    }
    DeletePayload d;
    d.protocol = Protocol::ike;
    d.spi_size = 0;
    const Payload p = d;
    auto out = seal(*sa, ExchangeType::informational, false, sa->next_mid, std::span<const Payload>(&p, 1));
    if (!out) {
      kill(*sa, out.error().message);
      continue;
    }
    sa->state = IkeState::deleting;
    remove_children(*sa);  // stop using the keys now; the peer removes its side on our Delete
    send_request(*sa, std::move(*out), now_ms);
  }
  reap();
  if (!any) return make_error("connection '" + std::string(name) + "' has no IKE SA");
  return {};
}

Result<void> Engine::check_liveness(std::string_view name, std::uint64_t now_ms) {
  for (auto& [spi, sa] : sas_) {
    if (sa->conn == nullptr || sa->conn->name != name || sa->state != IkeState::established) continue;
    if (sa->pending) return make_error("an exchange is already in flight on '" + std::string(name) + "'");
    auto out = seal(*sa, ExchangeType::informational, false, sa->next_mid, {});
    if (!out) return out.error();
    send_request(*sa, std::move(*out), now_ms);
    return {};
  }
  return make_error("connection '" + std::string(name) + "' has no established IKE SA");
}

void Engine::on_acquire(std::uint32_t reqid, std::uint64_t now_ms) {
  (void)reqid;
  (void)now_ms;  // trap policies are not installed yet (docs/ike.md)
}

void Engine::on_informational_request(IkeSa& sa, const Message& m) {
  const std::uint32_t mid = m.header.message_id;
  std::vector<Payload> out;
  bool delete_ike = false;
  for (const Payload& p : m.payloads) {
    const auto* d = std::get_if<DeletePayload>(&p);
    if (d == nullptr) continue;
    if (d->protocol == Protocol::ike) {
      delete_ike = true;
    } else if (d->protocol == Protocol::esp && d->spi_size == 4) {
      DeletePayload ours;
      ours.protocol = Protocol::esp;
      ours.spi_size = 4;
      for (const Bytes& b : d->spis) {
        const std::uint32_t spi = static_cast<std::uint32_t>(b[0]) << 24 | static_cast<std::uint32_t>(b[1]) << 16 |
                                  static_cast<std::uint32_t>(b[2]) << 8 | b[3];
        for (auto it = sa.children.begin(); it != sa.children.end(); ++it) {
          if (it->info.spi_out != spi) continue;
          const std::uint32_t in = it->info.spi_in;
          ours.spis.push_back(Bytes{static_cast<std::uint8_t>(in >> 24), static_cast<std::uint8_t>(in >> 16),
                                    static_cast<std::uint8_t>(in >> 8), static_cast<std::uint8_t>(in)});
          if (auto r = backend_.remove_child(it->spec); !r) log("removing a Child SA: " + r.error().message);
          ++stats_.child_removed;
          esp_spis_.erase(in);
          sa.children.erase(it);
          break;
        }
      }
      if (!ours.spis.empty()) out.push_back(std::move(ours));
    }
  }
  if (delete_ike) out.clear();  // the answer to an IKE SA Delete is empty (1.4.1)
  auto bytes = seal(sa, ExchangeType::informational, true, mid, out);
  if (bytes) send_response(sa, mid, std::move(*bytes));
  if (delete_ike) kill(sa, "deleted by the peer");
}

void Engine::on_informational_response(IkeSa& sa, const Message& m) {
  (void)m;
  sa.pending.reset();
  if (sa.state == IkeState::deleting) kill(sa, "deleted");
}

// ---------------------------------------------------------------- input

void Engine::on_datagram(const Endpoint& local, const Endpoint& remote, std::span<const std::uint8_t> payload,
                         std::uint64_t now_ms) {
  ++stats_.rx;
  std::span<const std::uint8_t> data = payload;
  if (local.port != 500) {
    const Udp4500 u = classify_udp4500(payload);
    if (u.kind == Udp4500Kind::keepalive) return;
    if (u.kind != Udp4500Kind::ike) {
      ++stats_.dropped;
      return;
    }
    data = u.data;
  }
  auto h = decode_header(data);
  if (!h) {
    ++stats_.dropped;
    // A newer major version (2.5): answer with INVALID_MAJOR_VERSION,
    // naming ours, if it is a request and we can read its header fields.
    if (h.error().notify == NotifyType::invalid_major_version && data.size() >= kHeaderLen && (data[19] & kFlagResponse) == 0) {
      Header raw;
      for (int i = 0; i < 8; ++i) raw.spi_i = raw.spi_i << 8 | data[static_cast<std::size_t>(i)];
      for (int i = 8; i < 16; ++i) raw.spi_r = raw.spi_r << 8 | data[static_cast<std::size_t>(i)];
      raw.exchange = static_cast<ExchangeType>(data[18]);
      raw.flags = data[19];
      raw.message_id = static_cast<std::uint32_t>(data[20]) << 24 | static_cast<std::uint32_t>(data[21]) << 16 |
                       static_cast<std::uint32_t>(data[22]) << 8 | data[23];
      log("a message of IKE version " + std::to_string(data[17] >> 4) + " from " + remote.to_string());
      send_plain_notify(local, remote, raw, NotifyType::invalid_major_version);
    }
    return;
  }
  if (h->exchange == ExchangeType::ike_sa_init) {
    if (!h->response()) {
      if (h->spi_r != 0 || h->message_id != 0 || !h->initiator()) {
        ++stats_.dropped;
        return;
      }
      // A retransmitted request: the same answer again.
      auto [a, b] = by_spi_i_.equal_range(h->spi_i);
      for (auto j = a; j != b; ++j) {
        IkeSa* sa = find(j->second);
        // (2.1: the same request gets the same answer, also after IKE_AUTH;
        // it never creates a second IKE SA.)
        if (sa != nullptr && sa->remote.addr == remote.addr && !sa->init_response.empty()) {
          ++stats_.dup_requests;
          Bytes again = sa->init_response;
          if (local.port != 500) again = add_non_esp_marker(again);
          transport_.send(local, remote, again);
          ++stats_.tx;
          return;
        }
      }
      auto m = decode(data);
      if (!m) {
        ++stats_.dropped;
        log("IKE_SA_INIT from " + remote.to_string() + ": " + m.error().message);
        if (m.error().notify != NotifyType::none) {
          send_plain_notify(local, remote, h.value(), m.error().notify, m.error().notify_data());
        }
        return;
      }
      on_init_request(local, remote, data, m.value(), now_ms);
    } else {
      IkeSa* sa = find(h->spi_i);
      if (sa == nullptr || !sa->initiator || sa->state != IkeState::init_sent || h->message_id != 0) {
        ++stats_.dropped;
        return;
      }
      auto m = decode(data);
      if (!m) {
        ++stats_.dropped;
        return;
      }
      on_init_response(*sa, data, m.value(), now_ms);
    }
    reap();
    return;
  }

  // Every other exchange is protected by the SK payload.
  IkeSa* sa = find(h->initiator() ? h->spi_r : h->spi_i);
  if (sa == nullptr || sa->keys == std::nullopt || sa->spi_i != h->spi_i || sa->spi_r != h->spi_r ||
      h->initiator() == sa->initiator) {
    ++stats_.dropped;
    return;
  }
  if (!h->response()) {
    if (sa->last_response && h->message_id == sa->last_response->first) {
      ++stats_.dup_requests;
      send(*sa, sa->last_response->second);
      return;
    }
    if (h->message_id != sa->peer_mid) {  // outside the window (2.3)
      ++stats_.dropped;
      return;
    }
  } else if (!sa->pending || h->message_id != sa->pending->mid) {
    ++stats_.dropped;
    return;
  }
  auto m = open_sk(data, *sa->ciphers.in);
  if (!m) {
    ++stats_.dropped;  // an ICV failure is dropped silently (2.21)
    return;
  }
  // Authenticated: follow the peer's address and port (a NAT's mapping).
  sa->local = local;
  sa->remote = remote;
  switch (h->exchange) {
    case ExchangeType::ike_auth:
      if (!h->response() && !sa->initiator && sa->state == IkeState::init_done) {
        on_auth_request(*sa, m.value(), now_ms);
      } else if (h->response() && sa->initiator && sa->state == IkeState::auth_sent) {
        on_auth_response(*sa, m.value(), now_ms);
      } else {
        ++stats_.dropped;
      }
      break;
    case ExchangeType::informational:
      if (sa->state != IkeState::established && sa->state != IkeState::deleting) {
        ++stats_.dropped;  // INFORMATIONAL before IKE_AUTH completed
        log("INFORMATIONAL from " + remote.to_string() + " before the IKE SA is authenticated: dropped");
      } else if (!h->response()) {
        on_informational_request(*sa, m.value());
      } else {
        on_informational_response(*sa, m.value());
      }
      break;
    case ExchangeType::create_child_sa:
      if (!h->response() && sa->state == IkeState::established) {
        // Rekeying and further Child SAs are not done yet (docs/ike.md).
        const Payload n = NotifyPayload::make(NotifyType::no_additional_sas);
        if (auto out = seal(*sa, ExchangeType::create_child_sa, true, h->message_id, std::span<const Payload>(&n, 1))) {
          send_response(*sa, h->message_id, std::move(*out));
        }
      } else {
        ++stats_.dropped;
      }
      break;
    default:
      ++stats_.dropped;
      break;
  }
  reap();
}

void Engine::tick(std::uint64_t now_ms) {
  for (auto& [spi, sa] : sas_) {
    if (sa->state == IkeState::dead) continue;
    if (sa->state == IkeState::init_done && now_ms - sa->created_ms >= cfg_.half_open_timeout_s * 1000ull) {
      kill(*sa, "half-open for too long");
      continue;
    }
    if (!sa->pending || now_ms < sa->pending->next_ms) continue;
    if (sa->pending->sends >= cfg_.retransmit_tries) {
      ++stats_.timeouts;
      kill(*sa, "no answer after " + std::to_string(sa->pending->sends) + " sends");
      continue;
    }
    ++sa->pending->sends;
    ++stats_.retransmits;
    // Exponential back-off (2.1): base, 2 base, 4 base...
    sa->pending->next_ms = now_ms + (static_cast<std::uint64_t>(cfg_.retransmit_base_ms) << (sa->pending->sends - 1));
    send(*sa, sa->pending->msg);
  }
  reap();
}

std::vector<IkeSaInfo> Engine::ike_sas() const {
  std::vector<IkeSaInfo> v;
  for (const auto& [spi, sa] : sas_) {
    if (sa->state == IkeState::dead) continue;
    IkeSaInfo i;
    i.connection = sa->conn ? sa->conn->name : "";
    i.initiator = sa->initiator;
    i.spi_i = sa->spi_i;
    i.spi_r = sa->spi_r;
    i.state = sa->state;
    i.local = sa->local;
    i.remote = sa->remote;
    i.suite = sa->suite;
    i.peer_id = sa->peer_id;
    i.nat_local = sa->nat_local;
    i.nat_remote = sa->nat_remote;
    for (const auto& c : sa->children) i.children.push_back(c.info);
    i.created_ms = sa->created_ms;
    v.push_back(std::move(i));
  }
  return v;
}

}  // namespace cygnet::ike
