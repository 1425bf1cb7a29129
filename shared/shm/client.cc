#include "shared/shm/client.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "shared/shm/server.h"

namespace cygnet::shm {

namespace {

using Clock = std::chrono::steady_clock;

template <typename T>
std::atomic_ref<T> at(T& w) noexcept {
  return std::atomic_ref<T>(w);
}

std::string num(std::uint64_t v) { return std::to_string(v); }

std::string hex(std::uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%016llx", static_cast<unsigned long long>(v));
  return b;
}

Result<void> check_name(const std::string& n) {
  if (n.empty() || n.size() > kMaxClientName) {
    return make_error("client name must be 1-" + num(kMaxClientName) + " characters");
  }
  for (char c : n)
    if (c < 0x20 || c > 0x7e) return make_error("client name must be printable ASCII");
  return {};
}

// Opens the segment by name for reading and writing, with the messages a
// person needs when it is not there.
Result<detail::Fd> open_segment(const std::string& name) {
  detail::Fd fd(::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0));
  if (fd.valid()) return fd;
  const int e = errno;
  if (e == ENOENT) return make_error("cygnet-dp is not running (no " + shm_path(name) + ")");
  if (e == EACCES) {
    return make_error("permission denied opening " + shm_path(name) +
                      ": the segment is mode 0600, owned by the user cygnet-dp runs as");
  }
  return make_error("cannot open " + shm_path(name) + ": " + std::strerror(e));
}

}  // namespace

// ---- attach ------------------------------------------------------------------

Result<std::unique_ptr<ShmClient>> ShmClient::attach(std::string_view instance, const Options& opt) {
  if (auto r = check_name(opt.name); !r) return r.error();
  auto name = shm::segment_name(instance);
  if (!name) return name.error();
  auto c = std::make_unique<ShmClient>(Key{});
  c->instance_ = std::string(instance);
  c->name_ = *name;
  c->opt_ = opt;
  if (auto r = c->reattach(); !r) return r.error();
  return c;
}

Result<std::unique_ptr<ShmClient>> ShmClient::attach_in_process(const ShmServer& server, const Options& opt) {
  if (auto r = check_name(opt.name); !r) return r.error();
  auto c = std::make_unique<ShmClient>(Key{});
  c->name_ = server.name();
  c->instance_ = c->name_.substr(std::string_view("/cygnet-dp.").size());
  c->opt_ = opt;
  auto fd = open_segment(c->name_);
  if (!fd) return fd.error();
  auto id = detail::file_id(fd->get());
  if (!id) return id.error();
  c->file_ = *id;
  const auto bytes = server.segment_bytes();
  if (auto r = c->bind(detail::Mapping(bytes.data(), bytes.size(), false), bytes.size()); !r) return r.error();
  return c;
}

Result<void> ShmClient::reattach() {
  detach();
  auto fd = open_segment(name_);
  if (!fd) return fd.error();
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return make_error("cannot stat " + shm_path(name_) + ": " + std::strerror(errno));
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < kHeaderSize) {
    return make_error(shm_path(name_) + " is " + num(size) + " bytes, smaller than a segment header (" +
                      num(kHeaderSize) + "): cygnet-dp is still creating it, or it is not a cygnet-dp segment");
  }
  auto id = detail::file_id(fd->get());
  if (!id) return id.error();
  file_ = *id;
  auto map = detail::map_shared(fd->get(), size, name_);
  if (!map) return map.error();
  return bind(std::move(*map), size);
}

