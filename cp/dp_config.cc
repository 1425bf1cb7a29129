#include "cp/dp_config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <libconfig.h++>
#include <utility>

namespace cygnet::cfg {

namespace {

using detail::check_known;
using detail::err_at;
using libconfig::Setting;

Error err_at(const Setting& s, const std::string& msg) { return err_at(s, "", msg); }

constexpr std::array<std::string_view, 7> kVdevDrivers = {"af_packet", "tap",         "pcap", "null",
                                                          "ring",      "virtio_user", "memif"};

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string vdev_driver_list() {
  std::string out;
  for (auto d : kVdevDrivers) out += (out.empty() ? "" : ", ") + std::string(d);
  return out;
}

bool is_pow2(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// ---- typed getters: every message says what was expected ----

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

// An integer in [min, max]; a power of two too when pow2.
Result<std::uint64_t> int_value(const Setting& s, std::uint64_t min, std::uint64_t max, bool pow2) {
  long long v = 0;
  if (s.getType() == Setting::TypeInt) {
    v = static_cast<int>(s);
  } else if (s.getType() == Setting::TypeInt64) {
    v = static_cast<long long>(s);
  } else {
    return err_at(s, "expected an integer " + std::string(pow2 ? "power of two " : "") + "in " + std::to_string(min) +
                         "-" + std::to_string(max));
  }
  if (v < 0 || static_cast<std::uint64_t>(v) < min || static_cast<std::uint64_t>(v) > max) {
    return err_at(s, "value " + std::to_string(v) + " out of range " + std::to_string(min) + "-" + std::to_string(max));
  }
  if (pow2 && !is_pow2(static_cast<std::uint64_t>(v))) {
    return err_at(s, "value " + std::to_string(v) + " is not a power of two (expected a power of two in " +
                         std::to_string(min) + "-" + std::to_string(max) + ")");
  }
  return static_cast<std::uint64_t>(v);
}

template <typename T>
Result<void> get_uint(const Setting& g, const char* name, std::uint64_t min, std::uint64_t max, bool pow2, T& out) {
  if (!g.exists(name)) return {};  // keep the default
  auto v = int_value(g[name], min, max, pow2);
  if (!v) return v.error();
  out = static_cast<T>(*v);
  return {};
}

// The elements of an array [ ... ] or a list ( ... ); `what` describes one.
Result<const Setting*> get_sequence(const Setting& g, const char* name, bool required, const std::string& what) {
  if (!g.exists(name)) {
    if (required) return err_at(g, name, "missing (expected " + what + ")");
    return static_cast<const Setting*>(nullptr);
  }
  const Setting& s = g[name];
  if (!s.isArray() && !s.isList()) return err_at(s, "expected " + what);
  return &s;
}

bool valid_name(std::string_view n) {
  if (n.empty() || n.size() > kMaxNameLen) return false;
  return std::all_of(n.begin(), n.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; });
}

// ---- addresses ----

// Bits [from, width) of a are all `bit`.
bool tail_bits_are(const IpAddress& a, unsigned from, bool bit) {
  for (unsigned i = from; i < a.bit_width(); ++i) {
    bool b = (a.bytes[i / 8] & (0x80u >> (i % 8))) != 0;
    if (b != bit) return false;
  }
  return true;
}

bool is_multicast(const IpAddress& a) {
  return a.family == Family::ipv4 ? (a.bytes[0] & 0xf0) == 0xe0 : a.family == Family::ipv6 && a.bytes[0] == 0xff;
}

bool is_loopback(const IpAddress& a) {
  if (a.family == Family::ipv4) return a.bytes[0] == 127;
  return a.family == Family::ipv6 && a.bytes[15] == 1 &&
         std::all_of(a.bytes.begin(), a.bytes.begin() + 15, [](std::uint8_t b) { return b == 0; });
}

IpPrefix network_of(const IpPrefix& p) {
  IpPrefix n = p;
  for (unsigned i = p.len; i < p.addr.bit_width(); ++i) {
    n.addr.bytes[i / 8] &= static_cast<std::uint8_t>(~(0x80u >> (i % 8)));
  }
  return n;
}

bool overlaps(const IpPrefix& a, const IpPrefix& b) {
  if (a.family() != b.family()) return false;
  IpPrefix shorter = a.len <= b.len ? a : b;
  const IpPrefix& other = a.len <= b.len ? b : a;
  return shorter.contains(other.addr);
}

// "192.0.2.1/24": a port's own address and its on-link prefix length.
Result<IpPrefix> parse_interface_address(std::string_view text) {
  const std::string t(text);
  auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    return make_error("'" + t +
                      "' has no prefix length (expected an address with its on-link prefix, e.g. "
                      "192.0.2.1/24 or 2001:db8::1/64)");
  }
  auto a = IpAddress::parse(text.substr(0, slash));
  if (!a) return make_error(a.error().message + " (expected e.g. 192.0.2.1/24 or 2001:db8::1/64)");
  auto lt = text.substr(slash + 1);
  unsigned len = 0;
  auto [ptr, ec] = std::from_chars(lt.data(), lt.data() + lt.size(), len);
  if (lt.empty() || ec != std::errc() || ptr != lt.data() + lt.size() || len < 1 || len > a->bit_width()) {
    return make_error("'" + t + "': prefix length must be 1-" + std::to_string(a->bit_width()));
  }
  if (a->is_unspecified() || is_multicast(*a) || is_loopback(*a)) {
    return make_error("'" + t + "' is not a unicast address a port can own");
  }
  const unsigned width = a->bit_width();
  if (a->family == Family::ipv4 && len <= 30 && tail_bits_are(*a, len, false)) {
    return make_error("'" + t + "' is the network address of its subnet (expected a host address)");
  }
  if (a->family == Family::ipv4 && len <= 30 && tail_bits_are(*a, len, true)) {
    return make_error("'" + t + "' is the broadcast address of its subnet (expected a host address)");
  }
  if (a->family == Family::ipv6 && len <= width - 2 && tail_bits_are(*a, len, false)) {
    return make_error("'" + t + "' is the subnet-router anycast address (RFC 4291 2.6.1; expected a host address)");
  }
  return IpPrefix{*a, static_cast<std::uint8_t>(len)};
}

std::string addresses_of(const PortConfig& p) {
  std::vector<std::string> v;
  for (const auto& a : p.addresses) v.push_back(a.to_string());
  return join(v);
}

const IpPrefix* on_link_prefix(const PortConfig& p, const IpAddress& a) {
  for (const auto& pre : p.addresses)
    if (pre.contains(a)) return &pre;
  return nullptr;
}

bool is_own_address(const PortConfig& p, const IpAddress& a) {
  return std::any_of(p.addresses.begin(), p.addresses.end(), [&](const IpPrefix& x) { return x.addr == a; });
}

bool has_family(const PortConfig& p, Family f) {
  return std::any_of(p.addresses.begin(), p.addresses.end(), [&](const IpPrefix& x) { return x.family() == f; });
}

// ---- devices ----

struct Device {
  bool pci = false;
  std::string driver;     // vdev driver without "net_", empty for PCI
  std::string canonical;  // "0000:03:00.0" (lower case, with domain) or the vdev name
  std::vector<std::pair<std::string, std::string>> args;

