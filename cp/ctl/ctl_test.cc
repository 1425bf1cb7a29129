// cygnetctl end to end: the command functions against an in-test ShmServer
// whose fake handler is a small in-memory store the tests inspect.
#include "cp/ctl/ctl.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <map>
#include <mutex>
#include <thread>

#include "shared/json.h"
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "shared/shm/server.h"
#include "shared/shm/test_util.h"

namespace cygnet::ctl {
namespace {

using namespace std::chrono_literals;
using shm::Change;
using shm::Status;
using shm::Verdict;

// 20 bytes: an AES-128-GCM key and its salt. Tests check it never shows.
constexpr const char* kKeyHex = "0x0102030405060708090a0b0c0d0e0f10a0a1a2a3";
constexpr const char* kKeyNeedle = "0102030405060708";

class StoreHandler : public shm::Handler {
 public:
  Verdict apply(std::span<const Change> changes) override {
    std::lock_guard<std::mutex> g(mu_);
    if (next_.status != Status::ok) return next_;
    batches_.emplace_back(changes.begin(), changes.end());
    return {};
  }
  Verdict counters(const shm::CountersQuery& q, std::vector<shm::SaCounters>& out,
                   std::uint32_t& next_cursor) override {
    std::lock_guard<std::mutex> g(mu_);
    queries_.push_back(q);
    // Two SAs, one per reply, to exercise the cursor.
    shm::SaCounters c;
    c.sa = shm::SaKey{q.cursor == 0 ? 0x1001u : 0x2001u, q.cursor == 0 ? Direction::out : Direction::in,
                      IpAddress::parse("192.0.2.2").value()};
    c.reqid = 1;
    c.packets = 10 + q.cursor;
    c.bytes = 1000 + q.cursor;
    c.n_drops = 9;
    c.drops.at(6) = 3;  // replay
    c.drops.at(8) = 2;  // icv
    out.push_back(c);
    next_cursor = q.cursor == 0 ? 1 : 0;
    return {};
  }
  void refuse(Verdict v) {
    std::lock_guard<std::mutex> g(mu_);
    next_ = std::move(v);
  }
  std::vector<std::vector<Change>> batches() {
    std::lock_guard<std::mutex> g(mu_);
    return batches_;
  }
  std::vector<shm::CountersQuery> queries() {
    std::lock_guard<std::mutex> g(mu_);
    return queries_;
  }

 private:
  std::mutex mu_;
  Verdict next_;
  std::vector<std::vector<Change>> batches_;
  std::vector<shm::CountersQuery> queries_;
};

struct Out {
  int rc;
  std::string out, err;
};

Out run_ctl(const std::vector<std::string>& args) {
  std::ostringstream o, e;
  const int rc = run(args, o, e);
  return {rc, o.str(), e.str()};
}

class Ctl : public ::testing::Test {
 protected:
  void SetUp() override {
    inst_ = shm::testing::unique_instance();
    auto s = shm::ShmServer::create(inst_);
    ASSERT_TRUE(s) << s.error().message;
    server_ = std::move(*s);
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        if (server_->poll(h_, 64) == 0) std::this_thread::sleep_for(50us);
      }
    });
  }
  void TearDown() override { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  Out ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--instance", inst_});
    return run_ctl(args);
  }

  std::string inst_;
  std::unique_ptr<shm::ShmServer> server_;
  StoreHandler h_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::vector<std::string> sa_add_args() {
  return {"sa", "add", "--spi", "0x1001", "--dir", "out", "--src", "192.0.2.1", "--dst", "192.0.2.2",
          "--mode", "tunnel", "--enc", "aes-gcm16-128", "--enc-key", kKeyHex, "--reqid", "5", "--esn",
          "--encap", "4500:4501", "--replay-window", "128"};
}

