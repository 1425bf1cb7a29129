#include "dp/sad/sad.h"

#include <sys/random.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>

namespace cygnet::dp::sad {

namespace {

using detail::Bucket;
using detail::InboundTable;
using detail::kEmpty;
using detail::kSlotsPerBucket;
using detail::kTombstone;
using detail::SlotDst;

constexpr std::size_t kMinSlots = 64;  // 8 buckets

// 128 random bits for this process, from getrandom(); the clock and
// std::random_device only if the kernel has no getrandom at all.
std::uint64_t process_seed() {
  std::uint64_t s[2] = {0, 0};
  auto* p = reinterpret_cast<unsigned char*>(s);
  std::size_t got = 0;
  while (got < sizeof s) {
    const ssize_t n = getrandom(p + got, sizeof s - got, 0);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      std::random_device rd;
      s[0] ^= (std::uint64_t{rd()} << 32) ^ rd();
      s[1] ^= static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
      break;
    }
  }
  return s[0] ^ (s[1] * 0x9e3779b97f4a7c15ULL);
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A fresh multiply-add-shift key per table: (mul * spi + add) >> shift is a
// universal hash of the 32-bit SPI for any table of up to 2^32 buckets, so
// whoever picks SPIs cannot aim them at one bucket without knowing the key.
void draw_keys(InboundTable& t) {
  static const std::uint64_t seed = process_seed();
  static std::atomic<std::uint64_t> counter{0};
  const std::uint64_t n = counter.fetch_add(2, std::memory_order_relaxed);
  t.mul = splitmix64(seed + n * 0x9e3779b97f4a7c15ULL);
  t.add = splitmix64(seed + (n + 1) * 0x9e3779b97f4a7c15ULL);
}

std::unique_ptr<InboundTable> make_table(std::size_t slots) {
  auto t = std::make_unique<InboundTable>();
  const std::size_t buckets = slots / kSlotsPerBucket;
  t->slots = slots;
  t->mask = buckets - 1;
  t->shift = 64u - static_cast<unsigned>(std::countr_zero(buckets));
  t->probe = static_cast<unsigned>(std::min<std::size_t>(detail::kMaxProbeBuckets, buckets));
  t->buckets = std::make_unique<Bucket[]>(buckets);  // zeroed: all empty
  t->dst.reset(new SlotDst[slots]);                  // written before each slot is published
  draw_keys(*t);
  return t;
}

// Sizing: at most half the slots used (live + tombstones), and after a
// rebuild room for 1/32 of the live entries more before the next one.
std::size_t slots_for(std::size_t live) {
  const std::size_t need = 2 * (live + live / 32 + 64);
  return std::max(kMinSlots, std::bit_ceil(need));
}

void write_dst(SlotDst& d, std::uint32_t family, const std::uint8_t* a) {
  std::memset(d.addr, 0, sizeof d.addr);
  std::memcpy(d.addr, a, family == 4 ? 4 : 16);
  d.family = family;
}

std::string spi_text(std::uint32_t spi) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%08x", spi);
  return buf;
}

std::string dst_text(std::uint32_t family, const std::uint8_t* a) {
  return family == 4 ? IpAddress::v4_bytes(a).to_string() : IpAddress::v6_bytes(a).to_string();
}

// The checks insert() and erase() share: family and address.
Result<void> check_dst(Family family, const std::uint8_t* dst) {
  const auto f = static_cast<unsigned>(family);
  if (f != 4 && f != 6) {
    return make_error("SAD: address family " + std::to_string(f) + " is neither IPv4 (4) nor IPv6 (6)");
  }
  if (dst == nullptr) return make_error("SAD: the destination address is missing (null)");
  return {};
}

}  // namespace

// ---------------------------------------------------------------------------
// InboundSad

Result<std::unique_ptr<InboundSad>> InboundSad::create(rcu::Qsbr& qsbr, std::size_t capacity_hint) {
  if (capacity_hint > kMaxCapacityHint) {
    return make_error("SAD: capacity hint " + std::to_string(capacity_hint) + " is above the maximum of " +
                      std::to_string(kMaxCapacityHint) + " SAs");
  }
  return std::unique_ptr<InboundSad>(new InboundSad(qsbr, slots_for(capacity_hint)));
}

