#include "modules/im_util.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace parley::modules::im {
namespace {

using storage::Subscription;

// A state in the notation of RFC 6121 Appendix A: "None", "To + Pending In",
// "None + Pending Out+In", ...
SubscriptionState state(std::string_view name) {
  SubscriptionState s;
  if (name.starts_with("Both")) s.subscription = Subscription::both;
  if (name.starts_with("From")) s.subscription = Subscription::from;
  if (name.starts_with("To")) s.subscription = Subscription::to;
  s.pending_out = name.find("Pending Out") != std::string_view::npos;
  s.pending_in = name.find("Pending In") != std::string_view::npos || name.find("Out+In") != std::string_view::npos;
  return s;
}

struct Row {
  const char* before;
  const char* after;
};

void expect_table(SubscriptionState (*apply)(SubscriptionState, SubscriptionType), SubscriptionType type,
                  const std::vector<Row>& table) {
  ASSERT_EQ(table.size(), 9u) << "every state of RFC 6121 Appendix A";
  for (const auto& row : table) {
    auto after = apply(state(row.before), type);
    after.approved = false;  // pre-approval is checked separately
    EXPECT_EQ(after, state(row.after)) << type_name(type) << " from '" << row.before << "'";
  }
}

TEST(SubscriptionStates, OutboundSubscribeFollowsRfc6121A21) {
  expect_table(after_outbound, SubscriptionType::subscribe,
               {{"None", "None + Pending Out"},
                {"None + Pending Out", "None + Pending Out"},
                {"None + Pending In", "None + Pending Out+In"},
                {"None + Pending Out+In", "None + Pending Out+In"},
                {"To", "To"},
                {"To + Pending In", "To + Pending In"},
                {"From", "From + Pending Out"},
                {"From + Pending Out", "From + Pending Out"},
                {"Both", "Both"}});
}

TEST(SubscriptionStates, OutboundUnsubscribeFollowsRfc6121A22) {
  expect_table(after_outbound, SubscriptionType::unsubscribe,
               {{"None", "None"},
                {"None + Pending Out", "None"},
                {"None + Pending In", "None + Pending In"},
                {"None + Pending Out+In", "None + Pending In"},
                {"To", "None"},
                {"To + Pending In", "None + Pending In"},
                {"From", "From"},
                {"From + Pending Out", "From"},
                {"Both", "From"}});
}

TEST(SubscriptionStates, OutboundSubscribedFollowsRfc6121A23) {
  expect_table(after_outbound, SubscriptionType::subscribed,
               {{"None", "None"},
                {"None + Pending Out", "None + Pending Out"},
                {"None + Pending In", "From"},
                {"None + Pending Out+In", "From + Pending Out"},
                {"To", "To"},
                {"To + Pending In", "Both"},
                {"From", "From"},
                {"From + Pending Out", "From + Pending Out"},
                {"Both", "Both"}});
}

TEST(SubscriptionStates, OutboundUnsubscribedFollowsRfc6121A24) {
  expect_table(after_outbound, SubscriptionType::unsubscribed,
               {{"None", "None"},
                {"None + Pending Out", "None + Pending Out"},
                {"None + Pending In", "None"},
                {"None + Pending Out+In", "None + Pending Out"},
                {"To", "To"},
                {"To + Pending In", "To"},
                {"From", "None"},
                {"From + Pending Out", "None + Pending Out"},
                {"Both", "To"}});
}

TEST(SubscriptionStates, InboundSubscribeFollowsRfc6121A31) {
  expect_table(after_inbound, SubscriptionType::subscribe,
               {{"None", "None + Pending In"},
                {"None + Pending Out", "None + Pending Out+In"},
                {"None + Pending In", "None + Pending In"},
                {"None + Pending Out+In", "None + Pending Out+In"},
                {"To", "To + Pending In"},
                {"To + Pending In", "To + Pending In"},
                {"From", "From"},
                {"From + Pending Out", "From + Pending Out"},
                {"Both", "Both"}});
}

TEST(SubscriptionStates, InboundUnsubscribeFollowsRfc6121A32) {
  expect_table(after_inbound, SubscriptionType::unsubscribe,
               {{"None", "None"},
                {"None + Pending Out", "None + Pending Out"},
                {"None + Pending In", "None"},
                {"None + Pending Out+In", "None + Pending Out"},
                {"To", "To"},
                {"To + Pending In", "To"},
                {"From", "None"},
                {"From + Pending Out", "None + Pending Out"},
                {"Both", "To"}});
}

TEST(SubscriptionStates, InboundSubscribedFollowsRfc6121A33) {
  expect_table(after_inbound, SubscriptionType::subscribed,
               {{"None", "None"},
                {"None + Pending Out", "To"},
                {"None + Pending In", "None + Pending In"},
                {"None + Pending Out+In", "To + Pending In"},
                {"To", "To"},
                {"To + Pending In", "To + Pending In"},
                {"From", "From"},
                {"From + Pending Out", "Both"},
                {"Both", "Both"}});
}

TEST(SubscriptionStates, InboundUnsubscribedFollowsRfc6121A34) {
  expect_table(after_inbound, SubscriptionType::unsubscribed,
               {{"None", "None"},
                {"None + Pending Out", "None"},
                {"None + Pending In", "None + Pending In"},
                {"None + Pending Out+In", "None + Pending In"},
                {"To", "None"},
                {"To + Pending In", "None + Pending In"},
                {"From", "From"},
                {"From + Pending Out", "From"},
                {"Both", "From"}});
}

TEST(SubscriptionStates, SubscribedWithoutARequestPreApproves) {
  for (const char* name : {"None", "None + Pending Out", "To"}) {
    EXPECT_TRUE(after_outbound(state(name), SubscriptionType::subscribed).approved) << name;
  }
  for (const char* name : {"From", "Both", "None + Pending In"}) {
    EXPECT_FALSE(after_outbound(state(name), SubscriptionType::subscribed).approved) << name;
  }
}

TEST(SubscriptionStates, PreApprovedRequestIsAcceptedAtOnce) {
  auto none = state("None");
  none.approved = true;
  EXPECT_EQ(after_inbound(none, SubscriptionType::subscribe), state("From"));
  auto to = state("To");
  to.approved = true;
  EXPECT_EQ(after_inbound(to, SubscriptionType::subscribe), state("Both"));
}

TEST(SubscriptionStates, UnsubscribedCancelsPreApproval) {
  auto approved = state("None");
  approved.approved = true;
  EXPECT_EQ(after_outbound(approved, SubscriptionType::unsubscribed), state("None"));
}

TEST(SubscriptionStates, TypeNamesRoundTrip) {
  for (auto type : {SubscriptionType::subscribe, SubscriptionType::subscribed, SubscriptionType::unsubscribe,
                    SubscriptionType::unsubscribed}) {
    EXPECT_EQ(subscription_type(type_name(type)), type);
  }
  EXPECT_EQ(subscription_type("probe"), std::nullopt);
  EXPECT_EQ(subscription_type(""), std::nullopt);
}

TEST(RosterItemXml, CarriesEveryVisibleField) {
  storage::RosterItem item;
  item.jid = "bob@example.org";
  item.name = "Bob";
  item.subscription = Subscription::from;
  item.ask = true;
  item.approved = true;
  item.groups = {"Friends", "Work"};
  const auto element = item_element(item);
  EXPECT_TRUE(element.is("item", ns_roster));
  EXPECT_EQ(element.attr("jid"), "bob@example.org");
  EXPECT_EQ(element.attr("name"), "Bob");
  EXPECT_EQ(element.attr("subscription"), "from");
  EXPECT_EQ(element.attr("ask"), "subscribe");
  EXPECT_EQ(element.attr("approved"), "true");
  std::vector<std::string> groups;
  for (const auto& child : element.children()) {
    if (child.is("group", ns_roster)) groups.push_back(child.text());
  }
  EXPECT_EQ(groups, item.groups);

  storage::RosterItem plain;
  plain.jid = "carol@example.org";
  const auto minimal = item_element(plain);
  EXPECT_EQ(minimal.attr("subscription"), "none");
  EXPECT_FALSE(minimal.has_attr("name"));
  EXPECT_FALSE(minimal.has_attr("ask"));
  EXPECT_FALSE(minimal.has_attr("approved"));
}

TEST(RosterPush, IsASetWithoutFromAddressedToTheResource) {
  const auto resource = *xmpp::Jid::parse("alice@example.org/phone");
  const auto push = roster_push(resource, removed_item_element("bob@example.org"), "7");
  EXPECT_EQ(push.attr("type"), "set");
  EXPECT_FALSE(push.has_attr("from"));
  EXPECT_EQ(push.attr("to"), "alice@example.org/phone");
  EXPECT_FALSE(push.attr("id").empty());
  const auto* query = push.child("query", ns_roster);
  ASSERT_NE(query, nullptr);
  EXPECT_EQ(query->attr("ver"), "7");
  ASSERT_NE(query->child("item", ns_roster), nullptr);
  EXPECT_EQ(query->child("item", ns_roster)->attr("subscription"), "remove");
  EXPECT_NE(roster_push(resource, removed_item_element("x@example.org"), "8").attr("id"), push.attr("id"));
}

xml::Element with_priority(std::string text) {
  xml::Element stanza("presence");
  stanza.add_child("priority", std::string(xml::ns_client)).add_text(std::move(text));
  return stanza;
}

TEST(PresencePriority, ParsesAndClamps) {
  EXPECT_EQ(presence_priority(xml::Element("presence")), 0);
  EXPECT_EQ(presence_priority(with_priority("5")), 5);
  EXPECT_EQ(presence_priority(with_priority(" -3 ")), -3);
  EXPECT_EQ(presence_priority(with_priority("+7")), 7);
  EXPECT_EQ(presence_priority(with_priority("200")), 127);
  EXPECT_EQ(presence_priority(with_priority("-129")), -128);
  EXPECT_EQ(presence_priority(with_priority("99999999999999999999999")), 127);
  EXPECT_EQ(presence_priority(with_priority("-99999999999999999999999")), -128);
  EXPECT_EQ(presence_priority(with_priority("high")), 0);
  EXPECT_EQ(presence_priority(with_priority("1.5")), 0);
  EXPECT_EQ(presence_priority(with_priority("")), 0);
}

TEST(StoredStanza, RoundTripsThroughSerialisation) {
  xml::Element message("message");
  message.set_attr("from", "alice@example.org/phone");
  message.set_attr("to", "bob@example.org");
  message.add_child("body", std::string(xml::ns_client)).add_text("fish & <chips>");
  auto& delay = message.add_child("delay", std::string(ns_delay));
  delay.set_attr("stamp", "2024-01-01T00:00:00.000Z");
  const auto parsed = parse_stored_stanza(xml::serialize(message));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, message);
}

TEST(StoredStanza, GarbageDoesNotParse) {
  EXPECT_FALSE(parse_stored_stanza("<message><body>unclosed"));
  EXPECT_FALSE(parse_stored_stanza("not xml at all <"));
  EXPECT_FALSE(parse_stored_stanza(""));
}

}  // namespace
}  // namespace parley::modules::im
