#include "s2s/s2s.hpp"

#include <openssl/err.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <unordered_set>

#include "s2s/certificate.hpp"
#include "s2s/connect.hpp"
#include "s2s/dialback.hpp"
#include "xmpp/dns.hpp"
#include "xmpp/errors.hpp"
#include "xmpp/jid.hpp"
#include "xmpp/sasl.hpp"
#include "xmpp/shaper.hpp"
#include "xmpp/stream_parser.hpp"

namespace parley::s2s {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using router::Task;

namespace {

constexpr std::string_view ns_tls = "urn:ietf:params:xml:ns:xmpp-tls";
constexpr std::string_view ns_sasl = "urn:ietf:params:xml:ns:xmpp-sasl";
constexpr std::string_view ns_dialback = "jabber:server:dialback";
constexpr std::string_view ns_dialback_feature = "urn:xmpp:features:dialback";
constexpr auto close_grace = std::chrono::seconds(5);
constexpr auto first_retry_delay = std::chrono::milliseconds(250);
constexpr auto max_retry_delay = std::chrono::seconds(4);

std::string new_stream_id() { return sasl::hex_encode(sasl::random_bytes(12)); }

bool is_stanza(const xml::Element& element) {
  return element.ns() == xml::ns_client &&
         (element.name() == "message" || element.name() == "presence" || element.name() == "iq");
}

// A stream header of ours, declaring the dialback prefix (XEP-0220 §2.1).
std::string header(std::string_view from, std::string_view to, std::string_view id) {
  std::vector<xml::Attribute> attrs{{"xmlns:db", std::string(ns_dialback)}};
  if (!from.empty()) attrs.push_back({"from", std::string(from)});
  if (!to.empty()) attrs.push_back({"to", std::string(to)});
  if (!id.empty()) attrs.push_back({"id", std::string(id)});
  attrs.push_back({"version", "1.0"});
  return xml::stream_header(xml::ns_server, attrs);
}

// <db:result/> or <db:verify/>; 'type' and 'id' only when given, the key as text.
std::string dialback_element(std::string_view name, std::string_view from, std::string_view to, std::string_view id,
                             std::string_view type, std::string_view key) {
  std::string out = "<db:" + std::string(name) + " from='" + xml::escape(from) + "' to='" + xml::escape(to) + "'";
  if (!id.empty()) out += " id='" + xml::escape(id) + "'";
  if (!type.empty()) out += " type='" + xml::escape(type) + "'";
  if (key.empty()) return out + "/>";
  return out + ">" + xml::escape(key) + "</db:" + std::string(name) + ">";
}

int accept_any_certificate(int, X509_STORE_CTX*) { return 1; }

int tls_version_number(const std::string& text) { return text == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION; }

std::string openssl_error_text() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text;
}

// Why a federation attempt failed: the one-line log names it, and it picks
// the error that bounces the queued stanzas.
enum class Cause { dns, tcp, tls, certificate_name, certificate_trust, dialback_refused, policy, timeout, stream };

std::string_view describe(Cause cause) {
  switch (cause) {
    case Cause::dns:
      return "DNS";
    case Cause::tcp:
      return "TCP";
    case Cause::tls:
      return "TLS";
    case Cause::certificate_name:
      return "certificate name";
    case Cause::certificate_trust:
      return "certificate trust";
    case Cause::dialback_refused:
      return "dialback refused";
    case Cause::policy:
      return "policy";
    case Cause::timeout:
      return "timeout";
    case Cause::stream:
      return "stream";
  }
  return "unknown";
}

struct Failure : std::runtime_error {
  Failure(Cause c, const std::string& text) : std::runtime_error(text), cause(c) {}
  Cause cause;
  // Worth another attempt: the peer may come back (restart, network).
  bool transient() const { return cause == Cause::tcp || cause == Cause::timeout || cause == Cause::stream; }
};

Cause certificate_cause(CertificateStatus::Outcome outcome) {
  return outcome == CertificateStatus::Outcome::wrong_name ? Cause::certificate_name : Cause::certificate_trust;
}

}  // namespace

// --- one TCP/TLS connection with its XML stream ---------------------------------

