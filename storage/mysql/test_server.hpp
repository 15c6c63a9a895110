// A throwaway MariaDB server for tests: its own temporary data directory, a
// free port on 127.0.0.1, stopped by its PID. Bootstrapping runs mariadbd
// --bootstrap with only the system tables (no help tables, no sys schema),
// which takes about a second.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

namespace parley::storage::testing {

class MariadbServer {
 public:
  // Bootstraps the data directory and starts the server; throws
  // std::runtime_error with the server's log when it does not come up.
  MariadbServer();
  ~MariadbServer();
  MariadbServer(const MariadbServer&) = delete;
  MariadbServer& operator=(const MariadbServer&) = delete;

  // SIGTERM by PID, then waits for the process to end.
  void stop();
  // Starts again on the same data directory and port.
  void start();
  bool running() const { return pid_ > 0; }

  unsigned port() const { return port_; }

  // Runs SQL as root over the server's Unix socket; throws on failure.
  void admin(const std::string& sql) const;
  // The same for a query: its rows tab-separated, one per line.
  std::string query(const std::string& sql) const;

  // Creates a database and a user (password "pw, secret@%") with every
  // right on it; returns its mysql:// URI with the password percent-encoded.
  std::string create_database(const std::string& name) const;

 private:
  std::filesystem::path dir_;
  unsigned port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace parley::storage::testing
