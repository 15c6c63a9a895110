#include "storage/copy.hpp"

#include <algorithm>
#include <limits>
#include <optional>

#include "storage/backend_support.hpp"

namespace parley::storage {

namespace {

constexpr auto no_limit = std::numeric_limits<std::size_t>::max();

// One owner's roster as copying sees it.
struct RosterRecord {
  std::int64_t version = 0;
  std::vector<RosterChange> history;  // changes_since(owner, 0)
  std::vector<RosterStore::PendingIn> pending;

  bool empty() const { return version == 0 && history.empty() && pending.empty(); }
  std::size_t live_items() const {
    return static_cast<std::size_t>(
        std::ranges::count_if(history, [](const RosterChange& change) { return !change.removed; }));
  }
};

bool same(const RosterRecord& a, const RosterRecord& b) {
  return a.version == b.version &&
         std::ranges::equal(a.history, b.history,
                            [](const RosterChange& x, const RosterChange& y) {
                              return x.removed == y.removed && x.item == y.item;
                            }) &&
         std::ranges::equal(a.pending, b.pending,
                            [](const RosterStore::PendingIn& x, const RosterStore::PendingIn& y) {
                              return x.from == y.from && x.stanza == y.stanza;
                            });
}

RosterRecord read_roster(RosterStore& roster, const std::string& owner) {
  RosterRecord record;
  record.version = roster.version(owner);
  if (auto history = roster.changes_since(owner, 0)) record.history = std::move(*history);
  record.pending = roster.pending_in(owner);
  return record;
}

struct RoomRecord {
  std::optional<MucRoom> room;
  std::vector<MucAffiliation> affiliations;
  bool operator==(const RoomRecord&) const = default;
};

RoomRecord read_room(MucStore& muc, const std::string& service, const std::string& name) {
  RoomRecord record{muc.find_room(service, name), {}};
  if (record.room) record.affiliations = muc.affiliations(service, name);
  return record;
}

// Read a page at a time, oldest first: an archive may hold many messages.
constexpr std::size_t archive_page = 500;

struct ArchiveRecord {
  std::vector<ArchivedMessage> messages;
  std::optional<ArchivePrefs> prefs;
  bool empty() const { return messages.empty() && !prefs; }
  bool operator==(const ArchiveRecord&) const = default;
};

ArchiveRecord read_archive(ArchiveStore& archive, const std::string& owner) {
  ArchiveRecord record;
  record.prefs = archive.prefs(owner);
  ArchiveQuery query;
  query.max = archive_page;
  for (;;) {
    auto page = archive.query(owner, query);
    if (!page) throw Error("the archive of " + owner + " changed while it was being read");
    for (auto& message : page->messages) record.messages.push_back(std::move(message));
    if (page->complete || record.messages.empty()) return record;
    query.after_id = record.messages.back().id;
  }
}

struct AccountKey {
  std::string username;
  std::string domain;
};

// Everything the source holds, by key.
struct Inventory {
  std::vector<AccountKey> accounts;
  std::vector<std::string> roster_owners;
  std::vector<std::string> offline_owners;
  std::vector<std::string> archive_owners;
  std::vector<std::pair<std::string, std::string>> rooms;  // service, name
};

Inventory take_inventory(Storage& storage) {
  Inventory inventory;
  for (const auto& domain : storage.accounts().domains()) {
    for (auto& username : storage.accounts().list(domain))
      inventory.accounts.push_back({std::move(username), domain});
  }
  inventory.roster_owners = storage.roster().owners();
  inventory.offline_owners = storage.offline().owners();
  inventory.archive_owners = storage.archive().owners();
  for (const auto& service : storage.muc().services()) {
    for (const auto& room : storage.muc().rooms(service)) inventory.rooms.emplace_back(service, room.name);
  }
  return inventory;
}

enum class State { missing, equal, different };

class Copier {
 public:
  Copier(Storage& from, Storage& to, const CopyOptions& options)
      : from_(from), to_(to), options_(options) {}

  CopyReport run() {
    tell("reading the source");
    const auto inventory = take_inventory(from_);
    CopyReport report;

    // First pass: compare only, so that a conflict stops everything before
    // a single write.
    tell("comparing with the target");
    visit(inventory, report, false);
    if (!report.conflicts.empty() && !options_.force) return report;

    report.source = {};
    report.copied = {};
    report.unchanged = {};
    report.conflicts.clear();
    visit(inventory, report, true);
    report.written = true;

    tell("verifying the target");
    verify(inventory, report);
    return report;
  }

 private:
  void tell(const std::string& line) {
    if (options_.progress) options_.progress(line);
  }

  void conflict(CopyReport& report, std::string what) { report.conflicts.push_back(std::move(what)); }

