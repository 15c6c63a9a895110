// Test support for code that routes stanzas: a session that records what it
// is given, and a runner for coroutines.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <mutex>
#include <string>
#include <vector>

#include "router/router.hpp"

namespace parley::router::testing {

class RecordingSession : public Session {
 public:
  explicit RecordingSession(std::string id = "test") : id_(std::move(id)) {}
  void deliver(xml::Element stanza) override {
    std::lock_guard lock(mutex_);
    delivered_.push_back(std::move(stanza));
  }
  void close(std::string condition, std::string /*text*/) override {
    std::lock_guard lock(mutex_);
    closed_with_ = std::move(condition);
  }
  const std::string& id() const override { return id_; }
  std::string remote_address() const override { return "127.0.0.1"; }
  std::string tls_version() const override { return "TLSv1.3"; }

  std::vector<xml::Element> take() {
    std::lock_guard lock(mutex_);
    return std::exchange(delivered_, {});
  }
  std::string closed_with() const {
    std::lock_guard lock(mutex_);
    return closed_with_;
  }

 private:
  std::string id_;
  mutable std::mutex mutex_;
  std::vector<xml::Element> delivered_;
  std::string closed_with_;
};

// Runs one coroutine to completion on a private io_context.
template <class T>
T run(Task<T> task) {
  boost::asio::io_context io;
  auto future = boost::asio::co_spawn(io, std::move(task), boost::asio::use_future);
  io.run();
  return future.get();
}

inline void run(Task<void> task) {
  boost::asio::io_context io;
  auto future = boost::asio::co_spawn(io, std::move(task), boost::asio::use_future);
  io.run();
  future.get();
}

}  // namespace parley::router::testing
