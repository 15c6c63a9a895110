#include "storage/mysql/mysql_storage.hpp"

#include <cppconn/exception.h>

#include <initializer_list>

#include "storage/mysql/connection.hpp"
#include "storage/sql/stores.hpp"

namespace parley::storage::mysql {

namespace {

using Mode = Pool::Mode;

// ---- schema ----------------------------------------------------------------

std::int64_t read_schema_version(Connection& connection) {
  Query query(connection, "SELECT version FROM schema_version");
  if (query.step()) return query.integer(0);
  return -1;
}

// MySQL commits DDL implicitly, so a migration cannot be one transaction:
// a named server lock keeps two processes from migrating at once, and the
// version is written after the migration's statements all succeeded.
void migrate(Pool& pool, std::span<const sql::Migration> migrations) {
  for (std::size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i + 1)) {
      throw Error("schema migrations must be numbered 1, 2, 3, ... in order; entry " +
                  std::to_string(i + 1) + " has version " + std::to_string(migrations[i].version));
    }
  }
  const std::int64_t latest = migrations.empty() ? 0 : migrations.back().version;
  pool.run(Mode::single_statement, [&](Connection& connection) {
    {
      Query lock(connection, "SELECT GET_LOCK(CONCAT('parley-schema-', DATABASE()), 10)");
      if (!lock.step() || lock.is_null(0) || lock.integer(0) != 1) {
        pool.fail("refusing to migrate", "another process holds the schema lock for over 10 s");
      }
    }
    struct Unlock {
      Connection& connection;
      ~Unlock() {
        try {
          connection.execute("DO RELEASE_LOCK(CONCAT('parley-schema-', DATABASE()))");
        } catch (const ::sql::SQLException&) {
          // The lock ends with the session anyway.
        }
      }
    } unlock{connection};

    connection.execute(sql::render(sql::version_table, sql::mysql_dialect));
    auto current = read_schema_version(connection);
    if (current < 0) {
      connection.execute("INSERT INTO schema_version (version) VALUES (0)");
      current = 0;
    }
    if (current > latest) {
      pool.fail("refusing to open", "schema version " + std::to_string(current) +
                                        " is newer than the newest this build of parley knows (" +
                                        std::to_string(latest) + "); run a newer parley");
    }
    for (; current < latest; ++current) {
      const auto& migration = migrations[static_cast<std::size_t>(current)];
      for (const auto statement : migration.statements) {
        const auto rendered = sql::render(statement, sql::mysql_dialect);
        try {
          connection.execute(rendered);
        } catch (const ::sql::SQLException& error) {
          pool.fail("migration " + std::to_string(migration.version) + " (" +
                        std::string(migration.description) + ") failed",
                    "'" + rendered + "': " + error.what());
        }
      }
      Query(connection, "UPDATE schema_version SET version = ?").bind(migration.version).run();
    }
  });
}

// ---- the backend -------------------------------------------------------------

// Work runs on a pooled connection; Pool::run re-runs it after a deadlock or
// on a fresh connection after a dead one, as the stores expect of write().
class MysqlAccess {
 public:
  using Connection = mysql::Connection;
  using Query = mysql::Query;

  static constexpr std::string_view insert_ignore = "INSERT IGNORE";
  static constexpr std::string_view lock_rows = " FOR UPDATE";

  static std::string upsert(std::string_view, std::initializer_list<std::string_view> columns) {
    std::string clause = "ON DUPLICATE KEY UPDATE ";
    for (const auto column : columns) {
      if (column != *columns.begin()) clause += ", ";
      clause += std::string(column) + " = VALUES(" + std::string(column) + ")";
    }
    return clause;
  }

  explicit MysqlAccess(Pool& pool) : pool_(pool) {}

  template <class F>
  auto read(F&& work) {
    return pool_.run(Mode::transaction, std::forward<F>(work));
  }
  template <class F>
  auto write(F&& work) {
    return pool_.run(Mode::transaction, std::forward<F>(work));
  }
  template <class F>
  auto single(F&& work) {
    return pool_.run(Mode::single_statement, std::forward<F>(work));
  }

  [[noreturn]] void fail(std::string_view context, std::string_view reason) const {
    pool_.fail(context, reason);
  }

 private:
  Pool& pool_;
};

class MysqlStorage final : public Storage {
 public:
  MysqlStorage(const std::string& uri, std::span<const sql::Migration> migrations)
      : pool_(parse_uri(uri)), access_(pool_), stores_(access_) {
    migrate(pool_, migrations);
  }

  AccountStore& accounts() override { return stores_.accounts; }
  RosterStore& roster() override { return stores_.roster; }
  OfflineStore& offline() override { return stores_.offline; }
  MucStore& muc() override { return stores_.muc; }
  ArchiveStore& archive() override { return stores_.archive; }

  // Every change was committed when its call returned; InnoDB's redo log
  // makes it durable.
  void flush() override {}

  std::string backend_name() const override { return "mysql"; }

 private:
  Pool pool_;
  MysqlAccess access_;
  sql::SqlStores<MysqlAccess> stores_;
};

}  // namespace

std::unique_ptr<Storage> open(const std::string& uri) { return open(uri, sql::migrations()); }

std::unique_ptr<Storage> open(const std::string& uri, std::span<const sql::Migration> migrations) {
  return std::make_unique<MysqlStorage>(uri, migrations);
}

}  // namespace parley::storage::mysql
