// Test support for the roster, presence and offline module tests: a test
// server with those modules, stanzas addressed to other domains captured
// instead of sent, and builders and filters for the stanzas they exchange.
#pragma once

#include <gtest/gtest.h>

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "modules/factories.hpp"
#include "modules/im_util.hpp"
#include "modules/module_test_support.hpp"

namespace parley::modules::testing {

inline xml::Element presence_stanza(std::string_view type = {}, std::string_view to = {}) {
  xml::Element stanza("presence");
  if (!type.empty()) stanza.set_attr("type", std::string(type));
  if (!to.empty()) stanza.set_attr("to", std::string(to));
  return stanza;
}

inline xml::Element available_presence(std::string_view show = {}, std::optional<int> priority = {}) {
  xml::Element stanza("presence");
  if (!show.empty()) stanza.add_child("show", std::string(xml::ns_client)).add_text(std::string(show));
  if (priority) stanza.add_child("priority", std::string(xml::ns_client)).add_text(std::to_string(*priority));
  return stanza;
}

inline xml::Element roster_get(std::string_view id, std::optional<std::string> ver = {}) {
  auto iq = make_iq("get", id, {}, "query", im::ns_roster);
  if (ver) iq.children().back().set_attr("ver", *ver);
  return iq;
}

inline xml::Element roster_set(std::string_view id, std::string_view jid, std::string_view name = {},
                               const std::vector<std::string>& groups = {}, std::string_view subscription = {}) {
  auto iq = make_iq("set", id, {}, "query", im::ns_roster);
  auto& item = iq.children().back().add_child("item", std::string(im::ns_roster));
  item.set_attr("jid", std::string(jid));
  if (!name.empty()) item.set_attr("name", std::string(name));
  if (!subscription.empty()) item.set_attr("subscription", std::string(subscription));
  for (const auto& group : groups) item.add_child("group", std::string(im::ns_roster)).add_text(group);
  return iq;
}

inline xml::Element chat_message(std::string_view to, std::string_view body, std::string_view type = "chat") {
  xml::Element message("message");
  message.set_attr("to", std::string(to));
  if (!type.empty()) message.set_attr("type", std::string(type));
  if (!body.empty()) message.add_child("body", std::string(xml::ns_client)).add_text(std::string(body));
  return message;
}

// The stanzas named 'name' whose type attribute is 'type' ("" matches no type).
inline std::vector<xml::Element> select(const std::vector<xml::Element>& stanzas, std::string_view name,
                                        std::string_view type) {
  std::vector<xml::Element> selected;
  for (const auto& stanza : stanzas) {
    if (stanza.name() == name && stanza.attr("type") == type) selected.push_back(stanza);
  }
  return selected;
}

inline std::vector<xml::Element> roster_pushes(const std::vector<xml::Element>& stanzas) {
  std::vector<xml::Element> pushes;
  for (const auto& stanza : select(stanzas, "iq", "set")) {
    if (stanza.child("query", im::ns_roster)) pushes.push_back(stanza);
  }
  return pushes;
}

// The <item/> of a roster push.
inline xml::Element pushed_item(const xml::Element& push) {
  const auto* query = push.child("query", im::ns_roster);
  const auto* item = query ? query->child("item", im::ns_roster) : nullptr;
  return item ? *item : xml::Element("no-item");
}

class ImServer : public TestServer {
 public:
  explicit ImServer(std::unique_ptr<storage::Storage> storage = storage::open("memory:"))
      : TestServer("example.org", std::move(storage)) {
    router().set_remote_route([this](xml::Element& stanza, const xmpp::Jid&) {
      std::lock_guard lock(remote_mutex_);
      remote_.push_back(stanza);
      return true;
    });
    enable(make_roster_module);
    enable(make_presence_module);
  }

  // A resource that requested its roster and sent initial presence; what it
  // received on the way is discarded.
  Client online(const std::string& full_jid, xml::Element initial = available_presence()) {
    auto client = bind(full_jid);
    ask(client, roster_get("login-roster"));
    send(client, std::move(initial));
    return client;
  }

  // Stanzas the router handed to the remote route since the last call.
  std::vector<xml::Element> take_remote() {
    std::lock_guard lock(remote_mutex_);
    return std::exchange(remote_, {});
  }

  std::optional<storage::RosterItem> item(const std::string& owner, const std::string& contact) {
    return storage().roster().get_item(owner, contact);
  }

  bool has_pending_in(const std::string& owner, const std::string& from) {
    for (const auto& pending : storage().roster().pending_in(owner)) {
      if (pending.from == from) return true;
    }
    return false;
  }

 private:
  std::mutex remote_mutex_;
  std::vector<xml::Element> remote_;
};

}  // namespace parley::modules::testing
