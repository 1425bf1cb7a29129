// The Backend that pushes Child SAs to cygnet-dp over the shm rings
// (shared/shm): each Child SA is one batch (inbound SA, outbound SA, then
// its policies), applied all or nothing by cygnet-dp. The backend keeps
// what it installed so that, when cygnet-dp restarts (a new epoch in the
// segment), resync() pushes it all again.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cp/ike/engine/backend.h"
#include "shared/shm/client.h"

namespace cygnet::ike {

class ShmBackend : public Backend {
 public:
  ShmBackend(std::unique_ptr<shm::ShmClient> client, std::chrono::milliseconds timeout = std::chrono::seconds(2));
  // Attaches to the instance's segment (cygnet-dp must run).
  static Result<std::unique_ptr<ShmBackend>> attach(const std::string& instance);

  Result<void> install_child(const ChildSaSpec& c) override;
  Result<void> remove_child(const ChildSaSpec& c) override;

  // If cygnet-dp restarted since the last call: reattach and push every
  // installed Child SA again. Returns how many were pushed (0: nothing to do).
  Result<std::size_t> resync();
  std::size_t installed() const noexcept { return live_.size(); }

 private:
  Result<void> push(const ChildSaSpec& c);
  Result<void> commit(const char* what);  // the batch's commit and its ack

  std::unique_ptr<shm::ShmClient> client_;
  std::chrono::milliseconds timeout_;
  // With keys: what a restarted cygnet-dp needs again. SecretKey wipes
  // itself when an entry goes.
  std::vector<ChildSaSpec> live_;
};

}  // namespace cygnet::ike
