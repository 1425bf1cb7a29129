// cygnet-dp: the DPDK dataplane process (docs/dataplane.md).
//
//   cygnet-dp [-c FILE] [--check] [--stats SECONDS] [-- EAL-ARGS...]
//
// (--lcores among the EAL-ARGS replaces the -l derived from the config.)
// Without -c it runs the embedded default config (the two-site demo). The
// EAL arguments are derived from the config (cores, devices, a file prefix
// per shm instance); anything after "--" is appended (e.g. --no-huge -m 512).
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_telemetry.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "cp/dp_config.h"
#include "cygnet_config.h"
#include "dp/app/dataplane.h"
#include "dp/crypto/imb_mgr.h"
#include "shared/shm/server.h"

namespace {

using namespace cygnet;
using namespace cygnet::dp::app;

std::atomic<bool> g_stop{false};
std::atomic<bool> g_workers_stop{false};
Dataplane* g_dp = nullptr;  // for the telemetry callbacks (read under its mutex)

void on_signal(int) { g_stop.store(true); }

struct Args {
  std::string config;
  bool check = false;
  unsigned stats = 0;
  std::vector<std::string> eal_extra;
};

int usage(const char* msg) {
  if (msg != nullptr) std::fprintf(stderr, "cygnet-dp: %s\n", msg);
  std::fprintf(stderr,
               "usage: cygnet-dp [-c FILE] [--check] [--stats SECONDS] [-- EAL-ARGS...]\n"
               "  -c, --config FILE  dataplane config (default: the embedded two-site demo config)\n"
               "  --check            load and validate the config, print a summary, exit\n"
               "  --stats SECONDS    print port counters every SECONDS\n");
  return 2;
}

std::optional<Args> parse(int argc, char** argv, int& rc) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--") {
      for (++i; i < argc; ++i) a.eal_extra.emplace_back(argv[i]);
      break;
    }
    if ((s == "-c" || s == "--config") && i + 1 < argc) {
      a.config = argv[++i];
    } else if (s == "--check") {
      a.check = true;
    } else if (s == "--stats" && i + 1 < argc) {
      char* end = nullptr;
      const unsigned long v = std::strtoul(argv[++i], &end, 10);
      if (end == argv[i] || *end != '\0' || v == 0 || v > 3600) {
        rc = usage("--stats: expected seconds from 1 to 3600");
        return std::nullopt;
      }
      a.stats = static_cast<unsigned>(v);
    } else if (s == "-h" || s == "--help") {
      rc = usage(nullptr);
      return std::nullopt;
    } else {
      rc = usage(("unknown argument '" + s + "'").c_str());
      return std::nullopt;
    }
  }
  return a;
}

bool is_pci(std::string_view dev) { return dev.substr(0, 4) != "net_"; }

std::vector<std::string> eal_args(const cfg::DpConfig& c, const Args& a) {
  std::vector<std::string> v{"cygnet-dp"};
  std::string lcores = std::to_string(c.main_core);
  for (unsigned w : c.worker_cores) lcores += "," + std::to_string(w);
  // An explicit --lcores after "--" maps the config's lcore ids onto CPUs
  // (e.g. two workers sharing a CPU on a small machine): then no -l.
  bool mapped = false;
  for (const auto& x : a.eal_extra) mapped |= x == "--lcores" || x.rfind("--lcores=", 0) == 0;
  if (!mapped) v.insert(v.end(), {"-l", lcores});
  v.insert(v.end(), {"--main-lcore", std::to_string(c.main_core), "--file-prefix", "cygnet-" + c.shm_name,
                     "--log-level", "lib.eal:notice"});
  bool pci = false;
  for (const auto& p : c.ports) {
    if (is_pci(p.device)) {
      v.insert(v.end(), {"-a", p.device});
      pci = true;
    } else {
      v.insert(v.end(), {"--vdev", p.device});
    }
  }
  if (!c.exception_port.empty()) v.insert(v.end(), {"--vdev", c.exception_port});
  if (!pci) v.emplace_back("--no-pci");
  v.insert(v.end(), a.eal_extra.begin(), a.eal_extra.end());
  return v;
}

