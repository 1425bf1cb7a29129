#include "cp/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <libconfig.h++>

#include "cp/dp_config.h"

namespace cygnet::cfg {
namespace {

const char* kGoodSa = R"(
sas = ( { spi = 0x2000; dir = "in"; src = "10.0.0.1"; dst = "10.0.0.2";
          enc = "aes-gcm16-256"; enc_key = "0x0001020304050607080910111213141516171819202122232425262728293031a1a2a3a4";
          replay_window = 256; anti_replay = true; esn = true; ttl = 32; copy_dscp = false; tfc_pad = 512;
          encap = { sport = 4500; dport = 1234; };
          soft = { packets = 10; }; hard = { packets = 20; seconds = 3600; };
          selectors = ( { src = "10.1.0.0/16"; dst = "10.2.0.0/16"; proto = "udp"; dport = "53"; } ); } );
)";

std::string load_error(const std::string& text) {
  auto r = load_static_string(text, "t.conf");
  return r.ok() ? "<ok>" : r.error().message;
}

TEST(Config, LoadsAFullSa) {
  auto r = load_static_string(kGoodSa, "t.conf");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->sas.size(), 1u);
  const auto& sa = r->sas[0];
  EXPECT_EQ(sa.spi, 0x2000u);
  EXPECT_EQ(sa.dir, Direction::in);
  EXPECT_EQ(sa.cipher, CipherAlg::aes_gcm16_256);
  EXPECT_EQ(sa.cipher_key.size(), 36u);
  EXPECT_EQ(sa.cipher_key.bytes()[35], 0xa4);
  EXPECT_TRUE(sa.esn);
  EXPECT_EQ(sa.replay_window, 256u);
  EXPECT_EQ(sa.outer_ttl, 32);
  EXPECT_FALSE(sa.copy_dscp);
  EXPECT_EQ(sa.tfc_pad_to, 512);
  EXPECT_TRUE(sa.encap.enabled);
  EXPECT_EQ(sa.encap.dport, 1234);
  EXPECT_EQ(sa.hard.packets, 20u);
  EXPECT_EQ(sa.hard.add_seconds, 3600u);
  ASSERT_EQ(sa.selectors.size(), 1u);
  EXPECT_EQ(sa.selectors[0].proto, kProtoUdp);
  EXPECT_EQ(sa.selectors[0].dport.lo, 53);
}

TEST(Config, HighHexSpi) {
  auto r = load_static_string(R"(sas = ( { spi = 0xc0ffee01; dir = "out"; src = "10.0.0.1"; dst = "10.0.0.2";
      enc = "null"; integ = "hmac-sha1-96"; integ_key = "0x0102030405060708091011121314151617181920"; } );)");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->sas[0].spi, 0xc0ffee01u);
}

TEST(Config, ErrorsNameLineFieldAndExpectation) {
  auto e = load_error("sas = ( { spi = 0x2000; dir = \"in\"; src = \"10.0.0.1\";\n dst = \"10.0.0.2\";\n"
                      " enc = \"aes-gcm\"; } );");
  EXPECT_NE(e.find("t.conf:3"), std::string::npos) << e;
  EXPECT_NE(e.find("enc"), std::string::npos) << e;
  EXPECT_NE(e.find("expected one of"), std::string::npos) << e;

  e = load_error("sas = ( { spi = 0x2000; dir = \"in\"; src = \"10.0.0.1\"; dst = \"10.0.0.2\";\n"
                 " enc = \"aes-gcm16-128\"; enc_key = \"0x01\"; } );");
  EXPECT_NE(e.find("20-byte key"), std::string::npos) << e;

  e = load_error("sas = ( { spi = 5; dir = \"in\"; src = \"10.0.0.1\"; dst = \"10.0.0.2\"; enc = \"null\"; } );");
  EXPECT_NE(e.find("reserved"), std::string::npos) << e;

  e = load_error("sas = ( { spi = 0x2000; dir = \"in\"; src = \"10.0.0.1\"; dst = \"10.0.0.2\";\n"
                 " enc = \"aes-gcm16-128\"; enc_kye = \"0x01\"; } );");
  EXPECT_NE(e.find("t.conf:2"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown setting"), std::string::npos) << e;
  EXPECT_NE(e.find("enc_kye"), std::string::npos) << e;

  e = load_error("sas = ( { spi = \"x\"; } );");
  EXPECT_NE(e.find("expected an integer"), std::string::npos) << e;

  e = load_error("sas = ( { spi = 0x2000; } );");
  EXPECT_NE(e.find("dir: missing"), std::string::npos) << e;

  e = load_error("sas = ( { spi = 0x1FFFFFFFFL; dir = \"in\"; } );");
  EXPECT_NE(e.find("out of range"), std::string::npos) << e;

  e = load_error("sas = ( ;");
  EXPECT_NE(e.find("syntax error"), std::string::npos) << e;

  e = load_error("sas = { a = 1; };");
  EXPECT_NE(e.find("expected a list"), std::string::npos) << e;
}

TEST(Config, KeyErrorsDoNotLeakKeys) {
  auto e = load_error("sas = ( { spi = 0x2000; dir = \"in\"; src = \"10.0.0.1\"; dst = \"10.0.0.2\";"
                      " enc = \"aes-gcm16-128\"; enc_key = \"0xdeadbeefcafebabe1234567890abcdef1234567Z\"; } );");
  EXPECT_NE(e.find("not a hex digit"), std::string::npos) << e;
  EXPECT_EQ(e.find("deadbeef"), std::string::npos) << e;
}

TEST(Config, DuplicateSaRefused) {
  std::string one = R"({ spi = 0x2000; dir = "in"; src = "10.0.0.1"; dst = "10.0.0.2"; enc = "aes-gcm16-128";
                         enc_key = "0x0102030405060708090a0b0c0d0e0f1011121314"; })";
  auto e = load_error("sas = ( " + one + ", " + one + " );");
  EXPECT_NE(e.find("duplicate SA"), std::string::npos) << e;
}