InboundSad::InboundSad(rcu::Qsbr& qsbr, std::size_t min_slots) : min_slots_(min_slots), retirer_(qsbr) {
  publish(make_table(min_slots_));
}

InboundSad::~InboundSad() { retirer_.drain(); }

InboundSad::Probe InboundSad::probe(const InboundTable& t, std::uint32_t spi, std::uint32_t family,
                                    const std::uint8_t* dst) const noexcept {
  Probe r;
  std::size_t b = t.home(spi);
  for (unsigned i = 0; i < t.probe; ++i) {
    bool end = false;
    for (unsigned s = 0; s < kSlotsPerBucket; ++s) {
      const std::size_t slot = b * kSlotsPerBucket + s;
      const std::uint64_t w = t.buckets[b].w[s].load(std::memory_order_relaxed);  // only the writer stores
      if (w == kEmpty) {
        if (r.empty == SIZE_MAX) r.empty = slot;
        end = true;
      } else if ((w >> 32) == spi) {
        if (t.dst_is(slot, family, dst)) {
          r.found = slot;
          return r;
        }
        ++r.same_spi;
      }
    }
    if (end) return r;
    b = (b + 1) & t.mask;
  }
  return r;
}

std::size_t InboundSad::target_slots(std::size_t live) const noexcept { return std::max(min_slots_, slots_for(live)); }

void InboundSad::publish(std::unique_ptr<InboundTable> t) {
  t->generation = next_gen_++;
  std::unique_ptr<InboundTable> old = std::move(owned_);
  owned_ = std::move(t);
  table_.store(owned_.get(), std::memory_order_release);
  if (!old) return;
  ++rebuilds_;
  const std::uint64_t gen = old->generation;
  InboundTable* raw = old.release();
  retirer_.retire_fn([this, raw, gen] {
    delete raw;
    if (gen > freed_gen_.load(std::memory_order_relaxed)) freed_gen_.store(gen, std::memory_order_release);
  });
}

// Copies the live entries of the published table into a new one of `slots`
// slots (fresh hash key, no tombstones), then publishes it. Should an entry
// find no empty slot within the probe bound, tries another key, then a
// bigger table.
void InboundSad::rebuild(std::size_t slots) {
  const InboundTable& old = *owned_;
  for (unsigned tries = 1;; ++tries) {
    auto t = make_table(slots);
    bool placed_all = true;
    for (std::size_t ob = 0; ob <= old.mask && placed_all; ++ob) {
      for (unsigned os = 0; os < kSlotsPerBucket; ++os) {
        const std::uint64_t w = old.buckets[ob].w[os].load(std::memory_order_relaxed);
        if (w == kEmpty || w == kTombstone) continue;
        std::size_t b = t->home(static_cast<std::uint32_t>(w >> 32));
        std::size_t slot = SIZE_MAX;
        for (unsigned i = 0; i < t->probe && slot == SIZE_MAX; ++i) {
          for (unsigned s = 0; s < kSlotsPerBucket; ++s) {
            if (t->buckets[b].w[s].load(std::memory_order_relaxed) == kEmpty) {
              slot = b * kSlotsPerBucket + s;
              break;
            }
          }
          b = (b + 1) & t->mask;
        }
        if (slot == SIZE_MAX) {
          placed_all = false;
          break;
        }
        t->dst[slot] = old.dst[ob * kSlotsPerBucket + os];
        // Not yet visible to readers: publish()'s release store orders it.
        t->buckets[slot / kSlotsPerBucket].w[slot % kSlotsPerBucket].store(w, std::memory_order_relaxed);
      }
    }
    if (placed_all) {
      used_ = live_.load(std::memory_order_relaxed);
      publish(std::move(t));
      return;
    }
    if (tries % 2 == 0) slots *= 2;
  }
}

void InboundSad::compact() { rebuild(target_slots(live_.load(std::memory_order_relaxed))); }

