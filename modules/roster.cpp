// Roster management (RFC 6121 §2) with roster versioning (XEP-0237, RFC 6121
// §2.6). The rosterver stream feature is advertised by the c2s layer.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <charconv>
#include <memory>
#include <tuple>
#include <utility>

#include "modules/factories.hpp"
#include "modules/im_util.hpp"
#include "modules/module_options.hpp"
#include "xmpp/errors.hpp"

namespace parley::modules {

namespace {

using router::StanzaEvent;
using router::Task;

// Longest roster item name or group name accepted (RFC 6121 §2.3.3 lets the
// server set a limit; this is the limit of a JID part).
constexpr std::size_t max_text_bytes = 1023;

// The roster version a client sent (XEP-0237 §2.3); nullopt for an empty or
// foreign one, which gets the whole roster.
std::optional<std::int64_t> parse_version(std::string_view ver) {
  std::int64_t value = 0;
  auto [end, error] = std::from_chars(ver.data(), ver.data() + ver.size(), value);
  if (ver.empty() || error != std::errc() || end != ver.data() + ver.size() || value < 0) return std::nullopt;
  return value;
}

class RosterService {
 public:
  RosterService(router::Router& router, storage::Storage& storage, router::WorkerPool& workers)
      : router_(router), storage_(storage), workers_(workers) {}

  Task<xml::Element> get(StanzaEvent& ev) {
    if (ev.to != ev.from.bare()) co_return xmpp::stanza_error(ev.stanza, "forbidden");
    const xml::Element* query = ev.stanza.child("query", im::ns_roster);
    if (!query) co_return xmpp::stanza_error(ev.stanza, "bad-request");
    router_.sessions().set_interested(ev.from, true);

    const std::string owner = ev.from.bare_str();
    const auto since = query->has_attr("ver") ? parse_version(query->attr("ver")) : std::nullopt;
    struct Answer {
      std::int64_t version = 0;
      std::optional<std::vector<storage::RosterChange>> changes;
      std::vector<storage::RosterItem> items;
    };
    Answer answer;
    bool failed = false;
    try {
      answer = co_await workers_.run([&] {
        auto& roster = storage_.roster();
        auto lock = im::lock_roster(owner);
        Answer result;
        if (since) {
          // The version is read before the changes so a change made in
          // between is sent again later rather than skipped.
          result.version = roster.version(owner);
          result.changes = roster.changes_since(owner, *since);
          if (result.changes) return result;
        }
        auto full = roster.get(owner);
        result.version = full.version;
        result.items = std::move(full.items);
        return result;
      });
    } catch (const storage::Error& e) {
      spdlog::error("roster: reading the roster of {} failed: {}", owner, e.what());
      failed = true;
    }
    if (failed) co_return xmpp::stanza_error(ev.stanza, "internal-server-error", {}, "wait");

    if (answer.changes) {
      if (!answer.changes->empty()) {
        co_await send_changes_after_result(ev, std::move(*answer.changes), *since, answer.version);
      }
      co_return xmpp::iq_result(ev.stanza);
    }
    auto reply = xmpp::iq_result(ev.stanza);
    auto& result_query = reply.add_child("query", std::string(im::ns_roster));
    result_query.set_attr("ver", std::to_string(answer.version));
    for (const auto& item : answer.items) result_query.add_child(im::item_element(item));
    co_return reply;
  }

  Task<xml::Element> set(StanzaEvent& ev) {
    if (ev.to != ev.from.bare()) co_return xmpp::stanza_error(ev.stanza, "forbidden");
    const xml::Element* query = ev.stanza.child("query", im::ns_roster);
    if (!query) co_return xmpp::stanza_error(ev.stanza, "bad-request");
    const auto items = std::count_if(query->children().begin(), query->children().end(),
                                     [](const xml::Element& c) { return c.is("item", im::ns_roster); });
    if (items != 1) co_return xmpp::stanza_error(ev.stanza, "bad-request", "a roster set holds exactly one item");
    const xml::Element& item = *query->child("item", im::ns_roster);

    auto contact = xmpp::Jid::parse(item.attr("jid"));
    if (!contact) co_return xmpp::stanza_error(ev.stanza, "bad-request", "the item's jid is not a valid JID");
    if (!contact->is_bare()) co_return xmpp::stanza_error(ev.stanza, "bad-request", "roster items are bare JIDs");

    if (item.attr("subscription") == "remove") co_return co_await remove(ev, contact->str());

    // Any other 'subscription' or 'ask' from a client is ignored (RFC 6121 §2.1.2.5).
    std::string name(item.attr("name"));
    if (name.size() > max_text_bytes) co_return xmpp::stanza_error(ev.stanza, "not-acceptable", "name too long");
    std::vector<std::string> groups;
    for (const auto& child : item.children()) {
      if (!child.is("group", im::ns_roster)) continue;
      std::string group = child.text();
      if (group.empty()) co_return xmpp::stanza_error(ev.stanza, "not-acceptable", "empty group name");
      if (group.size() > max_text_bytes) co_return xmpp::stanza_error(ev.stanza, "not-acceptable", "group too long");
      if (std::find(groups.begin(), groups.end(), group) == groups.end()) groups.push_back(std::move(group));
    }
    co_return co_await update(ev, contact->str(), std::move(name), std::move(groups));
  }

