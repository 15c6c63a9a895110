// In-band registration (XEP-0077): account creation by clients that have not
// authenticated yet, and password change and account removal by users.
//
// Options:
//   open: false            account creation is refused (not-allowed) unless true
//   rate_per_minute: 5     account creation attempts allowed per remote address
//                          and minute; each attempt counts, successful or not,
//                          since each one costs two PBKDF2 derivations
//
// How c2s knows whether to offer <register xmlns='http://jabber.org/features/iq-register'/>
// without a module header: the registration form (the unauthenticated "get"
// a client sends first) is only served when registration is open, so
//   host.iq_handler(IqTarget::unauthenticated, "get", "jabber:iq:register") != nullptr
// means "open". When closed, that request gets the router's default answer,
// which XEP-0077 §3.1 wants to be service-unavailable. The disco feature
// jabber:iq:register is always advertised: per XEP-0077 §10 it also tells
// users that they can change their password in-band.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "modules/factories.hpp"
#include "modules/module_options.hpp"
#include "xmpp/errors.hpp"
#include "xmpp/jid.hpp"
#include "xmpp/sasl.hpp"

namespace parley::modules {
namespace {

constexpr std::string_view ns_register = "jabber:iq:register";

using router::IqTarget;
using router::StanzaEvent;
using router::Task;
using Clock = std::chrono::steady_clock;

// At most 'limit' events per key within a sliding window.
class RateLimiter {
 public:
  RateLimiter(std::size_t limit, Clock::duration window) : limit_(limit), window_(window) {}

  // Records an event for 'key' unless it already had 'limit' events within
  // the window; returns whether it was recorded.
  bool try_acquire(const std::string& key, Clock::time_point now) {
    std::lock_guard lock(mutex_);
    forget_before(now - window_);
    auto& times = recent_[key];
    if (times.size() >= limit_) return false;
    times.push_back(now);
    return true;
  }

 private:
  // Keeps the map as small as the set of keys seen within the window.
  void forget_before(Clock::time_point horizon) {
    for (auto it = recent_.begin(); it != recent_.end();) {
      auto& times = it->second;
      while (!times.empty() && times.front() <= horizon) times.pop_front();
      it = times.empty() ? recent_.erase(it) : std::next(it);
    }
  }

  std::size_t limit_;
  Clock::duration window_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::deque<Clock::time_point>> recent_;
};

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::size_t child_element_count(const xml::Element& element) {
  std::size_t count = 0;
  for (const auto& child : element.children()) count += child.is_text() ? 0 : 1;
  return count;
}

class RegisterModule final : public Module {
 public:
  explicit RegisterModule(Context& context) : ctx_(context) {}

  void start() override {
    options::expect_keys(ctx_.options, "register", {"open", "rate_per_minute"});
    open_ = options::get_bool(ctx_.options, "open", false);
    const auto rate = options::get_int(ctx_.options, "rate_per_minute", 5, 1, 1'000'000);
    limiter_.emplace(static_cast<std::size_t>(rate), std::chrono::minutes(1));

    auto& host = ctx_.host;
    if (open_) {
      host.add_iq_handler(IqTarget::unauthenticated, "get", ns_register,
                          [this](StanzaEvent& ev) { return registration_form(ev); });
    }
    host.add_iq_handler(IqTarget::unauthenticated, "set", ns_register,
                        [this](StanzaEvent& ev) { return create_account(ev); });
    // A user addresses their server ("to='example.org'", XEP-0077 §3.3) or
    // sends no 'to' at all (§3.2), which the router treats as their own account.
    for (const auto target : {IqTarget::host, IqTarget::account}) {
      host.add_iq_handler(target, "get", ns_register, [this](StanzaEvent& ev) { return registration_info(ev); });
      host.add_iq_handler(target, "set", ns_register, [this](StanzaEvent& ev) { return change_account(ev); });
    }
    host.add_disco_feature(std::string(ns_register));
  }

 private:
  Task<xml::Element> registration_form(StanzaEvent& event) {
    auto reply = xmpp::iq_result(event.stanza);
    auto& query = reply.add_child("query", std::string(ns_register));
    query.add_child("instructions", std::string(ns_register))
        .add_text("Choose a username and password to register with " + ctx_.host.domain() + ".");
    query.add_child("username", std::string(ns_register));
    query.add_child("password", std::string(ns_register));
    co_return reply;
  }

  Task<xml::Element> create_account(StanzaEvent& event) {
    const auto& iq = event.stanza;
    if (!open_) co_return xmpp::stanza_error(iq, "not-allowed", "In-band registration is closed on this server");
    const auto* query = iq.child_in(ns_register);
    if (query == nullptr) co_return xmpp::stanza_error(iq, "bad-request");
    // XEP-0077 §3.2: removing an account needs an authenticated sender.
    if (query->child("remove", ns_register) != nullptr) co_return xmpp::stanza_error(iq, "unexpected-request");

    const auto raw_username = query->child_text("username", ns_register);
    const auto raw_password = query->child_text("password", ns_register);
    if (raw_username.empty() || raw_password.empty()) {
      co_return xmpp::stanza_error(iq, "not-acceptable", "A username and a password are required");
    }
    const auto username = xmpp::nodeprep(raw_username);
    if (!username || username->empty()) co_return xmpp::stanza_error(iq, "jid-malformed", "Invalid username");
    const auto password = sasl::saslprep(raw_password);
    if (!password || password->empty()) {
      co_return xmpp::stanza_error(iq, "not-acceptable", "The password contains prohibited characters");
    }

    const auto remote = event.origin ? event.origin->remote_address() : std::string();
    if (!limiter_->try_acquire(remote, Clock::now())) {
      spdlog::warn("register: too many registrations from {} on {}", remote, ctx_.host.domain());
      co_return xmpp::stanza_error(iq, "resource-constraint", "Too many registrations, try again later");
    }

    const auto& domain = ctx_.host.domain();
    bool created = false;
    try {
      created = co_await ctx_.workers.run([this, &username, &password, &domain] {
        auto& accounts = ctx_.storage.accounts();
        // Checked first so a taken name costs no key derivation.
        if (accounts.find(*username, domain)) return false;
        storage::Account account{*username, domain, sasl::make_credentials(sasl::Hash::sha1, *password),
                                 sasl::make_credentials(sasl::Hash::sha256, *password), unix_now()};
        return accounts.create(account);
      });
    } catch (const storage::Error& e) {
      spdlog::error("register: creating {}@{} failed: {}", *username, domain, e.what());
      co_return xmpp::stanza_error(iq, "internal-server-error");
    }
    if (!created) co_return xmpp::stanza_error(iq, "conflict", "That username is taken");
    spdlog::info("register: account {}@{} created from {}", *username, domain, remote);
    co_return xmpp::iq_result(iq);
  }

