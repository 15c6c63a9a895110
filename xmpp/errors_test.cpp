#include "xmpp/errors.hpp"

#include <gtest/gtest.h>

namespace parley::xmpp {
namespace {

using xml::Element;

TEST(StreamError, SerialisesWithTheStreamPrefix) {
  Element error = stream_error("host-unknown");
  EXPECT_TRUE(error.is("error", xml::ns_streams));
  EXPECT_EQ(
      xml::serialize(error),
      "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
}

TEST(StreamError, CarriesEscapedText) {
  Element error = stream_error("policy-violation", "too big & <bad>");
  EXPECT_EQ(xml::serialize(error),
            "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>too big &amp; "
            "&lt;bad&gt;</text></stream:error>");
  EXPECT_EQ(error.child_text("text", ns_stream_errors), "too big & <bad>");
}

TEST(StanzaErrorType, FollowsRfc6120) {
  const std::vector<std::pair<std::string, std::string>> table = {
      {"bad-request", "modify"},
      {"conflict", "cancel"},
      {"feature-not-implemented", "cancel"},
      {"forbidden", "auth"},
      {"gone", "cancel"},
      {"internal-server-error", "cancel"},
      {"item-not-found", "cancel"},
      {"jid-malformed", "modify"},
      {"not-acceptable", "modify"},
      {"not-allowed", "cancel"},
      {"not-authorized", "auth"},
      {"policy-violation", "modify"},
      {"recipient-unavailable", "wait"},
      {"redirect", "modify"},
      {"registration-required", "auth"},
      {"remote-server-not-found", "cancel"},
      {"remote-server-timeout", "wait"},
      {"resource-constraint", "wait"},
      {"service-unavailable", "cancel"},
      {"subscription-required", "auth"},
      {"undefined-condition", "cancel"},
      {"unexpected-request", "wait"},
  };
  for (const auto& [condition, type] : table)
    EXPECT_EQ(stanza_error_type(condition), type) << condition;
  EXPECT_EQ(stanza_error_type("no-such-condition"), "cancel");
}

Element sample_message() {
  Element message("message");
  message.set_attr("from", "juliet@example.com/balcony")
      .set_attr("to", "romeo@example.net")
      .set_attr("id", "m1")
      .set_attr("type", "chat")
      .set_attr("xml:lang", "en");
  message.add_child("body", std::string(xml::ns_client)).add_text("hi");
  return message;
}

TEST(StanzaError, MessageKeepsPayloadAndSwapsAddresses) {
  Element error = stanza_error(sample_message(), "service-unavailable");
  EXPECT_EQ(
      xml::serialize(error),
      "<message id='m1' to='juliet@example.com/balcony' from='romeo@example.net' type='error' "
      "xml:lang='en'><body>hi</body><error type='cancel'>"
      "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
  EXPECT_TRUE(is_error_stanza(error));
  EXPECT_EQ(stanza_error_condition(error), "service-unavailable");
}

TEST(StanzaError, IqDropsPayloadAndTakesTextTypeAndBy) {
  Element iq("iq");
  iq.set_attr("id", "q1").set_attr("type", "get").set_attr("from", "a@b/c");
  iq.add_child("query", "jabber:iq:version");
  Element error = stanza_error(iq, "not-allowed", "no <way>", "auth", "b");
  EXPECT_EQ(xml::serialize(error),
            "<iq id='q1' to='a@b/c' type='error'><error type='auth' by='b'>"
            "<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no &lt;way&gt;</text></error></iq>");
  EXPECT_EQ(stanza_error_condition(error), "not-allowed");
}

TEST(StanzaError, PresenceKeepsItsName) {
  Element presence("presence");
  presence.set_attr("to", "room@muc.example.com/nick");
  presence.add_child("x", "http://jabber.org/protocol/muc");
  Element error = stanza_error(presence, "conflict");
  EXPECT_EQ(error.name(), "presence");
  EXPECT_EQ(error.attr("from"), "room@muc.example.com/nick");
  EXPECT_FALSE(error.has_attr("to"));
  EXPECT_FALSE(error.has_attr("id"));
  EXPECT_NE(error.child("x", "http://jabber.org/protocol/muc"), nullptr);
  EXPECT_EQ(error.child("error", xml::ns_client)->attr("type"), "cancel");
}

TEST(StanzaError, IsErrorStanza) {
  EXPECT_FALSE(is_error_stanza(sample_message()));
  Element error("message");
  error.set_attr("type", "error");
  EXPECT_TRUE(is_error_stanza(error));
  EXPECT_EQ(stanza_error_condition(error), "");
  EXPECT_EQ(stanza_error_condition(sample_message()), "");
}

TEST(StanzaError, ConditionSkipsTextAndOtherNamespaces) {
  Element stanza("iq");
  stanza.set_attr("type", "error");
  Element& error = stanza.add_child("error", std::string(xml::ns_client));
  error.add_child("text", std::string(ns_stanza_errors)).add_text("first");
  error.add_child("app-specific", "urn:example:app");
  error.add_child("item-not-found", std::string(ns_stanza_errors));
  EXPECT_EQ(stanza_error_condition(stanza), "item-not-found");
}

TEST(IqResult, AnswersWithoutPayload) {
  Element iq("iq");
  iq.set_attr("id", "r1").set_attr("type", "set").set_attr("from", "a@b/c").set_attr("to", "b");
  iq.add_child("query", "jabber:iq:roster");
  Element result = iq_result(iq);
  EXPECT_EQ(xml::serialize(result), "<iq id='r1' to='a@b/c' from='b' type='result'/>");
}

}  // namespace
}  // namespace parley::xmpp
