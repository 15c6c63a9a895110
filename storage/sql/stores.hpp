// The stores of the SQL backends, written once over an Access policy that
// each backend provides (SqliteAccess, MysqlAccess). The policy says how a
// unit of work reaches a connection and how the two SQL dialects differ in
// the few statements the portable schema cannot express the same way;
// everything else (which rows, in which order, under which rules) lives
// here, so SQLite and MySQL cannot drift apart.
//
// An Access type provides:
//   Connection, Query        Query(Connection&, sql) with bind/bind_blob,
//                            step, run (rows changed), integer, text, blob,
//                            is_null
//   read(work)               work(Connection&) on one consistent snapshot
//   write(work)              work(Connection&) in a transaction committed
//                            when work returns; work may be run again from
//                            scratch (a retried deadlock), so it keeps no
//                            state outside its own frame
//   single(work)             work(Connection&) of one statement
//   fail(context, reason)    throws storage::Error naming the database
//   insert_ignore            "INSERT ... that skips rows whose key exists"
//   lock_rows                suffix of a SELECT inside write() that locks
//                            the rows it read until commit ("" where the
//                            write transaction already excludes others)
//   upsert(keys, columns)    "on key conflict, set these columns to the
//                            inserted values" clause
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/backend_support.hpp"
#include "storage/sql/archive_sql.hpp"
#include "storage/storage.hpp"

namespace parley::storage::sql {

template <class Access>
std::vector<std::string> read_strings(typename Access::Query& query) {
  std::vector<std::string> values;
  while (query.step()) values.push_back(query.text(0));
  return values;
}

// ---- accounts ----------------------------------------------------------------

template <class Access>
class SqlAccounts final : public AccountStore {
  using Connection = typename Access::Connection;
  using Query = typename Access::Query;

 public:
  explicit SqlAccounts(Access& access) : access_(access) {}

  bool create(const Account& account) override {
    static const std::string insert =
        std::string(Access::insert_ignore) +
        " INTO accounts (domain, username, created_at) VALUES (?, ?, ?)";
    return access_.write([&](Connection& connection) {
      const auto added = Query(connection, insert)
                             .bind(account.domain)
                             .bind(account.username)
                             .bind(account.created_at)
                             .run();
      if (added == 0) return false;
      write_credentials(connection, account.domain, account.username, "sha1", account.sha1);
      write_credentials(connection, account.domain, account.username, "sha256", account.sha256);
      return true;
    });
  }

  std::optional<Account> find(const std::string& username, const std::string& domain) override {
    return access_.single([&](Connection& connection) {
      Query query(connection,
                  "SELECT a.created_at, c.hash_name, c.salt, c.iterations, c.stored_key,"
                  " c.server_key FROM accounts a LEFT JOIN account_credentials c"
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
        credentials->salt = query.blob(2);
        credentials->iterations = static_cast<std::uint32_t>(query.integer(3));
        credentials->stored_key = query.blob(4);
        credentials->server_key = query.blob(5);
      }
      return account;
    });
  }

  bool set_credentials(const std::string& username, const std::string& domain,
                       const sasl::ScramCredentials& sha1,
                       const sasl::ScramCredentials& sha256) override {
    static const std::string exists =
        "SELECT 1 FROM accounts WHERE domain = ? AND username = ?" + std::string(Access::lock_rows);
    return access_.write([&](Connection& connection) {
      if (!Query(connection, exists).bind(domain).bind(username).step()) return false;
      write_credentials(connection, domain, username, "sha1", sha1);
      write_credentials(connection, domain, username, "sha256", sha256);
      return true;
    });
  }

  bool remove(const std::string& username, const std::string& domain) override {
    return access_.write([&](Connection& connection) {
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
      Query(connection, "DELETE FROM archive_messages WHERE owner = ?").bind(owner).run();
      Query(connection, "DELETE FROM archive_prefs WHERE owner = ?").bind(owner).run();
      return true;
    });
  }

  std::vector<std::string> list(const std::string& domain) override {
    return access_.single([&](Connection& connection) {
      Query query(connection, "SELECT username FROM accounts WHERE domain = ? ORDER BY username");
      query.bind(domain);
      return read_strings<Access>(query);
    });
  }

