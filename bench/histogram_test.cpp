#include "bench/histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace parley::bench {
namespace {

TEST(Histogram, EmptyHasZeroPercentiles) {
  Histogram histogram;
  EXPECT_EQ(histogram.count(), 0u);
  EXPECT_EQ(histogram.percentile(50), 0u);
  EXPECT_EQ(histogram.max(), 0u);
}

TEST(Histogram, SmallValuesAreExact) {
  Histogram histogram;
  for (std::uint64_t v = 1; v <= 100; ++v) histogram.record(v);
  EXPECT_EQ(histogram.percentile(50), 50u);
  EXPECT_EQ(histogram.percentile(95), 95u);
  EXPECT_EQ(histogram.percentile(99), 99u);
  EXPECT_EQ(histogram.percentile(100), 100u);
  EXPECT_EQ(histogram.min(), 1u);
  EXPECT_DOUBLE_EQ(histogram.mean(), 50.5);
}

TEST(Histogram, LargeValuesWithinOnePercentOfTheExactPercentile) {
  Histogram histogram;
  std::mt19937_64 random(42);
  std::lognormal_distribution<double> latency(8.0, 1.5);  // µs: a long tail up to seconds
  std::vector<std::uint64_t> values;
  for (int i = 0; i < 100000; ++i) {
    auto value = static_cast<std::uint64_t>(latency(random));
    values.push_back(value);
    histogram.record(value);
  }
  std::sort(values.begin(), values.end());
  for (double percent : {50.0, 90.0, 95.0, 99.0, 99.9}) {
    auto rank = static_cast<std::size_t>(std::ceil(percent / 100.0 * static_cast<double>(values.size())));
    auto exact = static_cast<double>(values[rank - 1]);
    auto estimate = static_cast<double>(histogram.percentile(percent));
    EXPECT_GE(estimate, exact) << percent;
    EXPECT_LE(estimate, exact * 1.01 + 1) << percent;
  }
  EXPECT_EQ(histogram.max(), values.back());
  EXPECT_EQ(histogram.percentile(100), values.back());
}

TEST(Histogram, OutlierOnlyMovesTheTop) {
  Histogram histogram;
  for (int i = 0; i < 999; ++i) histogram.record(1000);
  histogram.record(5'000'000);
  EXPECT_LE(histogram.percentile(99), 1008u);
  EXPECT_GE(histogram.percentile(99), 1000u);
  EXPECT_EQ(histogram.percentile(100), 5'000'000u);
}

TEST(Histogram, MergeAddsCounts) {
  Histogram a;
  Histogram b;
  for (int i = 0; i < 50; ++i) a.record(10);
  for (int i = 0; i < 50; ++i) b.record(20);
  a.merge(b);
  EXPECT_EQ(a.count(), 100u);
  EXPECT_EQ(a.percentile(50), 10u);
  EXPECT_EQ(a.percentile(51), 20u);
  EXPECT_EQ(a.max(), 20u);
}

TEST(Histogram, HugeValuesAreClampedNotCrashing) {
  Histogram histogram;
  histogram.record(UINT64_MAX);
  EXPECT_EQ(histogram.count(), 1u);
  EXPECT_EQ(histogram.max(), UINT64_MAX);
}

}  // namespace
}  // namespace parley::bench
