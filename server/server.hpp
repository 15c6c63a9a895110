// The running server: owns storage, router, modules, TLS certificates,
// listeners and the admin socket for the life of the process.
#pragma once

#include <memory>
#include <string_view>

#include "server/config.hpp"

namespace parley::server {

inline constexpr std::string_view version = "0.1.0";

class Server {
 public:
  // Opens storage, starts modules, loads certificates and binds listeners.
  // Throws ConfigError for bad module options or certificates, and
  // std::exception with a one-line reason for anything else.
  explicit Server(Config config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves until SIGTERM or SIGINT (graceful stop), reloading on SIGHUP.
  // Returns the process exit code.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace parley::server
