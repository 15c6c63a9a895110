#include "bench/connection.hpp"

#include <netinet/in.h>

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <variant>

#include "bench/scram_client.hpp"
#include "xmpp/sasl.hpp"

namespace parley::bench {
namespace {

using asio::use_awaitable;

constexpr std::string_view ns_tls = "urn:ietf:params:xml:ns:xmpp-tls";
constexpr std::string_view ns_sasl = "urn:ietf:params:xml:ns:xmpp-sasl";
constexpr std::string_view ns_bind = "urn:ietf:params:xml:ns:xmpp-bind";
constexpr std::string_view ns_session = "urn:ietf:params:xml:ns:xmpp-session";

// Plain-TCP reads go through one buffer shared by every connection: the
// read is synchronous right after readiness, so no two reads overlap, and
// an idle session costs no buffer at all.
std::array<char, 65536> shared_read_buffer;

std::string describe(const xml::Element& element) { return xml::serialize(element).substr(0, 300); }

bool offers_mechanism(const xml::Element& features, std::string_view name) {
  const auto* mechanisms = features.child("mechanisms", ns_sasl);
  if (mechanisms == nullptr) return false;
  for (const auto& child : mechanisms->children()) {
    if (child.is("mechanism", ns_sasl) && child.text() == name) return true;
  }
  return false;
}

}  // namespace

Connection::Connection(asio::io_context& io, asio::ssl::context& tls_context, const Target& target)
    : socket_(io), tls_context_(tls_context), target_(target), parser_(std::string(xml::ns_client)) {}

Connection::~Connection() = default;

asio::awaitable<void> Connection::connect(const asio::ip::address& source) {
  socket_.open(target_.server.protocol());
  // Linux: choose the source port at connect(), per 4-tuple, not at bind():
  // otherwise every bound socket reserves a port of the whole range.
  int enable = 1;
  ::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &enable, sizeof enable);
  socket_.bind(asio::ip::tcp::endpoint(source, 0));
  co_await socket_.async_connect(target_.server, use_awaitable);
  socket_.set_option(asio::ip::tcp::no_delay(true));
  socket_.non_blocking(true);
}

void Connection::send(std::string_view data) {
  if (closing_) return;
  outbox_.append(data);
  if (!writer_active_) {
    writer_active_ = true;
    asio::co_spawn(socket_.get_executor(), write_loop(shared_from_this()), asio::detached);
  }
}

// keep_alive holds the Connection while bytes are in flight.
asio::awaitable<void> Connection::write_loop(std::shared_ptr<Connection> keep_alive) {
  try {
    while (!outbox_.empty()) {
      writing_.swap(outbox_);
      if (tls_) {
        co_await asio::async_write(*tls_, asio::buffer(writing_), use_awaitable);
      } else {
        co_await asio::async_write(socket_, asio::buffer(writing_), use_awaitable);
      }
      writing_.clear();
    }
  } catch (const boost::system::system_error&) {
    closed_ = true;
    outbox_.clear();
  }
  writer_active_ = false;
  if (keep_alive->closing_) shut_down();
}

void Connection::shut_down() {
  boost::system::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

asio::awaitable<void> Connection::read_more() {
  if (closed_) throw ProtocolError("connection closed");
  boost::system::error_code error;
  if (tls_) {
    std::array<char, 4096> buffer;
    std::size_t count = co_await tls_->async_read_some(asio::buffer(buffer), use_awaitable);
    auto result = parser_.feed(std::string_view(buffer.data(), count));
    for (auto& event : result.events) {
      if (auto* element = std::get_if<xml::Element>(&event)) received_.push_back(std::move(*element));
      if (std::holds_alternative<xml::StreamClose>(event)) closed_ = true;
    }
    if (!result.error.empty()) throw ProtocolError("stream from the server: " + result.error);
  } else {
    co_await socket_.async_wait(asio::ip::tcp::socket::wait_read, use_awaitable);
    for (;;) {
      std::size_t count = socket_.read_some(asio::buffer(shared_read_buffer), error);
      if (error == asio::error::would_block) break;
      if (error) throw ProtocolError("read: " + error.message());
      auto result = parser_.feed(std::string_view(shared_read_buffer.data(), count));
      for (auto& event : result.events) {
        if (auto* element = std::get_if<xml::Element>(&event)) received_.push_back(std::move(*element));
        if (std::holds_alternative<xml::StreamClose>(event)) closed_ = true;
      }
      if (!result.error.empty()) throw ProtocolError("stream from the server: " + result.error);
    }
  }
}

asio::awaitable<xml::Element> Connection::next() {
  while (received_.empty()) {
    if (closed_ || closing_) throw ProtocolError("the server closed the stream");
    try {
      co_await read_more();
    } catch (const boost::system::system_error& error) {
      closed_ = true;
      throw ProtocolError(std::string("read: ") + error.what());
    }
  }
  auto element = std::move(received_.front());
  received_.pop_front();
  if (element.is("error", xml::ns_streams)) {
    closed_ = true;
    const auto* condition = element.first_child_element();
    throw ProtocolError("stream error: " + (condition ? condition->name() : std::string("?")));
  }
  co_return element;
}

asio::awaitable<xml::Element> Connection::open_stream() {
  parser_.reset();
  received_.clear();
  send(xml::stream_header(xml::ns_client, {{"to", target_.domain}, {"version", "1.0"}, {"xml:lang", "en"}}));
  auto features = co_await next();
  if (!features.is("features", xml::ns_streams)) throw ProtocolError("expected features, got " + describe(features));
  co_return features;
}

asio::awaitable<void> Connection::start_tls() {
  send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  auto answer = co_await next();
  if (!answer.is("proceed", ns_tls)) throw ProtocolError("STARTTLS refused: " + describe(answer));
  tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket_, tls_context_);
  SSL_set_tlsext_host_name(tls_->native_handle(), target_.domain.c_str());
  co_await tls_->async_handshake(asio::ssl::stream_base::client, use_awaitable);
}