// Transport shared by inbound and outbound streams: socket, TLS, parser,
// a bounded write queue with a writer coroutine, and a deadline that closes
// the socket when it passes. Used from its shard's thread only.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, const Settings& settings)
      : executor_(socket.get_executor()),
        socket_(std::move(socket)),
        parser_(std::string(xml::ns_server), settings.max_stanza_size),
        max_send_queue_(settings.max_send_queue),
        shaper_(settings.read_rate, settings.read_burst),
        wake_writer_(executor_),
        drained_(executor_),
        deadline_timer_(executor_),
        throttle_(executor_) {}

  const asio::any_io_executor& executor() const { return executor_; }
  tcp::socket& socket() { return tls_ ? tls_->next_layer() : socket_; }
  SSL* ssl() { return tls_ ? tls_->native_handle() : nullptr; }
  bool encrypted() const { return tls_ != nullptr; }
  bool is_open() const { return !closed_; }
  bool timed_out() const { return timed_out_; }

  std::string remote_text() {
    boost::system::error_code ec;
    const auto endpoint = socket().remote_endpoint(ec);
    if (ec) return "unknown";
    return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  }

  void start(std::string log_id) {
    log_id_ = std::move(log_id);
    asio::co_spawn(executor_, write_loop(shared_from_this()), asio::detached);
    asio::co_spawn(executor_, deadline_loop(shared_from_this()), asio::detached);
  }

  // Queues bytes for the writer. False (and the connection closes) when the
  // peer does not read fast enough.
  bool send(std::string data) {
    if (closed_ || closing_) return false;
    if (spdlog::should_log(spdlog::level::debug)) spdlog::debug("s2s {} out: {}", log_id_, data);
    queued_bytes_ += data.size();
    if (queued_bytes_ > max_send_queue_) {
      spdlog::warn("s2s {}: send queue over {} bytes, closing", log_id_, max_send_queue_);
      close();
      return false;
    }
    out_.push_back(std::move(data));
    wake_writer_.cancel();
    return true;
  }

  // Sends the final bytes, then closes once they are written (or after a grace period).
  void finish(std::string data) {
    if (closed_ || closing_) return;
    send(std::move(data));
    closing_ = true;
    set_deadline(Clock::now() + close_grace);
    wake_writer_.cancel();
  }
  bool closing() const { return closing_; }

  // Waits until everything queued is written (before a TLS handshake).
  Task<void> drain() {
    while ((!out_.empty() || writing_) && !closed_) {
      boost::system::error_code ec;
      drained_.expires_at(Clock::time_point::max());
      co_await drained_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  // The socket closes when 'when' passes; timed_out() then tells why.
  void set_deadline(Clock::time_point when) {
    deadline_ = when;
    deadline_timer_.cancel();
  }
  void clear_deadline() { set_deadline(Clock::time_point::max()); }

  // Client side: SNI and, for Direct TLS, ALPN xmpp-server (XEP-0368).
  Task<void> handshake_client(asio::ssl::context& context, const std::string& server_name, bool alpn, int min_version,
                              const std::string& ciphers) {
    co_await drain();
    tls_ = std::make_unique<asio::ssl::stream<tcp::socket>>(std::move(socket_), context);
    SSL* native = tls_->native_handle();
    SSL_set_tlsext_host_name(native, server_name.c_str());
    static constexpr unsigned char xmpp_server[] = "\x0bxmpp-server";
    if (alpn) SSL_set_alpn_protos(native, xmpp_server, sizeof xmpp_server - 1);
    configure(native, min_version, ciphers);
    co_await tls_->async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
    parser_.reset();
  }

  // Server side: the peer's certificate is requested but checked by us
  // afterwards, so that a peer without one can still use dialback.
  Task<void> handshake_server(std::shared_ptr<asio::ssl::context> context, int min_version,
                              const std::string& ciphers) {
    co_await drain();
    context_ = std::move(context);
    tls_ = std::make_unique<asio::ssl::stream<tcp::socket>>(std::move(socket_), *context_);
    SSL* native = tls_->native_handle();
    SSL_set_verify(native, SSL_VERIFY_PEER, accept_any_certificate);
    configure(native, min_version, ciphers);
    co_await tls_->async_handshake(asio::ssl::stream_base::server, asio::use_awaitable);
    parser_.reset();
  }

  void reset_parser() {
    parser_.reset();
    events_.clear();
  }

  // The next stream event. Throws Failure(stream) when the peer's XML is
  // bad (after sending the stream error) and the read error otherwise.
  Task<xml::StreamEvent> next_event() {
    std::array<char, 8192> buffer;
    while (events_.empty()) {
      if (closed_) throw Failure(Cause::stream, "connection closed");
      std::size_t n = 0;
      if (tls_) {
        n = co_await tls_->async_read_some(asio::buffer(buffer), asio::use_awaitable);
      } else {
        n = co_await socket_.async_read_some(asio::buffer(buffer), asio::use_awaitable);
      }
      last_read_ = Clock::now();
      if (const auto pause = shaper_.take(n, last_read_); pause > Clock::duration::zero()) {
        throttle_.expires_after(pause);
        boost::system::error_code ignored;
        co_await throttle_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      }
      std::string_view chunk(buffer.data(), n);
      if (spdlog::should_log(spdlog::level::debug)) spdlog::debug("s2s {} in: {}", log_id_, chunk);
      auto result = parser_.feed(chunk);
      for (auto& event : result.events) events_.push_back(std::move(event));
      if (!result.error.empty()) {
        parse_error_ = result.error;
        break;
      }
    }
    if (events_.empty()) {
      std::string data;
      xml::serialize_to(data, xmpp::stream_error(parse_error_));
      data += xml::stream_footer;
      finish(std::move(data));
      throw Failure(Cause::stream, "bad XML from the peer: " + parse_error_);
    }
    auto event = std::move(events_.front());
    events_.pop_front();
    co_return event;
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
    wake_writer_.cancel();
    drained_.cancel();
    deadline_timer_.cancel();
    throttle_.cancel();
  }

  Clock::time_point last_read() const { return last_read_; }
  Clock::time_point last_write() const { return last_write_; }

 private:
  static void configure(SSL* native, int min_version, const std::string& ciphers) {
    SSL_set_min_proto_version(native, min_version);
    if (!ciphers.empty() && SSL_set_cipher_list(native, ciphers.c_str()) != 1) {
      spdlog::warn("s2s: cipher list '{}' refused by OpenSSL: {}", ciphers, openssl_error_text());
    }
  }

  // The parameter keeps the connection alive while the coroutine runs.
  Task<void> write_loop(std::shared_ptr<Connection>) {
    std::string batch;
    try {
      for (;;) {
        // After our closing tag the socket stays open for the peer's
        // (RFC 6120 §4.4); the reader or the close deadline closes it.
        while (out_.empty() && !closed_) {
          boost::system::error_code ec;
          wake_writer_.expires_at(Clock::time_point::max());
          co_await wake_writer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        if (closed_) break;
        batch.clear();
        for (auto& chunk : out_) batch += chunk;
        out_.clear();
        writing_ = true;
        if (tls_) {
          co_await asio::async_write(*tls_, asio::buffer(batch), asio::use_awaitable);
        } else {
          co_await asio::async_write(socket_, asio::buffer(batch), asio::use_awaitable);
        }
        writing_ = false;
        queued_bytes_ -= batch.size();
        last_write_ = Clock::now();
        if (out_.empty()) drained_.cancel();
        if (batch.capacity() > 65536) batch = std::string();
      }
    } catch (const std::exception& e) {
      spdlog::debug("s2s {}: write failed: {}", log_id_, e.what());
    }
    writing_ = false;
    out_.clear();
    close();
  }

  Task<void> deadline_loop(std::shared_ptr<Connection>) {
    while (!closed_) {
      if (Clock::now() >= deadline_) {
        timed_out_ = !closing_;
        close();
        break;
      }
      boost::system::error_code ec;
      deadline_timer_.expires_at(deadline_);
      co_await deadline_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  asio::any_io_executor executor_;
  tcp::socket socket_;
  std::shared_ptr<asio::ssl::context> context_;
  std::unique_ptr<asio::ssl::stream<tcp::socket>> tls_;
  xml::StreamParser parser_;
  std::deque<xml::StreamEvent> events_;
  std::string parse_error_;
  std::string log_id_;
  std::size_t max_send_queue_;
  xmpp::Shaper shaper_;
  std::deque<std::string> out_;
  std::size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool closing_ = false;
  bool closed_ = false;
  bool timed_out_ = false;
  asio::steady_timer wake_writer_;
  asio::steady_timer drained_;
  asio::steady_timer deadline_timer_;
  asio::steady_timer throttle_;
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point last_read_ = Clock::now();
  Clock::time_point last_write_ = Clock::now();
};

// --- shared state -----------------------------------------------------------------

class Outbound;
class Inbound;

// A client TLS context for one local domain, with whether its certificate
// names that domain (SASL EXTERNAL is only worth offering then).
struct ClientContext {
  std::shared_ptr<asio::ssl::context> context;
  bool names_domain = false;
};

struct Manager::State : std::enable_shared_from_this<Manager::State> {
  State(std::vector<asio::io_context*> shard_list, router::Router& r, Settings s)
      : shards(std::move(shard_list)), router(r), settings(std::move(s)), server_certificates({"xmpp-server"}) {
    if (settings.secret.empty()) settings.secret = sasl::hex_encode(sasl::random_bytes(32));
    min_version = tls_version_number(settings.tls_min_version);
    trust[""] = std::make_unique<TrustStore>(settings.policy.ca_file);
    for (const auto& [domain, override] : settings.policy.domains) {
      if (!override.ca_file.empty()) trust[domain] = std::make_unique<TrustStore>(override.ca_file);
    }
    load_certificates(settings.certificates);
    for (auto* shard : shards) {
      resolvers.push_back(
          std::make_unique<dns::Resolver>(shard->get_executor(), settings.dns_servers, settings.connect_timeout));
    }
  }

  std::vector<asio::io_context*> shards;
  router::Router& router;
  Settings settings;
  int min_version = TLS1_2_VERSION;
  std::map<std::string, std::unique_ptr<TrustStore>, std::less<>> trust;
  tls::CertificateStore server_certificates;
  std::vector<std::unique_ptr<dns::Resolver>> resolvers;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::vector<bool> acceptor_direct_tls;
  std::atomic<std::size_t> next_shard{0};
  std::atomic<std::uint64_t> next_id{0};

  mutable std::mutex mutex;  // guards what follows
  std::map<std::pair<std::string, std::string>, std::shared_ptr<Outbound>> outbound;
  std::unordered_set<std::shared_ptr<Inbound>> inbound;
  std::vector<tls::CertificateFiles> certificate_files;
  std::map<std::string, ClientContext> client_contexts;

  const TrustStore& trust_for(std::string_view domain) const {
    if (const auto entry = trust.find(domain); entry != trust.end()) return *entry->second;
    return *trust.at("");
  }

  void load_certificates(const std::vector<tls::CertificateFiles>& files) {
    server_certificates.load(files);
    std::lock_guard lock(mutex);
    certificate_files = files;
    client_contexts.clear();
  }

  // The certificate files for a local domain: its own, a wildcard, else the first.
  static const tls::CertificateFiles* files_for(const std::vector<tls::CertificateFiles>& files,
                                                const std::string& domain) {
    const auto dot = domain.find('.');
    const std::string wildcard = dot == std::string::npos ? std::string() : "*" + domain.substr(dot);
    const tls::CertificateFiles* match = nullptr;
    for (const auto& entry : files) {
      if (entry.domain == domain) return &entry;
      if (!match && !wildcard.empty() && entry.domain == wildcard) match = &entry;
    }
    if (match) return match;
    return files.empty() ? nullptr : &files.front();
  }

  ClientContext client_context(const std::string& local_domain) {
    std::lock_guard lock(mutex);
    if (auto found = client_contexts.find(local_domain); found != client_contexts.end()) return found->second;
    ClientContext made;
    made.context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    SSL_CTX* native = made.context->native_handle();
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
    if (const auto* files = files_for(certificate_files, local_domain)) {
      if (SSL_CTX_use_certificate_chain_file(native, files->cert_file.c_str()) == 1 &&
          SSL_CTX_use_PrivateKey_file(native, files->key_file.c_str(), SSL_FILETYPE_PEM) == 1) {
        made.names_domain = certificate_names_domain(SSL_CTX_get0_certificate(native), local_domain);
      } else {
        spdlog::warn("s2s: cannot use {} as client certificate: {}", files->cert_file, openssl_error_text());
      }
    }
    client_contexts.emplace(local_domain, made);
    return made;
  }

  std::size_t pick_shard() { return next_shard++ % shards.size(); }
  std::string make_id(std::string_view direction) { return std::string(direction) + std::to_string(++next_id); }

  void enqueue(const std::string& local, const std::string& remote, xml::Element stanza);
  void forget(const std::shared_ptr<Outbound>& session);
  void forget(const std::shared_ptr<Inbound>& session);
  Task<void> accept_loop(std::shared_ptr<State> self, tcp::acceptor& acceptor, bool direct_tls);
};

void log_failure(std::string_view id, std::string_view direction, std::string_view local, std::string_view remote,
                 Cause cause, std::string_view detail) {
  spdlog::warn("s2s {} {} {} {} {}: federation failed: {}: {}", id, direction, local, direction == "out" ? "->" : "<-",
               remote, describe(cause), detail);
}

// --- dialing a remote server -------------------------------------------------------

// A connection to a remote server with TLS up and a stream opened on it.
struct Dialed {
  std::shared_ptr<Connection> connection;
  std::string stream_id;  // the peer's id for our stream
  xml::Element features;
  CertificateStatus peer_certificate;
  bool names_local = false;  // our client certificate names the local domain
};

// Waits for the next element, turning the end of the stream or a stream
// error into a Failure.
Task<xml::Element> next_element(Connection& connection) {
  auto event = co_await connection.next_event();
  if (auto* element = std::get_if<xml::StreamElement>(&event)) {
    if (element->is("error", xml::ns_streams)) {
      const auto* condition = element->child_in(xmpp::ns_stream_errors);
      throw Failure(Cause::stream, "stream error from the peer: " + (condition ? condition->name() : std::string("?")));
    }
    co_return std::move(*element);
  }
  if (std::holds_alternative<xml::StreamClose>(event)) throw Failure(Cause::stream, "the peer closed the stream");
  throw Failure(Cause::stream, "unexpected stream header");
}

// Sends our header and reads the peer's header and features.
Task<void> open_stream(Connection& connection, const std::string& local, const std::string& remote, Dialed& dialed) {
  connection.send(header(local, remote, {}));
  auto event = co_await connection.next_event();
  auto* open = std::get_if<xml::StreamOpen>(&event);
  if (!open) throw Failure(Cause::stream, "the peer did not open a stream");
  dialed.stream_id = std::string(open->header.attr("id"));
  if (open->header.attr("version") != "1.0") throw Failure(Cause::stream, "the peer does not speak XMPP 1.0");
  dialed.features = co_await next_element(connection);
  if (!dialed.features.is("features", xml::ns_streams)) throw Failure(Cause::stream, "no stream features");
}

// DNS, TCP, TLS (STARTTLS or Direct TLS), certificate check and stream
// open, trying targets and addresses in order until one works. The
// connection's deadline bounds the whole attempt.
Task<Dialed> dial(Manager::State& state, std::size_t shard, const std::string& local, const std::string& remote,
                  const std::string& log_id, Clock::time_point deadline, bool verify_only) {
  auto executor = state.shards[shard]->get_executor();
  std::vector<dns::Target> targets;
  if (auto endpoint = state.settings.policy.address_for(remote)) {
    targets.push_back({endpoint->address, endpoint->port, false});
  } else {
    try {
      targets = co_await state.resolvers[shard]->server_targets(remote);
    } catch (const dns::Error& e) {
      throw Failure(e.kind == dns::Error::Kind::timeout ? Cause::timeout : Cause::dns, e.what());
    }
  }
  std::optional<Failure> last;
  for (const auto& target : targets) {
    std::vector<asio::ip::address> addresses;
    try {
      addresses = co_await state.resolvers[shard]->addresses(target.host);
    } catch (const dns::Error& e) {
      last = Failure(Cause::dns, target.host + ": " + e.what());
      continue;
    }
    {
      std::vector<tcp::endpoint> endpoints;
      for (const auto& address : addresses) endpoints.emplace_back(address, target.port);
      std::optional<tcp::socket> socket;
      try {
        socket = co_await connect_first(executor, endpoints, deadline);
      } catch (const ConnectError& error) {
        if (error.timed_out) throw Failure(Cause::timeout, target.host + ": " + error.what());
        last = Failure(Cause::tcp, target.host + ": " + error.what());
        continue;
      }
      boost::system::error_code ignored;
      const auto endpoint = socket->remote_endpoint(ignored);
      const std::string where = target.host + " " + endpoint.address().to_string() + ":" + std::to_string(target.port);
      auto connection = std::make_shared<Connection>(std::move(*socket), state.settings);
      connection->start(log_id);
      connection->set_deadline(deadline);
      spdlog::debug("s2s {}: connected to {}{}", log_id, where, target.direct_tls ? " (direct TLS)" : "");
      Dialed dialed;
      dialed.connection = connection;
      const auto client = state.client_context(local);
      dialed.names_local = client.names_domain;
      try {
        if (!target.direct_tls) {
          Dialed plain;
          co_await open_stream(*connection, local, remote, plain);
          if (!plain.features.child("starttls", ns_tls)) throw Failure(Cause::tls, where + ": STARTTLS not offered");
          connection->send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
          auto proceed = co_await next_element(*connection);
          if (!proceed.is("proceed", ns_tls)) throw Failure(Cause::tls, where + ": STARTTLS refused");
        }
        try {
          co_await connection->handshake_client(*client.context, remote, target.direct_tls, state.min_version,
                                                state.settings.ciphers);
        } catch (const boost::system::system_error& e) {
          if (connection->timed_out()) throw Failure(Cause::timeout, where + ": TLS handshake timed out");
          throw Failure(Cause::tls, where + ": TLS handshake failed: " + e.what());
        }
        dialed.peer_certificate = state.trust_for(remote).check_peer(connection->ssl(), remote, false);
        if (!dialed.peer_certificate.valid() && !verify_only && state.settings.policy.requires_secure_auth(remote)) {
          const auto outcome = dialed.peer_certificate.outcome;
          throw Failure(certificate_cause(outcome),
                        where + ": " + std::string(s2s::describe(outcome)) +
                            (dialed.peer_certificate.detail.empty() ? std::string()
                                                                    : " (" + dialed.peer_certificate.detail + ")"));
        }
        co_await open_stream(*connection, local, remote, dialed);
        co_return dialed;
      } catch (const Failure& failure) {
        connection->close();
        if (connection->timed_out()) throw Failure(Cause::timeout, where + ": " + failure.what());
        if (!failure.transient()) throw;
        last = failure;
      } catch (const std::exception& e) {
        const bool timed_out = connection->timed_out();
        connection->close();
        if (timed_out) throw Failure(Cause::timeout, where + ": no answer within the connect timeout");
        last = Failure(Cause::tcp, where + ": " + e.what());
      }
    }
  }
  if (last) throw *last;
  throw Failure(Cause::dns, "no address for " + remote);
}

// Reads until the peer's closing tag (or the close deadline), then closes.
Task<void> wait_for_close(std::shared_ptr<Connection> connection) {
  try {
    while (!std::holds_alternative<xml::StreamClose>(co_await connection->next_event())) {
    }
  } catch (const std::exception&) {
    // The peer or the deadline ended the connection first: nothing to wait for.
  }
  connection->close();
}

// Asks the authoritative server of 'originating' whether 'key' is what it
// gave for our stream 'stream_id' (XEP-0220 §2.3). Throws Failure when it
// cannot be asked.
Task<bool> verify_dialback_key(std::shared_ptr<Manager::State> state, std::size_t shard, std::string receiving,
                               std::string originating, std::string stream_id, std::string key) {
  const std::string log_id = state->make_id("verify");
  auto dialed = co_await dial(*state, shard, receiving, originating, log_id,
                              Clock::now() + state->settings.connect_timeout, true);
  auto& connection = *dialed.connection;
  connection.send(dialback_element("verify", receiving, originating, stream_id, {}, key));
  for (;;) {
    auto answer = co_await next_element(connection);
    if (answer.is("verify", ns_dialback) && answer.attr("id") == stream_id) {
      connection.finish(std::string(xml::stream_footer));
      asio::co_spawn(connection.executor(), wait_for_close(dialed.connection), asio::detached);
      co_return answer.attr("type") == "valid";
    }
  }
}

// --- outbound -----------------------------------------------------------------

// The stream from one local domain to one remote domain. Stanzas wait in
// order while it connects; a failure bounces them. Lives on one shard.
class Outbound : public std::enable_shared_from_this<Outbound> {
 public:
  Outbound(std::shared_ptr<Manager::State> state, std::size_t shard, std::string local, std::string remote)
      : state_(std::move(state)),
        shard_(shard),
        executor_(state_->shards[shard]->get_executor()),
        id_(state_->make_id("out")),
        local_(std::move(local)),
        remote_(std::move(remote)),
        retry_timer_(executor_),
        idle_timer_(executor_) {}

  void start() { asio::co_spawn(executor_, run(shared_from_this()), asio::detached); }

  void deliver(xml::Element stanza) {
    asio::post(executor_,
               [self = shared_from_this(), stanza = std::move(stanza)]() mutable { self->take(std::move(stanza)); });
  }

  void close(std::string condition) {
    asio::post(executor_, [self = shared_from_this(), condition = std::move(condition)]() {
      self->shutting_down_ = true;
      self->retry_timer_.cancel();
      self->end_stream(condition);
    });
  }

  ConnectionInfo info() const {
    std::lock_guard lock(info_mutex_);
    ConnectionInfo result = info_;
    result.idle_seconds = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - last_activity_).count();
    return result;
  }

 private:
  enum class Phase { connecting, established, finished };

  void take(xml::Element stanza) {
    if (phase_ == Phase::finished) {
      state_->enqueue(local_, remote_, std::move(stanza));
      return;
    }
    if (phase_ == Phase::established && pending_.empty() && connection_->is_open() && !connection_->closing()) {
      send(stanza);
      return;
    }
    if (pending_.size() >= state_->settings.max_pending_stanzas) {
      asio::co_spawn(executor_, bounce(state_, std::move(stanza), "resource-constraint"), asio::detached);
      return;
    }
    pending_.push_back(std::move(stanza));
  }

  static Task<void> bounce(std::shared_ptr<Manager::State> state, xml::Element stanza, std::string condition) {
    co_await state->router.bounce(stanza, condition);
  }

  void send(const xml::Element& stanza) {
    {
      std::lock_guard lock(info_mutex_);
      last_activity_ = Clock::now();
    }
    connection_->send(xml::serialize(stanza));
    arm_idle_timer();
  }

  void arm_idle_timer() {
    idle_timer_.expires_after(state_->settings.idle_timeout);
    idle_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->phase_ != Phase::established) return;
      spdlog::info("s2s {} out {} -> {}: idle, closing", self->id_, self->local_, self->remote_);
      self->end_stream({});
    });
  }

  void end_stream(std::string_view condition) {
    if (!connection_ || !connection_->is_open()) return;
    std::string data;
    if (!condition.empty()) xml::serialize_to(data, xmpp::stream_error(condition));
    data += xml::stream_footer;
    connection_->finish(std::move(data));
  }

  // The parameter keeps the session alive while the coroutine runs.
  Task<void> run(std::shared_ptr<Outbound>) {
    auto delay = std::chrono::duration_cast<Clock::duration>(first_retry_delay);
    auto deadline = Clock::now() + state_->settings.connect_timeout;
    for (;;) {
      phase_ = Phase::connecting;
      std::optional<Failure> failure;
      try {
        co_await connect(deadline);
      } catch (const Failure& caught) {
        failure = caught;
      } catch (const std::exception& e) {
        const bool timed_out = connection_ && connection_->timed_out();
        failure = Failure(timed_out ? Cause::timeout : Cause::stream, e.what());
      }
      if (failure) {
        if (!shutting_down_ && failure->transient() && Clock::now() + delay < deadline) {
          spdlog::info("s2s {} out {} -> {}: {}: {}; retrying in {} ms", id_, local_, remote_, describe(failure->cause),
                       failure->what(), std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
          retry_timer_.expires_after(delay);
          boost::system::error_code ec;
          co_await retry_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          delay = std::min<Clock::duration>(delay * 2, max_retry_delay);
          if (!shutting_down_) continue;
        }
        log_failure(id_, "out", local_, remote_, failure->cause, failure->what());
        co_await give_up(failure->cause == Cause::timeout ? "remote-server-timeout" : "remote-server-not-found");
        co_return;
      }
      co_await serve();
      // The stream ended. Stanzas that came meanwhile need a new one.
      if (pending_.empty() || shutting_down_) break;
      delay = std::chrono::duration_cast<Clock::duration>(first_retry_delay);
      deadline = Clock::now() + state_->settings.connect_timeout;
    }
    co_await give_up("remote-server-not-found");
  }

  // Leaves the map first, so that stanzas routed from now on start a new
  // stream, then bounces what waited here.
  Task<void> give_up(std::string condition) {
    phase_ = Phase::finished;
    if (connection_) connection_->close();
    state_->forget(shared_from_this());
    auto waiting = std::move(pending_);
    pending_.clear();
    for (auto& stanza : waiting) co_await state_->router.bounce(stanza, condition);
  }

  Task<void> connect(Clock::time_point deadline) {
    if (!state_->settings.policy.allowed(remote_)) throw Failure(Cause::policy, "the domain is not allowed");
    auto dialed = co_await dial(*state_, shard_, local_, remote_, id_, deadline, false);
    connection_ = dialed.connection;
    auto& connection = *connection_;
    const auto* mechanisms = dialed.features.child("mechanisms", ns_sasl);
    bool offers_external = false;
    if (mechanisms) {
      for (const auto& mechanism : mechanisms->children()) {
        if (mechanism.name() == "mechanism" && mechanism.text() == "EXTERNAL") offers_external = true;
      }
    }
    const bool offers_dialback = dialed.features.child("dialback", ns_dialback_feature) != nullptr;
    auto method = state_->settings.policy.outbound_method(remote_, dialed.names_local, dialed.peer_certificate.valid(),
                                                          offers_external, offers_dialback);
    if (method == AuthMethod::sasl_external) {
      connection.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>" +
                      sasl::base64_encode(local_) + "</auth>");
      auto answer = co_await next_element(connection);
      if (answer.is("success", ns_sasl)) {
        connection.reset_parser();
        Dialed restarted;
        co_await open_stream(connection, local_, remote_, restarted);
      } else if (offers_dialback && !state_->settings.policy.requires_secure_auth(remote_)) {
        spdlog::info("s2s {} out {} -> {}: SASL EXTERNAL refused, trying dialback", id_, local_, remote_);
        method = AuthMethod::dialback;
      } else {
        throw Failure(Cause::policy, "the peer refused SASL EXTERNAL and dialback is not allowed");
      }
    }
    if (method == AuthMethod::dialback) {
      connection.send(dialback_element("result", local_, remote_, {}, {},
                                       dialback_key(state_->settings.secret, remote_, local_, dialed.stream_id)));
      for (;;) {
        auto answer = co_await next_element(connection);
        if (!answer.is("result", ns_dialback)) continue;
        if (answer.attr("type") == "valid") break;
        throw Failure(Cause::dialback_refused, "the peer answered " + std::string(answer.attr("type")));
      }
    }
    if (method == AuthMethod::none) {
      if (!dialed.peer_certificate.valid() && state_->settings.policy.requires_secure_auth(remote_)) {
        throw Failure(certificate_cause(dialed.peer_certificate.outcome),
                      std::string(s2s::describe(dialed.peer_certificate.outcome)));
      }
      throw Failure(Cause::policy, "no authentication method acceptable to both sides");
    }
    connection.clear_deadline();
    {
      std::lock_guard lock(info_mutex_);
      info_ = ConnectionInfo{id_,
                             "out",
                             local_,
                             remote_,
                             std::string(s2s::describe(method)),
                             tls::version(connection.ssl()),
                             tls::cipher(connection.ssl()),
                             0};
      last_activity_ = Clock::now();
    }
    spdlog::info("s2s {} out {} -> {}: authenticated ({}, {}, {})", id_, local_, remote_, s2s::describe(method),
                 tls::version(connection.ssl()), tls::cipher(connection.ssl()));
  }

  // Sends what waited, then keeps reading until the stream ends.
  Task<void> serve() {
    phase_ = Phase::established;
    auto waiting = std::move(pending_);
    pending_.clear();
    for (const auto& stanza : waiting) send(stanza);
    arm_idle_timer();
    auto connection = connection_;
    try {
      for (;;) {
        auto event = co_await connection->next_event();
        if (std::holds_alternative<xml::StreamClose>(event)) {
          spdlog::info("s2s {} out {} -> {}: the peer closed the stream", id_, local_, remote_);
          connection->finish(std::string(xml::stream_footer));
          break;
        }
        if (auto* element = std::get_if<xml::StreamElement>(&event); element && element->is("error", xml::ns_streams)) {
          const auto* condition = element->child_in(xmpp::ns_stream_errors);
          spdlog::info("s2s {} out {} -> {}: stream error from the peer: {}", id_, local_, remote_,
                       condition ? condition->name() : "?");
        }
      }
    } catch (const std::exception& e) {
      spdlog::info("s2s {} out {} -> {}: stream ended: {}", id_, local_, remote_, e.what());
    }
    idle_timer_.cancel();
    phase_ = Phase::connecting;
    co_await connection->drain();
    connection->close();
  }

  std::shared_ptr<Manager::State> state_;
  std::size_t shard_;
  asio::any_io_executor executor_;
  std::string id_;
  std::string local_;
  std::string remote_;
  Phase phase_ = Phase::connecting;
  bool shutting_down_ = false;
  std::shared_ptr<Connection> connection_;
  std::deque<xml::Element> pending_;
  asio::steady_timer retry_timer_;
  asio::steady_timer idle_timer_;

  mutable std::mutex info_mutex_;
  ConnectionInfo info_{id_, "out", local_, remote_, "none", {}, {}, 0};
  Clock::time_point last_activity_ = Clock::now();
};

