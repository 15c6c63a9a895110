#include "xmpp/sasl.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stringprep.h>

#include <array>
#include <climits>
#include <stdexcept>

namespace parley::sasl {

namespace {

const EVP_MD* digest(Hash hash) { return hash == Hash::sha1 ? EVP_sha1() : EVP_sha256(); }

std::size_t digest_size(Hash hash) {
  return static_cast<std::size_t>(EVP_MD_get_size(digest(hash)));
}

const unsigned char* bytes_of(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

std::string hmac(Hash hash, std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int length = 0;
  if (HMAC(digest(hash), key.data(), static_cast<int>(key.size()), bytes_of(data), data.size(),
           out.data(), &length) == nullptr) {
    throw std::runtime_error("HMAC failed");
  }
  return {reinterpret_cast<const char*>(out.data()), length};
}

std::string digest_of(Hash hash, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &length, digest(hash), nullptr) != 1) {
    throw std::runtime_error("digest failed");
  }
  return {reinterpret_cast<const char*>(out.data()), length};
}

// RFC 5802 Hi() is PBKDF2 with the HMAC of the hash and dkLen = hLen.
std::string hi(Hash hash, std::string_view password, std::string_view salt,
               std::uint32_t iterations) {
  if (iterations == 0 || iterations > INT_MAX) {
    throw std::invalid_argument("SCRAM iteration count out of range");
  }
  std::string out(digest_size(hash), '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), bytes_of(salt),
                        static_cast<int>(salt.size()), static_cast<int>(iterations), digest(hash),
                        static_cast<int>(out.size()),
                        reinterpret_cast<unsigned char*>(out.data())) != 1) {
    throw std::runtime_error("PBKDF2 failed");
  }
  return out;
}

bool valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    std::uint32_t code_point = 0;
    std::uint32_t minimum = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code_point = lead & 0x1F;
      minimum = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code_point = lead & 0x0F;
      minimum = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code_point = lead & 0x07;
      minimum = 0x10000;
    } else {
      return false;
    }
    if (text.size() - i < length) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto continuation = static_cast<unsigned char>(text[i + k]);
      if ((continuation & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (continuation & 0x3F);
    }
    if (code_point < minimum || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return false;
    }
    i += length;
  }
  return true;
}

Failure malformed(std::string text) { return {"malformed-request", std::move(text)}; }
Failure not_authorized(std::string text) { return {"not-authorized", std::move(text)}; }

// RFC 5802 saslname: "=2C" and "=3D" stand for ',' and '='; a bare '=' is
// invalid, and so is an empty name.
std::optional<std::string> decode_saslname(std::string_view encoded) {
  if (encoded.empty()) return std::nullopt;
  std::string decoded;
  decoded.reserve(encoded.size());
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    const char c = encoded[i];
    if (c == '\0') return std::nullopt;
    if (c != '=') {
      decoded += c;
      continue;
    }
    const auto escape = encoded.substr(i + 1, 2);
    if (escape == "2C") {
      decoded += ',';
    } else if (escape == "3D") {
      decoded += '=';
    } else {
      return std::nullopt;
    }
    i += 2;
  }
  if (!valid_utf8(decoded)) return std::nullopt;
  return decoded;
}

// RFC 5802 "printable": ASCII 0x21-0x7E except ','.
bool printable_nonce(std::string_view nonce) {
  if (nonce.empty()) return false;
  for (const char c : nonce) {
    if (c < 0x21 || c > 0x7E || c == ',') return false;
  }
  return true;
}

bool alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// RFC 5802 attr-val extension: ALPHA "=" 1*value-char.
bool valid_extension(std::string_view attribute) {
  return attribute.size() >= 3 && alpha(attribute[0]) && attribute[1] == '=' &&
         attribute.find('\0') == std::string_view::npos && valid_utf8(attribute);
}

// cb-name = 1*(ALPHA / DIGIT / "." / "-")
bool valid_cb_name(std::string_view name) {
  if (name.empty()) return false;
  for (const char c : name) {
    if (!alpha(c) && !(c >= '0' && c <= '9') && c != '.' && c != '-') return false;
  }
  return true;
}

