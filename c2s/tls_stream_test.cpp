#include "c2s/tls_stream.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "xmpp/tls.hpp"

namespace parley::c2s {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;

// A self-signed certificate for "localhost", once for the whole suite.
class Certificate {
 public:
  Certificate() {
    std::string pattern = (fs::temp_directory_path() / "parley-tls-stream-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    const std::string command = "cd '" + dir_.string() +
                                "' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
                                " -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost"
                                " -keyout key.pem -out cert.pem >/dev/null 2>&1";
    if (std::system(command.c_str()) != 0) throw std::runtime_error("openssl failed");
  }
  ~Certificate() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

const Certificate& certificate() {
  static const Certificate instance;
  return instance;
}

std::string pattern(std::size_t size) {
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return data;
}

// A connected loopback pair: the server end for TlsStream, the client end
// for asio::ssl::stream (an independent TLS implementation of the protocol
// flow) or raw bytes.
class TlsStreamTest : public ::testing::Test {
 protected:
  TlsStreamTest()
      : server_context_(asio::ssl::context::tls_server),
        client_context_(asio::ssl::context::tls_client),
        server_socket_(io_),
        client_socket_(io_),
        client_(io_, client_context_) {
    tls::configure_server_context(server_context_.native_handle(), certificate().path("cert.pem"),
                                  certificate().path("key.pem"), nullptr);
    client_context_.load_verify_file(certificate().path("cert.pem"));
    client_context_.set_verify_mode(asio::ssl::verify_peer);
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    client_socket_.connect(acceptor.local_endpoint());
    acceptor.accept(server_socket_);
    client_.next_layer() = std::move(client_socket_);
  }

  // Runs both sides to completion; rethrows what either side threw.
  void run(std::function<asio::awaitable<void>()> server, std::function<asio::awaitable<void>()> client) {
    std::exception_ptr server_error;
    std::exception_ptr client_error;
    asio::co_spawn(io_, server(), [&](std::exception_ptr e) { server_error = e; });
    asio::co_spawn(io_, client(), [&](std::exception_ptr e) { client_error = e; });
    io_.run_for(std::chrono::seconds(30));
    ASSERT_TRUE(io_.stopped()) << "a side did not finish";
    if (server_error) std::rethrow_exception(server_error);
    if (client_error) std::rethrow_exception(client_error);
  }

  // Reads exactly 'size' bytes through the stream, waiting as it asks.
  static asio::awaitable<std::string> read_exactly(TlsStream& stream, std::size_t size) {
    std::string received;
    std::array<char, 3000> buffer;  // smaller than a record: the rest stays pending in OpenSSL
    while (received.size() < size) {
      const auto outcome = stream.read(buffer);
      if (outcome.bytes == 0) {
        co_await stream.wait(outcome.wait);
        continue;
      }
      received.append(buffer.data(), outcome.bytes);
    }
    co_return received;
  }

  boost::system::error_code read_error_after_client_close(bool with_close_notify);

  asio::io_context io_;
  asio::ssl::context server_context_;
  asio::ssl::context client_context_;
  tcp::socket server_socket_;
  tcp::socket client_socket_;
  asio::ssl::stream<tcp::socket> client_;
};

TEST_F(TlsStreamTest, CarriesLargeTransfersBothWaysAndMatchesChannelBindings) {
  const std::string upload = pattern(1 << 20);
  const std::string download = pattern(3 << 19);
  TlsStream server(server_socket_, server_context_.native_handle());
  std::string server_received;
  std::string client_received;
  run(
      [&]() -> asio::awaitable<void> {
        co_await server.handshake();
        EXPECT_TRUE(server.established());
        server_received = co_await read_exactly(server, upload.size());
        // The client reads only now: the socket fills and write() must wait for it.
        co_await server.write(download);
      },
      [&]() -> asio::awaitable<void> {
        co_await client_.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
        co_await asio::async_write(client_, asio::buffer(upload), asio::use_awaitable);
        client_received.resize(download.size());
        co_await asio::async_read(client_, asio::buffer(client_received), asio::use_awaitable);
      });
  EXPECT_TRUE(server_received == upload);
  EXPECT_TRUE(client_received == download);
  EXPECT_EQ(tls::version(server.native_handle()), "TLSv1.3");
  for (const char* type : {"tls-exporter", "tls-server-end-point"}) {
    const auto server_binding = tls::channel_binding(server.native_handle(), type, true);
    const auto client_binding = tls::channel_binding(client_.native_handle(), type, false);
    ASSERT_TRUE(server_binding.has_value()) << type;
    EXPECT_EQ(server_binding, client_binding) << type;
  }
}

TEST_F(TlsStreamTest, ShutdownSendsCloseNotify) {
  TlsStream server(server_socket_, server_context_.native_handle());
  boost::system::error_code client_read_error;
  run(
      [&]() -> asio::awaitable<void> {
        co_await server.handshake();
        co_await server.write("bye");
        co_await server.shutdown();
        co_await server.shutdown();  // a second call sends nothing more
      },
      [&]() -> asio::awaitable<void> {
        co_await client_.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
        std::string bye(3, '\0');
        co_await asio::async_read(client_, asio::buffer(bye), asio::use_awaitable);
        EXPECT_EQ(bye, "bye");
        std::array<char, 16> more;
        try {
          co_await client_.async_read_some(asio::buffer(more), asio::use_awaitable);
        } catch (const boost::system::system_error& e) {
          client_read_error = e.code();
        }
      });
  // asio::ssl reports a close_notify as eof and a bare TCP close as stream_truncated.
  EXPECT_EQ(client_read_error, asio::error::eof);
}

// The server's read after the client ends the connection.
boost::system::error_code TlsStreamTest::read_error_after_client_close(bool with_close_notify) {
  TlsStream server(server_socket_, server_context_.native_handle());
  boost::system::error_code server_read_error;
  run(
      [&]() -> asio::awaitable<void> {
        co_await server.handshake();
        try {
          co_await read_exactly(server, 1);
        } catch (const boost::system::system_error& e) {
          server_read_error = e.code();
        }
        server_socket_.close();
      },
      [&]() -> asio::awaitable<void> {
        co_await client_.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
        if (with_close_notify) {
          // Sends close_notify, then waits for the server's, which ends with
          // the server closing its socket instead.
          boost::system::error_code ignored;
          co_await client_.async_shutdown(asio::redirect_error(asio::use_awaitable, ignored));
        }
        client_.next_layer().close();
      });
  return server_read_error;
}

TEST_F(TlsStreamTest, PeerCloseNotifyEndsReadsWithEof) {
  EXPECT_EQ(read_error_after_client_close(true), asio::error::eof);
}

TEST_F(TlsStreamTest, BareTcpCloseEndsReadsWithEof) {
  EXPECT_EQ(read_error_after_client_close(false), asio::error::eof);
}

TEST_F(TlsStreamTest, HandshakeWithPlaintextFailsAndShutdownStaysSilent) {
  TlsStream server(server_socket_, server_context_.native_handle());
  bool handshake_failed = false;
  run(
      [&]() -> asio::awaitable<void> {
        try {
          co_await server.handshake();
        } catch (const std::exception&) {
          handshake_failed = true;
        }
        co_await server.shutdown();
        server_socket_.close();
      },
      [&]() -> asio::awaitable<void> {
        const std::string not_tls = "<?xml version='1.0'?><stream:stream to='localhost'>";
        co_await asio::async_write(client_.next_layer(), asio::buffer(not_tls), asio::use_awaitable);
        std::array<char, 256> reply;
        boost::system::error_code ec;
        // Whatever alert comes back, the connection then ends without more.
        while (!ec) {
          co_await client_.next_layer().async_read_some(asio::buffer(reply),
                                                        asio::redirect_error(asio::use_awaitable, ec));
        }
      });
  EXPECT_TRUE(handshake_failed);
  EXPECT_FALSE(server.established());
}

}  // namespace
}  // namespace parley::c2s
