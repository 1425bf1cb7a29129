#include "shared/shm/messages.h"

#include <cstring>
#include <string>

namespace cygnet::shm {

namespace {

std::string num(std::uint64_t v) { return std::to_string(v); }

bool all_zero(const void* p, std::size_t n) noexcept {
  const auto* b = static_cast<const std::uint8_t*>(p);
  std::uint8_t acc = 0;
  for (std::size_t i = 0; i < n; ++i) acc |= b[i];
  return acc == 0;
}

bool printable(char c) noexcept { return c >= 0x20 && c <= 0x7e; }

// Wipes a wire struct that may have held keys when it goes out of scope.
template <typename T>
struct Wiped {
  T w;
  Wiped() noexcept { std::memset(&w, 0, sizeof(T)); }
  ~Wiped() { secure_zero(&w, sizeof(T)); }
  Wiped(const Wiped&) = delete;
  Wiped& operator=(const Wiped&) = delete;
};

void put_addr(const IpAddress& a, std::uint8_t& family, std::uint8_t (&bytes)[16]) noexcept {
  family = static_cast<std::uint8_t>(a.family);
  std::memcpy(bytes, a.bytes.data(), 16);
}

// Family 0, 4 or 6 (0 only if allow_none) and nothing past the address width.
bool get_addr(std::uint8_t family, const std::uint8_t (&bytes)[16], IpAddress& out, bool allow_none,
              std::string& why, std::string_view what) {
  if (family != 4 && family != 6 && !(family == 0 && allow_none)) {
    why = std::string(what) + " has address family " + num(family) +
          (allow_none ? " (expected 0, 4 or 6)" : " (expected 4 or 6)");
    return false;
  }
  const std::size_t width = family == 4 ? 4 : family == 6 ? 16 : 0;
  if (!all_zero(bytes + width, 16 - width)) {
    why = std::string(what) + " has non-zero bytes past its " + std::to_string(width) + "-byte address";
    return false;
  }
  out = IpAddress{};
  out.family = static_cast<Family>(family);
  std::memcpy(out.bytes.data(), bytes, 16);
  return true;
}

void put_selector(const Selector& s, wire::Selector& w) noexcept {
  std::memset(&w, 0, sizeof w);
  put_addr(s.src.addr, w.src_family, w.src);
  put_addr(s.dst.addr, w.dst_family, w.dst);
  w.src_len = s.src.len;
  w.dst_len = s.dst.len;
  w.proto = s.proto;
  w.sport_lo = s.sport.lo;
  w.sport_hi = s.sport.hi;
  w.dport_lo = s.dport.lo;
  w.dport_hi = s.dport.hi;
}

bool get_selector(const wire::Selector& w, Selector& out, std::string& why, const std::string& what) {
  if (!all_zero(w.reserved, sizeof w.reserved)) {
    why = what + ": reserved bytes are not zero";
    return false;
  }
  out = Selector{};
  if (!get_addr(w.src_family, w.src, out.src.addr, true, why, what + " source")) return false;
  if (!get_addr(w.dst_family, w.dst, out.dst.addr, true, why, what + " destination")) return false;
  out.src.len = w.src_len;
  out.dst.len = w.dst_len;
  out.proto = w.proto;
  out.sport = PortRange{w.sport_lo, w.sport_hi};
  out.dport = PortRange{w.dport_lo, w.dport_hi};
  return true;
}

Status get_dir(std::uint8_t raw, Direction& out, std::string& why) {
  if (raw > 1) {
    why = "direction " + num(raw) + " (expected 0 in or 1 out)";
    return Status::malformed;
  }
  out = static_cast<Direction>(raw);
  return Status::ok;
}

// SPI, direction and destination as every SA-keyed message carries them.
Status get_sa_key(std::uint32_t spi, std::uint8_t dir, std::uint8_t family, const std::uint8_t (&dst)[16],
                  SaKey& out, std::string& why) {
  out = SaKey{};
  if (auto s = get_dir(dir, out.dir, why); s != Status::ok) return s;
  if (!get_addr(family, dst, out.dst, false, why, "SA destination")) return Status::malformed;
  out.spi = spi;
  if (spi < 256) {
    why = "SPI " + num(spi) + " is reserved (RFC 4303 2.1: must be >= 256)";
    return Status::invalid;
  }
  if (out.dst.is_unspecified()) {
    why = "SA destination must not be the unspecified address";
    return Status::invalid;
  }
  return Status::ok;
}

void write_msg(MsgBuf& out, MsgType t, std::uint64_t id, const void* payload, std::uint32_t n) noexcept {
  out.wipe();
  wire::Header h{static_cast<std::uint16_t>(t), kMsgVersion, kMsgHeaderSize + n, id};
  std::memcpy(out.data(), &h, sizeof h);
  if (n != 0) std::memcpy(out.data() + kMsgHeaderSize, payload, n);
  out.set_size(kMsgHeaderSize + n);
}

template <typename T>
void write_msg(MsgBuf& out, MsgType t, std::uint64_t id, const T& payload) noexcept {
  write_msg(out, t, id, &payload, sizeof(T));
}

// Reads the payload of a message whose length was already checked.
template <typename T>
void read_payload(std::span<const std::uint8_t> raw, T& w) noexcept {
  std::memcpy(&w, raw.data() + kMsgHeaderSize, sizeof(T));
}

Status get_hello(const wire::Hello& w, Hello& out, std::string& why) {
  if ((w.flags & ~kHelloSubscribe) != 0 || w.reserved != 0) {
    why = "hello flags " + num(w.flags) + " or reserved bytes not understood";
    return Status::malformed;
  }
  std::size_t n = 0;
  while (n < sizeof w.name && w.name[n] != '\0') ++n;
  if (n == 0 || n > kMaxClientName) {
    why = "client name must be 1-" + num(kMaxClientName) + " characters, NUL terminated";
    return Status::malformed;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!printable(w.name[i])) {
      why = "client name has a non-printable byte at " + num(i);
      return Status::malformed;
    }
  }
  if (!all_zero(w.name + n, sizeof w.name - n)) {
    why = "client name is not NUL padded";
    return Status::malformed;
  }
  out = Hello{w.pid, w.flags, w.major, w.minor, std::string(w.name, n)};
  if (w.major != kVersionMajor) {
    why = "client speaks protocol " + num(w.major) + "." + num(w.minor) + ", cygnet-dp speaks " +
          num(kVersionMajor) + "." + num(kVersionMinor);
    return Status::bad_version;
  }
  return Status::ok;
}

Status get_counters_query(const wire::CountersQuery& w, CountersQuery& out, std::string& why) {
  out = CountersQuery{};
  if (w.reserved != 0) {
    why = "counters query reserved byte is not zero";
    return Status::malformed;
  }
  if (w.max == 0 || w.max > kMaxCountersPerReply) {
    why = "counters query max " + num(w.max) + " (expected 1-" + num(kMaxCountersPerReply) + ")";
    return Status::malformed;
  }
  out.cursor = w.cursor;
  out.max = w.max;
  if (w.scope == 0) {
    if (w.dir != 0 || w.family != 0 || w.spi != 0 || !all_zero(w.dst, sizeof w.dst)) {
      why = "counters query for all SAs must leave the SA fields zero";
      return Status::malformed;
    }
    out.scope = CounterScope::all;
    return Status::ok;
  }
  if (w.scope != 1) {
    why = "counters query scope " + num(w.scope) + " (expected 0 all or 1 one SA)";
    return Status::malformed;
  }
  out.scope = CounterScope::one;
  return get_sa_key(w.spi, w.dir, w.family, w.dst, out.sa, why);
}

}  // namespace

