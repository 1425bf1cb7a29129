// cygnet-ike's process: UDP sockets on 500 and 4500 (IPv4 and IPv6), the
// engine, a backend, and a control socket for cygnetctl (docs/ike.md).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cp/ike/engine/engine.h"

namespace cygnet::ike {

struct DaemonOptions {
  std::string config_path;
  std::string secrets_path;  // overrides the config's ike.secrets
  std::string backend = "shm";  // shm (cygnet-dp) | log (print Child SAs, install nothing) | null (install nothing, silently)
  std::string control_path;     // default /run/cygnet/ike-<instance>.sock
  std::string state_path;       // default /run/cygnet/ike-<instance>.state (shm backend; docs/ike.md "Restarts")
  bool log_keys = false;        // debug: print negotiated keys (never by default)
  bool verbose = false;
  bool quiet = false;           // drop the engine's log lines (several per IKE SA): benchmarks
};

// What the control socket acts on.
struct Control {
  Engine& engine;
  Backend* backend = nullptr;  // the dataplane's SA counters in "list"
  // Reads the configuration again (files named at start), for "load".
  std::function<Result<IkeConfig>()> load;
};

// The control protocol: one line in ("initiate NAME", "terminate NAME",
// "liveness NAME", "rekey NAME", "rekey-ike NAME", "child NAME", "list",
// "list json", "stats", "load"), the answer out:
// "ok" or "error: ..." first, then the text; the server closes the
// connection.
std::string control_answer(Control& ctl, std::string_view line, std::uint64_t now_ms);

// Runs until *stop is set (SIGTERM/SIGINT). Returns the exit status.
int run_daemon(const DaemonOptions& opt, std::atomic<bool>* stop);

}  // namespace cygnet::ike
