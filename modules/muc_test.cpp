#include "modules/muc.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "modules/factories.hpp"
#include "modules/module_test_support.hpp"
#include "modules/muc_room.hpp"
#include "storage/test_support.hpp"

namespace parley::modules {
namespace {

using testing::Client;
using testing::TestServer;
using namespace muc;

constexpr const char* room_jid = "lobby@conference.example.org";

// A test server with the MUC service; stanzas for other domains (federated
// occupants) are captured instead of sent.
class MucServer : public TestServer {
 public:
  explicit MucServer(const std::string& options = "",
                     std::unique_ptr<storage::Storage> storage = storage::open("memory:"))
      : TestServer("example.org", std::move(storage)) {
    router().set_remote_route([this](xml::Element& stanza, const xmpp::Jid&) {
      std::lock_guard lock(remote_mutex_);
      remote_.push_back(stanza);
      return true;
    });
    muc_ = &dynamic_cast<MucModule&>(enable(make_muc_module, options));
  }

  // Sends a stanza from a client, waits for the service, and returns what the client received.
  std::vector<xml::Element> exchange(const Client& client, xml::Element stanza) {
    client.session->take();
    run(router().process_from_client(std::move(stanza), client.jid, client.session));
    EXPECT_TRUE(muc_->wait_idle());
    return client.session->take();
  }

  // A stanza from another server, as s2s would hand it to the router.
  void from_remote(xml::Element stanza) {
    run(router().route(std::move(stanza)));
    EXPECT_TRUE(muc_->wait_idle());
  }

  // Waits until the service has handled everything sent to it.
  void settle() { EXPECT_TRUE(muc_->wait_idle()); }

  std::vector<xml::Element> take_remote() {
    std::lock_guard lock(remote_mutex_);
    return std::exchange(remote_, {});
  }

 private:
  MucModule* muc_ = nullptr;
  std::mutex remote_mutex_;
  std::vector<xml::Element> remote_;
};

xml::Element join_presence(const std::string& nick, const std::string& room = room_jid,
                           const std::string& password = {}, std::optional<int> max_stanzas = {}) {
  xml::Element presence("presence");
  presence.set_attr("to", room + "/" + nick);
  auto& x = presence.add_child("x", std::string(ns_muc));
  if (!password.empty()) x.add_child("password", std::string(ns_muc)).add_text(password);
  if (max_stanzas) x.add_child("history", std::string(ns_muc)).set_attr("maxstanzas", std::to_string(*max_stanzas));
  return presence;
}

xml::Element leave_presence(const std::string& nick) {
  xml::Element presence("presence");
  presence.set_attr("to", std::string(room_jid) + "/" + nick);
  presence.set_attr("type", "unavailable");
  return presence;
}

xml::Element groupchat(const std::string& body, const std::string& to = room_jid) {
  xml::Element message("message");
  message.set_attr("to", to);
  message.set_attr("type", "groupchat");
  message.set_attr("id", "m-" + body);
  message.add_child("body", std::string(xml::ns_client)).add_text(body);
  return message;
}

xml::Element owner_query(std::string_view type, std::string_view id) {
  return testing::make_iq(type, id, room_jid, "query", ns_muc_owner);
}

xml::Element config_submit(const std::vector<std::pair<std::string, std::string>>& fields) {
  auto iq = owner_query("set", "config");
  auto& form = iq.children().back().add_child("x", std::string(ns_data));
  form.set_attr("type", "submit");
  auto& type = form.add_child("field", std::string(ns_data));
  type.set_attr("var", "FORM_TYPE");
  type.add_child("value", std::string(ns_data)).add_text(std::string(ns_muc_roomconfig));
  for (const auto& [var, value] : fields) {
    auto& field = form.add_child("field", std::string(ns_data));
    field.set_attr("var", var);
    field.add_child("value", std::string(ns_data)).add_text(value);
  }
  return iq;
}

xml::Element admin_item(std::string_view type, std::string_view attribute, std::string_view value,
                        std::string_view key_attribute, std::string_view key, std::string_view reason = {}) {
  auto iq = testing::make_iq(type, "admin", room_jid, "query", ns_muc_admin);
  auto& item = iq.children().back().add_child("item", std::string(ns_muc_admin));
  item.set_attr(attribute, std::string(value));
  if (!key_attribute.empty()) item.set_attr(key_attribute, std::string(key));
  if (!reason.empty()) item.add_child("reason", std::string(ns_muc_admin)).add_text(std::string(reason));
  return iq;
}

std::set<int> status_codes(const xml::Element& stanza) {
  std::set<int> codes;
  if (const auto* x = stanza.child("x", ns_muc_user)) {
    for (const auto& code : testing::child_attrs(*x, "status", "code")) codes.insert(std::stoi(code));
  }
  return codes;
}

const xml::Element* muc_item(const xml::Element& presence) {
  const auto* x = presence.child("x", ns_muc_user);
  return x ? x->child("item", ns_muc_user) : nullptr;
}

std::vector<xml::Element> named(const std::vector<xml::Element>& stanzas, std::string_view name) {
  std::vector<xml::Element> selected;
  for (const auto& stanza : stanzas) {
    if (stanza.name() == name) selected.push_back(stanza);
  }
  return selected;
}

// The one stanza from 'from' of kind 'name' (fails the test otherwise).
xml::Element only_from(const std::vector<xml::Element>& stanzas, std::string_view name, std::string_view from) {
  std::vector<xml::Element> found;
  for (const auto& stanza : stanzas) {
    if (stanza.name() == name && stanza.attr("from") == from) found.push_back(stanza);
  }
  EXPECT_EQ(found.size(), 1u) << "stanzas named " << name << " from " << from;
  return found.empty() ? xml::Element("missing") : found.front();
}

std::string nick_jid(const std::string& nick) { return std::string(room_jid) + "/" + nick; }

class MucTest : public ::testing::Test {
 protected:
  // alice creates an instant room; bob joins it.
  void open_room() {
    alice = server.bind("alice@example.org/home");
    bob = server.bind("bob@example.org/work");
    carol = server.bind("carol@example.org/phone");
    // Available, so that messages to their bare JIDs (invitations) reach them.
    for (const auto* client : {&alice, &bob, &carol}) {
      server.router().sessions().set_presence(client->jid, std::make_shared<const xml::Element>("presence"), 0);
    }
    server.exchange(alice, join_presence("Alice"));
    ASSERT_EQ(server.exchange(alice, owner_query("set", "instant")).front().attr("type"), "result");
    server.exchange(bob, join_presence("Bob"));
    alice.session->take();
  }

