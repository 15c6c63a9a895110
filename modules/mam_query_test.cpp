#include "modules/mam_query.hpp"

#include <gtest/gtest.h>

#include "modules/module_test_support.hpp"

namespace parley::modules::mam {
namespace {

constexpr std::string_view ns_data = "jabber:x:data";

// <query xmlns='urn:xmpp:mam:2'> with a submitted form of 'fields' and an RSM set of 'rsm' (name, text).
xml::Element query_payload(const std::vector<std::pair<std::string, std::string>>& fields,
                           const std::vector<std::pair<std::string, std::string>>& rsm = {}) {
  xml::Element query("query", std::string(ns_mam));
  query.set_attr("queryid", "q1");
  auto& form = query.add_child("x", std::string(ns_data));
  form.set_attr("type", "submit");
  for (const auto& [var, value] : fields) {
    auto& field = form.add_child("field", std::string(ns_data));
    field.set_attr("var", var);
    field.add_child("value", std::string(ns_data)).add_text(value);
  }
  auto& set = query.add_child("set", std::string(ns_rsm));
  for (const auto& [name, text] : rsm) set.add_child(name, std::string(ns_rsm)).add_text(text);
  return query;
}

xml::Element query_iq(xml::Element payload) {
  xml::Element iq("iq");
  iq.set_attr("type", "set");
  iq.set_attr("id", "mam1");
  iq.set_attr("from", "bob@example.org/phone");
  iq.set_attr("to", "room@conference.example.org");
  iq.add_child(std::move(payload));
  return iq;
}

std::string read(const xml::Element& payload, storage::ArchiveQuery& query, WithForm with = WithForm::bare) {
  return read_query(payload, QueryOptions{10, with}, query);
}

TEST(MamQuery, FormFieldsAndRsmBecomeAStoreQuery) {
  storage::ArchiveQuery query;
  EXPECT_EQ(read(query_payload({{"FORM_TYPE", std::string(ns_mam)},
                                {"with", "juliet@capulet.example/balcony"},
                                {"start", "2024-01-31T12:00:00Z"},
                                {"end", "2024-01-31T12:00:01.5Z"}},
                               {{"max", "7"}, {"after", "a1"}}),
                 query),
            "");
  EXPECT_EQ(query.with, "juliet@capulet.example");
  EXPECT_EQ(query.start, 1706702400000000);
  EXPECT_EQ(query.end, 1706702401500000);
  EXPECT_EQ(query.after_id, "a1");
  EXPECT_EQ(query.max, 7u);
  EXPECT_FALSE(query.last);
}

TEST(MamQuery, RoomArchivesMatchTheFullOccupantJid) {
  storage::ArchiveQuery query;
  EXPECT_EQ(read(query_payload({{"with", "room@conference.example.org/Nick"}}), query, WithForm::full), "");
  EXPECT_EQ(query.with, "room@conference.example.org/Nick");
}

TEST(MamQuery, PageSizeIsCappedAndAnEmptyBeforeAsksForTheLastPage) {
  storage::ArchiveQuery query;
  EXPECT_EQ(read(query_payload({}, {{"max", "5000"}, {"before", ""}}), query), "");
  EXPECT_EQ(query.max, 10u);
  EXPECT_TRUE(query.last);
  storage::ArchiveQuery before;
  EXPECT_EQ(read(query_payload({}, {{"before", "b9"}}), before), "");
  EXPECT_EQ(before.before_id, "b9");
  EXPECT_FALSE(before.last);
  EXPECT_EQ(before.max, 10u);
}

TEST(MamQuery, UnacceptableQueriesNameTheirError) {
  storage::ArchiveQuery query;
  EXPECT_EQ(read(query_payload({{"FORM_TYPE", "urn:xmpp:mam:1"}}), query), "bad-request");
  EXPECT_EQ(read(query_payload({{"with", "@@"}}), query), "jid-malformed");
  EXPECT_EQ(read(query_payload({{"start", "yesterday"}}), query), "bad-request");
  EXPECT_EQ(read(query_payload({{"full-text-search", "x"}}), query), "feature-not-implemented");
  EXPECT_EQ(read(query_payload({}, {{"max", "-1"}}), query), "bad-request");
  EXPECT_EQ(read(query_payload({}, {{"index", "3"}}), query), "feature-not-implemented");
}

TEST(MamQuery, FormListsTheFilters) {
  const auto reply = query_form(query_iq(xml::Element("query", std::string(ns_mam))));
  EXPECT_EQ(reply.attr("type"), "result");
  EXPECT_EQ(reply.attr("to"), "bob@example.org/phone");
  const auto vars = modules::testing::child_attrs(*reply.child("query", ns_mam)->child("x", ns_data), "field", "var");
  EXPECT_EQ(vars, (std::vector<std::string>{"FORM_TYPE", "with", "start", "end", "before-id", "after-id"}));
}

class AnswerTest : public ::testing::Test {
 protected:
  AnswerTest() {
    for (int n = 0; n < 5; ++n) {
      storage->archive().append(owner, {"id" + std::to_string(n), 1'000'000 * (n + 1), "room@conference.example.org/A",
                                        "<message xmlns='jabber:client' type='groupchat' "
                                        "from='room@conference.example.org/A'><body>" +
                                            std::to_string(n) + "</body></message>"});
    }
  }
  std::vector<xml::Element> answer(const xml::Element& payload) {
    return answer_query(storage->archive(), owner, "bob@example.org/phone", query_iq(payload),
                        QueryOptions{2, WithForm::full});
  }

