#include "http/http_server.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <limits>
#include <map>
#include <mutex>
#include <optional>

namespace parley::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

template <class T>
using Task = asio::awaitable<T>;

namespace {

constexpr auto tls_shutdown_timeout = std::chrono::seconds(5);
// How long, and how much, a refused request's body is read and dropped
// before the connection closes (see discard_input).
constexpr auto lingering_time = std::chrono::seconds(2);
constexpr std::uint64_t lingering_bytes = 64 * 1024 * 1024;

std::string lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string text(beast::string_view view) { return std::string(view.data(), view.size()); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Request to_request(const bhttp::request_parser<bhttp::empty_body>& parser) {
  const auto& header = parser.get();
  Request request;
  request.method = text(header.method_string());
  request.target = text(header.target());
  const auto path = std::string_view(request.target).substr(0, request.target.find_first_of("?#"));
  request.path = percent_decode(path).value_or(std::string());
  for (const auto& field : header) {
    request.headers.emplace_back(lower(text(field.name_string())), text(field.value()));
  }
  if (const auto length = parser.content_length()) request.content_length = *length;
  request.chunked = parser.chunked();
  return request;
}

}  // namespace

std::string_view Request::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return {};
}

Response Response::text(unsigned status, std::string body) {
  Response response;
  response.status = status;
  response.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  response.body = std::move(body);
  response.body += '\n';
  return response;
}

std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = hex_value(text[i + 1]);
    const int low = hex_value(text[i + 2]);
    if (high < 0 || low < 0 || (high == 0 && low == 0)) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

std::string percent_encode(std::string_view text) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                            c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += c;
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out += '%';
      out += digits[byte >> 4];
      out += digits[byte & 15];
    }
  }
  return out;
}

// A connection's socket, reachable from close_all() while the connection's
// coroutine runs. Only touched on the connection's own shard.
struct SocketLink {
  beast::tcp_stream* stream = nullptr;
};

struct Server::State : std::enable_shared_from_this<State> {
  State(std::vector<asio::io_context*> shard_list, Settings s)
      : shards(std::move(shard_list)), acceptor(std::in_place, *shards.front()), settings(std::move(s)) {}

  std::vector<asio::io_context*> shards;
  // Reset by ~Server: it belongs to the first shard, which may be destroyed
  // before the last connection lets go of this state.
  std::optional<tcp::acceptor> acceptor;
  Settings settings;
  std::map<std::string, Handler, std::greater<>> routes;  // longest prefix first among those matching
  std::size_t next_shard = 0;
  std::uint64_t next_id = 0;
  std::atomic<std::size_t> connections{0};
  mutable std::mutex links_mutex;
  std::map<std::uint64_t, std::pair<asio::io_context*, std::shared_ptr<SocketLink>>> links;

  Task<void> accept_loop(std::shared_ptr<State> self);
  Task<void> run_connection(std::shared_ptr<State> self, tcp::socket socket, asio::io_context* shard, std::uint64_t id);
  template <class Stream>
  Task<void> serve(Stream& stream, const std::string& peer);
  template <class Stream, class Body>
  Task<bool> write_message(Stream& stream, bhttp::response<Body>& message);
  template <class Stream>
  Task<bool> write_response(Stream& stream, Response& response, bool keep_alive);
  template <class Stream>
  Task<void> discard_input(Stream& stream);
  template <class Stream>
  Task<bool> read_body(Stream& stream, beast::flat_buffer& buffer, bhttp::request_parser<bhttp::empty_body>& parser,
                       const Upload& upload);

  Decision dispatch(const Request& request) const {
    if (request.path.empty() || request.path.front() != '/') {
      return {Response::text(400, "Bad Request: malformed path"), std::nullopt};
    }
    // routes is ordered by descending prefix, so the first match is the longest.
    for (const auto& [prefix, handler] : routes) {
      if (request.path.starts_with(prefix)) return handler(request);
    }
    return {Response::text(404, "Not Found"), std::nullopt};
  }
};

template <class Stream>
static beast::tcp_stream& lowest(Stream& stream) {
  return beast::get_lowest_layer(stream);
}

