#include "xmpp/jid.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stringprep.h>

#include <algorithm>
#include <array>
#include <vector>

namespace parley::xmpp {

namespace {

// RFC 7622 §3.2-3.4: at most 1023 octets per part once prepared.
constexpr std::size_t max_part_bytes = 1023;

// Input this long cannot plausibly prepare down to max_part_bytes; refusing it
// before stringprep bounds the work a hostile peer can ask for.
constexpr std::size_t max_input_bytes = 8 * 1024;

bool is_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_ascii_control(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

// Runs a libidn stringprep profile. The buffer holds the input and, in place,
// the output; sizing it to the larger of the two limits means that a "buffer
// too small" answer can only come from an output over max_part_bytes.
std::optional<std::string> run_stringprep(std::string_view input,
                                          const Stringprep_profile* profile) {
  if (input.size() > max_input_bytes || input.find('\0') != std::string_view::npos)
    return std::nullopt;
  std::vector<char> buffer(std::max(input.size(), max_part_bytes) + 1, '\0');
  std::copy(input.begin(), input.end(), buffer.begin());
  if (stringprep(buffer.data(), buffer.size(), Stringprep_profile_flags(0), profile) !=
      STRINGPREP_OK) {
    return std::nullopt;
  }
  return std::string(buffer.data());
}

// For ASCII input the stringprep profiles reduce to these rules (no ASCII
// character is mapped to nothing, changed by NFKC or bidirectional), which
// spares the common case the UCS-4 round trip through libidn.
std::optional<std::string> ascii_nodeprep(std::string_view local) {
  constexpr std::string_view prohibited = " \"&'/:<>@";
  std::string prepared;
  prepared.reserve(local.size());
  for (char c : local) {
    if (is_ascii_control(c) || prohibited.find(c) != std::string_view::npos) return std::nullopt;
    prepared += ascii_lower(c);
  }
  return prepared;
}

std::optional<std::string> ascii_resourceprep(std::string_view resource) {
  if (std::any_of(resource.begin(), resource.end(), is_ascii_control)) return std::nullopt;
  return std::string(resource);
}

std::string ascii_nameprep(std::string_view domain) {
  std::string prepared(domain);
  std::transform(prepared.begin(), prepared.end(), prepared.begin(), ascii_lower);
  return prepared;
}

std::optional<std::string> checked_part(std::optional<std::string> prepared) {
  if (!prepared || prepared->empty() || prepared->size() > max_part_bytes) return std::nullopt;
  return prepared;
}

// "[IPv6]" with the address lowercased.
std::optional<std::string> ipv6_literal(std::string_view domain) {
  if (domain.size() < 2 || domain.back() != ']') return std::nullopt;
  std::string address(domain.substr(1, domain.size() - 2));
  in6_addr parsed{};
  if (inet_pton(AF_INET6, address.c_str(), &parsed) != 1) return std::nullopt;
  return ascii_nameprep(domain);
}

// After nameprep, ASCII is limited to letters, digits, '-', '_' and the dots
// between non-empty labels (the STD3 host rules, with '_' that test and
// internal service names use); anything else, such as '@', '/' or a space,
// would make the JID ambiguous or unroutable.
bool valid_domain_labels(std::string_view domain) {
  bool label_empty = true;
  for (char c : domain) {
    if (c == '.') {
      if (label_empty) return false;
      label_empty = true;
      continue;
    }
    label_empty = false;
    if (static_cast<unsigned char>(c) >= 0x80) continue;
    bool allowed = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!allowed) return false;
  }
  return !label_empty;
}

// Bytes each profile leaves as they are and accepts. A part made only of
// them, within the length limit (and for a domain, with no empty label), is
// already prepared: copying it gives exactly what nodeprep, nameprep or
// resourceprep would, without their intermediate strings. That is what
// almost every JID on the wire looks like.
struct PreparedBytes {
  std::array<bool, 256> local{};
  std::array<bool, 256> domain{};
  std::array<bool, 256> resource{};
};

constexpr PreparedBytes make_prepared_bytes() {
  PreparedBytes table;
  constexpr std::string_view local_prohibited = "\"&'/:<>@";
  for (int c = 0x20; c < 0x7f; ++c) {
    const bool upper = c >= 'A' && c <= 'Z';
    table.resource[c] = true;
    table.local[c] = c != ' ' && !upper && local_prohibited.find(static_cast<char>(c)) == std::string_view::npos;
    table.domain[c] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  }
  return table;
}

constexpr PreparedBytes prepared_bytes = make_prepared_bytes();

bool already_prepared(std::string_view part, const std::array<bool, 256>& allowed) {
  if (part.empty() || part.size() > max_part_bytes) return false;
  return std::all_of(part.begin(), part.end(), [&](char c) { return allowed[static_cast<unsigned char>(c)]; });
}

bool already_prepared_domain(std::string_view domain) {
  return already_prepared(domain, prepared_bytes.domain) && domain.front() != '.' && domain.back() != '.' &&
         domain.find("..") == std::string_view::npos;
}

}  // namespace

std::optional<std::string> nodeprep(std::string_view local) {
  if (is_ascii(local)) return checked_part(ascii_nodeprep(local));
  return checked_part(run_stringprep(local, stringprep_xmpp_nodeprep));
}

std::optional<std::string> resourceprep(std::string_view resource) {
  if (is_ascii(resource)) return checked_part(ascii_resourceprep(resource));
  return checked_part(run_stringprep(resource, stringprep_xmpp_resourceprep));
}

std::optional<std::string> nameprep(std::string_view domain) {
  // RFC 7622 §3.2: a trailing label separator is not part of the domain.
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (!domain.empty() && domain.front() == '[') return checked_part(ipv6_literal(domain));
  std::optional<std::string> prepared =
      checked_part(is_ascii(domain) ? std::optional(ascii_nameprep(domain))
                                    : run_stringprep(domain, stringprep_nameprep));
  if (!prepared || !valid_domain_labels(*prepared)) return std::nullopt;
  return prepared;
}

std::optional<Jid> Jid::from_parts(std::string_view local, std::string_view domain,
                                   std::string_view resource) {
  Jid jid;
  if (already_prepared(local, prepared_bytes.local)) {
    jid.local_.assign(local);
  } else if (!local.empty()) {
    std::optional<std::string> prepared = nodeprep(local);
    if (!prepared) return std::nullopt;
    jid.local_ = std::move(*prepared);
  }
  if (already_prepared_domain(domain)) {
    jid.domain_.assign(domain);
  } else {
    std::optional<std::string> prepared_domain = nameprep(domain);
    if (!prepared_domain) return std::nullopt;
    jid.domain_ = std::move(*prepared_domain);
  }
  if (already_prepared(resource, prepared_bytes.resource)) {
    jid.resource_.assign(resource);
  } else if (!resource.empty()) {
    std::optional<std::string> prepared = resourceprep(resource);
    if (!prepared) return std::nullopt;
    jid.resource_ = std::move(*prepared);
  }
  return jid;
}

// RFC 7622 §3.1: the resourcepart is everything after the first '/', the
// localpart everything before the first '@' that precedes it.
std::optional<Jid> Jid::parse(std::string_view text) {
  std::string_view resource;
  std::size_t slash = text.find('/');
  if (slash != std::string_view::npos) {
    resource = text.substr(slash + 1);
    if (resource.empty()) return std::nullopt;
    text = text.substr(0, slash);
  }
  std::string_view local;
  std::size_t at = text.find('@');
  if (at != std::string_view::npos) {
    local = text.substr(0, at);
    if (local.empty()) return std::nullopt;
    text = text.substr(at + 1);
  }
  return from_parts(local, text, resource);
}

Jid Jid::bare() const {
  Jid jid;
  jid.local_ = local_;
  jid.domain_ = domain_;
  return jid;
}

std::optional<Jid> Jid::with_resource(std::string_view resource) const {
  if (empty()) return std::nullopt;
  std::optional<std::string> prepared = resourceprep(resource);
  if (!prepared) return std::nullopt;
  Jid jid = bare();
  jid.resource_ = std::move(*prepared);
  return jid;
}

std::string Jid::bare_str() const {
  if (local_.empty()) return domain_;
  std::string text;
  text.reserve(local_.size() + 1 + domain_.size());
  text += local_;
  text += '@';
  text += domain_;
  return text;
}

std::string Jid::str() const {
  if (resource_.empty()) return bare_str();
  std::string text;
  text.reserve(local_.size() + 1 + domain_.size() + 1 + resource_.size());
  if (!local_.empty()) {
    text += local_;
    text += '@';
  }
  text += domain_;
  text += '/';
  text += resource_;
  return text;
}

}  // namespace parley::xmpp
