// Presence and subscriptions (RFC 6121 §3, §4): the broadcast of a user's
// presence, probes, directed presence, and both sides of the subscription
// state machine (RFC 6121 Appendix A) with pre-approval (§3.4). Contacts may
// be local or remote: everything to a contact goes through Router::route.
#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

#include "modules/factories.hpp"
#include "modules/im_util.hpp"
#include "modules/module_options.hpp"

namespace parley::modules {

namespace {

using im::SubscriptionType;
using router::HookResult;
using router::StanzaEvent;
using router::Task;

class PresenceService {
 public:
  PresenceService(router::Host& host, router::Router& router, storage::Storage& storage,
                  router::WorkerPool& workers)
      : host_(host), router_(router), storage_(storage), workers_(workers) {}

  // "pre-presence/broadcast": presence without 'to' from a local client.
  Task<HookResult> on_broadcast(StanzaEvent& ev) {
    const auto type = ev.stanza.attr("type");
    if (type.empty()) {
      co_await available(ev);
    } else if (type == "unavailable") {
      co_await unavailable(ev);
    }
    // Errors, probes and subscription requests without an addressee mean
    // nothing to a server; they are dropped.
    co_return HookResult::handled;
  }

  // "pre-presence/bare|full|host": presence with 'to' from a local client.
  Task<HookResult> on_outbound(StanzaEvent& ev) {
    const auto type = ev.stanza.attr("type");
    if (auto subscription = im::subscription_type(type)) {
      co_await outbound_subscription(ev, *subscription);
      co_return HookResult::handled;
    }
    // RFC 6121 §4.3: probing is the server's business, not a client's.
    if (type == "probe") co_return HookResult::handled;
    if (type.empty()) {
      track_directed(ev.from.str(), ev.to.str());
    } else if (type == "unavailable") {
      untrack_directed(ev.from.str(), ev.to.str());
    }
    co_return HookResult::pass;
  }

  // "presence/bare|full": presence arriving for a local user. Available and
  // unavailable presence is left to the router's delivery.
  Task<HookResult> on_inbound(StanzaEvent& ev) {
    const auto type = ev.stanza.attr("type");
    const auto subscription = im::subscription_type(type);
    if (!subscription && type != "probe") co_return HookResult::pass;
    if (ev.from.empty() || ev.to.local().empty()) co_return HookResult::handled;
    if (subscription) {
      co_await inbound_subscription(ev, *subscription);
    } else {
      co_await probe(ev);
    }
    co_return HookResult::handled;
  }

  // A closed session whose resource was available leaves as if it had sent
  // unavailable presence (RFC 6121 §4.5.1).
  Task<void> on_closed(router::SessionEvent& ev) {
    const bool was_available = ev.last && ev.last->available;
    co_await broadcast_unavailable(ev.jid, im::presence("unavailable", ev.jid.str(), {}), was_available);
  }

 private:
  struct Contacts {
    std::vector<storage::RosterItem> items;
    std::vector<storage::RosterStore::PendingIn> pending_in;
  };

  // The user's roster, and the pending inbound requests when asked for; an
  // empty roster when storage fails (presence then reaches the user's own
  // resources only).
  Task<Contacts> load_contacts(const xmpp::Jid& user, bool with_pending_in) {
    const std::string owner = user.bare_str();
    Contacts contacts;
    try {
      contacts = co_await workers_.run([&] {
        auto& roster = storage_.roster();
        Contacts loaded;
        loaded.items = roster.get(owner).items;
        if (with_pending_in) loaded.pending_in = roster.pending_in(owner);
        return loaded;
      });
    } catch (const storage::Error& e) {
      spdlog::error("presence: reading the roster of {} failed: {}", owner, e.what());
    }
    co_return contacts;
  }

  // RFC 6121 §4.2 (initial presence) and §4.4 (later updates).
  Task<void> available(StanzaEvent& ev) {
    const xmpp::Jid& user = ev.from;
    const auto previous = router_.sessions().find(user);
    const bool initial = !previous || !previous->available;
    router_.sessions().set_presence(user, std::make_shared<const xml::Element>(ev.stanza),
                                    im::presence_priority(ev.stanza));

    const auto contacts = co_await load_contacts(user, initial);
    for (const auto& item : contacts.items) {
      if (im::has_from(item.subscription)) co_await route_copy(ev.stanza, item.jid);
    }
    for (const auto& resource : router_.sessions().resources(user.bare())) {
      if (resource.available) co_await route_copy(ev.stanza, resource.jid.str());
    }
    if (!initial) co_return;

    for (const auto& item : contacts.items) {
      if (im::has_to(item.subscription)) {
        co_await router_.route(im::presence("probe", user.bare_str(), item.jid));
      }
    }
    for (const auto& resource : router_.sessions().resources(user.bare())) {
      if (resource.jid == user || !resource.available || !resource.presence) continue;
      xml::Element copy = *resource.presence;
      copy.set_attr("from", resource.jid.str());
      copy.set_attr("to", user.str());
      co_await router_.route(std::move(copy));
    }
    deliver_pending_requests(user, contacts.pending_in);
    co_await host_.fire(std::string(im::initial_presence_event), ev);
  }

