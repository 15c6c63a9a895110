// The presence module through a real router: RFC 6121 §3 (subscriptions)
// and §4 (presence), between local users and with a remote domain whose
// stanzas are captured.
#include <gtest/gtest.h>

#include "modules/im_test_support.hpp"

namespace parley::modules::testing {
namespace {

using storage::Subscription;

class PresenceTest : public ::testing::Test {
 protected:
  PresenceTest() {
    for (const char* user : {"alice", "bob", "carol"}) server.add_account(user, "pw");
  }

  void put_item(const std::string& owner, const std::string& contact, Subscription subscription, bool ask = false,
                bool approved = false) {
    storage::RosterItem item;
    item.jid = contact;
    item.subscription = subscription;
    item.ask = ask;
    item.approved = approved;
    server.storage().roster().put_item(owner, item);
  }

  Subscription subscription(const std::string& owner, const std::string& contact) {
    const auto item = server.item(owner, contact);
    return item ? item->subscription : Subscription::none;
  }

  // A stanza the router got from a remote server.
  void from_remote(xml::Element stanza) { server.run(server.router().route(std::move(stanza))); }

  static std::vector<std::string> froms(const std::vector<xml::Element>& stanzas) {
    std::vector<std::string> result;
    for (const auto& stanza : stanzas) result.emplace_back(stanza.attr("from"));
    std::sort(result.begin(), result.end());
    return result;
  }

  ImServer server;
};

TEST_F(PresenceTest, MutualSubscriptionBetweenTwoLocalUsers) {
  auto alice = server.online("alice@example.org/phone");
  auto bob = server.online("bob@example.org/desk", available_presence("away"));

  // Alice asks: her roster shows a pending request, Bob sees the request
  // from her bare JID; nothing is in his roster yet.
  auto received = server.send(alice, presence_stanza("subscribe", "bob@example.org"));
  auto pushes = roster_pushes(received);
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(pushed_item(pushes[0]).attr("subscription"), "none");
  EXPECT_EQ(pushed_item(pushes[0]).attr("ask"), "subscribe");
  auto bob_received = bob.session->take();
  auto requests = select(bob_received, "presence", "subscribe");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].attr("from"), "alice@example.org");
  EXPECT_TRUE(roster_pushes(bob_received).empty());
  EXPECT_TRUE(server.has_pending_in("bob@example.org", "alice@example.org"));

  // Bob approves: his item says from, hers says to, she is told and gets
  // his current presence.
  received = server.send(bob, presence_stanza("subscribed", "alice@example.org"));
  pushes = roster_pushes(received);
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(pushed_item(pushes[0]).attr("subscription"), "from");
  EXPECT_FALSE(server.has_pending_in("bob@example.org", "alice@example.org"));
  auto alice_received = alice.session->take();
  pushes = roster_pushes(alice_received);
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(pushed_item(pushes[0]).attr("subscription"), "to");
  EXPECT_FALSE(pushed_item(pushes[0]).has_attr("ask"));
  ASSERT_EQ(select(alice_received, "presence", "subscribed").size(), 1u);
  EXPECT_EQ(select(alice_received, "presence", "subscribed")[0].attr("from"), "bob@example.org");
  const auto bob_presence = select(alice_received, "presence", "");
  ASSERT_EQ(bob_presence.size(), 1u);
  EXPECT_EQ(bob_presence[0].attr("from"), "bob@example.org/desk");
  EXPECT_EQ(bob_presence[0].child_text("show", xml::ns_client), "away");

  // And the other way round.
  server.send(bob, presence_stanza("subscribe", "alice@example.org"));
  EXPECT_EQ(select(alice.session->take(), "presence", "subscribe").size(), 1u);
  server.send(alice, presence_stanza("subscribed", "bob@example.org"));
  bob_received = bob.session->take();
  pushes = roster_pushes(bob_received);
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(pushed_item(pushes[0]).attr("subscription"), "both");
  EXPECT_EQ(select(bob_received, "presence", "").size(), 1u);

