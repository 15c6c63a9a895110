// The roster module through a real router: RFC 6121 §2 and XEP-0237.
#include <gtest/gtest.h>

#include "modules/im_test_support.hpp"

namespace parley::modules::testing {
namespace {

class RosterTest : public ::testing::Test {
 protected:
  RosterTest() {
    server.add_account("alice", "pw");
    server.add_account("bob", "pw");
  }

  // Binds a resource that requested its roster (an interested resource).
  Client interested(const std::string& jid) {
    auto client = server.bind(jid);
    server.ask(client, roster_get("get-" + jid));
    return client;
  }

  ImServer server;
};

TEST_F(RosterTest, EmptyRosterComesWithAVersion) {
  auto alice = server.bind("alice@example.org/phone");
  const auto reply = server.ask(alice, roster_get("r1"));
  EXPECT_EQ(reply.attr("type"), "result");
  const auto* query = reply.child("query", im::ns_roster);
  ASSERT_NE(query, nullptr);
  EXPECT_TRUE(query->has_attr("ver"));
  EXPECT_EQ(query->first_child_element(), nullptr);
  EXPECT_TRUE(server.router().sessions().find(alice.jid)->interested);
}

TEST_F(RosterTest, SetStoresTheItemAndPushesToInterestedResourcesOnly) {
  auto phone = interested("alice@example.org/phone");
  auto laptop = interested("alice@example.org/laptop");
  auto uninterested = server.bind("alice@example.org/watch");

  const auto received = server.send(phone, roster_set("s1", "bob@example.org", "Bob", {"Friends", "Work"}));
  ASSERT_EQ(select(received, "iq", "result").size(), 1u);
  const auto phone_pushes = roster_pushes(received);
  ASSERT_EQ(phone_pushes.size(), 1u);
  EXPECT_FALSE(phone_pushes[0].has_attr("from"));
  EXPECT_EQ(phone_pushes[0].attr("to"), "alice@example.org/phone");
  const auto item = pushed_item(phone_pushes[0]);
  EXPECT_EQ(item.attr("jid"), "bob@example.org");
  EXPECT_EQ(item.attr("name"), "Bob");
  EXPECT_EQ(item.attr("subscription"), "none");
  EXPECT_EQ(child_attrs(item, "group", "").size(), 2u);

  const auto laptop_pushes = roster_pushes(laptop.session->take());
  ASSERT_EQ(laptop_pushes.size(), 1u);
  EXPECT_EQ(laptop_pushes[0].attr("to"), "alice@example.org/laptop");
  EXPECT_TRUE(uninterested.session->take().empty());

  const auto stored = server.item("alice@example.org", "bob@example.org");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->name, "Bob");
  EXPECT_EQ(stored->groups, (std::vector<std::string>{"Friends", "Work"}));

  const auto roster = server.ask(phone, roster_get("r2"));
  const auto* query = roster.child("query", im::ns_roster);
  ASSERT_NE(query, nullptr);
  EXPECT_EQ(child_attrs(*query, "item", "jid"), std::vector<std::string>{"bob@example.org"});
  EXPECT_EQ(query->attr("ver"), phone_pushes[0].child("query", im::ns_roster)->attr("ver"));
}

TEST_F(RosterTest, UpdateKeepsSubscriptionAndIgnoresClientSubscriptionAttribute) {
  auto alice = interested("alice@example.org/phone");
  storage::RosterItem item;
  item.jid = "bob@example.org";
  item.subscription = storage::Subscription::to;
  server.storage().roster().put_item("alice@example.org", item);

  const auto received = server.send(alice, roster_set("s1", "bob@example.org", "Robert", {"A", "A", "B"}, "both"));
  ASSERT_EQ(select(received, "iq", "result").size(), 1u);
  const auto stored = server.item("alice@example.org", "bob@example.org");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->subscription, storage::Subscription::to);
  EXPECT_EQ(stored->name, "Robert");
  EXPECT_EQ(stored->groups, (std::vector<std::string>{"A", "B"}));
}

