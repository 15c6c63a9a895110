// Federation policy (config section s2s): which domains Parley federates
// with and how peers must authenticate.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parley::s2s {

struct DomainPolicy {
  std::string ca_file;                       // empty: the global one
  std::string address;                       // "ip:port" to connect to instead of DNS; empty: DNS
  std::optional<bool> secure_auth_required;  // unset: the global setting
};

struct Endpoint {
  std::string address;
  std::uint16_t port = 5269;
};

// Parses "127.0.0.1:5269" or "[::1]:5269"; nullopt when malformed.
std::optional<Endpoint> parse_endpoint(std::string_view text);

// How a stream authenticates its peer's domain.
enum class AuthMethod { none, sasl_external, dialback };
std::string_view describe(AuthMethod method);

struct Policy {
  bool secure_auth_required = true;  // only certificate authentication, no dialback
  std::string ca_file;               // empty: the system's trust store
  std::vector<std::string> allow;    // non-empty: only these domains
  std::vector<std::string> deny;     // never these (wins over allow)
  std::map<std::string, DomainPolicy, std::less<>> domains;

  bool allowed(std::string_view domain) const;
  bool requires_secure_auth(std::string_view domain) const;
  const std::string& ca_file_for(std::string_view domain) const;
  std::optional<Endpoint> address_for(std::string_view domain) const;

  // Outbound: how to authenticate Parley to the peer once TLS is up.
  //   our_certificate_valid: our certificate names the local domain
  //   peer_certificate_valid: the peer's certificate is trusted and names it
  // Refuses (AuthMethod::none) when the policy requires a valid peer
  // certificate and it is not, or when nothing offered is acceptable.
  AuthMethod outbound_method(std::string_view remote_domain, bool our_certificate_valid, bool peer_certificate_valid,
                             bool offers_external, bool offers_dialback) const;

  // Inbound <db:result/> from 'originating_domain': accepted from the
  // certificate alone when it is valid for that domain (XEP-0344), verified
  // with the authoritative server when dialback is allowed, else refused.
  enum class DialbackDecision { accept_certificate, verify, refuse };
  DialbackDecision inbound_dialback(std::string_view originating_domain, bool certificate_valid) const;
};

}  // namespace parley::s2s
