#include "storage/memory/memory_storage.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <unordered_map>

#include "storage/backend_support.hpp"

namespace parley::storage::memory {

namespace {

struct StoredItem {
  RosterItem item;  // for a tombstone only item.jid is kept
  std::int64_t version = 0;
  bool removed = false;
};

struct OwnerRoster {
  std::int64_t version = 0;
  // Tombstones are kept for the owner's lifetime, as in the SQL backends.
  std::map<std::string, StoredItem> items;
  std::vector<RosterStore::PendingIn> pending;  // oldest request first
};

struct State {
  std::mutex mutex;
  std::map<std::string, std::map<std::string, Account>> accounts;  // domain -> username -> account
  std::unordered_map<std::string, OwnerRoster> rosters;
  std::unordered_map<std::string, std::vector<std::string>> offline;
  struct StoredRoom {
    std::string config;
    std::map<std::string, MucAffiliation> affiliations;  // by jid
  };
  std::map<std::string, std::map<std::string, StoredRoom>> muc_rooms;  // service -> name -> room
  struct StoredMessage {
    ArchivedMessage message;
    std::int64_t sequence = 0;  // arrival order, for equal timestamps
  };
  struct OwnerArchive {
    std::vector<StoredMessage> messages;  // by (timestamp, sequence)
    std::optional<ArchivePrefs> prefs;
  };
  std::unordered_map<std::string, OwnerArchive> archives;
  std::int64_t archive_sequence = 0;
};

class MemoryAccounts final : public AccountStore {
 public:
  explicit MemoryAccounts(State& state) : state_(state) {}

  bool create(const Account& account) override {
    std::lock_guard lock(state_.mutex);
    return state_.accounts[account.domain].try_emplace(account.username, account).second;
  }

  std::optional<Account> find(const std::string& username, const std::string& domain) override {
    std::lock_guard lock(state_.mutex);
    auto* account = locate(username, domain);
    if (account == nullptr) return std::nullopt;
    return *account;
  }

  bool set_credentials(const std::string& username, const std::string& domain,
                       const sasl::ScramCredentials& sha1,
                       const sasl::ScramCredentials& sha256) override {
    std::lock_guard lock(state_.mutex);
    auto* account = locate(username, domain);
    if (account == nullptr) return false;
    account->sha1 = sha1;
    account->sha256 = sha256;
    return true;
  }

  bool remove(const std::string& username, const std::string& domain) override {
    std::lock_guard lock(state_.mutex);
    const auto found_domain = state_.accounts.find(domain);
    if (found_domain == state_.accounts.end() || found_domain->second.erase(username) == 0)
      return false;
    if (found_domain->second.empty()) state_.accounts.erase(found_domain);
    const auto owner = owner_jid(username, domain);
    state_.rosters.erase(owner);
    state_.offline.erase(owner);
    state_.archives.erase(owner);
    return true;
  }

  std::vector<std::string> list(const std::string& domain) override {
    std::lock_guard lock(state_.mutex);
    std::vector<std::string> usernames;
    const auto found = state_.accounts.find(domain);
    if (found == state_.accounts.end()) return usernames;
    usernames.reserve(found->second.size());
    for (const auto& [username, account] : found->second) usernames.push_back(username);
    return usernames;
  }

  std::vector<std::string> domains() override {
    std::lock_guard lock(state_.mutex);
    std::vector<std::string> result;
    for (const auto& [domain, accounts] : state_.accounts) result.push_back(domain);
    return result;
  }

 private:
  Account* locate(const std::string& username, const std::string& domain) {
    const auto found_domain = state_.accounts.find(domain);
    if (found_domain == state_.accounts.end()) return nullptr;
    const auto found = found_domain->second.find(username);
    return found == found_domain->second.end() ? nullptr : &found->second;
  }

  State& state_;
};

class MemoryRoster final : public RosterStore {
 public:
  explicit MemoryRoster(State& state) : state_(state) {}

  Roster get(const std::string& owner) override {
    std::lock_guard lock(state_.mutex);
    const auto* roster = locate(owner);
    if (roster == nullptr) return {};
    Roster result{roster->version, {}};
    for (const auto& [jid, stored] : roster->items) {
      if (!stored.removed) result.items.push_back(stored.item);
    }
    return result;
  }

