#include "components/protocol.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <array>

#include "xmpp/jid.hpp"
#include "xmpp/sasl.hpp"

namespace parley::components {

namespace {

char lower_ascii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace

std::string handshake_digest(std::string_view stream_id, std::string_view secret) {
  std::string input;
  input.reserve(stream_id.size() + secret.size());
  input.append(stream_id).append(secret);
  std::array<unsigned char, SHA_DIGEST_LENGTH> digest{};
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest.data());
  OPENSSL_cleanse(input.data(), input.size());
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(digest.size() * 2);
  for (unsigned char byte : digest) {
    hex += digits[byte >> 4];
    hex += digits[byte & 15];
  }
  return hex;
}

bool handshake_matches(std::string_view received, std::string_view stream_id, std::string_view secret) {
  std::string normalised(trim(received));
  for (char& c : normalised) c = lower_ascii(c);
  return sasl::constant_time_equal(normalised, handshake_digest(stream_id, secret));
}

std::string_view address_error(const xml::Element& stanza, std::string_view domain) {
  const std::string* from = stanza.find_attr("from");
  if (!from || !stanza.has_attr("to")) return "improper-addressing";
  const auto sender = xmpp::Jid::parse(*from);
  if (!sender || sender->domain() != domain) return "invalid-from";
  return {};
}

}  // namespace parley::components
