// cygnet-ike's config loader (docs/ike-config.md).
#include "cp/ike/config/config.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <libconfig.h++>
#include <span>
#include <utility>

#include "cp/config.h"

namespace cygnet::ike::cfg {

namespace {

using cygnet::cfg::detail::check_known;
using libconfig::Setting;

Error err_at(const Setting& s, const std::string& msg) { return cygnet::cfg::detail::err_at(s, "", msg); }
Error err_at(const Setting& s, const std::string& field, const std::string& msg) {
  return cygnet::cfg::detail::err_at(s, field, msg);
}

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// ---- proposal tokens (strongSwan's names) ----

struct EncrTok {
  std::string_view name;
  EncrId id;
  std::uint16_t bits;
};
struct IntegTok {
  std::string_view name;
  IntegId id;
  PrfId prf;  // the PRF an IKE proposal without one gets (strongSwan does the same)
};
struct PrfTok {
  std::string_view name;
  PrfId id;
};
struct GroupTok {
  std::string_view name;
  KeGroup id;
};

constexpr std::array<EncrTok, 5> kEncr = {{
    {"aes128", EncrId::aes_cbc, 128},
    {"aes256", EncrId::aes_cbc, 256},
    {"aes128gcm16", EncrId::aes_gcm_16, 128},
    {"aes256gcm16", EncrId::aes_gcm_16, 256},
    {"chacha20poly1305", EncrId::chacha20_poly1305, 256},
}};
constexpr std::array<IntegTok, 3> kInteg = {{
    {"sha256", IntegId::hmac_sha2_256_128, PrfId::hmac_sha2_256},
    {"sha384", IntegId::hmac_sha2_384_192, PrfId::hmac_sha2_384},
    {"sha512", IntegId::hmac_sha2_512_256, PrfId::hmac_sha2_512},
}};
constexpr std::array<PrfTok, 3> kPrf = {{
    {"prfsha256", PrfId::hmac_sha2_256},
    {"prfsha384", PrfId::hmac_sha2_384},
    {"prfsha512", PrfId::hmac_sha2_512},
}};
// The first name of a group is the one printed.
constexpr std::array<GroupTok, 6> kGroup = {{
    {"modp2048", KeGroup::modp2048},
    {"ecp256", KeGroup::ecp256},
    {"ecp384", KeGroup::ecp384},
    {"ecp521", KeGroup::ecp521},
    {"x25519", KeGroup::curve25519},
    {"curve25519", KeGroup::curve25519},
}};

template <typename T, std::size_t N>
std::string names_of(const std::array<T, N>& a) {
  std::string out;
  for (const auto& t : a) out += (out.empty() ? "" : ", ") + std::string(t.name);
  return out;
}

template <typename T, std::size_t N>
const T* find_tok(const std::array<T, N>& a, std::string_view n) {
  for (const auto& t : a)
    if (t.name == n) return &t;
  return nullptr;
}

bool aead(EncrId e) { return e != EncrId::aes_cbc; }

template <typename T>
void push_unique(std::vector<T>& v, const T& x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}

struct Tokens {
  std::vector<const EncrTok*> encr;
  std::vector<const IntegTok*> integ;
  std::vector<const PrfTok*> prf;
  std::vector<const GroupTok*> group;
  std::vector<bool> esn;
  std::string first_prf, first_group, first_esn;  // for "does not apply" messages
};

std::string accepted(bool ike) {
  std::string s = "encryption: " + names_of(kEncr) + "; integrity: " + names_of(kInteg);
  if (ike) return s + "; PRF: " + names_of(kPrf) + "; key exchange: " + names_of(kGroup);
  return s + "; esn, noesn";
}

Result<Tokens> split_tokens(std::string_view text, bool ike) {
  const std::string kind = ike ? "IKE" : "ESP";
  const std::string shown(text);
  if (text.empty()) return make_error("empty " + kind + " proposal (expected e.g. " +
                                      (ike ? "aes128gcm16-prfsha256-x25519" : "aes128gcm16") + ")");
  Tokens t;
  std::size_t start = 0;
  while (true) {
    std::size_t dash = text.find('-', start);
    std::string_view raw = text.substr(start, dash == std::string_view::npos ? std::string_view::npos : dash - start);
    std::string tok(raw);
    for (auto& c : tok) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (tok.empty()) {
      return make_error(kind + " proposal '" + shown + "' has an empty algorithm name ('-' at an end or twice)");
    }
    if (auto* e = find_tok(kEncr, tok)) {
      push_unique(t.encr, e);
    } else if (auto* i = find_tok(kInteg, tok)) {
      push_unique(t.integ, i);
    } else if (auto* p = find_tok(kPrf, tok)) {
      push_unique(t.prf, p);
      if (t.first_prf.empty()) t.first_prf = tok;
    } else if (auto* g = find_tok(kGroup, tok)) {
      push_unique(t.group, g);
      if (t.first_group.empty()) t.first_group = tok;
    } else if (tok == "esn" || tok == "noesn") {
      push_unique(t.esn, tok == "esn");
      if (t.first_esn.empty()) t.first_esn = tok;
    } else {
      return make_error("unknown algorithm '" + std::string(raw) + "' in " + kind + " proposal '" + shown +
                        "' (accepted: " + accepted(ike) + ")");
    }
    if (dash == std::string_view::npos) break;
    start = dash + 1;
  }
  if (t.encr.empty()) {
    return make_error(kind + " proposal '" + shown + "' has no encryption algorithm (expected one of: " +
                      names_of(kEncr) + ")");
  }
  const bool any_aead = std::any_of(t.encr.begin(), t.encr.end(), [](auto* e) { return aead(e->id); });
  const bool any_cbc = std::any_of(t.encr.begin(), t.encr.end(), [](auto* e) { return !aead(e->id); });
  if (any_aead && any_cbc) {
    return make_error(kind + " proposal '" + shown +
                      "' mixes AEAD and non-AEAD ciphers (write them as separate proposals, e.g. "
                      "\"aes128gcm16-...\", \"aes128-sha256-...\")");
  }
  if (any_aead && !t.integ.empty()) {
    return make_error(kind + " proposal '" + shown + "': AEAD cipher " + std::string(t.encr[0]->name) +
                      " takes no integrity algorithm (remove '" + std::string(t.integ[0]->name) + "')");
  }
  if (any_cbc && t.integ.empty()) {
    return make_error(kind + " proposal '" + shown + "': " + std::string(t.encr[0]->name) +
                      " (AES-CBC) needs an integrity algorithm (one of: " + names_of(kInteg) + ")");
  }
  return t;
}

}  // namespace

Result<std::vector<IkeSuite>> parse_ike_proposal(std::string_view text) {
  auto t = split_tokens(text, true);
  if (!t) return t.error();
  const std::string shown(text);
  if (!t->esn.empty()) {
    return make_error("IKE proposal '" + shown + "': '" + t->first_esn + "' applies to ESP proposals only");
  }
  if (t->group.empty()) {
    return make_error("IKE proposal '" + shown + "' has no key exchange group (expected one of: " +
                      names_of(kGroup) + ")");
  }
  const bool is_aead = aead(t->encr[0]->id);
  if (is_aead && t->prf.empty()) {
    return make_error("IKE proposal '" + shown + "': an AEAD proposal needs a PRF (one of: " + names_of(kPrf) +
                      ", e.g. " + std::string(t->encr[0]->name) + "-prfsha256-" + std::string(t->group[0]->name) +
                      ")");
  }
  std::vector<IkeSuite> out;
  for (auto* e : t->encr) {
    std::vector<const IntegTok*> integs = t->integ;
    if (integs.empty()) integs.push_back(nullptr);
    for (auto* i : integs) {
      std::vector<PrfId> prfs;
      if (t->prf.empty()) {
        prfs.push_back(i->prf);  // non-AEAD without a PRF: the PRF follows the integrity algorithm
      } else {
        for (auto* p : t->prf) prfs.push_back(p->id);
      }
      for (PrfId p : prfs) {
        for (auto* g : t->group) {
          push_unique(out, IkeSuite{e->id, e->bits, i ? i->id : IntegId::none, p, g->id});
        }
      }
    }
  }
  if (out.size() > kMaxSuites) {
    return make_error("IKE proposal '" + shown + "' expands to " + std::to_string(out.size()) +
                      " combinations (at most " + std::to_string(kMaxSuites) + ")");
  }
  return out;
}

Result<std::vector<EspSuite>> parse_esp_proposal(std::string_view text) {
  auto t = split_tokens(text, false);
  if (!t) return t.error();
  const std::string shown(text);
  if (!t->prf.empty()) {
    return make_error("ESP proposal '" + shown + "': '" + t->first_prf +
                      "' is a PRF, which applies to IKE proposals only");
  }
  // A key exchange group: PFS for the CHILD SAs' rekeys (RFC 7296 1.3.1).
  std::vector<std::optional<KeGroup>> groups;
  for (auto* g : t->group) groups.emplace_back(g->id);
  if (groups.empty()) groups.emplace_back();
  std::vector<bool> esns = t->esn.empty() ? std::vector<bool>{false} : t->esn;
  std::vector<EspSuite> out;
  for (auto* e : t->encr) {
    std::vector<const IntegTok*> integs = t->integ;
    if (integs.empty()) integs.push_back(nullptr);
    for (auto* i : integs) {
      for (bool esn : esns) {
        for (const auto& g : groups) push_unique(out, EspSuite{e->id, e->bits, i ? i->id : IntegId::none, esn, g});
      }
    }
  }
  if (out.size() > kMaxSuites) {
    return make_error("ESP proposal '" + shown + "' expands to " + std::to_string(out.size()) +
                      " combinations (at most " + std::to_string(kMaxSuites) + ")");
  }
  return out;
}

namespace {

std::string encr_tok_name(EncrId e, std::uint16_t bits) {
  for (const auto& t : kEncr)
    if (t.id == e && t.bits == bits) return std::string(t.name);
  return "encr" + std::to_string(static_cast<unsigned>(e)) + "_" + std::to_string(bits);
}
std::string integ_tok_name(IntegId i) {
  for (const auto& t : kInteg)
    if (t.id == i) return std::string(t.name);
  return "integ" + std::to_string(static_cast<unsigned>(i));
}
std::string prf_tok_name(PrfId p) {
  for (const auto& t : kPrf)
    if (t.id == p) return std::string(t.name);
  return "prf" + std::to_string(static_cast<unsigned>(p));
}
std::string group_tok_name(KeGroup g) {
  for (const auto& t : kGroup)
    if (t.id == g) return std::string(t.name);
  return "ke" + std::to_string(static_cast<unsigned>(g));
}

}  // namespace

std::string to_string(const IkeSuite& s) {
  std::string out = encr_tok_name(s.encr, s.encr_key_bits);
  if (s.integ != IntegId::none) out += "-" + integ_tok_name(s.integ);
  return out + "-" + prf_tok_name(s.prf) + "-" + group_tok_name(s.group);
}

std::string to_string(const EspSuite& s) {
  std::string out = encr_tok_name(s.encr, s.encr_key_bits);
  if (s.integ != IntegId::none) out += "-" + integ_tok_name(s.integ);
  if (s.group) out += "-" + group_tok_name(*s.group);
  return out + (s.esn ? "-esn" : "");
}

namespace {

constexpr std::array<std::string_view, 3> kDefaultIke = {"aes128gcm16-prfsha256-x25519",
                                                         "aes256gcm16-prfsha384-ecp384",
                                                         "aes128-sha256-prfsha256-modp2048"};
constexpr std::array<std::string_view, 3> kDefaultEsp = {"aes128gcm16", "aes256gcm16", "aes128-sha256"};

}  // namespace

std::vector<IkeSuite> default_ike_suites() {
  std::vector<IkeSuite> v;
  for (auto p : kDefaultIke) {
    auto r = parse_ike_proposal(p);
    if (r) v.insert(v.end(), r->begin(), r->end());
  }
  return v;
}

std::vector<EspSuite> default_esp_suites() {
  std::vector<EspSuite> v;
  for (auto p : kDefaultEsp) {
    auto r = parse_esp_proposal(p);
    if (r) v.insert(v.end(), r->begin(), r->end());
  }
  return v;
}

// ---- traffic selectors ----

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

Result<unsigned> small_uint(std::string_view s, unsigned max) {
  if (s.empty() || s.size() > 3 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return make_error("");
  }
  unsigned v = 0;
  for (char c : s) v = v * 10 + static_cast<unsigned>(c - '0');
  if (v > max) return make_error("");
  return v;
}

// ICMP "type", "type/code" or "type-type" in the 16-bit TS port field
// (type << 8 | code, RFC 7296 3.13.1 / RFC 4301 4.4.1.3).
Result<PortRange> parse_icmp_ports(std::string_view s) {
  const auto bad = [&] {
    return make_error("'" + std::string(s) +
                      "' is not an ICMP type selector (expected 'any', a type '8', a type and code '8/0' or a "
                      "type range '0-8', each 0-255)");
  };
  if (s == "any") return PortRange{};
  if (auto slash = s.find('/'); slash != std::string_view::npos) {
    auto t = small_uint(s.substr(0, slash), 255);
    auto c = small_uint(s.substr(slash + 1), 255);
    if (!t || !c) return bad();
    auto v = static_cast<std::uint16_t>(*t << 8 | *c);
    return PortRange{v, v};
  }
  auto dash = s.find('-');
  auto lo = small_uint(s.substr(0, dash), 255);
  auto hi = dash == std::string_view::npos ? lo : small_uint(s.substr(dash + 1), 255);
  if (!lo || !hi) return bad();
  if (*lo > *hi) return make_error("ICMP type range '" + std::string(s) + "' has its low end above its high end");
  return PortRange{static_cast<std::uint16_t>(*lo << 8), static_cast<std::uint16_t>(*hi << 8 | 0xff)};
}

Result<TsConfig> make_ts(std::string_view prefix, std::string_view proto, std::string_view ports, bool has_proto,
                         bool has_ports) {
  TsConfig ts;
  auto p = IpPrefix::parse(prefix);
  if (!p) return make_error(p.error().message + " (expected a prefix like 10.1.0.0/24 or 2001:db8:1::/48)");
  ts.prefix = *p;
  if (has_proto) {
    auto pr = proto_from_name(proto);
    if (!pr) return make_error(pr.error().message);
    ts.proto = *pr;
  }
  if (has_ports) {
    if (ts.proto == kProtoAny) {
      return make_error("ports '" + std::string(ports) + "' need a protocol (expected e.g. 10.1.0.0/24,tcp,443)");
    }
    if (proto_is_icmp(ts.proto)) {
      auto r = parse_icmp_ports(ports);
      if (!r) return r.error();
      ts.ports = *r;
    } else if (proto_has_ports(ts.proto)) {
      auto r = PortRange::parse(ports);
      if (!r) return r.error();
      ts.ports = *r;
    } else {
      return make_error("ports need protocol tcp, udp, sctp, udplite, icmp or icmpv6 (protocol is " +
                        std::to_string(ts.proto) + ")");
    }
  }
  if (ts.proto == kProtoIcmp && ts.prefix.family() == Family::ipv6) {
    return make_error("protocol icmp with the IPv6 prefix " + ts.prefix.to_string() + ": use icmpv6");
  }
  if (ts.proto == kProtoIcmpv6 && ts.prefix.family() == Family::ipv4) {
    return make_error("protocol icmpv6 with the IPv4 prefix " + ts.prefix.to_string() + ": use icmp");
  }
  return ts;
}

}  // namespace