  MucServer server;
  Client alice, bob, carol;
};

TEST_F(MucTest, CreatorGetsOwnerSelfPresenceWith201AndTheRoomStaysLockedUntilConfigured) {
  alice = server.bind("alice@example.org/home");
  bob = server.bind("bob@example.org/work");
  const auto received = server.exchange(alice, join_presence("Alice"));
  const auto self = only_from(received, "presence", nick_jid("Alice"));
  EXPECT_EQ(status_codes(self), (std::set<int>{110, 201}));
  ASSERT_NE(muc_item(self), nullptr);
  EXPECT_EQ(muc_item(self)->attr("affiliation"), "owner");
  EXPECT_EQ(muc_item(self)->attr("role"), "moderator");
  EXPECT_EQ(muc_item(self)->attr("jid"), "alice@example.org/home");
  // The empty subject follows the self-presence.
  ASSERT_EQ(received.back().name(), "message");
  EXPECT_NE(received.back().child("subject", xml::ns_client), nullptr);

  const auto refused = server.exchange(bob, join_presence("Bob"));
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(testing::error_condition(refused.front()), "item-not-found");

  const auto form = server.exchange(alice, owner_query("get", "form"));
  ASSERT_EQ(form.size(), 1u);
  const auto* x = form.front().child("query", ns_muc_owner)->child("x", ns_data);
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->attr("type"), "form");
  const auto vars = testing::child_attrs(*x, "field", "var");
  EXPECT_NE(std::ranges::find(vars, "muc#roomconfig_membersonly"), vars.end());

