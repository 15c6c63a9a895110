#include "xmpp/stream_parser.hpp"

#include <expat.h>

#include <algorithm>
#include <limits>
#include <new>
#include <optional>
#include <string>
#include <vector>

namespace parley::xml {

namespace {

// Expat reports a namespaced name as "URI<sep>local". U+0001 cannot occur in
// an XML 1.0 document, not even as a character reference, so it never
// appears in a namespace name or a local name.
constexpr char namespace_separator = '\x01';

// Nesting deeper than this is refused: every tree walk over an element
// (serialisation, comparison, destruction) recurses once per level.
constexpr std::size_t max_nesting = 256;

// The largest slice handed to expat at once. Expat copies what it is fed
// into a buffer of its own that only ever grows (to the next power of two
// above the largest slice): slices this small keep that buffer at a few KiB
// per connection however large the reads that fill the caller's buffer.
constexpr std::size_t max_slice = 4096;

struct QualifiedName {
  std::string_view ns;
  std::string_view local;
};

QualifiedName split_name(const XML_Char* name) {
  std::string_view full(name);
  std::size_t separator = full.find(namespace_separator);
  if (separator == std::string_view::npos) return {{}, full};
  return {full.substr(0, separator), full.substr(separator + 1)};
}

bool is_utf8_name(std::string_view encoding) {
  constexpr std::string_view utf8 = "utf-8";
  return encoding.size() == utf8.size() &&
         std::equal(encoding.begin(), encoding.end(), utf8.begin(),
                    [](char a, char b) { return (a >= 'A' && a <= 'Z' ? a - 'A' + 'a' : a) == b; });
}

bool is_content_namespace(std::string_view ns) {
  return ns == ns_client || ns == ns_server || ns == ns_component;
}

}  // namespace

struct StreamParser::Impl {
  Impl(std::string content_namespace, std::size_t max_bytes)
      : content_ns(std::move(content_namespace)),
        max_element_bytes(static_cast<XML_Index>(std::min<std::size_t>(
            max_bytes, static_cast<std::size_t>(std::numeric_limits<XML_Index>::max())))),
        parser(XML_ParserCreateNS("UTF-8", namespace_separator)) {
    if (!parser) throw std::bad_alloc();
    install_handlers();
  }

