#include "s2s/policy.hpp"

#include <algorithm>
#include <charconv>

namespace parley::s2s {

std::optional<Endpoint> parse_endpoint(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned value = 0;
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (host.empty() || port.empty() || error != std::errc() || end != port.data() + port.size() || value == 0 ||
      value > 65535) {
    return std::nullopt;
  }
  return Endpoint{std::string(host), static_cast<std::uint16_t>(value)};
}

std::string_view describe(AuthMethod method) {
  switch (method) {
    case AuthMethod::none:
      return "none";
    case AuthMethod::sasl_external:
      return "SASL EXTERNAL";
    case AuthMethod::dialback:
      return "dialback";
  }
  return "none";
}

bool Policy::allowed(std::string_view domain) const {
  const auto listed = [&](const std::vector<std::string>& list) {
    return std::find(list.begin(), list.end(), domain) != list.end();
  };
  if (listed(deny)) return false;
  return allow.empty() || listed(allow);
}

bool Policy::requires_secure_auth(std::string_view domain) const {
  if (const auto entry = domains.find(domain); entry != domains.end() && entry->second.secure_auth_required) {
    return *entry->second.secure_auth_required;
  }
  return secure_auth_required;
}

const std::string& Policy::ca_file_for(std::string_view domain) const {
  if (const auto entry = domains.find(domain); entry != domains.end() && !entry->second.ca_file.empty()) {
    return entry->second.ca_file;
  }
  return ca_file;
}

std::optional<Endpoint> Policy::address_for(std::string_view domain) const {
  if (const auto entry = domains.find(domain); entry != domains.end() && !entry->second.address.empty()) {
    return parse_endpoint(entry->second.address);
  }
  return std::nullopt;
}

AuthMethod Policy::outbound_method(std::string_view remote_domain, bool our_certificate_valid,
                                   bool peer_certificate_valid, bool offers_external, bool offers_dialback) const {
  const bool secure = requires_secure_auth(remote_domain);
  if (secure && !peer_certificate_valid) return AuthMethod::none;
  if (offers_external && our_certificate_valid) return AuthMethod::sasl_external;
  if (offers_dialback) return AuthMethod::dialback;
  return AuthMethod::none;
}

Policy::DialbackDecision Policy::inbound_dialback(std::string_view originating_domain, bool certificate_valid) const {
  if (!allowed(originating_domain)) return DialbackDecision::refuse;
  if (certificate_valid) return DialbackDecision::accept_certificate;
  if (requires_secure_auth(originating_domain)) return DialbackDecision::refuse;
  return DialbackDecision::verify;
}

}  // namespace parley::s2s
