#include "storage/mysql/mysql_storage.hpp"

#include <cppconn/exception.h>

#include <algorithm>

#include "storage/backend_support.hpp"
#include "storage/mysql/connection.hpp"
#include "storage/sql/archive_sql.hpp"

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

// ---- accounts ----------------------------------------------------------------

void write_credentials(Connection& connection, const std::string& domain,
                       const std::string& username, std::string_view hash_name,
                       const sasl::ScramCredentials& credentials) {
  Query(connection, "REPLACE INTO account_credentials"
                    " (domain, username, hash_name, salt, iterations, stored_key, server_key)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)")
      .bind(domain)
      .bind(username)
      .bind(hash_name)
      .bind_blob(credentials.salt)
      .bind(static_cast<std::int64_t>(credentials.iterations))
      .bind_blob(credentials.stored_key)
      .bind_blob(credentials.server_key)
      .run();
}

class MysqlAccounts final : public AccountStore {
 public:
  explicit MysqlAccounts(Pool& pool) : pool_(pool) {}

  bool create(const Account& account) override {
    return pool_.run(Mode::transaction, [&](Connection& connection) {
      try {
        Query(connection, "INSERT INTO accounts (domain, username, created_at) VALUES (?, ?, ?)")
            .bind(account.domain)
            .bind(account.username)
            .bind(account.created_at)
            .run();
      } catch (const ::sql::SQLException& error) {
        if (error_code(error) == duplicate_key) return false;
        throw;
      }
      write_credentials(connection, account.domain, account.username, "sha1", account.sha1);
      write_credentials(connection, account.domain, account.username, "sha256", account.sha256);
      return true;
    });
  }

  std::optional<Account> find(const std::string& username, const std::string& domain) override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      Query query(connection,
                  "SELECT a.created_at, c.hash_name, c.salt, c.iterations, c.stored_key, c.server_key"
                  " FROM accounts a LEFT JOIN account_credentials c"
                  " ON c.domain = a.domain AND c.username = a.username"
                  " WHERE a.domain = ? AND a.username = ?");
      query.bind(domain).bind(username);
      std::optional<Account> account;
      while (query.step()) {
        if (!account) account = Account{username, domain, {}, {}, query.integer(0)};
        if (query.is_null(1)) continue;
        const auto hash_name = query.text(1);
        auto* credentials = hash_name == "sha1"     ? &account->sha1
                            : hash_name == "sha256" ? &account->sha256
                                                    : nullptr;
        if (credentials == nullptr) continue;
        credentials->salt = query.text(2);
        credentials->iterations = static_cast<std::uint32_t>(query.integer(3));
        credentials->stored_key = query.text(4);
        credentials->server_key = query.text(5);
      }
      return account;
    });
  }

  bool set_credentials(const std::string& username, const std::string& domain,
                       const sasl::ScramCredentials& sha1,
                       const sasl::ScramCredentials& sha256) override {
    return pool_.run(Mode::transaction, [&](Connection& connection) {
      {
        Query query(connection,
                    "SELECT 1 FROM accounts WHERE domain = ? AND username = ? FOR UPDATE");
        if (!query.bind(domain).bind(username).step()) return false;
      }
      write_credentials(connection, domain, username, "sha1", sha1);
      write_credentials(connection, domain, username, "sha256", sha256);
      return true;
    });
  }

  bool remove(const std::string& username, const std::string& domain) override {
    return pool_.run(Mode::transaction, [&](Connection& connection) {
      const auto removed = Query(connection, "DELETE FROM accounts WHERE domain = ? AND username = ?")
                               .bind(domain)
                               .bind(username)
                               .run();
      if (removed == 0) return false;
      // Credentials, roster items, groups and pending subscriptions follow by
      // ON DELETE CASCADE.
      const auto owner = owner_jid(username, domain);
      Query(connection, "DELETE FROM roster_owners WHERE owner = ?").bind(owner).run();
      Query(connection, "DELETE FROM offline_messages WHERE owner = ?").bind(owner).run();
      return true;
    });
  }

  std::vector<std::string> list(const std::string& domain) override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      Query query(connection, "SELECT username FROM accounts WHERE domain = ? ORDER BY username");
      query.bind(domain);
      std::vector<std::string> usernames;
      while (query.step()) usernames.push_back(query.text(0));
      return usernames;
    });
  }

  std::vector<std::string> domains() override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      Query query(connection, "SELECT DISTINCT domain FROM accounts ORDER BY domain");
      std::vector<std::string> result;
      while (query.step()) result.push_back(query.text(0));
      return result;
    });
  }

 private:
  Pool& pool_;
};