Result<void> setup_port(PortInfo& p, const std::string& device, unsigned queues, rte_mempool* pool,
                        const cfg::DpConfig& c, const std::optional<cfg::MacAddress>& mac) {
  const std::string name(cfg::device_name(device));
  std::uint16_t id = 0;
  if (rte_eth_dev_get_port_by_name(name.c_str(), &id) != 0) {
    // PCI devices are named by their address as given.
    if (rte_eth_dev_get_port_by_name(device.c_str(), &id) != 0)
      return make_error("port " + p.name + ": no DPDK device '" + name + "' (did the EAL probe it?)");
  }
  p.dpdk_id = id;
  rte_eth_dev_info info{};
  if (int r = rte_eth_dev_info_get(id, &info); r != 0)
    return make_error("port " + p.name + ": rte_eth_dev_info_get: " + rte_strerror(-r));
  if (info.max_rx_queues < queues || info.max_tx_queues < queues)
    return make_error("port " + p.name + " (" + name + "): " + std::to_string(queues) +
                      " workers need as many rx and tx queues; the device has " + std::to_string(info.max_rx_queues) +
                      "/" + std::to_string(info.max_tx_queues) + " (for net_af_packet add qpairs=" +
                      std::to_string(queues) + " to the device string)");
  rte_eth_conf conf{};
  if (int r = rte_eth_dev_configure(id, static_cast<std::uint16_t>(queues), static_cast<std::uint16_t>(queues), &conf);
      r != 0)
    return make_error("port " + p.name + ": configure: " + rte_strerror(-r));
  std::uint16_t rxd = static_cast<std::uint16_t>(c.rx_ring), txd = static_cast<std::uint16_t>(c.tx_ring);
  rte_eth_dev_adjust_nb_rx_tx_desc(id, &rxd, &txd);
  for (unsigned q = 0; q < queues; ++q) {
    if (int r = rte_eth_rx_queue_setup(id, static_cast<std::uint16_t>(q), rxd, rte_eth_dev_socket_id(id), nullptr, pool);
        r != 0)
      return make_error("port " + p.name + ": rx queue " + std::to_string(q) + ": " + rte_strerror(-r));
    if (int r = rte_eth_tx_queue_setup(id, static_cast<std::uint16_t>(q), txd, rte_eth_dev_socket_id(id), nullptr);
        r != 0)
      return make_error("port " + p.name + ": tx queue " + std::to_string(q) + ": " + rte_strerror(-r));
  }
  if (mac) {
    rte_ether_addr a;
    std::memcpy(a.addr_bytes, mac->data(), 6);
    if (int r = rte_eth_dev_default_mac_addr_set(id, &a); r != 0)
      return make_error("port " + p.name + ": cannot set MAC " + cfg::mac_to_string(*mac) + ": " + rte_strerror(-r));
  }
  if (int r = rte_eth_dev_start(id); r != 0) return make_error("port " + p.name + ": start: " + rte_strerror(-r));
  rte_eth_promiscuous_enable(id);  // not all vdevs support it; harmless then
  rte_ether_addr a{};
  rte_eth_macaddr_get(id, &a);
  std::memcpy(p.mac.data(), a.addr_bytes, 6);
  return {};
}

struct WorkerCtx {
  Dataplane* dp;
  unsigned index;
  rte_mempool* pool;
  IMB_MGR* mgr;
};

int worker_main(void* arg) {
  auto* ctx = static_cast<WorkerCtx*>(arg);
  Worker w(*ctx->dp, ctx->index, ctx->pool, ctx->mgr);
  const std::uint64_t hz = rte_get_tsc_hz();
  while (!g_workers_stop.load(std::memory_order_relaxed)) {
    const std::uint64_t now = rte_get_tsc_cycles();
    w.poll(static_cast<std::uint64_t>(static_cast<double>(now) * 1e9 / static_cast<double>(hz)));
  }
  return 0;
}

// ---- telemetry (/cygnet/...) ----

// DPDK 22.11 telemetry nests only arrays of plain values, so every object
// is its own query: "/cygnet/sa,N" is the N-th SA, with "total" in every
// reply; an index past the end gives just {"total": T}.
bool index_param(const char* params, std::size_t& i) {
  i = 0;
  if (params == nullptr || *params == '\0') return true;
  char* end = nullptr;
  i = std::strtoul(params, &end, 10);
  return *end == '\0';
}