  bool has_arg(std::string_view k) const {
    return std::any_of(args.begin(), args.end(), [&](const auto& kv) { return kv.first == k; });
  }
  const std::string* arg(std::string_view k) const {
    for (const auto& kv : args)
      if (kv.first == k) return &kv.second;
    return nullptr;
  }
};

bool all_hex(std::string_view s, std::size_t n) {
  return s.size() == n &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// "DDDD:BB:DD.F" or "BB:DD.F"; device 00-1f, function 0-7.
bool parse_pci(std::string_view s, std::string& canonical) {
  std::string_view domain = "0000";
  auto c1 = s.find(':');
  if (c1 == std::string_view::npos) return false;
  if (s.find(':', c1 + 1) != std::string_view::npos) {
    domain = s.substr(0, c1);
    s = s.substr(c1 + 1);
    c1 = s.find(':');
  }
  auto dot = s.find('.');
  if (!all_hex(domain, 4) || c1 == std::string_view::npos || dot == std::string_view::npos || dot < c1) return false;
  auto bus = s.substr(0, c1), dev = s.substr(c1 + 1, dot - c1 - 1), fn = s.substr(dot + 1);
  if (!all_hex(bus, 2) || !all_hex(dev, 2) || fn.size() != 1 || fn[0] < '0' || fn[0] > '7') return false;
  if (std::stoul(std::string(dev), nullptr, 16) > 0x1f) return false;
  canonical = std::string(domain) + ":" + std::string(bus) + ":" + std::string(dev) + "." + std::string(fn);
  for (auto& c : canonical) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return true;
}

Result<Device> parse_device(std::string_view text) {
  const std::string t(text);
  const std::string forms =
      "a PCI address DDDD:BB:DD.F or BB:DD.F, or a vdev net_<driver><n> with driver one of: " + vdev_driver_list();
  if (text.empty()) return make_error("empty device (expected " + forms + ")");
  for (char c : text) {
    if (!std::isgraph(static_cast<unsigned char>(c))) {
      return make_error("'" + t + "' contains a space or control character (expected " + forms + ")");
    }
  }
  Device d;
  std::string_view name = device_name(text);
  if (name.substr(0, 4) == "net_") {
    std::string_view rest = name.substr(4);
    std::size_t digits = 0;
    while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[rest.size() - 1 - digits]))) ++digits;
    std::string_view drv = rest.substr(0, rest.size() - digits);
    if (std::find(kVdevDrivers.begin(), kVdevDrivers.end(), drv) == kVdevDrivers.end()) {
      return make_error("unknown vdev driver 'net_" + std::string(drv) +
                        "' (expected net_<driver><n> with driver one of: " + vdev_driver_list() + ")");
    }
    if (digits == 0 || digits > 3) {
      return make_error("'" + std::string(name) + "' needs an instance number of 1-3 digits (expected e.g. net_" +
                        std::string(drv) + "0)");
    }
    d.driver = std::string(drv);
    d.canonical = std::string(name);
  } else if (!parse_pci(name, d.canonical)) {
    return make_error("'" + std::string(name) + "' is not a device (expected " + forms + ")");
  } else {
    d.pci = true;
  }
  // ",key=value" device arguments, passed to DPDK as they are.
  std::string_view args = text.substr(name.size());
  while (!args.empty()) {
    args.remove_prefix(1);  // the ','
    auto end = args.find(',');
    std::string_view kv = args.substr(0, end);
    args = end == std::string_view::npos ? std::string_view{} : args.substr(end);
    auto eq = kv.find('=');
    std::string_view k = kv.substr(0, eq);
    bool key_ok = !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';  // net_null's no-rx
    });
    if (eq == std::string_view::npos || !key_ok || eq + 1 == kv.size()) {
      return make_error("device argument '" + std::string(kv) + "' in '" + t +
                        "' is malformed (expected ,key=value with key of letters, digits, _ and -)");
    }
    d.args.emplace_back(std::string(k), std::string(kv.substr(eq + 1)));
  }
  if (d.driver == "af_packet" && !d.has_arg("iface")) {
    return make_error("'" + t + "': net_af_packet needs the kernel interface (expected e.g. " + d.canonical +
                      ",iface=veth0)");
  }
  if (d.driver == "virtio_user" && !d.has_arg("path")) {
    return make_error("'" + t + "': net_virtio_user needs a path (expected e.g. " + d.canonical +
                      ",path=/dev/vhost-net)");
  }
  return d;
}

