// The Backend that pushes Child SAs to cygnet-dp over the shm rings
// (shared/shm): each Child SA is one batch (inbound SA, outbound SA, then
// its policies), applied all or nothing by cygnet-dp.
//
// Policies are owned: the dataplane's SPD holds one policy per selector and
// direction, but a trap policy, a Child SA and the Child SA that rekeys it
// may all want the same selector. The backend keeps, per selector, the
// stack of its owners; the newest is the one in cygnet-dp. Installing over
// an owned selector replaces the policy in the same batch (no gap, no
// refusal); removing the top owner puts the one below back.
//
// Restarts (docs/ike.md, "Restarts"):
// - cygnet-dp restarted (a new epoch in the segment): resync() pushes every
//   trap and Child SA again.
// - cygnet-ike restarted: the keys of the old IKE SAs are gone, so their
//   Child SAs in cygnet-dp are orphans. The backend writes what it has
//   installed (SA keys and policy selectors, never keys) to a state file;
//   remove_leftovers() reads it at start and removes them from the same
//   cygnet-dp (same epoch) before anything new is negotiated.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cp/ike/engine/backend.h"
#include "shared/shm/client.h"

namespace cygnet::ike {

class ShmBackend : public Backend {
 public:
  struct Options {
    std::chrono::milliseconds timeout = std::chrono::seconds(2);  // for each batch's ack
    std::string state_path;  // empty: no state file (and no clean-up after our own restart)
  };
  ShmBackend(std::unique_ptr<shm::ShmClient> client, Options opt);
  // Attaches to the instance's segment (cygnet-dp must run), subscribed to
  // its events (ACQUIRE).
  static Result<std::unique_ptr<ShmBackend>> attach(const std::string& instance, Options opt);
  static Result<std::unique_ptr<ShmBackend>> attach(const std::string& instance);

  Result<void> install_child(const ChildSaSpec& c) override;
  Result<void> remove_child(const ChildSaSpec& c) override;
  Result<void> install_trap(const TrapSpec& t) override;
  Result<void> remove_trap(const TrapSpec& t) override;
  std::optional<SaUsage> usage(std::uint32_t spi, Direction dir, const IpAddress& dst) override;

  // If cygnet-dp restarted since the last call: reattach and push every
  // installed trap and Child SA again. Returns how many were pushed (0:
  // nothing to do).
  Result<std::size_t> resync();
  // The reqids of the ACQUIREs cygnet-dp sent since the last call.
  std::vector<std::uint32_t> take_acquires();
  // The byte and packet expiries cygnet-dp sent since the last call (read
  // with the ACQUIREs by take_acquires()).
  struct Expiry {
    std::uint32_t spi = 0;
    Direction dir = Direction::in;
    bool hard = false;
  };
  std::vector<Expiry> take_expiries() { return std::exchange(expiries_, {}); }
  // Removes from cygnet-dp what the state file says an earlier cygnet-ike
  // installed, if cygnet-dp is still the one it installed into. Returns how
  // many SAs and policies went. Call before installing anything.
  Result<std::size_t> remove_leftovers();

  // Problems that did not fail a change (the state file could not be
  // written), for the daemon's log.
  std::vector<std::string> take_warnings();

  std::size_t installed() const noexcept { return live_.size(); }
  std::size_t traps() const noexcept { return traps_.size(); }

 private:
  // The batch's commands for `policies` going in (add) or out (remove),
  // given the owner stacks; the stacks change only in apply_owners().
  Result<void> send_policies(const std::vector<Policy>& policies, std::uint64_t owner, bool add);
  void apply_owners(const std::vector<Policy>& policies, std::uint64_t owner, bool add);
  // One batch: `owner`'s policies in or out, then SA deletions; committed.
  Result<void> policy_batch(const std::vector<Policy>& policies, std::uint64_t owner, bool add,
                            const std::vector<shm::SaKey>& sa_deletes, const char* what);
  Result<void> push(const ChildSaSpec& c, bool resync);
  Result<void> commit(const char* what);  // the batch's commit and its ack
  void pump_events();
  void save_state();

  std::unique_ptr<shm::ShmClient> client_;
  Options opt_;
  // With keys: what a restarted cygnet-dp needs again. SecretKey wipes
  // itself when an entry goes.
  std::vector<ChildSaSpec> live_;
  std::vector<TrapSpec> traps_;
  // Per "direction selector": the owners' policies, newest last.
  struct Owned {
    std::uint64_t owner = 0;
    Policy policy;
  };
  std::map<std::string, std::vector<Owned>> owners_;
  std::vector<std::uint32_t> acquires_;
  std::vector<Expiry> expiries_;
  std::map<std::uint64_t, shm::SaCounters> counters_;  // by query id
  std::vector<std::string> warnings_;
};

}  // namespace cygnet::ike
