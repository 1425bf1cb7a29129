// cygnet-dp's tables and packet pipeline (docs/dataplane.md).
//
//   Dataplane  the main lcore's side: ports, static routes and neighbours,
//              the SA store, SAD and SPD. It applies the changes that come
//              over the shm rings (or from the config file) as all-or-nothing
//              batches and publishes them to the workers with RCU; it drains
//              the workers' events (ACQUIRE, expiry, NAT change) for the
//              shm clients. It is the ShmServer's Handler.
//   Worker     one per worker lcore: rx burst on its queue of every port,
//              classify, SPD (through its flow cache) or SAD, hand a packet
//              to the core that owns its SA, ESP in/out a run of packets of
//              one SA at a time, route, tx burst.
//
// Every SA has one owner worker, which alone runs it: its sequence numbers,
// replay window and counters are written by that core only (DESIGN.md).
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <boost/lockfree/spsc_queue.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "cp/dp_config.h"
#include "dp/app/drops.h"
#include "dp/esp/esp.h"
#include "dp/rcu.h"
#include "dp/sad/sad.h"
#include "dp/spd/spd.h"
#include "shared/shm/server.h"

namespace cygnet::dp::app {

inline constexpr unsigned kMaxWorkers = 16;
inline constexpr std::uint16_t kBurst = 32;
// How many SAs ahead of the one being processed a worker prefetches (SA state
// and keys, about 9 lines each). Chosen with esp_bench's paired
// BM_EspManySasPrefetchDistance (docs/benchmarks.md, "The SA prefetch was
// compiled away"): 4 and 8 within 2 % of each other, 16 slower.
inline constexpr unsigned kSaPrefetchAhead = 8;
inline constexpr std::size_t kMaxPorts = cfg::kMaxPorts;
inline constexpr std::uint16_t kNoPort = 0xffff;
inline constexpr std::uint16_t kEtherHdr = 14;

static_assert(kDropReasonCount <= shm::kMaxDropCounters, "SA drop reasons must fit the counters event");

using Mac = std::array<std::uint8_t, 6>;

// A port as the pipeline sees it; index = position in the config (the
// exception port, if any, comes last).
struct PortInfo {
  std::string name;
  std::uint16_t dpdk_id = 0;
  bool protected_side = true;
  bool exception = false;  // the tap towards the host kernel
  Mac mac{};
  std::uint16_t mtu = 1500;
  std::vector<IpPrefix> addresses;
};

// Where a packet goes next: the port and both MACs of the Ethernet header.
struct NextHop {
  std::uint16_t port = kNoPort;
  Mac dst{};
  Mac src{};
};

// Static routes and neighbours from the config, plus the connected prefixes
// of the ports' addresses. Built once, read-only afterwards (workers read it
// without synchronisation). Longest prefix wins; a linear scan over the
// routes sorted by length, which is fine for the tens of routes a
// concentrator's config holds (a large table would take rte_fib).
class Fib {
 public:
  static Result<Fib> build(const cfg::DpConfig& cfg, const std::vector<PortInfo>& ports);
  // family 4: dst points at 4 bytes; 6: at 16. Nullptr with the reason.
  const NextHop* lookup(std::uint8_t family, const std::uint8_t* dst, PipeDrop& why) const noexcept;
  // One of the gateway's own addresses?
  bool is_local(std::uint8_t family, const std::uint8_t* a) const noexcept;
  // The port's address of that family (the source of ICMP errors), or null.
  const std::uint8_t* port_address(std::uint16_t port, std::uint8_t family) const noexcept;

