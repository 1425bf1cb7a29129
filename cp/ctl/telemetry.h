// cygnetctl's reader of cygnet-dp's DPDK telemetry socket (docs/cli.md):
// the SA and policy lists, ports and cores, which the shm protocol does not
// carry. DPDK telemetry v2: a SOCK_SEQPACKET unix socket that greets with a
// JSON object, then answers each "/command,params" with one JSON object.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "shared/json.h"
#include "shared/result.h"

namespace cygnet::ctl {

// The socket of instance NAME: $CYGNET_TELEMETRY_SOCKET if set, else DPDK's
// runtime directory for file prefix "cygnet-NAME" (/var/run/dpdk/... for
// root, $XDG_RUNTIME_DIR/dpdk/... or /tmp/dpdk/... otherwise).
std::string telemetry_socket(std::string_view instance);

struct TelemetryReply {
  std::string raw;        // the reply as received (JSON)
  json::JsonValue value;  // the value under the command's key
};

// Connects, reads the greeting, sends `command` and returns the reply.
// Errors name the socket and what went wrong (not running, bad reply).
Result<TelemetryReply> telemetry_query(const std::string& socket, const std::string& command,
                                       std::chrono::milliseconds timeout);

}  // namespace cygnet::ctl
