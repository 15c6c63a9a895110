// Message Archive Management (XEP-0313, urn:xmpp:mam:2) for user archives:
// the chat messages a local user sends and receives are archived as the
// user's preferences say, stamped with a stanza-id (XEP-0359) on the way in,
// and queried by with/start/end/before-id/after-id with RSM paging (XEP-0059)
// through mam_query, which answers the room archives of the muc module too.
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <random>

#include "modules/factories.hpp"
#include "modules/mam_query.hpp"
#include "modules/module_options.hpp"
#include "xmpp/errors.hpp"

namespace parley::modules {
namespace {

using mam::ns_mam;
using mam::ns_mam_extended;
constexpr std::string_view ns_stanza_id = "urn:xmpp:sid:0";
constexpr std::string_view ns_hints = "urn:xmpp:hints";

// Before carbons (-1000), so carbon copies carry the stanza-id.
constexpr int hook_priority = -500;
// The archive is trimmed to max_messages once every this many appends.
constexpr unsigned trim_interval = 64;

using router::HookResult;
using router::IqTarget;
using router::StanzaEvent;
using router::Task;

bool archivable(const xml::Element& message) {
  const auto type = message.attr("type");
  if (type != "chat" && type != "normal" && !type.empty()) return false;
  if (message.child("body", xml::ns_client) == nullptr) return false;
  return message.child("no-store", ns_hints) == nullptr && message.child("no-permanent-store", ns_hints) == nullptr;
}

std::string new_archive_id() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  static constexpr char hex[] = "0123456789abcdef";
  std::string id;
  for (int part = 0; part < 2; ++part) {
    auto bits = generator();
    for (int i = 0; i < 16; ++i, bits >>= 4) id += hex[bits & 0xf];
  }
  return id;
}

std::int64_t micros(std::chrono::system_clock::time_point when) {
  return std::chrono::duration_cast<std::chrono::microseconds>(when.time_since_epoch()).count();
}

bool contains(const std::vector<std::string>& jids, const std::string& jid) {
  return std::find(jids.begin(), jids.end(), jid) != jids.end();
}

void add_jid_list(xml::Element& prefs, std::string_view name, const std::vector<std::string>& jids) {
  auto& list = prefs.add_child(std::string(name), std::string(ns_mam));
  for (const auto& jid : jids) list.add_child("jid", std::string(ns_mam)).add_text(jid);
}

xml::Element prefs_element(const storage::ArchivePrefs& prefs) {
  xml::Element element("prefs", std::string(ns_mam));
  element.set_attr("default", prefs.default_policy);
  add_jid_list(element, "always", prefs.always);
  add_jid_list(element, "never", prefs.never);
  return element;
}

// The JIDs of <always/> or <never/>, as bare JIDs; nullopt when one is not a JID.
std::optional<std::vector<std::string>> read_jid_list(const xml::Element& prefs, std::string_view name) {
  std::vector<std::string> jids;
  const auto* list = prefs.child(name, ns_mam);
  if (list == nullptr) return jids;
  for (const auto& child : list->children()) {
    if (!child.is("jid", ns_mam)) continue;
    auto jid = xmpp::Jid::parse(child.text());
    if (!jid) return std::nullopt;
    jids.push_back(jid->str());
  }
  return jids;
}

class MamModule final : public Module {
 public:
  explicit MamModule(Context& context) : ctx_(context) {}