// ---- the groups ----

struct Loaded {
  DpConfig cfg;
  std::vector<Device> devices;  // parallel to cfg.ports
  std::string file;             // for warnings
};

// "file:line: path: msg", as errors are, for a warning.
std::string warning_at(const Setting& s, const std::string& file, const std::string& msg) {
  std::string m = err_at(s, msg).message;
  if (m.rfind("<string>:", 0) == 0) m = file + m.substr(8);
  return m;
}

Result<PortConfig::Side> parse_side(std::string_view s) {
  if (s == "protected") return PortConfig::Side::protected_;
  if (s == "unprotected") return PortConfig::Side::unprotected;
  return make_error("unknown side '" + std::string(s) + "' (expected one of: protected, unprotected)");
}

Result<void> parse_port(const Setting& g, Loaded& out) {
  if (!g.isGroup()) {
    return err_at(g, "expected a group { name = ...; device = ...; side = ...; addresses = [ ... ]; }");
  }
  if (auto r = check_known(g, {"name", "device", "side", "addresses", "mtu", "mac"}); !r) return r.error();
  PortConfig p;
  auto name = get_string(g, "name", true, "a port name of 1-32 letters, digits, _ or -");
  if (!name) return name.error();
  if (!valid_name(*name)) {
    return err_at(g["name"], "'" + *name + "' is not a port name (expected 1-32 letters, digits, _ or -)");
  }
  if (out.cfg.find_port(*name)) return err_at(g["name"], "duplicate port name '" + *name + "'");
  p.name = *name;

  auto dev = get_string(g, "device", true, "a PCI address or a vdev");
  if (!dev) return dev.error();
  auto d = parse_device(*dev);
  if (!d) return err_at(g["device"], d.error().message);
  for (std::size_t i = 0; i < out.devices.size(); ++i) {
    if (out.devices[i].canonical == d->canonical) {
      return err_at(g["device"], "device " + d->canonical + " is already used by port '" + out.cfg.ports[i].name + "'");
    }
  }
  p.device = *dev;

  auto side = get_string(g, "side", true, "\"protected\" or \"unprotected\"");
  if (!side) return side.error();
  auto sd = parse_side(*side);
  if (!sd) return err_at(g["side"], sd.error().message);
  p.side = *sd;

  const std::string addr_what = "an array of addresses with prefix length: addresses = [ \"192.0.2.1/24\" ];";
  auto addrs = get_sequence(g, "addresses", true, addr_what);
  if (!addrs) return addrs.error();
  const Setting& al = **addrs;
  if (al.getLength() == 0) return err_at(al, "empty (expected at least one address: " + addr_what + ")");
  for (int i = 0; i < al.getLength(); ++i) {
    const Setting& e = al[i];
    if (e.getType() != Setting::TypeString) return err_at(e, "expected an address string like \"192.0.2.1/24\"");
    auto a = parse_interface_address(e.c_str());
    if (!a) return err_at(e, a.error().message);
    for (const auto& prev : p.addresses) {
      if (prev.addr == a->addr) return err_at(e, "address " + a->addr.to_string() + " is listed twice");
    }
    // One subnet, one port: otherwise on-link lookups are ambiguous.
    for (const auto& other : out.cfg.ports) {
      for (const auto& o : other.addresses) {
        if (overlaps(o, *a)) {
          return err_at(e, a->to_string() + " overlaps " + o.to_string() + " of port '" + other.name +
                               "' (expected each subnet on one port)");
        }
      }
    }
    p.addresses.push_back(*a);
  }

  if (auto r = get_uint(g, "mtu", 68, 9216, false, p.mtu); !r) return r.error();
  if (has_family(p, Family::ipv6) && p.mtu < 1280) {
    return err_at(g["mtu"],
                  "MTU " + std::to_string(p.mtu) +
                      " is below IPv6's minimum (expected at least 1280 on a port with IPv6 addresses, RFC 8200 5)");
  }
  if (g.exists("mac")) {
    auto m = get_string(g, "mac", true, "a MAC address \"aa:bb:cc:dd:ee:ff\"");
    if (!m) return m.error();
    auto mac = parse_mac(*m);
    if (!mac) return err_at(g["mac"], mac.error().message);
    p.mac = *mac;
  }
  out.cfg.ports.push_back(std::move(p));
  out.devices.push_back(std::move(*d));
  return {};
}

