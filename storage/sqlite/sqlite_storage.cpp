#include "storage/sqlite/sqlite_storage.hpp"

#include <algorithm>
#include <mutex>

#include "storage/backend_support.hpp"
#include "storage/sql/archive_sql.hpp"
#include "storage/sqlite/connection.hpp"

namespace parley::storage::sqlite {

namespace {

using Kind = Transaction::Kind;

struct Database {
  explicit Database(const std::string& path) : connection(path) {}
  std::mutex mutex;
  Connection connection;
};

std::int64_t read_schema_version(Connection& connection) {
  Query query(connection.cached("SELECT version FROM schema_version"));
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
      Query(connection.cached("INSERT INTO schema_version (version) VALUES (0)")).run();
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
    Query(connection.cached("UPDATE schema_version SET version = ?")).bind(migration.version).run();
    transaction.commit();
  }
}

// ---- accounts ------------------------------------------------------------

void write_credentials(Connection& connection, const std::string& domain,
                       const std::string& username, std::string_view hash_name,
                       const sasl::ScramCredentials& credentials) {
  Query(connection.cached("INSERT OR REPLACE INTO account_credentials"
                          " (domain, username, hash_name, salt, iterations, stored_key, server_key)"
                          " VALUES (?, ?, ?, ?, ?, ?, ?)"))
      .bind(domain)
      .bind(username)
      .bind(hash_name)
      .bind_blob(credentials.salt)
      .bind(static_cast<std::int64_t>(credentials.iterations))
      .bind_blob(credentials.stored_key)
      .bind_blob(credentials.server_key)
      .run();
}

class SqliteAccounts final : public AccountStore {
 public:
  explicit SqliteAccounts(Database& database) : database_(database) {}

  bool create(const Account& account) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::write);
    Query(connection.cached(
              "INSERT OR IGNORE INTO accounts (domain, username, created_at) VALUES (?, ?, ?)"))
        .bind(account.domain)
        .bind(account.username)
        .bind(account.created_at)
        .run();
    if (connection.changes() == 0) return false;
    write_credentials(connection, account.domain, account.username, "sha1", account.sha1);
    write_credentials(connection, account.domain, account.username, "sha256", account.sha256);
    transaction.commit();
    return true;
  }

  std::optional<Account> find(const std::string& username, const std::string& domain) override {
    std::lock_guard lock(database_.mutex);
    Query query(database_.connection.cached(
        "SELECT a.created_at, c.hash_name, c.salt, c.iterations, c.stored_key, c.server_key"
        " FROM accounts a LEFT JOIN account_credentials c"
        " ON c.domain = a.domain AND c.username = a.username"
        " WHERE a.domain = ? AND a.username = ?"));
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
      credentials->salt = query.blob(2);
      credentials->iterations = static_cast<std::uint32_t>(query.integer(3));
      credentials->stored_key = query.blob(4);
      credentials->server_key = query.blob(5);
    }
    return account;
  }

  bool set_credentials(const std::string& username, const std::string& domain,
                       const sasl::ScramCredentials& sha1,
                       const sasl::ScramCredentials& sha256) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::write);
    {
      Query query(connection.cached("SELECT 1 FROM accounts WHERE domain = ? AND username = ?"));
      if (!query.bind(domain).bind(username).step()) return false;
    }
    write_credentials(connection, domain, username, "sha1", sha1);
    write_credentials(connection, domain, username, "sha256", sha256);
    transaction.commit();
    return true;
  }

  bool remove(const std::string& username, const std::string& domain) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::write);
    Query(connection.cached("DELETE FROM accounts WHERE domain = ? AND username = ?"))
        .bind(domain)
        .bind(username)
        .run();
    if (connection.changes() == 0) return false;
    // Credentials, roster items, groups and pending subscriptions follow by
    // ON DELETE CASCADE.
    const auto owner = owner_jid(username, domain);
    Query(connection.cached("DELETE FROM roster_owners WHERE owner = ?")).bind(owner).run();
    Query(connection.cached("DELETE FROM offline_messages WHERE owner = ?")).bind(owner).run();
    transaction.commit();
    return true;
  }

  std::vector<std::string> list(const std::string& domain) override {
    std::lock_guard lock(database_.mutex);
    Query query(database_.connection.cached(
        "SELECT username FROM accounts WHERE domain = ? ORDER BY username"));
    query.bind(domain);
    std::vector<std::string> usernames;
    while (query.step()) usernames.push_back(query.text(0));
    return usernames;
  }

  std::vector<std::string> domains() override {
    std::lock_guard lock(database_.mutex);
    Query query(database_.connection.cached("SELECT DISTINCT domain FROM accounts ORDER BY domain"));
    std::vector<std::string> result;
    while (query.step()) result.push_back(query.text(0));
    return result;
  }

 private:
  Database& database_;
};