 private:
  struct Route {
    std::uint8_t family = 4;
    std::uint8_t len = 0;
    std::array<std::uint8_t, 16> net{};
    std::uint16_t port = kNoPort;
    bool on_link = false;
    NextHop via;  // resolved when !on_link (port == kNoPort: no neighbour)
  };
  struct Neigh {
    std::uint16_t port;
    std::uint8_t family;
    std::array<std::uint8_t, 16> ip;
    NextHop hop;
  };
  std::vector<Route> routes_;
  std::vector<Neigh> neigh_;
  std::vector<std::uint32_t> local4_;                 // the gateway's addresses, as loaded from the packet
  std::vector<std::array<std::uint64_t, 2>> local6_;
  std::vector<std::array<std::array<std::uint8_t, 16>, 2>> port_addr_;  // [port][v4, v6]
  std::vector<std::array<bool, 2>> port_has_;
};

// One SA's slot in the store, indexed by its handle. The main lcore fills the
// cold fields, then publishes `sa` with release; workers load it with
// acquire. The owner-state fields are written by the owner core only.
struct alignas(64) SaSlot {
  std::atomic<esp::EspSa*> sa{nullptr};
  std::uint16_t owner = 0;         // worker index
  std::uint8_t dir = 0;            // Direction
  std::uint8_t family = 4;         // outer family
  std::uint32_t reqid = 0;
  std::uint32_t in_slot = 0;       // inbound: the SA set slot of its reqid (inner policy check)
  NextHop out_hop;                 // outbound: towards the outer destination (port kNoPort: none)
  std::atomic<std::uint32_t> gen{0};  // bumped at every install: a handed-off packet carries it
  std::uint16_t overhead = 0;      // outbound: bytes ESP adds before padding
  std::uint16_t out_mtu = 0xffff;  // outbound: MTU of the port towards the peer (0xffff: no route)
  std::uint8_t block = 4;          // outbound: padding alignment
  bool tunnel = true;
  bool encap = false;
  std::uint16_t encap_dport = 0;   // outbound: the peer's port (host order)
  std::array<std::uint8_t, 16> peer{};  // inbound: the configured outer source
  // ---- owner-core state ----
  bool soft_sent = false, hard_sent = false, seq_sent = false;
  // Inbound ESP-in-UDP: where the peer's packets come from (starts as the
  // configured peer and source port); a verified packet from elsewhere is a
  // NAT mapping change (RFC 3948 / RFC 7296 2.23), reported once per change.
  std::array<std::uint8_t, 16> nat_addr{};
  std::uint16_t nat_port = 0;
};

// What a worker tells the main lcore (through an SPSC queue per worker).
struct WorkerEvent {
  enum class Kind : std::uint8_t { acquire, soft, hard, seq, nat };
  Kind kind = Kind::acquire;
  sad::SaHandle sa = sad::kNoSa;
  std::uint32_t reqid = 0;
  std::uint32_t policy = 0;
  spd::FlowTuple flow{};       // acquire
  std::uint64_t bytes = 0;     // expiry
  std::uint64_t packets = 0;
  std::array<std::uint8_t, 16> addr{};  // nat: new source address and port
  std::uint16_t port = 0;
  std::array<std::uint8_t, 16> old_addr{};  // nat: the mapping before
  std::uint16_t old_port = 0;
};
using EventQueue = boost::lockfree::spsc_queue<WorkerEvent, boost::lockfree::capacity<4096>>;

struct alignas(64) PortCounters {
  std::uint64_t rx_packets = 0, rx_bytes = 0;
  std::uint64_t tx_packets = 0, tx_bytes = 0;
  std::array<std::uint64_t, kPipeDropCount> drops{};
};

// Sums for reading (telemetry, cygnetctl).
struct PortTotals {
  std::uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
  std::array<std::uint64_t, kPipeDropCount> drops{};
};

class Worker;

class Dataplane final : public shm::Handler {
 public:
  struct Options {
    unsigned workers = 1;
    std::uint32_t max_sas = 1u << 20;
    std::uint32_t max_policies = 1u << 17;
    std::uint32_t flow_cache_entries = 65536;
    std::uint32_t handoff_ring = 1024;
    spd::AcquireLimit acquire;
  };

  // mgr: the main lcore's IPsec-MB manager (key expansion when SAs are built).
  static Result<std::unique_ptr<Dataplane>> create(const cfg::DpConfig& cfg, std::vector<PortInfo> ports,
                                                   const Options& opt, IMB_MGR* mgr);
  ~Dataplane() override;

