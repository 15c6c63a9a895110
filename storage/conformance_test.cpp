// The behaviour every storage backend must have. Each backend is one
// instantiation of the suite; each test gets a fresh, empty backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "storage/mysql/test_environment.hpp"
#include "storage/storage.hpp"
#include "storage/test_support.hpp"

namespace parley::storage {
namespace {

// A backend under test and what it needs kept alive until it is closed
// (a temporary directory, a database server).
struct FreshBackend {
  std::shared_ptr<void> resources;
  std::unique_ptr<Storage> storage;
};

struct BackendKind {
  std::string name;
  std::function<FreshBackend()> make;
};

BackendKind memory_backend() {
  return {"memory", [] { return FreshBackend{nullptr, open("memory:")}; }};
}

BackendKind sqlite_backend() {
  return {"sqlite", [] {
            auto dir = std::make_shared<testing::TempDir>();
            auto storage = open("sqlite:" + dir->file("parley.db"));
            return FreshBackend{dir, std::move(storage)};
          }};
}

using testing::MariadbEnvironment;

// One MariaDB server for the test binary; each mysql test gets its own database.
[[maybe_unused]] const auto* const mariadb_environment =
    ::testing::AddGlobalTestEnvironment(new MariadbEnvironment);

BackendKind mysql_backend() {
  return {"mysql", [] {
            static int databases = 0;
            auto& server = MariadbEnvironment::server();
            const auto name = "conformance_" + std::to_string(++databases);
            auto storage = open(server.create_database(name));
            // Dropped when the test ends, so the server stays small.
            auto drop = std::shared_ptr<void>(nullptr, [&server, name](void*) {
              try {
                server.admin("DROP DATABASE `" + name + "`");
              } catch (const std::exception& error) {
                ADD_FAILURE() << error.what();
              }
            });
            return FreshBackend{drop, std::move(storage)};
          }};
}

sasl::ScramCredentials credentials(char seed, std::uint32_t iterations = 4096) {
  // Raw bytes, including NUL and bytes above 0x7f, as real salts and keys are.
  return {std::string{'\0', seed, '\xff', '\x80', 's'}, iterations,
          std::string(20, seed) + std::string(1, '\0'), std::string{'\xfe', '\0', seed}};
}

Account account(const std::string& username, const std::string& domain, char seed = 'a') {
  return Account{username, domain, credentials(seed), credentials(static_cast<char>(seed + 1)),
                 1700000000 + seed};
}

RosterItem item(const std::string& jid, const std::string& name = "",
                Subscription subscription = Subscription::none,
                std::vector<std::string> groups = {}) {
  RosterItem result;
  result.jid = jid;
  result.name = name;
  result.subscription = subscription;
  result.groups = std::move(groups);
  return result;
}

std::vector<RosterItem> sorted_by_jid(std::vector<RosterItem> items) {
  std::ranges::sort(items, {}, &RosterItem::jid);
  return items;
}

class StorageConformance : public ::testing::TestWithParam<BackendKind> {
 protected:
  void SetUp() override { backend_ = GetParam().make(); }

  Storage& storage() { return *backend_.storage; }
  AccountStore& accounts() { return backend_.storage->accounts(); }
  RosterStore& roster() { return backend_.storage->roster(); }
  OfflineStore& offline() { return backend_.storage->offline(); }

  // The changes as jid -> (removed, item), checking that no jid repeats.
  std::map<std::string, RosterChange> changes_by_jid(const std::string& owner, std::int64_t since) {
    const auto changes = roster().changes_since(owner, since);
    EXPECT_TRUE(changes.has_value());
    std::map<std::string, RosterChange> by_jid;
    if (!changes) return by_jid;
    for (const auto& change : *changes) {
      EXPECT_TRUE(by_jid.emplace(change.item.jid, change).second)
          << "jid repeated: " << change.item.jid;
    }
    return by_jid;
  }