  EXPECT_EQ(subscription("alice@example.org", "bob@example.org"), Subscription::both);
  EXPECT_EQ(subscription("bob@example.org", "alice@example.org"), Subscription::both);

  // Now each sees the other's presence changes.
  server.send(bob, available_presence("dnd"));
  const auto update = select(alice.session->take(), "presence", "");
  ASSERT_EQ(update.size(), 1u);
  EXPECT_EQ(update[0].attr("to"), "alice@example.org");
  EXPECT_EQ(update[0].child_text("show", xml::ns_client), "dnd");
}

TEST_F(PresenceTest, OutboundSubscriptionStanzasLeaveWithTheBareJid) {
  auto alice = server.online("alice@example.org/phone");
  for (const char* type : {"subscribe", "unsubscribe", "unsubscribed"}) {
    server.send(alice, presence_stanza(type, "dave@remote.example/laptop"));
    const auto remote = server.take_remote();
    ASSERT_EQ(remote.size(), 1u) << type;
    EXPECT_EQ(remote[0].attr("type"), type);
    EXPECT_EQ(remote[0].attr("from"), "alice@example.org");
    EXPECT_EQ(remote[0].attr("to"), "dave@remote.example");
  }
}

TEST_F(PresenceTest, RemoteContactApprovesOnlyWhatWasAsked) {
  auto alice = server.online("alice@example.org/phone");

  // Unsolicited approval: no state change, nothing shown.
  from_remote([] {
    auto stanza = presence_stanza("subscribed", "alice@example.org");
    stanza.set_attr("from", "dave@remote.example");
    return stanza;
  }());
  EXPECT_TRUE(alice.session->take().empty());
  EXPECT_FALSE(server.item("alice@example.org", "dave@remote.example"));

  server.send(alice, presence_stanza("subscribe", "dave@remote.example"));
  server.take_remote();
  auto approval = presence_stanza("subscribed", "alice@example.org");
  approval.set_attr("from", "dave@remote.example/laptop");
  from_remote(approval);
  const auto received = alice.session->take();
  ASSERT_EQ(roster_pushes(received).size(), 1u);
  EXPECT_EQ(pushed_item(roster_pushes(received)[0]).attr("subscription"), "to");
  const auto delivered = select(received, "presence", "subscribed");
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_EQ(delivered[0].attr("from"), "dave@remote.example");
  EXPECT_EQ(subscription("alice@example.org", "dave@remote.example"), Subscription::to);
}

TEST_F(PresenceTest, RequestsWaitForTheUserAndAreShownAtLogin) {
  auto alice = server.online("alice@example.org/phone");
  auto bob = server.bind("bob@example.org/desk");  // bound, not yet available

  auto request = presence_stanza("subscribe", "bob@example.org");
  request.add_child("status", std::string(xml::ns_client)).add_text("it's Alice");
  server.send(alice, request);
  EXPECT_TRUE(bob.session->take().empty());
  EXPECT_TRUE(server.has_pending_in("bob@example.org", "alice@example.org"));

  // A second request while one waits is not stored twice.
  server.send(alice, presence_stanza("subscribe", "bob@example.org"));
  EXPECT_EQ(server.storage().roster().pending_in("bob@example.org").size(), 1u);

  const auto received = server.send(bob, available_presence());
  const auto requests = select(received, "presence", "subscribe");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].attr("from"), "alice@example.org");
  EXPECT_EQ(requests[0].child_text("status", xml::ns_client), "it's Alice");

  // Another resource logging in later sees it too, until it is answered.
  auto laptop = server.bind("bob@example.org/laptop");
  EXPECT_EQ(select(server.send(laptop, available_presence()), "presence", "subscribe").size(), 1u);
  server.send(bob, presence_stanza("unsubscribed", "alice@example.org"));
  EXPECT_FALSE(server.has_pending_in("bob@example.org", "alice@example.org"));
  EXPECT_EQ(select(alice.session->take(), "presence", "unsubscribed").size(), 1u);
  EXPECT_EQ(subscription("alice@example.org", "bob@example.org"), Subscription::none);
  EXPECT_FALSE(server.item("alice@example.org", "bob@example.org")->ask);
}

