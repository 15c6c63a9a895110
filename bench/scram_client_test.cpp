#include "bench/scram_client.hpp"

#include <gtest/gtest.h>

#include <variant>

#include "xmpp/sasl.hpp"

namespace parley::bench {
namespace {

using sasl::Hash;

// Runs our client against the server implementation of xmpp/sasl.cpp.
struct Exchange {
  bool server_accepted = false;
  bool client_verified = false;
};

Exchange run(Hash hash, const std::string& client_password, const std::string& server_password,
             const std::string& user = "alice") {
  auto credentials = sasl::make_credentials(hash, server_password, 4096);
  sasl::ScramServer server(hash, false, [](std::string_view) { return std::nullopt; }, false);
  ScramClient client(hash, user, client_password);
  auto first = server.client_first(client.first_message());
  EXPECT_TRUE(std::holds_alternative<sasl::ScramServer::ClientFirst>(first));
  if (auto* parsed = std::get_if<sasl::ScramServer::ClientFirst>(&first)) {
    EXPECT_EQ(parsed->username, user);
  }
  auto challenge = server.server_first(credentials);
  auto final_message = client.final_message(challenge, 4096);
  EXPECT_TRUE(final_message.has_value());
  Exchange exchange;
  if (!final_message) return exchange;
  auto outcome = server.client_final(*final_message);
  if (auto* server_final = std::get_if<std::string>(&outcome)) {
    exchange.server_accepted = true;
    exchange.client_verified = client.verify_server_final(*server_final);
  }
  return exchange;
}

TEST(ScramClient, LogsInToParleysServerWithSha1) {
  auto exchange = run(Hash::sha1, "pencil", "pencil");
  EXPECT_TRUE(exchange.server_accepted);
  EXPECT_TRUE(exchange.client_verified);
}

TEST(ScramClient, LogsInToParleysServerWithSha256) {
  auto exchange = run(Hash::sha256, "correct horse", "correct horse");
  EXPECT_TRUE(exchange.server_accepted);
  EXPECT_TRUE(exchange.client_verified);
}

TEST(ScramClient, WrongPasswordIsRefusedByTheServer) {
  EXPECT_FALSE(run(Hash::sha256, "wrong", "right").server_accepted);
}

TEST(ScramClient, UsernameWithCommaAndEqualsIsEscaped) {
  EXPECT_EQ(escape_scram_name("a,b=c"), "a=2Cb=3Dc");
  auto exchange = run(Hash::sha1, "pw", "pw", "a,b=c");
  EXPECT_TRUE(exchange.server_accepted);
}

// RFC 5802 §5 test vector: user "user", password "pencil".
TEST(ScramClient, MatchesTheRfc5802Example) {
  ScramClient client(Hash::sha1, "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL");
  EXPECT_EQ(client.first_message(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
  auto final_message =
      client.final_message("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
  ASSERT_TRUE(final_message.has_value());
  EXPECT_EQ(*final_message, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
  EXPECT_TRUE(client.verify_server_final("v=rmF9pqV8S7suAoZWja4dJRkFsKQ="));
  EXPECT_FALSE(client.verify_server_final("v=AAAApqV8S7suAoZWja4dJRkFsKQ="));
}

TEST(ScramClient, RefusesBadChallenges) {
  ScramClient client(Hash::sha1, "user", "pencil", "abc");
  EXPECT_FALSE(client.final_message("r=xyz123,s=QSXCR+Q6sek8bf92,i=4096"));          // nonce not ours
  EXPECT_FALSE(client.final_message("r=abc,s=QSXCR+Q6sek8bf92,i=4096"));             // nothing added
  EXPECT_FALSE(client.final_message("r=abcd,s=!!!,i=4096"));                         // bad salt
  EXPECT_FALSE(client.final_message("r=abcd,s=QSXCR+Q6sek8bf92,i=12x"));             // bad count
  EXPECT_FALSE(client.final_message("r=abcd,s=QSXCR+Q6sek8bf92"));                   // no count
  EXPECT_FALSE(client.final_message("r=abcd,s=QSXCR+Q6sek8bf92,i=1024", 4096));      // too few
  EXPECT_FALSE(client.verify_server_final("v=rmF9pqV8S7suAoZWja4dJRkFsKQ="));        // no exchange yet
}

TEST(PlainMessage, IsAuthzidAuthcidPasswordSeparatedByNul) {
  auto message = plain_message("juliet", "r0m30");
  EXPECT_EQ(message, std::string("\0juliet\0r0m30", 13));
  auto parsed = sasl::parse_plain(message);
  ASSERT_TRUE(std::holds_alternative<sasl::PlainCredentials>(parsed));
  EXPECT_EQ(std::get<sasl::PlainCredentials>(parsed).username, "juliet");
  EXPECT_EQ(std::get<sasl::PlainCredentials>(parsed).password, "r0m30");
}

}  // namespace
}  // namespace parley::bench