std::vector<std::string_view> split_attributes(std::string_view message) {
  std::vector<std::string_view> attributes;
  std::size_t start = 0;
  for (;;) {
    const auto comma = message.find(',', start);
    attributes.push_back(message.substr(start, comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return attributes;
}

std::optional<std::string_view> attribute_value(std::string_view attribute, char name) {
  if (attribute.size() < 2 || attribute[0] != name || attribute[1] != '=') return std::nullopt;
  return attribute.substr(2);
}

// A secret for this process only: unknown users get the same fake salt on
// every attempt (as a real account would), yet no one can predict it.
const std::string& fake_salt_secret() {
  static const std::string secret = random_bytes(32);
  return secret;
}

constexpr std::size_t salt_size = 16;
constexpr std::size_t server_nonce_size = 18;

}  // namespace

ScramCredentials derive_credentials(Hash hash, std::string_view password, std::string_view salt,
                                    std::uint32_t iterations) {
  const auto prepared = saslprep(password);
  if (!prepared) throw std::invalid_argument("password is prohibited by SASLprep");
  const auto salted_password = hi(hash, *prepared, salt, iterations);
  ScramCredentials credentials;
  credentials.salt = std::string(salt);
  credentials.iterations = iterations;
  credentials.stored_key = digest_of(hash, hmac(hash, salted_password, "Client Key"));
  credentials.server_key = hmac(hash, salted_password, "Server Key");
  return credentials;
}

ScramCredentials make_credentials(Hash hash, std::string_view password, std::uint32_t iterations) {
  return derive_credentials(hash, password, random_bytes(salt_size), iterations);
}

bool verify_password(Hash hash, std::string_view password, const ScramCredentials& credentials) {
  if (!saslprep(password) || credentials.iterations == 0 || credentials.iterations > INT_MAX) {
    return false;
  }
  const auto candidate =
      derive_credentials(hash, password, credentials.salt, credentials.iterations);
  const bool stored_matches = constant_time_equal(candidate.stored_key, credentials.stored_key);
  const bool server_matches = constant_time_equal(candidate.server_key, credentials.server_key);
  return stored_matches && server_matches;
}

namespace {

constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::string hex_encode(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  std::string text;
  text.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t group = (static_cast<unsigned char>(bytes[i]) << 16) |
                                (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                                static_cast<unsigned char>(bytes[i + 2]);
    text += base64_alphabet[(group >> 18) & 0x3F];
    text += base64_alphabet[(group >> 12) & 0x3F];
    text += base64_alphabet[(group >> 6) & 0x3F];
    text += base64_alphabet[group & 0x3F];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t group = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (rest == 2) {
      group |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    }
    text += base64_alphabet[(group >> 18) & 0x3F];
    text += base64_alphabet[(group >> 12) & 0x3F];
    text += rest == 2 ? base64_alphabet[(group >> 6) & 0x3F] : '=';
    text += '=';
  }
  return text;
}

// Strict RFC 4648 §4: full quartets, padding only at the very end, no
// whitespace, and the unused bits before padding must be zero, so every
// byte string has exactly one accepted encoding.
std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string bytes;
  bytes.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last_quartet = i + 4 == text.size();
    std::array<int, 4> values{};
    int padding = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=') {
        if (!last_quartet || k < 2) return std::nullopt;
        ++padding;
        continue;
      }
      if (padding > 0) return std::nullopt;
      values[k] = base64_value(c);
      if (values[k] < 0) return std::nullopt;
    }
    if ((padding == 2 && (values[1] & 0x0F) != 0) || (padding == 1 && (values[2] & 0x03) != 0)) {
      return std::nullopt;
    }
    const std::uint32_t group = (static_cast<std::uint32_t>(values[0]) << 18) |
                                (static_cast<std::uint32_t>(values[1]) << 12) |
                                (static_cast<std::uint32_t>(values[2]) << 6) |
                                static_cast<std::uint32_t>(values[3]);
    bytes += static_cast<char>((group >> 16) & 0xFF);
    if (padding < 2) bytes += static_cast<char>((group >> 8) & 0xFF);
    if (padding < 1) bytes += static_cast<char>(group & 0xFF);
  }
  return bytes;
}

std::string random_bytes(std::size_t count) {
  std::string bytes(count, '\0');
  if (count > INT_MAX ||
      RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(count)) != 1) {
    throw std::runtime_error("random number generator failed");
  }
  return bytes;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<std::string> saslprep(std::string_view text) {
  // libidn reads a C string, so an embedded NUL (prohibited anyway) would
  // silently cut the input short; it also trusts its input to be UTF-8.
  if (text.find('\0') != std::string_view::npos || !valid_utf8(text)) return std::nullopt;
  // NFKC can expand the text (up to 18 code points for one), so grow the
  // buffer on demand, up to a bound no valid expansion exceeds.
  const std::size_t largest = text.size() * 64 + 64;
  for (std::size_t capacity = text.size() * 2 + 16; capacity <= largest; capacity *= 2) {
    std::string buffer(text);
    buffer.resize(capacity, '\0');
    const int result =
        stringprep(buffer.data(), capacity, Stringprep_profile_flags(0), stringprep_saslprep);
    if (result == STRINGPREP_OK) {
      buffer.resize(buffer.find('\0'));
      return buffer;
    }
    if (result != STRINGPREP_TOO_SMALL_BUFFER) return std::nullopt;
  }
  return std::nullopt;
}

