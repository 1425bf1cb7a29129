#include "dp/esp/esp.h"

#include <sys/random.h>

#include <algorithm>
#include <cstring>

namespace cygnet::dp::esp {

namespace {

constexpr std::uint8_t kNhIpv4 = 4;     // IP-in-IP
constexpr std::uint8_t kNhIpv6 = 41;
constexpr std::uint8_t kNhNone = 59;    // RFC 4303 2.6 dummy packet
constexpr std::uint8_t kProtoEsp = 50;
constexpr std::uint8_t kProtoUdp = 17;

inline std::uint16_t rd16(const std::uint8_t* p) noexcept { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }
inline std::uint32_t rd32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}
// Big-endian stores. Written byte by byte: GCC's store merging turns each
// into one byte-swapped store at -O2 (a memcpy of a swapped value does the
// same but trips -Wstringop-overflow in the sanitizer build on pointers
// computed as ip - hdr).
inline void wr16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
inline void wr32(std::uint8_t* p, std::uint32_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}
inline void wr64(std::uint8_t* p, std::uint64_t v) noexcept {
  wr32(p, static_cast<std::uint32_t>(v >> 32));
  wr32(p + 4, static_cast<std::uint32_t>(v));
}

// One's complement sum over 16-bit words (RFC 1071).
inline std::uint32_t csum_add(std::uint32_t sum, const std::uint8_t* p, std::size_t len) noexcept {
  for (; len > 1; p += 2, len -= 2) sum += rd16(p);
  if (len) sum += std::uint32_t{p[0]} << 8;
  return sum;
}
inline std::uint16_t csum_fold(std::uint32_t sum) noexcept {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

inline void ipv4_set_checksum(std::uint8_t* ip) noexcept {
  ip[10] = ip[11] = 0;
  wr16(ip + 10, csum_fold(csum_add(0, ip, (ip[0] & 0x0f) * 4u)));
}

// UDP over IPv6 must carry a checksum (RFC 8200 8.1).
inline void udp6_set_checksum(std::uint8_t* ip6, std::uint8_t* udp, std::uint16_t udp_len) noexcept {
  udp[6] = udp[7] = 0;
  std::uint32_t s = csum_add(0, ip6 + 8, 32);  // source and destination
  s += udp_len;
  s += kProtoUdp;
  s = csum_add(s, udp, udp_len);
  std::uint16_t c = csum_fold(s);
  wr16(udp + 6, c == 0 ? 0xffff : c);
}

// The traffic class / TOS byte of an IP header.
inline std::uint8_t ip_tos(const std::uint8_t* ip) noexcept {
  return (ip[0] >> 4) == 4 ? ip[1] : static_cast<std::uint8_t>(((ip[0] & 0x0f) << 4) | (ip[1] >> 4));
}
inline void ip_set_tos(std::uint8_t* ip, std::uint8_t tos) noexcept {
  if ((ip[0] >> 4) == 4) {
    ip[1] = tos;
  } else {
    ip[0] = static_cast<std::uint8_t>((ip[0] & 0xf0) | (tos >> 4));
    ip[1] = static_cast<std::uint8_t>((ip[1] & 0x0f) | (tos << 4));
  }
}

// IP header length including IPv6 extension headers that come before ESP
// (hop-by-hop, routing, destination options), and the offset of the byte
// holding the next-header value. Returns 0 if malformed or fragmented.
struct L3 {
  std::uint16_t hlen = 0;
  std::uint16_t nh_off = 0;  // offset of the protocol / next header byte
  std::uint8_t proto = 0;
};

[[gnu::always_inline]] inline L3 parse_l3(const std::uint8_t* ip, std::uint16_t len, std::uint16_t& total,
                   bool allow_fragment = false) noexcept {
  L3 r;
  if (len < 20) return r;
  const unsigned v = ip[0] >> 4;
  if (v == 4) {
    const std::uint16_t hl = static_cast<std::uint16_t>((ip[0] & 0x0f) * 4);
    total = rd16(ip + 2);
    if (hl < 20 || hl > len || total < hl || total > len) return r;
    if (!allow_fragment && (rd16(ip + 6) & 0x3fff) != 0) return r;  // reassembly happens before ESP
    r.hlen = hl;
    r.nh_off = 9;
    r.proto = ip[9];
    return r;
  }
  if (v != 6 || len < 40) return r;
  total = static_cast<std::uint16_t>(rd16(ip + 4) + 40u);
  if (rd16(ip + 4) + 40u > len) return r;
  std::uint16_t off = 40;
  std::uint16_t nh_off = 6;
  std::uint8_t nh = ip[6];
  while (nh == 0 || nh == 43 || nh == 60) {  // hop-by-hop, routing, destination options
    if (off + 8u > total) return r;
    const std::uint16_t ext = static_cast<std::uint16_t>((ip[off + 1] + 1u) * 8u);
    if (off + ext > total) return r;
    nh_off = off;
    nh = ip[off];
    off = static_cast<std::uint16_t>(off + ext);
  }
  if (nh == 44 && !allow_fragment) return r;  // fragment header
  r.hlen = off;
  r.nh_off = nh_off;
  r.proto = nh;
  return r;
}

// Moves good packets to the front, keeping order; returns how many.
// (std::stable_partition may allocate; this never does. n <= kMaxBurst.)
inline std::uint16_t partition_good(Packet** pkts, std::uint16_t n) noexcept {
  Packet* bad[kMaxBurst];
  std::uint16_t good = 0;
  std::uint16_t nbad = 0;
  for (std::uint16_t i = 0; i < n; ++i) {
    if (pkts[i]->drop == DropReason::none) {
      pkts[good++] = pkts[i];
    } else {
      bad[nbad++] = pkts[i];
    }
  }
  std::memcpy(pkts + good, bad, nbad * sizeof(Packet*));
  return good;
}

alignas(64) constexpr std::uint8_t kZeros[16 * kMaxBurst] = {};
// RFC 4303 2.4 padding bytes 1, 2, 3, ...: copied, not generated per byte.
constexpr std::uint8_t kPadBytes[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

// AEAD nonce (salt || the 8-byte IV on the wire, RFC 4106 4 / RFC 7634 2)
// and AAD: the ESP header itself, or with ESN SPI || seq high || seq low
// built in `aad` (RFC 4106 5). Returns the AAD pointer, its length in alen.
inline const std::uint8_t* aead_nonce_aad(const std::uint8_t* salt, bool esn, const std::uint8_t* esp,
                                          std::uint64_t seq, std::uint8_t* nonce, std::uint8_t* aad,
                                          std::uint32_t& alen) noexcept {
  std::memcpy(nonce, salt, 4);
  std::memcpy(nonce + 4, esp + 8, 8);
  if (!esn) {
    alen = 8;
    return esp;
  }
  std::memcpy(aad, esp, 4);
  wr32(aad + 4, static_cast<std::uint32_t>(seq >> 32));
  wr32(aad + 8, static_cast<std::uint32_t>(seq));
  alen = 12;
  return aad;
}

// Marks the packet of a returned job that failed. Every job comes back
// exactly once, from submit or from flush; jobs that completed but were not
// returned by a submit come back from the flush at the end of the burst (a
// burst of kMaxBurst never fills the manager's queue), so there is no
// get_completed_job call per packet.
inline void reap(IMB_JOB* job) noexcept {
  if (job == nullptr) return;
  auto* p = static_cast<Packet*>(job->user_data);
  if (p != nullptr && job->status != IMB_STATUS_COMPLETED) p->drop = DropReason::crypto_error;
}

static_assert(kMaxBurst + 1 < IMB_MAX_JOBS, "a burst and an IV refill fit in the job queue");

inline void reap_all(IMB_MGR* mgr) noexcept {
  for (IMB_JOB* job = IMB_FLUSH_JOB(mgr); job != nullptr; job = IMB_FLUSH_JOB(mgr)) reap(job);
}

// One AES-GCM packet of a burst, in place: the burst functions first
// prepare every packet (headers, trailer, nonce, AAD), then run the cipher
// over all of them in a loop of its own. Interleaving the cipher with the
// per-packet header work cost 13 ns per 64-byte packet on the AMD guest
// (esp_bench, 60 -> 47 ns encrypting): the cipher's code and its key data
// stay hot this way.
struct GcmCall {
  const std::uint8_t* nonce;
  const std::uint8_t* aad;
  std::uint8_t* buf;
  std::uint8_t* tag;  // written (encrypt) or computed (decrypt)
  std::uint32_t aad_len;
  std::uint32_t len;
};

inline void run_gcm(IMB_MGR* mgr, const CryptoKeys& k, std::uint8_t key_len, bool encrypt, const GcmCall* c,
                    std::uint16_t n) noexcept {
  for (std::uint16_t i = 0; i < n; ++i)
    gcm_in_place(mgr, k, key_len, encrypt, c[i].nonce, c[i].aad, c[i].aad_len, c[i].buf, c[i].len, c[i].tag);
}

}  // namespace

Udp4500Kind classify_udp_4500(const std::uint8_t* payload, std::size_t len) noexcept {
  if (len == 1 && payload[0] == 0xff) return Udp4500Kind::keepalive;  // RFC 3948 2.3
  if (len >= 4 && rd32(payload) == 0) return len > 4 ? Udp4500Kind::ike : Udp4500Kind::malformed;  // 2.2
  if (len >= 8) return Udp4500Kind::esp;  // SPI and sequence number at least
  return Udp4500Kind::malformed;
}

Result<std::unique_ptr<EspSa>> EspSa::create(const SaConfig& cfg, IMB_MGR* mgr) {
  if (auto r = validate_sa(cfg); !r) return r.error();
  std::unique_ptr<EspSa> sa(new EspSa());
  if (auto r = sa->keys_.init(mgr, cfg); !r) return r.error();
  const auto& ci = cipher_info(cfg.cipher);
  sa->dir_ = cfg.dir;
  sa->spi_ = cfg.spi;
  sa->esn_ = cfg.esn;
  sa->tunnel_ = cfg.mode == Mode::tunnel;
  sa->encap_ = cfg.encap.enabled;
  sa->encap_sport_ = cfg.encap.sport;
  sa->encap_dport_ = cfg.encap.dport;
  sa->v6_ = cfg.src.family == Family::ipv6;
  sa->iv_len_ = ci.iv_len;
  sa->icv_len_ = sa->keys_.icv_len;
  sa->block_ = ci.block;
  sa->outer_ttl_ = cfg.outer_ttl;
  sa->copy_dscp_ = cfg.copy_dscp;
  sa->tfc_pad_to_ = cfg.tfc_pad_to;
  sa->soft_ = cfg.soft;
  sa->hard_ = cfg.hard;
  sa->lifetime_crossed();  // no counts yet: only sets check_* to the first limits
  // RFC 4303 3.3.3: the counter never cycles; 32-bit SAs stop at 2^32-1.
  std::memcpy(sa->salt_, sa->keys_.salt, sizeof sa->salt_);
  sa->cipher_ = sa->keys_.cipher;
  sa->key_len_ = sa->keys_.key_len;
  // Tunnel outer header template: the fields that never change, and for
  // IPv4 their share of the header checksum, so a packet only adds TOS,
  // length, ID and DF (RFC 1071: the sum is order-independent).
  std::uint8_t* t = sa->outer_tmpl_.data();
  const std::uint8_t next = cfg.encap.enabled ? kProtoUdp : kProtoEsp;
  if (sa->v6_) {
    t[0] = 0x60;
    t[6] = next;
    t[7] = cfg.outer_ttl;
    std::memcpy(t + 8, cfg.src.bytes.data(), 16);
    std::memcpy(t + 24, cfg.dst.bytes.data(), 16);
  } else {
    t[0] = 0x45;
    t[8] = cfg.outer_ttl;
    t[9] = next;
    std::memcpy(t + 12, cfg.src.bytes.data(), 4);
    std::memcpy(t + 16, cfg.dst.bytes.data(), 4);
    sa->outer_csum_base_ = csum_add(0, t, 20);
  }
  if (cfg.dir == Direction::in) {
    for (const Selector& s : cfg.selectors) sa->inner_sel_.push_back(spd::TupleSelector::from(s));
    sa->check_inner_ = !sa->inner_sel_.empty();
  }
  sa->replay_ = ReplayWindow(cfg.dir == Direction::in && cfg.anti_replay ? cfg.replay_window : 0, cfg.esn);
  if (cfg.dir == Direction::out && !ci.aead && ci.iv_len) {
    // CBC IVs must be unpredictable (RFC 3602 2.4): AES-CTR keystream under
    // a key from the kernel's CSPRNG, drawn here once, not per packet.
    std::uint8_t key[16];
    if (getrandom(key, sizeof key, 0) != sizeof key ||
        getrandom(sa->iv_ctr_.data(), 8, 0) != 8) {
      secure_zero(key, sizeof key);
      return make_error("ESP: cannot read random bytes for CBC IVs");
    }
    std::memset(sa->iv_ctr_.data() + 8, 0, 8);
    IMB_AES_KEYEXP_128(mgr, key, sa->iv_key_enc_, sa->iv_key_dec_);
    secure_zero(key, sizeof key);
    sa->iv_used_ = kMaxBurst;  // empty: refilled by the first burst
  }
  if (cfg.dir == Direction::out) {
    sa->fn_ = ci.aead ? &EspSa::outbound_burst<true> : &EspSa::outbound_burst<false>;
  } else {
    sa->fn_ = ci.aead ? &EspSa::inbound_burst<true> : &EspSa::inbound_burst<false>;
  }
  return sa;
}

EspSa::~EspSa() {
  secure_zero(iv_key_enc_, sizeof iv_key_enc_);
  secure_zero(iv_key_dec_, sizeof iv_key_dec_);
  secure_zero(iv_pool_.data(), iv_pool_.size());
}

std::uint16_t EspSa::process(IMB_MGR* mgr, Packet** pkts, std::uint16_t n) noexcept {
  std::uint16_t good = 0;
  for (std::uint16_t i = 0; i < n; i = static_cast<std::uint16_t>(i + kMaxBurst)) {
    const auto m = static_cast<std::uint16_t>(std::min<int>(kMaxBurst, n - i));
    const std::uint16_t k = fn_(*this, mgr, pkts + i, m);
    std::rotate(pkts + good, pkts + i, pkts + i + k);
    good = static_cast<std::uint16_t>(good + k);
  }
  return good;
}

void EspSa::lifetime_crossed() noexcept {
  const SaCounters& c = counters_;
  if ((soft_.packets && c.packets >= soft_.packets) || (soft_.bytes && c.bytes >= soft_.bytes)) soft_expired_ = true;
  if ((hard_.packets && c.packets >= hard_.packets) || (hard_.bytes && c.bytes >= hard_.bytes)) hard_expired_ = true;
  // The nearest limit above the count (0 = no limit).
  auto next = [](std::uint64_t soft, std::uint64_t hard, std::uint64_t now) {
    std::uint64_t r = ~std::uint64_t{0};
    if (soft > now && soft < r) r = soft;
    if (hard > now && hard < r) r = hard;
    return r;
  };
  check_packets_ = next(soft_.packets, hard_.packets, c.packets);
  check_bytes_ = next(soft_.bytes, hard_.bytes, c.bytes);
}

bool EspSa::inner_allowed(const std::uint8_t* ip, std::uint16_t len) const noexcept {
  spd::FlowTuple t;
  if (!spd::extract_flow(ip, len, t)) return false;  // no 5-tuple: cannot be shown to match
  for (const auto& s : inner_sel_) {
    if (s.matches(t)) return true;
  }
  return false;
}

bool EspSa::refill_ivs(IMB_MGR* mgr) noexcept {
  // Counter block: 8 random bytes, a 32-bit refill count, a 32-bit block
  // index that the job increments (at most kMaxBurst times).
  IMB_JOB* job = IMB_GET_NEXT_JOB(mgr);
  job->cipher_mode = IMB_CIPHER_CNTR;
  job->cipher_direction = IMB_DIR_ENCRYPT;
  job->chain_order = IMB_ORDER_CIPHER_HASH;
  job->hash_alg = IMB_AUTH_NULL;
  job->enc_keys = iv_key_enc_;
  job->dec_keys = iv_key_enc_;
  job->key_len_in_bytes = 16;
  job->src = kZeros;
  job->dst = iv_pool_.data();
  job->cipher_start_src_offset_in_bytes = 0;
  job->msg_len_to_cipher_in_bytes = iv_pool_.size();
  job->iv = iv_ctr_.data();
  job->iv_len_in_bytes = 16;
  job->auth_tag_output = nullptr;
  job->auth_tag_output_len_in_bytes = 0;
  job->hash_start_src_offset_in_bytes = 0;
  job->msg_len_to_hash_in_bytes = 0;
  job->user_data = nullptr;
  IMB_JOB* done = IMB_SUBMIT_JOB(mgr);
  while (done == nullptr) done = IMB_FLUSH_JOB(mgr);
  if (done->status != IMB_STATUS_COMPLETED) return false;  // IVs stay "used up": fail closed
  const std::uint32_t count = rd32(iv_ctr_.data() + 8) + 1;
  wr32(iv_ctr_.data() + 8, count);
  if (count == 0) {  // 2^32 refills: move to the next 64-bit prefix
    for (int i = 7; i >= 0 && ++iv_ctr_[static_cast<std::size_t>(i)] == 0; --i) {
    }
  }
  iv_used_ = 0;
  return true;
}

// ---------------------------------------------------------------- outbound

template <bool kAead>
std::uint16_t EspSa::outbound_burst(EspSa& sa, IMB_MGR* mgr, Packet** pkts, std::uint16_t n) noexcept {
  alignas(16) std::uint8_t nonce[kMaxBurst][12];
  alignas(16) std::uint8_t aad[kMaxBurst][12];
  std::uint8_t* udp6[kMaxBurst];  // set per packet below (zeroing all 32 costs more than one SA's burst of 1)
  GcmCall gcm[kMaxBurst];  // AES-GCM: encrypted after the loop that prepares them
  std::uint16_t n_gcm = 0;

  if constexpr (!kAead) {
    if (sa.iv_len_ && sa.iv_used_ + n > kMaxBurst && !sa.refill_ivs(mgr)) {
      for (std::uint16_t i = 0; i < n; ++i) {
        pkts[i]->drop = DropReason::crypto_error;
        sa.counters_.drops.add(DropReason::crypto_error);
      }
      return 0;
    }
  }
  const std::uint16_t outer_ip_len = sa.v6_ ? 40 : 20;
  const std::uint16_t udp_len = sa.encap_ ? 8 : 0;
  const std::uint16_t esp_hdr = static_cast<std::uint16_t>(8 + sa.iv_len_);

  for (std::uint16_t i = 0; i < n; ++i) {
    Packet* p = pkts[i];
    p->drop = DropReason::none;
    udp6[i] = nullptr;
    if (sa.hard_expired_) {
      p->drop = DropReason::sa_expired;
      continue;
    }
    std::uint8_t* ip = p->data();
    std::uint16_t total = 0;
    // Tunnel mode carries inner fragments as they are; transport mode
    // protects whole datagrams only (RFC 4303 3.3.1).
    const L3 l3 = parse_l3(ip, p->len, total, sa.tunnel_);
    if (l3.hlen == 0) {
      p->drop = DropReason::malformed;
      continue;
    }
    p->len = total;  // ignore trailing bytes beyond the IP length
    const bool inner_v6 = (ip[0] >> 4) == 6;
    std::uint16_t plen;   // bytes of payload to protect
    std::uint16_t hdr;    // bytes to prepend in front of the packet
    std::uint8_t nh;
    if (sa.tunnel_) {
      plen = std::max<std::uint16_t>(total, sa.tfc_pad_to_);
      hdr = static_cast<std::uint16_t>(outer_ip_len + udp_len + esp_hdr);
      nh = inner_v6 ? kNhIpv6 : kNhIpv4;
    } else {
      if (inner_v6 != sa.v6_) {
        p->drop = DropReason::malformed;
        continue;
      }
      plen = static_cast<std::uint16_t>(total - l3.hlen);
      hdr = static_cast<std::uint16_t>(udp_len + esp_hdr);
      nh = l3.proto;
    }
    const unsigned pad = (0u - (plen + 2u)) & (sa.block_ - 1u);  // block is 4 or 16
    const unsigned ct_len = plen + pad + 2u;
    const unsigned tail = (plen - (total - (sa.tunnel_ ? 0 : l3.hlen))) + pad + 2u + sa.icv_len_;
    const unsigned out_len = total + hdr + tail;
    if (out_len > 65535u || (sa.v6_ && out_len - 40u > 65535u)) {
      p->drop = DropReason::too_big;
      continue;
    }
    if (p->headroom() < hdr) {
      p->drop = DropReason::no_headroom;
      continue;
    }
    if (p->tailroom() < tail) {
      p->drop = DropReason::no_tailroom;
      continue;
    }
    const std::uint64_t seq = sa.next_seq_;
    if (sa.seq_exhausted_ || seq > sa.seq_limit() || seq == 0) {
      sa.seq_exhausted_ = true;
      p->drop = DropReason::seq_exhausted;
      continue;
    }
    // RFC 4303 3.3.3: never cycle. After the last number (2^32-1, or
    // 2^64-1 with ESN, where next_seq_ would wrap to 0) the SA is spent.
    if (seq == sa.seq_limit()) sa.seq_exhausted_ = true;
    sa.next_seq_ = seq + 1;

    // Trailer: TFC zeros, padding 1, 2, 3, ... (RFC 4303 2.4), pad length, next header.
    std::uint8_t* end = ip + total;
    const unsigned tfc = plen - (total - (sa.tunnel_ ? 0 : l3.hlen));
    if (tfc != 0) {
      std::memset(end, 0, tfc);
      end += tfc;
    }
    if (p->tailroom() >= tfc + 16u) {
      // One 16-byte copy: the bytes past the pad become the trailer and
      // ICV, or stay unused tailroom.
      std::memcpy(end, kPadBytes, 16);
    } else {
      for (unsigned k = 0; k < pad; ++k) end[k] = kPadBytes[k];
    }
    end += pad;
    end[0] = static_cast<std::uint8_t>(pad);
    end[1] = nh;

    std::uint8_t* out = ip - hdr;
    std::uint8_t* esp;
    if (sa.tunnel_) {
      const std::uint8_t inner_tos = ip_tos(ip);
      // RFC 6040 normal mode: copy ECN; DSCP copied unless configured off.
      const std::uint8_t tos = static_cast<std::uint8_t>((sa.copy_dscp_ ? inner_tos & 0xfc : 0) | (inner_tos & 0x03));
      if (sa.v6_) {
        std::memcpy(out, sa.outer_tmpl_.data(), 40);
        ip_set_tos(out, tos);
        wr16(out + 4, static_cast<std::uint16_t>(out_len - 40));
      } else {
        // DF follows the inner IPv4 header; IPv6 inside never fragments, so DF=1.
        const std::uint16_t frag = (inner_v6 || (ip[6] & 0x40)) ? 0x4000 : 0;
        const std::uint16_t id = sa.ip_id_++;
        std::memcpy(out, sa.outer_tmpl_.data(), 20);
        out[1] = tos;
        wr16(out + 2, static_cast<std::uint16_t>(out_len));
        wr16(out + 4, id);
        wr16(out + 6, frag);
        wr16(out + 10, csum_fold(sa.outer_csum_base_ + tos + out_len + id + frag));
      }
      esp = out + outer_ip_len + udp_len;
    } else {
      // Transport: the IP header moves to the front; ESP goes behind it.
      std::memmove(out, ip, l3.hlen);
      out[l3.nh_off] = sa.encap_ ? kProtoUdp : kProtoEsp;
      if (sa.v6_) {
        wr16(out + 4, static_cast<std::uint16_t>(out_len - 40));
      } else {
        wr16(out + 2, static_cast<std::uint16_t>(out_len));
        ipv4_set_checksum(out);
      }
      esp = out + l3.hlen + udp_len;
    }
    if (sa.encap_) {
      std::uint8_t* udp = esp - 8;
      wr16(udp, sa.encap_sport_);
      wr16(udp + 2, sa.encap_dport_);
      wr16(udp + 4, static_cast<std::uint16_t>(8 + esp_hdr + ct_len + sa.icv_len_));
      wr16(udp + 6, 0);  // RFC 3948 2.1: zero over IPv4; IPv6 filled in after encryption
      if (sa.v6_) udp6[i] = udp;
    }
    wr32(esp, sa.spi_);
    wr32(esp + 4, static_cast<std::uint32_t>(seq));
    std::uint8_t* payload = esp + esp_hdr;
    std::uint8_t* icv = payload + ct_len;

    p->off = static_cast<std::uint16_t>(p->off - hdr);
    p->len = static_cast<std::uint16_t>(out_len);
    sa.account(total);
    if constexpr (kAead) {
      // RFC 4106 3.1 / RFC 7634 2: the IV is the sequence number, unique per SA.
      wr64(esp + 8, seq);
      std::uint32_t alen;
      const std::uint8_t* a = aead_nonce_aad(sa.salt_, sa.esn_, esp, seq, nonce[i], aad[i], alen);
      if (sa.cipher_ != CipherAlg::chacha20_poly1305) {
        gcm[n_gcm++] = GcmCall{nonce[i], a, payload, icv, alen, ct_len};
        continue;
      }
      IMB_JOB* job = IMB_GET_NEXT_JOB(mgr);
      fill_aead_job(job, sa.keys_, sa.cipher_, sa.key_len_, true, nonce[i], a, alen, payload, payload, ct_len, icv);
      job->user_data = p;
      reap(IMB_SUBMIT_JOB(mgr));
    } else {
      IMB_JOB* job = IMB_GET_NEXT_JOB(mgr);
      if (sa.iv_len_) std::memcpy(esp + 8, sa.iv_pool_.data() + 16u * sa.iv_used_++, 16);
      std::uint32_t auth_len = esp_hdr + ct_len;
      if (sa.esn_) {  // RFC 4303 2.2.1: the high half is authenticated, not sent
        wr32(icv, static_cast<std::uint32_t>(seq >> 32));
        auth_len += 4;
      }
      fill_cbc_hmac_job(job, sa.keys_, true, esp, 0, auth_len, esp_hdr, ct_len, esp + 8, icv, sa.icv_len_);
      job->user_data = p;
      reap(IMB_SUBMIT_JOB(mgr));
    }
  }
  run_gcm(mgr, sa.keys_, sa.key_len_, true, gcm, n_gcm);
  reap_all(mgr);

  for (std::uint16_t i = 0; i < n; ++i) {
    Packet* p = pkts[i];
    if (p->drop != DropReason::none) {
      sa.counters_.drops.add(p->drop);
    } else if (udp6[i]) {
      udp6_set_checksum(p->data(), udp6[i], rd16(udp6[i] + 4));
    }
  }
  return partition_good(pkts, n);
}

// ----------------------------------------------------------------- inbound

namespace {

// RFC 6040 4.2, figure 4: the inner ECN field after decapsulation, or -1 to drop.
inline int ecn_decap(unsigned inner, unsigned outer) noexcept {
  if (inner == 0) return outer == 3 ? -1 : 0;  // Not-ECT inside: outer CE means drop
  if (outer == 3) return 3;                    // CE propagates
  if (inner == 2 && outer == 1) return 1;      // ECT(0) inside, ECT(1) outside
  return static_cast<int>(inner);
}

}  // namespace

template <bool kAead>
std::uint16_t EspSa::inbound_burst(EspSa& sa, IMB_MGR* mgr, Packet** pkts, std::uint16_t n) noexcept {
  alignas(16) std::uint8_t nonce[kMaxBurst][12];
  alignas(16) std::uint8_t aad[kMaxBurst][12];
  alignas(16) std::uint8_t computed[kMaxBurst][32];
  alignas(16) std::uint8_t received[kMaxBurst][32];
  GcmCall gcm[kMaxBurst];  // AES-GCM: decrypted after the loop that checks the headers
  std::uint16_t n_gcm = 0;
  struct Meta {
    std::uint64_t seq;
    std::uint8_t* esp;
    std::uint16_t ct_len;
    std::uint16_t hlen;    // outer IP header length
    std::uint16_t nh_off;  // its next-header byte
    std::uint8_t outer_ecn;
  } meta[kMaxBurst];

  const std::uint16_t esp_hdr = static_cast<std::uint16_t>(8 + sa.iv_len_);

  for (std::uint16_t i = 0; i < n; ++i) {
    Packet* p = pkts[i];
    p->drop = DropReason::none;
    if (sa.hard_expired_) {
      p->drop = DropReason::sa_expired;
      continue;
    }
    std::uint8_t* ip = p->data();
    std::uint16_t total = 0;
    const L3 l3 = parse_l3(ip, p->len, total);
    if (l3.hlen == 0) {
      p->drop = DropReason::malformed;
      continue;
    }
    p->len = total;
    if (((ip[0] >> 4) == 6) != sa.v6_) {
      p->drop = DropReason::not_esp;
      continue;
    }
    std::uint8_t* esp = ip + l3.hlen;
    std::uint16_t esp_len = static_cast<std::uint16_t>(total - l3.hlen);
    if (sa.encap_) {
      if (l3.proto != kProtoUdp || esp_len < 8) {
        p->drop = l3.proto == kProtoUdp ? DropReason::malformed : DropReason::not_esp;
        continue;
      }
      const std::uint16_t ulen = rd16(esp + 4);
      if (ulen < 8 || ulen > esp_len) {
        p->drop = DropReason::malformed;
        continue;
      }
      if (classify_udp_4500(esp + 8, ulen - 8u) != Udp4500Kind::esp) {
        p->drop = DropReason::not_esp;
        continue;
      }
      esp += 8;
      esp_len = static_cast<std::uint16_t>(ulen - 8);
    } else if (l3.proto != kProtoEsp) {
      p->drop = DropReason::not_esp;
      continue;
    }
    if (esp_len < esp_hdr + sa.icv_len_ + 4u) {  // at least 4 bytes of ciphertext
      p->drop = DropReason::runt;
      continue;
    }
    if (rd32(esp) != sa.spi_) {
      p->drop = DropReason::spi_mismatch;
      continue;
    }
    const auto ct_len = static_cast<std::uint16_t>(esp_len - esp_hdr - sa.icv_len_);
    if ((ct_len & (sa.block_ - 1u)) != 0) {
      p->drop = DropReason::block_align;
      continue;
    }
    // RFC 4303 3.4.3: replay check before the ICV; commit after it.
    const std::uint64_t seq = sa.replay_.infer(rd32(esp + 4));
    switch (sa.replay_.check(seq)) {
      case ReplayWindow::Verdict::ok: break;
      case ReplayWindow::Verdict::duplicate: p->drop = DropReason::replay; continue;
      case ReplayWindow::Verdict::too_old: p->drop = DropReason::replay_old; continue;
    }
    // Field by field: a whole-struct copy from a temporary reads back
    // narrower stores just made (a store-forwarding stall per packet).
    meta[i].seq = seq;
    meta[i].esp = esp;
    meta[i].ct_len = ct_len;
    meta[i].hlen = l3.hlen;
    meta[i].nh_off = l3.nh_off;
    meta[i].outer_ecn = static_cast<std::uint8_t>(ip_tos(ip) & 3);
    std::uint8_t* ct = esp + esp_hdr;

    if constexpr (kAead) {
      std::uint32_t alen;
      const std::uint8_t* a = aead_nonce_aad(sa.salt_, sa.esn_, esp, seq, nonce[i], aad[i], alen);
      if (sa.cipher_ != CipherAlg::chacha20_poly1305) {
        gcm[n_gcm++] = GcmCall{nonce[i], a, ct, computed[i], alen, ct_len};
        continue;
      }
      IMB_JOB* job = IMB_GET_NEXT_JOB(mgr);
      fill_aead_job(job, sa.keys_, sa.cipher_, sa.key_len_, false, nonce[i], a, alen, ct, ct, ct_len, computed[i]);
      job->user_data = p;
      reap(IMB_SUBMIT_JOB(mgr));
    } else {
      IMB_JOB* job = IMB_GET_NEXT_JOB(mgr);
      std::uint8_t* icv = ct + ct_len;
      std::uint32_t auth_len = esp_hdr + ct_len;
      if (sa.esn_) {
        // The high half is hashed where the ICV starts (RFC 4303 2.2.1):
        // keep the received ICV aside first.
        std::memcpy(received[i], icv, sa.icv_len_);
        wr32(icv, static_cast<std::uint32_t>(seq >> 32));
        auth_len += 4;
      }
      fill_cbc_hmac_job(job, sa.keys_, false, esp, 0, auth_len, esp_hdr, ct_len, esp + 8, computed[i],
                        sa.icv_len_);
      job->user_data = p;
      reap(IMB_SUBMIT_JOB(mgr));
    }
  }
  run_gcm(mgr, sa.keys_, sa.key_len_, false, gcm, n_gcm);
  reap_all(mgr);

  // Verify, commit, strip. Jobs are all complete here.
  for (std::uint16_t i = 0; i < n; ++i) {
    Packet* p = pkts[i];
    if (p->drop != DropReason::none) continue;
    const Meta& m = meta[i];
    std::uint8_t* ct = m.esp + esp_hdr;
    const std::uint8_t* want = (kAead || !sa.esn_) ? ct + m.ct_len : received[i];
    if (!icv_equal(computed[i], want, sa.icv_len_)) {
      p->drop = DropReason::icv;
      continue;
    }
    if (!sa.replay_.commit(m.seq)) {  // a second copy in this burst
      p->drop = DropReason::replay;
      continue;
    }
    const unsigned pad = ct[m.ct_len - 2];
    const std::uint8_t nh = ct[m.ct_len - 1];
    if (pad + 2u > m.ct_len) {
      p->drop = DropReason::pad_len;
      continue;
    }
    const unsigned plen = m.ct_len - 2u - pad;
    bool pad_ok = true;
    for (unsigned k = 0; k < pad; ++k) pad_ok &= ct[plen + k] == static_cast<std::uint8_t>(k + 1);
    if (!pad_ok) {
      p->drop = DropReason::pad;
      continue;
    }
    if (nh == kNhNone) {
      p->drop = DropReason::tfc_dummy;
      continue;
    }
    std::uint8_t* ip = p->data();
    if (sa.tunnel_) {
      const unsigned want_v = nh == kNhIpv4 ? 4 : nh == kNhIpv6 ? 6 : 0;
      if (want_v == 0) {
        p->drop = DropReason::next_header;
        continue;
      }
      std::uint16_t inner_total = 0;
      const bool version_ok = plen >= 20 && (ct[0] >> 4) == want_v;
      if (!version_ok || parse_l3(ct, static_cast<std::uint16_t>(plen), inner_total, true).hlen == 0) {
        p->drop = DropReason::malformed;
        continue;
      }
      const unsigned inner_ecn = ip_tos(ct) & 3u;
      const int ecn = ecn_decap(inner_ecn, m.outer_ecn);
      if (ecn < 0) {
        p->drop = DropReason::ecn;
        continue;
      }
      if (static_cast<unsigned>(ecn) != inner_ecn) {
        ip_set_tos(ct, static_cast<std::uint8_t>((ip_tos(ct) & 0xfc) | static_cast<unsigned>(ecn)));
        if (want_v == 4) ipv4_set_checksum(ct);
      }
      p->off = static_cast<std::uint16_t>(ct - p->buf);
      p->len = inner_total;  // TFC padding beyond the inner packet is dropped
    } else {
      const std::uint16_t hl = m.hlen;
      std::uint8_t* out = ct - hl;
      std::memmove(out, ip, hl);
      out[m.nh_off] = nh;
      const auto new_len = static_cast<std::uint16_t>(hl + plen);
      if (sa.v6_) {
        wr16(out + 4, static_cast<std::uint16_t>(new_len - 40));
      } else {
        wr16(out + 2, new_len);
        ipv4_set_checksum(out);
      }
      p->off = static_cast<std::uint16_t>(out - p->buf);
      p->len = new_len;
    }
    if (sa.check_inner_ && !sa.inner_allowed(p->data(), p->len)) {
      p->drop = DropReason::inner_policy;
      continue;
    }
    sa.account(p->len);
  }
  for (std::uint16_t i = 0; i < n; ++i) {
    if (pkts[i]->drop != DropReason::none) sa.counters_.drops.add(pkts[i]->drop);
  }
  return partition_good(pkts, n);
}

template std::uint16_t EspSa::outbound_burst<true>(EspSa&, IMB_MGR*, Packet**, std::uint16_t) noexcept;
template std::uint16_t EspSa::outbound_burst<false>(EspSa&, IMB_MGR*, Packet**, std::uint16_t) noexcept;
template std::uint16_t EspSa::inbound_burst<true>(EspSa&, IMB_MGR*, Packet**, std::uint16_t) noexcept;
template std::uint16_t EspSa::inbound_burst<false>(EspSa&, IMB_MGR*, Packet**, std::uint16_t) noexcept;

}  // namespace cygnet::dp::esp
