// The harness of the engine tests: two engines, a mocked network and mocked
// backends, driven message by message.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <functional>
#include <string>

#include "cp/ike/engine/engine.h"

namespace cygnet::ike::enginetest {

inline IpAddress ip(const char* s) { return *IpAddress::parse(s); }
inline IpPrefix pre(const char* s) { return *IpPrefix::parse(s); }
inline TsConfig ts(const char* prefix) {
  TsConfig t;
  t.prefix = pre(prefix);
  return t;
}

struct Packet {
  Endpoint from, to;
  Bytes data;
};

struct Wire : Transport {
  std::deque<Packet> out;
  void send(const Endpoint& local, const Endpoint& remote, std::span<const std::uint8_t> p) override {
    out.push_back(Packet{local, remote, Bytes(p.begin(), p.end())});
  }
};

struct MockBackend : Backend {
  std::vector<ChildSaSpec> installed;  // with keys, as the engine handed them over
  std::vector<ChildSaSpec> removed;
  std::vector<std::pair<char, std::uint32_t>> events;  // ('i' install | 'r' remove, inbound SPI), in order
  std::vector<TrapSpec> traps, traps_removed;
  bool refuse = false;
  Result<void> install_trap(const TrapSpec& t) override {
    if (refuse) return make_error("refused by the test");
    traps.push_back(t);
    return {};
  }
  Result<void> remove_trap(const TrapSpec& t) override {
    traps_removed.push_back(t);
    return {};
  }
  Result<void> install_child(const ChildSaSpec& c) override {
    if (refuse) return make_error("refused by the test");
    installed.push_back(c);
    events.emplace_back('i', c.inbound.spi);
    return {};
  }
  Result<void> remove_child(const ChildSaSpec& c) override {
    removed.push_back(c);
    events.emplace_back('r', c.inbound.spi);
    return {};
  }
  std::size_t live() const { return installed.size() - removed.size(); }
};

inline SecretBytes text_secret(const char* s) {
  return SecretBytes::copy_of(std::span(reinterpret_cast<const std::uint8_t*>(s), std::strlen(s)));
}

// Site A (192.0.2.1, 10.1.0.0/16) and site B (192.0.2.2, 10.2.0.0/16).
inline Connection site(bool a) {
  Connection c;
  c.name = a ? "to-b" : "to-a";
  c.local_addr = ip(a ? "192.0.2.1" : "192.0.2.2");
  c.remote_addrs = {pre(a ? "192.0.2.2/32" : "192.0.2.1/32")};
  c.local_id = *Identity::parse(a ? "fqdn:a.example" : "fqdn:b.example");
  c.remote_id = *Identity::parse(a ? "fqdn:b.example" : "fqdn:a.example");
  c.psk_ref = "ab";
  c.ike = {IkeSuite{EncrId::aes_gcm_16, 128, IntegId::none, PrfId::hmac_sha2_256, KeGroup::curve25519}};
  c.esp = {EspSuite{EncrId::aes_gcm_16, 128, IntegId::none, false}};
  c.local_ts = {ts(a ? "10.1.0.0/16" : "10.2.0.0/16")};
  c.remote_ts = {ts(a ? "10.2.0.0/16" : "10.1.0.0/16")};
  return c;
}

inline IkeConfig config(Connection c, const char* psk = "a shared secret of some length") {
  IkeConfig cfg;
  cfg.psks.emplace("ab", text_secret(psk));
  cfg.connections.push_back(std::move(c));
  return cfg;
}

struct Pair {
  Wire wa, wb;
  MockBackend ba, bb;
  std::unique_ptr<Engine> a, b;
  std::vector<std::string> log_a, log_b;
  std::uint64_t now = 1000;
  // Returns false to drop a packet (from A if a_to_b).
  std::function<bool(bool a_to_b, const Packet&)> filter;

  Pair(IkeConfig ca, IkeConfig cb) {
    a = std::make_unique<Engine>(std::move(ca), ba, wa, [this](std::string_view s) { log_a.emplace_back(s); });
    b = std::make_unique<Engine>(std::move(cb), bb, wb, [this](std::string_view s) { log_b.emplace_back(s); });
  }
  Pair() : Pair(config(site(true)), config(site(false))) {}

  // Delivers until both wires are empty; returns the packets delivered.
  int pump(int limit = 100) {
    int n = 0;
    while ((!wa.out.empty() || !wb.out.empty()) && n < limit) {
      for (bool from_a : {true, false}) {
        Wire& w = from_a ? wa : wb;
        if (w.out.empty()) continue;
        Packet p = std::move(w.out.front());
        w.out.pop_front();
        ++n;
        if (filter && !filter(from_a, p)) continue;
        (from_a ? *b : *a).on_datagram(p.to, p.from, p.data, now);
      }
    }
    return n;
  }
  std::string logs() const {
    std::string s = "A:\n";
    for (const auto& l : log_a) s += "  " + l + "\n";
    s += "B:\n";
    for (const auto& l : log_b) s += "  " + l + "\n";
    return s;
  }
};

inline std::optional<Header> header_of(const Packet& p) {
  std::span<const std::uint8_t> d = p.data;
  if (p.to.port == 4500 || p.from.port == 4500) {
    if (d.size() < 4) return std::nullopt;
    d = d.subspan(4);
  }
  auto h = decode_header(d);
  if (!h) return std::nullopt;
  return h.value();
}

// A's Child SA `a` and B's `b` are the two ends of one SA pair.
inline void expect_pair(const ChildSaSpec& a, const ChildSaSpec& b) {
  EXPECT_FALSE(a.outbound.cipher_key.empty());
  EXPECT_EQ(a.outbound.spi, b.inbound.spi);
  EXPECT_EQ(a.inbound.spi, b.outbound.spi);
  EXPECT_TRUE(a.outbound.cipher_key.equals(b.inbound.cipher_key));
  EXPECT_TRUE(a.inbound.cipher_key.equals(b.outbound.cipher_key));
  EXPECT_FALSE(a.inbound.cipher_key.equals(a.outbound.cipher_key));
  EXPECT_TRUE(a.outbound.integ_key.equals(b.inbound.integ_key));
  EXPECT_TRUE(a.inbound.integ_key.equals(b.outbound.integ_key));
}

inline void expect_children_match(const Pair& p) {
  ASSERT_EQ(p.ba.installed.size(), 1u) << p.logs();
  ASSERT_EQ(p.bb.installed.size(), 1u) << p.logs();
  const ChildSaSpec& a = p.ba.installed[0];
  const ChildSaSpec& b = p.bb.installed[0];
  expect_pair(a, b);
  EXPECT_NE(a.inbound.spi, a.outbound.spi);
  EXPECT_EQ(a.outbound.cipher, b.inbound.cipher);
  EXPECT_EQ(a.outbound.integ, b.inbound.integ);
  EXPECT_EQ(a.outbound.src, b.inbound.src);
  EXPECT_EQ(a.outbound.dst, b.inbound.dst);
  const CipherInfo& ci = cipher_info(a.outbound.cipher);
  EXPECT_EQ(a.outbound.cipher_key.size(), std::size_t{ci.key_len} + ci.salt_len);
  EXPECT_EQ(a.outbound.integ_key.size(), a.outbound.integ == IntegAlg::none ? 0u : integ_info(a.outbound.integ).key_len);
  EXPECT_EQ(a.reqid, a.inbound.reqid);
  EXPECT_EQ(a.reqid, a.outbound.reqid);
}

inline bool established(const Engine& e) {
  auto v = e.ike_sas();
  return v.size() == 1 && v[0].state == IkeState::established;
}

}  // namespace cygnet::ike::enginetest
