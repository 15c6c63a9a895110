#include "s2s/connect.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <optional>

namespace parley::s2s {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// Shared by the attempts, which may outlive connect_first().
struct Race {
  explicit Race(const asio::any_io_executor& executor) : wake(executor) {}
  std::vector<std::unique_ptr<tcp::socket>> sockets;
  std::optional<std::size_t> winner;
  std::size_t failed = 0;
  boost::system::error_code last_error;
  asio::steady_timer wake;  // cancelled whenever an attempt ends

  void close_all() {
    for (auto& socket : sockets) {
      boost::system::error_code ignored;
      if (socket) socket->close(ignored);
    }
  }
};

asio::awaitable<void> attempt(std::shared_ptr<Race> race, std::size_t index, tcp::endpoint endpoint) {
  boost::system::error_code ec;
  co_await race->sockets[index]->async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
  if (!ec && !race->winner) {
    race->winner = index;
  } else {
    if (ec) race->last_error = ec;
    ++race->failed;
  }
  race->wake.cancel();
}

}  // namespace

asio::awaitable<tcp::socket> connect_first(asio::any_io_executor executor, std::vector<tcp::endpoint> endpoints,
                                           Clock::time_point deadline, std::chrono::milliseconds head_start) {
  auto race = std::make_shared<Race>(executor);
  race->sockets.resize(endpoints.size());
  std::size_t started = 0;
  auto next_start = Clock::now();
  while (!race->winner) {
    const auto now = Clock::now();
    if (race->failed == endpoints.size()) {
      throw ConnectError(false, race->last_error ? race->last_error.message() : "no address to connect to");
    }
    if (now >= deadline) {
      race->close_all();
      throw ConnectError(true, "no connection within the connect timeout");
    }
    if (started < endpoints.size() && (now >= next_start || race->failed == started)) {
      auto& socket = race->sockets[started] = std::make_unique<tcp::socket>(executor);
      boost::system::error_code ec;
      socket->open(endpoints[started].protocol(), ec);
      if (ec) {
        race->last_error = ec;
        ++race->failed;
      } else {
        asio::co_spawn(executor, attempt(race, started, endpoints[started]), asio::detached);
      }
      ++started;
      next_start = now + head_start;
      continue;
    }
    race->wake.expires_at(started < endpoints.size() ? std::min(next_start, deadline) : deadline);
    boost::system::error_code ec;
    co_await race->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  tcp::socket socket = std::move(*race->sockets[*race->winner]);
  race->close_all();
  boost::system::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  co_return socket;
}

}  // namespace parley::s2s
