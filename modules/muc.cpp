#include "modules/muc.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>

#include "modules/factories.hpp"
#include "modules/module_options.hpp"
#include "modules/muc_room.hpp"
#include "xmpp/errors.hpp"

namespace parley::modules {

namespace muc {

class Service {
 public:
  Service(router::Router& router, storage::MucStore& store, storage::ArchiveStore* archive, std::string domain,
          std::string name, ServiceLimits limits, bool local_creation_only)
      : router_(router),
        store_(store),
        archive_(archive),
        domain_(std::move(domain)),
        name_(std::move(name)),
        limits_(std::move(limits)),
        local_creation_only_(local_creation_only) {}

  const std::string& domain() const { return domain_; }

  // Restores the persistent rooms; called once, before any traffic.
  void load() {
    for (const auto& stored : store_.rooms(domain_)) {
      auto jid = xmpp::Jid::from_parts(stored.name, domain_);
      if (!jid) {
        spdlog::warn("muc {}: ignoring stored room with the invalid name '{}'", domain_, stored.name);
        continue;
      }
      auto room = std::make_unique<Room>(*jid, limits_, store_, archive_, clock());
      if (!room->restore(stored, store_.affiliations(domain_, stored.name))) {
        spdlog::warn("muc {}: ignoring room '{}' whose stored configuration does not parse", domain_, stored.name);
        continue;
      }
      rooms_.emplace(stored.name, std::move(room));
    }
    spdlog::info("muc {}: {} persistent room(s) restored", domain_, rooms_.size());
  }

  // The domain route: takes the stanza for handling on the service's thread.
  bool accept(xml::Element& stanza) {
    {
      std::lock_guard lock(idle_mutex_);
      if (stopped_) return false;
      ++pending_;
    }
    boost::asio::post(strand_, [this, stanza = std::move(stanza)]() mutable { enqueue(std::move(stanza)); });
    return true;
  }

  bool wait_idle(std::chrono::milliseconds timeout) {
    std::unique_lock lock(idle_mutex_);
    return idle_.wait_for(lock, timeout, [this] { return pending_ == 0; });
  }

  void stop() {
    {
      std::lock_guard lock(idle_mutex_);
      stopped_ = true;
    }
    pool_.stop();
    pool_.join();
  }

 private:
  static Clock clock() {
    return [] { return std::chrono::system_clock::now(); };
  }

  void enqueue(xml::Element stanza) {
    queue_.push_back(std::move(stanza));
    if (draining_) return;
    draining_ = true;
    boost::asio::co_spawn(strand_, drain(), boost::asio::detached);
  }

  // Handles queued stanzas in arrival order; one stanza's answers are all
  // routed before the next stanza is looked at, so occupants see a room's
  // events in the order they happened.
  router::Task<void> drain() {
    while (!queue_.empty()) {
      xml::Element stanza = std::move(queue_.front());
      queue_.pop_front();
      std::vector<xml::Element> out;
      handle(stanza, out);
      for (auto& answer : out) {
        try {
          co_await router_.route(std::move(answer));
        } catch (const std::exception& e) {
          spdlog::error("muc {}: routing a stanza failed: {}", domain_, e.what());
        }
      }
      std::lock_guard lock(idle_mutex_);
      if (--pending_ == 0) idle_.notify_all();
    }
    draining_ = false;
  }

  void handle(const xml::Element& stanza, std::vector<xml::Element>& out) {
    const auto to = xmpp::Jid::parse(stanza.attr("to"));
    const auto from = xmpp::Jid::parse(stanza.attr("from"));
    if (!to || !from) return;
    try {
      if (to->local().empty()) {
        handle_for_service(stanza, out);
        return;
      }
      auto found = rooms_.find(to->local());
      if (found == rooms_.end()) {
        if (!may_create(stanza, *from, *to, out)) return;
        found =
            rooms_.emplace(to->local(), std::make_unique<Room>(to->bare(), limits_, store_, archive_, clock())).first;
        spdlog::info("muc {}: room '{}' created by {}", domain_, to->local(), from->str());
      }
      found->second->handle(stanza, *from, *to, out);
      if (found->second->finished()) {
        spdlog::debug("muc {}: room '{}' closed", domain_, to->local());
        found->second->remove_archive();
        rooms_.erase(found);
      }
    } catch (const storage::Error& e) {
      spdlog::error("muc {}: storage failed while handling a {} for {}: {}", domain_, stanza.name(), to->str(),
                    e.what());
      if (!xmpp::is_error_stanza(stanza) && stanza.name() != "presence") {
        out.push_back(xmpp::stanza_error(stanza, "internal-server-error"));
      }
    }
  }

