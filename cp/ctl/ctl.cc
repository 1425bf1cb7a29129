// cygnetctl commands (docs/cli.md): parse and validate argv, talk to
// cygnet-dp over the shared-memory protocol, print a table or JSON.
#include "cp/ctl/ctl.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "cp/config.h"
#include "cp/ctl/telemetry.h"
#include "dp/esp/drop.h"
#include "shared/ip.h"
#include "shared/policy.h"
#include "shared/result.h"
#include "shared/sa.h"
#include "shared/secret.h"
#include "shared/shm/client.h"
#include "shared/shm/messages.h"
#include "shared/shm/status.h"

namespace cygnet::ctl {
namespace {

using namespace std::chrono_literals;

// A failure carrying its exit code; message is one line without the
// "cygnetctl: " prefix.
struct Failure {
  int code;
  std::string message;
};
template <typename T>
using Res = std::variant<T, Failure>;

Failure usage(std::string m) { return Failure{kExitUsage, std::move(m)}; }

struct Ctx {
  std::ostream& out;
  std::ostream& err;
  std::string instance = kDefaultInstance;
  bool json = false;
  std::chrono::milliseconds timeout{2000};
};

// ---- options ---------------------------------------------------------------

struct OptSpec {
  std::string_view name;  // without "--"
  bool value;             // takes a value
};

struct Parsed {
  std::map<std::string, std::string, std::less<>> values;
  std::vector<std::string> positional;
  bool help = false;

  bool has(std::string_view n) const { return values.find(n) != values.end(); }
  const std::string* get(std::string_view n) const {
    auto it = values.find(n);
    return it == values.end() ? nullptr : &it->second;
  }
};

struct Command;
using Handler = int (*)(Ctx&, const Command&, const Parsed&);

struct Command {
  std::string_view path;  // "sa add"
  std::string_view summary;
  std::string_view help;  // the full --help text
  std::vector<OptSpec> opts;
  std::size_t max_positional;
  Handler run;
};

std::string opt_list(const Command& c) {
  std::string s;
  for (const auto& o : c.opts) s += (s.empty() ? "--" : ", --") + std::string(o.name);
  return s.empty() ? "none" : s;
}

Res<Parsed> parse_opts(const Command& c, std::span<const std::string> args) {
  Parsed p;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      p.help = true;
      continue;
    }
    if (a.size() > 2 && a.starts_with("--")) {
      std::string name = a.substr(2), value;
      bool inline_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.resize(eq);
        inline_value = true;
      }
      static const std::vector<OptSpec> kGlobal{{"json", false}, {"instance", true}, {"timeout", true}};
      const OptSpec* spec = nullptr;
      for (const auto* list : {&c.opts, &kGlobal})
        for (const auto& o : *list)
          if (spec == nullptr && o.name == name) spec = &o;
      if (spec == nullptr) {
        return usage("unknown option --" + name + " for '" + std::string(c.path) + "' (expected: " + opt_list(c) +
                     ")");
      }
      if (p.has(name)) return usage("--" + name + " given twice");
      if (spec->value) {
        if (!inline_value) {
          if (i + 1 >= args.size()) return usage("--" + name + " needs a value");
          value = args[++i];
        }
      } else if (inline_value) {
        return usage("--" + name + " takes no value");
      }
      p.values.emplace(std::move(name), std::move(value));
      continue;
    }
    if (p.positional.size() >= c.max_positional) {
      return usage("unexpected argument '" + a + "' for '" + std::string(c.path) + "'");
    }
    p.positional.push_back(a);
  }
  return p;
}

bool valid_instance(std::string_view s);
Res<std::uint64_t> parse_uint(std::string_view opt, std::string_view text, std::uint64_t max);

// --json, --instance NAME, --timeout MS: before or after the command words.
std::optional<Failure> apply_global(Ctx& ctx, std::string_view name, const std::string& v) {
  if (name == "json") {
    ctx.json = true;
  } else if (name == "instance") {
    if (!valid_instance(v)) return usage("--instance: expected 1-64 of A-Z a-z 0-9 _ -, got '" + v + "'");
    ctx.instance = v;
  } else if (name == "timeout") {
    auto ms = parse_uint("timeout", v, 3600000);
    if (auto* f = std::get_if<Failure>(&ms)) return *f;
    if (std::get<std::uint64_t>(ms) == 0) return usage("--timeout: expected at least 1 ms");
    ctx.timeout = std::chrono::milliseconds(std::get<std::uint64_t>(ms));
  }
  return std::nullopt;
}

// ---- value parsers: every error names the option and what was expected -----

Res<std::uint64_t> parse_uint(std::string_view opt, std::string_view text, std::uint64_t max) {
  std::string_view t = text;
  int base = 10;
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
    t.remove_prefix(2);
    base = 16;
  }
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v, base);
  if (t.empty() || ec != std::errc{} || ptr != t.data() + t.size() || v > max) {
    return usage("--" + std::string(opt) + ": expected a number from 0 to " + std::to_string(max) +
                 " (decimal or 0x hex), got '" + std::string(text) + "'");
  }
  return v;
}

template <typename T, typename F>
Res<T> parse_with(std::string_view opt, const std::string& text, F f) {
  auto r = f(text);
  if (!r) return usage("--" + std::string(opt) + ": " + r.error().message);
  return std::move(*r);
}

Res<std::string> required(const Parsed& p, std::string_view opt, std::string_view what) {
  const std::string* v = p.get(opt);
  if (v == nullptr) return usage("--" + std::string(opt) + " is required (" + std::string(what) + ")");
  return *v;
}

Res<std::uint32_t> parse_spi(std::string_view text) {
  auto v = parse_uint("spi", text, 0xffffffffULL);
  if (auto* f = std::get_if<Failure>(&v)) return *f;
  const auto spi = std::get<std::uint64_t>(v);
  if (spi < 256) {
    return usage("--spi: SPIs 0-255 are reserved (RFC 4303 2.1); expected 256 to 4294967295 (e.g. 0x1001), got '" +
                 std::string(text) + "'");
  }
  return static_cast<std::uint32_t>(spi);
}

