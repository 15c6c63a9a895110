#include "bench/accounting.hpp"

#include <gtest/gtest.h>

namespace parley::bench {
namespace {

TEST(StreamAccounting, CountsEachMessageOnce) {
  StreamAccounting stream;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(stream.next_to_send(), static_cast<std::uint64_t>(i));
  for (std::uint64_t sequence : {0, 1, 2, 3, 4}) {
    EXPECT_EQ(stream.receive(sequence), StreamAccounting::Arrival::first);
  }
  EXPECT_EQ(stream.delivered(), 5u);
  EXPECT_EQ(stream.missing(), 0u);
  EXPECT_EQ(stream.duplicates(), 0u);
  EXPECT_EQ(stream.out_of_order(), 0u);
}

TEST(StreamAccounting, DetectsLossDuplicatesReorderingAndStrangers) {
  StreamAccounting stream;
  for (int i = 0; i < 10; ++i) stream.next_to_send();
  stream.receive(0);
  stream.receive(2);
  stream.receive(1);  // late
  EXPECT_EQ(stream.receive(2), StreamAccounting::Arrival::duplicate);
  EXPECT_EQ(stream.receive(10), StreamAccounting::Arrival::unknown);  // never sent
  EXPECT_EQ(stream.delivered(), 3u);
  EXPECT_EQ(stream.missing(), 7u);
  EXPECT_EQ(stream.duplicates(), 1u);
  EXPECT_EQ(stream.unknown(), 1u);
  EXPECT_EQ(stream.out_of_order(), 1u);
}

TEST(MessageStamp, RoundTripsWithAndWithoutPadding) {
  for (std::string padding : {"", "xxxxxxxx"}) {
    std::string body;
    MessageStamp stamp{123456789, 987654321012345};
    append_stamp(padding, stamp, body);
    MessageStamp parsed;
    ASSERT_TRUE(parse_stamp(body, parsed)) << body;
    EXPECT_EQ(parsed, stamp);
  }
}

TEST(MessageStamp, RejectsOtherBodies) {
  MessageStamp parsed;
  EXPECT_FALSE(parse_stamp("", parsed));
  EXPECT_FALSE(parse_stamp("hello", parsed));
  EXPECT_FALSE(parse_stamp("12", parsed));
  EXPECT_FALSE(parse_stamp("12 ", parsed));
  EXPECT_FALSE(parse_stamp("12 x", parsed));
  EXPECT_FALSE(parse_stamp("12 34x", parsed));
}

}  // namespace
}  // namespace parley::bench
