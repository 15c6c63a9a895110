#include "server/admin_protocol.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

namespace parley::admin {
namespace {

TEST(AdminProtocol, ValidField) {
  EXPECT_TRUE(valid_field("alice"));
  EXPECT_TRUE(valid_field(""));
  EXPECT_TRUE(valid_field("pass word with spaces"));
  EXPECT_FALSE(valid_field("a\tb"));
  EXPECT_FALSE(valid_field("a\nb"));
  EXPECT_FALSE(valid_field("a\r"));
}

TEST(AdminProtocol, EncodeRequestJoinsWithTabsAndEndsWithNewline) {
  EXPECT_EQ(encode_request({"register", "alice", "localhost", "s3cret"}), "register\talice\tlocalhost\ts3cret\n");
  EXPECT_EQ(encode_request({"status"}), "status\n");
  EXPECT_EQ(encode_request({"kick", "alice@localhost", ""}), "kick\talice@localhost\t\n");
}

TEST(AdminProtocol, EncodeRequestRefusesBadFields) {
  EXPECT_EQ(encode_request({}), std::nullopt);
  EXPECT_EQ(encode_request({"register", "alice", "localhost", "pass\tword"}), std::nullopt);
  EXPECT_EQ(encode_request({"register", "alice\n", "localhost", "password"}), std::nullopt);
}

TEST(AdminProtocol, SplitRequestIsTheInverseOfEncode) {
  const std::vector<std::string> fields = {"passwd", "bob", "example.org", "new password"};
  auto line = *encode_request(fields);
  line.pop_back();
  EXPECT_EQ(split_request(line), fields);
  EXPECT_EQ(split_request("kick\tjid\t"), (std::vector<std::string>{"kick", "jid", ""}));
  EXPECT_TRUE(split_request("").empty());
}

TEST(AdminProtocol, ResponsesRoundTrip) {
  const auto ok = ok_response({"alice", "bob\twith\tcolumns"});
  EXPECT_EQ(encode_response(ok), "ok\nalice\nbob\twith\tcolumns\n");
  EXPECT_EQ(parse_response(encode_response(ok)), ok);

  const auto empty = ok_response();
  EXPECT_EQ(encode_response(empty), "ok\n");
  EXPECT_EQ(parse_response("ok\n"), empty);

  const auto error = error_response("user alice@localhost already exists");
  EXPECT_EQ(encode_response(error), "error\tuser alice@localhost already exists\n");
  EXPECT_EQ(parse_response(encode_response(error)), error);
}

TEST(AdminProtocol, EncodeResponseKeepsTheFraming) {
  EXPECT_EQ(encode_response(error_response("two\nlines\tand tab")), "error\ttwo lines and tab\n");
  EXPECT_EQ(encode_response(ok_response({"a\r\nb"})), "ok\na  b\n");
}

TEST(AdminProtocol, ParseResponseRefusesGarbage) {
  EXPECT_EQ(parse_response(""), std::nullopt);
  EXPECT_EQ(parse_response("ok"), std::nullopt);
  EXPECT_EQ(parse_response("okay\n"), std::nullopt);
  EXPECT_EQ(parse_response("error\n"), std::nullopt);
  EXPECT_EQ(parse_response("HTTP/1.1 200 OK\n"), std::nullopt);
}

TEST(AdminProtocol, ParseResponseKeepsALastLineWithoutNewline) {
  const auto response = parse_response("ok\nfirst\nsecond");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->lines, (std::vector<std::string>{"first", "second"}));
}

std::string temp_socket_path() {
  std::string pattern = (std::filesystem::temp_directory_path() / "parley-proto-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  return pattern + "/admin.sock";
}

int listen_on(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 || ::listen(fd, 4) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(AdminClient, NoSocketFileMeansNotRunning) {
  const auto path = temp_socket_path();
  const auto result = send_request(path, {"status"});
  EXPECT_EQ(result.status, ClientResult::Status::not_running);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST(AdminClient, StaleSocketFileMeansNotRunning) {
  const auto path = temp_socket_path();
  ::close(listen_on(path));  // the file stays, nobody listens
  ASSERT_TRUE(std::filesystem::is_socket(path));
  EXPECT_EQ(send_request(path, {"status"}).status, ClientResult::Status::not_running);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST(AdminClient, RefusesBadArgumentsWithoutConnecting) {
  const auto result = send_request("/nonexistent/admin.sock", {"register", "a\tb", "h", "p"});
  EXPECT_EQ(result.status, ClientResult::Status::failed);
  EXPECT_NE(result.message.find("tabs or line breaks"), std::string::npos);
}

// A one-shot server in a thread: reads one request line, answers 'reply'.
class FakeServer {
 public:
  FakeServer(std::string reply) : path_(temp_socket_path()), listener_(listen_on(path_)) {
    thread_ = std::thread([this, reply = std::move(reply)] {
      const int client = ::accept(listener_, nullptr, nullptr);
      char c;
      while (::read(client, &c, 1) == 1 && c != '\n') request_ += c;
      if (::write(client, reply.data(), reply.size()) < 0) request_ = "write failed";
      ::close(client);
    });
  }
  ~FakeServer() {
    if (thread_.joinable()) thread_.join();
    ::close(listener_);
    std::filesystem::remove_all(std::filesystem::path(path_).parent_path());
  }
  const std::string& path() const { return path_; }
  std::string request() {
    thread_.join();
    return request_;
  }

 private:
  std::string path_;
  int listener_;
  std::string request_;
  std::thread thread_;
};

TEST(AdminClient, SendsTheRequestAndParsesTheAnswer) {
  FakeServer server("ok\nalice\nbob\n");
  const auto result = send_request(server.path(), {"users", "localhost"});
  EXPECT_EQ(server.request(), "users\tlocalhost");
  ASSERT_EQ(result.status, ClientResult::Status::answered) << result.message;
  EXPECT_TRUE(result.response.ok);
  EXPECT_EQ(result.response.lines, (std::vector<std::string>{"alice", "bob"}));
}

TEST(AdminClient, ReportsServerErrors) {
  FakeServer server("error\tno such user bob@localhost\n");
  const auto result = send_request(server.path(), {"unregister", "bob", "localhost"});
  ASSERT_EQ(result.status, ClientResult::Status::answered);
  EXPECT_FALSE(result.response.ok);
  EXPECT_EQ(result.response.error, "no such user bob@localhost");
}

TEST(AdminClient, AnswerWithoutStatusLineFails) {
  FakeServer server("");
  const auto result = send_request(server.path(), {"status"});
  EXPECT_EQ(result.status, ClientResult::Status::failed);
  EXPECT_NE(result.message.find("without a valid answer"), std::string::npos);
}

TEST(AdminClient, TimesOutOnASilentServer) {
  const auto path = temp_socket_path();
  const int listener = listen_on(path);  // accepts (backlog) but never answers
  const auto result = send_request(path, {"status"}, std::chrono::milliseconds(100));
  EXPECT_EQ(result.status, ClientResult::Status::failed);
  EXPECT_NE(result.message.find("no answer from parleyd"), std::string::npos);
  ::close(listener);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

}  // namespace
}  // namespace parley::admin