  auto instant = owner_query("set", "instant");
  instant.children().back().add_child("x", std::string(ns_data)).set_attr("type", "submit");
  EXPECT_EQ(server.exchange(alice, instant).front().attr("type"), "result");
  const auto entered = server.exchange(bob, join_presence("Bob"));
  const auto bob_self = only_from(entered, "presence", nick_jid("Bob"));
  EXPECT_EQ(status_codes(bob_self), (std::set<int>{110}));
  EXPECT_EQ(muc_item(bob_self)->attr("role"), "participant");
  // Semi-anonymous: bob does not see alice's real JID; alice (a moderator) sees bob's.
  const auto alice_seen = only_from(entered, "presence", nick_jid("Alice"));
  EXPECT_FALSE(muc_item(alice_seen)->has_attr("jid"));
  const auto bob_seen = only_from(alice.session->take(), "presence", nick_jid("Bob"));
  EXPECT_EQ(muc_item(bob_seen)->attr("jid"), "bob@example.org/work");
}

TEST_F(MucTest, ClientWithoutMucPayloadGetsAnInstantRoom) {
  alice = server.bind("alice@example.org/home");
  bob = server.bind("bob@example.org/work");
  auto old_style = join_presence("Alice");
  old_style.remove_children("x", ns_muc);
  server.exchange(alice, old_style);
  const auto entered = server.exchange(bob, join_presence("Bob"));
  EXPECT_EQ(status_codes(only_from(entered, "presence", nick_jid("Bob"))), (std::set<int>{110}));
}

TEST_F(MucTest, NicknameConflictIsRefusedAndNickChangeIsAnnouncedWith303) {
  open_room();
  const auto conflict = server.exchange(carol, join_presence("Bob"));
  ASSERT_EQ(conflict.size(), 1u);
  EXPECT_EQ(testing::error_condition(conflict.front()), "conflict");
  EXPECT_EQ(conflict.front().attr("from"), nick_jid("Bob"));

  const auto missing = server.exchange(carol, join_presence(""));
  EXPECT_EQ(testing::error_condition(missing.front()), "jid-malformed");

  const auto changed = server.exchange(bob, join_presence("Robert"));
  const auto gone = only_from(changed, "presence", nick_jid("Bob"));
  EXPECT_EQ(gone.attr("type"), "unavailable");
  EXPECT_EQ(status_codes(gone), (std::set<int>{110, 303}));
  EXPECT_EQ(muc_item(gone)->attr("nick"), "Robert");
  EXPECT_EQ(status_codes(only_from(changed, "presence", nick_jid("Robert"))), (std::set<int>{110}));
  const auto seen = alice.session->take();
  EXPECT_EQ(status_codes(only_from(seen, "presence", nick_jid("Bob"))), (std::set<int>{303}));
  EXPECT_EQ(only_from(seen, "presence", nick_jid("Robert")).attr("type"), "");

  // Taking an occupied nick by changing to it is refused too.
  const auto taken = server.exchange(bob, join_presence("Alice"));
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(testing::error_condition(taken.front()), "conflict");
}

TEST_F(MucTest, GroupchatIsBroadcastWithARoomStanzaIdAndReplayedAsHistory) {
  open_room();
  auto forged = groupchat("hello");
  auto& fake = forged.add_child("stanza-id", std::string(ns_stanza_id));
  fake.set_attr("id", "forged");
  fake.set_attr("by", room_jid);
  const auto echoed = server.exchange(bob, forged);
  const auto mine = only_from(echoed, "message", nick_jid("Bob"));
  EXPECT_EQ(mine.attr("id"), "m-hello");
  EXPECT_EQ(mine.child_text("body", xml::ns_client), "hello");
  std::vector<std::string> ids;
  for (const auto& child : mine.children()) {
    if (child.is("stanza-id", ns_stanza_id)) ids.emplace_back(child.attr("id"));
  }
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_NE(ids.front(), "forged");
  const auto at_alice = only_from(alice.session->take(), "message", nick_jid("Bob"));
  EXPECT_EQ(at_alice.attr("to"), "alice@example.org/home");

  server.exchange(alice, groupchat("second"));
  server.exchange(alice, groupchat("third"));
  const auto joined = server.exchange(carol, join_presence("Carol"));
  std::vector<std::string> bodies;
  for (const auto& message : named(joined, "message")) {
    if (message.child("body", xml::ns_client)) {
      bodies.push_back(message.child_text("body", xml::ns_client));
      const auto* delay = message.child("delay", ns_delay);
      ASSERT_NE(delay, nullptr);
      EXPECT_EQ(delay->attr("from"), room_jid);
    }
  }
  EXPECT_EQ(bodies, (std::vector<std::string>{"hello", "second", "third"}));
  // History comes before the subject, which ends the join.
  EXPECT_NE(joined.back().child("subject", xml::ns_client), nullptr);

  server.exchange(carol, leave_presence("Carol"));
  const auto limited = server.exchange(carol, join_presence("Carol", room_jid, {}, 1));
  bodies.clear();
  for (const auto& message : named(limited, "message")) {
    if (message.child("body", xml::ns_client)) bodies.push_back(message.child_text("body", xml::ns_client));
  }
  EXPECT_EQ(bodies, (std::vector<std::string>{"third"}));

  // Someone outside the room cannot speak in it.
  auto dave = server.bind("dave@example.org/x");
  const auto refused = server.exchange(dave, groupchat("intruding"));
  EXPECT_EQ(testing::error_condition(refused.front()), "not-acceptable");
}

TEST_F(MucTest, SubjectIsSetByModeratorsAndSentOnJoin) {
  open_room();
  xml::Element subject("message");
  subject.set_attr("to", room_jid);
  subject.set_attr("type", "groupchat");
  subject.add_child("subject", std::string(xml::ns_client)).add_text("Plans");
  const auto refused = server.exchange(bob, subject);
  EXPECT_EQ(testing::error_condition(refused.front()), "forbidden");
  const auto set = server.exchange(alice, subject);
  EXPECT_EQ(only_from(set, "message", nick_jid("Alice")).child_text("subject", xml::ns_client), "Plans");
  const auto joined = server.exchange(carol, join_presence("Carol"));
  EXPECT_EQ(joined.back().child_text("subject", xml::ns_client), "Plans");
  EXPECT_EQ(joined.back().attr("from"), nick_jid("Alice"));
}

TEST_F(MucTest, PrivateMessagesGoBetweenOccupantsUnlessTheRoomForbidsThem) {
  open_room();
  xml::Element pm("message");
  pm.set_attr("to", nick_jid("Alice"));
  pm.set_attr("type", "chat");
  pm.add_child("body", std::string(xml::ns_client)).add_text("psst");
  server.exchange(bob, pm);
  const auto at_alice = only_from(alice.session->take(), "message", nick_jid("Bob"));
  EXPECT_EQ(at_alice.child_text("body", xml::ns_client), "psst");
  EXPECT_NE(at_alice.child("x", ns_muc_user), nullptr);

  auto to_nobody = pm;
  to_nobody.set_attr("to", nick_jid("Nobody"));
  EXPECT_EQ(testing::error_condition(server.exchange(bob, to_nobody).front()), "item-not-found");
  EXPECT_EQ(testing::error_condition(server.exchange(carol, pm).front()), "not-acceptable");

  server.exchange(alice, config_submit({{"muc#roomconfig_allowpm", "none"}}));
  EXPECT_EQ(testing::error_condition(server.exchange(bob, pm).front()), "forbidden");
}

TEST_F(MucTest, ModeratorKicksWith307AndCannotKickAnOwner) {
  open_room();
  const auto kicked = server.exchange(alice, admin_item("set", "role", "none", "nick", "Bob", "behave"));
  EXPECT_EQ(only_from(kicked, "iq", room_jid).attr("type"), "result");
  const auto at_alice = only_from(kicked, "presence", nick_jid("Bob"));
  EXPECT_EQ(at_alice.attr("type"), "unavailable");
  EXPECT_EQ(status_codes(at_alice), (std::set<int>{307}));
  const auto at_bob = only_from(bob.session->take(), "presence", nick_jid("Bob"));
  EXPECT_EQ(status_codes(at_bob), (std::set<int>{110, 307}));
  EXPECT_EQ(muc_item(at_bob)->child_text("reason", ns_muc_user), "behave");
  EXPECT_EQ(muc_item(at_bob)->child("actor", ns_muc_user)->attr("nick"), "Alice");
  EXPECT_EQ(muc_item(at_bob)->attr("role"), "none");

  // Bob may come back (a kick is not a ban), but a participant cannot kick.
  server.exchange(bob, join_presence("Bob"));
  const auto refused = server.exchange(bob, admin_item("set", "role", "none", "nick", "Alice"));
  EXPECT_EQ(testing::error_condition(refused.front()), "forbidden");
}

TEST_F(MucTest, BanMakesAnOutcastWith301WhoCannotReturn) {
  open_room();
  const auto banned =
      server.exchange(alice, admin_item("set", "affiliation", "outcast", "jid", "bob@example.org", "spam"));
  EXPECT_EQ(only_from(banned, "iq", room_jid).attr("type"), "result");
  const auto at_bob = only_from(bob.session->take(), "presence", nick_jid("Bob"));
  EXPECT_EQ(status_codes(at_bob), (std::set<int>{110, 301}));
  EXPECT_EQ(muc_item(at_bob)->attr("affiliation"), "outcast");
  const auto again = server.exchange(bob, join_presence("Bob"));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(testing::error_condition(again.front()), "forbidden");

  const auto list = server.exchange(alice, admin_item("get", "affiliation", "outcast", "", ""));
  const auto* query = list.front().child("query", ns_muc_admin);
  ASSERT_NE(query, nullptr);
  EXPECT_EQ(testing::child_attrs(*query, "item", "jid"), std::vector<std::string>{"bob@example.org"});
  // Only admins and owners see the lists.
  server.exchange(carol, join_presence("Carol"));
  EXPECT_EQ(
      testing::error_condition(server.exchange(carol, admin_item("get", "affiliation", "outcast", "", "")).front()),
      "forbidden");
  // The last owner cannot step down.
  EXPECT_EQ(testing::error_condition(
                server.exchange(alice, admin_item("set", "affiliation", "member", "jid", "alice@example.org")).front()),
            "conflict");
}

TEST_F(MucTest, VoiceInAModeratedRoomIsGrantedAndRevoked) {
  open_room();
  server.exchange(alice, config_submit({{"muc#roomconfig_moderatedroom", "1"}}));
  server.exchange(carol, join_presence("Carol"));
  alice.session->take();
  EXPECT_EQ(testing::error_condition(server.exchange(carol, groupchat("can I?")).front()), "forbidden");
  server.exchange(alice, admin_item("set", "role", "participant", "nick", "Carol"));
  const auto voiced = only_from(carol.session->take(), "presence", nick_jid("Carol"));
  EXPECT_EQ(muc_item(voiced)->attr("role"), "participant");
  EXPECT_FALSE(named(server.exchange(carol, groupchat("now I can")), "message").empty());
  server.exchange(alice, admin_item("set", "role", "visitor", "nick", "Carol"));
  EXPECT_EQ(testing::error_condition(server.exchange(carol, groupchat("again?")).front()), "forbidden");
}

TEST_F(MucTest, MembersOnlyRoomAdmitsMembersAndRemovesOthersWith322) {
  open_room();
  const auto converted = server.exchange(alice, config_submit({{"muc#roomconfig_membersonly", "1"}}));
  EXPECT_EQ(only_from(converted, "iq", room_jid).attr("type"), "result");
  const auto at_bob = bob.session->take();
  std::set<int> codes;
  for (const auto& stanza : at_bob) {
    for (int code : status_codes(stanza)) codes.insert(code);
  }
  EXPECT_TRUE(codes.contains(104));
  EXPECT_TRUE(codes.contains(322));
  EXPECT_EQ(testing::error_condition(server.exchange(bob, join_presence("Bob")).front()), "registration-required");
  server.exchange(alice, admin_item("set", "affiliation", "member", "jid", "bob@example.org"));
  const auto entered = server.exchange(bob, join_presence("Bob"));
  EXPECT_EQ(muc_item(only_from(entered, "presence", nick_jid("Bob")))->attr("affiliation"), "member");

  // An invitation by an admin makes the invitee a member.
  xml::Element invitation("message");
  invitation.set_attr("to", room_jid);
  auto& invite = invitation.add_child("x", std::string(ns_muc_user)).add_child("invite", std::string(ns_muc_user));
  invite.set_attr("to", "carol@example.org");
  invite.add_child("reason", std::string(ns_muc_user)).add_text("join us");
  server.exchange(alice, invitation);
  const auto invited = only_from(carol.session->take(), "message", room_jid);
  const auto* forwarded = invited.child("x", ns_muc_user)->child("invite", ns_muc_user);
  ASSERT_NE(forwarded, nullptr);
  EXPECT_EQ(forwarded->attr("from"), "alice@example.org/home");
  EXPECT_EQ(forwarded->child_text("reason", ns_muc_user), "join us");
  EXPECT_EQ(named(server.exchange(carol, join_presence("Carol")), "presence").back().attr("type"), "");
}

TEST_F(MucTest, PasswordProtectedRoomNeedsThePassword) {
  open_room();
  EXPECT_EQ(testing::error_condition(
                server.exchange(alice, config_submit({{"muc#roomconfig_passwordprotectedroom", "1"}})).front()),
            "not-acceptable");
  server.exchange(
      alice, config_submit({{"muc#roomconfig_passwordprotectedroom", "1"}, {"muc#roomconfig_roomsecret", "sesame"}}));
  EXPECT_EQ(testing::error_condition(server.exchange(carol, join_presence("Carol")).front()), "not-authorized");
  EXPECT_EQ(testing::error_condition(server.exchange(carol, join_presence("Carol", room_jid, "wrong")).front()),
            "not-authorized");
  const auto entered = server.exchange(carol, join_presence("Carol", room_jid, "sesame"));
  EXPECT_EQ(status_codes(only_from(entered, "presence", nick_jid("Carol"))), (std::set<int>{110}));
}

TEST_F(MucTest, DestroyRemovesEveryOccupantAndTheRoom) {
  open_room();
  auto destroy = owner_query("set", "destroy");
  auto& request = destroy.children().back().add_child("destroy", std::string(ns_muc_owner));
  request.set_attr("jid", "elsewhere@conference.example.org");
  request.add_child("reason", std::string(ns_muc_owner)).add_text("moving");
  EXPECT_EQ(testing::error_condition(server.exchange(bob, destroy).front()), "forbidden");
  const auto done = server.exchange(alice, destroy);
  EXPECT_EQ(only_from(done, "iq", room_jid).attr("type"), "result");
  const auto at_bob = only_from(bob.session->take(), "presence", nick_jid("Bob"));
  EXPECT_EQ(at_bob.attr("type"), "unavailable");
  const auto* destroyed = at_bob.child("x", ns_muc_user)->child("destroy", ns_muc_user);
  ASSERT_NE(destroyed, nullptr);
  EXPECT_EQ(destroyed->attr("jid"), "elsewhere@conference.example.org");
  EXPECT_EQ(destroyed->child_text("reason", ns_muc_user), "moving");
  const auto info = server.exchange(carol, testing::make_iq("get", "info", room_jid, "query", ns_disco_info));
  EXPECT_EQ(testing::error_condition(info.front()), "item-not-found");
}

TEST_F(MucTest, DiscoDescribesTheServiceAndTheRoom) {
  open_room();
  server.exchange(alice, config_submit({{"muc#roomconfig_roomname", "The Lobby"}, {"muc#roomconfig_whois", "anyone"}}));
  const auto service_info =
      server.exchange(carol, testing::make_iq("get", "s", "conference.example.org", "query", ns_disco_info));
  const auto* query = service_info.front().child("query", ns_disco_info);
  ASSERT_NE(query, nullptr);
  EXPECT_EQ(query->child("identity", ns_disco_info)->attr("category"), "conference");
  const auto features = testing::child_attrs(*query, "feature", "var");
  EXPECT_NE(std::ranges::find(features, std::string(ns_muc)), features.end());

  const auto items =
      server.exchange(carol, testing::make_iq("get", "i", "conference.example.org", "query", ns_disco_items));
  const auto* list = items.front().child("query", ns_disco_items);
  EXPECT_EQ(testing::child_attrs(*list, "item", "jid"), std::vector<std::string>{room_jid});
  EXPECT_EQ(testing::child_attrs(*list, "item", "name"), std::vector<std::string>{"The Lobby"});

  const auto room_info = server.exchange(carol, testing::make_iq("get", "r", room_jid, "query", ns_disco_info));
  const auto room_features = testing::child_attrs(*room_info.front().child("query", ns_disco_info), "feature", "var");
  for (const auto* expected :
       {"muc_temporary", "muc_public", "muc_open", "muc_unmoderated", "muc_unsecured", "muc_nonanonymous"}) {
    EXPECT_NE(std::ranges::find(room_features, std::string(expected)), room_features.end()) << expected;
  }
  // The host lists the service.
  const auto host_items = server.host().disco_items();
  ASSERT_EQ(host_items.size(), 1u);
  EXPECT_EQ(host_items.front().jid, "conference.example.org");
}

TEST_F(MucTest, SelfPingIsAnsweredOnlyForOccupants) {
  open_room();
  const auto joined = server.exchange(bob, testing::make_iq("get", "p1", nick_jid("Bob"), "ping", ns_ping));
  EXPECT_EQ(joined.front().attr("type"), "result");
  const auto outside = server.exchange(carol, testing::make_iq("get", "p2", nick_jid("Carol"), "ping", ns_ping));
  EXPECT_EQ(testing::error_condition(outside.front()), "not-acceptable");
}

TEST_F(MucTest, LastOccupantLeavingEndsATemporaryRoom) {
  open_room();
  const auto left = server.exchange(bob, leave_presence("Bob"));
  EXPECT_EQ(status_codes(only_from(left, "presence", nick_jid("Bob"))), (std::set<int>{110}));
  server.exchange(alice, leave_presence("Alice"));
  const auto info = server.exchange(carol, testing::make_iq("get", "r", room_jid, "query", ns_disco_info));
  EXPECT_EQ(testing::error_condition(info.front()), "item-not-found");
  // Someone else may now create it afresh and own it.
  const auto created = server.exchange(carol, join_presence("Carol"));
  EXPECT_EQ(status_codes(only_from(created, "presence", nick_jid("Carol"))), (std::set<int>{110, 201}));
}

TEST_F(MucTest, FederatedOccupantsJoinAndChatLikeLocalOnes) {
  open_room();
  auto remote_join = join_presence("Zed");
  remote_join.set_attr("from", "zed@remote.example/laptop");
  server.from_remote(remote_join);
  const auto to_remote = server.take_remote();
  const auto self = only_from(to_remote, "presence", nick_jid("Zed"));
  EXPECT_EQ(self.attr("to"), "zed@remote.example/laptop");
  EXPECT_EQ(status_codes(self), (std::set<int>{110}));
  EXPECT_EQ(named(to_remote, "presence").size(), 3u);  // Alice, Bob, then itself
  EXPECT_EQ(only_from(bob.session->take(), "presence", nick_jid("Zed")).attr("to"), "bob@example.org/work");

  auto remote_message = groupchat("from afar");
  remote_message.set_attr("from", "zed@remote.example/laptop");
  server.from_remote(remote_message);
  EXPECT_EQ(only_from(bob.session->take(), "message", nick_jid("Zed")).child_text("body", xml::ns_client), "from afar");
  EXPECT_EQ(only_from(server.take_remote(), "message", nick_jid("Zed")).attr("to"), "zed@remote.example/laptop");

  server.exchange(alice, admin_item("set", "affiliation", "outcast", "jid", "remote.example"));
  const auto removed = only_from(server.take_remote(), "presence", nick_jid("Zed"));
  EXPECT_EQ(status_codes(removed), (std::set<int>{110, 301}));
}

TEST(MucSessions, ClosedSessionLeavesItsRoomsThroughThePresenceModule) {
  MucServer server;
  server.enable(make_roster_module);
  server.enable(make_presence_module);
  auto alice = server.bind("alice@example.org/home");
  auto bob = server.bind("bob@example.org/work");
  server.exchange(alice, join_presence("Alice"));
  server.exchange(alice, owner_query("set", "instant"));
  server.exchange(bob, join_presence("Bob"));
  server.exchange(bob, join_presence("Robert"));  // both nicks got directed presence
  alice.session->take();
  server.run(server.router().session_closed(bob.jid, bob.session.get()));
  server.settle();
  const auto seen = alice.session->take();
  const auto gone = only_from(seen, "presence", nick_jid("Robert"));
  EXPECT_EQ(gone.attr("type"), "unavailable");
  const auto occupants = server.exchange(alice, admin_item("get", "role", "participant", "", ""));
  EXPECT_TRUE(testing::child_attrs(*occupants.front().child("query", ns_muc_admin), "item", "nick").empty());
}

TEST(MucPersistence, PersistentRoomKeepsConfigAndAffiliationsAcrossARestart) {
  storage::testing::TempDir dir;
  const auto path = "sqlite:" + dir.file("parley.db");
  {
    MucServer server("", storage::open(path));
    auto alice = server.bind("alice@example.org/home");
    server.exchange(alice, join_presence("Alice"));
    server.exchange(alice, config_submit({{"muc#roomconfig_persistentroom", "1"},
                                          {"muc#roomconfig_membersonly", "1"},
                                          {"muc#roomconfig_roomname", "Kept"}}));
    server.exchange(alice, admin_item("set", "affiliation", "member", "jid", "bob@example.org"));
    xml::Element subject("message");
    subject.set_attr("to", room_jid);
    subject.set_attr("type", "groupchat");
    subject.add_child("subject", std::string(xml::ns_client)).add_text("Still here");
    server.exchange(alice, subject);
    server.exchange(alice, leave_presence("Alice"));
  }
  MucServer server("", storage::open(path));
  auto bob = server.bind("bob@example.org/work");
  auto carol = server.bind("carol@example.org/phone");
  const auto info = server.exchange(carol, testing::make_iq("get", "r", room_jid, "query", ns_disco_info));
  const auto features = testing::child_attrs(*info.front().child("query", ns_disco_info), "feature", "var");
  EXPECT_NE(std::ranges::find(features, "muc_persistent"), features.end());
  EXPECT_NE(std::ranges::find(features, "muc_membersonly"), features.end());
  EXPECT_EQ(testing::error_condition(server.exchange(carol, join_presence("Carol")).front()), "registration-required");
  const auto entered = server.exchange(bob, join_presence("Bob"));
  EXPECT_EQ(muc_item(only_from(entered, "presence", nick_jid("Bob")))->attr("affiliation"), "member");
  EXPECT_EQ(entered.back().child_text("subject", xml::ns_client), "Still here");
  auto alice = server.bind("alice@example.org/home");
  const auto owner_back = server.exchange(alice, join_presence("Alice"));
  EXPECT_EQ(muc_item(only_from(owner_back, "presence", nick_jid("Alice")))->attr("affiliation"), "owner");
  EXPECT_EQ(status_codes(only_from(owner_back, "presence", nick_jid("Alice"))), (std::set<int>{110}));

  // Destroying it removes it from storage too.
  auto destroy = owner_query("set", "d");
  destroy.children().back().add_child("destroy", std::string(ns_muc_owner));
  server.exchange(alice, destroy);
  EXPECT_FALSE(server.storage().muc().find_room("conference.example.org", "lobby").has_value());
}

// ---- room archives (XEP-0313) ------------------------------------------------

constexpr std::string_view ns_mam = "urn:xmpp:mam:2";
constexpr std::string_view ns_rsm = "http://jabber.org/protocol/rsm";
constexpr std::string_view ns_forward = "urn:xmpp:forward:0";

xml::Element room_mam_query(std::string_view id, std::optional<std::size_t> max = {}, const std::string& after = {},
                            const std::string& with = {}) {
  auto iq = testing::make_iq("set", id, room_jid, "query", ns_mam);
  auto& query = iq.children().back();
  query.set_attr("queryid", std::string(id));
  if (!with.empty()) {
    auto& form = query.add_child("x", std::string(ns_data));
    form.set_attr("type", "submit");
    auto& type = form.add_child("field", std::string(ns_data));
    type.set_attr("var", "FORM_TYPE");
    type.add_child("value", std::string(ns_data)).add_text(std::string(ns_mam));
    auto& field = form.add_child("field", std::string(ns_data));
    field.set_attr("var", "with");
    field.add_child("value", std::string(ns_data)).add_text(with);
  }
  auto& set = query.add_child("set", std::string(ns_rsm));
  if (max) set.add_child("max", std::string(ns_rsm)).add_text(std::to_string(*max));
  if (!after.empty()) set.add_child("after", std::string(ns_rsm)).add_text(after);
  return iq;
}

struct ArchivePage {
  std::vector<std::string> bodies;
  std::vector<std::string> ids;
  std::vector<std::string> senders;  // the archived messages' 'from'
  std::string error;
  xml::Element reply{"none"};
  const xml::Element* fin() const { return reply.child("fin", ns_mam); }
};

ArchivePage read_page(const std::vector<xml::Element>& stanzas) {
  ArchivePage page;
  for (const auto& stanza : stanzas) {
    if (stanza.name() == "iq") {
      page.reply = stanza;
      page.error = testing::error_condition(stanza);
      continue;
    }
    const auto* result = stanza.child("result", ns_mam);
    if (result == nullptr) continue;
    EXPECT_EQ(stanza.attr("from"), room_jid);
    page.ids.emplace_back(result->attr("id"));
    const auto* message = result->child("forwarded", ns_forward)->child("message", xml::ns_client);
    page.bodies.push_back(message->child_text("body", xml::ns_client));
    page.senders.emplace_back(message->attr("from"));
  }
  return page;
}

std::set<int> all_status_codes(const std::vector<xml::Element>& stanzas) {
  std::set<int> codes;
  for (const auto& stanza : stanzas) codes.merge(status_codes(stanza));
  return codes;
}

bool has_feature(const std::vector<xml::Element>& disco_reply, std::string_view feature) {
  const auto features = testing::child_attrs(*disco_reply.front().child("query", ns_disco_info), "feature", "var");
  return std::ranges::find(features, feature) != features.end();
}

TEST_F(MucTest, ArchivingIsAnnouncedWith170AndAdvertisedOnlyWhenOn) {
  open_room();
  auto info = server.exchange(carol, testing::make_iq("get", "i", room_jid, "query", ns_disco_info));
  EXPECT_FALSE(has_feature(info, ns_mam));
  const auto form = server.exchange(alice, owner_query("get", "f"));
  const auto vars =
      testing::child_attrs(*form.front().child("query", ns_muc_owner)->child("x", ns_data), "field", "var");
  EXPECT_NE(std::ranges::find(vars, "muc#roomconfig_enablearchiving"), vars.end());

  const auto changed = server.exchange(alice, config_submit({{"muc#roomconfig_enablearchiving", "1"}}));
  EXPECT_EQ(all_status_codes(named(changed, "message")), (std::set<int>{104, 170}));
  EXPECT_EQ(all_status_codes(named(bob.session->take(), "message")), (std::set<int>{104, 170}));
  info = server.exchange(carol, testing::make_iq("get", "i", room_jid, "query", ns_disco_info));
  EXPECT_TRUE(has_feature(info, ns_mam));
  const auto joined = server.exchange(carol, join_presence("Carol"));
  EXPECT_EQ(status_codes(only_from(joined, "presence", nick_jid("Carol"))), (std::set<int>{110, 170}));

  // Prosody's field name turns it off again: 171.
  const auto off = server.exchange(alice, config_submit({{"muc#roomconfig_enablelogging", "0"}}));
  EXPECT_EQ(all_status_codes(named(off, "message")), (std::set<int>{104, 171}));
  EXPECT_EQ(read_page(server.exchange(bob, room_mam_query("q"))).error, "service-unavailable");
}

TEST_F(MucTest, RoomArchivePagesInOrderWithTheBroadcastStanzaIds) {
  open_room();
  server.exchange(alice, config_submit({{"muc#roomconfig_enablearchiving", "1"}}));
  std::vector<std::string> expected, delivered_ids;
  for (int n = 0; n < 12; ++n) {
    const auto& sender = n % 2 == 0 ? alice : bob;
    const auto echoed = server.exchange(sender, groupchat("message " + std::to_string(n)));
    const auto mine = only_from(echoed, "message", nick_jid(n % 2 == 0 ? "Alice" : "Bob"));
    delivered_ids.emplace_back(mine.child("stanza-id", ns_stanza_id)->attr("id"));
    expected.push_back("message " + std::to_string(n));
  }
  xml::Element subject("message");
  subject.set_attr("to", room_jid);
  subject.set_attr("type", "groupchat");
  subject.add_child("subject", std::string(xml::ns_client)).add_text("Archived too");
  const auto subject_echo = only_from(server.exchange(alice, subject), "message", nick_jid("Alice"));
  ASSERT_NE(subject_echo.child("stanza-id", ns_stanza_id), nullptr);
  expected.emplace_back();  // the subject change has no body
  delivered_ids.emplace_back(subject_echo.child("stanza-id", ns_stanza_id)->attr("id"));

  // A member of the conversation pages through with RSM: in order, no gaps, no repeats.
  std::vector<std::string> bodies, ids;
  std::string after;
  for (int pages = 0; pages < 10; ++pages) {
    const auto page = read_page(server.exchange(bob, room_mam_query("p", 5, after)));
    ASSERT_EQ(page.error, "");
    ASSERT_NE(page.fin(), nullptr);
    EXPECT_EQ(page.fin()->child("set", ns_rsm)->child_text("count", ns_rsm), "13");
    bodies.insert(bodies.end(), page.bodies.begin(), page.bodies.end());
    ids.insert(ids.end(), page.ids.begin(), page.ids.end());
    if (page.fin()->attr("complete") == "true") break;
    after = page.fin()->child("set", ns_rsm)->child_text("last", ns_rsm);
  }
  EXPECT_EQ(bodies, expected);
  EXPECT_EQ(ids, delivered_ids);

  // 'with' is an occupant JID.
  const auto from_bob = read_page(server.exchange(alice, room_mam_query("w", {}, {}, nick_jid("Bob"))));
  EXPECT_EQ(from_bob.bodies.size(), 6u);
  EXPECT_EQ(std::set<std::string>(from_bob.senders.begin(), from_bob.senders.end()),
            (std::set<std::string>{nick_jid("Bob")}));
  // The query form.
  const auto form = server.exchange(bob, testing::make_iq("get", "f", room_jid, "query", ns_mam));
  EXPECT_EQ(form.front().attr("type"), "result");
  EXPECT_NE(form.front().child("query", ns_mam)->child("x", ns_data), nullptr);
}

TEST_F(MucTest, RoomArchiveIsReadByOccupantsMembersOrAnyoneForAnOpenRoom) {
  open_room();
  server.exchange(alice, config_submit({{"muc#roomconfig_enablearchiving", "1"}}));
  server.exchange(alice, groupchat("kept"));
  // An open public room: anyone but an outcast reads its archive.
  EXPECT_EQ(read_page(server.exchange(carol, room_mam_query("c"))).bodies, (std::vector<std::string>{"kept"}));
  server.exchange(alice, admin_item("set", "affiliation", "outcast", "jid", "carol@example.org"));
  EXPECT_EQ(read_page(server.exchange(carol, room_mam_query("c"))).error, "forbidden");

  // A members-only room: members and occupants only.
  server.exchange(alice, admin_item("set", "affiliation", "member", "jid", "bob@example.org"));
  server.exchange(alice, config_submit({{"muc#roomconfig_membersonly", "1"}}));
  auto dave = server.bind("dave@example.org/x");
  EXPECT_EQ(read_page(server.exchange(dave, room_mam_query("d"))).error, "forbidden");
  EXPECT_EQ(read_page(server.exchange(bob, room_mam_query("b"))).bodies, (std::vector<std::string>{"kept"}));
  server.exchange(bob, leave_presence("Bob"));
  EXPECT_EQ(read_page(server.exchange(bob, room_mam_query("b"))).bodies, (std::vector<std::string>{"kept"}));
  // Preferences belong to user archives.
  const auto prefs = server.exchange(bob, testing::make_iq("get", "p", room_jid, "prefs", ns_mam));
  EXPECT_EQ(testing::error_condition(prefs.front()), "feature-not-implemented");
}

TEST(MucArchiveOptions, ArchivingFollowsTheModuleDefaultAndANewRoomStartsWithAnEmptyArchive) {
  MucServer archiving("default_archiving: true");
  auto erin = archiving.bind("erin@example.org/a");
  const auto created = archiving.exchange(erin, join_presence("Erin"));
  EXPECT_EQ(status_codes(only_from(created, "presence", nick_jid("Erin"))), (std::set<int>{110, 170, 201}));
  archiving.exchange(erin, owner_query("set", "instant"));
  archiving.exchange(erin, groupchat("first life"));
  EXPECT_EQ(read_page(archiving.exchange(erin, room_mam_query("q"))).bodies, (std::vector<std::string>{"first life"}));
  archiving.exchange(erin, leave_presence("Erin"));  // a temporary room ends here
  EXPECT_EQ(archiving.storage().archive().query(room_jid, {})->count, 0u);
  archiving.exchange(erin, join_presence("Erin"));
  archiving.exchange(erin, owner_query("set", "instant"));
  EXPECT_TRUE(read_page(archiving.exchange(erin, room_mam_query("q"))).bodies.empty());
}

TEST(MucArchivePersistence, ArchiveAndJoinHistorySurviveARestart) {
  storage::testing::TempDir dir;
  const auto path = "sqlite:" + dir.file("parley.db");
  std::vector<std::string> sent;
  {
    MucServer server("max_history: 5", storage::open(path));
    auto alice = server.bind("alice@example.org/home");
    server.exchange(alice, join_presence("Alice"));
    server.exchange(alice,
                    config_submit({{"muc#roomconfig_persistentroom", "1"}, {"muc#roomconfig_enablearchiving", "1"}}));
    for (int n = 0; n < 8; ++n) {
      sent.push_back("before restart " + std::to_string(n));
      server.exchange(alice, groupchat(sent.back()));
    }
    xml::Element subject("message");
    subject.set_attr("to", room_jid);
    subject.set_attr("type", "groupchat");
    subject.add_child("subject", std::string(xml::ns_client)).add_text("Last word");
    server.exchange(alice, subject);
    server.exchange(alice, leave_presence("Alice"));
  }
  MucServer server("max_history: 5", storage::open(path));
  auto bob = server.bind("bob@example.org/work");
  const auto joined = server.exchange(bob, join_presence("Bob", room_jid, {}, 3));
  EXPECT_EQ(status_codes(only_from(joined, "presence", nick_jid("Bob"))), (std::set<int>{110, 170}));
  std::vector<std::string> history;
  for (const auto& message : named(joined, "message")) {
    if (message.child("body", xml::ns_client) == nullptr) continue;
    history.push_back(message.child_text("body", xml::ns_client));
    EXPECT_EQ(message.attr("from"), nick_jid("Alice"));
    EXPECT_NE(message.child("delay", ns_delay), nullptr);
  }
  EXPECT_EQ(history, (std::vector<std::string>(sent.end() - 3, sent.end())));
  EXPECT_EQ(joined.back().child_text("subject", xml::ns_client), "Last word");
  const auto page = read_page(server.exchange(bob, room_mam_query("q")));
  EXPECT_EQ(std::vector<std::string>(page.bodies.begin(), page.bodies.end() - 1), sent);
}

TEST(MucArchiveOptions, RetentionTrimsTheRoomArchive) {
  MucServer server("archive_max_messages: 10\ndefault_archiving: true");
  auto alice = server.bind("alice@example.org/home");
  server.exchange(alice, join_presence("Alice"));
  server.exchange(alice, owner_query("set", "instant"));
  for (int n = 0; n < 64; ++n) server.exchange(alice, groupchat(std::to_string(n)));
  const auto page = read_page(server.exchange(alice, room_mam_query("q", 100)));
  EXPECT_EQ(page.bodies.size(), 10u);
  EXPECT_EQ(page.bodies.back(), "63");
  TestServer plain;
  EXPECT_THROW(plain.enable(make_muc_module, "archive_max_page: 0"), OptionError);
}

// ---- iqs between occupants ---------------------------------------------------

TEST_F(MucTest, IqToAnOccupantIsForwardedUnderTheSendersOccupantJidAndTheAnswerComesBack) {
  open_room();
  auto request = testing::make_iq("get", "v1", nick_jid("Alice"), "query", "jabber:iq:version");
  EXPECT_TRUE(server.exchange(bob, request).empty());
  const auto forwarded = alice.session->take();
  ASSERT_EQ(forwarded.size(), 1u);
  EXPECT_EQ(forwarded.front().attr("from"), nick_jid("Bob"));
  EXPECT_EQ(forwarded.front().attr("to"), "alice@example.org/home");
  EXPECT_NE(forwarded.front().attr("id"), "v1");
  EXPECT_NE(forwarded.front().child("query", "jabber:iq:version"), nullptr);

  // Someone else answering under that id is ignored; the asked client's answer goes back.
  auto forged = xmpp::iq_result(forwarded.front());
  EXPECT_TRUE(server.exchange(carol, forged).empty());
  EXPECT_TRUE(bob.session->take().empty());
  auto answer = xmpp::iq_result(forwarded.front());
  answer.add_child("query", "jabber:iq:version").add_child("name", "jabber:iq:version").add_text("test client");
  server.exchange(alice, answer);
  const auto back = bob.session->take();
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back.front().attr("type"), "result");
  EXPECT_EQ(back.front().attr("id"), "v1");
  EXPECT_EQ(back.front().attr("from"), nick_jid("Alice"));
  EXPECT_EQ(back.front().attr("to"), "bob@example.org/work");
  // Answered once only.
  server.exchange(alice, answer);
  EXPECT_TRUE(bob.session->take().empty());

