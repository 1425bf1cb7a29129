// The main lcore's side of the dataplane: routes, the SA store, applying
// batches of changes all-or-nothing, events and counters (docs/dataplane.md).
#include "dp/app/dataplane.h"

#include <rte_errno.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace cygnet::dp::app {

namespace {

std::array<std::uint8_t, 16> bytes16(const IpAddress& a) { return a.bytes; }

bool prefix_match(const std::uint8_t* net, std::uint8_t len, const std::uint8_t* a) noexcept {
  const unsigned full = len / 8, rest = len % 8;
  if (std::memcmp(net, a, full) != 0) return false;
  if (rest == 0) return true;
  const std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (net[full] & mask) == (a[full] & mask);
}

std::uint8_t fam(Family f) noexcept { return f == Family::ipv6 ? 6 : 4; }

SaConfig without_keys(const SaConfig& c) {
  SaConfig k = c;
  k.cipher_key.wipe();
  k.integ_key.wipe();
  return k;
}

}  // namespace

// ---------------------------------------------------------------- Fib

Result<Fib> Fib::build(const cfg::DpConfig& cfg, const std::vector<PortInfo>& ports) {
  Fib f;
  auto port_index = [&](const std::string& name) -> std::uint16_t {
    for (std::size_t i = 0; i < ports.size(); ++i)
      if (ports[i].name == name && !ports[i].exception) return static_cast<std::uint16_t>(i);
    return kNoPort;
  };
  f.port_addr_.resize(ports.size());
  f.port_has_.resize(ports.size());
  for (std::size_t i = 0; i < ports.size(); ++i) {
    for (const IpPrefix& a : ports[i].addresses) {
      if (a.family() == Family::ipv4) {
        std::uint32_t x;
        std::memcpy(&x, a.addr.bytes.data(), 4);
        f.local4_.push_back(x);
      } else {
        std::array<std::uint64_t, 2> x;
        std::memcpy(x.data(), a.addr.bytes.data(), 16);
        f.local6_.push_back(x);
      }
      const int k = a.family() == Family::ipv6 ? 1 : 0;
      if (!f.port_has_[i][k]) {
        f.port_has_[i][k] = true;
        f.port_addr_[i][k] = bytes16(a.addr);
      }
      // Connected prefix: on-link on this port.
      Route r;
      r.family = fam(a.family());
      r.len = a.len;
      r.net = bytes16(a.addr);
      for (unsigned b = a.len; b < 128; ++b) r.net[b / 8] &= static_cast<std::uint8_t>(~(0x80 >> (b % 8)));
      r.port = static_cast<std::uint16_t>(i);
      r.on_link = true;
      f.routes_.push_back(r);
    }
  }
  for (const auto& n : cfg.neighbours) {
    const std::uint16_t p = port_index(n.port);
    if (p == kNoPort) return make_error("neighbour " + n.ip.to_string() + ": unknown port '" + n.port + "'");
    Neigh e{p, fam(n.ip.family), bytes16(n.ip), NextHop{p, n.mac, ports[p].mac}};
    f.neigh_.push_back(e);
  }
  for (const auto& rc : cfg.routes) {
    const std::uint16_t p = port_index(rc.port);
    if (p == kNoPort) return make_error("route " + rc.dst.to_string() + ": unknown port '" + rc.port + "'");
    Route r;
    r.family = fam(rc.dst.family());
    r.len = rc.dst.len;
    r.net = bytes16(rc.dst.addr);
    r.port = p;
    r.on_link = rc.via.family == Family::none;
    if (!r.on_link) {
      for (const Neigh& n : f.neigh_) {
        if (n.port == p && n.family == fam(rc.via.family) && n.ip == bytes16(rc.via)) {
          r.via = n.hop;
          break;
        }
      }
      // No neighbour for the gateway: the route stays and its packets are
      // counted as no_neighbour (the config loader warns about it).
    }
    f.routes_.push_back(r);
  }
  // Longest prefix first; configured routes before connected ones of the
  // same length (stable sort keeps the order above: connected first, so
  // reverse the tie rule by sorting on (len desc, on_link asc)).
  std::stable_sort(f.routes_.begin(), f.routes_.end(), [](const Route& a, const Route& b) {
    if (a.len != b.len) return a.len > b.len;
    return a.on_link < b.on_link;
  });
  return f;
}

