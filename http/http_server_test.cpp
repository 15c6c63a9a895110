#include "http/http_server.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

namespace parley::http {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;

struct Reply {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// A blocking client over any stream (plain socket or TLS), reading one
// response at a time: headers up to the blank line, then Content-Length bytes.
template <class Stream>
class Client {
 public:
  explicit Client(Stream& stream) : stream_(stream) {}

  void send(std::string_view text) { asio::write(stream_, asio::buffer(text.data(), text.size())); }

  Reply read(bool head = false) {
    const auto end = asio::read_until(stream_, asio::dynamic_buffer(buffer_), "\r\n\r\n");
    const auto header = buffer_.substr(0, end);
    buffer_.erase(0, end);
    Reply reply;
    reply.status = static_cast<unsigned>(std::stoi(header.substr(9, 3)));
    for (auto line_start = header.find("\r\n") + 2; line_start < header.size() - 2;) {
      const auto line_end = header.find("\r\n", line_start);
      const auto line = header.substr(line_start, line_end - line_start);
      const auto colon = line.find(':');
      auto name = line.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      reply.headers[name] = line.substr(colon + 2);
      line_start = line_end + 2;
    }
    const std::size_t length =
        reply.headers.contains("content-length") ? std::stoull(reply.headers["content-length"]) : 0;
    if (!head && length > 0) {
      if (buffer_.size() < length) {
        asio::read(stream_, asio::dynamic_buffer(buffer_), asio::transfer_exactly(length - buffer_.size()));
      }
      reply.body = buffer_.substr(0, length);
      buffer_.erase(0, length);
    }
    return reply;
  }

  // True when the server closed the connection.
  bool closed() {
    boost::system::error_code ec;
    char byte;
    if (!buffer_.empty()) return false;
    stream_.read_some(asio::buffer(&byte, 1), ec);
    return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated || ec == asio::error::connection_reset;
  }

 private:
  Stream& stream_;
  std::string buffer_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::debug);
    directory = fs::temp_directory_path() / ("parley-http-test-" + std::to_string(::getpid()) + "-" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(directory);
  }

  void TearDown() override {
    if (server) {
      server->stop();
      server->close_all();
    }
    io.stop();
    if (thread.joinable()) thread.join();
    server.reset();
    fs::remove_all(directory);
  }

  void start(Settings settings = {}) {
    server = std::make_unique<Server>(std::vector<asio::io_context*>{&io}, "127.0.0.1", 0, std::move(settings));
    server->route("/", [](const Request& request) {
      return Decision{Response::text(200, "root " + request.method + " " + request.path), std::nullopt};
    });
    server->route("/files/", [this](const Request& request) { return files(request); });
    server->route("/broken", [](const Request&) -> Decision { throw std::runtime_error("handler bug"); });
    server->start();
    thread = std::thread([this] { io.run(); });
  }

  tcp::socket connect() {
    tcp::socket socket(client_io);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server->port()));
    timeval timeout{5, 0};  // a test that waits for an answer that never comes fails instead of hanging
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return socket;
  }

  // /files/NAME: GET serves directory/NAME; PUT stores the body there when
  // Content-Length is at most 100 bytes.
  Decision files(const Request& request) {
    const auto path = (directory / request.path.substr(7)).string();
    if (request.method == "GET" || request.method == "HEAD") {
      if (!fs::exists(path)) return {Response::text(404, "Not Found"), std::nullopt};
      Response response;
      response.file = path;
      response.file_size = fs::file_size(path);
      response.headers.emplace_back("Content-Type", "application/octet-stream");
      return {response, std::nullopt};
    }
    if (!request.content_length) return {Response::text(411, "Length Required"), std::nullopt};
    if (*request.content_length > 100) return {Response::text(413, "Payload Too Large"), std::nullopt};
    Upload upload;
    upload.file = path + ".part";
    upload.size = *request.content_length;
    upload.finish = [this, path, part = upload.file](bool complete) {
      finished.push_back(complete);
      if (!complete) return Response::text(400, "incomplete");
      fs::rename(part, path);
      return Response::text(201, "Created");
    };
    return {Response{}, upload};
  }

  fs::path directory;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  asio::io_context client_io;
  std::unique_ptr<Server> server;
  std::thread thread;
  std::vector<bool> finished;  // touched only on the server's thread, read after the response
};