TEST_F(RosterTest, BadSetsAreRefused) {
  auto alice = interested("alice@example.org/phone");

  auto two_items = roster_set("e1", "bob@example.org");
  auto& query = two_items.children().back();
  query.add_child("item", std::string(im::ns_roster)).set_attr("jid", "carol@example.org");
  EXPECT_EQ(error_condition(server.ask(alice, two_items)), "bad-request");

  auto no_item = make_iq("set", "e2", {}, "query", im::ns_roster);
  EXPECT_EQ(error_condition(server.ask(alice, no_item)), "bad-request");

  EXPECT_EQ(error_condition(server.ask(alice, roster_set("e3", "@bad"))), "bad-request");
  EXPECT_EQ(error_condition(server.ask(alice, roster_set("e4", "bob@example.org/phone"))), "bad-request");
  EXPECT_EQ(error_condition(server.ask(alice, roster_set("e5", "bob@example.org", "", {""}))), "not-acceptable");
  EXPECT_EQ(error_condition(server.ask(alice, roster_set("e6", "bob@example.org", std::string(2000, 'n')))),
            "not-acceptable");

  EXPECT_FALSE(server.item("alice@example.org", "bob@example.org"));
  EXPECT_FALSE(server.item("alice@example.org", "carol@example.org"));
  EXPECT_TRUE(roster_pushes(alice.session->take()).empty());
}

TEST_F(RosterTest, AnotherUsersRosterIsForbidden) {
  auto bob = interested("bob@example.org/desk");
  auto alice = server.bind("alice@example.org/phone");

  auto get = roster_get("f1");
  get.set_attr("to", "bob@example.org");
  EXPECT_EQ(error_condition(server.ask(alice, get)), "forbidden");

  auto set = roster_set("f2", "mallory@example.org");
  set.set_attr("to", "bob@example.org");
  EXPECT_EQ(error_condition(server.ask(alice, set)), "forbidden");
  EXPECT_FALSE(server.item("bob@example.org", "mallory@example.org"));
  EXPECT_TRUE(bob.session->take().empty());
}

TEST_F(RosterTest, RemovingAnUnknownItemIsItemNotFound) {
  auto alice = interested("alice@example.org/phone");
  EXPECT_EQ(error_condition(server.ask(alice, roster_set("x1", "nobody@example.org", "", {}, "remove"))),
            "item-not-found");
}

TEST_F(RosterTest, RemoveDeletesAndPushesRemoval) {
  auto alice = interested("alice@example.org/phone");
  server.send(alice, roster_set("a1", "carol@example.org", "Carol"));
  const auto received = server.send(alice, roster_set("a2", "carol@example.org", "", {}, "remove"));
  ASSERT_EQ(select(received, "iq", "result").size(), 1u);
  const auto pushes = roster_pushes(received);
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(pushed_item(pushes[0]).attr("subscription"), "remove");
  EXPECT_EQ(pushed_item(pushes[0]).attr("jid"), "carol@example.org");
  EXPECT_FALSE(server.item("alice@example.org", "carol@example.org"));
  // No subscription existed: nothing is sent to the contact.
  EXPECT_TRUE(server.take_remote().empty());
}

TEST_F(RosterTest, VersionedGetWithCurrentVersionIsAnEmptyResult) {
  auto alice = interested("alice@example.org/phone");
  server.send(alice, roster_set("a1", "bob@example.org", "Bob"));
  const auto full = server.ask(alice, roster_get("v1"));
  const std::string ver(full.child("query", im::ns_roster)->attr("ver"));

  const auto received = server.send(alice, roster_get("v2", ver));
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].attr("type"), "result");
  EXPECT_EQ(received[0].first_child_element(), nullptr);
}

TEST_F(RosterTest, VersionedGetSendsOnlyTheChangesAsPushesAfterTheResult) {
  auto alice = interested("alice@example.org/phone");
  server.send(alice, roster_set("a1", "bob@example.org", "Bob"));
  server.send(alice, roster_set("a2", "carol@example.org", "Carol"));
  const std::string old_ver(server.ask(alice, roster_get("v1")).child("query", im::ns_roster)->attr("ver"));

  server.send(alice, roster_set("a3", "dave@example.org", "Dave"));
  server.send(alice, roster_set("a4", "carol@example.org", "", {}, "remove"));
  const std::string new_ver(server.ask(alice, roster_get("v2")).child("query", im::ns_roster)->attr("ver"));
  ASSERT_NE(old_ver, new_ver);

  auto later = server.bind("alice@example.org/laptop");
  const auto received = server.send(later, roster_get("v3", old_ver));
  ASSERT_EQ(received.size(), 3u);
  EXPECT_EQ(received[0].attr("type"), "result");
  EXPECT_EQ(received[0].attr("id"), "v3");
  EXPECT_EQ(received[0].first_child_element(), nullptr);

  std::vector<std::pair<std::string, std::string>> changes;
  for (std::size_t i = 1; i < received.size(); ++i) {
    const auto item = pushed_item(received[i]);
    changes.emplace_back(item.attr("jid"), item.attr("subscription"));
    EXPECT_EQ(received[i].attr("to"), "alice@example.org/laptop");
  }
  std::sort(changes.begin(), changes.end());
  EXPECT_EQ(changes, (std::vector<std::pair<std::string, std::string>>{{"carol@example.org", "remove"},
                                                                       {"dave@example.org", "none"}}));
  EXPECT_EQ(received.back().child("query", im::ns_roster)->attr("ver"), new_ver);
  EXPECT_TRUE(server.router().sessions().find(later.jid)->interested);
}

