// The worker lcores' packet pipeline (docs/dataplane.md): rx, classify,
// SPD or SAD, handoff to the SA's owner core, ESP, route, tx. No
// allocation (beyond mbufs from the pool for ICMP errors and fragments),
// lock, syscall or exception per packet.
#include <rte_byteorder.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mempool.h>

#include <cstring>

#include "dp/app/dataplane.h"

namespace cygnet::dp::app {

namespace {

constexpr std::uint16_t kTypeIpv4 = 0x0800;
constexpr std::uint16_t kTypeIpv6 = 0x86dd;
constexpr std::uint16_t kTypeArp = 0x0806;
// The MAC the dataplane answers the host kernel's ARP requests with on the
// exception port (any unicast address works: the dataplane routes by IP).
constexpr unsigned kMaxFragments = 64;
constexpr Mac kProxyMac = {0x02, 0x63, 0x79, 0x67, 0x00, 0x01};

inline std::uint16_t rd16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
inline std::uint32_t rd32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
inline void wr16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

std::uint16_t default_tx(void*, std::uint16_t port, std::uint16_t queue, rte_mbuf** m, std::uint16_t n) {
  return rte_eth_tx_burst(port, queue, m, n);
}

inline std::uint8_t* frame(rte_mbuf* m) noexcept { return rte_pktmbuf_mtod(m, std::uint8_t*); }

void set_eth(rte_mbuf* m, const Mac& dst, const Mac& src, std::uint16_t type) noexcept {
  std::uint8_t* e = frame(m);
  std::memcpy(e, dst.data(), 6);
  std::memcpy(e + 6, src.data(), 6);
  wr16(e + 12, type);
}

// One's complement sum of 16-bit words (network order), not folded.
std::uint32_t sum16(const std::uint8_t* p, std::size_t n, std::uint32_t s = 0) noexcept {
  for (; n > 1; n -= 2, p += 2) s += rd16(p);
  if (n) s += std::uint32_t{p[0]} << 8;
  return s;
}
std::uint16_t fold(std::uint32_t s) noexcept {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<std::uint16_t>(~s);
}

// Decrements TTL / hop limit; false if the packet must not be forwarded.
bool decrement_ttl(std::uint8_t* ip) noexcept {
  if ((ip[0] >> 4) == 4) {
    if (ip[8] <= 1) return false;
    ip[8]--;
    // RFC 1624 incremental update: TTL is the high byte of its word.
    std::uint32_t c = rd16(ip + 10) + 0x0100u;
    c = (c & 0xffff) + (c >> 16);
    wr16(ip + 10, static_cast<std::uint16_t>(c));
    return true;
  }
  if (ip[7] <= 1) return false;
  ip[7]--;
  return true;
}

// Validates the IP header against the frame; returns the IP length (the
// frame may carry Ethernet padding after it) or 0 if malformed.
std::uint16_t ip_length(const std::uint8_t* ip, std::uint16_t avail, std::uint8_t& family) noexcept {
  if (avail < 20) return 0;
  const unsigned v = ip[0] >> 4;
  if (v == 4) {
    const unsigned ihl = (ip[0] & 0x0f) * 4u;
    const unsigned tot = rd16(ip + 2);
    if (ihl < 20 || tot < ihl || tot > avail) return 0;
    family = 4;
    return static_cast<std::uint16_t>(tot);
  }
  if (v == 6 && avail >= 40) {
    const unsigned tot = 40u + rd16(ip + 4);
    if (tot > avail) return 0;
    family = 6;
    return static_cast<std::uint16_t>(tot);
  }
  return 0;
}

inline const std::uint8_t* dst_of(const std::uint8_t* ip) noexcept {
  return (ip[0] >> 4) == 4 ? ip + 16 : ip + 24;
}
inline const std::uint8_t* src_of(const std::uint8_t* ip) noexcept {
  return (ip[0] >> 4) == 4 ? ip + 12 : ip + 8;
}

}  // namespace

Worker::Worker(Dataplane& dp, unsigned index, rte_mempool* pool, IMB_MGR* mgr)
    : dp_(dp),
      index_(index),
      pool_(pool),
      pc_(dp.port_counters(index)),
      out_(dp.spd(), PolicyDir::out, dp.options().flow_cache_entries, dp.options().acquire),
      in_(dp.spd(), PolicyDir::in, dp.options().flow_cache_entries, dp.options().acquire),
      mgr_(mgr),
      gcm_lines_(esp::gcm_short_packet_lines(mgr)),
      tx_fn_(default_tx) {
  for (std::size_t i = 0; i < dp.ports().size(); ++i)
    if (dp.ports()[i].exception) exception_port_ = static_cast<std::uint16_t>(i);
  dp.attach_worker(index, this);
  dp.qsbr().online(index);
}

Worker::~Worker() {
  for (auto& q : tx_)
    for (std::uint16_t i = 0; i < q.n; ++i) rte_pktmbuf_free(q.m[i]);
  dp_.qsbr().offline(index_);
  dp_.attach_worker(index_, nullptr);
}

void Worker::poll(std::uint64_t now_ns) noexcept {
  rte_mbuf* m[kBurst];
  const auto& ports = dp_.ports();
  for (std::uint16_t p = 0; p < ports.size(); ++p) {
    const std::uint16_t n = rte_eth_rx_burst(ports[p].dpdk_id, static_cast<std::uint16_t>(index_), m, kBurst);
    if (n != 0) process(p, m, n, now_ns);
  }
  drain_handoff(now_ns);
  flush();
  dp_.qsbr().quiescent(index_);
}

void Worker::drop(rte_mbuf* m, std::uint16_t port, PipeDrop why) noexcept {
  pc_[port].drops[static_cast<std::size_t>(why)]++;
  rte_pktmbuf_free(m);
}

void Worker::event(const WorkerEvent& e) noexcept {
  // Full queue: the main lcore is behind; the event is lost (ACQUIREs are
  // raised again for the flow, expiry is re-checked at the next packet).
  (void)dp_.events(index_).push(e);
}

void Worker::acquire(const spd::FlowTuple& t, const spd::Decision& d) noexcept {
  WorkerEvent e;
  e.kind = WorkerEvent::Kind::acquire;
  e.policy = d.policy;
  const spd::SpdTable* tb = out_.table();  // the table the decision came from
  if (tb != nullptr && d.policy < tb->rules.size()) e.reqid = tb->rules[d.policy].reqid;
  e.flow = t;
  event(e);
}

void Worker::process(std::uint16_t port, rte_mbuf** m, std::uint16_t n, std::uint64_t now_ns) noexcept {
  out_.begin_burst();
  in_.begin_burst();
  pick_slot_ = ~std::uint32_t{0};
  std::uint64_t bytes = 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(m[i + 1], void*));
    bytes += rte_pktmbuf_pkt_len(m[i]);
    classify(m[i], port, now_ns);
    if (n_esp_ >= kBurst) run_esp(now_ns);
  }
  pc_[port].rx_packets += n;
  pc_[port].rx_bytes += bytes;
  run_inbound(now_ns);
  run_outbound(now_ns);
  run_esp(now_ns);
  flush_handoff();
}

