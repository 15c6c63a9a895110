#include <gtest/gtest.h>

#include "modules/factories.hpp"
#include "modules/module_test_support.hpp"

namespace parley::modules {
namespace {

using testing::Client;

constexpr std::string_view ns_carbons = "urn:xmpp:carbons:2";
constexpr std::string_view ns_forward = "urn:xmpp:forward:0";

xml::Element message(std::string_view to, std::string_view body, std::string_view type = "chat") {
  xml::Element stanza("message");
  stanza.set_attr("to", std::string(to));
  if (!type.empty()) stanza.set_attr("type", std::string(type));
  if (!body.empty()) stanza.add_child("body", std::string(xml::ns_client)).add_text(std::string(body));
  return stanza;
}

// The message forwarded inside a carbon, or null when 'stanza' is not a carbon of that direction.
const xml::Element* forwarded(const xml::Element& stanza, std::string_view direction) {
  const auto* wrapper = stanza.child(direction, ns_carbons);
  const auto* forward = wrapper ? wrapper->child("forwarded", ns_forward) : nullptr;
  return forward ? forward->child("message", xml::ns_client) : nullptr;
}

class CarbonsTest : public ::testing::Test {
 protected:
  CarbonsTest() {
    server.enable(make_carbons_module);
    desk = online("alice@example.org/desk", 5);
    phone = online("alice@example.org/phone", 1);
    tablet = online("alice@example.org/tablet", 1);
    bob = online("bob@example.org/home", 0);
  }

  Client online(const std::string& jid, int priority) {
    auto client = server.bind(jid);
    server.router().sessions().set_presence(client.jid, std::make_shared<const xml::Element>("presence"), priority);
    return client;
  }

  void enable(const Client& client, std::string_view what = "enable") {
    const auto reply = server.ask(client, testing::make_iq("set", "c", {}, what, ns_carbons));
    ASSERT_EQ(reply.attr("type"), "result");
  }

  testing::TestServer server;
  Client desk, phone, tablet, bob;
};

TEST_F(CarbonsTest, ReceivedCopiesGoToEnabledResourcesTheMessageDidNotReach) {
  enable(desk);
  enable(phone);
  server.send(bob, message("alice@example.org", "to the account"));
  // The bare JID goes to the highest priority (desk); phone gets a carbon, tablet (not enabled) nothing.
  const auto at_desk = desk.session->take();
  ASSERT_EQ(at_desk.size(), 1u);
  EXPECT_EQ(at_desk.front().child_text("body", xml::ns_client), "to the account");
  const auto at_phone = phone.session->take();
  ASSERT_EQ(at_phone.size(), 1u);
  EXPECT_EQ(at_phone.front().attr("from"), "alice@example.org");
  EXPECT_EQ(at_phone.front().attr("to"), "alice@example.org/phone");
  const auto* copy = forwarded(at_phone.front(), "received");
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(copy->attr("from"), "bob@example.org/home");
  EXPECT_EQ(copy->child_text("body", xml::ns_client), "to the account");
  EXPECT_TRUE(tablet.session->take().empty());

  server.send(bob, message("alice@example.org/phone", "to the phone"));
  const auto at_desk_now = desk.session->take();
  ASSERT_EQ(at_desk_now.size(), 1u);
  ASSERT_NE(forwarded(at_desk_now.front(), "received"), nullptr);
  const auto direct = phone.session->take();
  ASSERT_EQ(direct.size(), 1u);
  EXPECT_EQ(forwarded(direct.front(), "received"), nullptr);
}

TEST_F(CarbonsTest, SentCopiesGoToTheSendersOtherEnabledResources) {
  enable(desk);
  enable(tablet);
  server.send(phone, message("bob@example.org", "from my phone"));
  EXPECT_EQ(bob.session->take().size(), 1u);
  EXPECT_TRUE(phone.session->take().empty());
  for (const auto* client : {&desk, &tablet}) {
    const auto received = client->session->take();
    ASSERT_EQ(received.size(), 1u);
    const auto* copy = forwarded(received.front(), "sent");
    ASSERT_NE(copy, nullptr);
    EXPECT_EQ(copy->attr("from"), "alice@example.org/phone");
    EXPECT_EQ(copy->attr("to"), "bob@example.org");
  }
}

TEST_F(CarbonsTest, PrivateNoCopyGroupchatAndDisabledResourcesAreNotCopied) {
  enable(desk);
  enable(phone);
  auto hidden = message("bob@example.org", "secret");
  hidden.add_child("private", std::string(ns_carbons));
  server.send(phone, hidden);
  auto no_copy = message("bob@example.org", "hint");
  no_copy.add_child("no-copy", "urn:xmpp:hints");
  server.send(phone, no_copy);
  server.send(phone, message("bob@example.org", "", "headline"));
  server.send(phone, message("bob@example.org", "", "normal"));  // no body
  EXPECT_TRUE(desk.session->take().empty());

  enable(desk, "disable");
  server.send(phone, message("bob@example.org", "after disable"));
  server.send(bob, message("alice@example.org/phone", "after disable"));
  EXPECT_TRUE(desk.session->take().empty());
  // A normal message with a body is copied.
  phone.session->take();
  server.send(tablet, message("bob@example.org", "normal", ""));
  const auto at_phone = phone.session->take();
  ASSERT_EQ(at_phone.size(), 1u);
  EXPECT_NE(forwarded(at_phone.front(), "sent"), nullptr);
}

TEST_F(CarbonsTest, ClosedSessionForgetsItsSetting) {
  enable(phone);
  server.run(server.router().session_closed(phone.jid, phone.session.get()));
  auto again = server.bind("alice@example.org/phone");
  server.router().sessions().set_presence(again.jid, std::make_shared<const xml::Element>("presence"), 1);
  server.send(bob, message("alice@example.org", "hello"));
  EXPECT_TRUE(again.session->take().empty());
}

TEST_F(CarbonsTest, AnotherAccountCannotToggleCarbonsAndTheFeatureIsAdvertised) {
  auto iq = testing::make_iq("set", "x", "alice@example.org", "enable", ns_carbons);
  EXPECT_EQ(testing::error_condition(server.ask(bob, iq)), "forbidden");
  const auto features = server.host().disco_features();
  EXPECT_NE(std::ranges::find(features, std::string(ns_carbons)), features.end());
}

}  // namespace
}  // namespace parley::modules
