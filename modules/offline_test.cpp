// The offline module through a real router: XEP-0160 storage and delivery,
// XEP-0203 stamps, RFC 6121 §8.5.2.2 for what is not stored.
#include <gtest/gtest.h>

#include <regex>

#include "modules/im_test_support.hpp"

namespace parley::modules::testing {
namespace {

class OfflineTest : public ::testing::Test {
 protected:
  explicit OfflineTest(const std::string& options = "", std::unique_ptr<storage::Storage> storage = storage::open("memory:"))
      : server(std::move(storage)) {
    server.enable(make_offline_module, options);
    server.add_account("alice", "pw");
    server.add_account("bob", "pw");
    alice = server.online("alice@example.org/phone");
  }

  std::size_t stored_for_bob() { return server.storage().offline().count("bob@example.org"); }

  ImServer server;
  Client alice;
};

TEST_F(OfflineTest, MessagesAreStoredAndDeliveredInOrderWithDelayStamps) {
  for (const char* body : {"one", "two", "three"}) {
    EXPECT_TRUE(server.send(alice, chat_message("bob@example.org", body)).empty()) << "no error for " << body;
  }
  EXPECT_TRUE(server.send(alice, chat_message("bob@example.org", "four", "")).empty());  // type normal
  EXPECT_EQ(stored_for_bob(), 4u);

  auto bob = server.bind("bob@example.org/desk");
  const auto received = select(server.send(bob, available_presence()), "message", "chat");
  ASSERT_EQ(received.size(), 3u);
  const std::regex stamp(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");
  std::vector<std::string> bodies;
  for (const auto& message : received) {
    bodies.push_back(message.child_text("body", xml::ns_client));
    EXPECT_EQ(message.attr("from"), "alice@example.org/phone");
    EXPECT_EQ(message.attr("to"), "bob@example.org");
    const auto* delay = message.child("delay", im::ns_delay);
    ASSERT_NE(delay, nullptr);
    EXPECT_EQ(delay->attr("from"), "example.org");
    EXPECT_TRUE(std::regex_match(std::string(delay->attr("stamp")), stamp)) << delay->attr("stamp");
  }
  EXPECT_EQ(bodies, (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(stored_for_bob(), 0u);

  // A later presence update is not initial presence: nothing is redelivered.
  EXPECT_TRUE(select(server.send(bob, available_presence("away")), "message", "chat").empty());
}

TEST_F(OfflineTest, DeliveryWaitsForANonNegativePriority) {
  server.send(alice, chat_message("bob@example.org", "hello"));
  auto bob = server.bind("bob@example.org/desk");
  const auto received = server.send(bob, available_presence({}, -1));
  EXPECT_TRUE(select(received, "message", "chat").empty());

  // A negative-priority resource takes no messages either: they are stored.
  server.send(alice, chat_message("bob@example.org", "again"));
  EXPECT_EQ(stored_for_bob(), 2u);

  auto laptop = server.bind("bob@example.org/laptop");
  EXPECT_EQ(select(server.send(laptop, available_presence({}, 0)), "message", "chat").size(), 2u);
}

TEST_F(OfflineTest, MessagesToAnOfflineResourceAreStoredForTheAccount) {
  server.send(alice, chat_message("bob@example.org/gone", "to a resource"));
  EXPECT_EQ(stored_for_bob(), 1u);
}

TEST_F(OfflineTest, UnknownAccountsGetServiceUnavailable) {
  const auto errors = select(server.send(alice, chat_message("nobody@example.org", "hi")), "message", "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(error_condition(errors[0]), "service-unavailable");
}

TEST_F(OfflineTest, HeadlinesErrorsAndChatStatesAreNotStored) {
  EXPECT_TRUE(server.send(alice, chat_message("bob@example.org", "news", "headline")).empty());
  auto error = chat_message("bob@example.org", "", "error");
  error.add_child("error", std::string(xml::ns_client)).set_attr("type", "cancel");
  EXPECT_TRUE(server.send(alice, error).empty());
  auto typing = chat_message("bob@example.org", "");
  typing.add_child("composing", "http://jabber.org/protocol/chatstates");
  EXPECT_TRUE(server.send(alice, typing).empty());
  EXPECT_EQ(stored_for_bob(), 0u);

  // Payload without a body is kept.
  auto receipt = chat_message("bob@example.org", "");
  receipt.add_child("received", "urn:xmpp:receipts").set_attr("id", "m1");
  server.send(alice, receipt);
  EXPECT_EQ(stored_for_bob(), 1u);
}

TEST_F(OfflineTest, GroupchatIsRefused) {
  const auto errors =
      select(server.send(alice, chat_message("bob@example.org", "hi all", "groupchat")), "message", "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(error_condition(errors[0]), "service-unavailable");
  EXPECT_EQ(stored_for_bob(), 0u);
}

TEST_F(OfflineTest, AdvertisesMsgoffline) {
  const auto features = server.host().disco_features();
  EXPECT_NE(std::find(features.begin(), features.end(), "msgoffline"), features.end());
}

class OfflineLimitTest : public OfflineTest {
 protected:
  OfflineLimitTest() : OfflineTest("max_messages: 2") {}
};

TEST_F(OfflineLimitTest, MessagesOverTheLimitAreRefused) {
  EXPECT_TRUE(server.send(alice, chat_message("bob@example.org", "1")).empty());
  EXPECT_TRUE(server.send(alice, chat_message("bob@example.org", "2")).empty());
  const auto errors = select(server.send(alice, chat_message("bob@example.org", "3")), "message", "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(error_condition(errors[0]), "service-unavailable");
  EXPECT_EQ(errors[0].child_text("body", xml::ns_client), "3");
  EXPECT_EQ(stored_for_bob(), 2u);
}

class OfflineOutageTest : public OfflineTest {
 protected:
  OfflineOutageTest() : OfflineTest("", make_storage()) {}
  static std::unique_ptr<storage::Storage> make_storage() {
    auto storage = std::make_unique<OutageStorage>();
    outage = storage.get();
    return storage;
  }
  static inline OutageStorage* outage = nullptr;
};

TEST_F(OfflineOutageTest, StorageFailureIsAnsweredWithInternalServerError) {
  outage->set_down(true);
  const auto errors = select(server.send(alice, chat_message("bob@example.org", "lost?")), "message", "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(error_condition(errors[0]), "internal-server-error");
  EXPECT_EQ(errors[0].child("error", xml::ns_client)->attr("type"), "wait");
  outage->set_down(false);
  EXPECT_TRUE(server.send(alice, chat_message("bob@example.org", "kept")).empty());
  EXPECT_EQ(stored_for_bob(), 1u);
}

TEST(OfflineOptions, BadOptionsAreRefused) {
  for (const char* options : {"max_messages: lots", "max_messages: 0", "max_messages: [1]", "limit: 5", "[1, 2]"}) {
    ImServer server;
    EXPECT_THROW(server.enable(make_offline_module, options), OptionError) << options;
  }
  ImServer server;
  EXPECT_NO_THROW(server.enable(make_offline_module, "max_messages: 500"));
}

}  // namespace
}  // namespace parley::modules::testing
