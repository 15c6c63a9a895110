#include "xmpp/jid.hpp"

#include <gtest/gtest.h>
#include <stringprep.h>

#include <unordered_set>

namespace parley::xmpp {
namespace {

struct ValidCase {
  std::string input;
  std::string local;
  std::string domain;
  std::string resource;
};

const std::vector<ValidCase> valid_cases = {
    {"example.com", "", "example.com", ""},
    {"juliet@example.com", "juliet", "example.com", ""},
    {"juliet@example.com/foo", "juliet", "example.com", "foo"},
    {"juliet@example.com/foo bar", "juliet", "example.com", "foo bar"},
    {"juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"},
    {"foo\\20bar@example.com", "foo\\20bar", "example.com", ""},
    {"example.com/foobar", "", "example.com", "foobar"},
    {"a.example.com/b@example.net", "", "a.example.com", "b@example.net"},
    {"a@b/c/d", "a", "b", "c/d"},
    {"a@b/c@d", "a", "b", "c@d"},
    // Normalisation: localpart and domain are case-folded, the resource is not.
    {"JULIET@EXAMPLE.COM/Balcony", "juliet", "example.com", "Balcony"},
    {"Juliet@Example.Com.", "juliet", "example.com", ""},
    {"example.com./r", "", "example.com", "r"},
    // Unicode.
    {"\xc3\xa9lise@example.com", "\xc3\xa9lise", "example.com", ""},  // élise
    {"\xc3\x89LISE@EXAMPLE.COM", "\xc3\xa9lise", "example.com", ""},  // ÉLISE
    {"stra\u00dfe@b", "strasse", "b", ""},                            // ß case-folds to ss
    {"\xe2\x99\x9a@example.com", "\xe2\x99\x9a", "example.com", ""},  // ♚
    {"x@\xc3\xa9xample.com", "x", "\xc3\xa9xample.com", ""},          // IDN domain as UTF-8
    {"x@\xc3\x89XAMPLE.COM", "x", "\xc3\xa9xample.com", ""},
    {"x@example.com/\xe2\x99\x9a", "x", "example.com", "\xe2\x99\x9a"},
    {"x@example.com/\xef\xbc\xa1", "x", "example.com", "A"},  // fullwidth A, NFKC
    {"so\u00adft@example.com", "soft", "example.com", ""},    // soft hyphen dropped
    // IP literals.
    {"a@127.0.0.1", "a", "127.0.0.1", ""},
    {"a@[::1]/r", "a", "[::1]", "r"},
    {"[2001:DB8::1]", "", "[2001:db8::1]", ""},
    {"svc_1.example-2.com", "", "svc_1.example-2.com", ""},
    // Lengths: 1023 bytes per part are allowed.
    {std::string(1023, 'a') + "@" + std::string(1023, 'b') + "/" + std::string(1023, 'c'),
     std::string(1023, 'a'), std::string(1023, 'b'), std::string(1023, 'c')},
};

const std::vector<std::string> invalid_cases = {
    "",
    "@",
    "/",
    "@b",
    "a@",
    "a@/r",
    "a@b/",
    "/r",
    "@b/r",
    "b/",
    ".",
    "a@.",
    "example..com",
    ".example.com",
    "example.com..",
    "a@b@c",
    "a b@example.com",
    "a\"b@example.com",
    "a&b@example.com",
    "a'b@example.com",
    "a:b@example.com",
    "a<b@example.com",
    "a>b@example.com",
    "a@b c",
    "a@b<c",
    "a@exa\xc2\xa0mple.com",       // non-ASCII space in the domain
    "a@example.com/\x01",          // control character in the resource
    "a\x7f@example.com",           // DEL in the localpart
    "\xc2\xa0@example.com",        // non-ASCII space in the localpart
    "a@example\xef\xbc\xa0x.com",  // fullwidth '@' becomes '@' under NFKC
    "a@example.com/\u200ex",       // left-to-right mark is prohibited
    "\u0627a@example.com",         // bidi: RandALCat mixed with LCat
    "\xff@example.com",            // invalid UTF-8
    "a@ex\xc3\x28.com",
    "a@example.com/\xed\xa0\x80",  // surrogate encoded in UTF-8
    "\xc2\xad@example.com",        // localpart that prepares to nothing
    "a@[::1",
    "a@[not-an-address]",
    "a@[127.0.0.1]",
    std::string(1024, 'a') + "@example.com",
    "a@" + std::string(1024, 'b'),
    "a@b/" + std::string(1024, 'c'),
    // 512 x "ß" is 1024 bytes but case-folds to 1024 bytes of "ss": still too long.
    [] {
      std::string local;
      for (int i = 0; i < 512; ++i) local += "\xc3\x9f";
      return local + "@example.com";
    }(),
    std::string(100000, 'a') + "@example.com",
};

TEST(Jid, ParsesAndNormalisesValidVectors) {
  for (const ValidCase& vector : valid_cases) {
    std::optional<Jid> jid = Jid::parse(vector.input);
    ASSERT_TRUE(jid.has_value()) << vector.input;
    EXPECT_EQ(jid->local(), vector.local) << vector.input;
    EXPECT_EQ(jid->domain(), vector.domain) << vector.input;
    EXPECT_EQ(jid->resource(), vector.resource) << vector.input;
    // The normalised form is a fixed point.
    std::optional<Jid> again = Jid::parse(jid->str());
    ASSERT_TRUE(again.has_value()) << jid->str();
    EXPECT_EQ(*again, *jid);
  }
}

TEST(Jid, RefusesInvalidVectors) {
  for (const std::string& input : invalid_cases) {
    EXPECT_FALSE(Jid::parse(input).has_value()) << input.substr(0, 60);
  }
}

TEST(Jid, ParsesEmbeddedNulAsInvalid) {
  EXPECT_FALSE(Jid::parse(std::string("a\0b@example.com", 15)).has_value());
  EXPECT_FALSE(Jid::parse(std::string("a@example.com/x\0y", 17)).has_value());
}

TEST(Jid, StringFormsAndAccessors) {
  Jid full = *Jid::parse("Romeo@Example.net/Orchard");
  EXPECT_EQ(full.str(), "romeo@example.net/Orchard");
  EXPECT_EQ(full.bare_str(), "romeo@example.net");
  EXPECT_FALSE(full.is_bare());
  EXPECT_FALSE(full.is_domain());
  EXPECT_FALSE(full.empty());

  Jid bare = full.bare();
  EXPECT_EQ(bare.str(), "romeo@example.net");
  EXPECT_TRUE(bare.is_bare());
  EXPECT_EQ(bare, *Jid::parse("romeo@example.net"));

  Jid domain = *Jid::parse("example.net");
  EXPECT_TRUE(domain.is_domain());
  EXPECT_EQ(domain.str(), "example.net");
  EXPECT_EQ(domain.bare_str(), "example.net");
  EXPECT_EQ(Jid::parse("example.net/r")->str(), "example.net/r");

  Jid none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.str(), "");
}

TEST(Jid, FromPartsNormalisesEachPart) {
  std::optional<Jid> jid = Jid::from_parts("Juliet", "Example.COM", "Balcony");
  ASSERT_TRUE(jid.has_value());
  EXPECT_EQ(jid->str(), "juliet@example.com/Balcony");
  EXPECT_EQ(Jid::from_parts("", "example.com")->str(), "example.com");
  // Parts are taken as they are, so separators in them are not reinterpreted.
  EXPECT_FALSE(Jid::from_parts("a@b", "example.com").has_value());
  EXPECT_FALSE(Jid::from_parts("a/b", "example.com").has_value());
  EXPECT_FALSE(Jid::from_parts("a", "b@example.com").has_value());
  EXPECT_FALSE(Jid::from_parts("a", "example.com/x").has_value());
  EXPECT_EQ(Jid::from_parts("a", "example.com", "x/y@z")->resource(), "x/y@z");
  EXPECT_FALSE(Jid::from_parts("a", "").has_value());
  EXPECT_FALSE(Jid::from_parts("a b", "example.com").has_value());
}

TEST(Jid, WithResource) {
  Jid bare = *Jid::parse("juliet@example.com/old");
  std::optional<Jid> full = bare.with_resource("New Phone");
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->str(), "juliet@example.com/New Phone");
  EXPECT_FALSE(bare.with_resource("").has_value());
  EXPECT_FALSE(bare.with_resource("\x01").has_value());
  EXPECT_FALSE(bare.with_resource(std::string(1024, 'r')).has_value());
  EXPECT_FALSE(Jid().with_resource("r").has_value());
}