// ---- roster ------------------------------------------------------------------

struct Owner {
  std::int64_t id;
  std::int64_t version;
};

// Locks the owner's row until the transaction ends: the version counter is
// read, raised and written back by one transaction at a time.
std::optional<Owner> find_owner(Connection& connection, const std::string& owner, bool lock) {
  Query query(connection, lock ? "SELECT id, version FROM roster_owners WHERE owner = ? FOR UPDATE"
                               : "SELECT id, version FROM roster_owners WHERE owner = ?");
  if (!query.bind(owner).step()) return std::nullopt;
  return Owner{query.integer(0), query.integer(1)};
}

Owner find_or_add_owner(Connection& connection, const std::string& owner) {
  if (auto found = find_owner(connection, owner, true)) return *found;
  // Two first changes of one owner at once: one insert waits for the other
  // and then does nothing; both then lock the same row.
  Query(connection,
        "INSERT INTO roster_owners (owner, version) VALUES (?, 0) ON DUPLICATE KEY UPDATE id = id")
      .bind(owner)
      .run();
  return *find_owner(connection, owner, true);
}

std::int64_t bump_version(Connection& connection, const Owner& owner) {
  const auto version = owner.version + 1;
  Query(connection, "UPDATE roster_owners SET version = ? WHERE id = ?")
      .bind(version)
      .bind(owner.id)
      .run();
  return version;
}

// Item rows joined with their groups: one row per group (or one with a NULL
// group), the rows of an item adjacent. Columns: jid, name, subscription,
// ask, approved, removed, group_name.
constexpr std::string_view item_columns =
    "SELECT i.jid, i.name, i.subscription, i.ask, i.approved, i.removed, g.group_name"
    " FROM roster_items i LEFT JOIN roster_groups g ON g.owner_id = i.owner_id AND g.jid = i.jid";

std::vector<RosterChange> read_items(const Pool& pool, Query& query) {
  std::vector<RosterChange> changes;
  while (query.step()) {
    auto jid = query.text(0);
    if (changes.empty() || changes.back().item.jid != jid) {
      RosterChange change;
      change.item.jid = std::move(jid);
      change.item.name = query.text(1);
      const auto subscription = parse_subscription(query.text(2));
      if (!subscription) {
        pool.fail("reading roster item '" + change.item.jid + "'",
                  "unknown subscription '" + query.text(2) + "'");
      }
      change.item.subscription = *subscription;
      change.item.ask = query.integer(3) != 0;
      change.item.approved = query.integer(4) != 0;
      change.removed = query.integer(5) != 0;
      changes.push_back(std::move(change));
    }
    if (!query.is_null(6)) changes.back().item.groups.push_back(query.text(6));
  }
  return changes;
}

