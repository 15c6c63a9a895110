#include "modules/muc_room.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <random>

#include "modules/datetime.hpp"
#include "modules/im_util.hpp"
#include "modules/mam_query.hpp"
#include "xmpp/errors.hpp"

namespace parley::modules::muc {

namespace {

constexpr std::string_view ns_hints = "urn:xmpp:hints";
constexpr std::string_view ns_vcard = "vcard-temp";
// Forwarded iqs still unanswered per room; past this the oldest is forgotten
// (its answer, should one come, is dropped).
constexpr std::size_t max_pending_iqs = 256;
// A room archive is trimmed to archive_max_messages once every this many appends.
constexpr unsigned archive_trim_interval = 64;

constexpr std::array<std::string_view, 5> affiliation_names = {"outcast", "none", "member", "admin", "owner"};
constexpr std::array<std::string_view, 4> role_names = {"none", "visitor", "participant", "moderator"};
constexpr std::array<std::string_view, 4> private_message_names = {"anyone", "participants", "moderators", "none"};

std::string_view private_messages_name(PrivateMessages who) {
  return private_message_names[static_cast<std::size_t>(who)];
}

std::optional<PrivateMessages> parse_private_messages(std::string_view name) {
  for (std::size_t i = 0; i < private_message_names.size(); ++i) {
    if (private_message_names[i] == name) return static_cast<PrivateMessages>(i);
  }
  return std::nullopt;
}

std::optional<bool> parse_form_bool(std::string_view value) {
  if (value == "1" || value == "true") return true;
  if (value == "0" || value == "false") return false;
  return std::nullopt;
}

std::optional<int> parse_int(std::string_view text) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

xml::Element error_reply(const xml::Element& stanza, std::string_view condition, std::string_view text = {}) {
  return xmpp::stanza_error(stanza, condition, text);
}

xml::Element& add_status(xml::Element& x, int code) {
  x.add_child("status", std::string(ns_muc_user)).set_attr("code", std::to_string(code));
  return x;
}

// A data form field: <field var type [label]><value/>...</field>
void add_field(xml::Element& form, std::string_view var, std::string_view type, std::string_view label,
               const std::vector<std::string>& values, const std::vector<std::string>& options = {}) {
  auto& field = form.add_child("field", std::string(ns_data));
  field.set_attr("var", std::string(var));
  field.set_attr("type", std::string(type));
  if (!label.empty()) field.set_attr("label", std::string(label));
  for (const auto& option : options) {
    auto& element = field.add_child("option", std::string(ns_data));
    element.add_child("value", std::string(ns_data)).add_text(option);
  }
  for (const auto& value : values) field.add_child("value", std::string(ns_data)).add_text(value);
}

std::string bool_value(bool value) { return value ? "1" : "0"; }

// What is kept of an occupant's presence: everything but the MUC payloads.
xml::Element stripped_presence(const xml::Element& stanza) {
  xml::Element kept("presence");
  for (const auto& child : stanza.children()) {
    if (child.is_text()) continue;
    if (child.ns() == ns_muc || child.ns() == ns_muc_user) continue;
    kept.add_child(child);
  }
  return kept;
}

std::int64_t micros(std::chrono::system_clock::time_point when) {
  return std::chrono::duration_cast<std::chrono::microseconds>(when.time_since_epoch()).count();
}

std::chrono::system_clock::time_point from_micros(std::int64_t value) {
  return std::chrono::system_clock::time_point(std::chrono::microseconds(value));
}

std::mt19937_64& id_generator() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return generator;
}

}  // namespace

std::string_view affiliation_name(Affiliation affiliation) {
  return affiliation_names[static_cast<std::size_t>(affiliation)];
}

std::optional<Affiliation> parse_affiliation(std::string_view name) {
  for (std::size_t i = 0; i < affiliation_names.size(); ++i) {
    if (affiliation_names[i] == name) return static_cast<Affiliation>(i);
  }
  return std::nullopt;
}

std::string_view role_name(Role role) { return role_names[static_cast<std::size_t>(role)]; }

std::optional<Role> parse_role(std::string_view name) {
  for (std::size_t i = 0; i < role_names.size(); ++i) {
    if (role_names[i] == name) return static_cast<Role>(i);
  }
  return std::nullopt;
}

Room::Room(xmpp::Jid jid, const ServiceLimits& limits, storage::MucStore& store, storage::ArchiveStore* archive,
           Clock clock)
    : jid_(std::move(jid)),
      limits_(limits),
      store_(store),
      archive_(archive),
      clock_(std::move(clock)),
      config_(limits.defaults) {}

// ---- storage ---------------------------------------------------------------

std::string Room::serialize_config() const {
  xml::Element room("room", "urn:parley:muc:room:0");
  room.set_attr("title", config_.title);
  room.set_attr("description", config_.description);
  room.set_attr("public", bool_value(config_.public_room));
  room.set_attr("members-only", bool_value(config_.members_only));
  room.set_attr("moderated", bool_value(config_.moderated));
  room.set_attr("password-protected", bool_value(config_.password_protected));
  room.set_attr("password", config_.password);
  room.set_attr("whois", config_.whois_anyone ? "anyone" : "moderators");
  room.set_attr("max-users", std::to_string(config_.max_users));
  room.set_attr("allow-pm", std::string(private_messages_name(config_.allow_private_messages)));
  room.set_attr("change-subject", bool_value(config_.occupants_change_subject));
  room.set_attr("invites", bool_value(config_.occupants_invite));
  room.set_attr("archiving", bool_value(config_.archiving));
  if (has_subject_) {
    auto& subject = room.add_child("subject", "urn:parley:muc:room:0");
    subject.set_attr("by", subject_by_);
    subject.add_text(subject_);
  }
  return xml::serialize(room);
}

bool Room::restore(const storage::MucRoom& stored, const std::vector<storage::MucAffiliation>& affiliations) {
  const auto parsed = im::parse_stored_stanza(stored.config);
  if (!parsed) return false;
  const auto& room = *parsed;
  RoomConfig config;
  config.persistent = true;
  config.title = std::string(room.attr("title"));
  config.description = std::string(room.attr("description"));
  config.public_room = room.attr("public") == "1";
  config.members_only = room.attr("members-only") == "1";
  config.moderated = room.attr("moderated") == "1";
  config.password_protected = room.attr("password-protected") == "1";
  config.password = std::string(room.attr("password"));
  config.whois_anyone = room.attr("whois") == "anyone";
  config.max_users = parse_int(room.attr("max-users")).value_or(limits_.max_users);
  config.allow_private_messages = parse_private_messages(room.attr("allow-pm")).value_or(PrivateMessages::anyone);
  config.occupants_change_subject = room.attr("change-subject") == "1";
  config.occupants_invite = room.attr("invites") == "1";
  config.archiving = room.attr("archiving") == "1";
  config_ = std::move(config);
  if (const auto* subject = room.child("subject", room.ns())) {
    has_subject_ = true;
    subject_ = subject->text();
    subject_by_ = std::string(subject->attr("by"));
  }
  for (const auto& stored_affiliation : affiliations) {
    const auto affiliation = parse_affiliation(stored_affiliation.affiliation);
    if (!affiliation || *affiliation == Affiliation::none) continue;
    affiliations_[stored_affiliation.jid] = StoredAffiliation{*affiliation, stored_affiliation.reason};
  }
  locked_ = false;
  created_ = true;
  load_history_from_archive();
  return true;
}