const NextHop* Fib::lookup(std::uint8_t family, const std::uint8_t* dst, PipeDrop& why) const noexcept {
  const unsigned n = family == 6 ? 16 : 4;
  for (const Route& r : routes_) {
    if (r.family != family || !prefix_match(r.net.data(), r.len, dst)) continue;
    if (!r.on_link) {
      if (r.via.port == kNoPort) {
        why = PipeDrop::no_neighbour;
        return nullptr;
      }
      return &r.via;
    }
    for (const Neigh& e : neigh_) {
      if (e.port == r.port && e.family == family && std::memcmp(e.ip.data(), dst, n) == 0) return &e.hop;
    }
    why = PipeDrop::no_neighbour;
    return nullptr;
  }
  why = PipeDrop::no_route;
  return nullptr;
}

bool Fib::is_local(std::uint8_t family, const std::uint8_t* a) const noexcept {
  // Per packet: word compares, no memcmp calls.
  if (family == 4) {
    std::uint32_t x;
    std::memcpy(&x, a, 4);
    for (std::uint32_t l : local4_)
      if (l == x) return true;
    return false;
  }
  std::uint64_t x[2];
  std::memcpy(x, a, 16);
  for (const auto& l : local6_)
    if (((l[0] ^ x[0]) | (l[1] ^ x[1])) == 0) return true;
  return false;
}

const std::uint8_t* Fib::port_address(std::uint16_t port, std::uint8_t family) const noexcept {
  if (port >= port_addr_.size()) return nullptr;
  const int k = family == 6 ? 1 : 0;
  return port_has_[port][k] ? port_addr_[port][k].data() : nullptr;
}

// ---------------------------------------------------------------- Dataplane

Dataplane::Dataplane(std::vector<PortInfo> ports, Fib fib, const Options& opt, IMB_MGR* mgr)
    : ports_(std::move(ports)), fib_(std::move(fib)), opt_(opt), mgr_(mgr), qsbr_(opt.workers), retirer_(qsbr_) {}

