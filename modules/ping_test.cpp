#include <gtest/gtest.h>

#include <algorithm>

#include "modules/factories.hpp"
#include "modules/module_test_support.hpp"

namespace parley::modules {
namespace {

using testing::Client;
using testing::TestServer;
using testing::error_condition;
using testing::make_iq;

constexpr const char* ns_ping = "urn:xmpp:ping";

class PingTest : public ::testing::Test {
 protected:
  void SetUp() override { server.enable(make_ping_module); }
  TestServer server;
  Client alice = server.bind("alice@example.org/phone");
};

TEST_F(PingTest, ServerAnswersAPingToItsDomainWithAnEmptyResult) {
  const auto reply = server.ask(alice, make_iq("get", "p1", "example.org", "ping", ns_ping));
  EXPECT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
  EXPECT_EQ(reply.attr("from"), "example.org");
  EXPECT_EQ(reply.attr("to"), "alice@example.org/phone");
  EXPECT_EQ(reply.first_child_element(), nullptr);
}

TEST_F(PingTest, UserCanPingTheirOwnBareJidWithOrWithoutTo) {
  const auto addressed = server.ask(alice, make_iq("get", "p2", "alice@example.org", "ping", ns_ping));
  EXPECT_EQ(addressed.attr("type"), "result") << xml::serialize(addressed);
  const auto implicit = server.ask(alice, make_iq("get", "p3", "", "ping", ns_ping));
  EXPECT_EQ(implicit.attr("type"), "result") << xml::serialize(implicit);
}

TEST_F(PingTest, PingToSomeoneElsesBareJidIsNotAnsweredForThem) {
  const auto reply = server.ask(alice, make_iq("get", "p4", "bob@example.org", "ping", ns_ping));
  EXPECT_EQ(reply.attr("type"), "error");
  EXPECT_EQ(error_condition(reply), "service-unavailable");
}

TEST_F(PingTest, PingSetIsNotAPing) {
  const auto reply = server.ask(alice, make_iq("set", "p5", "example.org", "ping", ns_ping));
  EXPECT_EQ(error_condition(reply), "service-unavailable");
}

TEST_F(PingTest, AdvertisesTheFeature) {
  const auto features = server.host().disco_features();
  EXPECT_NE(std::find(features.begin(), features.end(), ns_ping), features.end());
}

TEST(PingOptions, RefusesAnyOption) {
  TestServer server;
  EXPECT_THROW(server.enable(make_ping_module, "interval: 60"), OptionError);
}

}  // namespace
}  // namespace parley::modules