// The newest messages with a body, as many as the history keeps: the join
// history of a persistent room survives a restart.
void Room::load_history_from_archive() {
  if (!archiving() || limits_.max_history == 0) return;
  storage::ArchiveQuery query;
  query.last = true;
  query.max = limits_.max_history;
  std::deque<HistoryEntry> loaded;
  try {
    while (loaded.size() < limits_.max_history) {
      const auto page = archive_->query(jid_.bare_str(), query);
      if (!page || page->messages.empty()) break;
      for (auto archived = page->messages.rbegin();
           archived != page->messages.rend() && loaded.size() < limits_.max_history; ++archived) {
        auto message = im::parse_stored_stanza(archived->stanza);
        if (!message || message->child("body", xml::ns_client) == nullptr) continue;
        loaded.push_front(HistoryEntry{std::move(*message), from_micros(archived->timestamp)});
      }
      if (page->complete) break;
      query.before_id = page->messages.front().id;
    }
  } catch (const storage::Error& e) {
    spdlog::error("muc: loading the history of {} from its archive failed: {}", jid_.bare_str(), e.what());
  }
  history_ = std::move(loaded);
}

void Room::remove_archive() {
  if (archive_ == nullptr) return;
  try {
    archive_->remove_owner(jid_.bare_str());
  } catch (const storage::Error& e) {
    spdlog::error("muc: removing the archive of {} failed: {}", jid_.bare_str(), e.what());
  }
}

void Room::archive_message(const xml::Element& message, const std::string& id, const std::string& occupant_jid,
                           std::chrono::system_clock::time_point when) {
  if (!archiving()) return;
  if (message.child("no-store", ns_hints) != nullptr || message.child("no-permanent-store", ns_hints) != nullptr) {
    return;
  }
  const std::string owner = jid_.bare_str();
  try {
    archive_->append(owner, {id, micros(when), occupant_jid, xml::serialize(message)});
    if (limits_.archive_max_messages > 0 && ++archived_since_trim_ % archive_trim_interval == 0) {
      archive_->trim(owner, limits_.archive_max_messages);
    }
  } catch (const storage::Error& e) {
    // The occupants still get the message; only the archive misses it.
    spdlog::error("muc: archiving a message of {} failed: {}", owner, e.what());
  }
}

void Room::save_config() {
  if (!config_.persistent || locked_ || destroyed_) return;
  store_.put_room({jid_.domain(), jid_.local(), serialize_config()});
}

void Room::save_affiliation(const std::string& jid, Affiliation affiliation, const std::string& reason) {
  if (!config_.persistent || locked_ || destroyed_) return;
  store_.set_affiliation(jid_.domain(), jid_.local(), {jid, std::string(affiliation_name(affiliation)), reason});
}

std::string Room::new_stanza_id() const {
  static constexpr char hex[] = "0123456789abcdef";
  std::string id;
  for (int part = 0; part < 2; ++part) {
    auto bits = id_generator()();
    for (int i = 0; i < 16; ++i, bits >>= 4) id += hex[bits & 0xf];
  }
  return id;
}

// ---- occupants -------------------------------------------------------------

Affiliation Room::affiliation_of(const xmpp::Jid& real) const {
  if (auto found = affiliations_.find(real.bare_str()); found != affiliations_.end()) {
    return found->second.affiliation;
  }
  if (auto found = affiliations_.find(real.domain()); found != affiliations_.end()) {
    return found->second.affiliation;
  }
  return Affiliation::none;
}

Room::Occupant* Room::find_occupant(std::string_view nick) {
  auto found = std::ranges::find(occupants_, nick, &Occupant::nick);
  return found == occupants_.end() ? nullptr : &*found;
}

const Room::Occupant* Room::find_occupant(std::string_view nick) const {
  auto found = std::ranges::find(occupants_, nick, &Occupant::nick);
  return found == occupants_.end() ? nullptr : &*found;
}

Room::Occupant* Room::occupant_of(const xmpp::Jid& real) {
  for (auto& occupant : occupants_) {
    if (std::ranges::find(occupant.sessions, real) != occupant.sessions.end()) return &occupant;
  }
  return nullptr;
}

const Room::Occupant* Room::occupant_of(const xmpp::Jid& real) const {
  for (const auto& occupant : occupants_) {
    if (std::ranges::find(occupant.sessions, real) != occupant.sessions.end()) return &occupant;
  }
  return nullptr;
}

Role Room::default_role(Affiliation affiliation) const {
  switch (affiliation) {
    case Affiliation::owner:
    case Affiliation::admin:
      return Role::moderator;
    case Affiliation::member:
      return Role::participant;
    case Affiliation::none:
      return config_.moderated ? Role::visitor : Role::participant;
    case Affiliation::outcast:
      break;
  }
  return Role::none;
}

bool Room::sees_real_jids(const Occupant& receiver) const {
  return config_.whois_anyone || receiver.role == Role::moderator;
}

xml::Element Room::occupant_presence(const Occupant& about, const xmpp::Jid& to, bool show_jid,
                                     const PresenceDetails& details, bool self) const {
  xml::Element presence = details.unavailable ? xml::Element("presence") : about.presence;
  if (details.unavailable) {
    presence.set_attr("type", "unavailable");
    for (const auto& child : about.presence.children()) {
      if (child.is("status", xml::ns_client)) presence.add_child(child);
    }
  }
  presence.set_attr("from", jid_.bare_str() + "/" + about.nick);
  presence.set_attr("to", to.str());
  auto& x = presence.add_child("x", std::string(ns_muc_user));
  auto& item = x.add_child("item", std::string(ns_muc_user));
  const xmpp::Jid& real = self ? to : about.sessions.front();
  item.set_attr("affiliation", std::string(affiliation_name(affiliation_of(real))));
  item.set_attr("role",
                std::string(role_name(details.unavailable && details.new_nick.empty() ? Role::none : about.role)));
  if (show_jid) item.set_attr("jid", real.str());
  if (!details.new_nick.empty()) item.set_attr("nick", details.new_nick);
  if (!details.actor.empty()) item.add_child("actor", std::string(ns_muc_user)).set_attr("nick", details.actor);
  if (!details.reason.empty()) item.add_child("reason", std::string(ns_muc_user)).add_text(details.reason);
  for (int code : details.codes) add_status(x, code);
  if (self) add_status(x, 110);
  return presence;
}

