#include "cp/ike/config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace cygnet::ike::cfg {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kConfDir = CYGNET_CONF_DIR;

// Secrets used by the string tests. Neither may ever appear in a message.
const std::string kHexSecret = "0x00112233445566778899aabbccddeeff0123456789abcdef";
const std::string kTextSecret = "correct horse battery staple 42";

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "ikecfg-XXXXXX").string();
    char* d = ::mkdtemp(t.data());
    EXPECT_NE(d, nullptr);
    path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) const {
    std::string p = (path_ / name).string();
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }
  std::string copy(const std::string& from, const std::string& name, mode_t mode = 0600) const {
    std::ifstream in(from);
    std::stringstream ss;
    ss << in.rdbuf();
    return write(name, ss.str(), mode);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string test_secrets() {
  return "psks = (\n"
         "  { name = \"site-b\"; secret = \"" + kHexSecret + "\"; },\n"
         "  { name = \"text\"; secret = \"" + kTextSecret + "\"; },\n"
         "  { name = \"unused\"; secret = \"0x000102030405060708090a0b0c0d0e0f\"; }\n"
         ");\n";
}

// A fixture with a 0600 secrets file; load() reads a config string named
// "test.conf" against it.
class IkeCfg : public ::testing::Test {
 protected:
  TempDir dir;
  std::string secrets = dir.write("secrets.conf", test_secrets());
  std::vector<std::string> warnings;

  Result<IkeConfig> load(const std::string& text) {
    warnings.clear();
    IkeLoadOptions o;
    o.secrets_path = secrets;
    o.warnings = &warnings;
    return load_ike_string(text, "test.conf", o);
  }
  // A one-connection config; `extra` lands on line 6, `glob` inside ike = {}
  // on line 1.
  static std::string conn(const std::string& extra, const std::string& glob = "") {
    return "ike = { " + glob + " };\n"            // 1
           "connections = (\n"                    // 2
           "{ name = \"c1\";\n"                   // 3
           "  local_addr = \"192.0.2.1\";\n"      // 4
           "  remote_addrs = \"198.51.100.2\";\n" // 5
           "  " + extra + "\n"                    // 6
           "  psk = \"site-b\";\n"                // 7
           "} );\n";
  }
  std::string error_of(const std::string& text) {
    auto r = load(text);
    EXPECT_FALSE(r.ok()) << text;
    return r.ok() ? std::string() : r.error().message;
  }
};

void expect_no_secret(const std::string& msg) {
  EXPECT_THAT(msg, ::testing::Not(HasSubstr(kHexSecret))) << msg;
  EXPECT_THAT(msg, ::testing::Not(HasSubstr(kHexSecret.substr(2)))) << msg;
  EXPECT_THAT(msg, ::testing::Not(HasSubstr(kTextSecret))) << msg;
  EXPECT_THAT(msg, ::testing::Not(HasSubstr("horse"))) << msg;
}

// ---------------------------------------------------------------- identities

TEST(Identity, ParsesEveryForm) {
  struct Case {
    const char* text;
    Identity::Type type;
    const char* value;
  };
  const Case cases[] = {
      {"", Identity::Type::any, ""},
      {"%any", Identity::Type::any, ""},
      {"fqdn:host.example", Identity::Type::fqdn, "host.example"},
      {"@gw.example", Identity::Type::fqdn, "gw.example"},
      {"user@example.com", Identity::Type::rfc822, "user@example.com"},
      {"rfc822:admin@site-c.example", Identity::Type::rfc822, "admin@site-c.example"},
      {"192.0.2.1", Identity::Type::ipv4, "192.0.2.1"},
      {"ipv4:192.0.2.1", Identity::Type::ipv4, "192.0.2.1"},
      {"2001:db8::1", Identity::Type::ipv6, "2001:db8::1"},
      {"ipv6:2001:DB8:0::1", Identity::Type::ipv6, "2001:db8::1"},
  };
  for (const auto& c : cases) {
    auto r = Identity::parse(c.text);
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.error().message;
    EXPECT_EQ(r->type, c.type) << c.text;
    EXPECT_EQ(r->value, c.value) << c.text;
    auto back = Identity::parse(r->to_string());
    ASSERT_TRUE(back.ok()) << r->to_string();
    EXPECT_EQ(*back, *r) << c.text << " -> " << r->to_string();
  }
  EXPECT_EQ(Identity::parse("fqdn:host.example")->to_string(), "fqdn:host.example");
  EXPECT_EQ(Identity::parse("")->to_string(), "%any");
  EXPECT_EQ(Identity::parse("2001:db8::1")->to_string(), "ipv6:2001:db8::1");
}

TEST(Identity, RefusesBadValues) {
  struct Case {
    const char* text;
    const char* says;
  };
  const Case cases[] = {
      {"fqdn:", "empty after 'fqdn:'"},
      {"rfc822:", "empty after 'rfc822:'"},
      {"ipv4:", "empty after 'ipv4:'"},
      {"ipv6:", "empty after 'ipv6:'"},
      {"fqdn:bad_host.example", "contains '_'"},
      {"fqdn:bad host", "contains ' '"},
      {"fqdn:-a.example", "starting or ending with '-'"},
      {"fqdn:a..example", "empty label"},
      {"fqdn:a.example.", "empty label"},
      {"rfc822:nobody", "has no '@'"},
      {"@example.com", "FQDN identity"},  // "@" then a host: fine; see below
      {"user@bad_domain", "contains '_'"},
      {"@", "empty after '@'"},
      {"ipv4:2001:db8::1", "not an IPv4"},
      {"ipv6:192.0.2.1", "not an IPv6"},
      {"host.example", "needs the fqdn: prefix"},
      {"192.0.2.300", "is not an identity"},
      {"keyid:abc", "identity type 'keyid:'"},
  };
  for (const auto& c : cases) {
    auto r = Identity::parse(c.text);
    if (std::string(c.text) == "@example.com") {
      EXPECT_TRUE(r.ok());
      continue;
    }
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_THAT(r.error().message, HasSubstr(c.says)) << c.text;
  }
}

// ----------------------------------------------------------------- proposals

TEST(Proposals, EveryIkeTokenMapsToItsSuite) {
  using E = EncrId;
  using I = IntegId;
  using P = PrfId;
  using G = KeGroup;
  struct Case {
    const char* text;
    IkeSuite want;
  };
  const Case cases[] = {
      {"aes128gcm16-prfsha256-x25519", {E::aes_gcm_16, 128, I::none, P::hmac_sha2_256, G::curve25519}},
      {"aes256gcm16-prfsha384-ecp384", {E::aes_gcm_16, 256, I::none, P::hmac_sha2_384, G::ecp384}},
      {"chacha20poly1305-prfsha256-x25519", {E::chacha20_poly1305, 256, I::none, P::hmac_sha2_256, G::curve25519}},
      {"aes128-sha256-prfsha256-modp2048", {E::aes_cbc, 128, I::hmac_sha2_256_128, P::hmac_sha2_256, G::modp2048}},
      {"aes256-sha384-prfsha384-ecp256", {E::aes_cbc, 256, I::hmac_sha2_384_192, P::hmac_sha2_384, G::ecp256}},
      {"aes256-sha512-prfsha512-ecp521", {E::aes_cbc, 256, I::hmac_sha2_512_256, P::hmac_sha2_512, G::ecp521}},
      {"aes128gcm16-prfsha512-curve25519", {E::aes_gcm_16, 128, I::none, P::hmac_sha2_512, G::curve25519}},
      // No PRF with CBC: it follows the integrity algorithm.
      {"aes128-sha256-modp2048", {E::aes_cbc, 128, I::hmac_sha2_256_128, P::hmac_sha2_256, G::modp2048}},
      {"aes256-sha384-ecp384", {E::aes_cbc, 256, I::hmac_sha2_384_192, P::hmac_sha2_384, G::ecp384}},
      {"aes256-sha512-ecp521", {E::aes_cbc, 256, I::hmac_sha2_512_256, P::hmac_sha2_512, G::ecp521}},
      // A PRF that differs from the integrity algorithm is kept.
      {"aes128-sha256-prfsha384-ecp256", {E::aes_cbc, 128, I::hmac_sha2_256_128, P::hmac_sha2_384, G::ecp256}},
      // Names are not case-sensitive.
      {"AES128GCM16-PRFSHA256-X25519", {E::aes_gcm_16, 128, I::none, P::hmac_sha2_256, G::curve25519}},
  };
  for (const auto& c : cases) {
    auto r = parse_ike_proposal(c.text);
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.error().message;
    ASSERT_EQ(r->size(), 1u) << c.text;
    EXPECT_EQ(r->front(), c.want) << c.text << " gave " << to_string(r->front());
  }
  EXPECT_EQ(to_string(*parse_ike_proposal("aes128-sha256-modp2048")->begin()), "aes128-sha256-prfsha256-modp2048");
  EXPECT_EQ(to_string(*parse_ike_proposal("aes128gcm16-prfsha256-curve25519")->begin()),
            "aes128gcm16-prfsha256-x25519");
}

TEST(Proposals, SeveralAlgorithmsExpandInOrder) {
  auto r = parse_ike_proposal("aes128gcm16-aes256gcm16-prfsha256-x25519-ecp256");
  ASSERT_TRUE(r.ok()) << r.error().message;
  std::vector<std::string> got;
  for (const auto& s : *r) got.push_back(to_string(s));
  EXPECT_EQ(got, (std::vector<std::string>{"aes128gcm16-prfsha256-x25519", "aes128gcm16-prfsha256-ecp256",
                                           "aes256gcm16-prfsha256-x25519", "aes256gcm16-prfsha256-ecp256"}));
  // Without a PRF each integrity algorithm brings its own.
  r = parse_ike_proposal("aes128-sha256-sha384-modp2048");
  ASSERT_TRUE(r.ok()) << r.error().message;
  got.clear();
  for (const auto& s : *r) got.push_back(to_string(s));
  EXPECT_EQ(got, (std::vector<std::string>{"aes128-sha256-prfsha256-modp2048", "aes128-sha384-prfsha384-modp2048"}));
  // x25519 and curve25519 are one group.
  EXPECT_EQ(parse_ike_proposal("aes128gcm16-prfsha256-x25519-curve25519")->size(), 1u);
}

TEST(Proposals, EveryEspTokenMapsToItsSuite) {
  using E = EncrId;
  using I = IntegId;
  struct Case {
    const char* text;
    EspSuite want;
  };
  const Case cases[] = {
      {"aes128gcm16", {E::aes_gcm_16, 128, I::none, false}},
      {"aes256gcm16", {E::aes_gcm_16, 256, I::none, false}},
      {"chacha20poly1305", {E::chacha20_poly1305, 256, I::none, false}},
      {"aes128-sha256", {E::aes_cbc, 128, I::hmac_sha2_256_128, false}},
      {"aes256-sha384", {E::aes_cbc, 256, I::hmac_sha2_384_192, false}},
      {"aes256-sha512", {E::aes_cbc, 256, I::hmac_sha2_512_256, false}},
      {"aes128gcm16-esn", {E::aes_gcm_16, 128, I::none, true}},
      {"aes256gcm16-noesn", {E::aes_gcm_16, 256, I::none, false}},
      {"chacha20poly1305-esn", {E::chacha20_poly1305, 256, I::none, true}},
      {"aes128-sha256-esn", {E::aes_cbc, 128, I::hmac_sha2_256_128, true}},
      {"aes256-sha384-noesn", {E::aes_cbc, 256, I::hmac_sha2_384_192, false}},
      {"aes256-sha512-esn", {E::aes_cbc, 256, I::hmac_sha2_512_256, true}},
  };
  for (const auto& c : cases) {
    auto r = parse_esp_proposal(c.text);
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.error().message;
    ASSERT_EQ(r->size(), 1u) << c.text;
    EXPECT_EQ(r->front(), c.want) << c.text << " gave " << to_string(r->front());
  }
  auto both = parse_esp_proposal("aes128gcm16-esn-noesn");
  ASSERT_TRUE(both.ok());
  ASSERT_EQ(both->size(), 2u);
  EXPECT_TRUE((*both)[0].esn);
  EXPECT_FALSE((*both)[1].esn);
  EXPECT_EQ(to_string((*both)[0]), "aes128gcm16-esn");
  EXPECT_EQ(to_string(EspSuite{EncrId::aes_cbc, 256, IntegId::hmac_sha2_512_256, false}), "aes256-sha512");
  // A group in an ESP proposal: PFS for CREATE_CHILD_SA (RFC 7296 1.3.1).
  auto pfs = parse_esp_proposal("aes128gcm16-x25519-modp2048");
  ASSERT_TRUE(pfs.ok());
  ASSERT_EQ(pfs->size(), 2u);
  EXPECT_EQ((*pfs)[0].group, KeGroup::curve25519);
  EXPECT_EQ((*pfs)[1].group, KeGroup::modp2048);
  EXPECT_EQ(to_string((*pfs)[0]), "aes128gcm16-x25519");
}

TEST(Proposals, Defaults) {
  std::vector<std::string> ike, esp;
  for (const auto& s : default_ike_suites()) ike.push_back(to_string(s));
  for (const auto& s : default_esp_suites()) esp.push_back(to_string(s));
  EXPECT_EQ(ike, (std::vector<std::string>{"aes128gcm16-prfsha256-x25519", "aes256gcm16-prfsha384-ecp384",
                                           "aes128-sha256-prfsha256-modp2048"}));
  EXPECT_EQ(esp, (std::vector<std::string>{"aes128gcm16", "aes256gcm16", "aes128-sha256"}));
}

TEST(Proposals, ErrorsNameTheTokenAndWhatIsAccepted) {
  struct Case {
    bool ike;
    const char* text;
    std::vector<const char*> says;
  };
  const Case cases[] = {
      {true, "aes128gcm16-prfsha256-modp1024", {"unknown algorithm 'modp1024'", "modp2048, ecp256, ecp384, ecp521, x25519"}},
      {true, "3des-sha1-modp2048", {"unknown algorithm '3des'", "aes128, aes256, aes128gcm16", "prfsha256"}},
      {false, "aes128gcm8", {"unknown algorithm 'aes128gcm8'", "chacha20poly1305", "esn, noesn"}},
      {true, "aes128gcm16-sha256-prfsha256-x25519", {"takes no integrity algorithm", "'sha256'"}},
      {false, "aes256gcm16-sha256", {"takes no integrity algorithm"}},
      {true, "aes128-prfsha256-x25519", {"needs an integrity algorithm", "sha256, sha384, sha512"}},
      {false, "aes128", {"needs an integrity algorithm"}},
      {true, "aes128gcm16-prfsha256", {"no key exchange group", "x25519"}},
      {true, "aes128gcm16-x25519", {"an AEAD proposal needs a PRF", "prfsha256"}},
      {true, "aes128gcm16-prfsha256-x25519-esn", {"'esn' applies to ESP proposals only"}},
      {false, "aes128gcm16-prfsha256", {"'prfsha256' is a PRF"}},
      {true, "aes128gcm16-aes128-sha256-prfsha256-x25519", {"mixes AEAD and non-AEAD"}},
      {true, "aes128gcm16--prfsha256-x25519", {"empty algorithm name"}},
      {true, "prfsha256-x25519", {"no encryption algorithm"}},
      {true, "", {"empty IKE proposal"}},
  };
  for (const auto& c : cases) {
    std::string msg;
    if (c.ike) {
      auto r = parse_ike_proposal(c.text);
      ASSERT_FALSE(r.ok()) << c.text;
      msg = r.error().message;
    } else {
      auto r = parse_esp_proposal(c.text);
      ASSERT_FALSE(r.ok()) << c.text;
      msg = r.error().message;
    }
    for (const char* s : c.says) EXPECT_THAT(msg, HasSubstr(s)) << c.text;
  }
}

// --------------------------------------------------------- traffic selectors

TEST(TrafficSelectors, StringForms) {
  auto t = parse_ts("10.1.0.0/24");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->prefix.to_string(), "10.1.0.0/24");
  EXPECT_EQ(t->proto, kProtoAny);
  EXPECT_TRUE(t->ports.is_any());
  t = parse_ts("2001:db8:1::/48, tcp, 1024-65535");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->prefix.to_string(), "2001:db8:1::/48");
  EXPECT_EQ(t->proto, kProtoTcp);
  EXPECT_EQ(t->ports, (PortRange{1024, 65535}));
  t = parse_ts("192.0.2.7,udp,53");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->prefix.len, 32);
  EXPECT_EQ(t->ports, (PortRange{53, 53}));
  // ICMP: type << 8 | code in the port field.
  t = parse_ts("10.0.0.0/8,icmp,8");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->ports, (PortRange{0x0800, 0x08ff}));
  t = parse_ts("10.0.0.0/8,icmp,3/4");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->ports, (PortRange{0x0304, 0x0304}));
  t = parse_ts("2001:db8::/32,icmpv6,128-129");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->ports, (PortRange{0x8000, 0x81ff}));
  t = parse_ts("10.0.0.0/8,47");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->proto, 47);
}