  // ---- main lcore ----
  shm::Verdict apply(std::span<const shm::Change> changes) override;
  shm::Verdict counters(const shm::CountersQuery& q, std::vector<shm::SaCounters>& out,
                        std::uint32_t& next_cursor) override;
  void client_attached(unsigned slot, const shm::Hello& hello) override;
  void client_gone(unsigned slot, std::string_view why) override;
  // The config file's static SAs and policies, as one batch.
  Result<void> load_statics(const cfg::StaticConfig& s);
  // Workers' events as shm events; RCU reclamation.
  std::size_t drain_events(std::vector<shm::EventBody>& out);
  void housekeeping();

  // ---- read by workers ----
  const std::vector<PortInfo>& ports() const noexcept { return ports_; }
  const Fib& fib() const noexcept { return fib_; }
  rcu::Qsbr& qsbr() noexcept { return qsbr_; }
  const spd::Spd& spd() const noexcept { return *spd_; }
  const sad::InboundSad& inbound() const noexcept { return *in_sad_; }
  const sad::OutboundSad& outbound() const noexcept { return *out_sad_; }
  SaSlot& slot(sad::SaHandle h) noexcept { return slots_[h]; }
  std::uint32_t max_sas() const noexcept { return opt_.max_sas; }
  unsigned workers() const noexcept { return opt_.workers; }
  const Options& options() const noexcept { return opt_; }
  rte_ring* handoff(unsigned from, unsigned to) noexcept { return handoff_[from * kMaxWorkers + to]; }
  EventQueue& events(unsigned worker) noexcept { return *events_[worker]; }
  PortCounters* port_counters(unsigned worker) noexcept { return counters_[worker].get(); }

  // ---- readers off the hot path (telemetry thread, main lcore) ----
  // Held by apply() and by readers of the SA list.
  std::mutex& mutex() noexcept { return mu_; }
  struct SaView {
    sad::SaHandle handle;
    SaConfig cfg;  // keys wiped
    unsigned owner;
    esp::SaCounters counters;
    std::uint64_t next_seq;
  };
  std::vector<SaView> list_sas(std::size_t cursor, std::size_t max, std::size_t& next) const;
  std::vector<Policy> list_policies() const;
  PortTotals port_totals(std::uint16_t port) const;
  std::size_t sa_count() const;

  // Workers register here so the main lcore can read their SPD statistics.
  void attach_worker(unsigned index, Worker* w) noexcept { workers_[index] = w; }
  const Worker* worker(unsigned index) const noexcept { return workers_[index]; }

 private:
  Dataplane(std::vector<PortInfo> ports, Fib fib, const Options& opt, IMB_MGR* mgr);

  struct Key {
    std::uint32_t spi;
    std::uint8_t dir;
    IpAddress dst;
    auto operator<=>(const Key&) const = default;
  };
  static Key key_of(const SaConfig& c) noexcept { return Key{c.spi, static_cast<std::uint8_t>(c.dir), c.dst}; }
  static Key key_of(const shm::SaKey& k) noexcept { return Key{k.spi, static_cast<std::uint8_t>(k.dir), k.dst}; }

  struct Installed {
    SaConfig cfg;  // keys wiped
    sad::SaHandle handle;
  };

  shm::Verdict apply_locked(std::span<const shm::Change> changes);
  Result<sad::SaHandle> install(const SaConfig& c, std::unique_ptr<esp::EspSa> sa);
  void uninstall(const Key& k);
  Result<void> refresh_out_set(std::uint32_t reqid);
  shm::SaCounters counters_of(const Installed& in) const;