void Room::broadcast_presence(const Occupant& about, const PresenceDetails& details,
                              std::vector<xml::Element>& out) const {
  for (const auto& receiver : occupants_) {
    const bool self = &receiver == &about;
    for (const auto& session : receiver.sessions) {
      out.push_back(occupant_presence(about, session, self || sees_real_jids(receiver), details, self));
    }
  }
}

void Room::remove_occupant(const std::string& nick, PresenceDetails details, std::vector<xml::Element>& out) {
  auto found = std::ranges::find(occupants_, nick, &Occupant::nick);
  if (found == occupants_.end()) return;
  details.unavailable = true;
  broadcast_presence(*found, details, out);
  occupants_.erase(found);
}

void Room::broadcast_message(xml::Element message, std::vector<xml::Element>& out) const {
  for (const auto& receiver : occupants_) {
    for (const auto& session : receiver.sessions) {
      xml::Element copy = message;
      copy.set_attr("to", session.str());
      out.push_back(std::move(copy));
    }
  }
}

void Room::notify_config_change(const std::vector<int>& codes, std::vector<xml::Element>& out) const {
  if (codes.empty()) return;
  xml::Element message("message");
  message.set_attr("type", "groupchat");
  message.set_attr("from", jid_.bare_str());
  auto& x = message.add_child("x", std::string(ns_muc_user));
  for (int code : codes) add_status(x, code);
  broadcast_message(std::move(message), out);
}

// ---- dispatch --------------------------------------------------------------

void Room::handle(const xml::Element& stanza, const xmpp::Jid& from, const xmpp::Jid& to,
                  std::vector<xml::Element>& out) {
  const auto& kind = stanza.name();
  if (kind == "presence") {
    handle_presence(stanza, from, to.resource(), out);
  } else if (kind == "message") {
    handle_message(stanza, from, to, out);
  } else if (kind == "iq") {
    handle_iq(stanza, from, to, out);
  }
}

// ---- presence --------------------------------------------------------------

void Room::handle_presence(const xml::Element& stanza, const xmpp::Jid& from, const std::string& nick,
                           std::vector<xml::Element>& out) {
  const auto type = stanza.attr("type");
  Occupant* current = occupant_of(from);
  if (type == "unavailable" || type == "error") {
    // An error from an occupant's client means it is gone (XEP-0045 §18.1).
    if (current) leave(from, stanza, out);
    return;
  }
  if (!type.empty()) return;  // subscriptions and probes mean nothing to a room
  if (nick.empty()) {
    out.push_back(error_reply(stanza, "jid-malformed", "a nickname is required to enter a room"));
    return;
  }
  if (!current) {
    join(stanza, from, nick, out);
    return;
  }
  if (current->nick != nick) {
    change_nick(*current, stanza, nick, out);
    return;
  }
  current->presence = stripped_presence(stanza);
  broadcast_presence(*current, {}, out);
}

void Room::join(const xml::Element& stanza, const xmpp::Jid& from, const std::string& nick,
                std::vector<xml::Element>& out) {
  const xml::Element* muc_x = stanza.child("x", ns_muc);
  const bool creating = !created_;
  if (creating) {
    created_ = true;
    // A client speaking the MUC protocol configures the room before anyone
    // else may enter (XEP-0045 §10.1.2); an old groupchat client gets an instant room.
    locked_ = muc_x != nullptr;
    affiliations_[from.bare_str()] = StoredAffiliation{Affiliation::owner, {}};
    // A new room under an old name must not show the old room's messages.
    remove_archive();
  }
  const Affiliation affiliation = affiliation_of(from);
  if (!creating) {
    if (locked_ && affiliation != Affiliation::owner) {
      out.push_back(error_reply(stanza, "item-not-found", "the room is locked until its owner configures it"));
      return;
    }
    if (affiliation == Affiliation::outcast) {
      out.push_back(error_reply(stanza, "forbidden", "you are banned from this room"));
      return;
    }
    if (config_.members_only && affiliation < Affiliation::member) {
      out.push_back(error_reply(stanza, "registration-required", "this room is for members only"));
      return;
    }
    if (config_.password_protected && affiliation != Affiliation::owner &&
        (muc_x == nullptr || muc_x->child_text("password", ns_muc) != config_.password)) {
      out.push_back(error_reply(stanza, "not-authorized", "a password is required"));
      return;
    }
  }
  if (Occupant* holder = find_occupant(nick)) {
    if (holder->sessions.front().bare() != from.bare()) {
      out.push_back(error_reply(stanza, "conflict", "that nickname is in use"));
      return;
    }
    // Another session of the same user under the same nick: it sees the room as it is.
    holder->sessions.push_back(from);
    for (const auto& other : occupants_) {
      if (&other != holder) out.push_back(occupant_presence(other, from, sees_real_jids(*holder), {}, false));
    }
    out.push_back(occupant_presence(*holder, from, true, {}, true));
    send_history(muc_x ? muc_x->child("history", ns_muc) : nullptr, from, out);
    send_subject(from, out);
    return;
  }
  if (!creating && static_cast<int>(occupants_.size()) >= config_.max_users && affiliation < Affiliation::admin) {
    out.push_back(error_reply(stanza, "service-unavailable", "the room is full"));
    return;
  }

  Occupant occupant{nick, {from}, default_role(affiliation), stripped_presence(stanza)};
  const bool sees_jids = sees_real_jids(occupant);
  for (const auto& other : occupants_) out.push_back(occupant_presence(other, from, sees_jids, {}, false));
  occupants_.push_back(std::move(occupant));
  const Occupant& joined = occupants_.back();
  for (const auto& receiver : occupants_) {
    if (&receiver == &joined) continue;
    for (const auto& session : receiver.sessions) {
      out.push_back(occupant_presence(joined, session, sees_real_jids(receiver), {}, false));
    }
  }
  PresenceDetails self;
  if (config_.whois_anyone) self.codes.push_back(100);
  if (archiving()) self.codes.push_back(170);
  if (creating) self.codes.push_back(201);
  out.push_back(occupant_presence(joined, from, true, self, true));
  send_history(muc_x ? muc_x->child("history", ns_muc) : nullptr, from, out);
  send_subject(from, out);
}

void Room::change_nick(Occupant& occupant, const xml::Element& stanza, const std::string& nick,
                       std::vector<xml::Element>& out) {
  if (find_occupant(nick) != nullptr) {
    out.push_back(error_reply(stanza, "conflict", "that nickname is in use"));
    return;
  }
  PresenceDetails leaving;
  leaving.unavailable = true;
  leaving.new_nick = nick;
  leaving.codes.push_back(303);
  broadcast_presence(occupant, leaving, out);
  occupant.nick = nick;
  occupant.presence = stripped_presence(stanza);
  broadcast_presence(occupant, {}, out);
}

