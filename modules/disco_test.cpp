#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "modules/factories.hpp"
#include "modules/module_test_support.hpp"

namespace parley::modules {
namespace {

using testing::Client;
using testing::TestServer;
using testing::child_attrs;
using testing::error_condition;
using testing::make_iq;
using testing::payload;

constexpr const char* ns_info = "http://jabber.org/protocol/disco#info";
constexpr const char* ns_items = "http://jabber.org/protocol/disco#items";

class DiscoTest : public ::testing::Test {
 protected:
  TestServer server;
  Client alice = server.bind("alice@example.org/phone");
};

TEST_F(DiscoTest, HostInfoHasServerIdentityAndTheFeaturesOfEnabledModules) {
  server.enable(make_disco_module);
  server.enable(make_ping_module);
  server.enable(make_version_module);
  server.enable(make_time_module);
  server.enable(make_register_module);

  const auto reply = server.ask(alice, make_iq("get", "d1", "example.org", "query", ns_info));
  ASSERT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
  EXPECT_EQ(reply.attr("from"), "example.org");
  EXPECT_EQ(reply.attr("to"), "alice@example.org/phone");
  const auto* query = payload(reply);
  ASSERT_NE(query, nullptr);
  ASSERT_TRUE(query->is("query", ns_info));

  const auto* identity = query->child("identity", ns_info);
  ASSERT_NE(identity, nullptr);
  EXPECT_EQ(identity->attr("category"), "server");
  EXPECT_EQ(identity->attr("type"), "im");
  EXPECT_EQ(identity->attr("name"), "Parley");

  const std::vector<std::string> expected = {
      "http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/disco#items",
      "jabber:iq:register", "jabber:iq:version", "urn:xmpp:ping", "urn:xmpp:time"};
  EXPECT_EQ(child_attrs(*query, "feature", "var"), expected);
}

TEST_F(DiscoTest, HostInfoSortsFeaturesListsEachOnceAndAddsContributedIdentities) {
  server.enable(make_disco_module);
  server.host().add_disco_feature("urn:xmpp:zzz");
  server.host().add_disco_feature("urn:xmpp:aaa");
  server.host().add_disco_feature("urn:xmpp:aaa");
  server.host().add_disco_feature("http://jabber.org/protocol/disco#info");
  server.host().add_disco_identity({"pubsub", "pep", ""});

  const auto reply = server.ask(alice, make_iq("get", "d2", "example.org", "query", ns_info));
  ASSERT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
  const std::vector<std::string> features = {"http://jabber.org/protocol/disco#info",
                                             "http://jabber.org/protocol/disco#items", "urn:xmpp:aaa",
                                             "urn:xmpp:zzz"};
  EXPECT_EQ(child_attrs(*payload(reply), "feature", "var"), features);
  EXPECT_EQ(child_attrs(*payload(reply), "identity", "category"), (std::vector<std::string>{"server", "pubsub"}));
  EXPECT_EQ(child_attrs(*payload(reply), "identity", "type"), (std::vector<std::string>{"im", "pep"}));
}

TEST_F(DiscoTest, HostQueryWithANodeGetsItemNotFound) {
  server.enable(make_disco_module);
  for (const char* ns : {ns_info, ns_items}) {
    auto iq = make_iq("get", "n1", "example.org", "query", ns);
    iq.children().front().set_attr("node", "http://jabber.org/protocol/commands");
    const auto reply = server.ask(alice, std::move(iq));
    EXPECT_EQ(reply.attr("type"), "error") << ns;
    EXPECT_EQ(error_condition(reply), "item-not-found") << ns;
  }
}

TEST_F(DiscoTest, HostItemsAreEmptyByDefault) {
  server.enable(make_disco_module);
  const auto reply = server.ask(alice, make_iq("get", "i1", "example.org", "query", ns_items));
  ASSERT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
  ASSERT_NE(payload(reply), nullptr);
  EXPECT_TRUE(payload(reply)->is("query", ns_items));
  EXPECT_EQ(payload(reply)->first_child_element(), nullptr);
}

TEST_F(DiscoTest, HostItemsListTheConfiguredItems) {
  server.enable(make_disco_module,
                "items:\n"
                "  - jid: conference.example.org\n"
                "    name: Chatrooms\n"
                "  - jid: Proxy.Example.org\n");
  const auto reply = server.ask(alice, make_iq("get", "i2", "example.org", "query", ns_items));
  ASSERT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
  EXPECT_EQ(child_attrs(*payload(reply), "item", "jid"),
            (std::vector<std::string>{"conference.example.org", "proxy.example.org"}));
  EXPECT_EQ(child_attrs(*payload(reply), "item", "name"), (std::vector<std::string>{"Chatrooms", ""}));
}

TEST_F(DiscoTest, AccountInfoIsAnsweredForAnExistingAccountToAnyone) {
  server.enable(make_disco_module);
  server.add_account("alice", "secret");
  server.host().add_account_disco_feature("urn:xmpp:mam:2");
  server.host().add_account_disco_feature("urn:xmpp:mam:2");
  const auto bob = server.bind("bob@example.org/laptop");

  const auto reply = server.ask(bob, make_iq("get", "a1", "alice@example.org", "query", ns_info));
  ASSERT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
  EXPECT_EQ(reply.attr("from"), "alice@example.org");
  const auto* identity = payload(reply)->child("identity", ns_info);
  ASSERT_NE(identity, nullptr);
  EXPECT_EQ(identity->attr("category"), "account");
  EXPECT_EQ(identity->attr("type"), "registered");
  EXPECT_EQ(child_attrs(*payload(reply), "feature", "var"),
            (std::vector<std::string>{"http://jabber.org/protocol/disco#info",
                                      "http://jabber.org/protocol/disco#items", "urn:xmpp:mam:2"}));
}

TEST_F(DiscoTest, AccountInfoWithoutToIsAboutTheSendersOwnAccount) {
  server.enable(make_disco_module);
  server.add_account("alice", "secret");
  const auto reply = server.ask(alice, make_iq("get", "a2", "", "query", ns_info));
  ASSERT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
  EXPECT_EQ(child_attrs(*payload(reply), "identity", "category"), std::vector<std::string>{"account"});
}

TEST_F(DiscoTest, AccountQueriesForAMissingAccountGetServiceUnavailable) {
  server.enable(make_disco_module);
  for (const char* ns : {ns_info, ns_items}) {
    const auto reply = server.ask(alice, make_iq("get", "m1", "nobody@example.org", "query", ns));
    EXPECT_EQ(reply.attr("type"), "error") << ns;
    EXPECT_EQ(error_condition(reply), "service-unavailable") << ns;
  }
}

TEST_F(DiscoTest, AccountItemsAreEmptyAndNodesAreUnknown) {
  server.enable(make_disco_module);
  server.add_account("alice", "secret");
  const auto items = server.ask(alice, make_iq("get", "ai", "alice@example.org", "query", ns_items));
  ASSERT_EQ(items.attr("type"), "result") << xml::serialize(items);
  EXPECT_TRUE(payload(items)->is("query", ns_items));
  EXPECT_EQ(payload(items)->first_child_element(), nullptr);

  auto with_node = make_iq("get", "an", "alice@example.org", "query", ns_info);
  with_node.children().front().set_attr("node", "urn:xmpp:avatar:data");
  EXPECT_EQ(error_condition(server.ask(alice, std::move(with_node))), "item-not-found");
}

TEST_F(DiscoTest, RemoteRequestersAreAnsweredThroughTheRemoteRoute) {
  server.enable(make_disco_module);
  server.add_account("alice", "secret");
  std::vector<xml::Element> sent_remote;
  server.router().set_remote_route([&sent_remote](xml::Element& stanza, const xmpp::Jid&) {
    sent_remote.push_back(stanza);
    return true;
  });
  auto iq = make_iq("get", "r1", "alice@example.org", "query", ns_info);
  iq.set_attr("from", "romeo@montague.example/orchard");
  server.run(server.router().route(std::move(iq)));

  ASSERT_EQ(sent_remote.size(), 1u);
  EXPECT_EQ(sent_remote.front().attr("type"), "result") << xml::serialize(sent_remote.front());
  EXPECT_EQ(sent_remote.front().attr("to"), "romeo@montague.example/orchard");
  EXPECT_EQ(child_attrs(*payload(sent_remote.front()), "identity", "type"),
            std::vector<std::string>{"registered"});
}

TEST(DiscoStorageOutage, AccountQueryGetsInternalServerError) {
  auto outage = std::make_unique<testing::OutageStorage>();
  auto& storage = *outage;
  TestServer server("example.org", std::move(outage));
  server.enable(make_disco_module);
  server.add_account("alice", "secret");
  const auto alice = server.bind("alice@example.org/phone");
  storage.set_down(true);
  const auto reply = server.ask(alice, make_iq("get", "o1", "alice@example.org", "query", ns_info));
  EXPECT_EQ(error_condition(reply), "internal-server-error");
}

TEST(DiscoOptions, UnknownOrMalformedOptionsAreRefused) {
  TestServer server;
  EXPECT_THROW(server.enable(make_disco_module, "colour: blue"), OptionError);
  EXPECT_THROW(server.enable(make_disco_module, "items: conference.example.org"), OptionError);
  EXPECT_THROW(server.enable(make_disco_module, "items:\n  - name: no jid\n"), OptionError);
  EXPECT_THROW(server.enable(make_disco_module, "items:\n  - jid: '@example.org'\n"), OptionError);
  EXPECT_THROW(server.enable(make_disco_module, "items:\n  - jid: muc.example.org\n    colour: blue\n"),
               OptionError);
  EXPECT_THROW(server.enable(make_disco_module, "[1, 2]"), OptionError);
}

TEST(DiscoOptions, UnknownOptionErrorPointsAtTheKeysLine) {
  TestServer server;
  try {
    server.enable(make_disco_module, "items: []\ncolour: blue\n");
    FAIL() << "expected OptionError";
  } catch (const OptionError& error) {
    EXPECT_EQ(error.mark.line, 1);
    EXPECT_NE(std::string(error.what()).find("colour"), std::string::npos);
  }
}

}  // namespace
}  // namespace parley::modules
