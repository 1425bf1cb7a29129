// InboundSad and OutboundSad: lookups, refused inputs, a million SAs,
// growth and tombstone churn, and a reader thread racing the writer.
#include "dp/sad/sad.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace cygnet::dp::sad {
namespace {

IpAddress ip(const char* text) {
  auto a = IpAddress::parse(text);
  EXPECT_TRUE(a.ok()) << text;
  return *a;
}

bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

std::unique_ptr<InboundSad> make_in(rcu::Qsbr& q, std::size_t hint) {
  auto r = InboundSad::create(q, hint);
  EXPECT_TRUE(r.ok());
  return std::move(*r);
}

std::unique_ptr<OutboundSad> make_out(rcu::Qsbr& q, std::uint32_t max_slots) {
  auto r = OutboundSad::create(q, max_slots);
  EXPECT_TRUE(r.ok());
  return std::move(*r);
}

// ---------------------------------------------------------------------------
// InboundSad

TEST(InboundSad, InsertLookupErase) {
  rcu::Qsbr q(1);
  auto sad = make_in(q, 16);
  const IpAddress d = ip("192.0.2.1");
  ASSERT_TRUE(sad->insert(0x1000, d, 7).ok());
  EXPECT_EQ(sad->size(), 1u);
  EXPECT_EQ(sad->lookup(0x1000, d), 7u);
  EXPECT_EQ(sad->lookup(0x1001, d), kNoSa);
  EXPECT_EQ(sad->lookup(0x1000, ip("192.0.2.2")), kNoSa);
  EXPECT_EQ(sad->lookup(0x1000, ip("2001:db8::1")), kNoSa);

  // IPv4 reads exactly 4 bytes at dst (e.g. the packet's header).
  const std::array<std::uint8_t, 4> raw = {192, 0, 2, 1};
  EXPECT_EQ(sad->lookup(0x1000, Family::ipv4, raw.data()), 7u);

  auto e = sad->erase(0x1000, d);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e, 7u);
  EXPECT_EQ(sad->size(), 0u);
  EXPECT_EQ(sad->lookup(0x1000, d), kNoSa);
  auto again = sad->erase(0x1000, d);
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(has(again.error().message, "no SA with SPI 0x00001000 and destination 192.0.2.1"))
      << again.error().message;

  // Reinsert after erase, with another handle; handle 0 is a valid index.
  ASSERT_TRUE(sad->insert(0x1000, d, 0).ok());
  EXPECT_EQ(sad->lookup(0x1000, d), 0u);
}

TEST(InboundSad, SameSpiResolvedByDestination) {
  rcu::Qsbr q(1);
  auto sad = make_in(q, 16);
  // 10.0.0.1 and the IPv6 address starting with the same 4 bytes must differ
  // by family, not only by bytes.
  const char* dsts[] = {"10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8::2", "a00:1::", "::"};
  for (SaHandle h = 0; h < 6; ++h) ASSERT_TRUE(sad->insert(0xabcd, ip(dsts[h]), h + 100).ok()) << dsts[h];
  for (SaHandle h = 0; h < 6; ++h) EXPECT_EQ(sad->lookup(0xabcd, ip(dsts[h])), h + 100) << dsts[h];
  EXPECT_EQ(sad->lookup(0xabcd, ip("10.0.0.3")), kNoSa);
  EXPECT_EQ(sad->lookup(0xabcd, ip("2001:db8::3")), kNoSa);

  ASSERT_TRUE(sad->erase(0xabcd, ip("10.0.0.1")).ok());
  ASSERT_TRUE(sad->erase(0xabcd, ip("2001:db8::2")).ok());
  EXPECT_EQ(sad->lookup(0xabcd, ip("10.0.0.1")), kNoSa);
  EXPECT_EQ(sad->lookup(0xabcd, ip("2001:db8::2")), kNoSa);
  EXPECT_EQ(sad->lookup(0xabcd, ip("10.0.0.2")), 101u);
  EXPECT_EQ(sad->lookup(0xabcd, ip("2001:db8::1")), 102u);
  EXPECT_EQ(sad->lookup(0xabcd, ip("a00:1::")), 104u);
  EXPECT_EQ(sad->lookup(0xabcd, ip("::")), 105u);
}