TEST(TrafficSelectors, StringErrors) {
  const std::pair<const char*, const char*> cases[] = {
      {"10.1.0.1/24", "bits set beyond"},
      {"10.1.0.0/33", "prefix length"},
      {"nonsense", "not an IPv4 or IPv6 address"},
      {"10.0.0.0/8,tcp,70000", "not a port"},
      {"10.0.0.0/8,,443", "empty field"},
      {"10.0.0.0/8,tcp,443,x", "more than three fields"},
      {"10.0.0.0/8,any,443", "need a protocol"},
      {"10.0.0.0/8,47,1", "ports need protocol"},
      {"10.0.0.0/8,icmp,300", "not an ICMP type"},
      {"2001:db8::/32,icmp", "use icmpv6"},
      {"10.0.0.0/8,icmpv6", "use icmp"},
      {"10.0.0.0/8,bogus", "bogus"},
  };
  for (const auto& [text, says] : cases) {
    auto r = parse_ts(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_THAT(r.error().message, HasSubstr(says)) << text;
  }
}

// ------------------------------------------------------------------ examples

IkeLoadOptions with_secrets(const std::string& p) {
  IkeLoadOptions o;
  o.secrets_path = p;
  return o;
}

class Examples : public ::testing::Test {
 protected:
  TempDir dir;
  std::string secrets = dir.copy(kConfDir + "/ike-secrets.example.conf", "ike-secrets.example.conf", 0600);
  std::vector<std::string> warnings;
  Result<IkeConfig> load(const std::string& name) {
    IkeLoadOptions o = with_secrets(secrets);
    o.warnings = &warnings;
    return load_ike_file(kConfDir + "/" + name, o);
  }
};

std::vector<std::string> names(const std::vector<IkeSuite>& v) {
  std::vector<std::string> out;
  for (const auto& s : v) out.push_back(to_string(s));
  return out;
}
std::vector<std::string> names(const std::vector<EspSuite>& v) {
  std::vector<std::string> out;
  for (const auto& s : v) out.push_back(to_string(s));
  return out;
}
std::vector<std::string> names(const std::vector<TsConfig>& v) {
  std::vector<std::string> out;
  for (const auto& t : v) {
    std::string s = t.prefix.to_string();
    if (t.proto != kProtoAny) s += "," + std::to_string(t.proto) + "," + t.ports.to_string();
    out.push_back(s);
  }
  return out;
}

TEST_F(Examples, EveryIkeExampleLoads) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(kConfDir)) {
    const std::string f = e.path().filename().string();
    if (f.rfind("ike-", 0) != 0 || e.path().extension() != ".conf" || f == "ike-secrets.example.conf") continue;
    ++n;
    auto r = load(f);
    EXPECT_TRUE(r.ok()) << f << ": " << (r.ok() ? "" : r.error().message);
  }
  EXPECT_GE(n, 3);
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  auto s = load_secrets_file(secrets);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->size(), 4u);
}