 private:
  FreshBackend backend_;
};

// ---- Storage ---------------------------------------------------------------

TEST_P(StorageConformance, ReportsItsBackendName) {
  EXPECT_EQ(storage().backend_name(), GetParam().name);
}

TEST_P(StorageConformance, FlushKeepsData) {
  ASSERT_TRUE(accounts().create(account("alice", "example.org")));
  roster().put_item("alice@example.org", item("bob@example.net"));
  ASSERT_TRUE(offline().push("alice@example.org", "<message/>", 10));
  storage().flush();
  storage().flush();
  EXPECT_TRUE(accounts().find("alice", "example.org").has_value());
  EXPECT_EQ(roster().version("alice@example.org"), 1);
  EXPECT_EQ(offline().count("alice@example.org"), 1u);
}

// ---- AccountStore ------------------------------------------------------------

TEST_P(StorageConformance, CreatedAccountIsFoundWithEveryField) {
  const auto alice = account("alice", "example.org", 'x');
  ASSERT_TRUE(accounts().create(alice));
  const auto found = accounts().find("alice", "example.org");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, alice);
  EXPECT_EQ(found->created_at, alice.created_at);
  EXPECT_EQ(found->sha1.salt.size(), 5u);
  EXPECT_NE(found->sha1, found->sha256);
}

TEST_P(StorageConformance, CreateTwiceIsRefusedAndKeepsTheFirst) {
  const auto first = account("alice", "example.org", 'a');
  ASSERT_TRUE(accounts().create(first));
  EXPECT_FALSE(accounts().create(account("alice", "example.org", 'q')));
  EXPECT_EQ(accounts().find("alice", "example.org"), first);
}

TEST_P(StorageConformance, FindMissingIsEmpty) {
  EXPECT_FALSE(accounts().find("nobody", "example.org").has_value());
  ASSERT_TRUE(accounts().create(account("alice", "example.org")));
  EXPECT_FALSE(accounts().find("alice", "example.net").has_value());
  EXPECT_FALSE(accounts().find("alic", "example.org").has_value());
  EXPECT_FALSE(accounts().find("ALICE", "example.org").has_value());
  EXPECT_FALSE(accounts().find("", "").has_value());
}

TEST_P(StorageConformance, SameUsernameInTwoDomainsIsTwoAccounts) {
  const auto org = account("alice", "example.org", 'a');
  const auto net = account("alice", "example.net", 'n');
  ASSERT_TRUE(accounts().create(org));
  ASSERT_TRUE(accounts().create(net));
  EXPECT_EQ(accounts().find("alice", "example.org"), org);
  EXPECT_EQ(accounts().find("alice", "example.net"), net);
  ASSERT_TRUE(accounts().remove("alice", "example.org"));
  EXPECT_EQ(accounts().find("alice", "example.net"), net);
}

TEST_P(StorageConformance, SetCredentialsReplacesBothSets) {
  auto alice = account("alice", "example.org", 'a');
  ASSERT_TRUE(accounts().create(alice));
  const auto sha1 = credentials('k', 10000);
  const auto sha256 = credentials('m', 20000);
  ASSERT_TRUE(accounts().set_credentials("alice", "example.org", sha1, sha256));
  alice.sha1 = sha1;
  alice.sha256 = sha256;
  EXPECT_EQ(accounts().find("alice", "example.org"), alice);
}

TEST_P(StorageConformance, SetCredentialsOnMissingAccountIsFalseAndCreatesNothing) {
  EXPECT_FALSE(
      accounts().set_credentials("ghost", "example.org", credentials('a'), credentials('b')));
  EXPECT_FALSE(accounts().find("ghost", "example.org").has_value());
  EXPECT_TRUE(accounts().list("example.org").empty());
}

TEST_P(StorageConformance, CredentialsKeepTheFullIterationRangeAndEmptyValues) {
  auto alice = account("alice", "example.org");
  alice.sha1 = credentials('a', 0xffffffffu);
  alice.sha256 = sasl::ScramCredentials{};
  ASSERT_TRUE(accounts().create(alice));
  EXPECT_EQ(accounts().find("alice", "example.org"), alice);
}

TEST_P(StorageConformance, RemoveDeletesTheAccount) {
  ASSERT_TRUE(accounts().create(account("alice", "example.org")));
  ASSERT_TRUE(accounts().create(account("bob", "example.org")));
  EXPECT_TRUE(accounts().remove("alice", "example.org"));
  EXPECT_FALSE(accounts().find("alice", "example.org").has_value());
  EXPECT_TRUE(accounts().find("bob", "example.org").has_value());
  EXPECT_EQ(accounts().list("example.org"), std::vector<std::string>{"bob"});
}

TEST_P(StorageConformance, RemoveMissingIsFalse) {
  EXPECT_FALSE(accounts().remove("alice", "example.org"));
  ASSERT_TRUE(accounts().create(account("alice", "example.org")));
  ASSERT_TRUE(accounts().remove("alice", "example.org"));
  EXPECT_FALSE(accounts().remove("alice", "example.org"));
}

TEST_P(StorageConformance, AccountCanBeCreatedAgainAfterRemoval) {
  ASSERT_TRUE(accounts().create(account("alice", "example.org", 'a')));
  ASSERT_TRUE(accounts().remove("alice", "example.org"));
  const auto again = account("alice", "example.org", 'z');
  ASSERT_TRUE(accounts().create(again));
  EXPECT_EQ(accounts().find("alice", "example.org"), again);
}

TEST_P(StorageConformance, ListIsSortedAndPerDomain) {
  for (const auto* name : {"mallory", "alice", "zoe", "bob", "alice2"}) {
    ASSERT_TRUE(accounts().create(account(name, "example.org")));
  }
  ASSERT_TRUE(accounts().create(account("carol", "example.net")));
  EXPECT_EQ(accounts().list("example.org"),
            (std::vector<std::string>{"alice", "alice2", "bob", "mallory", "zoe"}));
  EXPECT_EQ(accounts().list("example.net"), std::vector<std::string>{"carol"});
  EXPECT_TRUE(accounts().list("example.com").empty());
}

TEST_P(StorageConformance, ListSortsUnicodeByteWise) {
  // Normalised UTF-8 sorts by bytes: ASCII first, then by code point.
  for (const auto* name :
       {"\xc3\xa9mile", "zoe", "\xe6\x97\xa5\xe6\x9c\xac", "adam", "\xf0\x9f\x98\x80"}) {
    ASSERT_TRUE(accounts().create(account(name, "example.org")));
  }
  EXPECT_EQ(accounts().list("example.org"),
            (std::vector<std::string>{"adam", "zoe", "\xc3\xa9mile", "\xe6\x97\xa5\xe6\x9c\xac",
                                      "\xf0\x9f\x98\x80"}));
}

TEST_P(StorageConformance, UnicodeUsernameAndDomainRoundTrip) {
  const auto jurgen = account("j\xc3\xbcrgen", "b\xc3\xbc\x63her.example", 'u');
  ASSERT_TRUE(accounts().create(jurgen));
  EXPECT_EQ(accounts().find("j\xc3\xbcrgen", "b\xc3\xbc\x63her.example"), jurgen);
  EXPECT_FALSE(accounts().find("jurgen", "b\xc3\xbc\x63her.example").has_value());
  EXPECT_EQ(accounts().list("b\xc3\xbc\x63her.example"), std::vector<std::string>{"j\xc3\xbcrgen"});
}

TEST_P(StorageConformance, RemovingAnAccountRemovesEverythingStoredForIt) {
  ASSERT_TRUE(accounts().create(account("alice", "example.org")));
  ASSERT_TRUE(accounts().create(account("bob", "example.org")));
  ASSERT_TRUE(accounts().create(account("alice", "example.net")));
  for (const auto* owner : {"alice@example.org", "bob@example.org", "alice@example.net"}) {
    roster().put_item(owner, item("carol@example.com", "Carol", Subscription::both, {"Friends"}));
    roster().put_item(owner, item("dave@example.com"));
    roster().remove_item(owner, "dave@example.com");
    roster().add_pending_in(owner, "eve@example.com", "<presence type='subscribe'/>");
    ASSERT_TRUE(offline().push(owner, "<message>hi</message>", 10));
    ASSERT_TRUE(storage().archive().append(
        owner, ArchivedMessage{"m1", 1000, "carol@example.com", "<message>hi</message>"}));
    storage().archive().set_prefs(owner, ArchivePrefs{"roster", {"carol@example.com"}, {}});
  }

  ASSERT_TRUE(accounts().remove("alice", "example.org"));

  const std::string gone = "alice@example.org";
  EXPECT_TRUE(roster().get(gone).items.empty());
  EXPECT_FALSE(roster().get_item(gone, "carol@example.com").has_value());
  EXPECT_TRUE(roster().pending_in(gone).empty());
  EXPECT_EQ(offline().count(gone), 0u);
  EXPECT_TRUE(offline().pop_all(gone).empty());
  // Nothing of the old roster leaks into the history either.
  EXPECT_EQ(roster().version(gone), 0);
  const auto history = roster().changes_since(gone, 0);
  ASSERT_TRUE(history.has_value());
  EXPECT_TRUE(history->empty());
  const auto archive = storage().archive().query(gone, ArchiveQuery{});
  ASSERT_TRUE(archive.has_value());
  EXPECT_EQ(archive->count, 0u);
  EXPECT_FALSE(storage().archive().prefs(gone).has_value());

  for (const auto* owner : {"bob@example.org", "alice@example.net"}) {
    EXPECT_EQ(roster().get(owner).items.size(), 1u) << owner;
    EXPECT_EQ(roster().version(owner), 3) << owner;
    EXPECT_EQ(roster().pending_in(owner).size(), 1u) << owner;
    EXPECT_EQ(offline().count(owner), 1u) << owner;
    EXPECT_EQ(storage().archive().query(owner, ArchiveQuery{})->count, 1u) << owner;
    EXPECT_TRUE(storage().archive().prefs(owner).has_value()) << owner;
  }
  EXPECT_TRUE(accounts().find("alice", "example.net").has_value());
}

// ---- RosterStore -------------------------------------------------------------

TEST_P(StorageConformance, UnknownOwnerHasAnEmptyRosterAtVersionZero) {
  const auto empty = roster().get("alice@example.org");
  EXPECT_EQ(empty.version, 0);
  EXPECT_TRUE(empty.items.empty());
  EXPECT_EQ(roster().version("alice@example.org"), 0);
  EXPECT_FALSE(roster().get_item("alice@example.org", "bob@example.net").has_value());
  const auto none = roster().changes_since("alice@example.org", 0);
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(roster().changes_since("alice@example.org", 1).has_value());
  EXPECT_FALSE(roster().changes_since("alice@example.org", -1).has_value());
  EXPECT_TRUE(roster().pending_in("alice@example.org").empty());
}

TEST_P(StorageConformance, PutItemInsertsAndEachChangeRaisesTheVersion) {
  const std::string owner = "alice@example.org";
  const auto bob = item("bob@example.net", "Bob", Subscription::both, {"Friends", "Work"});
  const auto carol = item("carol@example.net", "", Subscription::to);
  const auto v1 = roster().put_item(owner, bob);
  const auto v2 = roster().put_item(owner, carol);
  EXPECT_GT(v1, 0);
  EXPECT_GT(v2, v1);
  EXPECT_EQ(roster().version(owner), v2);
  const auto current = roster().get(owner);
  EXPECT_EQ(current.version, v2);
  EXPECT_EQ(sorted_by_jid(current.items), (std::vector<RosterItem>{bob, carol}));
  EXPECT_EQ(roster().get_item(owner, "bob@example.net"), bob);
  EXPECT_EQ(roster().get_item(owner, "carol@example.net"), carol);
}

TEST_P(StorageConformance, PutItemReplacesAnExistingItemWhole) {
  const std::string owner = "alice@example.org";
  roster().put_item(owner, item("bob@example.net", "Bob", Subscription::none, {"A", "B", "C"}));
  roster().put_item(owner, item("carol@example.net"));
  auto updated = item("bob@example.net", "Robert", Subscription::from, {"D"});
  updated.ask = true;
  updated.approved = true;
  const auto version = roster().put_item(owner, updated);
  EXPECT_EQ(version, 3);
  const auto current = roster().get(owner);
  ASSERT_EQ(current.items.size(), 2u);
  EXPECT_EQ(roster().get_item(owner, "bob@example.net"), updated);

  // Back to no name, no groups, no flags.
  const auto plain = item("bob@example.net");
  roster().put_item(owner, plain);
  EXPECT_EQ(roster().get_item(owner, "bob@example.net"), plain);
}

TEST_P(StorageConformance, EverySubscriptionStateAndFlagRoundTrips) {
  const std::string owner = "alice@example.org";
  int n = 0;
  for (const auto subscription :
       {Subscription::none, Subscription::to, Subscription::from, Subscription::both}) {
    for (const bool ask : {false, true}) {
      for (const bool approved : {false, true}) {
        auto contact = item("contact" + std::to_string(n++) + "@example.net", "n", subscription);
        contact.ask = ask;
        contact.approved = approved;
        roster().put_item(owner, contact);
        EXPECT_EQ(roster().get_item(owner, contact.jid), contact);
      }
    }
  }
  EXPECT_EQ(roster().get(owner).items.size(), 16u);
}

TEST_P(StorageConformance, GroupsKeepTheirOrderWithoutDuplicates) {
  const std::string owner = "alice@example.org";
  roster().put_item(owner, item("bob@example.net", "", Subscription::none,
                                {"Zeta", "Alpha", "Zeta", "Mid", "Alpha", "zeta"}));
  const auto stored = roster().get_item(owner, "bob@example.net");
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->groups, (std::vector<std::string>{"Zeta", "Alpha", "Mid", "zeta"}));
  EXPECT_EQ(roster().get(owner).items.at(0).groups, stored->groups);
  const auto changes = roster().changes_since(owner, 0);
  ASSERT_TRUE(changes.has_value());
  ASSERT_EQ(changes->size(), 1u);
  EXPECT_EQ(changes->front().item.groups, stored->groups);
}

