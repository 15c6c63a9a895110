#include "storage/sql/schema.hpp"

#include <algorithm>

#include "storage/storage.hpp"

namespace parley::storage::sql {

namespace {

// Key columns are byte strings compared bytewise: usernames, domains and JIDs
// arrive normalised, so equality and sort order must not depend on a collation.
// A localpart or domain is at most 1023 bytes, a bare JID at most 2047.
constexpr Placeholder sqlite_placeholders[] = {
    {"bigint", "INTEGER"},
    {"bool", "INTEGER"},
    {"serial_pk", "INTEGER PRIMARY KEY"},
    {"account_part", "TEXT"},
    {"bare_jid", "TEXT"},
    {"short_text", "TEXT"},
    {"archive_id", "TEXT"},
    {"text", "TEXT"},
    {"blob", "BLOB"},
    {"keyed_table", "WITHOUT ROWID"},
    {"table", ""},
};

constexpr Placeholder mysql_placeholders[] = {
    {"bigint", "BIGINT"},
    {"bool", "TINYINT"},
    {"serial_pk", "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY"},
    {"account_part", "VARBINARY(1023)"},
    {"bare_jid", "VARBINARY(2047)"},
    {"short_text", "VARCHAR(32)"},
    {"archive_id", "VARBINARY(64)"},
    {"text", "MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"},
    {"blob", "BLOB"},
    {"keyed_table", "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"},
    {"table", "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"},
};

}  // namespace

constinit const Dialect sqlite_dialect{"sqlite", sqlite_placeholders};
constinit const Dialect mysql_dialect{"mysql", mysql_placeholders};

const std::string_view version_table =
    "CREATE TABLE IF NOT EXISTS schema_version (version {bigint} NOT NULL) {table}";

namespace {

// Roster owners get a numeric id so that (owner, contact) keys stay within
// InnoDB's 3072-byte index limit; the owner row also carries the roster
// version (XEP-0237). Removed roster items stay as tombstones (removed = 1,
// only jid and version meaningful) for as long as the owner exists, so
// changes_since can answer for any version: a roster holds at most a few
// thousand contacts, so keeping them costs little and never forces a full
// roster push.
//
// Built on first use: the list is read from other translation units' static
// initialisers (tests), which may run before this one's.
const std::vector<Migration>& all_migrations() {
  static const std::vector<Migration> list{
      {
          1,
          "accounts, rosters, pending subscriptions, offline messages",
          {
              "CREATE TABLE accounts ("
              " domain {account_part} NOT NULL,"
              " username {account_part} NOT NULL,"
              " created_at {bigint} NOT NULL,"
              " PRIMARY KEY (domain, username)"
              ") {keyed_table}",

              "CREATE TABLE account_credentials ("
              " domain {account_part} NOT NULL,"
              " username {account_part} NOT NULL,"
              " hash_name {short_text} NOT NULL,"
              " salt {blob} NOT NULL,"
              " iterations {bigint} NOT NULL,"
              " stored_key {blob} NOT NULL,"
              " server_key {blob} NOT NULL,"
              " PRIMARY KEY (domain, username, hash_name),"
              " FOREIGN KEY (domain, username) REFERENCES accounts (domain, username)"
              " ON DELETE CASCADE"
              ") {keyed_table}",

              "CREATE TABLE roster_owners ("
              " id {serial_pk},"
              " owner {bare_jid} NOT NULL UNIQUE,"
              " version {bigint} NOT NULL"
              ") {table}",

              "CREATE TABLE roster_items ("
              " owner_id {bigint} NOT NULL,"
              " jid {bare_jid} NOT NULL,"
              " name {text} NOT NULL,"
              " subscription {short_text} NOT NULL,"
              " ask {bool} NOT NULL,"
              " approved {bool} NOT NULL,"
              " removed {bool} NOT NULL,"
              " version {bigint} NOT NULL,"
              " PRIMARY KEY (owner_id, jid),"
              " FOREIGN KEY (owner_id) REFERENCES roster_owners (id) ON DELETE CASCADE"
              ") {keyed_table}",

              "CREATE INDEX roster_items_by_version ON roster_items (owner_id, version)",

              "CREATE TABLE roster_groups ("
              " owner_id {bigint} NOT NULL,"
              " jid {bare_jid} NOT NULL,"
              " position {bigint} NOT NULL,"
              " group_name {text} NOT NULL,"
              " PRIMARY KEY (owner_id, jid, position),"
              " FOREIGN KEY (owner_id, jid) REFERENCES roster_items (owner_id, jid)"
              " ON DELETE CASCADE"
              ") {keyed_table}",

              "CREATE TABLE roster_pending_in ("
              " id {serial_pk},"
              " owner_id {bigint} NOT NULL,"
              " from_jid {bare_jid} NOT NULL,"
              " stanza {text} NOT NULL,"
              " UNIQUE (owner_id, from_jid),"
              " FOREIGN KEY (owner_id) REFERENCES roster_owners (id) ON DELETE CASCADE"
              ") {table}",

              "CREATE TABLE offline_messages ("
              " id {serial_pk},"
              " owner {bare_jid} NOT NULL,"
              " stanza {text} NOT NULL"
              ") {table}",

              "CREATE INDEX offline_messages_by_owner ON offline_messages (owner, id)",
          },
      },
      // A room's key is (service, name); its configuration is the MUC
      // module's own serialisation. Affiliation JIDs are bare JIDs or domains.
      {
          2,
          "multi-user chat rooms and affiliations",
          {
              "CREATE TABLE muc_rooms ("
              " id {serial_pk},"
              " service {account_part} NOT NULL,"
              " name {account_part} NOT NULL,"
              " config {text} NOT NULL,"
              " UNIQUE (service, name)"
              ") {table}",

              "CREATE TABLE muc_affiliations ("
              " room_id {bigint} NOT NULL,"
              " jid {bare_jid} NOT NULL,"
              " affiliation {short_text} NOT NULL,"
              " reason {text} NOT NULL,"
              " PRIMARY KEY (room_id, jid),"
              " FOREIGN KEY (room_id) REFERENCES muc_rooms (id) ON DELETE CASCADE"
              ") {keyed_table}",
          },
      },
      // Messages are read by owner and time: (owner, timestamp, seq) is the
      // order of every page. A filter on with_jid scans the owner's time
      // range (an index with it would pass InnoDB's 3072-byte key limit).
      // Preference lists are newline-separated JIDs.
      {
          3,
          "message archives and archiving preferences",
          {
              "CREATE TABLE archive_messages ("
              " seq {serial_pk},"
              " owner {bare_jid} NOT NULL,"
              " id {archive_id} NOT NULL,"
              " timestamp {bigint} NOT NULL,"
              " with_jid {bare_jid} NOT NULL,"
              " stanza {text} NOT NULL"
              ") {table}",

              "CREATE UNIQUE INDEX archive_messages_by_id ON archive_messages (owner, id)",

              "CREATE INDEX archive_messages_by_time ON archive_messages (owner, timestamp, seq)",

              "CREATE TABLE archive_prefs ("
              " owner {bare_jid} NOT NULL PRIMARY KEY,"
              " default_policy {short_text} NOT NULL,"
              " always_jids {text} NOT NULL,"
              " never_jids {text} NOT NULL"
              ") {keyed_table}",
          },
      },
  };
  return list;
}

}  // namespace

std::span<const Migration> migrations() { return all_migrations(); }

std::string render(std::string_view statement, const Dialect& dialect) {
  std::string out;
  out.reserve(statement.size() + 64);
  std::size_t position = 0;
  while (position < statement.size()) {
    const auto open = statement.find('{', position);
    if (open == std::string_view::npos) {
      out.append(statement.substr(position));
      break;
    }
    out.append(statement.substr(position, open - position));
    const auto close = statement.find('}', open);
    if (close == std::string_view::npos) {
      throw Error("schema statement has an unterminated placeholder: " + std::string(statement));
    }
    const auto name = statement.substr(open + 1, close - open - 1);
    const auto found = std::ranges::find(dialect.placeholders, name, &Placeholder::first);
    if (found == dialect.placeholders.end()) {
      throw Error("schema placeholder {" + std::string(name) + "} is unknown to the " +
                  std::string(dialect.name) + " dialect");
    }
    out.append(found->second);
    position = close + 1;
  }
  // A placeholder that renders empty (SQLite's {table}) leaves a trailing blank.
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace parley::storage::sql
