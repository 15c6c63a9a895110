// Service discovery (XEP-0030) for the server's domain and, on their behalf
// (RFC 6121 §8.5.1), for its accounts.
//
// Option: 'items', the entities listed by disco#items on the server's domain
// (a list of {jid, name}), e.g. a MUC service or a component. Nodes are not
// supported: a query with a node gets item-not-found.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "modules/factories.hpp"
#include "modules/module_options.hpp"
#include "xmpp/errors.hpp"

namespace parley::modules {
namespace {

constexpr std::string_view ns_disco_info = "http://jabber.org/protocol/disco#info";
constexpr std::string_view ns_disco_items = "http://jabber.org/protocol/disco#items";

using router::IqTarget;
using router::StanzaEvent;
using router::Task;

std::vector<router::Host::Item> read_items(const YAML::Node& options) {
  std::vector<router::Host::Item> items;
  const auto list = options::find(options, "items");
  if (!list.IsDefined() || list.IsNull()) return items;
  if (!list.IsSequence()) throw OptionError(list, "option 'items' must be a list of {jid, name}");
  for (const auto& entry : list) {
    const auto jid_node = options::find(entry, "jid");
    if (!entry.IsMap() || !jid_node.IsScalar()) throw OptionError(entry, "a disco item needs a 'jid'");
    options::expect_keys(entry, "disco", {"jid", "name"});
    const auto jid = xmpp::Jid::parse(jid_node.Scalar());
    if (!jid) throw OptionError(jid_node, "'" + jid_node.Scalar() + "' is not a valid JID");
    const auto name_node = options::find(entry, "name");
    if (name_node.IsDefined() && !name_node.IsScalar()) throw OptionError(name_node, "'name' must be a string");
    items.push_back({jid->str(), name_node.IsDefined() ? name_node.Scalar() : std::string()});
  }
  return items;
}

// A query with a non-empty 'node' asks for a node we do not have.
bool asks_for_node(const StanzaEvent& event, std::string_view ns) {
  const auto* query = event.stanza.child_in(ns);
  return query != nullptr && !query->attr("node").empty();
}

void add_features(xml::Element& query, std::vector<std::string> features) {
  std::sort(features.begin(), features.end());
  features.erase(std::unique(features.begin(), features.end()), features.end());
  for (auto& var : features) {
    query.add_child("feature", std::string(ns_disco_info)).set_attr("var", std::move(var));
  }
}

void add_identity(xml::Element& query, const router::Host::Identity& identity) {
  auto& element = query.add_child("identity", std::string(ns_disco_info));
  element.set_attr("category", identity.category);
  element.set_attr("type", identity.type);
  if (!identity.name.empty()) element.set_attr("name", identity.name);
}

class DiscoModule final : public Module {
 public:
  explicit DiscoModule(Context& context) : ctx_(context) {}

  void start() override {
    options::expect_keys(ctx_.options, "disco", {"items"});
    auto& host = ctx_.host;
    for (auto& item : read_items(ctx_.options)) host.add_disco_item(std::move(item));
    host.add_iq_handler(IqTarget::host, "get", ns_disco_info, [this](StanzaEvent& ev) { return host_info(ev); });
    host.add_iq_handler(IqTarget::host, "get", ns_disco_items, [this](StanzaEvent& ev) { return host_items(ev); });
    host.add_iq_handler(IqTarget::account, "get", ns_disco_info,
                        [this](StanzaEvent& ev) { return account_info(ev); });
    host.add_iq_handler(IqTarget::account, "get", ns_disco_items,
                        [this](StanzaEvent& ev) { return account_items(ev); });
  }

 private:
  Task<xml::Element> host_info(StanzaEvent& event) {
    if (asks_for_node(event, ns_disco_info)) co_return xmpp::stanza_error(event.stanza, "item-not-found");
    auto reply = xmpp::iq_result(event.stanza);
    auto& query = reply.add_child("query", std::string(ns_disco_info));
    add_identity(query, {"server", "im", ctx_.server_name});
    for (const auto& identity : ctx_.host.disco_identities()) add_identity(query, identity);
    auto features = ctx_.host.disco_features();
    features.emplace_back(ns_disco_info);
    features.emplace_back(ns_disco_items);
    add_features(query, std::move(features));
    co_return reply;
  }

  Task<xml::Element> host_items(StanzaEvent& event) {
    if (asks_for_node(event, ns_disco_items)) co_return xmpp::stanza_error(event.stanza, "item-not-found");
    auto reply = xmpp::iq_result(event.stanza);
    auto& query = reply.add_child("query", std::string(ns_disco_items));
    for (const auto& item : ctx_.host.disco_items()) {
      auto& element = query.add_child("item", std::string(ns_disco_items));
      element.set_attr("jid", item.jid);
      if (!item.name.empty()) element.set_attr("name", item.name);
    }
    co_return reply;
  }

  // The server answers for an account whoever asks (XEP-0030 §2 / RFC 6121
  // §8.5.1), as long as the account exists.
  Task<xml::Element> account_info(StanzaEvent& event) {
    const auto exists = co_await account_exists(event.to);
    if (!exists) co_return xmpp::stanza_error(event.stanza, "internal-server-error");
    if (!*exists) co_return xmpp::stanza_error(event.stanza, "service-unavailable");
    if (asks_for_node(event, ns_disco_info)) co_return xmpp::stanza_error(event.stanza, "item-not-found");
    auto reply = xmpp::iq_result(event.stanza);
    auto& query = reply.add_child("query", std::string(ns_disco_info));
    add_identity(query, {"account", "registered", {}});
    auto features = ctx_.host.account_disco_features();
    features.emplace_back(ns_disco_info);
    features.emplace_back(ns_disco_items);
    add_features(query, std::move(features));
    co_return reply;
  }

  Task<xml::Element> account_items(StanzaEvent& event) {
    const auto exists = co_await account_exists(event.to);
    if (!exists) co_return xmpp::stanza_error(event.stanza, "internal-server-error");
    if (!*exists) co_return xmpp::stanza_error(event.stanza, "service-unavailable");
    if (asks_for_node(event, ns_disco_items)) co_return xmpp::stanza_error(event.stanza, "item-not-found");
    auto reply = xmpp::iq_result(event.stanza);
    reply.add_child("query", std::string(ns_disco_items));
    co_return reply;
  }

  // Whether the account exists; nullopt when storage failed.
  Task<std::optional<bool>> account_exists(const xmpp::Jid& account) {
    try {
      co_return co_await ctx_.workers.run([this, &account] {
        return ctx_.storage.accounts().find(account.local(), account.domain()).has_value();
      });
    } catch (const storage::Error& e) {
      spdlog::error("disco: looking up account {} failed: {}", account.bare_str(), e.what());
    }
    co_return std::nullopt;
  }

  Context ctx_;
};

}  // namespace

std::unique_ptr<Module> make_disco_module(Context& context) { return std::make_unique<DiscoModule>(context); }

}  // namespace parley::modules