  // The sender's bare JID when it is a user of this host asking about their
  // own account (addressed to the server or to the account itself).
  std::optional<xmpp::Jid> own_account(const StanzaEvent& event) const {
    if (event.from.local().empty() || event.from.domain() != ctx_.host.domain()) return std::nullopt;
    auto account = event.from.bare();
    if (!event.to.is_domain() && event.to.bare() != account) return std::nullopt;
    return account;
  }

  Task<xml::Element> registration_info(StanzaEvent& event) {
    const auto account = own_account(event);
    if (!account) co_return xmpp::stanza_error(event.stanza, "service-unavailable");
    auto reply = xmpp::iq_result(event.stanza);
    auto& query = reply.add_child("query", std::string(ns_register));
    query.add_child("instructions", std::string(ns_register))
        .add_text("Send your username and a new password to change your password, or <remove/> to delete "
                  "your account.");
    query.add_child("registered", std::string(ns_register));
    query.add_child("username", std::string(ns_register)).add_text(account->local());
    query.add_child("password", std::string(ns_register));
    co_return reply;
  }

  Task<xml::Element> change_account(StanzaEvent& event) {
    const auto& iq = event.stanza;
    const auto account = own_account(event);
    if (!account) co_return xmpp::stanza_error(iq, "service-unavailable");
    const auto* query = iq.child_in(ns_register);
    if (query == nullptr) co_return xmpp::stanza_error(iq, "bad-request");
    if (query->child("remove", ns_register) != nullptr) {
      if (child_element_count(*query) != 1) {
        co_return xmpp::stanza_error(iq, "bad-request", "<remove/> must be the only element of the query");
      }
      co_return co_await remove_account(iq, *account);
    }
    co_return co_await change_password(*query, iq, *account);
  }

  Task<xml::Element> change_password(const xml::Element& query, const xml::Element& iq, const xmpp::Jid& account) {
    const auto* username = query.child("username", ns_register);
    const auto* new_password = query.child("password", ns_register);
    if (username == nullptr || new_password == nullptr) {
      co_return xmpp::stanza_error(iq, "bad-request", "A username and a password are required");
    }
    const auto name = xmpp::nodeprep(username->text());
    if (!name || *name != account.local()) {
      co_return xmpp::stanza_error(iq, "forbidden", "You can only change your own password");
    }
    // XEP-0077 §3.3: an empty password never replaces the current one.
    const auto password = sasl::saslprep(new_password->text());
    if (!password || password->empty()) {
      co_return xmpp::stanza_error(iq, "not-acceptable", "The new password is empty or has prohibited characters");
    }
    bool updated = false;
    try {
      updated = co_await ctx_.workers.run([this, &account, &password] {
        return ctx_.storage.accounts().set_credentials(account.local(), account.domain(),
                                                       sasl::make_credentials(sasl::Hash::sha1, *password),
                                                       sasl::make_credentials(sasl::Hash::sha256, *password));
      });
    } catch (const storage::Error& e) {
      spdlog::error("register: changing the password of {} failed: {}", account.bare_str(), e.what());
      co_return xmpp::stanza_error(iq, "internal-server-error");
    }
    if (!updated) co_return xmpp::stanza_error(iq, "registration-required");
    spdlog::info("register: password of {} changed", account.bare_str());
    co_return xmpp::iq_result(iq);
  }

  Task<xml::Element> remove_account(const xml::Element& iq, const xmpp::Jid& account) {
    bool removed = false;
    try {
      removed = co_await ctx_.workers.run(
          [this, &account] { return ctx_.storage.accounts().remove(account.local(), account.domain()); });
    } catch (const storage::Error& e) {
      spdlog::error("register: removing {} failed: {}", account.bare_str(), e.what());
      co_return xmpp::stanza_error(iq, "internal-server-error");
    }
    if (!removed) co_return xmpp::stanza_error(iq, "registration-required");
    spdlog::info("register: account {} removed by its user", account.bare_str());
    // XEP-0077 §3.2: the user's sessions end with <not-authorized/>. Posted so
    // the router queues the result to the requesting session before its stream closes.
    auto executor = co_await boost::asio::this_coro::executor;
    boost::asio::post(executor, [&sessions = ctx_.router.sessions(), account] {
      for (const auto& resource : sessions.resources(account)) {
        resource.session->close("not-authorized", "account removed");
      }
    });
    co_return xmpp::iq_result(iq);
  }

  Context ctx_;
  bool open_ = false;
  std::optional<RateLimiter> limiter_;
};

}  // namespace

std::unique_ptr<Module> make_register_module(Context& context) {
  return std::make_unique<RegisterModule>(context);
}

}  // namespace parley::modules
