// Stream errors (RFC 6120 §4.9) and stanza errors (RFC 6120 §8.3): the one
// place that builds them.
#pragma once

#include <string_view>

#include "xmpp/xml.hpp"

namespace parley::xmpp {

inline constexpr std::string_view ns_stream_errors = "urn:ietf:params:xml:ns:xmpp-streams";
inline constexpr std::string_view ns_stanza_errors = "urn:ietf:params:xml:ns:xmpp-stanzas";

// <stream:error><condition xmlns='...streams'/><text>..</text></stream:error>
xml::Element stream_error(std::string_view condition, std::string_view text = {});

// The error type RFC 6120 §8.3.3 gives for a condition: "cancel", "modify",
// "auth" or "wait".
std::string_view stanza_error_type(std::string_view condition);

// True for a stanza of type='error' (never answer those with an error).
bool is_error_stanza(const xml::Element& stanza);

// The reply to stanza: same element name and id, 'to' and 'from' swapped,
// type='error', the original payload kept for messages and presence (not
// for iq), and <error type='..'><condition/><text/></error> appended.
// 'by' is set when given. The type comes from stanza_error_type() unless
// error_type is given.
xml::Element stanza_error(const xml::Element& stanza, std::string_view condition,
                          std::string_view text = {}, std::string_view error_type = {},
                          std::string_view by = {});

// <iq type='result'> answering an iq: same id, to/from swapped, no payload.
xml::Element iq_result(const xml::Element& iq);

// The condition name inside an error stanza's <error/>, or empty.
std::string_view stanza_error_condition(const xml::Element& error_stanza);

}  // namespace parley::xmpp