TEST_F(Examples, HostToHost) {
  auto r = load("ike-host-to-host.conf");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->connections.size(), 1u);
  const Connection& c = r->connections[0];
  EXPECT_EQ(c.name, "host-b");
  EXPECT_EQ(c.local_addr.to_string(), "192.0.2.1");
  ASSERT_EQ(c.remote_addrs.size(), 1u);
  EXPECT_EQ(c.remote_addrs[0].to_string(), "198.51.100.2/32");
  EXPECT_EQ(c.local_port, 500);
  EXPECT_EQ(c.remote_port, 500);
  EXPECT_EQ(c.local_id, (Identity{Identity::Type::fqdn, "host-a.example"}));
  EXPECT_EQ(c.remote_id, (Identity{Identity::Type::fqdn, "host-b.example"}));
  EXPECT_EQ(c.psk_ref, "host-b");
  EXPECT_EQ(c.ike, default_ike_suites());
  EXPECT_EQ(c.esp, default_esp_suites());
  EXPECT_TRUE(c.local_ts.empty());
  EXPECT_TRUE(c.remote_ts.empty());
  EXPECT_EQ(c.mode, Mode::transport);
  EXPECT_EQ(c.start, StartAction::start);
  EXPECT_FALSE(c.force_encap);
  EXPECT_EQ(c.ike_lifetime_s, 14400u);
  EXPECT_EQ(c.child_lifetime_s, 3600u);
  EXPECT_EQ(c.dpd_s, 30u);
  // Only the PSKs the connections use are kept.
  ASSERT_EQ(r->psks.size(), 1u);
  const SecretBytes& k = r->psks.at("host-b");
  ASSERT_EQ(k.size(), 32u);
  EXPECT_EQ(k.bytes()[0], 0x9f);
  EXPECT_EQ(k.bytes()[31], 0x0f);
  // Globals at their defaults.
  EXPECT_EQ(r->cookie_threshold, 512u);
  EXPECT_EQ(r->half_open_timeout_s, 30u);
  EXPECT_EQ(r->retransmit_base_ms, 1000u);
  EXPECT_EQ(r->retransmit_tries, 5u);
  EXPECT_EQ(r->reqid_base, 0x10000u);
  EXPECT_EQ(r->dataplane_instance, "default");
}

