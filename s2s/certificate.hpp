// Peer certificate checks for server-to-server streams: chain trust against
// a CA file and RFC 6125 identity (DNS-ID with wildcards, SRV-ID,
// XmppAddr).
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace parley::s2s {

// Whether a certificate names 'domain': a dNSName equal to it or a
// wildcard covering its left-most label only, an SRV-ID
// "_xmpp-server.domain", or an XmppAddr equal to the domain.
bool certificate_names_domain(X509* certificate, std::string_view domain);

// What a peer's certificate proved on one connection.
struct CertificateStatus {
  enum class Outcome { valid, untrusted, wrong_name, missing };
  Outcome outcome = Outcome::missing;
  std::string detail;  // OpenSSL's reason for untrusted; empty otherwise
  bool valid() const { return outcome == Outcome::valid; }
};

std::string_view describe(CertificateStatus::Outcome outcome);

// Trusted CAs, from a PEM file or the system's default store.
class TrustStore {
 public:
  // ca_file empty: the system's default paths. Throws std::runtime_error
  // naming the file when it cannot be read.
  explicit TrustStore(const std::string& ca_file);
  ~TrustStore();
  TrustStore(const TrustStore&) = delete;
  TrustStore& operator=(const TrustStore&) = delete;

  // Verifies leaf (with the untrusted intermediates in chain, may be null)
  // for 'domain'. A certificate presented as a client certificate (inbound
  // streams) is checked without a purpose: servers' certificates often carry
  // the serverAuth usage only, and that is what identifies a domain.
  CertificateStatus check(X509* leaf, STACK_OF(X509) * chain, std::string_view domain,
                          bool as_client_certificate) const;
  // The peer certificate of an established TLS connection.
  CertificateStatus check_peer(SSL* ssl, std::string_view domain, bool peer_is_client) const;

 private:
  X509_STORE* store_;
};

}  // namespace parley::s2s
