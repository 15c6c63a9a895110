#include "xmpp/shaper.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace parley::xmpp {
namespace {

using namespace std::chrono_literals;
using Clock = Shaper::Clock;

TEST(Shaper, ABurstWithinTheBucketNeedsNoPause) {
  const auto start = Clock::time_point{};
  Shaper shaper(1000, 4000, start);
  EXPECT_EQ(shaper.take(4000, start), Clock::duration::zero());
}

TEST(Shaper, OverdrawnBucketPausesForTheDebtAtTheRate) {
  const auto start = Clock::time_point{};
  Shaper shaper(1000, 4000, start);
  // 500 bytes past the bucket at 1000 B/s: half a second.
  EXPECT_EQ(shaper.take(4500, start), 500ms);
}

TEST(Shaper, RefillsWithTimeButNeverAboveTheBurst) {
  const auto start = Clock::time_point{};
  Shaper shaper(1000, 2000, start);
  ASSERT_EQ(shaper.take(2000, start), Clock::duration::zero());
  // An hour idle refills to the burst, not to 3,600,000 bytes.
  const auto later = start + 1h;
  EXPECT_EQ(shaper.take(2000, later), Clock::duration::zero());
  EXPECT_EQ(shaper.take(1000, later), 1s);
}

TEST(Shaper, SustainedRateIsTheConfiguredOne) {
  auto now = Clock::time_point{};
  Shaper shaper(1000, 1000, now);
  ASSERT_EQ(shaper.take(1000, now), Clock::duration::zero());
  // A reader that honours every pause gets 1000 bytes per second.
  for (int i = 0; i < 10; ++i) {
    const auto pause = shaper.take(100, now);
    EXPECT_EQ(pause, 100ms) << i;
    now += pause;
  }
}

TEST(Shaper, ZeroRateOrBurstIsRefused) {
  EXPECT_THROW(Shaper(0, 10), std::invalid_argument);
  EXPECT_THROW(Shaper(10, 0), std::invalid_argument);
}

}  // namespace
}  // namespace parley::xmpp