Result<void> ShmClient::bind(detail::Mapping map, std::size_t actual_size) {
  const std::string where = shm_path(name_);
  auto* h = reinterpret_cast<SegmentHeader*>(map.data());
  // state first (acquire): the server writes every other header field before
  // it stores `ready`, and none of them after.
  const std::uint32_t state = at(h->state).load(std::memory_order_acquire);
  if (h->magic != kMagic) {
    return make_error(where + " is not a cygnet-dp segment (magic " + hex(h->magic) + ", expected " + hex(kMagic) +
                      ")");
  }
  if (h->version_major != kVersionMajor) {
    return make_error("protocol version mismatch: cygnet-dp speaks " + num(h->version_major) + "." +
                      num(h->version_minor) + ", this client speaks " + num(kVersionMajor) + "." +
                      num(kVersionMinor) + "; run matching versions of cygnet-dp and its clients");
  }
  auto field = [&](const char* what, std::uint64_t got, std::uint64_t want) -> Result<void> {
    if (got == want) return {};
    return make_error(where + ": " + what + " is " + num(got) + ", expected " + num(want) +
                      " (segment layout mismatch between cygnet-dp and this client)");
  };
  if (auto r = field("header size", h->header_size, kHeaderSize); !r) return r;
  if (auto r = field("slot size", h->slot_size, kSlotSize); !r) return r;
  if (auto r = field("client control size", h->control_size, kControlSize); !r) return r;
  Geometry g;
  g.cmd_slots = h->cmd_slots;
  g.evt_slots = h->evt_slots;
  g.max_clients = h->max_clients;
  for (auto [v, what] : {std::pair{g.cmd_slots, "command ring"}, std::pair{g.evt_slots, "event ring"}}) {
    if (!is_pow2(v) || v < kMinRingSlots || v > kMaxRingSlots) {
      return make_error(where + ": " + what + " capacity " + num(v) + " is not a power of two in " +
                        num(kMinRingSlots) + "-" + num(kMaxRingSlots));
    }
  }
  if (g.max_clients < 1 || g.max_clients > kMaxClients) {
    return make_error(where + ": " + num(g.max_clients) + " client slots (expected 1-" + num(kMaxClients) + ")");
  }
  if (auto r = field("clients offset", h->clients_offset, kHeaderSize); !r) return r;
  if (auto r = field("client stride", h->client_stride, g.client_stride()); !r) return r;
  if (auto r = field("segment size in the header", h->segment_size, g.segment_size()); !r) return r;
  if (auto r = field("segment size", actual_size, g.segment_size()); !r) return r;
  if (h->epoch == 0) return make_error(where + ": epoch 0 (cygnet-dp did not finish creating the segment)");
  if (state == static_cast<std::uint32_t>(ServerState::starting)) {
    return make_error("cygnet-dp is starting (" + where + "); retry in a moment");
  }
  if (state == static_cast<std::uint32_t>(ServerState::stopping)) {
    return make_error("cygnet-dp is stopping (" + where + ")");
  }
  if (state != static_cast<std::uint32_t>(ServerState::ready)) {
    return make_error(where + ": unknown server state " + num(state));
  }
  std::string why;
  if (detail::process_liveness(h->server_pid, 0, why) == detail::Liveness::dead) {
    return make_error("cygnet-dp is not running: " + where + " was left by pid " + std::to_string(h->server_pid) +
                      ", which is gone");
  }

  map_ = std::move(map);
  geo_ = g;
  epoch_ = h->epoch;
  server_pid_ = h->server_pid;

  // Claim a slot: CAS its owner word from 0 to our token.
  const auto pid = static_cast<std::uint64_t>(::getpid()) & kOwnerPidMask;
  std::uint64_t nonce = 0;
  while (nonce == 0) nonce = detail::random_u64() & 0x7fffffffULL;
  const std::uint64_t token = pid | (nonce << 32);
  bool claimed = false;
  std::string owners;
  for (std::uint32_t i = 0; i < g.max_clients && !claimed; ++i) {
    auto* c = reinterpret_cast<ClientControl*>(map_.data() + g.client_offset(i));
    std::uint64_t expect = 0;
    if (at(c->own.owner).compare_exchange_strong(expect, token, std::memory_order_acq_rel,
                                                 std::memory_order_acquire)) {
      slot_ = i;
      claimed = true;
    } else {
      owners += (owners.empty() ? "" : ", ") + num(expect & kOwnerPidMask);
    }
  }
  if (!claimed) {
    map_.reset();
    return make_error("all " + num(g.max_clients) + " client slots of cygnet-dp '" + instance_ +
                      "' are in use (pids " + owners + ")");
  }
  token_ = token;
  ClientControl& c = control();
  // The indices we write; the server reset all four before it freed the slot.
  at(c.cmd_prod.value).store(0, std::memory_order_release);
  at(c.evt_cons.value).store(0, std::memory_order_release);
  at(c.own.starttime).store(detail::self_starttime(), std::memory_order_relaxed);
  at(c.own.heartbeat).store(1, std::memory_order_relaxed);
  cmd_ = RingProducer(map_.data() + g.cmd_ring_offset(slot_), g.cmd_slots, &c.cmd_prod.value, &c.cmd_cons.value, 0);
  evt_ = RingConsumer(map_.data() + g.evt_ring_offset(slot_), g.evt_slots, &c.evt_prod.value, &c.evt_cons.value, 0);
  pending_.clear();

  Hello hello{static_cast<std::uint32_t>(pid), opt_.subscribe ? kHelloSubscribe : 0, kVersionMajor, kVersionMinor,
              opt_.name};
  if (auto r = send(hello); !r) {
    detach();
    return r.error();
  }
  return {};
}