asio::awaitable<void> Connection::authenticate(const std::string& user, const std::string& password,
                                               const xml::Element& features) {
  if (target_.mechanism == Mechanism::plain) {
    if (!offers_mechanism(features, "PLAIN")) throw ProtocolError("the server does not offer PLAIN");
    send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
         sasl::base64_encode(plain_message(user, password)) + "</auth>");
    auto outcome = co_await next();
    if (!outcome.is("success", ns_sasl)) throw ProtocolError("PLAIN failed: " + describe(outcome));
    co_return;
  }
  auto hash = target_.mechanism == Mechanism::scram_sha1 ? sasl::Hash::sha1 : sasl::Hash::sha256;
  auto name = std::string(sasl::mechanism_name(hash, false));
  if (!offers_mechanism(features, name)) throw ProtocolError("the server does not offer " + name);
  ScramClient scram(hash, user, password);
  send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='" + name + "'>" +
       sasl::base64_encode(scram.first_message()) + "</auth>");
  auto challenge = co_await next();
  if (!challenge.is("challenge", ns_sasl)) throw ProtocolError(name + " failed: " + describe(challenge));
  auto server_first = sasl::base64_decode(challenge.text());
  auto final_message = server_first ? scram.final_message(*server_first, target_.min_iterations) : std::nullopt;
  if (!final_message) throw ProtocolError("unacceptable SCRAM challenge: " + describe(challenge));
  send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" + sasl::base64_encode(*final_message) +
       "</response>");
  auto outcome = co_await next();
  std::string server_final;
  if (outcome.is("challenge", ns_sasl)) {
    // RFC 6120 §6.4.6 allows the additional data in a last challenge.
    server_final = sasl::base64_decode(outcome.text()).value_or("");
    send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    outcome = co_await next();
  } else {
    server_final = sasl::base64_decode(outcome.text()).value_or("");
  }
  if (!outcome.is("success", ns_sasl)) throw ProtocolError(name + " failed: " + describe(outcome));
  if (!scram.verify_server_final(server_final)) throw ProtocolError("the server's SCRAM signature is wrong");
}

asio::awaitable<void> Connection::bind(const std::string& resource, const xml::Element& features) {
  if (features.child("bind", ns_bind) == nullptr) throw ProtocolError("no bind feature");
  send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" + xml::escape(resource) +
       "</resource></bind></iq>");
  auto answer = co_await next();
  if (!answer.is("iq", xml::ns_client) || answer.attr("type") != "result") {
    throw ProtocolError("bind failed: " + describe(answer));
  }
  const auto* bound = answer.child("bind", ns_bind);
  jid_ = bound ? bound->child_text("jid", ns_bind) : std::string();
  if (jid_.empty()) throw ProtocolError("bind answer without a JID");
  // RFC 3921 sessions: only servers that still require them get one.
  const auto* session = features.child("session", ns_session);
  if (session != nullptr && session->child("optional", ns_session) == nullptr) {
    send("<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
    auto reply = co_await next();
    if (reply.attr("type") != "result") throw ProtocolError("session failed: " + describe(reply));
  }
}

asio::awaitable<void> Connection::login(const std::string& user, const std::string& password,
                                        const std::string& resource) {
  auto features = co_await open_stream();
  if (target_.tls == TlsMode::starttls) {
    if (features.child("starttls", ns_tls) == nullptr) throw ProtocolError("the server does not offer STARTTLS");
    co_await start_tls();
    features = co_await open_stream();
  }
  co_await authenticate(user, password, features);
  features = co_await open_stream();
  co_await bind(resource, features);
}

asio::awaitable<void> Connection::register_account(const std::string& user, const std::string& password) {
  auto features = co_await open_stream();
  if (target_.tls == TlsMode::starttls) {
    co_await start_tls();
    features = co_await open_stream();
  }
  send("<iq type='set' id='r'><query xmlns='jabber:iq:register'><username>" + xml::escape(user) +
       "</username><password>" + xml::escape(password) + "</password></query></iq>");
  auto answer = co_await next();
  if (answer.attr("type") == "result") co_return;
  const auto* error = answer.child("error", xml::ns_client);
  if (error != nullptr && error->child("conflict", "urn:ietf:params:xml:ns:xmpp-stanzas") != nullptr) co_return;
  throw ProtocolError("registration of " + user + " failed: " + describe(answer));
}

void Connection::close() {
  if (closing_) return;
  if (!closed_) send(xml::stream_footer);
  closing_ = true;
  closed_ = true;
  if (!writer_active_) shut_down();
}

}  // namespace parley::bench