void Worker::classify(rte_mbuf* m, std::uint16_t port, std::uint64_t now_ns) noexcept {
  m->port = port;  // our port index from here on
  if (m->nb_segs != 1 || m->data_len < kEtherHdr) return drop(m, port, PipeDrop::bad_frame);
  std::uint8_t* e = frame(m);
  const std::uint16_t type = rd16(e + 12);
  if (type == kTypeArp) return arp(m, port);
  if (type != kTypeIpv4 && type != kTypeIpv6) return drop(m, port, PipeDrop::bad_frame);
  std::uint8_t* ip = e + kEtherHdr;
  std::uint8_t family = 0;
  const std::uint16_t len = ip_length(ip, static_cast<std::uint16_t>(m->data_len - kEtherHdr), family);
  if (len == 0 || (family == 4) != (type == kTypeIpv4)) return drop(m, port, PipeDrop::malformed);
  // Drop the Ethernet padding after the IP packet.
  m->data_len = m->pkt_len = static_cast<std::uint16_t>(len + kEtherHdr);

  const PortInfo& pi = dp_.ports()[port];
  if (pi.exception) {
    // From the host kernel. IKE (UDP 500/4500 from or to us) bypasses the
    // SPD like strongSwan's socket bypass policies; the rest is outbound
    // traffic of the gateway itself and meets the SPD.
    if (family == 4 && ip[9] == kProtoUdp && len >= (ip[0] & 0x0f) * 4u + 8) {
      const std::uint8_t* udp = ip + (ip[0] & 0x0f) * 4;
      const std::uint16_t sp = rd16(udp), dport = rd16(udp + 2);
      if (sp == 500 || sp == 4500 || dport == 500 || dport == 4500) return forward(m, port, ip, len, false);
    }
    return outbound_clear(m, port, ip, len, now_ns);
  }
  const bool local = dp_.fib().is_local(family, dst_of(ip));
  if (pi.protected_side) {
    if (local) return to_exception(m, port);
    return defer_outbound(m, port, ip, len, now_ns);
  }
  if (!local) return inbound_clear(m, port, ip, len, now_ns, false);

  // Unprotected side, to one of our addresses: ESP, ESP-in-UDP, IKE, other.
  unsigned l4 = 40;
  std::uint8_t proto = ip[6];
  if (family == 4) {
    l4 = (ip[0] & 0x0f) * 4u;
    proto = ip[9];
    // A fragment: not reassembled here (docs/dataplane.md); it meets the
    // inbound SPD like other cleartext to the gateway.
    if ((rd16(ip + 6) & 0x3fff) != 0) return inbound_clear(m, port, ip, len, now_ns, true);
  }
  if (proto == 50) {
    if (len < l4 + 8) return drop(m, port, PipeDrop::malformed);
    return defer_inbound(m, port, rd32(ip + l4), family, dst_of(ip), now_ns);
  }
  if (proto == kProtoUdp && len >= l4 + 8 && rd16(ip + l4 + 2) == 4500) {
    const std::uint8_t* pl = ip + l4 + 8;
    const std::size_t plen = len - l4 - 8;
    switch (esp::classify_udp_4500(pl, plen)) {
      case esp::Udp4500Kind::esp:
        return defer_inbound(m, port, rd32(pl), family, dst_of(ip), now_ns);
      case esp::Udp4500Kind::keepalive:
        return drop(m, port, PipeDrop::keepalive);
      case esp::Udp4500Kind::ike:
        return to_exception(m, port);
      case esp::Udp4500Kind::malformed:
        return drop(m, port, PipeDrop::malformed);
    }
  }
  // IKE (UDP 500) reaches the kernel whatever the policies say, like the
  // socket bypass policies of an IKE daemon; anything else meets the SPD.
  if (proto == kProtoUdp && len >= l4 + 8 && rd16(ip + l4 + 2) == 500) return to_exception(m, port);
  return inbound_clear(m, port, ip, len, now_ns, true);
}

