#include "dp/esp/replay.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace cygnet::dp::esp {
namespace {

using V = ReplayWindow::Verdict;

TEST(ReplayWindow, InOrderAndDuplicates) {
  ReplayWindow w(64);
  for (std::uint64_t s = 1; s <= 200; ++s) {
    ASSERT_EQ(w.check(s), V::ok) << s;
    ASSERT_TRUE(w.commit(s));
    ASSERT_EQ(w.check(s), V::duplicate) << s;
    ASSERT_FALSE(w.commit(s));
  }
  EXPECT_EQ(w.top(), 200u);
}

TEST(ReplayWindow, ZeroIsNeverValid) {
  ReplayWindow w(64);
  EXPECT_EQ(w.check(0), V::too_old);
  EXPECT_FALSE(w.commit(0));
}

TEST(ReplayWindow, WindowEdges) {
  for (std::uint32_t size : {32u, 64u, 100u, 1024u, 4096u}) {
    ReplayWindow w(size);
    const std::uint64_t top = 10000;
    ASSERT_TRUE(w.commit(top));
    // The window holds top-size+1 .. top.
    EXPECT_EQ(w.check(top - size + 1), V::ok) << size;  // left edge, inside
    EXPECT_EQ(w.check(top - size), V::too_old) << size;  // one beyond
    EXPECT_EQ(w.check(1), V::too_old) << size;
    EXPECT_TRUE(w.commit(top - size + 1));
    EXPECT_EQ(w.check(top - size + 1), V::duplicate);
    EXPECT_EQ(w.check(top + 1), V::ok);                  // right edge
    EXPECT_TRUE(w.commit(top + size * 3));               // big jump clears the window
    EXPECT_EQ(w.check(top + 1), V::too_old);
    EXPECT_EQ(w.check(top + size * 3 - 1), V::ok) << "bits from before the jump are cleared";
    EXPECT_EQ(w.check(top + size * 3), V::duplicate);
  }
}

TEST(ReplayWindow, MatchesReferenceModel) {
  // Random arrivals against a set-based model of RFC 4303 3.4.3.
  std::mt19937_64 rng(7);
  for (std::uint32_t size : {32u, 64u, 128u, 4096u}) {
    ReplayWindow w(size);
    std::set<std::uint64_t> seen;
    std::uint64_t top = 0;
    std::uint64_t base = 1;
    for (int i = 0; i < 200000; ++i) {
      base += rng() % 3;
      const std::uint64_t s = std::max<std::int64_t>(1, static_cast<std::int64_t>(base) - static_cast<std::int64_t>(rng() % (size * 2)));
      V want = s + size <= top ? V::too_old : seen.count(s) ? V::duplicate : V::ok;
      ASSERT_EQ(w.check(s), want) << "size " << size << " seq " << s << " top " << top;
      if (want == V::ok) {
        ASSERT_TRUE(w.commit(s));
        seen.insert(s);
        top = std::max(top, s);
      }
    }
  }
}

TEST(ReplayWindow, EsnInferenceAcrossTheWrap) {
  ReplayWindow w(64, true);
  const std::uint64_t hi1 = 1ull << 32;
  ASSERT_TRUE(w.commit(0xfffffff0ull));
  EXPECT_EQ(w.infer(0xfffffff5u), 0xfffffff5ull);
  EXPECT_EQ(w.infer(0x00000002u), hi1 | 2) << "low half wrapped: next epoch";
  ASSERT_TRUE(w.commit(hi1 | 2));
  EXPECT_EQ(w.infer(0xfffffff8u), 0xfffffff8ull) << "case B: still inside the window, previous epoch";
  EXPECT_EQ(w.check(w.infer(0xfffffff8u)), V::ok);
  EXPECT_EQ(w.infer(0x00000003u), hi1 | 3);
  // Below the window's bottom (case B): taken as ahead in the current epoch.
  EXPECT_EQ(w.infer(0xffffff00u), hi1 | 0xffffff00u);
  EXPECT_EQ(w.check(w.infer(0xffffff00u)), V::ok);
}

TEST(ReplayWindow, EsnStartOfSa) {
  ReplayWindow w(64, true);
  EXPECT_EQ(w.infer(1), 1u);
  ASSERT_TRUE(w.commit(5));
  EXPECT_EQ(w.infer(0xfffffff0u), 0u) << "before sequence 1 in epoch 0: invalid";
  EXPECT_EQ(w.check(w.infer(0xfffffff0u)), V::too_old);
}

TEST(ReplayWindow, DisabledAcceptsAnythingButZero) {
  ReplayWindow w(0);
  EXPECT_FALSE(w.enabled());
  ASSERT_TRUE(w.commit(100));
  EXPECT_TRUE(w.commit(100));
  EXPECT_TRUE(w.commit(1));
  EXPECT_EQ(w.check(0), V::too_old);
}

}  // namespace
}  // namespace cygnet::dp::esp
