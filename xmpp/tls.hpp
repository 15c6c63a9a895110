// TLS helpers shared by every listener and outbound stream.
#pragma once

#include <openssl/ssl.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parley::tls {

// Configures a server context (e.g. asio::ssl::context::native_handle())
// with a certificate chain and private key (PEM files). Throws
// std::runtime_error naming the file and OpenSSL's reason. TLS 1.2+ only,
// SSL_MODE_RELEASE_BUFFERS set. alpn: protocol names the server selects
// (e.g. "xmpp-client"); a client offering none of them is still accepted.
// The alpn strings must outlive ctx; keep them in a static or owner.
void configure_server_context(SSL_CTX* ctx, const std::string& cert_file,
                              const std::string& key_file, const std::vector<std::string>* alpn);

// RFC 5929 / RFC 9266 channel binding data of an established connection:
// "tls-exporter" (TLS 1.3 and 1.2 with extended master secret),
// "tls-server-end-point" (hash of the server's certificate), "tls-unique"
// (TLS 1.2 with extended master secret only: without it tls-unique is open to
// the triple handshake attack, RFC 7627). nullopt before the handshake ends or
// when the type does not apply to the connection.
std::optional<std::string> channel_binding(SSL* ssl, std::string_view type, bool is_server);

// "TLSv1.3", cipher name etc. for logs and parleyctl.
std::string version(const SSL* ssl);
std::string cipher(const SSL* ssl);

}  // namespace parley::tls

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <mutex>
#include <unordered_map>

namespace parley::tls {

// What every context of a store shares with its SNI and ALPN callbacks; each
// context keeps it alive, so it outlives reloads and the store itself.
struct CertificateStoreShared;

struct CertificateFiles {
  std::string domain;  // host the certificate serves
  std::string cert_file;
  std::string key_file;
};

// The server's certificates, one TLS context per host, replaceable at run
// time (SIGHUP) without touching established connections. Each context
// selects the right host's certificate from the client's SNI.
class CertificateStore {
 public:
  explicit CertificateStore(std::vector<std::string> alpn = {});
  // Loads every pair (all or nothing: on an error the old set stays and
  // std::runtime_error names the file).
  void load(const std::vector<CertificateFiles>& files);
  // The context for a host: its own certificate, else the one loaded for the
  // wildcard "*.parent", else the first loaded one. Null when nothing is loaded.
  std::shared_ptr<boost::asio::ssl::context> context_for(std::string_view domain) const;

 private:
  std::shared_ptr<CertificateStoreShared> shared_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<boost::asio::ssl::context>> by_domain_;
  std::shared_ptr<boost::asio::ssl::context> fallback_;
};

}  // namespace parley::tls