void Worker::outbound_clear(rte_mbuf* m, std::uint16_t port, std::uint8_t* ip, std::uint16_t len,
                            std::uint64_t now_ns) noexcept {
  spd::FlowTuple t;
  if (!spd::extract_flow(ip, len, t)) return drop(m, port, PipeDrop::malformed);
  const spd::SpdLookup::Verdict v = out_.lookup(t, now_ns);
  const sad::SaHandle h = v.decision.action == PolicyAction::protect ? pick(v.decision.sa_slot) : sad::kNoSa;
  act_outbound(m, port, ip, len, t, v, h, now_ns);
}

void Worker::defer_outbound(rte_mbuf* m, std::uint16_t port, std::uint8_t* ip, std::uint16_t len,
                            std::uint64_t now_ns) noexcept {
  OutItem& o = out_batch_[n_out_];
  if (!spd::extract_flow(ip, len, o.t)) return drop(m, port, PipeDrop::malformed);
  o.m = m;
  o.ip = ip;
  o.len = len;
  o.port = port;
  if (++n_out_ == kBurst) run_outbound(now_ns);
}

void Worker::defer_inbound(rte_mbuf* m, std::uint16_t port, std::uint32_t spi, std::uint8_t family,
                           const std::uint8_t* dst, std::uint64_t now_ns) noexcept {
  // Consecutive packets of one SA (the common case with few SAs) prefetch
  // its bucket once.
  if (spi != prefetched_spi_) {
    dp_.inbound().prefetch(spi);
    prefetched_spi_ = spi;
  }
  in_batch_[n_in_] = InItem{m, dst, spi, port, family};
  if (++n_in_ == kBurst) run_inbound(now_ns);
}

void Worker::run_inbound(std::uint64_t now_ns) noexcept {
  const std::uint16_t n = n_in_;
  if (n == 0) return;
  n_in_ = 0;
  // The SAD buckets were prefetched as the packets were classified; now
  // the lookups, each SA slot prefetched, then each packet to its SA (the
  // slot says which core owns it). The SAs' own lines are prefetched in
  // run_esp.
  sad::SaHandle h[kBurst];
  for (std::uint16_t i = 0; i < n; ++i) {
    const InItem& it = in_batch_[i];
    if (i > 0) {  // the SPI and destination of the packet before: its SA
      const InItem& prev = in_batch_[i - 1];
      if (it.spi == prev.spi && it.family == prev.family &&
          std::memcmp(it.dst, prev.dst, it.family == 6 ? 16 : 4) == 0) {
        h[i] = h[i - 1];
        continue;
      }
    }
    h[i] = dp_.inbound().lookup(it.spi, static_cast<Family>(it.family), it.dst);
    if (h[i] != sad::kNoSa) prefetch_line(&dp_.slot(h[i]));
  }
  for (std::uint16_t i = 0; i < n; ++i) {
    const InItem& it = in_batch_[i];
    if (h[i] == sad::kNoSa) {
      drop(it.m, it.port, PipeDrop::unknown_spi);
      continue;
    }
    to_sa(it.m, it.port, h[i]);
    if (n_esp_ >= kBurst) run_esp(now_ns);
  }
}

sad::SaHandle Worker::pick(std::uint32_t set_slot) noexcept {
  // Consecutive packets of one policy reuse the choice (valid until the
  // burst's quiescent point, like the set).
  if (set_slot != pick_slot_) {
    pick_sa_ = dp_.outbound().get(set_slot)->pick(index_);
    pick_slot_ = set_slot;
  }
  return pick_sa_;
}

void Worker::run_outbound(std::uint64_t now_ns) noexcept {
  const std::uint16_t n = n_out_;
  if (n == 0) return;
  n_out_ = 0;
  const spd::FlowTuple* t[kBurst];
  spd::SpdLookup::Verdict v[kBurst];
  for (std::uint16_t i = 0; i < n; ++i) t[i] = &out_batch_[i].t;
  // One SPD lookup for the burst: every flow's cache bucket is prefetched
  // before the first is compared (SpdLookup::lookup_burst).
  out_.lookup_burst(t, n, now_ns, v);
  // Then each step of the chain a protected packet follows (SA set -> SA
  // slot -> SA), one step for the whole burst at a time: with many SAs each
  // is a cache miss, and this way a burst's misses overlap instead of
  // following each other packet by packet.
  for (std::uint16_t i = 0; i < n; ++i) {
    if (v[i].decision.action == PolicyAction::protect) prefetch_line(dp_.outbound().get(v[i].decision.sa_slot));
  }
  sad::SaHandle h[kBurst];
  for (std::uint16_t i = 0; i < n; ++i) {
    h[i] = v[i].decision.action == PolicyAction::protect ? pick(v[i].decision.sa_slot) : sad::kNoSa;
    if (h[i] != sad::kNoSa) {
      const SaSlot& s = dp_.slot(h[i]);
      prefetch_line(&s);
    }
  }
  for (std::uint16_t i = 0; i < n; ++i) {
    const OutItem& o = out_batch_[i];
    act_outbound(o.m, o.port, o.ip, o.len, o.t, v[i], h[i], now_ns);
  }
}

