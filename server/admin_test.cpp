#include "server/admin.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "router/router.hpp"
#include "router/workers.hpp"
#include "server/admin_protocol.hpp"
#include "storage/storage.hpp"
#include "xmpp/sasl.hpp"

namespace parley::admin {
namespace {

namespace fs = std::filesystem;

class FakeSession : public router::Session {
 public:
  void deliver(xml::Element) override {}
  void close(std::string condition, std::string text) override {
    std::lock_guard lock(mutex_);
    closed_ = condition + ": " + text;
  }
  const std::string& id() const override { return id_; }
  std::string remote_address() const override { return "127.0.0.1:40000"; }
  std::string tls_version() const override { return tls_; }
  std::string closed() const {
    std::lock_guard lock(mutex_);
    return closed_;
  }
  std::string tls_ = "TLSv1.3";

 private:
  std::string id_ = "s1";
  mutable std::mutex mutex_;
  std::string closed_;
};

fs::path make_temp_dir() {
  std::string pattern = (fs::temp_directory_path() / "parley-admin-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

xmpp::Jid jid(const std::string& text) { return *xmpp::Jid::parse(text); }

// Sends raw bytes and returns everything the server answers.
std::string raw_exchange(const std::string& path, const std::string& bytes) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return "connect failed";
  }
  std::string_view unsent = bytes;
  while (!unsent.empty()) {
    const auto sent = ::send(fd, unsent.data(), unsent.size(), MSG_NOSIGNAL);
    if (sent <= 0) break;
    unsent.remove_prefix(static_cast<std::size_t>(sent));
  }
  std::string answer;
  char buffer[4096];
  for (ssize_t count; (count = ::recv(fd, buffer, sizeof buffer, 0)) > 0;)
    answer.append(buffer, static_cast<std::size_t>(count));
  ::close(fd);
  return answer;
}

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir();
    socket_path_ = (dir_ / "run" / "admin.sock").string();
    storage_ = storage::open("memory:");
    server_ = start_server(socket_path_);
    thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    server_->stop();
    guard_.reset();
    io_.stop();
    thread_.join();
    server_.reset();
    fs::remove_all(dir_);
  }

  std::unique_ptr<AdminServer> start_server(const std::string& path) {
    auto server = std::make_unique<AdminServer>(
        io_, path, router_, *storage_, workers_,
        [this]() -> std::string {
          if (reload_fails_) throw std::runtime_error("parley.yml:3: unknown key 'x' at top level");
          return "certificates reloaded";
        },
        std::vector<std::string>{"localhost", "example.org"}, "1.2.3",
        std::chrono::steady_clock::now() - std::chrono::seconds(42));
    server->start();
    return server;
  }

  Response request(const std::vector<std::string>& fields) {
    const auto result = send_request(socket_path_, fields, std::chrono::seconds(20));
    EXPECT_EQ(result.status, ClientResult::Status::answered) << result.message;
    return result.response;
  }

  void expect_ok(const std::vector<std::string>& fields, const std::vector<std::string>& lines) {
    const auto response = request(fields);
    EXPECT_TRUE(response.ok) << response.error;
    EXPECT_EQ(response.lines, lines);
  }

  void expect_error(const std::vector<std::string>& fields, const std::string& fragment) {
    const auto response = request(fields);
    EXPECT_FALSE(response.ok);
    EXPECT_NE(response.error.find(fragment), std::string::npos) << response.error;
  }

  std::shared_ptr<FakeSession> bind(const std::string& full) {
    auto session = std::make_shared<FakeSession>();
    router_.sessions().bind(jid(full), session);
    return session;
  }

  fs::path dir_;
  std::string socket_path_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_ = boost::asio::make_work_guard(io_);
  router::Router router_;
  std::unique_ptr<storage::Storage> storage_;
  router::WorkerPool workers_{2};
  std::atomic<bool> reload_fails_{false};
  std::unique_ptr<AdminServer> server_;
  std::thread thread_;
};

