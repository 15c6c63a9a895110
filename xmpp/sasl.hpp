// SASL server mechanisms: SCRAM-SHA-1/-256 with and without channel binding
// (RFC 5802, RFC 7677, RFC 9266 tls-exporter, RFC 5929 tls-server-end-point)
// and PLAIN (RFC 4616). Pure computation on OpenSSL primitives, no I/O: the
// caller fetches credentials between steps.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace parley::sasl {

enum class Hash { sha1, sha256 };

// What the server stores for an account per hash: never the password.
struct ScramCredentials {
  std::string salt;        // raw bytes
  std::uint32_t iterations = 0;
  std::string stored_key;  // raw bytes, H(ClientKey)
  std::string server_key;  // raw bytes
  bool operator==(const ScramCredentials&) const = default;
};

inline constexpr std::uint32_t default_iterations = 4096;

ScramCredentials derive_credentials(Hash hash, std::string_view password, std::string_view salt,
                                    std::uint32_t iterations = default_iterations);
// Fresh random salt (16 bytes) and derivation.
ScramCredentials make_credentials(Hash hash, std::string_view password,
                                  std::uint32_t iterations = default_iterations);
// Constant-time check of a password against stored credentials (for PLAIN).
bool verify_password(Hash hash, std::string_view password, const ScramCredentials& credentials);

std::string base64_encode(std::string_view bytes);
// Lower-case hexadecimal, two digits per byte (ids, keys, fingerprints).
std::string hex_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);  // nullopt when invalid
std::string random_bytes(std::size_t count);
bool constant_time_equal(std::string_view a, std::string_view b);

// SASLprep (RFC 4013) of a username or password; nullopt when prohibited.
std::optional<std::string> saslprep(std::string_view text);

// Channel binding data the TLS layer can provide, by type name.
using ChannelBindingProvider = std::function<std::optional<std::string>(std::string_view type)>;

// RFC 6120 §6.4.4 / RFC 3920 failure conditions, as element names.
struct Failure {
  std::string condition;  // "not-authorized", "malformed-request", "invalid-authzid", ...
  std::string text;
};

// One SCRAM exchange. Use:
//   ScramServer s(Hash::sha256, plus, cb_provider, plus_offered);
//   auto user = s.client_first(initial_response);    // Failure -> stop
//   auto creds = lookup(*user)                        // nullopt if unknown
//   auto challenge = s.server_first(creds);           // send as <challenge/>
//   auto result = s.client_final(response);           // server-final for <success/> or Failure
// Failures: "malformed-request" for bad syntax and steps out of order;
// "not-authorized" for a wrong proof, an unknown user, a SASLprep-prohibited
// username, a channel binding downgrade ("y" while -PLUS was offered), an
// unsupported channel binding type or mismatching channel binding data.
class ScramServer {
 public:
  // plus: this is the -PLUS mechanism. plus_offered: the server advertised a
  // -PLUS mechanism on this stream (a client that says "y" then is refused,
  // RFC 5802 §6). channel_binding gives the data for a cb type, or nullopt
  // when the type is unsupported.
  ScramServer(Hash hash, bool plus, ChannelBindingProvider channel_binding, bool plus_offered);

  struct ClientFirst {
    std::string username;  // SASLprep'd authcid (the localpart)
    std::string authzid;   // empty when not given
  };
  // Parses client-first-message (already base64-decoded).
  std::variant<ClientFirst, Failure> client_first(std::string_view message);
  // Builds server-first-message. With credentials == nullopt (unknown user)
  // a plausible fake challenge is produced so the exchange fails only at the end.
  // Called out of order it returns an empty string and the exchange fails.
  std::string server_first(const std::optional<ScramCredentials>& credentials);
  // Verifies client-final-message; returns server-final-message ("v=...").
  std::variant<std::string, Failure> client_final(std::string_view message);

  // For tests only (RFC test vectors): the server nonce part server_first uses
  // instead of a random one.
  void set_server_nonce_for_testing(std::string server_nonce);

 private:
  enum class Step { client_first, server_first, client_final, done };
  Step step_ = Step::client_first;
  std::string server_nonce_for_testing_;
  Hash hash_;
  bool plus_;
  ChannelBindingProvider channel_binding_;
  bool plus_offered_;
  std::string gs2_header_;
  std::string cb_type_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;
  std::optional<ScramCredentials> credentials_;
  ScramCredentials fake_credentials_;
};

struct PlainCredentials {
  std::string authzid;
  std::string username;  // SASLprep'd
  std::string password;  // as sent: verify_password prepares it
};
std::variant<PlainCredentials, Failure> parse_plain(std::string_view message);

// Mechanism names, in the order a server offers them.
std::string_view mechanism_name(Hash hash, bool plus);

}  // namespace parley::sasl
