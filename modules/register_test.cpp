#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

#include "modules/factories.hpp"
#include "modules/module_test_support.hpp"

namespace parley::modules {
namespace {

using testing::Client;
using testing::FakeSession;
using testing::TestServer;
using testing::error_condition;
using testing::payload;

constexpr const char* ns_register = "jabber:iq:register";

struct Field {
  const char* name;
  std::string text;
};

// <iq type='..' id='..' [to='..']><query xmlns='jabber:iq:register'><name>text</name>...</query></iq>
xml::Element register_iq(std::string_view type, std::string_view id, std::string_view to,
                         std::initializer_list<Field> fields = {}) {
  auto iq = testing::make_iq(type, id, to, "query", ns_register);
  auto& query = iq.children().front();
  for (const auto& field : fields) {
    auto& child = query.add_child(field.name, ns_register);
    if (!field.text.empty()) child.add_text(field.text);
  }
  return iq;
}

std::shared_ptr<FakeSession> anonymous(const std::string& remote_address = "192.0.2.1") {
  return std::make_shared<FakeSession>("unauthenticated", remote_address);
}

class RegisterTest : public ::testing::Test {
 protected:
  void open(const std::string& extra_options = "") {
    server.enable(make_register_module, "open: true\n" + extra_options);
  }

  // Registers through an unauthenticated stream and returns the reply.
  xml::Element sign_up(const std::string& username, const std::string& password,
                       const std::string& remote_address = "192.0.2.1") {
    return server.ask_unauthenticated(
        anonymous(remote_address),
        register_iq("set", "reg", "", {{"username", username}, {"password", password}}));
  }

  std::optional<storage::Account> account(const std::string& username) {
    return server.storage().accounts().find(username, "example.org");
  }

  bool password_works(const std::string& username, const std::string& password) {
    const auto found = account(username);
    return found && sasl::verify_password(sasl::Hash::sha1, password, found->sha1) &&
           sasl::verify_password(sasl::Hash::sha256, password, found->sha256);
  }