void Worker::act_outbound(rte_mbuf* m, std::uint16_t port, std::uint8_t* ip, std::uint16_t len,
                          const spd::FlowTuple& t, const spd::SpdLookup::Verdict& v, sad::SaHandle h,
                          std::uint64_t now_ns) noexcept {
  const bool from_host = dp_.ports()[port].exception;  // the gateway's own traffic keeps its TTL
  switch (v.decision.action) {
    case PolicyAction::bypass:
      return forward(m, port, ip, len, !from_host);
    case PolicyAction::discard:
      return drop(m, port, v.decision.matched ? PipeDrop::discard_policy : PipeDrop::no_policy);
    case PolicyAction::trap: {
      if (v.acquire) acquire(t, v.decision);
      return drop(m, port, PipeDrop::trap);
    }
    case PolicyAction::protect:
      break;
  }
  // h: the SA of this core, pick(v.decision.sa_slot).
  if (h == sad::kNoSa) {
    if (out_.request_acquire(t, now_ns)) acquire(t, v.decision);
    return drop(m, port, PipeDrop::no_sa);
  }
  if (!from_host && !decrement_ttl(ip)) return drop(m, port, PipeDrop::ttl);
  const SaSlot& s = dp_.slot(h);
  // Path MTU (RFC 4301 8.1): fragment before encryption, or ICMP too-big.
  // The padding aligns payload + 2 trailer bytes to the block (a power of two).
  const unsigned pad = (0u - (len + 2u)) & (s.block - 1u);
  if (s.overhead + len + pad > s.out_mtu) [[unlikely]] {
    if (s.out_hop.port == kNoPort) return to_sa(m, port, h);  // counted as no_route after ESP
    const unsigned room = s.out_mtu - s.overhead - (s.block - 1u);  // largest inner packet that fits
    const bool df = (ip[0] >> 4) == 6 || (rd16(ip + 6) & 0x4000) != 0;
    if (df || room < 68) return too_big(m, port, ip, static_cast<std::uint16_t>(room));
    if (!fragment_and_protect(m, port, h, static_cast<std::uint16_t>(room))) return drop(m, port, PipeDrop::frag);
    return;
  }
  to_sa(m, port, h);
}

void Worker::inbound_clear(rte_mbuf* m, std::uint16_t port, std::uint8_t* ip, std::uint16_t len,
                           std::uint64_t now_ns, bool local) noexcept {
  // RFC 4301 5.2: cleartext from the unprotected side, transit or for the
  // gateway itself, passes only through an inbound bypass policy.
  spd::FlowTuple t;
  if (!spd::extract_flow(ip, len, t)) return drop(m, port, PipeDrop::malformed);
  const spd::SpdLookup::Verdict v = in_.lookup(t, now_ns);
  switch (v.decision.action) {
    case PolicyAction::bypass:
      return local ? to_exception(m, port) : forward(m, port, ip, len, true);
    case PolicyAction::discard:
      return drop(m, port, v.decision.matched ? PipeDrop::discard_policy : PipeDrop::no_policy);
    case PolicyAction::protect:
    case PolicyAction::trap:
      return drop(m, port, PipeDrop::cleartext);
  }
}

void Worker::to_sa(rte_mbuf* m, std::uint16_t port, sad::SaHandle h) noexcept {
  SaSlot& s = dp_.slot(h);
  if (s.owner != index_) {
    m->hash.fdir.lo = h;
    m->hash.fdir.hi = s.gen.load(std::memory_order_relaxed);
    HandoffQueue& q = handoff_out_[s.owner];
    q.m[q.n++] = m;
    handoff_pending_ = 1;
    if (q.n == kBurst) flush_handoff(s.owner);
    (void)port;  // a drop at the flush counts on m->port, the same port
    return;
  }
  esp_[n_esp_++] = EspItem{m, h, port, m->data_off};
}

// One ring operation per owner and burst rather than per packet: the
// ring's head and tail lines move between the two cores once per burst.
void Worker::flush_handoff(unsigned to) noexcept {
  HandoffQueue& q = handoff_out_[to];
  const unsigned sent = rte_ring_sp_enqueue_burst(dp_.handoff(index_, to), reinterpret_cast<void**>(q.m.data()), q.n,
                                                  nullptr);
  for (unsigned i = sent; i < q.n; ++i) drop(q.m[i], q.m[i]->port, PipeDrop::handoff_full);
  q.n = 0;
}