TEST_P(StorageConformance, RemoveItemRaisesTheVersionAndForgetsTheItem) {
  const std::string owner = "alice@example.org";
  roster().put_item(owner, item("bob@example.net", "Bob", Subscription::both, {"G"}));
  roster().put_item(owner, item("carol@example.net"));
  const auto version = roster().remove_item(owner, "bob@example.net");
  EXPECT_EQ(version, 3);
  EXPECT_EQ(roster().version(owner), 3);
  EXPECT_FALSE(roster().get_item(owner, "bob@example.net").has_value());
  const auto current = roster().get(owner);
  EXPECT_EQ(current.version, 3);
  EXPECT_EQ(current.items, std::vector<RosterItem>{item("carol@example.net")});
}

TEST_P(StorageConformance, RemoveMissingItemIsEmptyAndChangesNothing) {
  const std::string owner = "alice@example.org";
  EXPECT_FALSE(roster().remove_item(owner, "bob@example.net").has_value());
  EXPECT_EQ(roster().version(owner), 0);
  roster().put_item(owner, item("bob@example.net"));
  EXPECT_FALSE(roster().remove_item(owner, "carol@example.net").has_value());
  ASSERT_TRUE(roster().remove_item(owner, "bob@example.net").has_value());
  EXPECT_FALSE(roster().remove_item(owner, "bob@example.net").has_value());
  EXPECT_EQ(roster().version(owner), 2);
}

