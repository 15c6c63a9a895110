#include "xmpp/stream_parser.hpp"

#include <gtest/gtest.h>

namespace parley::xml {
namespace {

const std::string client_open =
    "<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>";

std::string client_stream(const std::string& body) { return client_open + body; }

// Feeds bytes in chunks of chunk_size and gathers every event; stops at the first error.
FeedResult feed_in_chunks(StreamParser& parser, std::string_view bytes, std::size_t chunk_size) {
  FeedResult all;
  while (!bytes.empty()) {
    std::size_t size = std::min(chunk_size, bytes.size());
    FeedResult part = parser.feed(bytes.substr(0, size));
    bytes.remove_prefix(size);
    for (StreamEvent& event : part.events) all.events.push_back(std::move(event));
    if (!part.error.empty()) {
      all.error = part.error;
      break;
    }
  }
  return all;
}

std::string feed_error(const std::string& bytes,
                       const std::string& content_ns = std::string(ns_client)) {
  StreamParser parser(content_ns);
  return parser.feed(bytes).error;
}

const Element& element_at(const FeedResult& result, std::size_t index) {
  return std::get<Element>(result.events.at(index));
}

// A readable rendering of events, for comparisons whose failures show what differed.
std::string describe(const std::vector<StreamEvent>& events) {
  std::string text;
  for (const StreamEvent& event : events) {
    if (const auto* open = std::get_if<StreamOpen>(&event)) {
      text += "open " + serialize(open->header) + "\n";
    } else if (const auto* element = std::get_if<Element>(&event)) {
      text += serialize(*element) + "\n";
    } else {
      text += "close\n";
    }
  }
  return text;
}

// Structural equality: unlike describe(), it also tells apart trees that
// serialise alike (split text nodes, say).
bool same_events(const std::vector<StreamEvent>& a, const std::vector<StreamEvent>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].index() != b[i].index()) return false;
    if (const auto* open = std::get_if<StreamOpen>(&a[i]);
        open && !(open->header == std::get<StreamOpen>(b[i]).header)) {
      return false;
    }
    if (const auto* element = std::get_if<Element>(&a[i]);
        element && !(*element == std::get<Element>(b[i]))) {
      return false;
    }
  }
  return true;
}

const std::string sample_stream = client_stream(
    "<message to='juliet@example.com' type='chat' id='m1'><body>Wherefore &amp; art\nthou &#x2603; "
    "&lt;Romeo&gt;?</body><thread>t1</thread><x "
    "xmlns='jabber:x:oob'><url>http://a/?b=1&amp;c=2</url></x>"
    "</message>\n  \n<iq type='get' id='i1'><query xmlns='jabber:iq:roster'/></iq> "
    "<presence><show>away</show><status xml:lang='fr'>été &#x10348;</status></presence>"
    "<![CDATA[]]><message><body><![CDATA[<not markup>]]> tail</body></message>"
    "<p:message xmlns:p='jabber:client' xmlns:e='urn:example:ext' e:flag='yes' id='prefixed'>"
    "<e:data e:k='v'/></p:message></stream:stream>");

