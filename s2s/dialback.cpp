#include "s2s/dialback.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <array>

#include "xmpp/sasl.hpp"

namespace parley::s2s {

namespace {

std::string_view trim(std::string_view text) {
  constexpr std::string_view space = " \t\r\n";
  const auto first = text.find_first_not_of(space);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

}  // namespace

std::string dialback_key(std::string_view secret, std::string_view receiving_domain,
                         std::string_view originating_domain, std::string_view stream_id) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> secret_hash{};
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), secret_hash.data());
  const std::string hmac_key = sasl::hex_encode(std::string_view(reinterpret_cast<const char*>(secret_hash.data()), secret_hash.size()));
  std::string text;
  text.reserve(receiving_domain.size() + originating_domain.size() + stream_id.size() + 2);
  text.append(receiving_domain).append(" ").append(originating_domain).append(" ").append(stream_id);
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), hmac_key.data(), static_cast<int>(hmac_key.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac.data(), &length);
  return sasl::hex_encode(std::string_view(reinterpret_cast<const char*>(mac.data()), length));
}

bool dialback_key_matches(std::string_view secret, std::string_view receiving_domain,
                          std::string_view originating_domain, std::string_view stream_id,
                          std::string_view offered_key) {
  if (stream_id.empty()) return false;
  const auto expected = dialback_key(secret, receiving_domain, originating_domain, stream_id);
  return sasl::constant_time_equal(expected, trim(offered_key));
}

}  // namespace parley::s2s
