// ShmClient: the cygnet-ike / cygnetctl end of the shared-memory protocol
// (docs/shm.md). Attaches to a running cygnet-dp's segment, claims a client
// slot, sends commands (never blocking: a full ring is an error the caller
// sees), reads acks and events, and notices a restarted dataplane so the
// caller can reattach() and push its state again.
//
// Not thread-safe: one thread uses a client.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "shared/result.h"
#include "shared/shm/layout.h"
#include "shared/shm/messages.h"
#include "shared/shm/ring.h"
#include "shared/shm/segment.h"

namespace cygnet::shm {

class ShmServer;

class ShmClient {
 public:
  struct Options {
    std::string name = "cygnet";  // told to the server in the hello (1-31 printable characters)
    bool subscribe = false;       // receive asynchronous events (expiry, ACQUIRE, NAT, ...)
    std::size_t max_pending = 65536;  // events kept while waiting for an ack; older ones are dropped
  };

  // Why the last send failed, for callers that act on it (retry on `full`).
  enum class Failure : std::uint8_t { none, full, not_attached, server_gone, corrupt, encode };

  // Attaches to "/cygnet-dp.<instance>", claims a slot and sends a hello
  // (its ack arrives like any other). Errors name what is wrong: no
  // dataplane running, wrong magic or version, sizes that do not add up, all
  // slots taken.
  static Result<std::unique_ptr<ShmClient>> attach(std::string_view instance, const Options& opt);
  static Result<std::unique_ptr<ShmClient>> attach(std::string_view instance) { return attach(instance, Options{}); }
  // Same process as the server, through the server's own mapping (tests:
  // lets ThreadSanitizer see both ends). The server must outlive the client.
  static Result<std::unique_ptr<ShmClient>> attach_in_process(const ShmServer& server, const Options& opt);

  struct Key {
   private:
    Key() = default;
    friend class ShmClient;
  };
  explicit ShmClient(Key) {}
  ~ShmClient();  // detaches: the server handles what was sent, then frees the slot
  ShmClient(const ShmClient&) = delete;
  ShmClient& operator=(const ShmClient&) = delete;

  // Encodes and publishes a command; returns its id (ids grow from 1).
  Result<std::uint64_t> send(const CommandBody& body);
  Result<std::uint64_t> sa_add(const SaConfig& sa) { return send(SaAdd{sa}); }
  Result<std::uint64_t> sa_update(const SaConfig& sa) { return send(SaUpdate{sa}); }
  Result<std::uint64_t> sa_delete(const SaKey& k) { return send(SaDelete{k}); }
  Result<std::uint64_t> policy_add(const Policy& p) { return send(PolicyAdd{p}); }
  Result<std::uint64_t> policy_delete(const Policy& p) { return send(PolicyDelete{p}); }
  Result<std::uint64_t> batch_begin(std::uint32_t expected = 0) { return send(BatchBegin{expected}); }
  Result<std::uint64_t> batch_commit() { return send(BatchCommit{}); }
  Result<std::uint64_t> batch_abort() { return send(BatchAbort{}); }
  Result<std::uint64_t> counters_query(const CountersQuery& q) { return send(q); }
  // Publishes bytes as they are (at most a slot): for tests and tools that
  // need to send what the encoder would refuse. Returns the header's id.
  Result<std::uint64_t> send_raw(std::span<const std::uint8_t> msg);

  // Waits for the ack of `id`, keeping other events for next_event().
  Result<Ack> wait_ack(std::uint64_t id, std::chrono::milliseconds timeout);
  Result<Ack> send_and_wait(const CommandBody& body, std::chrono::milliseconds timeout);

  // The next event (kept ones first), nothing if none is waiting, or an
  // error if the server wrote something invalid.
  Result<std::optional<Event>> next_event();

  Failure last_failure() const noexcept { return failure_; }
  // True if the server we attached to stopped, died or was replaced (its
  // segment name now refers to another segment or to none).
  bool server_restarted() const;
  // Still owns its slot (the server frees slots of clients it thinks dead).
  bool attached() const noexcept;
  // Detaches (if still attached) and attaches again by name: new epoch.
  Result<void> reattach();
  void heartbeat() noexcept;

  std::uint64_t epoch() const noexcept { return epoch_; }
  unsigned slot() const noexcept { return slot_; }
  const std::string& segment_name() const noexcept { return name_; }
  std::uint64_t events_dropped() const noexcept { return dropped_; }

 private:
  Result<void> bind(detail::Mapping map, std::size_t actual_size);
  void detach() noexcept;
  Result<std::optional<Event>> read_one();
  ClientControl& control() const noexcept;
  const SegmentHeader& header() const noexcept;
  Result<void> ready_to_send();

  std::string instance_;
  std::string name_;
  Options opt_;
  detail::Mapping map_;
  detail::FileId file_{};
  Geometry geo_;
  std::uint64_t epoch_ = 0;
  std::int64_t server_pid_ = 0;
  unsigned slot_ = 0;
  std::uint64_t token_ = 0;
  RingProducer cmd_;
  RingConsumer evt_;
  std::uint64_t next_id_ = 1;
  std::deque<Event> pending_;
  std::uint64_t dropped_ = 0;
  Failure failure_ = Failure::none;
};

}  // namespace cygnet::shm
