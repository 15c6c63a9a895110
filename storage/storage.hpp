// Storage interfaces (GUIDE §6). Every method is blocking and thread-safe:
// callers run them on the worker pool, never on an I/O thread. Methods throw
// storage::Error when the backend fails (a database outage); "not found" is
// an empty optional or false, never an exception.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "xmpp/sasl.hpp"

namespace parley::storage {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Users are addressed by (username, domain): username is the normalised
// localpart, domain the normalised host.
struct Account {
  std::string username;
  std::string domain;
  sasl::ScramCredentials sha1;
  sasl::ScramCredentials sha256;
  std::int64_t created_at = 0;  // unix seconds
  bool operator==(const Account&) const = default;
};

class AccountStore {
 public:
  virtual ~AccountStore() = default;
  // False when the account already exists.
  virtual bool create(const Account& account) = 0;
  virtual std::optional<Account> find(const std::string& username, const std::string& domain) = 0;
  // Replaces both credential sets; false when there is no such account.
  virtual bool set_credentials(const std::string& username, const std::string& domain,
                               const sasl::ScramCredentials& sha1,
                               const sasl::ScramCredentials& sha256) = 0;
  // Removes the account and everything stored for it (roster, pending
  // subscriptions, offline messages, message archive and its preferences).
  // False when there was no such account.
  virtual bool remove(const std::string& username, const std::string& domain) = 0;
  // Usernames of a domain, sorted.
  virtual std::vector<std::string> list(const std::string& domain) = 0;

  // For tools that walk everything stored (parleyctl migrate). Backends
  // without it throw storage::Error.
  // Domains with at least one account, sorted.
  virtual std::vector<std::string> domains();
};

enum class Subscription { none, to, from, both };

// The RFC 6121 names of the subscription states ("none", "to", "from",
// "both"), as SQL backends store them and rosters carry them.
std::string_view subscription_name(Subscription subscription);
std::optional<Subscription> parse_subscription(std::string_view name);

struct RosterItem {
  std::string jid;  // bare JID of the contact, normalised
  std::string name;
  Subscription subscription = Subscription::none;
  bool ask = false;       // we sent subscribe and wait for an answer ("pending out")
  bool approved = false;  // pre-approved inbound subscription (RFC 6121 §3.4)
  std::vector<std::string> groups;
  bool operator==(const RosterItem&) const = default;
};

struct Roster {
  std::int64_t version = 0;  // the user's roster version; 0 for an empty, never-changed roster
  std::vector<RosterItem> items;
};

// A change since some version: the item as it is now, or removed.
struct RosterChange {
  RosterItem item;  // for a removal only item.jid is meaningful
  bool removed = false;
};

class RosterStore {
 public:
  virtual ~RosterStore() = default;
  // owner is the user's bare JID ("alice@example.org").
  virtual Roster get(const std::string& owner) = 0;
  virtual std::optional<RosterItem> get_item(const std::string& owner, const std::string& jid) = 0;
  // Inserts or replaces; returns the new roster version.
  virtual std::int64_t put_item(const std::string& owner, const RosterItem& item) = 0;
  // Removes; returns the new roster version, or nullopt when there was no such item.
  virtual std::optional<std::int64_t> remove_item(const std::string& owner,
                                                  const std::string& jid) = 0;
  // Changes after 'since', each jid once with its latest state, or nullopt
  // when 'since' is unknown (newer than the current version, or before what
  // is kept): the caller then sends the whole roster.
  virtual std::optional<std::vector<RosterChange>> changes_since(const std::string& owner,
                                                                 std::int64_t since) = 0;
  // The current version without loading items.
  virtual std::int64_t version(const std::string& owner) = 0;

  // Inbound subscription requests awaiting the user's answer (RFC 6121 §3.1.3),
  // kept with the request stanza (serialised XML) to redeliver at login.
  virtual void add_pending_in(const std::string& owner, const std::string& from,
                              const std::string& stanza) = 0;
  virtual bool remove_pending_in(const std::string& owner, const std::string& from) = 0;
  struct PendingIn {
    std::string from;
    std::string stanza;
  };
  virtual std::vector<PendingIn> pending_in(const std::string& owner) = 0;

  // For tools that copy everything stored (parleyctl migrate). Backends
  // without them throw storage::Error.
  // Owners with roster items (removed ones included) or pending
  // subscriptions, sorted.
  virtual std::vector<std::string> owners();
  // Replaces the owner's items and their history by 'changes' at 'version',
  // 'changes' being what changes_since(owner, 0) of the original returned:
  // every jid once, in the order of their last change, removed ones included.
  // The entries get the consecutive versions ending at 'version', each at
  // least its original one, so changes_since(v) of the copy returns
  // everything that changed after v in the original (and perhaps a few items
  // more). Pending subscriptions stay. Throws storage::Error when 'version'
  // is smaller than the number of entries or a jid repeats.
  virtual void import_roster(const std::string& owner, std::int64_t version,
                             const std::vector<RosterChange>& changes);
};

class OfflineStore {
 public:
  virtual ~OfflineStore() = default;
  // Appends a message (serialised XML, already delay-stamped). False when the
  // user already has 'limit' messages stored.
  virtual bool push(const std::string& owner, const std::string& stanza, std::size_t limit) = 0;
  // Returns the stored messages in arrival order and deletes them.
  virtual std::vector<std::string> pop_all(const std::string& owner) = 0;
  virtual std::size_t count(const std::string& owner) = 0;