TEST(Jid, HashFollowsEquality) {
  std::unordered_set<Jid> set;
  set.insert(*Jid::parse("A@B/c"));
  set.insert(*Jid::parse("a@b/c"));
  set.insert(*Jid::parse("a@b/C"));
  EXPECT_EQ(set.size(), 2u);
}

// The ASCII shortcuts must agree with libidn's profiles for every character.
std::optional<std::string> libidn(std::string_view input, const Stringprep_profile* profile) {
  std::string buffer(input);
  buffer.resize(64, '\0');
  if (stringprep(buffer.data(), buffer.size(), Stringprep_profile_flags(0), profile) !=
      STRINGPREP_OK) {
    return std::nullopt;
  }
  return std::string(buffer.c_str());
}

TEST(Jid, AsciiPreparationMatchesLibidn) {
  for (int c = 1; c < 0x80; ++c) {
    std::string input = std::string("aB") + static_cast<char>(c) + "z";
    SCOPED_TRACE(c);
    EXPECT_EQ(nodeprep(input), libidn(input, stringprep_xmpp_nodeprep));
    EXPECT_EQ(resourceprep(input), libidn(input, stringprep_xmpp_resourceprep));
    std::optional<std::string> domain = nameprep(input);
    if (domain) {
      EXPECT_EQ(domain, libidn(input, stringprep_nameprep));
    }
  }
}