TEST_F(Examples, NetToNet) {
  auto r = load("ike-net-to-net.conf");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->connections.size(), 1u);
  const Connection& c = r->connections[0];
  EXPECT_EQ(c.name, "a-to-b");
  EXPECT_EQ(c.local_id, (Identity{Identity::Type::ipv4, "192.0.2.1"}));
  EXPECT_EQ(c.remote_id, (Identity{Identity::Type::ipv4, "203.0.113.2"}));
  EXPECT_EQ(names(c.ike), (std::vector<std::string>{"aes256gcm16-prfsha384-ecp384", "aes128-sha256-prfsha256-modp2048"}));
  EXPECT_EQ(c.ike[0], (IkeSuite{EncrId::aes_gcm_16, 256, IntegId::none, PrfId::hmac_sha2_384, KeGroup::ecp384}));
  EXPECT_EQ(c.esp[0], (EspSuite{EncrId::aes_gcm_16, 256, IntegId::none, true}));
  EXPECT_EQ(c.esp[1], (EspSuite{EncrId::aes_cbc, 128, IntegId::hmac_sha2_256_128, false}));
  EXPECT_EQ(names(c.local_ts), (std::vector<std::string>{"10.1.0.0/24", "10.1.1.0/24", "2001:db8:1::/48"}));
  EXPECT_EQ(names(c.remote_ts), (std::vector<std::string>{"10.2.0.0/16", "2001:db8:2::/48", "10.3.0.0/24,6,443"}));
  EXPECT_EQ(c.mode, Mode::tunnel);
  EXPECT_EQ(c.start, StartAction::trap);
  EXPECT_EQ(c.ike_lifetime_s, 28800u);
  EXPECT_EQ(c.child_lifetime_s, 3600u);
  EXPECT_EQ(c.dpd_s, 60u);
  EXPECT_EQ(r->retransmit_base_ms, 500u);
  EXPECT_EQ(r->retransmit_tries, 7u);
  ASSERT_EQ(r->psks.count("site-b"), 1u);
  EXPECT_EQ(r->psks.at("site-b").size(), 32u);
}

