#include "modules/im_util.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <variant>

#include "xmpp/stream_parser.hpp"

namespace parley::modules::im {

namespace {

Subscription with_to(Subscription s) { return has_from(s) ? Subscription::both : Subscription::to; }
Subscription with_from(Subscription s) { return has_to(s) ? Subscription::both : Subscription::from; }
Subscription without_to(Subscription s) { return has_from(s) ? Subscription::from : Subscription::none; }
Subscription without_from(Subscription s) { return has_to(s) ? Subscription::to : Subscription::none; }

bool same_visible_state(const SubscriptionState& a, const SubscriptionState& b) {
  return a.subscription == b.subscription && a.pending_out == b.pending_out && a.approved == b.approved;
}

std::string next_push_id() {
  static std::atomic<std::uint64_t> counter{0};
  return "roster-push-" + std::to_string(++counter);
}

}  // namespace

std::optional<SubscriptionType> subscription_type(std::string_view presence_type) {
  if (presence_type == "subscribe") return SubscriptionType::subscribe;
  if (presence_type == "subscribed") return SubscriptionType::subscribed;
  if (presence_type == "unsubscribe") return SubscriptionType::unsubscribe;
  if (presence_type == "unsubscribed") return SubscriptionType::unsubscribed;
  return std::nullopt;
}

std::string_view type_name(SubscriptionType type) {
  switch (type) {
    case SubscriptionType::subscribe:
      return "subscribe";
    case SubscriptionType::subscribed:
      return "subscribed";
    case SubscriptionType::unsubscribe:
      return "unsubscribe";
    case SubscriptionType::unsubscribed:
      break;
  }
  return "unsubscribed";
}

SubscriptionState after_outbound(SubscriptionState state, SubscriptionType type) {
  switch (type) {
    case SubscriptionType::subscribe:  // A.2.1
      if (!has_to(state.subscription)) state.pending_out = true;
      break;
    case SubscriptionType::unsubscribe:  // A.2.2
      state.subscription = without_to(state.subscription);
      state.pending_out = false;
      break;
    case SubscriptionType::subscribed:  // A.2.3, and §3.4 pre-approval when nothing is pending
      if (has_from(state.subscription)) break;
      if (state.pending_in) {
        state.subscription = with_from(state.subscription);
        state.pending_in = false;
        state.approved = false;
      } else {
        state.approved = true;
      }
      break;
    case SubscriptionType::unsubscribed:  // A.2.4; also cancels a pre-approval (§3.4)
      state.subscription = without_from(state.subscription);
      state.pending_in = false;
      state.approved = false;
      break;
  }
  return state;
}

SubscriptionState after_inbound(SubscriptionState state, SubscriptionType type) {
  switch (type) {
    case SubscriptionType::subscribe:  // A.3.1; a pre-approved request is accepted at once (§3.4)
      if (has_from(state.subscription)) break;
      if (state.approved) {
        state.subscription = with_from(state.subscription);
        state.approved = false;
        state.pending_in = false;
      } else {
        state.pending_in = true;
      }
      break;
    case SubscriptionType::subscribed:  // A.3.2: only an approval we asked for counts
      if (state.pending_out) {
        state.subscription = with_to(state.subscription);
        state.pending_out = false;
      }
      break;
    case SubscriptionType::unsubscribe:  // A.3.3
      state.subscription = without_from(state.subscription);
      state.pending_in = false;
      break;
    case SubscriptionType::unsubscribed:  // A.3.4
      state.subscription = without_to(state.subscription);
      state.pending_out = false;
      break;
  }
  return state;
}

std::unique_lock<std::mutex> lock_roster(const std::string& owner) {
  static std::array<std::mutex, 64> locks;
  return std::unique_lock(locks[std::hash<std::string>()(owner) % locks.size()]);
}

Transition apply_subscription(storage::RosterStore& roster, const std::string& owner, const std::string& contact,
                              const std::function<SubscriptionState(SubscriptionState)>& change,
                              const std::string& request) {
  auto lock = lock_roster(owner);
  Transition transition;
  if (auto existing = roster.get_item(owner, contact)) {
    transition.item = std::move(*existing);
  } else {
    transition.item.jid = contact;
  }
  const auto pending = roster.pending_in(owner);
  transition.before = SubscriptionState{
      transition.item.subscription, transition.item.ask,
      std::any_of(pending.begin(), pending.end(), [&](const auto& p) { return p.from == contact; }),
      transition.item.approved};
  transition.after = change(transition.before);

  if (!same_visible_state(transition.before, transition.after)) {
    transition.item.subscription = transition.after.subscription;
    transition.item.ask = transition.after.pending_out;
    transition.item.approved = transition.after.approved;
    transition.version = roster.put_item(owner, transition.item);
    transition.item_changed = true;
  }
  if (transition.after.pending_in && !transition.before.pending_in) {
    roster.add_pending_in(owner, contact, request);
  } else if (!transition.after.pending_in && transition.before.pending_in) {
    roster.remove_pending_in(owner, contact);
  }
  return transition;
}

xml::Element item_element(const storage::RosterItem& item) {
  xml::Element element("item", std::string(ns_roster));
  element.set_attr("jid", item.jid);
  if (!item.name.empty()) element.set_attr("name", item.name);
  element.set_attr("subscription", std::string(subscription_name(item.subscription)));
  if (item.ask) element.set_attr("ask", "subscribe");
  if (item.approved) element.set_attr("approved", "true");
  for (const auto& group : item.groups) {
    element.add_child("group", std::string(ns_roster)).add_text(group);
  }
  return element;
}

xml::Element removed_item_element(const std::string& jid) {
  xml::Element element("item", std::string(ns_roster));
  element.set_attr("jid", jid);
  element.set_attr("subscription", "remove");
  return element;
}

xml::Element roster_push(const xmpp::Jid& resource, xml::Element item, std::string_view version) {
  // No 'from': RFC 6121 §2.1.6 has clients accept a push without one as
  // coming from their own account.
  xml::Element push("iq");
  push.set_attr("type", "set");
  push.set_attr("id", next_push_id());
  push.set_attr("to", resource.str());
  auto& query = push.add_child("query", std::string(ns_roster));
  query.set_attr("ver", std::string(version));
  query.add_child(std::move(item));
  return push;
}

void push_roster_item(router::SessionRegistry& sessions, const xmpp::Jid& owner, xml::Element item,
                      std::int64_t version) {
  const std::string ver = std::to_string(version);
  for (const auto& resource : sessions.resources(owner.bare())) {
    if (resource.interested) resource.session->deliver(roster_push(resource.jid, item, ver));
  }
}

router::Task<std::size_t> send_presence_of_resources(router::Router& router, const xmpp::Jid& user,
                                                     const std::string& to) {
  std::size_t sent = 0;
  for (const auto& resource : router.sessions().resources(user.bare())) {
    if (!resource.available || !resource.presence) continue;
    xml::Element copy = *resource.presence;
    copy.set_attr("from", resource.jid.str());
    copy.set_attr("to", to);
    co_await router.route(std::move(copy));
    ++sent;
  }
  co_return sent;
}

router::Task<void> send_unavailable_of_resources(router::Router& router, const xmpp::Jid& user,
                                                 const std::string& to) {
  for (const auto& resource : router.sessions().resources(user.bare())) {
    if (resource.available) co_await router.route(presence("unavailable", resource.jid.str(), to));
  }
}

xml::Element presence(std::string_view type, const std::string& from, const std::string& to) {
  xml::Element stanza("presence");
  if (!type.empty()) stanza.set_attr("type", std::string(type));
  stanza.set_attr("from", from);
  if (!to.empty()) stanza.set_attr("to", to);
  return stanza;
}

int presence_priority(const xml::Element& presence) {
  const std::string text = presence.child_text("priority", xml::ns_client);
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return 0;
  const auto last = text.find_last_not_of(" \t\r\n");
  const char* begin = text.data() + first;
  const char* end = text.data() + last + 1;
  if (*begin == '+') ++begin;
  long value = 0;
  auto [stop, error] = std::from_chars(begin, end, value);
  if (error == std::errc::result_out_of_range) return *begin == '-' ? -128 : 127;
  if (error != std::errc() || stop != end) return 0;
  return static_cast<int>(std::clamp(value, -128L, 127L));
}

std::optional<xml::Element> parse_stored_stanza(std::string_view text) {
  xml::StreamParser parser(std::string(xml::ns_client), text.size() + 1024);
  std::string document =
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
  document += text;
  auto result = parser.feed(document);
  if (!result.error.empty()) return std::nullopt;
  for (auto& event : result.events) {
    if (auto* element = std::get_if<xml::StreamElement>(&event)) return std::move(*element);
  }
  return std::nullopt;
}

}  // namespace parley::modules::im
