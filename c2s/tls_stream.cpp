#include "c2s/tls_stream.hpp"

#include <openssl/err.h>
#include <sys/socket.h>

#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <cerrno>
#include <cstdint>
#include <stdexcept>

namespace parley::c2s {

namespace asio = boost::asio;

namespace {

int descriptor(BIO* bio) { return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio))); }

bool would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

// send() with MSG_NOSIGNAL: OpenSSL's own socket BIO uses write(), which
// raises SIGPIPE on a connection the peer has reset.
int socket_write(BIO* bio, const char* data, int size) {
  BIO_clear_retry_flags(bio);
  const ssize_t sent = ::send(descriptor(bio), data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
  if (sent >= 0) return static_cast<int>(sent);
  if (would_block(errno)) BIO_set_retry_write(bio);
  return -1;
}

int socket_read(BIO* bio, char* data, int size) {
  BIO_clear_retry_flags(bio);
  const ssize_t received = ::recv(descriptor(bio), data, static_cast<std::size_t>(size), 0);
  if (received >= 0) return static_cast<int>(received);
  if (would_block(errno)) BIO_set_retry_read(bio);
  return -1;
}

long socket_control(BIO*, int command, long, void*) { return command == BIO_CTRL_FLUSH ? 1 : 0; }

int socket_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* socket_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* created = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "parley c2s socket");
    if (created == nullptr) throw std::runtime_error("cannot create the TLS socket BIO method");
    BIO_meth_set_write(created, socket_write);
    BIO_meth_set_read(created, socket_read);
    BIO_meth_set_ctrl(created, socket_control);
    BIO_meth_set_create(created, socket_create);
    return created;
  }();
  return method;
}

boost::system::system_error end_of_stream() { return boost::system::system_error(asio::error::eof); }

}  // namespace

TlsStream::TlsStream(asio::ip::tcp::socket& socket, SSL_CTX* context) : socket_(socket), ssl_(SSL_new(context)) {
  if (!ssl_) throw std::runtime_error("SSL_new failed");
  BIO* bio = BIO_new(socket_method());
  if (bio == nullptr) throw std::runtime_error("BIO_new failed");
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(socket_.native_handle())));
  SSL_set_bio(ssl_.get(), bio, bio);
  // Partial writes let write() go on from where a full socket stopped it.
  SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_set_accept_state(ssl_.get());
  socket_.non_blocking(true);
}

TlsStream::~TlsStream() = default;

TlsStream::Wait TlsStream::pending_wait(int result, const char* operation) {
  const int saved_errno = errno;
  switch (SSL_get_error(ssl_.get(), result)) {
    case SSL_ERROR_WANT_READ:
      return Wait::readable;
    case SSL_ERROR_WANT_WRITE:
      return Wait::writable;
    case SSL_ERROR_ZERO_RETURN:  // close_notify
      throw end_of_stream();
    case SSL_ERROR_SYSCALL:
      failed_ = true;
      if (saved_errno != 0 && !would_block(saved_errno)) {
        throw boost::system::system_error(saved_errno, boost::system::system_category(), operation);
      }
      throw end_of_stream();
    default: {
      failed_ = true;
      const unsigned long error = ERR_peek_error();
      if (ERR_GET_REASON(error) == SSL_R_UNEXPECTED_EOF_WHILE_READING) throw end_of_stream();
      char reason[256];
      ERR_error_string_n(error, reason, sizeof reason);
      throw std::runtime_error(std::string(operation) + ": " + reason);
    }
  }
}

asio::awaitable<void> TlsStream::handshake() {
  for (;;) {
    ERR_clear_error();
    errno = 0;
    const int result = SSL_do_handshake(ssl_.get());
    if (result == 1) break;
    co_await wait(pending_wait(result, "TLS handshake"));
  }
  established_ = true;
}

TlsStream::ReadOutcome TlsStream::read(std::span<char> buffer) {
  ERR_clear_error();
  errno = 0;
  std::size_t received = 0;
  const int result = SSL_read_ex(ssl_.get(), buffer.data(), buffer.size(), &received);
  if (result == 1) return {received, Wait::none};
  return {0, pending_wait(result, "TLS read")};
}

asio::awaitable<void> TlsStream::wait(Wait wait) {
  if (wait == Wait::none) co_return;
  co_await socket_.async_wait(wait == Wait::readable ? asio::ip::tcp::socket::wait_read
                                                     : asio::ip::tcp::socket::wait_write,
                              asio::use_awaitable);
}

asio::awaitable<void> TlsStream::write(std::string_view data) {
  while (!data.empty()) {
    ERR_clear_error();
    errno = 0;
    std::size_t written = 0;
    const int result = SSL_write_ex(ssl_.get(), data.data(), data.size(), &written);
    if (result == 1) {
      data.remove_prefix(written);
    } else {
      co_await wait(pending_wait(result, "TLS write"));
    }
  }
}

asio::awaitable<void> TlsStream::shutdown() {
  // OpenSSL forbids SSL_shutdown after a fatal error.
  if (!established_ || failed_ || shut_down_) co_return;
  shut_down_ = true;
  try {
    for (;;) {
      ERR_clear_error();
      errno = 0;
      if (SSL_shutdown(ssl_.get()) >= 0) co_return;
      co_await wait(pending_wait(-1, "TLS shutdown"));
    }
  } catch (const std::exception&) {
    // The peer is gone or broke the connection: nothing left to tell it.
  }
}

}  // namespace parley::c2s
