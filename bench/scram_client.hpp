// Client side of SASL SCRAM-SHA-1/-256 (RFC 5802, RFC 7677) without channel
// binding, and PLAIN (RFC 4616): what a load generator needs to log in to any
// server. Pure computation, no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "xmpp/sasl.hpp"

namespace parley::bench {

class ScramClient {
 public:
  // client_nonce: printable, without ','; empty picks a random one.
  ScramClient(sasl::Hash hash, std::string username, std::string password,
              std::string client_nonce = {});

  // client-first-message ("n,,n=user,r=nonce"), to be base64-encoded into <auth/>.
  std::string first_message() const;
  // client-final-message for the server-first-message, or nullopt when the
  // server's message is malformed, its nonce does not extend ours or its
  // iteration count is below min_iterations.
  std::optional<std::string> final_message(std::string_view server_first,
                                           unsigned min_iterations = 1);
  // Whether server-final-message ("v=...") proves the server knew our keys.
  bool verify_server_final(std::string_view server_final) const;

 private:
  sasl::Hash hash_;
  std::string username_;
  std::string password_;
  std::string client_nonce_;
  std::string auth_message_;
  std::string salted_password_;
};

// The SASL PLAIN message: authzid NUL authcid NUL password (empty authzid).
std::string plain_message(std::string_view username, std::string_view password);

// "=" and "," escaped as RFC 5802 §5.1 wants in the n= attribute.
std::string escape_scram_name(std::string_view name);

}  // namespace parley::bench