void write_item(Connection& connection, std::int64_t owner_id, const RosterItem& item,
                bool removed, std::int64_t version) {
  Query(connection, "DELETE FROM roster_groups WHERE owner_id = ? AND jid = ?")
      .bind(owner_id)
      .bind(item.jid)
      .run();
  Query(connection,
        "INSERT INTO roster_items"
        " (owner_id, jid, name, subscription, ask, approved, removed, version)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON DUPLICATE KEY UPDATE name = VALUES(name), subscription = VALUES(subscription),"
        " ask = VALUES(ask), approved = VALUES(approved), removed = VALUES(removed),"
        " version = VALUES(version)")
      .bind(owner_id)
      .bind(item.jid)
      .bind(item.name)
      .bind(subscription_name(item.subscription))
      .bind(std::int64_t{item.ask})
      .bind(std::int64_t{item.approved})
      .bind(std::int64_t{removed})
      .bind(version)
      .run();
  std::int64_t position = 0;
  for (const auto& group : unique_groups(item.groups)) {
    Query(connection,
          "INSERT INTO roster_groups (owner_id, jid, position, group_name) VALUES (?, ?, ?, ?)")
        .bind(owner_id)
        .bind(item.jid)
        .bind(position++)
        .bind(group)
        .run();
  }
}

class MysqlRoster final : public RosterStore {
 public:
  explicit MysqlRoster(Pool& pool) : pool_(pool) {}

  Roster get(const std::string& owner) override {
    return pool_.run(Mode::transaction, [&](Connection& connection) {
      const auto found = find_owner(connection, owner, false);
      if (!found) return Roster{};
      Roster roster{found->version, {}};
      static const std::string sql =
          std::string(item_columns) +
          " WHERE i.owner_id = ? AND i.removed = 0 ORDER BY i.jid, g.position";
      Query query(connection, sql);
      query.bind(found->id);
      for (auto& change : read_items(pool_, query)) roster.items.push_back(std::move(change.item));
      return roster;
    });
  }