void Room::leave(const xmpp::Jid& from, const xml::Element& stanza, std::vector<xml::Element>& out) {
  Occupant* occupant = occupant_of(from);
  if (occupant == nullptr) return;
  PresenceDetails details;
  details.unavailable = true;
  if (occupant->sessions.size() > 1) {
    out.push_back(occupant_presence(*occupant, from, true, details, true));
    std::erase(occupant->sessions, from);
    return;
  }
  if (stanza.attr("type") == "unavailable") occupant->presence = stripped_presence(stanza);
  remove_occupant(occupant->nick, details, out);
}

void Room::send_history(const xml::Element* request, const xmpp::Jid& to, std::vector<xml::Element>& out) const {
  std::size_t max_stanzas = history_.size();
  std::optional<std::size_t> max_chars;
  std::optional<std::chrono::system_clock::time_point> since;
  if (request != nullptr) {
    if (auto value = parse_int(request->attr("maxstanzas")); value && *value >= 0) {
      max_stanzas = std::min(max_stanzas, static_cast<std::size_t>(*value));
    }
    if (auto value = parse_int(request->attr("maxchars")); value && *value >= 0) {
      max_chars = static_cast<std::size_t>(*value);
    }
    if (auto value = parse_int(request->attr("seconds")); value && *value >= 0) {
      since = clock_() - std::chrono::seconds(*value);
    }
    if (auto value = parse_datetime(request->attr("since"))) since = std::max(since.value_or(*value), *value);
  }
  std::vector<xml::Element> selected;
  std::size_t chars = 0;
  for (auto entry = history_.rbegin(); entry != history_.rend() && selected.size() < max_stanzas; ++entry) {
    if (since && entry->when < *since) break;
    xml::Element message = entry->message;
    message.set_attr("to", to.str());
    auto& delay = message.add_child("delay", std::string(ns_delay));
    delay.set_attr("from", jid_.bare_str());
    delay.set_attr("stamp", format_datetime(entry->when));
    if (max_chars) {
      chars += xml::serialize(message).size();
      if (chars > *max_chars) break;
    }
    selected.push_back(std::move(message));
  }
  for (auto message = selected.rbegin(); message != selected.rend(); ++message) out.push_back(std::move(*message));
}

void Room::send_subject(const xmpp::Jid& to, std::vector<xml::Element>& out) const {
  xml::Element message("message");
  message.set_attr("type", "groupchat");
  message.set_attr("from", subject_by_.empty() ? jid_.bare_str() : jid_.bare_str() + "/" + subject_by_);
  message.set_attr("to", to.str());
  message.add_child("subject", std::string(xml::ns_client)).add_text(subject_);
  out.push_back(std::move(message));
}

// ---- messages --------------------------------------------------------------

void Room::handle_message(const xml::Element& stanza, const xmpp::Jid& from, const xmpp::Jid& to,
                          std::vector<xml::Element>& out) {
  const auto type = stanza.attr("type");
  if (type == "error") {
    // A client that bounces room traffic is gone (XEP-0045 §18.1).
    leave(from, stanza, out);
    return;
  }
  Occupant* sender = occupant_of(from);
  if (!to.resource().empty()) {
    if (type == "groupchat") {
      out.push_back(error_reply(stanza, "bad-request", "groupchat messages go to the room's bare JID"));
      return;
    }
    if (sender == nullptr) {
      out.push_back(error_reply(stanza, "not-acceptable", "only occupants may send private messages"));
      return;
    }
    private_message(stanza, *sender, to.resource(), out);
    return;
  }
  if (type == "groupchat") {
    if (sender == nullptr) {
      out.push_back(error_reply(stanza, "not-acceptable", "only occupants may speak in the room"));
      return;
    }
    groupchat(stanza, *sender, out);
    return;
  }
  if (const auto* x = stanza.child("x", ns_muc_user)) {
    if (x->child("invite", ns_muc_user) != nullptr) {
      invite(stanza, from, *x, out);
      return;
    }
    if (x->child("decline", ns_muc_user) != nullptr) {
      decline(stanza, from, *x, out);
      return;
    }
  }
  out.push_back(error_reply(stanza, "bad-request", "messages to a room must be of type groupchat"));
}

void Room::groupchat(const xml::Element& stanza, Occupant& sender, std::vector<xml::Element>& out) {
  if (sender.role < Role::participant) {
    out.push_back(error_reply(stanza, "forbidden", "visitors may not speak in a moderated room"));
    return;
  }
  const bool subject_change =
      stanza.child("subject", xml::ns_client) != nullptr && stanza.child("body", xml::ns_client) == nullptr;
  if (subject_change) {
    if (sender.role != Role::moderator && !config_.occupants_change_subject) {
      out.push_back(error_reply(stanza, "forbidden", "only moderators may change the subject"));
      return;
    }
    subject_ = stanza.child_text("subject", xml::ns_client);
    subject_by_ = sender.nick;
    has_subject_ = true;
    save_config();
  }
  xml::Element message = stanza;
  message.remove_attr("to");
  message.set_attr("from", jid_.bare_str() + "/" + sender.nick);
  // A stanza-id claiming to come from this room can only be forged (XEP-0359 §5).
  auto& children = message.children();
  std::erase_if(children, [this](const xml::Element& child) {
    return child.is("stanza-id", ns_stanza_id) && child.attr("by") == jid_.bare_str();
  });
  // A subject change is stamped only when archived: its archive id is its stanza-id.
  const bool archived = archiving() && (message.child("body", xml::ns_client) != nullptr ||
                                        message.child("subject", xml::ns_client) != nullptr);
  const auto when = clock_();
  if (!subject_change || archived) {
    const std::string id = new_stanza_id();
    auto& stanza_id = message.add_child("stanza-id", std::string(ns_stanza_id));
    stanza_id.set_attr("id", id);
    stanza_id.set_attr("by", jid_.bare_str());
    if (archived) archive_message(message, id, std::string(message.attr("from")), when);
  }
  if (!subject_change && message.child("body", xml::ns_client) != nullptr && limits_.max_history > 0) {
    history_.push_back(HistoryEntry{message, when});
    while (history_.size() > limits_.max_history) history_.pop_front();
  }
  broadcast_message(std::move(message), out);
}

void Room::private_message(const xml::Element& stanza, const Occupant& sender, const std::string& nick,
                           std::vector<xml::Element>& out) {
  bool allowed = false;
  switch (config_.allow_private_messages) {
    case PrivateMessages::anyone:
      allowed = true;
      break;
    case PrivateMessages::participants:
      allowed = sender.role >= Role::participant;
      break;
    case PrivateMessages::moderators:
      allowed = sender.role == Role::moderator;
      break;
    case PrivateMessages::none:
      break;
  }
  if (!allowed) {
    out.push_back(error_reply(stanza, "forbidden", "private messages are not allowed in this room"));
    return;
  }
  const Occupant* target = find_occupant(nick);
  if (target == nullptr) {
    out.push_back(error_reply(stanza, "item-not-found", "no such occupant"));
    return;
  }
  xml::Element message = stanza;
  message.set_attr("from", jid_.bare_str() + "/" + sender.nick);
  if (message.child("x", ns_muc_user) == nullptr) message.add_child("x", std::string(ns_muc_user));
  for (const auto& session : target->sessions) {
    xml::Element copy = message;
    copy.set_attr("to", session.str());
    out.push_back(std::move(copy));
  }
}