void Worker::flush_handoff() noexcept {
  if (handoff_pending_ == 0) return;
  for (unsigned to = 0; to < dp_.workers(); ++to) {
    if (handoff_out_[to].n != 0) flush_handoff(to);
  }
  handoff_pending_ = 0;
}

void Worker::drain_handoff(std::uint64_t now_ns) noexcept {
  if (dp_.workers() < 2) return;
  for (unsigned from = 0; from < dp_.workers(); ++from) {
    if (from == index_) continue;
    const unsigned n = rte_ring_sc_dequeue_burst(dp_.handoff(from, index_), reinterpret_cast<void**>(handoff_buf_.data()),
                                                 kBurst, nullptr);
    if (n == 0) continue;
    out_.begin_burst();
    in_.begin_burst();
    pick_slot_ = ~std::uint32_t{0};
    for (unsigned i = 0; i < n; ++i) {
      rte_mbuf* m = handoff_buf_[i];
      const sad::SaHandle h = m->hash.fdir.lo;
      if (h >= dp_.max_sas() || dp_.slot(h).gen.load(std::memory_order_relaxed) != m->hash.fdir.hi) {
        drop(m, m->port, PipeDrop::no_sa);  // the SA went away while the packet was in the ring
        continue;
      }
      esp_[n_esp_++] = EspItem{m, h, m->port, m->data_off};
      if (n_esp_ >= kBurst) run_esp(now_ns);
    }
    run_esp(now_ns);
  }
}

void Worker::run_esp(std::uint64_t now_ns) noexcept {
  const std::uint16_t n = n_esp_;
  if (n == 0) return;
  n_esp_ = 0;
  // Group the packets by SA in one pass (arrival order kept within a
  // group): a small open-addressing table from handle to group, chains
  // through next[]. One process() call per SA per burst.
  constexpr std::uint16_t kEnd = 0xffff;
  constexpr unsigned kTable = 128;  // > 2 x the most packets here: short probes
  static_assert(kTable >= 2 * kBurst * 2);
  std::uint8_t table[kTable];  // group index + 1; 0 = empty
  std::memset(table, 0, sizeof table);
  struct Group {
    sad::SaHandle h;
    std::uint16_t first, last;
  };
  Group groups[kBurst * 2];
  std::uint16_t next[kBurst * 2];
  std::uint16_t ng = 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    const sad::SaHandle h = esp_[i].sa;
    unsigned b = (h * 0x9e3779b1u) >> 25;  // 7 bits
    for (;; b = (b + 1) & (kTable - 1)) {
      if (table[b] == 0) {
        groups[ng] = Group{h, i, i};
        table[b] = static_cast<std::uint8_t>(++ng);
        break;
      }
      Group& g = groups[table[b] - 1];
      if (g.h == h) {
        next[g.last] = i;
        g.last = i;
        break;
      }
    }
    next[i] = kEnd;
  }
  esp::Packet pk[kBurst * 2];
  esp::Packet* pp[kBurst * 2];
  std::uint16_t idx[kBurst * 2];
  // The SAs' lines are prefetched here only, kSaPrefetchAhead groups
  // before each is processed: the first groups' now, every later one while
  // the packets of the group that many places before it are processed.
  // (Their slots are in cache: run_outbound or to_sa touched them.)
  const auto prefetch_sa = [this, &groups](std::uint16_t g) noexcept {
    const SaSlot& s = dp_.slot(groups[g].h);
    if (const esp::EspSa* sa = s.sa.load(std::memory_order_acquire))
      sa->prefetch(s.dir != static_cast<std::uint8_t>(Direction::out), gcm_lines_);
  };
  for (std::uint16_t g = 0; g < ng && g < kSaPrefetchAhead; ++g) prefetch_sa(g);
  for (std::uint16_t gi = 0; gi < ng; ++gi) {
    const sad::SaHandle h = groups[gi].h;
    if (gi + kSaPrefetchAhead < ng) prefetch_sa(static_cast<std::uint16_t>(gi + kSaPrefetchAhead));
    std::uint16_t k = 0;
    for (std::uint16_t j = groups[gi].first; j != kEnd; j = next[j]) {
      rte_mbuf* m = esp_[j].m;
      pk[k] = esp::Packet{static_cast<std::uint8_t*>(m->buf_addr), static_cast<std::uint16_t>(m->buf_len),
                          static_cast<std::uint16_t>(m->data_off + kEtherHdr),
                          static_cast<std::uint16_t>(m->data_len - kEtherHdr), DropReason::none};
      pp[k] = &pk[k];
      idx[k] = j;
      ++k;
    }
    SaSlot& s = dp_.slot(h);
    esp::EspSa* sa = s.sa.load(std::memory_order_acquire);
    if (sa == nullptr) {  // deleted since the lookup
      for (std::uint16_t q = 0; q < k; ++q) drop(esp_[idx[q]].m, esp_[idx[q]].rx_port, PipeDrop::no_sa);
      continue;
    }
    const std::uint16_t good = sa->process(mgr_, pp, k);
    const bool outbound = s.dir == static_cast<std::uint8_t>(Direction::out);
    for (std::uint16_t q = 0; q < k; ++q) {
      const esp::Packet* p = pp[q];
      const EspItem& it = esp_[idx[p - pk]];
      rte_mbuf* m = it.m;
      if (q >= good) {
        drop(m, it.rx_port, PipeDrop::esp);
        continue;
      }
      m->data_off = static_cast<std::uint16_t>(p->off - kEtherHdr);
      m->data_len = m->pkt_len = static_cast<std::uint16_t>(p->len + kEtherHdr);
      if (outbound) {
        if (s.out_hop.port == kNoPort) {
          drop(m, it.rx_port, PipeDrop::no_route);
          continue;
        }
        set_eth(m, s.out_hop.dst, s.out_hop.src, s.family == 6 ? kTypeIpv6 : kTypeIpv4);
        queue_tx(m, s.out_hop);
      } else {
        if (s.encap) check_nat(it, s, h);
        post_inbound(m, it.rx_port, s);
      }
    }
    after_sa(s, *sa, h);
  }
  run_post(now_ns);
}

