#include "storage/sqlite/sqlite_storage.hpp"

#include <initializer_list>
#include <mutex>
#include <type_traits>

#include "storage/sql/stores.hpp"
#include "storage/sqlite/connection.hpp"

namespace parley::storage::sqlite {

namespace {

using Kind = Transaction::Kind;

// One connection serialised by a mutex: SQLite allows one writer at a
// time anyway, and the worker pool is small.
class SqliteAccess {
 public:
  using Connection = sqlite::Connection;
  using Query = sqlite::Query;

  // A write transaction is BEGIN IMMEDIATE: it already excludes every other
  // writer, so reads inside it need no row locks.
  static constexpr std::string_view insert_ignore = "INSERT OR IGNORE";
  static constexpr std::string_view lock_rows = "";

  static std::string upsert(std::string_view keys, std::initializer_list<std::string_view> columns) {
    std::string clause = "ON CONFLICT (" + std::string(keys) + ") DO UPDATE SET ";
    for (const auto column : columns) {
      if (column != *columns.begin()) clause += ", ";
      clause += std::string(column) + " = excluded." + std::string(column);
    }
    return clause;
  }

  explicit SqliteAccess(const std::string& path) : connection_(path) {}

  template <class F>
  auto read(F&& work) {
    std::lock_guard lock(mutex_);
    Transaction transaction(connection_, Kind::read);
    return work(connection_);
  }

  template <class F>
  auto write(F&& work) {
    std::lock_guard lock(mutex_);
    Transaction transaction(connection_, Kind::write);
    if constexpr (std::is_void_v<std::invoke_result_t<F&, Connection&>>) {
      work(connection_);
      transaction.commit();
    } else {
      auto result = work(connection_);
      transaction.commit();
      return result;
    }
  }

  template <class F>
  auto single(F&& work) {
    std::lock_guard lock(mutex_);
    return work(connection_);
  }

  [[noreturn]] void fail(std::string_view context, std::string_view reason) const {
    connection_.fail_with(context, reason);
  }

 private:
  std::mutex mutex_;
  Connection connection_;
};

std::int64_t read_schema_version(Connection& connection) {
  Query query(connection, "SELECT version FROM schema_version");
  if (query.step()) return query.integer(0);
  return -1;
}

void migrate(Connection& connection, std::span<const sql::Migration> migrations) {
  for (std::size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i + 1)) {
      throw Error("schema migrations must be numbered 1, 2, 3, ... in order; entry " +
                  std::to_string(i + 1) + " has version " + std::to_string(migrations[i].version));
    }
  }
  connection.execute(sql::render(sql::version_table, sql::sqlite_dialect));
  const std::int64_t latest = migrations.empty() ? 0 : migrations.back().version;
  // One transaction per migration, the version re-read inside it: two
  // processes opening the same new file cannot both apply a migration.
  for (;;) {
    Transaction transaction(connection, Kind::write);
    auto current = read_schema_version(connection);
    if (current < 0) {
      Query(connection, "INSERT INTO schema_version (version) VALUES (0)").run();
      current = 0;
    }
    if (current > latest) {
      connection.fail_with("refusing to open",
                           "schema version " + std::to_string(current) +
                               " is newer than the newest this build of parley knows (" +
                               std::to_string(latest) + "); run a newer parley");
    }
    if (current == latest) {
      transaction.commit();
      return;
    }
    const auto& migration = migrations[static_cast<std::size_t>(current)];
    for (const auto statement : migration.statements) {
      std::optional<std::string> reason;
      try {
        const auto sql = sql::render(statement, sql::sqlite_dialect);
        if (auto error = connection.try_execute(sql)) reason = "'" + sql + "': " + *error;
      } catch (const Error& error) {
        reason = error.what();
      }
      if (reason) {
        connection.fail_with("migration " + std::to_string(migration.version) + " (" +
                                 std::string(migration.description) + ") failed",
                             *reason);
      }
    }
    Query(connection, "UPDATE schema_version SET version = ?").bind(migration.version).run();
    transaction.commit();
  }
}

// ---- the backend ---------------------------------------------------------

class SqliteStorage final : public Storage {
 public:
  SqliteStorage(const std::string& path, std::span<const sql::Migration> migrations)
      : access_(path), stores_(access_) {
    access_.single([&](Connection& connection) { migrate(connection, migrations); });
  }

  AccountStore& accounts() override { return stores_.accounts; }
  RosterStore& roster() override { return stores_.roster; }
  OfflineStore& offline() override { return stores_.offline; }
  MucStore& muc() override { return stores_.muc; }
  ArchiveStore& archive() override { return stores_.archive; }

  void flush() override {
    // Copies the WAL into the main file and empties it, so the data no
    // longer depends on the -wal file surviving.
    access_.single([](Connection& connection) { connection.execute("PRAGMA wal_checkpoint(TRUNCATE)"); });
  }

  std::string backend_name() const override { return "sqlite"; }

 private:
  SqliteAccess access_;
  sql::SqlStores<SqliteAccess> stores_;
};

}  // namespace

std::unique_ptr<Storage> open(const std::string& path) { return open(path, sql::migrations()); }

std::unique_ptr<Storage> open(const std::string& path, std::span<const sql::Migration> migrations) {
  return std::make_unique<SqliteStorage>(path, migrations);
}

}  // namespace parley::storage::sqlite
