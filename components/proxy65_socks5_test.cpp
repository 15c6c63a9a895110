#include "components/proxy65_socks5.hpp"

#include <gtest/gtest.h>

namespace parley::components::proxy65 {
namespace {

using namespace std::string_literals;

// XEP-0065's example sid and JIDs (digest computed independently with Python's hashlib).
constexpr std::string_view example_hash = "98b8d688d0f5d895fd41c5e7309a2e9e33ba32ff";

std::string greeting(std::string methods) { return "\x05"s + static_cast<char>(methods.size()) + methods; }

std::string connect_request(std::string_view address, char command = 0x01, char type = 0x03) {
  return "\x05"s + command + '\0' + type + static_cast<char>(address.size()) + std::string(address) + "\0\0"s;
}

std::string success_reply(std::string_view hash) {
  return "\x05\x00\x00\x03"s + static_cast<char>(hash.size()) + std::string(hash) + "\0\0"s;
}

std::string failure_reply(char code) { return "\x05"s + code + "\x00\x01\x00\x00\x00\x00\x00\x00"s; }

TEST(StreamHash, IsLowerHexSha1OfSidRequesterAndTarget) {
  EXPECT_EQ(stream_hash("vxf9n471bn46", "requester@example.com/foo", "target@example.org/bar"), example_hash);
  EXPECT_NE(stream_hash("vxf9n471bn46", "target@example.org/bar", "requester@example.com/foo"), example_hash);
}

TEST(Negotiation, AcceptsGreetingAndConnectInOneChunk) {
  Negotiation negotiation;
  std::string output;
  const std::string input = greeting("\x02\x00"s) + connect_request(example_hash);
  EXPECT_EQ(negotiation.feed(input, output), input.size());
  EXPECT_EQ(output, "\x05\x00"s);
  ASSERT_EQ(negotiation.state(), Negotiation::State::accepted);
  EXPECT_EQ(negotiation.address(), example_hash);
  EXPECT_EQ(negotiation.wanted(), 0u);
  EXPECT_EQ(negotiation.reply(Reply::succeeded), success_reply(example_hash));
  EXPECT_EQ(negotiation.reply(Reply::not_allowed)[1], '\x02');
}

TEST(Negotiation, AcceptsOneByteAtATime) {
  Negotiation negotiation;
  std::string output;
  const std::string input = greeting("\x00"s) + connect_request(example_hash);
  for (char byte : input) {
    ASSERT_GT(negotiation.wanted(), 0u);
    ASSERT_EQ(negotiation.feed(std::string_view(&byte, 1), output), 1u);
  }
  EXPECT_EQ(output, "\x05\x00"s);
  EXPECT_EQ(negotiation.state(), Negotiation::State::accepted);
  EXPECT_EQ(negotiation.address(), example_hash);
}

// Reading exactly wanted() bytes each time consumes the whole negotiation
// and nothing after it.
TEST(Negotiation, WantedNeverReachesPastTheRequest) {
  Negotiation negotiation;
  std::string output;
  const std::string input = greeting("\x01\x02\x00"s) + connect_request(example_hash) + "early data";
  std::size_t offset = 0;
  while (negotiation.wanted() > 0) {
    const auto n = negotiation.wanted();
    ASSERT_EQ(negotiation.feed(std::string_view(input).substr(offset, n), output), n);
    offset += n;
  }
  EXPECT_EQ(negotiation.state(), Negotiation::State::accepted);
  EXPECT_EQ(input.substr(offset), "early data");
}

TEST(Negotiation, StopsConsumingOnceAccepted) {
  Negotiation negotiation;
  std::string output;
  const std::string request = greeting("\x00"s) + connect_request(example_hash);
  EXPECT_EQ(negotiation.feed(request + "trailing", output), request.size());
}

TEST(Negotiation, UpperCaseHashIsNormalised) {
  Negotiation negotiation;
  std::string output;
  std::string upper(example_hash);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  negotiation.feed(greeting("\x00"s) + connect_request(upper), output);
  ASSERT_EQ(negotiation.state(), Negotiation::State::accepted);
  EXPECT_EQ(negotiation.address(), example_hash);
  // The reply echoes the normalised address.
  EXPECT_EQ(negotiation.reply(Reply::succeeded), success_reply(example_hash));
}

struct Refusal {
  std::string name;
  std::string input;
  std::string expected_output;
};

class NegotiationRefuses : public testing::TestWithParam<Refusal> {};

TEST_P(NegotiationRefuses, WithTheRightReplyAndStopsReading) {
  const auto& refusal = GetParam();
  Negotiation negotiation;
  std::string output;
  const std::string input = refusal.input + "more bytes that must stay unread";
  const auto consumed = negotiation.feed(input, output);
  EXPECT_EQ(negotiation.state(), Negotiation::State::failed);
  EXPECT_FALSE(negotiation.error().empty());
  EXPECT_EQ(output, refusal.expected_output);
  EXPECT_EQ(consumed, refusal.input.size());
  EXPECT_EQ(negotiation.wanted(), 0u);
  // Nothing more is taken once failed.
  std::string later;
  EXPECT_EQ(negotiation.feed("\x05\x01\x00"s, later), 0u);
  EXPECT_TRUE(later.empty());
}

const std::string accepted_greeting = greeting("\x00"s);
const std::string method_chosen = "\x05\x00"s;

INSTANTIATE_TEST_SUITE_P(
    MalformedInput, NegotiationRefuses,
    testing::Values(
        Refusal{"Socks4Greeting", "\x04\x01"s, ""},
        Refusal{"HttpRequest", "GE"s, ""},
        Refusal{"NoMethods", "\x05\x00"s, "\x05\xff"s},
        Refusal{"OnlyUsernamePassword", greeting("\x02"s), "\x05\xff"s},
        Refusal{"OnlyGssapiAndPrivateMethods", greeting("\x01\x80\xfe"s), "\x05\xff"s},
        Refusal{"RequestOfWrongVersion", accepted_greeting + "\x04\x01\x00\x03"s,
                method_chosen + failure_reply('\x01')},
        Refusal{"BindCommand", accepted_greeting + "\x05\x02\x00\x03"s, method_chosen + failure_reply('\x07')},
        Refusal{"UdpAssociate", accepted_greeting + "\x05\x03\x00\x03"s, method_chosen + failure_reply('\x07')},
        Refusal{"Ipv4Address", accepted_greeting + "\x05\x01\x00\x01"s, method_chosen + failure_reply('\x08')},
        Refusal{"Ipv6Address", accepted_greeting + "\x05\x01\x00\x04"s, method_chosen + failure_reply('\x08')},
        Refusal{"UnknownAddressType", accepted_greeting + "\x05\x01\x00\x07"s, method_chosen + failure_reply('\x08')},
        Refusal{"ShortAddress", accepted_greeting + "\x05\x01\x00\x03\x27"s, method_chosen + failure_reply('\x01')},
        Refusal{"OversizeAddress", accepted_greeting + "\x05\x01\x00\x03\xff"s, method_chosen + failure_reply('\x01')},
        Refusal{"EmptyAddress", accepted_greeting + "\x05\x01\x00\x03\x00"s, method_chosen + failure_reply('\x01')},
        Refusal{"AddressNotHex", accepted_greeting + connect_request(std::string(39, 'a') + "g"),
                method_chosen + failure_reply('\x01')}),
    [](const testing::TestParamInfo<Refusal>& info) { return info.param.name; });

TEST(Negotiation, EarlyEndLeavesItWaiting) {
  Negotiation negotiation;
  std::string output;
  const std::string input = greeting("\x00"s) + connect_request(example_hash);
  negotiation.feed(std::string_view(input).substr(0, input.size() - 3), output);
  EXPECT_EQ(negotiation.state(), Negotiation::State::request);
  EXPECT_EQ(negotiation.wanted(), 3u);
  EXPECT_TRUE(negotiation.address().empty());
}

}  // namespace
}  // namespace parley::components::proxy65