// parleyd destroys its shards in order after the servers: a connection frame
// kept by a later shard must not be what releases the handlers (here: a timer
// of the first shard, as the upload service holds) or the acceptor.
TEST(HttpServerShutdown, ShardsMayBeDestroyedInAnyOrderAfterTheServer) {
  auto first = std::make_unique<asio::io_context>();
  auto second = std::make_unique<asio::io_context>();
  auto server =
      std::make_unique<Server>(std::vector<asio::io_context*>{first.get(), second.get()}, "127.0.0.1", 0, Settings{});
  auto first_shard_timer = std::make_shared<asio::steady_timer>(*first);
  server->route("/", [first_shard_timer](const Request&) { return Decision{Response::text(200, "ok"), std::nullopt}; });
  first_shard_timer.reset();
  server->start();
  auto first_work = asio::make_work_guard(*first);
  auto second_work = asio::make_work_guard(*second);
  std::thread first_thread([&] { first->run(); });
  std::thread second_thread([&] { second->run(); });
  asio::io_context client_io;
  std::vector<tcp::socket> sockets;
  for (int i = 0; i < 2; ++i) {  // round robin: one connection per shard
    auto& socket = sockets.emplace_back(client_io);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server->port()));
    Client client(socket);
    client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(client.read().status, 200u);  // served: the connection waits for its next request
  }
  first_work.reset();
  second_work.reset();
  first->stop();
  second->stop();
  first_thread.join();
  second_thread.join();
  server.reset();
  first.reset();
  second.reset();
}

TEST(PercentEncoding, DecodesAndRefusesMalformedEscapes) {
  EXPECT_EQ(percent_decode("/a%20b/%C3%A9"), "/a b/\xc3\xa9");
  EXPECT_EQ(percent_decode("/plain"), "/plain");
  EXPECT_FALSE(percent_decode("/a%2"));
  EXPECT_FALSE(percent_decode("/a%"));
  EXPECT_FALSE(percent_decode("/a%zz"));
  EXPECT_FALSE(percent_decode("/a%00b"));
  EXPECT_EQ(percent_encode("a b/\xc3\xa9~.-_"), "a%20b%2F%C3%A9~.-_");
  EXPECT_EQ(percent_decode(percent_encode("x?#%&=+;\"")), "x?#%&=+;\"");
}