  std::optional<RosterItem> get_item(const std::string& owner, const std::string& jid) override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) -> std::optional<RosterItem> {
      static const std::string sql =
          std::string(item_columns) +
          " JOIN roster_owners o ON o.id = i.owner_id"
          " WHERE o.owner = ? AND i.jid = ? AND i.removed = 0 ORDER BY g.position";
      Query query(connection, sql);
      query.bind(owner).bind(jid);
      auto items = read_items(pool_, query);
      if (items.empty()) return std::nullopt;
      return std::move(items.front().item);
    });
  }

  std::int64_t put_item(const std::string& owner, const RosterItem& item) override {
    return pool_.run(Mode::transaction, [&](Connection& connection) {
      const auto found = find_or_add_owner(connection, owner);
      const auto version = bump_version(connection, found);
      write_item(connection, found.id, item, false, version);
      return version;
    });
  }

  std::optional<std::int64_t> remove_item(const std::string& owner,
                                          const std::string& jid) override {
    return pool_.run(Mode::transaction, [&](Connection& connection) -> std::optional<std::int64_t> {
      const auto found = find_owner(connection, owner, true);
      if (!found) return std::nullopt;
      {
        Query query(connection,
                    "SELECT 1 FROM roster_items WHERE owner_id = ? AND jid = ? AND removed = 0");
        if (!query.bind(found->id).bind(jid).step()) return std::nullopt;
      }
      const auto version = bump_version(connection, *found);
      // The row stays as a tombstone so changes_since can report the removal.
      write_item(connection, found->id, removed_item(jid), true, version);
      return version;
    });
  }

  std::optional<std::vector<RosterChange>> changes_since(const std::string& owner,
                                                         std::int64_t since) override {
    return pool_.run(Mode::transaction,
                     [&](Connection& connection) -> std::optional<std::vector<RosterChange>> {
                       const auto found = find_owner(connection, owner, false);
                       const auto current = found ? found->version : 0;
                       if (since < 0 || since > current) return std::nullopt;
                       if (since == current) return std::vector<RosterChange>{};
                       static const std::string sql =
                           std::string(item_columns) +
                           " WHERE i.owner_id = ? AND i.version > ? ORDER BY i.version, g.position";
                       Query query(connection, sql);
                       query.bind(found->id).bind(since);
                       auto changes = read_items(pool_, query);
                       for (auto& change : changes) {
                         if (change.removed) change.item = removed_item(std::move(change.item.jid));
                       }
                       return changes;
                     });
  }

  std::int64_t version(const std::string& owner) override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      const auto found = find_owner(connection, owner, false);
      return found ? found->version : std::int64_t{0};
    });
  }

  void add_pending_in(const std::string& owner, const std::string& from,
                      const std::string& stanza) override {
    pool_.run(Mode::transaction, [&](Connection& connection) {
      const auto found = find_or_add_owner(connection, owner);
      // Delete and insert rather than update: a repeated request moves to the
      // end, after the requests that are now older than it.
      Query(connection, "DELETE FROM roster_pending_in WHERE owner_id = ? AND from_jid = ?")
          .bind(found.id)
          .bind(from)
          .run();
      Query(connection, "INSERT INTO roster_pending_in (owner_id, from_jid, stanza) VALUES (?, ?, ?)")
          .bind(found.id)
          .bind(from)
          .bind(stanza)
          .run();
    });
  }

  bool remove_pending_in(const std::string& owner, const std::string& from) override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      return Query(connection,
                   "DELETE p FROM roster_pending_in p JOIN roster_owners o ON o.id = p.owner_id"
                   " WHERE o.owner = ? AND p.from_jid = ?")
                 .bind(owner)
                 .bind(from)
                 .run() > 0;
    });
  }

  std::vector<PendingIn> pending_in(const std::string& owner) override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      Query query(connection,
                  "SELECT p.from_jid, p.stanza FROM roster_pending_in p"
                  " JOIN roster_owners o ON o.id = p.owner_id WHERE o.owner = ? ORDER BY p.id");
      query.bind(owner);
      std::vector<PendingIn> pending;
      while (query.step()) pending.push_back(PendingIn{query.text(0), query.text(1)});
      return pending;
    });
  }

  std::vector<std::string> owners() override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      Query query(connection,
                  "SELECT owner FROM roster_owners WHERE version > 0"
                  " OR id IN (SELECT owner_id FROM roster_pending_in) ORDER BY owner");
      std::vector<std::string> result;
      while (query.step()) result.push_back(query.text(0));
      return result;
    });
  }

  void import_roster(const std::string& owner, std::int64_t version,
                     const std::vector<RosterChange>& changes) override {
    check_roster_import(version, changes);
    pool_.run(Mode::transaction, [&](Connection& connection) {
      const auto found = find_or_add_owner(connection, owner);
      // Groups follow the items by ON DELETE CASCADE.
      Query(connection, "DELETE FROM roster_items WHERE owner_id = ?").bind(found.id).run();
      auto item_version = version - static_cast<std::int64_t>(changes.size());
      for (const auto& change : changes) {
        write_item(connection, found.id, change.removed ? removed_item(change.item.jid) : change.item,
                   change.removed, ++item_version);
      }
      Query(connection, "UPDATE roster_owners SET version = ? WHERE id = ?")
          .bind(version)
          .bind(found.id)
          .run();
    });
  }

 private:
  Pool& pool_;
};

// ---- offline -------------------------------------------------------------------

class MysqlOffline final : public OfflineStore {
 public:
  explicit MysqlOffline(Pool& pool) : pool_(pool) {}

  bool push(const std::string& owner, const std::string& stanza, std::size_t limit) override {
    return pool_.run(Mode::transaction, [&](Connection& connection) {
      // FOR UPDATE locks the owner's range of the index, so a concurrent push
      // for the same owner waits for this one's count and insert.
      Query count(connection, "SELECT COUNT(*) FROM offline_messages WHERE owner = ? FOR UPDATE");
      count.bind(owner).step();
      if (static_cast<std::uint64_t>(count.integer(0)) >= limit) return false;
      Query(connection, "INSERT INTO offline_messages (owner, stanza) VALUES (?, ?)")
          .bind(owner)
          .bind(stanza)
          .run();
      return true;
    });
  }