// --- inbound ------------------------------------------------------------------

// A stream a remote server opened to us. It authenticates (from, to) domain
// pairs with SASL EXTERNAL or dialback; stanzas are accepted only for an
// authenticated pair.
class Inbound : public std::enable_shared_from_this<Inbound> {
 public:
  Inbound(std::shared_ptr<Manager::State> state, std::size_t shard, tcp::socket socket, bool direct_tls)
      : state_(std::move(state)),
        shard_(shard),
        id_(state_->make_id("in")),
        direct_tls_(direct_tls),
        connection_(std::make_shared<Connection>(std::move(socket), state_->settings)),
        idle_timer_(connection_->executor()) {}

  void start() { asio::co_spawn(connection_->executor(), run(shared_from_this()), asio::detached); }

  void close(std::string condition) {
    asio::post(connection_->executor(),
               [self = shared_from_this(), condition = std::move(condition)]() { self->end_stream(condition, {}); });
  }

  ConnectionInfo info() const {
    std::lock_guard lock(info_mutex_);
    ConnectionInfo result = info_;
    result.idle_seconds = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - last_activity_).count();
    return result;
  }

 private:
  void end_stream(std::string_view condition, std::string_view text) {
    if (!connection_->is_open() || connection_->closing()) return;
    if (!condition.empty()) {
      spdlog::info("s2s {} in {} <- {}: closing stream with {}{}{}", id_, local_, peer_, condition,
                   text.empty() ? "" : ": ", text);
    }
    std::string data;
    if (!header_sent_) data = header(local_, {}, new_stream_id());
    if (!condition.empty()) xml::serialize_to(data, xmpp::stream_error(condition, text));
    data += xml::stream_footer;
    connection_->finish(std::move(data));
  }

  void touch() {
    std::lock_guard lock(info_mutex_);
    last_activity_ = Clock::now();
  }

  // The parameter keeps the session alive while the coroutine runs.
  Task<void> run(std::shared_ptr<Inbound>) {
    auto& connection = *connection_;
    const std::string remote = connection.remote_text();
    connection.start(id_);
    connection.set_deadline(Clock::now() + state_->settings.connect_timeout);
    spdlog::info("s2s {} in: connection from {}{}", id_, remote, direct_tls_ ? " (direct TLS)" : "");
    try {
      if (direct_tls_) co_await start_tls();
      for (;;) {
        auto event = co_await connection.next_event();
        touch();
        if (std::holds_alternative<xml::StreamClose>(event)) {
          spdlog::debug("s2s {}: the peer closed its stream", id_);
          end_stream({}, {});
          break;
        }
        // Once we closed our stream, only the peer's closing tag matters.
        if (connection.closing()) continue;
        if (auto* open = std::get_if<xml::StreamOpen>(&event)) {
          on_stream_open(open->header);
        } else if (auto* element = std::get_if<xml::StreamElement>(&event)) {
          co_await on_element(std::move(*element));
        }
      }
    } catch (const std::exception& e) {
      spdlog::debug("s2s {}: read ended: {}", id_, e.what());
    }
    idle_timer_.cancel();
    co_await connection.drain();
    connection.close();
    spdlog::info("s2s {} in {} <- {}: disconnected", id_, local_, peer_.empty() ? remote : peer_);
    state_->forget(shared_from_this());
  }

  Task<void> start_tls() {
    auto context = state_->server_certificates.context_for(local_);
    if (!context) {
      end_stream("internal-server-error", "no certificate");
      throw Failure(Cause::tls, "no certificate");
    }
    try {
      co_await connection_->handshake_server(context, state_->min_version, state_->settings.ciphers);
    } catch (const boost::system::system_error& e) {
      log_failure(id_, "in", local_, peer_.empty() ? connection_->remote_text() : peer_, Cause::tls, e.what());
      throw;
    }
    std::lock_guard lock(info_mutex_);
    info_.tls_version = tls::version(connection_->ssl());
    info_.cipher = tls::cipher(connection_->ssl());
  }

  void on_stream_open(const xml::Element& open) {
    stream_id_ = new_stream_id();
    auto to = xmpp::Jid::parse(open.attr("to"));
    if (!to || !to->is_domain() || !state_->router.serves(to->domain())) {
      end_stream("host-unknown", "this server does not serve that domain");
      return;
    }
    local_ = to->domain();
    if (auto from = xmpp::Jid::parse(open.attr("from")); from && from->is_domain()) {
      peer_ = from->domain();
    } else {
      peer_.clear();
    }
    if (open.attr("version") != "1.0") {
      end_stream("unsupported-version", {});
      return;
    }
    {
      std::lock_guard lock(info_mutex_);
      info_.local_domain = local_;
      if (info_.peer_domain.empty()) info_.peer_domain = peer_;
    }
    std::string data = header(local_, peer_, stream_id_);
    header_sent_ = true;
    xml::Element features("features", std::string(xml::ns_streams));
    if (!connection_->encrypted()) {
      features.add_child("starttls", std::string(ns_tls)).add_child("required", std::string(ns_tls));
    } else if (!sasl_done_) {
      if (!peer_.empty() && certificate_valid_for(peer_)) {
        features.add_child("mechanisms", std::string(ns_sasl))
            .add_child("mechanism", std::string(ns_sasl))
            .add_text("EXTERNAL");
      }
      features.add_child("dialback", std::string(ns_dialback_feature));
    }
    xml::serialize_to(data, features);
    connection_->send(std::move(data));
  }

  bool certificate_valid_for(const std::string& domain) {
    if (auto cached = certificate_checks_.find(domain); cached != certificate_checks_.end()) {
      return cached->second.valid();
    }
    auto status = state_->trust_for(domain).check_peer(connection_->ssl(), domain, true);
    if (!status.valid() && status.outcome != CertificateStatus::Outcome::missing) {
      spdlog::info("s2s {} in {} <- {}: peer certificate not valid for {}: {}{}", id_, local_, peer_, domain,
                   s2s::describe(status.outcome), status.detail.empty() ? "" : " (" + status.detail + ")");
    }
    return certificate_checks_.emplace(domain, std::move(status)).first->second.valid();
  }

  Task<void> on_element(xml::Element element) {
    if (!connection_->encrypted()) {
      if (element.is("starttls", ns_tls)) {
        connection_->send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
        co_await start_tls();
      } else {
        end_stream("policy-violation", "STARTTLS is required");
      }
      co_return;
    }
    if (element.ns() == ns_sasl) {
      on_sasl(element);
    } else if (element.is("result", ns_dialback)) {
      on_dialback_result(element);
    } else if (element.is("verify", ns_dialback)) {
      on_dialback_verify(element);
    } else if (is_stanza(element)) {
      co_await on_stanza(std::move(element));
    } else {
      end_stream("unsupported-stanza-type", {});
    }
  }

  void authorize(const std::string& from, const std::string& to, AuthMethod method) {
    authorized_.insert({from, to});
    connection_->clear_deadline();
    arm_idle_timer();
    std::lock_guard lock(info_mutex_);
    if (info_.auth == "none" || info_.peer_domain == from) {
      info_.peer_domain = from;
      info_.local_domain = to;
      info_.auth = std::string(s2s::describe(method));
    }
    spdlog::info("s2s {} in {} <- {}: authenticated ({}, {}, {})", id_, to, from, s2s::describe(method),
                 info_.tls_version, info_.cipher);
  }

  void on_sasl(const xml::Element& element) {
    const auto fail = [&](std::string_view condition) {
      connection_->send("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><" + std::string(condition) +
                        "/></failure>");
    };
    if (!element.is("auth", ns_sasl) || sasl_done_) {
      end_stream("unsupported-stanza-type", {});
      return;
    }
    if (element.attr("mechanism") != "EXTERNAL" || peer_.empty() || !certificate_valid_for(peer_)) {
      log_failure(id_, "in", local_, peer_, Cause::certificate_trust, "SASL EXTERNAL without a valid certificate");
      fail("invalid-mechanism");
      return;
    }
    const std::string text = element.text();
    std::string authzid;
    if (!text.empty() && text != "=") {
      auto decoded = sasl::base64_decode(text);
      if (!decoded) {
        fail("incorrect-encoding");
        return;
      }
      authzid = *decoded;
    }
    if (!authzid.empty() && authzid != peer_) {
      fail("invalid-authzid");
      return;
    }
    connection_->send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    sasl_done_ = true;
    header_sent_ = false;
    connection_->reset_parser();
    authorize(peer_, local_, AuthMethod::sasl_external);
  }

  void on_dialback_result(const xml::Element& element) {
    if (element.has_attr("type")) return;  // answers belong on outbound streams
    auto from = xmpp::Jid::parse(element.attr("from"));
    auto to = xmpp::Jid::parse(element.attr("to"));
    if (!from || !from->is_domain() || !to || !to->is_domain()) {
      end_stream("improper-addressing", "db:result needs 'from' and 'to' domains");
      return;
    }
    const std::string originating = from->domain();
    const std::string receiving = to->domain();
    if (!state_->router.serves(receiving)) {
      end_stream("host-unknown", "this server does not serve " + receiving);
      return;
    }
    const auto answer = [this, originating, receiving](bool valid) {
      connection_->send(dialback_element("result", receiving, originating, {}, valid ? "valid" : "invalid", {}));
    };
    switch (state_->settings.policy.inbound_dialback(originating, certificate_valid_for(originating))) {
      case Policy::DialbackDecision::accept_certificate:
        answer(true);
        authorize(originating, receiving, AuthMethod::dialback);
        return;
      case Policy::DialbackDecision::refuse:
        log_failure(id_, "in", receiving, originating, Cause::policy,
                    state_->settings.policy.allowed(originating) ? "dialback not allowed without a valid certificate"
                                                                 : "the domain is not allowed");
        answer(false);
        return;
      case Policy::DialbackDecision::verify:
        asio::co_spawn(connection_->executor(),
                       verify(shared_from_this(), originating, receiving, std::string(element.text())), asio::detached);
        return;
    }
  }

  Task<void> verify(std::shared_ptr<Inbound>, std::string originating, std::string receiving, std::string key) {
    bool valid = false;
    try {
      valid = co_await verify_dialback_key(state_, shard_, receiving, originating, stream_id_, key);
      if (!valid) log_failure(id_, "in", receiving, originating, Cause::dialback_refused, "the key is not valid");
    } catch (const Failure& failure) {
      log_failure(id_, "in", receiving, originating, failure.cause,
                  std::string("cannot verify the dialback key: ") + failure.what());
    } catch (const std::exception& e) {
      log_failure(id_, "in", receiving, originating, Cause::tcp,
                  std::string("cannot verify the dialback key: ") + e.what());
    }
    if (!connection_->is_open() || connection_->closing()) co_return;
    connection_->send(dialback_element("result", receiving, originating, {}, valid ? "valid" : "invalid", {}));
    if (valid) authorize(originating, receiving, AuthMethod::dialback);
  }

  // We are the authoritative server: was 'key' ours for that stream?
  void on_dialback_verify(const xml::Element& element) {
    if (element.has_attr("type")) return;
    const std::string receiving(element.attr("from"));
    const std::string originating(element.attr("to"));
    const std::string id(element.attr("id"));
    const bool ours = state_->router.serves(originating);
    const bool valid =
        ours && dialback_key_matches(state_->settings.secret, receiving, originating, id, element.text());
    spdlog::info("s2s {} in: dialback verification for {} -> {}: {}", id_, originating, receiving,
                 valid ? "valid" : "invalid");
    connection_->send(dialback_element("verify", originating, receiving, id, valid ? "valid" : "invalid", {}));
  }

  Task<void> on_stanza(xml::Element stanza) {
    auto from = xmpp::Jid::parse(stanza.attr("from"));
    auto to = xmpp::Jid::parse(stanza.attr("to"));
    if (!from || !to) {
      end_stream("improper-addressing", "stanzas between servers need valid 'from' and 'to'");
      co_return;
    }
    const bool from_known = std::any_of(authorized_.begin(), authorized_.end(),
                                        [&](const auto& pair) { return pair.first == from->domain(); });
    if (!from_known) {
      end_stream("invalid-from", "'" + from->domain() + "' is not authenticated on this stream");
      co_return;
    }
    if (!state_->router.serves(to->domain())) {
      end_stream("host-unknown", "this server does not serve " + to->domain());
      co_return;
    }
    if (!authorized_.contains({from->domain(), to->domain()})) {
      end_stream("invalid-from", "'" + from->domain() + "' is not authenticated for " + to->domain());
      co_return;
    }
    arm_idle_timer();
    co_await state_->router.route(std::move(stanza));
  }

  void arm_idle_timer() {
    idle_timer_.expires_after(state_->settings.idle_timeout);
    idle_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      spdlog::info("s2s {} in {} <- {}: idle, closing", self->id_, self->local_, self->peer_);
      self->end_stream({}, {});
    });
  }

  std::shared_ptr<Manager::State> state_;
  std::size_t shard_;
  std::string id_;
  bool direct_tls_;
  std::shared_ptr<Connection> connection_;
  asio::steady_timer idle_timer_;
  std::string stream_id_;
  std::string local_;
  std::string peer_;
  bool header_sent_ = false;
  bool sasl_done_ = false;
  std::set<std::pair<std::string, std::string>> authorized_;
  std::map<std::string, CertificateStatus> certificate_checks_;

  mutable std::mutex info_mutex_;
  ConnectionInfo info_{id_, "in", {}, {}, "none", {}, {}, 0};
  Clock::time_point last_activity_ = Clock::now();
};