const MsgInfo* msg_info(std::uint16_t raw_type) noexcept {
  for (const auto& m : kMsgInfo)
    if (static_cast<std::uint16_t>(m.type) == raw_type) return &m;
  return nullptr;
}

std::string_view msg_name(std::uint16_t raw_type) noexcept {
  const MsgInfo* m = msg_info(raw_type);
  return m ? m->name : std::string_view("unknown");
}

MsgType command_type(const CommandBody& b) noexcept {
  struct V {
    MsgType operator()(const Hello&) const { return MsgType::hello; }
    MsgType operator()(const SaAdd&) const { return MsgType::sa_add; }
    MsgType operator()(const SaUpdate&) const { return MsgType::sa_update; }
    MsgType operator()(const SaDelete&) const { return MsgType::sa_delete; }
    MsgType operator()(const PolicyAdd&) const { return MsgType::policy_add; }
    MsgType operator()(const PolicyDelete&) const { return MsgType::policy_delete; }
    MsgType operator()(const BatchBegin&) const { return MsgType::batch_begin; }
    MsgType operator()(const BatchCommit&) const { return MsgType::batch_commit; }
    MsgType operator()(const BatchAbort&) const { return MsgType::batch_abort; }
    MsgType operator()(const CountersQuery&) const { return MsgType::counters_query; }
  };
  return std::visit(V{}, b);
}