std::string port_names(const DpConfig& c) {
  std::vector<std::string> v;
  for (const auto& p : c.ports) v.push_back(p.name);
  return join(v);
}

Result<const PortConfig*> get_port_ref(const Setting& g, const DpConfig& c) {
  auto n = get_string(g, "port", true, "the name of a port");
  if (!n) return n.error();
  const PortConfig* p = c.find_port(*n);
  if (!p) return err_at(g["port"], "no port named '" + *n + "' (expected one of: " + port_names(c) + ")");
  return p;
}

Result<IpAddress> get_address(const Setting& g, const char* name, bool required) {
  auto s = get_string(g, name, required, "an IPv4 or IPv6 address");
  if (!s) return s.error();
  if (!g.exists(name)) return IpAddress{};
  auto a = IpAddress::parse(*s);
  if (!a) return err_at(g[name], a.error().message);
  return *a;
}

Result<void> parse_route(const Setting& g, DpConfig& c) {
  if (!g.isGroup()) {
    return err_at(g, "expected a group { dst = \"10.2.0.0/16\"; via = \"192.0.2.2\"; port = \"wan\"; }");
  }
  if (auto r = check_known(g, {"dst", "via", "port"}); !r) return r.error();
  RouteConfig rt;
  auto dst = get_string(g, "dst", true, "a destination prefix like \"10.2.0.0/16\" or \"0.0.0.0/0\"");
  if (!dst) return dst.error();
  auto pre = IpPrefix::parse(*dst);
  if (!pre) return err_at(g["dst"], pre.error().message);
  rt.dst = *pre;
  auto port = get_port_ref(g, c);
  if (!port) return port.error();
  const PortConfig& p = **port;
  rt.port = p.name;
  auto via = get_address(g, "via", false);
  if (!via) return via.error();
  if (g.exists("via")) {
    const Setting& v = g["via"];
    if (via->is_unspecified()) {
      return err_at(v, "unspecified address (expected a next-hop address, or no via for an on-link route)");
    }
    if (via->family != rt.dst.family()) {
      return err_at(v, std::string(family_name(via->family)) + " next hop for an " + family_name(rt.dst.family()) +
                           " destination (expected the same family as dst)");
    }
    if (is_own_address(p, *via)) {
      return err_at(v, via->to_string() + " is port '" + p.name + "''s own address (expected a neighbour)");
    }
    if (!on_link_prefix(p, *via)) {
      return err_at(v, via->to_string() + " is not on-link on port '" + p.name +
                           "' (expected an address inside one of its subnets: " + addresses_of(p) + ")");
    }
    rt.via = *via;
  } else if (!has_family(p, rt.dst.family())) {
    return err_at(g["port"], "on-link " + std::string(family_name(rt.dst.family())) + " route on port '" + p.name +
                                 "', which has no " + family_name(rt.dst.family()) +
                                 " address (expected a port with one)");
  }
  for (const auto& prev : c.routes) {
    if (prev.dst == rt.dst) return err_at(g["dst"], "a route to " + rt.dst.to_string() + " is already defined");
  }
  for (const auto& q : c.ports) {
    for (const auto& a : q.addresses) {
      if (network_of(a) == rt.dst) {
        return err_at(g["dst"], rt.dst.to_string() + " is the connected subnet of port '" + q.name +
                                    "' (expected another prefix: routes to connected subnets are implicit)");
      }
    }
  }
  c.routes.push_back(rt);
  return {};
}

