// Offline message storage (XEP-0160) with delay stamps (XEP-0203): messages
// for a user with no resource to take them are stored and delivered when a
// resource sends initial presence with a non-negative priority.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>

#include "modules/factories.hpp"
#include "modules/im_util.hpp"
#include "modules/module_options.hpp"
#include "xmpp/errors.hpp"

namespace parley::modules {

namespace {

using router::HookResult;
using router::StanzaEvent;
using router::Task;

constexpr std::string_view ns_chatstates = "http://jabber.org/protocol/chatstates";

// XEP-0082 DateTime in UTC with milliseconds: 2024-01-31T12:34:56.789Z
std::string utc_timestamp(std::chrono::system_clock::time_point when) {
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count() % 1000;
  const std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char text[32];
  const auto length = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &parts);
  char fraction[8];
  std::snprintf(fraction, sizeof fraction, ".%03dZ", static_cast<int>(millis));
  return std::string(text, length) + fraction;
}

// Whether a message carries something worth keeping: anything but chat
// state notifications (XEP-0085 §5.6 and XEP-0160 §3: those are not stored).
bool worth_storing(const xml::Element& message) {
  for (const auto& child : message.children()) {
    if (child.is_text()) continue;
    if (child.ns() == ns_chatstates) continue;
    if (child.is("thread", xml::ns_client)) continue;
    return true;
  }
  return false;
}

class OfflineService {
 public:
  OfflineService(router::Router& router, storage::Storage& storage, router::WorkerPool& workers,
                 std::string domain, std::size_t max_messages)
      : router_(router),
        storage_(storage),
        workers_(workers),
        domain_(std::move(domain)),
        max_messages_(max_messages) {}

  // "message/offline" (RFC 6121 §8.5.2.2).
  Task<HookResult> store(StanzaEvent& ev) {
    const auto type = ev.stanza.attr("type");
    if (type == "headline" || type == "error") co_return HookResult::handled;  // silently dropped
    if (!type.empty() && type != "normal" && type != "chat") co_return HookResult::pass;
    if (!worth_storing(ev.stanza)) co_return HookResult::handled;

    const xmpp::Jid owner = ev.to.bare();
    xml::Element stamped = ev.stanza;
    auto& delay = stamped.add_child("delay", std::string(im::ns_delay));
    delay.set_attr("from", domain_);
    delay.set_attr("stamp", utc_timestamp(std::chrono::system_clock::now()));
    delay.add_text("Offline Storage");
    const std::string serialized = xml::serialize(stamped);

    enum class Outcome { no_account, stored, full, failed };
    Outcome outcome = Outcome::failed;
    try {
      outcome = co_await workers_.run([&] {
        if (!storage_.accounts().find(owner.local(), owner.domain())) return Outcome::no_account;
        return storage_.offline().push(owner.bare_str(), serialized, max_messages_) ? Outcome::stored : Outcome::full;
      });
    } catch (const storage::Error& e) {
      spdlog::error("offline: storing a message for {} failed: {}", owner.bare_str(), e.what());
    }
    switch (outcome) {
      case Outcome::no_account:
        co_return HookResult::pass;  // the router answers service-unavailable
      case Outcome::stored:
        co_return HookResult::handled;
      case Outcome::full:
        co_await router_.bounce(ev.stanza, "service-unavailable", "the recipient's offline storage is full");
        co_return HookResult::handled;
      case Outcome::failed:
        break;
    }
    co_await router_.route(
        xmpp::stanza_error(ev.stanza, "internal-server-error", "offline storage is unavailable", "wait"));
    co_return HookResult::handled;
  }

  // im::initial_presence_event.
  Task<HookResult> deliver(StanzaEvent& ev) {
    if (im::presence_priority(ev.stanza) < 0) co_return HookResult::pass;
    const std::string owner = ev.from.bare_str();
    std::vector<std::string> stored;
    try {
      stored = co_await workers_.run([&] { return storage_.offline().pop_all(owner); });
    } catch (const storage::Error& e) {
      spdlog::error("offline: loading the messages of {} failed: {}", owner, e.what());
      co_return HookResult::pass;
    }
    // When the resource went away meanwhile the messages go through the
    // router again: to another resource, or back into storage.
    const auto resource = router_.sessions().find(ev.from);
    for (const auto& text : stored) {
      auto message = im::parse_stored_stanza(text);
      if (!message) {
        spdlog::warn("offline: dropping an unreadable stored message for {}", owner);
        continue;
      }
      if (resource) {
        resource->session->deliver(std::move(*message));
      } else {
        co_await router_.route(std::move(*message));
      }
    }
    co_return HookResult::pass;
  }

 private:
  router::Router& router_;
  storage::Storage& storage_;
  router::WorkerPool& workers_;
  std::string domain_;
  std::size_t max_messages_;
};

class OfflineModule : public Module {
 public:
  explicit OfflineModule(Context& context)
      : host_(context.host), router_(context.router), storage_(context.storage), workers_(context.workers),
        options_(context.options) {}

  void start() override {
    options::expect_keys(options_, "offline", {"max_messages"});
    const auto max_messages = options::get_int(options_, "max_messages", 100, 1, 1'000'000);
    auto service = std::make_shared<OfflineService>(router_, storage_, workers_, host_.domain(),
                                                     static_cast<std::size_t>(max_messages));
    host_.hook("message/offline", 0, [service](StanzaEvent& ev) { return service->store(ev); });
    host_.hook(std::string(im::initial_presence_event), 0,
               [service](StanzaEvent& ev) { return service->deliver(ev); });
    host_.add_disco_feature("msgoffline");
  }

 private:
  router::Host& host_;
  router::Router& router_;
  storage::Storage& storage_;
  router::WorkerPool& workers_;
  YAML::Node options_;
};

}  // namespace

std::unique_ptr<Module> make_offline_module(Context& context) { return std::make_unique<OfflineModule>(context); }

}  // namespace parley::modules