ScramServer::ScramServer(Hash hash, bool plus, ChannelBindingProvider channel_binding,
                         bool plus_offered)
    : hash_(hash),
      plus_(plus),
      channel_binding_(std::move(channel_binding)),
      plus_offered_(plus_offered) {}

void ScramServer::set_server_nonce_for_testing(std::string server_nonce) {
  server_nonce_for_testing_ = std::move(server_nonce);
}

std::variant<ScramServer::ClientFirst, Failure> ScramServer::client_first(
    std::string_view message) {
  if (step_ != Step::client_first) return malformed("unexpected client-first-message");
  step_ = Step::done;

  // gs2-header = gs2-cbind-flag "," [ authzid ] ","
  const auto flag_end = message.find(',');
  if (flag_end == std::string_view::npos) return malformed("missing GS2 header");
  const auto flag = message.substr(0, flag_end);
  const auto authzid_end = message.find(',', flag_end + 1);
  if (authzid_end == std::string_view::npos) return malformed("missing GS2 header");
  const auto authzid_field = message.substr(flag_end + 1, authzid_end - flag_end - 1);

  if (flag == "n" || flag == "y") {
    if (plus_) return malformed("the -PLUS mechanism requires channel binding");
    // RFC 5802 §6: "y" claims the server offers no channel binding; when it
    // did, someone stripped the -PLUS mechanisms on the way.
    if (flag == "y" && plus_offered_) return not_authorized("channel binding downgrade detected");
  } else if (const auto cb_type = attribute_value(flag, 'p')) {
    if (!valid_cb_name(*cb_type)) return malformed("invalid channel binding type");
    if (!plus_) return malformed("channel binding requested on a mechanism without it");
    if (!channel_binding_ || !channel_binding_(*cb_type)) {
      return not_authorized("unsupported channel binding type");
    }
    cb_type_ = std::string(*cb_type);
  } else {
    return malformed("invalid GS2 channel binding flag");
  }

  std::string authzid;
  if (!authzid_field.empty()) {
    const auto encoded = attribute_value(authzid_field, 'a');
    if (!encoded) return malformed("invalid GS2 authzid");
    auto decoded = decode_saslname(*encoded);
    if (!decoded) return malformed("invalid authzid encoding");
    authzid = std::move(*decoded);
  }

  const auto bare = message.substr(authzid_end + 1);
  const auto attributes = split_attributes(bare);
  if (attribute_value(attributes[0], 'm')) {
    return malformed("mandatory extensions are not supported");
  }
  const auto encoded_username = attribute_value(attributes[0], 'n');
  if (!encoded_username) return malformed("missing username");
  const auto decoded_username = decode_saslname(*encoded_username);
  if (!decoded_username) return malformed("invalid username encoding");
  if (attributes.size() < 2) return malformed("missing nonce");
  const auto client_nonce = attribute_value(attributes[1], 'r');
  if (!client_nonce || !printable_nonce(*client_nonce)) return malformed("invalid nonce");
  for (std::size_t i = 2; i < attributes.size(); ++i) {
    if (!valid_extension(attributes[i])) return malformed("invalid attribute");
  }

  auto username = saslprep(*decoded_username);
  if (!username || username->empty()) return not_authorized("username is prohibited by SASLprep");

  gs2_header_ = std::string(message.substr(0, authzid_end + 1));
  client_first_bare_ = std::string(bare);
  nonce_ = std::string(*client_nonce);
  fake_credentials_.salt = hmac(Hash::sha256, fake_salt_secret(),
                                std::string(mechanism_name(hash_, false)) + '\0' + *username)
                               .substr(0, salt_size);
  fake_credentials_.iterations = default_iterations;
  fake_credentials_.stored_key = random_bytes(digest_size(hash_));
  fake_credentials_.server_key = random_bytes(digest_size(hash_));
  step_ = Step::server_first;
  return ClientFirst{std::move(*username), std::move(authzid)};
}

