// Non-blocking DNS for federation (RFC 6120 §3.2, XEP-0368, RFC 2782) on
// c-ares, driven by the caller's io_context.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace parley::dns {

// Why a lookup failed, for the one-line federation failure log.
struct Error : std::runtime_error {
  enum class Kind {
    not_found,   // NXDOMAIN, or no SRV and no A/AAAA record
    no_service,  // SRV target "." (RFC 2782: the service is decidedly not available)
    timeout,     // no answer from the DNS servers in time
    failure,     // SERVFAIL, refused, malformed answer, ...
  };
  Error(Kind kind, const std::string& message) : std::runtime_error(message), kind(kind) {}
  Kind kind;
};

// One place to try, in order.
struct Target {
  std::string host;      // SRV target, or the domain itself for the A/AAAA fallback
  std::uint16_t port = 5269;
  bool direct_tls = false;  // from _xmpps-server._tcp (XEP-0368)
  bool operator==(const Target&) const = default;
};

// One Resolver per shard: it is not thread-safe, and its lookups must be
// awaited from coroutines running on the executor given to the constructor.
// Destroying it ends pending lookups with Error(failure).
class Resolver {
 public:
  // servers: c-ares server list such as "127.0.0.53:5300" (empty: the
  // system's resolv.conf). Answers are cached for their TTL.
  Resolver(boost::asio::any_io_executor executor, std::string servers,
           std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // The targets for a server-to-server connection to 'domain': the SRV
  // records of _xmpps-server._tcp and _xmpp-server._tcp merged and ordered by
  // priority, then weight (RFC 2782 weighted random order within a
  // priority; on equal priority Direct TLS first); with no SRV records at
  // all, {domain, 5269, false}. Throws Error (no_service when the only
  // record is a "." target).
  boost::asio::awaitable<std::vector<Target>> server_targets(const std::string& domain);

  // AAAA and A records of a host name, interleaved IPv6 first (RFC 8305
  // order). An IP literal is returned as is. Throws Error.
  boost::asio::awaitable<std::vector<boost::asio::ip::address>> addresses(const std::string& host);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace parley::dns