  // Errors come back too, and a ping to someone else is forwarded, not answered by the room.
  EXPECT_TRUE(server.exchange(bob, testing::make_iq("get", "p", nick_jid("Alice"), "ping", ns_ping)).empty());
  const auto ping = alice.session->take();
  ASSERT_EQ(ping.size(), 1u);
  server.exchange(alice, xmpp::stanza_error(ping.front(), "service-unavailable"));
  const auto error = bob.session->take();
  ASSERT_EQ(error.size(), 1u);
  EXPECT_EQ(testing::error_condition(error.front()), "service-unavailable");
  EXPECT_EQ(error.front().attr("id"), "p");
}

TEST_F(MucTest, VcardRequestToAnOccupantGoesToItsAccountAndOnlyTheAccountAnswers) {
  open_room();
  // No vcard module here: the router answers for the account with an error, which comes back to bob.
  const auto back = server.exchange(bob, testing::make_iq("get", "vc", nick_jid("Alice"), "vCard", "vcard-temp"));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back.front().attr("id"), "vc");
  EXPECT_EQ(back.front().attr("from"), nick_jid("Alice"));
  EXPECT_EQ(testing::error_condition(back.front()), "service-unavailable");
  EXPECT_TRUE(alice.session->take().empty());
}

TEST_F(MucTest, IqToAnOccupantFromOutsideOrToNobodyIsRefused) {
  open_room();
  const auto outside =
      server.exchange(carol, testing::make_iq("get", "v", nick_jid("Alice"), "query", "jabber:iq:version"));
  EXPECT_EQ(testing::error_condition(outside.front()), "not-acceptable");
  const auto nobody =
      server.exchange(bob, testing::make_iq("get", "v", nick_jid("Nobody"), "query", "jabber:iq:version"));
  EXPECT_EQ(testing::error_condition(nobody.front()), "item-not-found");
  EXPECT_TRUE(alice.session->take().empty());
}