  // Compares every record and, when writing, copies what is missing (and,
  // with force, what differs). Rosters and queues are compared after the
  // accounts were written, since replacing an account clears them.
  void visit(const Inventory& inventory, CopyReport& report, bool write) {
    if (write) tell("copying " + std::to_string(inventory.accounts.size()) + " accounts");
    for (const auto& key : inventory.accounts) {
      const auto source = from_.accounts().find(key.username, key.domain);
      if (!source) continue;  // removed while we were copying
      ++report.source.accounts;
      const auto target = to_.accounts().find(key.username, key.domain);
      const auto state = !target ? State::missing : *target == *source ? State::equal : State::different;
      if (state == State::equal) {
        ++report.unchanged.accounts;
        continue;
      }
      if (state == State::different) {
        conflict(report, "account " + owner_jid(key.username, key.domain) +
                             " exists in the target with other credentials or creation time");
      }
      if (!write) continue;
      if (state == State::different) to_.accounts().remove(key.username, key.domain);
      if (!to_.accounts().create(*source)) {
        throw Error("account " + owner_jid(key.username, key.domain) +
                    " appeared in the target while it was being copied");
      }
      ++report.copied.accounts;
    }

    if (write) tell("copying " + std::to_string(inventory.roster_owners.size()) + " rosters");
    for (const auto& owner : inventory.roster_owners) {
      const auto source = read_roster(from_.roster(), owner);
      if (source.empty()) continue;
      count_roster(report.source, source);
      const auto target = read_roster(to_.roster(), owner);
      const auto state = target.empty() ? State::missing : same(target, source) ? State::equal : State::different;
      if (state == State::equal) {
        count_roster(report.unchanged, source);
        continue;
      }
      if (state == State::different) conflict(report, "roster of " + owner + " differs in the target");
      if (!write) continue;
      to_.roster().import_roster(owner, source.version, source.history);
      for (const auto& pending : target.pending) to_.roster().remove_pending_in(owner, pending.from);
      for (const auto& pending : source.pending)
        to_.roster().add_pending_in(owner, pending.from, pending.stanza);
      count_roster(report.copied, source);
    }

    if (write) tell("copying the offline messages of " + std::to_string(inventory.offline_owners.size()) + " users");
    for (const auto& owner : inventory.offline_owners) {
      const auto source = from_.offline().peek_all(owner);
      if (source.empty()) continue;
      report.source.offline += source.size();
      const auto target = to_.offline().peek_all(owner);
      const auto state = target.empty() ? State::missing : target == source ? State::equal : State::different;
      if (state == State::equal) {
        report.unchanged.offline += source.size();
        continue;
      }
      if (state == State::different) conflict(report, "offline messages of " + owner + " differ in the target");
      if (!write) continue;
      if (state == State::different) to_.offline().pop_all(owner);
      for (const auto& stanza : source) to_.offline().push(owner, stanza, no_limit);
      report.copied.offline += source.size();
    }

    if (write) tell("copying " + std::to_string(inventory.archive_owners.size()) + " message archives");
    for (const auto& owner : inventory.archive_owners) {
      const auto source = read_archive(from_.archive(), owner);
      if (source.empty()) continue;
      count_archive(report.source, source);
      const auto target = read_archive(to_.archive(), owner);
      const auto state = target.empty() ? State::missing : target == source ? State::equal : State::different;
      if (state == State::equal) {
        count_archive(report.unchanged, source);
        continue;
      }
      if (state == State::different) conflict(report, "message archive of " + owner + " differs in the target");
      if (!write) continue;
      if (state == State::different) to_.archive().remove_owner(owner);
      // Appended oldest first, so messages with equal timestamps keep their order.
      for (const auto& message : source.messages) to_.archive().append(owner, message);
      if (source.prefs) to_.archive().set_prefs(owner, *source.prefs);
      count_archive(report.copied, source);
    }

    if (write) tell("copying " + std::to_string(inventory.rooms.size()) + " rooms");
    for (const auto& [service, name] : inventory.rooms) {
      const auto source = read_room(from_.muc(), service, name);
      if (!source.room) continue;
      count_room(report.source, source);
      const auto target = read_room(to_.muc(), service, name);
      const auto state = !target.room ? State::missing : target == source ? State::equal : State::different;
      if (state == State::equal) {
        count_room(report.unchanged, source);
        continue;
      }
      if (state == State::different) conflict(report, "room " + name + "@" + service + " differs in the target");
      if (!write) continue;
      if (state == State::different) to_.muc().remove_room(service, name);
      to_.muc().put_room(*source.room);
      for (const auto& affiliation : source.affiliations) to_.muc().set_affiliation(service, name, affiliation);
      count_room(report.copied, source);
    }
  }

  static void count_roster(CopyCounts& counts, const RosterRecord& record) {
    ++counts.rosters;
    counts.roster_items += record.live_items();
    counts.pending += record.pending.size();
  }

  static void count_archive(CopyCounts& counts, const ArchiveRecord& record) {
    ++counts.archives;
    counts.archived += record.messages.size();
  }

  static void count_room(CopyCounts& counts, const RoomRecord& record) {
    ++counts.rooms;
    counts.affiliations += record.affiliations.size();
  }

  void verify(const Inventory& inventory, CopyReport& report) {
    auto& verified = report.verified;
    for (const auto& key : inventory.accounts) {
      const auto source = from_.accounts().find(key.username, key.domain);
      if (source && to_.accounts().find(key.username, key.domain) == source) ++verified.accounts;
    }
    for (const auto& owner : inventory.roster_owners) {
      const auto source = read_roster(from_.roster(), owner);
      if (!source.empty() && same(read_roster(to_.roster(), owner), source)) count_roster(verified, source);
    }
    for (const auto& owner : inventory.offline_owners) {
      const auto source = from_.offline().peek_all(owner);
      if (to_.offline().peek_all(owner) == source) verified.offline += source.size();
    }
    for (const auto& owner : inventory.archive_owners) {
      const auto source = read_archive(from_.archive(), owner);
      if (!source.empty() && read_archive(to_.archive(), owner) == source) count_archive(verified, source);
    }
    for (const auto& [service, name] : inventory.rooms) {
      const auto source = read_room(from_.muc(), service, name);
      if (source.room && read_room(to_.muc(), service, name) == source) count_room(verified, source);
    }
  }

  Storage& from_;
  Storage& to_;
  const CopyOptions& options_;
};

}  // namespace

CopyReport copy_all(Storage& from, Storage& to, const CopyOptions& options) {
  return Copier(from, to, options).run();
}

}  // namespace parley::storage
