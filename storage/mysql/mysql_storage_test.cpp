// What is specific to the MySQL backend: its URI, its schema in a real
// MariaDB, and how it lives through a database outage. The behaviour shared
// with the other backends is in conformance_test.cpp.
#include "storage/mysql/mysql_storage.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "storage/mysql/connection.hpp"
#include "storage/mysql/test_environment.hpp"

namespace parley::storage::mysql {
namespace {

using testing::MariadbEnvironment;

std::string uri_error(std::string_view uri) {
  try {
    parse_uri(uri);
  } catch (const Error& error) {
    return error.what();
  }
  return "no error";
}

TEST(MysqlUri, FullFormWithPercentEncodedParts) {
  const auto endpoint = parse_uri("mysql://par%40ley:p%3Aw%2F%25%40x@db.example.org:3307/parley%2Dprod?pool=9");
  EXPECT_EQ(endpoint.user, "par@ley");
  EXPECT_EQ(endpoint.password, "p:w/%@x");
  EXPECT_EQ(endpoint.host, "db.example.org");
  EXPECT_EQ(endpoint.port, 3307u);
  EXPECT_EQ(endpoint.database, "parley-prod");
  EXPECT_EQ(endpoint.pool_size, 9u);
  EXPECT_EQ(endpoint.describe(), "par@ley@db.example.org:3307/parley-prod");
}

TEST(MysqlUri, DefaultsAndIpv6) {
  const auto plain = parse_uri("mysql://parley@127.0.0.1/parley");
  EXPECT_EQ(plain.password, "");
  EXPECT_EQ(plain.port, 3306u);
  EXPECT_EQ(plain.pool_size, 4u);
  const auto ipv6 = parse_uri("mysql://u:p@[::1]:3310/db");
  EXPECT_EQ(ipv6.host, "::1");
  EXPECT_EQ(ipv6.port, 3310u);
  EXPECT_EQ(ipv6.describe(), "u@[::1]:3310/db");
  // An unencoded '@' in the password: the last '@' ends the credentials.
  EXPECT_EQ(parse_uri("mysql://u:p@ss@host/db").password, "p@ss");
}

TEST(MysqlUri, MistakesAreNamed) {
  EXPECT_NE(uri_error("mysql://u:p@host/").find("empty database"), std::string::npos);
  EXPECT_NE(uri_error("mysql://:p@host/db").find("empty user"), std::string::npos);
  EXPECT_NE(uri_error("mysql://u:p@:3306/db").find("empty host"), std::string::npos);
  EXPECT_NE(uri_error("mysql://u:p@host:http/db").find("port must be a number"), std::string::npos);
  EXPECT_NE(uri_error("mysql://u:p@host:70000/db").find("port must be a number"), std::string::npos);
  EXPECT_NE(uri_error("mysql://u:p%4@host/db").find("two hex digits"), std::string::npos);
  EXPECT_NE(uri_error("mysql://u:p@host/db?pool=0").find("pool must be a number"), std::string::npos);
  EXPECT_NE(uri_error("mysql://u:p@host/db?tls=1").find("unknown option 'tls'"), std::string::npos);
  EXPECT_NE(uri_error("mysql://u:p@[::1/db").find("unterminated"), std::string::npos);
}

class MysqlStorage : public ::testing::Test {
 protected:
  static std::string fresh_database() {
    static int databases = 0;
    return MariadbEnvironment::server().create_database("backend_" + std::to_string(++databases));
  }
  testing::MariadbServer& server() { return MariadbEnvironment::server(); }
};

TEST_F(MysqlStorage, FreshDatabaseGetsTheWholeSchemaInUtf8mb4) {
  const auto uri = fresh_database();
  open(uri);
  const auto database = uri.substr(uri.rfind('/') + 1);
  EXPECT_EQ(server().query("SELECT version FROM " + database + ".schema_version"),
            std::to_string(sql::migrations().back().version) + "\n");
  int tables = 1;  // schema_version
  for (const auto& migration : sql::migrations()) {
    for (const auto statement : migration.statements) tables += statement.starts_with("CREATE TABLE");
  }
  EXPECT_EQ(server().query("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '" +
                           database + "' AND engine = 'InnoDB'" +
                           " AND table_collation LIKE 'utf8mb4%'"),
            std::to_string(tables) + "\n");
  // Opening again applies nothing and keeps the data.
  open(uri)->offline().push("alice@example.org", "<m>\xf0\x9f\x98\x80</m>", 5);
  EXPECT_EQ(open(uri)->offline().pop_all("alice@example.org"),
            std::vector<std::string>{"<m>\xf0\x9f\x98\x80</m>"});
}

TEST_F(MysqlStorage, NewerSchemaVersionIsRefused) {
  const auto uri = fresh_database();
  open(uri);
  const auto database = uri.substr(uri.rfind('/') + 1);
  server().admin("UPDATE " + database + ".schema_version SET version = 999");
  try {
    open(uri);
    FAIL() << "opened a database from the future";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("schema version 999 is newer"), std::string::npos)
        << error.what();
  }
}

TEST_F(MysqlStorage, WrongPasswordIsAnErrorWithoutThePassword) {
  const auto uri = fresh_database();
  const auto wrong = "mysql://parley:not-it@127.0.0.1:" + std::to_string(server().port()) +
                     uri.substr(uri.rfind('/'));
  try {
    open(wrong);
    FAIL() << "connected with a wrong password";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("cannot connect"), std::string::npos) << message;
    EXPECT_EQ(message.find("not-it"), std::string::npos) << message;
  }
}

