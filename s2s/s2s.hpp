// Server-to-server streams (RFC 6120, XEP-0178, XEP-0220, XEP-0368):
// outbound connections per (local domain, remote domain) pair found through
// DNS, inbound listeners (STARTTLS and Direct TLS), certificate and
// dialback authentication, and the bounded queues in between.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "router/router.hpp"
#include "s2s/policy.hpp"
#include "xmpp/tls.hpp"

namespace parley::s2s {

struct Settings {
  Policy policy;
  std::string dns_servers;                   // c-ares server list "ip:port,ip:port"; empty: resolv.conf
  std::chrono::seconds connect_timeout{30};  // DNS, TCP, TLS and authentication together
  std::chrono::seconds idle_timeout{600};    // a stream without traffic for this long is closed
  std::string secret;                        // dialback secret; empty: random per start
  std::string tls_min_version = "1.2";       // "1.2" or "1.3"
  std::string ciphers;                       // OpenSSL cipher list for TLS 1.2; empty: OpenSSL's default
  // Parley's host certificates: server certificates of inbound streams and
  // client certificates of outbound ones.
  std::vector<tls::CertificateFiles> certificates;
  std::size_t max_stanza_size = 262144;
  std::size_t max_send_queue = 4 * 1024 * 1024;  // bytes written to a slow peer before the stream ends
  std::size_t read_rate = 512 * 1024;            // bytes/s read per stream (token bucket)
  std::size_t read_burst = 2 * 1024 * 1024;      // bucket size in bytes
  std::size_t max_pending_stanzas = 10000;       // stanzas waiting for a connection, per pair
};

// One line of `parleyctl s2s`.
struct ConnectionInfo {
  std::string id;
  std::string direction;  // "in" or "out"
  std::string local_domain;
  std::string peer_domain;
  std::string auth;  // "SASL EXTERNAL", "dialback", or "none" while negotiating
  std::string tls_version;
  std::string cipher;
  std::int64_t idle_seconds = 0;
};

class Manager {
 public:
  // Throws std::runtime_error for an unreadable CA file or certificate.
  Manager(std::vector<boost::asio::io_context*> shards, router::Router& router, Settings settings);
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Binds a listener (STARTTLS, or Direct TLS with ALPN xmpp-server).
  // Throws std::system_error when the address cannot be bound.
  void add_listener(const std::string& address, std::uint16_t port, bool direct_tls);
  void start();
  // Stops accepting; established streams stay.
  void stop();
  // Ends every stream with a stream error (graceful shutdown).
  void close_all(const std::string& condition);
  std::size_t open_streams() const;

  // Router::set_remote_route: takes stanzas from a local domain to a remote
  // one (moving them out); false when policy refuses the remote domain.
  bool route(xml::Element& stanza, const xmpp::Jid& to);

  // New host certificates (SIGHUP): used by the next connections.
  void reload_certificates(const std::vector<tls::CertificateFiles>& files);

  std::vector<ConnectionInfo> connections() const;
  std::vector<std::uint16_t> ports() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace parley::s2s
