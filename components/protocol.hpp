// The rules of the component protocol (XEP-0114) that need no socket: the
// handshake digest and what a component may put in 'from' and 'to'.
#pragma once

#include <string>
#include <string_view>

#include "xmpp/xml.hpp"

namespace parley::components {

// hex(SHA-1(stream_id + secret)) in lowercase, what the component sends in
// <handshake/> (XEP-0114 §3).
std::string handshake_digest(std::string_view stream_id, std::string_view secret);

// Whether a <handshake/> text proves knowledge of the secret. Hex digits are
// accepted in either case and surrounding whitespace is ignored; the digest
// comparison takes the same time wherever the first difference is.
bool handshake_matches(std::string_view received, std::string_view stream_id, std::string_view secret);

// The stream error a stanza from the component for 'domain' earns by its
// addresses, or empty when it may be routed:
//   improper-addressing: no 'from' or no 'to' (a component must set both);
//   invalid-from: a 'from' that is not a valid JID at the component's own
//                 domain (the domain itself, user@domain, or with a resource).
// A malformed 'to' is not a stream error: the sender gets jid-malformed.
std::string_view address_error(const xml::Element& stanza, std::string_view domain);

}  // namespace parley::components