TEST_F(MysqlStorage, OneConnectionPoolServesManyThreads) {
  auto storage = open(fresh_database() + "?pool=1");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i)
        storage->offline().push("alice@example.org", std::to_string(t), 1000);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(storage->offline().count("alice@example.org"), 80u);
}

TEST_F(MysqlStorage, OutageGivesErrorsQuicklyAndTheBackendRecoversByItself) {
  auto storage = open(fresh_database());
  ASSERT_TRUE(storage->accounts().create(Account{"alice", "example.org", {}, {}, 1}));
  ASSERT_TRUE(storage->offline().push("alice@example.org", "<before/>", 10));
  storage->roster().put_item("alice@example.org", RosterItem{"bob@example.net", "Bob", {}, false, false, {}});

  server().stop();
  const auto started = std::chrono::steady_clock::now();
  EXPECT_THROW(storage->accounts().find("alice", "example.org"), Error);
  EXPECT_THROW(storage->offline().push("alice@example.org", "<during/>", 10), Error);
  EXPECT_THROW(storage->roster().get("alice@example.org"), Error);
  EXPECT_THROW(storage->accounts().create(Account{"bob", "example.org", {}, {}, 1}), Error);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));

  server().start();
  // The first call after the restart succeeds: dead pooled connections are
  // replaced without the caller noticing.
  EXPECT_TRUE(storage->accounts().find("alice", "example.org").has_value());
  EXPECT_EQ(storage->roster().get("alice@example.org").items.size(), 1u);
  ASSERT_TRUE(storage->offline().push("alice@example.org", "<after/>", 10));
  EXPECT_EQ(storage->offline().pop_all("alice@example.org"),
            (std::vector<std::string>{"<before/>", "<after/>"}));
  EXPECT_FALSE(storage->accounts().find("bob", "example.org").has_value());
}

TEST_F(MysqlStorage, RestartBetweenCallsIsInvisibleToEveryPooledConnection) {
  auto storage = open(fresh_database());
  // Open all four pooled connections.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) storage->offline().push("alice@example.org", "<m/>", 1000);
    });
  }
  for (auto& thread : threads) thread.join();
  server().stop();
  server().start();
  std::atomic<int> failures{0};
  threads.clear();
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      try {
        storage->offline().count("alice@example.org");
      } catch (const Error&) {
        ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(storage->offline().count("alice@example.org"), 40u);
}

}  // namespace
}  // namespace parley::storage::mysql
