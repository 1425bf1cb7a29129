#include "cp/config.h"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <libconfig.h++>
#include <string_view>

namespace cygnet::cfg {

using libconfig::Setting;

namespace {

std::string where(const Setting& s) {
  std::string f = s.getSourceFile() ? s.getSourceFile() : "<string>";
  return f + ":" + std::to_string(s.getSourceLine());
}

}  // namespace

namespace detail {

Error err_at(const Setting& s, const std::string& field, const std::string& msg) {
  std::string path = s.getPath();
  for (std::size_t i; (i = path.find(".[")) != std::string::npos;) path.erase(i, 1);  // "sas.[0]" -> "sas[0]"
  if (!field.empty()) path += (path.empty() ? "" : ".") + field;
  return make_error(where(s) + ": " + path + ": " + msg);
}

// Unknown keys are refused: a typo must not silently drop a setting.
Result<void> check_known(const Setting& group, std::initializer_list<std::string_view> known) {
  for (int i = 0; i < group.getLength(); ++i) {
    const Setting& c = group[i];
    const char* n = c.getName();
    if (!n) continue;
    if (std::find(known.begin(), known.end(), std::string_view(n)) == known.end()) {
      std::string list;
      for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return err_at(c, "", std::string("unknown setting (expected one of: ") + list + ")");
    }
  }
  return {};
}

}  // namespace detail

namespace {

using detail::check_known;
using detail::err_at;

Error err_at(const Setting& s, const std::string& msg) { return err_at(s, "", msg); }

Result<std::string> get_string(const Setting& g, const char* name, bool required, const std::string& dflt = {}) {
  if (!g.exists(name)) {
    if (required) return err_at(g, name, "missing (expected a string)");
    return dflt;
  }
  const Setting& s = g[name];
  if (s.getType() != Setting::TypeString) return err_at(s, "expected a string in double quotes");
  return std::string(s.c_str());
}

Result<std::uint64_t> get_uint(const Setting& g, const char* name, bool required, std::uint64_t max,
                               std::uint64_t dflt = 0) {
  if (!g.exists(name)) {
    if (required) return err_at(g, name, "missing (expected an integer)");
    return dflt;
  }
  const Setting& s = g[name];
  long long v = 0;
  if (s.getType() == Setting::TypeInt) {
    v = static_cast<int>(s);
  } else if (s.getType() == Setting::TypeInt64) {
    v = static_cast<long long>(s);
  } else {
    return err_at(s, "expected an integer");
  }
  // libconfig stores 0x80000000-0xffffffff as negative 32-bit ints; hex SPIs
  // are common, so reinterpret TypeInt values written in hex.
  if (v < 0 && s.getType() == Setting::TypeInt && s.getFormat() == Setting::FormatHex) {
    v = static_cast<long long>(static_cast<std::uint32_t>(static_cast<int>(s)));
  }
  if (v < 0 || static_cast<std::uint64_t>(v) > max) {
    return err_at(s, "value " + std::to_string(v) + " out of range 0-" + std::to_string(max));
  }
  return static_cast<std::uint64_t>(v);
}

Result<bool> get_bool(const Setting& g, const char* name, bool dflt) {
  if (!g.exists(name)) return dflt;
  const Setting& s = g[name];
  if (s.getType() != Setting::TypeBoolean) return err_at(s, "expected true or false");
  return static_cast<bool>(s);
}

template <typename T, typename F>
Result<T> get_parsed(const Setting& g, const char* name, bool required, F parse, T dflt = T{}) {
  auto str = get_string(g, name, required);
  if (!str) return str.error();
  if (!g.exists(name)) return dflt;
  auto r = parse(*str);
  if (!r) return err_at(g[name], r.error().message);
  return *r;
}

Result<Lifetime> parse_lifetime(const Setting& g) {
  if (auto r = check_known(g, {"bytes", "packets", "seconds"}); !r) return r.error();
  Lifetime lt;
  auto b = get_uint(g, "bytes", false, UINT64_MAX >> 1);
  if (!b) return b.error();
  auto p = get_uint(g, "packets", false, UINT64_MAX >> 1);
  if (!p) return p.error();
  auto t = get_uint(g, "seconds", false, UINT32_MAX);
  if (!t) return t.error();
  lt.bytes = *b;
  lt.packets = *p;
  lt.add_seconds = *t;
  return lt;
}

// The selector fields; they sit in a selector group or directly in a policy.
Result<Selector> parse_selector_fields(const Setting& g) {
  Selector s;
  auto src = get_parsed<IpPrefix>(g, "src", true, IpPrefix::parse);
  if (!src) return src.error();
  auto dst = get_parsed<IpPrefix>(g, "dst", true, IpPrefix::parse);
  if (!dst) return dst.error();
  auto proto = get_parsed<std::uint8_t>(g, "proto", false, proto_from_name, kProtoAny);
  if (!proto) return proto.error();
  s.src = *src;
  s.dst = *dst;
  s.proto = *proto;
  const bool icmp = proto_is_icmp(s.proto);
  if (icmp && (g.exists("sport") || g.exists("dport"))) {
    return err_at(g, "ICMP selectors take icmp_type and icmp_code, not ports");
  }
  if (!icmp && (g.exists("icmp_type") || g.exists("icmp_code"))) {
    return err_at(g, "icmp_type/icmp_code need proto \"icmp\" or \"icmpv6\"");
  }
  auto sp = get_parsed<PortRange>(g, icmp ? "icmp_type" : "sport", false, PortRange::parse);
  if (!sp) return sp.error();
  auto dp = get_parsed<PortRange>(g, icmp ? "icmp_code" : "dport", false, PortRange::parse);
  if (!dp) return dp.error();
  s.sport = *sp;
  s.dport = *dp;
  if (auto r = validate_selector(s); !r) return err_at(g, r.error().message);
  return s;
}

Result<Selector> parse_selector(const Setting& g) {
  if (auto r = check_known(g, {"src", "dst", "proto", "sport", "dport", "icmp_type", "icmp_code"}); !r) {
    return r.error();
  }
  return parse_selector_fields(g);
}

Result<SecretKey> get_key(const Setting& g, const char* name) {
  if (!g.exists(name)) return SecretKey{};
  const Setting& s = g[name];
  if (s.getType() != Setting::TypeString) return err_at(s, "expected a hex string in double quotes");
  auto k = SecretKey::from_hex(s.c_str());
  if (!k) return err_at(s, k.error().message);
  return *k;
}

}  // namespace

Result<SaConfig> parse_sa(const Setting& g) {
  if (!g.isGroup()) return err_at(g, "expected a group { ... } describing an SA");
  if (auto r = check_known(g, {"spi", "dir", "src", "dst", "mode", "reqid", "enc", "enc_key", "integ",
                               "integ_key", "esn", "anti_replay", "replay_window", "encap", "soft",
                               "hard", "selectors", "ttl", "copy_dscp", "tfc_pad"});
      !r) {
    return r.error();
  }
  SaConfig sa;
  auto spi = get_uint(g, "spi", true, UINT32_MAX);
  if (!spi) return spi.error();
  sa.spi = static_cast<std::uint32_t>(*spi);
  auto dir = get_parsed<Direction>(g, "dir", true, direction_from_name);
  if (!dir) return dir.error();
  sa.dir = *dir;
  auto src = get_parsed<IpAddress>(g, "src", true, IpAddress::parse);
  if (!src) return src.error();
  auto dst = get_parsed<IpAddress>(g, "dst", true, IpAddress::parse);
  if (!dst) return dst.error();
  sa.src = *src;
  sa.dst = *dst;
  auto mode = get_parsed<Mode>(g, "mode", false, mode_from_name, Mode::tunnel);
  if (!mode) return mode.error();
  sa.mode = *mode;
  auto reqid = get_uint(g, "reqid", false, UINT32_MAX);
  if (!reqid) return reqid.error();
  sa.reqid = static_cast<std::uint32_t>(*reqid);
  auto enc = get_parsed<CipherAlg>(g, "enc", true, cipher_from_name);
  if (!enc) return enc.error();
  sa.cipher = *enc;
  auto integ = get_parsed<IntegAlg>(g, "integ", false, integ_from_name, IntegAlg::none);
  if (!integ) return integ.error();
  sa.integ = *integ;
  auto ek = get_key(g, "enc_key");
  if (!ek) return ek.error();
  sa.cipher_key = std::move(*ek);
  auto ik = get_key(g, "integ_key");
  if (!ik) return ik.error();
  sa.integ_key = std::move(*ik);
  auto esn = get_bool(g, "esn", false);
  if (!esn) return esn.error();
  sa.esn = *esn;
  auto ar = get_bool(g, "anti_replay", true);
  if (!ar) return ar.error();
  sa.anti_replay = *ar;
  auto win = get_uint(g, "replay_window", false, UINT32_MAX, kDefaultReplayWindow);
  if (!win) return win.error();
  sa.replay_window = static_cast<std::uint32_t>(*win);
  auto ttl = get_uint(g, "ttl", false, 255, 64);
  if (!ttl) return ttl.error();
  sa.outer_ttl = static_cast<std::uint8_t>(*ttl);
  auto dscp = get_bool(g, "copy_dscp", true);
  if (!dscp) return dscp.error();
  sa.copy_dscp = *dscp;
  auto tfc = get_uint(g, "tfc_pad", false, 65535, 0);
  if (!tfc) return tfc.error();
  sa.tfc_pad_to = static_cast<std::uint16_t>(*tfc);
  if (g.exists("encap")) {
    const Setting& e = g["encap"];
    if (!e.isGroup()) return err_at(e, "expected a group { sport = 4500; dport = 4500; }");
    if (auto r = check_known(e, {"sport", "dport"}); !r) return r.error();
    auto sp = get_uint(e, "sport", false, 65535, 4500);
    if (!sp) return sp.error();
    auto dp = get_uint(e, "dport", false, 65535, 4500);
    if (!dp) return dp.error();
    sa.encap = UdpEncap{true, static_cast<std::uint16_t>(*sp), static_cast<std::uint16_t>(*dp)};
  }
  for (auto [name, lt] : {std::pair{"soft", &sa.soft}, std::pair{"hard", &sa.hard}}) {
    if (!g.exists(name)) continue;
    const Setting& l = g[name];
    if (!l.isGroup()) return err_at(l, "expected a group { bytes = ...; packets = ...; seconds = ...; }");
    auto r = parse_lifetime(l);
    if (!r) return r.error();
    *lt = *r;
  }
  if (g.exists("selectors")) {
    const Setting& l = g["selectors"];
    if (!l.isList()) return err_at(l, "expected a list ( { src = ...; dst = ...; }, ... )");
    for (int i = 0; i < l.getLength(); ++i) {
      if (!l[i].isGroup()) return err_at(l[i], "expected a selector group");
      auto s = parse_selector(l[i]);
      if (!s) return s.error();
      sa.selectors.push_back(*s);
    }
  }
  if (auto r = validate_sa(sa); !r) return err_at(g, r.error().message);
  return sa;
}

Result<Policy> parse_policy(const Setting& g) {
  if (!g.isGroup()) return err_at(g, "expected a group { ... } describing a policy");
  if (auto r = check_known(g, {"dir", "priority", "action", "reqid", "src", "dst", "proto", "sport", "dport",
                               "icmp_type", "icmp_code"});
      !r) {
    return r.error();
  }
  Policy p;
  auto dir = get_parsed<PolicyDir>(g, "dir", true, policy_dir_from_name);
  if (!dir) return dir.error();
  p.dir = *dir;
  auto prio = get_uint(g, "priority", false, UINT32_MAX, 1000);
  if (!prio) return prio.error();
  p.priority = static_cast<std::uint32_t>(*prio);
  auto act = get_parsed<PolicyAction>(g, "action", true, action_from_name);
  if (!act) return act.error();
  p.action = *act;
  auto reqid = get_uint(g, "reqid", false, UINT32_MAX);
  if (!reqid) return reqid.error();
  p.reqid = static_cast<std::uint32_t>(*reqid);
  auto sel = parse_selector_fields(g);
  if (!sel) return sel.error();
  p.sel = *sel;
  if (auto r = validate_policy(p); !r) return err_at(g, r.error().message);
  return p;
}

Result<StaticConfig> parse_statics(const Setting& root) {
  StaticConfig out;
  if (root.exists("sas")) {
    const Setting& l = root["sas"];
    if (!l.isList()) return err_at(l, "expected a list: sas = ( { ... }, { ... } );");
    for (int i = 0; i < l.getLength(); ++i) {
      auto sa = parse_sa(l[i]);
      if (!sa) return sa.error();
      for (const auto& prev : out.sas) {
        if (prev.spi == sa->spi && prev.dst == sa->dst && prev.dir == sa->dir) {
          return err_at(l[i], "duplicate SA: SPI " + std::to_string(sa->spi) + " to " + sa->dst.to_string() +
                                  " is already defined");
        }
      }
      out.sas.push_back(std::move(*sa));
    }
  }
  if (root.exists("policies")) {
    const Setting& l = root["policies"];
    if (!l.isList()) return err_at(l, "expected a list: policies = ( { ... }, { ... } );");
    for (int i = 0; i < l.getLength(); ++i) {
      auto p = parse_policy(l[i]);
      if (!p) return p.error();
      out.policies.push_back(*p);
    }
  }
  return out;
}

void warn_if_keys_readable(const std::string& path, StaticConfig& c) {
  bool has_keys = false;
  for (const auto& sa : c.sas) has_keys |= !sa.cipher_key.empty() || !sa.integ_key.empty();
  struct stat st {};
  if (has_keys && ::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    c.warnings.push_back(path + " holds SA keys and is readable by group or others (mode " + mode +
                         "); chmod 600 it");
  }
}

Result<StaticConfig> load_static_string(const std::string& text, const std::string& name) {
  libconfig::Config cfg;
  try {
    cfg.readString(text);
  } catch (const libconfig::ParseException& e) {
    return make_error(name + ":" + std::to_string(e.getLine()) + ": syntax error: " + e.getError());
  }
  auto r = parse_statics(cfg.getRoot());
  if (!r && r.error().message.rfind("<string>:", 0) == 0) {
    return make_error(name + r.error().message.substr(8));
  }
  return r;
}

Result<void> detail::read_file(libconfig::Config& cfg, const std::string& path) {
  try {
    cfg.readFile(path.c_str());
  } catch (const libconfig::FileIOException&) {
    return make_error(path + ": cannot read the file (missing or no permission)");
  } catch (const libconfig::ParseException& e) {
    return make_error(std::string(e.getFile() ? e.getFile() : path.c_str()) + ":" + std::to_string(e.getLine()) +
                      ": syntax error: " + e.getError());
  }
  return {};
}

Result<StaticConfig> load_static_file(const std::string& path) {
  libconfig::Config cfg;
  if (auto rd = detail::read_file(cfg, path); !rd) return rd.error();
  auto r = parse_statics(cfg.getRoot());
  if (!r) return r;
  warn_if_keys_readable(path, *r);
  return r;
}

}  // namespace cygnet::cfg