TEST(InboundSad, AtMostKMaxSasPerSpi) {
  rcu::Qsbr q(1);
  auto sad = make_in(q, 1024);
  for (unsigned i = 0; i < kMaxSasPerSpi; ++i) {
    ASSERT_TRUE(sad->insert(0x5000, IpAddress::v4(0x0a000000 + i), i).ok()) << i;
  }
  auto r = sad->insert(0x5000, IpAddress::v4(0x0b000000), 99);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "already has 32 SAs")) << r.error().message;
  for (unsigned i = 0; i < kMaxSasPerSpi; ++i) EXPECT_EQ(sad->lookup(0x5000, IpAddress::v4(0x0a000000 + i)), i);
}

TEST(InboundSad, RefusedInputs) {
  rcu::Qsbr q(1);
  auto sad = make_in(q, 16);
  const IpAddress d = ip("198.51.100.7");

  auto r = sad->insert(0, d, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "SPI 0 is reserved")) << r.error().message;
  for (std::uint32_t spi : {1u, 100u, 255u}) {
    r = sad->insert(spi, d, 1);
    ASSERT_FALSE(r.ok()) << spi;
    EXPECT_TRUE(has(r.error().message, "reserved by IANA")) << r.error().message;
  }
  EXPECT_TRUE(sad->insert(256, d, 1).ok());  // the first usable SPI

  ASSERT_TRUE(sad->insert(0x2000, d, 2).ok());
  r = sad->insert(0x2000, d, 3);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "SPI 0x00002000 and destination 198.51.100.7 already exists (handle 2)"))
      << r.error().message;
  EXPECT_EQ(sad->lookup(0x2000, d), 2u);  // unchanged

  const std::uint8_t bytes[16] = {1, 2, 3, 4};
  r = sad->insert(0x3000, Family::none, bytes, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "family 0 is neither IPv4 (4) nor IPv6 (6)")) << r.error().message;
  r = sad->insert(0x3000, static_cast<Family>(5), bytes, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "family 5")) << r.error().message;
  r = sad->insert(0x3000, Family::ipv4, nullptr, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "missing")) << r.error().message;
  r = sad->insert(0x3000, d, kNoSa);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "kNoSa")) << r.error().message;

  auto e = sad->erase(0x3000, static_cast<Family>(7), bytes);
  ASSERT_FALSE(e.ok());
  EXPECT_TRUE(has(e.error().message, "family 7")) << e.error().message;
  EXPECT_FALSE(sad->erase(0, d).ok());
  EXPECT_FALSE(sad->erase(0x3000, Family::ipv6, nullptr).ok());

  EXPECT_EQ(sad->size(), 2u);
  // Lookups of what can never be inserted give kNoSa, never a match.
  EXPECT_EQ(sad->lookup(0, d), kNoSa);
  EXPECT_EQ(sad->lookup(1, d), kNoSa);
  EXPECT_EQ(sad->lookup(0x2000, static_cast<Family>(5), d.bytes.data()), kNoSa);

  auto big = InboundSad::create(q, InboundSad::kMaxCapacityHint + 1);
  ASSERT_FALSE(big.ok());
  EXPECT_TRUE(has(big.error().message, "above the maximum")) << big.error().message;
}

// Keys over a pool of destinations, as a gateway sees them: many SPIs to a
// few local addresses, IPv4 and IPv6.
struct Key {
  std::uint32_t spi;
  std::uint32_t dst;  // index into Pool
};

struct Pool {
  std::vector<IpAddress> dsts;
  Pool() {
    for (std::uint32_t i = 0; i < 8; ++i) dsts.push_back(IpAddress::v4(0xc0000200 + i));
    for (std::uint8_t i = 0; i < 8; ++i) {
      IpAddress a = ip("2001:db8::");
      a.bytes[15] = i;
      dsts.push_back(a);
    }
  }
  const IpAddress& operator[](std::uint32_t i) const { return dsts[i]; }
  std::uint32_t size() const { return static_cast<std::uint32_t>(dsts.size()); }
};