  std::vector<PortInfo> ports_;
  Fib fib_;
  Options opt_;
  IMB_MGR* mgr_;
  rcu::Qsbr qsbr_;
  rcu::Retirer retirer_;
  std::unique_ptr<sad::InboundSad> in_sad_;
  std::unique_ptr<sad::OutboundSad> out_sad_;
  std::unique_ptr<spd::Spd> spd_;
  std::unique_ptr<SaSlot[]> slots_;
  std::vector<sad::SaHandle> free_handles_;
  std::map<Key, Installed> sas_;
  std::map<std::uint32_t, std::vector<sad::SaHandle>> out_by_reqid_;  // in install order
  std::vector<std::unique_ptr<EventQueue>> events_;
  std::vector<std::unique_ptr<PortCounters[]>> counters_;
  std::array<rte_ring*, kMaxWorkers * kMaxWorkers> handoff_{};
  std::array<Worker*, kMaxWorkers> workers_{};
  unsigned next_in_owner_ = 0;
  unsigned next_out_owner_ = 0;
  mutable std::mutex mu_;
};

// Sends a burst on a port's queue; returns how many were taken. Normally
// rte_eth_tx_burst; tests put a capture here (one call per burst).
using TxFn = std::uint16_t (*)(void* ctx, std::uint16_t dpdk_port, std::uint16_t queue, rte_mbuf** m,
                               std::uint16_t n);

class Worker {
 public:
  // index: 0..workers-1 (the SA owner id and the queue on every port).
  // mgr: this worker's own IPsec-MB manager (one per lcore).
  Worker(Dataplane& dp, unsigned index, rte_mempool* pool, IMB_MGR* mgr);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void set_tx(TxFn fn, void* ctx) noexcept {
    tx_fn_ = fn;
    tx_ctx_ = ctx;
  }
  // One turn of the loop: rx on every port, handoff rings, tx, quiescent.
  void poll(std::uint64_t now_ns) noexcept;
  // The body of poll() for a burst of frames received on `port` (tests call
  // it directly), then flush() to send what it queued.
  void process(std::uint16_t port, rte_mbuf** m, std::uint16_t n, std::uint64_t now_ns) noexcept;
  void drain_handoff(std::uint64_t now_ns) noexcept;
  void flush() noexcept;

  unsigned index() const noexcept { return index_; }
  const spd::SpdLookup& spd_out() const noexcept { return out_; }
  const spd::SpdLookup& spd_in() const noexcept { return in_; }

 private:
  struct EspItem {
    rte_mbuf* m;
    sad::SaHandle sa;
    std::uint16_t rx_port;
    std::uint16_t frame_off;  // data_off of the frame as received (the outer headers stay there)
  };

  void drop(rte_mbuf* m, std::uint16_t port, PipeDrop why) noexcept;
  void flush_handoff(unsigned to) noexcept;
  void flush_handoff() noexcept;
  void queue_tx(rte_mbuf* m, const NextHop& hop) noexcept;
  void flush_port(std::uint16_t port) noexcept;
  void classify(rte_mbuf* m, std::uint16_t port, std::uint64_t now_ns) noexcept;
  void outbound_clear(rte_mbuf* m, std::uint16_t port, std::uint8_t* ip, std::uint16_t len,
                      std::uint64_t now_ns) noexcept;
  // Protected-side cleartext waits in out_batch_ for one burst SPD lookup.
  void defer_outbound(rte_mbuf* m, std::uint16_t port, std::uint8_t* ip, std::uint16_t len,
                      std::uint64_t now_ns) noexcept;
  void run_outbound(std::uint64_t now_ns) noexcept;
  // ESP to us waits in in_batch_: SAD lookups for the burst in steps (SAD
  // buckets prefetched as packets are classified, then the SA slots), then
  // to_sa.
  void defer_inbound(rte_mbuf* m, std::uint16_t port, std::uint32_t spi, std::uint8_t family,
                     const std::uint8_t* dst, std::uint64_t now_ns) noexcept;
  void run_inbound(std::uint64_t now_ns) noexcept;
  // h: the SA pick() chose for a protect decision (kNoSa otherwise).
  void act_outbound(rte_mbuf* m, std::uint16_t port, std::uint8_t* ip, std::uint16_t len, const spd::FlowTuple& t,
                    const spd::SpdLookup::Verdict& v, sad::SaHandle h, std::uint64_t now_ns) noexcept;
  // This core's SA from an outbound SA set slot (kNoSa: the set is empty).
  sad::SaHandle pick(std::uint32_t set_slot) noexcept;
  // local: for the gateway itself (a bypass sends it to the exception port).
  void inbound_clear(rte_mbuf* m, std::uint16_t port, std::uint8_t* ip, std::uint16_t len, std::uint64_t now_ns,
                     bool local) noexcept;
  void to_sa(rte_mbuf* m, std::uint16_t port, sad::SaHandle h) noexcept;
  void forward(rte_mbuf* m, std::uint16_t port, std::uint8_t* ip, std::uint16_t len, bool decrement) noexcept;
  void arp(rte_mbuf* m, std::uint16_t port) noexcept;
  void to_exception(rte_mbuf* m, std::uint16_t port) noexcept;
  void too_big(rte_mbuf* m, std::uint16_t port, std::uint8_t* ip, std::uint16_t mtu) noexcept;
  bool fragment_and_protect(rte_mbuf* m, std::uint16_t port, sad::SaHandle h, std::uint16_t room) noexcept;
  void run_esp(std::uint64_t now_ns) noexcept;
  void after_sa(SaSlot& s, esp::EspSa& sa, sad::SaHandle h) noexcept;
  // Decrypted packets wait in post_ for one burst SPD lookup (the inner
  // policy check), then run_post routes them.
  void post_inbound(rte_mbuf* m, std::uint16_t port, const SaSlot& s) noexcept;
  void run_post(std::uint64_t now_ns) noexcept;
  void check_nat(const EspItem& it, SaSlot& s, sad::SaHandle h) noexcept;
  void event(const WorkerEvent& e) noexcept;
  void acquire(const spd::FlowTuple& t, const spd::Decision& d) noexcept;

