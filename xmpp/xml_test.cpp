#include "xmpp/xml.hpp"

#include <gtest/gtest.h>

#include "xmpp/stream_parser.hpp"

namespace parley::xml {
namespace {

// Parses one top-level element written in a jabber:client stream.
Element reparse(const std::string& serialized) {
  StreamParser parser{std::string(ns_client)};
  FeedResult result = parser.feed(stream_header(ns_client, {}) + serialized);
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.events.size(), 2u);
  if (result.events.size() != 2 || !std::holds_alternative<Element>(result.events[1]))
    return Element();
  return std::get<Element>(result.events[1]);
}

TEST(XmlElement, AttributesAreSetReplacedAndRemoved) {
  Element message("message");
  EXPECT_EQ(message.ns(), ns_client);
  message.set_attr("to", "a@b").set_attr("type", "chat");
  message.set_attr("to", "c@d");
  EXPECT_EQ(message.attr("to"), "c@d");
  ASSERT_EQ(message.attributes().size(), 2u);
  EXPECT_EQ(message.attributes()[0].name, "to");
  EXPECT_TRUE(message.has_attr("type"));
  EXPECT_EQ(message.find_attr("id"), nullptr);
  EXPECT_EQ(message.attr("id"), "");
  message.remove_attr("to");
  EXPECT_FALSE(message.has_attr("to"));
  EXPECT_EQ(message.attributes().size(), 1u);
}

TEST(XmlElement, AddAttrAppends) {
  Element iq("iq");
  iq.add_attr("id", "1").add_attr("type", "get");
  ASSERT_EQ(iq.attributes().size(), 2u);
  EXPECT_EQ(iq.attributes()[1], (Attribute{"type", "get"}));
}

TEST(XmlElement, ChildrenAreFoundByNameAndNamespace) {
  Element iq("iq");
  iq.add_text("  ");
  iq.add_child("query", "jabber:iq:roster")
      .add_child("item", "jabber:iq:roster")
      .set_attr("jid", "x@y");
  iq.add_child("query", "jabber:iq:version");
  EXPECT_EQ(iq.child("query", "jabber:iq:version"), &iq.children()[2]);
  EXPECT_EQ(iq.child("query", "urn:other"), nullptr);
  EXPECT_EQ(iq.child("", "jabber:iq:roster"), &iq.children()[1]);
  EXPECT_EQ(iq.child_in("jabber:iq:version"), &iq.children()[2]);
  EXPECT_EQ(iq.first_child_element(), &iq.children()[1]);
  EXPECT_EQ(iq.child("query", "jabber:iq:roster")->child("item", "jabber:iq:roster")->attr("jid"),
            "x@y");

  Element* mutable_query = iq.child("query", "jabber:iq:roster");
  mutable_query->set_attr("ver", "1");
  EXPECT_EQ(iq.children()[1].attr("ver"), "1");

  iq.remove_children("query", "jabber:iq:roster");
  EXPECT_EQ(iq.children().size(), 2u);
  EXPECT_EQ(iq.child("query", "jabber:iq:roster"), nullptr);
}

TEST(XmlElement, TextIsConcatenatedAndAdjacentTextMerged) {
  Element body("body");
  body.add_text("hello ").add_text("").add_text("world");
  ASSERT_EQ(body.children().size(), 1u);
  EXPECT_TRUE(body.children()[0].is_text());
  EXPECT_EQ(body.children()[0].text(), "hello world");
  body.add_child("b", "urn:x");
  body.add_text("!");
  EXPECT_EQ(body.children().size(), 3u);
  EXPECT_EQ(body.text(), "hello world!");

  Element message("message");
  message.add_child("body", std::string(ns_client)).add_text("hi");
  EXPECT_EQ(message.child_text("body", ns_client), "hi");
  EXPECT_EQ(message.child_text("subject", ns_client), "");

  Element node = Element::text_node("raw");
  EXPECT_TRUE(node.is_text());
  EXPECT_EQ(node.text(), "raw");
}

TEST(XmlEscape, EscapesMarkupAndQuotes) {
  EXPECT_EQ(escape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
  EXPECT_EQ(escape("plain text"), "plain text");
  EXPECT_EQ(escape(""), "");
  EXPECT_EQ(escape("&&"), "&amp;&amp;");
  EXPECT_EQ(escape("tab\tnl\ncr\r"), "tab&#9;nl&#10;cr&#13;");
  std::string out = "x";
  escape_to(out, "<");
  EXPECT_EQ(out, "x&lt;");
}

TEST(XmlSerialize, WritesXmlnsOnlyWhereTheNamespaceChanges) {
  Element message("message");
  message.set_attr("to", "romeo@example.net").set_attr("xml:lang", "en");
  message.add_child("body", std::string(ns_client)).add_text("Art thou not Romeo?");
  Element& x = message.add_child("x", "jabber:x:data");
  x.add_child("field", "jabber:x:data").set_attr("var", "a");
  EXPECT_EQ(serialize(message),
            "<message to='romeo@example.net' xml:lang='en'><body>Art thou not Romeo?</body>"
            "<x xmlns='jabber:x:data'><field var='a'/></x></message>");
}

TEST(XmlSerialize, ParentNamespaceDecidesTheTopLevelXmlns) {
  Element presence("presence");
  EXPECT_EQ(serialize(presence), "<presence/>");
  EXPECT_EQ(serialize(presence, "urn:other"), "<presence xmlns='jabber:client'/>");
  Element starttls("starttls", "urn:ietf:params:xml:ns:xmpp-tls");
  EXPECT_EQ(serialize(starttls), "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  Element unqualified("a", "");
  EXPECT_EQ(serialize(unqualified), "<a xmlns=''/>");
}

TEST(XmlSerialize, StreamNamespaceUsesThePrefix) {
  Element features("features", std::string(ns_streams));
  features.add_child("bind", "urn:ietf:params:xml:ns:xmpp-bind");
  features.add_child("ver", std::string(ns_client));
  EXPECT_EQ(
      serialize(features),
      "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><ver/></stream:features>");
}

TEST(XmlSerialize, EscapesTextAndAttributes) {
  Element body("body");
  body.set_attr("a", "x'y\"z<&>\t\n");
  body.add_text("1 < 2 && 3 > 2 ]]> \"q\" 'a'\nline\r");
  EXPECT_EQ(serialize(body),
            "<body a='x&apos;y&quot;z&lt;&amp;&gt;&#9;&#10;'>"
            "1 &lt; 2 &amp;&amp; 3 &gt; 2 ]]&gt; &quot;q&quot; &apos;a&apos;\nline&#13;</body>");
}

// Every byte, alone and between ordinary runs, against the rules spelled out
// one character at a time.
TEST(XmlSerialize, EscapesEveryByteLikeTheCharacterRules) {
  auto expected = [](std::string_view text, bool attribute) {
    std::string out;
    for (char c : text) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        case '\r': out += "&#13;"; break;
        case '\n': out += attribute ? "&#10;" : "\n"; break;
        case '\t': out += attribute ? "&#9;" : "\t"; break;
        default: out += c;
      }
    }
    return out;
  };
  for (int byte = 1; byte < 256; ++byte) {
    const char c = static_cast<char>(byte);
    const std::string text = "ab" + std::string(1, c) + "cd" + std::string(2, c);
    Element element("e");
    element.set_attr("v", text);
    element.add_text(text);
    EXPECT_EQ(serialize(element), "<e v='" + expected(text, true) + "'>" + expected(text, false) + "</e>") << byte;
    EXPECT_EQ(escape(text), expected(text, true)) << byte;
  }
}

TEST(XmlSerialize, UnescapedSizeCoversWhatNeedsNoEscaping) {
  Element message("message");
  message.set_attr("to", "juliet@example.com/balcony").set_attr("type", "chat");
  message.add_child("body", std::string(ns_client)).add_text("Wherefore art thou?");
  message.add_child("active", "http://jabber.org/protocol/chatstates");
  EXPECT_GE(unescaped_size(message), serialize(message).size());
  EXPECT_LE(unescaped_size(message), serialize(message).size() + 64);
}

TEST(XmlSerialize, RoundTripsThroughTheParser) {
  Element message("message");
  message.set_attr("to", "juliet@example.com/balcony")
      .set_attr("id", "<&'\">")
      .set_attr("xml:lang", "fr")
      .set_attr("weird", "tab\there\nnewline\rcr");
  message.add_child("body", std::string(ns_client))
      .add_text("a < b & c > d \"quoted\" 'single' \r\n\t ☃ 𝄞");
  Element& payload = message.add_child("payload", "urn:example:payload");
  payload.add_child("inner", "urn:example:payload").add_text("]]>");
  payload.add_child("other", "urn:example:other").add_child("deep", "urn:example:other");
  payload.add_child("back", std::string(ns_client));
  payload.add_child("none", "");
  message.add_child("features", std::string(ns_streams)).add_child("x", "urn:x");

  EXPECT_EQ(reparse(serialize(message)), message);
}

TEST(XmlStreamHeader, DeclaresBothNamespacesAndEscapesAttributes) {
  std::vector<Attribute> attrs{
      {"from", "example.com"}, {"id", "a'b"}, {"version", "1.0"}, {"xml:lang", "en"}};
  EXPECT_EQ(stream_header(ns_client, attrs),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' from='example.com' id='a&apos;b' "
            "version='1.0' xml:lang='en'>");
  std::vector<Attribute> server_attrs{{"xmlns:db", "jabber:server:dialback"}};
  EXPECT_EQ(stream_header(ns_server, server_attrs),
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
            "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>");
}

TEST(XmlStreamHeader, IsAcceptedByTheParser) {
  StreamParser parser{std::string(ns_server)};
  FeedResult result =
      parser.feed(stream_header(ns_server, {{"xmlns:db", "jabber:server:dialback"}, {"to", "b"}}) +
                  "<db:result from='a' to='b'>key</db:result>" + std::string(stream_footer));
  ASSERT_EQ(result.error, "");
  ASSERT_EQ(result.events.size(), 3u);
  const Element& header = std::get<StreamOpen>(result.events[0]).header;
  EXPECT_EQ(header.attr("to"), "b");
  EXPECT_FALSE(header.has_attr("xmlns:db"));
  const Element& dialback = std::get<Element>(result.events[1]);
  EXPECT_TRUE(dialback.is("result", "jabber:server:dialback"));
  EXPECT_EQ(dialback.text(), "key");
  EXPECT_TRUE(std::holds_alternative<StreamClose>(result.events[2]));
}

}  // namespace
}  // namespace parley::xml