TEST(StreamParser, DeliversHeaderStanzasAndClose) {
  StreamParser parser{std::string(ns_client)};
  FeedResult result = parser.feed(sample_stream);
  ASSERT_EQ(result.error, "");
  ASSERT_EQ(result.events.size(), 7u);

  const Element& header = std::get<StreamOpen>(result.events[0]).header;
  EXPECT_TRUE(header.is("stream", ns_streams));
  EXPECT_EQ(header.attr("to"), "example.com");
  EXPECT_EQ(header.attr("version"), "1.0");
  EXPECT_EQ(header.attr("xml:lang"), "en");
  EXPECT_FALSE(header.has_attr("xmlns"));

  const Element& message = element_at(result, 1);
  EXPECT_TRUE(message.is("message", ns_client));
  EXPECT_EQ(message.attr("id"), "m1");
  EXPECT_EQ(message.child_text("body", ns_client), "Wherefore & art\nthou \u2603 <Romeo>?");
  const Element* oob = message.child("x", "jabber:x:oob");
  ASSERT_NE(oob, nullptr);
  EXPECT_EQ(oob->child_text("url", "jabber:x:oob"), "http://a/?b=1&c=2");

  const Element& iq = element_at(result, 2);
  EXPECT_TRUE(iq.is("iq", ns_client));
  EXPECT_NE(iq.child("query", "jabber:iq:roster"), nullptr);

  const Element& presence = element_at(result, 3);
  EXPECT_EQ(presence.children().size(), 2u);
  EXPECT_EQ(presence.child("status", ns_client)->attr("xml:lang"), "fr");

  EXPECT_EQ(element_at(result, 4).child_text("body", ns_client), "<not markup> tail");

  const Element& prefixed = element_at(result, 5);
  EXPECT_TRUE(prefixed.is("message", ns_client));
  EXPECT_EQ(prefixed.attr("id"), "prefixed");
  EXPECT_EQ(prefixed.attr("xmlns:ns0"), "urn:example:ext");
  EXPECT_EQ(prefixed.attr("ns0:flag"), "yes");
  const Element* data = prefixed.child("data", "urn:example:ext");
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(data->attr("ns0:k"), "v");

  EXPECT_TRUE(std::holds_alternative<StreamClose>(result.events[6]));
}

TEST(StreamParser, ByteByByteFeedingGivesTheSameEvents) {
  StreamParser whole{std::string(ns_client)};
  FeedResult expected = whole.feed(sample_stream);
  ASSERT_EQ(expected.error, "");
  for (std::size_t chunk : {1u, 2u, 3u, 7u, 64u}) {
    StreamParser parser{std::string(ns_client)};
    FeedResult chunked = feed_in_chunks(parser, sample_stream, chunk);
    EXPECT_EQ(chunked.error, "") << chunk;
    EXPECT_EQ(describe(chunked.events), describe(expected.events)) << "chunk size " << chunk;
    EXPECT_TRUE(same_events(chunked.events, expected.events)) << "chunk size " << chunk;
  }
}

// The parser hands expat large input in slices: stanzas, text and
// attribute values across the slice boundaries must come out whole.
TEST(StreamParser, LargeFeedsGiveTheSameEventsAsSmallOnes) {
  std::string body;
  for (int i = 0; i < 300; ++i) {
    body += "<message to='user" + std::to_string(i) + "@example.com/r' id='" + std::string(40, 'i') + "'><body>" +
            std::string(static_cast<std::size_t>(i * 13 % 97), 'x') + "&amp;</body></message>";
  }
  body += "<message><body>" + std::string(50000, 'y') + "</body></message>";
  body += "<iq type='set' id='" + std::string(9000, 'a') + "'><query xmlns='jabber:iq:roster'/></iq>";
  const std::string stream = client_stream(body);
  StreamParser whole{std::string(ns_client)};
  FeedResult expected = whole.feed(stream);
  ASSERT_EQ(expected.error, "");
  ASSERT_EQ(expected.events.size(), 303u);
  EXPECT_EQ(element_at(expected, 301).child_text("body", ns_client), std::string(50000, 'y'));
  EXPECT_EQ(element_at(expected, 302).attr("id"), std::string(9000, 'a'));
  StreamParser parser{std::string(ns_client)};
  FeedResult chunked = feed_in_chunks(parser, stream, 100);
  EXPECT_EQ(chunked.error, "");
  EXPECT_TRUE(same_events(chunked.events, expected.events));
}

TEST(StreamParser, HeaderIsReportedAsSoonAsItsTagEnds) {
  StreamParser parser{std::string(ns_client)};
  FeedResult before = feed_in_chunks(parser, client_open.substr(0, client_open.size() - 1), 1);
  EXPECT_TRUE(before.events.empty());
  FeedResult last = parser.feed(">");
  ASSERT_EQ(last.events.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<StreamOpen>(last.events[0]));
  // A stanza's closing '>' completes it at once too.
  feed_in_chunks(parser, "<presence/", 1);
  FeedResult presence = parser.feed(">");
  ASSERT_EQ(presence.events.size(), 1u);
  EXPECT_TRUE(element_at(presence, 0).is("presence", ns_client));
}