TEST_F(Ctl, SaAddReachesTheDataplaneWithEveryField) {
  const Out r = ctl(sa_add_args());
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_NE(r.out.find("ok: SA 0x00001001 out 192.0.2.1 -> 192.0.2.2 added"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(kKeyNeedle), std::string::npos);
  EXPECT_EQ(r.err.find(kKeyNeedle), std::string::npos);

  const auto b = h_.batches();
  ASSERT_EQ(b.size(), 1u);
  ASSERT_EQ(b.at(0).size(), 1u);
  const auto* add = std::get_if<shm::SaAdd>(&b.at(0).at(0).op);
  ASSERT_NE(add, nullptr);
  const SaConfig& sa = add->sa;
  EXPECT_EQ(sa.spi, 0x1001u);
  EXPECT_EQ(sa.dir, Direction::out);
  EXPECT_EQ(sa.src, IpAddress::parse("192.0.2.1").value());
  EXPECT_EQ(sa.dst, IpAddress::parse("192.0.2.2").value());
  EXPECT_EQ(sa.mode, Mode::tunnel);
  EXPECT_EQ(sa.cipher, CipherAlg::aes_gcm16_128);
  EXPECT_TRUE(sa.cipher_key.equals(SecretKey::from_hex(kKeyHex).value()));
  EXPECT_EQ(sa.integ, IntegAlg::none);
  EXPECT_EQ(sa.reqid, 5u);
  EXPECT_TRUE(sa.esn);
  EXPECT_TRUE(sa.encap.enabled);
  EXPECT_EQ(sa.encap.sport, 4500);
  EXPECT_EQ(sa.encap.dport, 4501);
  EXPECT_EQ(sa.replay_window, 128u);
}

TEST_F(Ctl, SaDeleteAndPolicyAddDeleteReachTheDataplane) {
  Out r = ctl({"sa", "delete", "--spi", "4097", "--dst", "192.0.2.2", "--dir", "out"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  r = ctl({"policy", "add", "--dir", "out", "--src", "10.1.0.0/16", "--dst", "10.2.0.10", "--proto", "tcp",
           "--dport", "22", "--sport", "1024-65535", "--action", "protect", "--reqid", "3", "--priority", "50"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  r = ctl({"policy", "delete", "--dir", "out", "--src", "10.1.0.0/16", "--dst", "10.2.0.10", "--proto", "tcp",
           "--dport", "22", "--sport", "1024-65535"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;

  const auto b = h_.batches();
  ASSERT_EQ(b.size(), 3u);
  const auto* del = std::get_if<shm::SaDelete>(&b.at(0).at(0).op);
  ASSERT_NE(del, nullptr);
  EXPECT_EQ(del->key.spi, 4097u);
  EXPECT_EQ(del->key.dir, Direction::out);
  EXPECT_EQ(del->key.dst, IpAddress::parse("192.0.2.2").value());
  const auto* pa = std::get_if<shm::PolicyAdd>(&b.at(1).at(0).op);
  ASSERT_NE(pa, nullptr);
  EXPECT_EQ(pa->policy.dir, PolicyDir::out);
  EXPECT_EQ(pa->policy.action, PolicyAction::protect);
  EXPECT_EQ(pa->policy.reqid, 3u);
  EXPECT_EQ(pa->policy.priority, 50u);
  EXPECT_EQ(pa->policy.sel.src, IpPrefix::parse("10.1.0.0/16").value());
  EXPECT_EQ(pa->policy.sel.dst, IpPrefix::parse("10.2.0.10").value());
  EXPECT_EQ(pa->policy.sel.proto, kProtoTcp);
  EXPECT_EQ(pa->policy.sel.dport, (PortRange{22, 22}));
  EXPECT_EQ(pa->policy.sel.sport, (PortRange{1024, 65535}));
  const auto* pd = std::get_if<shm::PolicyDelete>(&b.at(2).at(0).op);
  ASSERT_NE(pd, nullptr);
  EXPECT_EQ(pd->policy.sel.dst, IpPrefix::parse("10.2.0.10").value());
}

TEST_F(Ctl, BadInputIsRefusedNamingTheOptionAndNothingIsSent) {
  struct Case {
    std::string opt;    // option to change ("" : append `value`)
    std::string value;
    std::string named;  // what the error must name
  };
  const std::vector<Case> cases{
      {"--spi", "zz", "--spi"},
      {"--spi", "7", "--spi"},
      {"--spi", "0x100000000", "--spi"},
      {"--dir", "sideways", "--dir"},
      {"--src", "300.1.1.1", "--src"},
      {"--dst", "192.0.2", "--dst"},
      {"--mode", "bridge", "--mode"},
      {"--enc", "rot13", "--enc"},
      {"--enc-key", "0x01020304050607zz", "--enc-key"},
      {"--enc-key", "0x0102", "invalid SA"},  // wrong length: validate_sa says so
      {"--encap", "4500", "--encap"},
      {"--replay-window", "100000", "--replay-window"},
      {"--reqid", "-1", "--reqid"},
      {"", "--bogus", "--bogus"},
      {"", "--integ-key", "--integ-key"},
  };
  for (const auto& c : cases) {
    auto args = sa_add_args();
    if (c.opt.empty()) {
      args.push_back(c.value);
      if (c.value == "--integ-key") args.push_back("0x00112233445566778899aabbccddeeff00112233");
    } else {
      for (std::size_t i = 0; i + 1 < args.size(); ++i)
        if (args.at(i) == c.opt) args.at(i + 1) = c.value;
    }
    const Out r = ctl(args);
    EXPECT_EQ(r.rc, kExitUsage) << c.opt << " " << c.value << ": " << r.err;
    EXPECT_NE(r.err.find(c.named), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    EXPECT_EQ(r.err.find(kKeyNeedle), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("0x01020304050607zz"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  // Missing required options.
  for (const std::string opt : {"--spi", "--dir", "--src", "--dst", "--enc", "--enc-key"}) {
    auto args = sa_add_args();
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
      if (args.at(i) == opt) {
        args.erase(args.begin() + static_cast<std::ptrdiff_t>(i), args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
        break;
      }
    }
    const Out r = ctl(args);
    EXPECT_EQ(r.rc, kExitUsage) << opt;
    EXPECT_NE(r.err.find(opt + " "), std::string::npos) << r.err;
  }
  const std::vector<std::pair<std::vector<std::string>, std::string>> pol{
      {{"policy", "add", "--dir", "out", "--src", "10.1.0.1/16", "--dst", "10.2.0.0/16", "--action", "bypass"},
       "--src"},
      {{"policy", "add", "--dir", "out", "--src", "10.1.0.0/16", "--dst", "10.2.0.0/16", "--action", "maybe"},
       "--action"},
      {{"policy", "add", "--dir", "out", "--src", "10.1.0.0/16", "--dst", "10.2.0.0/16", "--action", "bypass",
        "--dport", "22"},
       "--sport/--dport"},
      {{"policy", "add", "--dir", "out", "--src", "10.1.0.0/16", "--dst", "2001:db8::/32", "--action", "bypass"},
       "--src and --dst"},
      {{"policy", "add", "--dir", "out", "--src", "10.1.0.0/16", "--dst", "10.2.0.0/16", "--action", "bypass",
        "--proto", "tcp", "--dport", "70000"},
       "--dport"},
      {{"policy", "delete", "--dir", "up", "--src", "10.1.0.0/16", "--dst", "10.2.0.0/16"}, "--dir"},
      {{"sa", "delete", "--spi", "0x1001", "--dir", "out"}, "--dst"},
      {{"counters", "--spi", "0x1001"}, "--spi, --dir and --dst"},
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"load"}, "FILE"},
      {{"load", "/nonexistent/cygnet.conf"}, "/nonexistent/cygnet.conf"},
  };
  for (const auto& [args, named] : pol) {
    const Out r = ctl(args);
    EXPECT_EQ(r.rc, kExitUsage) << args.at(0) << ": " << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << r.err;
  }
  const Out bad_inst = run_ctl({"--instance", "a/b", "counters"});
  EXPECT_EQ(bad_inst.rc, kExitUsage);
  EXPECT_NE(bad_inst.err.find("--instance"), std::string::npos);

  stop();
  EXPECT_EQ(server_->stats().commands, 0u) << "nothing may reach cygnet-dp";
  EXPECT_TRUE(server_->clients().empty());
  EXPECT_TRUE(h_.batches().empty());
}

TEST_F(Ctl, ARefusalExitsOneWithTheStatusAndText) {
  h_.refuse(Verdict{Status::exists, "SA 0x1001 out 192.0.2.2 exists"});
  Out r = ctl(sa_add_args());
  EXPECT_EQ(r.rc, kExitRefused);
  EXPECT_NE(r.err.find("refused sa add: exists: SA 0x1001 out 192.0.2.2 exists"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(kKeyNeedle), std::string::npos);

  r = ctl({"--json", "sa", "delete", "--spi", "0x1001", "--dir", "out", "--dst", "192.0.2.2"});
  EXPECT_EQ(r.rc, kExitRefused);
  EXPECT_NE(r.out.find("\"status\":\"exists\""), std::string::npos) << r.out;
}

std::string conf(const char* name) { return std::string(CYGNET_CONF_DIR) + "/" + name; }

TEST_F(Ctl, LoadSendsTheStaticFileAsOneBatch) {
  const Out r = ctl({"load", conf("static-sas.conf")});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_NE(r.out.find("applied 3 SAs and 5 policies"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("0102030405"), std::string::npos);
  EXPECT_EQ(r.err.find("0102030405"), std::string::npos);

  const auto b = h_.batches();
  ASSERT_EQ(b.size(), 1u) << "one batch, applied whole";
  ASSERT_EQ(b.at(0).size(), 8u);
  std::vector<std::uint32_t> spis;
  std::size_t policies = 0;
  for (const auto& c : b.at(0)) {
    if (const auto* a = std::get_if<shm::SaAdd>(&c.op)) spis.push_back(a->sa.spi);
    if (std::holds_alternative<shm::PolicyAdd>(c.op)) ++policies;
  }
  EXPECT_EQ(spis, (std::vector<std::uint32_t>{0x1001, 0x2001, 0x1002}));
  EXPECT_EQ(policies, 5u);
  const auto* first = std::get_if<shm::SaAdd>(&b.at(0).at(0).op);
  ASSERT_NE(first, nullptr);
  EXPECT_TRUE(first->sa.cipher_key.equals(SecretKey::from_hex(kKeyHex).value()));
}

TEST_F(Ctl, LoadRefusedAsAWholeReportsTheCommitStatus) {
  h_.refuse(Verdict{Status::full, "SA table full"});
  const Out r = ctl({"--json", "load", conf("static-sas.conf")});
  EXPECT_EQ(r.rc, kExitRefused);
  EXPECT_NE(r.err.find("refused load: full: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("SA table full"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("\"ok\":false"), std::string::npos) << r.out;
  EXPECT_TRUE(h_.batches().empty());
}

TEST(CtlNoDataplane, ExitsThreeWithAClearMessage) {
  const Out r = run_ctl({"--instance", shm::testing::unique_instance(), "sa", "delete", "--spi", "0x1001", "--dir",
                         "in", "--dst", "192.0.2.1"});
  EXPECT_EQ(r.rc, kExitNotRunning);
  EXPECT_NE(r.err.find("cygnet-dp is not running"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
}

// ---- a minimal JSON reader, enough to check the output parses -------------
struct Json {
  std::variant<std::nullptr_t, bool, double, std::string, std::vector<Json>, std::map<std::string, Json>> v;
  const Json& operator[](const std::string& k) const { return std::get<std::map<std::string, Json>>(v).at(k); }
  const Json& operator[](std::size_t i) const { return std::get<std::vector<Json>>(v).at(i); }
  double num() const { return std::get<double>(v); }
  const std::string& str() const { return std::get<std::string>(v); }
  std::size_t size() const { return std::get<std::vector<Json>>(v).size(); }
};

class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}
  bool parse(Json& out) {
    if (!value(out)) return false;
    ws();
    return i_ == s_.size();
  }

 private:
  void ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  bool lit(std::string_view l) {
    if (s_.substr(i_, l.size()) != l) return false;
    i_ += l.size();
    return true;
  }
  bool string(std::string& o) {
    if (!lit("\"")) return false;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (static_cast<unsigned char>(s_[i_]) < 0x20) return false;
      if (s_[i_] == '\\') {
        if (++i_ >= s_.size()) return false;
        const char e = s_[i_];
        if (e == 'u') {
          if (i_ + 4 >= s_.size()) return false;
          o += static_cast<char>(std::stoi(std::string(s_.substr(i_ + 1, 4)), nullptr, 16));
          i_ += 4;
        } else if (e == '"' || e == '\\' || e == '/') {
          o += e;
        } else if (e == 'n') {
          o += '\n';
        } else {
          return false;
        }
        ++i_;
        continue;
      }
      o += s_[i_++];
    }
    return lit("\"");
  }
  bool value(Json& out) {
    ws();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '{') {
      ++i_;
      std::map<std::string, Json> m;
      ws();
      if (!lit("}")) {
        for (;;) {
          ws();
          std::string k;
          Json v;
          if (!string(k)) return false;
          ws();
          if (!lit(":") || !value(v)) return false;
          m.emplace(std::move(k), std::move(v));
          ws();
          if (lit("}")) break;
          if (!lit(",")) return false;
        }
      }
      out.v = std::move(m);
      return true;
    }
    if (c == '[') {
      ++i_;
      std::vector<Json> a;
      ws();
      if (!lit("]")) {
        for (;;) {
          Json v;
          if (!value(v)) return false;
          a.push_back(std::move(v));
          ws();
          if (lit("]")) break;
          if (!lit(",")) return false;
        }
      }
      out.v = std::move(a);
      return true;
    }
    if (c == '"') {
      std::string s;
      if (!string(s)) return false;
      out.v = std::move(s);
      return true;
    }
    if (lit("true")) return out.v = true, true;
    if (lit("false")) return out.v = false, true;
    if (lit("null")) return out.v = nullptr, true;
    const std::size_t start = i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '-' || s_[i_] == '.' ||
                              s_[i_] == 'e' || s_[i_] == 'E' || s_[i_] == '+'))
      ++i_;
    if (i_ == start) return false;
    out.v = std::strtod(std::string(s_.substr(start, i_ - start)).c_str(), nullptr);
    return true;
  }
  std::string_view s_;
  std::size_t i_ = 0;
};

TEST_F(Ctl, CountersFollowTheCursorAndPrintTablesOrJson) {
  Out r = ctl({"counters", "--json"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  Json j;
  ASSERT_TRUE(JsonReader(r.out).parse(j)) << r.out;
  ASSERT_EQ(j["sas"].size(), 2u);
  EXPECT_EQ(j["sas"][0]["spi"].num(), 0x1001);
  EXPECT_EQ(j["sas"][0]["spi_hex"].str(), "0x00001001");
  EXPECT_EQ(j["sas"][0]["dir"].str(), "out");
  EXPECT_EQ(j["sas"][0]["dst"].str(), "192.0.2.2");
  EXPECT_EQ(j["sas"][1]["packets"].num(), 11);
  EXPECT_EQ(j["sas"][1]["drops"]["replay"].num(), 3);
  EXPECT_EQ(j["sas"][1]["drops"]["malformed"].num(), 0);
  const auto q = h_.queries();
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q.at(0).cursor, 0u);
  EXPECT_EQ(q.at(1).cursor, 1u);
  EXPECT_EQ(q.at(0).scope, shm::CounterScope::all);

  r = ctl({"counters", "--spi", "0x2001", "--dir", "in", "--dst", "192.0.2.2"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_NE(r.out.find("SPI"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("replay=3 icv=2"), std::string::npos) << r.out;
  const auto q2 = h_.queries();
  ASSERT_GE(q2.size(), 3u);
  EXPECT_EQ(q2.at(2).scope, shm::CounterScope::one);
  EXPECT_EQ(q2.at(2).sa.spi, 0x2001u);
}

TEST_F(Ctl, JsonOfMutatingCommandsParses) {
  const Out r = ctl([] {
    auto a = sa_add_args();
    a.push_back("--json");
    return a;
  }());
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  Json j;
  ASSERT_TRUE(JsonReader(r.out).parse(j)) << r.out;
  EXPECT_EQ(j["status"].str(), "ok");
  EXPECT_EQ(j["command"].str(), "sa add");
  EXPECT_EQ(r.out.find(kKeyNeedle), std::string::npos);
}

TEST_F(Ctl, KeyFileMustBeOwnerOnly) {
  char path[] = "/tmp/cygnetctl-key-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string hex = std::string(kKeyHex) + "\n";
  ASSERT_EQ(::write(fd, hex.data(), hex.size()), static_cast<ssize_t>(hex.size()));
  ::close(fd);
  auto args = sa_add_args();
  for (std::size_t i = 0; i + 1 < args.size(); ++i) {
    if (args.at(i) == "--enc-key") {
      args.at(i) = "--enc-key-file";
      args.at(i + 1) = path;
    }
  }
  ASSERT_EQ(::chmod(path, 0644), 0);
  Out r = ctl(args);
  EXPECT_EQ(r.rc, kExitUsage);
  EXPECT_NE(r.err.find("--enc-key-file"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("mode 0644"), std::string::npos) << r.err;
  EXPECT_TRUE(h_.batches().empty());

  ASSERT_EQ(::chmod(path, 0600), 0);
  r = ctl(args);
  ::unlink(path);
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  const auto b = h_.batches();
  ASSERT_EQ(b.size(), 1u);
  const auto* add = std::get_if<shm::SaAdd>(&b.at(0).at(0).op);
  ASSERT_NE(add, nullptr);
  EXPECT_TRUE(add->sa.cipher_key.equals(SecretKey::from_hex(kKeyHex).value()));
}

// A stand-in for cygnet-dp's DPDK telemetry socket: greets, then answers
// each command from a table (the replies cygnet-dp's /cygnet/* commands give).
class FakeTelemetry {
 public:
  explicit FakeTelemetry(std::map<std::string, std::string> replies) : replies_(std::move(replies)) {
    path_ = ::testing::TempDir() + "cyg_tel_" + std::to_string(::getpid()) + ".sock";
    ::unlink(path_.c_str());
    fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path_.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sun), sizeof sun), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    ::setenv("CYGNET_TELEMETRY_SOCKET", path_.c_str(), 1);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeTelemetry() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    ::unlink(path_.c_str());
    ::unsetenv("CYGNET_TELEMETRY_SOCKET");
  }
  std::vector<std::string> commands() {
    std::lock_guard<std::mutex> g(mu_);
    return seen_;
  }

 private:
  void serve() {
    for (;;) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      const std::string hello = R"({"version": "DPDK 22.11", "pid": 1, "max_output_len": 16384})";
      ::send(c, hello.data(), hello.size(), MSG_NOSIGNAL);
      char buf[1024];
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n > 0) {
        const std::string cmd(buf, static_cast<std::size_t>(n));
        {
          std::lock_guard<std::mutex> g(mu_);
          seen_.push_back(cmd);
        }
        auto it = replies_.find(cmd);
        const std::string key = cmd.substr(0, cmd.find(','));
        const std::string r = "{\"" + key + "\": " + (it == replies_.end() ? "null" : it->second) + "}";
        ::send(c, r.data(), r.size(), MSG_NOSIGNAL);
      }
      ::close(c);
    }
  }
  std::map<std::string, std::string> replies_;
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> seen_;
};

TEST(CtlTelemetry, SaListReadsEverySaAndShowsNoKeys) {
  FakeTelemetry t({
      {"/cygnet/sa,0", R"({"total": 2, "spi": 4097, "dir": "out", "src": "192.0.2.1",
          "dst": "192.0.2.2", "mode": "tunnel", "reqid": 1, "enc": "aes-gcm16-128", "integ": "none", "esn": 1,
          "encap": 0, "owner_worker": 0, "packets": 5, "bytes": 420, "next_seq": 6})"},
      {"/cygnet/sa,1", R"({"total": 2, "spi": 8193, "dir": "in", "src": "192.0.2.2",
          "dst": "192.0.2.1", "mode": "tunnel", "reqid": 1, "enc": "aes-cbc-128", "integ": "hmac-sha256-128",
          "esn": 0, "encap": 1, "owner_worker": 1, "packets": 3, "bytes": 300, "next_seq": 0,
          "drop_replay": 2})"},
  });
  const Out r = run_ctl({"sa", "list"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_NE(r.out.find("0x00001001"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0x00002001"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("aes-gcm16-128+esn"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("aes-cbc-128+udp"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("replay=2"), std::string::npos) << r.out;
  EXPECT_EQ(t.commands(), (std::vector<std::string>{"/cygnet/sa,0", "/cygnet/sa,1"}));
  const Out j = run_ctl({"--json", "sa", "list"});
  ASSERT_EQ(j.rc, kExitOk) << j.err;
  auto parsed = json::parse_json(j.out);
  ASSERT_TRUE(parsed.ok()) << j.out;
  ASSERT_NE(parsed->as_array(), nullptr);
  ASSERT_EQ(parsed->as_array()->size(), 2u);
  EXPECT_EQ(parsed->as_array()->at(1).find("spi")->as_int(), 8193);
}

TEST(CtlTelemetry, PortsCoresAndPolicies) {
  FakeTelemetry t({
      {"/cygnet/port,0", R"({"total": 1, "name": "lan", "side": "protected", "mac": "02:00:00:00:00:01",
          "mtu": 1500, "rx_packets": 10, "rx_bytes": 1000, "tx_packets": 9, "tx_bytes": 900, "drop_no_policy": 1,
          "drop_mtu": 0})"},
      {"/cygnet/core,0", R"({"total": 1, "worker": 0, "lcore": 1, "flow_cache_hits": 7, "flow_cache_misses": 3,
          "acquires": 1, "acquires_limited": 0})"},
      {"/cygnet/policy,0", R"({"total": 1, "dir": "out", "priority": 100, "action": "protect",
          "reqid": 1, "selector": "10.1.0.0/16 -> 10.2.0.0/16"})"},
      {"/cygnet/sa,0", R"({"total": 0})"},
  });
  Out r = run_ctl({"ports"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_NE(r.out.find("lan"), std::string::npos);
  EXPECT_NE(r.out.find("no_policy=1"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("mtu=0"), std::string::npos) << r.out;  // zero counters are not listed
  r = run_ctl({"cores"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_NE(r.out.find("CACHE_HITS"), std::string::npos);
  r = run_ctl({"policy", "list"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_NE(r.out.find("10.1.0.0/16 -> 10.2.0.0/16"), std::string::npos) << r.out;
  r = run_ctl({"--json", "ports"});
  ASSERT_EQ(r.rc, kExitOk);
  EXPECT_TRUE(json::parse_json(r.out).ok()) << r.out;
  r = run_ctl({"sa", "list"});
  ASSERT_EQ(r.rc, kExitOk);
  EXPECT_EQ(r.out, "none\n");
  r = run_ctl({"cores", "--json"});
  EXPECT_EQ(r.rc, kExitOk);
}

TEST(CtlTelemetry, NoDataplaneIsExitThree) {
  ::setenv("CYGNET_TELEMETRY_SOCKET", "/nonexistent/cygnet/dpdk_telemetry.v2", 1);
  const Out r = run_ctl({"sa", "list"});
  ::unsetenv("CYGNET_TELEMETRY_SOCKET");
  EXPECT_EQ(r.rc, kExitNotRunning);
  EXPECT_NE(r.err.find("is cygnet-dp running?"), std::string::npos) << r.err;
}

TEST(CtlHelp, EveryCommandHasHelp) {
  for (const auto& cmd : std::vector<std::vector<std::string>>{
           {"--help"}, {"sa", "add", "--help"}, {"sa", "delete", "--help"}, {"policy", "add", "--help"},
           {"policy", "delete", "--help"}, {"load", "--help"}, {"counters", "--help"}, {"sa", "--help"}}) {
    const Out r = run_ctl(cmd);
    EXPECT_EQ(r.rc, kExitOk) << cmd.at(0);
    EXPECT_NE(r.out.find("usage: cygnetctl"), std::string::npos) << r.out;
  }
  EXPECT_NE(run_ctl({"sa", "add", "--help"}).out.find("--enc-key-file"), std::string::npos);
  EXPECT_EQ(run_ctl({}).rc, kExitUsage);
}

}  // namespace
}  // namespace cygnet::ctl