int tel_port(const char*, const char* params, rte_tel_data* d) {
  std::size_t i = 0;
  if (g_dp == nullptr || !index_param(params, i)) return -EINVAL;
  std::lock_guard<std::mutex> g(g_dp->mutex());
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_u64(d, "total", g_dp->ports().size());
  if (i >= g_dp->ports().size()) return 0;
  const PortInfo& p = g_dp->ports()[i];
  const PortTotals t = g_dp->port_totals(static_cast<std::uint16_t>(i));
  rte_tel_data_add_dict_string(d, "name", p.name.c_str());
  rte_tel_data_add_dict_u64(d, "dpdk_port", p.dpdk_id);
  rte_tel_data_add_dict_string(d, "side", p.exception ? "exception" : p.protected_side ? "protected" : "unprotected");
  char mac[24];
  std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", p.mac[0], p.mac[1], p.mac[2], p.mac[3], p.mac[4],
                p.mac[5]);
  rte_tel_data_add_dict_string(d, "mac", mac);
  rte_tel_data_add_dict_u64(d, "mtu", p.mtu);
  rte_tel_data_add_dict_u64(d, "rx_packets", t.rx_packets);
  rte_tel_data_add_dict_u64(d, "rx_bytes", t.rx_bytes);
  rte_tel_data_add_dict_u64(d, "tx_packets", t.tx_packets);
  rte_tel_data_add_dict_u64(d, "tx_bytes", t.tx_bytes);
  for (std::size_t r = 1; r < kPipeDropCount; ++r)
    rte_tel_data_add_dict_u64(d, ("drop_" + std::string(kPipeDropInfo[r].name)).c_str(), t.drops[r]);
  return 0;
}

int tel_sa(const char*, const char* params, rte_tel_data* d) {
  std::size_t i = 0;
  if (g_dp == nullptr || !index_param(params, i)) return -EINVAL;
  std::lock_guard<std::mutex> g(g_dp->mutex());
  std::size_t next = 0;
  const auto sas = g_dp->list_sas(i, 1, next);
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_u64(d, "total", g_dp->sa_count());
  if (sas.empty()) return 0;
  const auto& s = sas[0];
  rte_tel_data_add_dict_u64(d, "spi", s.cfg.spi);
  rte_tel_data_add_dict_string(d, "dir", direction_name(s.cfg.dir));
  rte_tel_data_add_dict_string(d, "src", s.cfg.src.to_string().c_str());
  rte_tel_data_add_dict_string(d, "dst", s.cfg.dst.to_string().c_str());
  rte_tel_data_add_dict_string(d, "mode", mode_name(s.cfg.mode));
  rte_tel_data_add_dict_u64(d, "reqid", s.cfg.reqid);
  rte_tel_data_add_dict_string(d, "enc", cipher_info(s.cfg.cipher).name);
  rte_tel_data_add_dict_string(d, "integ", integ_info(s.cfg.integ).name);
  rte_tel_data_add_dict_u64(d, "esn", s.cfg.esn);
  rte_tel_data_add_dict_u64(d, "encap", s.cfg.encap.enabled);
  rte_tel_data_add_dict_u64(d, "owner_worker", s.owner);
  rte_tel_data_add_dict_u64(d, "packets", s.counters.packets);
  rte_tel_data_add_dict_u64(d, "bytes", s.counters.bytes);
  rte_tel_data_add_dict_u64(d, "next_seq", s.next_seq);
  for (std::size_t r = 1; r < dp::kDropReasonCount; ++r) {
    if (s.counters.drops.by_reason[r] != 0)
      rte_tel_data_add_dict_u64(d, ("drop_" + std::string(dp::kDropInfo[r].name)).c_str(),
                                s.counters.drops.by_reason[r]);
  }
  return 0;
}

int tel_policy(const char*, const char* params, rte_tel_data* d) {
  std::size_t i = 0;
  if (g_dp == nullptr || !index_param(params, i)) return -EINVAL;
  std::lock_guard<std::mutex> g(g_dp->mutex());
  const auto pol = g_dp->list_policies();
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_u64(d, "total", pol.size());
  if (i >= pol.size()) return 0;
  const Policy& p = pol[i];
  rte_tel_data_add_dict_string(d, "dir", policy_dir_name(p.dir));
  rte_tel_data_add_dict_u64(d, "priority", p.priority);
  rte_tel_data_add_dict_string(d, "action", action_name(p.action));
  rte_tel_data_add_dict_u64(d, "reqid", p.reqid);
  rte_tel_data_add_dict_string(d, "selector", p.sel.to_string().c_str());
  return 0;
}

