// The admin socket of parleyd: a unix-domain stream socket (mode 0600)
// that parleyctl talks to. The protocol is described in admin_protocol.hpp.
//
// Commands:
//   status                       version, uptime, hosts, session count, storage backend
//   register USER HOST PASSWORD  creates an account (SCRAM-SHA-1 and -SHA-256 keys)
//   unregister USER HOST         removes it and closes its sessions (not-authorized)
//   passwd USER HOST PASSWORD    replaces its keys
//   users HOST                   the usernames of a host, sorted
//   sessions                     one TAB-separated line per bound resource
//   kick JID [REASON]            closes a full JID's session, or every session of a bare JID
//   reload                       runs the server's reload callback
//   s2s                          one TAB-separated line per server-to-server stream
//   components                   one TAB-separated line per configured external component
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}
namespace parley::router {
class Router;
class WorkerPool;
}  // namespace parley::router
namespace parley::storage {
class Storage;
}

namespace parley::admin {

// The socket could not be set up; what() is one line naming the path.
struct StartError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Answers the `reload` command. Returns a one-line summary; throws (for
// example a ConfigError) to report a failed reload. Called on the admin
// io_context's thread.
using ReloadCallback = std::function<std::string()>;

// Answers a listing command (`s2s`, `components`): one line per entry.
// Called on the admin io_context's thread.
using Lister = std::function<std::vector<std::string>()>;

class AdminServer {
 public:
  // Binds the socket (so that start-up fails early); start() begins
  // accepting on 'io'. A stale socket file left by a crashed server is
  // replaced; a path where another server answers, or that is not a socket,
  // throws StartError. The parent directory is created when missing.
  //
  // router, storage and workers must outlive the io_context's last run:
  // connections in progress keep using them. Storage calls and password
  // hashing run on 'workers', never on the I/O thread.
  AdminServer(boost::asio::io_context& io, std::string socket_path, router::Router& router, storage::Storage& storage,
              router::WorkerPool& workers, ReloadCallback reload, std::vector<std::string> hosts, std::string version,
              std::chrono::steady_clock::time_point started_at = std::chrono::steady_clock::now());
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Set before start(); without them `s2s` answers that federation is off
  // and `components` that no component is configured.
  void set_s2s_lister(Lister lister);
  void set_component_lister(Lister lister);

  // Starts accepting connections.
  void start();

  // Stops accepting and removes the socket file (only if it is still the
  // one this server created). Connections in progress finish. Idempotent;
  // safe from any thread.
  void stop();

  const std::string& socket_path() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace parley::admin
