// Where cygnet-ike puts the Child SAs it negotiates: cygnet-dp over the shm
// rings (ShmBackend), later the Linux kernel (XFRM). The engine calls it
// only from its own thread.
#pragma once

#include <cstdint>
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
};

}  // namespace cygnet::ike