// A bijection on 32 bits: distinct inputs give distinct, well spread SPIs.
std::uint32_t scramble(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// n distinct keys in pairs that share an SPI (two destinations, often of
// different families), and n keys that are not among them: half with SPIs
// never used, half with a used SPI and a third destination.
void random_keys(std::size_t n, const Pool& pool, std::vector<Key>& in, std::vector<Key>& out) {
  const std::uint32_t m = pool.size();  // 16
  in.reserve(n);
  out.reserve(n);
  std::uint32_t j = 0, absent_j = 0;
  auto next = [](std::uint32_t& c, std::uint32_t base) {
    for (;;) {
      const std::uint32_t spi = scramble(base + c++);
      if (spi >= kMinSpi) return spi;
    }
  };
  while (in.size() < n) {
    const std::uint32_t spi = next(j, 1);
    const std::uint32_t h = scramble(spi);
    const std::uint32_t d1 = h % m, d2 = (d1 + 1 + (h >> 4) % 7) % m, d3 = (d1 + 8 + (h >> 8) % 8) % m;
    in.push_back({spi, d1});
    if (in.size() < n) in.push_back({spi, d2});
    if (out.size() < n) out.push_back({spi, d3});
    if (out.size() < n) out.push_back({next(absent_j, 0x80000000U), h % m});
  }
}

TEST(InboundSad, MillionRandom) {
  constexpr std::size_t kN = 1'000'000;
  const Pool pool;
  std::vector<Key> in, out;
  random_keys(kN, pool, in, out);

  rcu::Qsbr q(1);
  auto sad = make_in(q, kN);
  for (std::size_t i = 0; i < kN; ++i) {
    ASSERT_TRUE(sad->insert(in[i].spi, pool[in[i].dst], static_cast<SaHandle>(i)).ok()) << i;
  }
  EXPECT_EQ(sad->size(), kN);
  EXPECT_EQ(sad->stats().rebuilds, 0u) << "the capacity hint should hold 1M SAs without a rebuild";

  std::size_t wrong = 0;
  for (std::size_t i = 0; i < kN; ++i) wrong += sad->lookup(in[i].spi, pool[in[i].dst]) != i;
  EXPECT_EQ(wrong, 0u);
  std::size_t found = 0;
  for (const Key& k : out) found += sad->lookup(k.spi, pool[k.dst]) != kNoSa;
  EXPECT_EQ(found, 0u);

  // Erase every other one.
  for (std::size_t i = 0; i < kN; i += 2) {
    auto e = sad->erase(in[i].spi, pool[in[i].dst]);
    ASSERT_TRUE(e.ok()) << i;
    ASSERT_EQ(*e, i);
  }
  EXPECT_EQ(sad->size(), kN / 2);
  wrong = 0;
  for (std::size_t i = 0; i < kN; ++i) {
    const SaHandle want = i % 2 == 0 ? kNoSa : static_cast<SaHandle>(i);
    wrong += sad->lookup(in[i].spi, pool[in[i].dst]) != want;
  }
  EXPECT_EQ(wrong, 0u);
  found = 0;
  for (const Key& k : out) found += sad->lookup(k.spi, pool[k.dst]) != kNoSa;
  EXPECT_EQ(found, 0u);
}

TEST(InboundSad, GrowsPastTheCapacityHint) {
  constexpr std::size_t kN = 100'000;
  const Pool pool;
  std::vector<Key> in, out;
  random_keys(kN, pool, in, out);
  rcu::Qsbr q(1);
  auto sad = make_in(q, 16);
  const std::size_t first = sad->stats().slots;
  for (std::size_t i = 0; i < kN; ++i) {
    ASSERT_TRUE(sad->insert(in[i].spi, pool[in[i].dst], static_cast<SaHandle>(i)).ok()) << i;
  }
  const auto st = sad->stats();
  EXPECT_GT(st.rebuilds, 5u);
  EXPECT_GE(st.slots, 2 * kN);
  EXPECT_LE(st.slots, 8 * kN);
  EXPECT_GT(st.slots, first);
  EXPECT_EQ(sad->generation(), st.rebuilds + 1);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < kN; ++i) wrong += sad->lookup(in[i].spi, pool[in[i].dst]) != i;
  EXPECT_EQ(wrong, 0u);
  std::size_t found = 0;
  for (const Key& k : out) found += sad->lookup(k.spi, pool[k.dst]) != kNoSa;
  EXPECT_EQ(found, 0u);
  // No reader is online: every replaced table can go at once.
  EXPECT_EQ(sad->reclaim(), 0u);
  EXPECT_EQ(sad->freed_generation(), sad->generation() - 1);

  // Erasing everything shrinks it back to the hint's size.
  for (std::size_t i = 0; i < kN; ++i) ASSERT_TRUE(sad->erase(in[i].spi, pool[in[i].dst]).ok()) << i;
  EXPECT_EQ(sad->size(), 0u);
  EXPECT_EQ(sad->stats().slots, first);
  EXPECT_EQ(sad->lookup(in[0].spi, pool[in[0].dst]), kNoSa);
}

