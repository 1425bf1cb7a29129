// ESP (RFC 4303) and ESP-in-UDP (RFC 3948) for one SA over a burst of
// packets, on Intel IPsec-MB. Plain C++ over buffers: no EAL needed.
//
// The burst function is chosen once, when the SA is built (after DPDK's
// ipsec_sa_pkt_func_select()): process() makes one indirect call per burst.
// It returns how many packets are good; those come first in the array, the
// dropped ones follow, each with its DropReason. No allocation, lock,
// syscall or exception per packet.
#pragma once

#include <intel-ipsec-mb.h>

#include <array>
#include <bit>
#include <cstdint>
#include <memory>
#include <vector>

#include "dp/drop_counters.h"
#include "dp/esp/crypto.h"
#include "dp/esp/drop.h"
#include "dp/esp/replay.h"
#include "dp/prefetch.h"
#include "dp/spd/flow.h"
#include "shared/result.h"
#include "shared/sa.h"

namespace cygnet::dp::esp {

inline constexpr std::uint16_t kMaxBurst = 32;

// One packet in a contiguous buffer. Outbound input: an IP packet (the inner
// packet in tunnel mode). Outbound output: the outer IP packet. Inbound input:
// an outer IP packet carrying ESP or ESP-in-UDP; output: the inner packet
// (tunnel) or the restored IP packet (transport). The pipeline adds and
// strips link-layer headers; with DPDK, buf/cap/off/len map onto one mbuf.
struct Packet {
  std::uint8_t* buf = nullptr;  // start of the buffer
  std::uint16_t cap = 0;        // buffer size
  std::uint16_t off = 0;        // offset of the packet's first byte
  std::uint16_t len = 0;        // packet length
  DropReason drop = DropReason::none;

  std::uint8_t* data() const noexcept { return buf + off; }
  std::uint16_t headroom() const noexcept { return off; }
  std::uint16_t tailroom() const noexcept { return static_cast<std::uint16_t>(cap - off - len); }
};

// Per-SA counters. An SA is processed only by its owner core (DESIGN.md), so
// these are plain integers written by one core; readers sum snapshots.
struct SaCounters {
  std::uint64_t packets = 0;  // good packets
  std::uint64_t bytes = 0;    // good bytes: inner packet bytes
  DropCounters drops;
};

// Headroom and tailroom an outbound packet needs at most.
inline constexpr std::uint16_t kMaxOutboundHeadroom = 40 + 8 + 8 + 16;  // IPv6 + UDP + ESP + CBC IV
inline constexpr std::uint16_t kMaxOutboundTailroom = 15 + 2 + 32;      // pad + trailer + ICV

class EspSa {
 public:
  // Builds the SA's hot state with `mgr` (any manager; key expansion only).
  // The config must pass validate_sa(); it is checked again here.
  static Result<std::unique_ptr<EspSa>> create(const SaConfig& cfg, IMB_MGR* mgr);
  ~EspSa();
  EspSa(const EspSa&) = delete;
  EspSa& operator=(const EspSa&) = delete;

  // Encrypts (outbound SA) or decrypts (inbound SA) up to any number of
  // packets, kMaxBurst at a time, with the calling core's manager. Returns
  // the number of good packets, which are moved to the front.
  std::uint16_t process(IMB_MGR* mgr, Packet** pkts, std::uint16_t n) noexcept;

  const SaCounters& counters() const noexcept { return counters_; }
  // Brings the state a burst touches towards the core (the pipeline calls it
  // while it classifies, before process()): with many SAs it is not cached.
  // Address arithmetic only, no load: the hot fields, lifetime checks and
  // packet counters (lines 0 and 1), the lines of AES-GCM key material named
  // by gcm_lines (bit l: line l of CryptoKeys::gcm; the caller's
  // gcm_short_packet_lines() of its manager, the same for every SA), and for
  // an inbound SA the replay window's header. (AES-CBC/HMAC keys are not
  // prefetched.)
  void prefetch(bool inbound, std::uint16_t gcm_lines) const noexcept {
    // prefetch_line, not __builtin_prefetch: GCC deleted this whole function
    // as side-effect free (dp/prefetch.h).
    const char* p = reinterpret_cast<const char*>(this);
    prefetch_line(p);
    prefetch_line(p + 64);
    const char* k = reinterpret_cast<const char*>(&keys_.gcm);
    for (unsigned m = gcm_lines; m != 0; m &= m - 1) prefetch_line(k + 64 * std::countr_zero(m));
    if (inbound) prefetch_line(&replay_);
  }
  std::uint32_t spi() const noexcept { return spi_; }
  Direction direction() const noexcept { return dir_; }
  // Outbound: the next sequence number to send (1 on a fresh SA).
  std::uint64_t next_seq() const noexcept { return next_seq_; }
  // For tests and rekey drills: start the outbound counter at `seq`.
  void set_next_seq(std::uint64_t seq) noexcept {
    next_seq_ = seq;
    seq_exhausted_ = false;
  }
  // True once the last sequence number has been used: rekey now.
  bool seq_exhausted() const noexcept { return seq_exhausted_; }
  bool soft_expired() const noexcept { return soft_expired_; }
  bool hard_expired() const noexcept { return hard_expired_; }
  const ReplayWindow& replay() const noexcept { return replay_; }