// ---- roster --------------------------------------------------------------

struct Owner {
  std::int64_t id;
  std::int64_t version;
};

std::optional<Owner> find_owner(Connection& connection, const std::string& owner) {
  Query query(connection.cached("SELECT id, version FROM roster_owners WHERE owner = ?"));
  if (!query.bind(owner).step()) return std::nullopt;
  return Owner{query.integer(0), query.integer(1)};
}

Owner find_or_add_owner(Connection& connection, const std::string& owner) {
  if (auto found = find_owner(connection, owner)) return *found;
  Query(connection.cached("INSERT INTO roster_owners (owner, version) VALUES (?, 0)"))
      .bind(owner)
      .run();
  return Owner{connection.last_insert_id(), 0};
}

std::int64_t bump_version(Connection& connection, const Owner& owner) {
  const auto version = owner.version + 1;
  Query(connection.cached("UPDATE roster_owners SET version = ? WHERE id = ?"))
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

std::vector<RosterChange> read_items(const Connection& connection, Query& query) {
  std::vector<RosterChange> changes;
  while (query.step()) {
    auto jid = query.text(0);
    if (changes.empty() || changes.back().item.jid != jid) {
      RosterChange change;
      change.item.jid = std::move(jid);
      change.item.name = query.text(1);
      const auto subscription = parse_subscription(query.text(2));
      if (!subscription) {
        connection.fail_with("reading roster item '" + change.item.jid + "'",
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

class SqliteRoster final : public RosterStore {
 public:
  explicit SqliteRoster(Database& database) : database_(database) {}

  Roster get(const std::string& owner) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::read);
    const auto found = find_owner(connection, owner);
    if (!found) return {};
    Roster roster{found->version, {}};
    static const std::string sql =
        std::string(item_columns) +
        " WHERE i.owner_id = ? AND i.removed = 0 ORDER BY i.jid, g.position";
    Query query(connection.cached(sql));
    query.bind(found->id);
    for (auto& change : read_items(connection, query))
      roster.items.push_back(std::move(change.item));
    return roster;
  }

  std::optional<RosterItem> get_item(const std::string& owner, const std::string& jid) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    static const std::string sql =
        std::string(item_columns) +
        " JOIN roster_owners o ON o.id = i.owner_id"
        " WHERE o.owner = ? AND i.jid = ? AND i.removed = 0 ORDER BY g.position";
    Query query(connection.cached(sql));
    query.bind(owner).bind(jid);
    auto items = read_items(connection, query);
    if (items.empty()) return std::nullopt;
    return std::move(items.front().item);
  }

  std::int64_t put_item(const std::string& owner, const RosterItem& item) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::write);
    const auto found = find_or_add_owner(connection, owner);
    const auto version = bump_version(connection, found);
    Query(connection.cached("DELETE FROM roster_groups WHERE owner_id = ? AND jid = ?"))
        .bind(found.id)
        .bind(item.jid)
        .run();
    Query(
        connection.cached("INSERT INTO roster_items"
                          " (owner_id, jid, name, subscription, ask, approved, removed, version)"
                          " VALUES (?, ?, ?, ?, ?, ?, 0, ?)"
                          " ON CONFLICT (owner_id, jid) DO UPDATE SET name = excluded.name,"
                          " subscription = excluded.subscription, ask = excluded.ask,"
                          " approved = excluded.approved, removed = 0, version = excluded.version"))
        .bind(found.id)
        .bind(item.jid)
        .bind(item.name)
        .bind(subscription_name(item.subscription))
        .bind(std::int64_t{item.ask})
        .bind(std::int64_t{item.approved})
        .bind(version)
        .run();
    std::int64_t position = 0;
    for (const auto& group : unique_groups(item.groups)) {
      Query(connection.cached("INSERT INTO roster_groups (owner_id, jid, position, group_name) "
                              "VALUES (?, ?, ?, ?)"))
          .bind(found.id)
          .bind(item.jid)
          .bind(position++)
          .bind(group)
          .run();
    }
    transaction.commit();
    return version;
  }

  std::optional<std::int64_t> remove_item(const std::string& owner,
                                          const std::string& jid) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::write);
    const auto found = find_owner(connection, owner);
    if (!found) return std::nullopt;
    {
      Query query(connection.cached(
          "SELECT 1 FROM roster_items WHERE owner_id = ? AND jid = ? AND removed = 0"));
      if (!query.bind(found->id).bind(jid).step()) return std::nullopt;
    }
    const auto version = bump_version(connection, *found);
    Query(connection.cached("DELETE FROM roster_groups WHERE owner_id = ? AND jid = ?"))
        .bind(found->id)
        .bind(jid)
        .run();
    // The row stays as a tombstone so changes_since can report the removal.
    Query(connection.cached(
              "UPDATE roster_items SET removed = 1, name = '', subscription = 'none', ask = 0,"
              " approved = 0, version = ? WHERE owner_id = ? AND jid = ?"))
        .bind(version)
        .bind(found->id)
        .bind(jid)
        .run();
    transaction.commit();
    return version;
  }

  std::optional<std::vector<RosterChange>> changes_since(const std::string& owner,
                                                         std::int64_t since) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::read);
    const auto found = find_owner(connection, owner);
    const auto current = found ? found->version : 0;
    if (since < 0 || since > current) return std::nullopt;
    if (since == current) return std::vector<RosterChange>{};
    static const std::string sql =
        std::string(item_columns) +
        " WHERE i.owner_id = ? AND i.version > ? ORDER BY i.version, g.position";
    Query query(connection.cached(sql));
    query.bind(found->id).bind(since);
    auto changes = read_items(connection, query);
    for (auto& change : changes) {
      if (change.removed) change.item = removed_item(std::move(change.item.jid));
    }
    return changes;
  }

  std::int64_t version(const std::string& owner) override {
    std::lock_guard lock(database_.mutex);
    const auto found = find_owner(database_.connection, owner);
    return found ? found->version : 0;
  }

  void add_pending_in(const std::string& owner, const std::string& from,
                      const std::string& stanza) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::write);
    const auto found = find_or_add_owner(connection, owner);
    // Delete and insert rather than update: a repeated request moves to the
    // end, after the requests that are now older than it.
    Query(connection.cached("DELETE FROM roster_pending_in WHERE owner_id = ? AND from_jid = ?"))
        .bind(found.id)
        .bind(from)
        .run();
    Query(connection.cached(
              "INSERT INTO roster_pending_in (owner_id, from_jid, stanza) VALUES (?, ?, ?)"))
        .bind(found.id)
        .bind(from)
        .bind(stanza)
        .run();
    transaction.commit();
  }

  bool remove_pending_in(const std::string& owner, const std::string& from) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Query(connection.cached("DELETE FROM roster_pending_in WHERE from_jid = ?"
                            " AND owner_id = (SELECT id FROM roster_owners WHERE owner = ?)"))
        .bind(from)
        .bind(owner)
        .run();
    return connection.changes() > 0;
  }

  std::vector<PendingIn> pending_in(const std::string& owner) override {
    std::lock_guard lock(database_.mutex);
    Query query(database_.connection.cached(
        "SELECT p.from_jid, p.stanza FROM roster_pending_in p"
        " JOIN roster_owners o ON o.id = p.owner_id WHERE o.owner = ? ORDER BY p.id"));
    query.bind(owner);
    std::vector<PendingIn> pending;
    while (query.step()) pending.push_back(PendingIn{query.text(0), query.text(1)});
    return pending;
  }

  std::vector<std::string> owners() override {
    std::lock_guard lock(database_.mutex);
    Query query(database_.connection.cached(
        "SELECT owner FROM roster_owners WHERE version > 0"
        " OR id IN (SELECT owner_id FROM roster_pending_in) ORDER BY owner"));
    std::vector<std::string> result;
    while (query.step()) result.push_back(query.text(0));
    return result;
  }

  void import_roster(const std::string& owner, std::int64_t version,
                     const std::vector<RosterChange>& changes) override {
    check_roster_import(version, changes);
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::write);
    const auto found = find_or_add_owner(connection, owner);
    // Groups follow the items by ON DELETE CASCADE.
    Query(connection.cached("DELETE FROM roster_items WHERE owner_id = ?")).bind(found.id).run();
    auto item_version = version - static_cast<std::int64_t>(changes.size());
    for (const auto& change : changes) {
      const auto& item = change.item;
      Query(connection.cached(
                "INSERT INTO roster_items"
                " (owner_id, jid, name, subscription, ask, approved, removed, version)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"))
          .bind(found.id)
          .bind(item.jid)
          .bind(change.removed ? std::string() : item.name)
          .bind(subscription_name(change.removed ? Subscription::none : item.subscription))
          .bind(std::int64_t{!change.removed && item.ask})
          .bind(std::int64_t{!change.removed && item.approved})
          .bind(std::int64_t{change.removed})
          .bind(++item_version)
          .run();
      if (change.removed) continue;
      std::int64_t position = 0;
      for (const auto& group : unique_groups(item.groups)) {
        Query(connection.cached("INSERT INTO roster_groups (owner_id, jid, position, group_name) "
                                "VALUES (?, ?, ?, ?)"))
            .bind(found.id)
            .bind(item.jid)
            .bind(position++)
            .bind(group)
            .run();
      }
    }
    Query(connection.cached("UPDATE roster_owners SET version = ? WHERE id = ?"))
        .bind(version)
        .bind(found.id)
        .run();
    transaction.commit();
  }

 private:
  Database& database_;
};

