#include "router/router.hpp"

#include <gtest/gtest.h>

#include "router/testing.hpp"
#include "xmpp/errors.hpp"

namespace parley::router {
namespace {

using testing::RecordingSession;
using testing::run;

xmpp::Jid jid(std::string_view text) { return *xmpp::Jid::parse(text); }

Resource resource(std::string_view full, bool available, int priority) {
  Resource r;
  r.jid = jid(full);
  r.available = available;
  r.priority = priority;
  return r;
}

std::vector<std::string> jids_of(const std::vector<Resource>& resources) {
  std::vector<std::string> out;
  for (const auto& r : resources) out.push_back(r.jid.str());
  return out;
}

struct RecipientCase {
  std::string type;
  std::vector<Resource> resources;
  std::vector<std::string> expected;
};

class MessageRecipients : public ::testing::TestWithParam<RecipientCase> {};

TEST_P(MessageRecipients, FollowRfc6121Section8) {
  const auto& c = GetParam();
  EXPECT_EQ(jids_of(message_recipients(c.type, c.resources)), c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Table, MessageRecipients,
    ::testing::Values(
        RecipientCase{"chat", {resource("b@h/1", true, 5), resource("b@h/2", true, 1)}, {"b@h/1"}},
        RecipientCase{"", {resource("b@h/1", true, 1), resource("b@h/2", true, 5)}, {"b@h/2"}},
        RecipientCase{"normal", {resource("b@h/1", true, 3), resource("b@h/2", true, 3)}, {"b@h/1", "b@h/2"}},
        RecipientCase{"chat", {resource("b@h/1", true, -1)}, {}},
        RecipientCase{"chat", {resource("b@h/1", false, 9), resource("b@h/2", true, 0)}, {"b@h/2"}},
        RecipientCase{"headline",
                      {resource("b@h/1", true, 5), resource("b@h/2", true, 0), resource("b@h/3", true, -2)},
                      {"b@h/1", "b@h/2"}},
        RecipientCase{"groupchat", {resource("b@h/1", true, 5)}, {}},
        RecipientCase{"error", {resource("b@h/1", true, 5)}, {}},
        RecipientCase{"chat", {}, {}}));

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() : host_(router_.add_host("h")) {}

  std::shared_ptr<RecordingSession> connect(std::string_view full, int priority = 0, bool available = true) {
    auto session = std::make_shared<RecordingSession>(std::string(full));
    router_.sessions().bind(jid(full), session);
    if (available) {
      router_.sessions().set_presence(jid(full), std::make_shared<const xml::Element>("presence"), priority);
    }
    return session;
  }

  void send(std::string_view from_full, xml::Element stanza, std::shared_ptr<Session> origin) {
    run(router_.process_from_client(std::move(stanza), jid(from_full), std::move(origin)));
  }

  static xml::Element message(std::string_view to, std::string_view type = "chat") {
    xml::Element m("message");
    if (!to.empty()) m.set_attr("to", std::string(to));
    if (!type.empty()) m.set_attr("type", std::string(type));
    m.add_child("body", std::string(xml::ns_client)).add_text("hi");
    return m;
  }

  Router router_;
  Host& host_;
};

TEST_F(RouterTest, MessageToBareJidGoesToHighestPriorityResourceWithStampedFrom) {
  auto alice = connect("a@h/phone");
  auto high = connect("b@h/desk", 5);
  auto low = connect("b@h/phone", 1);
  send("a@h/phone", message("b@h"), alice);
  auto got = high->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].attr("from"), "a@h/phone");
  EXPECT_TRUE(low->take().empty());
  EXPECT_TRUE(alice->take().empty());
}

TEST_F(RouterTest, MessageToFullJidReachesThatResourceEvenWithLowerPriority) {
  auto alice = connect("a@h/phone");
  auto high = connect("b@h/desk", 5);
  auto low = connect("b@h/phone", 1);
  send("a@h/phone", message("b@h/phone"), alice);
  EXPECT_EQ(low->take().size(), 1u);
  EXPECT_TRUE(high->take().empty());
}

TEST_F(RouterTest, MessageToOfflineResourceIsTreatedAsBare) {
  auto alice = connect("a@h/phone");
  auto desk = connect("b@h/desk", 0);
  send("a@h/phone", message("b@h/gone"), alice);
  EXPECT_EQ(desk->take().size(), 1u);
}

