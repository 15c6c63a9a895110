#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <regex>
#include <string>

#include "modules/factories.hpp"
#include "modules/module_test_support.hpp"

namespace parley::modules {
namespace {

using testing::TestServer;
using testing::make_iq;
using testing::payload;

constexpr const char* ns_time = "urn:xmpp:time";

TEST(Time, AnswersTheCurrentUtcTimeWithAZeroOffset) {
  TestServer server;
  server.enable(make_time_module);
  const auto alice = server.bind("alice@example.org/phone");
  const std::time_t before = std::time(nullptr);
  const auto reply = server.ask(alice, make_iq("get", "t1", "example.org", "time", ns_time));
  const std::time_t after = std::time(nullptr);

  ASSERT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
  const auto* time = payload(reply);
  ASSERT_NE(time, nullptr);
  ASSERT_TRUE(time->is("time", ns_time));
  EXPECT_EQ(time->child_text("tzo", ns_time), "+00:00");

  const auto utc = time->child_text("utc", ns_time);
  ASSERT_TRUE(std::regex_match(utc, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)"))) << utc;
  std::tm parts{};
  ASSERT_NE(strptime(utc.c_str(), "%Y-%m-%dT%H:%M:%SZ", &parts), nullptr);
  const std::time_t reported = timegm(&parts);
  EXPECT_GE(reported, before);
  EXPECT_LE(reported, after);
}

TEST(Time, AdvertisesTheFeature) {
  TestServer server;
  server.enable(make_time_module);
  const auto features = server.host().disco_features();
  EXPECT_NE(std::find(features.begin(), features.end(), ns_time), features.end());
}

TEST(TimeOptions, RefusesAnyOption) {
  TestServer server;
  EXPECT_THROW(server.enable(make_time_module, "timezone: Europe/Paris"), OptionError);
}

}  // namespace
}  // namespace parley::modules
