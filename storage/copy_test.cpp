#include "storage/copy.hpp"

#include <gtest/gtest.h>

#include "storage/test_support.hpp"

namespace parley::storage {
namespace {

sasl::ScramCredentials keys(char seed) {
  return {std::string{'\0', seed}, 4096, std::string(20, seed), std::string(20, seed + 1)};
}

Account account(const std::string& username, const std::string& domain, char seed = 'a') {
  return {username, domain, keys(seed), keys(static_cast<char>(seed + 2)), 1700000000};
}

RosterItem contact(const std::string& jid, const std::string& name = "",
                   std::vector<std::string> groups = {}) {
  RosterItem item;
  item.jid = jid;
  item.name = name;
  item.subscription = Subscription::both;
  item.groups = std::move(groups);
  return item;
}

// Two domains, rosters with a removal and pending requests, offline
// messages, a room.
void fill(Storage& storage) {
  ASSERT_TRUE(storage.accounts().create(account("alice", "example.org", 'a')));
  ASSERT_TRUE(storage.accounts().create(account("bob", "example.org", 'b')));
  ASSERT_TRUE(storage.accounts().create(account("carol", "example.net", 'c')));
  auto& roster = storage.roster();
  roster.put_item("alice@example.org", contact("bob@example.org", "Bob", {"Friends", "Work"}));
  roster.put_item("alice@example.org", contact("dave@example.com"));
  roster.remove_item("alice@example.org", "dave@example.com");
  roster.put_item("alice@example.org", contact("carol@example.net", "Carol"));
  roster.add_pending_in("alice@example.org", "eve@example.com", "<presence type='subscribe'/>");
  roster.put_item("carol@example.net", contact("alice@example.org"));
  roster.add_pending_in("bob@example.org", "eve@example.com", "<presence type='subscribe'/>");
  ASSERT_TRUE(storage.offline().push("bob@example.org", "<message id='1'/>", 10));
  ASSERT_TRUE(storage.offline().push("bob@example.org", "<message id='2'/>", 10));
  ASSERT_TRUE(storage.offline().push("carol@example.net", "<message id='3'/>", 10));
  storage.muc().put_room({"conference.example.org", "lobby", "<config/>"});
  storage.muc().set_affiliation("conference.example.org", "lobby", {"alice@example.org", "owner", ""});
  // More than one page of archive, with equal timestamps whose order is kept.
  for (int n = 0; n < 1200; ++n) {
    ASSERT_TRUE(storage.archive().append(
        "alice@example.org", {"m" + std::to_string(n), 1000 + n / 3, "bob@example.org",
                              "<message><body>" + std::to_string(n) + "</body></message>"}));
  }
  storage.archive().set_prefs("bob@example.org", ArchivePrefs{"roster", {}, {"eve@example.com"}});
}

class Copy : public ::testing::Test {
 protected:
  Copy() : source_(open("memory:")), target_(open("sqlite:" + dir_.file("target.db"))) {
    fill(*source_);
  }
  testing::TempDir dir_;
  std::unique_ptr<Storage> source_;
  std::unique_ptr<Storage> target_;
};

const CopyCounts everything{3, 3, 3, 2, 3, 1, 1, 2, 1200};

TEST_F(Copy, CopiesEverythingAndVerifiesIt) {
  std::vector<std::string> progress;
  const auto report = copy_all(*source_, *target_, {false, [&](std::string_view line) {
                                                      progress.emplace_back(line);
                                                    }});
  EXPECT_TRUE(report.written);
  EXPECT_TRUE(report.conflicts.empty());
  EXPECT_EQ(report.source, everything);
  EXPECT_EQ(report.copied, everything);
  EXPECT_EQ(report.unchanged, CopyCounts{});
  EXPECT_EQ(report.verified, everything);
  EXPECT_FALSE(progress.empty());

  EXPECT_EQ(target_->accounts().find("alice", "example.org"), account("alice", "example.org", 'a'));
  EXPECT_EQ(target_->accounts().list("example.net"), std::vector<std::string>{"carol"});
  const auto roster = target_->roster().get("alice@example.org");
  EXPECT_EQ(roster.version, 4);
  EXPECT_EQ(roster.items, source_->roster().get("alice@example.org").items);
  // A client that cached version 2 learns about the removal and the new item.
  const auto changes = target_->roster().changes_since("alice@example.org", 2);
  ASSERT_TRUE(changes.has_value());
  ASSERT_EQ(changes->size(), 2u);
  EXPECT_TRUE((*changes)[0].removed);
  EXPECT_EQ((*changes)[1].item.jid, "carol@example.net");
  EXPECT_EQ(target_->roster().pending_in("bob@example.org").size(), 1u);
  EXPECT_EQ(target_->offline().peek_all("bob@example.org"),
            (std::vector<std::string>{"<message id='1'/>", "<message id='2'/>"}));
  EXPECT_EQ(target_->muc().affiliations("conference.example.org", "lobby").size(), 1u);
  ArchiveQuery last_page;
  last_page.last = true;
  last_page.max = 3;
  const auto page = target_->archive().query("alice@example.org", last_page);
  ASSERT_TRUE(page.has_value());
  ASSERT_EQ(page->messages.size(), 3u);
  EXPECT_EQ(page->count, 1200u);
  EXPECT_EQ(page->messages[0].id, "m1197");
  EXPECT_EQ(page->messages[2].id, "m1199");
  EXPECT_EQ(target_->archive().prefs("bob@example.org"),
            (ArchivePrefs{"roster", {}, {"eve@example.com"}}));
  // The source is read, never changed.
  EXPECT_EQ(source_->offline().count("bob@example.org"), 2u);
}

TEST_F(Copy, SecondRunFindsEverythingInPlaceAndWritesNothing) {
  copy_all(*source_, *target_);
  const auto again = copy_all(*source_, *target_);
  EXPECT_TRUE(again.written);
  EXPECT_EQ(again.copied, CopyCounts{});
  EXPECT_EQ(again.unchanged, everything);
  EXPECT_EQ(again.verified, everything);
  EXPECT_EQ(target_->offline().count("bob@example.org"), 2u);
  EXPECT_EQ(target_->roster().pending_in("alice@example.org").size(), 1u);
  EXPECT_EQ(target_->roster().version("alice@example.org"), 4);
}

TEST_F(Copy, ConflictStopsTheCopyBeforeAnyWrite) {
  ASSERT_TRUE(target_->accounts().create(account("bob", "example.org", 'z')));
  target_->roster().put_item("carol@example.net", contact("someone@example.com"));
  const auto report = copy_all(*source_, *target_);
  EXPECT_FALSE(report.written);
  ASSERT_EQ(report.conflicts.size(), 2u);
  EXPECT_NE(report.conflicts[0].find("account bob@example.org"), std::string::npos);
  EXPECT_NE(report.conflicts[1].find("roster of carol@example.net"), std::string::npos);
  EXPECT_FALSE(target_->accounts().find("alice", "example.org").has_value());
  EXPECT_EQ(target_->offline().count("bob@example.org"), 0u);
  EXPECT_EQ(target_->accounts().find("bob", "example.org"), account("bob", "example.org", 'z'));
}

TEST_F(Copy, ForceReplacesWhatDiffersAndLeavesTargetOnlyRecords) {
  ASSERT_TRUE(target_->accounts().create(account("bob", "example.org", 'z')));
  ASSERT_TRUE(target_->offline().push("bob@example.org", "<stale/>", 10));
  ASSERT_TRUE(target_->offline().push("carol@example.net", "<other/>", 10));
  ASSERT_TRUE(target_->accounts().create(account("zed", "example.org", 'q')));
  ASSERT_TRUE(target_->archive().append("alice@example.org", {"stale", 1, "x@example.net", "<m/>"}));
  const auto report = copy_all(*source_, *target_, {true, {}});
  EXPECT_TRUE(report.written);
  EXPECT_EQ(report.verified, everything);
  EXPECT_EQ(target_->accounts().find("bob", "example.org"), account("bob", "example.org", 'b'));
  EXPECT_EQ(target_->offline().peek_all("bob@example.org"),
            (std::vector<std::string>{"<message id='1'/>", "<message id='2'/>"}));
  EXPECT_EQ(target_->offline().peek_all("carol@example.net"),
            std::vector<std::string>{"<message id='3'/>"});
  EXPECT_EQ(target_->accounts().find("zed", "example.org"), account("zed", "example.org", 'q'));
  EXPECT_EQ(target_->archive().query("alice@example.org", {})->count, 1200u);
}

TEST_F(Copy, AnInterruptedCopyIsCompletedByTheNextRun) {
  // As if the first run had stopped after the accounts.
  for (const auto* name : {"alice", "bob"})
    ASSERT_TRUE(target_->accounts().create(*source_->accounts().find(name, "example.org")));
  const auto report = copy_all(*source_, *target_);
  EXPECT_TRUE(report.written);
  EXPECT_EQ(report.unchanged.accounts, 2u);
  EXPECT_EQ(report.copied.accounts, 1u);
  EXPECT_EQ(report.verified, everything);
}

}  // namespace
}  // namespace parley::storage
