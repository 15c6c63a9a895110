#include "s2s/connect.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace parley::s2s {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const auto loopback = asio::ip::make_address("127.0.0.1");

// A port where connections are refused.
tcp::endpoint refusing() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(loopback, 0));
  return acceptor.local_endpoint();
}

// A listener whose accept queue is full: the kernel drops further SYNs, so
// a connection attempt hangs like one to an unreachable address.
class Blackhole {
 public:
  Blackhole() : acceptor_(io_, tcp::endpoint(loopback, 0)) {
    acceptor_.listen(0);
    for (int i = 0; i < 3; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      const auto endpoint = acceptor_.local_endpoint();
      static_cast<void>(::connect(fd, endpoint.data(), endpoint.size()));
      fillers_.push_back(fd);
    }
  }
  ~Blackhole() {
    for (const int fd : fillers_) ::close(fd);
  }
  tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }

 private:
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::vector<int> fillers_;
};

struct Outcome {
  std::optional<tcp::endpoint> connected_to;
  std::optional<ConnectError> error;
  Clock::duration took{};
};

asio::awaitable<Outcome> attempt(asio::any_io_executor executor, std::vector<tcp::endpoint> endpoints,
                                 Clock::duration timeout, std::chrono::milliseconds head_start) {
  Outcome outcome;
  const auto started = Clock::now();
  try {
    auto socket = co_await connect_first(executor, std::move(endpoints), started + timeout, head_start);
    outcome.connected_to = socket.remote_endpoint();
  } catch (const ConnectError& error) {
    outcome.error = error;
  }
  outcome.took = Clock::now() - started;
  co_return outcome;
}

Outcome connect(std::vector<tcp::endpoint> endpoints, Clock::duration timeout, std::chrono::milliseconds head_start) {
  asio::io_context io;
  auto future =
      asio::co_spawn(io, attempt(io.get_executor(), std::move(endpoints), timeout, head_start), asio::use_future);
  io.run();
  return future.get();
}

TEST(ConnectFirst, RefusedAddressesAreSkippedAtOnce) {
  asio::io_context io;
  tcp::acceptor listening(io, tcp::endpoint(loopback, 0));
  auto outcome = connect({refusing(), refusing(), listening.local_endpoint()}, 5s, 2000ms);
  ASSERT_TRUE(outcome.connected_to);
  EXPECT_EQ(*outcome.connected_to, listening.local_endpoint());
  EXPECT_LT(outcome.took, 1s);  // no head start waited for: the others failed
}

TEST(ConnectFirst, HangingAddressOnlyGetsItsHeadStart) {
  Blackhole blackhole;
  asio::io_context io;
  tcp::acceptor listening(io, tcp::endpoint(loopback, 0));
  auto outcome = connect({blackhole.endpoint(), listening.local_endpoint()}, 5s, 300ms);
  ASSERT_TRUE(outcome.connected_to) << outcome.error->what();
  EXPECT_EQ(*outcome.connected_to, listening.local_endpoint());
  EXPECT_GE(outcome.took, 250ms);
  EXPECT_LT(outcome.took, 2s);
}

TEST(ConnectFirst, EveryAddressRefused) {
  auto outcome = connect({refusing(), refusing()}, 5s, 250ms);
  ASSERT_TRUE(outcome.error);
  EXPECT_FALSE(outcome.error->timed_out);
  EXPECT_LT(outcome.took, 1s);
  EXPECT_FALSE(connect({}, 5s, 250ms).error->timed_out);
}

TEST(ConnectFirst, DeadlineEndsHangingAttempts) {
  Blackhole blackhole;
  auto outcome = connect({blackhole.endpoint()}, 500ms, 250ms);
  ASSERT_TRUE(outcome.error);
  EXPECT_TRUE(outcome.error->timed_out);
  EXPECT_GE(outcome.took, 450ms);
  EXPECT_LT(outcome.took, 2s);
}

}  // namespace
}  // namespace parley::s2s