  // Whether a stanza for a room that does not exist creates it; answers the
  // stanzas that do not.
  bool may_create(const xml::Element& stanza, const xmpp::Jid& from, const xmpp::Jid& to,
                  std::vector<xml::Element>& out) const {
    const auto type = stanza.attr("type");
    if (xmpp::is_error_stanza(stanza)) return false;
    if (stanza.name() == "presence") {
      if (!type.empty()) return false;
      if (to.resource().empty()) {
        out.push_back(xmpp::stanza_error(stanza, "jid-malformed", "a nickname is required to enter a room"));
        return false;
      }
      if (local_creation_only_ && !router_.is_local(from.domain())) {
        out.push_back(xmpp::stanza_error(stanza, "not-allowed", "only local users may create rooms here"));
        return false;
      }
      return true;
    }
    if (stanza.name() == "iq" && type != "get" && type != "set") return false;
    out.push_back(xmpp::stanza_error(stanza, "item-not-found", "no such room"));
    return false;
  }

  void handle_for_service(const xml::Element& stanza, std::vector<xml::Element>& out) const {
    if (xmpp::is_error_stanza(stanza)) return;
    if (stanza.name() == "presence") return;
    if (stanza.name() == "message") {
      out.push_back(xmpp::stanza_error(stanza, "service-unavailable"));
      return;
    }
    const auto type = stanza.attr("type");
    if (type != "get" && type != "set") return;
    const xml::Element* payload = stanza.first_child_element();
    if (type == "get" && payload != nullptr && payload->is("query", ns_disco_info)) {
      auto reply = xmpp::iq_result(stanza);
      auto& query = reply.add_child("query", std::string(ns_disco_info));
      auto& identity = query.add_child("identity", std::string(ns_disco_info));
      identity.set_attr("category", "conference");
      identity.set_attr("type", "text");
      identity.set_attr("name", name_);
      for (auto feature : {ns_muc, ns_disco_info, ns_disco_items, ns_ping, ns_stanza_id}) {
        query.add_child("feature", std::string(ns_disco_info)).set_attr("var", std::string(feature));
      }
      out.push_back(std::move(reply));
    } else if (type == "get" && payload != nullptr && payload->is("query", ns_disco_items)) {
      auto reply = xmpp::iq_result(stanza);
      auto& query = reply.add_child("query", std::string(ns_disco_items));
      for (const auto& [name, room] : rooms_) {
        if (!room->listed()) continue;
        auto& item = query.add_child("item", std::string(ns_disco_items));
        item.set_attr("jid", room->jid().bare_str());
        item.set_attr("name", room->config().title.empty() ? name : room->config().title);
      }
      out.push_back(std::move(reply));
    } else if (type == "get" && payload != nullptr && payload->is("ping", ns_ping)) {
      out.push_back(xmpp::iq_result(stanza));
    } else {
      out.push_back(xmpp::stanza_error(stanza, "service-unavailable"));
    }
  }

  router::Router& router_;
  storage::MucStore& store_;
  storage::ArchiveStore* const archive_;
  const std::string domain_;
  const std::string name_;
  const ServiceLimits limits_;
  const bool local_creation_only_;

  // Touched only on the strand.
  std::map<std::string, std::unique_ptr<Room>, std::less<>> rooms_;
  std::deque<xml::Element> queue_;
  bool draining_ = false;

  std::mutex idle_mutex_;
  std::condition_variable idle_;
  std::size_t pending_ = 0;
  bool stopped_ = false;

