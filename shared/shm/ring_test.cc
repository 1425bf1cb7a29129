#include "shared/shm/ring.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

namespace cygnet::shm {
namespace {

// A ring over private memory laid out like one client block.
struct TestRing {
  explicit TestRing(std::uint32_t capacity) : cap(capacity), slots(std::size_t{capacity} * kSlotSize), ctl{} {}
  RingProducer producer() { return RingProducer(slots.data(), cap, &ctl.cmd_prod.value, &ctl.cmd_cons.value, 0); }
  RingConsumer consumer() { return RingConsumer(slots.data(), cap, &ctl.cmd_prod.value, &ctl.cmd_cons.value, 0); }
  std::uint32_t cap;
  std::vector<std::uint8_t> slots;
  ClientControl ctl;
};

std::vector<std::uint8_t> msg_of(std::uint64_t v, std::size_t len = 64) {
  std::vector<std::uint8_t> m(len, 0xab);
  std::memcpy(m.data(), &v, sizeof v);
  return m;
}

std::uint64_t value_of(const MsgBuf& b) {
  std::uint64_t v = 0;
  std::memcpy(&v, b.data(), sizeof v);
  return v;
}

TEST(ShmRing, PushPopInOrderAndWipesSlots) {
  TestRing r(8);
  auto p = r.producer();
  auto c = r.consumer();
  MsgBuf out;
  EXPECT_EQ(c.pop(out), RingResult::empty);
  for (std::uint64_t i = 0; i < 5; ++i) {
    ASSERT_EQ(p.push(msg_of(i + 100)), RingResult::ok);
  }
  std::uint32_t n = 0;
  EXPECT_EQ(c.pending(n), RingResult::ok);
  EXPECT_EQ(n, 5u);
  for (std::uint64_t i = 0; i < 5; ++i) {
    ASSERT_EQ(c.pop(out), RingResult::ok);
    EXPECT_EQ(out.size(), kSlotSize);
    EXPECT_EQ(value_of(out), i + 100);
    EXPECT_EQ(out.data()[63], 0xab);
    EXPECT_EQ(out.data()[64], 0);  // the producer zero-fills the rest of the slot
  }
  for (std::uint8_t byte : r.slots) {
    ASSERT_EQ(byte, 0) << "consumed slots are wiped";
  }
  EXPECT_EQ(c.pop(out), RingResult::empty);
}

TEST(ShmRing, FullThenDrainLosesNothing) {
  TestRing r(8);
  auto p = r.producer();
  auto c = r.consumer();
  for (std::uint64_t i = 0; i < 8; ++i) {
    ASSERT_EQ(p.push(msg_of(i)), RingResult::ok);
  }
  EXPECT_EQ(p.push(msg_of(99)), RingResult::full);
  MsgBuf out;
  ASSERT_EQ(c.pop(out), RingResult::ok);
  EXPECT_EQ(value_of(out), 0u);
  ASSERT_EQ(p.push(msg_of(8)), RingResult::ok);
  for (std::uint64_t i = 1; i <= 8; ++i) {
    ASSERT_EQ(c.pop(out), RingResult::ok);
    EXPECT_EQ(value_of(out), i);
  }
  EXPECT_EQ(c.pop(out), RingResult::empty);
}

TEST(ShmRing, RefusesOversizeAndEmptyMessages) {
  TestRing r(4);
  auto p = r.producer();
  std::vector<std::uint8_t> big(kSlotSize + 1, 1);
  EXPECT_EQ(p.push(big), RingResult::corrupt);
  EXPECT_EQ(p.push({}), RingResult::corrupt);
  EXPECT_EQ(RingProducer().push(msg_of(1)), RingResult::corrupt);
  MsgBuf out;
  EXPECT_EQ(RingConsumer().pop(out), RingResult::corrupt);
}

TEST(ShmRing, HostileProducerIndex) {
  TestRing r(8);
  auto c = r.consumer();
  MsgBuf out;
  r.ctl.cmd_prod.value = 9;  // more than the capacity ahead
  EXPECT_EQ(c.pop(out), RingResult::corrupt);
  r.ctl.cmd_prod.value = ~0ULL;
  EXPECT_EQ(c.pop(out), RingResult::corrupt);
  r.ctl.cmd_prod.value = 8;  // exactly full: fine (slots are zero: an empty message)
  EXPECT_EQ(c.pop(out), RingResult::ok);
  r.ctl.cmd_prod.value = 0;  // went backwards, behind what we consumed
  EXPECT_EQ(c.pop(out), RingResult::corrupt);
  EXPECT_EQ(c.index(), 1u);
}

TEST(ShmRing, HostileConsumerIndex) {
  TestRing r(8);
  auto p = r.producer();
  ASSERT_EQ(p.push(msg_of(1)), RingResult::ok);
  r.ctl.cmd_cons.value = 5;  // beyond what was produced
  EXPECT_EQ(p.push(msg_of(2)), RingResult::corrupt);
  r.ctl.cmd_cons.value = ~0ULL;
  EXPECT_EQ(p.push(msg_of(2)), RingResult::corrupt);
  std::uint32_t n = 0;
  EXPECT_EQ(p.free_slots(n), RingResult::corrupt);
  r.ctl.cmd_cons.value = 1;
  EXPECT_EQ(p.push(msg_of(2)), RingResult::ok);
  // The private index never followed the hostile values.
  EXPECT_EQ(p.index(), 2u);
}

// Two threads, one ring: order and count preserved (run under TSan too).
TEST(ShmRing, SpscFloodTwoThreads) {
  TestRing r(64);
  auto p = r.producer();
  auto c = r.consumer();
  constexpr std::uint64_t kCount = 200000;
  std::atomic<bool> ok{true};
  std::thread consumer([&] {
    MsgBuf out;
    std::uint64_t want = 0;
    while (want < kCount) {
      const RingResult res = c.pop(out);
      if (res == RingResult::empty) {
        std::this_thread::yield();
        continue;
      }
      if (res != RingResult::ok || value_of(out) != want) {
        ok = false;
        return;
      }
      ++want;
    }
  });
  for (std::uint64_t i = 0; i < kCount;) {
    const RingResult res = p.push(msg_of(i, 24));
    if (res == RingResult::ok) {
      ++i;
    } else if (res == RingResult::full) {
      std::this_thread::yield();
    } else {
      ok = false;
      break;
    }
  }
  consumer.join();
  EXPECT_TRUE(ok.load());
}

}  // namespace
}  // namespace cygnet::shm