Result<TsConfig> parse_ts(std::string_view text) {
  std::array<std::string_view, 3> parts{};
  std::size_t n = 0, start = 0;
  while (true) {
    auto comma = text.find(',', start);
    if (n == 3) {
      return make_error("'" + std::string(text) +
                        "' has more than three fields (expected \"prefix[,proto[,ports]]\", e.g. 10.1.0.0/24,tcp,443)");
    }
    parts[n++] = trim(text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (parts[i].empty()) {
      return make_error("'" + std::string(text) +
                        "' has an empty field (expected \"prefix[,proto[,ports]]\", e.g. 10.1.0.0/24,tcp,443)");
    }
  }
  return make_ts(parts[0], parts[1], parts[2], n >= 2, n >= 3);
}

// ---- the loader ----

namespace {

struct Ctx {
  std::string file;  // the name errors and warnings use
  std::vector<std::string> warnings;

  void warn(const Setting& s, const std::string& msg) {
    std::string m = err_at(s, msg).message;
    if (m.rfind("<string>:", 0) == 0) m = file + m.substr(8);
    warnings.push_back(std::move(m));
  }
};

bool valid_name(std::string_view n, std::size_t max, bool dot) {
  if (n.empty() || n.size() > max) return false;
  return std::all_of(n.begin(), n.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || (dot && c == '.');
  });
}

Result<std::string> get_string(const Setting& g, const char* name, bool required, const std::string& expected,
                               const std::string& dflt = {}) {
  if (!g.exists(name)) {
    if (required) return err_at(g, name, "missing (expected " + expected + ")");
    return dflt;
  }
  const Setting& s = g[name];
  if (s.getType() != Setting::TypeString) return err_at(s, "expected " + expected + " in double quotes");
  return std::string(s.c_str());
}

template <typename T>
Result<void> get_uint(const Setting& g, const char* name, std::uint64_t min, std::uint64_t max, T& out,
                      const char* unit = "") {
  if (!g.exists(name)) return {};
  const Setting& s = g[name];
  long long v = 0;
  if (s.getType() == Setting::TypeInt) {
    v = static_cast<int>(s);
  } else if (s.getType() == Setting::TypeInt64) {
    v = static_cast<long long>(s);
  } else {
    return err_at(s, "expected an integer" + std::string(unit) + " in " + std::to_string(min) + "-" +
                         std::to_string(max));
  }
  if (v < 0 || static_cast<std::uint64_t>(v) < min || static_cast<std::uint64_t>(v) > max) {
    return err_at(s, "value " + std::to_string(v) + " out of range " + std::to_string(min) + "-" +
                         std::to_string(max) + std::string(unit));
  }
  out = static_cast<T>(v);
  return {};
}

Result<void> get_bool(const Setting& g, const char* name, bool& out) {
  if (!g.exists(name)) return {};
  const Setting& s = g[name];
  if (s.getType() != Setting::TypeBoolean) return err_at(s, "expected true or false");
  out = static_cast<bool>(s);
  return {};
}

// A string, or an array/list of them; `what` describes one element. Returns
// the settings of the elements (one for a plain string).
Result<std::vector<const Setting*>> get_strings(const Setting& g, const char* name, const std::string& what,
                                                bool groups_too = false) {
  std::vector<const Setting*> out;
  const Setting& s = g[name];
  if (s.getType() == Setting::TypeString) {
    out.push_back(&s);
    return out;
  }
  if (!s.isArray() && !s.isList()) return err_at(s, "expected " + what + " or a list [ ... ] of them");
  if (s.getLength() == 0) return err_at(s, "empty list (expected at least one " + what + "; or leave it out)");
  for (int i = 0; i < s.getLength(); ++i) {
    const Setting& e = s[i];
    if (e.getType() != Setting::TypeString && !(groups_too && e.isGroup())) {
      return err_at(e, "expected " + what + (groups_too ? " or a group { prefix = ...; }" : "") + " in double quotes");
    }
    out.push_back(&e);
  }
  return out;
}

Result<IpAddress> parse_host_address(const Setting& s, const std::string& what) {
  auto a = IpAddress::parse(s.c_str());
  if (!a) return err_at(s, a.error().message + " (expected " + what + ")");
  if (a->is_unspecified()) return err_at(s, a->to_string() + " is the unspecified address (expected " + what + ")");
  const bool mc = a->family == Family::ipv4 ? (a->bytes[0] & 0xf0) == 0xe0 : a->bytes[0] == 0xff;
  if (mc) return err_at(s, a->to_string() + " is a multicast address (expected " + what + ")");
  return *a;
}

// A connection's "ike" or "esp" list: each string expands to suites, in
// order, repeats dropped (with a warning for a string that adds nothing).
template <typename Suite>
Result<std::vector<Suite>> parse_suite_list(const Setting& c, Ctx& ctx, const char* name, const std::string& expected,
                                            Result<std::vector<Suite>> (*parse)(std::string_view),
                                            const char* what, const char* why_limit) {
  auto els = get_strings(c, name, expected);
  if (!els) return els.error();
  std::vector<Suite> out;
  for (const Setting* e : *els) {
    auto r = parse(e->c_str());
    if (!r) return err_at(*e, r.error().message);
    std::size_t added = 0;
    for (const auto& s : *r) {
      if (std::find(out.begin(), out.end(), s) == out.end()) {
        out.push_back(s);
        ++added;
      }
    }
    if (added == 0) ctx.warn(*e, "proposal '" + std::string(e->c_str()) + "' adds nothing: its suites are already listed");
  }
  if (out.size() > kMaxSuites) {
    return err_at(c[name], std::to_string(out.size()) + " " + what + " (at most " + std::to_string(kMaxSuites) +
                               why_limit + ")");
  }
  return out;
}

Result<std::vector<IkeSuite>> parse_ike_list(const Setting& c, Ctx& ctx) {
  if (!c.exists("ike")) return default_ike_suites();
  return parse_suite_list<IkeSuite>(c, ctx, "ike", "an IKE proposal string like \"aes128gcm16-prfsha256-x25519\"",
                                    parse_ike_proposal, "IKE suites",
                                    ": each is a proposal in IKE_SA_INIT, which cannot be fragmented");
}

Result<std::vector<EspSuite>> parse_esp_list(const Setting& c, Ctx& ctx) {
  if (!c.exists("esp")) return default_esp_suites();
  return parse_suite_list<EspSuite>(c, ctx, "esp", "an ESP proposal string like \"aes128gcm16\"", parse_esp_proposal,
                                    "ESP suites", "");
}

Result<TsConfig> parse_ts_group(const Setting& g) {
  if (auto r = check_known(g, {"prefix", "proto", "ports"}); !r) return r.error();
  auto prefix = get_string(g, "prefix", true, "a prefix like \"10.1.0.0/24\"");
  if (!prefix) return prefix.error();
  auto proto = get_string(g, "proto", false, "a protocol name (tcp, udp, icmp, ...) or number");
  if (!proto) {
    // proto = 6; is fine too.
    if (g["proto"].getType() != Setting::TypeInt) return proto.error();
    proto = std::to_string(static_cast<int>(g["proto"]));
  }
  std::string ports;
  if (g.exists("ports")) {
    const Setting& p = g["ports"];
    if (p.getType() == Setting::TypeInt) {
      ports = std::to_string(static_cast<int>(p));
    } else if (p.getType() == Setting::TypeString) {
      ports = p.c_str();
    } else {
      return err_at(p, "expected a port or range like \"443\" or \"1024-65535\"");
    }
  }
  auto ts = make_ts(*prefix, *proto, ports, g.exists("proto"), g.exists("ports"));
  if (!ts) return err_at(g, ts.error().message);
  return ts;
}

Result<std::vector<TsConfig>> parse_ts_list(const Setting& c, const char* name) {
  std::vector<TsConfig> out;
  if (!c.exists(name)) return out;
  auto els = get_strings(c, name, "a traffic selector \"prefix[,proto[,ports]]\"", true);
  if (!els) return els.error();
  for (const Setting* e : *els) {
    Result<TsConfig> ts = e->isGroup() ? parse_ts_group(*e) : parse_ts(e->c_str());
    if (!ts) return e->isGroup() ? ts.error() : err_at(*e, ts.error().message);
    if (std::find(out.begin(), out.end(), *ts) != out.end()) return err_at(*e, "traffic selector listed twice");
    out.push_back(*ts);
  }
  return out;
}

std::string families_text(const std::vector<Family>& f) {
  std::vector<std::string> v;
  for (Family x : f) v.emplace_back(family_name(x));
  return join(v, " and ");
}

std::vector<Family> ts_families(const std::vector<TsConfig>& ts, Family outer) {
  std::vector<Family> f;
  if (ts.empty()) f.push_back(outer);
  for (const auto& t : ts) push_unique(f, t.prefix.family());
  return f;
}

struct ConnRefs {
  const Setting* group = nullptr;
  const Setting* psk = nullptr;
};

Result<Connection> parse_connection(const Setting& c, Ctx& ctx) {
  if (!c.isGroup()) return err_at(c, "expected a group { name = ...; local_addr = ...; ... } describing a connection");
  if (auto r = check_known(c, {"name", "local_addr", "remote_addrs", "local_port", "remote_port", "local_id",
                               "remote_id", "psk", "ike", "esp", "local_ts", "remote_ts", "mode", "start",
                               "force_encap", "ike_lifetime", "child_lifetime", "child_lifetime_bytes",
                               "child_lifetime_packets", "dpd"});
      !r) {
    return r.error();
  }
  Connection conn;
  auto name = get_string(c, "name", true, "a connection name of 1-64 letters, digits, '.', '_' or '-'");
  if (!name) return name.error();
  if (!valid_name(*name, kMaxNameLen, true)) {
    return err_at(c["name"], "'" + *name + "' is not a connection name (expected 1-64 letters, digits, '.', '_' or '-')");
  }
  conn.name = *name;

  const std::string addr_what = "an IPv4 or IPv6 address of this host, e.g. \"192.0.2.1\"";
  if (!c.exists("local_addr")) return err_at(c, "local_addr", "missing (expected " + addr_what + ")");
  if (c["local_addr"].getType() != Setting::TypeString) return err_at(c["local_addr"], "expected " + addr_what + " in double quotes");
  auto local = parse_host_address(c["local_addr"], addr_what);
  if (!local) return local.error();
  conn.local_addr = *local;
  const Family fam = local->family;

  const std::string ra_what = "a peer address or prefix like \"198.51.100.2\" or \"198.51.100.0/24\", or \"%any\"";
  if (!c.exists("remote_addrs")) return err_at(c, "remote_addrs", "missing (expected " + ra_what + ")");
  auto ras = get_strings(c, "remote_addrs", ra_what);
  if (!ras) return ras.error();
  for (const Setting* e : *ras) {
    std::string_view t = e->c_str();
    if (t == "%any") {
      if (ras->size() != 1) return err_at(*e, "\"%any\" must be the only entry of remote_addrs");
      conn.remote_addrs.push_back(IpPrefix::any(fam));
      continue;
    }
    auto p = IpPrefix::parse(t);
    if (!p) return err_at(*e, p.error().message + " (expected " + ra_what + ")");
    if (p->family() != fam) {
      return err_at(*e, std::string(family_name(p->family())) + " peer " + p->to_string() + " but local_addr " +
                            conn.local_addr.to_string() + " is " + family_name(fam) +
                            " (IKE runs over one family; make another connection for the other)");
    }
    if (p->len == p->addr.bit_width()) {
      if (auto h = parse_host_address(*e, ra_what); !h) return h.error();
    }
    if (std::find(conn.remote_addrs.begin(), conn.remote_addrs.end(), *p) != conn.remote_addrs.end()) {
      return err_at(*e, p->to_string() + " is listed twice");
    }
    conn.remote_addrs.push_back(*p);
  }

  if (auto r = get_uint(c, "local_port", 1, 65535, conn.local_port); !r) return r.error();
  if (auto r = get_uint(c, "remote_port", 1, 65535, conn.remote_port); !r) return r.error();

  for (auto [field, id] : {std::pair{"local_id", &conn.local_id}, std::pair{"remote_id", &conn.remote_id}}) {
    auto s = get_string(c, field, false, "an identity (fqdn:host.example, user@example.com, an address or %any)");
    if (!s) return s.error();
    if (!c.exists(field)) continue;
    auto i = Identity::parse(*s);
    if (!i) return err_at(c[field], i.error().message);
    *id = *i;
  }

  const std::string psk_what = "the name of a PSK in the secrets file";
  if (!c.exists("psk")) return err_at(c, "psk", "missing (expected " + psk_what + ")");
  if (c["psk"].getType() != Setting::TypeString) return err_at(c["psk"], "expected " + psk_what + " in double quotes");
  std::string_view ref = c["psk"].c_str();
  const bool hex_like = ref.size() > 2 && ref[0] == '0' && (ref[1] == 'x' || ref[1] == 'X');
  if (!valid_name(ref, kMaxNameLen, true) || hex_like) {
    // Do not echo it: someone may have put the secret itself here.
    return err_at(c["psk"],
                  "expected the name of an entry of the secrets file (1-64 letters, digits, '.', '_' or '-'), not the "
                  "key itself; the value is not shown in case it is a secret");
  }
  conn.psk_ref = std::string(ref);

  auto ike = parse_ike_list(c, ctx);
  if (!ike) return ike.error();
  conn.ike = std::move(*ike);
  auto esp = parse_esp_list(c, ctx);
  if (!esp) return esp.error();
  conn.esp = std::move(*esp);

  auto lts = parse_ts_list(c, "local_ts");
  if (!lts) return lts.error();
  conn.local_ts = std::move(*lts);
  auto rts = parse_ts_list(c, "remote_ts");
  if (!rts) return rts.error();
  conn.remote_ts = std::move(*rts);

  auto mode = get_string(c, "mode", false, "\"tunnel\" or \"transport\"", "tunnel");
  if (!mode) return mode.error();
  auto m = mode_from_name(*mode);
  if (!m) return err_at(c["mode"], m.error().message + " (expected \"tunnel\" or \"transport\")");
  conn.mode = *m;

  auto start = get_string(c, "start", false, "\"none\", \"start\" or \"trap\"", "none");
  if (!start) return start.error();
  if (*start == "none") {
    conn.start = StartAction::none;
  } else if (*start == "start") {
    conn.start = StartAction::start;
  } else if (*start == "trap") {
    conn.start = StartAction::trap;
  } else {
    return err_at(c["start"], "unknown start action '" + *start + "' (expected one of: none, start, trap)");
  }

  if (auto r = get_bool(c, "force_encap", conn.force_encap); !r) return r.error();
  if (auto r = get_uint(c, "ike_lifetime", 1, UINT32_MAX, conn.ike_lifetime_s, " seconds"); !r) return r.error();
  if (auto r = get_uint(c, "child_lifetime", 1, UINT32_MAX, conn.child_lifetime_s, " seconds"); !r) return r.error();
  // From 1000 up: the soft limit, 80-90 % of it, must leave room for a rekey.
  if (auto r = get_uint(c, "child_lifetime_bytes", 0, std::uint64_t{1} << 62, conn.child_lifetime_bytes,
                        " bytes (0: none; otherwise at least 1000)");
      !r) {
    return r.error();
  }
  if (auto r = get_uint(c, "child_lifetime_packets", 0, std::uint64_t{1} << 62, conn.child_lifetime_packets,
                        " packets (0: none; otherwise at least 10)");
      !r) {
    return r.error();
  }
  if (conn.child_lifetime_bytes != 0 && conn.child_lifetime_bytes < 1000) {
    return err_at(c["child_lifetime_bytes"], "at least 1000 bytes (or 0: none): the rekey starts at 80-90 % of it");
  }
  if (conn.child_lifetime_packets != 0 && conn.child_lifetime_packets < 10) {
    return err_at(c["child_lifetime_packets"], "at least 10 packets (or 0: none): the rekey starts at 80-90 % of it");
  }
  if (auto r = get_uint(c, "dpd", 0, 86400, conn.dpd_s, " seconds (0: none)"); !r) return r.error();

  // ---- checks across fields ----
  if (conn.start != StartAction::none) {
    const IpPrefix& first = conn.remote_addrs.front();
    if (first.len != first.addr.bit_width()) {
      return err_at(c["start"], "start = \"" + *start + "\" needs a peer to contact, but the first remote_addrs entry " +
                                    (first.len == 0 ? std::string("is %any") : "is the prefix " + first.to_string()) +
                                    " (expected a single address first)");
    }
  }
  const auto lf = ts_families(conn.local_ts, fam);
  const auto rf = ts_families(conn.remote_ts, fam);
  const Setting& ts_at = c.exists("remote_ts") ? c["remote_ts"] : c.exists("local_ts") ? c["local_ts"] : c;
  bool common = false;
  for (Family f : lf) common |= std::find(rf.begin(), rf.end(), f) != rf.end();
  if (!common) {
    return err_at(ts_at, "local_ts covers " + families_text(lf) + " only and remote_ts " + families_text(rf) +
                             " only: no traffic can match (an empty list stands for the " + family_name(fam) +
                             " address)");
  }
  if (lf != rf && !(lf.size() == rf.size() && std::is_permutation(lf.begin(), lf.end(), rf.begin()))) {
    ctx.warn(ts_at, "local_ts covers " + families_text(lf) + " but remote_ts " + families_text(rf) +
                        ": selectors of a family only one side has match no traffic");
  }
  if (conn.mode == Mode::transport) {
    for (std::size_t i = 0; i < conn.local_ts.size(); ++i) {
      if (!conn.local_ts[i].prefix.contains(conn.local_addr)) {
        return err_at(c["local_ts"], "transport mode protects this host's own traffic, but " +
                                         conn.local_ts[i].prefix.to_string() + " does not contain local_addr " +
                                         conn.local_addr.to_string() + " (use mode = \"tunnel\" for subnets)");
      }
    }
  }
  if (conn.child_lifetime_s >= conn.ike_lifetime_s) {
    ctx.warn(c.exists("child_lifetime") ? c["child_lifetime"] : c,
             "child_lifetime " + std::to_string(conn.child_lifetime_s) + " s is not below ike_lifetime " +
                 std::to_string(conn.ike_lifetime_s) + " s: CHILD SAs usually rekey more often than their IKE SA");
  }
  if (conn.remote_addrs.front().len == 0 && conn.remote_id.type == Identity::Type::any) {
    ctx.warn(c, "remote_addrs is %any and remote_id is %any: any peer that knows PSK '" + conn.psk_ref +
                    "' is accepted under any identity (set remote_id)");
  }
  return conn;
}

Result<void> parse_globals(const Setting& g, IkeConfig& cfg, std::string& secrets) {
  if (!g.isGroup()) return err_at(g, "expected a group: ike = { secrets = \"...\"; ... };");
  if (auto r = check_known(g, {"cookie_threshold", "half_open_timeout", "retransmit_base_ms", "retransmit_tries",
                               "reqid_base", "dataplane_instance", "secrets", "nat_keepalive"});
      !r) {
    return r.error();
  }
  if (auto r = get_uint(g, "cookie_threshold", 1, 1000000, cfg.cookie_threshold, " half-open SAs"); !r) return r.error();
  if (auto r = get_uint(g, "half_open_timeout", 1, 3600, cfg.half_open_timeout_s, " seconds"); !r) return r.error();
  if (auto r = get_uint(g, "retransmit_base_ms", 50, 60000, cfg.retransmit_base_ms, " ms"); !r) return r.error();
  if (auto r = get_uint(g, "retransmit_tries", 1, 20, cfg.retransmit_tries); !r) return r.error();
  if (auto r = get_uint(g, "reqid_base", 1, 0x7fffffff, cfg.reqid_base); !r) return r.error();
  if (auto r = get_uint(g, "nat_keepalive", 0, 3600, cfg.nat_keepalive_s, " seconds (0: none)"); !r) return r.error();
  auto inst = get_string(g, "dataplane_instance", false, "an shm instance name of 1-32 letters, digits, _ or -",
                         cfg.dataplane_instance);
  if (!inst) return inst.error();
  if (!valid_name(*inst, 32, false)) {
    return err_at(g["dataplane_instance"],
                  "'" + *inst + "' is not an shm instance name (expected 1-32 letters, digits, _ or -)");
  }
  cfg.dataplane_instance = *inst;
  auto sec = get_string(g, "secrets", false, "the path of the secrets file");
  if (!sec) return sec.error();
  if (g.exists("secrets") && sec->empty()) return err_at(g["secrets"], "empty (expected the path of the secrets file)");
  secrets = *sec;
  return {};
}

// ---- the secrets file ----

// Wipes every string value of a libconfig tree (the PSK texts libconfig
// copied). libconfig's scanner buffers are freed inside the library, unwiped.
void wipe_strings(Setting& s) {
  if (s.getType() == Setting::TypeString) {
    char* p = const_cast<char*>(s.c_str());  // libconfig's own heap copy; it frees it later
    if (p) OPENSSL_cleanse(p, std::strlen(p));
    return;
  }
  if (s.isAggregate()) {
    for (int i = 0; i < s.getLength(); ++i) wipe_strings(s[i]);
  }
}

struct WipeOnExit {
  libconfig::Config& cfg;
  ~WipeOnExit() { wipe_strings(cfg.getRoot()); }
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string mode_text(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

// The file's bytes (NUL-terminated) in wiped storage, after the checks. The
// checks use the opened descriptor, so the file read is the file checked.
Result<SecretBytes> read_secret_file(const std::string& path) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (f.fd < 0) {
    const int e = errno;
    return make_error("cannot open the secrets file '" + path + "': " + std::strerror(e));
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) {
    const int e = errno;
    return make_error("cannot stat the secrets file '" + path + "': " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) return make_error("the secrets file '" + path + "' is not a regular file");
  const uid_t me = ::geteuid();
  if (st.st_uid != me && st.st_uid != 0) {
    return make_error("the secrets file '" + path + "' is owned by uid " + std::to_string(st.st_uid) +
                      ", not by the user cygnet-ike runs as (uid " + std::to_string(me) +
                      ") or root: refused (chown it)");
  }
  if ((st.st_mode & 077) != 0) {
    return make_error("the secrets file '" + path + "' is accessible by group or others (mode " +
                      mode_text(st.st_mode) + "): refused; a secrets file must be mode 0600. Run: chmod 600 '" +
                      path + "'");
  }
  if (static_cast<std::uint64_t>(st.st_size) > kMaxSecretsFileSize) {
    return make_error("the secrets file '" + path + "' is larger than " + std::to_string(kMaxSecretsFileSize) +
                      " bytes");
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  SecretBytes buf(size + 1);  // zeroed: the last byte stays NUL
  std::size_t got = 0;
  while (got < size) {
    ssize_t n = ::read(f.fd, buf.data() + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      return make_error("cannot read the secrets file '" + path + "': " + std::strerror(e));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return buf;
}

int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<SecretBytes> parse_secret(const Setting& s) {
  if (s.getType() != Setting::TypeString) {
    return err_at(s, "expected the key in double quotes (text, or hex digits after 0x)");
  }
  const char* v = s.c_str();
  const std::size_t len = std::strlen(v);
  if (len == 0) return err_at(s, "empty (expected the key: text, or hex digits after 0x)");
  SecretBytes out;
  if (len >= 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
    const std::size_t digits = len - 2;
    bool ok = digits > 0 && digits % 2 == 0;
    for (std::size_t i = 2; ok && i < len; ++i) ok = hex_val(v[i]) >= 0;
    if (!ok) return err_at(s, "starts with 0x but is not an even number of hex digits (the value is not shown)");
    out = SecretBytes(digits / 2);
    for (std::size_t i = 0; i < digits / 2; ++i) {
      out.data()[i] = static_cast<std::uint8_t>(hex_val(v[2 + 2 * i]) << 4 | hex_val(v[3 + 2 * i]));
    }
  } else {
    out = SecretBytes::copy_of({reinterpret_cast<const std::uint8_t*>(v), len});
  }
  if (out.size() < kMinPskLen) {
    return err_at(s, "the key is shorter than " + std::to_string(kMinPskLen) +
                         " bytes: refused (a short PSK falls to an offline guessing attack on one captured "
                         "IKE_AUTH; use e.g. 32 random bytes as hex)");
  }
  return out;
}

Result<PskMap> parse_secrets(const Setting& root, const std::string& path) {
  if (auto r = check_known(root, {"psks"}); !r) return r.error();
  const std::string what = "a list: psks = ( { name = \"site-b\"; secret = \"0x...\"; } );";
  if (!root.exists("psks")) return make_error(path + ": psks: missing (expected " + what + ")");
  const Setting& l = root["psks"];
  if (!l.isList()) return err_at(l, "expected " + what);
  PskMap out;
  for (int i = 0; i < l.getLength(); ++i) {
    const Setting& g = l[i];
    if (!g.isGroup()) return err_at(g, "expected a group { name = \"...\"; secret = \"...\"; }");
    if (auto r = check_known(g, {"name", "secret"}); !r) return r.error();
    auto name = get_string(g, "name", true, "a PSK name of 1-64 letters, digits, '.', '_' or '-'");
    if (!name) return name.error();
    if (!valid_name(*name, kMaxNameLen, true)) {
      return err_at(g["name"], "not a PSK name (expected 1-64 letters, digits, '.', '_' or '-'; the value is not shown)");
    }
    if (out.count(*name) != 0) return err_at(g["name"], "duplicate PSK name '" + *name + "'");
    if (!g.exists("secret")) return err_at(g, "secret", "missing (expected the key: text, or hex digits after 0x)");
    auto sec = parse_secret(g["secret"]);
    if (!sec) return sec.error();
    out.emplace(*name, std::move(*sec));
  }
  return out;
}

Result<PskMap> load_secrets(const std::string& path) {
  auto text = read_secret_file(path);
  if (!text) return text.error();
  libconfig::Config lc;
  WipeOnExit wipe{lc};
  try {
    lc.readString(reinterpret_cast<const char*>(text->data()));
  } catch (const libconfig::ParseException& e) {
    // libconfig's messages name the problem, not the text at fault.
    return make_error(path + ":" + std::to_string(e.getLine()) + ": syntax error: " + e.getError());
  }
  text->reset();
  auto r = parse_secrets(lc.getRoot(), path);
  if (!r && r.error().message.rfind("<string>:", 0) == 0) return make_error(path + r.error().message.substr(8));
  return r;
}

Result<IkeConfig> load(const libconfig::Config& lc, const std::string& file, bool from_file,
                       const IkeLoadOptions& opts) {
  Ctx ctx;
  ctx.file = file;
  const Setting& root = lc.getRoot();
  if (auto r = check_known(root, {"ike", "connections"}); !r) return r.error();
  IkeConfig cfg;
  std::string secrets;
  if (root.exists("ike")) {
    if (auto r = parse_globals(root["ike"], cfg, secrets); !r) return r.error();
  }
  const std::string conn_what = "a list: connections = ( { name = ...; local_addr = ...; ... } );";
  if (!root.exists("connections")) return make_error(file + ": connections: missing (expected " + conn_what + ")");
  const Setting& l = root["connections"];
  if (!l.isList()) return err_at(l, "expected " + conn_what);
  if (l.getLength() == 0) return err_at(l, "empty (expected at least one connection)");
  std::vector<const Setting*> psk_at;
  for (int i = 0; i < l.getLength(); ++i) {
    auto c = parse_connection(l[i], ctx);
    if (!c) return c.error();
    for (std::size_t j = 0; j < cfg.connections.size(); ++j) {
      if (cfg.connections[j].name == c->name) {
        return err_at(l[i]["name"], "duplicate connection name '" + c->name + "' (first at line " +
                                        std::to_string(l[static_cast<int>(j)].getSourceLine()) + ")");
      }
    }
    cfg.connections.push_back(std::move(*c));
    psk_at.push_back(&l[i]["psk"]);
  }

  // The secrets file.
  std::string path;
  if (!opts.secrets_path.empty()) {
    path = opts.secrets_path;
  } else {
    if (secrets.empty()) {
      const std::string m = "missing (expected the path of the secrets file holding the PSKs, e.g. secrets = "
                            "\"/etc/cygnet/ike-secrets.conf\";)";
      if (root.exists("ike")) return err_at(root["ike"], "secrets", m);
      return make_error(file + ": ike.secrets: " + m);
    }
    std::filesystem::path p(secrets);
    if (p.is_relative() && from_file) p = std::filesystem::path(file).parent_path() / p;
    path = p.string();
  }
  auto psks = load_secrets(path);
  if (!psks) {
    if (opts.secrets_path.empty()) return err_at(root["ike"]["secrets"], psks.error().message);
    return psks.error();
  }
  for (std::size_t i = 0; i < cfg.connections.size(); ++i) {
    const Connection& c = cfg.connections[i];
    auto it = psks->find(c.psk_ref);
    if (it == psks->end()) {
      const std::span<const std::uint8_t> ref{reinterpret_cast<const std::uint8_t*>(c.psk_ref.data()),
                                              c.psk_ref.size()};
      for (const auto& kv : *psks) {
        if (kv.second.size() == ref.size() && kv.second.equals(ref)) {
          return err_at(*psk_at[i], "connection '" + c.name +
                                        "': psk holds the value of a secret of the secrets file, not the name of "
                                        "one; the value is not shown");
        }
      }
      std::vector<std::string> names;
      for (const auto& kv : *psks) names.push_back("'" + kv.first + "'");
      return err_at(*psk_at[i], "connection '" + c.name + "': PSK '" + c.psk_ref + "' is not in the secrets file " +
                                    path + " (it has: " + (names.empty() ? "none" : join(names)) + ")");
    }
    if (cfg.psks.count(c.psk_ref) == 0) cfg.psks.emplace(c.psk_ref, it->second.clone());
  }
  if (opts.warnings) {
    for (auto& w : ctx.warnings) opts.warnings->push_back(std::move(w));
  }
  return cfg;
}

Result<IkeConfig> rename(Result<IkeConfig> r, const std::string& name) {
  if (!r && r.error().message.rfind("<string>:", 0) == 0) return make_error(name + r.error().message.substr(8));
  return r;
}

}  // namespace

Result<PskMap> load_secrets_file(const std::string& path) { return load_secrets(path); }

Result<IkeConfig> load_ike_file(const std::string& path) { return load_ike_file(path, IkeLoadOptions{}); }

Result<IkeConfig> load_ike_file(const std::string& path, const IkeLoadOptions& opts) {
  libconfig::Config lc;
  if (auto rd = cygnet::cfg::detail::read_file(lc, path); !rd) return rd.error();
  return load(lc, path, true, opts);
}

Result<IkeConfig> load_ike_string(const std::string& text, const std::string& name) {
  return load_ike_string(text, name, IkeLoadOptions{});
}

Result<IkeConfig> load_ike_string(const std::string& text, const std::string& name, const IkeLoadOptions& opts) {
  libconfig::Config lc;
  try {
    lc.readString(text);
  } catch (const libconfig::ParseException& e) {
    return make_error(name + ":" + std::to_string(e.getLine()) + ": syntax error: " + e.getError());
  }
  return rename(load(lc, name, false, opts), name);
}

}  // namespace cygnet::ike::cfg
