// Where cygnet-ike puts the Child SAs it negotiates: cygnet-dp over the shm
// rings (ShmBackend), later the Linux kernel (XFRM). The engine calls it
// only from its own thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shared/policy.h"
#include "shared/result.h"
#include "shared/sa.h"

namespace cygnet::ike {

// One negotiated Child SA pair and its policies.
struct ChildSaSpec {
  std::string connection;
  std::uint32_t reqid = 0;
  SaConfig inbound;   // the SA we decrypt with (our SPI)
  SaConfig outbound;  // the SA we encrypt with (the peer's SPI)
  // Outbound protect (local -> remote) and inbound protect (remote -> local)
  // policies of the negotiated selectors, tied to `reqid`.
  std::vector<Policy> policies;
};

// The trap policies of a connection with start = trap: outbound policies of
// its configured selectors whose first packet makes the dataplane raise an
// ACQUIRE with `reqid` (docs/ike.md, "On-demand connections").
struct TrapSpec {
  std::string connection;
  std::uint32_t reqid = 0;
  std::vector<Policy> policies;
};

// What the dataplane counted on one SA.
struct SaUsage {
  std::uint64_t packets = 0, bytes = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // The inbound SA first, then the outbound SA and the policies, so that
  // the peer's first packet is never dropped for lack of an SA; all or
  // nothing: on an error nothing of it stays installed.
  virtual Result<void> install_child(const ChildSaSpec& c) = 0;
  // In reverse: policies, the outbound SA, then the inbound SA. `c` is the
  // spec install_child() got, keys wiped.
  virtual Result<void> remove_child(const ChildSaSpec& c) = 0;
  // Trap policies: installed when a start = trap connection is loaded,
  // removed when it is unloaded. A Child SA's policy with the same
  // selector takes the trap's place while the Child SA lives. Backends
  // without a dataplane that raises ACQUIREs refuse.
  virtual Result<void> install_trap(const TrapSpec& t) {
    return make_error("this backend cannot install trap policies for '" + t.connection + "'");
  }
  virtual Result<void> remove_trap(const TrapSpec& t) { (void)t; return {}; }
  // The dataplane's counters of one SA (spi, direction, destination), if it
  // has any.
  virtual std::optional<SaUsage> usage(std::uint32_t spi, Direction dir, const IpAddress& dst) {
    (void)spi, (void)dir, (void)dst;
    return std::nullopt;
  }
};

}  // namespace cygnet::ike
