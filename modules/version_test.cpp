#include <gtest/gtest.h>
#include <sys/utsname.h>

#include <algorithm>
#include <string>

#include "modules/factories.hpp"
#include "modules/module_test_support.hpp"

namespace parley::modules {
namespace {

using testing::TestServer;
using testing::make_iq;
using testing::payload;

constexpr const char* ns_version = "jabber:iq:version";

xml::Element ask_version(TestServer& server) {
  const auto alice = server.bind("alice@example.org/phone");
  return server.ask(alice, make_iq("get", "v1", "example.org", "query", ns_version));
}

TEST(Version, AnswersNameAndVersionWithoutTheOsByDefault) {
  TestServer server;
  server.enable(make_version_module);
  const auto reply = ask_version(server);
  ASSERT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
  const auto* query = payload(reply);
  ASSERT_NE(query, nullptr);
  ASSERT_TRUE(query->is("query", ns_version));
  EXPECT_EQ(query->child_text("name", ns_version), "Parley");
  EXPECT_EQ(query->child_text("version", ns_version), "0.1.0-test");
  EXPECT_EQ(query->child("os", ns_version), nullptr);
}

TEST(Version, ShowsTheOsWhenAsked) {
  TestServer server;
  server.enable(make_version_module, "show_os: true");
  const auto reply = ask_version(server);
  ASSERT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
  utsname name{};
  ASSERT_EQ(uname(&name), 0);
  EXPECT_EQ(payload(reply)->child_text("os", ns_version), std::string(name.sysname) + " " + name.release);
}

TEST(Version, ShowOsFalseHidesIt) {
  TestServer server;
  server.enable(make_version_module, "show_os: false");
  EXPECT_EQ(payload(ask_version(server))->child("os", ns_version), nullptr);
}

TEST(Version, AdvertisesTheFeature) {
  TestServer server;
  server.enable(make_version_module);
  const auto features = server.host().disco_features();
  EXPECT_NE(std::find(features.begin(), features.end(), ns_version), features.end());
}

TEST(VersionOptions, RefusesUnknownOptionsAndNonBooleans) {
  TestServer server;
  EXPECT_THROW(server.enable(make_version_module, "show_kernel: true"), OptionError);
  EXPECT_THROW(server.enable(make_version_module, "show_os: sometimes"), OptionError);
  EXPECT_THROW(server.enable(make_version_module, "show_os: [true]"), OptionError);
}

}  // namespace
}  // namespace parley::modules
