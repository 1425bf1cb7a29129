// ShmServer: cygnet-dp's end of the shared-memory protocol (docs/shm.md).
// It creates the segment, and its poll() - called by the dataplane's main
// lcore - reads every client's command ring, validates each command, hands
// the valid changes to a Handler (single commands as a batch of one, a
// batch whole at batch_commit) and acknowledges every command, valid or
// not, with a Status on that client's event ring.
//
// Not thread-safe: one thread owns the server (the main lcore).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "shared/result.h"
#include "shared/shm/layout.h"
#include "shared/shm/messages.h"
#include "shared/shm/ring.h"
#include "shared/shm/segment.h"

namespace cygnet::shm {

// One change to the dataplane's tables. `id` is the command's id.
struct Change {
  std::uint64_t id = 0;
  std::variant<SaAdd, SaUpdate, SaDelete, PolicyAdd, PolicyDelete> op;
};

// What the handler answers: ok, or the status and a reason (which change,
// what was wrong) that goes back to the client in the ack.
struct Verdict {
  Status status = Status::ok;
  std::string text;
};

// Implemented by cygnet-dp (and by fakes in tests).
class Handler {
 public:
  virtual ~Handler() = default;
  // All or nothing: every change is applied (and the tables published once)
  // or none is. Called with one change for a command outside a batch.
  virtual Verdict apply(std::span<const Change> changes) = 0;
  // Counters of the SAs the query names, at most q.max records, starting at
  // q.cursor (0: the beginning). next_cursor: where to continue, 0 if done.
  virtual Verdict counters(const CountersQuery& q, std::vector<SaCounters>& out, std::uint32_t& next_cursor) = 0;
  // A client said hello / went away (detached, died, evicted); for logging.
  virtual void client_attached(unsigned slot, const Hello& hello) {
    (void)slot;
    (void)hello;
  }
  virtual void client_gone(unsigned slot, std::string_view why) {
    (void)slot;
    (void)why;
  }
};

class ShmServer {
 public:
  struct Options {
    Geometry geometry;
    std::size_t max_batch = 4096;  // commands one batch may hold
    // How often poll() checks that clients are alive (kill(pid, 0), /proc).
    std::chrono::milliseconds liveness_interval{200};
    // A client whose heartbeat word has not moved for this long is dead;
    // 0 turns the check off (the pid check still runs).
    std::chrono::milliseconds heartbeat_timeout{0};
    // Asynchronous events queued for a client whose event ring is full;
    // beyond it they are counted and reported as events_lost.
    std::size_t max_async_backlog = 1024;
  };

  struct Stats {
    std::uint64_t commands = 0;            // read from the rings
    std::uint64_t rejected = 0;            // acked with a parse/validation status
    std::uint64_t applied = 0;             // handler calls that returned ok
    std::uint64_t failed = 0;              // handler calls that returned an error
    std::uint64_t batches_discarded = 0;   // aborted, poisoned or left open by a dead client
    std::uint64_t clients_gone = 0;
    std::uint64_t evicted = 0;             // clients dropped for a corrupt ring
    std::uint64_t events_lost = 0;
  };

  struct ClientInfo {
    unsigned slot = 0;
    std::int64_t pid = 0;
    std::string name;  // from its hello
    bool subscribed = false;
    std::size_t batch_size = 0;
    std::size_t backlog = 0;
  };

  // Creates "/cygnet-dp.<instance>" (mode 0600). A segment left by a dead
  // server is replaced; a live server's is not (its lock is held).
  static Result<std::unique_ptr<ShmServer>> create(std::string_view instance, const Options& opt);
  static Result<std::unique_ptr<ShmServer>> create(std::string_view instance) { return create(instance, Options{}); }

  struct Key {  // create() is the only way in
   private:
    Key() = default;
    friend class ShmServer;
  };
  explicit ShmServer(Key) {}
  ~ShmServer();
  ShmServer(const ShmServer&) = delete;
  ShmServer& operator=(const ShmServer&) = delete;