void Worker::after_sa(SaSlot& s, esp::EspSa& sa, sad::SaHandle h) noexcept {
  // Each condition is reported once per SA (the flags are the owner's).
  auto once = [&](bool cond, bool& sent, WorkerEvent::Kind kind) {
    if (!cond || sent) [[likely]] return;
    sent = true;
    WorkerEvent e;
    e.kind = kind;
    e.sa = h;
    e.reqid = s.reqid;
    e.bytes = sa.counters().bytes;
    e.packets = sa.counters().packets;
    event(e);
  };
  once(sa.soft_expired(), s.soft_sent, WorkerEvent::Kind::soft);
  once(sa.hard_expired(), s.hard_sent, WorkerEvent::Kind::hard);
  once(sa.seq_exhausted(), s.seq_sent, WorkerEvent::Kind::seq);
}

void Worker::check_nat(const EspItem& it, SaSlot& s, sad::SaHandle h) noexcept {
  // The packet's ICV verified, so its outer source is the peer's as seen
  // here. The outer headers are still where the frame was received: the
  // inner packet was decrypted in place behind them.
  const std::uint8_t* ip = static_cast<const std::uint8_t*>(it.m->buf_addr) + it.frame_off + kEtherHdr;
  const bool v6 = (ip[0] >> 4) == 6;
  const unsigned alen = v6 ? 16 : 4;
  const std::uint8_t* src = v6 ? ip + 8 : ip + 12;
  const std::uint8_t* udp = v6 ? ip + 40 : ip + (ip[0] & 0x0f) * 4;
  const std::uint16_t sport = rd16(udp);
  if (sport == s.nat_port && std::memcmp(src, s.nat_addr.data(), alen) == 0) [[likely]] return;
  WorkerEvent e;
  e.old_addr = s.nat_addr;
  e.old_port = s.nat_port;
  std::memcpy(s.nat_addr.data(), src, alen);
  s.nat_port = sport;
  e.kind = WorkerEvent::Kind::nat;
  e.sa = h;
  e.reqid = s.reqid;
  e.addr = s.nat_addr;
  e.port = sport;
  event(e);
}

void Worker::post_inbound(rte_mbuf* m, std::uint16_t port, const SaSlot& s) noexcept {
  const std::uint8_t* ip = frame(m) + kEtherHdr;
  const std::uint16_t len = static_cast<std::uint16_t>(m->data_len - kEtherHdr);
  PostItem& p = post_[n_post_];
  if (!spd::extract_flow(ip, len, p.t)) return drop(m, port, PipeDrop::malformed);
  p.m = m;
  p.in_slot = s.in_slot;
  p.port = port;
  ++n_post_;  // run_esp calls run_post before it handles more than post_ holds
}

void Worker::run_post(std::uint64_t now_ns) noexcept {
  const std::uint16_t n = n_post_;
  if (n == 0) return;
  n_post_ = 0;
  // RFC 4301 5.2 step 4: the decrypted packet must match an inbound protect
  // policy that uses this SA's reqid. One SPD lookup for the batch: every
  // flow's cache bucket is prefetched before the first is compared.
  static_assert(kBurst * 2 <= spd::SpdLookup::kMaxBurst);
  const spd::FlowTuple* t[kBurst * 2];
  spd::SpdLookup::Verdict v[kBurst * 2];
  for (std::uint16_t i = 0; i < n; ++i) t[i] = &post_[i].t;
  in_.lookup_burst(t, n, now_ns, v);
  for (std::uint16_t i = 0; i < n; ++i) {
    const PostItem& p = post_[i];
    if (v[i].decision.action != PolicyAction::protect || v[i].decision.sa_slot != p.in_slot) {
      drop(p.m, p.port, PipeDrop::inner_policy);
      continue;
    }
    std::uint8_t* ip = frame(p.m) + kEtherHdr;
    const auto len = static_cast<std::uint16_t>(p.m->data_len - kEtherHdr);
    const std::uint8_t family = (ip[0] >> 4) == 6 ? 6 : 4;
    if (dp_.fib().is_local(family, dst_of(ip))) {
      to_exception(p.m, p.port);
      continue;
    }
    forward(p.m, p.port, ip, len, true);
  }
}

