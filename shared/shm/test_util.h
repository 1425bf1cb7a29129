// Helpers shared by the shm tests (not part of the library).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "shared/ip.h"
#include "shared/policy.h"
#include "shared/sa.h"
#include "shared/shm/server.h"

namespace cygnet::shm::testing {

// A per-process, per-call unique instance name ("t<pid>-<n>").
inline std::string unique_instance() {
  static std::atomic<unsigned> n{0};
  return "t" + std::to_string(::getpid()) + "-" + std::to_string(n.fetch_add(1));
}

inline SecretKey key_of(std::size_t len, std::uint8_t seed) {
  std::vector<std::uint8_t> b(len);
  for (std::size_t i = 0; i < len; ++i) b.at(i) = static_cast<std::uint8_t>(seed + i * 7);
  return SecretKey::from_bytes(b).value();
}

inline Selector v4_selector(std::uint32_t src_net, std::uint32_t dst_net) {
  Selector s;
  s.src = IpPrefix{IpAddress::v4(src_net), 24};
  s.dst = IpPrefix{IpAddress::v4(dst_net), 24};
  s.proto = kProtoTcp;
  s.sport = PortRange{1024, 65535};
  s.dport = PortRange{443, 443};
  return s;
}

// A valid SA with the given algorithms (keys of the right length).
inline SaConfig make_sa(std::uint32_t spi, CipherAlg c = CipherAlg::aes_gcm16_128, IntegAlg i = IntegAlg::none,
                        std::uint8_t key_seed = 0x11) {
  SaConfig sa;
  sa.spi = spi;
  sa.dir = Direction::in;
  sa.src = IpAddress::v4(0xc0000201);  // 192.0.2.1
  sa.dst = IpAddress::v4(0xc6336401);  // 198.51.100.1
  sa.reqid = 7;
  sa.cipher = c;
  const auto& ci = cipher_info(c);
  sa.cipher_key = key_of(std::size_t{ci.key_len} + ci.salt_len, key_seed);
  sa.integ = i;
  sa.integ_key = key_of(integ_info(i).key_len, static_cast<std::uint8_t>(key_seed + 0x40));
  sa.replay_window = 128;
  sa.soft = Lifetime{1000, 100, 30};
  sa.hard = Lifetime{2000, 200, 60};
  sa.selectors.push_back(v4_selector(0x0a000000, 0x0a010000));
  return sa;
}

inline Policy make_policy(std::uint32_t priority, PolicyAction a = PolicyAction::protect) {
  Policy p;
  p.priority = priority;
  p.dir = PolicyDir::out;
  p.action = a;
  p.reqid = (a == PolicyAction::protect || a == PolicyAction::trap) ? 7 : 0;
  p.sel = v4_selector(0x0a000000, 0x0a010000);
  return p;
}

// Records what the server hands over; checks it was validated.
class FakeHandler : public Handler {
 public:
  struct Applied {
    std::vector<std::uint64_t> ids;
  };

  Verdict apply(std::span<const Change> changes) override {
    std::lock_guard<std::mutex> g(mu_);
    ++calls;
    for (const auto& c : changes) {
      if (const auto* a = std::get_if<SaAdd>(&c.op); a && !validate_sa(a->sa)) ++unvalidated;
      if (const auto* u = std::get_if<SaUpdate>(&c.op); u && !validate_sa(u->sa)) ++unvalidated;
      if (const auto* p = std::get_if<PolicyAdd>(&c.op); p && !validate_policy(p->policy)) ++unvalidated;
    }
    if (next.status != Status::ok) return next;
    Applied a;
    for (const auto& c : changes) a.ids.push_back(c.id);
    applied.push_back(std::move(a));
    for (const auto& c : changes) {
      if (const auto* s = std::get_if<SaAdd>(&c.op)) last_sa = s->sa;
    }
    return {};
  }

  Verdict counters(const CountersQuery& q, std::vector<SaCounters>& out, std::uint32_t& next_cursor) override {
    for (std::uint32_t i = 0; i < counter_records && i < q.max; ++i) {
      SaCounters c;
      c.sa = SaKey{1000 + i, Direction::in, IpAddress::v4(0xc6336401)};
      c.reqid = 7;
      c.packets = 10 + i;
      c.bytes = 1000 + i;
      c.n_drops = 3;
      c.drops[0] = 1;
      c.drops[1] = 2;
      c.drops[2] = i;
      out.push_back(c);
    }
    next_cursor = counter_next;
    return {};
  }

  void client_gone(unsigned, std::string_view why) override {
    std::lock_guard<std::mutex> g(mu_);
    gone.emplace_back(why);
  }

  std::size_t applied_changes() const {
    std::size_t n = 0;
    for (const auto& a : applied) n += a.ids.size();
    return n;
  }

  std::vector<Applied> applied;
  std::vector<std::string> gone;
  SaConfig last_sa;
  std::size_t calls = 0;
  std::size_t unvalidated = 0;
  Verdict next;  // what apply() answers (ok by default)
  std::uint32_t counter_records = 0;
  std::uint32_t counter_next = 0;

 private:
  std::mutex mu_;
};

}  // namespace cygnet::shm::testing