ShmClient::~ShmClient() { detach(); }

void ShmClient::detach() noexcept {
  if (!map_) return;
  ClientControl& c = control();
  std::uint64_t expect = token_;
  // The server handles what we published, discards an open batch, wipes
  // and frees the slot. We touch nothing of it after this.
  at(c.own.owner).compare_exchange_strong(expect, token_ | kOwnerClosing, std::memory_order_acq_rel,
                                          std::memory_order_relaxed);
  cmd_ = RingProducer();
  evt_ = RingConsumer();
  map_.reset();
  pending_.clear();
}

ClientControl& ShmClient::control() const noexcept {
  return *reinterpret_cast<ClientControl*>(map_.data() + geo_.client_offset(slot_));
}

const SegmentHeader& ShmClient::header() const noexcept {
  return *reinterpret_cast<const SegmentHeader*>(map_.data());
}

bool ShmClient::attached() const noexcept {
  return map_ && at(control().own.owner).load(std::memory_order_acquire) == token_;
}

void ShmClient::heartbeat() noexcept {
  if (attached()) at(control().own.heartbeat).fetch_add(1, std::memory_order_relaxed);
}

bool ShmClient::server_restarted() const {
  if (!map_) return true;
  auto& h = const_cast<SegmentHeader&>(header());
  if (at(h.state).load(std::memory_order_acquire) != static_cast<std::uint32_t>(ServerState::ready)) return true;
  std::string why;
  if (detail::process_liveness(server_pid_, 0, why) == detail::Liveness::dead) return true;
  detail::Fd fd(::shm_open(name_.c_str(), O_RDONLY | O_CLOEXEC, 0));
  if (!fd.valid()) return errno == ENOENT;
  auto id = detail::file_id(fd.get());
  return id && !(*id == file_);
}

// ---- commands --------------------------------------------------------------------

Result<void> ShmClient::ready_to_send() {
  if (!map_) {
    failure_ = Failure::not_attached;
    return make_error("not attached to cygnet-dp (" + shm_path(name_) + "); reattach");
  }
  auto& h = const_cast<SegmentHeader&>(header());
  if (at(h.state).load(std::memory_order_acquire) != static_cast<std::uint32_t>(ServerState::ready)) {
    failure_ = Failure::server_gone;
    return make_error("cygnet-dp stopped (" + shm_path(name_) + "); reattach when it is back and push state again");
  }
  if (!attached()) {
    failure_ = Failure::not_attached;
    return make_error("cygnet-dp freed this client's slot " + num(slot_) +
                      " (it judged the client dead or its ring corrupt); reattach");
  }
  return {};
}

Result<std::uint64_t> ShmClient::send(const CommandBody& body) {
  failure_ = Failure::none;
  if (auto r = ready_to_send(); !r) return r.error();
  const std::uint64_t id = next_id_;
  MsgBuf b;
  if (auto r = encode_command(id, body, b); !r) {
    failure_ = Failure::encode;
    return r.error();
  }
  const RingResult rr = cmd_.push(b.bytes());
  if (rr == RingResult::full) {
    failure_ = Failure::full;
    return make_error("the command ring to cygnet-dp is full (" + num(cmd_.capacity()) +
                      " commands not yet read); read acks and retry");
  }
  if (rr != RingResult::ok) {
    failure_ = Failure::corrupt;
    return make_error("the command ring to cygnet-dp is corrupt (its consumer index is impossible); reattach");
  }
  ++next_id_;
  heartbeat();
  return id;
}

