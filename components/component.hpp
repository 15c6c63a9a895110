// External components (XEP-0114): the jabber:component:accept listeners,
// one session per connected component, and the routes that carry stanzas
// for a component's domain to its session.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "router/router.hpp"
#include "xmpp/tls.hpp"

namespace parley::components {

struct ComponentConfig {
  std::string domain;
  std::string secret;
  // A second connection for a connected domain replaces the first (which
  // gets <conflict/>) instead of being refused with <conflict/>.
  bool replace = false;
};

struct Settings {
  std::size_t max_stanza_size = 262144;
  std::size_t max_send_queue = 4 * 1024 * 1024;
  std::size_t read_rate = 1024 * 1024;           // bytes/s read per connection (token bucket)
  std::size_t read_burst = 4 * 1024 * 1024;      // bucket size in bytes
  std::chrono::seconds auth_timeout{60};         // connect → handshake accepted
  std::chrono::seconds keepalive_interval{120};  // whitespace after this long without writing
};

// A connected, authenticated component (for logs and the admin CLI).
struct ConnectionInfo {
  std::string domain;
  std::string id;
  std::string remote_address;
  std::string tls_version;  // empty without TLS
};

class Manager {
 public:
  // Routes every component domain to its session (service-unavailable for
  // iq and message while it is not connected; presence is dropped) and
  // lists the components in disco#items of every host. Call before any
  // traffic, with every host already added to the router.
  Manager(std::vector<boost::asio::io_context*> shards, router::Router& router,
          tls::CertificateStore& certificates, std::vector<ComponentConfig> components, Settings settings);
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Accepts on 'address:port' from the first shard and spreads connections
  // over all shards. direct_tls: TLS from the first byte with the
  // certificate of the first host. Throws std::system_error when the address
  // cannot be bound.
  void add_listener(const std::string& address, std::uint16_t port, bool direct_tls);
  void start();
  // Stops accepting; established streams stay.
  void stop();
  // Ends every component stream with a stream error (graceful shutdown).
  void close_all(const std::string& condition);
  // Streams still open (authenticated or not).
  std::size_t open_streams() const;
  std::vector<ConnectionInfo> connections() const;

  struct State;  // shared with listeners, sessions and routes, defined in component.cpp

 private:
  std::shared_ptr<State> state_;
};

}  // namespace parley::components
