#include "bench/process_sample.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

namespace parley::bench {
namespace {

TEST(ProcessSample, ParsesVmRss) {
  EXPECT_EQ(parse_status_rss("Name:\tx\nVmPeak:\t  999 kB\nVmRSS:\t    1234 kB\n"), 1234u * 1024);
  EXPECT_FALSE(parse_status_rss("Name:\tx\n"));
}

TEST(ProcessSample, ParsesCpuAfterACommandWithSpacesAndParentheses) {
  std::string stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
  auto cpu = parse_stat_cpu(stat, 100);
  ASSERT_TRUE(cpu);
  EXPECT_DOUBLE_EQ(*cpu, 3.0);
  EXPECT_FALSE(parse_stat_cpu("42 (x) S 1", 100));
}

TEST(ProcessSample, ReadsThisProcess) {
  auto sample = sample_process(getpid());
  ASSERT_TRUE(sample);
  EXPECT_GT(sample->rss_bytes, 0u);
  EXPECT_FALSE(sample_process(-1));
}

}  // namespace
}  // namespace parley::bench
