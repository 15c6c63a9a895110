#include "c2s/stream_management.hpp"

#include <gtest/gtest.h>

namespace parley::c2s {
namespace {

TEST(StreamManagement, NothingIsKeptBeforeEnable) {
  StreamManagement sm;
  sm.sent("<message/>");
  sm.count_inbound();
  EXPECT_TRUE(sm.unacked().empty());
  EXPECT_EQ(sm.inbound(), 0u);
}

TEST(StreamManagement, AcknowledgementDropsTheOldestStanzas) {
  StreamManagement sm;
  sm.enable(true, "id");
  for (const char* s : {"a", "b", "c"}) sm.sent(s);
  EXPECT_TRUE(sm.acknowledge(2));
  ASSERT_EQ(sm.unacked().size(), 1u);
  EXPECT_EQ(sm.unacked().front(), "c");
  EXPECT_TRUE(sm.acknowledge(2));  // repeated h acknowledges nothing new
  EXPECT_EQ(sm.unacked().size(), 1u);
  EXPECT_FALSE(sm.acknowledge(5));  // more than was ever sent
  EXPECT_TRUE(sm.acknowledge(3));
  EXPECT_TRUE(sm.unacked().empty());
}

TEST(StreamManagement, InboundCountsHandledStanzas) {
  StreamManagement sm;
  sm.enable(false, "");
  sm.count_inbound();
  sm.count_inbound();
  EXPECT_EQ(sm.inbound(), 2u);
  EXPECT_FALSE(sm.resumable());
}

TEST(StreamManagement, ParsesH) {
  EXPECT_EQ(StreamManagement::parse_h("0"), 0u);
  EXPECT_EQ(StreamManagement::parse_h("4294967295"), 4294967295u);
  EXPECT_EQ(StreamManagement::parse_h("4294967296"), std::nullopt);
  EXPECT_EQ(StreamManagement::parse_h("-1"), std::nullopt);
  EXPECT_EQ(StreamManagement::parse_h(""), std::nullopt);
  EXPECT_EQ(StreamManagement::parse_h("12a"), std::nullopt);
}

}  // namespace
}  // namespace parley::c2s
