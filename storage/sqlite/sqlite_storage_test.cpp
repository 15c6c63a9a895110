// What is specific to the SQLite backend: the file, its schema and
// migrations, its pragmas, and how SQLite failures surface.
#include "storage/sqlite/sqlite_storage.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "storage/test_support.hpp"

namespace parley::storage::sqlite {
namespace {

// Runs SQL on the file through a separate, plain SQLite connection and
// returns the first column of the first row (empty when there is none).
std::string raw_query(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    ADD_FAILURE() << "cannot open " << path;
    return {};
  }
  sqlite3_busy_timeout(db, 5000);
  std::string result;
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
  } else {
    const int code = sqlite3_step(statement);
    if (code == SQLITE_ROW) {
      const auto* text = sqlite3_column_text(statement, 0);
      if (text != nullptr) result = reinterpret_cast<const char*>(text);
    } else if (code != SQLITE_DONE) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
    }
  }
  sqlite3_finalize(statement);
  sqlite3_close(db);
  return result;
}

std::string open_error(const std::string& path,
                       std::span<const sql::Migration> migrations = sql::migrations()) {
  try {
    open(path, migrations);
  } catch (const Error& error) {
    return error.what();
  }
  return "no error";
}

RosterItem contact(const std::string& jid) {
  RosterItem item;
  item.jid = jid;
  return item;
}

const std::string latest_version = std::to_string(sql::migrations().back().version);

class SqliteStorage : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  std::string path_ = dir_.file("parley.db");
};

TEST_F(SqliteStorage, FreshFileGetsTheWholeSchema) {
  open(path_);
  EXPECT_EQ(raw_query(path_, "SELECT version FROM schema_version"), latest_version);
  EXPECT_EQ(raw_query(path_, "SELECT COUNT(*) FROM schema_version"), "1");
  for (const auto* table : {"accounts", "account_credentials", "roster_owners", "roster_items",
                            "roster_groups", "roster_pending_in", "offline_messages"}) {
    EXPECT_EQ(
        raw_query(
            path_,
            std::string("SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = '") +
                table + "'"),
        "1")
        << table;
  }
}

