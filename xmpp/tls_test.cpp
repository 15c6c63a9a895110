#include "xmpp/tls.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace parley::tls {
namespace {

namespace fs = std::filesystem;

// A throwaway CA and per-domain certificates made with the openssl CLI,
// once for the whole suite.
class Certificates {
 public:
  Certificates() {
    std::string pattern = (fs::temp_directory_path() / "parley-tls-test-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    run("openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
        " -keyout ca.key -out ca.crt -days 2 -subj '/CN=test ca'"
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign");
    issue("a.test", "DNS:a.test", "sha256");
    issue("b.test", "DNS:b.test", "sha256");
    issue("wild.test", "DNS:*.wild.test", "sha256");
    issue("sha1.test", "DNS:sha1.test", "sha1");
    issue("sha384.test", "DNS:sha384.test", "sha384");
    run("openssl pkey -in a.test.key -aes256 -passout pass:secret -out encrypted.key");
  }
  ~Certificates() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  CertificateFiles files(const std::string& domain) const {
    return {domain, path(domain + ".crt"), path(domain + ".key")};
  }

 private:
  void run(const std::string& command) const {
    const auto full = "cd '" + dir_.string() + "' && " + command + " >/dev/null 2>&1";
    if (std::system(full.c_str()) != 0) throw std::runtime_error("failed: " + command);
  }
  void issue(const std::string& name, const std::string& san, const std::string& digest) const {
    std::ofstream(dir_ / (name + ".ext"))
        << "subjectAltName=" << san << "\nextendedKeyUsage=serverAuth\n";
    run("openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout " + name +
        ".key -out " + name + ".csr -subj '/CN=" + name + "'");
    run("openssl x509 -req -in " + name +
        ".csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -" + digest + " -extfile " + name +
        ".ext -out " + name + ".crt");
  }

  fs::path dir_;
};

const Certificates& certificates() {
  static const Certificates instance;
  return instance;
}

struct ClientOptions {
  std::string server_name{};
  std::vector<std::string> alpn{};
  int max_version = 0;
  bool without_extended_master_secret = false;
  bool accept_sha1_signatures = false;
  SSL_SESSION* resume = nullptr;
};

// Client and server SSL objects joined by an in-memory BIO pair.
class Handshake {
 public:
  Handshake(SSL_CTX* server_context, const ClientOptions& options)
      : client_context_(SSL_CTX_new(TLS_client_method())) {
    SSL_CTX_load_verify_locations(client_context_, certificates().path("ca.crt").c_str(), nullptr);
    SSL_CTX_set_verify(client_context_, SSL_VERIFY_PEER, nullptr);
    if (options.max_version != 0)
      SSL_CTX_set_max_proto_version(client_context_, options.max_version);
    // A SHA-1 signed certificate is only accepted at security level 0.
    if (options.accept_sha1_signatures) SSL_CTX_set_security_level(client_context_, 0);
    if (options.without_extended_master_secret) {
      SSL_CTX_set_options(client_context_, SSL_OP_NO_EXTENDED_MASTER_SECRET);
    }
    client_ = SSL_new(client_context_);
    server_ = SSL_new(server_context);
    if (options.resume != nullptr) SSL_set_session(client_, options.resume);
    if (!options.server_name.empty())
      SSL_set_tlsext_host_name(client_, options.server_name.c_str());
    if (!options.alpn.empty()) {
      std::string wire;
      for (const auto& protocol : options.alpn)
        wire += static_cast<char>(protocol.size()) + protocol;
      SSL_set_alpn_protos(client_, reinterpret_cast<const unsigned char*>(wire.data()),
                          static_cast<unsigned int>(wire.size()));
    }
    BIO* client_bio = nullptr;
    BIO* server_bio = nullptr;
    BIO_new_bio_pair(&client_bio, 0, &server_bio, 0);
    SSL_set_bio(client_, client_bio, client_bio);
    SSL_set_bio(server_, server_bio, server_bio);
    SSL_set_connect_state(client_);
    SSL_set_accept_state(server_);
  }
  ~Handshake() {
    SSL_free(client_);
    SSL_free(server_);
    SSL_CTX_free(client_context_);
  }
  Handshake(const Handshake&) = delete;
  Handshake& operator=(const Handshake&) = delete;

  // Steps both sides until both finish or one fails; the bound only guards
  // against a test hanging on a bug.
  bool run() {
    bool client_done = false;
    bool server_done = false;
    for (int round = 0; round < 100 && !(client_done && server_done); ++round) {
      if (!client_done && !step(client_, client_done)) return false;
      if (!server_done && !step(server_, server_done)) return false;
    }
    ERR_clear_error();
    return client_done && server_done;
  }

