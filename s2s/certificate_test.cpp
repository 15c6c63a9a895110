#include "s2s/certificate.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace parley::s2s {
namespace {

using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;

KeyPtr make_key() { return KeyPtr(EVP_EC_gen("P-256"), EVP_PKEY_free); }

void add_extension(X509* certificate, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
  if (extension == nullptr) throw std::runtime_error("bad extension " + value);
  X509_add_ext(certificate, extension, -1);
  X509_EXTENSION_free(extension);
}

// A certificate for 'key' signed by issuer (self-signed when issuer is null).
CertPtr make_certificate(EVP_PKEY* key, const std::string& common_name, X509* issuer, EVP_PKEY* issuer_key,
                         const std::string& subject_alt_names, const std::string& extended_key_usage) {
  CertPtr certificate(X509_new(), X509_free);
  X509_set_version(certificate.get(), 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(certificate.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(certificate.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(certificate.get()), 3600);
  X509_set_pubkey(certificate.get(), key);
  X509_NAME* name = X509_get_subject_name(certificate.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                             -1, 0);
  X509* signer = issuer ? issuer : certificate.get();
  X509_set_issuer_name(certificate.get(), X509_get_subject_name(signer));
  if (issuer == nullptr) {
    add_extension(certificate.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(certificate.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(certificate.get(), signer, NID_basic_constraints, "CA:FALSE");
  }
  if (!subject_alt_names.empty()) add_extension(certificate.get(), signer, NID_subject_alt_name, subject_alt_names);
  if (!extended_key_usage.empty()) add_extension(certificate.get(), signer, NID_ext_key_usage, extended_key_usage);
  X509_sign(certificate.get(), issuer_key ? issuer_key : key, EVP_sha256());
  return certificate;
}

class CertificateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_key_ = make_key();
    ca_ = make_certificate(ca_key_.get(), "test ca", nullptr, nullptr, "", "");
    ca_file_ = std::filesystem::temp_directory_path() / ("parley-s2s-ca-" + std::to_string(::getpid()) + ".pem");
    FILE* file = std::fopen(ca_file_.c_str(), "w");
    ASSERT_NE(file, nullptr);
    PEM_write_X509(file, ca_.get());
    std::fclose(file);
  }
  void TearDown() override { std::filesystem::remove(ca_file_); }

  CertPtr issue(const std::string& names, const std::string& eku = "serverAuth") {
    leaf_key_ = make_key();
    return make_certificate(leaf_key_.get(), "leaf", ca_.get(), ca_key_.get(), names, eku);
  }

  KeyPtr ca_key_{nullptr, EVP_PKEY_free};
  CertPtr ca_{nullptr, X509_free};
  KeyPtr leaf_key_{nullptr, EVP_PKEY_free};
  std::filesystem::path ca_file_;
};

TEST_F(CertificateTest, DnsIdMatchesExactlyAndIgnoresCase) {
  auto certificate = issue("DNS:example.org");
  EXPECT_TRUE(certificate_names_domain(certificate.get(), "example.org"));
  EXPECT_TRUE(certificate_names_domain(certificate.get(), "EXAMPLE.org"));
  EXPECT_FALSE(certificate_names_domain(certificate.get(), "www.example.org"));
  EXPECT_FALSE(certificate_names_domain(certificate.get(), "example.com"));
  EXPECT_FALSE(certificate_names_domain(certificate.get(), ""));
}

TEST_F(CertificateTest, WildcardCoversOneLeftMostLabel) {
  auto certificate = issue("DNS:*.example.org");
  EXPECT_TRUE(certificate_names_domain(certificate.get(), "chat.example.org"));
  EXPECT_FALSE(certificate_names_domain(certificate.get(), "example.org"));
  EXPECT_FALSE(certificate_names_domain(certificate.get(), "a.chat.example.org"));
}

TEST_F(CertificateTest, CommonNameAloneIsNotAnIdentity) {
  auto certificate = issue("");
  EXPECT_FALSE(certificate_names_domain(certificate.get(), "leaf"));
}

TEST_F(CertificateTest, XmppAddrAndSrvId) {
  auto certificate = issue(
      "otherName:1.3.6.1.5.5.7.8.5;UTF8:xmpp.example.net,"
      "otherName:1.3.6.1.5.5.7.8.7;IA5:_xmpp-server.srv.example.net");
  EXPECT_TRUE(certificate_names_domain(certificate.get(), "xmpp.example.net"));
  EXPECT_TRUE(certificate_names_domain(certificate.get(), "srv.example.net"));
  EXPECT_FALSE(certificate_names_domain(certificate.get(), "example.net"));
  // An SRV-ID for another service does not name the domain for s2s.
  auto client_srv = issue("otherName:1.3.6.1.5.5.7.8.7;IA5:_xmpp-client.c.example.net");
  EXPECT_FALSE(certificate_names_domain(client_srv.get(), "c.example.net"));
}

TEST_F(CertificateTest, TrustedChainWithTheRightName) {
  TrustStore store(ca_file_.string());
  auto certificate = issue("DNS:example.org");
  EXPECT_TRUE(store.check(certificate.get(), nullptr, "example.org", false).valid());
  EXPECT_EQ(store.check(certificate.get(), nullptr, "example.com", false).outcome,
            CertificateStatus::Outcome::wrong_name);
  EXPECT_EQ(store.check(nullptr, nullptr, "example.org", false).outcome, CertificateStatus::Outcome::missing);
}

TEST_F(CertificateTest, UnknownIssuerIsUntrusted) {
  TrustStore store(ca_file_.string());
  auto other_ca_key = make_key();
  auto other_ca = make_certificate(other_ca_key.get(), "other ca", nullptr, nullptr, "", "");
  auto key = make_key();
  auto certificate =
      make_certificate(key.get(), "leaf", other_ca.get(), other_ca_key.get(), "DNS:example.org", "serverAuth");
  auto status = store.check(certificate.get(), nullptr, "example.org", false);
  EXPECT_EQ(status.outcome, CertificateStatus::Outcome::untrusted);
  EXPECT_FALSE(status.detail.empty());
}

// Let's Encrypt certificates carry serverAuth only: a server presenting one
// as its client certificate must still be accepted.
TEST_F(CertificateTest, ServerAuthOnlyCertificateIsAcceptedAsClientCertificate) {
  TrustStore store(ca_file_.string());
  auto certificate = issue("DNS:example.org", "serverAuth");
  EXPECT_TRUE(store.check(certificate.get(), nullptr, "example.org", true).valid());
  // A certificate only for client authentication does not identify a server we connect to.
  auto client_only = issue("DNS:example.org", "clientAuth");
  EXPECT_EQ(store.check(client_only.get(), nullptr, "example.org", false).outcome,
            CertificateStatus::Outcome::untrusted);
}

TEST(TrustStore, UnreadableFileThrows) { EXPECT_THROW(TrustStore("/nonexistent/ca.pem"), std::runtime_error); }

}  // namespace
}  // namespace parley::s2s