  void start() override {
    const auto& o = ctx_.options;
    options::expect_keys(o, "mam", {"default", "max_page", "max_messages"});
    const auto default_node = options::find(o, "default");
    if (default_node.IsDefined() && !default_node.IsNull()) {
      const auto value = default_node.IsScalar() ? default_node.Scalar() : std::string();
      if (value != "always" && value != "never" && value != "roster") {
        throw OptionError(default_node, "option 'default' must be always, never or roster");
      }
      default_policy_ = value;
    }
    max_page_ = static_cast<std::size_t>(options::get_int(o, "max_page", 250, 1, 10000));
    max_messages_ = static_cast<std::size_t>(options::get_int(o, "max_messages", 0, 0, 100000000));
    ctx_.storage.archive();  // a backend without archives fails here, at start

    ctx_.host.add_iq_handler(IqTarget::account, "get", ns_mam, [this](StanzaEvent& ev) { return on_get(ev); });
    ctx_.host.add_iq_handler(IqTarget::account, "set", ns_mam, [this](StanzaEvent& ev) { return on_set(ev); });
    for (const char* event : {"message/bare", "message/full"}) {
      ctx_.host.hook(event, hook_priority, [this](StanzaEvent& ev) { return archive_inbound(ev); });
    }
    for (const char* event : {"pre-message/bare", "pre-message/full"}) {
      ctx_.host.hook(event, hook_priority, [this](StanzaEvent& ev) { return archive_outbound(ev); });
    }
    ctx_.host.add_account_disco_feature(std::string(ns_mam));
    ctx_.host.add_account_disco_feature(std::string(ns_mam_extended));
    ctx_.host.add_disco_feature(std::string(ns_stanza_id));
  }

 private:
  // ---- archiving ------------------------------------------------------------

  // Whether 'owner' archives messages with 'peer'. Blocking: on a worker.
  bool wanted(const std::string& owner, const std::string& peer) {
    const auto prefs = ctx_.storage.archive().prefs(owner).value_or(storage::ArchivePrefs{default_policy_, {}, {}});
    if (contains(prefs.never, peer)) return false;
    if (contains(prefs.always, peer)) return true;
    if (prefs.default_policy == "never") return false;
    if (prefs.default_policy == "roster") return ctx_.storage.roster().get_item(owner, peer).has_value();
    return true;
  }

  // Blocking: on a worker.
  void append(const std::string& owner, const storage::ArchivedMessage& message) {
    auto& archive = ctx_.storage.archive();
    archive.append(owner, message);
    if (max_messages_ > 0 && ++appends_ % trim_interval == 0) archive.trim(owner, max_messages_);
  }

  // "message/bare|full" for a local account: stamps and archives what it receives.
  Task<HookResult> archive_inbound(StanzaEvent& ev) {
    if (ev.to.local().empty()) co_return HookResult::pass;
    const std::string owner = ev.to.bare_str();
    // Only this server stamps ids for its users: an incoming one is forged (XEP-0359 §5).
    std::erase_if(ev.stanza.children(), [&](const xml::Element& child) {
      return child.is("stanza-id", ns_stanza_id) && child.attr("by") == owner;
    });
    if (ev.from.empty() || !archivable(ev.stanza)) co_return HookResult::pass;
    const std::string peer = ev.from.bare_str();
    const bool bound = !ctx_.router.sessions().resources(ev.to.bare()).empty();
    storage::ArchivedMessage message{new_archive_id(), micros(std::chrono::system_clock::now()), peer, {}};
    xml::Element stamped = ev.stanza;
    auto& stanza_id = stamped.add_child("stanza-id", std::string(ns_stanza_id));
    stanza_id.set_attr("id", message.id);
    stanza_id.set_attr("by", owner);
    message.stanza = xml::serialize(stamped);
    try {
      const bool archived = co_await ctx_.workers.run([&] {
        if (!bound && !ctx_.storage.accounts().find(ev.to.local(), ev.to.domain())) return false;
        if (!wanted(owner, peer)) return false;
        append(owner, message);
        return true;
      });
      if (archived) ev.stanza = std::move(stamped);
    } catch (const storage::Error& e) {
      spdlog::error("mam: archiving a message for {} failed: {}", owner, e.what());
    }
    co_return HookResult::pass;
  }

  // "pre-message/bare|full" from a local client: archives what it sends.
  Task<HookResult> archive_outbound(StanzaEvent& ev) {
    if (ev.from.empty() || ev.to.empty() || !archivable(ev.stanza)) co_return HookResult::pass;
    const std::string owner = ev.from.bare_str();
    const std::string peer = ev.to.bare_str();
    if (peer == owner) co_return HookResult::pass;  // archived once, on arrival
    xml::Element sent = ev.stanza;
    if (!sent.has_attr("to")) sent.set_attr("to", ev.to.str());
    storage::ArchivedMessage message{new_archive_id(), micros(std::chrono::system_clock::now()), peer,
                                     xml::serialize(sent)};
    try {
      co_await ctx_.workers.run([&] {
        if (wanted(owner, peer)) append(owner, message);
      });
    } catch (const storage::Error& e) {
      spdlog::error("mam: archiving a message from {} failed: {}", owner, e.what());
    }
    co_return HookResult::pass;
  }