MsgType event_type(const EventBody& b) noexcept {
  struct V {
    MsgType operator()(const Ack&) const { return MsgType::ack; }
    MsgType operator()(const SaExpired& e) const {
      return e.hard ? MsgType::sa_hard_expired : MsgType::sa_soft_expired;
    }
    MsgType operator()(const SeqExhausted&) const { return MsgType::seq_exhausted; }
    MsgType operator()(const Acquire&) const { return MsgType::acquire; }
    MsgType operator()(const NatMappingChanged&) const { return MsgType::nat_mapping_changed; }
    MsgType operator()(const Counters&) const { return MsgType::counters; }
    MsgType operator()(const EventsLost&) const { return MsgType::events_lost; }
  };
  return std::visit(V{}, b);
}

std::string ack_text(std::string_view s) {
  std::string t(s.substr(0, kMaxAckText));
  for (char& c : t)
    if (!printable(c)) c = '?';
  return t;
}

// ---- SA ----------------------------------------------------------------------

Result<void> encode_sa(const SaConfig& sa, wire::Sa& w) {
  std::memset(&w, 0, sizeof w);
  if (sa.selectors.size() > kMaxSelectorsPerSa) {
    return make_error("SA " + num(sa.spi) + " has " + num(sa.selectors.size()) +
                      " traffic selectors; the ring to cygnet-dp carries at most " + num(kMaxSelectorsPerSa));
  }
  w.spi = sa.spi;
  w.reqid = sa.reqid;
  w.replay_window = sa.replay_window;
  w.dir = static_cast<std::uint8_t>(sa.dir);
  w.mode = static_cast<std::uint8_t>(sa.mode);
  w.cipher = static_cast<std::uint8_t>(sa.cipher);
  w.integ = static_cast<std::uint8_t>(sa.integ);
  put_addr(sa.src, w.src_family, w.src);
  put_addr(sa.dst, w.dst_family, w.dst);
  // SecretKey holds at most kCapacity bytes, the size of the wire arrays.
  w.cipher_key_len = static_cast<std::uint8_t>(sa.cipher_key.size());
  w.integ_key_len = static_cast<std::uint8_t>(sa.integ_key.size());
  if (!sa.cipher_key.empty()) std::memcpy(w.cipher_key, sa.cipher_key.data(), sa.cipher_key.size());
  if (!sa.integ_key.empty()) std::memcpy(w.integ_key, sa.integ_key.data(), sa.integ_key.size());
  w.flags = static_cast<std::uint8_t>((sa.esn ? wire::kSaFlagEsn : 0) | (sa.anti_replay ? wire::kSaFlagAntiReplay : 0) |
                                      (sa.encap.enabled ? wire::kSaFlagEncap : 0) |
                                      (sa.copy_dscp ? wire::kSaFlagCopyDscp : 0));
  w.outer_ttl = sa.outer_ttl;
  w.n_selectors = static_cast<std::uint8_t>(sa.selectors.size());
  w.tfc_pad_to = sa.tfc_pad_to;
  w.encap_sport = sa.encap.sport;
  w.encap_dport = sa.encap.dport;
  w.soft_bytes = sa.soft.bytes;
  w.soft_packets = sa.soft.packets;
  w.soft_seconds = sa.soft.add_seconds;
  w.hard_bytes = sa.hard.bytes;
  w.hard_packets = sa.hard.packets;
  w.hard_seconds = sa.hard.add_seconds;
  for (std::size_t i = 0; i < sa.selectors.size(); ++i) put_selector(sa.selectors[i], w.sel[i]);
  return {};
}