void Room::invite(const xml::Element& stanza, const xmpp::Jid& from, const xml::Element& x,
                  std::vector<xml::Element>& out) {
  const Occupant* inviter = occupant_of(from);
  if (inviter == nullptr) {
    out.push_back(error_reply(stanza, "not-acceptable", "only occupants may invite"));
    return;
  }
  const Affiliation inviter_affiliation = affiliation_of(from);
  if (config_.members_only && inviter_affiliation < Affiliation::admin && !config_.occupants_invite) {
    out.push_back(error_reply(stanza, "forbidden", "only admins may invite to this room"));
    return;
  }
  for (const auto& child : x.children()) {
    if (!child.is("invite", ns_muc_user)) continue;
    const auto invitee = xmpp::Jid::parse(child.attr("to"));
    if (!invitee) {
      out.push_back(error_reply(stanza, "jid-malformed", "the invitee's JID is not valid"));
      return;
    }
    if (config_.members_only && affiliation_of(*invitee) == Affiliation::none) {
      save_affiliation(invitee->bare_str(), Affiliation::member, {});
      affiliations_[invitee->bare_str()] = StoredAffiliation{Affiliation::member, {}};
    }
    xml::Element message("message");
    message.set_attr("from", jid_.bare_str());
    message.set_attr("to", invitee->str());
    if (const auto* id = stanza.find_attr("id")) message.set_attr("id", *id);
    auto& user_x = message.add_child("x", std::string(ns_muc_user));
    auto& forwarded = user_x.add_child("invite", std::string(ns_muc_user));
    forwarded.set_attr("from", from.str());
    if (const auto* reason = child.child("reason", ns_muc_user)) forwarded.add_child(*reason);
    if (config_.password_protected) {
      user_x.add_child("password", std::string(ns_muc_user)).add_text(config_.password);
    }
    message.add_child("body", std::string(xml::ns_client))
        .add_text(from.bare_str() + " invites you to the room " + jid_.bare_str());
    out.push_back(std::move(message));
  }
}

void Room::decline(const xml::Element& stanza, const xmpp::Jid& from, const xml::Element& x,
                   std::vector<xml::Element>& out) {
  const auto* declined = x.child("decline", ns_muc_user);
  const auto inviter = xmpp::Jid::parse(declined->attr("to"));
  if (!inviter) {
    out.push_back(error_reply(stanza, "jid-malformed", "the inviter's JID is not valid"));
    return;
  }
  xml::Element message("message");
  message.set_attr("from", jid_.bare_str());
  message.set_attr("to", inviter->str());
  auto& forwarded = message.add_child("x", std::string(ns_muc_user)).add_child("decline", std::string(ns_muc_user));
  forwarded.set_attr("from", from.bare_str());
  if (const auto* reason = declined->child("reason", ns_muc_user)) forwarded.add_child(*reason);
  out.push_back(std::move(message));
}

// ---- iq --------------------------------------------------------------------

void Room::handle_iq(const xml::Element& stanza, const xmpp::Jid& from, const xmpp::Jid& to,
                     std::vector<xml::Element>& out) {
  const auto type = stanza.attr("type");
  if (type == "result" || type == "error") {
    route_iq_answer(stanza, from, to, out);
    return;
  }
  if (type != "get" && type != "set") return;
  const xml::Element* payload = stanza.first_child_element();
  if (payload == nullptr) {
    out.push_back(error_reply(stanza, "bad-request"));
    return;
  }
  if (!to.resource().empty()) {
    const Occupant* sender = occupant_of(from);
    const Occupant* target = find_occupant(to.resource());
    if (sender == nullptr) {
      out.push_back(error_reply(stanza, "not-acceptable", "you are not in this room"));
    } else if (target == nullptr) {
      out.push_back(error_reply(stanza, "item-not-found", "no such occupant"));
    } else if (target == sender && payload->is("ping", ns_ping) && type == "get") {
      // XEP-0410: a client checks that it is still in the room by pinging itself.
      out.push_back(xmpp::iq_result(stanza));
    } else {
      forward_iq(stanza, from, *sender, *target, out);
    }
    return;
  }
  const auto& ns = payload->ns();
  if (type == "get" && ns == ns_disco_info) {
    out.push_back(disco_info(stanza));
  } else if (type == "get" && ns == ns_disco_items) {
    out.push_back(disco_items(stanza, from));
  } else if (type == "get" && payload->is("ping", ns_ping)) {
    out.push_back(xmpp::iq_result(stanza));
  } else if (ns == mam::ns_mam) {
    archive_query(stanza, from, out);
  } else if (payload->name() == "query" && ns == ns_muc_admin) {
    out.push_back(type == "get" ? admin_get(stanza, from) : admin_set(stanza, from, out));
  } else if (payload->name() == "query" && ns == ns_muc_owner) {
    if (type == "get") {
      out.push_back(owner_get(stanza, from));
    } else {
      auto reply = owner_set(stanza, from, out);
      out.push_back(std::move(reply));
    }
  } else {
    out.push_back(error_reply(stanza, "service-unavailable"));
  }
}

// The target answers the room, which hands the answer to the asker as if
// it came from the target's occupant JID; ids are the room's own, so two
// askers' ids cannot collide at the target, and only the asked real JID may answer.
void Room::forward_iq(const xml::Element& stanza, const xmpp::Jid& from, const Occupant& sender, const Occupant& target,
                      std::vector<xml::Element>& out) {
  std::string id = new_stanza_id();
  // A vCard belongs to the account, not to one client: the target's server answers for it.
  const xml::Element* payload = stanza.first_child_element();
  const xmpp::Jid responder = payload->is("vCard", ns_vcard) ? target.sessions.front().bare() : target.sessions.front();
  pending_iqs_[id] = PendingIq{std::string(stanza.attr("id")), from, responder, sender.nick, target.nick};
  pending_order_.push_back(id);
  while (pending_order_.size() > max_pending_iqs) {
    pending_iqs_.erase(pending_order_.front());
    pending_order_.pop_front();
  }
  xml::Element forwarded = stanza;
  forwarded.set_attr("from", jid_.bare_str() + "/" + sender.nick);
  forwarded.set_attr("to", responder.str());
  forwarded.set_attr("id", std::move(id));
  out.push_back(std::move(forwarded));
}

