#include "xmpp/tls.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

namespace parley::tls {

struct CertificateStoreShared {
  explicit CertificateStoreShared(std::vector<std::string> protocols)
      : alpn(std::move(protocols)) {}

  const std::vector<std::string> alpn;
  std::mutex mutex;
  // Weak: the store owns the contexts, and each context owns this object.
  std::unordered_map<std::string, std::weak_ptr<boost::asio::ssl::context>> by_domain;
};

namespace {

std::string openssl_errors() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    std::array<char, 256> buffer{};
    ERR_error_string_n(code, buffer.data(), buffer.size());
    if (!text.empty()) text += "; ";
    text += buffer.data();
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw std::runtime_error(file + ": " + what + " (" + openssl_errors() + ")");
}

// Server preference order; the client's list is length-prefixed names.
int select_alpn(SSL*, const unsigned char** out, unsigned char* out_length,
                const unsigned char* offered, unsigned int offered_length, void* arg) {
  const auto& protocols = *static_cast<const std::vector<std::string>*>(arg);
  for (const auto& protocol : protocols) {
    for (unsigned int i = 0; i < offered_length;) {
      const unsigned int length = offered[i];
      if (length == 0 || length > offered_length - i - 1) return SSL_TLSEXT_ERR_NOACK;
      if (length == protocol.size() && std::memcmp(offered + i + 1, protocol.data(), length) == 0) {
        *out = offered + i + 1;
        *out_length = static_cast<unsigned char>(length);
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + length;
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// Without this, an encrypted key file would make OpenSSL prompt on the
// terminal of a daemon.
int refuse_passphrase(char*, int, int, void*) { return 0; }

}  // namespace

void configure_server_context(SSL_CTX* ctx, const std::string& cert_file,
                              const std::string& key_file, const std::vector<std::string>* alpn) {
  ERR_clear_error();
  if (SSL_CTX_get_default_passwd_cb(ctx) == nullptr) {
    SSL_CTX_set_default_passwd_cb(ctx, refuse_passphrase);
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    fail(cert_file, "cannot load the certificate chain");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    fail(key_file, "cannot load the private key for " + cert_file);
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    fail(key_file, "the private key does not match the certificate " + cert_file);
  }
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    fail(cert_file, "cannot require TLS 1.2");
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // Resumed sessions with a requested client certificate (s2s) fail
  // without a session id context.
  static constexpr unsigned char session_context[] = "parley";
  SSL_CTX_set_session_id_context(ctx, session_context, sizeof session_context - 1);
  if (alpn != nullptr && !alpn->empty()) {
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, const_cast<std::vector<std::string>*>(alpn));
  }
}

namespace {

std::optional<std::string> exporter(SSL* ssl) {
  const int protocol = SSL_version(ssl);
  if (protocol != TLS1_3_VERSION &&
      !(protocol == TLS1_2_VERSION && SSL_get_extms_support(ssl) == 1)) {
    return std::nullopt;
  }
  static constexpr char label[] = "EXPORTER-Channel-Binding";
  std::string data(32, '\0');
  if (SSL_export_keying_material(ssl, reinterpret_cast<unsigned char*>(data.data()), data.size(),
                                 label, sizeof label - 1, nullptr, 0, 0) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  return data;
}

// RFC 5929 §4.1: the certificate's own signature hash, except MD5 and SHA-1
// which become SHA-256. Signatures without a single hash (Ed25519) are
// undefined there, so they get no binding.
std::optional<std::string> server_end_point(SSL* ssl, bool is_server) {
  X509* certificate = is_server ? SSL_get_certificate(ssl) : SSL_get0_peer_certificate(ssl);
  if (certificate == nullptr) return std::nullopt;
  int digest_nid = NID_undef;
  if (X509_get_signature_info(certificate, &digest_nid, nullptr, nullptr, nullptr) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  if (digest_nid == NID_md5 || digest_nid == NID_sha1) digest_nid = NID_sha256;
  const EVP_MD* digest = EVP_get_digestbynid(digest_nid);
  if (digest == nullptr) return std::nullopt;
  std::array<unsigned char, EVP_MAX_MD_SIZE> hash{};
  unsigned int length = 0;
  if (X509_digest(certificate, digest, hash.data(), &length) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  return std::string(reinterpret_cast<const char*>(hash.data()), length);
}

// RFC 5929 §3.1: the first Finished message of the latest handshake, the
// client's on a full handshake and the server's on a resumption.
std::optional<std::string> unique(SSL* ssl, bool is_server) {
  if (SSL_version(ssl) != TLS1_2_VERSION || SSL_get_extms_support(ssl) != 1) return std::nullopt;
  const bool sent_first = (SSL_session_reused(ssl) == 1) == is_server;
  std::array<unsigned char, EVP_MAX_MD_SIZE> finished{};
  const std::size_t length = sent_first
                                 ? SSL_get_finished(ssl, finished.data(), finished.size())
                                 : SSL_get_peer_finished(ssl, finished.data(), finished.size());
  if (length == 0 || length > finished.size()) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(finished.data()), length);
}

}  // namespace

std::optional<std::string> channel_binding(SSL* ssl, std::string_view type, bool is_server) {
  if (ssl == nullptr || SSL_is_init_finished(ssl) != 1) return std::nullopt;
  if (type == "tls-exporter") return exporter(ssl);
  if (type == "tls-server-end-point") return server_end_point(ssl, is_server);
  if (type == "tls-unique") return unique(ssl, is_server);
  return std::nullopt;
}

std::string version(const SSL* ssl) {
  if (ssl == nullptr) return {};
  return SSL_get_version(ssl);
}

std::string cipher(const SSL* ssl) {
  const SSL_CIPHER* current = ssl == nullptr ? nullptr : SSL_get_current_cipher(ssl);
  if (current == nullptr) return {};
  return SSL_CIPHER_get_name(current);
}

namespace {

std::string lowercase(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  });
  return lower;
}

// Exact name first, then the wildcard entry "*.parent" (one label only, as
// a wildcard certificate matches).
template <typename Map>
const typename Map::mapped_type* find_domain(const Map& map, std::string_view domain) {
  const auto name = lowercase(domain);
  if (const auto exact = map.find(name); exact != map.end()) return &exact->second;
  const auto dot = name.find('.');
  if (dot == std::string::npos || dot == 0) return nullptr;
  if (const auto wildcard = map.find("*" + name.substr(dot)); wildcard != map.end()) {
    return &wildcard->second;
  }
  return nullptr;
}

// Runs on the connection's thread during the handshake. The lock only
// covers the lookup; a context the store dropped meanwhile stays alive
// through the SSL_CTX reference SSL_set_SSL_CTX takes.
int select_by_server_name(SSL* ssl, int*, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;
  auto& shared = *static_cast<CertificateStoreShared*>(arg);
  std::shared_ptr<boost::asio::ssl::context> target;
  {
    const std::lock_guard lock(shared.mutex);
    if (const auto* entry = find_domain(shared.by_domain, name)) target = entry->lock();
  }
  if (target && target->native_handle() != SSL_get_SSL_CTX(ssl)) {
    SSL_set_SSL_CTX(ssl, target->native_handle());
  }
  return SSL_TLSEXT_ERR_OK;
}

void release_shared(void*, void* pointer, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::shared_ptr<CertificateStoreShared>*>(pointer);
}

// The SSL_CTX owns a reference to the shared state, so the callbacks' arg
// lives as long as any connection still uses the context.
int shared_state_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, release_shared);
  return index;
}

std::shared_ptr<boost::asio::ssl::context> make_context(
    const CertificateFiles& files, const std::shared_ptr<CertificateStoreShared>& shared) {
  auto context = std::make_shared<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  auto owner = std::make_unique<std::shared_ptr<CertificateStoreShared>>(shared);
  if (shared_state_index() < 0 ||
      SSL_CTX_set_ex_data(native, shared_state_index(), owner.get()) != 1) {
    fail(files.cert_file, "cannot attach the certificate store to the TLS context");
  }
  static_cast<void>(owner.release());
  configure_server_context(native, files.cert_file, files.key_file, &shared->alpn);
  SSL_CTX_set_tlsext_servername_callback(native, select_by_server_name);
  SSL_CTX_set_tlsext_servername_arg(native, shared.get());
  return context;
}

}  // namespace

CertificateStore::CertificateStore(std::vector<std::string> alpn)
    : shared_(std::make_shared<CertificateStoreShared>(std::move(alpn))) {}

void CertificateStore::load(const std::vector<CertificateFiles>& files) {
  std::unordered_map<std::string, std::shared_ptr<boost::asio::ssl::context>> contexts;
  std::shared_ptr<boost::asio::ssl::context> first;
  for (const auto& entry : files) {
    auto context = make_context(entry, shared_);
    if (!first) first = context;
    if (!contexts.emplace(lowercase(entry.domain), std::move(context)).second) {
      throw std::runtime_error(entry.cert_file + ": a second certificate for " + entry.domain);
    }
  }
  std::unordered_map<std::string, std::weak_ptr<boost::asio::ssl::context>> weak(contexts.begin(),
                                                                                 contexts.end());
  const std::lock_guard lock(mutex_);
  {
    const std::lock_guard shared_lock(shared_->mutex);
    shared_->by_domain.swap(weak);
  }
  by_domain_.swap(contexts);
  fallback_ = std::move(first);
}

std::shared_ptr<boost::asio::ssl::context> CertificateStore::context_for(
    std::string_view domain) const {
  const std::lock_guard lock(mutex_);
  if (const auto* entry = find_domain(by_domain_, domain)) return *entry;
  return fallback_;
}

}  // namespace parley::tls