TEST_P(StorageConformance, RostersOfDifferentOwnersAreIndependent) {
  roster().put_item("alice@example.org", item("carol@example.net", "for alice"));
  roster().put_item("alice@example.org", item("dave@example.net"));
  roster().put_item("bob@example.org", item("carol@example.net", "for bob"));
  EXPECT_EQ(roster().version("alice@example.org"), 2);
  EXPECT_EQ(roster().version("bob@example.org"), 1);
  EXPECT_EQ(roster().get_item("bob@example.org", "carol@example.net")->name, "for bob");
  ASSERT_TRUE(roster().remove_item("alice@example.org", "carol@example.net").has_value());
  EXPECT_TRUE(roster().get_item("bob@example.org", "carol@example.net").has_value());
  EXPECT_EQ(roster().version("bob@example.org"), 1);
  EXPECT_FALSE(roster().remove_item("bob@example.org", "dave@example.net").has_value());
}

TEST_P(StorageConformance, ChangesSinceGivesLatestStatesAndRemovalsAfterTheVersion) {
  const std::string owner = "alice@example.org";
  roster().put_item(owner, item("a@x.example", "A"));                              // 1
  roster().put_item(owner, item("b@x.example", "B"));                              // 2
  roster().put_item(owner, item("c@x.example", "C"));                              // 3
  roster().put_item(owner, item("a@x.example", "A2", Subscription::both, {"G"}));  // 4
  ASSERT_EQ(roster().remove_item(owner, "b@x.example"), 5);                        // 5
  roster().put_item(owner, item("d@x.example", "D"));                              // 6

  const auto after2 = changes_by_jid(owner, 2);
  ASSERT_EQ(after2.size(), 4u);
  EXPECT_FALSE(after2.at("a@x.example").removed);
  EXPECT_EQ(after2.at("a@x.example").item, item("a@x.example", "A2", Subscription::both, {"G"}));
  EXPECT_TRUE(after2.at("b@x.example").removed);
  EXPECT_EQ(after2.at("c@x.example").item, item("c@x.example", "C"));
  EXPECT_EQ(after2.at("d@x.example").item, item("d@x.example", "D"));

  const auto after4 = changes_by_jid(owner, 4);
  ASSERT_EQ(after4.size(), 2u);
  EXPECT_TRUE(after4.at("b@x.example").removed);
  EXPECT_FALSE(after4.at("d@x.example").removed);

  const auto after5 = changes_by_jid(owner, 5);
  ASSERT_EQ(after5.size(), 1u);
  EXPECT_TRUE(after5.contains("d@x.example"));

  const auto from_start = changes_by_jid(owner, 0);
  EXPECT_EQ(from_start.size(), 4u);
  EXPECT_TRUE(from_start.at("b@x.example").removed);

  const auto current = roster().changes_since(owner, 6);
  ASSERT_TRUE(current.has_value());
  EXPECT_TRUE(current->empty());
  EXPECT_FALSE(roster().changes_since(owner, 7).has_value());
  EXPECT_FALSE(roster().changes_since(owner, -1).has_value());
}

TEST_P(StorageConformance, ChangesSinceListsChangesInVersionOrder) {
  const std::string owner = "alice@example.org";
  roster().put_item(owner, item("z@x.example"));
  roster().put_item(owner, item("m@x.example"));
  roster().put_item(owner, item("a@x.example"));
  roster().put_item(owner, item("z@x.example", "again"));
  const auto changes = roster().changes_since(owner, 1);
  ASSERT_TRUE(changes.has_value());
  std::vector<std::string> jids;
  for (const auto& change : *changes) jids.push_back(change.item.jid);
  EXPECT_EQ(jids, (std::vector<std::string>{"m@x.example", "a@x.example", "z@x.example"}));
}

TEST_P(StorageConformance, RemovalIsReportedWithOnlyTheJid) {
  const std::string owner = "alice@example.org";
  auto bob = item("bob@example.net", "Bob", Subscription::both, {"G"});
  bob.ask = true;
  roster().put_item(owner, bob);
  roster().remove_item(owner, "bob@example.net");
  const auto changes = changes_by_jid(owner, 1);
  ASSERT_EQ(changes.size(), 1u);
  const auto& removal = changes.at("bob@example.net");
  EXPECT_TRUE(removal.removed);
  EXPECT_EQ(removal.item.jid, "bob@example.net");
}

TEST_P(StorageConformance, ReaddingARemovedItemReportsItPresent) {
  const std::string owner = "alice@example.org";
  roster().put_item(owner, item("bob@example.net", "Bob"));  // 1
  roster().remove_item(owner, "bob@example.net");            // 2
  const auto readded = item("bob@example.net", "Bobby", Subscription::to, {"New"});
  EXPECT_EQ(roster().put_item(owner, readded), 3);

  for (const std::int64_t since : {0, 1, 2}) {
    const auto changes = changes_by_jid(owner, since);
    ASSERT_EQ(changes.size(), 1u) << since;
    EXPECT_FALSE(changes.at("bob@example.net").removed) << since;
    EXPECT_EQ(changes.at("bob@example.net").item, readded) << since;
  }
  EXPECT_EQ(roster().get_item(owner, "bob@example.net"), readded);
  EXPECT_EQ(roster().get(owner).items, std::vector<RosterItem>{readded});
}

TEST_P(StorageConformance, UnicodeJidsNamesAndGroupsRoundTrip) {
  const std::string owner = "\xe6\x97\xa5\xe6\x9c\xac@b\xc3\xbc\x63her.example";
  const auto contact = item(
      "\xd0\xbc\xd0\xb8\xd1\x80@\xd0\xbf\xd1\x80\xd0\xb8\xd0\xbc\xd0\xb5\xd1\x80.example",
      "\xf0\x9f\x98\x80 Smile", Subscription::both, {"\xe5\x8f\x8b\xe9\x81\x94", "Caf\xc3\xa9"});
  roster().put_item(owner, contact);
  EXPECT_EQ(roster().get_item(owner, contact.jid), contact);
  EXPECT_EQ(roster().get(owner).items, std::vector<RosterItem>{contact});
  roster().add_pending_in(owner, contact.jid, "<presence>\xe2\x9c\x93</presence>");
  ASSERT_EQ(roster().pending_in(owner).size(), 1u);
  EXPECT_EQ(roster().pending_in(owner)[0].stanza, "<presence>\xe2\x9c\x93</presence>");
  EXPECT_EQ(roster().remove_item(owner, contact.jid), 2);
}

TEST_P(StorageConformance, PendingSubscriptionsAreKeptInArrivalOrder) {
  const std::string owner = "alice@example.org";
  roster().add_pending_in(owner, "bob@example.net",
                          "<presence from='bob@example.net' type='subscribe'/>");
  roster().add_pending_in(owner, "carol@example.net",
                          "<presence from='carol@example.net' type='subscribe'/>");
  const auto pending = roster().pending_in(owner);
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].from, "bob@example.net");
  EXPECT_EQ(pending[0].stanza, "<presence from='bob@example.net' type='subscribe'/>");
  EXPECT_EQ(pending[1].from, "carol@example.net");
  // Pending requests are not part of the versioned roster.
  EXPECT_EQ(roster().version(owner), 0);
  EXPECT_TRUE(roster().get(owner).items.empty());
}

