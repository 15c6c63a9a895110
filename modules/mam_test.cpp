#include <gtest/gtest.h>

#include "modules/datetime.hpp"
#include "modules/factories.hpp"
#include "modules/module_test_support.hpp"

namespace parley::modules {
namespace {

using testing::Client;

constexpr std::string_view ns_mam = "urn:xmpp:mam:2";
constexpr std::string_view ns_rsm = "http://jabber.org/protocol/rsm";
constexpr std::string_view ns_data = "jabber:x:data";
constexpr std::string_view ns_forward = "urn:xmpp:forward:0";
constexpr std::string_view ns_stanza_id = "urn:xmpp:sid:0";

xml::Element chat(std::string_view to, std::string_view body) {
  xml::Element message("message");
  message.set_attr("to", std::string(to));
  message.set_attr("type", "chat");
  message.add_child("body", std::string(xml::ns_client)).add_text(std::string(body));
  return message;
}

struct Filters {
  std::string with, start, end, after, before;
  std::optional<std::size_t> max;
  bool last = false;
};

xml::Element mam_query(const Filters& filters, std::string_view query_id = "q") {
  auto iq = testing::make_iq("set", "mam", {}, "query", ns_mam);
  auto& query = iq.children().back();
  query.set_attr("queryid", std::string(query_id));
  auto& form = query.add_child("x", std::string(ns_data));
  form.set_attr("type", "submit");
  auto field = [&](std::string_view var, const std::string& value) {
    if (value.empty()) return;
    auto& element = form.add_child("field", std::string(ns_data));
    element.set_attr("var", std::string(var));
    element.add_child("value", std::string(ns_data)).add_text(value);
  };
  field("FORM_TYPE", std::string(ns_mam));
  field("with", filters.with);
  field("start", filters.start);
  field("end", filters.end);
  auto& set = query.add_child("set", std::string(ns_rsm));
  if (filters.max) set.add_child("max", std::string(ns_rsm)).add_text(std::to_string(*filters.max));
  if (!filters.after.empty()) set.add_child("after", std::string(ns_rsm)).add_text(filters.after);
  if (!filters.before.empty() || filters.last) {
    set.add_child("before", std::string(ns_rsm)).add_text(filters.before);
  }
  return iq;
}

struct Answer {
  std::vector<std::string> bodies;
  std::vector<std::string> ids;
  xml::Element fin;
  std::string error;
};

class MamTest : public ::testing::Test {
 protected:
  MamTest() {
    server.add_account("alice", "a");
    server.add_account("bob", "b");
    server.enable(make_mam_module, "max_page: 5");
    alice = online("alice@example.org/desk");
    bob = online("bob@example.org/home");
  }

  Client online(const std::string& jid) {
    auto client = server.bind(jid);
    server.router().sessions().set_presence(client.jid, std::make_shared<const xml::Element>("presence"), 0);
    return client;
  }

  Answer ask(const Client& client, const Filters& filters) {
    Answer answer;
    for (const auto& stanza : server.send(client, mam_query(filters))) {
      if (stanza.name() == "iq") {
        answer.error = testing::error_condition(stanza);
        if (const auto* fin = stanza.child("fin", ns_mam)) answer.fin = *fin;
        continue;
      }
      const auto* result = stanza.child("result", ns_mam);
      EXPECT_NE(result, nullptr);
      if (result == nullptr) continue;
      EXPECT_EQ(result->attr("queryid"), "q");
      answer.ids.emplace_back(result->attr("id"));
      const auto* message = result->child("forwarded", ns_forward)->child("message", xml::ns_client);
      answer.bodies.push_back(message->child_text("body", xml::ns_client));
    }
    return answer;
  }