  std::vector<std::string> pop_all(const std::string& owner) override {
    return pool_.run(Mode::transaction, [&](Connection& connection) {
      std::vector<std::string> stanzas;
      {
        Query query(connection,
                    "SELECT stanza FROM offline_messages WHERE owner = ? ORDER BY id FOR UPDATE");
        query.bind(owner);
        while (query.step()) stanzas.push_back(query.text(0));
      }
      if (!stanzas.empty())
        Query(connection, "DELETE FROM offline_messages WHERE owner = ?").bind(owner).run();
      return stanzas;
    });
  }

  std::size_t count(const std::string& owner) override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      Query query(connection, "SELECT COUNT(*) FROM offline_messages WHERE owner = ?");
      query.bind(owner).step();
      return static_cast<std::size_t>(query.integer(0));
    });
  }

  std::vector<std::string> owners() override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      Query query(connection, "SELECT DISTINCT owner FROM offline_messages ORDER BY owner");
      std::vector<std::string> result;
      while (query.step()) result.push_back(query.text(0));
      return result;
    });
  }

  std::vector<std::string> peek_all(const std::string& owner) override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      Query query(connection, "SELECT stanza FROM offline_messages WHERE owner = ? ORDER BY id");
      query.bind(owner);
      std::vector<std::string> stanzas;
      while (query.step()) stanzas.push_back(query.text(0));
      return stanzas;
    });
  }

 private:
  Pool& pool_;
};

// ---- multi-user chat -------------------------------------------------------------

class MysqlMuc final : public MucStore {
 public:
  explicit MysqlMuc(Pool& pool) : pool_(pool) {}

  void put_room(const MucRoom& room) override {
    pool_.run(Mode::single_statement, [&](Connection& connection) {
      Query(connection,
            "INSERT INTO muc_rooms (service, name, config) VALUES (?, ?, ?)"
            " ON DUPLICATE KEY UPDATE config = VALUES(config)")
          .bind(room.service)
          .bind(room.name)
          .bind(room.config)
          .run();
    });
  }

  std::optional<MucRoom> find_room(const std::string& service, const std::string& name) override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) -> std::optional<MucRoom> {
      Query query(connection, "SELECT config FROM muc_rooms WHERE service = ? AND name = ?");
      if (!query.bind(service).bind(name).step()) return std::nullopt;
      return MucRoom{service, name, query.text(0)};
    });
  }

  std::vector<MucRoom> rooms(const std::string& service) override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      Query query(connection, "SELECT name, config FROM muc_rooms WHERE service = ? ORDER BY name");
      query.bind(service);
      std::vector<MucRoom> result;
      while (query.step()) result.push_back(MucRoom{service, query.text(0), query.text(1)});
      return result;
    });
  }

  bool remove_room(const std::string& service, const std::string& name) override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      // Affiliations follow by ON DELETE CASCADE.
      return Query(connection, "DELETE FROM muc_rooms WHERE service = ? AND name = ?")
                 .bind(service)
                 .bind(name)
                 .run() > 0;
    });
  }

  bool set_affiliation(const std::string& service, const std::string& name,
                       const MucAffiliation& affiliation) override {
    return pool_.run(Mode::transaction, [&](Connection& connection) {
      std::int64_t room_id = 0;
      {
        Query query(connection,
                    "SELECT id FROM muc_rooms WHERE service = ? AND name = ? FOR UPDATE");
        if (!query.bind(service).bind(name).step()) return false;
        room_id = query.integer(0);
      }
      if (affiliation.affiliation == "none") {
        Query(connection, "DELETE FROM muc_affiliations WHERE room_id = ? AND jid = ?")
            .bind(room_id)
            .bind(affiliation.jid)
            .run();
      } else {
        Query(connection,
              "REPLACE INTO muc_affiliations (room_id, jid, affiliation, reason) VALUES (?, ?, ?, ?)")
            .bind(room_id)
            .bind(affiliation.jid)
            .bind(affiliation.affiliation)
            .bind(affiliation.reason)
            .run();
      }
      return true;
    });
  }

  std::vector<MucAffiliation> affiliations(const std::string& service,
                                           const std::string& name) override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      Query query(connection,
                  "SELECT a.jid, a.affiliation, a.reason FROM muc_affiliations a"
                  " JOIN muc_rooms r ON r.id = a.room_id"
                  " WHERE r.service = ? AND r.name = ? ORDER BY a.jid");
      query.bind(service).bind(name);
      std::vector<MucAffiliation> result;
      while (query.step())
        result.push_back(MucAffiliation{query.text(0), query.text(1), query.text(2)});
      return result;
    });
  }

  std::vector<std::string> services() override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      Query query(connection, "SELECT DISTINCT service FROM muc_rooms ORDER BY service");
      std::vector<std::string> result;
      while (query.step()) result.push_back(query.text(0));
      return result;
    });
  }

 private:
  Pool& pool_;
};