void Worker::forward(rte_mbuf* m, std::uint16_t port, std::uint8_t* ip, std::uint16_t len, bool decrement) noexcept {
  (void)len;
  PipeDrop why = PipeDrop::none;
  const std::uint8_t family = (ip[0] >> 4) == 6 ? 6 : 4;
  const NextHop* hop = dp_.fib().lookup(family, dst_of(ip), why);
  if (hop == nullptr) return drop(m, port, why);
  if (decrement && !decrement_ttl(ip)) return drop(m, port, PipeDrop::ttl);
  if (len + kEtherHdr > dp_.ports()[hop->port].mtu + kEtherHdr) return too_big(m, port, ip, dp_.ports()[hop->port].mtu);
  set_eth(m, hop->dst, hop->src, family == 6 ? kTypeIpv6 : kTypeIpv4);
  queue_tx(m, *hop);
}

void Worker::queue_tx(rte_mbuf* m, const NextHop& hop) noexcept {
  TxQueue& q = tx_[hop.port];
  q.m[q.n++] = m;
  if (q.n == kBurst) flush_port(hop.port);
}

void Worker::flush_port(std::uint16_t p) noexcept {
  TxQueue& q = tx_[p];
  // Lengths before the send: a PMD may free what it took at once.
  std::uint16_t len[kBurst];
  for (std::uint16_t i = 0; i < q.n; ++i) len[i] = static_cast<std::uint16_t>(rte_pktmbuf_pkt_len(q.m[i]));
  const std::uint16_t sent =
      tx_fn_(tx_ctx_, dp_.ports()[p].dpdk_id, static_cast<std::uint16_t>(index_), q.m.data(), q.n);
  pc_[p].tx_packets += sent;
  for (std::uint16_t i = 0; i < sent; ++i) pc_[p].tx_bytes += len[i];
  for (std::uint16_t i = sent; i < q.n; ++i) drop(q.m[i], p, PipeDrop::tx_full);
  q.n = 0;
}

void Worker::flush() noexcept {
  for (std::uint16_t p = 0; p < dp_.ports().size(); ++p)
    if (tx_[p].n != 0) flush_port(p);
}

void Worker::to_exception(rte_mbuf* m, std::uint16_t port) noexcept {
  if (exception_port_ == kNoPort) return drop(m, port, PipeDrop::local);
  const PortInfo& ex = dp_.ports()[exception_port_];
  std::uint8_t* e = frame(m);
  NextHop hop{exception_port_, ex.mac, kProxyMac};
  set_eth(m, hop.dst, hop.src, rd16(e + 12));
  queue_tx(m, hop);
}

void Worker::arp(rte_mbuf* m, std::uint16_t port) noexcept {
  // RFC 826 over Ethernet/IPv4: htype 1, ptype 0x0800, hlen 6, plen 4.
  if (m->data_len < kEtherHdr + 28) return drop(m, port, PipeDrop::arp);
  std::uint8_t* a = frame(m) + kEtherHdr;
  if (rd16(a) != 1 || rd16(a + 2) != kTypeIpv4 || a[4] != 6 || a[5] != 4 || rd16(a + 6) != 1)
    return drop(m, port, PipeDrop::arp);
  const PortInfo& pi = dp_.ports()[port];
  const std::uint8_t* target = a + 24;
  bool ours = false;
  if (pi.exception) {
    // The host kernel resolving any next hop: answer for all (proxy ARP),
    // except its own addresses (gratuitous ARP, duplicate detection).
    ours = std::memcmp(a + 14, target, 4) != 0;
  } else {
    for (const IpPrefix& p : pi.addresses)
      if (p.family() == Family::ipv4 && std::memcmp(p.addr.bytes.data(), target, 4) == 0) ours = true;
  }
  if (!ours) return drop(m, port, PipeDrop::arp);
  const Mac& mine = pi.exception ? kProxyMac : pi.mac;
  Mac requester;
  std::memcpy(requester.data(), a + 8, 6);
  std::uint8_t spa[4], tpa[4];
  std::memcpy(spa, a + 14, 4);
  std::memcpy(tpa, target, 4);
  wr16(a + 6, 2);  // reply
  std::memcpy(a + 8, mine.data(), 6);
  std::memcpy(a + 14, tpa, 4);
  std::memcpy(a + 18, requester.data(), 6);
  std::memcpy(a + 24, spa, 4);
  m->data_len = m->pkt_len = kEtherHdr + 28;
  set_eth(m, requester, mine, kTypeArp);
  queue_tx(m, NextHop{port, requester, mine});
}