// ---- offline -------------------------------------------------------------

std::size_t count_messages(Connection& connection, const std::string& owner) {
  Query query(connection.cached("SELECT COUNT(*) FROM offline_messages WHERE owner = ?"));
  query.bind(owner).step();
  return static_cast<std::size_t>(query.integer(0));
}

class SqliteOffline final : public OfflineStore {
 public:
  explicit SqliteOffline(Database& database) : database_(database) {}

  bool push(const std::string& owner, const std::string& stanza, std::size_t limit) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::write);
    if (count_messages(connection, owner) >= limit) return false;
    Query(connection.cached("INSERT INTO offline_messages (owner, stanza) VALUES (?, ?)"))
        .bind(owner)
        .bind(stanza)
        .run();
    transaction.commit();
    return true;
  }

  std::vector<std::string> pop_all(const std::string& owner) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::write);
    std::vector<std::string> stanzas;
    {
      Query query(
          connection.cached("SELECT stanza FROM offline_messages WHERE owner = ? ORDER BY id"));
      query.bind(owner);
      while (query.step()) stanzas.push_back(query.text(0));
    }
    if (stanzas.empty()) return stanzas;
    Query(connection.cached("DELETE FROM offline_messages WHERE owner = ?")).bind(owner).run();
    transaction.commit();
    return stanzas;
  }

  std::size_t count(const std::string& owner) override {
    std::lock_guard lock(database_.mutex);
    return count_messages(database_.connection, owner);
  }

  std::vector<std::string> owners() override {
    std::lock_guard lock(database_.mutex);
    Query query(
        database_.connection.cached("SELECT DISTINCT owner FROM offline_messages ORDER BY owner"));
    std::vector<std::string> result;
    while (query.step()) result.push_back(query.text(0));
    return result;
  }

  std::vector<std::string> peek_all(const std::string& owner) override {
    std::lock_guard lock(database_.mutex);
    Query query(database_.connection.cached(
        "SELECT stanza FROM offline_messages WHERE owner = ? ORDER BY id"));
    query.bind(owner);
    std::vector<std::string> stanzas;
    while (query.step()) stanzas.push_back(query.text(0));
    return stanzas;
  }

 private:
  Database& database_;
};