std::string ScramServer::server_first(const std::optional<ScramCredentials>& credentials) {
  if (step_ != Step::server_first) {
    step_ = Step::done;
    return {};
  }
  // A damaged account record gets the unknown user's treatment rather than
  // a crash or an exception in the middle of the exchange.
  const bool usable = credentials && credentials->iterations > 0 &&
                      credentials->iterations <= INT_MAX &&
                      credentials->stored_key.size() == digest_size(hash_) &&
                      credentials->server_key.size() == digest_size(hash_);
  if (usable) credentials_ = credentials;
  const auto& presented = usable ? *credentials : fake_credentials_;

  const std::string server_nonce = server_nonce_for_testing_.empty()
                                       ? base64_encode(random_bytes(server_nonce_size))
                                       : server_nonce_for_testing_;
  nonce_ += server_nonce;
  server_first_ = "r=" + nonce_ + ",s=" + base64_encode(presented.salt) +
                  ",i=" + std::to_string(presented.iterations);
  step_ = Step::client_final;
  return server_first_;
}

std::variant<std::string, Failure> ScramServer::client_final(std::string_view message) {
  if (step_ != Step::client_final) return malformed("unexpected client-final-message");
  step_ = Step::done;

  // client-final-message = "c=" base64 "," "r=" nonce ["," extensions] "," "p=" base64
  const auto attributes = split_attributes(message);
  if (attributes.size() < 3) return malformed("incomplete client-final-message");
  const auto channel_binding = attribute_value(attributes[0], 'c');
  const auto nonce = attribute_value(attributes[1], 'r');
  const auto proof_text = attribute_value(attributes.back(), 'p');
  if (!channel_binding || !nonce || !proof_text) return malformed("invalid client-final-message");
  for (std::size_t i = 2; i + 1 < attributes.size(); ++i) {
    if (!valid_extension(attributes[i])) return malformed("invalid attribute");
  }
  const auto binding = base64_decode(*channel_binding);
  const auto proof = base64_decode(*proof_text);
  if (!binding || !proof) return malformed("invalid base64");
  if (proof->size() != digest_size(hash_)) return malformed("invalid proof length");

  std::string expected_binding = gs2_header_;
  if (!cb_type_.empty()) {
    const auto data = channel_binding_(cb_type_);
    if (!data) return not_authorized("channel binding data unavailable");
    expected_binding += *data;
  }
  if (*binding != expected_binding) return not_authorized("channel binding mismatch");
  if (*nonce != nonce_) return not_authorized("nonce mismatch");

  const auto without_proof = message.substr(0, message.size() - attributes.back().size() - 1);
  const std::string auth_message =
      client_first_bare_ + ',' + server_first_ + ',' + std::string(without_proof);
  const auto& credentials = credentials_ ? *credentials_ : fake_credentials_;

  const auto client_signature = hmac(hash_, credentials.stored_key, auth_message);
  std::string client_key(proof->size(), '\0');
  for (std::size_t i = 0; i < client_key.size(); ++i) {
    client_key[i] = static_cast<char>((*proof)[i] ^ client_signature[i]);
  }
  const bool proof_matches =
      constant_time_equal(digest_of(hash_, client_key), credentials.stored_key);
  if (!proof_matches || !credentials_) return not_authorized("");

  return "v=" + base64_encode(hmac(hash_, credentials.server_key, auth_message));
}

std::variant<PlainCredentials, Failure> parse_plain(std::string_view message) {
  // message = [authzid] NUL authcid NUL passwd (RFC 4616 §2)
  const auto first = message.find('\0');
  if (first == std::string_view::npos) return malformed("missing NUL separator");
  const auto second = message.find('\0', first + 1);
  if (second == std::string_view::npos) return malformed("missing NUL separator");
  if (message.find('\0', second + 1) != std::string_view::npos) {
    return malformed("too many NUL separators");
  }
  const auto authzid = message.substr(0, first);
  const auto authcid = message.substr(first + 1, second - first - 1);
  const auto password = message.substr(second + 1);
  if (authcid.empty() || password.empty()) return malformed("empty username or password");
  if (!valid_utf8(authzid) || !valid_utf8(authcid) || !valid_utf8(password)) {
    return malformed("invalid UTF-8");
  }
  auto username = saslprep(authcid);
  if (!username || username->empty()) return not_authorized("username is prohibited by SASLprep");
  return PlainCredentials{std::string(authzid), std::move(*username), std::string(password)};
}

std::string_view mechanism_name(Hash hash, bool plus) {
  if (hash == Hash::sha1) return plus ? "SCRAM-SHA-1-PLUS" : "SCRAM-SHA-1";
  return plus ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256";
}

}  // namespace parley::sasl