// ---- one room, driven directly ----------------------------------------------

// An archive whose every call fails, like a database outage.
class FailingArchive : public storage::ArchiveStore {
 public:
  bool append(const std::string&, const storage::ArchivedMessage&) override { throw storage::Error("archive down"); }
  std::optional<storage::ArchivePage> query(const std::string&, const storage::ArchiveQuery&) override {
    throw storage::Error("archive down");
  }
  std::size_t trim(const std::string&, std::size_t) override { throw storage::Error("archive down"); }
  void remove_owner(const std::string&) override { throw storage::Error("archive down"); }
  std::optional<storage::ArchivePrefs> prefs(const std::string&) override { throw storage::Error("archive down"); }
  void set_prefs(const std::string&, const storage::ArchivePrefs&) override { throw storage::Error("archive down"); }
};

class RoomTest : public ::testing::Test {
 protected:
  explicit RoomTest(storage::ArchiveStore* archive = nullptr) : room(make_room(archive)) {}

  Room make_room(storage::ArchiveStore* archive) {
    limits.defaults.archiving = true;
    return Room(*xmpp::Jid::parse(room_jid), limits, storage->muc(), archive,
                [] { return std::chrono::system_clock::now(); });
  }

  std::vector<xml::Element> handle(xml::Element stanza, const std::string& from) {
    stanza.set_attr("from", from);
    std::vector<xml::Element> out;
    room.handle(stanza, *xmpp::Jid::parse(from), *xmpp::Jid::parse(stanza.attr("to")), out);
    return out;
  }