  SSL* client() const { return client_; }
  SSL* server() const { return server_; }

  std::string peer_common_name() const {
    X509* certificate = SSL_get0_peer_certificate(client_);
    if (certificate == nullptr) return {};
    std::array<char, 256> name{};
    X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, name.data(),
                              static_cast<int>(name.size()));
    return name.data();
  }

  std::string selected_alpn() const {
    const unsigned char* data = nullptr;
    unsigned int length = 0;
    SSL_get0_alpn_selected(client_, &data, &length);
    return {reinterpret_cast<const char*>(data), length};
  }

 private:
  static bool step(SSL* ssl, bool& done) {
    const int result = SSL_do_handshake(ssl);
    if (result == 1) {
      done = true;
      return true;
    }
    const int error = SSL_get_error(ssl, result);
    return error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE;
  }

  SSL_CTX* client_context_;
  SSL* client_ = nullptr;
  SSL* server_ = nullptr;
};

std::string certificate_hash(const std::string& file, const EVP_MD* digest) {
  FILE* stream = std::fopen(file.c_str(), "r");
  if (stream == nullptr) return {};
  X509* certificate = PEM_read_X509(stream, nullptr, nullptr, nullptr);
  std::fclose(stream);
  std::array<unsigned char, EVP_MAX_MD_SIZE> hash{};
  unsigned int length = 0;
  X509_digest(certificate, digest, hash.data(), &length);
  X509_free(certificate);
  return {reinterpret_cast<const char*>(hash.data()), length};
}

class TlsTest : public ::testing::Test {
 protected:
  TlsTest() : store_({"xmpp-client"}) {
    store_.load({certificates().files("a.test"),
                 certificates().files("b.test"),
                 {"*.wild.test", certificates().path("wild.test.crt"),
                  certificates().path("wild.test.key")}});
  }
  CertificateStore store_;
};

TEST_F(TlsTest, ExporterBindingMatchesOnBothSidesWithTls13) {
  Handshake handshake(store_.context_for("a.test")->native_handle(), {});
  ASSERT_TRUE(handshake.run());
  EXPECT_EQ(version(handshake.server()), "TLSv1.3");
  EXPECT_FALSE(cipher(handshake.server()).empty());
  EXPECT_EQ(cipher(handshake.server()), cipher(handshake.client()));
  const auto server = channel_binding(handshake.server(), "tls-exporter", true);
  const auto client = channel_binding(handshake.client(), "tls-exporter", false);
  ASSERT_TRUE(server.has_value());
  EXPECT_EQ(server->size(), 32u);
  EXPECT_EQ(server, client);
  EXPECT_EQ(channel_binding(handshake.server(), "tls-unique", true), std::nullopt);
}

TEST_F(TlsTest, ExporterDiffersBetweenConnections) {
  Handshake first(store_.context_for("a.test")->native_handle(), {});
  Handshake second(store_.context_for("a.test")->native_handle(), {});
  ASSERT_TRUE(first.run());
  ASSERT_TRUE(second.run());
  EXPECT_NE(channel_binding(first.server(), "tls-exporter", true),
            channel_binding(second.server(), "tls-exporter", true));
}

TEST_F(TlsTest, Tls12WithExtendedMasterSecretHasExporterAndUnique) {
  Handshake handshake(store_.context_for("a.test")->native_handle(),
                      {.max_version = TLS1_2_VERSION});
  ASSERT_TRUE(handshake.run());
  EXPECT_EQ(version(handshake.server()), "TLSv1.2");
  const auto exporter = channel_binding(handshake.server(), "tls-exporter", true);
  ASSERT_TRUE(exporter.has_value());
  EXPECT_EQ(exporter, channel_binding(handshake.client(), "tls-exporter", false));
  const auto unique = channel_binding(handshake.server(), "tls-unique", true);
  ASSERT_TRUE(unique.has_value());
  EXPECT_EQ(unique->size(), 12u);
  EXPECT_EQ(unique, channel_binding(handshake.client(), "tls-unique", false));
  std::array<unsigned char, 64> client_finished{};
  const auto length =
      SSL_get_finished(handshake.client(), client_finished.data(), client_finished.size());
  EXPECT_EQ(*unique, std::string(reinterpret_cast<const char*>(client_finished.data()), length));
}

TEST_F(TlsTest, TlsUniqueOnResumptionIsTheServerFinished) {
  SSL_CTX* server_context = store_.context_for("a.test")->native_handle();
  Handshake full(server_context, {.max_version = TLS1_2_VERSION});
  ASSERT_TRUE(full.run());
  const std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> session(
      SSL_get1_session(full.client()), SSL_SESSION_free);
  ASSERT_NE(session, nullptr);

  Handshake resumed(server_context, {.max_version = TLS1_2_VERSION, .resume = session.get()});
  ASSERT_TRUE(resumed.run());
  ASSERT_EQ(SSL_session_reused(resumed.server()), 1);
  const auto server = channel_binding(resumed.server(), "tls-unique", true);
  ASSERT_TRUE(server.has_value());
  EXPECT_EQ(server, channel_binding(resumed.client(), "tls-unique", false));
  std::array<unsigned char, 64> finished{};
  const auto length = SSL_get_finished(resumed.server(), finished.data(), finished.size());
  EXPECT_EQ(*server, std::string(reinterpret_cast<const char*>(finished.data()), length));
}

TEST_F(TlsTest, Tls12WithoutExtendedMasterSecretHasNoExporterNorUnique) {
  Handshake handshake(store_.context_for("a.test")->native_handle(),
                      {.max_version = TLS1_2_VERSION, .without_extended_master_secret = true});
  ASSERT_TRUE(handshake.run());
  EXPECT_EQ(channel_binding(handshake.server(), "tls-exporter", true), std::nullopt);
  EXPECT_EQ(channel_binding(handshake.client(), "tls-exporter", false), std::nullopt);
  EXPECT_EQ(channel_binding(handshake.server(), "tls-unique", true), std::nullopt);
  EXPECT_TRUE(channel_binding(handshake.server(), "tls-server-end-point", true).has_value());
}

TEST_F(TlsTest, ServerEndPointIsTheHashOfTheServerCertificate) {
  Handshake handshake(store_.context_for("a.test")->native_handle(), {});
  ASSERT_TRUE(handshake.run());
  const auto server = channel_binding(handshake.server(), "tls-server-end-point", true);
  ASSERT_TRUE(server.has_value());
  EXPECT_EQ(server, channel_binding(handshake.client(), "tls-server-end-point", false));
  EXPECT_EQ(*server, certificate_hash(certificates().path("a.test.crt"), EVP_sha256()));
}

TEST_F(TlsTest, ServerEndPointFollowsTheSignatureHashButNeverSha1) {
  for (const auto& [domain, digest] :
       {std::pair{"sha1.test", EVP_sha256()}, std::pair{"sha384.test", EVP_sha384()}}) {
    const std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> context(
        SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
    SSL_CTX_set_security_level(context.get(), 0);
    const auto files = certificates().files(domain);
    configure_server_context(context.get(), files.cert_file, files.key_file, nullptr);
    Handshake handshake(context.get(), {.accept_sha1_signatures = true});
    ASSERT_TRUE(handshake.run()) << domain;
    const auto server = channel_binding(handshake.server(), "tls-server-end-point", true);
    EXPECT_EQ(server, certificate_hash(files.cert_file, digest)) << domain;
    EXPECT_EQ(server, channel_binding(handshake.client(), "tls-server-end-point", false)) << domain;
  }
}

TEST_F(TlsTest, NoBindingBeforeTheHandshakeOrForUnknownTypes) {
  Handshake handshake(store_.context_for("a.test")->native_handle(), {});
  EXPECT_EQ(channel_binding(handshake.server(), "tls-exporter", true), std::nullopt);
  EXPECT_EQ(channel_binding(handshake.server(), "tls-server-end-point", true), std::nullopt);
  EXPECT_EQ(channel_binding(nullptr, "tls-exporter", true), std::nullopt);
  ASSERT_TRUE(handshake.run());
  EXPECT_EQ(channel_binding(handshake.server(), "tls-foo", true), std::nullopt);
  EXPECT_EQ(version(nullptr), "");
  EXPECT_EQ(cipher(nullptr), "");
}

TEST_F(TlsTest, SniSwitchesToTheNamedDomain) {
  Handshake to_b(store_.context_for("a.test")->native_handle(), {.server_name = "b.test"});
  ASSERT_TRUE(to_b.run());
  EXPECT_EQ(to_b.peer_common_name(), "b.test");
  EXPECT_EQ(channel_binding(to_b.server(), "tls-server-end-point", true),
            certificate_hash(certificates().path("b.test.crt"), EVP_sha256()));

  Handshake to_wildcard(store_.context_for("a.test")->native_handle(),
                        {.server_name = "X.Wild.Test"});
  ASSERT_TRUE(to_wildcard.run());
  EXPECT_EQ(to_wildcard.peer_common_name(), "wild.test");

  Handshake to_unknown(store_.context_for("b.test")->native_handle(),
                       {.server_name = "other.test"});
  ASSERT_TRUE(to_unknown.run());
  EXPECT_EQ(to_unknown.peer_common_name(), "b.test");
}

TEST_F(TlsTest, AlpnSelectsOurProtocolOrNone) {
  Handshake matching(store_.context_for("a.test")->native_handle(),
                     {.alpn = {"h2", "xmpp-client"}});
  ASSERT_TRUE(matching.run());
  EXPECT_EQ(matching.selected_alpn(), "xmpp-client");

  Handshake other(store_.context_for("a.test")->native_handle(), {.alpn = {"h2"}});
  ASSERT_TRUE(other.run());
  EXPECT_EQ(other.selected_alpn(), "");
}

TEST_F(TlsTest, ContextsAreTls12AtLeastWithoutRenegotiation) {
  SSL_CTX* native = store_.context_for("a.test")->native_handle();
  EXPECT_EQ(SSL_CTX_get_min_proto_version(native), TLS1_2_VERSION);
  EXPECT_NE(SSL_CTX_get_options(native) & SSL_OP_NO_RENEGOTIATION, 0u);
  EXPECT_NE(SSL_CTX_get_mode(native) & SSL_MODE_RELEASE_BUFFERS, 0u);
}

TEST_F(TlsTest, ContextForFallsBackToWildcardThenFirst) {
  const auto a = store_.context_for("a.test");
  const auto b = store_.context_for("b.test");
  const auto wild = store_.context_for("*.wild.test");
  ASSERT_TRUE(a && b && wild);
  EXPECT_NE(a, b);
  EXPECT_EQ(store_.context_for("A.TEST"), a);
  EXPECT_EQ(store_.context_for("conference.wild.test"), wild);
  EXPECT_EQ(store_.context_for("deep.conference.wild.test"), a);
  EXPECT_EQ(store_.context_for("unknown.example"), a);
  EXPECT_EQ(CertificateStore().context_for("a.test"), nullptr);
}

TEST_F(TlsTest, MismatchedKeyFailsNamingTheFileAndKeepsTheOldSet) {
  const auto before = store_.context_for("a.test");
  try {
    store_.load({certificates().files("b.test"),
                 {"a.test", certificates().path("a.test.crt"), certificates().path("b.test.key")}});
    FAIL() << "load accepted a key of another certificate";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find(certificates().path("b.test.key")), std::string::npos)
        << error.what();
  }
  EXPECT_EQ(store_.context_for("a.test"), before);
  EXPECT_NE(store_.context_for("b.test"), before);
}

TEST_F(TlsTest, MissingFileFailsNamingIt) {
  const auto missing = certificates().path("missing.crt");
  try {
    store_.load({{"c.test", missing, certificates().path("a.test.key")}});
    FAIL() << "load accepted a missing file";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find(missing), std::string::npos) << error.what();
  }
}