TEST(InboundSad, TombstoneChurn) {
  const Pool pool;
  std::vector<Key> stable, churn;
  random_keys(2000, pool, stable, churn);
  rcu::Qsbr q(1);
  auto sad = make_in(q, 4096);
  for (std::size_t i = 0; i < stable.size(); ++i) {
    ASSERT_TRUE(sad->insert(stable[i].spi, pool[stable[i].dst], static_cast<SaHandle>(i)).ok());
  }
  const std::size_t slots = sad->stats().slots;
  // 300 rounds of inserting then erasing 2000 keys: 600k tombstones made.
  for (unsigned round = 0; round < 300; ++round) {
    for (std::size_t i = 0; i < churn.size(); ++i) {
      ASSERT_TRUE(sad->insert(churn[i].spi, pool[churn[i].dst], static_cast<SaHandle>(100000 + round * 4096 + i)).ok());
    }
    if (round % 50 == 0) {
      for (std::size_t i = 0; i < churn.size(); ++i) {
        ASSERT_EQ(sad->lookup(churn[i].spi, pool[churn[i].dst]), 100000 + round * 4096 + i);
      }
    }
    for (std::size_t i = 0; i < churn.size(); ++i) {
      auto e = sad->erase(churn[i].spi, pool[churn[i].dst]);
      ASSERT_TRUE(e.ok());
      ASSERT_EQ(*e, 100000 + round * 4096 + i);
    }
    sad->reclaim();
  }
  const auto st = sad->stats();
  EXPECT_EQ(st.size, stable.size());
  EXPECT_EQ(st.slots, slots) << "churn must not grow the table";
  EXPECT_LE(st.size + st.tombstones, st.slots / 2);
  EXPECT_GT(st.rebuilds, 50u);  // tombstones were cleaned by rebuilds
  for (std::size_t i = 0; i < stable.size(); ++i) {
    EXPECT_EQ(sad->lookup(stable[i].spi, pool[stable[i].dst]), i);
  }
  for (const Key& k : churn) EXPECT_EQ(sad->lookup(k.spi, pool[k.dst]), kNoSa);
}