Task<void> Server::State::accept_loop(std::shared_ptr<State> self) {
  for (;;) {
    asio::io_context* shard = shards[next_shard++ % shards.size()];
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor->async_accept(*shard, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) co_return;
    if (ec) {
      spdlog::warn("http: accept failed: {}", ec.message());
      continue;
    }
    if (connections.load() >= settings.max_connections) {
      spdlog::warn("http: {} connections open (limit); closing a new one", settings.max_connections);
      socket.close(ec);
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    ++connections;
    const auto id = ++next_id;
    asio::co_spawn(*shard, run_connection(self, std::move(socket), shard, id), asio::detached);
  }
}

// 'self' keeps the state alive for as long as the connection runs.
Task<void> Server::State::run_connection([[maybe_unused]] std::shared_ptr<State> self, tcp::socket socket,
                                         asio::io_context* shard, std::uint64_t id) {
  std::string peer;
  {
    boost::system::error_code ec;
    const auto endpoint = socket.remote_endpoint(ec);
    peer = ec ? std::string("?") : endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  }
  auto link = std::make_shared<SocketLink>();
  {
    std::lock_guard lock(links_mutex);
    links.emplace(id, std::make_pair(shard, link));
  }
  try {
    if (settings.certificates != nullptr) {
      auto context = settings.certificates->context_for(settings.tls_domain);
      if (!context) throw std::runtime_error("no certificate");
      beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *context);
      link->stream = &lowest(stream);
      lowest(stream).expires_after(settings.header_timeout);
      boost::system::error_code ec;
      co_await stream.async_handshake(asio::ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        spdlog::debug("http {}: TLS handshake failed: {}", peer, ec.message());
      } else {
        co_await serve(stream, peer);
        lowest(stream).expires_after(tls_shutdown_timeout);
        co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
      }
      link->stream = nullptr;
    } else {
      beast::tcp_stream stream(std::move(socket));
      link->stream = &stream;
      co_await serve(stream, peer);
      boost::system::error_code ec;
      stream.socket().shutdown(tcp::socket::shutdown_send, ec);
      link->stream = nullptr;
    }
  } catch (const std::exception& e) {
    link->stream = nullptr;
    spdlog::warn("http {}: {}", peer, e.what());
  }
  {
    std::lock_guard lock(links_mutex);
    links.erase(id);
  }
  --connections;
}

template <class Stream>
Task<void> Server::State::serve(Stream& stream, const std::string& peer) {
  beast::flat_buffer buffer;
  for (;;) {
    bhttp::request_parser<bhttp::empty_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(settings.max_header_size));
    // The handler decides on the length; a body is read only into an Upload.
    // (Beast 1.74 compares the length with an empty optional as "above the
    // limit", so no limit is the largest one.)
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    lowest(stream).expires_after(settings.header_timeout);
    boost::system::error_code ec;
    co_await bhttp::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      // Parse errors get an answer; a closed, timed-out or truncated connection does not.
      const bool bad_request = ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
                               ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
      if (bad_request) {
        spdlog::debug("http {}: bad request: {}", peer, ec.message());
        auto response = ec == bhttp::error::header_limit ? Response::text(431, "Request Header Fields Too Large")
                                                         : Response::text(400, "Bad Request");
        co_await write_response(stream, response, false);
      }
      co_return;
    }
    const auto request = to_request(parser);
    bool keep_alive = parser.keep_alive();
    Decision decision;
    try {
      decision = dispatch(request);
    } catch (const std::exception& e) {
      spdlog::error("http {}: {} {} failed: {}", peer, request.method, request.target, e.what());
      decision = {Response::text(500, "Internal Server Error"), std::nullopt};
    }
    Response response;
    const bool unread_body = !decision.upload && (request.chunked || request.content_length.value_or(0) > 0);
    if (decision.upload) {
      const bool complete = co_await read_body(stream, buffer, parser, *decision.upload);
      try {
        response = decision.upload->finish(complete);
      } catch (const std::exception& e) {
        spdlog::error("http {}: finishing the upload to {} failed: {}", peer, decision.upload->file, e.what());
        response = Response::text(500, "Internal Server Error");
      }
      if (!complete) keep_alive = false;
    } else {
      response = std::move(decision.response);
      // An unread body would be taken for the next request.
      if (unread_body) keep_alive = false;
    }
    response.head = request.method == "HEAD";
    spdlog::debug("http {}: {} {} -> {}", peer, request.method, request.target, response.status);
    if (!co_await write_response(stream, response, keep_alive)) co_return;
    if (!keep_alive) {
      if (unread_body) co_await discard_input(stream);
      co_return;
    }
  }
}