  std::optional<RosterItem> get_item(const std::string& owner, const std::string& jid) override {
    std::lock_guard lock(state_.mutex);
    const auto* roster = locate(owner);
    if (roster == nullptr) return std::nullopt;
    const auto found = roster->items.find(jid);
    if (found == roster->items.end() || found->second.removed) return std::nullopt;
    return found->second.item;
  }

  std::int64_t put_item(const std::string& owner, const RosterItem& item) override {
    std::lock_guard lock(state_.mutex);
    auto& roster = state_.rosters[owner];
    auto& stored = roster.items[item.jid];
    stored.item = item;
    stored.item.groups = unique_groups(item.groups);
    stored.removed = false;
    stored.version = ++roster.version;
    return stored.version;
  }

  std::optional<std::int64_t> remove_item(const std::string& owner,
                                          const std::string& jid) override {
    std::lock_guard lock(state_.mutex);
    auto* roster = locate(owner);
    if (roster == nullptr) return std::nullopt;
    const auto found = roster->items.find(jid);
    if (found == roster->items.end() || found->second.removed) return std::nullopt;
    found->second = StoredItem{removed_item(jid), ++roster->version, true};
    return roster->version;
  }

  std::optional<std::vector<RosterChange>> changes_since(const std::string& owner,
                                                         std::int64_t since) override {
    std::lock_guard lock(state_.mutex);
    const auto* roster = locate(owner);
    const auto current = roster != nullptr ? roster->version : 0;
    if (since < 0 || since > current) return std::nullopt;
    std::vector<const StoredItem*> changed;
    if (roster != nullptr) {
      for (const auto& [jid, stored] : roster->items) {
        if (stored.version > since) changed.push_back(&stored);
      }
    }
    std::ranges::sort(changed, {}, &StoredItem::version);
    std::vector<RosterChange> changes;
    changes.reserve(changed.size());
    for (const auto* stored : changed)
      changes.push_back(RosterChange{stored->item, stored->removed});
    return changes;
  }

  std::int64_t version(const std::string& owner) override {
    std::lock_guard lock(state_.mutex);
    const auto* roster = locate(owner);
    return roster != nullptr ? roster->version : 0;
  }

  void add_pending_in(const std::string& owner, const std::string& from,
                      const std::string& stanza) override {
    std::lock_guard lock(state_.mutex);
    auto& pending = state_.rosters[owner].pending;
    // A repeated request moves to the end, as in the SQL backends.
    std::erase_if(pending, [&](const PendingIn& request) { return request.from == from; });
    pending.push_back(PendingIn{from, stanza});
  }

  bool remove_pending_in(const std::string& owner, const std::string& from) override {
    std::lock_guard lock(state_.mutex);
    auto* roster = locate(owner);
    if (roster == nullptr) return false;
    return std::erase_if(roster->pending,
                         [&](const PendingIn& request) { return request.from == from; }) > 0;
  }

  std::vector<PendingIn> pending_in(const std::string& owner) override {
    std::lock_guard lock(state_.mutex);
    const auto* roster = locate(owner);
    if (roster == nullptr) return {};
    return roster->pending;
  }

  std::vector<std::string> owners() override {
    std::lock_guard lock(state_.mutex);
    std::vector<std::string> result;
    for (const auto& [owner, roster] : state_.rosters) {
      if (roster.version > 0 || !roster.pending.empty()) result.push_back(owner);
    }
    std::ranges::sort(result);
    return result;
  }

  void import_roster(const std::string& owner, std::int64_t version,
                     const std::vector<RosterChange>& changes) override {
    check_roster_import(version, changes);
    std::lock_guard lock(state_.mutex);
    auto& roster = state_.rosters[owner];
    roster.items.clear();
    auto item_version = version - static_cast<std::int64_t>(changes.size());
    for (const auto& change : changes) {
      auto item = change.removed ? removed_item(change.item.jid) : change.item;
      item.groups = unique_groups(item.groups);
      roster.items[change.item.jid] = StoredItem{std::move(item), ++item_version, change.removed};
    }
    roster.version = version;
  }

 private:
  OwnerRoster* locate(const std::string& owner) {
    const auto found = state_.rosters.find(owner);
    return found == state_.rosters.end() ? nullptr : &found->second;
  }

  State& state_;
};

class MemoryOffline final : public OfflineStore {
 public:
  explicit MemoryOffline(State& state) : state_(state) {}

