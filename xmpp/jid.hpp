// JIDs per RFC 7622 with the stringprep profiles of RFC 6122 (nodeprep,
// nameprep, resourceprep) from libidn.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace parley::xmpp {

class Jid {
 public:
  Jid() = default;

  // Parses and normalises; nullopt when malformed (empty domain, a part over
  // 1023 bytes, prohibited characters, empty localpart before '@' or empty
  // resource after '/').
  static std::optional<Jid> parse(std::string_view text);
  // Builds from parts, each normalised; nullopt when any part is invalid.
  static std::optional<Jid> from_parts(std::string_view local, std::string_view domain,
                                       std::string_view resource = {});

  const std::string& local() const { return local_; }
  const std::string& domain() const { return domain_; }
  const std::string& resource() const { return resource_; }

  bool empty() const { return domain_.empty(); }
  bool is_bare() const { return resource_.empty(); }
  bool is_domain() const { return local_.empty() && resource_.empty(); }
  Jid bare() const;
  // This JID with another resource; nullopt when the resource is invalid.
  std::optional<Jid> with_resource(std::string_view resource) const;

  std::string str() const;       // local@domain/resource
  std::string bare_str() const;  // local@domain

  bool operator==(const Jid&) const = default;

 private:
  std::string local_;
  std::string domain_;
  std::string resource_;
};

// Normalised localpart / domainpart / resourcepart, nullopt when invalid.
std::optional<std::string> nodeprep(std::string_view local);
std::optional<std::string> nameprep(std::string_view domain);
std::optional<std::string> resourceprep(std::string_view resource);

}  // namespace parley::xmpp

template <>
struct std::hash<parley::xmpp::Jid> {
  std::size_t operator()(const parley::xmpp::Jid& jid) const noexcept {
    return std::hash<std::string>()(jid.str());
  }
};