TEST_P(StorageConformance, RepeatedPendingSubscriptionReplacesTheEarlierOne) {
  const std::string owner = "alice@example.org";
  roster().add_pending_in(owner, "bob@example.net", "<presence id='1'/>");
  roster().add_pending_in(owner, "carol@example.net", "<presence id='2'/>");
  roster().add_pending_in(owner, "bob@example.net", "<presence id='3'/>");
  const auto pending = roster().pending_in(owner);
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].from, "carol@example.net");
  EXPECT_EQ(pending[1].from, "bob@example.net");
  EXPECT_EQ(pending[1].stanza, "<presence id='3'/>");
}

TEST_P(StorageConformance, RemovePendingSubscription) {
  const std::string owner = "alice@example.org";
  EXPECT_FALSE(roster().remove_pending_in(owner, "bob@example.net"));
  roster().add_pending_in(owner, "bob@example.net", "<presence/>");
  roster().add_pending_in(owner, "carol@example.net", "<presence/>");
  roster().add_pending_in("zed@example.org", "bob@example.net", "<presence/>");
  EXPECT_FALSE(roster().remove_pending_in(owner, "dave@example.net"));
  EXPECT_TRUE(roster().remove_pending_in(owner, "bob@example.net"));
  EXPECT_FALSE(roster().remove_pending_in(owner, "bob@example.net"));
  const auto pending = roster().pending_in(owner);
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].from, "carol@example.net");
  EXPECT_EQ(roster().pending_in("zed@example.org").size(), 1u);
}

TEST_P(StorageConformance, PendingSubscriptionsSurviveRosterChanges) {
  const std::string owner = "alice@example.org";
  roster().add_pending_in(owner, "bob@example.net", "<presence/>");
  roster().put_item(owner, item("bob@example.net"));
  roster().remove_item(owner, "bob@example.net");
  EXPECT_EQ(roster().pending_in(owner).size(), 1u);
}

// ---- OfflineStore --------------------------------------------------------------

TEST_P(StorageConformance, OfflineMessagesComeBackInOrderAndAreDeleted) {
  const std::string owner = "alice@example.org";
  ASSERT_TRUE(offline().push(owner, "<message id='1'/>", 10));
  ASSERT_TRUE(offline().push(owner, "<message id='2'/>", 10));
  ASSERT_TRUE(offline().push(owner, "<message id='3'/>", 10));
  EXPECT_EQ(offline().count(owner), 3u);
  EXPECT_EQ(
      offline().pop_all(owner),
      (std::vector<std::string>{"<message id='1'/>", "<message id='2'/>", "<message id='3'/>"}));
  EXPECT_EQ(offline().count(owner), 0u);
  EXPECT_TRUE(offline().pop_all(owner).empty());
}

TEST_P(StorageConformance, PopAllOfNobodyIsEmpty) {
  EXPECT_TRUE(offline().pop_all("alice@example.org").empty());
  EXPECT_EQ(offline().count("alice@example.org"), 0u);
}

TEST_P(StorageConformance, OfflineLimitRefusesTheMessageOverIt) {
  const std::string owner = "alice@example.org";
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(offline().push(owner, "<m" + std::to_string(i) + "/>", 3));
  EXPECT_FALSE(offline().push(owner, "<too-many/>", 3));
  EXPECT_EQ(offline().count(owner), 3u);
  // A larger limit lets more in; a smaller one refuses even though fewer were allowed before.
  EXPECT_TRUE(offline().push(owner, "<m3/>", 4));
  EXPECT_FALSE(offline().push(owner, "<m4/>", 2));
  EXPECT_EQ(offline().pop_all(owner),
            (std::vector<std::string>{"<m0/>", "<m1/>", "<m2/>", "<m3/>"}));
  EXPECT_TRUE(offline().push(owner, "<after/>", 3));
  EXPECT_EQ(offline().count(owner), 1u);
}

TEST_P(StorageConformance, OfflineLimitZeroStoresNothing) {
  EXPECT_FALSE(offline().push("alice@example.org", "<message/>", 0));
  EXPECT_EQ(offline().count("alice@example.org"), 0u);
}

TEST_P(StorageConformance, OfflineLimitCountsPerOwner) {
  ASSERT_TRUE(offline().push("alice@example.org", "<for-alice/>", 1));
  EXPECT_TRUE(offline().push("bob@example.org", "<for-bob/>", 1));
  EXPECT_FALSE(offline().push("alice@example.org", "<again/>", 1));
  EXPECT_EQ(offline().pop_all("bob@example.org"), std::vector<std::string>{"<for-bob/>"});
  EXPECT_EQ(offline().pop_all("alice@example.org"), std::vector<std::string>{"<for-alice/>"});
}

TEST_P(StorageConformance, AThousandOfflineMessagesKeepTheirOrder) {
  const std::string owner = "alice@example.org";
  std::vector<std::string> sent;
  for (int i = 0; i < 1000; ++i) {
    sent.push_back("<message id='" + std::to_string(i) + "'><body>" + std::to_string(i * 7919) +
                   "</body></message>");
    ASSERT_TRUE(offline().push(owner, sent.back(), 1000));
  }
  EXPECT_FALSE(offline().push(owner, "<one-more/>", 1000));
  EXPECT_EQ(offline().count(owner), 1000u);
  EXPECT_EQ(offline().pop_all(owner), sent);
  EXPECT_EQ(offline().count(owner), 0u);
}

TEST_P(StorageConformance, LargeAndUnusualStanzasRoundTrip) {
  const std::string owner = "\xc3\xa9mile@example.org";
  const std::string large = "<message><body>" + std::string(256 * 1024, 'x') + "</body></message>";
  const std::string unicode =
      "<message><body>\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \"'&amp;</body></message>";
  ASSERT_TRUE(offline().push(owner, large, 10));
  ASSERT_TRUE(offline().push(owner, unicode, 10));
  ASSERT_TRUE(offline().push(owner, "", 10));
  EXPECT_EQ(offline().pop_all(owner), (std::vector<std::string>{large, unicode, ""}));
}

// ---- concurrency -------------------------------------------------------------

