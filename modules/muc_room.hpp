// One multi-user chat room (XEP-0045): occupants, roles and affiliations,
// configuration, history and subject. A room is plain state: each call
// handles one stanza addressed to the room or one of its occupants and
// appends what the room sends in answer to 'out'; the MUC service
// serialises the calls and routes the output. Nothing here depends on where
// an occupant's server is: local and federated JIDs are handled alike.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/storage.hpp"
#include "xmpp/jid.hpp"
#include "xmpp/xml.hpp"

namespace parley::modules::muc {

inline constexpr std::string_view ns_muc = "http://jabber.org/protocol/muc";
inline constexpr std::string_view ns_muc_user = "http://jabber.org/protocol/muc#user";
inline constexpr std::string_view ns_muc_admin = "http://jabber.org/protocol/muc#admin";
inline constexpr std::string_view ns_muc_owner = "http://jabber.org/protocol/muc#owner";
inline constexpr std::string_view ns_muc_roomconfig = "http://jabber.org/protocol/muc#roomconfig";
inline constexpr std::string_view ns_muc_roominfo = "http://jabber.org/protocol/muc#roominfo";
inline constexpr std::string_view ns_data = "jabber:x:data";
inline constexpr std::string_view ns_disco_info = "http://jabber.org/protocol/disco#info";
inline constexpr std::string_view ns_disco_items = "http://jabber.org/protocol/disco#items";
inline constexpr std::string_view ns_ping = "urn:xmpp:ping";
inline constexpr std::string_view ns_stanza_id = "urn:xmpp:sid:0";
inline constexpr std::string_view ns_delay = "urn:xmpp:delay";

enum class Affiliation { outcast, none, member, admin, owner };
enum class Role { none, visitor, participant, moderator };
std::string_view affiliation_name(Affiliation affiliation);
std::optional<Affiliation> parse_affiliation(std::string_view name);
std::string_view role_name(Role role);
std::optional<Role> parse_role(std::string_view name);

// Who may send private messages to other occupants (muc#roomconfig_allowpm).
enum class PrivateMessages { anyone, participants, moderators, none };

struct RoomConfig {
  std::string title;
  std::string description;
  bool persistent = false;
  bool public_room = true;
  bool members_only = false;
  bool moderated = false;
  bool password_protected = false;
  std::string password;
  bool whois_anyone = false;  // real JIDs visible to every occupant (non-anonymous room)
  int max_users = 200;
  PrivateMessages allow_private_messages = PrivateMessages::anyone;
  bool occupants_change_subject = false;
  bool occupants_invite = false;
  bool archiving = false;  // groupchat kept in the room's message archive (XEP-0313), announced by 170
  bool operator==(const RoomConfig&) const = default;
};

// What the service allows and what a new room starts with.
struct ServiceLimits {
  std::size_t max_history = 20;
  int max_users = 200;
  std::size_t archive_max_page = 250;    // largest page of a room archive query
  std::size_t archive_max_messages = 0;  // a room archive keeps its newest ones (0: all)
  RoomConfig defaults;
};

// Real-time source, replaceable in tests.
using Clock = std::function<std::chrono::system_clock::time_point()>;

class Room {
 public:
  // A room being created by its first occupant, or restored from storage.
  // 'archive' is null when the storage backend keeps no archives: the room
  // then offers no archiving.
  Room(xmpp::Jid jid, const ServiceLimits& limits, storage::MucStore& store, storage::ArchiveStore* archive,
       Clock clock);

  // Restores a persistent room, and its join history from its archive;
  // false when the stored configuration does not parse.
  bool restore(const storage::MucRoom& stored, const std::vector<storage::MucAffiliation>& affiliations);