// A replaced table waits for the reader's quiescent point, deterministically.
TEST(InboundSad, ReplacedTableFreedOnlyAfterQuiescence) {
  rcu::Qsbr q(1);
  auto sad = make_in(q, 16);
  ASSERT_TRUE(sad->insert(0x1234, ip("192.0.2.9"), 5).ok());
  q.online(0);
  EXPECT_EQ(sad->generation(), 1u);
  EXPECT_EQ(sad->lookup(0x1234, ip("192.0.2.9")), 5u);  // the reader holds table 1
  sad->compact();
  EXPECT_EQ(sad->generation(), 2u);
  int deferred = 0;
  sad->defer([&deferred] { ++deferred; });
  EXPECT_EQ(sad->reclaim(), 2u);
  EXPECT_EQ(sad->freed_generation(), 0u);
  EXPECT_EQ(deferred, 0);
  q.quiescent(0);
  EXPECT_EQ(sad->reclaim(), 0u);
  EXPECT_EQ(sad->freed_generation(), 1u);
  EXPECT_EQ(deferred, 1);
  EXPECT_EQ(sad->lookup(0x1234, ip("192.0.2.9")), 5u);
  sad->compact();
  EXPECT_EQ(sad->reclaim(), 1u);
  q.offline(0);  // an offline reader holds nothing
  EXPECT_EQ(sad->reclaim(), 0u);
  EXPECT_EQ(sad->freed_generation(), 2u);
}

// A reader thread looks up continuously while the writer inserts, erases,
// grows, shrinks and rebuilds. Each handle names its key and a version, so
// the reader can tell a handle that was never valid for the key; keys that
// are never erased must always be found; and no table the reader may be
// using in a batch is freed before the reader's quiescent point.
TEST(InboundSadConcurrent, ReaderSeesValidHandlesAndLiveTables) {
  constexpr unsigned kKeys = 2048;
  constexpr unsigned kWriterOps = 150'000;
  rcu::Qsbr q(1);
  auto sad = make_in(q, 64);

  // Key k: SPI 0x10000 + k / 4; four destinations per SPI, one an IPv6
  // address with the same first bytes as the IPv4 one.
  const IpAddress dsts[4] = {ip("10.0.0.1"), ip("10.0.0.2"), ip("a00:1::"), ip("2001:db8::1")};
  auto spi = [](unsigned k) { return 0x10000u + k / 4; };
  auto dst = [&dsts](unsigned k) -> const IpAddress& { return dsts[k % 4]; };
  auto handle = [](unsigned k, unsigned ver) { return static_cast<SaHandle>((k << 12) | ver); };
  auto stable = [](unsigned k) { return k % 8 == 0; };

  std::vector<std::atomic<std::uint32_t>> latest(kKeys);  // newest version inserted per key
  std::vector<unsigned> version(kKeys, 0);
  std::vector<bool> present(kKeys, false);
  for (unsigned k = 0; k < kKeys; k += 8) {
    version[k] = 1;
    latest[k].store(1, std::memory_order_relaxed);
    ASSERT_TRUE(sad->insert(spi(k), dst(k), handle(k, 1)).ok());
    present[k] = true;
  }

  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> batches{0};
  std::uint64_t bad_handles = 0, missing_stable = 0, early_frees = 0, lookups = 0;
  std::string first_failure;  // read after join()
  std::thread reader([&] {
    std::mt19937 rng(7);
    q.online(0);
    while (!done.load(std::memory_order_acquire)) {
      const std::uint64_t gen = sad->generation();
      for (unsigned i = 0; i < 256; ++i) {
        const unsigned k = rng() % kKeys;
        const SaHandle h = sad->lookup(spi(k), dst(k));
        ++lookups;
        if (stable(k)) {
          if (h != handle(k, 1)) {
            if (++missing_stable == 1) first_failure = "stable key " + std::to_string(k) + " gave " + std::to_string(h);
          }
        } else if (h != kNoSa) {
          const unsigned ver = h & 0xfff;
          if ((h >> 12) != k || ver == 0 || ver > latest[k].load(std::memory_order_acquire)) {
            if (++bad_handles == 1) first_failure = "key " + std::to_string(k) + " gave " + std::to_string(h);
          }
        }
      }
      // Table `gen` was published when the batch began; it and any later
      // one may be in use until quiescent(), so none may be freed yet.
      if (sad->freed_generation() >= gen) {
        if (++early_frees == 1) first_failure = "table " + std::to_string(gen) + " freed during the batch";
      }
      q.quiescent(0);
      batches.fetch_add(1, std::memory_order_relaxed);
    }
    q.offline(0);
  });

  std::uint64_t inserts = 0, erases = 0;
  // In a lambda so that a failed ASSERT still stops and joins the reader.
  auto write = [&] {
    std::mt19937 rng(99);
    for (unsigned op = 0; op < kWriterOps; ++op) {
      // Phases of mostly inserting and mostly erasing: the table grows and shrinks.
      const bool fill = (op / 20000) % 2 == 0;
      const unsigned k = rng() % kKeys;
      if (stable(k)) continue;
      const bool want_insert = (rng() % 10) < (fill ? 9u : 1u);
      if (!present[k] && want_insert) {
        const unsigned ver = ++version[k];
        ASSERT_LT(ver, 4096u);
        latest[k].store(ver, std::memory_order_release);  // before the reader can see it
        ASSERT_TRUE(sad->insert(spi(k), dst(k), handle(k, ver)).ok());
        present[k] = true;
        ++inserts;
      } else if (present[k] && !want_insert) {
        auto e = sad->erase(spi(k), dst(k));
        ASSERT_TRUE(e.ok());
        ASSERT_EQ(*e, handle(k, version[k]));
        present[k] = false;
        ++erases;
      }
      if (op % 5000 == 0) sad->compact();
      if (op % 64 == 0) sad->reclaim();
      if (op % 512 == 0) std::this_thread::yield();  // interleave more when both share a core
    }
  };
  write();
  // Let the reader run some batches against the final table too.
  const std::uint64_t seen = batches.load(std::memory_order_relaxed);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (batches.load(std::memory_order_relaxed) < seen + 20 && std::chrono::steady_clock::now() < deadline) {
    sad->reclaim();
    std::this_thread::yield();
  }
  done.store(true, std::memory_order_release);
  reader.join();

  EXPECT_EQ(bad_handles, 0u) << first_failure;
  EXPECT_EQ(missing_stable, 0u) << first_failure;
  EXPECT_EQ(early_frees, 0u) << first_failure;
  EXPECT_GT(batches.load(), 20u);
  EXPECT_GT(sad->stats().rebuilds, 30u);
  EXPECT_GT(inserts, 10000u);
  EXPECT_GT(erases, 10000u);
  EXPECT_EQ(sad->reclaim(), 0u);  // the reader is offline
  EXPECT_EQ(sad->freed_generation(), sad->generation() - 1);
  for (unsigned k = 0; k < kKeys; ++k) {
    EXPECT_EQ(sad->lookup(spi(k), dst(k)), present[k] ? handle(k, version[k]) : kNoSa) << k;
  }
  std::printf("reader: %llu lookups in %llu batches; writer: %llu inserts, %llu erases, %llu rebuilds\n",
              static_cast<unsigned long long>(lookups), static_cast<unsigned long long>(batches.load()),
              static_cast<unsigned long long>(inserts), static_cast<unsigned long long>(erases),
              static_cast<unsigned long long>(sad->stats().rebuilds));
}

