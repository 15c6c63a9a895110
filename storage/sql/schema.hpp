// The one schema every SQL backend shares, as data: a list of numbered
// migrations whose statements are written once in a portable form, with
// column types and table options left as {placeholders} that each dialect
// fills in (SQLite wants INTEGER and WITHOUT ROWID, MySQL wants BIGINT,
// VARBINARY key columns that fit InnoDB's index limit, and ENGINE=InnoDB).
//
// Placeholders: {bigint} {bool} {serial_pk} {account_part} {bare_jid}
// {short_text} {archive_id} {text} {blob} {keyed_table} {table}.
//
// A database records the number of the last migration applied in the table
// created by version_table; a backend applies the missing ones in order at
// open, and refuses a database whose version is newer than the last one it
// knows.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parley::storage::sql {

struct Migration {
  int version;  // 1, 2, 3, ... in list order
  std::string_view description;
  std::vector<std::string_view> statements;  // portable form
};

using Placeholder = std::pair<std::string_view, std::string_view>;  // name, text

// Constant-initialised, so usable from any translation unit's static initialisers.
struct Dialect {
  std::string_view name;
  std::span<const Placeholder> placeholders;
};

extern const Dialect sqlite_dialect;
extern const Dialect mysql_dialect;

// All migrations, oldest first.
std::span<const Migration> migrations();

// Creates the single-row table that holds the schema version, if missing.
extern const std::string_view version_table;

// Fills in the dialect's placeholders; throws storage::Error on an unknown
// or unterminated placeholder, so a typo in a migration cannot reach a database.
std::string render(std::string_view statement, const Dialect& dialect);

}  // namespace parley::storage::sql