TEST_F(Examples, Gateway) {
  auto r = load("ike-gateway.conf");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->connections.size(), 3u);
  EXPECT_EQ(r->cookie_threshold, 256u);
  EXPECT_EQ(r->half_open_timeout_s, 20u);
  EXPECT_EQ(r->reqid_base, 0x20000u);
  const Connection& b = r->connections[0];
  EXPECT_EQ(b.name, "branches");
  ASSERT_EQ(b.remote_addrs.size(), 1u);
  EXPECT_EQ(b.remote_addrs[0], IpPrefix::any(Family::ipv4));
  EXPECT_EQ(b.remote_id, (Identity{Identity::Type::fqdn, "branch.vpn.example"}));
  EXPECT_EQ(b.start, StartAction::none);
  EXPECT_EQ(names(b.ike), (std::vector<std::string>{"aes256gcm16-prfsha384-ecp384", "aes128gcm16-prfsha256-x25519"}));
  EXPECT_EQ(names(b.esp), (std::vector<std::string>{"aes256gcm16", "aes128gcm16"}));
  EXPECT_EQ(names(b.local_ts), (std::vector<std::string>{"10.0.0.0/8"}));
  EXPECT_TRUE(b.remote_ts.empty());
  const Connection& sb = r->connections[1];
  EXPECT_EQ(sb.name, "site-b");
  EXPECT_EQ(sb.remote_addrs[0].to_string(), "198.51.100.2/32");
  EXPECT_EQ(sb.start, StartAction::trap);
  EXPECT_EQ(names(sb.remote_ts), (std::vector<std::string>{"172.16.0.0/16"}));
  const Connection& sc = r->connections[2];
  EXPECT_EQ(sc.name, "site-c");
  EXPECT_EQ(sc.local_addr.family, Family::ipv6);
  EXPECT_EQ(sc.remote_addrs[0].to_string(), "2001:db8:c::2/128");
  EXPECT_EQ(sc.remote_id, (Identity{Identity::Type::rfc822, "admin@site-c.example"}));
  EXPECT_EQ(sc.ike, (std::vector<IkeSuite>{{EncrId::chacha20_poly1305, 256, IntegId::none, PrfId::hmac_sha2_256,
                                            KeGroup::curve25519}}));
  EXPECT_EQ(sc.esp, (std::vector<EspSuite>{{EncrId::chacha20_poly1305, 256, IntegId::none, false},
                                           {EncrId::aes_cbc, 256, IntegId::hmac_sha2_512_256, false}}));
  EXPECT_TRUE(sc.force_encap);
  EXPECT_EQ(sc.start, StartAction::start);
  EXPECT_EQ(r->psks.size(), 3u);
  const SecretBytes& text = r->psks.at("branches");
  const std::string want = "an example passphrase shared by the branch routers";
  ASSERT_EQ(text.size(), want.size());
  EXPECT_TRUE(text.equals({reinterpret_cast<const std::uint8_t*>(want.data()), want.size()}));
}

// The relative ike.secrets is found next to the config, without an override.
TEST_F(Examples, RelativeSecretsPathNextToTheConfig) {
  for (const char* f : {"ike-host-to-host.conf", "ike-net-to-net.conf", "ike-gateway.conf"}) {
    std::string p = dir.copy(kConfDir + "/" + f, f, 0644);
    auto r = load_ike_file(p);
    EXPECT_TRUE(r.ok()) << f << ": " << (r.ok() ? "" : r.error().message);
  }
}

// A fresh clone: git leaves the secrets example at 0644. The error says so
// and tells the user what to run.
TEST_F(Examples, FreshCloneSecretsModeIsRefusedWithAHint) {
  dir.copy(kConfDir + "/ike-secrets.example.conf", "ike-secrets.example.conf", 0644);
  std::string p = dir.copy(kConfDir + "/ike-host-to-host.conf", "ike-host-to-host.conf", 0644);
  auto r = load_ike_file(p);
  ASSERT_FALSE(r.ok());
  const std::string& m = r.error().message;
  EXPECT_THAT(m, HasSubstr(p + ":10: ike.secrets: "));
  EXPECT_THAT(m, HasSubstr("mode 0644"));
  EXPECT_THAT(m, HasSubstr("refused"));
  EXPECT_THAT(m, HasSubstr("chmod 600 '" + (dir.path() / "ike-secrets.example.conf").string() + "'"));
}

// The examples as they are in the tree, without an override: either the
// secrets example is 0600 and they load, or the error tells what to run.
TEST(ExamplesInTree, LoadOrSayChmod600) {
  const std::string sec = kConfDir + "/ike-secrets.example.conf";
  struct stat st {};
  ASSERT_EQ(::stat(sec.c_str(), &st), 0);
  for (const char* f : {"ike-host-to-host.conf", "ike-net-to-net.conf", "ike-gateway.conf"}) {
    auto r = load_ike_file(kConfDir + "/" + f);
    if ((st.st_mode & 077) == 0 && (st.st_uid == ::geteuid() || st.st_uid == 0)) {
      EXPECT_TRUE(r.ok()) << f << ": " << (r.ok() ? "" : r.error().message);
    } else {
      ASSERT_FALSE(r.ok()) << f;
      EXPECT_THAT(r.error().message, HasSubstr(kConfDir + "/" + f + ":"));
      EXPECT_THAT(r.error().message, HasSubstr("ike.secrets: the secrets file '" + sec + "'"));
      if ((st.st_mode & 077) != 0) {
        EXPECT_THAT(r.error().message, HasSubstr("chmod 600 '" + sec + "'"));
      }
    }
  }
}

// ----------------------------------------------------------- error messages

TEST_F(IkeCfg, MinimalConnectionGetsTheDefaults) {
  auto r = load(conn(""));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Connection& c = r->connections[0];
  EXPECT_EQ(c.local_id.type, Identity::Type::any);
  EXPECT_EQ(c.remote_id.type, Identity::Type::any);
  EXPECT_EQ(c.ike, default_ike_suites());
  EXPECT_EQ(c.esp, default_esp_suites());
  EXPECT_EQ(c.mode, Mode::tunnel);
  EXPECT_EQ(c.start, StartAction::none);
  EXPECT_EQ(c.dpd_s, 0u);
  EXPECT_EQ(c.child_lifetime_bytes, 0u);
  EXPECT_EQ(c.child_lifetime_packets, 0u);
  ASSERT_EQ(r->psks.size(), 1u);
  EXPECT_EQ(r->psks.at("site-b").size(), 24u);
  EXPECT_EQ(r->psks.at("site-b").bytes()[1], 0x11);
  EXPECT_TRUE(warnings.empty());
}