TEST_F(HttpServerTest, RoutesByLongestPrefixAndKeepsTheConnectionAlive) {
  start();
  auto socket = connect();
  Client client(socket);
  client.send("GET /files/none HTTP/1.1\r\nHost: x\r\n\r\nGET /other%20path?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(client.read().status, 404u);
  auto reply = client.read();
  EXPECT_EQ(reply.status, 200u);
  EXPECT_EQ(reply.body, "root GET /other path\n");
  EXPECT_EQ(reply.headers["server"], "Parley");
}

TEST_F(HttpServerTest, AHandlerThatThrowsIsA500AndTheServerGoesOn) {
  start();
  auto socket = connect();
  Client client(socket);
  client.send("GET /broken HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(client.read().status, 500u);
  EXPECT_EQ(client.read().status, 200u);
}

TEST_F(HttpServerTest, MalformedRequestsGet400AndHugeHeaders431) {
  start();
  {
    auto socket = connect();
    Client client(socket);
    client.send("THIS IS NOT HTTP\r\n\r\n");
    EXPECT_EQ(client.read().status, 400u);
    EXPECT_TRUE(client.closed());
  }
  {
    auto socket = connect();
    Client client(socket);
    client.send("GET /x%zz HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(client.read().status, 400u);
  }
  {
    auto socket = connect();
    Client client(socket);
    client.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(10000, 'a') + "\r\n\r\n");
    EXPECT_EQ(client.read().status, 431u);
    EXPECT_TRUE(client.closed());
  }
}

TEST_F(HttpServerTest, UploadGoesToTheFileAndIsServedBack) {
  start();
  auto socket = connect();
  Client client(socket);
  client.send("PUT /files/a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
  EXPECT_EQ(client.read().status, 201u);
  client.send("GET /files/a HTTP/1.1\r\nHost: x\r\n\r\n");
  auto reply = client.read();
  EXPECT_EQ(reply.status, 200u);
  EXPECT_EQ(reply.body, "hello world");
  EXPECT_EQ(reply.headers["content-type"], "application/octet-stream");
  client.send("HEAD /files/a HTTP/1.1\r\nHost: x\r\n\r\n");
  auto head = client.read(true);
  EXPECT_EQ(head.status, 200u);
  EXPECT_EQ(head.headers["content-length"], "11");
  client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");  // nothing of a HEAD body came in between
  EXPECT_EQ(client.read().body, "root GET /\n");
  EXPECT_EQ(finished, std::vector<bool>{true});
}

TEST_F(HttpServerTest, ExpectContinueGetsA100First) {
  start();
  auto socket = connect();
  Client client(socket);
  client.send("PUT /files/b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  EXPECT_EQ(client.read().status, 100u);
  client.send("abc");
  EXPECT_EQ(client.read().status, 201u);
  std::ifstream in(directory / "b");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "abc");
}

TEST_F(HttpServerTest, RefusedBodyIsNotStoredAndTheConnectionCloses) {
  start();
  auto socket = connect();
  Client client(socket);
  client.send("PUT /files/c HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
  EXPECT_EQ(client.read().status, 413u);
  EXPECT_TRUE(client.closed());
  EXPECT_FALSE(fs::exists(directory / "c.part"));
}

TEST_F(HttpServerTest, RefusedBodyStillGetsItsAnswerWhileTheClientSendsIt) {
  start();
  auto socket = connect();
  Client client(socket);
  // Without the server draining it, the unread body would make the kernel
  // reset the connection: the write fails or the 413 is lost.
  client.send("PUT /files/e HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n" + std::string(4194304, 'x'));
  EXPECT_EQ(client.read().status, 413u);
  EXPECT_TRUE(client.closed());
}

TEST_F(HttpServerTest, ShortBodyEndsTheUploadIncomplete) {
  Settings settings;
  settings.idle_timeout = std::chrono::milliseconds(200);
  start(settings);
  {
    auto socket = connect();
    Client client(socket);
    client.send("PUT /files/d HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nonly a part");
    EXPECT_TRUE(client.closed());  // the idle timeout ends the body
  }
  auto socket = connect();
  Client client(socket);
  client.send("GET /files/d HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(client.read().status, 404u);
  EXPECT_EQ(finished, std::vector<bool>{false});
}

TEST_F(HttpServerTest, SilentConnectionTimesOut) {
  Settings settings;
  settings.header_timeout = std::chrono::milliseconds(200);
  start(settings);
  auto socket = connect();
  Client client(socket);
  client.send("GET / HTTP/1.1\r\nHost: x\r\n");  // header never finished
  EXPECT_TRUE(client.closed());
}

TEST_F(HttpServerTest, ConnectionsAboveTheLimitAreClosed) {
  Settings settings;
  settings.max_connections = 1;
  start(settings);
  auto first = connect();
  Client one(first);
  one.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(one.read().status, 200u);  // the first is surely counted now
  auto second = connect();
  Client two(second);
  EXPECT_TRUE(two.closed());
  first.close();
  for (int attempt = 0; attempt < 200 && server->open_connections() > 0; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto third = connect();
  Client three(third);
  three.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(three.read().status, 200u);
}

TEST_F(HttpServerTest, ServesOverTls) {
  const auto run = [&](const std::string& command) {
    ASSERT_EQ(std::system((command + " >/dev/null 2>&1").c_str()), 0) << command;
  };
  const auto cert = (directory / "cert.pem").string();
  const auto key = (directory / "key.pem").string();
  run("openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -keyout " + key + " -out " +
      cert + " -days 1 -subj /CN=upload.test -addext subjectAltName=DNS:upload.test");
  tls::CertificateStore certificates({"http/1.1"});
  certificates.load({{"upload.test", cert, key}});
  Settings settings;
  settings.certificates = &certificates;
  settings.tls_domain = "upload.test";
  start(settings);
  asio::ssl::context context(asio::ssl::context::tls_client);
  context.load_verify_file(cert);
  context.set_verify_mode(asio::ssl::verify_peer);
  asio::ssl::stream<tcp::socket> stream(connect(), context);
  SSL_set_tlsext_host_name(stream.native_handle(), "upload.test");
  stream.set_verify_callback(asio::ssl::host_name_verification("upload.test"));
  stream.handshake(asio::ssl::stream_base::client);
  Client client(stream);
  client.send("GET /tls HTTP/1.1\r\nHost: upload.test\r\n\r\n");
  EXPECT_EQ(client.read().body, "root GET /tls\n");
}

}  // namespace
}  // namespace parley::http
