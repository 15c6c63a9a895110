#include "server/admin_protocol.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace parley::admin {

namespace {

std::string flatten(std::string_view text, std::string_view forbidden) {
  std::string flat(text);
  for (auto& c : flat) {
    if (forbidden.find(c) != std::string_view::npos) c = ' ';
  }
  return flat;
}

// Closes the descriptor however the exchange ends.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits for 'events' on fd until the deadline; false on time-out.
bool wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    pollfd entry{fd, events, 0};
    const int ready = ::poll(&entry, 1, remaining_ms(deadline));
    if (ready > 0) return true;
    if (ready == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

bool valid_field(std::string_view field) { return field.find_first_of("\t\r\n") == std::string_view::npos; }

std::optional<std::string> encode_request(const std::vector<std::string>& fields) {
  if (fields.empty()) return std::nullopt;
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (!valid_field(fields[i])) return std::nullopt;
    if (i > 0) line += '\t';
    line += fields[i];
  }
  line += '\n';
  return line;
}

std::vector<std::string> split_request(std::string_view line) {
  std::vector<std::string> fields;
  if (line.empty()) return fields;
  for (;;) {
    const auto tab = line.find('\t');
    fields.emplace_back(line.substr(0, tab));
    if (tab == std::string_view::npos) break;
    line.remove_prefix(tab + 1);
  }
  return fields;
}

Response ok_response(std::vector<std::string> lines) { return Response{true, {}, std::move(lines)}; }

Response error_response(std::string_view message) { return Response{false, std::string(message), {}}; }

std::string encode_response(const Response& response) {
  std::string text = response.ok ? "ok\n" : "error\t" + flatten(response.error, "\t\r\n") + "\n";
  for (const auto& line : response.lines) {
    text += flatten(line, "\r\n");
    text += '\n';
  }
  return text;
}

std::optional<Response> parse_response(std::string_view text) {
  const auto status_end = text.find('\n');
  if (status_end == std::string_view::npos) return std::nullopt;
  const auto status = text.substr(0, status_end);
  Response response;
  if (status == "ok") {
    response.ok = true;
  } else if (status.starts_with("error\t")) {
    response.ok = false;
    response.error = std::string(status.substr(6));
  } else {
    return std::nullopt;
  }
  auto rest = text.substr(status_end + 1);
  while (!rest.empty()) {
    const auto end = rest.find('\n');
    response.lines.emplace_back(rest.substr(0, end));
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end + 1);
  }
  return response;
}

ClientResult send_request(const std::string& socket_path, const std::vector<std::string>& fields,
                          std::chrono::milliseconds timeout) {
  ClientResult result;
  const auto request = encode_request(fields);
  if (!request) {
    result.message = "arguments may not contain tabs or line breaks";
    return result;
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof address.sun_path) {
    result.message = "invalid admin socket path '" + socket_path + "'";
    return result;
  }
  std::memcpy(address.sun_path, socket_path.data(), socket_path.size());

  FileDescriptor socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (socket.get() < 0) {
    result.message = std::string("cannot create a socket: ") + std::strerror(errno);
    return result;
  }
  // Connecting to a unix socket does not wait for the server to accept.
  if (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    if (error == ENOENT || error == ECONNREFUSED) {
      result.status = ClientResult::Status::not_running;
    } else {
      result.message = "cannot connect to " + socket_path + ": " + std::strerror(error);
    }
    return result;
  }

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto timed_out =
      "no answer from parleyd within " + (timeout.count() % 1000 == 0 ? std::to_string(timeout.count() / 1000) + " s"
                                                                      : std::to_string(timeout.count()) + " ms");
  std::string_view unsent = *request;
  while (!unsent.empty()) {
    if (!wait_for(socket.get(), POLLOUT, deadline)) {
      result.message = timed_out;
      return result;
    }
    const auto sent = ::send(socket.get(), unsent.data(), unsent.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0) {
      result.message = std::string("cannot send the request: ") + std::strerror(errno);
      return result;
    }
    unsent.remove_prefix(static_cast<std::size_t>(sent));
  }

  std::string answer;
  char buffer[4096];
  for (;;) {
    if (!wait_for(socket.get(), POLLIN, deadline)) {
      result.message = timed_out;
      return result;
    }
    const auto count = ::recv(socket.get(), buffer, sizeof buffer, 0);
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) {
      result.message = std::string("cannot read the answer: ") + std::strerror(errno);
      return result;
    }
    if (count == 0) break;
    answer.append(buffer, static_cast<std::size_t>(count));
  }
  auto response = parse_response(answer);
  if (!response) {
    result.message = "parleyd closed the connection without a valid answer";
    return result;
  }
  result.status = ClientResult::Status::answered;
  result.response = std::move(*response);
  return result;
}

}  // namespace parley::admin