Result<std::unique_ptr<Dataplane>> Dataplane::create(const cfg::DpConfig& cfg, std::vector<PortInfo> ports,
                                                     const Options& opt, IMB_MGR* mgr) {
  if (opt.workers == 0 || opt.workers > kMaxWorkers)
    return make_error("workers: expected 1 to " + std::to_string(kMaxWorkers) + ", got " + std::to_string(opt.workers));
  if (opt.max_sas == 0 || opt.max_sas >= sad::kNoSa) return make_error("max_sas out of range");
  if (ports.size() > kMaxPorts) return make_error("too many ports");
  auto fib = Fib::build(cfg, ports);
  if (!fib) return fib.error();
  std::unique_ptr<Dataplane> d(new Dataplane(std::move(ports), std::move(*fib), opt, mgr));
  auto in = sad::InboundSad::create(d->qsbr_, std::min<std::size_t>(opt.max_sas, 1u << 16));
  if (!in) return in.error();
  d->in_sad_ = std::move(*in);
  auto out = sad::OutboundSad::create(d->qsbr_, std::max<std::uint32_t>(opt.max_policies, 16));
  if (!out) return out.error();
  d->out_sad_ = std::move(*out);
  Dataplane* self = d.get();
  d->spd_ = std::make_unique<spd::Spd>(d->qsbr_,
                                       [self](std::uint32_t reqid) { return self->out_sad_->slot_for(reqid); });
  d->slots_ = std::make_unique<SaSlot[]>(opt.max_sas);
  d->free_handles_.reserve(opt.max_sas);
  for (std::uint32_t h = opt.max_sas; h > 0; --h) d->free_handles_.push_back(h - 1);
  for (unsigned w = 0; w < opt.workers; ++w) {
    d->events_.push_back(std::make_unique<EventQueue>());
    d->counters_.push_back(std::make_unique<PortCounters[]>(kMaxPorts));
  }
  if (opt.workers > 1) {
    for (unsigned a = 0; a < opt.workers; ++a) {
      for (unsigned b = 0; b < opt.workers; ++b) {
        if (a == b) continue;
        const std::string name = "cyg_ho_" + std::to_string(a) + "_" + std::to_string(b);
        rte_ring* r = rte_ring_create(name.c_str(), opt.handoff_ring, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (r == nullptr)
          return make_error("handoff ring " + name + " (" + std::to_string(opt.handoff_ring) +
                            " slots): " + rte_strerror(rte_errno));
        d->handoff_[a * kMaxWorkers + b] = r;
      }
    }
  }
  // Publish empty tables so workers always find one.
  if (auto r = d->spd_->apply({}); !r) return r.error();
  return d;
}

Dataplane::~Dataplane() {
  spd_.reset();
  for (auto& [k, in] : sas_) {
    delete slots_[in.handle].sa.load(std::memory_order_relaxed);
    slots_[in.handle].sa.store(nullptr, std::memory_order_relaxed);
  }
  for (rte_ring* r : handoff_)
    if (r != nullptr) rte_ring_free(r);
}

void Dataplane::client_attached(unsigned slot, const shm::Hello& hello) {
  RTE_LOG(INFO, USER1, "shm: client %u attached: %s (pid %u)\n", slot, hello.name.c_str(), hello.pid);
}
void Dataplane::client_gone(unsigned slot, std::string_view why) {
  RTE_LOG(INFO, USER1, "shm: client %u gone: %.*s\n", slot, static_cast<int>(why.size()), why.data());
}

shm::Verdict Dataplane::apply(std::span<const shm::Change> changes) {
  std::lock_guard<std::mutex> g(mu_);
  return apply_locked(changes);
}

Result<void> Dataplane::load_statics(const cfg::StaticConfig& s) {
  std::vector<shm::Change> batch;
  std::uint64_t id = 0;
  for (const SaConfig& sa : s.sas) batch.push_back(shm::Change{++id, shm::SaAdd{sa}});
  for (const Policy& p : s.policies) batch.push_back(shm::Change{++id, shm::PolicyAdd{p}});
  if (batch.empty()) return {};
  const shm::Verdict v = apply(batch);
  if (v.status != shm::Status::ok)
    return make_error("static SAs and policies of the config refused (" + std::string(shm::status_name(v.status)) +
                      "): " + v.text);
  return {};
}

shm::Verdict Dataplane::apply_locked(std::span<const shm::Change> changes) {
  using shm::Status;
  auto refuse = [](Status s, std::uint64_t id, const std::string& text) {
    return shm::Verdict{s, "change " + std::to_string(id) + ": " + text};
  };

  // 1. Check everything and build the new SAs; nothing is changed yet.
  std::set<Key> present;  // keys as they will be after the batch, checked in order
  for (const auto& [k, v] : sas_) present.insert(k);
  std::vector<std::pair<std::uint64_t, std::unique_ptr<esp::EspSa>>> built;
  std::vector<const SaConfig*> adds;
  std::vector<Key> deletes;
  std::vector<spd::Spd::Change> pol;
  std::size_t handles_needed = 0;
  for (const shm::Change& c : changes) {
    if (const auto* a = std::get_if<shm::SaAdd>(&c.op)) {
      const Key k = key_of(a->sa);
      if (present.count(k)) return refuse(Status::exists, c.id, "SA spi " + std::to_string(a->sa.spi) + " " +
                                                                   direction_name(a->sa.dir) + " to " +
                                                                   a->sa.dst.to_string() + " exists");
      if (auto v = validate_sa(a->sa); !v) return refuse(Status::invalid, c.id, v.error().message);
      auto sa = esp::EspSa::create(a->sa, mgr_);
      if (!sa) return refuse(Status::invalid, c.id, sa.error().message);
      built.emplace_back(c.id, std::move(*sa));
      adds.push_back(&a->sa);
      present.insert(k);
      ++handles_needed;
    } else if (std::get_if<shm::SaUpdate>(&c.op) != nullptr) {
      // An SA's sequence numbers, replay window and counters belong to its
      // owner core; replacing them from here could reuse a sequence number
      // under the same key. Rekeying is add-new then delete-old (docs/dataplane.md).
      return refuse(Status::invalid, c.id,
                    "sa_update is not supported by cygnet-dp: add the new SA (new SPI), then delete the old one");
    } else if (const auto* d = std::get_if<shm::SaDelete>(&c.op)) {
      const Key k = key_of(d->key);
      if (!present.count(k))
        return refuse(Status::not_found, c.id, "no SA spi " + std::to_string(d->key.spi) + " " +
                                                   direction_name(d->key.dir) + " to " + d->key.dst.to_string());
      present.erase(k);
      deletes.push_back(k);
    } else if (const auto* pa = std::get_if<shm::PolicyAdd>(&c.op)) {
      if (spd_->size(pa->policy.dir) + pol.size() >= opt_.max_policies)
        return refuse(Status::full, c.id, "policy table full (max_policies " + std::to_string(opt_.max_policies) + ")");
      pol.push_back({spd::Spd::Change::Op::add, pa->policy});
    } else if (const auto* pd = std::get_if<shm::PolicyDelete>(&c.op)) {
      pol.push_back({spd::Spd::Change::Op::remove, pd->policy});
    }
  }
  // Deleting an SA added earlier in the same batch: net effect nothing for
  // that key; handled naturally below (add installs, delete uninstalls).
  if (handles_needed > free_handles_.size())
    return shm::Verdict{Status::full, "SA store full (max_sas " + std::to_string(opt_.max_sas) + ")"};

  // 2. New SAs first (no policy uses them yet unless their reqid has one),
  // then the policies, then the deletions: traffic never meets a policy
  // whose SA was promised in the same batch but not installed yet.
  std::vector<Key> added;
  for (std::size_t i = 0; i < adds.size(); ++i) {
    auto h = install(*adds[i], std::move(built[i].second));
    if (!h) {
      for (const Key& k : added) uninstall(k);
      return refuse(Status::internal, built[i].first, h.error().message);
    }
    added.push_back(key_of(*adds[i]));
  }
  if (!pol.empty()) {
    if (auto r = spd_->apply(pol); !r) {
      for (const Key& k : added) uninstall(k);
      return shm::Verdict{Status::invalid, r.error().message};
    }
  }
  for (const Key& k : deletes) uninstall(k);
  return shm::Verdict{};
}

Result<sad::SaHandle> Dataplane::install(const SaConfig& c, std::unique_ptr<esp::EspSa> sa) {
  const sad::SaHandle h = free_handles_.back();
  SaSlot& s = slots_[h];
  s.dir = static_cast<std::uint8_t>(c.dir);
  s.family = fam(c.dst.family);
  s.reqid = c.reqid;
  s.tunnel = c.mode == Mode::tunnel;
  s.encap = c.encap.enabled;
  s.encap_dport = c.encap.dport;
  s.peer = c.src.bytes;
  s.soft_sent = s.hard_sent = s.seq_sent = false;
  s.nat_addr = c.src.bytes;
  s.nat_port = c.encap.sport;  // inbound: the peer's source port
  s.out_hop = NextHop{};
  s.gen.fetch_add(1, std::memory_order_relaxed);
  const CipherInfo& ci = cipher_info(c.cipher);
  const unsigned icv = ci.aead ? ci.icv_len : integ_info(c.integ).icv_len;
  s.block = static_cast<std::uint8_t>(std::max<unsigned>(ci.block, 4));
  s.overhead = static_cast<std::uint16_t>((s.tunnel ? (s.family == 6 ? 40 : 20) : 0) + (s.encap ? 8 : 0) + 8 +
                                          ci.iv_len + 2 + icv);
  if (c.dir == Direction::out) {
    PipeDrop why = PipeDrop::none;
    s.out_mtu = 0xffff;
    if (const NextHop* nh = fib_.lookup(s.family, c.dst.bytes.data(), why)) {
      s.out_hop = *nh;
      s.out_mtu = ports_[nh->port].mtu;
    }
    // No route: the SA is installed anyway and its packets are counted as
    // no_route until the config has one (routes are static).
    // Owners: a reqid's first SA goes to the next worker in turn (so SAs of
    // different policies spread over the cores); more SAs of the same reqid
    // (per-CPU SAs, or a rekey's new SA) go to the following workers.
    auto& list = out_by_reqid_[c.reqid];
    const unsigned first = list.empty() ? next_out_owner_++ % opt_.workers : slots_[list.front()].owner;
    s.owner = static_cast<std::uint16_t>((first + list.size()) % opt_.workers);
    list.push_back(h);
  } else {
    s.owner = static_cast<std::uint16_t>(next_in_owner_++ % opt_.workers);
    auto slot = out_sad_->slot_for(c.reqid);
    if (!slot) return slot.error();
    s.in_slot = *slot;
    if (auto r = in_sad_->insert(c.spi, c.dst, h); !r) return r.error();
  }
  s.sa.store(sa.release(), std::memory_order_release);
  free_handles_.pop_back();
  sas_.emplace(key_of(c), Installed{without_keys(c), h});
  if (c.dir == Direction::out) {
    if (auto r = refresh_out_set(c.reqid); !r) return r.error();
  }
  return h;
}

Result<void> Dataplane::refresh_out_set(std::uint32_t reqid) {
  auto it = out_by_reqid_.find(reqid);
  std::vector<sad::SaHandle> set;
  if (it != out_by_reqid_.end()) set = it->second;
  // The newest SAs win when there are more than a set holds (a rekey adds
  // the new SA before deleting the old one).
  if (set.size() > sad::kMaxSetSize) set.erase(set.begin(), set.end() - sad::kMaxSetSize);
  // Worker w takes sa[w % count] (SaSet::pick): order the set so that
  // entry i is owned by worker i % workers where the owners allow it, and
  // each core uses an SA of its own instead of handing packets off.
  std::vector<std::vector<sad::SaHandle>> by_owner(opt_.workers);
  for (sad::SaHandle h : set) by_owner[slots_[h].owner].push_back(h);
  std::vector<sad::SaHandle> ordered;
  for (std::size_t round = 0; ordered.size() < set.size(); ++round)
    for (auto& b : by_owner)
      if (round < b.size()) ordered.push_back(b[round]);
  auto r = out_sad_->set(reqid, ordered);
  if (!r) return r.error();
  if (it != out_by_reqid_.end() && it->second.empty()) out_by_reqid_.erase(it);
  return {};
}

void Dataplane::uninstall(const Key& k) {
  auto it = sas_.find(k);
  if (it == sas_.end()) return;
  const sad::SaHandle h = it->second.handle;
  const SaConfig& c = it->second.cfg;
  if (c.dir == Direction::out) {
    auto& list = out_by_reqid_[c.reqid];
    list.erase(std::remove(list.begin(), list.end(), h), list.end());
    (void)refresh_out_set(c.reqid);
  } else {
    (void)in_sad_->erase(c.spi, c.dst);
  }
  sas_.erase(it);
  // Workers may still hold the handle (a packet in a handoff ring, a lookup
  // of this burst): free the SA and the handle after a grace period. A
  // worker that meets a null SA drops the packet as unknown_spi / no_sa.
  esp::EspSa* old = slots_[h].sa.exchange(nullptr, std::memory_order_acq_rel);
  retirer_.retire_fn([this, h, old] {
    delete old;
    free_handles_.push_back(h);
  });
}

void Dataplane::housekeeping() {
  std::lock_guard<std::mutex> g(mu_);
  retirer_.reclaim();
  spd_->reclaim();
  in_sad_->reclaim();
  out_sad_->reclaim();
}

std::size_t Dataplane::drain_events(std::vector<shm::EventBody>& out) {
  std::size_t n = 0;
  std::lock_guard<std::mutex> g(mu_);
  WorkerEvent e;
  for (auto& q : events_) {
    while (q->pop(e)) {
      ++n;
      auto key_of_handle = [&](sad::SaHandle h, shm::SaKey& k) -> bool {
        for (const auto& [key, in] : sas_) {
          if (in.handle == h) {
            k = shm::SaKey{in.cfg.spi, in.cfg.dir, in.cfg.dst};
            return true;
          }
        }
        return false;
      };
      switch (e.kind) {
        case WorkerEvent::Kind::acquire: {
          shm::Acquire a;
          a.reqid = e.reqid;
          a.policy_index = e.policy;
          a.flow = spd::to_key(e.flow);
          out.emplace_back(a);
          break;
        }
        case WorkerEvent::Kind::soft:
        case WorkerEvent::Kind::hard: {
          shm::SaExpired x;
          if (!key_of_handle(e.sa, x.sa)) break;
          x.hard = e.kind == WorkerEvent::Kind::hard;
          x.reqid = e.reqid;
          x.bytes = e.bytes;
          x.packets = e.packets;
          const auto& in = sas_.at(key_of(x.sa));
          const Lifetime& l = x.hard ? in.cfg.hard : in.cfg.soft;
          x.which = (l.packets != 0 && e.packets >= l.packets) ? shm::ExpiryKind::packets : shm::ExpiryKind::bytes;
          out.emplace_back(x);
          break;
        }
        case WorkerEvent::Kind::seq: {
          shm::SeqExhausted x;
          if (!key_of_handle(e.sa, x.sa)) break;
          x.reqid = e.reqid;
          out.emplace_back(x);
          break;
        }
        case WorkerEvent::Kind::nat: {
          shm::NatMappingChanged x;
          if (!key_of_handle(e.sa, x.sa)) break;
          const auto& in = sas_.at(key_of(x.sa));
          x.reqid = e.reqid;
          x.old_addr = in.cfg.src;
          x.old_addr.bytes = e.old_addr;
          x.old_port = e.old_port;
          x.new_addr = in.cfg.src;
          x.new_addr.bytes = e.addr;
          x.new_port = e.port;
          out.emplace_back(x);
          break;
        }
      }
    }
  }
  return n;
}

shm::SaCounters Dataplane::counters_of(const Installed& in) const {
  shm::SaCounters c;
  c.sa = shm::SaKey{in.cfg.spi, in.cfg.dir, in.cfg.dst};
  c.reqid = in.cfg.reqid;
  // Written by the owner core only; read here without stopping it (64-bit
  // aligned loads do not tear on the platforms DPDK runs on; a snapshot may
  // be a few packets behind).
  if (const esp::EspSa* sa = slots_[in.handle].sa.load(std::memory_order_acquire)) {
    const esp::SaCounters& k = sa->counters();
    c.packets = k.packets;
    c.bytes = k.bytes;
    c.n_drops = static_cast<std::uint8_t>(kDropReasonCount);
    for (std::size_t i = 0; i < kDropReasonCount; ++i) c.drops[i] = k.drops.by_reason[i];
  }
  return c;
}

shm::Verdict Dataplane::counters(const shm::CountersQuery& q, std::vector<shm::SaCounters>& out,
                                 std::uint32_t& next_cursor) {
  std::lock_guard<std::mutex> g(mu_);
  next_cursor = 0;
  if (q.scope == shm::CounterScope::one) {
    auto it = sas_.find(key_of(q.sa));
    if (it == sas_.end()) return shm::Verdict{shm::Status::not_found, "no SA spi " + std::to_string(q.sa.spi)};
    out.push_back(counters_of(it->second));
    return {};
  }
  std::uint32_t i = 0;
  for (const auto& [k, in] : sas_) {
    if (i++ < q.cursor) continue;
    if (out.size() >= q.max) {
      next_cursor = i - 1;
      break;
    }
    out.push_back(counters_of(in));
  }
  return {};
}

std::vector<Dataplane::SaView> Dataplane::list_sas(std::size_t cursor, std::size_t max, std::size_t& next) const {
  std::vector<SaView> v;
  next = 0;
  std::size_t i = 0;
  for (const auto& [k, in] : sas_) {
    if (i++ < cursor) continue;
    if (v.size() >= max) {
      next = i - 1;
      break;
    }
    SaView s{in.handle, in.cfg, slots_[in.handle].owner, {}, 0};
    if (const esp::EspSa* sa = slots_[in.handle].sa.load(std::memory_order_acquire)) {
      s.counters = sa->counters();
      s.next_seq = sa->next_seq();
    }
    v.push_back(std::move(s));
  }
  return v;
}

std::vector<Policy> Dataplane::list_policies() const {
  std::vector<Policy> v;
  for (PolicyDir d : {PolicyDir::out, PolicyDir::in}) {
    if (const spd::SpdTable* t = spd_->current(d)) v.insert(v.end(), t->rules.begin(), t->rules.end());
  }
  return v;
}

std::size_t Dataplane::sa_count() const { return sas_.size(); }

PortTotals Dataplane::port_totals(std::uint16_t port) const {
  PortTotals t;
  for (const auto& pc : counters_) {
    const PortCounters& c = pc[port];
    t.rx_packets += c.rx_packets;
    t.rx_bytes += c.rx_bytes;
    t.tx_packets += c.tx_packets;
    t.tx_bytes += c.tx_bytes;
    for (std::size_t i = 0; i < kPipeDropCount; ++i) t.drops[i] += c.drops[i];
  }
  return t;
}

}  // namespace cygnet::dp::app