  // RFC 6121 §3.1.3: requests that waited for the user are shown when a
  // resource becomes available.
  void deliver_pending_requests(const xmpp::Jid& user, const std::vector<storage::RosterStore::PendingIn>& pending) {
    if (pending.empty()) return;
    const auto resource = router_.sessions().find(user);
    if (!resource) return;
    for (const auto& request : pending) {
      if (auto stanza = im::parse_stored_stanza(request.stanza)) {
        resource->session->deliver(std::move(*stanza));
      } else {
        spdlog::warn("presence: unreadable stored subscription request from {} to {}", request.from,
                     user.bare_str());
      }
    }
  }

  Task<void> unavailable(StanzaEvent& ev) {
    const auto previous = router_.sessions().find(ev.from);
    const bool was_available = previous && previous->available;
    router_.sessions().set_presence(ev.from, nullptr, 0);
    co_await broadcast_unavailable(ev.from, ev.stanza, was_available);
  }

  // RFC 6121 §4.5.2: unavailable presence goes to the presence subscribers
  // and the user's other resources when the resource was available, and in
  // any case to whoever got directed presence from it (§4.6.3).
  Task<void> broadcast_unavailable(const xmpp::Jid& user, const xml::Element& stanza, bool was_available) {
    std::set<std::string> sent;
    if (was_available) {
      const auto contacts = co_await load_contacts(user, false);
      for (const auto& item : contacts.items) {
        if (im::has_from(item.subscription) && sent.insert(item.jid).second) co_await route_copy(stanza, item.jid);
      }
      for (const auto& resource : router_.sessions().resources(user.bare())) {
        if (resource.available && resource.jid != user) co_await route_copy(stanza, resource.jid.str());
      }
    }
    for (const auto& recipient : take_directed(user.str())) {
      if (sent.insert(recipient).second) co_await route_copy(stanza, recipient);
    }
  }

  Task<void> route_copy(const xml::Element& stanza, const std::string& to) {
    xml::Element copy = stanza;
    copy.set_attr("to", to);
    co_await router_.route(std::move(copy));
  }

  // RFC 6121 §3.1.2, §3.1.5, §3.2.2, §3.3.2 and Appendix A.2.
  Task<void> outbound_subscription(StanzaEvent& ev, SubscriptionType type) {
    const auto user = ev.from.bare();
    const auto contact = ev.to.bare();
    // §3.1.2: subscription stanzas leave stamped with the user's bare JID.
    xml::Element stanza = ev.stanza;
    stanza.set_attr("from", user.str());
    stanza.set_attr("to", contact.str());

    std::optional<im::Transition> transition;
    try {
      transition = co_await workers_.run([&] {
        return im::apply_subscription(storage_.roster(), user.str(), contact.str(),
                                      [type](im::SubscriptionState s) { return im::after_outbound(s, type); });
      });
    } catch (const storage::Error& e) {
      spdlog::error("presence: {} from {} to {} not processed: {}", im::type_name(type), user.str(),
                    contact.str(), e.what());
    }
    if (!transition) co_return;
    if (transition->item_changed) {
      im::push_roster_item(router_.sessions(), user, im::item_element(transition->item), transition->version);
    }

    const bool granted = !im::has_from(transition->before.subscription) &&
                         im::has_from(transition->after.subscription);
    const bool revoked = im::has_from(transition->before.subscription) &&
                         !im::has_from(transition->after.subscription);
    // An approval that answers no request is a pre-approval (§3.4) and stays
    // here; everything else reaches the contact, which keeps both sides'
    // states in step even when they had drifted apart.
    if (type == SubscriptionType::subscribed && !granted) co_return;
    co_await router_.route(std::move(stanza));
    if (granted) co_await im::send_presence_of_resources(router_, user, contact.str());
    if (revoked) co_await im::send_unavailable_of_resources(router_, user, contact.str());
  }

