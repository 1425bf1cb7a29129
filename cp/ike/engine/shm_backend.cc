#include "cp/ike/engine/shm_backend.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "shared/shm/status.h"

namespace cygnet::ike {

namespace {

std::string refused(const char* what, const shm::Ack& a) {
  return std::string("cygnet-dp refused ") + what + ": " + std::string(shm::status_name(a.status)) +
         (a.text.empty() ? "" : ": " + a.text);
}

shm::SaKey key_of(const SaConfig& s) { return shm::SaKey{s.spi, s.dir, s.dst}; }

std::string owner_key(const Policy& p) { return std::string(policy_dir_name(p.dir)) + " " + p.sel.to_string(); }

constexpr const char* kStateMagic = "cygnet-ike-state 1";

// Who owns a policy: the reqid its packets go to. A rekeyed Child SA keeps
// its reqid, so its policies are the same owner's (the engine hands them
// from the old Child SA to the new one). Traps have reqids of their own.
std::uint64_t owner_of(const ChildSaSpec& c) { return c.reqid; }
std::uint64_t owner_of(const TrapSpec& t) { return t.reqid; }

// Batches of policies for a fresh cygnet-dp, well under its batch limit.
constexpr std::size_t kResyncBatch = 256;

}  // namespace

ShmBackend::ShmBackend(std::unique_ptr<shm::ShmClient> client, Options opt)
    : client_(std::move(client)), opt_(std::move(opt)) {}

Result<std::unique_ptr<ShmBackend>> ShmBackend::attach(const std::string& instance, Options opt) {
  shm::ShmClient::Options co;
  co.name = "cygnet-ike";
  co.subscribe = true;
  auto c = shm::ShmClient::attach(instance, co);
  if (!c) return make_error("cannot reach cygnet-dp (instance '" + instance + "'): " + c.error().message);
  return std::make_unique<ShmBackend>(std::move(*c), std::move(opt));
}

Result<std::unique_ptr<ShmBackend>> ShmBackend::attach(const std::string& instance) {
  return attach(instance, Options{});
}

// ------------------------------------------------------------ policy owners

Result<void> ShmBackend::send_policies(const std::vector<Policy>& policies, std::uint64_t owner, bool add) {
  for (const Policy& p : policies) {
    auto it = owners_.find(owner_key(p));
    const std::vector<Owned>* stack = it == owners_.end() ? nullptr : &it->second;
    if (add) {
      // Over an owned selector: the newcomer replaces the policy in cygnet-dp.
      if (stack != nullptr && !stack->empty()) {
        if (auto r = client_->policy_delete(stack->back().policy); !r) return r.error();
      }
      if (auto r = client_->policy_add(p); !r) return r.error();
      continue;
    }
    if (stack == nullptr || stack->empty()) continue;  // not ours
    if (stack->back().owner != owner) continue;        // ours but not in cygnet-dp: another owner is on top
    if (auto r = client_->policy_delete(p); !r) return r.error();
    if (stack->size() > 1) {
      if (auto r = client_->policy_add((*stack)[stack->size() - 2].policy); !r) return r.error();
    }
  }
  return {};
}

void ShmBackend::apply_owners(const std::vector<Policy>& policies, std::uint64_t owner, bool add) {
  for (const Policy& p : policies) {
    const std::string k = owner_key(p);
    if (add) {
      owners_[k].push_back(Owned{owner, p});
      continue;
    }
    auto it = owners_.find(k);
    if (it == owners_.end()) continue;
    auto& v = it->second;
    auto at = std::find_if(v.rbegin(), v.rend(), [&](const Owned& x) { return x.owner == owner; });
    if (at != v.rend()) v.erase(std::next(at).base());
    if (v.empty()) owners_.erase(it);
  }
}

// ------------------------------------------------------------------ batches

Result<void> ShmBackend::commit(const char* what) {
  auto id = client_->batch_commit();
  if (!id) return id.error();
  auto ack = client_->wait_ack(*id, opt_.timeout);
  if (!ack) return ack.error();
  if (ack->status != shm::Status::ok) return make_error(refused(what, *ack));
  return {};
}

Result<void> ShmBackend::push(const ChildSaSpec& c, bool resync) {
  auto begin = client_->batch_begin(static_cast<std::uint32_t>(2 + 2 * c.policies.size()));
  if (!begin) return begin.error();
  auto fail = [&](const Error& e) -> Result<void> {
    (void)client_->batch_abort();
    return e;
  };
  // The inbound SA first (RFC 7296 2.8's order also within the batch).
  for (const SaConfig* sa : {&c.inbound, &c.outbound}) {
    if (auto r = client_->sa_add(*sa); !r) return fail(r.error());
  }
  // A fresh cygnet-dp gets the policies after all SAs (resync()).
  if (!resync) {
    if (auto r = send_policies(c.policies, owner_of(c), true); !r) return fail(r.error());
  }
  return commit("the Child SA");
}

Result<void> ShmBackend::policy_batch(const std::vector<Policy>& policies, std::uint64_t owner, bool add,
                                      const std::vector<shm::SaKey>& sa_deletes, const char* what) {
  auto begin = client_->batch_begin(static_cast<std::uint32_t>(2 * policies.size() + sa_deletes.size()));
  if (!begin) return begin.error();
  Result<void> r = send_policies(policies, owner, add);
  for (std::size_t i = 0; r && i < sa_deletes.size(); ++i) {
    if (auto d = client_->sa_delete(sa_deletes[i]); !d) r = d.error();
  }
  if (!r) {
    (void)client_->batch_abort();
    return r;
  }
  return commit(what);
}

Result<void> ShmBackend::install_child(const ChildSaSpec& c) {
  if (auto r = push(c, false); !r) return r;
  apply_owners(c.policies, owner_of(c), true);
  live_.push_back(c);
  save_state();
  return {};
}

Result<void> ShmBackend::remove_child(const ChildSaSpec& c) {
  auto it = std::find_if(live_.begin(), live_.end(), [&](const ChildSaSpec& x) {
    return x.reqid == c.reqid && x.inbound.spi == c.inbound.spi && x.outbound.spi == c.outbound.spi;
  });
  if (it != live_.end()) live_.erase(it);
  const Result<void> out =
      policy_batch(c.policies, owner_of(c), false, {key_of(c.outbound), key_of(c.inbound)}, "removing the Child SA");
  // Forgotten either way: the engine no longer knows the Child SA, so a
  // restarted cygnet-dp must not get it back.
  apply_owners(c.policies, owner_of(c), false);
  save_state();
  return out;
}

Result<void> ShmBackend::install_trap(const TrapSpec& t) {
  if (auto r = policy_batch(t.policies, owner_of(t), true, {}, "the trap policies"); !r) return r;
  apply_owners(t.policies, owner_of(t), true);
  traps_.push_back(t);
  save_state();
  return {};
}

Result<void> ShmBackend::remove_trap(const TrapSpec& t) {
  auto it = std::find_if(traps_.begin(), traps_.end(), [&](const TrapSpec& x) { return x.reqid == t.reqid; });
  if (it == traps_.end()) return make_error("no trap policies with reqid " + std::to_string(t.reqid));
  const TrapSpec mine = *it;
  traps_.erase(it);
  const Result<void> out = policy_batch(mine.policies, owner_of(mine), false, {}, "removing the trap policies");
  apply_owners(mine.policies, owner_of(mine), false);
  save_state();
  return out;
}

Result<std::size_t> ShmBackend::resync() {
  if (!client_->server_restarted()) return std::size_t{0};
  if (auto r = client_->reattach(); !r) return r.error();
  // Every Child SA's SAs, then the policy on top of every selector: the
  // owner stacks are what cygnet-dp had, whoever handed policies to whom.
  std::size_t n = 0;
  for (const ChildSaSpec& c : live_) {
    if (auto r = push(c, true); !r) return make_error("resync after a cygnet-dp restart: " + r.error().message);
    ++n;
  }
  std::vector<const Policy*> top;
  for (const auto& [k, stack] : owners_) {
    if (!stack.empty()) top.push_back(&stack.back().policy);
  }
  for (std::size_t i = 0; i < top.size(); i += kResyncBatch) {
    const std::size_t end = std::min(top.size(), i + kResyncBatch);
    Result<void> r = [&]() -> Result<void> {
      auto begin = client_->batch_begin(static_cast<std::uint32_t>(end - i));
      if (!begin) return begin.error();
      for (std::size_t j = i; j < end; ++j) {
        if (auto a = client_->policy_add(*top[j]); !a) {
          (void)client_->batch_abort();
          return a.error();
        }
      }
      return commit("the policies");
    }();
    if (!r) return make_error("resync after a cygnet-dp restart: " + r.error().message);
  }
  save_state();
  return n + traps_.size();
}

// ------------------------------------------------------------------- events

void ShmBackend::pump_events() {
  client_->heartbeat();
  for (int i = 0; i < 4096; ++i) {
    auto e = client_->next_event();
    if (!e) {
      warnings_.push_back(e.error().message);
      return;
    }
    if (!e->has_value()) return;
    const shm::EventBody& b = (*e)->body;
    if (const auto* a = std::get_if<shm::Acquire>(&b)) {
      acquires_.push_back(a->reqid);
    } else if (const auto* x = std::get_if<shm::SaExpired>(&b)) {
      expiries_.push_back(Expiry{x->sa.spi, x->sa.dir, x->hard});
    } else if (const auto* c = std::get_if<shm::Counters>(&b)) {
      counters_[c->query_id] = c->c;
    }
  }
}

std::vector<std::uint32_t> ShmBackend::take_acquires() {
  if (client_->server_restarted()) return {};
  pump_events();
  return std::exchange(acquires_, {});
}

std::optional<SaUsage> ShmBackend::usage(std::uint32_t spi, Direction dir, const IpAddress& dst) {
  shm::CountersQuery q;
  q.scope = shm::CounterScope::one;
  q.sa = shm::SaKey{spi, dir, dst};
  auto id = client_->counters_query(q);
  if (!id) return std::nullopt;
  auto ack = client_->wait_ack(*id, opt_.timeout);
  if (!ack || ack->status != shm::Status::ok) return std::nullopt;
  pump_events();
  auto it = counters_.find(*id);
  if (it == counters_.end()) return std::nullopt;
  SaUsage u{it->second.packets, it->second.bytes};
  counters_.erase(it);
  return u;
}

// -------------------------------------------------------------- state file

void ShmBackend::save_state() {
  if (opt_.state_path.empty()) return;
  std::ostringstream o;
  o << kStateMagic << "\n# what cygnet-ike installed into cygnet-dp (no keys); removed at its next start\n";
  char epoch[32];
  std::snprintf(epoch, sizeof epoch, "%016llx", static_cast<unsigned long long>(client_->epoch()));
  o << "epoch " << epoch << "\n";
  for (const ChildSaSpec& c : live_) {
    for (const SaConfig* s : {&c.inbound, &c.outbound}) {
      o << "sa " << s->spi << " " << direction_name(s->dir) << " " << s->dst.to_string() << "\n";
    }
  }
  for (const auto& [k, stack] : owners_) {
    if (stack.empty()) continue;
    const Policy& p = stack.back().policy;
    o << "policy " << policy_dir_name(p.dir) << " " << p.sel.src.to_string() << " " << p.sel.dst.to_string() << " "
      << unsigned{p.sel.proto} << " " << p.sel.sport.lo << " " << p.sel.sport.hi << " " << p.sel.dport.lo << " "
      << p.sel.dport.hi << "\n";
  }
  const std::string tmp = opt_.state_path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << o.str();
    if (!f.flush()) {
      warnings_.push_back("cannot write the state file " + tmp);
      return;
    }
  }
  ::chmod(tmp.c_str(), 0600);
  if (std::rename(tmp.c_str(), opt_.state_path.c_str()) != 0) {
    warnings_.push_back("cannot rename " + tmp + " to " + opt_.state_path);
  }
}

