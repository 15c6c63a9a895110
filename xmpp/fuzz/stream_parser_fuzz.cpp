// libFuzzer target for xml::StreamParser. Besides the sanitizers' checks it
// holds the parser to two properties:
//  - feeding the input in chunks gives the same events as feeding it at once;
//  - every element it delivers serialises to XML that parses back equal.
// The first input byte is control: bit 7 picks a jabber:server stream instead
// of jabber:client, bit 6 a small element limit, bits 0-5 the chunk size.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "xmpp/stream_parser.hpp"
#include "xmpp/xml.hpp"

namespace {

using parley::xml::Element;
using parley::xml::FeedResult;
using parley::xml::StreamClose;
using parley::xml::StreamEvent;
using parley::xml::StreamOpen;
using parley::xml::StreamParser;

constexpr std::size_t small_limit = 512;
constexpr std::size_t default_limit = 262144;

[[noreturn]] void violated(const char* property, const std::string& detail) {
  std::fprintf(stderr, "property violated: %s\n%s\n", property, detail.c_str());
  std::abort();
}

std::string describe(const StreamEvent& event) {
  if (const auto* open = std::get_if<StreamOpen>(&event)) return "open " + serialize(open->header);
  if (const auto* element = std::get_if<Element>(&event)) return serialize(*element);
  return "close";
}

bool same_event(const StreamEvent& a, const StreamEvent& b) {
  if (a.index() != b.index()) return false;
  if (const auto* open = std::get_if<StreamOpen>(&a))
    return open->header == std::get<StreamOpen>(b).header;
  if (const auto* element = std::get_if<Element>(&a)) return *element == std::get<Element>(b);
  return true;
}

FeedResult feed_in_chunks(StreamParser& parser, std::string_view bytes, std::size_t chunk_size) {
  FeedResult all;
  while (!bytes.empty() && all.error.empty()) {
    std::size_t size = std::min(chunk_size, bytes.size());
    FeedResult part = parser.feed(bytes.substr(0, size));
    bytes.remove_prefix(size);
    for (StreamEvent& event : part.events) all.events.push_back(std::move(event));
    all.error = part.error;
  }
  return all;
}

// Until an error, chunking must not matter. Expat may notice some errors (an
// invalid byte in an incomplete character, say) a few bytes later in one mode
// than in the other, and which condition wins when an element is both too
// large and malformed can depend on where a chunk ends; so once either side
// has failed, its events need only be a prefix of the other's.
void check_chunking(const FeedResult& whole, const FeedResult& chunked) {
  const bool failed = !whole.error.empty() || !chunked.error.empty();
  if (!failed && whole.events.size() != chunked.events.size()) {
    violated("chunked feeding gives the same number of events",
             std::to_string(whole.events.size()) + " vs " + std::to_string(chunked.events.size()));
  }
  const std::size_t common = std::min(whole.events.size(), chunked.events.size());
  if (whole.error.empty() != chunked.error.empty() &&
      (whole.error.empty() ? chunked : whole).events.size() > common) {
    violated("the stream that failed delivered no event the other did not",
             "whole: '" + whole.error + "' chunked: '" + chunked.error + "'");
  }
  for (std::size_t i = 0; i < common; ++i) {
    if (!same_event(whole.events[i], chunked.events[i])) {
      violated("chunked feeding gives the same events",
               describe(whole.events[i]) + "\nvs\n" + describe(chunked.events[i]));
    }
  }
}

void check_round_trip(const Element& element) {
  const std::string header = parley::xml::stream_header(parley::xml::ns_client, {});
  const std::string serialized = serialize(element);
  StreamParser parser{std::string(parley::xml::ns_client), header.size() + serialized.size()};
  FeedResult result = parser.feed(header + serialized);
  if (!result.error.empty() || result.events.size() != 2 ||
      !std::holds_alternative<Element>(result.events[1]) ||
      !(std::get<Element>(result.events[1]) == element)) {
    violated("a delivered element parses back equal", serialized + "\nerror: " + result.error);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t control = data[0];
  const std::string content_ns(control & 0x80 ? parley::xml::ns_server : parley::xml::ns_client);
  const std::size_t limit = control & 0x40 ? small_limit : default_limit;
  const std::size_t chunk_size = (control & 0x3f) + 1;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);

  StreamParser whole_parser{content_ns, limit};
  FeedResult whole = whole_parser.feed(bytes);
  if (!whole.error.empty() && whole_parser.feed("<x/>").error != whole.error) {
    violated("an error sticks", whole.error);
  }

  StreamParser chunked_parser{content_ns, limit};
  check_chunking(whole, feed_in_chunks(chunked_parser, bytes, chunk_size));

  // The same parser, reset, must behave like a fresh one.
  chunked_parser.reset();
  check_chunking(whole, feed_in_chunks(chunked_parser, bytes, bytes.size() + 1));

  for (const StreamEvent& event : whole.events) {
    if (const auto* element = std::get_if<Element>(&event)) check_round_trip(*element);
  }
  return 0;
}
