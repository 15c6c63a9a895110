// A server-side TLS layer that drives OpenSSL directly over a non-blocking
// TCP socket, in place of asio::ssl::stream.
//
// Why: asio::ssl::stream (Boost 1.74) keeps two 17 KiB buffers of its own
// and an OpenSSL BIO pair with two more, about 68 KiB per connection that
// SSL_MODE_RELEASE_BUFFERS cannot free. Here OpenSSL reads and writes the
// socket itself through a small BIO, so its record buffers are the only ones
// and are released while the connection is idle.
//
// Reads never suspend: read() takes what has arrived and otherwise says what
// to wait for, so the caller can read into a buffer it does not keep while idle.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace parley::c2s {

class TlsStream {
 public:
  enum class Wait { none, readable, writable };
  struct ReadOutcome {
    std::size_t bytes = 0;       // > 0: data was read
    Wait wait = Wait::none;      // nothing read yet: what the socket must become first
  };

  // The socket is only borrowed and must outlive the stream; it is switched
  // to non-blocking mode. Throws std::runtime_error when OpenSSL cannot
  // create the connection.
  TlsStream(boost::asio::ip::tcp::socket& socket, SSL_CTX* context);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Server handshake. Throws boost::system::system_error (or
  // std::runtime_error with OpenSSL's reason) when it fails.
  boost::asio::awaitable<void> handshake();
  bool established() const { return established_; }

  // Reads decrypted bytes into 'buffer' without suspending. Throws
  // boost::system::system_error with asio::error::eof when the peer closed
  // the connection (with or without close_notify), and on errors.
  ReadOutcome read(std::span<char> buffer);
  // Suspends until the socket is ready as asked.
  boost::asio::awaitable<void> wait(Wait wait);

  // Writes all of 'data'. Throws on errors.
  boost::asio::awaitable<void> write(std::string_view data);
  // Sends close_notify (once; the peer's is not awaited). Never throws.
  boost::asio::awaitable<void> shutdown();

  SSL* native_handle() const { return ssl_.get(); }

 private:
  struct SslDeleter {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
  };
  // What an OpenSSL call that returned 'result' wants next; throws on errors.
  Wait pending_wait(int result, const char* operation);

  boost::asio::ip::tcp::socket& socket_;
  std::unique_ptr<SSL, SslDeleter> ssl_;
  bool established_ = false;
  bool failed_ = false;  // a fatal error: no close_notify may follow
  bool shut_down_ = false;
};

}  // namespace parley::c2s