// Reads a hex key from a file only its owner can read. The buffer is wiped;
// no error message contains key bytes.
Res<SecretKey> read_key_file(std::string_view opt, const std::string& path) {
  const std::string o = "--" + std::string(opt);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return usage(o + ": cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return usage(o + ": " + path + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return usage(o + ": " + path + " is readable by group or others (mode " + mode +
                 "); a key file must be mode 0600 or 0400 (chmod 600 it)");
  }
  std::array<char, 1024> buf{};
  std::size_t n = 0;
  for (;;) {
    const ssize_t r = ::read(fd, buf.data() + n, buf.size() - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += static_cast<std::size_t>(r);
    if (n == buf.size()) break;
  }
  ::close(fd);
  Res<SecretKey> out = usage(o + ": " + path + " is longer than any key (expected one line of hex)");
  if (n < buf.size()) {
    std::string_view t(buf.data(), n);
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ' || t.back() == '\t'))
      t.remove_suffix(1);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    auto k = SecretKey::from_hex(t);
    if (k) {
      out = std::move(*k);
    } else {
      out = usage(o + ": " + path + ": " + k.error().message);
    }
  }
  secure_zero(buf.data(), buf.size());
  return out;
}

// --X-key HEX or --X-key-file PATH (exactly one).
Res<std::optional<SecretKey>> parse_key(const Parsed& p, std::string_view base) {
  const std::string key = std::string(base) + "-key", file = key + "-file";
  const std::string* hex = p.get(key);
  const std::string* path = p.get(file);
  if (hex != nullptr && path != nullptr) return usage("give --" + key + " or --" + file + ", not both");
  if (hex != nullptr) {
    auto k = SecretKey::from_hex(*hex);
    if (!k) return usage("--" + key + ": " + k.error().message);
    return std::optional<SecretKey>(std::move(*k));
  }
  if (path != nullptr) {
    auto k = read_key_file(file, *path);
    if (auto* f = std::get_if<Failure>(&k)) return *f;
    return std::optional<SecretKey>(std::move(std::get<SecretKey>(k)));
  }
  return std::optional<SecretKey>();
}

// --src/--dst/--proto/--sport/--dport/--icmp-type/--icmp-code.
Res<Selector> parse_selector(const Parsed& p) {
  Selector s;
  auto src = required(p, "src", "a prefix, e.g. 10.1.0.0/16");
  if (auto* f = std::get_if<Failure>(&src)) return *f;
  auto dst = required(p, "dst", "a prefix, e.g. 10.2.0.0/16");
  if (auto* f = std::get_if<Failure>(&dst)) return *f;
  auto sp = parse_with<IpPrefix>("src", std::get<std::string>(src), IpPrefix::parse);
  if (auto* f = std::get_if<Failure>(&sp)) return *f;
  auto dp = parse_with<IpPrefix>("dst", std::get<std::string>(dst), IpPrefix::parse);
  if (auto* f = std::get_if<Failure>(&dp)) return *f;
  s.src = std::get<IpPrefix>(sp);
  s.dst = std::get<IpPrefix>(dp);
  if (s.src.family() != s.dst.family()) {
    return usage("--src and --dst: expected prefixes of the same address family, got " +
                 std::string(family_name(s.src.family())) + " and " + family_name(s.dst.family()));
  }
  if (const auto* proto = p.get("proto")) {
    auto r = parse_with<std::uint8_t>("proto", *proto, proto_from_name);
    if (auto* f = std::get_if<Failure>(&r)) return *f;
    s.proto = std::get<std::uint8_t>(r);
  }
  const bool icmp = proto_is_icmp(s.proto);
  if (icmp && (p.has("sport") || p.has("dport"))) {
    return usage("--sport/--dport: ICMP selectors take --icmp-type and --icmp-code, not ports");
  }
  if (!icmp && (p.has("icmp-type") || p.has("icmp-code"))) {
    return usage("--icmp-type/--icmp-code: expected --proto icmp or icmpv6");
  }
  if ((p.has("sport") || p.has("dport")) && !proto_has_ports(s.proto)) {
    return usage("--sport/--dport: expected --proto tcp, udp, sctp or udplite with ports");
  }
  const char* lo = icmp ? "icmp-type" : "sport";
  const char* hi = icmp ? "icmp-code" : "dport";
  if (const auto* v = p.get(lo)) {
    auto r = parse_with<PortRange>(lo, *v, PortRange::parse);
    if (auto* f = std::get_if<Failure>(&r)) return *f;
    s.sport = std::get<PortRange>(r);
  }
  if (const auto* v = p.get(hi)) {
    auto r = parse_with<PortRange>(hi, *v, PortRange::parse);
    if (auto* f = std::get_if<Failure>(&r)) return *f;
    s.dport = std::get<PortRange>(r);
  }
  if (auto r = validate_selector(s); !r) return usage("invalid selector: " + r.error().message);
  return s;
}

// ---- output ------------------------------------------------------------------

std::string json_str(std::string_view s) {
  std::string o = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      o += '\\';
      o += ch;
    } else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += ch;
    }
  }
  return o + "\"";
}

std::string hex32(std::uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

// A mutating command's result: a line for people, an object for scripts.
int report(Ctx& ctx, std::string_view what, const shm::Ack& ack, const std::string& ok_line) {
  const bool ok = ack.status == shm::Status::ok;
  if (ctx.json) {
    ctx.out << "{\"command\":" << json_str(what) << ",\"ok\":" << (ok ? "true" : "false")
            << ",\"status\":" << json_str(shm::status_name(ack.status)) << ",\"text\":" << json_str(ack.text)
            << ",\"value\":" << ack.value << "}\n";
  }
  if (ok) {
    if (!ctx.json) ctx.out << "ok: " << ok_line << "\n";
    return kExitOk;
  }
  ctx.err << "cygnetctl: cygnet-dp refused " << what << ": " << shm::status_name(ack.status) << ": "
          << (ack.text.empty() ? std::string(shm::status_help(ack.status)) : ack.text) << "\n";
  return kExitRefused;
}

// ---- talking to cygnet-dp -------------------------------------------------------

class Session {
 public:
  static Res<std::unique_ptr<Session>> open(const Ctx& ctx) {
    auto c = shm::ShmClient::attach(ctx.instance, {"cygnetctl", false, 65536});
    if (!c) return Failure{kExitNotRunning, c.error().message};
    auto s = std::make_unique<Session>();
    s->c_ = std::move(*c);
    s->timeout_ = ctx.timeout;
    return s;
  }

  // Sends; a full ring is waited out (reading events so the server keeps
  // reading commands) until the timeout.
  Res<std::uint64_t> send(const shm::CommandBody& body) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
      auto id = c_->send(body);
      if (id) return *id;
      if (c_->last_failure() != shm::ShmClient::Failure::full || std::chrono::steady_clock::now() >= deadline) {
        return gone(id.error().message);
      }
      if (auto d = drain(); !d.empty()) return gone(d);
      std::this_thread::sleep_for(200us);
    }
  }

  Res<shm::Ack> wait(std::uint64_t id) {
    for (auto it = events_.begin(); it != events_.end(); ++it) {
      if (const auto* a = std::get_if<shm::Ack>(&it->body); a != nullptr && a->cmd_id == id) {
        shm::Ack found = *a;
        events_.erase(it);
        return found;
      }
    }
    auto a = c_->wait_ack(id, timeout_);
    if (!a) return gone(a.error().message);
    return *a;
  }

  // Moves every event waiting in the client into events_; returns an error
  // text if the server wrote something invalid.
  std::string drain() {
    for (;;) {
      auto e = c_->next_event();
      if (!e) return e.error().message;
      if (!e->has_value()) return {};
      events_.push_back(std::move(**e));
    }
  }

  std::vector<shm::Event>& events() { return events_; }
  shm::ShmClient& client() { return *c_; }

 private:
  Failure gone(const std::string& m) {
    return Failure{kExitNotRunning, "lost cygnet-dp '" + c_->segment_name() + "': " + m};
  }
  std::unique_ptr<shm::ShmClient> c_;
  std::chrono::milliseconds timeout_{2000};
  std::vector<shm::Event> events_;
};

