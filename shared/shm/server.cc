#include "shared/shm/server.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <string>

#include "shared/secret.h"

namespace cygnet::shm {

namespace {

using Clock = std::chrono::steady_clock;

template <typename T>
std::atomic_ref<T> at(T& w) noexcept {
  return std::atomic_ref<T>(w);
}

std::string num(std::uint64_t v) { return std::to_string(v); }

Result<void> check_geometry(const ShmServer::Options& o) {
  const Geometry& g = o.geometry;
  for (auto [v, what] : {std::pair{g.cmd_slots, "command ring"}, std::pair{g.evt_slots, "event ring"}}) {
    if (!is_pow2(v) || v < kMinRingSlots || v > kMaxRingSlots) {
      return make_error(std::string(what) + " capacity " + num(v) + " must be a power of two in " +
                        num(kMinRingSlots) + "-" + num(kMaxRingSlots));
    }
  }
  if (g.max_clients < 1 || g.max_clients > kMaxClients) {
    return make_error("client slots " + num(g.max_clients) + " outside 1-" + num(kMaxClients));
  }
  if (o.max_batch < 1 || o.max_batch > (1u << 20)) {
    return make_error("max_batch " + num(o.max_batch) + " outside 1-1048576");
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<ShmServer>> ShmServer::create(std::string_view instance, const Options& opt) {
  if (auto r = check_geometry(opt); !r) return r.error();
  auto name = segment_name(instance);
  if (!name) return name.error();

  auto s = std::make_unique<ShmServer>(Key{});
  s->opt_ = opt;
  s->instance_ = std::string(instance);
  s->name_ = *name;

  auto lock = detail::InstanceLock::acquire(lock_name(s->name_));
  if (!lock) {
    // Name the running server if its header says who it is.
    std::string who;
    detail::Fd old(::shm_open(s->name_.c_str(), O_RDONLY | O_CLOEXEC, 0));
    SegmentHeader h{};
    if (old.valid() && ::pread(old.get(), &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h) && h.magic == kMagic) {
      who = " (pid " + std::to_string(h.server_pid) + ")";
    }
    return make_error("cygnet-dp instance '" + s->instance_ + "' is already running" + who + ": " +
                      lock.error().message);
  }
  s->lock_ = std::move(*lock);

  // We hold the lock, so any segment under the name is a dead server's.
  if (::shm_unlink(s->name_.c_str()) == 0) s->replaced_stale_ = true;

  detail::Fd fd(::shm_open(s->name_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    return make_error("cannot create " + shm_path(s->name_) + ": " + std::strerror(errno));
  }
  const Geometry& g = opt.geometry;
  const std::uint64_t size = g.segment_size();
  if (::fchmod(fd.get(), 0600) != 0 || ::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    const int e = errno;
    ::shm_unlink(s->name_.c_str());
    return make_error("cannot size " + shm_path(s->name_) + " to " + num(size) + " bytes: " + std::strerror(e));
  }
  auto map = detail::map_shared(fd.get(), size, s->name_);
  if (!map) {
    ::shm_unlink(s->name_.c_str());
    return map.error();
  }
  s->map_ = std::move(*map);

  // ftruncate zero-filled the segment: every index is 0, every slot free.
  auto* h = reinterpret_cast<SegmentHeader*>(s->map_.data());
  s->epoch_ = detail::random_u64();
  h->version_major = kVersionMajor;
  h->version_minor = kVersionMinor;
  h->header_size = kHeaderSize;
  h->slot_size = kSlotSize;
  h->cmd_slots = g.cmd_slots;
  h->evt_slots = g.evt_slots;
  h->max_clients = g.max_clients;
  h->control_size = kControlSize;
  h->client_stride = g.client_stride();
  h->clients_offset = kHeaderSize;
  h->segment_size = size;
  h->epoch = s->epoch_;
  h->server_pid = static_cast<std::int32_t>(::getpid());
  h->created_unix_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  h->magic = kMagic;
  at(h->state).store(static_cast<std::uint32_t>(ServerState::ready), std::memory_order_release);

  s->peers_.resize(g.max_clients);
  s->last_liveness_ = Clock::now();
  return s;
}

ShmServer::~ShmServer() { close(); }

void ShmServer::close() noexcept {
  if (closed_ || !map_) return;
  closed_ = true;
  for (auto& p : peers_) {
    if (p.in_batch && !p.batch.empty()) ++stats_.batches_discarded;
    p = Peer{};
  }
  auto* h = reinterpret_cast<SegmentHeader*>(map_.data());
  at(h->state).store(static_cast<std::uint32_t>(ServerState::stopping), std::memory_order_release);
  // Unlink first: clients still mapping it keep their (now private) copy
  // and see `stopping`; a new server can create the name at once.
  ::shm_unlink(name_.c_str());
  map_.reset();
  lock_.release();
}

ClientControl& ShmServer::control(std::uint32_t i) const noexcept {
  return *reinterpret_cast<ClientControl*>(map_.data() + opt_.geometry.client_offset(i));
}
std::uint8_t* ShmServer::cmd_slots(std::uint32_t i) const noexcept {
  return map_.data() + opt_.geometry.cmd_ring_offset(i);
}
std::uint8_t* ShmServer::evt_slots(std::uint32_t i) const noexcept {
  return map_.data() + opt_.geometry.evt_ring_offset(i);
}

std::vector<ShmServer::ClientInfo> ShmServer::clients() const {
  std::vector<ClientInfo> v;
  for (std::uint32_t i = 0; i < peers_.size(); ++i) {
    const Peer& p = peers_[i];
    if (!p.active) continue;
    v.push_back(ClientInfo{i, static_cast<std::int64_t>(p.token & kOwnerPidMask), p.name, p.subscribed,
                           p.batch.size(), p.backlog.size()});
  }
  return v;
}

void ShmServer::adopt(std::uint32_t i, std::uint64_t owner) {
  Peer& p = peers_[i];
  p = Peer{};
  p.active = true;
  p.token = owner;
  ClientControl& c = control(i);
  // Our own indices start where we left them when the slot was freed: 0.
  p.cmd = RingConsumer(cmd_slots(i), opt_.geometry.cmd_slots, &c.cmd_prod.value, &c.cmd_cons.value, 0);
  p.evt = RingProducer(evt_slots(i), opt_.geometry.evt_slots, &c.evt_prod.value, &c.evt_cons.value, 0);
  p.last_heartbeat = at(c.own.heartbeat).load(std::memory_order_relaxed);
  p.heartbeat_seen = Clock::now();
}

std::size_t ShmServer::poll(Handler& h, std::size_t max) {
  if (closed_ || !map_) return 0;
  handler_ = &h;
  auto* hdr = reinterpret_cast<SegmentHeader*>(map_.data());
  at(hdr->server_heartbeat).fetch_add(1, std::memory_order_relaxed);
  const auto now = Clock::now();
  if (now - last_liveness_ >= opt_.liveness_interval) liveness(h, now);

  const auto n = static_cast<std::uint32_t>(peers_.size());
  std::size_t done = 0;
  for (std::uint32_t k = 0; k < n && done < max; ++k) {
    done += service((rr_ + k) % n, h, max - done);
  }
  rr_ = (rr_ + 1) % n;
  handler_ = nullptr;
  return done;
}

std::size_t ShmServer::service(std::uint32_t i, Handler& h, std::size_t budget) {
  ClientControl& c = control(i);
  const std::uint64_t owner = at(c.own.owner).load(std::memory_order_acquire);
  Peer& p = peers_[i];
  if (!p.active) {
    if (owner == 0) return 0;
    adopt(i, owner & ~kOwnerClosing);
  } else if ((owner & ~kOwnerClosing) != p.token) {
    // Freed or re-owned behind our back: only a broken peer does that. Drop
    // our state; do not touch rings someone else may be using now.
    release(i, "client slot owner word changed without cygnet-dp", false);
    return 0;
  }
  if ((owner & kOwnerClosing) != 0) {
    const std::size_t n = drain(i, h);
    if (p.active) release(i, "client detached", true);
    return n;
  }

  flush(i);
  std::size_t done = 0;
  MsgBuf raw;
  while (p.active && done < budget && p.backlog.empty()) {
    const RingResult r = p.cmd.pop(raw);
    if (r == RingResult::empty) break;
    if (r != RingResult::ok) {
      ++stats_.evicted;
      release(i, "command ring indices are corrupt (producer " +
                         num(at(c.cmd_prod.value).load(std::memory_order_relaxed)) + ", consumer " +
                         num(p.cmd.index()) + ", capacity " + num(opt_.geometry.cmd_slots) + ")",
              true);
      break;
    }
    ++done;
    handle(i, h, raw);
  }
  if (p.active) flush(i);
  return done;
}

std::size_t ShmServer::drain(std::uint32_t i, Handler& h) {
  Peer& p = peers_[i];
  p.quiet = true;
  std::size_t n = 0;
  MsgBuf raw;
  // Bounded: a gone client publishes nothing more, a closing one must not.
  for (std::uint32_t k = 0; k < opt_.geometry.cmd_slots && p.active; ++k) {
    if (p.cmd.pop(raw) != RingResult::ok) break;
    ++n;
    handle(i, h, raw);
  }
  return n;
}

void ShmServer::release(std::uint32_t i, const std::string& why, bool wipe_shared) {
  Peer& p = peers_[i];
  if (p.in_batch && !p.batch.empty()) ++stats_.batches_discarded;
  const std::uint64_t token = p.token;
  p = Peer{};  // drops a held batch (keys wiped by SecretKey) and queued events
  ++stats_.clients_gone;
  if (handler_ != nullptr) handler_->client_gone(i, why);
  if (!wipe_shared) return;
  ClientControl& c = control(i);
  // Wipe the rings (unconsumed commands may hold keys), reset the indices,
  // then free the slot: a new owner finds everything at zero.
  secure_zero(cmd_slots(i), std::size_t{opt_.geometry.cmd_slots} * kSlotSize);
  secure_zero(evt_slots(i), std::size_t{opt_.geometry.evt_slots} * kSlotSize);
  for (std::uint64_t* w : {&c.cmd_prod.value, &c.cmd_cons.value, &c.evt_prod.value, &c.evt_cons.value,
                           &c.own.heartbeat, &c.own.starttime}) {
    at(*w).store(0, std::memory_order_relaxed);
  }
  std::uint64_t expect = at(c.own.owner).load(std::memory_order_relaxed);
  if ((expect & ~kOwnerClosing) == token) {
    at(c.own.owner).compare_exchange_strong(expect, 0, std::memory_order_release, std::memory_order_relaxed);
  }
}

void ShmServer::check_clients(Handler& h) {
  handler_ = &h;
  liveness(h, Clock::now());
  handler_ = nullptr;
}

void ShmServer::liveness(Handler& h, Clock::time_point now) {
  last_liveness_ = now;
  if (closed_) return;
  for (std::uint32_t i = 0; i < peers_.size(); ++i) {
    ClientControl& c = control(i);
    Peer& p = peers_[i];
    const std::uint64_t owner = at(c.own.owner).load(std::memory_order_acquire);
    if (!p.active) {
      if (owner == 0) continue;
      adopt(i, owner & ~kOwnerClosing);
    }
    if ((owner & ~kOwnerClosing) != p.token) continue;  // service() sorts it out
    std::string why;
    const auto pid = static_cast<std::int64_t>(owner & kOwnerPidMask);
    bool dead = detail::process_liveness(pid, at(c.own.starttime).load(std::memory_order_relaxed), why) ==
                detail::Liveness::dead;
    if (!dead && opt_.heartbeat_timeout.count() > 0) {
      const std::uint64_t hb = at(c.own.heartbeat).load(std::memory_order_relaxed);
      if (hb != p.last_heartbeat) {
        p.last_heartbeat = hb;
        p.heartbeat_seen = now;
      } else if (now - p.heartbeat_seen > opt_.heartbeat_timeout) {
        dead = true;
        why = "no heartbeat from pid " + num(static_cast<std::uint64_t>(pid)) + " for " +
              num(static_cast<std::uint64_t>(opt_.heartbeat_timeout.count())) + " ms";
      }
    }
    if (!dead) continue;
    // Its fully published commands are handled (single ones applied, a
    // committed batch applied); an unterminated batch is discarded whole.
    drain(i, h);
    if (p.active) release(i, why, true);
  }
}

// ---- commands ------------------------------------------------------------------

Verdict ShmServer::safe_apply(Handler& h, std::span<const Change> changes) {
  Verdict v;
  try {
    v = h.apply(changes);
  } catch (const std::exception& e) {
    v = Verdict{Status::internal, std::string("cygnet-dp failed to apply: ") + e.what()};
  } catch (...) {
    v = Verdict{Status::internal, "cygnet-dp failed to apply (unknown exception)"};
  }
  if (v.status == Status::ok) {
    ++stats_.applied;
  } else {
    ++stats_.failed;
  }
  return v;
}

void ShmServer::poison(Peer& p, Status s, std::string text) {
  if (!p.batch.empty() || !p.poisoned) ++stats_.batches_discarded;
  p.poisoned = true;
  p.poison_status = s;
  p.poison_text = std::move(text);
  p.batch.clear();
  p.batch.shrink_to_fit();
}

void ShmServer::end_batch(Peer& p) {
  p.in_batch = false;
  p.poisoned = false;
  p.poison_status = Status::ok;
  p.poison_text.clear();
  p.batch.clear();
  p.batch.shrink_to_fit();
}

void ShmServer::handle(std::uint32_t i, Handler& h, MsgBuf& raw) {
  Peer& p = peers_[i];
  ++stats_.commands;
  Command cmd;
  std::uint64_t id = 0;
  std::uint16_t type = 0;
  std::string why;
  const Status s = parse_command(raw.raw(), cmd, id, type, why);
  raw.wipe();
  if (s != Status::ok) {
    ++stats_.rejected;
    if (p.in_batch && !p.poisoned) {
      poison(p, s, "command " + num(id) + " (" + std::string(msg_name(type)) + ") was rejected: " + why);
    }
    ack(i, id, type, s, why);
    return;
  }
  const MsgType t = command_type(cmd.body);
  const auto raw_type = static_cast<std::uint16_t>(t);

  if (auto* hello = std::get_if<Hello>(&cmd.body)) {
    const auto owner_pid = p.token & kOwnerPidMask;
    if (hello->pid != owner_pid) {
      ++stats_.rejected;
      ack(i, id, raw_type, Status::invalid,
          "hello from pid " + num(hello->pid) + " but the slot belongs to pid " + num(owner_pid));
      return;
    }
    std::string text = "cygnet-dp pid " + num(static_cast<std::uint64_t>(::getpid())) + ", protocol " +
                       num(kVersionMajor) + "." + num(kVersionMinor);
    if (p.in_batch) {
      text += "; the open batch of " + num(p.batch.size()) + " commands was discarded";
      if (!p.batch.empty() && !p.poisoned) ++stats_.batches_discarded;
      end_batch(p);
    }
    p.hello_seen = true;
    p.subscribed = (hello->flags & kHelloSubscribe) != 0;
    p.name = hello->name;
    h.client_attached(i, *hello);
    ack(i, id, raw_type, Status::ok, text, epoch_);
    return;
  }
  if (auto* q = std::get_if<CountersQuery>(&cmd.body)) {
    handle_counters(i, h, id, *q);
    return;
  }
  if (auto* bb = std::get_if<BatchBegin>(&cmd.body)) {
    if (p.in_batch) {
      const std::string text = "batch_begin inside the open batch: that batch is discarded, nothing applied";
      if (!p.poisoned) poison(p, Status::in_batch, text);
      ack(i, id, raw_type, Status::in_batch, text);
      return;
    }
    p.in_batch = true;
    if (bb->expected > opt_.max_batch) {
      const std::string text = "batch of " + num(bb->expected) + " commands announced; at most " +
                               num(opt_.max_batch) + " fit one batch";
      poison(p, Status::batch_too_big, text);
      ack(i, id, raw_type, Status::batch_too_big, text);
      return;
    }
    ack(i, id, raw_type, Status::ok, "batch open");
    return;
  }
  if (std::holds_alternative<BatchCommit>(cmd.body)) {
    if (!p.in_batch) {
      ack(i, id, raw_type, Status::no_batch, "batch_commit without batch_begin");
      return;
    }
    if (p.poisoned) {
      const Status ps = p.poison_status;
      const std::string text = "batch discarded, nothing applied: " + p.poison_text;
      end_batch(p);
      ack(i, id, raw_type, ps, text);
      return;
    }
    const std::size_t n = p.batch.size();
    if (n == 0) {
      end_batch(p);
      ack(i, id, raw_type, Status::ok, "empty batch", 0);
      return;
    }
    const Verdict v = safe_apply(h, p.batch);
    end_batch(p);
    if (v.status == Status::ok) {
      ack(i, id, raw_type, Status::ok, v.text.empty() ? "batch of " + num(n) + " applied" : v.text, n);
    } else {
      ++stats_.batches_discarded;
      ack(i, id, raw_type, v.status, "batch of " + num(n) + " not applied: " + v.text, 0);
    }
    return;
  }
  if (std::holds_alternative<BatchAbort>(cmd.body)) {
    if (!p.in_batch) {
      ack(i, id, raw_type, Status::no_batch, "batch_abort without batch_begin");
      return;
    }
    const std::size_t n = p.batch.size();
    if (n != 0 && !p.poisoned) ++stats_.batches_discarded;
    end_batch(p);
    ack(i, id, raw_type, Status::ok, "batch of " + num(n) + " discarded", n);
    return;
  }

  Change c;
  c.id = id;
  if (auto* a = std::get_if<SaAdd>(&cmd.body)) {
    c.op = std::move(*a);
  } else if (auto* u = std::get_if<SaUpdate>(&cmd.body)) {
    c.op = std::move(*u);
  } else if (auto* d = std::get_if<SaDelete>(&cmd.body)) {
    c.op = *d;
  } else if (auto* pa = std::get_if<PolicyAdd>(&cmd.body)) {
    c.op = *pa;
  } else if (auto* pd = std::get_if<PolicyDelete>(&cmd.body)) {
    c.op = *pd;
  } else {
    ack(i, id, raw_type, Status::internal, "command type not dispatched");
    return;
  }
  handle_change(i, h, id, raw_type, std::move(c));
}

void ShmServer::handle_change(std::uint32_t i, Handler& h, std::uint64_t id, std::uint16_t type, Change&& c) {
  Peer& p = peers_[i];
  if (!p.in_batch) {
    const Verdict v = safe_apply(h, std::span<const Change>(&c, 1));
    ack(i, id, type, v.status, v.text, v.status == Status::ok ? 1 : 0);
    return;
  }
  if (p.poisoned) {
    ack(i, id, type, Status::batch_aborted, "the open batch was already discarded: " + p.poison_text);
    return;
  }
  if (p.batch.size() >= opt_.max_batch) {
    const std::string text = "batch exceeds " + num(opt_.max_batch) + " commands at command " + num(id);
    poison(p, Status::batch_too_big, text);
    ack(i, id, type, Status::batch_too_big, text + "; batch discarded, nothing applied");
    return;
  }
  p.batch.push_back(std::move(c));
  ack(i, id, type, Status::accepted, "", p.batch.size());
}

void ShmServer::handle_counters(std::uint32_t i, Handler& h, std::uint64_t id, const CountersQuery& q) {
  const auto type = static_cast<std::uint16_t>(MsgType::counters_query);
  std::vector<SaCounters> recs;
  std::uint32_t next = 0;
  Verdict v;
  try {
    v = h.counters(q, recs, next);
  } catch (const std::exception& e) {
    v = Verdict{Status::internal, std::string("cygnet-dp failed to read counters: ") + e.what()};
  } catch (...) {
    v = Verdict{Status::internal, "cygnet-dp failed to read counters"};
  }
  if (v.status != Status::ok) {
    ack(i, id, type, v.status, v.text);
    return;
  }
  if (recs.size() > q.max) {
    ack(i, id, type, Status::internal,
        "counters handler returned " + num(recs.size()) + " records for a query of at most " + num(q.max));
    return;
  }
  for (const auto& r : recs) {
    if (r.n_drops > kMaxDropCounters) {
      ack(i, id, type, Status::internal, "counters record with more than 32 drop reasons");
      return;
    }
  }
  for (const auto& r : recs) emit(i, Counters{id, r});
  ack(i, id, type, Status::ok, num(recs.size()) + " counter records", next);
}

// ---- events --------------------------------------------------------------------

void ShmServer::ack(std::uint32_t i, std::uint64_t id, std::uint16_t type, Status s, std::string_view text,
                    std::uint64_t value) {
  if (peers_[i].quiet) return;
  emit(i, Ack{id, value, s, type, ack_text(text)});
}

void ShmServer::emit(std::uint32_t i, const EventBody& ev) {
  Peer& p = peers_[i];
  if (!p.active || p.quiet) return;
  MsgBuf b;
  if (!encode_event(p.next_event_id, ev, b)) return;  // only an impossible record fails to encode
  ++p.next_event_id;
  if (p.backlog.empty()) {
    const RingResult r = p.evt.push(b.bytes());
    if (r == RingResult::ok) return;
    if (r == RingResult::corrupt) {
      ++stats_.evicted;
      release(i, "event ring indices are corrupt", true);
      return;
    }
  }
  p.backlog.push_back(std::move(b));
}

void ShmServer::flush(std::uint32_t i) {
  Peer& p = peers_[i];
  while (p.active && !p.backlog.empty()) {
    const RingResult r = p.evt.push(p.backlog.front().bytes());
    if (r == RingResult::full) return;
    if (r != RingResult::ok) {
      ++stats_.evicted;
      release(i, "event ring indices are corrupt", true);
      return;
    }
    p.backlog.pop_front();
  }
  if (p.active && p.lost != 0) {
    MsgBuf b;
    if (encode_event(p.next_event_id, EventsLost{p.lost}, b) && p.evt.push(b.bytes()) == RingResult::ok) {
      ++p.next_event_id;
      p.lost = 0;
    }
  }
}

std::size_t ShmServer::broadcast(const EventBody& ev) {
  if (closed_) return 0;
  std::size_t n = 0;
  for (std::uint32_t i = 0; i < peers_.size(); ++i) {
    Peer& p = peers_[i];
    if (!p.active || !p.hello_seen || !p.subscribed || p.quiet) continue;
    if (p.backlog.size() >= opt_.max_async_backlog || p.lost != 0) {
      ++p.lost;  // keep order: nothing newer overtakes the loss report
      ++stats_.events_lost;
      continue;
    }
    emit(i, ev);
    ++n;
  }
  return n;
}

}  // namespace cygnet::shm