Status decode_sa(const wire::Sa& w, SaConfig& out, std::string& why) {
  out = SaConfig{};
  if (auto s = get_dir(w.dir, out.dir, why); s != Status::ok) return s;
  if (w.mode > 1) {
    why = "mode " + num(w.mode) + " (expected 0 tunnel or 1 transport)";
    return Status::malformed;
  }
  if (w.cipher >= cipher_table().size()) {
    why = "encryption algorithm " + num(w.cipher) + " (expected 0-" + num(cipher_table().size() - 1) + ")";
    return Status::malformed;
  }
  if (w.integ >= integ_table().size()) {
    why = "integrity algorithm " + num(w.integ) + " (expected 0-" + num(integ_table().size() - 1) + ")";
    return Status::malformed;
  }
  if (w.cipher_key_len > SecretKey::kCapacity || w.integ_key_len > SecretKey::kCapacity) {
    why = "key length " + num(std::max(w.cipher_key_len, w.integ_key_len)) + " (at most " +
          num(SecretKey::kCapacity) + ")";
    return Status::malformed;
  }
  if (!all_zero(w.cipher_key + w.cipher_key_len, sizeof w.cipher_key - w.cipher_key_len) ||
      !all_zero(w.integ_key + w.integ_key_len, sizeof w.integ_key - w.integ_key_len)) {
    why = "key bytes past the key length are not zero";
    return Status::malformed;
  }
  if ((w.flags & ~wire::kSaFlagsKnown) != 0 || w.reserved0 != 0 || w.reserved1 != 0) {
    why = "SA flags " + num(w.flags) + " or reserved fields not understood";
    return Status::malformed;
  }
  if (w.n_selectors > kMaxSelectorsPerSa) {
    why = num(w.n_selectors) + " traffic selectors (at most " + num(kMaxSelectorsPerSa) + ")";
    return Status::malformed;
  }
  if (!get_addr(w.src_family, w.src, out.src, true, why, "SA source")) return Status::malformed;
  if (!get_addr(w.dst_family, w.dst, out.dst, true, why, "SA destination")) return Status::malformed;
  for (std::size_t i = w.n_selectors; i < kMaxSelectorsPerSa; ++i) {
    if (!all_zero(&w.sel[i], sizeof w.sel[i])) {
      why = "unused traffic selector " + num(i + 1) + " is not zero";
      return Status::malformed;
    }
  }
  out.selectors.resize(w.n_selectors);
  for (std::size_t i = 0; i < w.n_selectors; ++i) {
    if (!get_selector(w.sel[i], out.selectors[i], why, "traffic selector " + num(i + 1))) return Status::malformed;
  }

  out.spi = w.spi;
  out.reqid = w.reqid;
  out.replay_window = w.replay_window;
  out.mode = static_cast<Mode>(w.mode);
  out.cipher = static_cast<CipherAlg>(w.cipher);
  out.integ = static_cast<IntegAlg>(w.integ);
  // Lengths checked above, so from_bytes cannot fail.
  if (auto k = SecretKey::from_bytes({w.cipher_key, w.cipher_key_len}); k) out.cipher_key = std::move(*k);
  if (auto k = SecretKey::from_bytes({w.integ_key, w.integ_key_len}); k) out.integ_key = std::move(*k);
  out.esn = (w.flags & wire::kSaFlagEsn) != 0;
  out.anti_replay = (w.flags & wire::kSaFlagAntiReplay) != 0;
  out.encap.enabled = (w.flags & wire::kSaFlagEncap) != 0;
  out.copy_dscp = (w.flags & wire::kSaFlagCopyDscp) != 0;
  out.encap.sport = w.encap_sport;
  out.encap.dport = w.encap_dport;
  out.outer_ttl = w.outer_ttl;
  out.tfc_pad_to = w.tfc_pad_to;
  out.soft = Lifetime{w.soft_bytes, w.soft_packets, w.soft_seconds};
  out.hard = Lifetime{w.hard_bytes, w.hard_packets, w.hard_seconds};

  if (auto r = validate_sa(out); !r) {
    why = "SA " + num(out.spi) + ": " + r.error().message;
    out = SaConfig{};
    return Status::invalid;
  }
  return Status::ok;
}

Result<SaConfig> decode_sa(const wire::Sa& w) {
  SaConfig sa;
  std::string why;
  if (Status s = decode_sa(w, sa, why); s != Status::ok) {
    return make_error(std::string(status_name(s)) + ": " + why);
  }
  return sa;
}

void encode_sa_key(const SaKey& k, wire::SaKey& w) noexcept {
  std::memset(&w, 0, sizeof w);
  w.spi = k.spi;
  w.dir = static_cast<std::uint8_t>(k.dir);
  put_addr(k.dst, w.family, w.dst);
}

Status decode_sa_key(const wire::SaKey& w, SaKey& out, std::string& why) {
  if (w.reserved != 0) {
    why = "SA key reserved bytes are not zero";
    return Status::malformed;
  }
  return get_sa_key(w.spi, w.dir, w.family, w.dst, out, why);
}

// ---- policy ------------------------------------------------------------------

Result<void> encode_policy(const Policy& p, wire::Policy& w) {
  std::memset(&w, 0, sizeof w);
  w.priority = p.priority;
  w.reqid = p.reqid;
  w.dir = static_cast<std::uint8_t>(p.dir);
  w.action = static_cast<std::uint8_t>(p.action);
  put_selector(p.sel, w.sel);
  return {};
}

Status decode_policy(const wire::Policy& w, Policy& out, std::string& why) {
  out = Policy{};
  if (w.dir > 1) {
    why = "policy direction " + num(w.dir) + " (expected 0 in or 1 out)";
    return Status::malformed;
  }
  if (w.action > static_cast<std::uint8_t>(PolicyAction::trap)) {
    why = "policy action " + num(w.action) + " (expected 0-3: protect, bypass, discard, trap)";
    return Status::malformed;
  }
  if (w.reserved != 0) {
    why = "policy reserved bytes are not zero";
    return Status::malformed;
  }
  if (!get_selector(w.sel, out.sel, why, "policy selector")) return Status::malformed;
  out.priority = w.priority;
  out.reqid = w.reqid;
  out.dir = static_cast<PolicyDir>(w.dir);
  out.action = static_cast<PolicyAction>(w.action);
  if (auto r = validate_policy(out); !r) {
    why = "policy: " + r.error().message;
    return Status::invalid;
  }
  return Status::ok;
}