// ---------------------------------------------------------------------------
// OutboundSad

TEST(OutboundSad, SlotIsStableAcrossRekeys) {
  rcu::Qsbr q(1);
  auto out = make_out(q, 1000);
  auto slot = out->slot_for(42);
  ASSERT_TRUE(slot.ok());
  EXPECT_TRUE(out->get(*slot)->empty());  // no SA yet: the caller raises an ACQUIRE
  EXPECT_EQ(out->get(*slot)->pick(3), kNoSa);
  EXPECT_EQ(*out->slot_for(42), *slot);  // the same slot again
  EXPECT_EQ(out->find(42), *slot);
  EXPECT_EQ(out->find(43), std::nullopt);

  const SaHandle one[] = {10};
  auto s1 = out->set(42, one);
  ASSERT_TRUE(s1.ok());
  EXPECT_EQ(*s1, *slot);
  const SaSet* a = out->get(*slot);
  ASSERT_EQ(a->count, 1u);
  EXPECT_EQ(a->pick(0), 10u);
  EXPECT_EQ(a->pick(7), 10u);

  // Rekey to per-core SAs: same slot, new set; the old one stays readable
  // until a grace period has passed.
  const SaHandle per_core[] = {20, 21, 22, 23};
  ASSERT_EQ(*out->set(42, per_core), *slot);
  const SaSet* b = out->get(*slot);
  ASSERT_EQ(b->count, 4u);
  for (unsigned c = 0; c < 8; ++c) EXPECT_EQ(b->pick(c), 20u + c % 4);
  EXPECT_EQ(out->retired_pending(), 1u);

  ASSERT_TRUE(out->clear(42).ok());
  EXPECT_TRUE(out->get(*slot)->empty());
  EXPECT_EQ(out->find(42), *slot);  // cleared, not released
  ASSERT_EQ(*out->set(42, one), *slot);
  EXPECT_EQ(out->get(*slot)->pick(1), 10u);
  EXPECT_EQ(out->size(), 1u);

  // set() on a new reqid makes its slot.
  auto s2 = out->set(7, per_core);
  ASSERT_TRUE(s2.ok());
  EXPECT_NE(*s2, *slot);
  EXPECT_EQ(out->get(*s2)->count, 4u);
  EXPECT_EQ(out->size(), 2u);
  EXPECT_EQ(out->reclaim(), 0u);
}

