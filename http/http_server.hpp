// A small HTTP/1.1 server (Boost.Beast inside, not in this header) for the
// HTTP services of GUIDE §1: requests are handed to handlers registered by
// path prefix. A handler decides from the request's headers alone; a body is
// only read when the handler asked for it, straight into a file, so a
// refused upload costs no bandwidth or memory.
//
// Limits: request header size, a timeout for the TLS handshake and the
// request header, an idle timeout between reads or writes of a body and
// between requests of a kept-alive connection, and a bound on concurrent
// connections (connections above it are closed at once).
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "xmpp/tls.hpp"

namespace parley::http {

struct Request {
  std::string method;  // "GET", "PUT", ... as sent
  std::string target;  // as sent, e.g. "/upload/ab%20c?x=1"
  std::string path;    // the target's path, percent-decoded; empty when the encoding is invalid
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::optional<std::uint64_t> content_length;
  bool chunked = false;  // Transfer-Encoding: chunked (length unknown)

  // The first value of a header (name in lower case), or empty.
  std::string_view header(std::string_view name) const;
};

struct Response {
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // the body unless 'file' is set
  std::string file;  // send this file as the body
  std::uint64_t file_size = 0;
  bool head = false;  // answer to HEAD: headers (with Content-Length) only

  // A short text/plain response, for errors.
  static Response text(unsigned status, std::string body);
};

// A handler's answer: a response, or a request to read the body into a file
// first (then 'finish' gives the response).
struct Upload {
  std::string file;        // created or truncated
  std::uint64_t size = 0;  // the exact body length (Content-Length)
  // complete: the whole body is in 'file'; false after a timeout, a short
  // body or a write error (the connection is then closed after the response,
  // if any can still be sent).
  std::function<Response(bool complete)> finish;
};

struct Decision {
  Response response;
  std::optional<Upload> upload;
};

using Handler = std::function<Decision(const Request&)>;

struct Settings {
  std::size_t max_connections = 512;
  std::size_t max_header_size = 8192;
  std::chrono::milliseconds header_timeout{std::chrono::seconds(30)};  // TLS handshake + request header
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};    // body reads/writes, keep-alive
  // TLS from the first byte with the certificate of tls_domain (SNI picks
  // others from the store); null: plain HTTP (behind a TLS-terminating proxy).
  tls::CertificateStore* certificates = nullptr;
  std::string tls_domain;
};

class Server {
 public:
  // Accepts on 'address:port' from the first shard and spreads connections
  // over all shards round-robin. Throws std::system_error when the address
  // cannot be bound.
  Server(std::vector<boost::asio::io_context*> shards, const std::string& address, std::uint16_t port,
         Settings settings);
  // Only once the shards no longer run (stop() and close_all() first for a
  // graceful end); the io_contexts may be destroyed afterwards in any order.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Requests whose path starts with prefix (the longest registered prefix
  // wins; none: 404). Register before start().
  void route(std::string prefix, Handler handler);

  void start();
  // Stops accepting; open connections stay.
  void stop();
  // Closes every open connection.
  void close_all();
  std::size_t open_connections() const;
  std::uint16_t port() const;

  struct State;  // defined in http_server.cpp

 private:
  std::shared_ptr<State> state_;
};

// Percent-decoding of a URL path (RFC 3986); nullopt for a malformed escape
// or an encoded NUL.
std::optional<std::string> percent_decode(std::string_view text);
// Percent-encoding of a path segment: everything but RFC 3986 unreserved characters.
std::string percent_encode(std::string_view text);

}  // namespace parley::http