  // alice owns an instant room that bob has joined.
  void open() {
    handle(join_presence("Alice"), alice);
    handle(owner_query("set", "instant"), alice);
    handle(join_presence("Bob"), bob);
  }

  const std::string alice = "alice@example.org/home";
  const std::string bob = "bob@example.org/work";
  ServiceLimits limits;
  std::unique_ptr<storage::Storage> storage = storage::open("memory:");
  Room room;
};

class FailingArchiveRoomTest : public RoomTest {
 protected:
  FailingArchiveRoomTest() : RoomTest(&failing) {}
  static inline FailingArchive failing;
};

TEST_F(FailingArchiveRoomTest, GroupchatReachesTheOccupantsWhenTheArchiveFails) {
  open();
  EXPECT_TRUE(room.archiving());
  const auto out = handle(groupchat("still delivered"), alice);
  ASSERT_EQ(out.size(), 2u);
  for (const auto& message : out) {
    EXPECT_EQ(message.child_text("body", xml::ns_client), "still delivered");
    EXPECT_NE(message.child("stanza-id", ns_stanza_id), nullptr);
  }
  const auto query = handle(room_mam_query("q"), bob);
  ASSERT_EQ(query.size(), 1u);
  EXPECT_EQ(testing::error_condition(query.front()), "internal-server-error");
}