TEST(OutboundSad, RefusedInputs) {
  rcu::Qsbr q(1);
  auto out = make_out(q, 2);
  auto r = out->slot_for(0);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "reqid 0")) << r.error().message;
  const SaHandle h[] = {1};
  EXPECT_FALSE(out->set(0, h).ok());

  std::vector<SaHandle> many(kMaxSetSize + 1);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = static_cast<SaHandle>(i);
  r = out->set(5, many);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "17 SAs in one set, the most is 16")) << r.error().message;
  many.resize(kMaxSetSize);
  EXPECT_TRUE(out->set(5, many).ok());

  const SaHandle nosa[] = {3, kNoSa};
  r = out->set(6, nosa);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "entry 1 is kNoSa")) << r.error().message;
  const SaHandle dup[] = {3, 4, 3};
  r = out->set(6, dup);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "handle 3 appears twice")) << r.error().message;
  EXPECT_EQ(out->find(6), std::nullopt);  // a refused set() makes no slot

  auto c = out->clear(99);
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(has(c.error().message, "no SA set for reqid 99")) << c.error().message;
  EXPECT_FALSE(out->release(99).ok());

  // Exhaustion: max_slots 2.
  ASSERT_TRUE(out->slot_for(6).ok());
  r = out->slot_for(7);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().message, "all 2 SA-set slots are in use")) << r.error().message;

  // Out-of-range slots read as empty.
  EXPECT_TRUE(out->get(2)->empty());
  EXPECT_TRUE(out->get(~SetSlot{0})->empty());

  for (std::uint32_t bad : {0u, OutboundSad::kMaxSlotsLimit + 1}) {
    auto o = OutboundSad::create(q, bad);
    ASSERT_FALSE(o.ok());
    EXPECT_TRUE(has(o.error().message, "outside 1..")) << o.error().message;
  }
}

TEST(OutboundSad, ReleasedSlotReusedOnlyAfterGracePeriod) {
  rcu::Qsbr q(1);
  auto out = make_out(q, 1);
  const SaHandle h[] = {9};
  const SetSlot s = *out->set(1, h);
  q.online(0);
  const SaSet* held = out->get(s);  // the reader holds the set
  ASSERT_TRUE(out->release(1).ok());
  EXPECT_TRUE(out->get(s)->empty());
  EXPECT_EQ(out->find(1), std::nullopt);
  EXPECT_EQ(held->pick(0), 9u);  // not freed: ASan would say so
  out->reclaim();
  auto r = out->slot_for(2);
  ASSERT_FALSE(r.ok()) << "the only slot is still in its grace period";
  q.quiescent(0);
  EXPECT_EQ(out->reclaim(), 0u);
  r = out->slot_for(2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, s);
  q.offline(0);
}