TEST_F(RosterTest, UnknownVersionGetsTheWholeRoster) {
  auto alice = interested("alice@example.org/phone");
  server.send(alice, roster_set("a1", "bob@example.org", "Bob"));
  for (const char* ver : {"", "not-a-number", "999999"}) {
    const auto reply = server.ask(alice, roster_get(std::string("u-") + ver, std::string(ver)));
    const auto* query = reply.child("query", im::ns_roster);
    ASSERT_NE(query, nullptr) << "ver='" << ver << "'";
    EXPECT_FALSE(query->attr("ver").empty());
    EXPECT_EQ(child_attrs(*query, "item", "jid"), std::vector<std::string>{"bob@example.org"});
  }
}

TEST_F(RosterTest, RemoveCancelsSubscriptionsBothWays) {
  auto alice = server.online("alice@example.org/phone");
  auto bob = server.online("bob@example.org/desk");
  for (const char* owner : {"alice@example.org", "bob@example.org"}) {
    storage::RosterItem item;
    item.jid = std::string(owner) == "alice@example.org" ? "bob@example.org" : "alice@example.org";
    item.subscription = storage::Subscription::both;
    server.storage().roster().put_item(owner, item);
  }

  const auto received = server.send(alice, roster_set("rm", "bob@example.org", "", {}, "remove"));
  ASSERT_EQ(select(received, "iq", "result").size(), 1u);
  ASSERT_EQ(roster_pushes(received).size(), 1u);
  EXPECT_EQ(pushed_item(roster_pushes(received)[0]).attr("subscription"), "remove");
  EXPECT_FALSE(server.item("alice@example.org", "bob@example.org"));

  // Bob's side saw an unsubscribe and an unsubscribed from Alice's bare JID,
  // and Alice going unavailable; his item for her is down to none.
  const auto bob_received = bob.session->take();
  const auto unsubscribe = select(bob_received, "presence", "unsubscribe");
  const auto unsubscribed = select(bob_received, "presence", "unsubscribed");
  ASSERT_EQ(unsubscribe.size(), 1u);
  ASSERT_EQ(unsubscribed.size(), 1u);
  EXPECT_EQ(unsubscribe[0].attr("from"), "alice@example.org");
  EXPECT_EQ(unsubscribed[0].attr("from"), "alice@example.org");
  const auto unavailable = select(bob_received, "presence", "unavailable");
  ASSERT_EQ(unavailable.size(), 1u);
  EXPECT_EQ(unavailable[0].attr("from"), "alice@example.org/phone");
  const auto bob_item = server.item("bob@example.org", "alice@example.org");
  ASSERT_TRUE(bob_item);
  EXPECT_EQ(bob_item->subscription, storage::Subscription::none);
  EXPECT_EQ(roster_pushes(bob_received).size(), 2u);
}

TEST_F(RosterTest, RemoveCancelsPendingRequestsToo) {
  auto alice = interested("alice@example.org/phone");
  storage::RosterItem item;
  item.jid = "carol@remote.example";
  item.ask = true;
  server.storage().roster().put_item("alice@example.org", item);
  server.storage().roster().add_pending_in("alice@example.org", "carol@remote.example", "<presence/>");

  server.send(alice, roster_set("rm", "carol@remote.example", "", {}, "remove"));
  const auto remote = server.take_remote();
  ASSERT_EQ(remote.size(), 2u);
  EXPECT_EQ(remote[0].attr("type"), "unsubscribe");
  EXPECT_EQ(remote[1].attr("type"), "unsubscribed");
  for (const auto& stanza : remote) {
    EXPECT_EQ(stanza.attr("from"), "alice@example.org");
    EXPECT_EQ(stanza.attr("to"), "carol@remote.example");
  }
  EXPECT_FALSE(server.has_pending_in("alice@example.org", "carol@remote.example"));
}

}  // namespace
}  // namespace parley::modules::testing