TEST_P(StorageConformance, ConcurrentOfflinePushesAreAllCounted) {
  constexpr int threads = 4;
  constexpr int per_thread = 200;
  const std::string owner = "alice@example.org";
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        offline().push(owner, std::to_string(t) + ":" + std::to_string(i), 100000);
      }
    });
  }
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(offline().count(owner), static_cast<std::size_t>(threads * per_thread));
  // Each thread's messages keep that thread's order.
  std::vector<int> next(threads, 0);
  for (const auto& stanza : offline().pop_all(owner)) {
    const auto colon = stanza.find(':');
    const int t = std::stoi(stanza.substr(0, colon));
    EXPECT_EQ(std::stoi(stanza.substr(colon + 1)), next[static_cast<std::size_t>(t)]++);
  }
}

TEST_P(StorageConformance, ConcurrentLimitedPushesNeverExceedTheLimit) {
  constexpr std::size_t limit = 150;
  std::vector<std::thread> workers;
  std::atomic<int> accepted{0};
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        if (offline().push("alice@example.org", "<m/>", limit)) ++accepted;
      }
    });
  }
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(accepted.load(), static_cast<int>(limit));
  EXPECT_EQ(offline().count("alice@example.org"), limit);
}

TEST_P(StorageConformance, ConcurrentRosterChangesGetDistinctVersions) {
  constexpr int threads = 4;
  constexpr int per_thread = 50;
  const std::string owner = "alice@example.org";
  std::vector<std::vector<std::int64_t>> versions(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        const auto jid = "c" + std::to_string(t) + "-" + std::to_string(i % 10) + "@example.net";
        versions[static_cast<std::size_t>(t)].push_back(roster().put_item(
            owner, item(jid, std::to_string(i), Subscription::none, {"G" + std::to_string(t)})));
        roster().get(owner);
        roster().add_pending_in(owner, jid, "<presence/>");
        accounts().create(
            account("user" + std::to_string(t) + "-" + std::to_string(i), "example.org"));
      }
    });
  }
  for (auto& worker : workers) worker.join();
  std::set<std::int64_t> all;
  for (const auto& list : versions) {
    EXPECT_TRUE(std::ranges::is_sorted(list));
    all.insert(list.begin(), list.end());
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(threads * per_thread));
  EXPECT_EQ(roster().version(owner), threads * per_thread);
  EXPECT_EQ(roster().get(owner).items.size(), static_cast<std::size_t>(threads * 10));
  EXPECT_EQ(roster().pending_in(owner).size(), static_cast<std::size_t>(threads * 10));
  EXPECT_EQ(accounts().list("example.org").size(), static_cast<std::size_t>(threads * per_thread));
}

// ---- ArchiveStore ------------------------------------------------------------

ArchivedMessage archived(int n, std::int64_t timestamp,
                         const std::string& with = "bob@example.org") {
  return {"id-" + std::to_string(n), timestamp, with,
          "<message><body>" + std::to_string(n) + "</body></message>"};
}

std::vector<std::string> ids(const ArchivePage& page) {
  std::vector<std::string> result;
  for (const auto& message : page.messages) result.push_back(message.id);
  return result;
}

TEST_P(StorageConformance, ArchiveKeepsMessagesInTimeOrderWithArrivalBreakingTies) {
  auto& archive = storage().archive();
  const std::string owner = "alice@example.org";
  ASSERT_TRUE(archive.append(owner, archived(1, 2000)));
  ASSERT_TRUE(archive.append(owner, archived(2, 1000)));  // older, arrived later
  ASSERT_TRUE(archive.append(owner, archived(3, 2000)));
  EXPECT_FALSE(archive.append(owner, archived(3, 5000)));  // the id is taken
  ASSERT_TRUE(archive.append("carol@example.org", archived(3, 1500)));
  const auto page = archive.query(owner, {});
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(ids(*page), (std::vector<std::string>{"id-2", "id-1", "id-3"}));
  EXPECT_EQ(page->messages.front(), archived(2, 1000));
  EXPECT_TRUE(page->complete);
  EXPECT_EQ(page->count, 3u);
  EXPECT_EQ(archive.query("nobody@example.org", {})->count, 0u);
}

TEST_P(StorageConformance, ArchivePagesForwardAndBackwardWithoutGapsOrRepeats) {
  auto& archive = storage().archive();
  const std::string owner = "alice@example.org";
  for (int n = 0; n < 25; ++n) {
    // Pairs of messages share a timestamp, so the (timestamp, arrival) bound matters.
    ASSERT_TRUE(archive.append(
        owner, archived(n, 1000 + n / 2, n % 3 == 0 ? "carol@example.org" : "bob@example.org")));
  }
  std::vector<std::string> forward;
  ArchiveQuery query;
  query.max = 7;
  for (;;) {
    const auto page = archive.query(owner, query);
    ASSERT_TRUE(page.has_value());
    EXPECT_EQ(page->count, 25u);
    for (const auto& id : ids(*page)) forward.push_back(id);
    if (page->complete) break;
    query.after_id = page->messages.back().id;
  }
  std::vector<std::string> expected;
  for (int n = 0; n < 25; ++n) expected.push_back("id-" + std::to_string(n));
  EXPECT_EQ(forward, expected);

  std::vector<std::string> backward;
  ArchiveQuery from_end;
  from_end.max = 10;
  from_end.last = true;
  for (;;) {
    const auto page = archive.query(owner, from_end);
    ASSERT_TRUE(page.has_value());
    auto page_ids = ids(*page);
    backward.insert(backward.begin(), page_ids.begin(), page_ids.end());
    if (page->complete) break;
    from_end.before_id = page->messages.front().id;
  }
  EXPECT_EQ(backward, expected);

  ArchiveQuery unknown;
  unknown.after_id = "no-such-id";
  EXPECT_FALSE(archive.query(owner, unknown).has_value());
}

TEST_P(StorageConformance, ArchiveFiltersByWithAndInclusiveTimeRange) {
  auto& archive = storage().archive();
  const std::string owner = "alice@example.org";
  for (int n = 0; n < 10; ++n) {
    ASSERT_TRUE(archive.append(
        owner, archived(n, 100 * n, n % 2 == 0 ? "bob@example.org" : "carol@example.org")));
  }
  ArchiveQuery with_carol;
  with_carol.with = "carol@example.org";
  EXPECT_EQ(ids(*archive.query(owner, with_carol)),
            (std::vector<std::string>{"id-1", "id-3", "id-5", "id-7", "id-9"}));
  ArchiveQuery range;
  range.start = 200;
  range.end = 500;
  const auto in_range = archive.query(owner, range);
  EXPECT_EQ(ids(*in_range), (std::vector<std::string>{"id-2", "id-3", "id-4", "id-5"}));
  EXPECT_EQ(in_range->count, 4u);
  range.with = "bob@example.org";
  range.max = 1;
  const auto first = archive.query(owner, range);
  EXPECT_EQ(ids(*first), std::vector<std::string>{"id-2"});
  EXPECT_FALSE(first->complete);
  EXPECT_EQ(first->count, 2u);
  range.after_id = "id-2";
  const auto second = archive.query(owner, range);
  EXPECT_EQ(ids(*second), std::vector<std::string>{"id-4"});
  EXPECT_TRUE(second->complete);
}

