#include "router/session.hpp"

#include <gtest/gtest.h>

#include "router/testing.hpp"

namespace parley::router {
namespace {

xmpp::Jid jid(std::string_view text) { return *xmpp::Jid::parse(text); }

TEST(SessionRegistry, BindReplacesTheSameFullJidAndReturnsTheOldSession) {
  SessionRegistry registry;
  auto first = std::make_shared<testing::RecordingSession>("one");
  auto second = std::make_shared<testing::RecordingSession>("two");
  EXPECT_EQ(registry.bind(jid("a@h/r"), first), nullptr);
  EXPECT_EQ(registry.bind(jid("a@h/r"), second), first);
  ASSERT_EQ(registry.resources(jid("a@h")).size(), 1u);
  EXPECT_EQ(registry.find(jid("a@h/r"))->session, second);
}

TEST(SessionRegistry, UnbindOnlyRemovesTheSessionThatHoldsTheJid) {
  SessionRegistry registry;
  auto first = std::make_shared<testing::RecordingSession>("one");
  auto second = std::make_shared<testing::RecordingSession>("two");
  registry.bind(jid("a@h/r"), first);
  registry.bind(jid("a@h/r"), second);
  EXPECT_FALSE(registry.unbind(jid("a@h/r"), first.get()));
  EXPECT_TRUE(registry.unbind(jid("a@h/r"), second.get()));
  EXPECT_EQ(registry.count(), 0u);
}

TEST(SessionRegistry, TransferKeepsPresenceStateAndNeedsTheCurrentHolder) {
  SessionRegistry registry;
  auto old_session = std::make_shared<testing::RecordingSession>("old");
  auto new_session = std::make_shared<testing::RecordingSession>("new");
  registry.bind(jid("a@h/r"), old_session);
  registry.set_presence(jid("a@h/r"), std::make_shared<const xml::Element>("presence"), 4);
  EXPECT_FALSE(registry.transfer(jid("a@h/r"), new_session.get(), new_session));
  EXPECT_TRUE(registry.transfer(jid("a@h/r"), old_session.get(), new_session));
  auto resource = registry.find(jid("a@h/r"));
  EXPECT_EQ(resource->session, new_session);
  EXPECT_TRUE(resource->available);
  EXPECT_EQ(resource->priority, 4);
  EXPECT_FALSE(registry.unbind(jid("a@h/r"), old_session.get()));
}

TEST(SessionRegistry, PresenceStateIsKeptPerResource) {
  SessionRegistry registry;
  registry.bind(jid("a@h/one"), std::make_shared<testing::RecordingSession>());
  registry.bind(jid("a@h/two"), std::make_shared<testing::RecordingSession>());
  auto presence = std::make_shared<const xml::Element>("presence");
  registry.set_presence(jid("a@h/one"), presence, 7);
  registry.set_interested(jid("a@h/two"), true);
  auto one = registry.find(jid("a@h/one"));
  auto two = registry.find(jid("a@h/two"));
  EXPECT_TRUE(one->available);
  EXPECT_EQ(one->priority, 7);
  EXPECT_FALSE(one->interested);
  EXPECT_FALSE(two->available);
  EXPECT_TRUE(two->interested);
  registry.set_presence(jid("a@h/one"), nullptr, 7);
  EXPECT_FALSE(registry.find(jid("a@h/one"))->available);
  EXPECT_EQ(registry.all().size(), 2u);
}

TEST(SessionRegistry, SessionFindsOnlyTheExactFullJid) {
  SessionRegistry registry;
  auto desk = std::make_shared<testing::RecordingSession>("desk");
  auto other = std::make_shared<testing::RecordingSession>("other");
  registry.bind(jid("alice@example.com/desk"), desk);
  // Bare keys that share bytes with alice@example.com in other places.
  registry.bind(jid("alice@example.co/desk"), other);
  registry.bind(jid("alic@eexample.com/desk"), other);
  registry.bind(jid("example.com/desk"), other);
  EXPECT_EQ(registry.session(jid("alice@example.com/desk")), desk);
  EXPECT_EQ(registry.session(jid("alice@example.com/laptop")), nullptr);
  EXPECT_EQ(registry.session(jid("alice@example.org/desk")), nullptr);
  EXPECT_EQ(registry.session(jid("bob@example.com/desk")), nullptr);
  EXPECT_EQ(registry.session(jid("example.com/desk")), other);
  EXPECT_EQ(registry.resources(jid("alice@example.com")).size(), 1u);
  EXPECT_EQ(registry.resources(jid("example.com")).size(), 1u);
  EXPECT_TRUE(registry.unbind(jid("alice@example.com/desk"), desk.get()));
  EXPECT_EQ(registry.session(jid("alice@example.com/desk")), nullptr);
  EXPECT_EQ(registry.count(), 3u);
}

}  // namespace
}  // namespace parley::router
