#include "s2s/dialback.hpp"

#include <gtest/gtest.h>

namespace parley::s2s {
namespace {

// XEP-0185 §3: the example's secret, domains, stream id and key.
constexpr std::string_view secret = "s3cr3tf0rd14lb4ck";
constexpr std::string_view receiving = "xmpp.example.com";
constexpr std::string_view originating = "example.org";
constexpr std::string_view stream_id = "D60000229F";
constexpr std::string_view expected = "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643";

TEST(DialbackKey, MatchesTheXep0185Example) {
  EXPECT_EQ(dialback_key(secret, receiving, originating, stream_id), expected);
}

TEST(DialbackKey, DependsOnEveryInput) {
  EXPECT_NE(dialback_key("another secret", receiving, originating, stream_id), expected);
  EXPECT_NE(dialback_key(secret, originating, receiving, stream_id), expected);
  EXPECT_NE(dialback_key(secret, receiving, originating, "D60000229E"), expected);
  // The separating spaces keep "a.b c" and "a b.c" apart.
  EXPECT_NE(dialback_key(secret, "example.inform", "example.org", "x"),
            dialback_key(secret, "example.in", "form.example.org", "x"));
}

TEST(DialbackKey, VerificationAcceptsOnlyTheRightKey) {
  EXPECT_TRUE(dialback_key_matches(secret, receiving, originating, stream_id, expected));
  EXPECT_TRUE(dialback_key_matches(secret, receiving, originating, stream_id, "\n  " + std::string(expected) + "\n"));
  EXPECT_FALSE(dialback_key_matches(secret, receiving, originating, stream_id, std::string(expected).substr(1)));
  EXPECT_FALSE(dialback_key_matches(secret, receiving, originating, stream_id, ""));
  EXPECT_FALSE(dialback_key_matches(secret, originating, receiving, stream_id, expected));
  EXPECT_FALSE(
      dialback_key_matches(secret, receiving, originating, "", dialback_key(secret, receiving, originating, "")));
}

}  // namespace
}  // namespace parley::s2s