  Dataplane& dp_;
  const unsigned index_;
  rte_mempool* pool_;
  PortCounters* pc_;
  spd::SpdLookup out_;
  spd::SpdLookup in_;
  IMB_MGR* mgr_;
  // The GCM key lines a short packet reads on mgr_'s code path
  // (esp::gcm_short_packet_lines): what EspSa::prefetch names.
  const std::uint16_t gcm_lines_;
  TxFn tx_fn_;
  void* tx_ctx_ = nullptr;
  std::uint16_t exception_port_ = kNoPort;

  std::array<EspItem, kBurst * 2> esp_{};
  std::uint16_t n_esp_ = 0;
  struct OutItem {
    spd::FlowTuple t;
    rte_mbuf* m;
    std::uint8_t* ip;
    std::uint16_t len;
    std::uint16_t port;
  };
  std::array<OutItem, kBurst> out_batch_{};
  std::uint16_t n_out_ = 0;
  struct InItem {
    rte_mbuf* m;
    const std::uint8_t* dst;  // the outer destination, in the packet
    std::uint32_t spi;
    std::uint16_t port;
    std::uint8_t family;
  };
  std::array<InItem, kBurst> in_batch_{};
  std::uint16_t n_in_ = 0;
  std::uint32_t prefetched_spi_ = 0;  // the SPI whose SAD bucket defer_inbound prefetched last (0: none)
  struct PostItem {
    spd::FlowTuple t;
    rte_mbuf* m;
    std::uint32_t in_slot;  // the SA's inbound SA set slot: the policy must use it
    std::uint16_t port;
  };
  std::array<PostItem, kBurst * 2> post_{};  // run_esp handles up to kBurst * 2 packets
  std::uint16_t n_post_ = 0;
  std::uint32_t pick_slot_ = ~std::uint32_t{0};  // the last SA set slot picked from in this burst
  sad::SaHandle pick_sa_ = sad::kNoSa;
  struct TxQueue {
    std::array<rte_mbuf*, kBurst> m;
    std::uint16_t n = 0;
  };
  std::array<TxQueue, kMaxPorts> tx_{};
  std::array<rte_mbuf*, kBurst> handoff_buf_{};
  // Packets for other cores' SAs, per owner, sent at the end of process()
  // (or when kBurst wait) with one enqueue each.
  struct HandoffQueue {
    std::array<rte_mbuf*, kBurst> m;
    std::uint16_t n = 0;
  };
  std::array<HandoffQueue, kMaxWorkers> handoff_out_{};
  std::uint8_t handoff_pending_ = 0;
};

}  // namespace cygnet::dp::app
