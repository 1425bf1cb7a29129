#include "cp/ike/engine/engine.h"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>

#include "cp/ike/crypto/auth.h"
#include "cp/ike/crypto/nat.h"
#include "cp/ike/engine/identity.h"

namespace cygnet::ike {

namespace {

constexpr std::size_t kNonceLen = 32;
constexpr unsigned kMaxInitRetries = 3;  // COOKIE and INVALID_KE_PAYLOAD rounds
// Trap policies rank below the Child SAs' protect policies (lower wins), so
// a narrowed Child SA's policy inside a trap's range is the one that matches.
constexpr std::uint32_t kTrapPriority = 1100;

std::string hex_spi(std::uint64_t v) {
  char b[20];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

const Connection* find_connection_in(const std::vector<Connection>& v, std::string_view name) {
  for (const Connection& c : v) {
    if (c.name == name) return &c;
  }
  return nullptr;
}
const Connection* find_connection(const IkeConfig& cfg, std::string_view name) {
  return find_connection_in(cfg.connections, name);
}

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

Bytes spi4(std::uint32_t v) {
  return Bytes{static_cast<std::uint8_t>(v >> 24), static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 8),
               static_cast<std::uint8_t>(v)};
}

std::uint32_t be32(const Bytes& b) {
  return static_cast<std::uint32_t>(b[0]) << 24 | static_cast<std::uint32_t>(b[1]) << 16 |
         static_cast<std::uint32_t>(b[2]) << 8 | b[3];
}

std::uint64_t be64(const Bytes& b) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = v << 8 | b[i];
  return v;
}

// The lower of two nonces, compared as octet strings (2.8.1, 2.8.2).
const Bytes& min_nonce(const Bytes& a, const Bytes& b) {
  return std::lexicographical_compare(b.begin(), b.end(), a.begin(), a.end()) ? b : a;
}

bool nonce_less(const Bytes& a, const Bytes& b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
}

// Soft and hard times of an SA, like strongSwan's rekey_time, over_time and
// rand_time counted back from the hard lifetime: the hard time is the
// lifetime; the rekey starts a margin of 10 % before it, less a random
// jitter of up to another 10 %, so two peers with the same lifetime rarely
// start a rekey at the same moment.
std::pair<std::uint64_t, std::uint64_t> lifetime_times(std::uint32_t lifetime_s, std::uint64_t now_ms) {
  const std::uint64_t life = std::uint64_t{lifetime_s} * 1000;
  const std::uint64_t margin = life / 10;
  const std::uint64_t jitter = margin != 0 ? random_u64() % margin : 0;
  return {now_ms + life - margin - jitter, now_ms + life};
}

// The soft byte or packet limit for a hard one (0: none), with the same
// 10 % margin and up to 10 % jitter as the times.
std::uint64_t soft_limit(std::uint64_t hard) {
  if (hard == 0) return 0;
  const std::uint64_t margin = hard / 10;
  const std::uint64_t jitter = margin != 0 ? random_u64() % margin : 0;
  return hard - margin - jitter;
}

// A connection's selectors (ours, the peer's); none configured: the
// addresses of the IKE SA.
std::pair<std::vector<TsRange>, std::vector<TsRange>> conn_selectors(const Connection& c, const IpAddress& local,
                                                                     const IpAddress& remote) {
  std::vector<TsRange> l, r;
  for (const TsConfig& t : c.local_ts) l.push_back(ts_from_config(t));
  for (const TsConfig& t : c.remote_ts) r.push_back(ts_from_config(t));
  if (l.empty()) l.push_back(ts_host(local));
  if (r.empty()) r.push_back(ts_host(remote));
  return {std::move(l), std::move(r)};
}

// The Notification Data of INVALID_KE_PAYLOAD: the group we want (1.2).
Bytes group_bytes(KeGroup g) {
  const auto v = static_cast<std::uint16_t>(g);
  return Bytes{static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v)};
}

// The Child SA payloads of a responder's answer (IKE_AUTH, CREATE_CHILD_SA).
void append_child_reply(std::vector<Payload>& out, Mode mode, const EspChoice& c, std::uint32_t spi_in,
                        const std::vector<TsRange>& ts_i, const std::vector<TsRange>& ts_r) {
  if (mode == Mode::transport) out.push_back(NotifyPayload::make(NotifyType::use_transport_mode));
  out.push_back(esp_reply(c, spi_in));
  out.push_back(ts_payload(ts_i, false));
  out.push_back(ts_payload(ts_r, true));
}

// A failed rekey is tried again after a few seconds (not past the hard time).
constexpr std::uint64_t kRekeyRetryMs = 5000;

}  // namespace

struct Engine::Creating {
  enum class Kind : std::uint8_t { new_child, rekey_child, rekey_ike };
  Kind kind = Kind::rekey_child;
  std::uint32_t old_spi_in = 0;  // rekey_child: our inbound SPI of the Child SA being rekeyed
  std::uint32_t spi_in = 0;      // a Child SA: our inbound SPI of the new one
  std::uint64_t new_spi = 0;     // rekey_ike: our SPI of the new IKE SA
  Bytes nonce;                   // our Ni
  std::optional<KeyExchange> ke;
  std::vector<TsRange> local_ts, remote_ts;
  Mode mode = Mode::tunnel;
  unsigned ke_retries = 0;
  // The peer's rekey of the same SA, answered while ours was out (2.8.1,
  // 2.8.2): the lower nonce of that exchange and what it made.
  bool collision = false;
  Bytes collision_nonce;
  std::uint64_t collision_ike_spi = 0;  // IKE: our SPI of the IKE SA the peer's exchange made
};

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
    bool rekeying = false;  // our rekey of it is out
    bool deleting = false;  // our Delete of it is queued or out
  };
  std::vector<Child> children;
  std::optional<Creating> creating;      // our CREATE_CHILD_SA request in flight
  std::vector<std::uint32_t> delete_queue;  // our inbound SPIs of Child SAs to send a Delete for
  std::vector<std::uint32_t> deleting;      // ... in the INFORMATIONAL request out
  bool rekeyed = false;                     // replaced by a rekey (2.18): waits for its Delete
  std::uint64_t rekey_ms = 0, expire_ms = 0;  // lifetime: soft and hard
  std::uint32_t child_spi_in = 0;  // initiator: the first Child SA's inbound SPI
  std::vector<TsRange> child_local_ts, child_remote_ts;
  Identity peer_id;
  std::uint64_t created_ms = 0;
  std::uint64_t last_rx_ms = 0;  // the last authenticated message from the peer (dpd)
  std::uint64_t keepalive_ms = 0;  // the last NAT keepalive we sent
  bool was_established = false;  // for restarting a start = "start" connection after a timeout

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
  while (!traps_.empty()) remove_trap(traps_.begin()->first);
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
  // Our first IKE SA with this peer (2.4): it may drop what an earlier run
  // of ours left with it.
  const bool first = std::none_of(sas_.begin(), sas_.end(), [&](const auto& e) {
    return e.second.get() != &sa && e.second->conn == sa.conn && e.second->state != IkeState::dead;
  });
  if (first) p.push_back(NotifyPayload::make(NotifyType::initial_contact));
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