Result<void> parse_neighbour(const Setting& g, DpConfig& c) {
  if (!g.isGroup()) {
    return err_at(g, "expected a group { ip = \"192.0.2.2\"; mac = \"02:00:00:00:00:02\"; port = \"wan\"; }");
  }
  if (auto r = check_known(g, {"ip", "mac", "port"}); !r) return r.error();
  NeighbourConfig n;
  auto ip = get_address(g, "ip", true);
  if (!ip) return ip.error();
  if (ip->is_unspecified() || is_multicast(*ip)) return err_at(g["ip"], "expected a unicast address");
  n.ip = *ip;
  auto m = get_string(g, "mac", true, "a MAC address \"aa:bb:cc:dd:ee:ff\"");
  if (!m) return m.error();
  auto mac = parse_mac(*m);
  if (!mac) return err_at(g["mac"], mac.error().message);
  n.mac = *mac;
  auto port = get_port_ref(g, c);
  if (!port) return port.error();
  const PortConfig& p = **port;
  n.port = p.name;
  if (is_own_address(p, n.ip)) return err_at(g["ip"], n.ip.to_string() + " is port '" + p.name + "''s own address");
  // On-link: inside one of the port's subnets, or inside an on-link route
  // (one without via) on the port.
  bool on_link = on_link_prefix(p, n.ip) != nullptr;
  std::string where = addresses_of(p);
  for (const auto& r : c.routes) {
    if (r.port != p.name || r.via.family != Family::none) continue;
    on_link |= r.dst.contains(n.ip);
    where += ", " + r.dst.to_string();
  }
  if (!on_link) {
    return err_at(g["ip"], n.ip.to_string() + " is not on-link on port '" + p.name +
                               "' (expected an address inside its subnets or on-link routes: " + where + ")");
  }
  for (const auto& prev : c.neighbours) {
    if (prev.ip == n.ip) return err_at(g["ip"], "a neighbour " + n.ip.to_string() + " is already defined");
  }
  c.neighbours.push_back(n);
  return {};
}

Result<void> parse_cores(const Setting& g, DpConfig& c) {
  if (!g.isGroup()) return err_at(g, "expected a group { main = 0; workers = [ 1, 2 ]; }");
  if (auto r = check_known(g, {"main", "workers"}); !r) return r.error();
  if (auto r = get_uint(g, "main", 0, kMaxCoreId, false, c.main_core); !r) return r.error();
  auto w = get_sequence(g, "workers", true, "an array of worker core ids: workers = [ 1, 2 ];");
  if (!w) return w.error();
  const Setting& wl = **w;
  if (wl.getLength() == 0) return err_at(wl, "empty (expected at least one worker core)");
  for (int i = 0; i < wl.getLength(); ++i) {
    auto v = int_value(wl[i], 0, kMaxCoreId, false);
    if (!v) return v.error();
    auto core = static_cast<unsigned>(*v);
    if (core == c.main_core) {
      return err_at(
          wl[i], "core " + std::to_string(core) +
                     " is the main core (expected worker cores other than main = " + std::to_string(c.main_core) + ")");
    }
    if (std::find(c.worker_cores.begin(), c.worker_cores.end(), core) != c.worker_cores.end()) {
      return err_at(wl[i], "core " + std::to_string(core) + " is listed twice (expected distinct cores)");
    }
    c.worker_cores.push_back(core);
  }
  return {};
}

Result<void> parse_memory(const Setting& g, DpConfig& c) {
  if (!g.isGroup()) return err_at(g, "expected a group { mbufs = 16383; rx_ring = 1024; ... }");
  if (auto r = check_known(g, {"mbufs", "mbuf_cache", "rx_ring", "tx_ring", "handoff_ring", "flow_cache_entries",
                               "max_sas", "max_policies"});
      !r) {
    return r.error();
  }
  Result<void> rs[] = {
      get_uint(g, "mbufs", 1023, (1u << 24) - 1, false, c.mbufs),
      get_uint(g, "mbuf_cache", 0, 512, false, c.mbuf_cache),  // RTE_MEMPOOL_CACHE_MAX_SIZE
      get_uint(g, "rx_ring", 64, 32768, true, c.rx_ring),
      get_uint(g, "tx_ring", 64, 32768, true, c.tx_ring),
      get_uint(g, "handoff_ring", 64, 65536, true, c.handoff_ring),
      get_uint(g, "flow_cache_entries", 1024, 1u << 24, true, c.flow_cache_entries),
      get_uint(g, "max_sas", 1, 1u << 26, false, c.max_sas),
      get_uint(g, "max_policies", 1, 1u << 24, false, c.max_policies),
  };
  for (auto& r : rs)
    if (!r) return r.error();
  // rte_mempool_create refuses a per-lcore cache above n / 1.5; mbufs >= 1023
  // and mbuf_cache <= 512 keep inside that.
  static_assert(512 * 3 <= 1023 * 2);
  return {};
}