TEST(StreamParser, SerializedElementsParseBackEqual) {
  StreamParser parser{std::string(ns_client)};
  FeedResult first = parser.feed(sample_stream);
  ASSERT_EQ(first.error, "");
  std::string rewritten = client_open;
  for (std::size_t i = 1; i + 1 < first.events.size(); ++i)
    rewritten += serialize(element_at(first, i));
  StreamParser again{std::string(ns_client)};
  FeedResult second = again.feed(rewritten);
  ASSERT_EQ(second.error, "");
  ASSERT_EQ(second.events.size() + 1, first.events.size());
  for (std::size_t i = 1; i < second.events.size(); ++i)
    EXPECT_EQ(element_at(second, i), element_at(first, i));
}

TEST(StreamParser, MultipleStanzasInOneChunkAndWhitespaceKeepalives) {
  StreamParser parser{std::string(ns_client)};
  ASSERT_EQ(parser.feed(client_open).events.size(), 1u);
  FeedResult keepalive = parser.feed(" \n \t ");
  EXPECT_EQ(keepalive.error, "");
  EXPECT_TRUE(keepalive.events.empty());
  FeedResult result =
      parser.feed("<presence/> <message id='1'/>\n<message id='2'/><iq id='3' type='get'/> ");
  ASSERT_EQ(result.error, "");
  ASSERT_EQ(result.events.size(), 4u);
  EXPECT_EQ(element_at(result, 1).attr("id"), "1");
  EXPECT_EQ(element_at(result, 3).name(), "iq");
  // Whitespace inside a stanza is character data and stays.
  FeedResult spaced = parser.feed("<message> <body>x</body> </message>");
  ASSERT_EQ(spaced.events.size(), 1u);
  EXPECT_EQ(element_at(spaced, 0).children().size(), 3u);
}

