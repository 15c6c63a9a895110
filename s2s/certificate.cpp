#include "s2s/certificate.hpp"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <stdexcept>

namespace parley::s2s {

namespace {

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
           return lower(x) == lower(y);
         });
}

std::string_view asn1_text(const ASN1_STRING* value) {
  if (value == nullptr) return {};
  return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(value)),
          static_cast<std::size_t>(ASN1_STRING_length(value))};
}

// SRV-ID (RFC 4985) and XmppAddr (RFC 6120 §13.7.1.4) live in otherName
// entries, which X509_check_host does not look at.
bool other_names_match(X509* certificate, std::string_view domain) {
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return false;
  bool matched = false;
  const std::string srv_name = "_xmpp-server." + std::string(domain);
  for (int i = 0; i < sk_GENERAL_NAME_num(names) && !matched; ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_OTHERNAME) continue;
    const int nid = OBJ_obj2nid(name->d.otherName->type_id);
    const ASN1_TYPE* value = name->d.otherName->value;
    if (nid == NID_XmppAddr && value->type == V_ASN1_UTF8STRING) {
      matched = equal_ignoring_case(asn1_text(value->value.utf8string), domain);
    } else if (nid == NID_SRVName && value->type == V_ASN1_IA5STRING) {
      matched = equal_ignoring_case(asn1_text(value->value.ia5string), srv_name);
    }
  }
  GENERAL_NAMES_free(names);
  return matched;
}

}  // namespace

bool certificate_names_domain(X509* certificate, std::string_view domain) {
  if (certificate == nullptr || domain.empty()) return false;
  const int dns_id =
      X509_check_host(certificate, domain.data(), domain.size(),
                      X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, nullptr);
  ERR_clear_error();
  return dns_id == 1 || other_names_match(certificate, domain);
}

std::string_view describe(CertificateStatus::Outcome outcome) {
  switch (outcome) {
    case CertificateStatus::Outcome::valid:
      return "valid";
    case CertificateStatus::Outcome::untrusted:
      return "certificate trust";
    case CertificateStatus::Outcome::wrong_name:
      return "certificate name";
    case CertificateStatus::Outcome::missing:
      return "no certificate";
  }
  return "unknown";
}

TrustStore::TrustStore(const std::string& ca_file) : store_(X509_STORE_new()) {
  if (store_ == nullptr) throw std::runtime_error("cannot allocate a certificate store");
  const int loaded =
      ca_file.empty() ? X509_STORE_set_default_paths(store_) : X509_STORE_load_file(store_, ca_file.c_str());
  if (loaded != 1) {
    X509_STORE_free(store_);
    ERR_clear_error();
    throw std::runtime_error(ca_file + ": cannot load the CA certificates");
  }
}

TrustStore::~TrustStore() { X509_STORE_free(store_); }

CertificateStatus TrustStore::check(X509* leaf, STACK_OF(X509) * chain, std::string_view domain,
                                    bool as_client_certificate) const {
  if (leaf == nullptr) return {CertificateStatus::Outcome::missing, {}};
  X509_STORE_CTX* context = X509_STORE_CTX_new();
  if (context == nullptr || X509_STORE_CTX_init(context, store_, leaf, chain) != 1) {
    X509_STORE_CTX_free(context);
    ERR_clear_error();
    return {CertificateStatus::Outcome::untrusted, "cannot set up verification"};
  }
  X509_STORE_CTX_set_purpose(context, as_client_certificate ? X509_PURPOSE_ANY : X509_PURPOSE_SSL_SERVER);
  const bool trusted = X509_verify_cert(context) == 1;
  const int error = X509_STORE_CTX_get_error(context);
  X509_STORE_CTX_free(context);
  ERR_clear_error();
  if (!trusted) return {CertificateStatus::Outcome::untrusted, X509_verify_cert_error_string(error)};
  if (!certificate_names_domain(leaf, domain)) return {CertificateStatus::Outcome::wrong_name, {}};
  return {CertificateStatus::Outcome::valid, {}};
}

CertificateStatus TrustStore::check_peer(SSL* ssl, std::string_view domain, bool peer_is_client) const {
  if (ssl == nullptr) return {CertificateStatus::Outcome::missing, {}};
  return check(SSL_get0_peer_certificate(ssl), SSL_get_peer_cert_chain(ssl), domain, peer_is_client);
}

}  // namespace parley::s2s