int tel_core(const char*, const char* params, rte_tel_data* d) {
  std::size_t i = 0;
  if (g_dp == nullptr || !index_param(params, i)) return -EINVAL;
  std::lock_guard<std::mutex> g(g_dp->mutex());
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_u64(d, "total", g_dp->workers());
  if (i >= g_dp->workers()) return 0;
  unsigned idx = 0, lc, lcore = 0;
  RTE_LCORE_FOREACH_WORKER(lc) {
    if (idx++ == i) lcore = lc;
  }
  rte_tel_data_add_dict_u64(d, "worker", i);
  rte_tel_data_add_dict_u64(d, "lcore", lcore);
  if (const Worker* w = g_dp->worker(static_cast<unsigned>(i))) {
    rte_tel_data_add_dict_u64(d, "flow_cache_hits", w->spd_out().hits() + w->spd_in().hits());
    rte_tel_data_add_dict_u64(d, "flow_cache_misses", w->spd_out().misses() + w->spd_in().misses());
    rte_tel_data_add_dict_u64(d, "acquires", w->spd_out().acquires());
    rte_tel_data_add_dict_u64(d, "acquires_limited", w->spd_out().acquires_limited());
  }
  return 0;
}

void print_stats(const Dataplane& dp) {
  for (std::uint16_t i = 0; i < dp.ports().size(); ++i) {
    const PortTotals t = dp.port_totals(i);
    std::printf("port %-8s rx %llu pkts %llu B  tx %llu pkts %llu B", dp.ports()[i].name.c_str(),
                static_cast<unsigned long long>(t.rx_packets), static_cast<unsigned long long>(t.rx_bytes),
                static_cast<unsigned long long>(t.tx_packets), static_cast<unsigned long long>(t.tx_bytes));
    for (std::size_t r = 1; r < kPipeDropCount; ++r)
      if (t.drops[r] != 0)
        std::printf("  %s=%llu", std::string(kPipeDropInfo[r].name).c_str(), static_cast<unsigned long long>(t.drops[r]));
    std::printf("\n");
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  int rc = 0;
  auto args = parse(argc, argv, rc);
  if (!args) return rc;

  auto cfgr = args->config.empty() ? cfg::load_dp_string(cfg::default_dp_config(), "<embedded default config>")
                                   : cfg::load_dp_file(args->config);
  if (!cfgr) {
    std::fprintf(stderr, "cygnet-dp: %s\n", cfgr.error().message.c_str());
    return 1;
  }
  const cfg::DpConfig& c = *cfgr;
  for (const auto& w : c.warnings) std::fprintf(stderr, "cygnet-dp: warning: %s\n", w.c_str());
  if (args->check) {
    std::printf("config ok: %zu ports, %zu routes, %zu neighbours, %zu workers, %zu static SAs, %zu policies, shm %s\n",
                c.ports.size(), c.routes.size(), c.neighbours.size(), c.worker_cores.size(), c.statics.sas.size(),
                c.statics.policies.size(), c.shm_name.c_str());
    return 0;
  }
  if (c.worker_cores.size() > kMaxWorkers) {
    std::fprintf(stderr, "cygnet-dp: at most %u worker cores\n", kMaxWorkers);
    return 1;
  }

  rte_telemetry_register_cmd("/cygnet/port", tel_port, "Cygnet port N: counters and drop reasons. Param: N");
  rte_telemetry_register_cmd("/cygnet/sa", tel_sa, "Cygnet SA N (no keys): algorithms, counters. Param: N");
  rte_telemetry_register_cmd("/cygnet/policy", tel_policy, "Cygnet policy N in evaluation order. Param: N");
  rte_telemetry_register_cmd("/cygnet/core", tel_core, "Cygnet worker N and its flow caches. Param: N");

  std::vector<std::string> eal = eal_args(c, *args);
  std::vector<char*> eargv;
  for (auto& s : eal) eargv.push_back(s.data());
  eargv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(eal.size()), eargv.data()) < 0) {
    std::fprintf(stderr, "cygnet-dp: EAL init failed: %s (hugepages reserved? scripts/hugepages/hugepages.sh reserve)\n",
                 rte_strerror(rte_errno));
    return 1;
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);

  const unsigned workers = static_cast<unsigned>(c.worker_cores.size());
  rte_mempool* pool = rte_pktmbuf_pool_create("cyg_mbufs", c.mbufs, c.mbuf_cache, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                              static_cast<int>(rte_socket_id()));
  if (pool == nullptr) {
    std::fprintf(stderr, "cygnet-dp: mbuf pool of %u: %s\n", c.mbufs, rte_strerror(rte_errno));
    rte_eal_cleanup();
    return 1;
  }
  std::vector<PortInfo> ports;
  auto fail = [&](const std::string& m) {
    std::fprintf(stderr, "cygnet-dp: %s\n", m.c_str());
    for (const auto& p : ports) {
      rte_eth_dev_stop(p.dpdk_id);
      rte_eth_dev_close(p.dpdk_id);
    }
    rte_eal_cleanup();
    return 1;
  };
  for (const auto& pc : c.ports) {
    PortInfo p;
    p.name = pc.name;
    p.protected_side = pc.side == cfg::PortConfig::Side::protected_;
    p.mtu = pc.mtu;
    p.addresses = pc.addresses;
    if (auto r = setup_port(p, pc.device, workers, pool, c, pc.mac); !r) return fail(r.error().message);
    ports.push_back(p);
  }
  if (!c.exception_port.empty()) {
    PortInfo p;
    p.name = "exception";
    p.exception = true;
    if (auto r = setup_port(p, c.exception_port, workers, pool, c, std::nullopt); !r) return fail(r.error().message);
    ports.push_back(p);
  }

  auto main_mgr = dp::ImbManager::create();
  if (!main_mgr) return fail(main_mgr.error().message);
  std::vector<dp::ImbManager> mgrs;
  for (unsigned i = 0; i < workers; ++i) {
    auto m = dp::ImbManager::create();
    if (!m) return fail(m.error().message);
    mgrs.push_back(std::move(*m));
  }
  Dataplane::Options opt;
  opt.workers = workers;
  opt.max_sas = c.max_sas;
  opt.max_policies = c.max_policies;
  opt.flow_cache_entries = c.flow_cache_entries;
  opt.handoff_ring = c.handoff_ring;
  auto dpr = Dataplane::create(c, ports, opt, main_mgr->get());
  if (!dpr) return fail(dpr.error().message);
  std::unique_ptr<Dataplane> dp = std::move(*dpr);
  if (auto r = dp->load_statics(c.statics); !r) return fail(r.error().message);

  auto srv = shm::ShmServer::create(c.shm_name);
  if (!srv) return fail("shm: " + srv.error().message);
  g_dp = dp.get();

  std::vector<WorkerCtx> ctx(workers);
  unsigned idx = 0, lc;
  RTE_LCORE_FOREACH_WORKER(lc) {
    if (idx >= workers) break;
    ctx[idx] = WorkerCtx{dp.get(), idx, pool, mgrs[idx].get()};
    if (int r = rte_eal_remote_launch(worker_main, &ctx[idx], lc); r != 0) {
      g_workers_stop = true;
      rte_eal_mp_wait_lcore();
      return fail("cannot launch worker on lcore " + std::to_string(lc));
    }
    ++idx;
  }
  std::printf("cygnet-dp %s: ready: %zu ports, %u workers, %zu SAs, shm %s, IPsec-MB %s\n", CYGNET_VERSION,
              ports.size(), workers, dp->sa_count(), (*srv)->name().c_str(), main_mgr->arch_description().c_str());
  for (const auto& p : dp->ports())
    std::printf("  port %s: dpdk %u, %s, mac %02x:%02x:%02x:%02x:%02x:%02x\n", p.name.c_str(), p.dpdk_id,
                p.exception ? "exception" : p.protected_side ? "protected" : "unprotected", p.mac[0], p.mac[1],
                p.mac[2], p.mac[3], p.mac[4], p.mac[5]);
  std::fflush(stdout);

  std::vector<shm::EventBody> events;
  std::uint64_t last_hk = 0, last_stats = rte_get_tsc_cycles();
  const std::uint64_t hz = rte_get_tsc_hz();
  while (!g_stop.load()) {
    std::size_t work = (*srv)->poll(*dp);
    events.clear();
    work += dp->drain_events(events);
    for (const auto& e : events) (*srv)->broadcast(e);
    const std::uint64_t now = rte_get_tsc_cycles();
    if (now - last_hk > hz / 100) {
      dp->housekeeping();
      last_hk = now;
    }
    if (args->stats != 0 && now - last_stats > hz * args->stats) {
      print_stats(*dp);
      last_stats = now;
    }
    if (work == 0) usleep(200);
  }

  std::printf("cygnet-dp: stopping\n");
  g_workers_stop = true;
  rte_eal_mp_wait_lcore();
  print_stats(*dp);
  (*srv)->close();
  g_dp = nullptr;
  for (const auto& p : dp->ports()) {
    rte_eth_dev_stop(p.dpdk_id);
    rte_eth_dev_close(p.dpdk_id);
  }
  dp.reset();
  mgrs.clear();
  rte_eal_cleanup();
  std::printf("cygnet-dp: stopped\n");
  return 0;
}