TEST_F(RoomTest, WithoutAnArchiveStoreTheRoomIsNeverLogged) {
  open();
  EXPECT_FALSE(room.archiving());
  const auto joined = handle(join_presence("Carol"), "carol@example.org/x");
  const auto self = std::ranges::find_if(joined, [](const xml::Element& stanza) {
    return stanza.attr("from") == nick_jid("Carol") && stanza.attr("to") == "carol@example.org/x";
  });
  ASSERT_NE(self, joined.end());
  EXPECT_EQ(status_codes(*self), (std::set<int>{110}));
  const auto refused = handle(config_submit({{"muc#roomconfig_enablearchiving", "1"}}), alice);
  EXPECT_EQ(testing::error_condition(refused.back()), "not-acceptable");
}

TEST_F(RoomTest, OnlyTheNewestForwardedIqsAreRemembered) {
  open();
  std::vector<std::string> forwarded_ids;
  for (int n = 0; n < 300; ++n) {
    const auto out =
        handle(testing::make_iq("get", "q" + std::to_string(n), nick_jid("Alice"), "query", "jabber:iq:version"), bob);
    ASSERT_EQ(out.size(), 1u);
    forwarded_ids.emplace_back(out.front().attr("id"));
  }
  EXPECT_EQ(std::set<std::string>(forwarded_ids.begin(), forwarded_ids.end()).size(), 300u);
  auto answer = [&](std::size_t n) {
    xml::Element result("iq");
    result.set_attr("type", "result");
    result.set_attr("id", forwarded_ids[n]);
    result.set_attr("to", nick_jid("Bob"));
    return handle(result, alice);
  };
  EXPECT_TRUE(answer(0).empty());  // forgotten: 256 newer ones are pending
  const auto newest = answer(299);
  ASSERT_EQ(newest.size(), 1u);
  EXPECT_EQ(newest.front().attr("id"), "q299");
  EXPECT_EQ(newest.front().attr("to"), bob);
  const auto oldest_kept = answer(300 - 256);
  ASSERT_EQ(oldest_kept.size(), 1u);
  EXPECT_EQ(oldest_kept.front().attr("id"), "q44");
}

TEST(MucOptions, BadOptionsAreRefused) {
  TestServer server;
  EXPECT_THROW(server.enable(make_muc_module, "max_history: -1"), OptionError);
  EXPECT_THROW(server.enable(make_muc_module, "service: example.org"), OptionError);
  EXPECT_THROW(server.enable(make_muc_module, "default_whois: everybody"), OptionError);
  EXPECT_THROW(server.enable(make_muc_module, "colour: blue"), OptionError);
  EXPECT_THROW(server.enable(make_muc_module, "default_archiving: sometimes"), OptionError);
}

}  // namespace
}  // namespace parley::modules