  const xmpp::Jid& jid() const { return jid_; }
  const RoomConfig& config() const { return config_; }
  bool locked() const { return locked_; }
  std::size_t occupant_count() const { return occupants_.size(); }
  // Whether the service should forget the room: destroyed, or empty and not persistent.
  bool finished() const { return destroyed_ || (occupants_.empty() && !config_.persistent); }
  // Listed in the service's disco#items.
  bool listed() const { return config_.public_room && !locked_ && !destroyed_; }
  // Groupchat is being archived.
  bool archiving() const { return archive_ != nullptr && config_.archiving; }
  // Removes the room's archive: called when the room is forgotten.
  void remove_archive();

  // A stanza for the room (to's resource empty) or an occupant (to's resource
  // is the nick), from any entity.
  void handle(const xml::Element& stanza, const xmpp::Jid& from, const xmpp::Jid& to, std::vector<xml::Element>& out);

  // The affiliation of a real JID (by its bare JID, then its domain).
  Affiliation affiliation_of(const xmpp::Jid& real) const;

 private:
  struct Occupant {
    std::string nick;
    std::vector<xmpp::Jid> sessions;  // full JIDs sharing the nick (one bare JID)
    Role role = Role::none;
    xml::Element presence;  // last presence, without MUC payloads
  };
  struct StoredAffiliation {
    Affiliation affiliation = Affiliation::none;
    std::string reason;
  };
  // An iq one occupant sent to another's occupant JID, forwarded under a fresh id (by which it is kept).
  struct PendingIq {
    std::string original_id;
    xmpp::Jid requester;    // the sender's real full JID
    xmpp::Jid responder;    // the JID asked (the target's full JID; its bare JID for a vCard): only its answer counts
    std::string from_nick;  // the sender's nick when it asked
    std::string to_nick;    // the target's nick when it was asked
  };
  struct HistoryEntry {
    xml::Element message;  // as broadcast, without 'to'
    std::chrono::system_clock::time_point when;
  };
  // How a presence about an occupant is decorated.
  struct PresenceDetails {
    std::vector<int> codes;  // status codes for every receiver
    std::string reason;      // <reason/> of the item
    std::string actor;       // nick of the moderator who acted
    std::string new_nick;    // for a nick change (303)
    bool unavailable = false;
  };

  // Presence.
  void handle_presence(const xml::Element& stanza, const xmpp::Jid& from, const std::string& nick,
                       std::vector<xml::Element>& out);
  void join(const xml::Element& stanza, const xmpp::Jid& from, const std::string& nick, std::vector<xml::Element>& out);
  void change_nick(Occupant& occupant, const xml::Element& stanza, const std::string& nick,
                   std::vector<xml::Element>& out);
  void leave(const xmpp::Jid& from, const xml::Element& stanza, std::vector<xml::Element>& out);
  void send_history(const xml::Element* history_request, const xmpp::Jid& to, std::vector<xml::Element>& out) const;
  void send_subject(const xmpp::Jid& to, std::vector<xml::Element>& out) const;

  // Messages.
  void handle_message(const xml::Element& stanza, const xmpp::Jid& from, const xmpp::Jid& to,
                      std::vector<xml::Element>& out);
  void groupchat(const xml::Element& stanza, Occupant& sender, std::vector<xml::Element>& out);
  void private_message(const xml::Element& stanza, const Occupant& sender, const std::string& nick,
                       std::vector<xml::Element>& out);
  void invite(const xml::Element& stanza, const xmpp::Jid& from, const xml::Element& x, std::vector<xml::Element>& out);
  void decline(const xml::Element& stanza, const xmpp::Jid& from, const xml::Element& x,
               std::vector<xml::Element>& out);
  // Keeps a broadcast groupchat message (without 'to') in the archive.
  void archive_message(const xml::Element& message, const std::string& id, const std::string& occupant_jid,
                       std::chrono::system_clock::time_point when);
  void load_history_from_archive();