  TestServer server;
};

TEST_F(RegisterTest, ClosedRegistrationRefusesNewAccounts) {
  server.enable(make_register_module);
  const auto reply = sign_up("alice", "secret");
  EXPECT_EQ(reply.attr("type"), "error");
  EXPECT_EQ(error_condition(reply), "not-allowed");
  EXPECT_FALSE(account("alice"));
}

TEST_F(RegisterTest, ClosedRegistrationServesNoFormSoC2sOffersNoStreamFeature) {
  server.enable(make_register_module);
  EXPECT_EQ(server.host().iq_handler(router::IqTarget::unauthenticated, "get", ns_register), nullptr);
  const auto reply = server.ask_unauthenticated(anonymous(), register_iq("get", "form", ""));
  EXPECT_EQ(error_condition(reply), "service-unavailable");
}

TEST_F(RegisterTest, OpenRegistrationServesTheForm) {
  open();
  EXPECT_NE(server.host().iq_handler(router::IqTarget::unauthenticated, "get", ns_register), nullptr);
  const auto reply = server.ask_unauthenticated(anonymous(), register_iq("get", "form", ""));
  ASSERT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
  const auto* query = payload(reply);
  ASSERT_NE(query, nullptr);
  ASSERT_TRUE(query->is("query", ns_register));
  EXPECT_NE(query->child("instructions", ns_register), nullptr);
  EXPECT_NE(query->child("username", ns_register), nullptr);
  EXPECT_NE(query->child("password", ns_register), nullptr);
  EXPECT_EQ(query->child("registered", ns_register), nullptr);
}

TEST_F(RegisterTest, RegistrationCreatesAnAccountWithBothScramCredentials) {
  open();
  const auto reply = sign_up("alice", "correct horse");
  ASSERT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
  const auto created = account("alice");
  ASSERT_TRUE(created);
  EXPECT_GT(created->created_at, 0);
  EXPECT_TRUE(password_works("alice", "correct horse"));
  EXPECT_FALSE(sasl::verify_password(sasl::Hash::sha256, "wrong", created->sha256));
}

TEST_F(RegisterTest, UsernameIsNormalised) {
  open();
  ASSERT_EQ(sign_up("Alice", "secret").attr("type"), "result");
  EXPECT_TRUE(account("alice"));
  EXPECT_FALSE(account("Alice"));
  EXPECT_EQ(error_condition(sign_up("ALICE", "other")), "conflict");
}

TEST_F(RegisterTest, TakenUsernameIsAConflictAndKeepsThePassword) {
  open();
  ASSERT_EQ(sign_up("alice", "first").attr("type"), "result");
  const auto reply = sign_up("alice", "second");
  EXPECT_EQ(reply.attr("type"), "error");
  EXPECT_EQ(error_condition(reply), "conflict");
  EXPECT_TRUE(password_works("alice", "first"));
}

TEST_F(RegisterTest, InvalidUsernameIsJidMalformed) {
  open();
  for (const char* username : {"al@ice", "a/b", "with space", "a:b"}) {
    EXPECT_EQ(error_condition(sign_up(username, "secret")), "jid-malformed") << username;
  }
  EXPECT_TRUE(server.storage().accounts().list("example.org").empty());
}

TEST_F(RegisterTest, MissingFieldsAndEmptyPasswordAreNotAcceptable) {
  open("rate_per_minute: 100\n");
  EXPECT_EQ(error_condition(sign_up("alice", "")), "not-acceptable");
  EXPECT_EQ(error_condition(sign_up("", "secret")), "not-acceptable");
  const auto no_password =
      server.ask_unauthenticated(anonymous(), register_iq("set", "r", "", {{"username", "alice"}}));
  EXPECT_EQ(error_condition(no_password), "not-acceptable");
  EXPECT_EQ(error_condition(sign_up("alice", "bell\x07")), "not-acceptable") << "SASLprep prohibits controls";
  EXPECT_FALSE(account("alice"));
}

TEST_F(RegisterTest, UnauthenticatedRemoveIsAnUnexpectedRequest) {
  open();
  const auto reply = server.ask_unauthenticated(anonymous(), register_iq("set", "rm", "", {{"remove", ""}}));
  EXPECT_EQ(error_condition(reply), "unexpected-request");
}

TEST_F(RegisterTest, RegistrationsAreRateLimitedPerRemoteAddress) {
  open("rate_per_minute: 2\n");
  EXPECT_EQ(sign_up("user1", "pw", "198.51.100.7").attr("type"), "result");
  EXPECT_EQ(sign_up("user2", "pw", "198.51.100.7").attr("type"), "result");
  const auto refused = sign_up("user3", "pw", "198.51.100.7");
  EXPECT_EQ(error_condition(refused), "resource-constraint");
  const auto* error = refused.child("error", xml::ns_client);
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->attr("type"), "wait");
  EXPECT_FALSE(account("user3"));
  EXPECT_EQ(sign_up("user3", "pw", "198.51.100.8").attr("type"), "result");
}

TEST_F(RegisterTest, FailedAttemptsCountTowardsTheRateLimit) {
  open("rate_per_minute: 1\n");
  ASSERT_EQ(sign_up("alice", "pw", "198.51.100.9").attr("type"), "result");
  EXPECT_EQ(error_condition(sign_up("bob", "pw", "198.51.100.9")), "resource-constraint");
}

TEST_F(RegisterTest, AdvertisesTheDiscoFeatureEvenWhenClosed) {
  server.enable(make_register_module);
  const auto features = server.host().disco_features();
  EXPECT_NE(std::find(features.begin(), features.end(), ns_register), features.end());
}

class RegisteredUserTest : public RegisterTest {
 protected:
  void SetUp() override {
    server.enable(make_register_module);
    server.add_account("alice", "old password");
    server.add_account("bob", "bobs password");
  }
  Client alice = server.bind("alice@example.org/phone");
};

TEST_F(RegisteredUserTest, GetReportsTheRegistration) {
  for (const char* to : {"", "example.org", "alice@example.org"}) {
    const auto reply = server.ask(alice, register_iq("get", "g", to));
    ASSERT_EQ(reply.attr("type"), "result") << to << ": " << xml::serialize(reply);
    const auto* query = payload(reply);
    ASSERT_NE(query, nullptr);
    EXPECT_NE(query->child("registered", ns_register), nullptr);
    EXPECT_EQ(query->child_text("username", ns_register), "alice");
  }
}

TEST_F(RegisteredUserTest, PasswordChangeReplacesTheCredentials) {
  const auto reply =
      server.ask(alice, register_iq("set", "pw", "example.org", {{"username", "alice"}, {"password", "new one"}}));
  ASSERT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
  EXPECT_TRUE(password_works("alice", "new one"));
  const auto found = account("alice");
  EXPECT_FALSE(sasl::verify_password(sasl::Hash::sha1, "old password", found->sha1));
  EXPECT_FALSE(sasl::verify_password(sasl::Hash::sha256, "old password", found->sha256));
  EXPECT_TRUE(password_works("bob", "bobs password"));
}

TEST_F(RegisteredUserTest, PasswordChangeWithoutToWorks) {
  const auto reply = server.ask(alice, register_iq("set", "pw", "", {{"username", "Alice"}, {"password", "new"}}));
  ASSERT_EQ(reply.attr("type"), "result") << xml::serialize(reply);
  EXPECT_TRUE(password_works("alice", "new"));
}

TEST_F(RegisteredUserTest, PasswordChangeForAnotherUsernameIsForbidden) {
  const auto reply =
      server.ask(alice, register_iq("set", "pw", "example.org", {{"username", "bob"}, {"password", "mine now"}}));
  EXPECT_EQ(error_condition(reply), "forbidden");
  EXPECT_TRUE(password_works("bob", "bobs password"));
}

TEST_F(RegisteredUserTest, EmptyPasswordKeepsTheOldOne) {
  const auto reply =
      server.ask(alice, register_iq("set", "pw", "example.org", {{"username", "alice"}, {"password", ""}}));
  EXPECT_EQ(error_condition(reply), "not-acceptable");
  EXPECT_TRUE(password_works("alice", "old password"));
}

TEST_F(RegisteredUserTest, PasswordChangeWithoutUsernameIsABadRequest) {
  const auto reply = server.ask(alice, register_iq("set", "pw", "example.org", {{"password", "new"}}));
  EXPECT_EQ(error_condition(reply), "bad-request");
  EXPECT_TRUE(password_works("alice", "old password"));
}

TEST_F(RegisteredUserTest, OthersCannotChangeAnAccountThroughItsBareJid) {
  const auto bob = server.bind("bob@example.org/desk");
  const auto change = server.ask(
      bob, register_iq("set", "pw", "alice@example.org", {{"username", "alice"}, {"password", "stolen"}}));
  EXPECT_EQ(error_condition(change), "service-unavailable");
  const auto removal = server.ask(bob, register_iq("set", "rm", "alice@example.org", {{"remove", ""}}));
  EXPECT_EQ(error_condition(removal), "service-unavailable");
  EXPECT_TRUE(password_works("alice", "old password"));
}

TEST_F(RegisteredUserTest, RemoveDeletesTheAccountAnswersThenClosesEverySession) {
  const auto tablet = server.bind("alice@example.org/tablet");
  const auto bob = server.bind("bob@example.org/desk");

  const auto received = server.send(alice, register_iq("set", "rm", "", {{"remove", ""}}));
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received.front().attr("type"), "result") << xml::serialize(received.front());
  EXPECT_EQ(received.front().attr("id"), "rm");
  EXPECT_FALSE(account("alice"));

