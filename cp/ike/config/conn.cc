// Identity parsing and printing (cp/ike/engine/conn.h; docs/ike-config.md,
// "Identities"). The ID types are those of RFC 7296 section 3.5.
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "cp/ike/engine/conn.h"

namespace cygnet::ike {

namespace {

constexpr const char* kIdForms =
    "fqdn:host.example, user@example.com (or rfc822:...), an IPv4/IPv6 address (or ipv4:/ipv6:...), "
    "or %any";

bool is_ldh(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-'; }

// A host name (RFC 1123 2.1): dot-separated labels of 1-63 letters, digits
// and hyphens, not starting or ending with a hyphen; at most 253 characters.
Result<void> check_hostname(std::string_view h, std::string_view what) {
  const std::string shown(h);
  if (h.empty()) return make_error(std::string(what) + " is empty (expected a host name like gw.example)");
  if (h.size() > 253) return make_error(std::string(what) + " '" + shown + "' is longer than 253 characters");
  for (char c : h) {
    if (c != '.' && !is_ldh(c)) {
      std::string ch = std::isprint(static_cast<unsigned char>(c)) ? std::string("'") + c + "'" : "a control character";
      return make_error(std::string(what) + " '" + shown + "' contains " + ch +
                        " (a host name has only letters, digits, '-' and '.')");
    }
  }
  std::size_t start = 0;
  while (true) {
    std::size_t dot = h.find('.', start);
    std::string_view label = h.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty()) return make_error(std::string(what) + " '" + shown + "' has an empty label (\"..\" or a dot at an end)");
    if (label.size() > 63) return make_error(std::string(what) + " '" + shown + "' has a label longer than 63 characters");
    if (label.front() == '-' || label.back() == '-') {
      return make_error(std::string(what) + " '" + shown + "' has a label starting or ending with '-'");
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return {};
}

Result<Identity> parse_rfc822(std::string_view v, std::string_view text) {
  auto at = v.rfind('@');
  if (at == std::string_view::npos) {
    return make_error("rfc822 identity '" + std::string(text) + "' has no '@' (expected user@example.com)");
  }
  std::string_view local = v.substr(0, at);
  if (local.empty()) return make_error("rfc822 identity '" + std::string(text) + "' has nothing before the '@'");
  for (char c : local) {
    if (!std::isgraph(static_cast<unsigned char>(c))) {
      return make_error("rfc822 identity '" + std::string(text) + "' contains a space or control character");
    }
  }
  if (auto r = check_hostname(v.substr(at + 1), "the domain of rfc822 identity '" + std::string(text) + "'"); !r) {
    return r.error();
  }
  return Identity{Identity::Type::rfc822, std::string(v)};
}

Result<Identity> parse_ip(std::string_view v, std::string_view text, Family want) {
  auto a = IpAddress::parse(v);
  if (!a || (want != Family::none && a->family != want)) {
    return make_error("'" + std::string(text) + "' is not an " + (want == Family::ipv6 ? "IPv6" : "IPv4") +
                      " address identity");
  }
  return Identity{a->family == Family::ipv4 ? Identity::Type::ipv4 : Identity::Type::ipv6, a->to_string()};
}

}  // namespace

Result<Identity> Identity::parse(std::string_view text) {
  if (text.empty() || text == "%any") return Identity{};
  auto prefixed = [&](std::string_view p) { return text.substr(0, p.size()) == p; };
  auto value_of = [&](std::string_view p) -> Result<std::string_view> {
    std::string_view v = text.substr(p.size());
    if (v.empty()) {
      return make_error("identity '" + std::string(text) + "' is empty after '" + std::string(p) +
                        "' (expected e.g. " + kIdForms + ")");
    }
    return v;
  };
  if (prefixed("fqdn:")) {
    auto v = value_of("fqdn:");
    if (!v) return v.error();
    if (auto r = check_hostname(*v, "FQDN identity"); !r) return r.error();
    return Identity{Type::fqdn, std::string(*v)};
  }
  if (prefixed("rfc822:")) {
    auto v = value_of("rfc822:");
    if (!v) return v.error();
    return parse_rfc822(*v, text);
  }
  if (prefixed("ipv4:")) {
    auto v = value_of("ipv4:");
    if (!v) return v.error();
    return parse_ip(*v, text, Family::ipv4);
  }
  if (prefixed("ipv6:")) {
    auto v = value_of("ipv6:");
    if (!v) return v.error();
    return parse_ip(*v, text, Family::ipv6);
  }
  if (text.front() == '@') {  // strongSwan's "@gw.example": an FQDN
    if (text.size() == 1) return make_error("identity '@' is empty after '@' (expected e.g. @gw.example)");
    if (auto r = check_hostname(text.substr(1), "FQDN identity"); !r) return r.error();
    return Identity{Type::fqdn, std::string(text.substr(1))};
  }
  if (auto a = IpAddress::parse(text)) return parse_ip(text, text, Family::none);
  if (text.find('@') != std::string_view::npos) return parse_rfc822(text, text);
  auto colon = text.find(':');
  if (colon != std::string_view::npos && colon > 0 &&
      std::all_of(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(colon),
                  [](char c) { return std::isalpha(static_cast<unsigned char>(c)); })) {
    return make_error("identity type '" + std::string(text.substr(0, colon + 1)) + "' in '" + std::string(text) +
                      "' is not supported (expected " + kIdForms + ")");
  }
  return make_error("'" + std::string(text) + "' is not an identity (expected " + kIdForms +
                    "; a host name needs the fqdn: prefix)");
}

std::string Identity::to_string() const {
  switch (type) {
    case Type::any:
      return "%any";
    case Type::fqdn:
      return "fqdn:" + value;
    case Type::rfc822:
      return "rfc822:" + value;
    case Type::ipv4:
      return "ipv4:" + value;
    case Type::ipv6:
      return "ipv6:" + value;
  }
  return "%any";
}

}  // namespace cygnet::ike