void Room::route_iq_answer(const xml::Element& stanza, const xmpp::Jid& from, const xmpp::Jid& to,
                           std::vector<xml::Element>& out) {
  auto found = pending_iqs_.find(std::string(stanza.attr("id")));
  if (found == pending_iqs_.end()) return;
  const PendingIq& pending = found->second;
  if (pending.responder != from || pending.from_nick != to.resource()) return;
  xml::Element answer = stanza;
  answer.set_attr("from", jid_.bare_str() + "/" + pending.to_nick);
  answer.set_attr("to", pending.requester.str());
  if (pending.original_id.empty()) {
    answer.remove_attr("id");
  } else {
    answer.set_attr("id", pending.original_id);
  }
  out.push_back(std::move(answer));
  std::erase(pending_order_, found->first);
  pending_iqs_.erase(found);
}

// Occupants and members read the archive; anyone may read that of a room
// anyone may enter, except outcasts.
bool Room::may_read_archive(const xmpp::Jid& from) const {
  const Affiliation affiliation = affiliation_of(from);
  if (affiliation == Affiliation::outcast) return false;
  if (affiliation >= Affiliation::member) return true;
  const bool occupant = std::ranges::any_of(
      occupants_, [&](const Occupant& occupant) { return occupant.sessions.front().bare() == from.bare(); });
  return occupant || (config_.public_room && !config_.members_only && !config_.password_protected);
}

void Room::archive_query(const xml::Element& stanza, const xmpp::Jid& from, std::vector<xml::Element>& out) const {
  const xml::Element* payload = stanza.first_child_element();
  if (!archiving()) {
    out.push_back(error_reply(stanza, "service-unavailable", "this room is not archived"));
    return;
  }
  if (!may_read_archive(from)) {
    out.push_back(error_reply(stanza, "forbidden", "only occupants and members may read this room's archive"));
    return;
  }
  if (payload->name() != "query") {
    out.push_back(error_reply(stanza, "feature-not-implemented", "a room's archive has no preferences"));
    return;
  }
  if (stanza.attr("type") == "get") {
    out.push_back(mam::query_form(stanza));
    return;
  }
  const mam::QueryOptions options{limits_.archive_max_page, mam::WithForm::full};
  for (auto& answer : mam::answer_query(*archive_, jid_.bare_str(), from.str(), stanza, options)) {
    out.push_back(std::move(answer));
  }
}

xml::Element Room::disco_info(const xml::Element& stanza) const {
  auto reply = xmpp::iq_result(stanza);
  auto& query = reply.add_child("query", std::string(ns_disco_info));
  auto& identity = query.add_child("identity", std::string(ns_disco_info));
  identity.set_attr("category", "conference");
  identity.set_attr("type", "text");
  identity.set_attr("name", config_.title.empty() ? jid_.local() : config_.title);
  std::vector<std::string_view> features = {
      ns_muc,
      ns_disco_info,
      ns_stanza_id,
      ns_ping,
      config_.persistent ? "muc_persistent" : "muc_temporary",
      config_.public_room ? "muc_public" : "muc_hidden",
      config_.members_only ? "muc_membersonly" : "muc_open",
      config_.moderated ? "muc_moderated" : "muc_unmoderated",
      config_.password_protected ? "muc_passwordprotected" : "muc_unsecured",
      config_.whois_anyone ? "muc_nonanonymous" : "muc_semianonymous",
  };
  if (archiving()) features.push_back(mam::ns_mam);
  for (auto feature : features) {
    query.add_child("feature", std::string(ns_disco_info)).set_attr("var", std::string(feature));
  }
  auto& form = query.add_child("x", std::string(ns_data));
  form.set_attr("type", "result");
  add_field(form, "FORM_TYPE", "hidden", {}, {std::string(ns_muc_roominfo)});
  add_field(form, "muc#roominfo_description", "text-single", "Description", {config_.description});
  add_field(form, "muc#roominfo_occupants", "text-single", "Number of occupants", {std::to_string(occupants_.size())});
  add_field(form, "muc#roominfo_subject", "text-single", "Subject", {subject_});
  return reply;
}

xml::Element Room::disco_items(const xml::Element& stanza, const xmpp::Jid& from) const {
  auto reply = xmpp::iq_result(stanza);
  auto& query = reply.add_child("query", std::string(ns_disco_items));
  // Occupants are listed to the room's own occupants, and to everyone in a public room.
  if (!config_.public_room && occupant_of(from) == nullptr) return reply;
  for (const auto& occupant : occupants_) {
    auto& item = query.add_child("item", std::string(ns_disco_items));
    item.set_attr("jid", jid_.bare_str() + "/" + occupant.nick);
    item.set_attr("name", occupant.nick);
  }
  return reply;
}

xml::Element Room::admin_get(const xml::Element& stanza, const xmpp::Jid& from) const {
  const auto* query = stanza.first_child_element();
  const auto* request = query->child("item", ns_muc_admin);
  if (request == nullptr)
    return error_reply(stanza, "bad-request", "an item naming a role or an affiliation is required");
  const Affiliation actor = affiliation_of(from);
  auto reply = xmpp::iq_result(stanza);
  auto& result = reply.add_child("query", std::string(ns_muc_admin));
  if (const auto* wanted_name = request->find_attr("affiliation")) {
    const auto wanted = parse_affiliation(*wanted_name);
    if (!wanted || *wanted == Affiliation::none) return error_reply(stanza, "bad-request", "unknown affiliation");
    const Affiliation needed = *wanted >= Affiliation::admin ? Affiliation::owner : Affiliation::admin;
    if (actor < needed) return error_reply(stanza, "forbidden");
    for (const auto& [jid, stored] : affiliations_) {
      if (stored.affiliation != *wanted) continue;
      auto& item = result.add_child("item", std::string(ns_muc_admin));
      item.set_attr("affiliation", std::string(*wanted_name));
      item.set_attr("jid", jid);
      if (!stored.reason.empty()) item.add_child("reason", std::string(ns_muc_admin)).add_text(stored.reason);
    }
    return reply;
  }
  const auto wanted = parse_role(request->attr("role"));
  if (!wanted || *wanted == Role::none) return error_reply(stanza, "bad-request", "unknown role");
  const Occupant* asking = occupant_of(from);
  if (asking == nullptr || asking->role != Role::moderator) return error_reply(stanza, "forbidden");
  for (const auto& occupant : occupants_) {
    if (occupant.role != *wanted) continue;
    auto& item = result.add_child("item", std::string(ns_muc_admin));
    item.set_attr("nick", occupant.nick);
    item.set_attr("role", std::string(role_name(occupant.role)));
    item.set_attr("affiliation", std::string(affiliation_name(affiliation_of(occupant.sessions.front()))));
    item.set_attr("jid", occupant.sessions.front().str());
  }
  return reply;
}