void Worker::too_big(rte_mbuf* m, std::uint16_t port, std::uint8_t* ip, std::uint16_t mtu) noexcept {
  // RFC 792 / RFC 1191 "fragmentation needed and DF set", RFC 4443 3.2
  // "packet too big", sent back out of the port the packet came in on, to
  // the MAC it came from. The original packet is dropped and counted.
  const std::uint8_t family = (ip[0] >> 4) == 6 ? 6 : 4;
  const std::uint8_t* me = dp_.fib().port_address(port, family);
  rte_mbuf* r = me != nullptr ? rte_pktmbuf_alloc(pool_) : nullptr;
  if (r != nullptr) {
    const std::uint16_t ilen = static_cast<std::uint16_t>(m->data_len - kEtherHdr);
    std::uint8_t* e = frame(m);
    Mac to, from = dp_.ports()[port].mac;
    std::memcpy(to.data(), e + 6, 6);
    std::uint16_t quote, total;
    if (family == 4) {
      quote = std::min<std::uint16_t>(ilen, static_cast<std::uint16_t>((ip[0] & 0x0f) * 4 + 8));
      total = static_cast<std::uint16_t>(20 + 8 + quote);
    } else {
      quote = std::min<std::uint16_t>(ilen, 1280 - 48);
      total = static_cast<std::uint16_t>(40 + 8 + quote);
    }
    std::uint8_t* o = reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(r, static_cast<std::uint16_t>(kEtherHdr + total)));
    if (o == nullptr) {
      rte_pktmbuf_free(r);
    } else {
      std::memset(o, 0, kEtherHdr + total);
      std::uint8_t* rip = o + kEtherHdr;
      if (family == 4) {
        rip[0] = 0x45;
        wr16(rip + 2, total);
        rip[8] = 64;
        rip[9] = kProtoIcmp;
        std::memcpy(rip + 12, me, 4);
        std::memcpy(rip + 16, ip + 12, 4);
        wr16(rip + 10, fold(sum16(rip, 20)));
        std::uint8_t* ic = rip + 20;
        ic[0] = 3;
        ic[1] = 4;
        wr16(ic + 6, mtu);
        std::memcpy(ic + 8, ip, quote);
        wr16(ic + 2, fold(sum16(ic, 8u + quote)));
      } else {
        rip[0] = 0x60;
        wr16(rip + 4, static_cast<std::uint16_t>(8 + quote));
        rip[6] = kProtoIcmpv6;
        rip[7] = 64;
        std::memcpy(rip + 8, me, 16);
        std::memcpy(rip + 24, ip + 8, 16);
        std::uint8_t* ic = rip + 40;
        ic[0] = 2;
        wr16(ic + 6, mtu);
        std::memcpy(ic + 8, ip, quote);
        std::uint32_t s = sum16(rip + 8, 32);
        s += 8u + quote;
        s += kProtoIcmpv6;
        wr16(ic + 2, fold(sum16(ic, 8u + quote, s)));
      }
      set_eth(r, to, from, family == 6 ? kTypeIpv6 : kTypeIpv4);
      queue_tx(r, NextHop{port, to, from});
    }
  }
  drop(m, port, PipeDrop::mtu);
}

bool Worker::fragment_and_protect(rte_mbuf* m, std::uint16_t port, sad::SaHandle h, std::uint16_t room) noexcept {
  // IPv4 without DF (RFC 791): fragments of at most `room` bytes, each then
  // protected by the SA like any packet (RFC 4301 8.1: fragment before
  // IPsec). Options are copied into every fragment only if flagged; we copy
  // the whole header (no options handling beyond that: rare on IPsec paths).
  std::uint8_t* ip = frame(m) + kEtherHdr;
  const unsigned hl = (ip[0] & 0x0f) * 4u;
  const unsigned tot = rd16(ip + 2);
  const unsigned chunk = ((room - hl) / 8u) * 8u;
  if (chunk == 0) return false;
  const std::uint16_t fo0 = rd16(ip + 6);
  const unsigned base = (fo0 & 0x1fff) * 8u;
  const bool more0 = (fo0 & 0x2000) != 0;
  if ((tot - hl + chunk - 1) / chunk > kMaxFragments) return false;
  rte_mbuf* frags[kMaxFragments];
  unsigned nf = 0;
  for (unsigned off = hl; off < tot; off += chunk) {
    const unsigned plen = std::min(chunk, tot - off);
    rte_mbuf* f = rte_pktmbuf_alloc(pool_);
    std::uint8_t* o = f ? reinterpret_cast<std::uint8_t*>(rte_pktmbuf_append(f, static_cast<std::uint16_t>(kEtherHdr + hl + plen))) : nullptr;
    if (o == nullptr) {
      if (f) rte_pktmbuf_free(f);
      for (unsigned i = 0; i < nf; ++i) rte_pktmbuf_free(frags[i]);
      return false;
    }
    std::memcpy(o, frame(m), kEtherHdr);
    std::uint8_t* fip = o + kEtherHdr;
    std::memcpy(fip, ip, hl);
    std::memcpy(fip + hl, ip + off, plen);
    wr16(fip + 2, static_cast<std::uint16_t>(hl + plen));
    const bool last = off + plen >= tot;
    const unsigned fo = (base + off - hl) / 8u;
    wr16(fip + 6, static_cast<std::uint16_t>(fo | ((!last || more0) ? 0x2000 : 0)));
    fip[10] = fip[11] = 0;
    wr16(fip + 10, fold(sum16(fip, hl)));
    f->port = port;
    frags[nf++] = f;
  }
  rte_pktmbuf_free(m);
  for (unsigned i = 0; i < nf; ++i) {
    to_sa(frags[i], port, h);
    if (n_esp_ >= kBurst) run_esp(0);
  }
  return true;
}

}  // namespace cygnet::dp::app