  bool push(const std::string& owner, const std::string& stanza, std::size_t limit) override {
    std::lock_guard lock(state_.mutex);
    auto& stanzas = state_.offline[owner];
    if (stanzas.size() >= limit) {
      if (stanzas.empty()) state_.offline.erase(owner);
      return false;
    }
    stanzas.push_back(stanza);
    return true;
  }

  std::vector<std::string> pop_all(const std::string& owner) override {
    std::lock_guard lock(state_.mutex);
    const auto found = state_.offline.find(owner);
    if (found == state_.offline.end()) return {};
    auto stanzas = std::move(found->second);
    state_.offline.erase(found);
    return stanzas;
  }

  std::size_t count(const std::string& owner) override {
    std::lock_guard lock(state_.mutex);
    const auto found = state_.offline.find(owner);
    return found == state_.offline.end() ? 0 : found->second.size();
  }

  std::vector<std::string> owners() override {
    std::lock_guard lock(state_.mutex);
    std::vector<std::string> result;
    for (const auto& [owner, stanzas] : state_.offline) {
      if (!stanzas.empty()) result.push_back(owner);
    }
    std::ranges::sort(result);
    return result;
  }

  std::vector<std::string> peek_all(const std::string& owner) override {
    std::lock_guard lock(state_.mutex);
    const auto found = state_.offline.find(owner);
    if (found == state_.offline.end()) return {};
    return found->second;
  }

 private:
  State& state_;
};

class MemoryMuc final : public MucStore {
 public:
  explicit MemoryMuc(State& state) : state_(state) {}

  void put_room(const MucRoom& room) override {
    std::lock_guard lock(state_.mutex);
    state_.muc_rooms[room.service][room.name].config = room.config;
  }

  std::optional<MucRoom> find_room(const std::string& service, const std::string& name) override {
    std::lock_guard lock(state_.mutex);
    const auto* room = locate(service, name);
    if (room == nullptr) return std::nullopt;
    return MucRoom{service, name, room->config};
  }

  std::vector<MucRoom> rooms(const std::string& service) override {
    std::lock_guard lock(state_.mutex);
    std::vector<MucRoom> result;
    const auto found = state_.muc_rooms.find(service);
    if (found == state_.muc_rooms.end()) return result;
    for (const auto& [name, room] : found->second)
      result.push_back(MucRoom{service, name, room.config});
    return result;
  }

  bool remove_room(const std::string& service, const std::string& name) override {
    std::lock_guard lock(state_.mutex);
    const auto found = state_.muc_rooms.find(service);
    if (found == state_.muc_rooms.end() || found->second.erase(name) == 0) return false;
    if (found->second.empty()) state_.muc_rooms.erase(found);
    return true;
  }

  bool set_affiliation(const std::string& service, const std::string& name,
                       const MucAffiliation& affiliation) override {
    std::lock_guard lock(state_.mutex);
    auto* room = locate(service, name);
    if (room == nullptr) return false;
    if (affiliation.affiliation == "none") {
      room->affiliations.erase(affiliation.jid);
    } else {
      room->affiliations[affiliation.jid] = affiliation;
    }
    return true;
  }

  std::vector<MucAffiliation> affiliations(const std::string& service,
                                           const std::string& name) override {
    std::lock_guard lock(state_.mutex);
    std::vector<MucAffiliation> result;
    const auto* room = locate(service, name);
    if (room == nullptr) return result;
    for (const auto& [jid, affiliation] : room->affiliations) result.push_back(affiliation);
    return result;
  }

  std::vector<std::string> services() override {
    std::lock_guard lock(state_.mutex);
    std::vector<std::string> result;
    for (const auto& [service, rooms] : state_.muc_rooms) result.push_back(service);
    return result;
  }

 private:
  State::StoredRoom* locate(const std::string& service, const std::string& name) {
    const auto found = state_.muc_rooms.find(service);
    if (found == state_.muc_rooms.end()) return nullptr;
    const auto room = found->second.find(name);
    return room == found->second.end() ? nullptr : &room->second;
  }

  State& state_;
};

class MemoryArchive final : public ArchiveStore {
 public:
  explicit MemoryArchive(State& state) : state_(state) {}