TEST_F(IkeCfg, ByteAndPacketLifetimes) {
  auto r = load(conn("child_lifetime_bytes = 4000000000L; child_lifetime_packets = 1000000;"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->connections[0].child_lifetime_bytes, 4000000000u);
  EXPECT_EQ(r->connections[0].child_lifetime_packets, 1000000u);
}

TEST_F(IkeCfg, BadAddress) {
  std::string text = conn("");
  text.replace(text.find("192.0.2.1"), 9, "192.0.2.999");
  EXPECT_THAT(error_of(text), HasSubstr("test.conf:4: connections[0].local_addr: '192.0.2.999' is not an IPv4"));
  text = conn("");
  text.replace(text.find("198.51.100.2"), 12, "198.51.100.0/33");
  EXPECT_THAT(error_of(text), HasSubstr("test.conf:5: connections[0].remote_addrs: "));
  text = conn("");
  text.replace(text.find("198.51.100.2"), 12, "2001:db8::2");
  EXPECT_THAT(error_of(text), HasSubstr("test.conf:5: connections[0].remote_addrs: IPv6 peer 2001:db8::2/128 but "
                                        "local_addr 192.0.2.1 is IPv4"));
  text = conn("");
  text.replace(text.find("192.0.2.1"), 9, "0.0.0.0");
  EXPECT_THAT(error_of(text), HasSubstr("test.conf:4: connections[0].local_addr: 0.0.0.0 is the unspecified"));
  text = conn("");
  text.replace(text.find("\"198.51.100.2\""), 14, "[ \"198.51.100.2\", \"%any\" ]");
  EXPECT_THAT(error_of(text), HasSubstr("test.conf:5: connections[0].remote_addrs[1]: \"%any\" must be the only"));
  text = conn("");
  text.replace(text.find("\"198.51.100.2\""), 14, "[ ]");
  EXPECT_THAT(error_of(text), HasSubstr("test.conf:5: connections[0].remote_addrs: empty list"));
}

TEST_F(IkeCfg, UnknownAlgorithm) {
  auto m = error_of(conn("ike = [ \"aes128gcm16-prfsha256-x25519\",\n  \"aes128gcm16-prfsha256-modp1536\" ];"));
  EXPECT_THAT(m, HasSubstr("test.conf:7: connections[0].ike[1]: unknown algorithm 'modp1536'"));
  EXPECT_THAT(m, HasSubstr("key exchange: modp2048, ecp256, ecp384, ecp521, x25519, curve25519"));
  m = error_of(conn("esp = \"aes128-md5\";"));
  EXPECT_THAT(m, HasSubstr("test.conf:6: connections[0].esp: unknown algorithm 'md5' in ESP proposal 'aes128-md5'"));
  EXPECT_THAT(m, HasSubstr("integrity: sha256, sha384, sha512"));
  m = error_of(conn("ike = [ ];"));
  EXPECT_THAT(m, HasSubstr("test.conf:6: connections[0].ike: empty list"));
  m = error_of(conn("esp = 5;"));
  EXPECT_THAT(m, HasSubstr("test.conf:6: connections[0].esp: expected an ESP proposal string"));
}

TEST_F(IkeCfg, MissingPskReference) {
  std::string text = conn("");
  text.replace(text.find("psk = \"site-b\""), 14, "psk = \"site-x\"");
  auto m = error_of(text);
  EXPECT_THAT(m, HasSubstr("test.conf:7: connections[0].psk: connection 'c1': PSK 'site-x' is not in the secrets "
                           "file " + secrets + " (it has: 'site-b', 'text', 'unused')"));
  expect_no_secret(m);
  text = conn("");
  text.replace(text.find("  psk = \"site-b\";\n"), 18, "");
  EXPECT_THAT(error_of(text), HasSubstr("test.conf:3: connections[0].psk: missing"));
}

TEST_F(IkeCfg, SecretInThePskFieldIsNotEchoed) {
  std::string text = conn("");
  text.replace(text.find("psk = \"site-b\""), 14, "psk = \"" + kTextSecret + "\"");
  auto m = error_of(text);
  EXPECT_THAT(m, HasSubstr("test.conf:7: connections[0].psk: expected the name of an entry of the secrets file"));
  expect_no_secret(m);
  text = conn("");
  text.replace(text.find("psk = \"site-b\""), 14, "psk = \"" + kHexSecret + "\"");
  m = error_of(text);
  EXPECT_THAT(m, HasSubstr("test.conf:7: connections[0].psk: expected the name"));
  expect_no_secret(m);
  // A text secret that looks like a name is recognised as a secret.
  dir.write("secrets.conf", "psks = ( { name = \"site-b\"; secret = \"HunterTwoHunterTwo\"; } );");
  text = conn("");
  text.replace(text.find("psk = \"site-b\""), 14, "psk = \"HunterTwoHunterTwo\"");
  m = error_of(text);
  EXPECT_THAT(m, HasSubstr("test.conf:7: connections[0].psk: connection 'c1': psk holds the value of a secret"));
  EXPECT_THAT(m, ::testing::Not(HasSubstr("HunterTwo")));
}

TEST_F(IkeCfg, SecretsFileMode0644IsRefused) {
  ::chmod(secrets.c_str(), 0644);
  auto m = error_of(conn("", "secrets = \"ignored-because-of-the-override\";"));
  EXPECT_THAT(m, HasSubstr("the secrets file '" + secrets + "' is accessible by group or others (mode 0644): refused"));
  EXPECT_THAT(m, HasSubstr("chmod 600"));
  ::chmod(secrets.c_str(), 0640);
  EXPECT_THAT(error_of(conn("")), HasSubstr("(mode 0640)"));
  ::chmod(secrets.c_str(), 0604);
  EXPECT_THAT(error_of(conn("")), HasSubstr("(mode 0604)"));
  ::chmod(secrets.c_str(), 0400);
  EXPECT_TRUE(load(conn("")).ok());
  // Through ike.secrets, the error points at the setting.
  std::string cfg = dir.write("c.conf", conn("", "secrets = \"secrets.conf\";"), 0644);
  ::chmod(secrets.c_str(), 0644);
  auto r = load_ike_file(cfg);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr(cfg + ":1: ike.secrets: the secrets file '" + secrets + "'"));
  EXPECT_THAT(r.error().message, HasSubstr("mode 0644"));
}

TEST_F(IkeCfg, SecretsFileOfAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown the file to another user";
  ASSERT_EQ(::chown(secrets.c_str(), 65534, 65534), 0);
  auto m = error_of(conn(""));
  EXPECT_THAT(m, HasSubstr("the secrets file '" + secrets + "' is owned by uid 65534, not by the user cygnet-ike runs as"));
  EXPECT_THAT(m, HasSubstr("refused"));
}