// ---- multi-user chat -----------------------------------------------------

std::optional<std::int64_t> find_room_id(Connection& connection, const std::string& service,
                                         const std::string& name) {
  Query query(connection.cached("SELECT id FROM muc_rooms WHERE service = ? AND name = ?"));
  if (!query.bind(service).bind(name).step()) return std::nullopt;
  return query.integer(0);
}

class SqliteMuc final : public MucStore {
 public:
  explicit SqliteMuc(Database& database) : database_(database) {}

  void put_room(const MucRoom& room) override {
    std::lock_guard lock(database_.mutex);
    Query(database_.connection.cached(
              "INSERT INTO muc_rooms (service, name, config) VALUES (?, ?, ?)"
              " ON CONFLICT (service, name) DO UPDATE SET config = excluded.config"))
        .bind(room.service)
        .bind(room.name)
        .bind(room.config)
        .run();
  }

  std::optional<MucRoom> find_room(const std::string& service, const std::string& name) override {
    std::lock_guard lock(database_.mutex);
    Query query(
        database_.connection.cached("SELECT config FROM muc_rooms WHERE service = ? AND name = ?"));
    if (!query.bind(service).bind(name).step()) return std::nullopt;
    return MucRoom{service, name, query.text(0)};
  }

  std::vector<MucRoom> rooms(const std::string& service) override {
    std::lock_guard lock(database_.mutex);
    Query query(database_.connection.cached(
        "SELECT name, config FROM muc_rooms WHERE service = ? ORDER BY name"));
    query.bind(service);
    std::vector<MucRoom> result;
    while (query.step()) result.push_back(MucRoom{service, query.text(0), query.text(1)});
    return result;
  }