// ---- the backend -------------------------------------------------------------------

// ---- message archive ---------------------------------------------------------

class MysqlArchive final : public ArchiveStore {
 public:
  explicit MysqlArchive(Pool& pool) : pool_(pool) {}

  bool append(const std::string& owner, const ArchivedMessage& message) override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      return Query(connection,
                   "INSERT IGNORE INTO archive_messages (owner, id, timestamp, with_jid, stanza)"
                   " VALUES (?, ?, ?, ?, ?)")
                 .bind(owner)
                 .bind(message.id)
                 .bind(message.timestamp)
                 .bind(message.with)
                 .bind(message.stanza)
                 .run() > 0;
    });
  }

  std::optional<ArchivePage> query(const std::string& owner, const ArchiveQuery& query) override {
    return pool_.run(Mode::transaction, [&](Connection& connection) -> std::optional<ArchivePage> {
      struct Bound {
        std::int64_t timestamp, seq;
      };
      auto locate =
          [&](const std::optional<std::string>& id) -> std::optional<std::optional<Bound>> {
        if (!id) return std::optional<Bound>{};
        Query found(connection,
                    "SELECT timestamp, seq FROM archive_messages WHERE owner = ? AND id = ?");
        if (!found.bind(owner).bind(*id).step()) return std::nullopt;
        return std::optional<Bound>{Bound{found.integer(0), found.integer(1)}};
      };
      const auto after = locate(query.after_id);
      const auto before = locate(query.before_id);
      if (!after || !before) return std::nullopt;
      auto bind_filters = [&](Query& statement) {
        statement.bind(owner);
        if (query.with) statement.bind(*query.with);
        if (query.start) statement.bind(*query.start);
        if (query.end) statement.bind(*query.end);
      };
      ArchivePage page;
      {
        Query count(connection, sql::archive_count_sql(query));
        bind_filters(count);
        count.step();
        page.count = static_cast<std::size_t>(count.integer(0));
      }
      Query rows(connection, sql::archive_page_sql(query, after->has_value(), before->has_value()));
      bind_filters(rows);
      for (const auto& bound : {*after, *before}) {
        if (bound) rows.bind(bound->timestamp).bind(bound->timestamp).bind(bound->seq);
      }
      rows.bind(static_cast<std::int64_t>(query.max) + 1);
      while (rows.step()) {
        page.messages.push_back(
            ArchivedMessage{rows.text(0), rows.integer(1), rows.text(2), rows.text(3)});
      }
      page.complete = page.messages.size() <= query.max;
      if (!page.complete) page.messages.pop_back();
      if (query.last || query.before_id) std::ranges::reverse(page.messages);
      return page;
    });
  }

  std::size_t trim(const std::string& owner, std::size_t keep) override {
    return pool_.run(Mode::transaction, [&](Connection& connection) -> std::size_t {
      std::int64_t timestamp = 0;
      std::int64_t seq = 0;
      {
        Query newest_dropped(connection,
                             "SELECT timestamp, seq FROM archive_messages WHERE owner = ?"
                             " ORDER BY timestamp DESC, seq DESC LIMIT 1 OFFSET ?");
        if (!newest_dropped.bind(owner).bind(static_cast<std::int64_t>(keep)).step()) return 0;
        timestamp = newest_dropped.integer(0);
        seq = newest_dropped.integer(1);
      }
      return static_cast<std::size_t>(Query(connection,
                                            "DELETE FROM archive_messages WHERE owner = ?"
                                            " AND (timestamp < ? OR (timestamp = ? AND seq <= ?))")
                                          .bind(owner)
                                          .bind(timestamp)
                                          .bind(timestamp)
                                          .bind(seq)
                                          .run());
    });
  }

  void remove_owner(const std::string& owner) override {
    pool_.run(Mode::transaction, [&](Connection& connection) {
      Query(connection, "DELETE FROM archive_messages WHERE owner = ?").bind(owner).run();
      Query(connection, "DELETE FROM archive_prefs WHERE owner = ?").bind(owner).run();
    });
  }

  std::optional<ArchivePrefs> prefs(const std::string& owner) override {
    return pool_.run(
        Mode::single_statement, [&](Connection& connection) -> std::optional<ArchivePrefs> {
          Query query(
              connection,
              "SELECT default_policy, always_jids, never_jids FROM archive_prefs WHERE owner = ?");
          if (!query.bind(owner).step()) return std::nullopt;
          return ArchivePrefs{query.text(0), sql::split_jid_list(query.text(1)),
                              sql::split_jid_list(query.text(2))};
        });
  }

  std::vector<std::string> owners() override {
    return pool_.run(Mode::single_statement, [&](Connection& connection) {
      Query query(connection,
                  "SELECT owner FROM archive_messages UNION SELECT owner FROM archive_prefs"
                  " ORDER BY owner");
      std::vector<std::string> result;
      while (query.step()) result.push_back(query.text(0));
      return result;
    });
  }

  void set_prefs(const std::string& owner, const ArchivePrefs& prefs) override {
    pool_.run(Mode::single_statement, [&](Connection& connection) {
      Query(connection,
            "REPLACE INTO archive_prefs (owner, default_policy, always_jids, never_jids)"
            " VALUES (?, ?, ?, ?)")
          .bind(owner)
          .bind(prefs.default_policy)
          .bind(sql::join_jid_list(prefs.always))
          .bind(sql::join_jid_list(prefs.never))
          .run();
    });
  }

 private:
  Pool& pool_;
};