TEST(OutboundSad, HundredThousandPolicies) {
  constexpr std::uint32_t kN = 100'000;
  rcu::Qsbr q(1);
  auto out = make_out(q, kN);
  std::vector<SetSlot> slots(kN + 1);
  for (std::uint32_t reqid = 1; reqid <= kN; ++reqid) {
    const SaHandle h[] = {reqid, reqid + kN};
    auto s = out->set(reqid, std::span<const SaHandle>(h, reqid % 2 + 1));
    ASSERT_TRUE(s.ok());
    slots[reqid] = *s;
  }
  EXPECT_EQ(out->size(), kN);
  std::size_t wrong = 0;
  for (std::uint32_t reqid = 1; reqid <= kN; ++reqid) {
    const SaSet* s = out->get(slots[reqid]);
    wrong += s->count != reqid % 2 + 1 || s->pick(0) != reqid || s->pick(1) != (reqid % 2 ? reqid + kN : reqid);
  }
  EXPECT_EQ(wrong, 0u);
  EXPECT_FALSE(out->slot_for(kN + 1).ok());
}

// A reader checks every set it sees is whole: all handles from one set()
// call (key and version encoded in each), while the writer rekeys.
TEST(OutboundSadConcurrent, ReaderSeesWholeSets) {
  constexpr unsigned kReqids = 64;
  constexpr unsigned kWriterOps = 40'000;
  rcu::Qsbr q(1);
  auto out = make_out(q, 256);
  std::vector<SetSlot> slots(kReqids + 1);
  for (unsigned r = 1; r <= kReqids; ++r) slots[r] = *out->slot_for(r);

  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> batches{0};
  std::uint64_t torn = 0, nonempty = 0;
  std::thread reader([&] {
    q.online(0);
    while (!done.load(std::memory_order_acquire)) {
      for (unsigned r = 1; r <= kReqids; ++r) {
        const SaSet* s = out->get(slots[r]);
        if (s->count == 0) continue;
        ++nonempty;
        const unsigned ver = (s->sa[0] >> 4) & 0xffff;
        bool ok = s->count == ver % kMaxSetSize + 1;
        for (unsigned i = 0; i < s->count && ok; ++i) {
          ok = s->sa[i] == ((r << 20) | (ver << 4) | i);
        }
        torn += !ok;
      }
      q.quiescent(0);
      batches.fetch_add(1, std::memory_order_relaxed);
    }
    q.offline(0);
  });

  std::vector<unsigned> version(kReqids + 1, 0);
  auto write = [&] {
    std::mt19937 rng(3);
    for (unsigned op = 0; op < kWriterOps; ++op) {
      const unsigned r = rng() % kReqids + 1;
      if (rng() % 16 == 0) {
        ASSERT_TRUE(out->clear(r).ok());
      } else {
        const unsigned ver = ++version[r];
        SaHandle h[kMaxSetSize];
        const unsigned n = ver % kMaxSetSize + 1;
        for (unsigned i = 0; i < n; ++i) h[i] = (r << 20) | (ver << 4) | i;
        auto s = out->set(r, std::span<const SaHandle>(h, n));
        ASSERT_TRUE(s.ok());
        ASSERT_EQ(*s, slots[r]);
      }
      if (op % 32 == 0) out->reclaim();
      if (op % 512 == 0) std::this_thread::yield();
    }
  };
  write();
  const std::uint64_t seen = batches.load(std::memory_order_relaxed);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (batches.load(std::memory_order_relaxed) < seen + 10 && std::chrono::steady_clock::now() < deadline) {
    out->reclaim();
    std::this_thread::yield();
  }
  done.store(true, std::memory_order_release);
  reader.join();
  EXPECT_EQ(torn, 0u);
  EXPECT_GT(nonempty, 0u);
  EXPECT_EQ(out->reclaim(), 0u);
  for (unsigned r = 1; r <= kReqids; ++r) EXPECT_EQ(out->find(r), slots[r]);
}

}  // namespace
}  // namespace cygnet::dp::sad