int fail(Ctx& ctx, const Failure& f, std::string_view path = {}) {
  ctx.err << "cygnetctl: " << f.message;
  if (f.code == kExitUsage && !path.empty()) ctx.err << " (see 'cygnetctl " << path << " --help')";
  ctx.err << "\n";
  return f.code;
}

// Sends one command, waits for its ack, reports.
int send_one(Ctx& ctx, std::string_view what, const shm::CommandBody& body, const std::string& ok_line) {
  auto s = Session::open(ctx);
  if (auto* f = std::get_if<Failure>(&s)) return fail(ctx, *f);
  auto& sess = *std::get<std::unique_ptr<Session>>(s);
  auto id = sess.send(body);
  if (auto* f = std::get_if<Failure>(&id)) return fail(ctx, *f);
  auto ack = sess.wait(std::get<std::uint64_t>(id));
  if (auto* f = std::get_if<Failure>(&ack)) return fail(ctx, *f);
  return report(ctx, what, std::get<shm::Ack>(ack), ok_line);
}

// ---- commands ------------------------------------------------------------------

#define CTL_TRY(var, expr)                                        \
  auto var##_r = (expr);                                          \
  if (auto* var##_f = std::get_if<Failure>(&var##_r)) return fail(ctx, *var##_f, c.path); \
  auto var = std::move(std::get<0>(var##_r))

int cmd_sa_add(Ctx& ctx, const Command& c, const Parsed& p) {
  SaConfig sa;
  CTL_TRY(spi_s, required(p, "spi", "the SPI, 256 to 4294967295, e.g. 0x1001"));
  CTL_TRY(spi, parse_spi(spi_s));
  sa.spi = spi;
  CTL_TRY(dir_s, required(p, "dir", "in or out"));
  CTL_TRY(dir, parse_with<Direction>("dir", dir_s, direction_from_name));
  sa.dir = dir;
  CTL_TRY(src_s, required(p, "src", "the outer source address"));
  CTL_TRY(src, parse_with<IpAddress>("src", src_s, IpAddress::parse));
  sa.src = src;
  CTL_TRY(dst_s, required(p, "dst", "the outer destination address"));
  CTL_TRY(dst, parse_with<IpAddress>("dst", dst_s, IpAddress::parse));
  sa.dst = dst;
  if (const auto* m = p.get("mode")) {
    CTL_TRY(mode, parse_with<Mode>("mode", *m, mode_from_name));
    sa.mode = mode;
  }
  CTL_TRY(enc_s, required(p, "enc", "an encryption algorithm, e.g. aes-gcm16-128"));
  CTL_TRY(enc, parse_with<CipherAlg>("enc", enc_s, cipher_from_name));
  sa.cipher = enc;
  if (const auto* i = p.get("integ")) {
    CTL_TRY(integ, parse_with<IntegAlg>("integ", *i, integ_from_name));
    sa.integ = integ;
  }
  CTL_TRY(ek, parse_key(p, "enc"));
  const auto& ci = cipher_info(sa.cipher);
  const std::size_t enc_len = std::size_t{ci.key_len} + ci.salt_len;
  if (!ek && enc_len != 0) {
    return fail(ctx, usage("--enc-key or --enc-key-file is required for " + std::string(ci.name) + " (" +
                           std::to_string(enc_len) + " bytes of hex" + (ci.salt_len ? ", salt included" : "") + ")"),
                c.path);
  }
  if (ek) sa.cipher_key = std::move(*ek);
  CTL_TRY(ik, parse_key(p, "integ"));
  if (ik && sa.integ == IntegAlg::none) return fail(ctx, usage("--integ-key given without --integ"), c.path);
  if (!ik && sa.integ != IntegAlg::none) {
    return fail(ctx, usage("--integ-key or --integ-key-file is required for " +
                           std::string(integ_info(sa.integ).name) + " (" +
                           std::to_string(integ_info(sa.integ).key_len) + " bytes of hex)"),
                c.path);
  }
  if (ik) sa.integ_key = std::move(*ik);
  if (const auto* v = p.get("reqid")) {
    CTL_TRY(reqid, parse_uint("reqid", *v, 0xffffffffULL));
    sa.reqid = static_cast<std::uint32_t>(reqid);
  }
  sa.esn = p.has("esn");
  if (p.has("no-anti-replay")) sa.anti_replay = false;
  if (const auto* v = p.get("replay-window")) {
    CTL_TRY(w, parse_uint("replay-window", *v, kMaxReplayWindow));
    sa.replay_window = static_cast<std::uint32_t>(w);
  }
  if (const auto* v = p.get("encap")) {
    const auto colon = v->find(':');
    if (colon == std::string::npos) {
      return fail(ctx, usage("--encap: expected SPORT:DPORT (e.g. 4500:4500), got '" + *v + "'"), c.path);
    }
    CTL_TRY(sp, parse_uint("encap", v->substr(0, colon), 65535));
    CTL_TRY(dp, parse_uint("encap", v->substr(colon + 1), 65535));
    sa.encap = UdpEncap{true, static_cast<std::uint16_t>(sp), static_cast<std::uint16_t>(dp)};
  }
  if (p.has("sel-src") || p.has("sel-dst")) {
    const auto* ss = p.get("sel-src");
    const auto* sd = p.get("sel-dst");
    if (ss == nullptr || sd == nullptr) return fail(ctx, usage("--sel-src and --sel-dst go together"), c.path);
    Selector sel;
    CTL_TRY(a, parse_with<IpPrefix>("sel-src", *ss, IpPrefix::parse));
    CTL_TRY(b, parse_with<IpPrefix>("sel-dst", *sd, IpPrefix::parse));
    sel.src = a;
    sel.dst = b;
    sa.selectors.push_back(sel);
  }
  if (auto r = validate_sa(sa); !r) return fail(ctx, usage("invalid SA: " + r.error().message), c.path);
  return send_one(ctx, "sa add", shm::SaAdd{sa},
                  "SA " + hex32(sa.spi) + " " + direction_name(sa.dir) + " " + sa.src.to_string() + " -> " +
                      sa.dst.to_string() + " added");
}

int cmd_sa_delete(Ctx& ctx, const Command& c, const Parsed& p) {
  shm::SaKey k;
  CTL_TRY(spi_s, required(p, "spi", "the SPI, e.g. 0x1001"));
  CTL_TRY(spi, parse_spi(spi_s));
  k.spi = spi;
  CTL_TRY(dir_s, required(p, "dir", "in or out"));
  CTL_TRY(dir, parse_with<Direction>("dir", dir_s, direction_from_name));
  k.dir = dir;
  CTL_TRY(dst_s, required(p, "dst", "the SA's destination address"));
  CTL_TRY(dst, parse_with<IpAddress>("dst", dst_s, IpAddress::parse));
  k.dst = dst;
  return send_one(ctx, "sa delete", shm::SaDelete{k},
                  "SA " + hex32(k.spi) + " " + direction_name(k.dir) + " " + k.dst.to_string() + " deleted");
}

Res<Policy> parse_policy_opts(const Parsed& p, bool full) {
  Policy pol;
  auto dir_s = required(p, "dir", "in or out");
  if (auto* f = std::get_if<Failure>(&dir_s)) return *f;
  auto dir = parse_with<PolicyDir>("dir", std::get<std::string>(dir_s), policy_dir_from_name);
  if (auto* f = std::get_if<Failure>(&dir)) return *f;
  pol.dir = std::get<PolicyDir>(dir);
  auto sel = parse_selector(p);
  if (auto* f = std::get_if<Failure>(&sel)) return *f;
  pol.sel = std::get<Selector>(sel);
  if (!full) return pol;
  auto act_s = required(p, "action", "protect, bypass, discard or trap");
  if (auto* f = std::get_if<Failure>(&act_s)) return *f;
  auto act = parse_with<PolicyAction>("action", std::get<std::string>(act_s), action_from_name);
  if (auto* f = std::get_if<Failure>(&act)) return *f;
  pol.action = std::get<PolicyAction>(act);
  if (const auto* v = p.get("reqid")) {
    auto r = parse_uint("reqid", *v, 0xffffffffULL);
    if (auto* f = std::get_if<Failure>(&r)) return *f;
    pol.reqid = static_cast<std::uint32_t>(std::get<std::uint64_t>(r));
  }
  if (const auto* v = p.get("priority")) {
    auto r = parse_uint("priority", *v, 0xffffffffULL);
    if (auto* f = std::get_if<Failure>(&r)) return *f;
    pol.priority = static_cast<std::uint32_t>(std::get<std::uint64_t>(r));
  }
  if (auto r = validate_policy(pol); !r) return usage("invalid policy: " + r.error().message);
  return pol;
}

int cmd_policy_add(Ctx& ctx, const Command& c, const Parsed& p) {
  CTL_TRY(pol, parse_policy_opts(p, true));
  return send_one(ctx, "policy add", shm::PolicyAdd{pol},
                  std::string("policy ") + policy_dir_name(pol.dir) + " " + pol.sel.to_string() + " " +
                      action_name(pol.action) + " added");
}

int cmd_policy_delete(Ctx& ctx, const Command& c, const Parsed& p) {
  CTL_TRY(pol, parse_policy_opts(p, false));
  return send_one(ctx, "policy delete", shm::PolicyDelete{pol},
                  std::string("policy ") + policy_dir_name(pol.dir) + " " + pol.sel.to_string() + " deleted");
}

int cmd_load(Ctx& ctx, const Command& c, const Parsed& p) {
  if (p.positional.size() != 1) return fail(ctx, usage("load: expected one FILE"), c.path);
  const std::string& path = p.positional.at(0);
  auto st = cfg::load_static_file(path);
  if (!st) return fail(ctx, usage(st.error().message));
  for (const auto& w : st->warnings) ctx.err << "cygnetctl: warning: " << w << "\n";
  const auto& sas = st->sas;
  const auto& pols = st->policies;
  const std::size_t total = sas.size() + pols.size();
  if (total == 0) return fail(ctx, usage(path + " holds no SAs and no policies: nothing to load"));

  auto s = Session::open(ctx);
  if (auto* f = std::get_if<Failure>(&s)) return fail(ctx, *f);
  auto& sess = *std::get<std::unique_ptr<Session>>(s);
  std::map<std::uint64_t, std::string> what;  // command id -> what it carried
  auto send = [&](const shm::CommandBody& b, std::string desc) -> Res<std::uint64_t> {
    auto id = sess.send(b);
    if (auto* f = std::get_if<Failure>(&id)) return *f;
    what[std::get<std::uint64_t>(id)] = std::move(desc);
    return id;
  };
  auto begin = send(shm::BatchBegin{static_cast<std::uint32_t>(total)}, "batch_begin");
  if (auto* f = std::get_if<Failure>(&begin)) return fail(ctx, *f);
  for (std::size_t i = 0; i < sas.size(); ++i) {
    const SaConfig& sa = sas.at(i);
    auto id = send(shm::SaAdd{sa}, "SA " + hex32(sa.spi) + " " + direction_name(sa.dir) + " (sas[" +
                                       std::to_string(i) + "])");
    if (auto* f = std::get_if<Failure>(&id)) return fail(ctx, *f);
  }
  for (std::size_t i = 0; i < pols.size(); ++i) {
    auto id = send(shm::PolicyAdd{pols.at(i)}, "policy " + std::to_string(i) + " (policies[" + std::to_string(i) +
                                                   "] " + pols.at(i).sel.to_string() + ")");
    if (auto* f = std::get_if<Failure>(&id)) return fail(ctx, *f);
  }
  auto commit_id = sess.send(shm::BatchCommit{});
  if (auto* f = std::get_if<Failure>(&commit_id)) return fail(ctx, *f);
  auto ack_r = sess.wait(std::get<std::uint64_t>(commit_id));
  if (auto* f = std::get_if<Failure>(&ack_r)) return fail(ctx, *f);
  shm::Ack ack = std::get<shm::Ack>(ack_r);

  // The first command the server rejected, if any (its ack came before the commit's).
  std::string first;
  if (ack.status != shm::Status::ok) {
    (void)sess.drain();
    for (const auto& e : sess.events()) {
      const auto* a = std::get_if<shm::Ack>(&e.body);
      if (a == nullptr || a->status == shm::Status::ok || a->status == shm::Status::accepted) continue;
      auto it = what.find(a->cmd_id);
      first = (it == what.end() ? "command " + std::to_string(a->cmd_id) : it->second) + ": " +
              std::string(shm::status_name(a->status)) + ": " + a->text;
      break;
    }
    if (!first.empty() && ack.text.find(first) == std::string::npos) ack.text += "; first rejected: " + first;
  }
  return report(ctx, "load", ack,
                "applied " + std::to_string(sas.size()) + " SAs and " + std::to_string(pols.size()) +
                    " policies from " + path + " as one batch");
}

std::string drop_label(std::size_t i) {
  return i < dp::kDropReasonCount ? std::string(dp::kDropInfo.at(i).name) : "reason_" + std::to_string(i);
}

int cmd_counters(Ctx& ctx, const Command& c, const Parsed& p) {
  shm::CountersQuery q;
  const bool any = p.has("spi") || p.has("dir") || p.has("dst");
  if (any) {
    if (!(p.has("spi") && p.has("dir") && p.has("dst"))) {
      return fail(ctx, usage("--spi, --dir and --dst name one SA: give all three or none"), c.path);
    }
    CTL_TRY(spi, parse_spi(p.values.at("spi")));
    CTL_TRY(dir, parse_with<Direction>("dir", p.values.at("dir"), direction_from_name));
    CTL_TRY(dst, parse_with<IpAddress>("dst", p.values.at("dst"), IpAddress::parse));
    q.scope = shm::CounterScope::one;
    q.sa = shm::SaKey{spi, dir, dst};
  }
  auto s = Session::open(ctx);
  if (auto* f = std::get_if<Failure>(&s)) return fail(ctx, *f);
  auto& sess = *std::get<std::unique_ptr<Session>>(s);
  std::vector<shm::SaCounters> rows;
  for (int rounds = 0; rounds < 65536; ++rounds) {
    auto id_r = sess.send(q);
    if (auto* f = std::get_if<Failure>(&id_r)) return fail(ctx, *f);
    const auto id = std::get<std::uint64_t>(id_r);
    auto ack_r = sess.wait(id);
    if (auto* f = std::get_if<Failure>(&ack_r)) return fail(ctx, *f);
    const auto& ack = std::get<shm::Ack>(ack_r);
    if (ack.status != shm::Status::ok) return report(ctx, "counters", ack, "");
    if (auto d = sess.drain(); !d.empty()) return fail(ctx, Failure{kExitNotRunning, d});
    auto& ev = sess.events();
    for (auto it = ev.begin(); it != ev.end();) {
      const auto* cn = std::get_if<shm::Counters>(&it->body);
      if (cn != nullptr && cn->query_id == id) {
        rows.push_back(cn->c);
        it = ev.erase(it);
      } else {
        ++it;
      }
    }
    if (ack.value == 0 || ack.value == q.cursor) break;
    q.cursor = static_cast<std::uint32_t>(ack.value);
  }

  if (ctx.json) {
    ctx.out << "{\"sas\":[";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows.at(i);
      ctx.out << (i ? "," : "") << "{\"spi\":" << r.sa.spi << ",\"spi_hex\":" << json_str(hex32(r.sa.spi))
              << ",\"dir\":" << json_str(direction_name(r.sa.dir)) << ",\"dst\":" << json_str(r.sa.dst.to_string())
              << ",\"reqid\":" << r.reqid << ",\"packets\":" << r.packets << ",\"bytes\":" << r.bytes
              << ",\"drops\":{";
      const std::size_t n = std::min<std::size_t>(r.n_drops, shm::kMaxDropCounters);
      for (std::size_t d = 0; d < n; ++d) ctx.out << (d ? "," : "") << json_str(drop_label(d)) << ":" << r.drops.at(d);
      ctx.out << "}}";
    }
    ctx.out << "]}\n";
    return kExitOk;
  }
  if (rows.empty()) {
    ctx.out << "no SAs\n";
    return kExitOk;
  }
  std::vector<std::array<std::string, 7>> table;
  table.push_back({"SPI", "DIR", "DST", "REQID", "PACKETS", "BYTES", "DROPS"});
  for (const auto& r : rows) {
    std::string drops;
    const std::size_t n = std::min<std::size_t>(r.n_drops, shm::kMaxDropCounters);
    for (std::size_t d = 1; d < n; ++d) {  // 0 is "not dropped"
      if (r.drops.at(d) != 0) drops += (drops.empty() ? "" : " ") + drop_label(d) + "=" + std::to_string(r.drops.at(d));
    }
    table.push_back({hex32(r.sa.spi), direction_name(r.sa.dir), r.sa.dst.to_string(), std::to_string(r.reqid),
                     std::to_string(r.packets), std::to_string(r.bytes), drops.empty() ? "-" : drops});
  }
  std::array<std::size_t, 7> w{};
  for (const auto& row : table)
    for (std::size_t i = 0; i < w.size(); ++i) w.at(i) = std::max(w.at(i), row.at(i).size());
  for (const auto& row : table) {
    std::string line;
    for (std::size_t i = 0; i < w.size(); ++i) {
      line += row.at(i);
      if (i + 1 < w.size()) line += std::string(w.at(i) - row.at(i).size() + 2, ' ');
    }
    ctx.out << line << "\n";
  }
  return kExitOk;
}

// ---- telemetry-backed listings (sa list, policy list, ports, cores) ----

std::string jstr(const json::JsonValue& o, std::string_view k) {
  const json::JsonValue* v = o.find(k);
  if (v == nullptr) return "-";
  if (const std::string* s = v->as_string()) return *s;
  if (auto i = v->as_int()) return std::to_string(*i);
  return "-";
}
std::uint64_t jnum(const json::JsonValue& o, std::string_view k) {
  const json::JsonValue* v = o.find(k);
  if (v == nullptr) return 0;
  auto i = v->as_int();
  return i && *i > 0 ? static_cast<std::uint64_t>(*i) : 0;
}
// Non-zero "drop_*" members as "name=count ...".
std::string jdrops(const json::JsonValue& o) {
  std::string d;
  if (const auto* obj = o.as_object()) {
    for (const auto& [k, v] : *obj) {
      if (k.rfind("drop_", 0) != 0) continue;
      auto n = v.as_int();
      if (n && *n != 0) d += (d.empty() ? "" : " ") + k.substr(5) + "=" + std::to_string(*n);
    }
  }
  return d.empty() ? "-" : d;
}

void print_table(Ctx& ctx, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w;
  for (const auto& r : rows) {
    if (w.size() < r.size()) w.resize(r.size());
    for (std::size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(w[i] - r[i].size() + 2, ' ');
    }
    ctx.out << line << "\n";
  }
}

Res<TelemetryReply> tel(Ctx& ctx, const std::string& command) {
  auto r = telemetry_query(telemetry_socket(ctx.instance), command, ctx.timeout);
  if (!r) return Failure{kExitNotRunning, r.error().message};
  return std::move(*r);
}

// Every object of a listing, "/cygnet/<what>,0", ",1", ... up to the
// "total" each reply carries (DPDK 22.11 telemetry cannot nest objects).
Res<std::vector<json::JsonValue>> tel_all(Ctx& ctx, const std::string& what) {
  std::vector<json::JsonValue> all;
  for (std::uint64_t i = 0;; ++i) {
    auto r = tel(ctx, "/cygnet/" + what + "," + std::to_string(i));
    if (auto* f = std::get_if<Failure>(&r)) return *f;
    const auto& rep = std::get<TelemetryReply>(r);
    if (rep.value.as_object() == nullptr) return Failure{kExitNotRunning, "unexpected telemetry reply: " + rep.raw};
    const std::uint64_t total = jnum(rep.value, "total");
    if (i >= total || rep.value.as_object()->size() <= 1) break;
    all.push_back(rep.value);
    if (i + 1 >= total) break;
  }
  return all;
}

// --json: one array of the objects as cygnet-dp reported them.
void print_json_objects(Ctx& ctx, const std::vector<json::JsonValue>& v) {
  ctx.out << "[";
  for (std::size_t i = 0; i < v.size(); ++i) {
    const auto* obj = v[i].as_object();
    ctx.out << (i ? "," : "") << "{";
    std::size_t k = 0;
    for (const auto& [name, val] : *obj) {
      if (name == "total") continue;
      ctx.out << (k++ ? "," : "") << "\"" << name << "\":";
      if (const std::string* str = val.as_string()) {
        ctx.out << "\"";
        for (char ch : *str) {  // names, addresses, selectors: escape what JSON requires
          if (ch == '"' || ch == '\\') ctx.out << '\\';
          ctx.out << ch;
        }
        ctx.out << "\"";
      } else {
        ctx.out << jstr(v[i], name);
      }
    }
    ctx.out << "}";
  }
  ctx.out << "]\n";
}

int cmd_listing(Ctx& ctx, const std::string& what, const std::vector<std::pair<std::string, std::string>>& cols,
                bool drops, std::string (*cell)(const json::JsonValue&, const std::string&)) {
  auto r = tel_all(ctx, what);
  if (auto* f = std::get_if<Failure>(&r)) return fail(ctx, *f);
  const auto& all = std::get<std::vector<json::JsonValue>>(r);
  if (ctx.json) {
    print_json_objects(ctx, all);
    return kExitOk;
  }
  if (all.empty()) {
    ctx.out << "none\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows(1);
  for (const auto& c : cols) rows[0].push_back(c.second);
  if (drops) rows[0].push_back("DROPS");
  for (const auto& e : all) {
    std::vector<std::string> row;
    for (const auto& c : cols) row.push_back(cell ? cell(e, c.first) : jstr(e, c.first));
    if (drops) row.push_back(jdrops(e));
    rows.push_back(std::move(row));
  }
  print_table(ctx, rows);
  return kExitOk;
}

std::string sa_cell(const json::JsonValue& e, const std::string& col) {
  if (col == "spi") return hex32(static_cast<std::uint32_t>(jnum(e, "spi")));
  if (col == "enc") return jstr(e, "enc") + (jnum(e, "encap") ? "+udp" : "") + (jnum(e, "esn") ? "+esn" : "");
  if (col == "next_seq") return jstr(e, "dir") == "out" ? jstr(e, "next_seq") : "-";
  return jstr(e, col);
}

int cmd_sa_list(Ctx& ctx, const Command&, const Parsed&) {
  return cmd_listing(ctx, "sa",
                     {{"spi", "SPI"}, {"dir", "DIR"}, {"src", "SRC"}, {"dst", "DST"}, {"mode", "MODE"}, {"enc", "ENC"},
                      {"integ", "INTEG"}, {"reqid", "REQID"}, {"owner_worker", "WORKER"}, {"packets", "PACKETS"},
                      {"bytes", "BYTES"}, {"next_seq", "NEXT_SEQ"}},
                     true, sa_cell);
}

int cmd_policy_list(Ctx& ctx, const Command&, const Parsed&) {
  return cmd_listing(ctx, "policy",
                     {{"dir", "DIR"}, {"priority", "PRIORITY"}, {"action", "ACTION"}, {"reqid", "REQID"},
                      {"selector", "SELECTOR"}},
                     false, nullptr);
}

int cmd_ports(Ctx& ctx, const Command&, const Parsed&) {
  return cmd_listing(ctx, "port",
                     {{"name", "PORT"}, {"side", "SIDE"}, {"mac", "MAC"}, {"mtu", "MTU"}, {"rx_packets", "RX_PKTS"},
                      {"rx_bytes", "RX_BYTES"}, {"tx_packets", "TX_PKTS"}, {"tx_bytes", "TX_BYTES"}},
                     true, nullptr);
}

int cmd_cores(Ctx& ctx, const Command&, const Parsed&) {
  return cmd_listing(ctx, "core",
                     {{"worker", "WORKER"}, {"lcore", "LCORE"}, {"flow_cache_hits", "CACHE_HITS"},
                      {"flow_cache_misses", "CACHE_MISSES"}, {"acquires", "ACQUIRES"},
                      {"acquires_limited", "ACQUIRES_LIMITED"}},
                     false, nullptr);
}

// ---- cygnet-ike (its control socket, cp/ike/daemon/daemon.h) -------------

std::string ike_socket(const Ctx& ctx, const Parsed& p) {
  if (const auto* c = p.get("control")) return *c;
  return "/run/cygnet/ike-" + ctx.instance + ".sock";
}

int cmd_ike(Ctx& ctx, const Command& c, const Parsed& p) {
  std::string line(c.path.substr(4));  // "ike initiate" -> "initiate"
  if (line == "initiate" || line == "terminate" || line == "liveness" || line == "rekey" || line == "child") {
    if (p.positional.size() != 1) return fail(ctx, usage("'" + std::string(c.path) + "' needs a connection name"));
    if (line == "rekey" && p.has("ike")) line = "rekey-ike";
    line += " " + p.positional[0];
  } else if (line == "list" && ctx.json) {
    line += " json";
  }
  const std::string path = ike_socket(ctx, p);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) return fail(ctx, usage("control socket path too long"));
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int e = errno;
    if (fd >= 0) ::close(fd);
    return fail(ctx, Failure{kExitNotRunning, "cygnet-ike is not running (" + path + ": " + std::strerror(e) + ")"});
  }
  line += "\n";
  (void)!::write(fd, line.data(), line.size());
  std::string reply;
  char buf[4096];
  pollfd pf{fd, POLLIN, 0};
  while (::poll(&pf, 1, static_cast<int>(ctx.timeout.count())) > 0) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    reply.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const auto nl = reply.find('\n');
  const std::string head = reply.substr(0, nl), body = nl == std::string::npos ? "" : reply.substr(nl + 1);
  if (head == "ok") {
    ctx.out << body;
    return kExitOk;
  }
  if (head.starts_with("error: ")) {
    ctx.err << "cygnetctl: cygnet-ike: " << head.substr(7) << "\n";
    return kExitRefused;
  }
  return fail(ctx, Failure{kExitNotRunning, "cygnet-ike gave no answer on " + path});
}

#undef CTL_TRY

const std::vector<Command>& commands() {
  static const std::vector<Command> k{
      {"sa add", "install an SA",
       "usage: cygnetctl [--instance NAME] [--json] sa add --spi SPI --dir in|out --src ADDR --dst ADDR\n"
       "         [--mode tunnel|transport] --enc ALG (--enc-key HEX | --enc-key-file PATH)\n"
       "         [--integ ALG (--integ-key HEX | --integ-key-file PATH)] [--reqid N] [--esn]\n"
       "         [--no-anti-replay] [--replay-window N] [--encap SPORT:DPORT]\n"
       "         [--sel-src PREFIX --sel-dst PREFIX]\n"
       "Keys are hex (0x optional; AEAD keys include the 4-byte salt). A key on the command line\n"
       "is visible to other users in ps(1) while cygnetctl runs: prefer --enc-key-file, a file\n"
       "of mode 0600 holding one line of hex.\n",
       {{"spi", true}, {"dir", true}, {"src", true}, {"dst", true}, {"mode", true}, {"enc", true},
        {"enc-key", true}, {"enc-key-file", true}, {"integ", true}, {"integ-key", true}, {"integ-key-file", true},
        {"reqid", true}, {"esn", false}, {"no-anti-replay", false}, {"replay-window", true}, {"encap", true},
        {"sel-src", true}, {"sel-dst", true}},
       0, cmd_sa_add},
      {"sa delete", "delete an SA",
       "usage: cygnetctl [--instance NAME] [--json] sa delete --spi SPI --dir in|out --dst ADDR\n",
       {{"spi", true}, {"dir", true}, {"dst", true}}, 0, cmd_sa_delete},
      {"sa list", "list SAs with algorithms, owner core and counters (no keys)",
       "usage: cygnetctl [--instance NAME] [--json] sa list\n"
       "Read from cygnet-dp's DPDK telemetry socket; keys are never shown.\n",
       {}, 0, cmd_sa_list},
      {"policy add", "install a policy",
       "usage: cygnetctl [--instance NAME] [--json] policy add --dir in|out --src PREFIX --dst PREFIX\n"
       "         [--proto P [--sport R] [--dport R] | --proto icmp|icmpv6 [--icmp-type R] [--icmp-code R]]\n"
       "         --action protect|bypass|discard|trap [--reqid N] [--priority N]\n"
       "Ranges: any, 443 or 1024-65535. Lower priority wins (default 1000).\n",
       {{"dir", true}, {"src", true}, {"dst", true}, {"proto", true}, {"sport", true}, {"dport", true},
        {"icmp-type", true}, {"icmp-code", true}, {"action", true}, {"reqid", true}, {"priority", true}},
       0, cmd_policy_add},
      {"policy delete", "delete a policy",
       "usage: cygnetctl [--instance NAME] [--json] policy delete --dir in|out --src PREFIX --dst PREFIX\n"
       "         [--proto P [--sport R] [--dport R] | --icmp-type R --icmp-code R]\n"
       "The direction and selector name the policy, exactly as it was added.\n",
       {{"dir", true}, {"src", true}, {"dst", true}, {"proto", true}, {"sport", true}, {"dport", true},
        {"icmp-type", true}, {"icmp-code", true}},
       0, cmd_policy_delete},
      {"policy list", "list policies in evaluation order (out, then in)",
       "usage: cygnetctl [--instance NAME] [--json] policy list\n", {}, 0, cmd_policy_list},
      {"ports", "ports with side, MAC, MTU, packet counters and named drops",
       "usage: cygnetctl [--instance NAME] [--json] ports\n", {}, 0, cmd_ports},
      {"cores", "worker cores with their flow cache and ACQUIRE counters",
       "usage: cygnetctl [--instance NAME] [--json] cores\n", {}, 0, cmd_cores},
      {"load", "load a config file's static SAs and policies as one batch",
       "usage: cygnetctl [--instance NAME] [--json] load FILE\n"
       "Sends the `sas` and `policies` of FILE as one batch: cygnet-dp applies all of them or none.\n",
       {}, 1, cmd_load},
      {"counters", "per-SA packet, byte and drop counters",
       "usage: cygnetctl [--instance NAME] [--json] counters [--spi SPI --dir in|out --dst ADDR]\n"
       "Without an SA, all SAs. Drops are counted per named reason (dp/esp/drop.h).\n",
       {{"spi", true}, {"dir", true}, {"dst", true}}, 0, cmd_counters},
      {"ike list", "cygnet-ike: IKE SAs, their Child SAs (state, algorithms, peers, SPIs, counters) and traps",
       "usage: cygnetctl [--instance NAME] [--json] ike list [--control PATH]\n"
       "Asks cygnet-ike over its control socket (default /run/cygnet/ike-INSTANCE.sock).\n",
       {{"control", true}}, 0, cmd_ike},
      {"ike initiate", "cygnet-ike: bring a connection up",
       "usage: cygnetctl [--instance NAME] ike initiate CONNECTION [--control PATH]\n", {{"control", true}}, 1,
       cmd_ike},
      {"ike terminate", "cygnet-ike: take a connection down (Delete to the peer)",
       "usage: cygnetctl [--instance NAME] ike terminate CONNECTION [--control PATH]\n", {{"control", true}}, 1,
       cmd_ike},
      {"ike liveness", "cygnet-ike: send a liveness check on a connection",
       "usage: cygnetctl [--instance NAME] ike liveness CONNECTION [--control PATH]\n", {{"control", true}}, 1,
       cmd_ike},
      {"ike rekey", "cygnet-ike: rekey a connection's Child SA, or with --ike its IKE SA, now",
       "usage: cygnetctl [--instance NAME] ike rekey CONNECTION [--ike] [--control PATH]\n"
       "The first Child SA not already being rekeyed, with CREATE_CHILD_SA (RFC 7296 2.8).\n",
       {{"control", true}, {"ike", false}}, 1, cmd_ike},
      {"ike child", "cygnet-ike: one more Child SA on a connection's IKE SA",
       "usage: cygnetctl [--instance NAME] ike child CONNECTION [--control PATH]\n", {{"control", true}}, 1,
       cmd_ike},
      {"ike load", "cygnet-ike: read its configuration and secrets again",
       "usage: cygnetctl [--instance NAME] ike load [--control PATH]\n"
       "cygnet-ike re-reads the files it was started with. Unchanged connections keep their SAs;\n"
       "changed and removed ones are deleted; new and changed ones start as their `start` says.\n"
       "A configuration with an error is refused and the running one stays.\n",
       {{"control", true}}, 0, cmd_ike},
      {"ike stats", "cygnet-ike: message and SA counters",
       "usage: cygnetctl [--instance NAME] ike stats [--control PATH]\n", {{"control", true}}, 0, cmd_ike},
  };
  return k;
}

void main_help(std::ostream& o) {
  o << "usage: cygnetctl [--instance NAME] [--json] [--timeout MS] COMMAND [OPTIONS]\n"
       "Talks to a running cygnet-dp (instance default '"
    << kDefaultInstance << "') over shared memory.\n\ncommands:\n";
  for (const auto& c : commands()) {
    o << "  " << c.path << std::string(c.path.size() < 16 ? 16 - c.path.size() : 1, ' ') << c.summary << "\n";
  }
  o << "\n'cygnetctl COMMAND --help' for its options.\n"
       "exit status: 0 ok, 1 refused by cygnet-dp, 2 usage or validation error (nothing sent),\n"
       "3 cygnet-dp not running, gone or not answering.\n";
}

bool valid_instance(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
           ch == '-';
  });
}

}  // namespace

