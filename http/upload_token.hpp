// The PUT authorisation of an upload slot (XEP-0363): an HMAC-SHA-256 with
// the server's secret over what the slot allows, so the HTTP side can check
// a PUT without trusting anything the client says.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace parley::http {

// What one slot allows: one PUT of exactly 'size' bytes of 'content_type' to
// 'path' (the file's "<id>/<name>" part of the URL), until 'expires'
// (Unix time, seconds).
struct SlotClaim {
  std::string path;
  std::uint64_t size = 0;
  std::string content_type;
  std::int64_t expires = 0;
};

// "<expires>.<hex HMAC>", the value sent as "Authorization: Bearer <token>".
std::string sign_slot(std::string_view secret, const SlotClaim& claim);

// Whether token authorises a PUT of claim (whose 'expires' is ignored: the
// token carries it) at time 'now'. Constant-time comparison of the MAC.
bool verify_slot(std::string_view secret, const SlotClaim& claim, std::string_view token, std::int64_t now);

// The token of an "Authorization: Bearer <token>" header value, or empty.
std::string_view bearer_token(std::string_view authorization);

}  // namespace parley::http
