// Message Carbons (XEP-0280): a resource that enables carbons gets a copy of
// the chat messages its account's other resources send (<sent/>) and of the
// ones delivered to them (<received/>), so every device of a user shows the
// whole conversation. The copies are handed to the sessions directly: they
// are not new messages and must not run the message hooks again.
#include <algorithm>
#include <memory>
#include <mutex>
#include <string_view>
#include <unordered_set>

#include "modules/factories.hpp"
#include "modules/module_options.hpp"
#include "xmpp/errors.hpp"

namespace parley::modules {
namespace {

constexpr std::string_view ns_carbons = "urn:xmpp:carbons:2";
constexpr std::string_view ns_forward = "urn:xmpp:forward:0";
constexpr std::string_view ns_hints = "urn:xmpp:hints";
constexpr std::string_view ns_muc_user = "http://jabber.org/protocol/muc#user";

// Carbons see a message after every other hook: one that a hook took over
// (blocked, answered by a service) is not delivered, so not copied.
constexpr int hook_priority = -1000;

using router::HookResult;
using router::IqTarget;
using router::StanzaEvent;
using router::Task;

// XEP-0280 §6: chat messages, and normal messages with a body; never
// groupchat, headline or error, nor what the sender marked private or
// no-copy, nor what already is a carbon.
bool copyable(const xml::Element& message) {
  const auto type = message.attr("type");
  const bool eligible =
      type == "chat" || ((type.empty() || type == "normal") && message.child("body", xml::ns_client) != nullptr);
  if (!eligible) return false;
  return message.child("private", ns_carbons) == nullptr && message.child("no-copy", ns_hints) == nullptr &&
         message.child("received", ns_carbons) == nullptr && message.child("sent", ns_carbons) == nullptr;
}

// <message from=account to=resource type=..><DIRECTION
// xmlns=carbons><forwarded><message/></forwarded></DIRECTION></message>
xml::Element carbon(std::string_view direction, const xml::Element& original, const std::string& account,
                    const xmpp::Jid& to) {
  xml::Element wrapper("message");
  wrapper.set_attr("from", account);
  wrapper.set_attr("to", to.str());
  if (const auto* type = original.find_attr("type")) wrapper.set_attr("type", *type);
  auto& forwarded = wrapper.add_child(std::string(direction), std::string(ns_carbons))
                        .add_child("forwarded", std::string(ns_forward));
  forwarded.add_child(original);
  return wrapper;
}

// Which full JIDs have carbons enabled; shared by the host's handlers.
class EnabledResources {
 public:
  void set(const xmpp::Jid& full, bool enabled) {
    std::lock_guard lock(mutex_);
    if (enabled) {
      resources_.insert(full.str());
    } else {
      resources_.erase(full.str());
    }
  }
  bool contains(const xmpp::Jid& full) const {
    std::lock_guard lock(mutex_);
    return resources_.contains(full.str());
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_set<std::string> resources_;
};

class CarbonsModule final : public Module {
 public:
  explicit CarbonsModule(Context& context) : ctx_(context) {}

  void start() override {
    options::expect_keys(ctx_.options, "carbons", {});
    ctx_.host.add_iq_handler(IqTarget::account, "set", ns_carbons,
                             [enabled = enabled_](StanzaEvent& ev) { return toggle(*enabled, ev); });
    ctx_.host.on_session_closed([enabled = enabled_](router::SessionEvent& ev) -> Task<void> {
      enabled->set(ev.jid, false);
      co_return;
    });
    ctx_.host.add_disco_feature(std::string(ns_carbons));
    for (const char* event : {"message/bare", "message/full"}) {
      ctx_.host.hook(event, hook_priority, [this](StanzaEvent& ev) { return copy_received(ev); });
    }
    for (const char* event : {"pre-message/bare", "pre-message/full"}) {
      ctx_.host.hook(event, hook_priority, [this](StanzaEvent& ev) { return copy_sent(ev); });
    }
  }

 private:
  static Task<xml::Element> toggle(EnabledResources& enabled, StanzaEvent& ev) {
    if (ev.from.bare() != ev.to) co_return xmpp::stanza_error(ev.stanza, "forbidden");
    const xml::Element* payload = ev.stanza.first_child_element();
    if (payload->name() != "enable" && payload->name() != "disable") {
      co_return xmpp::stanza_error(ev.stanza, "bad-request");
    }
    enabled.set(ev.from, payload->name() == "enable");
    co_return xmpp::iq_result(ev.stanza);
  }

  // "message/bare|full" for a local account: copies to the account's
  // enabled resources that the router will not deliver the message to.
  Task<HookResult> copy_received(StanzaEvent& ev) {
    if (ev.to.local().empty() || !copyable(ev.stanza)) co_return HookResult::pass;
    auto& sessions = ctx_.router.sessions();
    const xmpp::Jid account = ev.to.bare();
    std::vector<router::Resource> recipients;
    if (!ev.to.is_bare()) {
      if (auto resource = sessions.find(ev.to)) {
        // A private message in a room is meant for that one client (XEP-0280 §6.1).
        if (ev.stanza.child("x", ns_muc_user) != nullptr) co_return HookResult::pass;
        recipients.push_back(*resource);
      }
    }
    const auto resources = sessions.resources(account);
    if (ev.to.is_bare() || recipients.empty()) {
      recipients = router::message_recipients(ev.stanza.attr("type"), resources);
    }
    for (const auto& resource : resources) {
      const bool recipient =
          std::ranges::any_of(recipients, [&](const router::Resource& r) { return r.jid == resource.jid; });
      if (recipient || !enabled_->contains(resource.jid)) continue;
      resource.session->deliver(carbon("received", ev.stanza, account.str(), resource.jid));
    }
    co_return HookResult::pass;
  }

  // "pre-message/*" from one of the host's clients: copies to the sender's
  // other enabled resources.
  Task<HookResult> copy_sent(StanzaEvent& ev) {
    if (ev.from.empty() || !copyable(ev.stanza)) co_return HookResult::pass;
    const xmpp::Jid account = ev.from.bare();
    xml::Element original = ev.stanza;
    if (!original.has_attr("to")) original.set_attr("to", ev.to.str());
    for (const auto& resource : ctx_.router.sessions().resources(account)) {
      if (resource.jid == ev.from || resource.jid == ev.to || !enabled_->contains(resource.jid)) continue;
      resource.session->deliver(carbon("sent", original, account.str(), resource.jid));
    }
    co_return HookResult::pass;
  }

  Context ctx_;
  std::shared_ptr<EnabledResources> enabled_ = std::make_shared<EnabledResources>();
};

}  // namespace

std::unique_ptr<Module> make_carbons_module(Context& context) { return std::make_unique<CarbonsModule>(context); }

}  // namespace parley::modules