Result<Policy> decode_policy(const wire::Policy& w) {
  Policy p;
  std::string why;
  if (Status s = decode_policy(w, p, why); s != Status::ok) {
    return make_error(std::string(status_name(s)) + ": " + why);
  }
  return p;
}

Status decode_policy_key(const wire::PolicyKey& w, Policy& out, std::string& why) {
  out = Policy{};
  if (w.dir > 1) {
    why = "policy direction " + num(w.dir) + " (expected 0 in or 1 out)";
    return Status::malformed;
  }
  if (!all_zero(w.reserved, sizeof w.reserved)) {
    why = "policy key reserved bytes are not zero";
    return Status::malformed;
  }
  if (!get_selector(w.sel, out.sel, why, "policy selector")) return Status::malformed;
  out.dir = static_cast<PolicyDir>(w.dir);
  if (auto r = validate_selector(out.sel); !r) {
    why = "policy selector: " + r.error().message;
    return Status::invalid;
  }
  return Status::ok;
}

// ---- whole messages ------------------------------------------------------------

Result<void> encode_command(std::uint64_t id, const CommandBody& body, MsgBuf& out) {
  out.wipe();
  if (id == 0) return make_error("command id 0 is reserved");
  const MsgType t = command_type(body);
  const struct {
    std::uint64_t id;
    const CommandBody& body;
  } c{id, body};
  if (const auto* h = std::get_if<Hello>(&c.body)) {
    wire::Hello w{};
    std::memset(&w, 0, sizeof w);
    if (h->name.empty() || h->name.size() > kMaxClientName) {
      return make_error("client name must be 1-" + num(kMaxClientName) + " characters");
    }
    for (char ch : h->name)
      if (!printable(ch)) return make_error("client name must be printable ASCII");
    w.pid = h->pid;
    w.flags = h->flags;
    w.major = h->major;
    w.minor = h->minor;
    std::memcpy(w.name, h->name.data(), h->name.size());
    write_msg(out, t, c.id, w);
  } else if (const auto* a = std::get_if<SaAdd>(&c.body)) {
    Wiped<wire::Sa> w;
    if (auto r = encode_sa(a->sa, w.w); !r) return r;
    write_msg(out, t, c.id, w.w);
  } else if (const auto* u = std::get_if<SaUpdate>(&c.body)) {
    Wiped<wire::Sa> w;
    if (auto r = encode_sa(u->sa, w.w); !r) return r;
    write_msg(out, t, c.id, w.w);
  } else if (const auto* d = std::get_if<SaDelete>(&c.body)) {
    wire::SaKey w;
    encode_sa_key(d->key, w);
    write_msg(out, t, c.id, w);
  } else if (const auto* pa = std::get_if<PolicyAdd>(&c.body)) {
    wire::Policy w;
    if (auto r = encode_policy(pa->policy, w); !r) return r;
    write_msg(out, t, c.id, w);
  } else if (const auto* pd = std::get_if<PolicyDelete>(&c.body)) {
    wire::PolicyKey w;
    std::memset(&w, 0, sizeof w);
    w.dir = static_cast<std::uint8_t>(pd->policy.dir);
    put_selector(pd->policy.sel, w.sel);
    write_msg(out, t, c.id, w);
  } else if (const auto* bb = std::get_if<BatchBegin>(&c.body)) {
    wire::BatchBegin w{bb->expected, 0};
    write_msg(out, t, c.id, w);
  } else if (std::holds_alternative<BatchCommit>(c.body) || std::holds_alternative<BatchAbort>(c.body)) {
    write_msg(out, t, c.id, nullptr, 0);
  } else if (const auto* q = std::get_if<CountersQuery>(&c.body)) {
    wire::CountersQuery w;
    std::memset(&w, 0, sizeof w);
    w.scope = static_cast<std::uint8_t>(q->scope);
    if (q->scope == CounterScope::one) {
      w.spi = q->sa.spi;
      w.dir = static_cast<std::uint8_t>(q->sa.dir);
      put_addr(q->sa.dst, w.family, w.dst);
    }
    w.cursor = q->cursor;
    w.max = q->max;
    write_msg(out, t, c.id, w);
  }
  return {};
}

