#include "storage/mysql/test_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace parley::storage::testing {

namespace {

constexpr auto start_limit = std::chrono::seconds(60);

unsigned free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("no free port on 127.0.0.1");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

bool accepts_connections(unsigned port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return connected;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs a program with stdin and stdout/stderr redirected; the child dies
// with the test process. Returns its PID.
pid_t spawn(const std::vector<std::string>& argv, const std::string& stdin_path,
            const std::filesystem::path& log_path) {
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int in = ::open(stdin_path.c_str(), O_RDONLY);
    const int out = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || out < 0) ::_exit(126);
    ::dup2(in, STDIN_FILENO);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

MariadbServer::MariadbServer() {
  std::string pattern = (std::filesystem::temp_directory_path() / "parley-mariadb-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = pattern;
  std::filesystem::create_directory(dir_ / "data");

  const auto script = dir_ / "bootstrap.sql";
  {
    std::ofstream out(script);
    out << "CREATE DATABASE IF NOT EXISTS mysql;\nUSE mysql;\nSET @auth_root_socket=NULL;\n";
    for (const char* file : {"mysql_system_tables.sql", "mysql_performance_tables.sql",
                             "mysql_system_tables_data.sql"}) {
      out << read_file(std::filesystem::path("/usr/share/mysql") / file) << '\n';
    }
  }
  const auto pid = spawn({"mariadbd", "--no-defaults", "--bootstrap", "--silent-startup",
                          "--datadir=" + (dir_ / "data").string(), "--log-warnings=0",
                          "--user=root", "--innodb-log-file-size=8M"},
                         script.string(), dir_ / "bootstrap.log");
  if (wait_exit(pid) != 0) {
    const auto log = read_file(dir_ / "bootstrap.log");
    std::filesystem::remove_all(dir_);
    throw std::runtime_error("mariadbd --bootstrap failed:\n" + log);
  }
  port_ = free_port();
  start();
}

MariadbServer::~MariadbServer() {
  stop();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void MariadbServer::start() {
  if (running()) return;
  const auto log = dir_ / "server.log";
  pid_ = spawn({"mariadbd", "--no-defaults", "--datadir=" + (dir_ / "data").string(),
                "--socket=" + (dir_ / "server.sock").string(),
                "--pid-file=" + (dir_ / "server.pid").string(), "--port=" + std::to_string(port_),
                "--bind-address=127.0.0.1", "--user=root", "--skip-name-resolve",
                "--character-set-server=utf8mb4", "--innodb-log-file-size=8M",
                "--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=2",
                "--innodb-doublewrite=0", "--performance-schema=OFF", "--skip-log-bin"},
               "/dev/null", log);
  const auto deadline = std::chrono::steady_clock::now() + start_limit;
  while (!accepts_connections(port_)) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_ || std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      wait_exit(pid_);
      pid_ = -1;
      throw std::runtime_error("mariadbd did not start:\n" + read_file(log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void MariadbServer::stop() {
  if (!running()) return;
  ::kill(pid_, SIGTERM);
  wait_exit(pid_);
  pid_ = -1;
}

void MariadbServer::admin(const std::string& sql) const { query(sql); }

std::string MariadbServer::query(const std::string& sql) const {
  const auto log = dir_ / "admin.log";
  std::filesystem::remove(log);
  const auto pid = spawn({"mariadb", "--no-defaults", "-S", (dir_ / "server.sock").string(),
                          "-uroot", "-N", "-B", "-e", sql},
                         "/dev/null", log);
  const int status = wait_exit(pid);
  const auto output = read_file(log);
  if (status != 0) throw std::runtime_error("mariadb -e '" + sql + "' failed: " + output);
  return output;
}

std::string MariadbServer::create_database(const std::string& name) const {
  admin("CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4;"
        " CREATE USER IF NOT EXISTS 'parley'@'127.0.0.1' IDENTIFIED BY 'pw, secret@%';"
        " GRANT ALL ON `" + name + "`.* TO 'parley'@'127.0.0.1';");
  return "mysql://parley:pw%2C%20secret%40%25@127.0.0.1:" + std::to_string(port_) + "/" + name;
}

}  // namespace parley::storage::testing
