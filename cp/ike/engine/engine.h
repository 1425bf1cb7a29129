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
// CREATE_CHILD_SA in both roles (rekeying Child SAs, with PFS, and IKE SAs,
// simultaneous rekeys, further Child SAs as responder), lifetimes (rekey at
// a soft time, delete at the hard one), retransmission with exponential
// back-off, message IDs (window 1) and duplicate requests answered from
// the last response. docs/ike.md.
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
  // Lifetime (engine clock): rekeyed from rekey_at_ms (soft), deleted at
  // expire_at_ms (hard). rekeyed: replaced by a rekey, waiting for its Delete.
  std::uint64_t rekey_at_ms = 0, expire_at_ms = 0;
  bool rekeyed = false;
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
  std::uint64_t rekey_at_ms = 0, expire_at_ms = 0;  // as for ChildSaInfo
  bool rekeyed = false;  // replaced by a rekey (2.18), waiting for its Delete
};

struct EngineStats {
  std::uint64_t rx = 0, tx = 0, retransmits = 0, dropped = 0;  // dropped: malformed, unknown SPI, ICV, out of window
  std::uint64_t dup_requests = 0;       // answered from the last response
  std::uint64_t cookies_sent = 0, invalid_ke_sent = 0, no_proposal_sent = 0;
  std::uint64_t auth_failed = 0;        // either side
  std::uint64_t ike_established = 0, child_installed = 0, child_removed = 0;
  std::uint64_t timeouts = 0;           // IKE SAs given up after the last retransmission
  std::uint64_t keepalives_sent = 0;    // NAT keepalives (RFC 3948)
  std::uint64_t ts_unacceptable = 0;
  std::uint64_t mode_refused = 0;      // Child SAs refused for tunnel/transport mode, either role
  std::uint64_t child_rekeyed = 0, ike_rekeyed = 0;  // rekeys completed, either role
  std::uint64_t rekey_collisions = 0;  // simultaneous rekeys resolved (2.8.1, 2.8.2)
  std::uint64_t expired = 0;           // SAs deleted at their hard lifetime
};