xml::Element Room::admin_set(const xml::Element& stanza, const xmpp::Jid& from, std::vector<xml::Element>& out) {
  const auto* query = stanza.first_child_element();
  const Affiliation actor_affiliation = affiliation_of(from);
  Occupant* actor = occupant_of(from);
  bool any = false;
  for (const auto& item : query->children()) {
    if (!item.is("item", ns_muc_admin)) continue;
    any = true;
    const std::string reason = item.child_text("reason", ns_muc_admin);
    std::string condition;
    if (const auto* role_text = item.find_attr("role"); role_text && !item.has_attr("affiliation")) {
      const auto role = parse_role(*role_text);
      if (!role || !item.has_attr("nick"))
        return error_reply(stanza, "bad-request", "a role change names a nick and a role");
      if (actor == nullptr) return error_reply(stanza, "forbidden", "only occupants may change roles");
      condition = change_role(*actor, std::string(item.attr("nick")), *role, reason, out);
    } else if (const auto* affiliation_text = item.find_attr("affiliation")) {
      const auto affiliation = parse_affiliation(*affiliation_text);
      std::optional<xmpp::Jid> target;
      if (item.has_attr("jid")) {
        target = xmpp::Jid::parse(item.attr("jid"));
      } else if (const Occupant* named = find_occupant(item.attr("nick"))) {
        target = named->sessions.front();
      }
      if (!affiliation || !target)
        return error_reply(stanza, "bad-request", "an affiliation change names a JID and an affiliation");
      condition = change_affiliation(actor_affiliation, actor ? actor->nick : std::string(), *target, *affiliation,
                                     reason, out);
    } else {
      return error_reply(stanza, "bad-request", "an item must name a role or an affiliation");
    }
    if (!condition.empty()) return error_reply(stanza, condition);
  }
  if (!any) return error_reply(stanza, "bad-request", "no item");
  return xmpp::iq_result(stanza);
}

std::string Room::change_role(Occupant& actor, const std::string& nick, Role role, const std::string& reason,
                              std::vector<xml::Element>& out) {
  if (actor.role != Role::moderator) return "forbidden";
  Occupant* target = find_occupant(nick);
  if (target == nullptr) return "item-not-found";
  const Affiliation actor_affiliation = affiliation_of(actor.sessions.front());
  const Affiliation target_affiliation = affiliation_of(target->sessions.front());
  if (role == Role::moderator || target->role == Role::moderator) {
    if (actor_affiliation < Affiliation::admin) return "not-allowed";
  }
  if (target_affiliation >= Affiliation::admin && role != Role::moderator) return "not-allowed";
  if (target_affiliation > actor_affiliation) return "not-allowed";
  if (role == Role::none) {
    PresenceDetails kicked;
    kicked.codes.push_back(307);
    kicked.reason = reason;
    kicked.actor = actor.nick;
    remove_occupant(nick, kicked, out);
    return {};
  }
  target->role = role;
  PresenceDetails changed;
  changed.reason = reason;
  changed.actor = actor.nick;
  broadcast_presence(*target, changed, out);
  return {};
}

std::string Room::change_affiliation(Affiliation actor, const std::string& actor_nick, const xmpp::Jid& target,
                                     Affiliation affiliation, const std::string& reason,
                                     std::vector<xml::Element>& out) {
  const std::string key = target.local().empty() ? target.domain() : target.bare_str();
  const auto existing = affiliations_.find(key);
  const Affiliation current = existing == affiliations_.end() ? Affiliation::none : existing->second.affiliation;
  const bool touches_admins = affiliation >= Affiliation::admin || current >= Affiliation::admin;
  if (actor < (touches_admins ? Affiliation::owner : Affiliation::admin)) return "forbidden";
  if (current == Affiliation::owner && affiliation != Affiliation::owner) {
    const auto owners = std::ranges::count_if(
        affiliations_, [](const auto& entry) { return entry.second.affiliation == Affiliation::owner; });
    if (owners <= 1) return "conflict";
  }
  save_affiliation(key, affiliation, reason);
  if (affiliation == Affiliation::none) {
    affiliations_.erase(key);
  } else {
    affiliations_[key] = StoredAffiliation{affiliation, reason};
  }
  std::vector<std::string> affected;
  for (const auto& occupant : occupants_) {
    const auto& real = occupant.sessions.front();
    if (real.bare_str() == key || (target.local().empty() && real.domain() == key)) affected.push_back(occupant.nick);
  }
  for (const auto& nick : affected) {
    PresenceDetails details;
    details.reason = reason;
    details.actor = actor_nick;
    if (affiliation == Affiliation::outcast) {
      details.codes.push_back(301);
      remove_occupant(nick, details, out);
    } else if (config_.members_only && affiliation < Affiliation::member) {
      details.codes.push_back(321);
      remove_occupant(nick, details, out);
    } else if (Occupant* occupant = find_occupant(nick)) {
      occupant->role = default_role(affiliation);
      broadcast_presence(*occupant, details, out);
    }
  }
  return {};
}

xml::Element Room::owner_get(const xml::Element& stanza, const xmpp::Jid& from) const {
  if (affiliation_of(from) != Affiliation::owner)
    return error_reply(stanza, "forbidden", "only owners configure the room");
  auto reply = xmpp::iq_result(stanza);
  auto& form = reply.add_child("query", std::string(ns_muc_owner)).add_child("x", std::string(ns_data));
  form.set_attr("type", "form");
  form.add_child("title", std::string(ns_data)).add_text("Configuration of " + jid_.bare_str());
  add_field(form, "FORM_TYPE", "hidden", {}, {std::string(ns_muc_roomconfig)});
  add_field(form, "muc#roomconfig_roomname", "text-single", "Room name", {config_.title});
  add_field(form, "muc#roomconfig_roomdesc", "text-single", "Description", {config_.description});
  add_field(form, "muc#roomconfig_persistentroom", "boolean", "Keep the room when it is empty",
            {bool_value(config_.persistent)});
  add_field(form, "muc#roomconfig_publicroom", "boolean", "List the room publicly", {bool_value(config_.public_room)});
  add_field(form, "muc#roomconfig_membersonly", "boolean", "Members only", {bool_value(config_.members_only)});
  add_field(form, "muc#roomconfig_moderatedroom", "boolean", "Moderated", {bool_value(config_.moderated)});
  add_field(form, "muc#roomconfig_passwordprotectedroom", "boolean", "Password required to enter",
            {bool_value(config_.password_protected)});
  add_field(form, "muc#roomconfig_roomsecret", "text-private", "Password", {config_.password});
  add_field(form, "muc#roomconfig_maxusers", "list-single", "Maximum number of occupants",
            {std::to_string(config_.max_users)}, {"10", "20", "50", "100", std::to_string(limits_.max_users)});
  add_field(form, "muc#roomconfig_whois", "list-single", "Who may see real JIDs",
            {config_.whois_anyone ? "anyone" : "moderators"}, {"moderators", "anyone"});
  add_field(form, "muc#roomconfig_allowpm", "list-single", "Who may send private messages",
            {std::string(private_messages_name(config_.allow_private_messages))},
            {"anyone", "participants", "moderators", "none"});
  add_field(form, "muc#roomconfig_changesubject", "boolean", "Occupants may change the subject",
            {bool_value(config_.occupants_change_subject)});
  add_field(form, "muc#roomconfig_allowinvites", "boolean", "Occupants may invite others",
            {bool_value(config_.occupants_invite)});
  if (archive_ != nullptr) {
    add_field(form, "muc#roomconfig_enablearchiving", "boolean", "Archive the messages (room logging)",
              {bool_value(config_.archiving)});
  }
  return reply;
}

