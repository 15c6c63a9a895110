#include "http/upload_token.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>

#include "xmpp/sasl.hpp"

namespace parley::http {

namespace {

// Every field is length-prefixed, so no two claims share an encoding even
// when a field holds the separators of another.
void append_field(std::string& out, std::string_view field) {
  out += std::to_string(field.size());
  out += ':';
  out += field;
}

std::string mac(std::string_view secret, const SlotClaim& claim) {
  std::string message = "parley-upload-slot-v1";
  append_field(message, claim.path);
  append_field(message, std::to_string(claim.size));
  append_field(message, claim.content_type);
  append_field(message, std::to_string(claim.expires));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &length);
  return sasl::hex_encode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

}  // namespace

std::string sign_slot(std::string_view secret, const SlotClaim& claim) {
  return std::to_string(claim.expires) + "." + mac(secret, claim);
}

bool verify_slot(std::string_view secret, const SlotClaim& claim, std::string_view token, std::int64_t now) {
  const auto dot = token.find('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  std::int64_t expires = 0;
  const auto expiry_text = token.substr(0, dot);
  const auto [end, error] = std::from_chars(expiry_text.data(), expiry_text.data() + expiry_text.size(), expires);
  if (error != std::errc() || end != expiry_text.data() + expiry_text.size() || expires < now) return false;
  SlotClaim signed_claim = claim;
  signed_claim.expires = expires;
  const auto expected = mac(secret, signed_claim);
  const auto given = token.substr(dot + 1);
  return given.size() == expected.size() && CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0;
}

std::string_view bearer_token(std::string_view authorization) {
  constexpr std::string_view scheme = "bearer ";
  if (authorization.size() <= scheme.size()) return {};
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    const char c = authorization[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != scheme[i]) return {};
  }
  auto token = authorization.substr(scheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  return token;
}

}  // namespace parley::http
