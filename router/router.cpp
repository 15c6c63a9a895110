#include "router/router.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "xmpp/errors.hpp"

namespace parley::router {

namespace {

std::string iq_handler_key(IqTarget target, std::string_view type, std::string_view child_ns) {
  std::string key;
  key.reserve(child_ns.size() + 8);
  key += static_cast<char>('0' + static_cast<int>(target));
  key += type;
  key += ' ';
  key += child_ns;
  return key;
}

// Where a stanza is addressed within a domain, as named in hook events.
std::string_view address_kind(const xmpp::Jid& to) {
  if (to.is_domain()) return "host";
  return to.is_bare() ? "bare" : "full";
}

// "<kind>/<address kind>" (with prefix "pre-": the sender's side), spelled out
// for the three stanza kinds so routing builds no event name per stanza.
std::string event_name(std::string_view prefix, std::string_view kind, const xmpp::Jid& to) {
  std::string name;
  name.reserve(prefix.size() + kind.size() + 5);
  name += prefix;
  name += kind;
  name += '/';
  name += address_kind(to);
  return name;
}

std::string_view stanza_event(bool outbound, std::string_view kind, const xmpp::Jid& to) {
  static constexpr std::string_view names[2][3][3] = {
      {{"message/host", "message/bare", "message/full"},
       {"presence/host", "presence/bare", "presence/full"},
       {"iq/host", "iq/bare", "iq/full"}},
      {{"pre-message/host", "pre-message/bare", "pre-message/full"},
       {"pre-presence/host", "pre-presence/bare", "pre-presence/full"},
       {"pre-iq/host", "pre-iq/bare", "pre-iq/full"}}};
  const int address = to.is_domain() ? 0 : to.is_bare() ? 1 : 2;
  const int kind_index = kind == "message" ? 0 : kind == "presence" ? 1 : kind == "iq" ? 2 : -1;
  if (kind_index < 0) return {};
  return names[outbound ? 1 : 0][kind_index][address];
}

bool is_request(std::string_view iq_type) { return iq_type == "get" || iq_type == "set"; }

}  // namespace

void Host::hook(const std::string& event, int priority, Hook hook) {
  auto& chain = hooks_[event];
  auto position = std::find_if(chain.begin(), chain.end(),
                               [priority](const PrioritisedHook& h) { return h.priority < priority; });
  chain.insert(position, PrioritisedHook{priority, std::move(hook)});
}

void Host::add_iq_handler(IqTarget target, std::string_view type, std::string_view child_ns, IqHandler handler) {
  iq_handlers_[iq_handler_key(target, type, child_ns)] = std::move(handler);
}

void Host::on_session_bound(SessionHook hook) { bound_hooks_.push_back(std::move(hook)); }
void Host::on_session_closed(SessionHook hook) { closed_hooks_.push_back(std::move(hook)); }

void Host::add_disco_feature(std::string var) { features_.push_back(std::move(var)); }
void Host::add_disco_identity(Identity identity) { identities_.push_back(std::move(identity)); }
std::vector<std::string> Host::disco_features() const { return features_; }
std::vector<Host::Identity> Host::disco_identities() const { return identities_; }
void Host::add_disco_item(Item item) { items_.push_back(std::move(item)); }
std::vector<Host::Item> Host::disco_items() const { return items_; }
void Host::add_account_disco_feature(std::string var) { account_features_.push_back(std::move(var)); }
std::vector<std::string> Host::account_disco_features() const { return account_features_; }

Task<HookResult> Host::fire(std::string_view event, StanzaEvent& ev) const {
  auto chain = hooks_.find(event);
  if (chain == hooks_.end()) co_return HookResult::pass;
  for (const auto& entry : chain->second) {
    if (co_await entry.hook(ev) == HookResult::handled) co_return HookResult::handled;
  }
  co_return HookResult::pass;
}

const IqHandler* Host::iq_handler(IqTarget target, std::string_view type, std::string_view child_ns) const {
  auto found = iq_handlers_.find(iq_handler_key(target, type, child_ns));
  return found == iq_handlers_.end() ? nullptr : &found->second;
}

Task<void> Host::fire_session_bound(SessionEvent& ev) const {
  for (const auto& hook : bound_hooks_) co_await hook(ev);
}

Task<void> Host::fire_session_closed(SessionEvent& ev) const {
  for (const auto& hook : closed_hooks_) co_await hook(ev);
}

Router::Router() = default;
Router::~Router() = default;

Host& Router::add_host(const std::string& domain) {
  auto& slot = hosts_[domain];
  if (!slot) slot = std::make_unique<Host>(*this, domain);
  return *slot;
}

Host* Router::host(std::string_view domain) {
  auto found = hosts_.find(domain);
  return found == hosts_.end() ? nullptr : found->second.get();
}

const Host* Router::host(std::string_view domain) const {
  auto found = hosts_.find(domain);
  return found == hosts_.end() ? nullptr : found->second.get();
}

void Router::add_domain_route(const std::string& domain, RemoteRoute route) {
  domain_routes_[domain] = std::move(route);
}

std::vector<std::string> Router::host_names() const {
  std::vector<std::string> names;
  for (const auto& [name, host] : hosts_) names.push_back(name);
  return names;
}

Task<void> Router::process_from_client(xml::Element stanza, const xmpp::Jid& full,
                                       std::shared_ptr<Session> origin) {
  StanzaEvent ev{std::move(stanza), full, {}, std::move(origin)};
  const std::string kind = ev.stanza.name();
  if (const std::string* to = ev.stanza.find_attr("to")) {
    auto parsed = xmpp::Jid::parse(*to);
    if (!parsed) {
      if (!xmpp::is_error_stanza(ev.stanza)) {
        ev.stanza.remove_attr("to");
        ev.stanza.set_attr("from", full.str());
        auto error = xmpp::stanza_error(ev.stanza, "jid-malformed");
        error.set_attr("to", full.str());
        ev.origin->deliver(std::move(error));
      }
      co_return;
    }
    ev.to = std::move(*parsed);
  }
  ev.stanza.set_attr("from", full.str());

  if (kind == "iq" && !xmpp::is_error_stanza(ev.stanza)) {
    const auto type = ev.stanza.attr("type");
    const bool one_payload = ev.stanza.first_child_element() != nullptr;
    if (!ev.stanza.has_attr("id") || !(is_request(type) || type == "result") ||
        (is_request(type) && !one_payload)) {
      auto error = xmpp::stanza_error(ev.stanza, "bad-request");
      error.set_attr("to", full.str());
      error.remove_attr("from");
      ev.origin->deliver(std::move(error));
      co_return;
    }
  }

  Host* own_host = host(full.domain());
  if (ev.to.empty() && kind != "presence") ev.to = full.bare();
  const std::string_view event = ev.to.empty() ? "pre-presence/broadcast" : stanza_event(true, kind, ev.to);
  if (own_host && own_host->has_hooks(event) && co_await own_host->fire(event, ev) == HookResult::handled) {
    co_return;
  }
  if (ev.to.empty()) co_return;  // a broadcast nobody handled
  if (!ev.stanza.has_attr("to") && kind != "presence") ev.stanza.set_attr("to", ev.to.str());
  if (dispatch_now(ev)) co_return;
  co_await dispatch(ev);
}

Task<void> Router::process_unauthenticated_iq(xml::Element stanza, const std::string& domain,
                                              std::shared_ptr<Session> origin) {
  StanzaEvent ev{std::move(stanza), {}, {}, std::move(origin)};
  if (auto to = xmpp::Jid::from_parts({}, domain)) ev.to = std::move(*to);
  const auto type = ev.stanza.attr("type");
  const xml::Element* payload = ev.stanza.first_child_element();
  const Host* target = host(domain);
  const IqHandler* handler =
      target && payload && is_request(type) ? target->iq_handler(IqTarget::unauthenticated, type, payload->ns())
                                            : nullptr;
  if (!handler) {
    if (is_request(type)) ev.origin->deliver(xmpp::stanza_error(ev.stanza, "service-unavailable"));
    co_return;
  }
  ev.origin->deliver(co_await call_iq_handler(*handler, ev));
}

Task<void> Router::route(xml::Element stanza) {
  StanzaEvent ev{std::move(stanza), {}, {}, nullptr};
  auto to = xmpp::Jid::parse(ev.stanza.attr("to"));
  if (!to) {
    spdlog::warn("router: dropping {} without a valid 'to'", ev.stanza.name());
    co_return;
  }
  ev.to = std::move(*to);
  if (auto from = xmpp::Jid::parse(ev.stanza.attr("from"))) ev.from = std::move(*from);
  if (dispatch_now(ev)) co_return;
  co_await dispatch(ev);
}

bool Router::dispatch_now(StanzaEvent& ev) {
  Host* target = host(ev.to.domain());
  if (!target) return false;
  const std::string& kind = ev.stanza.name();
  const std::string_view event = stanza_event(false, kind, ev.to);
  if (event.empty() || target->has_hooks(event)) return false;
  if (kind == "presence") {
    deliver_presence(ev);
    return true;
  }
  // A message or iq to a bound full JID goes to that resource whatever its
  // type (deliver_message, deliver_iq); everything else may need storage,
  // a handler or an error reply.
  if (ev.to.is_bare()) return false;
  auto session = sessions_.session(ev.to);
  if (!session) return false;
  session->deliver(std::move(ev.stanza));
  return true;
}

Task<void> Router::dispatch(StanzaEvent& ev) {
  if (Host* target = host(ev.to.domain())) {
    co_await deliver_local(ev, *target);
    co_return;
  }
  if (auto routed = domain_routes_.find(ev.to.domain()); routed != domain_routes_.end()) {
    if (!routed->second(ev.stanza, ev.to)) co_await bounce(ev.stanza, "service-unavailable");
    co_return;
  }
  if (remote_route_ && remote_route_(ev.stanza, ev.to)) co_return;
  co_await bounce(ev.stanza, "remote-server-not-found");
}

Task<void> Router::session_bound(const xmpp::Jid& full, std::shared_ptr<Session> session) {
  if (Host* own = host(full.domain())) {
    SessionEvent ev{full, std::move(session), std::nullopt};
    co_await own->fire_session_bound(ev);
  }
}

Task<void> Router::session_closed(const xmpp::Jid& full, const Session* session) {
  auto last = sessions_.unbind(full, session);
  if (!last) co_return;
  if (Host* own = host(full.domain())) {
    SessionEvent ev{full, last->session, std::move(last)};
    co_await own->fire_session_closed(ev);
  }
}

Task<void> Router::bounce(const xml::Element& stanza, std::string_view condition, std::string_view text) {
  if (xmpp::is_error_stanza(stanza)) co_return;
  if (stanza.name() == "iq" && !is_request(stanza.attr("type"))) co_return;
  if (stanza.name() == "presence") co_return;  // RFC 6121 §8: presence is never answered with errors here
  if (!stanza.has_attr("from")) co_return;
  co_await route(xmpp::stanza_error(stanza, condition, text));
}

Task<xml::Element> Router::call_iq_handler(const IqHandler& handler, StanzaEvent& ev) {
  std::optional<xml::Element> reply;
  try {
    reply = co_await handler(ev);
  } catch (const std::exception& e) {
    spdlog::error("router: iq handler for {} failed: {}", ev.stanza.first_child_element()->ns(), e.what());
  }
  if (!reply) reply = xmpp::stanza_error(ev.stanza, "internal-server-error");
  co_return std::move(*reply);
}

Task<void> Router::deliver_local(StanzaEvent& ev, Host& target) {
  const std::string& kind = ev.stanza.name();
  const std::string_view known_event = stanza_event(false, kind, ev.to);
  const std::string event = known_event.empty() ? event_name({}, kind, ev.to) : std::string(known_event);
  if (target.has_hooks(event) && co_await target.fire(event, ev) == HookResult::handled) co_return;
  if (kind == "message") {
    co_await deliver_message(ev, target);
  } else if (kind == "presence") {
    deliver_presence(ev);
  } else if (kind == "iq") {
    co_await deliver_iq(ev, target);
  }
}

Task<void> Router::deliver_message(StanzaEvent& ev, Host& target) {
  const auto type = ev.stanza.attr("type");
  if (!ev.to.is_bare() && !ev.to.is_domain()) {
    if (auto session = sessions_.session(ev.to)) {
      session->deliver(std::move(ev.stanza));
      co_return;
    }
    if (type == "groupchat") {
      co_await bounce(ev.stanza, "service-unavailable");
      co_return;
    }
    if (type == "error" || type == "headline") co_return;
    ev.to = ev.to.bare();  // RFC 6121 §8.5.3.2.1: an offline resource's message goes to the account
  }
  if (ev.to.is_domain()) {
    if (type != "headline") co_await bounce(ev.stanza, "service-unavailable");
    co_return;
  }
  auto recipients = message_recipients(type, sessions_.resources(ev.to));
  if (!recipients.empty()) {
    for (std::size_t i = 0; i + 1 < recipients.size(); ++i) recipients[i].session->deliver(ev.stanza);
    recipients.back().session->deliver(std::move(ev.stanza));
    co_return;
  }
  if (type == "error" || type == "headline") co_return;
  if (type != "groupchat" && co_await target.fire("message/offline", ev) == HookResult::handled) co_return;
  co_await bounce(ev.stanza, "service-unavailable");
}

void Router::deliver_presence(StanzaEvent& ev) {
  const auto type = ev.stanza.attr("type");
  // An error presence (a refused MUC join, ...) answers one resource and reaches it.
  const bool error_to_resource = type == "error" && !ev.to.is_bare();
  // Subscriptions and probes belong to the presence module.
  if (!type.empty() && type != "unavailable" && !error_to_resource) return;
  if (ev.to.is_domain()) return;
  if (!ev.to.is_bare()) {
    if (auto session = sessions_.session(ev.to)) session->deliver(std::move(ev.stanza));
    return;
  }
  for (const auto& resource : sessions_.resources(ev.to)) {
    if (resource.available) resource.session->deliver(ev.stanza);
  }
}

Task<void> Router::deliver_iq(StanzaEvent& ev, Host& target) {
  const auto type = ev.stanza.attr("type");
  if (!ev.to.is_bare()) {
    if (auto session = sessions_.session(ev.to)) {
      session->deliver(std::move(ev.stanza));
    } else {
      co_await bounce(ev.stanza, "service-unavailable");
    }
    co_return;
  }
  if (!is_request(type)) co_return;
  const xml::Element* payload = ev.stanza.first_child_element();
  const IqTarget kind = ev.to.is_domain() ? IqTarget::host : IqTarget::account;
  const IqHandler* handler = payload ? target.iq_handler(kind, type, payload->ns()) : nullptr;
  if (!handler) {
    co_await bounce(ev.stanza, "service-unavailable");
    co_return;
  }
  co_await route(co_await call_iq_handler(*handler, ev));
}

std::vector<Resource> message_recipients(std::string_view type, const std::vector<Resource>& resources) {
  std::vector<Resource> recipients;
  if (type == "groupchat" || type == "error") return recipients;
  if (type == "headline") {
    for (const auto& r : resources) {
      if (r.available && r.priority >= 0) recipients.push_back(r);
    }
    return recipients;
  }
  int best = -1;
  for (const auto& r : resources) {
    if (r.available && r.priority > best) best = r.priority;
  }
  if (best < 0) return recipients;
  for (const auto& r : resources) {
    if (r.available && r.priority == best) recipients.push_back(r);
  }
  return recipients;
}

}  // namespace parley::router