  std::vector<std::string> domains() override {
    return access_.single([&](Connection& connection) {
      Query query(connection, "SELECT DISTINCT domain FROM accounts ORDER BY domain");
      return read_strings<Access>(query);
    });
  }

 private:
  static void write_credentials(Connection& connection, const std::string& domain,
                                const std::string& username, std::string_view hash_name,
                                const sasl::ScramCredentials& credentials) {
    Query(connection,
          "REPLACE INTO account_credentials"
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

  Access& access_;
};

// ---- roster ------------------------------------------------------------------

template <class Access>
class SqlRoster final : public RosterStore {
  using Connection = typename Access::Connection;
  using Query = typename Access::Query;

 public:
  explicit SqlRoster(Access& access) : access_(access) {}

  Roster get(const std::string& owner) override {
    static const std::string sql = std::string(item_columns) +
                                   " WHERE i.owner_id = ? AND i.removed = 0 ORDER BY i.jid, g.position";
    return access_.read([&](Connection& connection) {
      const auto found = find_owner(connection, owner, false);
      if (!found) return Roster{};
      Roster roster{found->version, {}};
      Query query(connection, sql);
      query.bind(found->id);
      for (auto& change : read_items(query)) roster.items.push_back(std::move(change.item));
      return roster;
    });
  }

  std::optional<RosterItem> get_item(const std::string& owner, const std::string& jid) override {
    static const std::string sql = std::string(item_columns) +
                                   " JOIN roster_owners o ON o.id = i.owner_id"
                                   " WHERE o.owner = ? AND i.jid = ? AND i.removed = 0"
                                   " ORDER BY g.position";
    return access_.single([&](Connection& connection) -> std::optional<RosterItem> {
      Query query(connection, sql);
      query.bind(owner).bind(jid);
      auto items = read_items(query);
      if (items.empty()) return std::nullopt;
      return std::move(items.front().item);
    });
  }

  std::int64_t put_item(const std::string& owner, const RosterItem& item) override {
    return access_.write([&](Connection& connection) {
      const auto found = find_or_add_owner(connection, owner);
      const auto version = bump_version(connection, found);
      write_item(connection, found.id, item, false, version);
      return version;
    });
  }

  std::optional<std::int64_t> remove_item(const std::string& owner,
                                          const std::string& jid) override {
    return access_.write([&](Connection& connection) -> std::optional<std::int64_t> {
      const auto found = find_owner(connection, owner, true);
      if (!found) return std::nullopt;
      Query present(connection,
                    "SELECT 1 FROM roster_items WHERE owner_id = ? AND jid = ? AND removed = 0");
      if (!present.bind(found->id).bind(jid).step()) return std::nullopt;
      const auto version = bump_version(connection, *found);
      // The row stays as a tombstone so changes_since can report the removal.
      write_item(connection, found->id, removed_item(jid), true, version);
      return version;
    });
  }

  std::optional<std::vector<RosterChange>> changes_since(const std::string& owner,
                                                         std::int64_t since) override {
    static const std::string sql = std::string(item_columns) +
                                   " WHERE i.owner_id = ? AND i.version > ?"
                                   " ORDER BY i.version, g.position";
    return access_.read([&](Connection& connection) -> std::optional<std::vector<RosterChange>> {
      const auto found = find_owner(connection, owner, false);
      const auto current = found ? found->version : 0;
      if (since < 0 || since > current) return std::nullopt;
      if (since == current) return std::vector<RosterChange>{};
      Query query(connection, sql);
      query.bind(found->id).bind(since);
      auto changes = read_items(query);
      for (auto& change : changes) {
        if (change.removed) change.item = removed_item(std::move(change.item.jid));
      }
      return changes;
    });
  }

  std::int64_t version(const std::string& owner) override {
    return access_.single([&](Connection& connection) {
      const auto found = find_owner(connection, owner, false);
      return found ? found->version : std::int64_t{0};
    });
  }

  void add_pending_in(const std::string& owner, const std::string& from,
                      const std::string& stanza) override {
    access_.write([&](Connection& connection) {
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
    return access_.single([&](Connection& connection) {
      return Query(connection,
                   "DELETE FROM roster_pending_in WHERE from_jid = ?"
                   " AND owner_id = (SELECT id FROM roster_owners WHERE owner = ?)")
                 .bind(from)
                 .bind(owner)
                 .run() > 0;
    });
  }

  std::vector<PendingIn> pending_in(const std::string& owner) override {
    return access_.single([&](Connection& connection) {
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
    return access_.single([&](Connection& connection) {
      Query query(connection,
                  "SELECT owner FROM roster_owners WHERE version > 0"
                  " OR id IN (SELECT owner_id FROM roster_pending_in) ORDER BY owner");
      return read_strings<Access>(query);
    });
  }

  void import_roster(const std::string& owner, std::int64_t version,
                     const std::vector<RosterChange>& changes) override {
    check_roster_import(version, changes);
    access_.write([&](Connection& connection) {
      const auto found = find_or_add_owner(connection, owner);
      // Groups follow the items by ON DELETE CASCADE.
      Query(connection, "DELETE FROM roster_items WHERE owner_id = ?").bind(found.id).run();
      auto item_version = version - static_cast<std::int64_t>(changes.size());
      for (const auto& change : changes) {
        write_item(connection, found.id,
                   change.removed ? removed_item(change.item.jid) : change.item, change.removed,
                   ++item_version);
      }
      Query(connection, "UPDATE roster_owners SET version = ? WHERE id = ?")
          .bind(version)
          .bind(found.id)
          .run();
    });
  }

 private:
  struct Owner {
    std::int64_t id;
    std::int64_t version;
  };

  // Item rows joined with their groups: one row per group (or one with a
  // NULL group), the rows of an item adjacent. Columns: jid, name,
  // subscription, ask, approved, removed, group_name.
  static constexpr std::string_view item_columns =
      "SELECT i.jid, i.name, i.subscription, i.ask, i.approved, i.removed, g.group_name"
      " FROM roster_items i LEFT JOIN roster_groups g ON g.owner_id = i.owner_id AND g.jid = i.jid";

  // With lock, inside write(): the version counter is read, raised and
  // written back by one transaction at a time.
  static std::optional<Owner> find_owner(Connection& connection, const std::string& owner,
                                         bool lock) {
    static const std::string plain = "SELECT id, version FROM roster_owners WHERE owner = ?";
    static const std::string locked = plain + std::string(Access::lock_rows);
    Query query(connection, lock ? locked : plain);
    if (!query.bind(owner).step()) return std::nullopt;
    return Owner{query.integer(0), query.integer(1)};
  }

  static Owner find_or_add_owner(Connection& connection, const std::string& owner) {
    static const std::string insert = std::string(Access::insert_ignore) +
                                      " INTO roster_owners (owner, version) VALUES (?, 0)";
    if (auto found = find_owner(connection, owner, true)) return *found;
    // Two first changes of one owner at once: one insert waits for the
    // other and then skips its row; both then lock the same row.
    Query(connection, insert).bind(owner).run();
    return *find_owner(connection, owner, true);
  }

  static std::int64_t bump_version(Connection& connection, const Owner& owner) {
    const auto version = owner.version + 1;
    Query(connection, "UPDATE roster_owners SET version = ? WHERE id = ?")
        .bind(version)
        .bind(owner.id)
        .run();
    return version;
  }

  static void write_item(Connection& connection, std::int64_t owner_id, const RosterItem& item,
                         bool removed, std::int64_t version) {
    static const std::string upsert_item =
        "INSERT INTO roster_items"
        " (owner_id, jid, name, subscription, ask, approved, removed, version)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) " +
        Access::upsert("owner_id, jid",
                       {"name", "subscription", "ask", "approved", "removed", "version"});
    Query(connection, "DELETE FROM roster_groups WHERE owner_id = ? AND jid = ?")
        .bind(owner_id)
        .bind(item.jid)
        .run();
    Query(connection, upsert_item)
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

  std::vector<RosterChange> read_items(Query& query) const {
    std::vector<RosterChange> changes;
    while (query.step()) {
      auto jid = query.text(0);
      if (changes.empty() || changes.back().item.jid != jid) {
        RosterChange change;
        change.item.jid = std::move(jid);
        change.item.name = query.text(1);
        const auto subscription = parse_subscription(query.text(2));
        if (!subscription) {
          access_.fail("reading roster item '" + change.item.jid + "'",
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

  Access& access_;
};

// ---- offline -----------------------------------------------------------------

template <class Access>
class SqlOffline final : public OfflineStore {
  using Connection = typename Access::Connection;
  using Query = typename Access::Query;

 public:
  explicit SqlOffline(Access& access) : access_(access) {}

  bool push(const std::string& owner, const std::string& stanza, std::size_t limit) override {
    // The lock covers the owner's range of the index, so a concurrent push
    // for the same owner waits for this one's count and insert.
    static const std::string count_sql = "SELECT COUNT(*) FROM offline_messages WHERE owner = ?" +
                                         std::string(Access::lock_rows);
    return access_.write([&](Connection& connection) {
      Query count(connection, count_sql);
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
    static const std::string select = "SELECT stanza FROM offline_messages WHERE owner = ?"
                                      " ORDER BY id" +
                                      std::string(Access::lock_rows);
    return access_.write([&](Connection& connection) {
      std::vector<std::string> stanzas;
      {
        Query query(connection, select);
        query.bind(owner);
        stanzas = read_strings<Access>(query);
      }
      if (!stanzas.empty())
        Query(connection, "DELETE FROM offline_messages WHERE owner = ?").bind(owner).run();
      return stanzas;
    });
  }

  std::size_t count(const std::string& owner) override {
    return access_.single([&](Connection& connection) {
      Query query(connection, "SELECT COUNT(*) FROM offline_messages WHERE owner = ?");
      query.bind(owner).step();
      return static_cast<std::size_t>(query.integer(0));
    });
  }

  std::vector<std::string> owners() override {
    return access_.single([&](Connection& connection) {
      Query query(connection, "SELECT DISTINCT owner FROM offline_messages ORDER BY owner");
      return read_strings<Access>(query);
    });
  }

  std::vector<std::string> peek_all(const std::string& owner) override {
    return access_.single([&](Connection& connection) {
      Query query(connection, "SELECT stanza FROM offline_messages WHERE owner = ? ORDER BY id");
      query.bind(owner);
      return read_strings<Access>(query);
    });
  }

 private:
  Access& access_;
};

// ---- multi-user chat ---------------------------------------------------------

template <class Access>
class SqlMuc final : public MucStore {
  using Connection = typename Access::Connection;
  using Query = typename Access::Query;

 public:
  explicit SqlMuc(Access& access) : access_(access) {}

  void put_room(const MucRoom& room) override {
    // An upsert, not REPLACE: replacing the row would give the room a new id
    // and cascade away its affiliations.
    static const std::string sql = "INSERT INTO muc_rooms (service, name, config) VALUES (?, ?, ?) " +
                                   Access::upsert("service, name", {"config"});
    access_.single([&](Connection& connection) {
      Query(connection, sql).bind(room.service).bind(room.name).bind(room.config).run();
    });
  }

  std::optional<MucRoom> find_room(const std::string& service, const std::string& name) override {
    return access_.single([&](Connection& connection) -> std::optional<MucRoom> {
      Query query(connection, "SELECT config FROM muc_rooms WHERE service = ? AND name = ?");
      if (!query.bind(service).bind(name).step()) return std::nullopt;
      return MucRoom{service, name, query.text(0)};
    });
  }

  std::vector<MucRoom> rooms(const std::string& service) override {
    return access_.single([&](Connection& connection) {
      Query query(connection, "SELECT name, config FROM muc_rooms WHERE service = ? ORDER BY name");
      query.bind(service);
      std::vector<MucRoom> result;
      while (query.step()) result.push_back(MucRoom{service, query.text(0), query.text(1)});
      return result;
    });
  }

  bool remove_room(const std::string& service, const std::string& name) override {
    return access_.single([&](Connection& connection) {
      // Affiliations follow by ON DELETE CASCADE.
      return Query(connection, "DELETE FROM muc_rooms WHERE service = ? AND name = ?")
                 .bind(service)
                 .bind(name)
                 .run() > 0;
    });
  }

  bool set_affiliation(const std::string& service, const std::string& name,
                       const MucAffiliation& affiliation) override {
    static const std::string find_room = "SELECT id FROM muc_rooms WHERE service = ? AND name = ?" +
                                         std::string(Access::lock_rows);
    return access_.write([&](Connection& connection) {
      std::int64_t room_id = 0;
      {
        Query query(connection, find_room);
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
              "REPLACE INTO muc_affiliations (room_id, jid, affiliation, reason)"
              " VALUES (?, ?, ?, ?)")
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
    return access_.single([&](Connection& connection) {
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
    return access_.single([&](Connection& connection) {
      Query query(connection, "SELECT DISTINCT service FROM muc_rooms ORDER BY service");
      return read_strings<Access>(query);
    });
  }

 private:
  Access& access_;
};

// ---- message archive ---------------------------------------------------------

template <class Access>
class SqlArchive final : public ArchiveStore {
  using Connection = typename Access::Connection;
  using Query = typename Access::Query;

 public:
  explicit SqlArchive(Access& access) : access_(access) {}

  bool append(const std::string& owner, const ArchivedMessage& message) override {
    static const std::string sql = std::string(Access::insert_ignore) +
                                   " INTO archive_messages (owner, id, timestamp, with_jid, stanza)"
                                   " VALUES (?, ?, ?, ?, ?)";
    return access_.single([&](Connection& connection) {
      return Query(connection, sql)
                 .bind(owner)
                 .bind(message.id)
                 .bind(message.timestamp)
                 .bind(message.with)
                 .bind(message.stanza)
                 .run() > 0;
    });
  }

  std::optional<ArchivePage> query(const std::string& owner, const ArchiveQuery& query) override {
    return access_.read([&](Connection& connection) -> std::optional<ArchivePage> {
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
        Query count(connection, archive_count_sql(query));
        bind_filters(count);
        count.step();
        page.count = static_cast<std::size_t>(count.integer(0));
      }
      Query rows(connection, archive_page_sql(query, after->has_value(), before->has_value()));
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
    return access_.write([&](Connection& connection) -> std::size_t {
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

  std::vector<std::string> owners() override {
    return access_.single([&](Connection& connection) {
      Query query(connection,
                  "SELECT owner FROM archive_messages UNION SELECT owner FROM archive_prefs"
                  " ORDER BY owner");
      return read_strings<Access>(query);
    });
  }

  void remove_owner(const std::string& owner) override {
    access_.write([&](Connection& connection) {
      Query(connection, "DELETE FROM archive_messages WHERE owner = ?").bind(owner).run();
      Query(connection, "DELETE FROM archive_prefs WHERE owner = ?").bind(owner).run();
    });
  }

  std::optional<ArchivePrefs> prefs(const std::string& owner) override {
    return access_.single([&](Connection& connection) -> std::optional<ArchivePrefs> {
      Query query(connection,
                  "SELECT default_policy, always_jids, never_jids FROM archive_prefs"
                  " WHERE owner = ?");
      if (!query.bind(owner).step()) return std::nullopt;
      return ArchivePrefs{query.text(0), split_jid_list(query.text(1)),
                          split_jid_list(query.text(2))};
    });
  }

  void set_prefs(const std::string& owner, const ArchivePrefs& prefs) override {
    access_.single([&](Connection& connection) {
      Query(connection,
            "REPLACE INTO archive_prefs (owner, default_policy, always_jids, never_jids)"
            " VALUES (?, ?, ?, ?)")
          .bind(owner)
          .bind(prefs.default_policy)
          .bind(join_jid_list(prefs.always))
          .bind(join_jid_list(prefs.never))
          .run();
    });
  }

 private:
  Access& access_;
};

// Every store of a SQL backend over one Access.
template <class Access>
struct SqlStores {
  explicit SqlStores(Access& access)
      : accounts(access), roster(access), offline(access), muc(access), archive(access) {}
  SqlAccounts<Access> accounts;
  SqlRoster<Access> roster;
  SqlOffline<Access> offline;
  SqlMuc<Access> muc;
  SqlArchive<Access> archive;
};

}  // namespace parley::storage::sql