  // For tools that copy everything stored (parleyctl migrate). Backends
  // without them throw storage::Error.
  // Owners with stored messages, sorted.
  virtual std::vector<std::string> owners();
  // The stored messages in arrival order, left in place.
  virtual std::vector<std::string> peek_all(const std::string& owner);
};

// Message archives (XEP-0313), one per owner (a user's bare JID or a room's
// JID). Messages are ordered by (timestamp, arrival): the archive keeps an
// index on (owner, timestamp) so time ranges and pages are cheap.
struct ArchivedMessage {
  std::string id;              // the stanza-id, unique within the owner's archive
  std::int64_t timestamp = 0;  // microseconds since the epoch
  std::string with;            // the other party's bare JID
  std::string stanza;          // the message, serialised
  bool operator==(const ArchivedMessage&) const = default;
};

struct ArchiveQuery {
  std::optional<std::string> with;       // only messages with this bare JID
  std::optional<std::int64_t> start;     // timestamp >= start
  std::optional<std::int64_t> end;       // timestamp <= end
  std::optional<std::string> after_id;   // strictly after this message
  std::optional<std::string> before_id;  // strictly before this message
  // With before_id, or 'last': the page that ends where the range ends (the
  // newest messages); otherwise the page that starts where it starts.
  bool last = false;
  std::size_t max = 50;
};

struct ArchivePage {
  std::vector<ArchivedMessage> messages;  // oldest first
  bool complete = false;                  // no more messages in the paging direction
  std::size_t count = 0;                  // messages matching with/start/end
};

// Who a user archives messages with (XEP-0313 §6): "always", "never" or
// "roster" by default, with per-JID exceptions.
struct ArchivePrefs {
  std::string default_policy = "always";
  std::vector<std::string> always;
  std::vector<std::string> never;
  bool operator==(const ArchivePrefs&) const = default;
};

class ArchiveStore {
 public:
  virtual ~ArchiveStore() = default;
  // Appends a message; false when the owner already has one with that id.
  virtual bool append(const std::string& owner, const ArchivedMessage& message) = 0;
  // One page; nullopt when after_id or before_id is not in the archive.
  virtual std::optional<ArchivePage> query(const std::string& owner, const ArchiveQuery& query) = 0;
  // Keeps only the owner's 'keep' newest messages; returns how many went.
  virtual std::size_t trim(const std::string& owner, std::size_t keep) = 0;
  // Removes the owner's archive and preferences.
  virtual void remove_owner(const std::string& owner) = 0;
  virtual std::optional<ArchivePrefs> prefs(const std::string& owner) = 0;
  virtual void set_prefs(const std::string& owner, const ArchivePrefs& prefs) = 0;

  // For tools that copy everything stored (parleyctl migrate). Backends
  // without it throw storage::Error.
  // Owners with archived messages or preferences, sorted.
  virtual std::vector<std::string> owners();
};

// Multi-user chat rooms (XEP-0045) that outlive their occupants: a room is
// addressed by its service domain and name (the localpart of its JID); its
// configuration is opaque text owned by the MUC module. Affiliations other
// than "none" are kept per room and JID (bare JID or domain), with the
// reason given when they were set.
struct MucRoom {
  std::string service;
  std::string name;
  std::string config;
  bool operator==(const MucRoom&) const = default;
};

struct MucAffiliation {
  std::string jid;
  std::string affiliation;  // "owner", "admin", "member" or "outcast"
  std::string reason;
  bool operator==(const MucAffiliation&) const = default;
};

class MucStore {
 public:
  virtual ~MucStore() = default;
  // Inserts or replaces the room's configuration; its affiliations stay.
  virtual void put_room(const MucRoom& room) = 0;
  virtual std::optional<MucRoom> find_room(const std::string& service, const std::string& name) = 0;
  // The rooms of a service, sorted by name.
  virtual std::vector<MucRoom> rooms(const std::string& service) = 0;
  // Removes the room with its affiliations; false when there was no such room.
  virtual bool remove_room(const std::string& service, const std::string& name) = 0;
  // Sets one affiliation ("none" removes it). False when there is no such room.
  virtual bool set_affiliation(const std::string& service, const std::string& name,
                               const MucAffiliation& affiliation) = 0;
  // The room's affiliations, sorted by jid.
  virtual std::vector<MucAffiliation> affiliations(const std::string& service,
                                                   const std::string& name) = 0;

  // For tools that copy everything stored (parleyctl migrate). Backends
  // without it throw storage::Error.
  // Services with at least one room, sorted.
  virtual std::vector<std::string> services();
};

// One backend: the stores share its connection(s).
class Storage {
 public:
  virtual ~Storage() = default;
  virtual AccountStore& accounts() = 0;
  virtual RosterStore& roster() = 0;
  virtual OfflineStore& offline() = 0;
  // Stores added after the first backends: a backend without one throws
  // storage::Error naming itself, so a module that needs it fails at start.
  virtual MucStore& muc();
  virtual ArchiveStore& archive();
  // Makes what was written durable (called at shutdown).
  virtual void flush() = 0;
  // "memory", "sqlite", ...
  virtual std::string backend_name() const = 0;
};

// Opens a backend from a URI: "memory:", "sqlite:PATH" (PATH relative to
// the working directory; the file and its schema are created, migrations
// applied) or "mysql://USER:PASSWORD@HOST:PORT/DATABASE[?pool=N]" (MySQL or
// MariaDB; user, password and database percent-encoded where needed; the
// database must exist, its tables are created, migrations applied; pool is
// the number of connections, 4 by default). Throws storage::Error with a
// one-line reason.
std::unique_ptr<Storage> open(const std::string& uri);

// Checks a URI's form as open() does, without opening anything (config
// validation). Throws storage::Error with the same one-line reasons.
void check_uri(const std::string& uri);

// The URI as logs may show it: a mysql:// URI without its password
// ("mysql://USER@HOST:PORT/DATABASE"); other URIs unchanged.
std::string printable_uri(const std::string& uri);

}  // namespace parley::storage