  bool remove_room(const std::string& service, const std::string& name) override {
    std::lock_guard lock(database_.mutex);
    // Affiliations follow by ON DELETE CASCADE.
    Query(database_.connection.cached("DELETE FROM muc_rooms WHERE service = ? AND name = ?"))
        .bind(service)
        .bind(name)
        .run();
    return database_.connection.changes() > 0;
  }

  bool set_affiliation(const std::string& service, const std::string& name,
                       const MucAffiliation& affiliation) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::write);
    const auto room_id = find_room_id(connection, service, name);
    if (!room_id) return false;
    if (affiliation.affiliation == "none") {
      Query(connection.cached("DELETE FROM muc_affiliations WHERE room_id = ? AND jid = ?"))
          .bind(*room_id)
          .bind(affiliation.jid)
          .run();
    } else {
      Query(connection.cached(
                "INSERT OR REPLACE INTO muc_affiliations (room_id, jid, affiliation, reason)"
                " VALUES (?, ?, ?, ?)"))
          .bind(*room_id)
          .bind(affiliation.jid)
          .bind(affiliation.affiliation)
          .bind(affiliation.reason)
          .run();
    }
    transaction.commit();
    return true;
  }

  std::vector<MucAffiliation> affiliations(const std::string& service,
                                           const std::string& name) override {
    std::lock_guard lock(database_.mutex);
    Query query(database_.connection.cached(
        "SELECT a.jid, a.affiliation, a.reason FROM muc_affiliations a"
        " JOIN muc_rooms r ON r.id = a.room_id WHERE r.service = ? AND r.name = ? ORDER BY a.jid"));
    query.bind(service).bind(name);
    std::vector<MucAffiliation> result;
    while (query.step())
      result.push_back(MucAffiliation{query.text(0), query.text(1), query.text(2)});
    return result;
  }

  std::vector<std::string> services() override {
    std::lock_guard lock(database_.mutex);
    Query query(
        database_.connection.cached("SELECT DISTINCT service FROM muc_rooms ORDER BY service"));
    std::vector<std::string> result;
    while (query.step()) result.push_back(query.text(0));
    return result;
  }

 private:
  Database& database_;
};

// ---- message archive -----------------------------------------------------

class SqliteArchive final : public ArchiveStore {
 public:
  explicit SqliteArchive(Database& database) : database_(database) {}

  bool append(const std::string& owner, const ArchivedMessage& message) override {
    std::lock_guard lock(database_.mutex);
    Query(database_.connection.cached(
              "INSERT OR IGNORE INTO archive_messages (owner, id, timestamp, with_jid, stanza)"
              " VALUES (?, ?, ?, ?, ?)"))
        .bind(owner)
        .bind(message.id)
        .bind(message.timestamp)
        .bind(message.with)
        .bind(message.stanza)
        .run();
    return database_.connection.changes() > 0;
  }