class MysqlStorage final : public Storage {
 public:
  MysqlStorage(const std::string& uri, std::span<const sql::Migration> migrations)
      : pool_(parse_uri(uri)),
        accounts_(pool_),
        roster_(pool_),
        offline_(pool_),
        muc_(pool_),
        archive_(pool_) {
    migrate(pool_, migrations);
  }

  AccountStore& accounts() override { return accounts_; }
  RosterStore& roster() override { return roster_; }
  OfflineStore& offline() override { return offline_; }
  MucStore& muc() override { return muc_; }
  ArchiveStore& archive() override { return archive_; }

  // Every change was committed when its call returned; InnoDB's redo log
  // makes it durable.
  void flush() override {}

  std::string backend_name() const override { return "mysql"; }

 private:
  Pool pool_;
  MysqlAccounts accounts_;
  MysqlRoster roster_;
  MysqlOffline offline_;
  MysqlMuc muc_;
  MysqlArchive archive_;
};

}  // namespace

std::unique_ptr<Storage> open(const std::string& uri) { return open(uri, sql::migrations()); }

std::unique_ptr<Storage> open(const std::string& uri, std::span<const sql::Migration> migrations) {
  return std::make_unique<MysqlStorage>(uri, migrations);
}

}  // namespace parley::storage::mysql