// Enough mbufs to fill every rx ring and every tx ring (one queue pair per
// worker on every port) plus every lcore's mempool cache; fewer and the
// ports cannot start, or stall under load.
std::uint64_t mbufs_needed(const DpConfig& c) {
  std::uint64_t ports = c.ports.size() + (c.exception_port.empty() ? 0 : 1);
  std::uint64_t lcores = c.worker_cores.size() + 1;
  return ports * c.worker_cores.size() * (std::uint64_t{c.rx_ring} + c.tx_ring) + lcores * c.mbuf_cache;
}

Result<void> parse_dataplane(const Setting& d, Loaded& out) {
  DpConfig& c = out.cfg;
  if (!d.isGroup()) return err_at(d, "expected a group: dataplane = { ports = ( ... ); cores = { ... }; };");
  if (auto r = check_known(d, {"ports", "routes", "neighbours", "cores", "memory", "shm", "exception"}); !r) {
    return r.error();
  }
  // ports
  if (!d.exists("ports")) return err_at(d, "ports", "missing (expected a list: ports = ( { ... }, { ... } );)");
  const Setting& pl = d["ports"];
  if (!pl.isList()) return err_at(pl, "expected a list: ports = ( { ... }, { ... } );");
  for (int i = 0; i < pl.getLength(); ++i) {
    if (auto r = parse_port(pl[i], out); !r) return r.error();
  }
  for (auto side : {PortConfig::Side::protected_, PortConfig::Side::unprotected}) {
    if (std::none_of(c.ports.begin(), c.ports.end(), [&](const PortConfig& p) { return p.side == side; })) {
      return err_at(pl, std::string("no ") + side_name(side) + " port (expected at least one port with side = \"" +
                            side_name(side) + "\")");
    }
  }
  // shm, exception
  auto shm = get_string(d, "shm", false, "an shm instance name of 1-32 letters, digits, _ or -", c.shm_name);
  if (!shm) return shm.error();
  if (!valid_name(*shm)) {
    return err_at(d["shm"], "'" + *shm + "' is not an shm instance name (expected 1-32 letters, digits, _ or -)");
  }
  c.shm_name = *shm;
  auto exc = get_string(d, "exception", false, "a net_tap or net_virtio_user vdev");
  if (!exc) return exc.error();
  if (!exc->empty()) {
    const Setting& e = d["exception"];
    auto dev = parse_device(*exc);
    if (!dev) return err_at(e, dev.error().message);
    if (dev->driver != "tap" && dev->driver != "virtio_user") {
      return err_at(e, "'" + dev->canonical +
                           "' cannot carry traffic to the host (expected a net_tap or net_virtio_user vdev, "
                           "e.g. net_tap9,iface=cyg-host)");
    }
    for (std::size_t i = 0; i < out.devices.size(); ++i) {
      if (out.devices[i].canonical == dev->canonical) {
        return err_at(e, "device " + dev->canonical + " is already used by port '" + c.ports[i].name + "'");
      }
    }
    c.exception_port = *exc;
  }
  if (c.ports.size() + (c.exception_port.empty() ? 0 : 1) > kMaxPorts) {
    return err_at(pl, std::to_string(c.ports.size()) + " ports" +
                          (c.exception_port.empty() ? "" : " and the exception port") + " (expected at most " +
                          std::to_string(kMaxPorts) + " in all, DPDK's RTE_MAX_ETHPORTS)");
  }
  // routes, neighbours (after the ports, wherever they are in the file)
  for (auto [key, fn] : {std::pair{"routes", &parse_route}, std::pair{"neighbours", &parse_neighbour}}) {
    if (!d.exists(key)) continue;
    const Setting& l = d[key];
    if (!l.isList()) return err_at(l, std::string("expected a list: ") + key + " = ( { ... }, { ... } );");
    for (int i = 0; i < l.getLength(); ++i) {
      if (auto r = fn(l[i], c); !r) return r.error();
    }
  }
  // cores, memory
  if (!d.exists("cores")) {
    return err_at(d, "cores", "missing (expected a group: cores = { main = 0; workers = [ 1 ]; };)");
  }
  if (auto r = parse_cores(d["cores"], c); !r) return r.error();
  if (d.exists("memory")) {
    if (auto r = parse_memory(d["memory"], c); !r) return r.error();
  }
  if (std::uint64_t need = mbufs_needed(c); c.mbufs < need) {
    std::uint64_t ports = c.ports.size() + (c.exception_port.empty() ? 0 : 1);
    std::string msg = std::to_string(c.mbufs) + " mbufs are too few for " + std::to_string(ports) + " ports x " +
                      std::to_string(c.worker_cores.size()) + " workers x (rx_ring " + std::to_string(c.rx_ring) +
                      " + tx_ring " + std::to_string(c.tx_ring) + ") + " + std::to_string(c.worker_cores.size() + 1) +
                      " lcores x mbuf_cache " + std::to_string(c.mbuf_cache) + " (expected at least " +
                      std::to_string(need) + ")";
    if (!d.exists("memory")) return err_at(d, "memory.mbufs", msg);
    const Setting& m = d["memory"];
    return m.exists("mbufs") ? err_at(m["mbufs"], msg) : err_at(m, "mbufs", msg);
  }

  // Warnings: things that load but probably do not do what was meant.
  for (std::size_t i = 0; i < c.routes.size(); ++i) {
    const RouteConfig& r = c.routes[i];
    if (r.via.family == Family::none) continue;
    bool known = std::any_of(c.neighbours.begin(), c.neighbours.end(),
                             [&](const NeighbourConfig& n) { return n.ip == r.via && n.port == r.port; });
    if (!known) {
      c.warnings.push_back(warning_at(d["routes"][static_cast<int>(i)], out.file,
                                      "no static neighbour for " + r.via.to_string() + " on port '" + r.port +
                                          "': packets routed via it are dropped until one is configured"));
    }
  }
  for (std::size_t i = 0; i < c.ports.size(); ++i) {
    const Device& dev = out.devices[i];
    if (dev.driver != "af_packet" || c.worker_cores.size() < 2) continue;
    const std::string* q = dev.arg("qpairs");
    unsigned long n = 1;
    if (q) {
      auto [ptr, ec] = std::from_chars(q->data(), q->data() + q->size(), n);
      if (ec != std::errc() || ptr != q->data() + q->size()) n = 0;
    }
    if (n < c.worker_cores.size()) {
      c.warnings.push_back(warning_at(pl[static_cast<int>(i)]["device"], out.file,
                                      "net_af_packet has " + (q ? *q : std::string("1")) + " queue pair(s) for " +
                                          std::to_string(c.worker_cores.size()) +
                                          " workers (add qpairs=" + std::to_string(c.worker_cores.size()) + ")"));
    }
  }
  return {};
}

