// TCP connection to the first of several addresses that answers, with the
// staggered parallel attempts of RFC 8305 §5 ("Happy Eyeballs").
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <stdexcept>
#include <vector>

namespace parley::s2s {

struct ConnectError : std::runtime_error {
  ConnectError(bool timed_out, const std::string& message) : std::runtime_error(message), timed_out(timed_out) {}
  bool timed_out;  // the deadline passed; otherwise every address failed
};

// Tries endpoints in order: each attempt starts when the previous one had
// 'head_start' to connect, or at once when every earlier attempt failed;
// earlier attempts keep running and the first to connect wins (the others
// are closed). Throws ConnectError.
boost::asio::awaitable<boost::asio::ip::tcp::socket> connect_first(
    boost::asio::any_io_executor executor, std::vector<boost::asio::ip::tcp::endpoint> endpoints,
    std::chrono::steady_clock::time_point deadline,
    std::chrono::milliseconds head_start = std::chrono::milliseconds(250));

}  // namespace parley::s2s