// Closing a socket with unread input makes the kernel answer with a reset,
// which can destroy the response before the client has read it (a client
// still sending a refused upload would see "connection reset" instead of
// 413). So the rest of the body is read and dropped, for a little while.
template <class Stream>
Task<void> Server::State::discard_input(Stream& stream) {
  std::array<char, 16384> scratch;
  lowest(stream).expires_after(lingering_time);
  std::uint64_t total = 0;
  boost::system::error_code ec;
  while (total < lingering_bytes) {
    total += co_await stream.async_read_some(asio::buffer(scratch), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
  }
}

template <class Stream>
Task<bool> Server::State::read_body(Stream& stream, beast::flat_buffer& buffer,
                                    bhttp::request_parser<bhttp::empty_body>& header_parser, const Upload& upload) {
  boost::system::error_code ec;
  if (beast::iequals(header_parser.get()[bhttp::field::expect], "100-continue")) {
    bhttp::response<bhttp::empty_body> proceed{bhttp::status::continue_, 11};
    lowest(stream).expires_after(settings.idle_timeout);
    co_await bhttp::async_write(stream, proceed, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return false;
  }
  bhttp::request_parser<bhttp::file_body> parser(std::move(header_parser));
  parser.body_limit(upload.size);
  parser.get().body().open(upload.file.c_str(), beast::file_mode::write, ec);
  if (ec) {
    spdlog::error("http: cannot write {}: {}", upload.file, ec.message());
    co_return false;
  }
  while (!parser.is_done()) {
    lowest(stream).expires_after(settings.idle_timeout);
    co_await bhttp::async_read_some(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      spdlog::debug("http: upload to {} ended early: {}", upload.file, ec.message());
      parser.get().body().close();
      co_return false;
    }
  }
  parser.get().body().close();
  co_return true;
}

template <class Stream, class Body>
Task<bool> Server::State::write_message(Stream& stream, bhttp::response<Body>& message) {
  bhttp::response_serializer<Body> serializer(message);
  boost::system::error_code ec;
  // One write of a large file may take long on a slow link: the idle
  // timeout restarts with every chunk that goes out.
  while (!serializer.is_done()) {
    lowest(stream).expires_after(settings.idle_timeout);
    co_await bhttp::async_write_some(stream, serializer, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return false;
  }
  co_return true;
}

template <class Stream>
Task<bool> Server::State::write_response(Stream& stream, Response& response, bool keep_alive) {
  const auto fill = [&](auto& message) {
    for (const auto& [name, value] : response.headers) message.insert(name, value);
    message.set(bhttp::field::server, "Parley");
    message.keep_alive(keep_alive);
  };
  if (!response.file.empty() && !response.head) {
    bhttp::response<bhttp::file_body> message{static_cast<bhttp::status>(response.status), 11};
    boost::system::error_code ec;
    message.body().open(response.file.c_str(), beast::file_mode::scan, ec);
    if (ec) {
      spdlog::warn("http: cannot read {}: {}", response.file, ec.message());
      response = Response::text(404, "Not Found");
    } else {
      fill(message);
      message.prepare_payload();
      co_return co_await write_message(stream, message);
    }
  }
  if (response.head) {
    bhttp::response<bhttp::empty_body> message{static_cast<bhttp::status>(response.status), 11};
    fill(message);
    message.content_length(response.file.empty() ? response.body.size() : response.file_size);
    co_return co_await write_message(stream, message);
  }
  bhttp::response<bhttp::string_body> message{static_cast<bhttp::status>(response.status), 11};
  fill(message);
  message.body() = std::move(response.body);
  message.prepare_payload();
  co_return co_await write_message(stream, message);
}

Server::Server(std::vector<asio::io_context*> shards, const std::string& address, std::uint16_t port, Settings settings)
    : state_(std::make_shared<State>(std::move(shards), std::move(settings))) {
  tcp::endpoint endpoint(asio::ip::make_address(address), port);
  state_->acceptor->open(endpoint.protocol());
  state_->acceptor->set_option(tcp::acceptor::reuse_address(true));
  state_->acceptor->bind(endpoint);
  state_->acceptor->listen(asio::socket_base::max_listen_connections);
}

Server::~Server() {
  // The shards no longer run (see the header), so nothing else touches the
  // state. Connection frames still held by the shards' io_contexts keep it
  // alive until those are destroyed, in any order: what belongs to other
  // objects (the first shard's acceptor, the handlers and what they hold)
  // goes now.
  state_->acceptor.reset();
  state_->routes.clear();
}

void Server::route(std::string prefix, Handler handler) { state_->routes[std::move(prefix)] = std::move(handler); }

void Server::start() { asio::co_spawn(*state_->shards.front(), state_->accept_loop(state_), asio::detached); }

void Server::stop() {
  asio::post(*state_->shards.front(), [state = state_]() {
    boost::system::error_code ec;
    if (state->acceptor) state->acceptor->close(ec);
  });
}

void Server::close_all() {
  std::lock_guard lock(state_->links_mutex);
  for (const auto& [id, entry] : state_->links) {
    asio::post(*entry.first, [link = entry.second]() {
      if (link->stream != nullptr) link->stream->close();
    });
  }
}

std::size_t Server::open_connections() const { return state_->connections.load(); }

std::uint16_t Server::port() const { return state_->acceptor->local_endpoint().port(); }

}  // namespace parley::http
