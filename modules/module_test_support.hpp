// Test support for module tests: a real router with one host, memory
// storage, a worker pool, and fake client sessions that record what the
// router hands them. Everything runs on one io_context driven by the test.
#pragma once

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "modules/module.hpp"
#include "router/router.hpp"
#include "router/workers.hpp"
#include "storage/storage.hpp"
#include "xmpp/errors.hpp"
#include "xmpp/jid.hpp"
#include "xmpp/sasl.hpp"
#include "xmpp/xml.hpp"

namespace parley::modules::testing {

// A client stream as the router sees it: records delivered stanzas and the
// stream error it was closed with.
class FakeSession : public router::Session {
 public:
  struct Closure {
    std::string condition;
    std::string text;
    std::size_t delivered_before = 0;  // stanzas delivered before close()
  };

  explicit FakeSession(std::string id, std::string remote_address = "127.0.0.1")
      : id_(std::move(id)), remote_address_(std::move(remote_address)) {}

  void deliver(xml::Element stanza) override {
    std::lock_guard lock(mutex_);
    delivered_.push_back(std::move(stanza));
    ++delivered_total_;
  }
  void close(std::string condition, std::string text) override {
    std::lock_guard lock(mutex_);
    if (!closure_) closure_ = Closure{std::move(condition), std::move(text), delivered_total_};
  }
  const std::string& id() const override { return id_; }
  std::string remote_address() const override { return remote_address_; }
  std::string tls_version() const override { return "TLSv1.3"; }

  // The stanzas delivered since the last call.
  std::vector<xml::Element> take() {
    std::lock_guard lock(mutex_);
    return std::exchange(delivered_, {});
  }
  std::optional<Closure> closure() const {
    std::lock_guard lock(mutex_);
    return closure_;
  }

 private:
  std::string id_;
  std::string remote_address_;
  mutable std::mutex mutex_;
  std::vector<xml::Element> delivered_;
  std::size_t delivered_total_ = 0;
  std::optional<Closure> closure_;
};

// A bound client resource.
struct Client {
  xmpp::Jid jid;  // full JID
  std::shared_ptr<FakeSession> session;
};

// <iq type='..' id='..' [to='..']><child xmlns='..'/></iq>
inline xml::Element make_iq(std::string_view type, std::string_view id, std::string_view to,
                            std::string_view child_name, std::string_view child_ns) {
  xml::Element iq("iq");
  iq.set_attr("type", std::string(type));
  iq.set_attr("id", std::string(id));
  if (!to.empty()) iq.set_attr("to", std::string(to));
  iq.add_child(std::string(child_name), std::string(child_ns));
  return iq;
}

// The child element of an iq (its payload), or null.
inline const xml::Element* payload(const xml::Element& iq) { return iq.first_child_element(); }

// The error condition of an error stanza, or "" for any other stanza.
inline std::string error_condition(const xml::Element& stanza) {
  return std::string(xmpp::stanza_error_condition(stanza));
}

// Every 'attribute' value of the children named 'name' of 'parent', in order.
inline std::vector<std::string> child_attrs(const xml::Element& parent, std::string_view name,
                                            std::string_view attribute) {
  std::vector<std::string> values;
  for (const auto& child : parent.children()) {
    if (child.name() == name) values.emplace_back(child.attr(attribute));
  }
  return values;
}

// A storage whose account store can be taken down: every account call then
// throws storage::Error, like a database outage. The other stores stay up.
class OutageStorage : public storage::Storage {
 public:
  OutageStorage() : inner_(storage::open("memory:")), accounts_(*this) {}
  void set_down(bool down) { down_ = down; }

  storage::AccountStore& accounts() override { return accounts_; }
  storage::RosterStore& roster() override { return inner_->roster(); }
  storage::OfflineStore& offline() override { return inner_->offline(); }
  void flush() override { inner_->flush(); }
  std::string backend_name() const override { return "outage"; }

 private:
  class Accounts : public storage::AccountStore {
   public:
    explicit Accounts(OutageStorage& owner) : owner_(owner) {}
    bool create(const storage::Account& account) override { return up().create(account); }
    std::optional<storage::Account> find(const std::string& username, const std::string& domain) override {
      return up().find(username, domain);
    }
    bool set_credentials(const std::string& username, const std::string& domain,
                         const sasl::ScramCredentials& sha1, const sasl::ScramCredentials& sha256) override {
      return up().set_credentials(username, domain, sha1, sha256);
    }
    bool remove(const std::string& username, const std::string& domain) override {
      return up().remove(username, domain);
    }
    std::vector<std::string> list(const std::string& domain) override { return up().list(domain); }

