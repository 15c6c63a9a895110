#include "storage/sql/schema.hpp"

#include <gtest/gtest.h>

#include "storage/storage.hpp"

namespace parley::storage::sql {
namespace {

TEST(Schema, MigrationsAreNumberedFromOneWithoutGaps) {
  const auto list = migrations();
  ASSERT_FALSE(list.empty());
  for (std::size_t i = 0; i < list.size(); ++i) {
    EXPECT_EQ(list[i].version, static_cast<int>(i + 1));
    EXPECT_FALSE(list[i].description.empty());
    EXPECT_FALSE(list[i].statements.empty());
  }
}

TEST(Schema, EveryStatementRendersInEveryDialect) {
  for (const auto* dialect : {&sqlite_dialect, &mysql_dialect}) {
    for (const auto& migration : migrations()) {
      for (const auto statement : migration.statements) {
        const auto rendered = render(statement, *dialect);
        EXPECT_EQ(rendered.find_first_of("{}"), std::string::npos)
            << dialect->name << ": " << rendered;
      }
    }
    EXPECT_EQ(render(version_table, *dialect).find_first_of("{}"), std::string::npos);
  }
}

TEST(Schema, DialectsFillInTheirOwnTypes) {
  const std::string_view statement =
      "CREATE TABLE t (id {serial_pk}, owner {bare_jid} NOT NULL) {table}";
  EXPECT_EQ(render(statement, sqlite_dialect),
            "CREATE TABLE t (id INTEGER PRIMARY KEY, owner TEXT NOT NULL)");
  EXPECT_EQ(render(statement, mysql_dialect),
            "CREATE TABLE t (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, owner VARBINARY(2047) "
            "NOT NULL)"
            " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4");
  EXPECT_EQ(render("x {keyed_table}", sqlite_dialect), "x WITHOUT ROWID");
}

TEST(Schema, BothDialectsKnowTheSamePlaceholders) {
  ASSERT_EQ(sqlite_dialect.placeholders.size(), mysql_dialect.placeholders.size());
  for (std::size_t i = 0; i < sqlite_dialect.placeholders.size(); ++i) {
    EXPECT_EQ(sqlite_dialect.placeholders[i].first, mysql_dialect.placeholders[i].first);
  }
}

TEST(Schema, TextWithoutPlaceholdersIsUnchanged) {
  EXPECT_EQ(render("SELECT 1", sqlite_dialect), "SELECT 1");
  EXPECT_EQ(render("", mysql_dialect), "");
}

TEST(Schema, UnknownPlaceholderIsRefused) {
  EXPECT_THROW(render("CREATE TABLE t (a {varchar})", sqlite_dialect), Error);
  EXPECT_THROW(render("CREATE TABLE t (a {bigint)", mysql_dialect), Error);
}

}  // namespace
}  // namespace parley::storage::sql
