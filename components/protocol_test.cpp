#include "components/protocol.hpp"

#include <gtest/gtest.h>

namespace parley::components {
namespace {

// FIPS 180-2's first SHA-1 vector, split between stream id and secret: the
// digest covers their concatenation, in that order.
TEST(HandshakeDigest, IsLowercaseHexOfSha1OverStreamIdThenSecret) {
  EXPECT_EQ(handshake_digest("a", "bc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(handshake_digest("ab", "c"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(handshake_digest("", ""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_NE(handshake_digest("bc", "a"), handshake_digest("a", "bc"));
}

// XEP-0114 §3's stream id with a secret of our own (computed independently
// with Python's hashlib).
TEST(HandshakeDigest, StreamIdFromTheXep) {
  EXPECT_EQ(handshake_digest("3BF96D32", "Ak8jv!2"), "f70bfa740cac1fe033531474858e4b871f319397");
}

TEST(HandshakeMatches, AcceptsTheDigestInEitherCaseWithSurroundingWhitespace) {
  EXPECT_TRUE(handshake_matches("f70bfa740cac1fe033531474858e4b871f319397", "3BF96D32", "Ak8jv!2"));
  EXPECT_TRUE(handshake_matches("F70BFA740CAC1FE033531474858E4B871F319397", "3BF96D32", "Ak8jv!2"));
  EXPECT_TRUE(handshake_matches("\n  f70bfa740cac1fe033531474858e4b871f319397 \t", "3BF96D32", "Ak8jv!2"));
}

TEST(HandshakeMatches, RefusesAnythingElse) {
  EXPECT_FALSE(handshake_matches("f70bfa740cac1fe033531474858e4b871f319397", "3BF96D32", "wrong"));
  EXPECT_FALSE(handshake_matches("f70bfa740cac1fe033531474858e4b871f319397", "3BF96D33", "Ak8jv!2"));
  EXPECT_FALSE(handshake_matches("f70bfa740cac1fe033531474858e4b871f31939", "3BF96D32", "Ak8jv!2"));
  EXPECT_FALSE(handshake_matches("f70bfa740cac1fe033531474858e4b871f3193970", "3BF96D32", "Ak8jv!2"));
  EXPECT_FALSE(handshake_matches("f70bfa740cac1fe0 33531474858e4b871f319397", "3BF96D32", "Ak8jv!2"));
  EXPECT_FALSE(handshake_matches("", "3BF96D32", "Ak8jv!2"));
  EXPECT_FALSE(handshake_matches("Ak8jv!2", "3BF96D32", "Ak8jv!2"));
}

xml::Element stanza(std::string_view from, std::string_view to) {
  xml::Element message("message");
  if (!from.empty()) message.set_attr("from", std::string(from));
  if (!to.empty()) message.set_attr("to", std::string(to));
  return message;
}

TEST(AddressError, AnyAddressAtTheComponentDomainMaySend) {
  for (const char* from : {"irc.example.org", "#chan%irc.net@irc.example.org", "user@irc.example.org/res",
                           "irc.example.org/bot", "IRC.Example.ORG"}) {
    EXPECT_EQ(address_error(stanza(from, "alice@example.org"), "irc.example.org"), "") << from;
  }
}

TEST(AddressError, MayAddressAnyone) {
  for (const char* to : {"alice@example.org/phone", "example.org", "other.example.org", "bob@remote.test",
                         "irc.example.org", "not a jid@@"}) {
    EXPECT_EQ(address_error(stanza("irc.example.org", to), "irc.example.org"), "") << to;
  }
}

TEST(AddressError, ForeignOrMalformedFromIsInvalidFrom) {
  for (const char* from : {"example.org", "alice@example.org", "sub.irc.example.org", "irc.example.org.evil",
                           "user@other.example.org/irc.example.org", "@irc.example.org", "irc.example.org/"}) {
    EXPECT_EQ(address_error(stanza(from, "alice@example.org"), "irc.example.org"), "invalid-from") << from;
  }
}

TEST(AddressError, MissingAddressesAreImproperAddressing) {
  EXPECT_EQ(address_error(stanza("", "alice@example.org"), "irc.example.org"), "improper-addressing");
  EXPECT_EQ(address_error(stanza("irc.example.org", ""), "irc.example.org"), "improper-addressing");
  EXPECT_EQ(address_error(stanza("", ""), "irc.example.org"), "improper-addressing");
}

}  // namespace
}  // namespace parley::components