  std::optional<ArchivePage> query(const std::string& owner, const ArchiveQuery& query) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::read);
    struct Bound {
      std::int64_t timestamp, seq;
    };
    auto locate = [&](const std::optional<std::string>& id) -> std::optional<std::optional<Bound>> {
      if (!id) return std::optional<Bound>{};
      Query found(connection.cached(
          "SELECT timestamp, seq FROM archive_messages WHERE owner = ? AND id = ?"));
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
      Query count(connection.cached(sql::archive_count_sql(query)));
      bind_filters(count);
      count.step();
      page.count = static_cast<std::size_t>(count.integer(0));
    }
    Query rows(
        connection.cached(sql::archive_page_sql(query, after->has_value(), before->has_value())));
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
  }

  std::size_t trim(const std::string& owner, std::size_t keep) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::write);
    std::int64_t timestamp = 0;
    std::int64_t seq = 0;
    {
      Query newest_dropped(
          connection.cached("SELECT timestamp, seq FROM archive_messages WHERE owner = ?"
                            " ORDER BY timestamp DESC, seq DESC LIMIT 1 OFFSET ?"));
      if (!newest_dropped.bind(owner).bind(static_cast<std::int64_t>(keep)).step()) return 0;
      timestamp = newest_dropped.integer(0);
      seq = newest_dropped.integer(1);
    }
    Query(connection.cached("DELETE FROM archive_messages WHERE owner = ?"
                            " AND (timestamp < ? OR (timestamp = ? AND seq <= ?))"))
        .bind(owner)
        .bind(timestamp)
        .bind(timestamp)
        .bind(seq)
        .run();
    const auto removed = static_cast<std::size_t>(connection.changes());
    transaction.commit();
    return removed;
  }

  std::vector<std::string> owners() override {
    std::lock_guard lock(database_.mutex);
    Query query(database_.connection.cached(
        "SELECT owner FROM archive_messages UNION SELECT owner FROM archive_prefs ORDER BY owner"));
    std::vector<std::string> result;
    while (query.step()) result.push_back(query.text(0));
    return result;
  }

  void remove_owner(const std::string& owner) override {
    std::lock_guard lock(database_.mutex);
    auto& connection = database_.connection;
    Transaction transaction(connection, Kind::write);
    Query(connection.cached("DELETE FROM archive_messages WHERE owner = ?")).bind(owner).run();
    Query(connection.cached("DELETE FROM archive_prefs WHERE owner = ?")).bind(owner).run();
    transaction.commit();
  }

  std::optional<ArchivePrefs> prefs(const std::string& owner) override {
    std::lock_guard lock(database_.mutex);
    Query query(database_.connection.cached(
        "SELECT default_policy, always_jids, never_jids FROM archive_prefs WHERE owner = ?"));
    if (!query.bind(owner).step()) return std::nullopt;
    return ArchivePrefs{query.text(0), sql::split_jid_list(query.text(1)),
                        sql::split_jid_list(query.text(2))};
  }

  void set_prefs(const std::string& owner, const ArchivePrefs& prefs) override {
    std::lock_guard lock(database_.mutex);
    Query(
        database_.connection.cached(
            "INSERT OR REPLACE INTO archive_prefs (owner, default_policy, always_jids, never_jids)"
            " VALUES (?, ?, ?, ?)"))
        .bind(owner)
        .bind(prefs.default_policy)
        .bind(sql::join_jid_list(prefs.always))
        .bind(sql::join_jid_list(prefs.never))
        .run();
  }

 private:
  Database& database_;
};

// ---- the backend ---------------------------------------------------------

class SqliteStorage final : public Storage {
 public:
  SqliteStorage(const std::string& path, std::span<const sql::Migration> migrations)
      : database_(path),
        accounts_(database_),
        roster_(database_),
        offline_(database_),
        muc_(database_),
        archive_(database_) {
    migrate(database_.connection, migrations);
  }

  AccountStore& accounts() override { return accounts_; }
  RosterStore& roster() override { return roster_; }
  OfflineStore& offline() override { return offline_; }
  MucStore& muc() override { return muc_; }
  ArchiveStore& archive() override { return archive_; }

  void flush() override {
    std::lock_guard lock(database_.mutex);
    // Copies the WAL into the main file and empties it, so the data no
    // longer depends on the -wal file surviving.
    database_.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)");
  }

  std::string backend_name() const override { return "sqlite"; }

 private:
  Database database_;
  SqliteAccounts accounts_;
  SqliteRoster roster_;
  SqliteOffline offline_;
  SqliteMuc muc_;
  SqliteArchive archive_;
};

}  // namespace

std::unique_ptr<Storage> open(const std::string& path) { return open(path, sql::migrations()); }

std::unique_ptr<Storage> open(const std::string& path, std::span<const sql::Migration> migrations) {
  return std::make_unique<SqliteStorage>(path, migrations);
}

}  // namespace parley::storage::sqlite
