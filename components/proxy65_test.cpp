#include "components/proxy65.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "components/proxy65_socks5.hpp"
#include "xmpp/errors.hpp"

namespace parley::components::proxy65 {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::string_literals;
using namespace std::chrono_literals;

constexpr std::string_view ns_bytestreams = "http://jabber.org/protocol/bytestreams";
constexpr std::string_view ns_disco_info = "http://jabber.org/protocol/disco#info";
constexpr auto step_timeout = 10s;

// A bound client that records what it is given and lets the test wait for it.
class Inbox : public router::Session {
 public:
  void deliver(xml::Element stanza) override {
    std::lock_guard lock(mutex_);
    stanzas_.push_back(std::move(stanza));
    arrived_.notify_all();
  }
  void close(std::string, std::string) override {}
  const std::string& id() const override { return id_; }
  std::string remote_address() const override { return "127.0.0.1"; }
  std::string tls_version() const override { return {}; }

  xml::Element next() {
    std::unique_lock lock(mutex_);
    if (!arrived_.wait_for(lock, step_timeout, [this] { return !stanzas_.empty(); })) {
      throw std::runtime_error("no stanza arrived");
    }
    auto stanza = std::move(stanzas_.front());
    stanzas_.pop_front();
    return stanza;
  }

 private:
  std::string id_ = "inbox";
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::deque<xml::Element> stanzas_;
};

// A blocking SOCKS5 client; every read gives up after step_timeout.
class SocksClient {
 public:
  explicit SocksClient(std::uint16_t port) : socket_(io_) {
    socket_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval timeout{static_cast<time_t>(step_timeout.count()), 0};
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }

  void send(std::string_view bytes) { asio::write(socket_, asio::buffer(bytes.data(), bytes.size())); }

  std::string read(std::size_t count) {
    std::string bytes(count, '\0');
    asio::read(socket_, asio::buffer(bytes));
    return bytes;
  }

  // Everything until the peer ends its side.
  std::string read_to_end() {
    std::string bytes;
    boost::system::error_code ec;
    asio::read(socket_, asio::dynamic_buffer(bytes), ec);
    if (ec != asio::error::eof) throw boost::system::system_error(ec);
    return bytes;
  }