Result<void> InboundSad::insert(std::uint32_t spi, Family family, const std::uint8_t* dst, SaHandle sa) {
  if (spi == 0) return make_error("SAD: SPI 0 is reserved (RFC 4303 2.1) and never identifies an SA");
  if (spi < kMinSpi) {
    return make_error("SAD: SPI " + std::to_string(spi) + " is in the range 1-255 reserved by IANA (RFC 4303 2.1)");
  }
  if (auto r = check_dst(family, dst); !r) return r;
  if (sa == kNoSa) return make_error("SAD: handle " + std::to_string(kNoSa) + " (kNoSa) is not an SA");
  const auto fam = static_cast<std::uint32_t>(family);

  for (unsigned attempt = 0;; ++attempt) {
    if (used_ + 1 > owned_->slots / 2) rebuild(target_slots(live_.load(std::memory_order_relaxed) + 1));
    InboundTable& t = *owned_;
    const Probe p = probe(t, spi, fam, dst);
    if (p.found != SIZE_MAX) {
      const auto have = static_cast<SaHandle>(
          t.buckets[p.found / kSlotsPerBucket].w[p.found % kSlotsPerBucket].load(std::memory_order_relaxed));
      return make_error("SAD: an SA with SPI " + spi_text(spi) + " and destination " + dst_text(fam, dst) +
                        " already exists (handle " + std::to_string(have) + ")");
    }
    if (p.same_spi >= kMaxSasPerSpi) {
      return make_error("SAD: SPI " + spi_text(spi) + " already has " + std::to_string(p.same_spi) +
                        " SAs (each to another destination), the most for one SPI");
    }
    if (p.empty == SIZE_MAX) {
      // The probe sequence is full: a new key, then a bigger table.
      // Practically never at half load with 8-slot buckets.
      if (attempt == 3) {
        return make_error("SAD: no room for SPI " + spi_text(spi) + " within " +
                          std::to_string(detail::kMaxProbeBuckets) + " buckets after rebuilding");
      }
      rebuild(attempt == 0 ? t.slots : t.slots * 2);
      continue;
    }
    write_dst(t.dst[p.empty], fam, dst);
    const std::uint64_t w = (std::uint64_t{spi} << 32) | sa;
    t.buckets[p.empty / kSlotsPerBucket].w[p.empty % kSlotsPerBucket].store(w, std::memory_order_release);
    ++used_;
    live_.store(live_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return {};
  }
}

Result<void> InboundSad::insert(std::uint32_t spi, const IpAddress& dst, SaHandle sa) {
  return insert(spi, dst.family, dst.bytes.data(), sa);
}

Result<SaHandle> InboundSad::erase(std::uint32_t spi, Family family, const std::uint8_t* dst) {
  if (auto r = check_dst(family, dst); !r) return r.error();
  const auto fam = static_cast<std::uint32_t>(family);
  const Probe p = spi < kMinSpi ? Probe{} : probe(*owned_, spi, fam, dst);
  if (p.found == SIZE_MAX) {
    return make_error("SAD: no SA with SPI " + spi_text(spi) + " and destination " + dst_text(fam, dst));
  }
  auto& word = owned_->buckets[p.found / kSlotsPerBucket].w[p.found % kSlotsPerBucket];
  const auto h = static_cast<SaHandle>(word.load(std::memory_order_relaxed));
  word.store(kTombstone, std::memory_order_release);
  const std::size_t live = live_.load(std::memory_order_relaxed) - 1;
  live_.store(live, std::memory_order_relaxed);
  // Mostly empty after mass deletion: shrink (never below the hint's size).
  if (live < owned_->slots / 16) {
    const std::size_t smaller = target_slots(live);
    if (smaller < owned_->slots) rebuild(smaller);
  }
  return h;
}

Result<SaHandle> InboundSad::erase(std::uint32_t spi, const IpAddress& dst) {
  return erase(spi, dst.family, dst.bytes.data());
}

InboundSad::Stats InboundSad::stats() const noexcept {
  const InboundTable& t = *owned_;
  const std::size_t live = live_.load(std::memory_order_relaxed);
  return Stats{live,
               used_ - live,
               t.slots,
               t.slots / kSlotsPerBucket * sizeof(Bucket) + t.slots * sizeof(SlotDst),
               rebuilds_,
               retirer_.pending()};
}

// ---------------------------------------------------------------------------
// OutboundSad

Result<std::unique_ptr<OutboundSad>> OutboundSad::create(rcu::Qsbr& qsbr, std::uint32_t max_slots) {
  if (max_slots == 0 || max_slots > kMaxSlotsLimit) {
    return make_error("SAD: max_slots " + std::to_string(max_slots) + " is outside 1.." +
                      std::to_string(kMaxSlotsLimit));
  }
  return std::unique_ptr<OutboundSad>(new OutboundSad(qsbr, max_slots));
}

OutboundSad::OutboundSad(rcu::Qsbr& qsbr, std::uint32_t max_slots)
    : max_slots_(max_slots), slots_(std::make_unique<std::atomic<const SaSet*>[]>(max_slots)), retirer_(qsbr) {
  for (std::uint32_t i = 0; i < max_slots_; ++i) slots_[i].store(&kEmptySaSet, std::memory_order_relaxed);
}

OutboundSad::~OutboundSad() {
  retirer_.drain();
  for (SetSlot i = 0; i < next_unused_; ++i) {
    const SaSet* s = slots_[i].load(std::memory_order_relaxed);
    if (s != &kEmptySaSet) delete s;
  }
}

Result<SetSlot> OutboundSad::slot_for(std::uint32_t reqid) {
  if (reqid == 0) return make_error("SAD: reqid 0 means no SA set; reqids start at 1");
  if (auto it = by_reqid_.find(reqid); it != by_reqid_.end()) return it->second;
  SetSlot s;
  if (!free_.empty()) {
    s = free_.back();
    free_.pop_back();
  } else if (next_unused_ < max_slots_) {
    s = next_unused_++;
  } else {
    return make_error("SAD: all " + std::to_string(max_slots_) + " SA-set slots are in use (reqid " +
                      std::to_string(reqid) + " needs one); raise max_slots");
  }
  by_reqid_.emplace(reqid, s);
  return s;
}

std::optional<SetSlot> OutboundSad::find(std::uint32_t reqid) const {
  if (auto it = by_reqid_.find(reqid); it != by_reqid_.end()) return it->second;
  return std::nullopt;
}

void OutboundSad::replace(SetSlot slot, const SaSet* next) {
  const SaSet* old = slots_[slot].load(std::memory_order_relaxed);
  slots_[slot].store(next, std::memory_order_release);
  if (old != &kEmptySaSet) retirer_.retire_fn([old] { delete old; });
}

Result<SetSlot> OutboundSad::set(std::uint32_t reqid, std::span<const SaHandle> sas) {
  if (reqid == 0) return make_error("SAD: reqid 0 means no SA set; reqids start at 1");
  if (sas.size() > kMaxSetSize) {
    return make_error("SAD: reqid " + std::to_string(reqid) + ": " + std::to_string(sas.size()) +
                      " SAs in one set, the most is " + std::to_string(kMaxSetSize));
  }
  for (std::size_t i = 0; i < sas.size(); ++i) {
    if (sas[i] == kNoSa) {
      return make_error("SAD: reqid " + std::to_string(reqid) + ": entry " + std::to_string(i) +
                        " is kNoSa, not an SA");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (sas[j] == sas[i]) {
        return make_error("SAD: reqid " + std::to_string(reqid) + ": handle " + std::to_string(sas[i]) +
                          " appears twice in the set");
      }
    }
  }
  auto slot = slot_for(reqid);
  if (!slot) return slot;
  if (sas.empty()) {
    replace(*slot, &kEmptySaSet);
  } else {
    auto s = std::make_unique<SaSet>();
    s->count = static_cast<std::uint32_t>(sas.size());
    std::copy(sas.begin(), sas.end(), s->sa);
    replace(*slot, s.release());
  }
  return slot;
}

Result<void> OutboundSad::clear(std::uint32_t reqid) {
  const auto slot = find(reqid);
  if (!slot) return make_error("SAD: no SA set for reqid " + std::to_string(reqid));
  replace(*slot, &kEmptySaSet);
  return {};
}

Result<void> OutboundSad::release(std::uint32_t reqid) {
  const auto slot = find(reqid);
  if (!slot) return make_error("SAD: no SA set for reqid " + std::to_string(reqid));
  replace(*slot, &kEmptySaSet);
  by_reqid_.erase(reqid);
  retirer_.retire_fn([this, s = *slot] { free_.push_back(s); });
  return {};
}

}  // namespace cygnet::dp::sad