TEST(StreamParser, NonStanzaElementsKeepTheirNamespaces) {
  StreamParser parser{std::string(ns_client)};
  FeedResult result = parser.feed(client_stream(
      "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
      "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>"
      "</mechanisms></stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
      "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>"
      "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"));
  ASSERT_EQ(result.error, "");
  ASSERT_EQ(result.events.size(), 5u);
  const Element& features = element_at(result, 1);
  EXPECT_TRUE(features.is("features", ns_streams));
  const Element* starttls = features.child("starttls", "urn:ietf:params:xml:ns:xmpp-tls");
  ASSERT_NE(starttls, nullptr);
  EXPECT_NE(starttls->child("required", "urn:ietf:params:xml:ns:xmpp-tls"), nullptr);
  EXPECT_EQ(features.child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
                ->child_text("mechanism", "urn:ietf:params:xml:ns:xmpp-sasl"),
            "PLAIN");
  EXPECT_TRUE(element_at(result, 2).is("starttls", "urn:ietf:params:xml:ns:xmpp-tls"));
  EXPECT_TRUE(element_at(result, 3).is("auth", "urn:ietf:params:xml:ns:xmpp-sasl"));
  EXPECT_EQ(element_at(result, 3).text(), "AGEAYg==");
  EXPECT_TRUE(element_at(result, 4).is("error", ns_streams));
  EXPECT_EQ(serialize(element_at(result, 4)),
            "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
}

TEST(StreamParser, NamespacedAttributesGetOnePrefixPerNamespace) {
  StreamParser parser{std::string(ns_client)};
  FeedResult result =
      parser.feed(client_stream("<message xmlns:a='urn:a' xmlns:b='urn:b' xmlns:a2='urn:a' a:x='1' "
                                "b:x='2' a2:y='3' plain='4' xml:space='keep'/>"));
  ASSERT_EQ(result.error, "");
  const std::vector<Attribute> expected{
      {"xmlns:ns0", "urn:a"}, {"ns0:x", "1"}, {"xmlns:ns1", "urn:b"}, {"ns1:x", "2"},
      {"ns0:y", "3"},         {"plain", "4"}, {"xml:space", "keep"}};
  EXPECT_EQ(element_at(result, 1).attributes(), expected);
  // The same namespaced attribute twice, under two prefixes, is a duplicate.
  EXPECT_EQ(feed_error(client_stream("<message xmlns:a='urn:a' xmlns:b='urn:a' a:x='1' b:x='2'/>")),
            "not-well-formed");
}

TEST(StreamParser, ManyAttributesAreKeptInOrder) {
  std::string tag = "<message";
  for (int i = 0; i < 10000; ++i) tag += " a" + std::to_string(i) + "='" + std::to_string(i) + "'";
  StreamParser parser{std::string(ns_client)};
  FeedResult result = parser.feed(client_stream(tag + "/>"));
  ASSERT_EQ(result.error, "");
  const Element& message = element_at(result, 1);
  ASSERT_EQ(message.attributes().size(), 10000u);
  EXPECT_EQ(message.attr("a9999"), "9999");
  EXPECT_EQ(message.attributes()[1234].name, "a1234");
}

TEST(StreamParser, ServerAndComponentStanzasAreHeldAsJabberClient) {
  for (std::string_view content_ns : {ns_server, ns_component}) {
    StreamParser parser{std::string(content_ns)};
    FeedResult result = parser.feed(
        "<stream:stream xmlns='" + std::string(content_ns) +
        "' xmlns:stream='http://etherx.jabber.org/streams'><message from='a@b' to='c@d'>"
        "<body>x</body><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'/>"
        "</forwarded></message>");
    ASSERT_EQ(result.error, "") << content_ns;
    ASSERT_EQ(result.events.size(), 2u);
    const Element& message = element_at(result, 1);
    EXPECT_TRUE(message.is("message", ns_client));
    EXPECT_EQ(message.child_text("body", ns_client), "x");
    EXPECT_NE(message.child("forwarded", "urn:xmpp:forward:0")->child("message", ns_client),
              nullptr);
  }
}

TEST(StreamParser, StanzaOfAnotherContentNamespaceIsRefused) {
  EXPECT_EQ(feed_error(client_stream("<message xmlns='jabber:server'/>")), "invalid-namespace");
  EXPECT_EQ(
      feed_error(
          "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"
          "<message xmlns='jabber:client'/>",
          std::string(ns_server)),
      "invalid-namespace");
}

TEST(StreamParser, WrongStreamNamespaceIsInvalidNamespace) {
  // Wrong content namespace.
  EXPECT_EQ(
      feed_error(
          "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"),
      "invalid-namespace");
  // No content namespace at all.
  EXPECT_EQ(feed_error("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"),
            "invalid-namespace");
  // Wrong stream namespace.
  EXPECT_EQ(feed_error("<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong'>"),
            "invalid-namespace");
  // The stream element without a namespace, or a root that is not a stream.
  EXPECT_EQ(feed_error("<stream xmlns='jabber:client'>"), "invalid-namespace");
  EXPECT_EQ(feed_error("<message xmlns='jabber:client'/>"), "invalid-namespace");
  EXPECT_EQ(feed_error("<stream:features xmlns='jabber:client' "
                       "xmlns:stream='http://etherx.jabber.org/streams'>"),
            "invalid-namespace");
  // Any prefix bound to the right namespace is fine.
  EXPECT_EQ(
      feed_error("<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams'>"),
      "");
}

TEST(StreamParser, RestrictedXmlIsRefused) {
  EXPECT_EQ(feed_error("<?xml version='1.0'?><!DOCTYPE stream:stream>" + client_open),
            "restricted-xml");
  EXPECT_EQ(feed_error("<!DOCTYPE x [<!ENTITY lol 'lol'>]><x/>"), "restricted-xml");
  EXPECT_EQ(feed_error("<!-- hello -->" + client_open), "restricted-xml");
  EXPECT_EQ(feed_error(client_stream("<message><!-- hello --></message>")), "restricted-xml");
  EXPECT_EQ(feed_error(client_stream("<?php echo 1; ?>")), "restricted-xml");
  EXPECT_EQ(feed_error("<?xml-stylesheet href='a'?>" + client_open), "restricted-xml");
  EXPECT_EQ(feed_error(client_stream("<message><?pi data?></message>")), "restricted-xml");
}

TEST(StreamParser, RestrictedXmlIsFoundByteByByteToo) {
  StreamParser parser{std::string(ns_client)};
  FeedResult result = feed_in_chunks(parser, client_stream("<presence/><!-- x -->"), 1);
  EXPECT_EQ(result.error, "restricted-xml");
  EXPECT_EQ(result.events.size(), 2u);
}

TEST(StreamParser, MalformedInputIsNotWellFormed) {
  EXPECT_EQ(feed_error("garbage\n"), "not-well-formed");
  EXPECT_EQ(feed_error("<stream:stream"), "");
  EXPECT_EQ(feed_error("<stream:stream xmlns='jabber:client'>"),
            "not-well-formed");  // unbound prefix
  EXPECT_EQ(feed_error(client_stream("<message></presence>")), "not-well-formed");
  EXPECT_EQ(feed_error(client_stream("<message a='1' a='2'/>")), "not-well-formed");
  EXPECT_EQ(feed_error(client_stream("<message>&undefined;</message>")), "not-well-formed");
  EXPECT_EQ(feed_error(client_stream("<message>&#0;</message>")), "not-well-formed");
  EXPECT_EQ(feed_error(client_stream("<x:message/>")), "not-well-formed");
  EXPECT_EQ(feed_error(client_stream("<message>\xff\xfe</message>")), "not-well-formed");
  EXPECT_EQ(feed_error(client_stream("</stream:features>")), "not-well-formed");
}

TEST(StreamParser, OtherEncodingsAreUnsupported) {
  const std::string stream_tag = client_open.substr(client_open.find("<stream:stream"));
  EXPECT_EQ(feed_error("<?xml version='1.0' encoding='UTF-16'?>" + stream_tag),
            "unsupported-encoding");
  EXPECT_EQ(feed_error("<?xml version='1.0' encoding='ISO-8859-1'?>" + stream_tag),
            "unsupported-encoding");
  EXPECT_EQ(feed_error("<?xml version='1.0' encoding='utf-8'?>" + stream_tag), "");
}

TEST(StreamParser, EveryFeedAfterAnErrorRepeatsIt) {
  StreamParser parser{std::string(ns_client)};
  FeedResult first = parser.feed(client_stream("<presence/><a></b><presence/>"));
  EXPECT_EQ(first.error, "not-well-formed");
  EXPECT_EQ(first.events.size(), 2u);
  for (int i = 0; i < 3; ++i) {
    FeedResult again = parser.feed("<presence/>");
    EXPECT_EQ(again.error, "not-well-formed");
    EXPECT_TRUE(again.events.empty());
  }
}

TEST(StreamParser, OversizedStanzaIsRefusedBeforeItEnds) {
  StreamParser parser{std::string(ns_client)};
  ASSERT_EQ(parser.feed(client_stream("<message><body>")).error, "");
  const std::string kilobyte(1024, 'a');
  std::size_t fed = 0;
  std::string error;
  while (fed < 1024 * 1024) {
    FeedResult result = parser.feed(kilobyte);
    fed += kilobyte.size();
    EXPECT_TRUE(result.events.empty());
    if (!result.error.empty()) {
      error = result.error;
      break;
    }
  }
  EXPECT_EQ(error, "policy-violation");
  EXPECT_GT(fed, 255u * 1024);
  EXPECT_LE(fed, 257u * 1024);
}

TEST(StreamParser, OversizedStanzaInOneChunkIsRefused) {
  std::string huge = client_stream("<presence/><message><body>" + std::string(1024 * 1024, 'x') +
                                   "</body></message>");
  StreamParser parser{std::string(ns_client)};
  FeedResult result = parser.feed(huge);
  EXPECT_EQ(result.error, "policy-violation");
  EXPECT_EQ(result.events.size(), 2u);
  // Many small children add up as well.
  std::string children;
  for (int i = 0; i < 100000; ++i) children += "<a/>";
  EXPECT_EQ(feed_error(client_stream("<message>" + children + "</message>")), "policy-violation");
  // So does a start tag that never ends.
  EXPECT_EQ(feed_error(client_stream("<message a='" + std::string(300 * 1024, 'v'))),
            "policy-violation");
}

TEST(StreamParser, LimitCountsEachStanzaOnItsOwn) {
  StreamParser parser{std::string(ns_client), 1024};
  ASSERT_EQ(parser.feed(client_open).error, "");
  const std::string stanza = "<message><body>" + std::string(900, 'x') + "</body></message>";
  ASSERT_LT(stanza.size(), 1024u);
  for (int i = 0; i < 50; ++i) {
    FeedResult result = feed_in_chunks(parser, stanza + "   ", 100);
    ASSERT_EQ(result.error, "");
    ASSERT_EQ(result.events.size(), 1u);
  }
  // Keepalives do not accumulate either.
  for (int i = 0; i < 10; ++i) ASSERT_EQ(parser.feed(std::string(1000, ' ')).error, "");
  EXPECT_EQ(parser.feed("<message><body>" + std::string(1100, 'x')).error, "policy-violation");
}

TEST(StreamParser, DeepNestingIsRefused) {
  std::string nested;
  for (int i = 0; i < 300; ++i) nested += "<a>";
  EXPECT_EQ(feed_error(client_stream(nested)), "policy-violation");
  std::string fine;
  for (int i = 0; i < 100; ++i) fine = "<a>" + fine + "</a>";
  EXPECT_EQ(feed_error(client_stream(fine)), "");
}

TEST(StreamParser, BytesAfterTheStreamCloseAreIgnored) {
  StreamParser parser{std::string(ns_client)};
  FeedResult result = parser.feed(client_stream("<presence/></stream:stream><garbage"));
  EXPECT_EQ(result.error, "");
  ASSERT_EQ(result.events.size(), 3u);
  EXPECT_TRUE(std::holds_alternative<StreamClose>(result.events[2]));
  FeedResult after = parser.feed("<presence/>");
  EXPECT_EQ(after.error, "");
  EXPECT_TRUE(after.events.empty());
}

TEST(StreamParser, ResetStartsAFreshStream) {
  StreamParser parser{std::string(ns_client)};
  FeedResult first =
      parser.feed(client_stream("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><half"));
  ASSERT_EQ(first.events.size(), 2u);
  parser.reset();
  FeedResult second = parser.feed(client_stream("<presence/>"));
  ASSERT_EQ(second.error, "");
  ASSERT_EQ(second.events.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<StreamOpen>(second.events[0]));
  EXPECT_TRUE(element_at(second, 1).is("presence", ns_client));

  // reset() also clears an error and a closed stream, and the size budget.
  EXPECT_EQ(parser.feed("<<<").error, "not-well-formed");
  parser.reset();
  FeedResult third = feed_in_chunks(parser, client_stream("<presence/></stream:stream>"), 1);
  EXPECT_EQ(third.error, "");
  EXPECT_EQ(third.events.size(), 3u);
  parser.reset();
  EXPECT_EQ(parser.feed(client_open).events.size(), 1u);
}

TEST(StreamParser, StreamWithoutXmlDeclarationAndSplitUtf8) {
  std::string bytes = client_stream("<message><body>\xe2\x98\x83\xf0\x9d\x84\x9e</body></message>");
  StreamParser parser{std::string(ns_client)};
  FeedResult result = feed_in_chunks(parser, bytes, 1);
  ASSERT_EQ(result.error, "");
  EXPECT_EQ(element_at(result, 1).child_text("body", ns_client), "\u2603\U0001D11E");
}

}  // namespace
}  // namespace parley::xml