int run(std::span<const std::string> args, std::ostream& out, std::ostream& err) {
  Ctx ctx{out, err};
  // Global options come first (before the command words).
  std::size_t i = 0;
  bool help = false;
  for (; i < args.size() && args[i].starts_with("-"); ++i) {
    const std::string& a = args[i];
    if (a == "--json") {
      ctx.json = true;
    } else if (a == "--help" || a == "-h") {
      help = true;
    } else if (a == "--instance" || a == "--timeout") {
      if (i + 1 >= args.size()) return fail(ctx, usage(a + " needs a value"));
      if (auto f = apply_global(ctx, std::string_view(a).substr(2), args[++i])) return fail(ctx, *f);
    } else {
      return fail(ctx, usage("unknown option " + a + " (global options: --instance NAME, --json, --timeout MS, "
                             "--help; command options go after the command)"));
    }
  }
  auto rest = args.subspan(i);
  if (rest.empty() || rest[0] == "help") {
    main_help(help || !rest.empty() ? out : err);
    return help || !rest.empty() ? kExitOk : kExitUsage;
  }
  const Command* cmd = nullptr;
  std::size_t words = 0;
  for (const auto& c : commands()) {
    const auto sp = c.path.find(' ');
    if (sp == std::string_view::npos) {
      if (rest[0] == c.path) cmd = &c, words = 1;
    } else if (rest.size() >= 2 && rest[0] == c.path.substr(0, sp) && rest[1] == c.path.substr(sp + 1)) {
      cmd = &c, words = 2;
    }
  }
  if (cmd == nullptr) {
    if ((rest[0] == "sa" || rest[0] == "policy" || rest[0] == "ike") && (rest.size() < 2 || rest[1] == "--help" || rest[1] == "-h")) {
      std::ostream& o = rest.size() < 2 ? err : out;
      for (const auto& c : commands())
        if (c.path.starts_with(rest[0] + " ")) o << c.help;
      return rest.size() < 2 ? kExitUsage : kExitOk;
    }
    std::string what = rest[0] + (rest.size() >= 2 && (rest[0] == "sa" || rest[0] == "policy") ? " " + rest[1] : "");
    return fail(ctx, usage("unknown command '" + what + "' (see 'cygnetctl --help')"));
  }
  auto parsed = parse_opts(*cmd, rest.subspan(words));
  if (auto* f = std::get_if<Failure>(&parsed)) return fail(ctx, *f, cmd->path);
  const Parsed& p = std::get<Parsed>(parsed);
  for (std::string_view g : {"json", "instance", "timeout"}) {
    if (const auto* v = p.get(g)) {
      if (auto f = apply_global(ctx, g, *v)) return fail(ctx, *f, cmd->path);
    }
  }
  if (p.help || help) {
    out << cmd->help;
    return kExitOk;
  }
  return cmd->run(ctx, *cmd, p);
}

}  // namespace cygnet::ctl