Status parse_command(std::span<const std::uint8_t> raw, Command& out, std::uint64_t& id, std::uint16_t& type,
                     std::string& why) {
  id = 0;
  type = 0;
  why.clear();
  if (raw.size() < kMsgHeaderSize) {
    why = "message of " + num(raw.size()) + " bytes has no room for its header";
    return Status::bad_length;
  }
  wire::Header h;
  std::memcpy(&h, raw.data(), sizeof h);
  id = h.id;
  type = h.type;
  if (h.length < kMsgHeaderSize || h.length > raw.size()) {
    why = "message length " + num(h.length) + " outside " + num(kMsgHeaderSize) + "-" + num(raw.size());
    return Status::bad_length;
  }
  if (h.version != kMsgVersion) {
    why = "message version " + num(h.version) + " (expected " + num(kMsgVersion) + ")";
    return Status::bad_version;
  }
  const MsgInfo* info = msg_info(h.type);
  if (info == nullptr) {
    why = "message type " + num(h.type) + " is not a command";
    return Status::unknown_type;
  }
  if (!info->command) {
    why = std::string(info->name) + " is an event, not a command";
    return Status::unknown_type;
  }
  if (h.length != kMsgHeaderSize + info->payload_size) {
    why = std::string(info->name) + " is " + num(kMsgHeaderSize + info->payload_size) + " bytes, got " +
          num(h.length);
    return Status::bad_length;
  }
  if (h.id == 0) {
    why = "command id 0 is reserved";
    return Status::malformed;
  }
  out.id = h.id;
  Status s = Status::ok;
  switch (info->type) {
    case MsgType::hello: {
      wire::Hello w;
      read_payload(raw, w);
      Hello v;
      s = get_hello(w, v, why);
      out.body = std::move(v);
      break;
    }
    case MsgType::sa_add:
    case MsgType::sa_update: {
      Wiped<wire::Sa> w;
      read_payload(raw, w.w);
      SaConfig sa;
      s = decode_sa(w.w, sa, why);
      if (info->type == MsgType::sa_add) {
        out.body = SaAdd{std::move(sa)};
      } else {
        out.body = SaUpdate{std::move(sa)};
      }
      break;
    }
    case MsgType::sa_delete: {
      wire::SaKey w;
      read_payload(raw, w);
      SaDelete d;
      s = decode_sa_key(w, d.key, why);
      out.body = d;
      break;
    }
    case MsgType::policy_add: {
      wire::Policy w;
      read_payload(raw, w);
      PolicyAdd p;
      s = decode_policy(w, p.policy, why);
      out.body = p;
      break;
    }
    case MsgType::policy_delete: {
      wire::PolicyKey w;
      read_payload(raw, w);
      PolicyDelete p;
      s = decode_policy_key(w, p.policy, why);
      out.body = p;
      break;
    }
    case MsgType::batch_begin: {
      wire::BatchBegin w;
      read_payload(raw, w);
      if (w.reserved != 0) {
        why = "batch_begin reserved bytes are not zero";
        s = Status::malformed;
      }
      out.body = BatchBegin{w.expected};
      break;
    }
    case MsgType::batch_commit:
      out.body = BatchCommit{};
      break;
    case MsgType::batch_abort:
      out.body = BatchAbort{};
      break;
    case MsgType::counters_query: {
      wire::CountersQuery w;
      read_payload(raw, w);
      CountersQuery q;
      s = get_counters_query(w, q, why);
      out.body = q;
      break;
    }
    default:
      why = std::string(info->name) + " is not a command";
      s = Status::unknown_type;
  }
  if (s != Status::ok) out.body = BatchAbort{};  // drop whatever was half-decoded (and its keys)
  return s;
}

