// The admin socket protocol, shared by parleyd (server/admin.cpp) and
// parleyctl (tools/parleyctl.cpp).
//
// Transport: a unix-domain stream socket (config key admin_socket), mode
// 0600, one request per connection.
//
// Request: ONE line, the command name and its arguments separated by TAB,
// terminated by '\n':
//
//     register<TAB>alice<TAB>localhost<TAB>secret\n
//
// A field may not contain TAB, CR or LF (clients refuse such arguments; the
// server answers an error). A request longer than max_request_size is
// refused.
//
// Response: a status line, then zero or more result lines, each ending in
// '\n'; then the server closes the connection:
//
//     ok\n                          error<TAB>user alice@localhost already exists\n
//     registered alice@localhost\n
//
// The error message is one line. Result lines may contain TAB (tabular
// output such as `sessions` separates its columns with TAB) but never CR or
// LF.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parley::admin {

inline constexpr std::size_t max_request_size = 64 * 1024;

// True when 'field' can travel as one request field (no TAB, CR or LF).
bool valid_field(std::string_view field);

// The request line for 'fields' (with its '\n'), or nullopt when a field is
// not valid or there are no fields.
std::optional<std::string> encode_request(const std::vector<std::string>& fields);

// The fields of a request line (without its '\n'). An empty line has none.
std::vector<std::string> split_request(std::string_view line);

struct Response {
  bool ok = true;
  std::string error;               // when !ok
  std::vector<std::string> lines;  // result lines, without '\n'
  bool operator==(const Response&) const = default;
};

Response ok_response(std::vector<std::string> lines = {});
Response error_response(std::string_view message);

// Serialises a response; CR and LF inside the message or lines (and TAB in
// the error message) become spaces so the framing always holds.
std::string encode_response(const Response& response);

// Parses everything the server sent; nullopt when it does not start with a
// complete status line.
std::optional<Response> parse_response(std::string_view text);

// The blocking client side, for parleyctl and tests: connects to the socket,
// sends the request, reads the response until the server closes.
struct ClientResult {
  enum class Status {
    answered,     // response holds the server's answer
    not_running,  // nobody listens on the socket (ENOENT, ECONNREFUSED)
    failed,       // anything else; message says what
  };
  Status status = Status::failed;
  Response response;
  std::string message;
};
ClientResult send_request(const std::string& socket_path, const std::vector<std::string>& fields,
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace parley::admin