// SAs and policies in the same file, checked against the dataplane's limits
// and addresses.
Result<void> check_statics(const Setting& root, DpConfig& c, const std::string& file) {
  if (c.statics.sas.size() > c.max_sas) {
    return err_at(root["sas"], std::to_string(c.statics.sas.size()) +
                                   " SAs (expected at most memory.max_sas = " + std::to_string(c.max_sas) + ")");
  }
  if (c.statics.policies.size() > c.max_policies) {
    return err_at(root["policies"],
                  std::to_string(c.statics.policies.size()) +
                      " policies (expected at most memory.max_policies = " + std::to_string(c.max_policies) + ")");
  }
  auto local_unprotected = [&](const IpAddress& a) {
    return std::any_of(c.ports.begin(), c.ports.end(), [&](const PortConfig& p) {
      return p.side == PortConfig::Side::unprotected && is_own_address(p, a);
    });
  };
  for (std::size_t i = 0; i < c.statics.sas.size(); ++i) {
    const SaConfig& sa = c.statics.sas[i];
    const IpAddress& ours = sa.dir == Direction::out ? sa.src : sa.dst;
    if (!local_unprotected(ours)) {
      c.warnings.push_back(warning_at(root["sas"][static_cast<int>(i)], file,
                                      std::string(sa.dir == Direction::out ? "src " : "dst ") + ours.to_string() +
                                          " is not an address of an unprotected port: this " +
                                          (sa.dir == Direction::out ? "outbound" : "inbound") +
                                          " SA cannot be used here"));
    }
  }
  return {};
}

Result<DpConfig> load(const libconfig::Config& lc, const std::string& file) {
  const Setting& root = lc.getRoot();
  if (auto r = check_known(root, {"dataplane", "sas", "policies"}); !r) return r.error();
  if (!root.exists("dataplane")) {
    return make_error(file +
                      ": dataplane: missing (expected a group: dataplane = { ports = ( ... ); cores = { ... }; };)");
  }
  Loaded out;
  out.file = file;
  if (auto r = parse_dataplane(root["dataplane"], out); !r) return r.error();
  auto st = parse_statics(root);
  if (!st) return st.error();
  out.cfg.statics = std::move(*st);
  if (auto r = check_statics(root, out.cfg, file); !r) return r.error();
  return std::move(out.cfg);
}