std::vector<std::string> ShmBackend::take_warnings() { return std::exchange(warnings_, {}); }

Result<std::size_t> ShmBackend::remove_leftovers() {
  if (opt_.state_path.empty()) return std::size_t{0};
  std::ifstream f(opt_.state_path);
  if (!f) return std::size_t{0};  // first start, or nothing was installed
  std::vector<shm::SaKey> sas;
  std::vector<Policy> policies;
  std::uint64_t epoch = 0;
  std::string line;
  int n = 0;
  auto bad = [&](const std::string& why) -> Error {
    return Error{opt_.state_path + ":" + std::to_string(n) + ": " + why + " (the file is cygnet-ike's own; remove it "
                 "and restart cygnet-dp if it is damaged)"};
  };
  while (std::getline(f, line)) {
    ++n;
    if (n == 1) {
      if (line != kStateMagic) return bad("not a cygnet-ike state file");
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    std::string kind, dir;
    in >> kind;
    if (kind == "epoch") {
      std::string v;
      in >> v;
      char* end = nullptr;
      epoch = std::strtoull(v.c_str(), &end, 16);
      if (v.empty() || *end != '\0') return bad("bad epoch '" + v + "'");
    } else if (kind == "sa") {
      std::uint64_t spi = 0;
      std::string dst;
      if (!(in >> spi >> dir >> dst) || spi > 0xffffffffu) return bad("bad SA line");
      auto d = direction_from_name(dir);
      auto a = IpAddress::parse(dst);
      if (!d || !a) return bad("bad SA line");
      sas.push_back(shm::SaKey{static_cast<std::uint32_t>(spi), *d, *a});
    } else if (kind == "policy") {
      std::string src, dst;
      unsigned proto = 0, slo = 0, shi = 0, dlo = 0, dhi = 0;
      if (!(in >> dir >> src >> dst >> proto >> slo >> shi >> dlo >> dhi) || proto > 255 || slo > 65535 ||
          shi > 65535 || dlo > 65535 || dhi > 65535) {
        return bad("bad policy line");
      }
      auto d = policy_dir_from_name(dir);
      auto s = IpPrefix::parse(src);
      auto t = IpPrefix::parse(dst);
      if (!d || !s || !t) return bad("bad policy line");
      Policy p;
      p.dir = *d;
      p.sel.src = *s;
      p.sel.dst = *t;
      p.sel.proto = static_cast<std::uint8_t>(proto);
      p.sel.sport = PortRange{static_cast<std::uint16_t>(slo), static_cast<std::uint16_t>(shi)};
      p.sel.dport = PortRange{static_cast<std::uint16_t>(dlo), static_cast<std::uint16_t>(dhi)};
      policies.push_back(p);
    } else {
      return bad("unknown line '" + kind + "'");
    }
  }
  f.close();
  std::size_t removed = 0;
  if (epoch == client_->epoch()) {
    // Policies first, then SAs, one command each: what is already gone
    // (not_found) does not stop the rest.
    auto one = [&](const shm::CommandBody& cmd) -> Result<void> {
      auto ack = client_->send_and_wait(cmd, opt_.timeout);
      if (!ack) return ack.error();
      if (ack->status == shm::Status::ok) ++removed;
      else if (ack->status != shm::Status::not_found) return make_error(refused("removing a leftover", *ack));
      return {};
    };
    for (const Policy& p : policies) {
      if (auto r = one(shm::PolicyDelete{p}); !r) return r.error();
    }
    for (const shm::SaKey& k : sas) {
      if (auto r = one(shm::SaDelete{k}); !r) return r.error();
    }
  }
  ::unlink(opt_.state_path.c_str());
  save_state();
  return removed;
}

}  // namespace cygnet::ike
