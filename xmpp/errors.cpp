#include "xmpp/errors.hpp"

#include <array>
#include <utility>

namespace parley::xmpp {

namespace {

// RFC 6120 §8.3.3. Where the RFC allows two types, the one its example uses.
constexpr std::array<std::pair<std::string_view, std::string_view>, 22> stanza_error_types{{
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
}};

// to and from swapped, same id: the addressing of any reply to stanza.
xml::Element reply_to(const xml::Element& stanza, std::string_view type) {
  xml::Element reply(stanza.name(), stanza.ns());
  if (const std::string* id = stanza.find_attr("id")) reply.set_attr("id", *id);
  if (const std::string* from = stanza.find_attr("from")) reply.set_attr("to", *from);
  if (const std::string* to = stanza.find_attr("to")) reply.set_attr("from", *to);
  reply.set_attr("type", std::string(type));
  return reply;
}

}  // namespace

xml::Element stream_error(std::string_view condition, std::string_view text) {
  xml::Element error("error", std::string(xml::ns_streams));
  error.add_child(std::string(condition), std::string(ns_stream_errors));
  if (!text.empty())
    error.add_child("text", std::string(ns_stream_errors)).add_text(std::string(text));
  return error;
}

std::string_view stanza_error_type(std::string_view condition) {
  for (const auto& [name, type] : stanza_error_types) {
    if (name == condition) return type;
  }
  return "cancel";
}

bool is_error_stanza(const xml::Element& stanza) { return stanza.attr("type") == "error"; }

xml::Element stanza_error(const xml::Element& stanza, std::string_view condition,
                          std::string_view text, std::string_view error_type, std::string_view by) {
  xml::Element reply = reply_to(stanza, "error");
  if (const std::string* lang = stanza.find_attr("xml:lang")) reply.set_attr("xml:lang", *lang);
  if (stanza.name() != "iq") {
    for (const xml::Element& child : stanza.children()) reply.add_child(child);
  }
  xml::Element& error = reply.add_child("error", stanza.ns());
  error.set_attr("type",
                 std::string(error_type.empty() ? stanza_error_type(condition) : error_type));
  if (!by.empty()) error.set_attr("by", std::string(by));
  error.add_child(std::string(condition), std::string(ns_stanza_errors));
  if (!text.empty())
    error.add_child("text", std::string(ns_stanza_errors)).add_text(std::string(text));
  return reply;
}

xml::Element iq_result(const xml::Element& iq) { return reply_to(iq, "result"); }

std::string_view stanza_error_condition(const xml::Element& error_stanza) {
  const xml::Element* error = error_stanza.child("error", error_stanza.ns());
  if (!error) return {};
  for (const xml::Element& child : error->children()) {
    if (!child.is_text() && child.ns() == ns_stanza_errors && child.name() != "text")
      return child.name();
  }
  return {};
}

}  // namespace parley::xmpp