  // Last: destroyed first, with whatever handlers it still holds.
  boost::asio::thread_pool pool_{1};
  boost::asio::strand<boost::asio::thread_pool::executor_type> strand_{boost::asio::make_strand(pool_.get_executor())};
};

}  // namespace muc

namespace {

std::string string_option(const YAML::Node& options, const std::string& key, const std::string& fallback) {
  const auto node = options::find(options, key);
  if (!node.IsDefined() || node.IsNull()) return fallback;
  if (!node.IsScalar() || node.Scalar().empty())
    throw OptionError(node, "option '" + key + "' must be a non-empty string");
  return node.Scalar();
}

std::string choice_option(const YAML::Node& options, const std::string& key, const std::string& fallback,
                          std::initializer_list<std::string_view> choices) {
  auto value = string_option(options, key, fallback);
  if (std::find(choices.begin(), choices.end(), value) == choices.end()) {
    std::string list;
    for (auto choice : choices) list += (list.empty() ? "" : ", ") + std::string(choice);
    throw OptionError(options::find(options, key), "option '" + key + "' must be one of: " + list);
  }
  return value;
}

}  // namespace

MucModule::MucModule(Context& context) : ctx_(context) {}

MucModule::~MucModule() = default;

void MucModule::start() {
  const auto& o = ctx_.options;
  options::expect_keys(
      o, "muc",
      {"service", "name", "max_history", "max_users", "room_creation", "default_persistent", "default_public",
       "default_members_only", "default_moderated", "default_whois", "default_allow_private_messages",
       "default_archiving", "archive_max_page", "archive_max_messages"});
  const auto service = string_option(o, "service", "conference." + ctx_.host.domain());
  const auto service_jid = xmpp::Jid::parse(service);
  if (!service_jid || !service_jid->is_domain()) {
    throw OptionError(options::find(o, "service"), "option 'service' must be a domain name");
  }
  if (ctx_.router.is_local(service_jid->domain())) {
    throw OptionError(options::find(o, "service"),
                      "option 'service' names a host; the MUC service needs a domain of its own");
  }
  muc::ServiceLimits limits;
  limits.max_history = static_cast<std::size_t>(options::get_int(o, "max_history", 20, 0, 1000));
  limits.max_users = static_cast<int>(options::get_int(o, "max_users", 200, 1, 100000));
  limits.archive_max_page = static_cast<std::size_t>(options::get_int(o, "archive_max_page", 250, 1, 10000));
  limits.archive_max_messages = static_cast<std::size_t>(options::get_int(o, "archive_max_messages", 0, 0, 100000000));
  auto& defaults = limits.defaults;
  defaults.max_users = limits.max_users;
  defaults.persistent = options::get_bool(o, "default_persistent", false);
  defaults.public_room = options::get_bool(o, "default_public", true);
  defaults.members_only = options::get_bool(o, "default_members_only", false);
  defaults.moderated = options::get_bool(o, "default_moderated", false);
  defaults.archiving = options::get_bool(o, "default_archiving", false);
  storage::ArchiveStore* archive = nullptr;
  try {
    archive = &ctx_.storage.archive();
  } catch (const storage::Error& e) {
    if (defaults.archiving) throw OptionError(options::find(o, "default_archiving"), e.what());
    spdlog::warn("muc {}: rooms cannot be archived: {}", service, e.what());
  }
  defaults.whois_anyone = choice_option(o, "default_whois", "moderators", {"moderators", "anyone"}) == "anyone";
  const auto pm =
      choice_option(o, "default_allow_private_messages", "anyone", {"anyone", "participants", "moderators", "none"});
  defaults.allow_private_messages = pm == "anyone"         ? muc::PrivateMessages::anyone
                                    : pm == "participants" ? muc::PrivateMessages::participants
                                    : pm == "moderators"   ? muc::PrivateMessages::moderators
                                                           : muc::PrivateMessages::none;
  const bool local_only = choice_option(o, "room_creation", "anyone", {"anyone", "local"}) == "local";
  const auto name = string_option(o, "name", "Chatrooms");

  service_ = std::make_shared<muc::Service>(ctx_.router, ctx_.storage.muc(), archive, service_jid->domain(), name,
                                            std::move(limits), local_only);
  service_->load();
  ctx_.router.add_domain_route(service_->domain(), [service = service_](xml::Element& stanza, const xmpp::Jid&) {
    return service->accept(stanza);
  });
  ctx_.host.add_disco_item({service_->domain(), name});
}

void MucModule::stop() {
  if (service_) service_->stop();
}

bool MucModule::wait_idle(std::chrono::milliseconds timeout) { return service_ && service_->wait_idle(timeout); }

std::unique_ptr<Module> make_muc_module(Context& context) { return std::make_unique<MucModule>(context); }

}  // namespace parley::modules