TEST_F(PresenceTest, PreApprovalAcceptsTheLaterRequestAutomatically) {
  auto alice = server.online("alice@example.org/phone");
  auto bob = server.online("bob@example.org/desk");

  // Bob approves before being asked: no stanza reaches Alice, his item is
  // marked approved.
  auto received = server.send(bob, presence_stanza("subscribed", "alice@example.org"));
  auto pushes = roster_pushes(received);
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(pushed_item(pushes[0]).attr("approved"), "true");
  EXPECT_EQ(pushed_item(pushes[0]).attr("subscription"), "none");
  EXPECT_TRUE(alice.session->take().empty());

  // Alice's request is answered by the server; Bob is not asked.
  received = server.send(alice, presence_stanza("subscribe", "bob@example.org"));
  EXPECT_EQ(select(received, "presence", "subscribed").size(), 1u);
  EXPECT_EQ(select(received, "presence", "").size(), 1u);  // Bob's presence
  EXPECT_EQ(subscription("alice@example.org", "bob@example.org"), Subscription::to);
  const auto bob_received = bob.session->take();
  EXPECT_TRUE(select(bob_received, "presence", "subscribe").empty());
  pushes = roster_pushes(bob_received);
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(pushed_item(pushes[0]).attr("subscription"), "from");
  EXPECT_FALSE(pushed_item(pushes[0]).has_attr("approved"));
}

TEST_F(PresenceTest, PreApprovalStaysOnTheServer) {
  auto bob = server.online("bob@example.org/desk");
  server.send(bob, presence_stanza("subscribed", "dave@remote.example"));
  EXPECT_TRUE(server.take_remote().empty());
  EXPECT_TRUE(server.item("bob@example.org", "dave@remote.example")->approved);

  auto request = presence_stanza("subscribe", "bob@example.org");
  request.set_attr("from", "dave@remote.example");
  from_remote(request);
  const auto remote = server.take_remote();
  ASSERT_EQ(select(remote, "presence", "subscribed").size(), 1u);
  ASSERT_EQ(select(remote, "presence", "").size(), 1u);
  EXPECT_EQ(select(remote, "presence", "")[0].attr("from"), "bob@example.org/desk");
  EXPECT_EQ(subscription("bob@example.org", "dave@remote.example"), Subscription::from);
  EXPECT_FALSE(server.has_pending_in("bob@example.org", "dave@remote.example"));
}

TEST_F(PresenceTest, PreApprovalCanBeCancelled) {
  auto bob = server.online("bob@example.org/desk");
  server.send(bob, presence_stanza("subscribed", "carol@example.org"));
  ASSERT_TRUE(server.item("bob@example.org", "carol@example.org")->approved);
  const auto pushes = roster_pushes(server.send(bob, presence_stanza("unsubscribed", "carol@example.org")));
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_FALSE(pushed_item(pushes[0]).has_attr("approved"));
  EXPECT_FALSE(server.item("bob@example.org", "carol@example.org")->approved);

  auto carol = server.online("carol@example.org/home");
  server.send(carol, presence_stanza("subscribe", "bob@example.org"));
  EXPECT_EQ(select(bob.session->take(), "presence", "subscribe").size(), 1u);
}

TEST_F(PresenceTest, RepeatedRequestFromASubscriberIsAnsweredByTheServer) {
  put_item("bob@example.org", "alice@example.org", Subscription::from);
  auto bob = server.online("bob@example.org/desk");
  auto alice = server.online("alice@example.org/phone");
  const auto received = server.send(alice, presence_stanza("subscribe", "bob@example.org"));
  const auto answers = select(received, "presence", "subscribed");
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].attr("from"), "bob@example.org");
  EXPECT_TRUE(select(bob.session->take(), "presence", "subscribe").empty());
}