  // Reads and handles up to `max` commands over all clients. Returns how
  // many were read. Also flushes queued events and, every
  // liveness_interval, checks that clients are alive.
  std::size_t poll(Handler& h, std::size_t max = 256);
  // Checks every client's liveness now; a dead one's published commands are
  // handled, its open batch discarded, its slot wiped and freed.
  void check_clients(Handler& h);
  // Queues an asynchronous event (expiry, ACQUIRE, NAT change, ...) for every
  // client that subscribed in its hello. Returns how many clients got it.
  std::size_t broadcast(const EventBody& ev);

  // Marks the segment stopping, unlinks it and its lock. Idempotent; the
  // destructor calls it. Clients notice (server_restarted()).
  void close() noexcept;

  const std::string& name() const noexcept { return name_; }
  std::uint64_t epoch() const noexcept { return epoch_; }
  bool replaced_stale() const noexcept { return replaced_stale_; }
  const Geometry& geometry() const noexcept { return opt_.geometry; }
  const Stats& stats() const noexcept { return stats_; }
  std::vector<ClientInfo> clients() const;
  // The whole segment, for tests and introspection.
  std::span<std::uint8_t> segment_bytes() const noexcept { return {map_.data(), map_.size()}; }

 private:
  struct Peer {
    bool active = false;
    std::uint64_t token = 0;  // owner word at adoption
    RingConsumer cmd;
    RingProducer evt;
    std::uint64_t next_event_id = 1;
    bool hello_seen = false;
    bool subscribed = false;
    std::string name;
    bool in_batch = false;
    bool poisoned = false;
    Status poison_status = Status::ok;
    std::string poison_text;
    std::vector<Change> batch;
    std::deque<MsgBuf> backlog;
    std::uint64_t lost = 0;
    bool quiet = false;  // draining a client that is gone: no acks
    std::uint64_t last_heartbeat = 0;
    std::chrono::steady_clock::time_point heartbeat_seen{};
  };

  ClientControl& control(std::uint32_t i) const noexcept;
  std::uint8_t* cmd_slots(std::uint32_t i) const noexcept;
  std::uint8_t* evt_slots(std::uint32_t i) const noexcept;
  void adopt(std::uint32_t i, std::uint64_t owner);
  std::size_t service(std::uint32_t i, Handler& h, std::size_t budget);
  std::size_t drain(std::uint32_t i, Handler& h);
  void release(std::uint32_t i, const std::string& why, bool wipe_shared);
  void handle(std::uint32_t i, Handler& h, MsgBuf& raw);
  void handle_change(std::uint32_t i, Handler& h, std::uint64_t id, std::uint16_t type, Change&& c);
  void handle_counters(std::uint32_t i, Handler& h, std::uint64_t id, const CountersQuery& q);
  void ack(std::uint32_t i, std::uint64_t id, std::uint16_t type, Status s, std::string_view text,
           std::uint64_t value = 0);
  void emit(std::uint32_t i, const EventBody& ev);
  void flush(std::uint32_t i);
  void poison(Peer& p, Status s, std::string text);
  void end_batch(Peer& p);
  Verdict safe_apply(Handler& h, std::span<const Change> changes);
  void liveness(Handler& h, std::chrono::steady_clock::time_point now);

  Options opt_;
  std::string instance_;
  std::string name_;
  detail::InstanceLock lock_;
  detail::Mapping map_;
  std::uint64_t epoch_ = 0;
  bool replaced_stale_ = false;
  bool closed_ = false;
  std::vector<Peer> peers_;
  std::uint32_t rr_ = 0;
  Handler* handler_ = nullptr;  // during poll() / check_clients(), for client_gone()
  std::chrono::steady_clock::time_point last_liveness_{};
  Stats stats_;
};

}  // namespace cygnet::shm
