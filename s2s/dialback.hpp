// Server dialback keys (XEP-0220 with the XEP-0185 key algorithm).
#pragma once

#include <string>
#include <string_view>

namespace parley::s2s {

// HMAC-SHA256 keyed with the hex SHA-256 of the secret, over
// "receiving originating stream-id"; lowercase hex.
std::string dialback_key(std::string_view secret, std::string_view receiving_domain,
                         std::string_view originating_domain, std::string_view stream_id);

// Compares in constant time after trimming the whitespace a peer may wrap
// around the key text.
bool dialback_key_matches(std::string_view secret, std::string_view receiving_domain,
                          std::string_view originating_domain, std::string_view stream_id,
                          std::string_view offered_key);

}  // namespace parley::s2s
