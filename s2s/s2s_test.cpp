// The outbound queue of the s2s manager against peers that cannot be
// reached: what waits is bounced once, in order, with the condition that
// names the failure, and errors are never answered with errors.
#include "s2s/s2s.hpp"

#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <chrono>

#include "router/testing.hpp"
#include "xmpp/errors.hpp"

namespace parley::s2s {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class OutboundQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.add_host("local.example");
    router_.sessions().bind(*xmpp::Jid::parse("alice@local.example/r"), session_);
    settings_.connect_timeout = std::chrono::seconds(1);
    settings_.dns_servers = "127.0.0.1:9";  // never asked: every peer here has an address
  }

  // An address where nothing listens: connections are refused.
  static std::string refusing_address() {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    return "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  }

  static xml::Element stanza(std::string name, std::string type, std::string id, std::string to) {
    xml::Element element(std::move(name));
    element.set_attr("from", "alice@local.example/r");
    element.set_attr("to", std::move(to));
    element.set_attr("id", std::move(id));
    if (!type.empty()) element.set_attr("type", std::move(type));
    return element;
  }

  bool route(Manager& manager, xml::Element element) {
    const auto to = *xmpp::Jid::parse(element.attr("to"));
    return manager.route(element, to);
  }

  // Runs the io_context until 'count' stanzas reached alice or time is up.
  std::vector<xml::Element> bounces(std::size_t count, std::chrono::seconds limit = std::chrono::seconds(10)) {
    std::vector<xml::Element> received;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (received.size() < count && std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      io_.run_for(std::chrono::milliseconds(50));
      for (auto& element : session_->take()) received.push_back(std::move(element));
    }
    return received;
  }

  asio::io_context io_;
  router::Router router_;
  std::shared_ptr<router::testing::RecordingSession> session_ = std::make_shared<router::testing::RecordingSession>();
  Settings settings_;
};

TEST_F(OutboundQueueTest, RefusedConnectionBouncesRemoteServerNotFoundInOrder) {
  settings_.policy.domains["down.example"].address = refusing_address();
  Manager manager({&io_}, router_, settings_);
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(route(manager, stanza("message", "chat", "m1", "bob@down.example")));
  ASSERT_TRUE(route(manager, stanza("message", "error", "e1", "bob@down.example")));
  ASSERT_TRUE(route(manager, stanza("iq", "get", "q1", "down.example")));
  ASSERT_TRUE(route(manager, stanza("iq", "result", "r1", "down.example")));
  ASSERT_TRUE(route(manager, stanza("message", "chat", "m2", "bob@down.example")));
  auto received = bounces(3);
  ASSERT_EQ(received.size(), 3u);
  EXPECT_EQ(received[0].attr("id"), "m1");
  EXPECT_EQ(received[1].attr("id"), "q1");
  EXPECT_EQ(received[2].attr("id"), "m2");
  for (const auto& bounce : received) {
    EXPECT_EQ(bounce.attr("type"), "error");
    EXPECT_EQ(bounce.attr("to"), "alice@local.example/r");
    EXPECT_EQ(xmpp::stanza_error_condition(bounce), "remote-server-not-found");
  }
  // Refusals are retried until the connect timeout, not given up at once.
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(500));
  // Nothing else: the error and the result were dropped, not answered.
  EXPECT_TRUE(bounces(1, std::chrono::seconds(1)).empty());
  EXPECT_EQ(manager.open_streams(), 0u);
}

TEST_F(OutboundQueueTest, SilentPeerBouncesRemoteServerTimeout) {
  asio::io_context listener_io;
  tcp::acceptor silent(listener_io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));  // never accepts
  settings_.policy.domains["silent.example"].address = "127.0.0.1:" + std::to_string(silent.local_endpoint().port());
  Manager manager({&io_}, router_, settings_);
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(route(manager, stanza("message", "chat", "m1", "bob@silent.example")));
  auto received = bounces(1);
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(xmpp::stanza_error_condition(received[0]), "remote-server-timeout");
  const auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_GE(elapsed, std::chrono::milliseconds(900));
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST_F(OutboundQueueTest, FullQueueBouncesTheOverflowAtOnce) {
  settings_.policy.domains["down.example"].address = refusing_address();
  settings_.max_pending_stanzas = 2;
  Manager manager({&io_}, router_, settings_);
  for (const char* id : {"m1", "m2", "m3"}) {
    ASSERT_TRUE(route(manager, stanza("message", "chat", id, "bob@down.example")));
  }
  // Well before the connect timeout ends the attempt.
  auto first = bounces(1, std::chrono::seconds(1));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].attr("id"), "m3");
  EXPECT_EQ(xmpp::stanza_error_condition(first[0]), "resource-constraint");
  auto rest = bounces(2);
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[0].attr("id"), "m1");
  EXPECT_EQ(rest[1].attr("id"), "m2");
}

TEST_F(OutboundQueueTest, PolicyRefusalLeavesTheStanzaToTheRouter) {
  settings_.policy.deny = {"denied.example"};
  Manager manager({&io_}, router_, settings_);
  EXPECT_FALSE(route(manager, stanza("message", "chat", "m1", "bob@denied.example")));
  // Only local domains send through federation.
  auto foreign = stanza("message", "chat", "m2", "bob@other.example");
  foreign.set_attr("from", "mallory@elsewhere.example");
  EXPECT_FALSE(route(manager, foreign));
  EXPECT_EQ(manager.open_streams(), 0u);
}

}  // namespace
}  // namespace parley::s2s