  bool closed_by_peer() {
    char byte;
    boost::system::error_code ec;
    socket_.read_some(asio::buffer(&byte, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

  // The whole negotiation for 'hash'; returns the server's final reply.
  std::string negotiate(std::string_view hash) {
    send("\x05\x01\x00"s);
    EXPECT_EQ(read(2), "\x05\x00"s);
    send("\x05\x01\x00\x03"s + static_cast<char>(hash.size()) + std::string(hash) + "\0\0"s);
    return read(5 + hash.size() + 2);
  }

  void finish_sending() { socket_.shutdown(tcp::socket::shutdown_send); }

 private:
  asio::io_context io_;
  tcp::socket socket_;
};

std::string random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 generator(seed);
  std::string bytes(size, '\0');
  for (auto& byte : bytes) byte = static_cast<char>(generator());
  return bytes;
}

std::string success(std::string_view hash) {
  return "\x05\x00\x00\x03"s + static_cast<char>(hash.size()) + std::string(hash) + "\0\0"s;
}

class ProxyTest : public testing::Test {
 protected:
  ProxyTest() {
    router_.add_host("localhost");
    alice_ = *xmpp::Jid::parse("alice@localhost/a");
    router_.sessions().bind(alice_, inbox_);
    router_.sessions().bind(*xmpp::Jid::parse("carol@localhost/c"), inbox_);
    for (auto& shard : shards_) guards_.push_back(asio::make_work_guard(shard));
  }

  ~ProxyTest() override {
    if (proxy_) {
      proxy_->stop();
      proxy_->close_all();
    }
    // Every connection and timer ends, so the shards run out of work.
    guards_.clear();
    for (auto& thread : threads_) thread.join();
    proxy_.reset();
  }

  // With two shards the two parties of a stream usually land on different
  // ones (accepted round-robin), so the relay adopts a socket across shards.
  void start(Settings settings = {}, std::size_t shard_count = 2) {
    settings.domains = {"proxy.localhost"};
    settings.port = 0;
    std::vector<asio::io_context*> shards;
    for (std::size_t i = 0; i < shard_count; ++i) shards.push_back(&shards_[i]);
    proxy_ = std::make_unique<Proxy>(shards, router_, settings);
    proxy_->start();
    for (auto& shard : shards_) threads_.emplace_back([&shard] { shard.run(); });
  }

  // Routes an iq from 'from' to the proxy and returns the answer alice's inbox gets.
  xml::Element ask(const std::string& type, xml::Element payload, const std::string& from = "alice@localhost/a") {
    xml::Element iq("iq");
    iq.set_attr("type", type);
    iq.set_attr("id", "q" + std::to_string(++next_id_));
    iq.set_attr("from", from);
    iq.set_attr("to", "proxy.localhost");
    iq.add_child(std::move(payload));
    asio::co_spawn(shards_[0], router_.route(std::move(iq)), asio::use_future).get();
    auto reply = inbox_->next();
    EXPECT_EQ(reply.attr("id"), "q" + std::to_string(next_id_));
    return reply;
  }

  xml::Element activate(const std::string& sid, const std::string& target,
                        const std::string& from = "alice@localhost/a") {
    xml::Element query("query", std::string(ns_bytestreams));
    if (!sid.empty()) query.set_attr("sid", sid);
    query.add_child("activate", std::string(ns_bytestreams)).add_text(target);
    return ask("set", std::move(query), from);
  }

  // A target and a requester connected for (sid, alice, bob) and activated.
  std::pair<std::unique_ptr<SocksClient>, std::unique_ptr<SocksClient>> activated_pair(const std::string& sid) {
    const auto hash = stream_hash(sid, "alice@localhost/a", "bob@localhost/b");
    auto target = std::make_unique<SocksClient>(proxy_->port());
    EXPECT_EQ(target->negotiate(hash), success(hash));
    auto requester = std::make_unique<SocksClient>(proxy_->port());
    EXPECT_EQ(requester->negotiate(hash), success(hash));
    EXPECT_EQ(activate(sid, "bob@localhost/b").attr("type"), "result");
    return {std::move(target), std::move(requester)};
  }

  std::deque<asio::io_context> shards_{2};
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
  router::Router router_;
  std::shared_ptr<Inbox> inbox_ = std::make_shared<Inbox>();
  xmpp::Jid alice_;
  std::unique_ptr<Proxy> proxy_;
  int next_id_ = 0;
};

TEST_F(ProxyTest, DiscoInfoNamesAProxyWithTheBytestreamsFeature) {
  start();
  const auto reply = ask("get", xml::Element("query", std::string(ns_disco_info)));
  ASSERT_EQ(reply.attr("type"), "result");
  const auto* query = reply.child("query", ns_disco_info);
  ASSERT_NE(query, nullptr);
  const auto* identity = query->child("identity", ns_disco_info);
  ASSERT_NE(identity, nullptr);
  EXPECT_EQ(identity->attr("category"), "proxy");
  EXPECT_EQ(identity->attr("type"), "bytestreams");
  bool bytestreams = false;
  for (const auto& feature : query->children()) bytestreams |= feature.attr("var") == ns_bytestreams;
  EXPECT_TRUE(bytestreams);
  // The host lists the proxy.
  const auto items = router_.host("localhost")->disco_items();
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].jid, "proxy.localhost");
}

TEST_F(ProxyTest, StreamhostQueryAnswersTheListenerAddress) {
  start();
  const auto reply = ask("get", xml::Element("query", std::string(ns_bytestreams)));
  ASSERT_EQ(reply.attr("type"), "result");
  const auto* streamhost = reply.child("query", ns_bytestreams)->child("streamhost", ns_bytestreams);
  ASSERT_NE(streamhost, nullptr);
  EXPECT_EQ(streamhost->attr("jid"), "proxy.localhost");
  EXPECT_EQ(streamhost->attr("host"), "127.0.0.1");
  EXPECT_EQ(streamhost->attr("port"), std::to_string(proxy_->port()));
}

TEST_F(ProxyTest, PublicHostAndPortAreAdvertisedWhenSet) {
  Settings settings;
  settings.public_host = "files.example.org";
  settings.public_port = 7000;
  start(settings);
  const auto reply = ask("get", xml::Element("query", std::string(ns_bytestreams)));
  const auto* streamhost = reply.child("query", ns_bytestreams)->child("streamhost", ns_bytestreams);
  ASSERT_NE(streamhost, nullptr);
  EXPECT_EQ(streamhost->attr("host"), "files.example.org");
  EXPECT_EQ(streamhost->attr("port"), "7000");
}

TEST_F(ProxyTest, UsersOfOtherServersAreForbidden) {
  start();
  xml::Element iq("iq");
  iq.set_attr("type", "get");
  iq.set_attr("id", "remote");
  iq.set_attr("from", "eve@elsewhere.example/x");
  iq.set_attr("to", "proxy.localhost");
  iq.add_child("query", std::string(ns_bytestreams));
  // The error goes to the remote route.
  std::promise<xml::Element> bounced;
  router_.set_remote_route([&bounced](xml::Element& stanza, const xmpp::Jid&) {
    bounced.set_value(stanza);
    return true;
  });
  asio::co_spawn(shards_[0], router_.route(std::move(iq)), asio::use_future).get();
  auto future = bounced.get_future();
  ASSERT_EQ(future.wait_for(step_timeout), std::future_status::ready);
  EXPECT_EQ(xmpp::stanza_error_condition(future.get()), "forbidden");
}

TEST_F(ProxyTest, RelaysBothWaysWithHalfCloseAfterActivation) {
  start();
  auto [target, requester] = activated_pair("sid-relay");
  const auto file = random_bytes(3 * 1024 * 1024 + 17, 1);
  const auto answer = random_bytes(100 * 1024, 2);
  std::thread sender([&requester = requester, &file] {
    requester->send(file);
    requester->finish_sending();
  });
  std::string received;
  std::thread receiver([&target = target, &received] { received = target->read_to_end(); });
  sender.join();
  receiver.join();
  EXPECT_EQ(received.size(), file.size());
  EXPECT_TRUE(received == file);
  // The other direction still works after the first one ended.
  target->send(answer);
  target->finish_sending();
  EXPECT_TRUE(requester->read_to_end() == answer);
  const auto counters = proxy_->counters();
  EXPECT_EQ(counters.pending, 0u);
  EXPECT_EQ(counters.relayed_bytes, file.size() + answer.size());
}

TEST_F(ProxyTest, RelaysOnASingleShard) {
  start({}, 1);
  auto [target, requester] = activated_pair("sid-one-shard");
  const auto file = random_bytes(256 * 1024, 4);
  requester->send(file);
  requester->finish_sending();
  EXPECT_TRUE(target->read_to_end() == file);
  target->send("thanks");
  target->finish_sending();
  EXPECT_EQ(requester->read_to_end(), "thanks");
}

TEST_F(ProxyTest, BytesSentBeforeActivationArriveAfterIt) {
  start();
  const auto hash = stream_hash("sid-early", "alice@localhost/a", "bob@localhost/b");
  SocksClient target(proxy_->port()), requester(proxy_->port());
  EXPECT_EQ(target.negotiate(hash), success(hash));
  EXPECT_EQ(requester.negotiate(hash), success(hash));
  requester.send("sent too early");
  EXPECT_EQ(activate("sid-early", "bob@localhost/b").attr("type"), "result");
  EXPECT_EQ(target.read(14), "sent too early");
}

TEST_F(ProxyTest, AnAddressInUseIsReported) {
  start();
  Settings settings;
  settings.domains = {"proxy2.localhost"};
  settings.port = proxy_->port();
  EXPECT_THROW(Proxy(std::vector<asio::io_context*>{&shards_[0]}, router_, settings), boost::system::system_error);
}

TEST_F(ProxyTest, ClosingOneSideClosesTheOther) {
  start();
  auto [target, requester] = activated_pair("sid-close");
  requester->send("hello");
  EXPECT_EQ(target->read(5), "hello");
  requester.reset();
  EXPECT_TRUE(target->closed_by_peer());
}

TEST_F(ProxyTest, ActivationErrorsFollowTheXep) {
  start();
  EXPECT_EQ(xmpp::stanza_error_condition(activate("no-such-sid", "bob@localhost/b")), "item-not-found");

  const auto hash = stream_hash("sid-one", "alice@localhost/a", "bob@localhost/b");
  SocksClient target(proxy_->port());
  EXPECT_EQ(target.negotiate(hash), success(hash));
  EXPECT_EQ(xmpp::stanza_error_condition(activate("sid-one", "bob@localhost/b")), "not-allowed");
  // The hash binds the requester: another user cannot activate.
  EXPECT_EQ(xmpp::stanza_error_condition(activate("sid-one", "bob@localhost/b", "carol@localhost/c")),
            "item-not-found");

  EXPECT_EQ(xmpp::stanza_error_condition(activate("", "bob@localhost/b")), "bad-request");
  EXPECT_EQ(xmpp::stanza_error_condition(activate("sid-one", "@@bad")), "jid-malformed");
  EXPECT_EQ(xmpp::stanza_error_condition(
                ask("set", xml::Element("query", std::string(ns_bytestreams)))),
            "bad-request");
  EXPECT_EQ(xmpp::stanza_error_condition(ask("get", xml::Element("vcard", "vcard-temp"))), "service-unavailable");
}

TEST_F(ProxyTest, AddressesBelowTheDomainAreServiceUnavailable) {
  start();
  xml::Element iq("iq");
  iq.set_attr("type", "get");
  iq.set_attr("id", "below");
  iq.set_attr("from", "alice@localhost/a");
  iq.set_attr("to", "someone@proxy.localhost");
  iq.add_child("query", std::string(ns_disco_info));
  asio::co_spawn(shards_[0], router_.route(std::move(iq)), asio::use_future).get();
  const auto reply = inbox_->next();
  EXPECT_EQ(reply.attr("id"), "below");
  EXPECT_EQ(xmpp::stanza_error_condition(reply), "service-unavailable");
}

TEST_F(ProxyTest, SecondActivationOfTheSameStreamIsUnknown) {
  start();
  auto pair = activated_pair("sid-twice");
  EXPECT_EQ(xmpp::stanza_error_condition(activate("sid-twice", "bob@localhost/b")), "item-not-found");
}

TEST_F(ProxyTest, AThirdPartyForTheSameHashIsNotAllowed) {
  start();
  const auto hash = stream_hash("sid-three", "alice@localhost/a", "bob@localhost/b");
  SocksClient first(proxy_->port()), second(proxy_->port()), third(proxy_->port());
  EXPECT_EQ(first.negotiate(hash), success(hash));
  EXPECT_EQ(second.negotiate(hash), success(hash));
  auto refused = success(hash);
  refused[1] = '\x02';
  EXPECT_EQ(third.negotiate(hash), refused);
  EXPECT_TRUE(third.closed_by_peer());
}

TEST_F(ProxyTest, BadGreetingGetsNoAcceptableMethodsThenClose) {
  start();
  SocksClient client(proxy_->port());
  client.send("\x05\x01\x02"s);  // username/password only
  EXPECT_EQ(client.read(2), "\x05\xff"s);
  EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(ProxyTest, WrongAddressTypeGetsReplyEightThenClose) {
  start();
  SocksClient client(proxy_->port());
  client.send("\x05\x01\x00"s);
  EXPECT_EQ(client.read(2), "\x05\x00"s);
  client.send("\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50"s);
  EXPECT_EQ(client.read(10), "\x05\x08\x00\x01\x00\x00\x00\x00\x00\x00"s);
  EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(ProxyTest, EarlyEndOfNegotiationLeavesTheProxyServing) {
  Settings settings;
  settings.max_pending = 1;
  start(settings);
  {
    SocksClient client(proxy_->port());
    client.send("\x05\x01"s);
  }
  // Only once the proxy has forgotten the first connection is there room
  // for the next one.
  for (int attempt = 0;; ++attempt) {
    try {
      SocksClient client(proxy_->port());
      client.send("\x05\x01\x00"s);
      EXPECT_EQ(client.read(2), "\x05\x00"s);
      break;
    } catch (const boost::system::system_error&) {
      // Refused while the first was still counted: the close was not seen yet.
      ASSERT_LT(attempt, 100);
    }
  }
}

TEST_F(ProxyTest, UnactivatedConnectionsAreClosedAfterTheTimeout) {
  Settings settings;
  settings.activation_timeout = 1s;
  start(settings);
  const auto hash = stream_hash("sid-late", "alice@localhost/a", "bob@localhost/b");
  SocksClient target(proxy_->port());
  EXPECT_EQ(target.negotiate(hash), success(hash));
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(target.closed_by_peer());
  EXPECT_GE(std::chrono::steady_clock::now() - started, 900ms);
  EXPECT_EQ(xmpp::stanza_error_condition(activate("sid-late", "bob@localhost/b")), "item-not-found");
}

TEST_F(ProxyTest, PendingConnectionsAreLimited) {
  Settings settings;
  settings.max_pending = 1;
  start(settings);
  const auto hash = stream_hash("sid-limit", "alice@localhost/a", "bob@localhost/b");
  SocksClient first(proxy_->port());
  EXPECT_EQ(first.negotiate(hash), success(hash));
  SocksClient second(proxy_->port());
  EXPECT_TRUE(second.closed_by_peer());
}

TEST_F(ProxyTest, UnlimitedRateRelaysEverything) {
  Settings settings;
  settings.rate = 0;
  settings.burst = 0;
  start(settings);
  auto [target, requester] = activated_pair("sid-unlimited");
  const auto file = random_bytes(2 * 1024 * 1024, 5);
  std::thread sender([&requester = requester, &file] {
    requester->send(file);
    requester->finish_sending();
  });
  const auto received = target->read_to_end();
  sender.join();
  EXPECT_TRUE(received == file);
}

TEST_F(ProxyTest, RelayIsHeldToTheRate) {
  Settings settings;
  settings.rate = 256 * 1024;
  settings.burst = 32 * 1024;
  start(settings);
  auto [target, requester] = activated_pair("sid-rate");
  const auto file = random_bytes(512 * 1024, 3);
  const auto started = std::chrono::steady_clock::now();
  std::thread sender([&requester = requester, &file] {
    requester->send(file);
    requester->finish_sending();
  });
  const auto received = target->read_to_end();
  sender.join();
  const auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(received == file);
  // (512 - 32) KiB beyond the burst at 256 KiB/s: at least 1.875 s.
  EXPECT_GE(elapsed, 1800ms);
}

}  // namespace
}  // namespace parley::components::proxy65