TEST_F(PresenceTest, ContactCancelsTheSubscription) {
  put_item("alice@example.org", "bob@example.org", Subscription::to);
  put_item("bob@example.org", "alice@example.org", Subscription::from);
  auto bob = server.online("bob@example.org/desk");
  auto alice = server.online("alice@example.org/phone");

  server.send(bob, presence_stanza("unsubscribed", "alice@example.org"));
  const auto received = alice.session->take();
  ASSERT_EQ(select(received, "presence", "unsubscribed").size(), 1u);
  const auto gone = select(received, "presence", "unavailable");
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].attr("from"), "bob@example.org/desk");
  ASSERT_EQ(roster_pushes(received).size(), 1u);
  EXPECT_EQ(subscription("alice@example.org", "bob@example.org"), Subscription::none);
  EXPECT_EQ(subscription("bob@example.org", "alice@example.org"), Subscription::none);

  // Bob's later presence no longer reaches Alice.
  server.send(bob, available_presence("away"));
  EXPECT_TRUE(select(alice.session->take(), "presence", "").empty());
}

TEST_F(PresenceTest, UserUnsubscribes) {
  put_item("alice@example.org", "bob@example.org", Subscription::both);
  put_item("bob@example.org", "alice@example.org", Subscription::both);
  auto bob = server.online("bob@example.org/desk");
  auto alice = server.online("alice@example.org/phone");

  const auto received = server.send(alice, presence_stanza("unsubscribe", "bob@example.org"));
  EXPECT_EQ(pushed_item(roster_pushes(received).at(0)).attr("subscription"), "from");
  EXPECT_EQ(select(received, "presence", "unavailable").size(), 1u);  // Bob leaves her view
  const auto bob_received = bob.session->take();
  ASSERT_EQ(select(bob_received, "presence", "unsubscribe").size(), 1u);
  EXPECT_EQ(pushed_item(roster_pushes(bob_received).at(0)).attr("subscription"), "to");
  EXPECT_EQ(subscription("alice@example.org", "bob@example.org"), Subscription::from);
  EXPECT_EQ(subscription("bob@example.org", "alice@example.org"), Subscription::to);
}

TEST_F(PresenceTest, InboundRequestCancelledBeforeAnswer) {
  auto bob = server.online("bob@example.org/desk");
  auto request = presence_stanza("subscribe", "bob@example.org");
  request.set_attr("from", "dave@remote.example");
  from_remote(request);
  ASSERT_TRUE(server.has_pending_in("bob@example.org", "dave@remote.example"));
  EXPECT_EQ(select(bob.session->take(), "presence", "subscribe").size(), 1u);

  auto cancel = presence_stanza("unsubscribe", "bob@example.org");
  cancel.set_attr("from", "dave@remote.example");
  from_remote(cancel);
  EXPECT_FALSE(server.has_pending_in("bob@example.org", "dave@remote.example"));
  EXPECT_EQ(select(bob.session->take(), "presence", "unsubscribe").size(), 1u);
  // Nothing was in his roster, nothing is.
  EXPECT_FALSE(server.item("bob@example.org", "dave@remote.example"));

  // Without any state, a second cancellation is not shown.
  from_remote(cancel);
  EXPECT_TRUE(bob.session->take().empty());
}

TEST_F(PresenceTest, SubscriptionStanzasForUnknownAccountsAreIgnored) {
  auto request = presence_stanza("subscribe", "nobody@example.org");
  request.set_attr("from", "dave@remote.example");
  from_remote(request);
  EXPECT_TRUE(server.take_remote().empty());
  EXPECT_TRUE(server.storage().roster().pending_in("nobody@example.org").empty());
  EXPECT_FALSE(server.item("nobody@example.org", "dave@remote.example"));
}

