#include "bench/scram_client.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>
#include <stdexcept>

namespace parley::bench {
namespace {

const EVP_MD* digest(sasl::Hash hash) { return hash == sasl::Hash::sha1 ? EVP_sha1() : EVP_sha256(); }

std::string hmac(sasl::Hash hash, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(digest(hash), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &length);
  return std::string(reinterpret_cast<const char*>(out), length);
}

std::string hash_of(sasl::Hash hash, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), out, &length, digest(hash), nullptr);
  return std::string(reinterpret_cast<const char*>(out), length);
}

std::string xor_bytes(std::string_view a, std::string_view b) {
  std::string out(a);
  for (std::size_t i = 0; i < out.size() && i < b.size(); ++i) out[i] = static_cast<char>(out[i] ^ b[i]);
  return out;
}

// Value of "k=" in a comma-separated SCRAM message, when present.
std::optional<std::string_view> attribute(std::string_view message, char key) {
  while (!message.empty()) {
    auto comma = message.find(',');
    auto part = message.substr(0, comma);
    if (part.size() >= 2 && part[0] == key && part[1] == '=') return part.substr(2);
    if (comma == std::string_view::npos) break;
    message.remove_prefix(comma + 1);
  }
  return std::nullopt;
}

constexpr std::string_view gs2_header = "n,,";

}  // namespace

std::string escape_scram_name(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (c == '=') {
      out += "=3D";
    } else if (c == ',') {
      out += "=2C";
    } else {
      out += c;
    }
  }
  return out;
}

ScramClient::ScramClient(sasl::Hash hash, std::string username, std::string password,
                         std::string client_nonce)
    : hash_(hash), username_(std::move(username)), password_(std::move(password)),
      client_nonce_(std::move(client_nonce)) {
  if (client_nonce_.empty()) client_nonce_ = sasl::base64_encode(sasl::random_bytes(18));
  if (client_nonce_.find(',') != std::string::npos) throw std::invalid_argument("SCRAM nonce with ','");
}

std::string ScramClient::first_message() const {
  return std::string(gs2_header) + "n=" + escape_scram_name(username_) + ",r=" + client_nonce_;
}

std::optional<std::string> ScramClient::final_message(std::string_view server_first,
                                                      unsigned min_iterations) {
  auto nonce = attribute(server_first, 'r');
  auto salt_text = attribute(server_first, 's');
  auto iterations_text = attribute(server_first, 'i');
  if (!nonce || !salt_text || !iterations_text) return std::nullopt;
  if (nonce->size() <= client_nonce_.size() || !nonce->starts_with(client_nonce_)) return std::nullopt;
  auto salt = sasl::base64_decode(*salt_text);
  unsigned iterations = 0;
  auto [end, error] = std::from_chars(iterations_text->data(),
                                      iterations_text->data() + iterations_text->size(), iterations);
  if (!salt || salt->empty() || error != std::errc() ||
      end != iterations_text->data() + iterations_text->size() || iterations < min_iterations) {
    return std::nullopt;
  }

  salted_password_.assign(static_cast<std::size_t>(EVP_MD_get_size(digest(hash_))), '\0');
  PKCS5_PBKDF2_HMAC(password_.data(), static_cast<int>(password_.size()),
                    reinterpret_cast<const unsigned char*>(salt->data()), static_cast<int>(salt->size()),
                    static_cast<int>(iterations), digest(hash_), static_cast<int>(salted_password_.size()),
                    reinterpret_cast<unsigned char*>(salted_password_.data()));

  std::string final_without_proof = "c=" + sasl::base64_encode(gs2_header) + ",r=" + std::string(*nonce);
  auto first_bare = first_message().substr(gs2_header.size());
  auth_message_ = first_bare + "," + std::string(server_first) + "," + final_without_proof;
  auto client_key = hmac(hash_, salted_password_, "Client Key");
  auto signature = hmac(hash_, hash_of(hash_, client_key), auth_message_);
  return final_without_proof + ",p=" + sasl::base64_encode(xor_bytes(client_key, signature));
}

bool ScramClient::verify_server_final(std::string_view server_final) const {
  if (salted_password_.empty()) return false;
  auto verifier = attribute(server_final, 'v');
  if (!verifier) return false;
  auto server_key = hmac(hash_, salted_password_, "Server Key");
  return sasl::constant_time_equal(*verifier, sasl::base64_encode(hmac(hash_, server_key, auth_message_)));
}

std::string plain_message(std::string_view username, std::string_view password) {
  std::string message;
  message.reserve(username.size() + password.size() + 2);
  message += '\0';
  message += username;
  message += '\0';
  message += password;
  return message;
}

}  // namespace parley::bench