TEST_F(SqliteStorage, UsesWriteAheadLogging) {
  auto storage = open(path_);
  // WAL is a property of the file, visible to any other connection.
  EXPECT_EQ(raw_query(path_, "PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteStorage, ReopeningKeepsEverything) {
  const Account alice{
      "alice", "example.org", {"salt1", 4096, "sk1", "vk1"}, {"salt2", 8192, "sk2", "vk2"}, 42};
  {
    auto storage = open(path_);
    ASSERT_TRUE(storage->accounts().create(alice));
    storage->roster().put_item(
        "alice@example.org",
        RosterItem{"bob@example.net", "Bob", Subscription::both, false, true, {"Friends", "Work"}});
    storage->roster().put_item("alice@example.org", contact("carol@example.net"));
    storage->roster().remove_item("alice@example.org", "carol@example.net");
    storage->roster().add_pending_in("alice@example.org", "dave@example.net", "<presence/>");
    ASSERT_TRUE(storage->offline().push("alice@example.org", "<message id='1'/>", 10));
    ASSERT_TRUE(storage->offline().push("alice@example.org", "<message id='2'/>", 10));
    storage->flush();
  }
  auto storage = open(path_);
  EXPECT_EQ(storage->accounts().find("alice", "example.org"), alice);
  const auto roster = storage->roster().get("alice@example.org");
  EXPECT_EQ(roster.version, 3);
  ASSERT_EQ(roster.items.size(), 1u);
  EXPECT_EQ(roster.items[0].groups, (std::vector<std::string>{"Friends", "Work"}));
  const auto changes = storage->roster().changes_since("alice@example.org", 2);
  ASSERT_TRUE(changes.has_value());
  ASSERT_EQ(changes->size(), 1u);
  EXPECT_TRUE(changes->front().removed);
  EXPECT_EQ(storage->roster().pending_in("alice@example.org").size(), 1u);
  EXPECT_EQ(storage->offline().pop_all("alice@example.org"),
            (std::vector<std::string>{"<message id='1'/>", "<message id='2'/>"}));
  // Versions continue from where they were.
  EXPECT_EQ(storage->roster().put_item("alice@example.org", contact("erin@example.net")), 4);
}

TEST_F(SqliteStorage, DataIsVisibleToOtherConnectionsWithoutFlush) {
  auto storage = open(path_);
  ASSERT_TRUE(storage->offline().push("alice@example.org", "<m/>", 10));
  EXPECT_EQ(raw_query(path_, "SELECT COUNT(*) FROM offline_messages"), "1");
}

TEST_F(SqliteStorage, CredentialsAreStoredAsKeysPerHashNeverAPassword) {
  auto storage = open(path_);
  ASSERT_TRUE(storage->accounts().create(Account{"alice",
                                                 "example.org",
                                                 {"s1", 4096, "stored1", "server1"},
                                                 {"s2", 4096, "stored2", "server2"},
                                                 1}));
  EXPECT_EQ(
      raw_query(path_,
                "SELECT group_concat(hash_name) FROM (SELECT hash_name FROM account_credentials"
                " ORDER BY hash_name)"),
      "sha1,sha256");
  EXPECT_EQ(raw_query(path_, "SELECT typeof(stored_key) FROM account_credentials LIMIT 1"), "blob");
}

TEST_F(SqliteStorage, FlushEmptiesTheWriteAheadLog) {
  auto storage = open(path_);
  for (int i = 0; i < 50; ++i)
    ASSERT_TRUE(storage->offline().push("alice@example.org", std::string(1000, 'x'), 100));
  const auto wal = path_ + "-wal";
  ASSERT_TRUE(std::filesystem::exists(wal));
  EXPECT_GT(std::filesystem::file_size(wal), 0u);
  storage->flush();
  EXPECT_EQ(std::filesystem::file_size(wal), 0u);
  EXPECT_EQ(storage->offline().count("alice@example.org"), 50u);
}

TEST_F(SqliteStorage, NewerSchemaVersionIsRefused) {
  open(path_);
  raw_query(path_, "UPDATE schema_version SET version = 999");
  const auto message = open_error(path_);
  EXPECT_NE(message.find("schema version 999 is newer"), std::string::npos) << message;
  EXPECT_NE(message.find(path_), std::string::npos) << message;
  EXPECT_EQ(raw_query(path_, "SELECT version FROM schema_version"), "999");
}

TEST_F(SqliteStorage, FileThatIsNotADatabaseIsRefused) {
  {
    std::ofstream file(path_);
    file << "This is a configuration file, not a database.\n" << std::string(4096, '#');
  }
  const auto message = open_error(path_);
  EXPECT_NE(message.find("file is not a database"), std::string::npos) << message;
  EXPECT_NE(message.find(path_), std::string::npos) << message;
}

TEST_F(SqliteStorage, MissingDirectoryIsRefused) {
  const auto message = open_error(dir_.file("missing/parley.db"));
  EXPECT_NE(message.find("directory '" + dir_.file("missing") + "' does not exist"),
            std::string::npos)
      << message;
}

TEST_F(SqliteStorage, DirectoryAsPathIsRefused) {
  const auto message = open_error(dir_.path().string());
  EXPECT_NE(message.find("is a directory"), std::string::npos) << message;
}

TEST_F(SqliteStorage, PathUnderAFileIsRefused) {
  { std::ofstream file(dir_.file("plain")); }
  const auto message = open_error(dir_.file("plain/parley.db"));
  EXPECT_NE(message.find("is not a directory"), std::string::npos) << message;
}

TEST_F(SqliteStorage, MigrationsAreAppliedIncrementallyKeepingData) {
  const auto released = sql::migrations();
  {
    auto storage = open(path_, released);
    ASSERT_TRUE(storage->offline().push("alice@example.org", "<kept/>", 10));
  }
  std::vector<sql::Migration> upgraded(released.begin(), released.end());
  const auto next = upgraded.back().version + 1;
  upgraded.push_back({next,
                      "notes",
                      {"CREATE TABLE notes (owner {bare_jid} NOT NULL, body {text}) {table}",
                       "INSERT INTO notes (owner, body) VALUES ('x', 'added by the migration')"}});
  auto storage = open(path_, upgraded);
  EXPECT_EQ(raw_query(path_, "SELECT version FROM schema_version"), std::to_string(next));
  EXPECT_EQ(raw_query(path_, "SELECT body FROM notes"), "added by the migration");
  EXPECT_EQ(storage->offline().pop_all("alice@example.org"), std::vector<std::string>{"<kept/>"});
}

TEST_F(SqliteStorage, FailedMigrationIsRolledBackAndReported) {
  open(path_);
  std::vector<sql::Migration> broken(sql::migrations().begin(), sql::migrations().end());
  const auto next = broken.back().version + 1;
  broken.push_back({next,
                    "half applied",
                    {"CREATE TABLE half (a {bigint})", "CREATE TABLE accounts (a {bigint})"}});
  const auto message = open_error(path_, broken);
  EXPECT_NE(message.find("migration " + std::to_string(next) + " (half applied) failed"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("already exists"), std::string::npos) << message;
  EXPECT_EQ(raw_query(path_, "SELECT version FROM schema_version"), latest_version);
  EXPECT_EQ(raw_query(path_, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'half'"), "0");
  EXPECT_EQ(open(path_)->backend_name(), "sqlite");
}

TEST_F(SqliteStorage, MigrationWithUnknownPlaceholderIsRefusedAndRolledBack) {
  open(path_);
  std::vector<sql::Migration> typo(sql::migrations().begin(), sql::migrations().end());
  typo.push_back({typo.back().version + 1,
                  "typo",
                  {"CREATE TABLE t (a {bigint})", "CREATE TABLE u (a {bignit})"}});
  const auto message = open_error(path_, typo);
  EXPECT_NE(message.find("{bignit} is unknown"), std::string::npos) << message;
  EXPECT_EQ(raw_query(path_, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 't'"), "0");
}

TEST_F(SqliteStorage, TwoProcessesSharingTheFileLoseNoWrites) {
  // Two backends on one file stand for two processes (the server and an
  // admin tool): each waits for the other's write lock instead of failing.
  auto first = open(path_);
  auto second = open(path_);
  std::vector<std::thread> writers;
  for (auto* storage : {first.get(), second.get(), first.get(), second.get()}) {
    writers.emplace_back([storage] {
      for (int i = 0; i < 100; ++i) {
        storage->offline().push("alice@example.org", "<m/>", 1000);
        storage->roster().put_item("alice@example.org", contact("c" + std::to_string(i) + "@x"));
      }
    });
  }
  for (auto& writer : writers) writer.join();
  EXPECT_EQ(first->offline().count("alice@example.org"), 400u);
  EXPECT_EQ(second->offline().count("alice@example.org"), 400u);
  EXPECT_EQ(second->roster().version("alice@example.org"), 400);
  EXPECT_EQ(first->roster().get("alice@example.org").items.size(), 100u);
}

TEST_F(SqliteStorage, MisnumberedMigrationListIsRefused) {
  std::vector<sql::Migration> skipping(sql::migrations().begin(), sql::migrations().end());
  skipping.push_back(
      {skipping.back().version + 2, "skips a number", {"CREATE TABLE t (a {bigint})"}});
  const auto message = open_error(path_, skipping);
  EXPECT_NE(message.find("must be numbered"), std::string::npos) << message;
}

TEST_F(SqliteStorage, SqliteFailuresBecomeStorageErrorsWithSqlitesMessage) {
  auto storage = open(path_);
  ASSERT_TRUE(storage->offline().push("alice@example.org", "<m/>", 10));
  raw_query(path_, "DROP TABLE offline_messages");
  try {
    storage->offline().count("alice@example.org");
    FAIL() << "expected storage::Error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("no such table: offline_messages"), std::string::npos)
        << error.what();
  }
  // The failure leaves the connection usable for everything else.
  EXPECT_TRUE(storage->accounts().create(Account{"alice", "example.org", {}, {}, 1}));
  EXPECT_THROW(storage->offline().push("alice@example.org", "<m/>", 10), Error);
  EXPECT_TRUE(storage->accounts().find("alice", "example.org").has_value());
}

TEST_F(SqliteStorage, ForeignKeysAreEnforced) {
  auto storage = open(path_);
  storage->roster().put_item(
      "alice@example.org",
      RosterItem{"bob@example.net", "", Subscription::none, false, false, {"G"}});
  ASSERT_TRUE(storage->accounts().create(Account{"alice", "example.org", {}, {}, 1}));
  ASSERT_TRUE(storage->accounts().remove("alice", "example.org"));
  EXPECT_EQ(raw_query(path_, "SELECT COUNT(*) FROM roster_groups"), "0");
  EXPECT_EQ(raw_query(path_, "SELECT COUNT(*) FROM roster_items"), "0");
  EXPECT_EQ(raw_query(path_, "SELECT COUNT(*) FROM account_credentials"), "0");
}

}  // namespace
}  // namespace parley::storage::sqlite
