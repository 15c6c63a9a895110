// One XMPP client connection for the load generator: TCP from a chosen
// loopback source address, optional STARTTLS, SASL (SCRAM-SHA-1/-256 or
// PLAIN), resource binding, in-band registration. Single-threaded: every
// Connection lives on the generator's one io_context.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>

#include "xmpp/stream_parser.hpp"
#include "xmpp/xml.hpp"

namespace parley::bench {

namespace asio = boost::asio;

enum class TlsMode { none, starttls };
enum class Mechanism { scram_sha1, scram_sha256, plain };

struct Target {
  asio::ip::tcp::endpoint server;
  std::string domain;
  TlsMode tls = TlsMode::none;
  Mechanism mechanism = Mechanism::scram_sha1;
  unsigned min_iterations = 1;  // refuse a SCRAM challenge with fewer iterations
};

// A step of the protocol went wrong: the text says which.
struct ProtocolError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& io, asio::ssl::context& tls_context, const Target& target);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // TCP connect from source (port chosen by the kernel at connect time, so
  // each source address has its own ephemeral port range).
  asio::awaitable<void> connect(const asio::ip::address& source);
  // Stream, STARTTLS when asked, SASL, bind: afterwards jid() is the full JID.
  asio::awaitable<void> login(const std::string& user, const std::string& password,
                              const std::string& resource);
  // XEP-0077 account creation (after connect); an existing account counts as success.
  asio::awaitable<void> register_account(const std::string& user, const std::string& password);

  // Queues bytes; they are written in order, batched while a write is in
  // flight. The Connection must be owned by a shared_ptr.
  void send(std::string_view data);
  // The next top-level element; throws ProtocolError when the stream ends.
  asio::awaitable<xml::Element> next();
  // </stream:stream> then shutdown of the socket (no wait for the server's answer).
  void close();

  const std::string& jid() const { return jid_; }
  std::size_t queued_bytes() const { return outbox_.size() + writing_.size(); }

 private:
  asio::awaitable<void> read_more();
  asio::awaitable<xml::Element> open_stream();
  asio::awaitable<void> start_tls();
  asio::awaitable<void> authenticate(const std::string& user, const std::string& password,
                                     const xml::Element& features);
  asio::awaitable<void> bind(const std::string& resource, const xml::Element& features);
  asio::awaitable<void> write_loop(std::shared_ptr<Connection> keep_alive);
  void shut_down();

  asio::ip::tcp::socket socket_;
  asio::ssl::context& tls_context_;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
  const Target& target_;
  xml::StreamParser parser_;
  std::deque<xml::Element> received_;
  std::string outbox_;
  std::string writing_;
  bool writer_active_ = false;
  bool closed_ = false;   // the stream or socket has ended: reads fail
  bool closing_ = false;  // close() was called: nothing more is queued
  std::string jid_;
};

}  // namespace parley::bench
