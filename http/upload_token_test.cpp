#include "http/upload_token.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace parley::http {
namespace {

const SlotClaim claim{"0123456789abcdef0123456789abcdef/photo.jpg", 5000000, "image/jpeg", 2000};

TEST(UploadToken, SignedTokenVerifiesUntilItExpires) {
  const auto token = sign_slot("secret", claim);
  EXPECT_TRUE(token.starts_with("2000."));
  EXPECT_TRUE(verify_slot("secret", claim, token, 1000));
  EXPECT_TRUE(verify_slot("secret", claim, token, 2000));
  EXPECT_FALSE(verify_slot("secret", claim, token, 2001));
}

TEST(UploadToken, BoundToPathSizeContentTypeAndSecret) {
  const auto token = sign_slot("secret", claim);
  auto other = claim;
  other.path = "0123456789abcdef0123456789abcdef/photo.png";
  EXPECT_FALSE(verify_slot("secret", other, token, 1000));
  other = claim;
  other.size = 5000001;
  EXPECT_FALSE(verify_slot("secret", other, token, 1000));
  other = claim;
  other.content_type = "text/html";
  EXPECT_FALSE(verify_slot("secret", other, token, 1000));
  EXPECT_FALSE(verify_slot("another secret", claim, token, 1000));
}

TEST(UploadToken, ExtendedExpiryIsRefused) {
  const auto token = sign_slot("secret", claim);
  const auto mac = token.substr(token.find('.'));
  EXPECT_FALSE(verify_slot("secret", claim, "9999" + mac, 1000));
}

TEST(UploadToken, MalformedTokensAreRefused) {
  const auto token = sign_slot("secret", claim);
  for (const std::string& bad :
       std::vector<std::string>{"", ".", "2000", "2000.", ".abc", "x2000." + token.substr(5), "-1." + token.substr(5),
                                token.substr(0, token.size() - 1), token + "0", "2000 ." + token.substr(5)}) {
    EXPECT_FALSE(verify_slot("secret", claim, bad, 1000)) << bad;
  }
}

TEST(UploadToken, FieldsCannotBeShiftedIntoEachOther) {
  // Without length prefixes "a/b" + "1" and "a/b1" + "" could sign alike.
  const SlotClaim first{"a/b", 1, "x/y", 2000};
  const SlotClaim second{"a/b1", 1, "x/y", 2000};
  EXPECT_NE(sign_slot("s", first), sign_slot("s", second));
}

TEST(UploadToken, BearerTokenOfAnAuthorizationHeader) {
  EXPECT_EQ(bearer_token("Bearer abc.def"), "abc.def");
  EXPECT_EQ(bearer_token("bearer  abc.def "), "abc.def");
  EXPECT_EQ(bearer_token("Basic abc"), "");
  EXPECT_EQ(bearer_token("Bearer"), "");
  EXPECT_EQ(bearer_token(""), "");
}

}  // namespace
}  // namespace parley::http