// --- manager --------------------------------------------------------------------

void Manager::State::enqueue(const std::string& local, const std::string& remote, xml::Element stanza) {
  std::shared_ptr<Outbound> session;
  {
    std::lock_guard lock(mutex);
    auto& slot = outbound[{local, remote}];
    if (!slot) {
      slot = std::make_shared<Outbound>(shared_from_this(), pick_shard(), local, remote);
      slot->start();
    }
    session = slot;
  }
  session->deliver(std::move(stanza));
}

void Manager::State::forget(const std::shared_ptr<Outbound>& session) {
  std::lock_guard lock(mutex);
  for (auto it = outbound.begin(); it != outbound.end(); ++it) {
    if (it->second == session) {
      outbound.erase(it);
      return;
    }
  }
}

void Manager::State::forget(const std::shared_ptr<Inbound>& session) {
  std::lock_guard lock(mutex);
  inbound.erase(session);
}

Task<void> Manager::State::accept_loop(std::shared_ptr<State> self, tcp::acceptor& acceptor, bool direct_tls) {
  for (;;) {
    const std::size_t shard = pick_shard();
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(*shards[shard], asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      spdlog::warn("s2s: accept failed: {}", ec.message());
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto session = std::make_shared<Inbound>(self, shard, std::move(socket), direct_tls);
    {
      std::lock_guard lock(mutex);
      inbound.insert(session);
    }
    session->start();
  }
}

Manager::Manager(std::vector<asio::io_context*> shards, router::Router& router, Settings settings)
    : state_(std::make_shared<State>(std::move(shards), router, std::move(settings))) {}

// Runs after the shards stopped: sessions hold the state and the state holds
// them, so the maps are emptied here to break the cycle; the resolvers go
// while their io_contexts still exist.
Manager::~Manager() {
  stop();
  std::lock_guard lock(state_->mutex);
  state_->outbound.clear();
  state_->inbound.clear();
  state_->resolvers.clear();
}

void Manager::add_listener(const std::string& address, std::uint16_t port, bool direct_tls) {
  auto acceptor = std::make_unique<tcp::acceptor>(*state_->shards.front());
  tcp::endpoint endpoint(asio::ip::make_address(address), port);
  acceptor->open(endpoint.protocol());
  acceptor->set_option(tcp::acceptor::reuse_address(true));
  acceptor->bind(endpoint);
  acceptor->listen(asio::socket_base::max_listen_connections);
  state_->acceptors.push_back(std::move(acceptor));
  state_->acceptor_direct_tls.push_back(direct_tls);
}

void Manager::start() {
  for (std::size_t i = 0; i < state_->acceptors.size(); ++i) {
    asio::co_spawn(*state_->shards.front(),
                   state_->accept_loop(state_, *state_->acceptors[i], state_->acceptor_direct_tls[i]), asio::detached);
  }
}

void Manager::stop() {
  for (auto& acceptor : state_->acceptors) {
    asio::post(acceptor->get_executor(), [state = state_, raw = acceptor.get()]() {
      boost::system::error_code ec;
      raw->close(ec);
    });
  }
}

void Manager::close_all(const std::string& condition) {
  std::lock_guard lock(state_->mutex);
  for (const auto& [key, session] : state_->outbound) session->close(condition);
  for (const auto& session : state_->inbound) session->close(condition);
}

std::size_t Manager::open_streams() const {
  std::lock_guard lock(state_->mutex);
  return state_->outbound.size() + state_->inbound.size();
}

bool Manager::route(xml::Element& stanza, const xmpp::Jid& to) {
  auto from = xmpp::Jid::parse(stanza.attr("from"));
  if (!from || !state_->router.serves(from->domain())) return false;
  if (!state_->settings.policy.allowed(to.domain())) {
    log_failure("-", "out", from->domain(), to.domain(), Cause::policy, "the domain is not allowed");
    return false;
  }
  state_->enqueue(from->domain(), to.domain(), std::move(stanza));
  return true;
}

void Manager::reload_certificates(const std::vector<tls::CertificateFiles>& files) { state_->load_certificates(files); }

std::vector<ConnectionInfo> Manager::connections() const {
  std::vector<ConnectionInfo> result;
  std::lock_guard lock(state_->mutex);
  for (const auto& [key, session] : state_->outbound) result.push_back(session->info());
  for (const auto& session : state_->inbound) result.push_back(session->info());
  std::sort(result.begin(), result.end(), [](const auto& a, const auto& b) {
    return std::tie(a.direction, a.peer_domain, a.id) < std::tie(b.direction, b.peer_domain, b.id);
  });
  return result;
}

std::vector<std::uint16_t> Manager::ports() const {
  std::vector<std::uint16_t> result;
  for (const auto& acceptor : state_->acceptors) result.push_back(acceptor->local_endpoint().port());
  return result;
}

}  // namespace parley::s2s