  testing::TestServer server;
  Client alice, bob;
};

TEST_F(MamTest, ReceivedMessagesAreStampedAndBothSidesArchiveTheConversation) {
  server.send(bob, chat("alice@example.org", "hello alice"));
  const auto delivered = alice.session->take();
  ASSERT_EQ(delivered.size(), 1u);
  const auto* stanza_id = delivered.front().child("stanza-id", ns_stanza_id);
  ASSERT_NE(stanza_id, nullptr);
  EXPECT_EQ(stanza_id->attr("by"), "alice@example.org");
  server.send(alice, chat("bob@example.org", "hello bob"));

  const auto at_alice = ask(alice, {});
  EXPECT_EQ(at_alice.bodies, (std::vector<std::string>{"hello alice", "hello bob"}));
  EXPECT_EQ(at_alice.ids.front(), stanza_id->attr("id"));
  EXPECT_EQ(at_alice.fin.attr("complete"), "true");
  EXPECT_EQ(at_alice.fin.child("set", ns_rsm)->child_text("count", ns_rsm), "2");
  EXPECT_EQ(ask(bob, {}).bodies, (std::vector<std::string>{"hello alice", "hello bob"}));
}

TEST_F(MamTest, ForgedStanzaIdsAreRemovedAndNonChatMessagesAreNotArchived) {
  auto forged = chat("alice@example.org", "forged");
  auto& fake = forged.add_child("stanza-id", std::string(ns_stanza_id));
  fake.set_attr("id", "fake");
  fake.set_attr("by", "alice@example.org");
  server.send(bob, forged);
  const auto delivered = alice.session->take();
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_NE(delivered.front().child("stanza-id", ns_stanza_id)->attr("id"), "fake");

  auto headline = chat("alice@example.org", "news");
  headline.set_attr("type", "headline");
  server.send(bob, headline);
  auto hinted = chat("alice@example.org", "off the record");
  hinted.add_child("no-store", "urn:xmpp:hints");
  server.send(bob, hinted);
  EXPECT_EQ(ask(alice, {}).bodies, std::vector<std::string>{"forged"});
}

TEST_F(MamTest, PagesWithRsmForwardAndFromTheEnd) {
  for (int n = 0; n < 12; ++n) server.send(bob, chat("alice@example.org", std::to_string(n)));
  std::vector<std::string> all;
  Filters filters;
  for (;;) {
    const auto page = ask(alice, filters);
    EXPECT_LE(page.bodies.size(), 5u);  // max_page
    all.insert(all.end(), page.bodies.begin(), page.bodies.end());
    if (page.fin.attr("complete") == "true") break;
    filters.after = page.fin.child("set", ns_rsm)->child_text("last", ns_rsm);
  }
  std::vector<std::string> expected;
  for (int n = 0; n < 12; ++n) expected.push_back(std::to_string(n));
  EXPECT_EQ(all, expected);

  Filters last;
  last.last = true;
  last.max = 3;
  const auto tail = ask(alice, last);
  EXPECT_EQ(tail.bodies, (std::vector<std::string>{"9", "10", "11"}));
  Filters before;
  before.before = tail.ids.front();
  before.max = 2;
  EXPECT_EQ(ask(alice, before).bodies, (std::vector<std::string>{"7", "8"}));

  Filters unknown;
  unknown.after = "no-such-id";
  EXPECT_EQ(ask(alice, unknown).error, "item-not-found");
  Filters count_only;
  count_only.max = 0;
  const auto counted = ask(alice, count_only);
  EXPECT_TRUE(counted.bodies.empty());
  EXPECT_EQ(counted.fin.child("set", ns_rsm)->child_text("count", ns_rsm), "12");
}

TEST_F(MamTest, WithAndTimeFiltersAreExact) {
  auto carol = online("carol@example.org/x");
  server.add_account("carol", "c");
  server.send(bob, chat("alice@example.org", "from bob"));
  server.send(carol, chat("alice@example.org", "from carol"));
  Filters with_carol;
  with_carol.with = "carol@example.org";
  EXPECT_EQ(ask(alice, with_carol).bodies, std::vector<std::string>{"from carol"});

  // Everything so far is before 'middle'; what follows is after it.
  const auto middle = format_datetime(std::chrono::system_clock::now());
  server.send(bob, chat("alice@example.org", "later"));
  Filters after_middle;
  after_middle.start = middle;
  EXPECT_EQ(ask(alice, after_middle).bodies, std::vector<std::string>{"later"});
  Filters before_middle;
  before_middle.end = middle;
  EXPECT_EQ(ask(alice, before_middle).bodies, (std::vector<std::string>{"from bob", "from carol"}));
  Filters bad;
  bad.start = "yesterday";
  EXPECT_EQ(ask(alice, bad).error, "bad-request");
}

TEST_F(MamTest, PreferencesDecideWhatIsArchived) {
  auto prefs = testing::make_iq("set", "p", {}, "prefs", ns_mam);
  auto& element = prefs.children().back();
  element.set_attr("default", "never");
  element.add_child("always", std::string(ns_mam)).add_child("jid", std::string(ns_mam)).add_text("carol@example.org");
  const auto stored = server.ask(alice, prefs);
  ASSERT_EQ(stored.attr("type"), "result");
  EXPECT_EQ(stored.child("prefs", ns_mam)->attr("default"), "never");

  auto carol = online("carol@example.org/x");
  server.add_account("carol", "c");
  server.send(bob, chat("alice@example.org", "not kept"));
  server.send(carol, chat("alice@example.org", "kept"));
  EXPECT_EQ(ask(alice, {}).bodies, std::vector<std::string>{"kept"});

  const auto read = server.ask(alice, testing::make_iq("get", "g", {}, "prefs", ns_mam));
  const auto* always = read.child("prefs", ns_mam)->child("always", ns_mam);
  ASSERT_NE(always, nullptr);
  EXPECT_EQ(always->child_text("jid", ns_mam), "carol@example.org");

  // Another account's archive is not for bob.
  auto foreign = mam_query({});
  foreign.set_attr("to", "alice@example.org");
  EXPECT_EQ(testing::error_condition(server.ask(bob, foreign)), "forbidden");
}

TEST(MamOptions, BadOptionsAreRefused) {
  testing::TestServer server;
  EXPECT_THROW(server.enable(make_mam_module, "default: sometimes"), OptionError);
  EXPECT_THROW(server.enable(make_mam_module, "max_page: 0"), OptionError);
  EXPECT_THROW(server.enable(make_mam_module, "retention: 3"), OptionError);
}

}  // namespace
}  // namespace parley::modules