 private:
  using BurstFn = std::uint16_t (*)(EspSa&, IMB_MGR*, Packet**, std::uint16_t) noexcept;
  EspSa() = default;

  template <bool kAead>
  static std::uint16_t outbound_burst(EspSa& sa, IMB_MGR* mgr, Packet** pkts, std::uint16_t n) noexcept;
  template <bool kAead>
  static std::uint16_t inbound_burst(EspSa& sa, IMB_MGR* mgr, Packet** pkts, std::uint16_t n) noexcept;

  // Counters, and the soft/hard lifetime flags when a limit is crossed.
  void account(std::uint64_t bytes) noexcept {
    counters_.packets++;
    counters_.bytes += bytes;
    if (counters_.packets >= check_packets_ || counters_.bytes >= check_bytes_) [[unlikely]] lifetime_crossed();
  }
  void lifetime_crossed() noexcept;  // sets the flags, moves check_* to the next limit
  bool refill_ivs(IMB_MGR* mgr) noexcept;  // false: no fresh IVs (fail closed)
  bool inner_allowed(const std::uint8_t* ip, std::uint16_t len) const noexcept;
  // Last usable sequence number (RFC 4303 3.3.3, RFC 4304).
  std::uint64_t seq_limit() const noexcept { return esn_ ? ~std::uint64_t{0} : 0xffffffffull; }

  // ---- hot: read and written per packet ----
  BurstFn fn_ = nullptr;
  std::uint64_t next_seq_ = 1;
  // Copies of keys_' header, so that an AEAD packet reads no key line but
  // the key material itself.
  std::uint8_t salt_[4] = {};
  CipherAlg cipher_ = CipherAlg::null;
  std::uint8_t key_len_ = 0;
  std::uint32_t spi_ = 0;
  std::uint16_t ip_id_ = 0;
  std::uint8_t iv_len_ = 0;
  std::uint8_t icv_len_ = 0;
  std::uint8_t block_ = 4;  // padding alignment: a power of two (4 or 16)
  std::uint8_t outer_ttl_ = 64;
  bool esn_ = false;
  bool tunnel_ = true;
  bool encap_ = false;
  bool v6_ = false;  // outer family
  bool copy_dscp_ = true;
  bool seq_exhausted_ = false;
  bool soft_expired_ = false;
  bool hard_expired_ = false;
  bool check_inner_ = false;  // inbound: inner_sel_ is not empty (read here, not in its cold line)
  std::uint16_t tfc_pad_to_ = 0;
  std::uint16_t encap_sport_ = 0;  // network order
  std::uint16_t encap_dport_ = 0;
  std::uint32_t outer_csum_base_ = 0;  // IPv4: checksum sum of the template's fixed words
  std::array<std::uint8_t, 40> outer_tmpl_{};  // tunnel outer IP header, fixed fields filled
  // account() compares the counters with these after every packet: the
  // nearest soft or hard limit not yet reached (~0: none), refreshed when
  // one is crossed (lifetime_crossed()).
  std::uint64_t check_packets_ = ~std::uint64_t{0};
  std::uint64_t check_bytes_ = ~std::uint64_t{0};
  SaCounters counters_;  // packets and bytes end line 1; the drop counts follow
  Lifetime soft_{};
  Lifetime hard_{};
  Direction dir_ = Direction::out;

  // ---- keys: right behind the hot fields, so that the lines one packet
  // reads are contiguous (about 830 bytes: one 4 KiB page, mostly) ----
  CryptoKeys keys_;

  ReplayWindow replay_;  // inbound; header then 4096 bits

  // CBC IVs: AES-CTR keystream under a random key, refilled per burst.
  std::uint32_t iv_used_ = 0;
  alignas(16) std::array<std::uint8_t, 16 * kMaxBurst> iv_pool_{};
  alignas(16) std::array<std::uint8_t, 16> iv_ctr_{};
  alignas(16) std::uint32_t iv_key_enc_[60] = {};
  alignas(16) std::uint32_t iv_key_dec_[60] = {};

  // Inbound: the inner packet must match one of these (RFC 4301 5.2);
  // empty: the SA was installed without traffic selectors, no check.
  std::vector<spd::TupleSelector> inner_sel_;
};

// What arrived on UDP port 4500 (RFC 3948 2.2, 2.3; RFC 7296 2.23).
enum class Udp4500Kind : std::uint8_t {
  esp,        // ESP: non-zero SPI in the first four bytes
  ike,        // non-ESP marker (four zero bytes) then an IKE message: to the control plane
  keepalive,  // one byte 0xFF: NAT keepalive, discard
  malformed,  // anything else (e.g. shorter than an ESP header)
};
// payload: the UDP payload.
Udp4500Kind classify_udp_4500(const std::uint8_t* payload, std::size_t len) noexcept;

}  // namespace cygnet::dp::esp
