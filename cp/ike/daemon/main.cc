// cygnet-ike: the IKEv2 daemon (docs/ike.md).
//
//   cygnet-ike -c conf/ike-net-to-net.conf [--secrets FILE] [--backend shm|log|null]
//              [--control PATH] [--state FILE] [--log-keys] [--quiet] [--check]
#include <csignal>
#include <cstring>
#include <iostream>
#include <string>

#include "cp/ike/config/config.h"
#include "cp/ike/daemon/daemon.h"

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

int usage(std::ostream& o, int rc) {
  o << "usage: cygnet-ike -c CONFIG [--secrets FILE] [--backend shm|log|null] [--control PATH] [--state FILE]\n"
       "                  [--log-keys] [--quiet] [--check]\n"
       "  -c CONFIG        connections and settings (docs/ike-config.md)\n"
       "  --secrets FILE   the PSK file (mode 0600), instead of the config's ike.secrets\n"
       "  --backend shm    install Child SAs into cygnet-dp over shared memory (default)\n"
       "  --backend log    install nothing; print each Child SA (tests, dry runs)\n"
       "  --backend null   install nothing, print nothing (benchmarks)\n"
       "  --control PATH   the control socket for cygnetctl (default /run/cygnet/ike-INSTANCE.sock)\n"
       "  --state FILE     what it installed into cygnet-dp, to remove after a crash\n"
       "                   (default /run/cygnet/ike-INSTANCE.state)\n"
       "  --log-keys       DEBUG ONLY: print negotiated ESP keys with --backend log\n"
       "  --quiet          no per-IKE-SA log lines (benchmarks; counters: cygnetctl ike stats)\n"
       "  --check          load and check the config, then exit\n";
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  cygnet::ike::DaemonOptions opt;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    if ((a == "-c" || a == "--config") && value(opt.config_path)) continue;
    if (a == "--secrets" && value(opt.secrets_path)) continue;
    if (a == "--backend" && value(opt.backend)) continue;
    if (a == "--control" && value(opt.control_path)) continue;
    if (a == "--state" && value(opt.state_path)) continue;
    if (a == "--log-keys") {
      opt.log_keys = true;
      continue;
    }
    if (a == "--quiet") {
      opt.quiet = true;
      continue;
    }
    if (a == "--check") {
      check = true;
      continue;
    }
    if (a == "-h" || a == "--help") return usage(std::cout, 0);
    std::cerr << "cygnet-ike: unknown or incomplete argument '" << a << "'\n";
    return usage(std::cerr, 2);
  }
  if (opt.config_path.empty()) return usage(std::cerr, 2);
  if (opt.log_keys && opt.backend != "log") {
    std::cerr << "cygnet-ike: --log-keys only goes with --backend log\n";
    return 2;
  }
  if (check) {
    cygnet::ike::cfg::IkeLoadOptions lo;
    lo.secrets_path = opt.secrets_path;
    auto c = cygnet::ike::cfg::load_ike_file(opt.config_path, lo);
    if (!c) {
      std::cerr << "cygnet-ike: " << c.error().message << "\n";
      return 2;
    }
    std::cout << opt.config_path << ": " << c->connections.size() << " connections, " << c->psks.size()
              << " PSKs: ok\n";
    return 0;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  return cygnet::ike::run_daemon(opt, &g_stop);
}