   private:
    storage::AccountStore& up() {
      if (owner_.down_) throw storage::Error("database unreachable (test outage)");
      return owner_.inner_->accounts();
    }
    OutageStorage& owner_;
  };

  std::unique_ptr<storage::Storage> inner_;
  Accounts accounts_;
  std::atomic<bool> down_{false};
};

class TestServer {
 public:
  static constexpr auto timeout = std::chrono::seconds(20);

  explicit TestServer(std::string domain = "example.org",
                      std::unique_ptr<storage::Storage> storage = storage::open("memory:"))
      : domain_(std::move(domain)), host_(router_.add_host(domain_)), storage_(std::move(storage)) {}

  ~TestServer() {
    for (auto& module : modules_) module->stop();
    workers_.stop();
  }

  router::Router& router() { return router_; }
  router::Host& host() { return host_; }
  storage::Storage& storage() { return *storage_; }
  const std::string& domain() const { return domain_; }

  // Creates a module with options given as YAML text and starts it.
  Module& enable(const Factory& factory, const std::string& options_yaml = "") {
    Context context{host_, router_, *storage_, workers_, YAML::Load(options_yaml), "Parley", "0.1.0-test"};
    modules_.push_back(factory(context));
    modules_.back()->start();
    return *modules_.back();
  }

  // Runs a coroutine and everything it posts to completion; throws when it
  // does not finish within the timeout.
  template <class T>
  T run(router::Task<T> task) {
    io_.restart();
    auto future = boost::asio::co_spawn(io_, std::move(task), boost::asio::use_future);
    io_.run_for(timeout);
    if (future.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      throw std::runtime_error("the coroutine did not finish in time");
    }
    return future.get();
  }

  void add_account(const std::string& username, const std::string& password) {
    storage::Account account{username, domain_, sasl::make_credentials(sasl::Hash::sha1, password),
                             sasl::make_credentials(sasl::Hash::sha256, password), 0};
    ASSERT_TRUE(storage_->accounts().create(account));
  }

  // Binds a resource of a local account to a fresh fake session.
  Client bind(const std::string& full_jid, const std::string& remote_address = "127.0.0.1") {
    auto jid = xmpp::Jid::parse(full_jid);
    if (!jid) throw std::invalid_argument("bad JID " + full_jid);
    auto session = std::make_shared<FakeSession>(full_jid, remote_address);
    router_.sessions().bind(*jid, session);
    run(router_.session_bound(*jid, session));
    return Client{*jid, session};
  }

  // Sends a stanza from a bound client; returns what the client received.
  std::vector<xml::Element> send(const Client& client, xml::Element stanza) {
    client.session->take();
    run(router_.process_from_client(std::move(stanza), client.jid, client.session));
    return client.session->take();
  }

  // Sends an iq from a bound client and returns the one reply with its id.
  xml::Element ask(const Client& client, xml::Element iq) {
    const std::string id(iq.attr("id"));
    return single_reply(send(client, std::move(iq)), id);
  }

  // Sends an iq from a client that has not authenticated and returns the reply.
  xml::Element ask_unauthenticated(const std::shared_ptr<FakeSession>& session, xml::Element iq) {
    const std::string id(iq.attr("id"));
    session->take();
    run(router_.process_unauthenticated_iq(std::move(iq), domain_, session));
    return single_reply(session->take(), id);
  }

 private:
  static xml::Element single_reply(const std::vector<xml::Element>& received, const std::string& id) {
    std::vector<xml::Element> replies;
    for (const auto& stanza : received) {
      if (stanza.name() == "iq" && stanza.attr("id") == id) replies.push_back(stanza);
    }
    if (replies.size() != 1) {
      ADD_FAILURE() << "expected one reply with id '" << id << "', got " << replies.size();
      return xml::Element("missing-reply");
    }
    return replies.front();
  }

  std::string domain_;
  router::Router router_;
  router::Host& host_;
  std::unique_ptr<storage::Storage> storage_;
  router::WorkerPool workers_{2};
  std::vector<std::unique_ptr<Module>> modules_;
  // Last, so a coroutine left unfinished by a timeout dies before what it uses.
  boost::asio::io_context io_;
};

}  // namespace parley::modules::testing