xml::Element Room::owner_set(const xml::Element& stanza, const xmpp::Jid& from, std::vector<xml::Element>& out) {
  if (affiliation_of(from) != Affiliation::owner)
    return error_reply(stanza, "forbidden", "only owners configure the room");
  const auto* query = stanza.first_child_element();
  if (const auto* destroy_request = query->child("destroy", ns_muc_owner)) {
    destroy(destroy_request, out);
    return xmpp::iq_result(stanza);
  }
  const auto* form = query->child("x", ns_data);
  if (form == nullptr) {
    // An empty owner query accepts the defaults: an instant room.
    xml::Element empty_submit("x", std::string(ns_data));
    empty_submit.set_attr("type", "submit");
    const auto condition = apply_config_form(empty_submit, out);
    return condition.empty() ? xmpp::iq_result(stanza) : error_reply(stanza, condition);
  }
  const auto form_type = form->attr("type");
  if (form_type == "cancel") {
    if (locked_) destroy(nullptr, out);
    return xmpp::iq_result(stanza);
  }
  if (form_type != "submit") return error_reply(stanza, "bad-request", "the form must be submitted or cancelled");
  const auto condition = apply_config_form(*form, out);
  return condition.empty() ? xmpp::iq_result(stanza) : error_reply(stanza, condition);
}

std::string Room::apply_config_form(const xml::Element& form, std::vector<xml::Element>& out) {
  RoomConfig next = config_;
  for (const auto& field : form.children()) {
    if (!field.is("field", ns_data)) continue;
    const auto var = field.attr("var");
    const std::string value = field.child_text("value", ns_data);
    auto set_bool = [&](bool& target) {
      const auto parsed = parse_form_bool(value);
      if (!parsed) return false;
      target = *parsed;
      return true;
    };
    bool valid = true;
    if (var == "FORM_TYPE") {
      valid = value == ns_muc_roomconfig;
    } else if (var == "muc#roomconfig_roomname") {
      next.title = value;
    } else if (var == "muc#roomconfig_roomdesc") {
      next.description = value;
    } else if (var == "muc#roomconfig_persistentroom") {
      valid = set_bool(next.persistent);
    } else if (var == "muc#roomconfig_publicroom") {
      valid = set_bool(next.public_room);
    } else if (var == "muc#roomconfig_membersonly") {
      valid = set_bool(next.members_only);
    } else if (var == "muc#roomconfig_moderatedroom") {
      valid = set_bool(next.moderated);
    } else if (var == "muc#roomconfig_passwordprotectedroom") {
      valid = set_bool(next.password_protected);
    } else if (var == "muc#roomconfig_roomsecret") {
      next.password = value;
    } else if (var == "muc#roomconfig_maxusers") {
      const auto parsed = parse_int(value);
      valid = parsed && *parsed >= 1 && *parsed <= limits_.max_users;
      if (valid) next.max_users = *parsed;
    } else if (var == "muc#roomconfig_whois") {
      valid = value == "anyone" || value == "moderators";
      next.whois_anyone = value == "anyone";
    } else if (var == "muc#roomconfig_allowpm") {
      const auto parsed = parse_private_messages(value);
      valid = parsed.has_value();
      if (valid) next.allow_private_messages = *parsed;
    } else if (var == "muc#roomconfig_changesubject") {
      valid = set_bool(next.occupants_change_subject);
    } else if (var == "muc#roomconfig_allowinvites") {
      valid = set_bool(next.occupants_invite);
    } else if (var == "muc#roomconfig_enablearchiving" || var == "muc#roomconfig_enablelogging") {
      // The second name is Prosody's, which some clients send.
      valid = set_bool(next.archiving) && (archive_ != nullptr || !next.archiving);
    }
    if (!valid) return "not-acceptable";
  }
  if (next.password_protected && next.password.empty()) return "not-acceptable";

  const bool was_locked = locked_;
  const RoomConfig previous = config_;
  if (previous.persistent && !next.persistent) store_.remove_room(jid_.domain(), jid_.local());
  config_ = next;
  locked_ = false;
  if (config_.persistent) {
    save_config();
    if (!previous.persistent || was_locked) {
      for (const auto& [jid, stored] : affiliations_) save_affiliation(jid, stored.affiliation, stored.reason);
    }
  }
  std::vector<int> codes;
  if (!was_locked) codes.push_back(104);
  if (config_.whois_anyone != previous.whois_anyone) codes.push_back(config_.whois_anyone ? 172 : 173);
  if (config_.archiving != previous.archiving) codes.push_back(config_.archiving ? 170 : 171);
  notify_config_change(codes, out);
  if (config_.members_only && !previous.members_only) {
    std::vector<std::string> outsiders;
    for (const auto& occupant : occupants_) {
      if (affiliation_of(occupant.sessions.front()) < Affiliation::member) outsiders.push_back(occupant.nick);
    }
    for (const auto& nick : outsiders) {
      PresenceDetails removed;
      removed.codes.push_back(322);
      remove_occupant(nick, removed, out);
    }
  }
  return {};
}

void Room::destroy(const xml::Element* request, std::vector<xml::Element>& out) {
  for (const auto& occupant : occupants_) {
    for (const auto& session : occupant.sessions) {
      xml::Element presence("presence");
      presence.set_attr("type", "unavailable");
      presence.set_attr("from", jid_.bare_str() + "/" + occupant.nick);
      presence.set_attr("to", session.str());
      auto& x = presence.add_child("x", std::string(ns_muc_user));
      auto& item = x.add_child("item", std::string(ns_muc_user));
      item.set_attr("affiliation", "none");
      item.set_attr("role", "none");
      auto& destroyed = x.add_child("destroy", std::string(ns_muc_user));
      if (request != nullptr) {
        if (const auto* alternate = request->find_attr("jid")) destroyed.set_attr("jid", *alternate);
        if (const auto* reason = request->child("reason", ns_muc_owner)) {
          destroyed.add_child("reason", std::string(ns_muc_user)).add_text(reason->text());
        }
      }
      add_status(x, 110);
      out.push_back(std::move(presence));
    }
  }
  if (config_.persistent) store_.remove_room(jid_.domain(), jid_.local());
  remove_archive();
  occupants_.clear();
  destroyed_ = true;
}

}  // namespace parley::modules::muc
