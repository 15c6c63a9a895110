// The one MariaDB server of a test binary: started when the first test that
// needs it asks (so test processes that never touch MySQL never pay for it)
// and stopped by the GoogleTest environment's TearDown at the end of the run.
// conformance_test.cpp registers the environment.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "storage/mysql/test_server.hpp"

namespace parley::storage::testing {

class MariadbEnvironment : public ::testing::Environment {
 public:
  static MariadbServer& server() {
    if (!server_) server_ = std::make_unique<MariadbServer>();
    return *server_;
  }
  void TearDown() override { server_.reset(); }

 private:
  static inline std::unique_ptr<MariadbServer> server_;
};

}  // namespace parley::storage::testing