TEST_F(PresenceTest, InitialPresenceProbesContactsAndGetsTheirPresence) {
  put_item("alice@example.org", "bob@example.org", Subscription::to);
  put_item("bob@example.org", "alice@example.org", Subscription::from);
  put_item("alice@example.org", "carol@example.org", Subscription::both);
  put_item("carol@example.org", "alice@example.org", Subscription::both);
  put_item("alice@example.org", "dave@remote.example", Subscription::to);
  put_item("alice@example.org", "erin@remote.example", Subscription::from);
  auto bob_desk = server.online("bob@example.org/desk", available_presence("away"));
  auto bob_phone = server.online("bob@example.org/phone", available_presence("chat"));
  server.bind("carol@example.org/offline");  // bound, never available
  EXPECT_EQ(select(bob_desk.session->take(), "presence", "").size(), 1u);  // his other resource
  bob_phone.session->take();

  auto alice = server.bind("alice@example.org/phone");
  const auto received = server.send(alice, available_presence());
  const auto available = select(received, "presence", "");
  // Bob's two resources, and her own presence echoed back.
  EXPECT_EQ(froms(available), (std::vector<std::string>{"alice@example.org/phone", "bob@example.org/desk",
                                                        "bob@example.org/phone"}));
  // Carol has no available resource: her server says unavailable.
  const auto unavailable = select(received, "presence", "unavailable");
  ASSERT_EQ(unavailable.size(), 1u);
  EXPECT_EQ(unavailable[0].attr("from"), "carol@example.org");

  // The remote contact she is subscribed to is probed from her bare JID;
  // the remote subscriber gets her presence; nothing more leaves.
  const auto remote = server.take_remote();
  const auto probes = select(remote, "presence", "probe");
  ASSERT_EQ(probes.size(), 1u);
  EXPECT_EQ(probes[0].attr("from"), "alice@example.org");
  EXPECT_EQ(probes[0].attr("to"), "dave@remote.example");
  const auto broadcast = select(remote, "presence", "");
  ASSERT_EQ(broadcast.size(), 1u);
  EXPECT_EQ(broadcast[0].attr("from"), "alice@example.org/phone");
  EXPECT_EQ(broadcast[0].attr("to"), "erin@remote.example");
  EXPECT_EQ(remote.size(), 2u);

  // Bob is not subscribed to Alice: her presence does not reach him.
  EXPECT_TRUE(select(bob_desk.session->take(), "presence", "").empty());
}

TEST_F(PresenceTest, ProbesAreAnsweredOnlyForSubscribers) {
  put_item("bob@example.org", "dave@remote.example", Subscription::from);
  auto bob = server.online("bob@example.org/desk", available_presence("away"));
  server.take_remote();

  auto probe = presence_stanza("probe", "bob@example.org");
  probe.set_attr("from", "dave@remote.example");
  from_remote(probe);
  auto remote = server.take_remote();
  ASSERT_EQ(remote.size(), 1u);
  EXPECT_EQ(remote[0].attr("from"), "bob@example.org/desk");
  EXPECT_EQ(remote[0].attr("to"), "dave@remote.example");
  EXPECT_EQ(remote[0].child_text("show", xml::ns_client), "away");

  probe.set_attr("from", "mallory@remote.example");
  from_remote(probe);
  remote = server.take_remote();
  ASSERT_EQ(remote.size(), 1u);
  EXPECT_EQ(remote[0].attr("type"), "unsubscribed");
  EXPECT_EQ(remote[0].attr("from"), "bob@example.org");

  probe.set_attr("to", "nobody@example.org");
  from_remote(probe);
  remote = server.take_remote();
  ASSERT_EQ(remote.size(), 1u);
  EXPECT_EQ(remote[0].attr("type"), "unsubscribed");
  // The prober learns nothing about Bob's resources from a probe.
  EXPECT_TRUE(bob.session->take().empty());
}

TEST_F(PresenceTest, StaleSubscriptionIsRepairedByTheProbeAnswer) {
  put_item("alice@example.org", "bob@example.org", Subscription::to);  // Bob's side knows nothing
  auto alice = server.bind("alice@example.org/phone");
  server.ask(alice, roster_get("r"));
  const auto received = server.send(alice, available_presence());
  const auto pushes = roster_pushes(received);
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(pushed_item(pushes[0]).attr("subscription"), "none");
  EXPECT_EQ(subscription("alice@example.org", "bob@example.org"), Subscription::none);
}