Result<DpConfig> rename_string_errors(Result<DpConfig> r, const std::string& name) {
  if (!r && r.error().message.rfind("<string>:", 0) == 0) return make_error(name + r.error().message.substr(8));
  return r;
}

}  // namespace

const PortConfig* DpConfig::find_port(std::string_view n) const noexcept {
  for (const auto& p : ports)
    if (p.name == n) return &p;
  return nullptr;
}

const char* side_name(PortConfig::Side s) noexcept {
  return s == PortConfig::Side::protected_ ? "protected" : "unprotected";
}

std::string mac_to_string(const MacAddress& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return buf;
}

Result<MacAddress> parse_mac(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return make_error("'" + std::string(text) + "' " + why +
                      " (expected a unicast MAC address like 02:00:00:00:00:01)");
  };
  MacAddress m{};
  if (text.size() != 17) return bad("is not a MAC address");
  for (std::size_t i = 0; i < 6; ++i) {
    auto byte = text.substr(i * 3, 2);
    if (!all_hex(byte, 2) || (i < 5 && text[i * 3 + 2] != ':')) return bad("is not a MAC address");
    m[i] = static_cast<std::uint8_t>(std::stoul(std::string(byte), nullptr, 16));
  }
  if (m[0] & 0x01) return bad("is a multicast or broadcast address");
  if (std::all_of(m.begin(), m.end(), [](std::uint8_t b) { return b == 0; })) return bad("is all zero");
  return m;
}

std::string_view device_name(std::string_view device) noexcept { return device.substr(0, device.find(',')); }

Result<void> validate_device(std::string_view text) {
  auto d = parse_device(text);
  if (!d) return d.error();
  return {};
}

Result<DpConfig> load_dp_string(const std::string& text, const std::string& name) {
  libconfig::Config lc;
  try {
    lc.readString(text);
  } catch (const libconfig::ParseException& e) {
    return make_error(name + ":" + std::to_string(e.getLine()) + ": syntax error: " + e.getError());
  }
  return rename_string_errors(load(lc, name), name);
}

Result<DpConfig> load_dp_file(const std::string& path) {
  libconfig::Config lc;
  if (auto rd = detail::read_file(lc, path); !rd) return rd.error();
  auto r = load(lc, path);
  if (!r) return r;
  warn_if_keys_readable(path, r->statics);
  for (auto& w : r->statics.warnings) r->warnings.push_back(std::move(w));
  r->statics.warnings.clear();
  return r;
}

const char* default_dp_config() noexcept {
  return R"(# cygnet-dp's built-in config, used when it is started without a config
# file (the two-site demo). Identical to conf/dp-demo.conf; a test keeps
# them equal.
#
# Site A of the demo: hosts on 10.1.0.0/24 behind "lan", the peer gateway
# 192.0.2.2 (site B, protecting 10.2.0.0/16) on "wan". Both ports are veths
# driven through net_af_packet; the demo script creates them in network
# namespaces.
#
# No SAs or policies here: a default must not carry well-known keys. They
# come from cygnetctl or cygnet-ike over shm, or from sas = (...) and
# policies = (...) in a file of your own (see conf/dp-two-port.conf).

dataplane = {
  ports = (
    { name = "lan"; side = "protected";
      device = "net_af_packet0,iface=cyg-lan";
      addresses = [ "10.1.0.1/24" ]; },
    { name = "wan"; side = "unprotected";
      device = "net_af_packet1,iface=cyg-wan";
      addresses = [ "192.0.2.1/24" ]; }
  );

  routes = (
    # Site B's protected range, reached through the peer gateway.
    { dst = "10.2.0.0/16"; via = "192.0.2.2"; port = "wan"; }
  );

  # Static neighbours (the dataplane does not resolve ARP/ND itself).
  # Placeholders: the demo script gives the far ends of the veths these
  # MACs (ip link set dev ... address ...); on other setups put the real
  # MACs of the peer gateway and of the protected hosts here.
  neighbours = (
    { ip = "192.0.2.2"; mac = "02:00:00:00:02:02"; port = "wan"; },
    { ip = "10.1.0.2";  mac = "02:00:00:00:01:02"; port = "lan"; }
  );

  # The gateway's own traffic (IKE on UDP 500 and 4500, and what an
  # inbound bypass policy lets through to its addresses) goes to the host
  # kernel through this tap, so cygnet-ike can use ordinary sockets. The demo
  # moves "cyg-host" into the gateway's own namespace, which holds
  # 192.0.2.1 and 10.1.0.1.
  exception = "net_tap0,iface=cyg-host";

  cores = { main = 0; workers = [ 1 ]; };
  shm = "default";
};
)";
}

}  // namespace cygnet::cfg
