// The IKEv2 engine of cygnet-ike (RFC 7296): IKE SAs and their first Child
// SA, as initiator and responder, without sockets or clocks of its own.
// The daemon (or a test) hands it datagrams and the time, and gives it a
// Transport to send with and a Backend to install Child SAs into.
//
// Done here: IKE_SA_INIT (proposal choice, KE with INVALID_KE_PAYLOAD retry,
// nonces, NAT detection, COOKIE above a half-open threshold), IKE_AUTH with
// pre-shared keys and the first Child SA (traffic selector narrowing,
// transport mode, UDP encapsulation after NAT detection or when forced),
// INFORMATIONAL (Delete of the IKE SA or of Child SAs, liveness checks),
// retransmission with exponential back-off, message IDs (window 1) and
// duplicate requests answered from the last response. docs/ike.md.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "cp/ike/crypto/cookie.h"
#include "cp/ike/crypto/kdf.h"
#include "cp/ike/crypto/key_exchange.h"
#include "cp/ike/crypto/sk_ciphers.h"
#include "cp/ike/engine/backend.h"
#include "cp/ike/engine/conn.h"
#include "cp/ike/engine/proposals.h"
#include "cp/ike/engine/ts.h"
#include "cp/ike/msg/msg.h"

namespace cygnet::ike {

struct Endpoint {
  IpAddress addr;
  std::uint16_t port = 500;
  bool operator==(const Endpoint&) const = default;
  std::string to_string() const;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // One UDP datagram's payload (on port 4500 it already carries the
  // non-ESP marker).
  virtual void send(const Endpoint& local, const Endpoint& remote, std::span<const std::uint8_t> payload) = 0;
};

enum class IkeState : std::uint8_t {
  init_sent,    // initiator: IKE_SA_INIT request out
  auth_sent,    // initiator: IKE_AUTH request out
  init_done,    // responder: IKE_SA_INIT answered (half-open)
  established,  // authenticated
  deleting,     // our Delete is out
  dead,         // to be removed
};
const char* state_name(IkeState s) noexcept;

struct ChildSaInfo {
  std::uint32_t reqid = 0;
  std::uint32_t spi_in = 0, spi_out = 0;
  EspSuite suite;
  Mode mode = Mode::tunnel;
  bool encap = false;
  std::vector<TsRange> local_ts, remote_ts;
  std::uint64_t established_ms = 0;
};

struct IkeSaInfo {
  std::string connection;
  bool initiator = false;
  std::uint64_t spi_i = 0, spi_r = 0;
  IkeState state = IkeState::init_sent;
  Endpoint local, remote;
  std::optional<IkeSuite> suite;
  Identity peer_id;
  bool nat_local = false, nat_remote = false;
  std::vector<ChildSaInfo> children;
  std::uint64_t created_ms = 0;
};

struct EngineStats {
  std::uint64_t rx = 0, tx = 0, retransmits = 0, dropped = 0;  // dropped: malformed, unknown SPI, ICV, out of window
  std::uint64_t dup_requests = 0;       // answered from the last response
  std::uint64_t cookies_sent = 0, invalid_ke_sent = 0, no_proposal_sent = 0;
  std::uint64_t auth_failed = 0;        // either side
  std::uint64_t ike_established = 0, child_installed = 0, child_removed = 0;
  std::uint64_t timeouts = 0;           // IKE SAs given up after the last retransmission
  std::uint64_t ts_unacceptable = 0;
};

class Engine {
 public:
  using Log = std::function<void(std::string_view)>;
  Engine(IkeConfig cfg, Backend& backend, Transport& transport, Log log = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts an IKE SA for the connection (initiator).
  Result<void> initiate(std::string_view connection, std::uint64_t now_ms);
  // Deletes the connection's IKE SAs (and so their Child SAs).
  Result<void> terminate(std::string_view connection, std::uint64_t now_ms);
  // Sends an empty INFORMATIONAL (liveness check) on the connection's IKE SA.
  Result<void> check_liveness(std::string_view connection, std::uint64_t now_ms);
  // A trap policy's ACQUIRE: starts the connection that installed the trap
  // with this reqid, if no IKE SA of it is up or on the way.
  void on_acquire(std::uint32_t reqid, std::uint64_t now_ms);

  // A UDP datagram for us (local: the address and port it came to).
  void on_datagram(const Endpoint& local, const Endpoint& remote, std::span<const std::uint8_t> payload,
                   std::uint64_t now_ms);
  // Retransmissions, timeouts of half-open SAs. Call often (every 100 ms).
  void tick(std::uint64_t now_ms);

  std::vector<IkeSaInfo> ike_sas() const;
  const EngineStats& stats() const noexcept { return stats_; }
  const IkeConfig& config() const noexcept { return cfg_; }
  std::size_t half_open() const noexcept { return half_open_; }

  // Tests: a fixed cookie secret, so cookies can be checked from outside.
  void set_cookie_secrets(CookieSecrets s) { cookies_ = std::move(s); }

  struct IkeSa;

 private:
  IkeSa* find(std::uint64_t our_spi);
  void send(IkeSa& sa, Bytes msg);
  void send_request(IkeSa& sa, Bytes msg, std::uint64_t now_ms);
  void send_response(IkeSa& sa, std::uint32_t mid, Bytes msg);
  void send_plain_notify(const Endpoint& local, const Endpoint& remote, const Header& req, NotifyType t,
                         Bytes data = {});
  Result<void> start_init(IkeSa& sa, std::uint64_t now_ms);
  Bytes build_init_request(IkeSa& sa);

  void on_init_request(const Endpoint& local, const Endpoint& remote, std::span<const std::uint8_t> msg,
                       const Message& m, std::uint64_t now_ms);
  void on_init_response(IkeSa& sa, std::span<const std::uint8_t> msg, const Message& m, std::uint64_t now_ms);
  void on_auth_request(IkeSa& sa, const Message& m, std::uint64_t now_ms);
  void on_auth_response(IkeSa& sa, const Message& m, std::uint64_t now_ms);
  void on_informational_request(IkeSa& sa, const Message& m);
  void on_informational_response(IkeSa& sa, const Message& m);

  Result<Bytes> seal(IkeSa& sa, ExchangeType ex, bool response, std::uint32_t mid, std::span<const Payload> inner);
  Bytes id_body(const IdPayload& id) const;
  IdPayload our_id(const IkeSa& sa, bool responder) const;
  const SecretBytes* psk_for(const Connection& c) const;
  Result<void> install_child(IkeSa& sa, const EspChoice& esp, std::uint32_t spi_in, Mode mode,
                             std::vector<TsRange> local_ts, std::vector<TsRange> remote_ts, std::uint64_t now_ms);
  void remove_children(IkeSa& sa);
  void kill(IkeSa& sa, std::string_view why);
  void log(std::string_view s) const;

  IkeConfig cfg_;
  Backend& backend_;
  Transport& transport_;
  Log log_;
  std::optional<CookieSecrets> cookies_;
  void reap();
  std::uint32_t alloc_esp_spi();

  std::map<std::uint64_t, std::unique_ptr<IkeSa>> sas_;  // by our SPI
  std::multimap<std::uint64_t, std::uint64_t> by_spi_i_;  // responder: SPIi -> our SPI
  std::size_t half_open_ = 0;
  // Our inbound ESP SPIs handed out by alloc_esp_spi(), dropped when their
  // Child SA or IKE SA goes (one left behind is never handed out again).
  std::unordered_set<std::uint32_t> esp_spis_;
  std::vector<std::uint64_t> dead_;  // our SPIs of the IKE SAs kill() marked; reap() erases just these
  std::uint32_t next_reqid_ = 0;
  EngineStats stats_;
};

}  // namespace cygnet::ike
