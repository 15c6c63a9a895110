// What the roster, presence and offline modules (RFC 6121, XEP-0160) share:
// the subscription state machine of RFC 6121 Appendix A, roster items as
// XML, roster pushes, and presence fan-out on behalf of a user's resources.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "router/router.hpp"
#include "storage/storage.hpp"
#include "xmpp/jid.hpp"
#include "xmpp/xml.hpp"

namespace parley::modules::im {

inline constexpr std::string_view ns_roster = "jabber:iq:roster";
inline constexpr std::string_view ns_delay = "urn:xmpp:delay";
// Stream feature of RFC 6121 §3.4 (the c2s layer advertises it).
inline constexpr std::string_view pre_approval_feature = "urn:xmpp:features:pre-approval";

// Fired by the presence module on a user's host once a resource's initial
// available presence has been broadcast. The event's stanza is that presence,
// 'from' the resource's full JID, 'origin' its session (null when the
// resource closed meanwhile). The offline module delivers stored messages
// here, after the resource has become available.
inline constexpr std::string_view initial_presence_event = "presence/initial";

using storage::Subscription;
using storage::subscription_name;

inline bool has_to(Subscription s) { return s == Subscription::to || s == Subscription::both; }
inline bool has_from(Subscription s) { return s == Subscription::from || s == Subscription::both; }

// One contact's subscription state as RFC 6121 Appendix A names it
// ("None + Pending Out+In", ...), plus the pre-approval of §3.4.
struct SubscriptionState {
  Subscription subscription = Subscription::none;
  bool pending_out = false;  // the roster item's 'ask'
  bool pending_in = false;   // an unanswered inbound subscribe is stored
  bool approved = false;     // pre-approved
  bool operator==(const SubscriptionState&) const = default;
};

enum class SubscriptionType { subscribe, subscribed, unsubscribe, unsubscribed };
std::optional<SubscriptionType> subscription_type(std::string_view presence_type);
std::string_view type_name(SubscriptionType type);

// The state after the user sends (outbound, RFC 6121 A.2) or receives
// (inbound, A.3) a subscription stanza about the contact.
SubscriptionState after_outbound(SubscriptionState state, SubscriptionType type);
SubscriptionState after_inbound(SubscriptionState state, SubscriptionType type);

// A subscription change as stored.
struct Transition {
  SubscriptionState before;
  SubscriptionState after;
  storage::RosterItem item;      // the item after the change (subscription none when there is none)
  bool item_changed = false;     // the roster item was written: push it
  std::int64_t version = 0;      // the roster version after the write
};

// Serialises read-modify-write of one user's roster across worker threads.
// Blocking: hold it on a worker only.
[[nodiscard]] std::unique_lock<std::mutex> lock_roster(const std::string& owner);

// Applies 'change' to owner's state for contact under the roster lock:
// writes the item when its visible state changed (creating it when needed),
// stores 'request' as the pending inbound request when one appears and drops
// the stored one when it goes. Blocking: call on a worker.
Transition apply_subscription(storage::RosterStore& roster, const std::string& owner, const std::string& contact,
                              const std::function<SubscriptionState(SubscriptionState)>& change,
                              const std::string& request = {});

// <item jid='..' name='..' subscription='..' ask='subscribe' approved='true'><group/>..</item>
xml::Element item_element(const storage::RosterItem& item);
// <item jid='..' subscription='remove'/>
xml::Element removed_item_element(const std::string& jid);

// Sends a roster push (RFC 6121 §2.1.6) of 'item' with roster version
// 'version' to every interested resource of 'owner'.
void push_roster_item(router::SessionRegistry& sessions, const xmpp::Jid& owner, xml::Element item,
                      std::int64_t version);
// One roster push addressed to one resource.
xml::Element roster_push(const xmpp::Jid& resource, xml::Element item, std::string_view version);

// Routes the last available presence of each of user's available resources
// to 'to' (RFC 6121 §3.1.5, §4.3.2); returns how many were sent.
router::Task<std::size_t> send_presence_of_resources(router::Router& router, const xmpp::Jid& user,
                                                     const std::string& to);
// Routes unavailable presence from each of user's available resources to
// 'to' (RFC 6121 §3.2.2, §3.3.3).
router::Task<void> send_unavailable_of_resources(router::Router& router, const xmpp::Jid& user,
                                                 const std::string& to);

// <presence type='..' from='..' to='..'/>; no type attribute when type is
// empty, no 'to' when to is empty.
xml::Element presence(std::string_view type, const std::string& from, const std::string& to);

// The <priority/> of a presence (RFC 6121 §4.7.2.3): 0 when absent or not an
// integer, clamped to -128..127.
int presence_priority(const xml::Element& presence);

// Parses one stanza as stored by serialize(); nullopt when it does not parse.
std::optional<xml::Element> parse_stored_stanza(std::string_view text);

}  // namespace parley::modules::im