Result<std::uint64_t> ShmClient::send_raw(std::span<const std::uint8_t> msg) {
  failure_ = Failure::none;
  if (msg.empty() || msg.size() > kSlotSize) {
    failure_ = Failure::encode;
    return make_error("a raw message must be 1-" + num(kSlotSize) + " bytes");
  }
  if (auto r = ready_to_send(); !r) return r.error();
  std::uint64_t id = 0;
  if (msg.size() >= kMsgHeaderSize) std::memcpy(&id, msg.data() + offsetof(wire::Header, id), sizeof id);
  const RingResult rr = cmd_.push(msg);
  if (rr == RingResult::full) {
    failure_ = Failure::full;
    return make_error("the command ring to cygnet-dp is full");
  }
  if (rr != RingResult::ok) {
    failure_ = Failure::corrupt;
    return make_error("the command ring to cygnet-dp is corrupt");
  }
  heartbeat();
  return id;
}

// ---- events ------------------------------------------------------------------------

Result<std::optional<Event>> ShmClient::read_one() {
  if (!map_) return make_error("not attached to cygnet-dp");
  MsgBuf b;
  const RingResult r = evt_.pop(b);
  if (r == RingResult::empty) return std::optional<Event>();
  if (r != RingResult::ok) {
    return make_error("the event ring from cygnet-dp is corrupt (its producer index is impossible); reattach");
  }
  Event e;
  std::string why;
  const Status s = parse_event(b.raw(), e, why);
  b.wipe();
  if (s != Status::ok) {
    return make_error("invalid event from cygnet-dp (" + std::string(status_name(s)) + "): " + why);
  }
  return std::optional<Event>(std::move(e));
}

Result<std::optional<Event>> ShmClient::next_event() {
  if (!pending_.empty()) {
    Event e = std::move(pending_.front());
    pending_.pop_front();
    return std::optional<Event>(std::move(e));
  }
  heartbeat();
  return read_one();
}

Result<Ack> ShmClient::wait_ack(std::uint64_t id, std::chrono::milliseconds timeout) {
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (const auto* a = std::get_if<Ack>(&it->body); a != nullptr && a->cmd_id == id) {
      Ack found = *a;
      pending_.erase(it);
      return found;
    }
  }
  const auto deadline = Clock::now() + timeout;
  auto nap = std::chrono::microseconds(20);
  for (;;) {
    for (;;) {
      auto r = read_one();
      if (!r) return r.error();
      if (!r->has_value()) break;
      Event& e = **r;
      if (const auto* a = std::get_if<Ack>(&e.body); a != nullptr && a->cmd_id == id) return *a;
      if (pending_.size() >= opt_.max_pending) {
        pending_.pop_front();
        ++dropped_;
      }
      pending_.push_back(std::move(e));
    }
    if (!map_) return make_error("not attached to cygnet-dp");
    auto& h = const_cast<SegmentHeader&>(header());
    if (at(h.state).load(std::memory_order_acquire) != static_cast<std::uint32_t>(ServerState::ready)) {
      return make_error("cygnet-dp stopped while command " + num(id) + " waited for its ack");
    }
    if (!attached()) return make_error("cygnet-dp freed this client's slot while command " + num(id) + " waited");
    const auto now = Clock::now();
    if (now >= deadline) {
      return make_error("no ack from cygnet-dp for command " + num(id) + " within " +
                        num(static_cast<std::uint64_t>(timeout.count())) + " ms (is it polling?)");
    }
    heartbeat();
    std::this_thread::sleep_for(std::min<Clock::duration>(nap, deadline - now));
    nap = std::min(nap * 2, std::chrono::microseconds(1000));
  }
}

Result<Ack> ShmClient::send_and_wait(const CommandBody& body, std::chrono::milliseconds timeout) {
  auto id = send(body);
  if (!id) return id.error();
  return wait_ack(*id, timeout);
}

}  // namespace cygnet::shm