TEST(Config, Policies) {
  auto r = load_static_string(R"(policies = (
    { dir = "out"; priority = 10; action = "protect"; reqid = 4; src = "10.0.0.0/8"; dst = "0.0.0.0/0";
      proto = "tcp"; sport = "1024-65535"; dport = "443"; },
    { dir = "in"; action = "discard"; src = "::/0"; dst = "2001:db8::/64"; proto = "icmpv6";
      icmp_type = "135"; icmp_code = "0"; } );)");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->policies.size(), 2u);
  EXPECT_EQ(r->policies[0].priority, 10u);
  EXPECT_EQ(r->policies[0].sel.sport.lo, 1024);
  EXPECT_EQ(r->policies[0].sel.dport.hi, 443);
  EXPECT_EQ(r->policies[1].priority, 1000u) << "default priority";
  EXPECT_EQ(r->policies[1].sel.sport.lo, 135);

  EXPECT_NE(load_error(R"(policies = ( { dir = "out"; action = "protect"; src = "10.0.0.0/8"; dst = "0.0.0.0/0"; } );)")
                .find("reqid"),
            std::string::npos);
  EXPECT_NE(load_error(R"(policies = ( { dir = "out"; action = "bypass"; src = "10.0.0.1/8"; dst = "0.0.0.0/0"; } );)")
                .find("host bits"),
            std::string::npos);
  EXPECT_NE(load_error(R"(policies = ( { dir = "out"; action = "bypass"; src = "10.0.0.0/8"; dst = "0.0.0.0/0";
                                         proto = "icmp"; dport = "80"; } );)")
                .find("icmp_type"),
            std::string::npos);
  EXPECT_NE(load_error(R"(policies = ( { dir = "out"; action = "bypass"; src = "10.0.0.0/8"; dst = "0.0.0.0/0";
                                         icmp_type = "8"; } );)")
                .find("need proto"),
            std::string::npos);
}

TEST(Config, FileErrorsAndPermissionWarning) {
  auto missing = load_static_file("/nonexistent/cygnet.conf");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("cannot read"), std::string::npos);

  auto dir = std::filesystem::temp_directory_path() / ("cygnet-cfg-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / "keys.conf").string();
  {
    std::ofstream f(path);
    f << kGoodSa;
  }
  ::chmod(path.c_str(), 0644);
  auto r = load_static_file(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("chmod 600"), std::string::npos);
  ::chmod(path.c_str(), 0600);
  r = load_static_file(path);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->warnings.empty());

  {
    std::ofstream f(path);
    f << "sas = (\n{ spi = 0x2000;\n dir = \"sideways\"; } );\n";
  }
  r = load_static_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(path + ":3"), std::string::npos) << r.error().message;
  std::filesystem::remove_all(dir);
}

// Every example under conf/ must load (CONVENTIONS.md): cygnet-dp's files
// (those with a `dataplane` group) with load_dp_file, the others with
// load_static_file.
TEST(Config, EveryExampleLoads) {
  int n = 0, dp = 0;
  for (const auto& e : std::filesystem::directory_iterator(CYGNET_CONF_DIR)) {
    if (e.path().extension() != ".conf") continue;
    ++n;
    const std::string path = e.path().string();
    libconfig::Config lc;
    bool is_dp = false;
    try {
      lc.readFile(path.c_str());
      is_dp = lc.getRoot().exists("dataplane");
    } catch (const libconfig::ConfigException&) {
      // Not readable or not valid: the loader below reports why.
    }
    if (is_dp) {
      ++dp;
      auto r = load_dp_file(path);
      EXPECT_TRUE(r.ok()) << path << ": " << (r.ok() ? "" : r.error().message);
    } else {
      auto r = load_static_file(path);
      EXPECT_TRUE(r.ok()) << path << ": " << (r.ok() ? "" : r.error().message);
    }
  }
  EXPECT_GE(n, 1) << "no examples found in " << CYGNET_CONF_DIR;
  EXPECT_GE(dp, 1) << "no cygnet-dp examples found in " << CYGNET_CONF_DIR;
}

}  // namespace
}  // namespace cygnet::cfg