  for (const auto& session : {alice.session, tablet.session}) {
    const auto closure = session->closure();
    ASSERT_TRUE(closure) << session->id();
    EXPECT_EQ(closure->condition, "not-authorized");
    EXPECT_EQ(closure->text, "account removed");
  }
  EXPECT_EQ(alice.session->closure()->delivered_before, 1u) << "the result must be queued before the close";
  EXPECT_FALSE(bob.session->closure());
  EXPECT_TRUE(account("bob"));
}

TEST_F(RegisteredUserTest, RemoveWithOtherElementsIsABadRequest) {
  const auto reply =
      server.ask(alice, register_iq("set", "rm", "", {{"remove", ""}, {"username", "alice"}}));
  EXPECT_EQ(error_condition(reply), "bad-request");
  EXPECT_TRUE(account("alice"));
  EXPECT_FALSE(alice.session->closure());
}

TEST_F(RegisteredUserTest, RemovingAnAccountThatIsAlreadyGoneNeedsRegistration) {
  ASSERT_TRUE(server.storage().accounts().remove("alice", "example.org"));
  const auto reply = server.ask(alice, register_iq("set", "rm", "", {{"remove", ""}}));
  EXPECT_EQ(error_condition(reply), "registration-required");
}

TEST(RegisterStorageOutage, EveryRequestGetsInternalServerError) {
  auto outage = std::make_unique<testing::OutageStorage>();
  auto& storage = *outage;
  TestServer server("example.org", std::move(outage));
  server.enable(make_register_module, "open: true");
  server.add_account("alice", "pw");
  const auto alice = server.bind("alice@example.org/phone");
  storage.set_down(true);

  const auto sign_up = server.ask_unauthenticated(
      anonymous(), register_iq("set", "r", "", {{"username", "bob"}, {"password", "pw"}}));
  EXPECT_EQ(error_condition(sign_up), "internal-server-error");
  const auto change =
      server.ask(alice, register_iq("set", "c", "", {{"username", "alice"}, {"password", "new"}}));
  EXPECT_EQ(error_condition(change), "internal-server-error");
  const auto removal = server.ask(alice, register_iq("set", "d", "", {{"remove", ""}}));
  EXPECT_EQ(error_condition(removal), "internal-server-error");
  EXPECT_FALSE(alice.session->closure());
}

TEST(RegisterOptions, RefusesUnknownAndMalformedOptions) {
  TestServer server;
  EXPECT_THROW(server.enable(make_register_module, "captcha: true"), OptionError);
  EXPECT_THROW(server.enable(make_register_module, "open: perhaps"), OptionError);
  EXPECT_THROW(server.enable(make_register_module, "rate_per_minute: 0"), OptionError);
  EXPECT_THROW(server.enable(make_register_module, "rate_per_minute: many"), OptionError);
}

}  // namespace
}  // namespace parley::modules