  bool append(const std::string& owner, const ArchivedMessage& message) override {
    std::lock_guard lock(state_.mutex);
    auto& messages = state_.archives[owner].messages;
    if (std::ranges::any_of(messages,
                            [&](const auto& stored) { return stored.message.id == message.id; }))
      return false;
    State::StoredMessage stored{message, ++state_.archive_sequence};
    const auto position = std::ranges::upper_bound(messages, key(stored), {}, key);
    messages.insert(position, std::move(stored));
    return true;
  }

  std::optional<ArchivePage> query(const std::string& owner, const ArchiveQuery& query) override {
    std::lock_guard lock(state_.mutex);
    static const std::vector<State::StoredMessage> none;
    const auto found = state_.archives.find(owner);
    const auto& messages = found == state_.archives.end() ? none : found->second.messages;
    auto bound = [&](const std::optional<std::string>& id) -> std::optional<std::optional<Key>> {
      if (!id) return std::optional<Key>{};
      const auto at =
          std::ranges::find(messages, *id, [](const auto& stored) { return stored.message.id; });
      if (at == messages.end()) return std::nullopt;
      return std::optional<Key>{key(*at)};
    };
    const auto after = bound(query.after_id);
    const auto before = bound(query.before_id);
    if (!after || !before) return std::nullopt;
    ArchivePage page;
    std::vector<const ArchivedMessage*> selected;
    for (const auto& stored : messages) {
      const auto& message = stored.message;
      if (query.with && message.with != *query.with) continue;
      if (query.start && message.timestamp < *query.start) continue;
      if (query.end && message.timestamp > *query.end) continue;
      ++page.count;
      if (*after && !(key(stored) > **after)) continue;
      if (*before && !(key(stored) < **before)) continue;
      selected.push_back(&message);
    }
    page.complete = selected.size() <= query.max;
    const bool from_end = query.last || query.before_id.has_value();
    const std::size_t take = std::min(selected.size(), query.max);
    const std::size_t first = from_end ? selected.size() - take : 0;
    for (std::size_t i = first; i < first + take; ++i) page.messages.push_back(*selected[i]);
    return page;
  }

  std::size_t trim(const std::string& owner, std::size_t keep) override {
    std::lock_guard lock(state_.mutex);
    const auto found = state_.archives.find(owner);
    if (found == state_.archives.end() || found->second.messages.size() <= keep) return 0;
    auto& messages = found->second.messages;
    const std::size_t removed = messages.size() - keep;
    messages.erase(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(removed));
    return removed;
  }

  void remove_owner(const std::string& owner) override {
    std::lock_guard lock(state_.mutex);
    state_.archives.erase(owner);
  }

  std::optional<ArchivePrefs> prefs(const std::string& owner) override {
    std::lock_guard lock(state_.mutex);
    const auto found = state_.archives.find(owner);
    if (found == state_.archives.end()) return std::nullopt;
    return found->second.prefs;
  }

  void set_prefs(const std::string& owner, const ArchivePrefs& prefs) override {
    std::lock_guard lock(state_.mutex);
    state_.archives[owner].prefs = prefs;
  }

  std::vector<std::string> owners() override {
    std::lock_guard lock(state_.mutex);
    std::vector<std::string> result;
    for (const auto& [owner, archive] : state_.archives) {
      if (!archive.messages.empty() || archive.prefs) result.push_back(owner);
    }
    std::ranges::sort(result);
    return result;
  }

 private:
  using Key = std::pair<std::int64_t, std::int64_t>;
  static Key key(const State::StoredMessage& stored) {
    return {stored.message.timestamp, stored.sequence};
  }

  State& state_;
};

class MemoryStorage final : public Storage {
 public:
  MemoryStorage()
      : accounts_(state_), roster_(state_), offline_(state_), muc_(state_), archive_(state_) {}

  AccountStore& accounts() override { return accounts_; }
  RosterStore& roster() override { return roster_; }
  OfflineStore& offline() override { return offline_; }
  MucStore& muc() override { return muc_; }
  ArchiveStore& archive() override { return archive_; }
  void flush() override {}
  std::string backend_name() const override { return "memory"; }

 private:
  State state_;
  MemoryAccounts accounts_;
  MemoryRoster roster_;
  MemoryOffline offline_;
  MemoryMuc muc_;
  MemoryArchive archive_;
};

}  // namespace

std::unique_ptr<Storage> open() { return std::make_unique<MemoryStorage>(); }

}  // namespace parley::storage::memory