TEST_P(StorageConformance, ArchiveTrimKeepsTheNewestAndPrefsAreStored) {
  auto& archive = storage().archive();
  const std::string owner = "alice@example.org";
  for (int n = 0; n < 6; ++n) ASSERT_TRUE(archive.append(owner, archived(n, 10 * (6 - n % 3))));
  // Timestamps 60 50 40 60 50 40: by (time, arrival) id-2 id-5 id-1 id-4 id-0 id-3.
  EXPECT_EQ(archive.trim(owner, 4), 2u);
  EXPECT_EQ(ids(*archive.query(owner, {})),
            (std::vector<std::string>{"id-1", "id-4", "id-0", "id-3"}));
  EXPECT_EQ(archive.trim(owner, 4), 0u);

  EXPECT_FALSE(archive.prefs(owner).has_value());
  const ArchivePrefs prefs{"roster", {"bob@example.org", "carol@example.org"}, {"spam.example"}};
  archive.set_prefs(owner, prefs);
  EXPECT_EQ(archive.prefs(owner), prefs);
  archive.set_prefs(owner, ArchivePrefs{"never", {}, {}});
  EXPECT_EQ(archive.prefs(owner), (ArchivePrefs{"never", {}, {}}));

  archive.remove_owner(owner);
  EXPECT_EQ(archive.query(owner, {})->count, 0u);
  EXPECT_FALSE(archive.prefs(owner).has_value());
}

// ---- MucStore ----------------------------------------------------------------

TEST_P(StorageConformance, MucRoomIsStoredReplacedAndListedByService) {
  auto& muc = storage().muc();
  EXPECT_FALSE(muc.find_room("conference.example.org", "lobby").has_value());
  muc.put_room({"conference.example.org", "lobby", "<config v='1'/>"});
  muc.put_room({"conference.example.org", "attic", "<x>caf\xc3\xa9</x>"});
  muc.put_room({"rooms.example.net", "lobby", "other"});
  muc.put_room({"conference.example.org", "lobby", "<config v='2'/>"});
  EXPECT_EQ(muc.find_room("conference.example.org", "lobby"),
            (MucRoom{"conference.example.org", "lobby", "<config v='2'/>"}));
  const std::vector<MucRoom> expected{{"conference.example.org", "attic", "<x>caf\xc3\xa9</x>"},
                                      {"conference.example.org", "lobby", "<config v='2'/>"}};
  EXPECT_EQ(muc.rooms("conference.example.org"), expected);
  EXPECT_TRUE(muc.rooms("nowhere.example.org").empty());
}

TEST_P(StorageConformance, MucAffiliationsAreSetReplacedRemovedAndGoWithTheRoom) {
  auto& muc = storage().muc();
  const std::string service = "conference.example.org";
  EXPECT_FALSE(muc.set_affiliation(service, "lobby", {"alice@example.org", "owner", ""}));
  muc.put_room({service, "lobby", "c"});
  muc.put_room({service, "other", "c"});
  ASSERT_TRUE(muc.set_affiliation(service, "lobby", {"zed@example.net", "member", ""}));
  ASSERT_TRUE(muc.set_affiliation(service, "lobby", {"alice@example.org", "owner", ""}));
  ASSERT_TRUE(muc.set_affiliation(service, "lobby", {"spam.example", "outcast", "spam"}));
  ASSERT_TRUE(muc.set_affiliation(service, "other", {"bob@example.org", "admin", ""}));
  ASSERT_TRUE(muc.set_affiliation(service, "lobby", {"zed@example.net", "admin", "promoted"}));
  std::vector<MucAffiliation> expected{{"alice@example.org", "owner", ""},
                                       {"spam.example", "outcast", "spam"},
                                       {"zed@example.net", "admin", "promoted"}};
  EXPECT_EQ(muc.affiliations(service, "lobby"), expected);
  ASSERT_TRUE(muc.set_affiliation(service, "lobby", {"spam.example", "none", ""}));
  expected.erase(expected.begin() + 1);
  EXPECT_EQ(muc.affiliations(service, "lobby"), expected);
  muc.put_room({service, "lobby", "changed"});
  EXPECT_EQ(muc.affiliations(service, "lobby"), expected);

  EXPECT_TRUE(muc.remove_room(service, "lobby"));
  EXPECT_FALSE(muc.remove_room(service, "lobby"));
  EXPECT_TRUE(muc.affiliations(service, "lobby").empty());
  muc.put_room({service, "lobby", "again"});
  EXPECT_TRUE(muc.affiliations(service, "lobby").empty());
  EXPECT_EQ(muc.affiliations(service, "other"),
            (std::vector<MucAffiliation>{{"bob@example.org", "admin", ""}}));
}

// ---- listing and copying (parleyctl migrate) ---------------------------------

TEST_P(StorageConformance, DomainsAreThoseWithAccountsSorted) {
  EXPECT_TRUE(accounts().domains().empty());
  ASSERT_TRUE(accounts().create(account("alice", "example.org")));
  ASSERT_TRUE(accounts().create(account("bob", "example.org")));
  ASSERT_TRUE(accounts().create(account("carol", "b\xc3\xbc\x63her.example")));
  ASSERT_TRUE(accounts().create(account("dave", "example.net")));
  EXPECT_EQ(accounts().domains(),
            (std::vector<std::string>{"b\xc3\xbc\x63her.example", "example.net", "example.org"}));
  ASSERT_TRUE(accounts().remove("dave", "example.net"));
  EXPECT_EQ(accounts().domains(),
            (std::vector<std::string>{"b\xc3\xbc\x63her.example", "example.org"}));
}

TEST_P(StorageConformance, RosterOwnersAreThoseWithItemsTombstonesOrPendingRequests) {
  EXPECT_TRUE(roster().owners().empty());
  roster().put_item("zed@example.org", item("a@example.net"));
  roster().put_item("bob@example.org", item("a@example.net"));
  roster().remove_item("bob@example.org", "a@example.net");
  roster().add_pending_in("alice@example.org", "a@example.net", "<presence/>");
  EXPECT_EQ(roster().owners(),
            (std::vector<std::string>{"alice@example.org", "bob@example.org", "zed@example.org"}));
}