TEST_F(AdminServerTest, SocketIsOnlyForItsOwner) {
  struct stat info {};
  ASSERT_EQ(::stat(socket_path_.c_str(), &info), 0);
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

TEST_F(AdminServerTest, Status) {
  bind("alice@localhost/phone");
  const auto response = request({"status"});
  ASSERT_TRUE(response.ok);
  ASSERT_EQ(response.lines.size(), 5u);
  EXPECT_EQ(response.lines[0], "version: 1.2.3");
  EXPECT_TRUE(response.lines[1].starts_with("uptime: 4") && response.lines[1].ends_with(" s")) << response.lines[1];
  EXPECT_EQ(response.lines[2], "hosts: localhost, example.org");
  EXPECT_EQ(response.lines[3], "sessions: 1");
  EXPECT_EQ(response.lines[4], "storage: memory");
}

TEST_F(AdminServerTest, RegisterStoresScramKeysForBothHashes) {
  expect_ok({"register", "Alice", "LocalHost", "correct horse"}, {"registered alice@localhost"});
  const auto account = storage_->accounts().find("alice", "localhost");
  ASSERT_TRUE(account);
  EXPECT_TRUE(sasl::verify_password(sasl::Hash::sha1, "correct horse", account->sha1));
  EXPECT_TRUE(sasl::verify_password(sasl::Hash::sha256, "correct horse", account->sha256));
  EXPECT_FALSE(sasl::verify_password(sasl::Hash::sha256, "wrong", account->sha256));
  EXPECT_GT(account->created_at, 0);
}

TEST_F(AdminServerTest, RegisterRefusals) {
  expect_ok({"register", "alice", "localhost", "pw"}, {"registered alice@localhost"});
  expect_error({"register", "alice", "localhost", "other"}, "user alice@localhost already exists");
  expect_error({"register", "bob", "nowhere.example", "pw"},
               "unknown host 'nowhere.example' (this server serves: localhost, example.org)");
  expect_error({"register", "bad@name", "localhost", "pw"}, "invalid username 'bad@name'");
  expect_error({"register", "", "localhost", "pw"}, "invalid username ''");
  expect_error({"register", "bob", "localhost", ""}, "the password may not be empty");
  expect_error({"register", "bob", "localhost"}, "usage: register USER HOST PASSWORD");
  EXPECT_FALSE(storage_->accounts().find("bob", "localhost"));
}

TEST_F(AdminServerTest, UsersAreListedSortedPerHost) {
  expect_ok({"register", "bob", "localhost", "pw"}, {"registered bob@localhost"});
  expect_ok({"register", "alice", "localhost", "pw"}, {"registered alice@localhost"});
  expect_ok({"register", "carol", "example.org", "pw"}, {"registered carol@example.org"});
  expect_ok({"users", "localhost"}, {"alice", "bob"});
  expect_ok({"users", "example.org"}, {"carol"});
  expect_error({"users", "elsewhere.example"}, "unknown host");
}

TEST_F(AdminServerTest, PasswdReplacesTheKeys) {
  expect_ok({"register", "alice", "localhost", "old password"}, {"registered alice@localhost"});
  expect_ok({"passwd", "alice", "localhost", "new password"}, {"password changed for alice@localhost"});
  const auto account = storage_->accounts().find("alice", "localhost");
  ASSERT_TRUE(account);
  EXPECT_TRUE(sasl::verify_password(sasl::Hash::sha1, "new password", account->sha1));
  EXPECT_TRUE(sasl::verify_password(sasl::Hash::sha256, "new password", account->sha256));
  EXPECT_FALSE(sasl::verify_password(sasl::Hash::sha256, "old password", account->sha256));
  expect_error({"passwd", "nobody", "localhost", "pw"}, "no such user nobody@localhost");
}

TEST_F(AdminServerTest, UnregisterRemovesTheAccountAndClosesItsSessions) {
  expect_ok({"register", "alice", "localhost", "pw"}, {"registered alice@localhost"});
  const auto phone = bind("alice@localhost/phone");
  const auto laptop = bind("alice@localhost/laptop");
  const auto other = bind("bob@localhost/desk");
  expect_ok({"unregister", "alice", "localhost"}, {"unregistered alice@localhost (2 sessions closed)"});
  EXPECT_EQ(phone->closed(), "not-authorized: account removed");
  EXPECT_EQ(laptop->closed(), "not-authorized: account removed");
  EXPECT_EQ(other->closed(), "");
  EXPECT_FALSE(storage_->accounts().find("alice", "localhost"));
  expect_error({"unregister", "alice", "localhost"}, "no such user alice@localhost");
}

TEST_F(AdminServerTest, SessionsListEveryBoundResource) {
  EXPECT_TRUE(request({"sessions"}).lines.empty());
  const auto plain = bind("bob@localhost/desk");
  plain->tls_ = "";
  bind("alice@localhost/phone");
  router_.sessions().set_presence(jid("alice@localhost/phone"), std::make_shared<xml::Element>("presence"), 5);
  const auto response = request({"sessions"});
  ASSERT_TRUE(response.ok);
  ASSERT_EQ(response.lines.size(), 2u);
  const auto columns = split_request(response.lines[0]);
  ASSERT_EQ(columns.size(), 6u) << response.lines[0];
  EXPECT_EQ(columns[0], "alice@localhost/phone");
  EXPECT_EQ(columns[1], "127.0.0.1:40000");
  EXPECT_EQ(columns[2], "TLSv1.3");
  EXPECT_EQ(columns[3].size(), std::string("2026-01-01T00:00:00Z").size());
  EXPECT_EQ(columns[3].back(), 'Z');
  EXPECT_EQ(columns[4], "5");
  EXPECT_EQ(columns[5], "available");
  const auto bob = split_request(response.lines[1]);
  ASSERT_EQ(bob.size(), 6u);
  EXPECT_EQ(bob[0], "bob@localhost/desk");
  EXPECT_EQ(bob[2], "-");
  EXPECT_EQ(bob[5], "unavailable");
}

TEST_F(AdminServerTest, KickFullJidClosesOnlyThatSession) {
  const auto phone = bind("alice@localhost/phone");
  const auto laptop = bind("alice@localhost/laptop");
  expect_ok({"kick", "alice@localhost/phone"}, {"kicked alice@localhost/phone"});
  EXPECT_EQ(phone->closed(), "policy-violation: kicked by administrator");
  EXPECT_EQ(laptop->closed(), "");
}

TEST_F(AdminServerTest, KickBareJidClosesEverySessionWithTheReason) {
  const auto phone = bind("alice@localhost/phone");
  const auto laptop = bind("alice@localhost/laptop");
  const auto response = request({"kick", "alice@localhost", "spamming"});
  ASSERT_TRUE(response.ok) << response.error;
  EXPECT_EQ(response.lines.size(), 2u);
  EXPECT_EQ(phone->closed(), "policy-violation: spamming");
  EXPECT_EQ(laptop->closed(), "policy-violation: spamming");
}

TEST_F(AdminServerTest, KickRefusals) {
  expect_error({"kick", "nobody@localhost"}, "no session for nobody@localhost");
  expect_error({"kick", "alice@localhost/gone"}, "no session for alice@localhost/gone");
  expect_error({"kick", "localhost"}, "kick needs a user's JID");
  expect_error({"kick", "@@"}, "invalid JID '@@'");
  expect_error({"kick"}, "usage: kick JID [REASON]");
}

TEST_F(AdminServerTest, ReloadReturnsTheCallbacksAnswer) {
  expect_ok({"reload"}, {"certificates reloaded"});
  reload_fails_ = true;
  expect_error({"reload"}, "parley.yml:3: unknown key 'x'");
}

TEST_F(AdminServerTest, ListingsWithoutTheirSourceSayWhy) {
  expect_error({"components"}, "no external component is configured on this server");
  expect_error({"s2s"}, "federation is not enabled on this server");
}

TEST_F(AdminServerTest, BadRequests) {
  expect_error({"frobnicate"},
               "unknown command 'frobnicate' (commands: components, kick, passwd, register, reload,");
  expect_error({"status", "extra"}, "usage: status");
  EXPECT_EQ(raw_exchange(socket_path_, "\n"), "error\tempty request\n");
  EXPECT_EQ(raw_exchange(socket_path_, "register\talice\tlocalhost\tpass\rword\n"),
            "error\targuments may not contain tabs or line breaks\n");
  EXPECT_EQ(raw_exchange(socket_path_, std::string(max_request_size + 10, 'x')),
            "error\trequest too long (at most 65536 bytes)\n");
}

TEST_F(AdminServerTest, ASilentClientDoesNotBlockOthers) {
  const int silent = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path_.data(), socket_path_.size());
  ASSERT_EQ(::connect(silent, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  EXPECT_TRUE(request({"status"}).ok);
  ::close(silent);
}

TEST_F(AdminServerTest, RefusesToStartWhereAnotherServerAnswers) {
  try {
    start_server(socket_path_);
    FAIL() << "a second server started on the same socket";
  } catch (const StartError& e) {
    EXPECT_NE(std::string(e.what()).find("another parleyd is already answering on admin socket " + socket_path_),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(request({"status"}).ok);
}

TEST_F(AdminServerTest, RefusesAPathThatIsNotASocket) {
  const auto path = (dir_ / "plain-file").string();
  std::ofstream(path) << "data";
  EXPECT_THROW(start_server(path), StartError);
  EXPECT_TRUE(fs::is_regular_file(path));
}

TEST_F(AdminServerTest, RefusesAPathTooLongForASocket) {
  EXPECT_THROW(start_server((dir_ / std::string(120, 'a')).string()), StartError);
}

TEST_F(AdminServerTest, ReplacesAStaleSocketFile) {
  const auto path = (dir_ / "stale.sock").string();
  {
    // A socket file nobody listens on, as a crashed server leaves behind.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.data(), path.size());
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
    ::close(fd);
  }
  auto second = start_server(path);
  const auto result = send_request(path, {"status"}, std::chrono::seconds(20));
  EXPECT_EQ(result.status, ClientResult::Status::answered);
  second->stop();
}

TEST_F(AdminServerTest, StopRemovesTheSocketFile) {
  server_->stop();
  EXPECT_FALSE(fs::exists(socket_path_));
  EXPECT_EQ(send_request(socket_path_, {"status"}).status, ClientResult::Status::not_running);
  server_->stop();
}

}  // namespace
}  // namespace parley::admin