  ~Impl() { XML_ParserFree(parser); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  const std::string content_ns;
  const XML_Index max_element_bytes;
  XML_Parser parser;

  // Elements under construction: open.front() is the depth-1 element.
  std::vector<Element> open;
  bool stream_open = false;
  bool stream_closed = false;
  std::string error;
  std::optional<std::string> stream_default_ns;
  // Where the top-level item being read began: the start tag of the current
  // depth-1 element, or the end of the last one (or of the stream header).
  // Everything fed since counts against max_element_bytes, so even a start
  // tag that never ends is cut off.
  XML_Index item_start = 0;
  XML_Index bytes_fed = 0;
  std::vector<StreamEvent>* events = nullptr;

  void install_handlers() {
    // GUIDE §11: Debian's expat 2.5.0 would otherwise hold back callbacks
    // for small chunks, leaving a stream header unanswered.
    XML_SetReparseDeferralEnabled(parser, XML_FALSE);
    XML_SetUserData(parser, this);
    XML_SetElementHandler(parser, &Impl::on_start, &Impl::on_end);
    XML_SetCharacterDataHandler(parser, &Impl::on_text);
    XML_SetStartNamespaceDeclHandler(parser, &Impl::on_namespace_declaration);
    XML_SetXmlDeclHandler(parser, &Impl::on_xml_declaration);
    // RFC 6120 §11.1: none of these may appear in a stream.
    constexpr auto reject = [](void* user, auto...) { self(user).fail("restricted-xml"); };
    XML_SetStartDoctypeDeclHandler(parser, reject);
    XML_SetEntityDeclHandler(parser, reject);
    XML_SetUnparsedEntityDeclHandler(parser, reject);
    XML_SetNotationDeclHandler(parser, reject);
    XML_SetProcessingInstructionHandler(parser, reject);
    XML_SetCommentHandler(parser, reject);
  }

  void reset() {
    XML_ParserReset(parser, "UTF-8");
    install_handlers();
    open.clear();
    stream_open = false;
    stream_closed = false;
    error.clear();
    stream_default_ns.reset();
    item_start = 0;
    bytes_fed = 0;
  }

  FeedResult feed(std::string_view bytes) {
    FeedResult result;
    if (!error.empty()) {
      result.error = error;
      return result;
    }
    events = &result.events;
    while (!bytes.empty() && !stopped()) {
      std::size_t slice = std::min(bytes.size(), max_slice);
      bytes_fed += static_cast<XML_Index>(slice);
      if (XML_Parse(parser, bytes.data(), static_cast<int>(slice), XML_FALSE) != XML_STATUS_OK &&
          !stopped()) {
        error = "not-well-formed";
      }
      bytes.remove_prefix(slice);
    }
    if (!stopped() && bytes_fed - item_start > max_element_bytes) error = "policy-violation";
    events = nullptr;
    result.error = error;
    return result;
  }

  static Impl& self(void* user) { return *static_cast<Impl*>(user); }

  bool stopped() const { return stream_closed || !error.empty(); }

  // The first problem wins, and nothing after a clean </stream:stream> is one.
  void fail(std::string condition) {
    if (stopped()) return;
    error = std::move(condition);
    XML_StopParser(parser, XML_FALSE);
  }

  XML_Index event_end() const {
    return XML_GetCurrentByteIndex(parser) + XML_GetCurrentByteCount(parser);
  }

  // False (and the stream failed) once the item being read has grown past the limit.
  bool within_limit() {
    if (event_end() - item_start <= max_element_bytes) return true;
    fail("policy-violation");
    return false;
  }

  // Expat reads every stream as UTF-8 whatever the declaration says; a peer
  // declaring another encoding gets the RFC 6120 §4.9.3.22 error instead of
  // having its bytes misread.
  static void on_xml_declaration(void* user, const XML_Char*, const XML_Char* encoding, int) {
    if (encoding && !is_utf8_name(encoding)) self(user).fail("unsupported-encoding");
  }

  static void on_namespace_declaration(void* user, const XML_Char* prefix, const XML_Char* uri) {
    Impl& impl = self(user);
    if (impl.stream_open || prefix) return;
    impl.stream_default_ns = uri ? std::string(uri) : std::string();
  }

  static void on_start(void* user, const XML_Char* name, const XML_Char** attributes) {
    Impl& impl = self(user);
    if (impl.stopped()) return;
    if (!impl.stream_open) {
      impl.open_stream(name, attributes);
    } else {
      impl.open_element(name, attributes);
    }
  }

  void open_stream(const XML_Char* name, const XML_Char** attributes) {
    QualifiedName qname = split_name(name);
    if (qname.ns != ns_streams || qname.local != "stream" || stream_default_ns != content_ns) {
      fail("invalid-namespace");
      return;
    }
    if (!within_limit()) return;
    Element header("stream", std::string(ns_streams));
    copy_attributes(header, attributes);
    stream_open = true;
    item_start = event_end();
    events->push_back(StreamOpen{std::move(header)});
  }

  void open_element(const XML_Char* name, const XML_Char** attributes) {
    if (open.size() >= max_nesting) {
      fail("policy-violation");
      return;
    }
    if (open.empty()) item_start = XML_GetCurrentByteIndex(parser);
    if (!within_limit()) return;
    QualifiedName qname = split_name(name);
    // A stanza of another content namespace (jabber:server on a client
    // stream, say) would become indistinguishable once stored as
    // jabber:client: refuse it rather than let it pass as one of ours.
    if (open.empty() && qname.ns != content_ns && is_content_namespace(qname.ns)) {
      fail("invalid-namespace");
      return;
    }
    // Built where it stays while open rather than built and moved there.
    Element& element = open.emplace_back(std::string(qname.local),
                                         qname.ns == content_ns ? std::string(ns_client) : std::string(qname.ns));
    copy_attributes(element, attributes);
  }

  // Attributes in the XML namespace keep their "xml:" name. An attribute in
  // any other namespace is kept under a prefix generated per element
  // ("ns0", "ns1", ...) declared by an "xmlns:nsN" attribute placed just
  // before its first use, so that serialising the element writes a
  // namespace-well-formed equivalent of what the peer sent.
  static void copy_attributes(Element& element, const XML_Char** attributes) {
    std::size_t count = 0;
    while (attributes[2 * count]) ++count;
    if (count == 0) return;
    // One more for the 'from' the router stamps on every stanza.
    element.reserve_attributes(count + 1);
    // Namespaces of prefixed attributes, in order of first use: rare, so a
    // vector searched in line (no allocation unless one occurs).
    std::vector<std::string_view> prefixed_namespaces;
    for (const XML_Char** pair = attributes; pair[0]; pair += 2) {
      QualifiedName qname = split_name(pair[0]);
      if (qname.ns.empty()) {
        element.add_attr(std::string(qname.local), pair[1]);
        continue;
      }
      if (qname.ns == ns_xml) {
        element.add_attr("xml:" + std::string(qname.local), pair[1]);
        continue;
      }
      auto known = std::find(prefixed_namespaces.begin(), prefixed_namespaces.end(), qname.ns);
      const std::size_t number = static_cast<std::size_t>(known - prefixed_namespaces.begin());
      std::string prefix = "ns" + std::to_string(number);
      if (known == prefixed_namespaces.end()) {
        prefixed_namespaces.push_back(qname.ns);
        element.add_attr("xmlns:" + prefix, std::string(qname.ns));
      }
      element.add_attr(prefix + ':' + std::string(qname.local), pair[1]);
    }
  }

  static void on_end(void* user, const XML_Char*) {
    Impl& impl = self(user);
    if (impl.stopped()) return;
    if (impl.open.empty()) {
      impl.stream_closed = true;
      impl.events->push_back(StreamClose{});
      XML_StopParser(impl.parser, XML_FALSE);
      return;
    }
    if (!impl.within_limit()) return;
    // Moved once, straight to where it belongs.
    if (impl.open.size() == 1) {
      impl.item_start = impl.event_end();
      impl.events->push_back(std::move(impl.open.back()));
    } else {
      impl.open[impl.open.size() - 2].add_child(std::move(impl.open.back()));
    }
    impl.open.pop_back();
  }

  static void on_text(void* user, const XML_Char* text, int length) {
    Impl& impl = self(user);
    if (impl.stopped()) return;
    if (impl.open.empty()) {
      // Text between top-level elements (whitespace keepalives) is dropped.
      impl.item_start = impl.event_end();
      return;
    }
    if (!impl.within_limit()) return;
    impl.open.back().add_text(std::string(text, static_cast<std::size_t>(length)));
  }
};

StreamParser::StreamParser(std::string content_ns, std::size_t max_element_bytes)
    : impl_(std::make_unique<Impl>(std::move(content_ns), max_element_bytes)) {}

StreamParser::~StreamParser() = default;

FeedResult StreamParser::feed(std::string_view bytes) { return impl_->feed(bytes); }

void StreamParser::reset() { impl_->reset(); }

}  // namespace parley::xml