 private:
  Task<xml::Element> update(StanzaEvent& ev, const std::string& contact, std::string name,
                            std::vector<std::string> groups) {
    const std::string owner = ev.from.bare_str();
    storage::RosterItem item;
    std::int64_t version = 0;
    bool failed = false;
    try {
      std::tie(item, version) = co_await workers_.run([&] {
        auto& roster = storage_.roster();
        auto lock = im::lock_roster(owner);
        storage::RosterItem stored;
        stored.jid = contact;
        if (auto existing = roster.get_item(owner, contact)) stored = std::move(*existing);
        stored.name = name;
        stored.groups = groups;
        const auto new_version = roster.put_item(owner, stored);
        return std::pair(stored, new_version);
      });
    } catch (const storage::Error& e) {
      spdlog::error("roster: updating {} in the roster of {} failed: {}", contact, owner, e.what());
      failed = true;
    }
    if (failed) co_return xmpp::stanza_error(ev.stanza, "internal-server-error", {}, "wait");
    im::push_roster_item(router_.sessions(), ev.from, im::item_element(item), version);
    co_return xmpp::iq_result(ev.stanza);
  }

  // RFC 6121 §2.5: removing an item cancels the subscriptions both ways.
  Task<xml::Element> remove(StanzaEvent& ev, const std::string& contact) {
    const std::string owner = ev.from.bare_str();
    struct Removed {
      storage::RosterItem item;
      bool pending_in = false;
      std::int64_t version = 0;
    };
    std::optional<Removed> removed;
    bool failed = false;
    try {
      removed = co_await workers_.run([&]() -> std::optional<Removed> {
        auto& roster = storage_.roster();
        auto lock = im::lock_roster(owner);
        auto item = roster.get_item(owner, contact);
        if (!item) return std::nullopt;
        const auto version = roster.remove_item(owner, contact);
        if (!version) return std::nullopt;
        const bool pending_in = roster.remove_pending_in(owner, contact);
        return Removed{std::move(*item), pending_in, *version};
      });
    } catch (const storage::Error& e) {
      spdlog::error("roster: removing {} from the roster of {} failed: {}", contact, owner, e.what());
      failed = true;
    }
    if (failed) co_return xmpp::stanza_error(ev.stanza, "internal-server-error", {}, "wait");
    if (!removed) co_return xmpp::stanza_error(ev.stanza, "item-not-found");

    const auto user = ev.from.bare();
    const auto& item = removed->item;
    if (im::has_to(item.subscription) || item.ask) {
      co_await router_.route(im::presence("unsubscribe", owner, contact));
    }
    if (im::has_from(item.subscription) || removed->pending_in) {
      co_await router_.route(im::presence("unsubscribed", owner, contact));
    }
    if (im::has_from(item.subscription)) co_await im::send_unavailable_of_resources(router_, user, contact);
    im::push_roster_item(router_.sessions(), user, im::removed_item_element(contact), removed->version);
    co_return xmpp::iq_result(ev.stanza);
  }

  // XEP-0237 §2.4: the empty result comes first, then one push per change.
  // The router delivers the handler's result when the handler returns, so
  // the pushes are posted to run after it. Every push but the last carries
  // the version the client already had: a client cut off halfway then asks
  // again from there instead of believing it is up to date.
  Task<void> send_changes_after_result(const StanzaEvent& ev, std::vector<storage::RosterChange> changes,
                                       std::int64_t since, std::int64_t version) {
    auto session = ev.origin;
    if (!session) {
      auto resource = router_.sessions().find(ev.from);
      if (!resource) co_return;
      session = resource->session;
    }
    std::vector<xml::Element> pushes;
    pushes.reserve(changes.size());
    for (std::size_t i = 0; i < changes.size(); ++i) {
      const auto& change = changes[i];
      auto item = change.removed ? im::removed_item_element(change.item.jid) : im::item_element(change.item);
      const auto ver = i + 1 == changes.size() ? version : since;
      pushes.push_back(im::roster_push(ev.from, std::move(item), std::to_string(ver)));
    }
    const auto executor = co_await boost::asio::this_coro::executor;
    boost::asio::post(executor, [session = std::move(session), pushes = std::move(pushes)]() mutable {
      for (auto& push : pushes) session->deliver(std::move(push));
    });
  }

  router::Router& router_;
  storage::Storage& storage_;
  router::WorkerPool& workers_;
};

class RosterModule : public Module {
 public:
  explicit RosterModule(Context& context)
      : host_(context.host),
        options_(context.options),
        service_(std::make_shared<RosterService>(context.router, context.storage, context.workers)) {}

  void start() override {
    options::expect_keys(options_, "roster", {});
    host_.add_iq_handler(router::IqTarget::account, "get", im::ns_roster,
                         [service = service_](StanzaEvent& ev) { return service->get(ev); });
    host_.add_iq_handler(router::IqTarget::account, "set", im::ns_roster,
                         [service = service_](StanzaEvent& ev) { return service->set(ev); });
  }

 private:
  router::Host& host_;
  YAML::Node options_;
  std::shared_ptr<RosterService> service_;
};

}  // namespace

std::unique_ptr<Module> make_roster_module(Context& context) { return std::make_unique<RosterModule>(context); }

}  // namespace parley::modules