TEST_F(RouterTest, MessageWithNoRecipientFiresOfflineHookThenServiceUnavailable) {
  auto alice = connect("a@h/phone");
  int offline_calls = 0;
  host_.hook("message/offline", 0, [&](StanzaEvent&) -> Task<HookResult> {
    ++offline_calls;
    co_return HookResult::pass;
  });
  send("a@h/phone", message("b@h"), alice);
  EXPECT_EQ(offline_calls, 1);
  auto got = alice->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].attr("type"), "error");
  EXPECT_EQ(xmpp::stanza_error_condition(got[0]), "service-unavailable");
}

TEST_F(RouterTest, ErrorMessagesAreNeverAnsweredWithErrors) {
  auto alice = connect("a@h/phone");
  send("a@h/phone", message("b@h", "error"), alice);
  EXPECT_TRUE(alice->take().empty());
}

TEST_F(RouterTest, MalformedToIsAnsweredWithJidMalformed) {
  auto alice = connect("a@h/phone");
  send("a@h/phone", message("@bad@"), alice);
  auto got = alice->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(xmpp::stanza_error_condition(got[0]), "jid-malformed");
}

TEST_F(RouterTest, IqToAccountWithoutHandlerIsServiceUnavailable) {
  auto alice = connect("a@h/phone");
  xml::Element iq("iq");
  iq.set_attr("type", "get").set_attr("id", "1").set_attr("to", "b@h");
  iq.add_child("query", "urn:example:nothing");
  send("a@h/phone", iq, alice);
  auto got = alice->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].attr("id"), "1");
  EXPECT_EQ(xmpp::stanza_error_condition(got[0]), "service-unavailable");
}

TEST_F(RouterTest, IqWithoutToIsHandledForTheSendersAccount) {
  auto alice = connect("a@h/phone");
  host_.add_iq_handler(IqTarget::account, "get", "jabber:iq:roster", [](StanzaEvent& ev) -> Task<xml::Element> {
    EXPECT_EQ(ev.to.str(), "a@h");
    co_return xmpp::iq_result(ev.stanza);
  });
  xml::Element iq("iq");
  iq.set_attr("type", "get").set_attr("id", "r1");
  iq.add_child("query", "jabber:iq:roster");
  send("a@h/phone", iq, alice);
  auto got = alice->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].attr("type"), "result");
  EXPECT_EQ(got[0].attr("id"), "r1");
}

TEST_F(RouterTest, IqWithoutPayloadIsBadRequest) {
  auto alice = connect("a@h/phone");
  xml::Element iq("iq");
  iq.set_attr("type", "get").set_attr("id", "x").set_attr("to", "h");
  send("a@h/phone", iq, alice);
  auto got = alice->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(xmpp::stanza_error_condition(got[0]), "bad-request");
}

TEST_F(RouterTest, ThrowingIqHandlerGivesInternalServerError) {
  auto alice = connect("a@h/phone");
  host_.add_iq_handler(IqTarget::host, "get", "urn:x", [](StanzaEvent&) -> Task<xml::Element> {
    throw std::runtime_error("storage down");
    co_return xml::Element{};
  });
  xml::Element iq("iq");
  iq.set_attr("type", "get").set_attr("id", "x").set_attr("to", "h");
  iq.add_child("q", "urn:x");
  send("a@h/phone", iq, alice);
  auto got = alice->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(xmpp::stanza_error_condition(got[0]), "internal-server-error");
}

TEST_F(RouterTest, HooksRunByDescendingPriorityAndStopWhenHandled) {
  auto alice = connect("a@h/phone");
  auto bob = connect("b@h/desk");
  std::vector<int> order;
  host_.hook("pre-message/bare", 1, [&](StanzaEvent&) -> Task<HookResult> {
    order.push_back(1);
    co_return HookResult::handled;
  });
  host_.hook("pre-message/bare", 10, [&](StanzaEvent&) -> Task<HookResult> {
    order.push_back(10);
    co_return HookResult::pass;
  });
  host_.hook("pre-message/bare", -5, [&](StanzaEvent&) -> Task<HookResult> {
    order.push_back(-5);
    co_return HookResult::pass;
  });
  send("a@h/phone", message("b@h"), alice);
  EXPECT_EQ(order, (std::vector<int>{10, 1}));
  EXPECT_TRUE(bob->take().empty());
}

TEST_F(RouterTest, RemoteDomainWithoutRouteBouncesRemoteServerNotFound) {
  auto alice = connect("a@h/phone");
  send("a@h/phone", message("x@elsewhere.example"), alice);
  auto got = alice->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(xmpp::stanza_error_condition(got[0]), "remote-server-not-found");
}

