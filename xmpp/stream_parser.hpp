// Incremental, namespace-aware XMPP stream parser over expat (RFC 6120 §4, §11).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "xmpp/xml.hpp"

namespace parley::xml {

// <stream:stream ...> was read; header holds its attributes (to, from, id,
// version, xml:lang) with name "stream" and namespace ns_streams.
struct StreamOpen {
  Element header;
};
// A complete top-level element (stanza or nonza) of depth 1.
using StreamElement = Element;
// </stream:stream> was read.
struct StreamClose {};

using StreamEvent = std::variant<StreamOpen, StreamElement, StreamClose>;

struct FeedResult {
  std::vector<StreamEvent> events;  // events completed by this chunk, in order
  // Empty, or the RFC 6120 §4.9.3 stream error condition that ends the stream:
  // "not-well-formed", "restricted-xml" (DOCTYPE, entities, PIs, comments),
  // "policy-violation" (element larger than the limit or nested too deep),
  // "invalid-namespace" (wrong stream element or content namespace, or a
  // top-level element in another content namespace), "unsupported-encoding"
  // (an XML declaration naming an encoding other than UTF-8), "bad-format".
  std::string error;
};

class StreamParser {
 public:
  // content_ns: the default namespace the peer must declare on its stream
  // (jabber:client, jabber:server or jabber:component:accept). Elements in
  // it are delivered as jabber:client.
  StreamParser(std::string content_ns, std::size_t max_element_bytes = 262144);
  ~StreamParser();
  StreamParser(const StreamParser&) = delete;
  StreamParser& operator=(const StreamParser&) = delete;

  // Feeds any number of bytes (one byte works). After an error every further
  // call returns the same error and no events.
  FeedResult feed(std::string_view bytes);

  // Starts over for a new stream on the same connection (after STARTTLS and
  // after SASL success). Bytes fed before are discarded.
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace parley::xml