TEST_P(StorageConformance, OfflineOwnersAndPeekLeaveTheMessagesInPlace) {
  EXPECT_TRUE(offline().owners().empty());
  ASSERT_TRUE(offline().push("zed@example.org", "<m1/>", 10));
  ASSERT_TRUE(offline().push("alice@example.org", "<m2/>", 10));
  ASSERT_TRUE(offline().push("zed@example.org", "<m3/>", 10));
  EXPECT_EQ(offline().owners(), (std::vector<std::string>{"alice@example.org", "zed@example.org"}));
  EXPECT_EQ(offline().peek_all("zed@example.org"), (std::vector<std::string>{"<m1/>", "<m3/>"}));
  EXPECT_TRUE(offline().peek_all("nobody@example.org").empty());
  EXPECT_EQ(offline().count("zed@example.org"), 2u);
  offline().pop_all("alice@example.org");
  EXPECT_EQ(offline().owners(), std::vector<std::string>{"zed@example.org"});
}

TEST_P(StorageConformance, ArchiveOwnersAreThoseWithMessagesOrPreferences) {
  auto& archive = storage().archive();
  EXPECT_TRUE(archive.owners().empty());
  ASSERT_TRUE(archive.append("zed@example.org", archived(1, 1000)));
  ASSERT_TRUE(archive.append("zed@example.org", archived(2, 2000)));
  archive.set_prefs("bob@example.org", ArchivePrefs{"never", {}, {}});
  ASSERT_TRUE(archive.append("alice@example.org", archived(1, 1000)));
  archive.set_prefs("alice@example.org", ArchivePrefs{"roster", {"x@example.net"}, {}});
  EXPECT_EQ(archive.owners(), (std::vector<std::string>{"alice@example.org", "bob@example.org",
                                                        "zed@example.org"}));
  archive.remove_owner("bob@example.org");
  EXPECT_EQ(archive.owners(), (std::vector<std::string>{"alice@example.org", "zed@example.org"}));
}

TEST_P(StorageConformance, MucServicesAreThoseWithRoomsSorted) {
  auto& muc = storage().muc();
  EXPECT_TRUE(muc.services().empty());
  muc.put_room({"rooms.example.net", "a", ""});
  muc.put_room({"conference.example.org", "b", ""});
  muc.put_room({"conference.example.org", "c", ""});
  EXPECT_EQ(muc.services(),
            (std::vector<std::string>{"conference.example.org", "rooms.example.net"}));
  muc.remove_room("rooms.example.net", "a");
  EXPECT_EQ(muc.services(), std::vector<std::string>{"conference.example.org"});
}

TEST_P(StorageConformance, ImportedRosterKeepsItemsVersionAndAnswersOldVersionsSafely) {
  // The original: 7 changes, one removal, one item changed twice.
  auto source_backend = open("memory:");
  auto& source = source_backend->roster();
  const std::string owner = "alice@example.org";
  auto bob = item("bob@example.net", "Bob", Subscription::both, {"Friends", "Work"});
  bob.approved = true;
  auto carol = item("carol@example.net", "Carol", Subscription::to);
  carol.ask = true;
  source.put_item(owner, item("bob@example.net"));           // 1
  source.put_item(owner, carol);                             // 2
  source.put_item(owner, item("dave@example.net"));          // 3
  source.put_item(owner, item("erin@example.net"));          // 4
  source.remove_item(owner, "dave@example.net");             // 5
  source.put_item(owner, bob);                               // 6
  source.put_item(owner, item("erin@example.net", "Erin"));  // 7
  const auto history = *source.changes_since(owner, 0);

  roster().add_pending_in(owner, "frank@example.net", "<presence/>");
  roster().put_item(owner, item("stale@example.net"));
  roster().import_roster(owner, source.version(owner), history);

  EXPECT_EQ(roster().version(owner), 7);
  const auto copied = roster().get(owner);
  EXPECT_EQ(copied.version, 7);
  EXPECT_EQ(sorted_by_jid(copied.items), sorted_by_jid(source.get(owner).items));
  EXPECT_EQ(roster().get_item(owner, "bob@example.net"), bob);
  EXPECT_FALSE(roster().get_item(owner, "stale@example.net").has_value());
  EXPECT_EQ(roster().pending_in(owner).size(), 1u);
  const auto copied_history = *roster().changes_since(owner, 0);
  ASSERT_EQ(copied_history.size(), history.size());
  for (std::size_t i = 0; i < history.size(); ++i) {
    EXPECT_EQ(copied_history[i].item, history[i].item) << i;
    EXPECT_EQ(copied_history[i].removed, history[i].removed) << i;
  }
  // Every version the original handed out still gets at least what changed
  // after it there.
  for (std::int64_t since = 0; since <= 7; ++since) {
    const auto copy_changes = changes_by_jid(owner, since);
    const auto source_changes = source.changes_since(owner, since);
    ASSERT_TRUE(source_changes.has_value());
    for (const auto& change : *source_changes) {
      ASSERT_TRUE(copy_changes.contains(change.item.jid))
          << "since " << since << ": " << change.item.jid;
      EXPECT_EQ(copy_changes.at(change.item.jid).removed, change.removed) << change.item.jid;
      EXPECT_EQ(copy_changes.at(change.item.jid).item, change.item) << change.item.jid;
    }
  }
  // Later changes carry on from the imported version.
  EXPECT_EQ(roster().put_item(owner, item("gina@example.net")), 8);
  EXPECT_EQ(roster().remove_item(owner, "bob@example.net"), 9);
}

TEST_P(StorageConformance, ImportRefusesAnImpossibleVersionOrARepeatedJid) {
  const std::string owner = "alice@example.org";
  roster().put_item(owner, item("keep@example.net"));
  const std::vector<RosterChange> two{{item("a@example.net"), false},
                                      {item("b@example.net"), true}};
  EXPECT_THROW(roster().import_roster(owner, 1, two), Error);
  const std::vector<RosterChange> repeated{{item("a@example.net"), false},
                                           {item("a@example.net"), false}};
  EXPECT_THROW(roster().import_roster(owner, 5, repeated), Error);
  EXPECT_EQ(roster().version(owner), 1);
  EXPECT_TRUE(roster().get_item(owner, "keep@example.net").has_value());
  roster().import_roster(owner, 0, {});
  EXPECT_EQ(roster().version(owner), 0);
  EXPECT_TRUE(roster().get(owner).items.empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, StorageConformance,
                         ::testing::Values(memory_backend(), sqlite_backend(), mysql_backend()),
                         [](const ::testing::TestParamInfo<BackendKind>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace parley::storage