// from_parts copies parts that are already prepared; whatever it returns
// must be exactly what the part functions give, for every byte in every
// position and at the length limit.
std::optional<Jid> through_part_functions(std::string_view local, std::string_view domain,
                                          std::string_view resource) {
  std::optional<std::string> prepared_local = local.empty() ? std::optional<std::string>("") : nodeprep(local);
  std::optional<std::string> prepared_domain = nameprep(domain);
  std::optional<std::string> prepared_resource =
      resource.empty() ? std::optional<std::string>("") : resourceprep(resource);
  if (!prepared_local || !prepared_domain || !prepared_resource) return std::nullopt;
  std::string text = prepared_local->empty() ? *prepared_domain : *prepared_local + "@" + *prepared_domain;
  if (!prepared_resource->empty()) text += "/" + *prepared_resource;
  std::optional<Jid> jid = Jid::parse(text);
  EXPECT_TRUE(jid.has_value()) << text;
  if (jid) {
    EXPECT_EQ(jid->local(), *prepared_local);
    EXPECT_EQ(jid->domain(), *prepared_domain);
    EXPECT_EQ(jid->resource(), *prepared_resource);
  }
  return jid;
}

TEST(Jid, PreparedPartsGiveWhatThePartFunctionsGive) {
  for (int byte = 0; byte < 256; ++byte) {
    const std::string c(1, static_cast<char>(byte));
    SCOPED_TRACE(byte);
    for (const std::string& part : {"ab" + c + "z", c + "ab", "ab" + c, c}) {
      EXPECT_EQ(Jid::from_parts(part, "example.com", "desk"), through_part_functions(part, "example.com", "desk"));
      EXPECT_EQ(Jid::from_parts("user", part, "desk"), through_part_functions("user", part, "desk"));
      EXPECT_EQ(Jid::from_parts("user", "a." + part, "desk"), through_part_functions("user", "a." + part, "desk"));
      EXPECT_EQ(Jid::from_parts("user", "example.com", part), through_part_functions("user", "example.com", part));
    }
  }
}

TEST(Jid, PreparedPartEdges) {
  const std::string longest(1023, 'a');
  const std::string too_long(1024, 'a');
  EXPECT_EQ(Jid::from_parts(longest, "example.com", longest)->local(), longest);
  EXPECT_EQ(Jid::from_parts(too_long, "example.com"), std::nullopt);
  EXPECT_EQ(Jid::from_parts("user", "example.com", too_long), std::nullopt);
  EXPECT_EQ(Jid::from_parts("user", longest + ".b"), std::nullopt);
  EXPECT_EQ(Jid::parse("user@example.com.")->domain(), "example.com");
  EXPECT_EQ(Jid::parse("user@.example.com"), std::nullopt);
  EXPECT_EQ(Jid::parse("user@example..com"), std::nullopt);
  EXPECT_EQ(Jid::parse("user@."), std::nullopt);
  EXPECT_EQ(Jid::parse("User@Example.com/Desk")->str(), "user@example.com/Desk");
  EXPECT_EQ(Jid::parse("user@example.com/a b")->resource(), "a b");
  EXPECT_EQ(Jid::parse("user@example.com/a\x7f"), std::nullopt);
  EXPECT_EQ(Jid::parse("us\x7f" "er@example.com"), std::nullopt);
  EXPECT_EQ(Jid::parse("us er@example.com"), std::nullopt);
  EXPECT_EQ(Jid::parse("user@[::1]/r")->domain(), "[::1]");
  EXPECT_EQ(Jid::parse("user@exa_mple-1.com/r")->domain(), "exa_mple-1.com");
}

TEST(Jid, PartFunctions) {
  EXPECT_EQ(nodeprep("User"), "user");
  EXPECT_EQ(nodeprep(""), std::nullopt);
  EXPECT_EQ(nameprep("Example.COM."), "example.com");
  EXPECT_EQ(nameprep(""), std::nullopt);
  EXPECT_EQ(nameprep("."), std::nullopt);
  EXPECT_EQ(resourceprep("Mixed Case"), "Mixed Case");
  EXPECT_EQ(resourceprep(""), std::nullopt);
}

}  // namespace
}  // namespace parley::xmpp