  // ---- queries and preferences ----------------------------------------------

  Task<xml::Element> on_get(StanzaEvent& ev) {
    if (ev.from.bare() != ev.to) co_return xmpp::stanza_error(ev.stanza, "forbidden");
    const xml::Element* payload = ev.stanza.first_child_element();
    if (payload->name() == "query") co_return mam::query_form(ev.stanza);
    if (payload->name() != "prefs") co_return xmpp::stanza_error(ev.stanza, "bad-request");
    const std::string owner = ev.to.str();
    try {
      const auto prefs = co_await ctx_.workers.run([&] { return ctx_.storage.archive().prefs(owner); });
      auto reply = xmpp::iq_result(ev.stanza);
      reply.add_child(prefs_element(prefs.value_or(storage::ArchivePrefs{default_policy_, {}, {}})));
      co_return reply;
    } catch (const storage::Error& e) {
      spdlog::error("mam: reading the preferences of {} failed: {}", owner, e.what());
    }
    co_return xmpp::stanza_error(ev.stanza, "internal-server-error");
  }

  Task<xml::Element> on_set(StanzaEvent& ev) {
    if (ev.from.bare() != ev.to) co_return xmpp::stanza_error(ev.stanza, "forbidden");
    const xml::Element* payload = ev.stanza.first_child_element();
    if (payload->name() == "query") co_return co_await query(ev);
    if (payload->name() == "prefs") co_return co_await set_prefs(ev, *payload);
    co_return xmpp::stanza_error(ev.stanza, "bad-request");
  }

  Task<xml::Element> set_prefs(StanzaEvent& ev, const xml::Element& payload) {
    storage::ArchivePrefs prefs;
    prefs.default_policy = std::string(payload.attr("default"));
    if (prefs.default_policy != "always" && prefs.default_policy != "never" && prefs.default_policy != "roster") {
      co_return xmpp::stanza_error(ev.stanza, "bad-request", "default must be always, never or roster");
    }
    auto always = read_jid_list(payload, "always");
    auto never = read_jid_list(payload, "never");
    if (!always || !never) co_return xmpp::stanza_error(ev.stanza, "jid-malformed");
    prefs.always = std::move(*always);
    prefs.never = std::move(*never);
    const std::string owner = ev.to.str();
    try {
      co_await ctx_.workers.run([&] { ctx_.storage.archive().set_prefs(owner, prefs); });
      auto reply = xmpp::iq_result(ev.stanza);
      reply.add_child(prefs_element(prefs));
      co_return reply;
    } catch (const storage::Error& e) {
      spdlog::error("mam: storing the preferences of {} failed: {}", owner, e.what());
    }
    co_return xmpp::stanza_error(ev.stanza, "internal-server-error");
  }

  Task<xml::Element> query(StanzaEvent& ev) {
    const std::string owner = ev.to.str();
    const std::string requester = ev.from.str();
    const mam::QueryOptions options{max_page_, mam::WithForm::bare};
    auto answer = co_await ctx_.workers.run(
        [&] { return mam::answer_query(ctx_.storage.archive(), owner, requester, ev.stanza, options); });
    xml::Element reply = std::move(answer.back());
    answer.pop_back();
    for (auto& result : answer) {
      if (ev.origin) {
        ev.origin->deliver(std::move(result));
      } else {
        co_await ctx_.router.route(std::move(result));
      }
    }
    co_return reply;
  }

  Context ctx_;
  std::string default_policy_ = "always";
  std::size_t max_page_ = 250;
  std::size_t max_messages_ = 0;
  std::atomic<unsigned> appends_{0};
};

}  // namespace

std::unique_ptr<Module> make_mam_module(Context& context) { return std::make_unique<MamModule>(context); }

}  // namespace parley::modules
