#include "modules/datetime.hpp"

#include <gtest/gtest.h>

namespace parley::modules {
namespace {

using std::chrono::system_clock;

system_clock::time_point at_micros(std::int64_t micros) {
  return system_clock::time_point(std::chrono::microseconds(micros));
}

TEST(DateTime, FormatsUtcWithMicroseconds) {
  EXPECT_EQ(format_datetime(at_micros(0)), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(format_datetime(at_micros(1700000000123456)), "2023-11-14T22:13:20.123456Z");
}

TEST(DateTime, ParsesWhatItFormatsAndTheProfilesOfXep0082) {
  const auto when = at_micros(1700000000123456);
  EXPECT_EQ(parse_datetime(format_datetime(when)), when);
  EXPECT_EQ(parse_datetime("2023-11-14T22:13:20Z"), at_micros(1700000000000000));
  EXPECT_EQ(parse_datetime("2023-11-14T22:13:20.5Z"), at_micros(1700000000500000));
  EXPECT_EQ(parse_datetime("2023-11-15T00:13:20+02:00"), at_micros(1700000000000000));
  EXPECT_EQ(parse_datetime("2023-11-14T17:13:20-05:00"), at_micros(1700000000000000));
  EXPECT_EQ(parse_datetime("2024-02-29T00:00:00Z"), at_micros(1709164800000000));
}

TEST(DateTime, RefusesMalformedAndOutOfRangeValues) {
  for (const char* bad : {"", "2023-11-14", "2023-11-14T22:13:20", "2023-11-14 22:13:20Z", "2023-13-01T00:00:00Z",
                          "2023-02-29T00:00:00Z", "2023-11-14T24:00:00Z", "2023-11-14T22:13:20.Z",
                          "2023-11-14T22:13:20+0200", "2023-11-14T22:13:20Zjunk", "20x3-11-14T22:13:20Z"}) {
    EXPECT_FALSE(parse_datetime(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace parley::modules