TEST_F(RouterTest, RemoteRouteTakesNonLocalDomains) {
  auto alice = connect("a@h/phone");
  std::vector<std::string> taken;
  router_.set_remote_route([&](xml::Element& stanza, const xmpp::Jid& to) {
    taken.push_back(to.str() + " " + std::string(stanza.attr("from")));
    return true;
  });
  send("a@h/phone", message("x@elsewhere.example"), alice);
  EXPECT_EQ(taken, (std::vector<std::string>{"x@elsewhere.example a@h/phone"}));
  EXPECT_TRUE(alice->take().empty());
}

TEST_F(RouterTest, DomainRouteTakesPrecedenceAndItsRefusalIsServiceUnavailable) {
  auto alice = connect("a@h/phone");
  bool component_up = true;
  std::vector<std::string> taken;
  router_.add_domain_route("bridge.h", [&](xml::Element& stanza, const xmpp::Jid&) {
    if (component_up) taken.push_back(std::string(stanza.attr("to")));
    return component_up;
  });
  router_.set_remote_route([](xml::Element&, const xmpp::Jid&) {
    ADD_FAILURE() << "a routed domain must not reach the remote route";
    return true;
  });
  EXPECT_TRUE(router_.serves("bridge.h"));
  EXPECT_FALSE(router_.serves("elsewhere.example"));
  send("a@h/phone", message("room@bridge.h"), alice);
  EXPECT_EQ(taken, (std::vector<std::string>{"room@bridge.h"}));
  component_up = false;
  send("a@h/phone", message("room@bridge.h"), alice);
  auto got = alice->take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(xmpp::stanza_error_condition(got[0]), "service-unavailable");
}

TEST_F(RouterTest, AvailablePresenceToBareJidReachesAvailableResourcesOnly) {
  auto alice = connect("a@h/phone");
  auto on = connect("b@h/on");
  auto off = connect("b@h/off", 0, false);
  xml::Element presence("presence");
  presence.set_attr("to", "b@h");
  send("a@h/phone", presence, alice);
  EXPECT_EQ(on->take().size(), 1u);
  EXPECT_TRUE(off->take().empty());
}

TEST_F(RouterTest, ErrorPresenceReachesTheFullJidItAnswersOnly) {
  auto alice = connect("a@h/phone");
  auto other = connect("a@h/desk");
  xml::Element refused("presence");
  refused.set_attr("type", "error");
  refused.set_attr("from", "room@muc.h/nick");
  refused.set_attr("to", "a@h/phone");
  run(router_.route(refused));
  EXPECT_EQ(alice->take().size(), 1u);
  refused.set_attr("to", "a@h");
  run(router_.route(refused));
  EXPECT_TRUE(alice->take().empty());
  EXPECT_TRUE(other->take().empty());
}

TEST_F(RouterTest, SessionClosedFiresHookWithLastStateOnlyForTheCurrentHolder) {
  auto first = connect("a@h/r", 3);
  std::vector<bool> seen;
  host_.on_session_closed([&](SessionEvent& ev) -> Task<void> {
    seen.push_back(ev.last->available);
    co_return;
  });
  auto replacement = std::make_shared<RecordingSession>();
  EXPECT_EQ(router_.sessions().bind(jid("a@h/r"), replacement), first);
  run(router_.session_closed(jid("a@h/r"), first.get()));
  EXPECT_TRUE(seen.empty());
  run(router_.session_closed(jid("a@h/r"), replacement.get()));
  EXPECT_EQ(seen, (std::vector<bool>{false}));
}

TEST_F(RouterTest, UnauthenticatedIqGoesToItsHandlerOrServiceUnavailable) {
  auto anonymous = std::make_shared<RecordingSession>();
  host_.add_iq_handler(IqTarget::unauthenticated, "get", "jabber:iq:register",
                       [](StanzaEvent& ev) -> Task<xml::Element> { co_return xmpp::iq_result(ev.stanza); });
  xml::Element iq("iq");
  iq.set_attr("type", "get").set_attr("id", "reg");
  iq.add_child("query", "jabber:iq:register");
  run(router_.process_unauthenticated_iq(iq, "h", anonymous));
  iq.children().clear();
  iq.add_child("query", "jabber:iq:version");
  run(router_.process_unauthenticated_iq(iq, "h", anonymous));
  auto got = anonymous->take();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].attr("type"), "result");
  EXPECT_EQ(xmpp::stanza_error_condition(got[1]), "service-unavailable");
}

}  // namespace
}  // namespace parley::router