class Engine {
 public:
  using Log = std::function<void(std::string_view)>;
  Engine(IkeConfig cfg, Backend& backend, Transport& transport, Log log = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Acts on every connection's `start`: installs the trap policies of
  // start = trap connections and initiates start = start ones. The daemon
  // calls it once, when the backend is ready. Problems are logged; the
  // result says how many connections could not be started.
  Result<void> start(std::uint64_t now_ms);
  // A new configuration (cygnetctl ike load). Connections that did not
  // change keep their IKE and Child SAs; changed and removed ones are
  // deleted (and their traps removed); new and changed ones are started as
  // their `start` says. PSKs and global settings are replaced. Returns a
  // summary line.
  Result<std::string> reload(IkeConfig cfg, std::uint64_t now_ms);

  // Starts an IKE SA for the connection (initiator).
  Result<void> initiate(std::string_view connection, std::uint64_t now_ms);
  // Deletes the connection's IKE SAs (and so their Child SAs).
  Result<void> terminate(std::string_view connection, std::uint64_t now_ms);
  // Rekeys the connection's IKE SA (ike_sa) or its first Child SA now, as
  // the soft lifetime would (CREATE_CHILD_SA, RFC 7296 1.3.2, 1.3.3).
  Result<void> rekey(std::string_view connection, bool ike_sa, std::uint64_t now_ms);
  // Asks for one more Child SA of the connection's selectors on its IKE SA
  // (CREATE_CHILD_SA without REKEY_SA, 1.3.1).
  Result<void> create_child(std::string_view connection, std::uint64_t now_ms);
  // Sends an empty INFORMATIONAL (liveness check) on the connection's IKE SA.
  Result<void> check_liveness(std::string_view connection, std::uint64_t now_ms);
  // A trap policy's ACQUIRE: starts the connection that installed the trap
  // with this reqid, if no IKE SA of it is up or on the way.
  void on_acquire(std::uint32_t reqid, std::uint64_t now_ms);
  // The dataplane's byte or packet limit of a Child SA (by our inbound
  // SPI): soft starts its rekey, hard deletes it.
  void on_child_expire(std::uint32_t spi_in, bool hard, std::uint64_t now_ms);

  // A UDP datagram for us (local: the address and port it came to).
  void on_datagram(const Endpoint& local, const Endpoint& remote, std::span<const std::uint8_t> payload,
                   std::uint64_t now_ms);
  // Retransmissions, timeouts of half-open SAs, rekeys and expiry by
  // lifetime. Call often (every 100 ms).
  void tick(std::uint64_t now_ms);

  std::vector<IkeSaInfo> ike_sas() const;
  struct TrapInfo {
    std::string connection;
    std::uint32_t reqid = 0;
    std::size_t policies = 0;
  };
  std::vector<TrapInfo> traps() const;
  const EngineStats& stats() const noexcept { return stats_; }
  const IkeConfig& config() const noexcept { return cfg_; }
  std::size_t half_open() const noexcept { return half_open_; }

  // Tests: a fixed cookie secret, so cookies can be checked from outside.
  void set_cookie_secrets(CookieSecrets s) { cookies_ = std::move(s); }

  struct IkeSa;
  struct Creating;  // our CREATE_CHILD_SA in flight

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
  // KEYMAT's inputs (2.17) for a new Child SA.
  struct ChildKeying {
    std::span<const std::uint8_t> g_ir;    // the CREATE_CHILD_SA's KE; empty: none
    std::span<const std::uint8_t> ni, nr;  // of the exchange that creates it
    bool we_initiated = false;             // we sent its request
    std::optional<std::uint32_t> reqid;    // a rekey: the old Child SA's (its policies stay)
  };
  Result<void> install_child(IkeSa& sa, const EspChoice& esp, std::uint32_t spi_in, Mode mode,
                             std::vector<TsRange> local_ts, std::vector<TsRange> remote_ts, std::uint64_t now_ms,
                             const ChildKeying& k);
  void remove_children(IkeSa& sa);
  void remove_child_sa(IkeSa& sa, std::uint32_t spi_in);
  void set_ike_timers(IkeSa& sa, std::uint64_t now_ms);
  void kick(IkeSa& sa, std::uint64_t now_ms);
  Result<void> start_child_rekey(IkeSa& sa, std::uint32_t spi_in, std::uint64_t now_ms,
                                 std::optional<KeGroup> group = {}, unsigned ke_retries = 0);
  Result<void> start_ike_rekey(IkeSa& sa, std::uint64_t now_ms, std::optional<KeGroup> group = {},
                               unsigned ke_retries = 0);
  Result<void> send_delete(IkeSa& sa, std::uint64_t now_ms);
  void move_children(IkeSa& from, IkeSa& to);
  void refuse_create_child(IkeSa& sa, std::uint32_t mid, NotifyType t, const std::string& why, Bytes data = {});
  Result<std::unique_ptr<IkeSa>> successor(const IkeSa& old, bool initiator, std::uint64_t spi_i, std::uint64_t spi_r,
                                           const IkeSuite& suite, std::span<const std::uint8_t> g_ir, const Bytes& ni,
                                           const Bytes& nr, std::uint64_t now_ms);
  void on_create_child_request(IkeSa& sa, const Message& m, std::uint64_t now_ms);
  void on_rekey_ike_request(IkeSa& sa, const Message& m, std::uint64_t now_ms);
  void on_create_child_response(IkeSa& sa, const Message& m, std::uint64_t now_ms);
  void on_child_created(IkeSa& sa, Creating& c, const Message& m, std::uint64_t now_ms);
  void on_rekey_ike_response(IkeSa& sa, Creating& c, const Message& m, std::uint64_t now_ms);
  void kill(IkeSa& sa, std::string_view why);
  void delete_ike_sa(IkeSa& sa, std::uint64_t now_ms);
  void established(IkeSa& sa, const Identity& peer, std::uint64_t now_ms);  // IKE_AUTH done, either role
  Result<void> send_liveness(IkeSa& sa, std::uint64_t now_ms);
  void dpd(IkeSa& sa, std::uint64_t now_ms);
  void nat_keepalive(IkeSa& sa, std::uint64_t now_ms);
  // A datagram dropped: counted, and logged at most once a second.
  void dropped(const Endpoint& from, const std::string& why, std::uint64_t now_ms);
  std::uint64_t drop_log_ms_ = 0;
  std::uint64_t drops_unlogged_ = 0;  // behind a NAT: 0xFF on UDP 4500 every nat_keepalive_s  // a liveness check after dpd_s without word from the peer  // Delete out if established, else gone now
  Result<void> start_one(const Connection& c, std::uint64_t now_ms);
  Result<void> install_trap(const Connection& c);
  void remove_trap(const std::string& connection);
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
  std::map<std::string, TrapSpec, std::less<>> traps_;  // by connection
  // Connections of earlier configurations that IKE SAs being deleted still
  // point to; dropped at the next reload once none does.
  std::vector<std::vector<Connection>> retired_;
};

}  // namespace cygnet::ike