  // RFC 6121 §3.1.3, §3.1.6, §3.2.3, §3.3.3 and Appendix A.3.
  Task<void> inbound_subscription(StanzaEvent& ev, SubscriptionType type) {
    const auto user = ev.to.bare();
    const auto contact = ev.from.bare();
    xml::Element stanza = ev.stanza;
    stanza.set_attr("from", contact.str());
    stanza.set_attr("to", user.str());
    const std::string request = xml::serialize(stanza);

    // Subscription stanzas for an account that does not exist are ignored
    // (RFC 6121 §8.5.1 permits it for every subscription type), so a
    // would-be subscriber learns nothing about which accounts exist; a probe
    // gets the same "unsubscribed" as any probe from a non-subscriber.
    std::optional<im::Transition> transition;
    try {
      transition = co_await workers_.run([&]() -> std::optional<im::Transition> {
        if (!storage_.accounts().find(user.local(), user.domain())) return std::nullopt;
        return im::apply_subscription(
            storage_.roster(), user.str(), contact.str(),
            [type](im::SubscriptionState s) { return im::after_inbound(s, type); }, request);
      });
    } catch (const storage::Error& e) {
      spdlog::error("presence: {} from {} to {} not processed: {}", im::type_name(type), contact.str(),
                    user.str(), e.what());
    }
    if (!transition) co_return;
    if (transition->item_changed) {
      im::push_roster_item(router_.sessions(), user, im::item_element(transition->item), transition->version);
    }

    const auto& before = transition->before;
    const auto& after = transition->after;
    if (type == SubscriptionType::subscribe) {
      if (im::has_from(after.subscription)) {
        // Already subscribed (§3.1.3) or pre-approved (§3.4): the server
        // answers for the user, and the subscriber gets the presence its
        // new subscription entitles it to.
        co_await router_.route(im::presence("subscribed", user.str(), contact.str()));
        co_await im::send_presence_of_resources(router_, user, contact.str());
      } else if (after.pending_in && !before.pending_in) {
        deliver_to_available(user, stanza);
      }
      co_return;
    }
    if (before == after) co_return;  // A.3: no state change, nothing to tell the user
    deliver_to_available(user, stanza);
    if (type == SubscriptionType::unsubscribe && im::has_from(before.subscription)) {
      co_await im::send_unavailable_of_resources(router_, user, contact.str());
    }
  }

  // RFC 6121 §4.3.2.
  Task<void> probe(StanzaEvent& ev) {
    const auto user = ev.to.bare();
    const auto prober = ev.from.bare();
    bool subscribed = false;
    try {
      subscribed = co_await workers_.run([&] {
        if (!storage_.accounts().find(user.local(), user.domain())) return false;
        const auto item = storage_.roster().get_item(user.str(), prober.str());
        return item && im::has_from(item->subscription);
      });
    } catch (const storage::Error& e) {
      spdlog::error("presence: probe from {} to {} not answered: {}", prober.str(), user.str(), e.what());
      co_return;
    }
    if (!subscribed) {
      // Tells the prober's server its subscription is gone, so the stale
      // roster state gets repaired.
      co_await router_.route(im::presence("unsubscribed", user.str(), prober.str()));
      co_return;
    }
    const std::string reply_to = ev.from.str();
    if (co_await im::send_presence_of_resources(router_, user, reply_to) == 0) {
      co_await router_.route(im::presence("unavailable", user.str(), reply_to));
    }
  }

  void deliver_to_available(const xmpp::Jid& user, const xml::Element& stanza) {
    for (const auto& resource : router_.sessions().resources(user)) {
      if (resource.available) resource.session->deliver(stanza);
    }
  }

  void track_directed(const std::string& from, const std::string& to) {
    std::lock_guard lock(directed_mutex_);
    directed_[from].insert(to);
  }

  void untrack_directed(const std::string& from, const std::string& to) {
    std::lock_guard lock(directed_mutex_);
    auto found = directed_.find(from);
    if (found == directed_.end()) return;
    found->second.erase(to);
    if (found->second.empty()) directed_.erase(found);
  }

  std::set<std::string> take_directed(const std::string& from) {
    std::lock_guard lock(directed_mutex_);
    auto node = directed_.extract(from);
    return node ? std::move(node.mapped()) : std::set<std::string>{};
  }

  router::Host& host_;
  router::Router& router_;
  storage::Storage& storage_;
  router::WorkerPool& workers_;
  // Who got directed presence from each full JID (RFC 6121 §4.6), so that
  // its unavailable presence reaches them too.
  std::mutex directed_mutex_;
  std::unordered_map<std::string, std::set<std::string>> directed_;
};

class PresenceModule : public Module {
 public:
  explicit PresenceModule(Context& context)
      : host_(context.host),
        options_(context.options),
        service_(std::make_shared<PresenceService>(context.host, context.router, context.storage, context.workers)) {}

  void start() override {
    options::expect_keys(options_, "presence", {});
    auto service = service_;
    host_.hook("pre-presence/broadcast", 0, [service](StanzaEvent& ev) { return service->on_broadcast(ev); });
    for (const char* kind : {"bare", "full", "host"}) {
      host_.hook(std::string("pre-presence/") + kind, 0,
                 [service](StanzaEvent& ev) { return service->on_outbound(ev); });
    }
    for (const char* kind : {"bare", "full"}) {
      host_.hook(std::string("presence/") + kind, 0, [service](StanzaEvent& ev) { return service->on_inbound(ev); });
    }
    host_.on_session_closed([service](router::SessionEvent& ev) { return service->on_closed(ev); });
  }

 private:
  router::Host& host_;
  YAML::Node options_;
  std::shared_ptr<PresenceService> service_;
};

}  // namespace

std::unique_ptr<Module> make_presence_module(Context& context) { return std::make_unique<PresenceModule>(context); }

}  // namespace parley::modules