Result<void> encode_event(std::uint64_t id, const EventBody& body, MsgBuf& out) {
  out.wipe();
  if (id == 0) return make_error("event id 0 is reserved");
  const MsgType t = event_type(body);
  const struct {
    std::uint64_t id;
    const EventBody& body;
  } e{id, body};
  if (const auto* a = std::get_if<Ack>(&e.body)) {
    wire::Ack w;
    std::memset(&w, 0, sizeof w);
    w.cmd_id = a->cmd_id;
    w.value = a->value;
    w.status = static_cast<std::uint16_t>(a->status);
    w.cmd_type = a->cmd_type;
    const std::string text = ack_text(a->text);
    w.text_len = static_cast<std::uint16_t>(text.size());
    std::memcpy(w.text, text.data(), text.size());
    write_msg(out, t, e.id, w);
  } else if (const auto* x = std::get_if<SaExpired>(&e.body)) {
    wire::SaExpired w;
    std::memset(&w, 0, sizeof w);
    w.spi = x->sa.spi;
    w.dir = static_cast<std::uint8_t>(x->sa.dir);
    put_addr(x->sa.dst, w.family, w.dst);
    w.which = static_cast<std::uint8_t>(x->which);
    w.reqid = x->reqid;
    w.bytes = x->bytes;
    w.packets = x->packets;
    write_msg(out, t, e.id, w);
  } else if (const auto* q = std::get_if<SeqExhausted>(&e.body)) {
    wire::SeqExhausted w;
    std::memset(&w, 0, sizeof w);
    w.spi = q->sa.spi;
    w.dir = static_cast<std::uint8_t>(q->sa.dir);
    put_addr(q->sa.dst, w.family, w.dst);
    w.reqid = q->reqid;
    write_msg(out, t, e.id, w);
  } else if (const auto* aq = std::get_if<Acquire>(&e.body)) {
    wire::Acquire w;
    std::memset(&w, 0, sizeof w);
    if (aq->flow.src.family != aq->flow.dst.family) {
      return make_error("ACQUIRE flow source and destination families differ");
    }
    w.reqid = aq->reqid;
    w.policy_index = aq->policy_index;
    std::uint8_t fam2 = 0;
    put_addr(aq->flow.src, w.family, w.src);
    put_addr(aq->flow.dst, fam2, w.dst);
    w.proto = aq->flow.proto;
    w.sport = aq->flow.sport;
    w.dport = aq->flow.dport;
    w.flags = aq->flow.opaque_ports ? 1 : 0;
    write_msg(out, t, e.id, w);
  } else if (const auto* n = std::get_if<NatMappingChanged>(&e.body)) {
    wire::NatChange w;
    std::memset(&w, 0, sizeof w);
    w.spi = n->sa.spi;
    w.reqid = n->reqid;
    w.dir = static_cast<std::uint8_t>(n->sa.dir);
    put_addr(n->sa.dst, w.family, w.dst);
    put_addr(n->old_addr, w.old_family, w.old_addr);
    put_addr(n->new_addr, w.new_family, w.new_addr);
    w.old_port = n->old_port;
    w.new_port = n->new_port;
    write_msg(out, t, e.id, w);
  } else if (const auto* c = std::get_if<Counters>(&e.body)) {
    wire::Counters w;
    std::memset(&w, 0, sizeof w);
    if (c->c.n_drops > kMaxDropCounters) {
      return make_error("counters carry at most " + num(kMaxDropCounters) + " drop reasons, got " +
                        num(c->c.n_drops));
    }
    w.query_id = c->query_id;
    w.spi = c->c.sa.spi;
    w.dir = static_cast<std::uint8_t>(c->c.sa.dir);
    put_addr(c->c.sa.dst, w.family, w.dst);
    w.n_drops = c->c.n_drops;
    w.reqid = c->c.reqid;
    w.packets = c->c.packets;
    w.bytes = c->c.bytes;
    for (std::size_t i = 0; i < c->c.n_drops; ++i) w.drops[i] = c->c.drops[i];
    write_msg(out, t, e.id, w);
  } else if (const auto* l = std::get_if<EventsLost>(&e.body)) {
    wire::EventsLost w{l->count};
    write_msg(out, t, e.id, w);
  }
  return {};
}