TEST_F(PresenceTest, ClientProbesAreDropped) {
  put_item("bob@example.org", "alice@example.org", Subscription::from);
  auto bob = server.online("bob@example.org/desk");
  auto alice = server.online("alice@example.org/phone");
  EXPECT_TRUE(server.send(alice, presence_stanza("probe", "bob@example.org")).empty());
  server.send(alice, presence_stanza("probe", "dave@remote.example"));
  EXPECT_TRUE(server.take_remote().empty());
  EXPECT_TRUE(bob.session->take().empty());
}

TEST_F(PresenceTest, OtherResourcesSeeEachOther) {
  auto phone = server.online("alice@example.org/phone", available_presence("away"));
  auto laptop = server.bind("alice@example.org/laptop");
  const auto received = server.send(laptop, available_presence());
  EXPECT_EQ(froms(select(received, "presence", "")),
            (std::vector<std::string>{"alice@example.org/laptop", "alice@example.org/phone"}));
  const auto phone_received = select(phone.session->take(), "presence", "");
  ASSERT_EQ(phone_received.size(), 1u);
  EXPECT_EQ(phone_received[0].attr("from"), "alice@example.org/laptop");

  // A later update is broadcast again, but not treated as initial.
  const auto update = server.send(laptop, available_presence("dnd"));
  EXPECT_EQ(froms(select(update, "presence", "")), std::vector<std::string>{"alice@example.org/laptop"});
  EXPECT_EQ(select(phone.session->take(), "presence", "").size(), 1u);
}

TEST_F(PresenceTest, PriorityIsRecordedAndClamped) {
  auto alice = server.online("alice@example.org/phone", available_presence({}, 300));
  const auto resource = server.router().sessions().find(alice.jid);
  ASSERT_TRUE(resource);
  EXPECT_TRUE(resource->available);
  EXPECT_EQ(resource->priority, 127);
  server.send(alice, available_presence({}, -5));
  EXPECT_EQ(server.router().sessions().find(alice.jid)->priority, -5);
}

TEST_F(PresenceTest, ExplicitUnavailableIsBroadcast) {
  put_item("alice@example.org", "bob@example.org", Subscription::from);
  put_item("bob@example.org", "alice@example.org", Subscription::to);
  auto bob = server.online("bob@example.org/desk");
  auto alice = server.online("alice@example.org/phone");
  auto laptop = server.online("alice@example.org/laptop");
  bob.session->take();
  alice.session->take();

  server.send(laptop, presence_stanza("unavailable"));
  const auto bob_got = select(bob.session->take(), "presence", "unavailable");
  ASSERT_EQ(bob_got.size(), 1u);
  EXPECT_EQ(bob_got[0].attr("from"), "alice@example.org/laptop");
  EXPECT_EQ(select(alice.session->take(), "presence", "unavailable").size(), 1u);
  EXPECT_FALSE(server.router().sessions().find(laptop.jid)->available);
}

TEST_F(PresenceTest, ClosingAnAvailableSessionBroadcastsUnavailable) {
  put_item("alice@example.org", "bob@example.org", Subscription::from);
  put_item("alice@example.org", "dave@remote.example", Subscription::both);
  auto bob = server.online("bob@example.org/desk");
  auto alice = server.online("alice@example.org/phone");
  auto laptop = server.online("alice@example.org/laptop");
  bob.session->take();
  laptop.session->take();
  server.take_remote();

  server.run(server.router().session_closed(alice.jid, alice.session.get()));
  const auto bob_got = select(bob.session->take(), "presence", "unavailable");
  ASSERT_EQ(bob_got.size(), 1u);
  EXPECT_EQ(bob_got[0].attr("from"), "alice@example.org/phone");
  EXPECT_EQ(select(laptop.session->take(), "presence", "unavailable").size(), 1u);
  const auto remote = server.take_remote();
  ASSERT_EQ(remote.size(), 1u);
  EXPECT_EQ(remote[0].attr("type"), "unavailable");
  EXPECT_EQ(remote[0].attr("to"), "dave@remote.example");
}

