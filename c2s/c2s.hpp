// Client-to-server streams (RFC 6120): listener and sessions with STARTTLS
// and Direct TLS (XEP-0368), SASL, resource binding, keepalives, timeouts,
// a read shaper and a bounded send queue.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "router/router.hpp"
#include "router/workers.hpp"
#include "storage/storage.hpp"
#include "xmpp/tls.hpp"

namespace parley::c2s {

struct Settings {
  bool direct_tls = false;   // TLS from the first byte (XEP-0368)
  bool tls_required = true;  // STARTTLS must precede authentication
  std::size_t max_stanza_size = 262144;
  std::size_t rate = 102400;   // bytes/s read
  std::size_t burst = 524288;  // token bucket size
  std::size_t max_send_queue = 4 * 1024 * 1024;
  std::chrono::seconds auth_timeout{60};
  std::chrono::seconds idle_timeout{900};
  std::chrono::seconds keepalive_interval{120};
  std::chrono::seconds resume_timeout{300};  // XEP-0198: how long a lost stream may be resumed
};

struct Services {
  router::Router& router;
  storage::Storage& storage;
  router::WorkerPool& workers;
  tls::CertificateStore& certificates;
  std::string server_version;
};

class Listener {
 public:
  // Accepts on 'address:port' from the first shard and spreads connections
  // over all shards round-robin. Throws std::system_error when the address
  // cannot be bound.
  Listener(std::vector<boost::asio::io_context*> shards, const std::string& address, std::uint16_t port,
           Settings settings, Services services);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  void start();
  // Stops accepting; established streams stay.
  void stop();
  // Ends every stream of this listener with a stream error (graceful shutdown).
  void close_all(const std::string& condition);
  // Streams still open (authenticated or not).
  std::size_t open_streams() const;
  std::uint16_t port() const;

  struct State;  // shared with the listener's sessions, defined in c2s.cpp

 private:
  std::shared_ptr<State> state_;
};

}  // namespace parley::c2s