  // IQs.
  void handle_iq(const xml::Element& stanza, const xmpp::Jid& from, const xmpp::Jid& to,
                 std::vector<xml::Element>& out);
  void forward_iq(const xml::Element& stanza, const xmpp::Jid& from, const Occupant& sender, const Occupant& target,
                  std::vector<xml::Element>& out);
  void route_iq_answer(const xml::Element& stanza, const xmpp::Jid& from, const xmpp::Jid& to,
                       std::vector<xml::Element>& out);
  void archive_query(const xml::Element& stanza, const xmpp::Jid& from, std::vector<xml::Element>& out) const;
  bool may_read_archive(const xmpp::Jid& from) const;
  xml::Element disco_info(const xml::Element& stanza) const;
  xml::Element disco_items(const xml::Element& stanza, const xmpp::Jid& from) const;
  xml::Element admin_get(const xml::Element& stanza, const xmpp::Jid& from) const;
  xml::Element admin_set(const xml::Element& stanza, const xmpp::Jid& from, std::vector<xml::Element>& out);
  xml::Element owner_get(const xml::Element& stanza, const xmpp::Jid& from) const;
  xml::Element owner_set(const xml::Element& stanza, const xmpp::Jid& from, std::vector<xml::Element>& out);
  // Applies a submitted muc#roomconfig form; returns an error condition or "".
  std::string apply_config_form(const xml::Element& form, std::vector<xml::Element>& out);
  void destroy(const xml::Element* request, std::vector<xml::Element>& out);
  // A role change by a moderator; returns an error condition or "".
  std::string change_role(Occupant& actor, const std::string& nick, Role role, const std::string& reason,
                          std::vector<xml::Element>& out);
  // An affiliation change by an admin or owner; returns an error condition or "".
  std::string change_affiliation(Affiliation actor, const std::string& actor_nick, const xmpp::Jid& target,
                                 Affiliation affiliation, const std::string& reason, std::vector<xml::Element>& out);

  // Occupants and presence fan-out.
  Occupant* find_occupant(std::string_view nick);
  const Occupant* find_occupant(std::string_view nick) const;
  Occupant* occupant_of(const xmpp::Jid& real);
  const Occupant* occupant_of(const xmpp::Jid& real) const;
  Role default_role(Affiliation affiliation) const;
  bool sees_real_jids(const Occupant& receiver) const;
  xml::Element occupant_presence(const Occupant& about, const xmpp::Jid& to, bool show_jid,
                                 const PresenceDetails& details, bool self) const;
  // Sends a presence about 'about' to every occupant (110 added for its own sessions).
  void broadcast_presence(const Occupant& about, const PresenceDetails& details, std::vector<xml::Element>& out) const;
  // Removes an occupant with an unavailable presence carrying 'details' to everyone (it included).
  void remove_occupant(const std::string& nick, PresenceDetails details, std::vector<xml::Element>& out);
  void broadcast_message(xml::Element message, std::vector<xml::Element>& out) const;
  void notify_config_change(const std::vector<int>& codes, std::vector<xml::Element>& out) const;

  // Storage of persistent rooms.
  void save_config();
  void save_affiliation(const std::string& jid, Affiliation affiliation, const std::string& reason);
  std::string serialize_config() const;
  std::string new_stanza_id() const;

  xmpp::Jid jid_;
  const ServiceLimits& limits_;
  storage::MucStore& store_;
  storage::ArchiveStore* archive_;
  Clock clock_;
  RoomConfig config_;
  bool created_ = false;  // someone entered it, or it was restored
  bool locked_ = false;   // created with the MUC protocol and not configured yet
  bool destroyed_ = false;
  std::vector<Occupant> occupants_;                        // in order of joining
  std::map<std::string, StoredAffiliation> affiliations_;  // by bare JID or domain
  std::deque<HistoryEntry> history_;
  std::map<std::string, PendingIq> pending_iqs_;  // by the id given to the forwarded iq
  std::deque<std::string> pending_order_;         // oldest first, to bound pending_iqs_
  unsigned archived_since_trim_ = 0;
  std::string subject_;
  std::string subject_by_;  // nick
  bool has_subject_ = false;
};

}  // namespace parley::modules::muc