Status parse_event(std::span<const std::uint8_t> raw, Event& out, std::string& why) {
  why.clear();
  if (raw.size() < kMsgHeaderSize) {
    why = "event of " + num(raw.size()) + " bytes has no room for its header";
    return Status::bad_length;
  }
  wire::Header h;
  std::memcpy(&h, raw.data(), sizeof h);
  if (h.length < kMsgHeaderSize || h.length > raw.size()) {
    why = "event length " + num(h.length) + " outside " + num(kMsgHeaderSize) + "-" + num(raw.size());
    return Status::bad_length;
  }
  if (h.version != kMsgVersion) {
    why = "event version " + num(h.version) + " (expected " + num(kMsgVersion) + ")";
    return Status::bad_version;
  }
  const MsgInfo* info = msg_info(h.type);
  if (info == nullptr || info->command) {
    why = "message type " + num(h.type) + " is not an event";
    return Status::unknown_type;
  }
  if (h.length != kMsgHeaderSize + info->payload_size) {
    why = std::string(info->name) + " is " + num(kMsgHeaderSize + info->payload_size) + " bytes, got " +
          num(h.length);
    return Status::bad_length;
  }
  if (h.id == 0) {
    why = "event id 0 is reserved";
    return Status::malformed;
  }
  out.id = h.id;
  switch (info->type) {
    case MsgType::ack: {
      wire::Ack w;
      read_payload(raw, w);
      if (!status_valid(w.status)) {
        why = "ack status " + num(w.status) + " unknown";
        return Status::malformed;
      }
      if (w.text_len > kMaxAckText || w.reserved != 0 || !all_zero(w.text + w.text_len, kMaxAckText - w.text_len)) {
        why = "ack text length " + num(w.text_len) + " or padding invalid";
        return Status::malformed;
      }
      for (std::size_t i = 0; i < w.text_len; ++i) {
        if (!printable(w.text[i])) {
          why = "ack text has a non-printable byte";
          return Status::malformed;
        }
      }
      out.body = Ack{w.cmd_id, w.value, static_cast<Status>(w.status), w.cmd_type, std::string(w.text, w.text_len)};
      return Status::ok;
    }
    case MsgType::sa_soft_expired:
    case MsgType::sa_hard_expired: {
      wire::SaExpired w;
      read_payload(raw, w);
      SaExpired v;
      v.hard = info->type == MsgType::sa_hard_expired;
      if (w.which != 1 && w.which != 2) {
        why = "expiry kind " + num(w.which) + " (expected 1 bytes or 2 packets)";
        return Status::malformed;
      }
      if (w.reserved0 != 0 || w.reserved1 != 0) {
        why = "expiry reserved bytes are not zero";
        return Status::malformed;
      }
      if (Status s = get_sa_key(w.spi, w.dir, w.family, w.dst, v.sa, why); s != Status::ok) return s;
      v.which = static_cast<ExpiryKind>(w.which);
      v.reqid = w.reqid;
      v.bytes = w.bytes;
      v.packets = w.packets;
      out.body = v;
      return Status::ok;
    }
    case MsgType::seq_exhausted: {
      wire::SeqExhausted w;
      read_payload(raw, w);
      SeqExhausted v;
      if (w.reserved0 != 0 || w.reserved1 != 0) {
        why = "seq_exhausted reserved bytes are not zero";
        return Status::malformed;
      }
      if (Status s = get_sa_key(w.spi, w.dir, w.family, w.dst, v.sa, why); s != Status::ok) return s;
      v.reqid = w.reqid;
      out.body = v;
      return Status::ok;
    }
    case MsgType::acquire: {
      wire::Acquire w;
      read_payload(raw, w);
      Acquire v;
      if ((w.flags & ~1u) != 0 || w.reserved != 0) {
        why = "acquire flags or reserved bytes not understood";
        return Status::malformed;
      }
      if (!get_addr(w.family, w.src, v.flow.src, false, why, "acquire source") ||
          !get_addr(w.family, w.dst, v.flow.dst, false, why, "acquire destination")) {
        return Status::malformed;
      }
      v.reqid = w.reqid;
      v.policy_index = w.policy_index;
      v.flow.proto = w.proto;
      v.flow.sport = w.sport;
      v.flow.dport = w.dport;
      v.flow.opaque_ports = (w.flags & 1u) != 0;
      out.body = v;
      return Status::ok;
    }
    case MsgType::nat_mapping_changed: {
      wire::NatChange w;
      read_payload(raw, w);
      NatMappingChanged v;
      if (Status s = get_sa_key(w.spi, w.dir, w.family, w.dst, v.sa, why); s != Status::ok) return s;
      if (!get_addr(w.old_family, w.old_addr, v.old_addr, false, why, "old NAT address") ||
          !get_addr(w.new_family, w.new_addr, v.new_addr, false, why, "new NAT address")) {
        return Status::malformed;
      }
      v.reqid = w.reqid;
      v.old_port = w.old_port;
      v.new_port = w.new_port;
      out.body = v;
      return Status::ok;
    }
    case MsgType::counters: {
      wire::Counters w;
      read_payload(raw, w);
      Counters v;
      if (w.n_drops > kMaxDropCounters || w.reserved0 != 0 || w.reserved1 != 0) {
        why = "counters carry " + num(w.n_drops) + " drop reasons (at most " + num(kMaxDropCounters) +
              ") or non-zero reserved bytes";
        return Status::malformed;
      }
      if (!all_zero(w.drops + w.n_drops, (kMaxDropCounters - w.n_drops) * sizeof(std::uint64_t))) {
        why = "counters past n_drops are not zero";
        return Status::malformed;
      }
      if (Status s = get_sa_key(w.spi, w.dir, w.family, w.dst, v.c.sa, why); s != Status::ok) return s;
      v.query_id = w.query_id;
      v.c.reqid = w.reqid;
      v.c.packets = w.packets;
      v.c.bytes = w.bytes;
      v.c.n_drops = w.n_drops;
      for (std::size_t i = 0; i < w.n_drops; ++i) v.c.drops[i] = w.drops[i];
      out.body = v;
      return Status::ok;
    }
    case MsgType::events_lost: {
      wire::EventsLost w;
      read_payload(raw, w);
      out.body = EventsLost{w.count};
      return Status::ok;
    }
    default:
      break;
  }
  why = std::string(info->name) + " is not an event";
  return Status::unknown_type;
}

}  // namespace cygnet::shm