TEST_F(TlsTest, EncryptedKeyFailsWithoutPrompting) {
  const auto key = certificates().path("encrypted.key");
  try {
    store_.load({{"a.test", certificates().path("a.test.crt"), key}});
    FAIL() << "load accepted an encrypted key without its passphrase";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find(key), std::string::npos) << error.what();
  }
}

TEST_F(TlsTest, DuplicateDomainIsRefused) {
  EXPECT_THROW(store_.load({certificates().files("a.test"), certificates().files("a.test")}),
               std::runtime_error);
}

TEST_F(TlsTest, OldContextKeepsWorkingAfterReloadAndStoreDestruction) {
  auto store = std::make_unique<CertificateStore>(std::vector<std::string>{"xmpp-client"});
  store->load({certificates().files("a.test"), certificates().files("b.test")});
  const auto old_context = store->context_for("a.test");
  store->load({certificates().files("b.test"), certificates().files("a.test")});
  EXPECT_NE(store->context_for("a.test"), old_context);

  Handshake after_reload(old_context->native_handle(),
                         {.server_name = "b.test", .alpn = {"xmpp-client"}});
  ASSERT_TRUE(after_reload.run());
  EXPECT_EQ(after_reload.peer_common_name(), "b.test");
  EXPECT_EQ(after_reload.selected_alpn(), "xmpp-client");

  store.reset();
  Handshake after_destruction(old_context->native_handle(),
                              {.server_name = "b.test", .alpn = {"xmpp-client"}});
  ASSERT_TRUE(after_destruction.run());
  EXPECT_EQ(after_destruction.peer_common_name(), "a.test");
  EXPECT_EQ(after_destruction.selected_alpn(), "xmpp-client");
}

}  // namespace
}  // namespace parley::tls