TEST_F(PresenceTest, ClosingASessionThatWasNeverAvailableSaysNothing) {
  put_item("alice@example.org", "bob@example.org", Subscription::from);
  auto bob = server.online("bob@example.org/desk");
  auto alice = server.bind("alice@example.org/phone");
  server.run(server.router().session_closed(alice.jid, alice.session.get()));
  EXPECT_TRUE(bob.session->take().empty());
}

TEST_F(PresenceTest, DirectedPresenceRecipientsHearOfTheDeparture) {
  auto carol = server.online("carol@example.org/home");
  auto alice = server.online("alice@example.org/phone");
  server.send(alice, presence_stanza("", "carol@example.org/home"));
  server.send(alice, presence_stanza("", "room@conference.remote.example/alice"));
  EXPECT_EQ(select(carol.session->take(), "presence", "").size(), 1u);
  server.take_remote();

  server.run(server.router().session_closed(alice.jid, alice.session.get()));
  const auto carol_got = select(carol.session->take(), "presence", "unavailable");
  ASSERT_EQ(carol_got.size(), 1u);
  EXPECT_EQ(carol_got[0].attr("from"), "alice@example.org/phone");
  const auto remote = server.take_remote();
  ASSERT_EQ(remote.size(), 1u);
  EXPECT_EQ(remote[0].attr("to"), "room@conference.remote.example/alice");
  EXPECT_EQ(remote[0].attr("type"), "unavailable");
}

TEST_F(PresenceTest, DirectedUnavailableEndsTheTracking) {
  auto carol = server.online("carol@example.org/home");
  auto alice = server.online("alice@example.org/phone");
  server.send(alice, presence_stanza("", "carol@example.org/home"));
  server.send(alice, presence_stanza("unavailable", "carol@example.org/home"));
  EXPECT_EQ(select(carol.session->take(), "presence", "unavailable").size(), 1u);

  server.send(alice, presence_stanza("unavailable"));
  EXPECT_TRUE(carol.session->take().empty());
}

TEST_F(PresenceTest, DirectedPresenceFromAResourceNotYetAvailableIsUndoneOnClose) {
  auto carol = server.online("carol@example.org/home");
  auto alice = server.bind("alice@example.org/phone");
  server.send(alice, presence_stanza("", "carol@example.org/home"));
  carol.session->take();
  server.run(server.router().session_closed(alice.jid, alice.session.get()));
  EXPECT_EQ(select(carol.session->take(), "presence", "unavailable").size(), 1u);
}

TEST_F(PresenceTest, BroadcastErrorsAndStraySubscriptionTypesAreDropped) {
  put_item("alice@example.org", "bob@example.org", Subscription::from);
  auto bob = server.online("bob@example.org/desk");
  auto alice = server.online("alice@example.org/phone");
  bob.session->take();
  for (const char* type : {"error", "subscribe", "probe", "bogus"}) {
    EXPECT_TRUE(server.send(alice, presence_stanza(type)).empty()) << type;
  }
  EXPECT_TRUE(bob.session->take().empty());
  EXPECT_TRUE(server.router().sessions().find(alice.jid)->available);
}

TEST_F(PresenceTest, AccountOutageDoesNotBreakTheSession) {
  auto outage = std::make_unique<OutageStorage>();
  auto* storage = outage.get();
  ImServer broken(std::move(outage));
  broken.add_account("bob", "pw");
  auto bob = broken.online("bob@example.org/desk");
  storage->set_down(true);

  auto request = presence_stanza("subscribe", "bob@example.org");
  request.set_attr("from", "dave@remote.example");
  broken.run(broken.router().route(request));
  auto probe = presence_stanza("probe", "bob@example.org");
  probe.set_attr("from", "dave@remote.example");
  broken.run(broken.router().route(probe));
  EXPECT_TRUE(bob.session->take().empty());
  EXPECT_TRUE(broken.take_remote().empty());

  storage->set_down(false);
  broken.run(broken.router().route(request));
  EXPECT_EQ(select(bob.session->take(), "presence", "subscribe").size(), 1u);
}

}  // namespace
}  // namespace parley::modules::testing