  const std::string owner = "room@conference.example.org";
  std::unique_ptr<storage::Storage> storage = storage::open("memory:");
};

TEST_F(AnswerTest, ResultsAreForwardedOldestFirstThenTheFinWithTheRsmSet) {
  const auto stanzas = answer(query_payload({}, {{"after", "id1"}}));
  ASSERT_EQ(stanzas.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    const auto& message = stanzas[static_cast<std::size_t>(i)];
    EXPECT_EQ(message.attr("from"), owner);
    EXPECT_EQ(message.attr("to"), "bob@example.org/phone");
    const auto* result = message.child("result", ns_mam);
    ASSERT_NE(result, nullptr);
    EXPECT_EQ(result->attr("queryid"), "q1");
    EXPECT_EQ(result->attr("id"), "id" + std::to_string(i + 2));
    const auto* forwarded = result->child("forwarded", ns_forward);
    EXPECT_EQ(forwarded->child("delay", "urn:xmpp:delay")->attr("stamp"),
              "1970-01-01T00:00:0" + std::to_string(i + 3) + ".000000Z");
    EXPECT_EQ(forwarded->child("message", xml::ns_client)->child_text("body", xml::ns_client), std::to_string(i + 2));
  }
  const auto& reply = stanzas.back();
  EXPECT_EQ(reply.attr("type"), "result");
  EXPECT_EQ(reply.attr("id"), "mam1");
  const auto* fin = reply.child("fin", ns_mam);
  ASSERT_NE(fin, nullptr);
  EXPECT_EQ(fin->attr("queryid"), "q1");
  EXPECT_FALSE(fin->has_attr("complete"));
  const auto* set = fin->child("set", ns_rsm);
  EXPECT_EQ(set->child_text("first", ns_rsm), "id2");
  EXPECT_EQ(set->child_text("last", ns_rsm), "id3");
  EXPECT_EQ(set->child_text("count", ns_rsm), "5");

  const auto last = answer(query_payload({}, {{"after", "id3"}}));
  ASSERT_EQ(last.size(), 2u);
  EXPECT_EQ(last.back().child("fin", ns_mam)->attr("complete"), "true");
}

TEST_F(AnswerTest, UnknownIdsAndBadQueriesGetOneErrorIq) {
  const auto unknown = answer(query_payload({}, {{"after", "nope"}}));
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_EQ(modules::testing::error_condition(unknown.front()), "item-not-found");
  const auto bad = answer(query_payload({{"start", "soon"}}));
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(modules::testing::error_condition(bad.front()), "bad-request");
  const auto unparsable = answer(xml::Element("prefs", std::string(ns_mam)));
  EXPECT_EQ(modules::testing::error_condition(unparsable.front()), "bad-request");
}

}  // namespace
}  // namespace parley::modules::mam
