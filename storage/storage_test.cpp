// storage::open(uri): choosing a backend from the configured URI.
#include "storage/storage.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "storage/test_support.hpp"

namespace parley::storage {
namespace {

std::string open_error(const std::string& uri) {
  try {
    open(uri);
  } catch (const Error& error) {
    return error.what();
  }
  return "no error";
}

TEST(StorageOpen, MemoryUri) { EXPECT_EQ(open("memory:")->backend_name(), "memory"); }

TEST(StorageOpen, MemoryBackendsDoNotShareData) {
  auto first = open("memory:");
  auto second = open("memory:");
  ASSERT_TRUE(first->offline().push("alice@example.org", "<m/>", 5));
  EXPECT_EQ(second->offline().count("alice@example.org"), 0u);
}

TEST(StorageOpen, SqliteUriWithAbsolutePathCreatesTheFile) {
  testing::TempDir dir;
  const auto path = dir.file("parley.db");
  EXPECT_EQ(open("sqlite:" + path)->backend_name(), "sqlite");
  EXPECT_TRUE(std::filesystem::is_regular_file(path));
}

TEST(StorageOpen, SqlitePathIsRelativeToTheWorkingDirectory) {
  testing::TempDir dir;
  struct WorkingDirectory {
    std::filesystem::path previous = std::filesystem::current_path();
    ~WorkingDirectory() { std::filesystem::current_path(previous); }
  };
  {
    WorkingDirectory restore;
    std::filesystem::current_path(dir.path());
    auto storage = open("sqlite:relative.db");
    ASSERT_TRUE(storage->accounts().create(Account{"alice", "example.org", {}, {}, 1}));
  }
  EXPECT_TRUE(std::filesystem::is_regular_file(dir.path() / "relative.db"));
}

TEST(StorageOpen, UnknownSchemeIsRefusedWithTheExpectedForms) {
  const std::string expected =
      "' (expected memory:, sqlite:PATH or mysql://USER:PASSWORD@HOST:PORT/DATABASE)";
  EXPECT_EQ(open_error("postgres:x"), "unknown storage backend 'postgres" + expected);
  EXPECT_EQ(open_error("memory"), "unknown storage backend 'memory" + expected);
  EXPECT_EQ(open_error(""), "unknown storage backend '" + expected);
  EXPECT_EQ(open_error("SQLITE:x.db"), "unknown storage backend 'SQLITE" + expected);
  EXPECT_EQ(open_error("mysqlx://u@localhost/parley"), "unknown storage backend 'mysqlx" + expected);
}

TEST(StorageOpen, MalformedMysqlUriIsRefusedBeforeConnecting) {
  EXPECT_NE(open_error("mysql:localhost/parley").find("must start with mysql://"), std::string::npos);
  EXPECT_NE(open_error("mysql://localhost/parley").find("has no user"), std::string::npos);
  EXPECT_NE(open_error("mysql://u:p@localhost").find("has no database"), std::string::npos);
  EXPECT_NE(open_error("mysql://u:p@localhost:0/db").find("port must be a number"),
            std::string::npos);
}

TEST(StorageOpen, CheckUriAcceptsEveryFormWithoutOpeningIt) {
  testing::TempDir dir;
  EXPECT_NO_THROW(check_uri("memory:"));
  EXPECT_NO_THROW(check_uri("sqlite:" + dir.file("never-created.db")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("never-created.db")));
  // Port 1: nothing listens there, and nothing is tried.
  EXPECT_NO_THROW(check_uri("mysql://parley:pw@127.0.0.1:1/parley?pool=2"));
  EXPECT_THROW(check_uri("sqlite:"), Error);
  EXPECT_THROW(check_uri("mysql://parley@127.0.0.1/"), Error);
  EXPECT_THROW(check_uri("redis://x"), Error);
}

TEST(StorageOpen, PrintableUriHidesTheMysqlPassword) {
  EXPECT_EQ(printable_uri("mysql://parley:s3cret@db.example.org:3307/parley?pool=2"),
            "mysql://parley@db.example.org:3307/parley");
  EXPECT_EQ(printable_uri("mysql://parley:s3cret@db/parley").find("s3cret"), std::string::npos);
  EXPECT_EQ(printable_uri("mysql:garbage:s3cret"), "mysql://(malformed URI)");
  EXPECT_EQ(printable_uri("sqlite:var/parley.db"), "sqlite:var/parley.db");
  EXPECT_EQ(printable_uri("memory:"), "memory:");
}

TEST(StorageOpen, MysqlErrorsNeverShowThePassword) {
  // Nothing listens on port 1: the connection is refused at once.
  const auto message = open_error("mysql://parley:s3cret@127.0.0.1:1/parley");
  EXPECT_NE(message.find("mysql database 'parley@127.0.0.1:1/parley'"), std::string::npos)
      << message;
  EXPECT_EQ(message.find("s3cret"), std::string::npos) << message;
}

TEST(StorageOpen, SqliteWithoutPathIsRefused) {
  EXPECT_NE(open_error("sqlite:").find("needs a database path"), std::string::npos);
}

TEST(StorageOpen, MemoryWithSomethingAfterTheColonIsRefused) {
  EXPECT_NE(open_error("memory:foo").find("takes nothing after the colon"), std::string::npos);
}

TEST(StorageOpen, SqliteInMissingDirectoryIsRefusedWithoutCreatingIt) {
  testing::TempDir dir;
  const auto missing = dir.path() / "no-such-dir";
  const auto message = open_error("sqlite:" + (missing / "parley.db").string());
  EXPECT_NE(message.find("directory '" + missing.string() + "' does not exist"), std::string::npos)
      << message;
  EXPECT_FALSE(std::filesystem::exists(missing));
}

}  // namespace
}  // namespace parley::storage