TEST_F(IkeCfg, SecretsFileMissingOrNotAFile) {
  std::string cfg = dir.write("c.conf", conn("", "secrets = \"nope.conf\";"), 0644);
  auto r = load_ike_file(cfg);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message,
              HasSubstr(cfg + ":1: ike.secrets: cannot open the secrets file '" + (dir.path() / "nope.conf").string() +
                        "': No such file or directory"));
  fs::create_directory(dir.path() / "adir");
  ::chmod((dir.path() / "adir").c_str(), 0700);
  IkeLoadOptions o = with_secrets((dir.path() / "adir").string());
  r = load_ike_string(conn(""), "test.conf", o);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("is not a regular file"));
  // No ike.secrets and no override.
  r = load_ike_string(conn(""), "test.conf");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("test.conf:1: ike.secrets: missing (expected the path of the secrets file"));
}

TEST_F(IkeCfg, DuplicateName) {
  std::string text = conn("");
  std::string second = text.substr(text.find("{ name"), text.find("} );") - text.find("{ name") + 1);
  text.insert(text.find(" );"), ",\n" + second);
  auto m = error_of(text);
  EXPECT_THAT(m, HasSubstr("test.conf:9: connections[1].name: duplicate connection name 'c1' (first at line 3)"));
}

TEST_F(IkeCfg, BadTrafficSelector) {
  EXPECT_THAT(error_of(conn("local_ts = [ \"10.1.0.0/24\", \"10.1.0.1/24\" ];")),
              HasSubstr("test.conf:6: connections[0].local_ts[1]: '10.1.0.1/24' has bits set beyond"));
  EXPECT_THAT(error_of(conn("remote_ts = ( { prefix = \"10.2.0.0/16\"; proto = \"tcp\"; ports = \"99999\"; } );")),
              HasSubstr("test.conf:6: connections[0].remote_ts[0]: '99999' is not a port"));
  EXPECT_THAT(error_of(conn("remote_ts = ( { prefix = \"10.2.0.0/16\"; port = 1; } );")),
              HasSubstr("test.conf:6: connections[0].remote_ts[0].port: unknown setting"));
  EXPECT_THAT(error_of(conn("local_ts = [ \"2001:db8:1::/48\" ];\n remote_ts = [ \"10.2.0.0/16\" ];")),
              HasSubstr("test.conf:7: connections[0].remote_ts: local_ts covers IPv6 only and remote_ts IPv4 only"));
  EXPECT_THAT(error_of(conn("remote_ts = [ \"2001:db8:2::/48\" ];")),
              HasSubstr("test.conf:6: connections[0].remote_ts: local_ts covers IPv4 only and remote_ts IPv6"));
  EXPECT_THAT(error_of(conn("local_ts = [ \"10.1.0.0/24\", \"10.1.0.0/24\" ];")),
              HasSubstr("test.conf:6: connections[0].local_ts[1]: traffic selector listed twice"));
  EXPECT_THAT(error_of(conn("mode = \"transport\"; local_ts = [ \"10.1.0.0/24\" ];")),
              HasSubstr("test.conf:6: connections[0].local_ts: transport mode protects this host's own traffic"));
  // IPv6 inside IPv4 is fine; a family on one side only is a warning.
  auto r = load(conn("local_ts = [ \"2001:db8:1::/48\", \"10.1.0.0/24\" ];\n remote_ts = [ \"2001:db8:2::/48\" ];"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("test.conf:7: connections[0].remote_ts: local_ts covers IPv6 and IPv4 but "
                                     "remote_ts IPv6"));
}

TEST_F(IkeCfg, BadPort) {
  EXPECT_THAT(error_of(conn("local_port = 0;")),
              HasSubstr("test.conf:6: connections[0].local_port: value 0 out of range 1-65535"));
  EXPECT_THAT(error_of(conn("remote_port = 65536;")),
              HasSubstr("test.conf:6: connections[0].remote_port: value 65536 out of range 1-65535"));
  EXPECT_THAT(error_of(conn("remote_port = \"4500\";")),
              HasSubstr("test.conf:6: connections[0].remote_port: expected an integer in 1-65535"));
  auto r = load(conn("local_port = 4500; remote_port = 4501;"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->connections[0].local_port, 4500);
  EXPECT_EQ(r->connections[0].remote_port, 4501);
}

TEST_F(IkeCfg, BadIdentity) {
  EXPECT_THAT(error_of(conn("remote_id = \"fqdn:bad_name.example\";")),
              HasSubstr("test.conf:6: connections[0].remote_id: FQDN identity 'bad_name.example' contains '_'"));
  EXPECT_THAT(error_of(conn("local_id = \"fqdn:\";")),
              HasSubstr("test.conf:6: connections[0].local_id: identity 'fqdn:' is empty after 'fqdn:'"));
  EXPECT_THAT(error_of(conn("local_id = \"gw.example\";")),
              HasSubstr("test.conf:6: connections[0].local_id: 'gw.example' is not an identity"));
}

TEST_F(IkeCfg, OtherFieldErrors) {
  const std::pair<std::string, std::string> cases[] = {
      {conn("colour = \"blue\";"), "test.conf:6: connections[0].colour: unknown setting (expected one of: name,"},
      {conn("mode = \"tunel\";"), "test.conf:6: connections[0].mode: mode 'tunel' is neither"},
      {conn("start = \"go\";"), "test.conf:6: connections[0].start: unknown start action 'go' (expected one of: none, "
                                "start, trap)"},
      {conn("force_encap = 1;"), "test.conf:6: connections[0].force_encap: expected true or false"},
      {conn("ike_lifetime = 0;"), "test.conf:6: connections[0].ike_lifetime: value 0 out of range 1-4294967295 seconds"},
      {conn("child_lifetime = 0;"), "test.conf:6: connections[0].child_lifetime: value 0 out of range"},
      {conn("dpd = 100000;"), "test.conf:6: connections[0].dpd: value 100000 out of range 0-86400"},
      {conn("child_lifetime_bytes = 999;"), "test.conf:6: connections[0].child_lifetime_bytes: at least 1000 bytes"},
      {conn("child_lifetime_packets = 9;"), "test.conf:6: connections[0].child_lifetime_packets: at least 10 packets"},
      {conn("child_lifetime_packets = -1;"), "connections[0].child_lifetime_packets: value -1 out of range"},
      {conn("", "cookie_threshold = 0;"), "test.conf:1: ike.cookie_threshold: value 0 out of range 1-1000000"},
      {conn("", "retransmit_tries = 50;"), "test.conf:1: ike.retransmit_tries: value 50 out of range 1-20"},
      {conn("", "dataplane_instance = \"a b\";"), "test.conf:1: ike.dataplane_instance: 'a b' is not an shm"},
      {conn("", "colour = 1;"), "test.conf:1: ike.colour: unknown setting"},
      {"connections = ( );", "test.conf:1: connections: empty (expected at least one connection)"},
      {"ike = { };", "test.conf: connections: missing"},
      {"policies = ( );\nconnections = ( );", "test.conf:1: policies: unknown setting (expected one of: ike, connections)"},
      {"connections = ( { name = \"c1\"", "test.conf:1: syntax error"},
  };
  for (const auto& [text, says] : cases) EXPECT_THAT(error_of(text), HasSubstr(says)) << text;
  std::string text = conn("start = \"start\";");
  text.replace(text.find("\"198.51.100.2\""), 14, "\"%any\"");
  EXPECT_THAT(error_of(text), HasSubstr("test.conf:6: connections[0].start: start = \"start\" needs a peer to contact, "
                                        "but the first remote_addrs entry is %any"));
  text = conn("start = \"trap\";");
  text.replace(text.find("\"198.51.100.2\""), 14, "\"198.51.100.0/24\"");
  EXPECT_THAT(error_of(text), HasSubstr("is the prefix 198.51.100.0/24"));
}

TEST_F(IkeCfg, Warnings) {
  auto r = load(conn("child_lifetime = 14400;"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("test.conf:6: connections[0].child_lifetime: child_lifetime 14400 s is not "
                                     "below ike_lifetime 14400 s"));
  std::string text = conn("");
  text.replace(text.find("\"198.51.100.2\""), 14, "\"%any\"");
  r = load(text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("test.conf:3: connections[0]: remote_addrs is %any and remote_id is %any"));
  r = load(conn("esp = [ \"aes128gcm16\", \"aes128gcm16-noesn\" ];"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("test.conf:6: connections[0].esp[1]: proposal 'aes128gcm16-noesn' adds nothing"));
  EXPECT_EQ(r->connections[0].esp.size(), 1u);
}

// ------------------------------------------------------------ secrets file

TEST_F(IkeCfg, SecretsFileErrorsNameTheFileLineAndField) {
  const std::pair<std::string, std::string> cases[] = {
      {"psks = ( { name = \"site-b\";\n secret = \"0x0011\"; } );", ":2: psks[0].secret: the key is shorter than 16 bytes: refused"},
      {"psks = ( { name = \"site-b\";\n secret = \"horse\"; } );", ":2: psks[0].secret: the key is shorter than 16"},
      {"psks = ( { name = \"site-b\";\n secret = \"0x00112233445566778899aabbccddeefg\"; } );",
       ":2: psks[0].secret: starts with 0x but is not an even number of hex digits"},
      {"psks = ( { name = \"site-b\";\n secret = \"0x00112233445566778899aabbccddeef\"; } );",
       ":2: psks[0].secret: starts with 0x but is not"},
      {"psks = ( { name = \"site-b\";\n secret = \"\"; } );", ":2: psks[0].secret: empty"},
      {"psks = ( { name = \"site-b\";\n secret = 12; } );", ":2: psks[0].secret: expected the key in double quotes"},
      {"psks = ( { name = \"site-b\"; } );", ":1: psks[0].secret: missing"},
      {"psks = ( { name = \"site-b\"; secret = \"" + kHexSecret + "\"; },\n { name = \"site-b\"; secret = \"" +
           kTextSecret + "\"; } );",
       ":2: psks[1].name: duplicate PSK name 'site-b'"},
      {"psks = ( { name = \"site-b\"; secret = \"" + kTextSecret + "\";\n comment = \"x\"; } );",
       ":2: psks[0].comment: unknown setting"},
      {"psks = ( { name = \"" + kTextSecret + "\"; secret = \"" + kTextSecret + "\"; } );",
       ":1: psks[0].name: not a PSK name"},
      {"keys = ( );", ":1: keys: unknown setting (expected one of: psks)"},
      {"psks = { a = 1; };", ":1: psks: expected a list"},
      {"psks = ( { name = \"site-b\"; secret = \"" + kTextSecret, ":1: syntax error"},
      {"psks = ( { name = \"site-b\"; secret = \"" + kTextSecret + "\"; } ", ":1: syntax error"},
  };
  for (const auto& [text, says] : cases) {
    dir.write("secrets.conf", text);
    auto m = error_of(conn(""));
    EXPECT_THAT(m, HasSubstr(secrets + says)) << text;
    expect_no_secret(m);
    auto direct = load_secrets_file(secrets);
    ASSERT_FALSE(direct.ok());
    EXPECT_THAT(direct.error().message, HasSubstr(secrets + says));
    expect_no_secret(direct.error().message);
  }
}

TEST_F(IkeCfg, SecretValues) {
  dir.write("secrets.conf",
            "psks = ( { name = \"site-b\"; secret = \"0XAABBCCDDEEFF00112233445566778899\"; },\n"
            "         { name = \"text\"; secret = \"" + kTextSecret + "\"; } );");
  auto r = load_secrets_file(secrets);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const SecretBytes& hex = r->at("site-b");
  ASSERT_EQ(hex.size(), 16u);
  EXPECT_EQ(hex.bytes()[0], 0xaa);
  EXPECT_EQ(hex.bytes()[15], 0x99);
  const SecretBytes& text = r->at("text");
  EXPECT_TRUE(text.equals({reinterpret_cast<const std::uint8_t*>(kTextSecret.data()), kTextSecret.size()}));
  std::ostringstream os;
  os << text;
  expect_no_secret(os.str());
}

// No message or warning of any error path in this file carries a secret:
// run the connection and globals error cases with the secrets loaded.
TEST_F(IkeCfg, NoSecretInAnyMessage) {
  const std::string extras[] = {"colour = 1;", "ike = \"x\";", "esp = \"aes128\";", "local_ts = [ \"x\" ];",
                                "remote_id = \"fqdn:_\";", "child_lifetime = 20000;", "local_port = 0;"};
  for (const auto& e : extras) {
    auto r = load(conn(e));
    if (!r.ok()) expect_no_secret(r.error().message);
    for (const auto& w : warnings) expect_no_secret(w);
  }
  std::string text = conn("");
  text.replace(text.find("psk = \"site-b\""), 14, "psk = \"nonexistent\"");
  expect_no_secret(error_of(text));
}

}  // namespace
}  // namespace cygnet::ike::cfg