void Engine::established(IkeSa& sa, const Identity& peer, std::uint64_t now_ms) {
  sa.state = IkeState::established;
  sa.was_established = true;
  sa.last_rx_ms = now_ms;
  sa.keepalive_ms = now_ms;
  sa.peer_id = peer;
  set_ike_timers(sa, now_ms);
  ++stats_.ike_established;
  log(sa.conn->name + ": IKE SA established with " + sa.remote.to_string() + " (" + to_string(*sa.suite) + ")");
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
  established(sa, peer, now_ms);

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
  // The responder has installed the Child SA it answered with: one we
  // cannot accept is deleted at once (RFC 7296 1.3.1: "the initiator MUST
  // delete the SA"), the IKE SA stays.
  auto refuse = [&](const std::string& why) {
    log(sa.conn->name + ": " + why + "; deleting the Child SA");
    sa.delete_queue.push_back(sa.child_spi_in);
  };
  auto choice = accept_esp_reply(sa.conn->esp, *sap);
  if (!choice) {
    refuse(choice.error().message);
    return;
  }
  auto got_i = ts_from_payload(*tsi), got_r = ts_from_payload(*tsr);
  if (!within(got_i, sa.child_local_ts) || !within(got_r, sa.child_remote_ts)) {
    ++stats_.ts_unacceptable;
    refuse("the responder's traffic selectors are not within ours");
    return;
  }
  const bool transport = find_notify(m, NotifyType::use_transport_mode) != nullptr;
  if ((sa.conn->mode == Mode::transport) != transport) {
    ++stats_.mode_refused;
    refuse(std::string("the responder chose ") + mode_name(transport ? Mode::transport : Mode::tunnel) +
           " mode, we want " + mode_name(sa.conn->mode));
    return;
  }
  if (auto r = install_child(sa, *choice, sa.child_spi_in, sa.conn->mode, got_i, got_r, now_ms,
                             ChildKeying{{}, sa.ni, sa.nr, true, {}});
      !r) {
    refuse("Child SA not installed: " + r.error().message);
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
      send_plain_notify(local, remote, h, NotifyType::invalid_ke_payload, group_bytes(other->suite.group));
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
  --half_open_;
  established(sa, peer, now_ms);
  if (find_notify(m, NotifyType::initial_contact) != nullptr) {
    // The peer has no other IKE SA with us (it restarted): ours with the
    // same authenticated identity are stale. No Delete: it has no keys for them.
    for (auto& [spi, other] : sas_) {
      if (other.get() == &sa || other->conn != conn || other->peer_id != peer) continue;
      if (other->state != IkeState::established && other->state != IkeState::deleting) continue;
      kill(*other, "replaced after INITIAL_CONTACT from " + peer.to_string());
    }
  }

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
    const auto [our_local, our_remote] = conn_selectors(*conn, sa.local.addr, sa.remote.addr);
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
      ++stats_.mode_refused;
      child_error(NotifyType::no_proposal_chosen, "transport mode required");
    } else {
      const Mode mode = want_transport && conn->mode == Mode::transport ? Mode::transport : Mode::tunnel;
      const std::uint32_t spi_in = alloc_esp_spi();
      if (auto r = install_child(sa, *choice, spi_in, mode, ts_r, ts_i, now_ms, ChildKeying{{}, sa.ni, sa.nr, false, {}});
          !r) {
        esp_spis_.erase(spi_in);
        child_error(NotifyType::temporary_failure, "the dataplane refused it: " + r.error().message);
      } else {
        append_child_reply(out, mode, *choice, spi_in, ts_i, ts_r);
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
                                   std::uint64_t now_ms, const ChildKeying& k) {
  auto cipher = esp_cipher(esp.suite);
  if (!cipher) return cipher.error();
  auto integ = esp_integ(esp.suite);
  if (!integ) return integ.error();
  const ChildSaSuite cs{esp.suite.encr, esp.suite.encr_key_bits, esp.suite.integ};
  auto km = derive_child_sa_keys(sa.suite->prf, sa.keys->sk_d, cs, k.g_ir, k.ni, k.nr);
  if (!km) return km.error();
  // KEYMAT's first keys protect the traffic from the initiator of the
  // exchange that made the SA to its responder (2.17).
  const SecretKey& in_e = k.we_initiated ? km->encr_r : km->encr_i;
  const SecretKey& in_a = k.we_initiated ? km->integ_r : km->integ_i;
  const SecretKey& out_e = k.we_initiated ? km->encr_i : km->encr_r;
  const SecretKey& out_a = k.we_initiated ? km->integ_i : km->integ_r;

  ChildSaSpec spec;
  spec.connection = sa.conn->name;
  spec.reqid = k.reqid ? *k.reqid : next_reqid_++;
  const bool encap = sa.natt && sa.encap();
  // Byte and packet limits in cygnet-dp: its soft expiry starts the rekey
  // (on_child_expire), its hard expiry deletes the Child SA.
  const std::uint64_t soft_bytes = soft_limit(sa.conn->child_lifetime_bytes);
  const std::uint64_t soft_packets = soft_limit(sa.conn->child_lifetime_packets);
  for (SaConfig* c : {&spec.inbound, &spec.outbound}) {
    c->mode = mode;
    c->reqid = spec.reqid;
    c->cipher = *cipher;
    c->integ = *integ;
    c->esn = esp.suite.esn;
    c->encap.enabled = encap;
    c->hard.bytes = sa.conn->child_lifetime_bytes;
    c->hard.packets = sa.conn->child_lifetime_packets;
    c->soft.bytes = soft_bytes;
    c->soft.packets = soft_packets;
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
  // A rekey keeps the old Child SA's reqid: its policies stay installed and
  // move to the new one (the dataplane's SA set of the reqid changes).
  for (const Selector& s : k.reqid ? std::vector<Selector>{} : spec.outbound.selectors) {
    Policy p;
    p.dir = PolicyDir::out;
    p.action = PolicyAction::protect;
    p.reqid = spec.reqid;
    p.sel = s;
    spec.policies.push_back(p);
  }
  for (const Selector& s : k.reqid ? std::vector<Selector>{} : spec.inbound.selectors) {
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
  c.info.suite.group = esp.group;  // the key exchange done for it, if any
  c.info.mode = mode;
  c.info.encap = encap;
  c.info.local_ts = std::move(local_ts);
  c.info.remote_ts = std::move(remote_ts);
  c.info.established_ms = now_ms;
  std::tie(c.info.rekey_at_ms, c.info.expire_at_ms) = lifetime_times(sa.conn->child_lifetime_s, now_ms);
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

void Engine::remove_child_sa(IkeSa& sa, std::uint32_t spi_in) {
  auto it = std::find_if(sa.children.begin(), sa.children.end(),
                         [&](const IkeSa::Child& c) { return c.info.spi_in == spi_in; });
  if (it == sa.children.end()) return;
  // Another Child SA of the same reqid (a rekey, or both of a collision)
  // still needs the policies: they go to it instead of out of the
  // dataplane, to one that stays if there is one.
  if (!it->spec.policies.empty()) {
    IkeSa::Child* heir = nullptr;
    for (auto& o : sa.children) {
      if (&o == &*it || o.info.reqid != it->info.reqid) continue;
      if (heir == nullptr || (!o.deleting && !o.info.rekeyed)) heir = &o;
    }
    if (heir != nullptr) {
      heir->spec.policies = std::move(it->spec.policies);
      it->spec.policies.clear();
    }
  }
  if (auto r = backend_.remove_child(it->spec); !r) log("removing a Child SA: " + r.error().message);
  ++stats_.child_removed;
  esp_spis_.erase(spi_in);
  sa.children.erase(it);
}

void Engine::set_ike_timers(IkeSa& sa, std::uint64_t now_ms) {
  std::tie(sa.rekey_ms, sa.expire_ms) = lifetime_times(sa.conn->ike_lifetime_s, now_ms);
}

void Engine::on_child_expire(std::uint32_t spi_in, bool hard, std::uint64_t now_ms) {
  for (auto& [k, sa] : sas_) {
    for (auto& c : sa->children) {
      if (c.info.spi_in != spi_in) continue;
      if (hard) c.info.expire_at_ms = now_ms;
      else c.info.rekey_at_ms = std::min(c.info.rekey_at_ms, now_ms);
      kick(*sa, now_ms);
      reap();
      return;
    }
  }
}

Result<void> Engine::send_delete(IkeSa& sa, std::uint64_t now_ms) {
  DeletePayload d;
  d.protocol = Protocol::ike;
  d.spi_size = 0;
  const Payload p = d;
  auto out = seal(sa, ExchangeType::informational, false, sa.next_mid, std::span<const Payload>(&p, 1));
  if (!out) return out.error();
  sa.state = IkeState::deleting;
  remove_children(sa);
  send_request(sa, std::move(*out), now_ms);
  return {};
}

// Timers and queued work of an IKE SA, when its window is free: the Delete
// of Child SAs, then the hard and soft lifetimes of the IKE SA, then those
// of its Child SAs.
void Engine::kick(IkeSa& sa, std::uint64_t now_ms) {
  if (sa.state != IkeState::established) return;
  // Hard lifetimes hold even while an exchange is out.
  if (sa.expire_ms != 0 && now_ms >= sa.expire_ms) {
    ++stats_.expired;
    if (sa.pending || !send_delete(sa, now_ms)) kill(sa, "IKE SA lifetime expired");
    else log(sa.conn->name + ": IKE SA lifetime expired, deleting it");
    return;
  }
  for (std::size_t i = 0; i < sa.children.size();) {
    auto& c = sa.children[i];
    if (c.info.expire_at_ms == 0 || now_ms < c.info.expire_at_ms) {
      ++i;
      continue;
    }
    char spis[48];
    std::snprintf(spis, sizeof spis, "in 0x%08x out 0x%08x", c.info.spi_in, c.info.spi_out);
    log(sa.conn->name + ": Child SA " + spis + " lifetime expired, deleting it");
    ++stats_.expired;
    const std::uint32_t spi = c.info.spi_in;
    if (std::find(sa.delete_queue.begin(), sa.delete_queue.end(), spi) == sa.delete_queue.end() &&
        std::find(sa.deleting.begin(), sa.deleting.end(), spi) == sa.deleting.end()) {
      sa.delete_queue.push_back(spi);
    }
    remove_child_sa(sa, spi);
  }
  if (sa.pending || sa.rekeyed) return;
  if (!sa.delete_queue.empty()) {
    DeletePayload d;
    d.protocol = Protocol::esp;
    d.spi_size = 4;
    for (std::uint32_t spi : sa.delete_queue) d.spis.push_back(spi4(spi));
    const Payload p = d;
    auto out = seal(sa, ExchangeType::informational, false, sa.next_mid, std::span<const Payload>(&p, 1));
    if (!out) {
      kill(sa, out.error().message);
      return;
    }
    sa.deleting = std::move(sa.delete_queue);
    sa.delete_queue.clear();
    send_request(sa, std::move(*out), now_ms);
    return;
  }
  if (sa.rekey_ms != 0 && now_ms >= sa.rekey_ms) {
    if (auto r = start_ike_rekey(sa, now_ms); !r) {
      log(sa.conn->name + ": IKE SA rekey: " + r.error().message);
      sa.rekey_ms = now_ms + kRekeyRetryMs;
    }
    return;
  }
  for (auto& c : sa.children) {
    if (c.rekeying || c.deleting || c.info.rekeyed || c.info.rekey_at_ms == 0 || now_ms < c.info.rekey_at_ms) continue;
    if (auto r = start_child_rekey(sa, c.info.spi_in, now_ms); !r) {
      log(sa.conn->name + ": Child SA rekey: " + r.error().message);
      c.info.rekey_at_ms = now_ms + kRekeyRetryMs;
    }
    return;
  }
}

// ---------------------------------------------------------------- CREATE_CHILD_SA

// 1.3.3: HDR, SK {N(REKEY_SA), SA, Ni, [KEi,] TSi, TSr}; spi_in 0: a new
// Child SA of the connection's selectors (1.3.1, no REKEY_SA).
Result<void> Engine::start_child_rekey(IkeSa& sa, std::uint32_t spi_in, std::uint64_t now_ms,
                                       std::optional<KeGroup> group, unsigned ke_retries) {
  auto it = std::find_if(sa.children.begin(), sa.children.end(),
                         [&](const IkeSa::Child& c) { return c.info.spi_in == spi_in; });
  if (spi_in != 0 && it == sa.children.end()) return make_error("no Child SA with SPI " + std::to_string(spi_in));
  if (sa.conn->esp.empty()) return make_error("no ESP proposals");
  Creating cr;
  cr.kind = spi_in != 0 ? Creating::Kind::rekey_child : Creating::Kind::new_child;
  cr.old_spi_in = spi_in;
  cr.spi_in = alloc_esp_spi();
  cr.nonce = random_bytes(kNonceLen);
  if (spi_in != 0) {
    cr.mode = it->info.mode;
    cr.local_ts = it->info.local_ts;
    cr.remote_ts = it->info.remote_ts;
  } else {
    cr.mode = sa.conn->mode;
    std::tie(cr.local_ts, cr.remote_ts) = conn_selectors(*sa.conn, sa.local.addr, sa.remote.addr);
  }
  cr.ke_retries = ke_retries;
  if (!group) group = sa.conn->esp[0].group;  // PFS with the first suite's group
  if (group) {
    auto ke = KeyExchange::create(*group);
    if (!ke) return make_error("key exchange: " + ke.error().message);
    cr.ke.emplace(std::move(*ke));
  }
  std::vector<Payload> p;
  if (spi_in != 0) {
    NotifyPayload n = NotifyPayload::make(NotifyType::rekey_sa);
    n.protocol = Protocol::esp;
    n.spi = spi4(spi_in);
    p.push_back(std::move(n));
  }
  if (cr.mode == Mode::transport) p.push_back(NotifyPayload::make(NotifyType::use_transport_mode));
  p.push_back(esp_sa_payload(sa.conn->esp, cr.spi_in, true));
  p.push_back(NoncePayload{cr.nonce});
  if (cr.ke) p.push_back(KePayload{static_cast<std::uint16_t>(cr.ke->group()), cr.ke->public_value()});
  p.push_back(ts_payload(cr.local_ts, false));
  p.push_back(ts_payload(cr.remote_ts, true));
  auto out = seal(sa, ExchangeType::create_child_sa, false, sa.next_mid, p);
  if (!out) return out.error();
  const std::string pfs = cr.ke ? " (PFS " + std::string(group_name(cr.ke->group())) + ")" : "";
  if (spi_in != 0) {
    it->rekeying = true;
    char spis[48];
    std::snprintf(spis, sizeof spis, "in 0x%08x out 0x%08x", it->info.spi_in, it->info.spi_out);
    log(sa.conn->name + ": rekeying Child SA " + spis + pfs);
  } else {
    log(sa.conn->name + ": asking for another Child SA" + pfs);
  }
  sa.creating = std::move(cr);
  send_request(sa, std::move(*out), now_ms);
  return {};
}

// 1.3.2: HDR, SK {SA, Ni, KEi}, the SA's proposals carrying our new SPI.
Result<void> Engine::start_ike_rekey(IkeSa& sa, std::uint64_t now_ms, std::optional<KeGroup> group,
                                     unsigned ke_retries) {
  Creating cr;
  cr.kind = Creating::Kind::rekey_ike;
  do {
    cr.new_spi = random_u64();
  } while (cr.new_spi == 0 || sas_.count(cr.new_spi) != 0);
  cr.nonce = random_bytes(kNonceLen);
  cr.ke_retries = ke_retries;
  auto ke = KeyExchange::create(group ? *group : sa.suite->group);
  if (!ke) return make_error("key exchange: " + ke.error().message);
  cr.ke.emplace(std::move(*ke));
  const Spi8 ns = spi8(cr.new_spi);
  std::vector<Payload> p;
  p.push_back(ike_sa_payload(sa.conn->ike, Bytes(ns.begin(), ns.end())));
  p.push_back(NoncePayload{cr.nonce});
  p.push_back(KePayload{static_cast<std::uint16_t>(cr.ke->group()), cr.ke->public_value()});
  auto out = seal(sa, ExchangeType::create_child_sa, false, sa.next_mid, p);
  if (!out) return out.error();
  log(sa.conn->name + ": rekeying the IKE SA");
  sa.creating = std::move(cr);
  send_request(sa, std::move(*out), now_ms);
  return {};
}

void Engine::move_children(IkeSa& from, IkeSa& to) {
  for (auto& c : from.children) to.children.push_back(std::move(c));
  from.children.clear();
  from.child_spi_in = 0;  // moved with its Child SA: kill(from) must not release it
  for (std::uint32_t s : from.delete_queue) to.delete_queue.push_back(s);
  for (std::uint32_t s : from.deleting) to.delete_queue.push_back(s);  // the old SA's Delete is lost with it
  from.delete_queue.clear();
  from.deleting.clear();
}

void Engine::refuse_create_child(IkeSa& sa, std::uint32_t mid, NotifyType t, const std::string& why, Bytes data) {
  log(sa.conn->name + ": CREATE_CHILD_SA refused: " + why + " (" + notify_name(t) + ")");
  const Payload n = NotifyPayload::make(t, std::move(data));
  if (auto out = seal(sa, ExchangeType::create_child_sa, true, mid, std::span<const Payload>(&n, 1))) {
    send_response(sa, mid, std::move(*out));
  }
}

// The IKE SA that replaces `old` (2.18): SKEYSEED from the old SK_d and
// PRF, keys of the new suite, SPIs and nonces; the rest as the old one.
Result<std::unique_ptr<Engine::IkeSa>> Engine::successor(const IkeSa& old, bool initiator, std::uint64_t spi_i,
                                                         std::uint64_t spi_r, const IkeSuite& suite,
                                                         std::span<const std::uint8_t> g_ir, const Bytes& ni,
                                                         const Bytes& nr, std::uint64_t now_ms) {
  const IkeSaSuite ks{suite.encr, suite.encr_key_bits, suite.integ, suite.prf};
  const Spi8 si = spi8(spi_i), sr = spi8(spi_r);
  auto seed = skeyseed_rekey(old.suite->prf, old.keys->sk_d, g_ir, ni, nr);
  if (!seed) return seed.error();
  auto keys = derive_ike_sa_keys(ks, *seed, ni, nr, si, sr);
  if (!keys) return keys.error();
  auto ciphers = make_sk_ciphers(ks, *keys, initiator);
  if (!ciphers) return ciphers.error();
  auto n = std::make_unique<IkeSa>();
  n->conn = old.conn;
  n->initiator = initiator;
  n->spi_i = spi_i;
  n->spi_r = spi_r;
  n->ni = ni;
  n->nr = nr;
  n->keys.emplace(std::move(*keys));
  n->ciphers = std::move(*ciphers);
  n->state = IkeState::established;
  n->was_established = true;
  n->last_rx_ms = old.last_rx_ms;  // the rekey exchange itself, just now
  n->local = old.local;
  n->remote = old.remote;
  n->suite = suite;
  n->natt = old.natt;
  n->nat_local = old.nat_local;
  n->nat_remote = old.nat_remote;
  n->peer_id = old.peer_id;
  n->created_ms = now_ms;
  set_ike_timers(*n, now_ms);
  return n;
}

void Engine::on_create_child_request(IkeSa& sa, const Message& m, std::uint64_t now_ms) {
  const std::uint32_t mid = m.header.message_id;
  const Connection* conn = sa.conn;
  auto refuse = [&](NotifyType t, const std::string& why, Bytes data = {}) {
    refuse_create_child(sa, mid, t, why, std::move(data));
  };
  // 2.25: an SA on its way out is not rekeyed.
  if (sa.state != IkeState::established || sa.rekeyed) {
    refuse(NotifyType::temporary_failure, "the IKE SA is being rekeyed or deleted");
    return;
  }
  const auto* sap = find_sa(m);
  const auto* nonce = find_payload<NoncePayload>(m);
  const auto* ke = find_payload<KePayload>(m);
  if (sap == nullptr || nonce == nullptr || sap->proposals.empty()) {
    refuse(NotifyType::invalid_syntax, "no SA or Nonce payload");
    return;
  }
  if (sap->proposals[0].protocol == Protocol::ike) {
    on_rekey_ike_request(sa, m, now_ms);
    return;
  }
  const TsPayload* tsi = find_ts(m, false);
  const TsPayload* tsr = find_ts(m, true);
  if (tsi == nullptr || tsr == nullptr) {
    refuse(NotifyType::invalid_syntax, "no TSi or TSr");
    return;
  }
  // Rekeying (1.3.3): the SPI is the one the peer receives on, our outbound.
  std::optional<std::uint32_t> old_in, reqid;
  if (const NotifyPayload* r = find_notify(m, NotifyType::rekey_sa)) {
    if (r->protocol != Protocol::esp || r->spi.size() != 4) {
      refuse(NotifyType::invalid_syntax, "REKEY_SA without an ESP SPI");
      return;
    }
    const std::uint32_t spi = be32(r->spi);
    for (const auto& c : sa.children) {
      if (c.info.spi_out == spi) {
        old_in = c.info.spi_in;
        reqid = c.info.reqid;
        if (c.deleting || c.info.rekeyed) {
          refuse(NotifyType::temporary_failure, "that Child SA is being deleted or was rekeyed already");
          return;
        }
      }
    }
    if (!old_in) {
      char b[16];
      std::snprintf(b, sizeof b, "0x%08x", spi);
      refuse(NotifyType::child_sa_not_found, std::string("no Child SA with SPI ") + b + " to rekey");
      return;
    }
  }
  auto sel = select_esp_ke(conn->esp, *sap, ke ? std::optional<std::uint16_t>(ke->group) : std::nullopt);
  if (!sel.choice) {
    if (sel.want_group) {
      ++stats_.invalid_ke_sent;
      refuse(NotifyType::invalid_ke_payload, std::string("a KE of group ") + group_name(*sel.want_group) + " is needed",
             group_bytes(*sel.want_group));
    } else {
      ++stats_.no_proposal_sent;
      refuse(NotifyType::no_proposal_chosen, "no acceptable ESP proposal");
    }
    return;
  }
  const EspChoice& choice = *sel.choice;
  const auto [our_local, our_remote] = conn_selectors(*conn, sa.local.addr, sa.remote.addr);
  auto ts_i = narrow(ts_from_payload(*tsi), our_remote);
  auto ts_r = narrow(ts_from_payload(*tsr), our_local);
  if (ts_i.empty() || ts_r.empty()) {
    ++stats_.ts_unacceptable;
    refuse(NotifyType::ts_unacceptable, "traffic selectors do not overlap ours");
    return;
  }
  const bool want_transport = find_notify(m, NotifyType::use_transport_mode) != nullptr;
  if (conn->mode == Mode::transport && !want_transport) {
    ++stats_.no_proposal_sent;
    ++stats_.mode_refused;
    refuse(NotifyType::no_proposal_chosen, "transport mode required");
    return;
  }
  const Mode mode = want_transport && conn->mode == Mode::transport ? Mode::transport : Mode::tunnel;
  std::optional<KeyExchange> ours;
  std::optional<SecretBytes> gir;
  if (choice.group) {  // ke is there: select_esp_ke chose the group of its KE
    auto k = KeyExchange::create(*choice.group);
    if (!k) {
      refuse(NotifyType::temporary_failure, "key exchange: " + k.error().message);
      return;
    }
    auto g = k->derive(ke->data);
    if (!g) {  // RFC 6989
      refuse(NotifyType::invalid_syntax, "bad KE: " + g.error().message);
      return;
    }
    ours.emplace(std::move(*k));
    gir.emplace(std::move(*g));
  }
  const Bytes nr = random_bytes(kNonceLen);
  const std::uint32_t spi_in = alloc_esp_spi();
  const ChildKeying keying{gir ? gir->bytes() : std::span<const std::uint8_t>{}, nonce->data, nr, false, reqid};
  if (auto r = install_child(sa, choice, spi_in, mode, ts_r, ts_i, now_ms, keying); !r) {
    refuse(NotifyType::temporary_failure, "the dataplane refused it: " + r.error().message);
    return;
  }
  if (old_in) {
    // The policies go with the reqid to the new Child SA.
    IkeSa::Child* o = nullptr;
    IkeSa::Child* n = nullptr;
    for (auto& c : sa.children) {
      if (c.info.spi_in == *old_in) o = &c;
      if (c.info.spi_in == spi_in) n = &c;
    }
    if (o != nullptr && n != nullptr && !o->spec.policies.empty()) {
      n->spec.policies = std::move(o->spec.policies);
      o->spec.policies.clear();
    }
    if (sa.creating && sa.creating->kind == Creating::Kind::rekey_child && sa.creating->old_spi_in == *old_in) {
      // Both rekey it (2.8.1): decided when our response comes.
      sa.creating->collision = true;
      sa.creating->collision_nonce = min_nonce(nonce->data, nr);
    } else if (o != nullptr) {
      o->info.rekeyed = true;  // the initiator of the rekey deletes it
    }
    ++stats_.child_rekeyed;
  }
  // 1.3.1: SA, Nr, [KEr], TSi, TSr (in any order on the wire).
  std::vector<Payload> out;
  append_child_reply(out, mode, choice, spi_in, ts_i, ts_r);
  out.push_back(NoncePayload{nr});
  if (ours) out.push_back(KePayload{static_cast<std::uint16_t>(ours->group()), ours->public_value()});
  auto bytes = seal(sa, ExchangeType::create_child_sa, true, mid, out);
  if (!bytes) {
    kill(sa, bytes.error().message);
    return;
  }
  send_response(sa, mid, std::move(*bytes));
}

// 1.3.2 and 2.18, responder.
void Engine::on_rekey_ike_request(IkeSa& sa, const Message& m, std::uint64_t now_ms) {
  const std::uint32_t mid = m.header.message_id;
  auto refuse = [&](NotifyType t, const std::string& why, Bytes data = {}) {
    refuse_create_child(sa, mid, t, "IKE SA rekey: " + why, std::move(data));
  };
  const auto& sap = *find_sa(m);
  const auto& nonce = *find_payload<NoncePayload>(m);
  const auto* ke = find_payload<KePayload>(m);
  if (ke == nullptr) {
    refuse(NotifyType::invalid_syntax, "no KE (2.18 requires one)");
    return;
  }
  if (sa.creating && sa.creating->kind != Creating::Kind::rekey_ike) {
    // A Child SA of ours is on its way; it would be lost on the old SA.
    refuse(NotifyType::temporary_failure, "a CREATE_CHILD_SA of ours is out");
    return;
  }
  std::optional<IkeChoice> choice;
  if (auto g = group_from_id(ke->group)) choice = select_ike(sa.conn->ike, sap, *g);
  if (!choice) {
    if (auto other = select_ike(sa.conn->ike, sap)) {
      ++stats_.invalid_ke_sent;
      refuse(NotifyType::invalid_ke_payload, std::string("a KE of group ") + group_name(other->suite.group) + " is needed",
             group_bytes(other->suite.group));
    } else {
      ++stats_.no_proposal_sent;
      refuse(NotifyType::no_proposal_chosen, "no acceptable IKE proposal");
    }
    return;
  }
  const Proposal* prop = nullptr;
  for (const Proposal& p : sap.proposals) {
    if (p.number == choice->number) prop = &p;
  }
  if (prop == nullptr || prop->spi.size() != 8 || be64(prop->spi) == 0) {
    refuse(NotifyType::invalid_syntax, "the proposal has no 8-byte SPI");
    return;
  }
  auto ours = KeyExchange::create(choice->suite.group);
  if (!ours) {
    refuse(NotifyType::temporary_failure, "key exchange: " + ours.error().message);
    return;
  }
  auto gir = ours->derive(ke->data);
  if (!gir) {
    refuse(NotifyType::invalid_syntax, "bad KE: " + gir.error().message);
    return;
  }
  std::uint64_t spi_r = 0;
  do {
    spi_r = random_u64();
  } while (spi_r == 0 || sas_.count(spi_r) != 0);
  // The initiator of the rekey is the new SA's initiator (2.18).
  auto n = successor(sa, false, be64(prop->spi), spi_r, choice->suite, gir->bytes(), nonce.data,
                     random_bytes(kNonceLen), now_ms);
  if (!n) {
    refuse(NotifyType::temporary_failure, "keys: " + n.error().message);
    return;
  }
  const Spi8 sr = spi8(spi_r);
  std::vector<Payload> out;
  out.push_back(ike_reply(*choice, Bytes(sr.begin(), sr.end())));
  out.push_back(NoncePayload{(*n)->nr});
  out.push_back(KePayload{static_cast<std::uint16_t>(choice->suite.group), ours->public_value()});
  auto bytes = seal(sa, ExchangeType::create_child_sa, true, mid, out);
  if (!bytes) {
    kill(sa, bytes.error().message);
    return;
  }
  IkeSa& ref = **n;
  sas_.emplace(spi_r, std::move(*n));
  send_response(sa, mid, std::move(*bytes));
  ++stats_.ike_rekeyed;
  if (sa.creating && sa.creating->kind == Creating::Kind::rekey_ike) {
    // Both rekey it (2.8.2): decided when our response comes.
    sa.creating->collision = true;
    sa.creating->collision_nonce = min_nonce(ref.ni, ref.nr);
    sa.creating->collision_ike_spi = ref.spi_r;
  } else {
    move_children(sa, ref);
    sa.rekeyed = true;  // its initiator deletes it
  }
  char spis[64];
  std::snprintf(spis, sizeof spis, "%016llx_i %016llx_r", static_cast<unsigned long long>(ref.spi_i),
                static_cast<unsigned long long>(ref.spi_r));
  log(sa.conn->name + ": IKE SA rekeyed by the peer, new SPIs " + spis);
}

void Engine::on_create_child_response(IkeSa& sa, const Message& m, std::uint64_t now_ms) {
  sa.pending.reset();
  Creating c = std::move(*sa.creating);
  sa.creating.reset();
  auto old_it = [&]() {
    return std::find_if(sa.children.begin(), sa.children.end(),
                        [&](const IkeSa::Child& x) { return x.info.spi_in == c.old_spi_in; });
  };
  if (const NotifyPayload* e = find_error_notify(m)) {
    const bool ike = c.kind == Creating::Kind::rekey_ike;
    if (!ike) esp_spis_.erase(c.spi_in);  // never installed (a retry takes a new one)
    if (e->type == NotifyType::invalid_ke_payload && e->data.size() == 2 && c.ke_retries == 0) {
      const std::uint16_t g = static_cast<std::uint16_t>(e->data[0] << 8 | e->data[1]);
      bool offered = false;
      KeGroup want{};
      if (ike) {
        for (const IkeSuite& s : sa.conn->ike) {
          if (static_cast<std::uint16_t>(s.group) == g) offered = true, want = s.group;
        }
      } else {
        for (const EspSuite& s : sa.conn->esp) {
          if (s.group && static_cast<std::uint16_t>(*s.group) == g) offered = true, want = *s.group;
        }
      }
      if (offered && !c.collision) {
        log(sa.conn->name + ": the peer wants group " + group_name(want) + " for the rekey, retrying");
        if (auto it = old_it(); it != sa.children.end()) it->rekeying = false;
        auto r = ike ? start_ike_rekey(sa, now_ms, want, 1) : start_child_rekey(sa, c.old_spi_in, now_ms, want, 1);
        if (r) return;
      }
    }
    log(sa.conn->name + (ike ? ": IKE SA rekey" : ": Child SA rekey") + " refused: " + notify_name(e->type));
    if (ike) {
      if (c.collision) {  // the peer's rekey stands alone
        if (IkeSa* w = find(c.collision_ike_spi)) {
          move_children(sa, *w);
          sa.rekeyed = true;
          kick(*w, now_ms);
        }
      } else {
        sa.rekey_ms = std::min(sa.expire_ms, now_ms + kRekeyRetryMs);
      }
    } else if (auto it = old_it(); it != sa.children.end()) {
      it->rekeying = false;
      if (c.collision) it->info.rekeyed = true;  // the peer's rekey replaced it
      else it->info.rekey_at_ms = std::min(it->info.expire_at_ms, now_ms + kRekeyRetryMs);
    }
    return;
  }
  if (c.kind == Creating::Kind::rekey_ike) on_rekey_ike_response(sa, c, m, now_ms);
  else on_child_created(sa, c, m, now_ms);
}

void Engine::on_child_created(IkeSa& sa, Creating& c, const Message& m, std::uint64_t now_ms) {
  const auto* sap = find_sa(m);
  const auto* nonce = find_payload<NoncePayload>(m);
  const auto* ke = find_payload<KePayload>(m);
  const TsPayload* tsi = find_ts(m, false);
  const TsPayload* tsr = find_ts(m, true);
  auto old = std::find_if(sa.children.begin(), sa.children.end(),
                          [&](const IkeSa::Child& x) { return x.info.spi_in == c.old_spi_in; });
  const bool have_old = c.kind == Creating::Kind::rekey_child && old != sa.children.end();
  std::optional<std::uint32_t> reqid;
  if (have_old) {
    old->rekeying = false;
    reqid = old->info.reqid;
  }
  auto fail = [&](const std::string& why) {
    log(sa.conn->name + ": CREATE_CHILD_SA response: " + why);
    // The peer may have installed it: ask it to delete our SPI.
    sa.delete_queue.push_back(c.spi_in);
    if (have_old) {
      auto o = std::find_if(sa.children.begin(), sa.children.end(),
                            [&](const IkeSa::Child& x) { return x.info.spi_in == c.old_spi_in; });
      if (o != sa.children.end()) {
        if (c.collision) o->info.rekeyed = true;
        else o->info.rekey_at_ms = std::min(o->info.expire_at_ms, now_ms + kRekeyRetryMs);
      }
    }
  };
  if (sap == nullptr || nonce == nullptr || tsi == nullptr || tsr == nullptr) {
    fail("no SA, Nonce, TSi or TSr");
    return;
  }
  auto choice = accept_esp_reply(sa.conn->esp, *sap);
  if (!choice) {
    fail(choice.error().message);
    return;
  }
  std::optional<SecretBytes> gir;
  if (choice->group) {
    if (!c.ke || c.ke->group() != *choice->group || ke == nullptr ||
        ke->group != static_cast<std::uint16_t>(*choice->group)) {
      fail("the responder's KE is not of the group it chose");
      return;
    }
    auto g = c.ke->derive(ke->data);
    if (!g) {
      fail("the responder's KE: " + g.error().message);
      return;
    }
    gir.emplace(std::move(*g));
  }
  auto got_i = ts_from_payload(*tsi), got_r = ts_from_payload(*tsr);
  if (!within(got_i, c.local_ts) || !within(got_r, c.remote_ts)) {
    ++stats_.ts_unacceptable;
    fail("the responder's traffic selectors are not within ours");
    return;
  }
  if ((c.mode == Mode::transport) != (find_notify(m, NotifyType::use_transport_mode) != nullptr)) {
    ++stats_.mode_refused;
    fail("the responder did not agree to the mode");
    return;
  }
  const ChildKeying keying{gir ? gir->bytes() : std::span<const std::uint8_t>{}, c.nonce, nonce->data, true, reqid};
  if (auto r = install_child(sa, *choice, c.spi_in, c.mode, got_i, got_r, now_ms, keying); !r) {
    fail("Child SA not installed: " + r.error().message);
    return;
  }
  if (!have_old) {
    if (c.kind == Creating::Kind::rekey_child) log(sa.conn->name + ": the Child SA rekeyed is gone meanwhile");
    return;
  }
  ++stats_.child_rekeyed;
  IkeSa::Child* o = nullptr;
  IkeSa::Child* n = nullptr;
  for (auto& x : sa.children) {
    if (x.info.spi_in == c.old_spi_in) o = &x;
    if (x.info.spi_in == c.spi_in) n = &x;
  }
  if (o != nullptr && n != nullptr && !o->spec.policies.empty()) {
    n->spec.policies = std::move(o->spec.policies);
    o->spec.policies.clear();
  }
  std::uint32_t to_delete = c.old_spi_in;
  if (c.collision) {
    // 2.8.1: the SA of the exchange with the lowest of the four nonces is
    // redundant; the side that made it deletes it. The other side deletes
    // the old one.
    ++stats_.rekey_collisions;
    const Bytes& ours_min = min_nonce(c.nonce, nonce->data);
    if (nonce_less(ours_min, c.collision_nonce)) {
      to_delete = c.spi_in;
      if (o != nullptr) o->info.rekeyed = true;
      log(sa.conn->name + ": simultaneous Child SA rekey: ours has the lowest nonce and goes");
    } else {
      log(sa.conn->name + ": simultaneous Child SA rekey: ours stays");
    }
  }
  for (auto& x : sa.children) {
    if (x.info.spi_in == to_delete) x.deleting = true;
  }
  sa.delete_queue.push_back(to_delete);
}

// 2.18, initiator.
void Engine::on_rekey_ike_response(IkeSa& sa, Creating& c, const Message& m, std::uint64_t now_ms) {
  const auto* sap = find_sa(m);
  const auto* nonce = find_payload<NoncePayload>(m);
  const auto* ke = find_payload<KePayload>(m);
  auto fail = [&](const std::string& why) {
    log(sa.conn->name + ": IKE SA rekey response: " + why);
    sa.rekey_ms = std::min(sa.expire_ms, now_ms + kRekeyRetryMs);
  };
  if (sap == nullptr || nonce == nullptr || ke == nullptr) {
    fail("no SA, Nonce or KE");
    return;
  }
  auto suite = accept_ike_reply(sa.conn->ike, *sap);
  if (!suite) {
    fail(suite.error().message);
    return;
  }
  const Bytes& rspi = sap->proposals[0].spi;
  if (rspi.size() != 8 || be64(rspi) == 0 || sas_.count(c.new_spi) != 0) {
    fail("the responder's proposal has no 8-byte SPI");
    return;
  }
  if (suite->group != c.ke->group() || ke->group != static_cast<std::uint16_t>(suite->group)) {
    fail("the responder's KE is not of the group it chose");
    return;
  }
  auto gir = c.ke->derive(ke->data);
  if (!gir) {
    fail("the responder's KE: " + gir.error().message);
    return;
  }
  auto n = successor(sa, true, c.new_spi, be64(rspi), *suite, gir->bytes(), c.nonce, nonce->data, now_ms);
  if (!n) {
    fail("keys: " + n.error().message);
    return;
  }
  IkeSa& ref = **n;
  sas_.emplace(c.new_spi, std::move(*n));
  ++stats_.ike_rekeyed;
  char spis[64];
  std::snprintf(spis, sizeof spis, "%016llx_i %016llx_r", static_cast<unsigned long long>(ref.spi_i),
                static_cast<unsigned long long>(ref.spi_r));
  IkeSa* winner = &ref;
  if (c.collision) {
    // 2.8.2: as for Child SAs, the lowest nonce loses.
    ++stats_.rekey_collisions;
    if (nonce_less(min_nonce(ref.ni, ref.nr), c.collision_nonce)) winner = find(c.collision_ike_spi);
  }
  if (winner != &ref) {
    log(sa.conn->name + ": simultaneous IKE SA rekey: ours (" + spis + ") has the lowest nonce and goes");
    if (winner != nullptr) move_children(sa, *winner);
    sa.rekeyed = true;  // the peer deletes the old one
    if (auto r = send_delete(ref, now_ms); !r) kill(ref, r.error().message);
    if (winner != nullptr) kick(*winner, now_ms);
    return;
  }
  log(sa.conn->name + ": IKE SA rekeyed, new SPIs " + spis);
  move_children(sa, ref);
  if (auto r = send_delete(sa, now_ms); !r) kill(sa, r.error().message);
  kick(ref, now_ms);
}

// ---------------------------------------------------------------- INFORMATIONAL

void Engine::delete_ike_sa(IkeSa& sa, std::uint64_t now_ms) {
  if (sa.state != IkeState::established) {
    kill(sa, "terminated");
    return;
  }
  // The Child SAs go now (we stop using the keys); the peer removes its
  // side on our Delete.
  if (auto r = send_delete(sa, now_ms); !r) kill(sa, r.error().message);
}

Result<void> Engine::terminate(std::string_view name, std::uint64_t now_ms) {
  bool any = false;
  for (auto& [spi, sa] : sas_) {
    if (sa->conn == nullptr || sa->conn->name != name || sa->state == IkeState::dead) continue;
    any = true;
    delete_ike_sa(*sa, now_ms);
  }
  reap();
  if (!any) return make_error("connection '" + std::string(name) + "' has no IKE SA");
  return {};
}

Result<void> Engine::check_liveness(std::string_view name, std::uint64_t now_ms) {
  for (auto& [spi, sa] : sas_) {
    if (sa->conn == nullptr || sa->conn->name != name || sa->state != IkeState::established || sa->rekeyed) continue;
    if (sa->pending) return make_error("an exchange is already in flight on '" + std::string(name) + "'");
    return send_liveness(*sa, now_ms);
  }
  return make_error("connection '" + std::string(name) + "' has no established IKE SA");
}

Result<void> Engine::send_liveness(IkeSa& sa, std::uint64_t now_ms) {
  auto out = seal(sa, ExchangeType::informational, false, sa.next_mid, {});
  if (!out) return out.error();
  send_request(sa, std::move(*out), now_ms);
  return {};
}

void Engine::nat_keepalive(IkeSa& sa, std::uint64_t now_ms) {
  // Only the side behind the NAT keeps its mapping open (RFC 3948 2.3; with
  // forced encapsulation we play that side), and only on UDP 4500.
  if (sa.state != IkeState::established || cfg_.nat_keepalive_s == 0 || sa.local.port == 500) return;
  if (!sa.nat_local && !(sa.conn != nullptr && sa.conn->force_encap)) return;
  if (sa.keepalive_ms == 0) sa.keepalive_ms = now_ms;  // a rekeyed IKE SA: an interval from now
  if (now_ms - sa.keepalive_ms < cfg_.nat_keepalive_s * 1000ull) return;
  sa.keepalive_ms = now_ms;
  static constexpr std::uint8_t kKeepalive[1] = {0xff};  // no non-ESP marker
  transport_.send(sa.local, sa.remote, kKeepalive);
  ++stats_.keepalives_sent;
}

void Engine::dpd(IkeSa& sa, std::uint64_t now_ms) {
  if (sa.state != IkeState::established || sa.pending || sa.conn == nullptr || sa.conn->dpd_s == 0) return;
  if (now_ms - sa.last_rx_ms < sa.conn->dpd_s * 1000ull) return;
  if (auto r = send_liveness(sa, now_ms); !r) log(sa.conn->name + ": liveness check: " + r.error().message);
}

Result<void> Engine::rekey(std::string_view name, bool ike_sa, std::uint64_t now_ms) {
  for (auto& [spi, sa] : sas_) {
    if (sa->conn == nullptr || sa->conn->name != name || sa->state != IkeState::established || sa->rekeyed) continue;
    if (sa->pending) return make_error("an exchange is already in flight on '" + std::string(name) + "'");
    if (ike_sa) return start_ike_rekey(*sa, now_ms);
    for (const auto& c : sa->children) {
      if (!c.rekeying && !c.deleting && !c.info.rekeyed) return start_child_rekey(*sa, c.info.spi_in, now_ms);
    }
    return make_error("connection '" + std::string(name) + "' has no Child SA to rekey");
  }
  return make_error("connection '" + std::string(name) + "' has no established IKE SA");
}

Result<void> Engine::create_child(std::string_view name, std::uint64_t now_ms) {
  for (auto& [spi, sa] : sas_) {
    if (sa->conn == nullptr || sa->conn->name != name || sa->state != IkeState::established || sa->rekeyed) continue;
    if (sa->pending) return make_error("an exchange is already in flight on '" + std::string(name) + "'");
    return start_child_rekey(*sa, 0, now_ms);
  }
  return make_error("connection '" + std::string(name) + "' has no established IKE SA");
}

void Engine::on_acquire(std::uint32_t reqid, std::uint64_t now_ms) {
  // The trap's reqid, or that of a Child SA of a trapped connection (its
  // protect policy raises ACQUIREs while it has no SA).
  const Connection* conn = nullptr;
  for (const auto& [name, t] : traps_) {
    if (t.reqid == reqid) conn = find_connection(cfg_, name);
  }
  for (const auto& [spi, sa] : sas_) {
    if (conn != nullptr) break;
    for (const auto& c : sa->children) {
      if (c.info.reqid == reqid && sa->conn != nullptr && traps_.count(sa->conn->name) != 0) conn = sa->conn;
    }
  }
  if (conn == nullptr) {
    log("ACQUIRE for reqid " + std::to_string(reqid) + ": no trapped connection has it; ignored");
    return;
  }
  for (const auto& [spi, sa] : sas_) {
    if (sa->conn == conn && sa->state != IkeState::dead && sa->state != IkeState::deleting) return;  // up or on the way
  }
  log(conn->name + ": ACQUIRE (reqid " + std::to_string(reqid) + "), initiating");
  if (auto r = initiate(conn->name, now_ms); !r) log(conn->name + ": " + r.error().message);
}

// ---------------------------------------------------------------- start, traps, reload

Result<void> Engine::install_trap(const Connection& c) {
  if (traps_.count(c.name) != 0) return {};
  std::vector<TsRange> local, remote;
  for (const TsConfig& t : c.local_ts) local.push_back(ts_from_config(t));
  for (const TsConfig& t : c.remote_ts) remote.push_back(ts_from_config(t));
  if (local.empty()) local.push_back(ts_host(c.local_addr));
  if (remote.empty()) {
    if (c.remote_addrs.empty()) return make_error("connection '" + c.name + "': no remote address to trap traffic to");
    remote.push_back(ts_host(c.remote_addrs[0].addr));
  }
  TrapSpec t;
  t.connection = c.name;
  t.reqid = next_reqid_++;
  for (const Selector& s : to_selectors(local, remote)) {
    Policy p;
    p.priority = kTrapPriority;
    p.dir = PolicyDir::out;
    p.action = PolicyAction::trap;
    p.reqid = t.reqid;
    p.sel = s;
    t.policies.push_back(p);
  }
  if (t.policies.empty()) {
    return make_error("connection '" + c.name + "': its local and remote traffic selectors share no address family");
  }
  if (auto r = backend_.install_trap(t); !r) {
    return make_error("connection '" + c.name + "': trap policies: " + r.error().message);
  }
  log(c.name + ": trap policies installed (reqid " + std::to_string(t.reqid) + ", " +
      std::to_string(t.policies.size()) + " policies)");
  traps_.emplace(c.name, std::move(t));
  return {};
}

void Engine::remove_trap(const std::string& connection) {
  auto it = traps_.find(connection);
  if (it == traps_.end()) return;
  if (auto r = backend_.remove_trap(it->second); !r) log(connection + ": removing the trap policies: " + r.error().message);
  traps_.erase(it);
}

Result<void> Engine::start_one(const Connection& c, std::uint64_t now_ms) {
  switch (c.start) {
    case StartAction::none: return {};
    case StartAction::start: return initiate(c.name, now_ms);
    case StartAction::trap: return install_trap(c);
  }
  return {};
}

Result<void> Engine::start(std::uint64_t now_ms) {
  std::size_t failed = 0;
  for (const Connection& c : cfg_.connections) {
    if (auto r = start_one(c, now_ms); !r) {
      log(r.error().message);
      ++failed;
    }
  }
  if (failed != 0) return make_error(std::to_string(failed) + " connections could not be started (see the log)");
  return {};
}

Result<std::string> Engine::reload(IkeConfig cfg, std::uint64_t now_ms) {
  // Forget earlier configurations no IKE SA points into any more.
  std::erase_if(retired_, [&](const std::vector<Connection>& v) {
    return std::none_of(sas_.begin(), sas_.end(), [&](const auto& e) {
      return e.second->conn != nullptr && e.second->conn >= v.data() && e.second->conn < v.data() + v.size();
    });
  });
  std::vector<Connection> old = std::move(cfg_.connections);  // the elements stay where they are
  const std::uint32_t reqid = next_reqid_;
  cfg_ = std::move(cfg);
  next_reqid_ = std::max(reqid, cfg_.reqid_base);
  std::size_t added = 0, changed = 0, removed = 0, kept = 0;
  std::vector<const Connection*> to_start;
  for (const Connection& o : old) {
    const Connection* n = find_connection(cfg_, o.name);
    if (n != nullptr && *n == o) {
      ++kept;
      for (auto& [spi, sa] : sas_) {
        if (sa->conn == &o) sa->conn = n;
      }
      continue;
    }
    n == nullptr ? ++removed : ++changed;
    remove_trap(o.name);
    for (auto& [spi, sa] : sas_) {
      if (sa->conn == &o && sa->state != IkeState::dead) {
        log(o.name + ": " + (n == nullptr ? "removed" : "changed") + " by the new configuration; deleting its IKE SA");
        delete_ike_sa(*sa, now_ms);
      }
    }
    if (n != nullptr) to_start.push_back(n);
  }
  for (const Connection& c : cfg_.connections) {
    if (find_connection_in(old, c.name) == nullptr) {
      ++added;
      to_start.push_back(&c);
    }
  }
  // Half-open responder SAs point at the connection they matched first.
  for (auto& [spi, sa] : sas_) {
    if (sa->conn != nullptr && sa->state == IkeState::init_done && find_connection(cfg_, sa->conn->name) != sa->conn) {
      kill(*sa, "its connection changed");
    }
  }
  retired_.push_back(std::move(old));
  std::size_t failed = 0;
  for (const Connection* c : to_start) {
    if (auto r = start_one(*c, now_ms); !r) {
      log(r.error().message);
      ++failed;
    }
  }
  reap();
  std::string s = std::to_string(cfg_.connections.size()) + " connections: " + std::to_string(added) + " added, " +
                  std::to_string(changed) + " changed, " + std::to_string(removed) + " removed, " +
                  std::to_string(kept) + " unchanged";
  if (failed != 0) s += "; " + std::to_string(failed) + " could not be started (see the log)";
  return s;
}

std::vector<Engine::TrapInfo> Engine::traps() const {
  std::vector<TrapInfo> v;
  for (const auto& [name, t] : traps_) v.push_back(TrapInfo{name, t.reqid, t.policies.size()});
  return v;
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
          remove_child_sa(sa, in);
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
  if (sa.state == IkeState::deleting) {
    kill(sa, "deleted");
    return;
  }
  // Our Delete of Child SAs is answered: now their inbound SAs go too (1.4.1).
  for (std::uint32_t spi : sa.deleting) remove_child_sa(sa, spi);
  sa.deleting.clear();
}

// ---------------------------------------------------------------- input

void Engine::dropped(const Endpoint& from, const std::string& why, std::uint64_t now_ms) {
  ++stats_.dropped;
  // One line a second at most: a flood of garbage must not flood the log.
  if (drop_log_ms_ != 0 && now_ms - drop_log_ms_ < 1000) {
    ++drops_unlogged_;
    return;
  }
  std::string line = "dropped a datagram from " + from.to_string() + ": " + why;
  if (drops_unlogged_ != 0) line += " (and " + std::to_string(drops_unlogged_) + " more in the last second, not logged)";
  log(line);
  drop_log_ms_ = now_ms == 0 ? 1 : now_ms;
  drops_unlogged_ = 0;
}

void Engine::on_datagram(const Endpoint& local, const Endpoint& remote, std::span<const std::uint8_t> payload,
                         std::uint64_t now_ms) {
  ++stats_.rx;
  std::span<const std::uint8_t> data = payload;
  if (local.port != 500) {
    const Udp4500 u = classify_udp4500(payload);
    if (u.kind == Udp4500Kind::keepalive) return;
    if (u.kind != Udp4500Kind::ike) {
      dropped(remote, "a UDP 4500 datagram that is neither IKE (non-ESP marker) nor a keepalive", now_ms);
      return;
    }
    data = u.data;
  }
  auto h = decode_header(data);
  if (!h) {
    dropped(remote, h.error().message, now_ms);
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
        dropped(remote, "an IKE_SA_INIT request with a responder SPI, a message ID or no Initiator flag", now_ms);
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
        dropped(remote, "an IKE_SA_INIT response that no IKE SA of ours waits for", now_ms);
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
    dropped(remote, "no IKE SA with SPIs " + hex_spi(h->spi_i) + "/" + hex_spi(h->spi_r) + " (" +
                        std::string(exchange_name(h->exchange)) + ")", now_ms);
    return;
  }
  if (!h->response()) {
    if (sa->last_response && h->message_id == sa->last_response->first) {
      ++stats_.dup_requests;
      send(*sa, sa->last_response->second);
      return;
    }
    if (h->message_id != sa->peer_mid) {  // outside the window (2.3)
      dropped(remote, "request with message ID " + std::to_string(h->message_id) + " outside the window (expected " +
                          std::to_string(sa->peer_mid) + ")", now_ms);
      return;
    }
  } else if (!sa->pending || h->message_id != sa->pending->mid) {
    dropped(remote, "a response (message ID " + std::to_string(h->message_id) + ") to no request of ours", now_ms);
    return;
  }
  auto m = open_sk(data, *sa->ciphers.in);
  if (!m) {
    // Not answered (2.21); logged at most once a second.
    dropped(remote, std::string(exchange_name(h->exchange)) + ": " + m.error().message, now_ms);
    return;
  }
  // Authenticated: follow the peer's address and port (a NAT's mapping).
  sa->local = local;
  sa->remote = remote;
  sa->last_rx_ms = now_ms;
  switch (h->exchange) {
    case ExchangeType::ike_auth:
      if (!h->response() && !sa->initiator && sa->state == IkeState::init_done) {
        on_auth_request(*sa, m.value(), now_ms);
      } else if (h->response() && sa->initiator && sa->state == IkeState::auth_sent) {
        on_auth_response(*sa, m.value(), now_ms);
      } else {
        dropped(remote, std::string("IKE_AUTH in state ") + state_name(sa->state), now_ms);
      }
      break;
    case ExchangeType::informational:
      if (sa->state != IkeState::established && sa->state != IkeState::deleting) {
        dropped(remote, "INFORMATIONAL before the IKE SA is authenticated", now_ms);
      } else if (!h->response()) {
        on_informational_request(*sa, m.value());
      } else {
        on_informational_response(*sa, m.value());
      }
      break;
    case ExchangeType::create_child_sa:
      if (!h->response() && (sa->state == IkeState::established || sa->state == IkeState::deleting)) {
        on_create_child_request(*sa, m.value(), now_ms);
      } else if (h->response() && sa->creating && sa->state == IkeState::established) {
        on_create_child_response(*sa, m.value(), now_ms);
      } else {
        dropped(remote, std::string("CREATE_CHILD_SA in state ") + state_name(sa->state), now_ms);
      }
      break;
    default:
      dropped(remote, "exchange type " + std::to_string(static_cast<unsigned>(h->exchange)) + " on an IKE SA", now_ms);
      break;
  }
  kick(*sa, now_ms);
  reap();
}

void Engine::tick(std::uint64_t now_ms) {
  std::vector<std::string> restart;
  for (auto& [spi, sa] : sas_) {
    if (sa->state == IkeState::dead) continue;
    if (sa->state == IkeState::init_done && now_ms - sa->created_ms >= cfg_.half_open_timeout_s * 1000ull) {
      kill(*sa, "half-open for too long");
      continue;
    }
    kick(*sa, now_ms);
    dpd(*sa, now_ms);
    nat_keepalive(*sa, now_ms);
    if (!sa->pending || now_ms < sa->pending->next_ms) continue;
    if (sa->pending->sends >= cfg_.retransmit_tries) {
      ++stats_.timeouts;
      kill(*sa, "no answer after " + std::to_string(sa->pending->sends) + " sends");
      // A connection that should be up comes back (strongSwan's
      // dpd_action = restart); one that never got up is not retried.
      if (sa->was_established && sa->conn != nullptr && sa->conn->start == StartAction::start) {
        restart.push_back(sa->conn->name);
      }
      continue;
    }
    ++sa->pending->sends;
    ++stats_.retransmits;
    // Exponential back-off (2.1): base, 2 base, 4 base...
    sa->pending->next_ms = now_ms + (static_cast<std::uint64_t>(cfg_.retransmit_base_ms) << (sa->pending->sends - 1));
    send(*sa, sa->pending->msg);
  }
  reap();
  for (const std::string& name : restart) {
    log(name + ": the peer stopped answering; initiating again");
    if (auto r = initiate(name, now_ms); !r) log(name + ": " + r.error().message);
  }
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
    i.rekey_at_ms = sa->rekey_ms;
    i.expire_at_ms = sa->expire_ms;
    i.rekeyed = sa->rekeyed;
    v.push_back(std::move(i));
  }
  return v;
}

}  // namespace cygnet::ike
