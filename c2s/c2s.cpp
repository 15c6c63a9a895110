#include "c2s/c2s.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <mutex>
#include <span>
#include <unordered_map>
#include <unordered_set>

#include "c2s/sasl_session.hpp"
#include "c2s/stream_management.hpp"
#include "c2s/tls_stream.hpp"
#include "xmpp/errors.hpp"
#include "xmpp/jid.hpp"
#include "xmpp/sasl.hpp"
#include "xmpp/shaper.hpp"
#include "xmpp/stream_parser.hpp"

namespace parley::c2s {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using router::Task;

namespace {

constexpr std::string_view ns_tls = "urn:ietf:params:xml:ns:xmpp-tls";
constexpr std::string_view ns_sasl = "urn:ietf:params:xml:ns:xmpp-sasl";
constexpr std::string_view ns_bind = "urn:ietf:params:xml:ns:xmpp-bind";
constexpr std::string_view ns_session = "urn:ietf:params:xml:ns:xmpp-session";
constexpr std::string_view ns_register_feature = "http://jabber.org/features/iq-register";
constexpr std::string_view ns_register = "jabber:iq:register";
constexpr int max_auth_failures = 3;

bool is_stanza(const xml::Element& element) {
  return element.ns() == xml::ns_client &&
         (element.name() == "message" || element.name() == "presence" || element.name() == "iq");
}

// One read buffer per shard thread. read_loop fills it and hands the bytes
// to the parser without suspending in between, so an idle session holds no
// read buffer of its own.
std::span<char> shard_read_buffer() {
  thread_local std::array<char, 65536> buffer;
  return buffer;
}

std::string endpoint_text(const tcp::socket& socket) {
  boost::system::error_code ec;
  auto endpoint = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

}  // namespace

class ClientSession;

struct Listener::State {
  std::vector<asio::io_context*> shards;
  tcp::acceptor acceptor;
  Settings settings;
  Services services;
  std::atomic<std::size_t> next_shard{0};
  std::atomic<std::uint64_t> next_id{0};
  mutable std::mutex sessions_mutex;
  std::unordered_set<std::shared_ptr<ClientSession>> sessions;
  // Streams that may be resumed (XEP-0198), by stream management id.
  std::unordered_map<std::string, std::weak_ptr<ClientSession>> resumable;

  State(std::vector<asio::io_context*> shard_list, Settings s, Services svc)
      : shards(std::move(shard_list)), acceptor(*shards.front()), settings(s), services(svc) {}

  Task<void> accept_loop(std::shared_ptr<State> self);
  void forget(const std::shared_ptr<ClientSession>& session) {
    std::lock_guard lock(sessions_mutex);
    sessions.erase(session);
  }
  void allow_resumption(const std::string& id, const std::shared_ptr<ClientSession>& session) {
    std::lock_guard lock(sessions_mutex);
    resumable[id] = session;
  }
  void forbid_resumption(const std::string& id, const ClientSession* session);
  std::shared_ptr<ClientSession> find_resumable(const std::string& id) {
    std::lock_guard lock(sessions_mutex);
    auto found = resumable.find(id);
    return found == resumable.end() ? nullptr : found->second.lock();
  }
};

// One client connection. Lives on one shard: every member is touched only
// from that shard's thread, except deliver() and close() which post to it.
class ClientSession : public router::Session, public std::enable_shared_from_this<ClientSession> {
 public:
  ClientSession(tcp::socket socket, std::shared_ptr<Listener::State> listener, std::string id)
      : executor_(socket.get_executor()),
        socket_(std::move(socket)),
        listener_(std::move(listener)),
        settings_(listener_->settings),
        services_(listener_->services),
        id_(std::move(id)),
        remote_(endpoint_text(socket_)),
        parser_(std::string(xml::ns_client), settings_.max_stanza_size),
        resume_timer_(executor_),
        wake_writer_(executor_),
        drained_(executor_),
        watchdog_(executor_),
        throttle_(executor_),
        shaper_(settings_.rate, settings_.burst) {}

  void start() {
    auto self = shared_from_this();
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    // Each loop holds the session through its own frame: the first read may
    // end the session before the other loops have begun to run.
    asio::co_spawn(executor_, read_loop(self), asio::detached);
    asio::co_spawn(executor_, write_loop(self), asio::detached);
    asio::co_spawn(executor_, watchdog_loop(self), asio::detached);
  }

  // Stanzas wait in an inbox and one post per batch hands them to the
  // session's shard: a post per stanza cost more than serialising it.
  void deliver(xml::Element stanza) override {
    bool first;
    {
      std::lock_guard lock(inbox_mutex_);
      first = inbox_.empty();
      inbox_.push_back(std::move(stanza));
    }
    if (first) asio::post(executor_, [self = shared_from_this()]() { self->take_inbox(); });
  }

  void take_inbox() {
    std::vector<xml::Element> stanzas;
    {
      std::lock_guard lock(inbox_mutex_);
      stanzas.swap(inbox_);
    }
    for (auto& stanza : stanzas) {
      if (resuming_) {
        held_while_resuming_.push_back(std::move(stanza));
      } else if (!finished_) {
        send(stanza);
      }
    }
  }

  void close(std::string condition, std::string text) override {
    asio::post(executor_, [self = shared_from_this(), condition = std::move(condition), text = std::move(text)]() {
      self->end_stream(condition, text);
    });
  }

  const std::string& id() const override { return id_; }
  std::string remote_address() const override { return remote_; }
  std::string tls_version() const override {
    std::lock_guard lock(tls_info_mutex_);
    return tls_version_;
  }

 private:
  enum class State { connected, encrypted, authenticated, bound, closed };

  // --- output -------------------------------------------------------------

  void send_raw(std::string data) {
    if (closing_) return;
    if (spdlog::should_log(spdlog::level::debug)) spdlog::debug("c2s {} out: {}", id_, data);
    queued_bytes_ += data.size();
    if (queued_bytes_ > settings_.max_send_queue) {
      spdlog::warn("c2s {} {}: send queue over {} bytes, closing", id_, remote_, settings_.max_send_queue);
      end_stream("resource-constraint", "too many stanzas queued for a slow reader");
      return;
    }
    out_.push_back(std::move(data));
    wake_writer_.cancel();
  }

  void send(const xml::Element& element) {
    std::string data = xml::serialize(element);
    if (sm_.enabled() && is_stanza(element)) sm_.sent(data);
    if (!detached_) send_raw(std::move(data));
  }

  // Sends a stream error and the closing tag, then closes once written.
  void end_stream(std::string_view condition, std::string_view text = {}) {
    if (detached_) {
      resume_timer_.cancel();  // no longer worth holding for resumption
      return;
    }
    if (closing_ || state_ == State::closed) return;
    spdlog::info("c2s {} {}{}: closing stream{}{}{}{}", id_, remote_, jid_.empty() ? "" : " " + jid_.str(),
                 condition.empty() ? "" : " with ", condition, text.empty() ? "" : ": ", text);
    std::string data;
    if (!header_sent_) data = header();
    if (!condition.empty()) xml::serialize_to(data, xmpp::stream_error(condition, text));
    data += xml::stream_footer;
    send_raw(std::move(data));
    closing_ = true;
    close_deadline_ = Clock::now() + std::chrono::seconds(5);
    wake_writer_.cancel();
    watchdog_.cancel();
  }

  void close_socket() {
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
    throttle_.cancel();
    wake_writer_.cancel();
    drained_.cancel();
    watchdog_.cancel();
  }

  Task<void> write_loop([[maybe_unused]] std::shared_ptr<ClientSession> keep_alive) {
    try {
      for (;;) {
        // Nothing may be written while a TLS handshake owns the connection.
        while (state_ != State::closed && (handshaking_ || (out_.empty() && !closing_))) {
          boost::system::error_code ec;
          wake_writer_.expires_at(Clock::time_point::max());
          co_await wake_writer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        if (out_.empty() || handshaking_) break;
        // One write for everything queued: fewer syscalls and TLS records.
        // The batch lives only for the write, so an idle session keeps no
        // output buffer.
        std::string batch;
        if (out_.size() == 1) {
          batch = std::move(out_.front());
        } else {
          batch.reserve(queued_bytes_);
          for (const auto& chunk : out_) batch += chunk;
        }
        out_.clear();
        writing_ = true;
        if (tls_) {
          co_await tls_->write(batch);
        } else {
          co_await asio::async_write(socket_, asio::buffer(batch), asio::use_awaitable);
        }
        writing_ = false;
        queued_bytes_ -= batch.size();
        last_write_ = Clock::now();
        if (out_.empty()) drained_.cancel();
      }
      if (tls_ && closing_) co_await tls_->shutdown();
    } catch (const std::exception& e) {
      spdlog::debug("c2s {}: write failed: {}", id_, e.what());
    }
    writing_ = false;
    out_.clear();
    state_ = State::closed;
    close_socket();
  }

  // Waits until everything queued has been written (before a TLS handshake).
  Task<void> drain() {
    while ((!out_.empty() || writing_) && state_ != State::closed) {
      boost::system::error_code ec;
      drained_.expires_at(Clock::time_point::max());
      co_await drained_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  // --- input --------------------------------------------------------------

  // Reads what has arrived without suspending; 0 bytes means wait as 'wait' says first.
  std::size_t read_available(std::span<char> buffer, TlsStream::Wait& wait) {
    if (tls_) {
      const auto outcome = tls_->read(buffer);
      wait = outcome.wait;
      return outcome.bytes;
    }
    boost::system::error_code ec;
    const std::size_t n = socket_.read_some(asio::buffer(buffer.data(), buffer.size()), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      wait = TlsStream::Wait::readable;
      return 0;
    }
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  Task<void> wait_for(TlsStream::Wait wait) {
    co_await socket_.async_wait(wait == TlsStream::Wait::writable ? tcp::socket::wait_write : tcp::socket::wait_read,
                                asio::use_awaitable);
  }

  // Sleeping before the next read slows the peer through TCP flow control
  // instead of buffering its excess.
  Task<void> shape(std::size_t bytes) {
    const auto pause = shaper_.take(bytes);
    if (pause <= Clock::duration::zero()) co_return;
    throttle_.expires_after(pause);
    boost::system::error_code ec;
    co_await throttle_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

  Task<void> read_loop([[maybe_unused]] std::shared_ptr<ClientSession> keep_alive) {
    spdlog::info("c2s {} {}: connected{}", id_, remote_, settings_.direct_tls ? " (direct TLS)" : "");
    try {
      if (settings_.direct_tls && !co_await start_tls()) {
        co_await finish();
        co_return;
      }
      while (!closing_ && state_ != State::closed) {
        const std::span<char> buffer = shard_read_buffer();
        TlsStream::Wait wait = TlsStream::Wait::none;
        const std::size_t n = read_available(buffer, wait);
        if (n == 0) {
          co_await wait_for(wait);
          continue;
        }
        last_read_ = Clock::now();
        std::string_view chunk(buffer.data(), n);
        if (spdlog::should_log(spdlog::level::debug)) spdlog::debug("c2s {} in: {}", id_, chunk);
        auto result = parser_.feed(chunk);
        for (auto& event : result.events) {
          if (closing_) break;
          co_await handle(event);
        }
        if (!result.error.empty() && !closing_) end_stream(result.error);
        if (!closing_) co_await shape(n);
      }
    } catch (const std::exception& e) {
      spdlog::debug("c2s {}: read ended: {}", id_, e.what());
    }
    co_await finish();
  }

  Task<void> finish() {
    if (!closing_ && bound_ && sm_.resumable() && !taken_over_) co_await hold_for_resumption();
    if (taken_over_) {
      state_ = State::closed;
      finished_ = true;
      spdlog::info("c2s {} {} {}: stream resumed on another connection", id_, remote_, jid_.str());
      listener_->forget(shared_from_this());
      co_return;
    }
    if (!closing_) {
      closing_ = true;
      close_deadline_ = Clock::now();
    }
    wake_writer_.cancel();
    watchdog_.cancel();
    state_ = State::closed;
    if (bound_) {
      bound_ = false;
      co_await services_.router.session_closed(jid_, this);
    }
    finished_ = true;
    if (sm_.resumable()) listener_->forbid_resumption(sm_.id(), this);
    spdlog::info("c2s {} {}{}: disconnected", id_, remote_, jid_.empty() ? "" : " " + jid_.str());
    listener_->forget(shared_from_this());
  }

  // The connection was lost with resumption enabled: the resource stays
  // bound and stanzas for it are kept until the client resumes or the
  // resume timeout passes (XEP-0198 §5).
  Task<void> hold_for_resumption() {
    detached_ = true;
    out_.clear();
    queued_bytes_ = 0;
    close_socket();
    spdlog::info("c2s {} {} {}: connection lost, held {} s for resumption", id_, remote_, jid_.str(),
                 settings_.resume_timeout.count());
    resume_timer_.expires_after(settings_.resume_timeout);
    boost::system::error_code ec;
    co_await resume_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    detached_ = false;
  }

 public:
  struct Resumption {
    xmpp::Jid jid;
    StreamManagement sm;
  };
  // Runs on this session's shard when another connection resumes it: hands
  // over the bound resource and the stanzas the client has not acknowledged.
  Task<std::optional<Resumption>> take_over(std::uint32_t handled, xmpp::Jid account,
                                            std::shared_ptr<router::Session> successor) {
    if (finished_ || taken_over_ || !bound_ || jid_.bare() != account || !sm_.acknowledge(handled) ||
        !services_.router.sessions().transfer(jid_, this, std::move(successor))) {
      co_return std::nullopt;
    }
    taken_over_ = true;
    bound_ = false;
    if (detached_) {
      resume_timer_.cancel();
    } else {
      close_socket();  // the client gave up on this connection before we noticed
    }
    co_return Resumption{jid_, sm_};
  }

 private:

  Task<void> handle(xml::StreamEvent& event) {
    if (auto* open = std::get_if<xml::StreamOpen>(&event)) {
      co_await on_stream_open(open->header);
    } else if (auto* element = std::get_if<xml::StreamElement>(&event)) {
      // Stanzas of a bound stream, nearly all traffic, go to the router
      // without a coroutine frame for on_element in between.
      if (state_ == State::bound) {
        if (accept_bound_element(*element)) {
          co_await services_.router.process_from_client(std::move(*element), jid_, shared_from_this());
        }
      } else {
        co_await on_element(*element);
      }
    } else {
      spdlog::debug("c2s {}: peer closed its stream", id_);
      end_stream({});
    }
  }

  std::string header() {
    header_sent_ = true;
    std::vector<xml::Attribute> attrs{{"id", stream_id_}, {"version", "1.0"}, {"xml:lang", "en"}};
    if (!host_.empty()) attrs.insert(attrs.begin(), {"from", host_});
    if (!peer_jid_.empty()) attrs.push_back({"to", peer_jid_});
    return xml::stream_header(xml::ns_client, attrs);
  }

  Task<void> on_stream_open(const xml::Element& open) {
    stream_id_ = sasl::hex_encode(sasl::random_bytes(12));
    const std::string previous_host = host_;
    auto to = xmpp::Jid::parse(open.attr("to"));
    peer_jid_.clear();
    if (auto from = xmpp::Jid::parse(open.attr("from")); from && !from->is_domain()) peer_jid_ = from->bare_str();
    if (!to || !to->is_domain() || !services_.router.is_local(to->domain())) {
      end_stream("host-unknown", "this server does not serve that domain");
      co_return;
    }
    if (!previous_host.empty() && previous_host != to->domain()) {
      end_stream("host-unknown", "the stream restarted for another domain");
      co_return;
    }
    host_ = to->domain();
    if (open.attr("version") != "1.0") {
      end_stream("unsupported-version");
      co_return;
    }
    std::string data = header();
    xml::serialize_to(data, features());
    send_raw(std::move(data));
  }

  // The register module serves the unauthenticated form only when
  // registration is open on the host.
  bool registration_open() const {
    const auto* host = services_.router.host(host_);
    return host && host->iq_handler(router::IqTarget::unauthenticated, "get", ns_register);
  }

  xml::Element features() {
    xml::Element features("features", std::string(xml::ns_streams));
    if (state_ == State::connected) {
      auto& starttls = features.add_child("starttls", std::string(ns_tls));
      if (settings_.tls_required) starttls.add_child("required", std::string(ns_tls));
    }
    if (state_ == State::connected || state_ == State::encrypted) {
      if (!(state_ == State::connected && settings_.tls_required)) {
        features.add_child(sasl_.mechanisms(tls_ != nullptr));
        if (tls_) features.add_child(sasl_.channel_binding_types());
      }
      if (registration_open() && (tls_ || !settings_.tls_required)) {
        features.add_child("register", std::string(ns_register_feature));
      }
    } else if (state_ == State::authenticated) {
      features.add_child("bind", std::string(ns_bind));
      features.add_child("sm", std::string(ns_sm));
      features.add_child("session", std::string(ns_session)).add_child("optional", std::string(ns_session));
      features.add_child("ver", "urn:xmpp:features:rosterver");
      features.add_child("sub", "urn:xmpp:features:pre-approval");
    }
    return features;
  }

  // The element lives in the read loop's parse result until this returns,
  // so it is passed down by reference and moved only where it is kept.
  Task<void> on_element(xml::Element& element) {
    switch (state_) {
      case State::connected:
        if (element.is("starttls", ns_tls)) {
          co_await on_starttls();
          co_return;
        }
        [[fallthrough]];
      case State::encrypted:
        if (element.ns() == ns_sasl) {
          co_await on_sasl(std::move(element));
        } else if (element.name() == "iq" && is_stanza(element) && element.child("query", ns_register)) {
          if (settings_.tls_required && !tls_) {
            end_stream("policy-violation", "use STARTTLS before registering");
          } else {
            co_await services_.router.process_unauthenticated_iq(std::move(element), host_, shared_from_this());
          }
        } else {
          end_stream("not-authorized", "authenticate first");
        }
        co_return;
      case State::authenticated:
        if (element.is("resume", ns_sm)) {
          co_await on_resume(element);
        } else if (element.ns() == ns_sm) {
          send_raw(sm_failure("unexpected-request"));
        } else if (element.name() == "iq" && is_stanza(element)) {
          co_await on_pre_bind_iq(std::move(element));
        } else {
          end_stream("not-authorized", "bind a resource first");
        }
        co_return;
      case State::bound:
        if (accept_bound_element(element)) {
          co_await services_.router.process_from_client(std::move(element), jid_, shared_from_this());
        }
        co_return;
      case State::closed:
        co_return;
    }
  }

  Task<bool> start_tls() {
    auto context = services_.certificates.context_for(host_);
    if (!context) {
      end_stream("internal-server-error", "no certificate");
      co_return false;
    }
    tls_context_ = context;
    handshaking_ = true;
    try {
      tls_ = std::make_unique<TlsStream>(socket_, tls_context_->native_handle());
      co_await tls_->handshake();
    } catch (const std::exception& e) {
      spdlog::info("c2s {} {}: TLS handshake failed: {}", id_, remote_, e.what());
      handshaking_ = false;
      state_ = State::closed;
      close_socket();
      co_return false;
    }
    handshaking_ = false;
    wake_writer_.cancel();
    {
      std::lock_guard lock(tls_info_mutex_);
      tls_version_ = tls::version(tls_->native_handle());
    }
    spdlog::debug("c2s {}: TLS established ({}, {})", id_, tls_version_, tls::cipher(tls_->native_handle()));
    state_ = State::encrypted;
    parser_.reset();
    sasl_.set_channel_binding([this](std::string_view type) {
      return tls::channel_binding(tls_->native_handle(), type, true);
    });
    co_return true;
  }

  Task<void> on_starttls() {
    send_raw("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    co_await drain();
    if (state_ == State::closed) co_return;
    co_await start_tls();
  }

  Task<void> on_sasl(xml::Element element) {
    if (!tls_ && settings_.tls_required) {
      send_raw("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><encryption-required/></failure>");
      co_return;
    }
    auto outcome = co_await sasl_.step(element, SaslSession::Context{host_, tls_ != nullptr, services_});
    send(outcome.reply);
    if (outcome.username) {
      jid_ = *xmpp::Jid::from_parts(*outcome.username, host_);
      spdlog::info("c2s {} {}: authenticated as {} ({})", id_, remote_, jid_.bare_str(), sasl_.mechanism());
      state_ = State::authenticated;
      parser_.reset();
    } else if (outcome.failed && ++auth_failures_ >= max_auth_failures) {
      end_stream("policy-violation", "too many failed authentication attempts");
    }
  }

  Task<void> on_pre_bind_iq(xml::Element iq) {
    const xml::Element* bind = iq.child("bind", ns_bind);
    if (iq.attr("type") != "set" || !bind) {
      auto error = xmpp::stanza_error(iq, "not-authorized");
      send(error);
      co_return;
    }
    std::string resource = bind->child_text("resource", ns_bind);
    std::optional<xmpp::Jid> full;
    if (resource.empty()) {
      full = jid_.with_resource("parley-" + sasl::hex_encode(sasl::random_bytes(6)));
    } else {
      full = jid_.with_resource(resource);
      if (!full) {
        send(xmpp::stanza_error(iq, "bad-request", "invalid resource"));
        co_return;
      }
    }
    jid_ = *full;
    if (auto replaced = services_.router.sessions().bind(jid_, shared_from_this())) {
      replaced->close("conflict", "replaced by a new connection for the same resource");
    }
    state_ = State::bound;
    bound_ = true;
    spdlog::info("c2s {} {}: bound {}", id_, remote_, jid_.str());
    xml::Element result("iq");
    result.set_attr("type", "result").set_attr("id", std::string(iq.attr("id")));
    result.add_child("bind", std::string(ns_bind)).add_child("jid", std::string(ns_bind)).add_text(jid_.str());
    send(result);
    co_await services_.router.session_bound(jid_, shared_from_this());
  }

  static std::string sm_failure(std::string_view condition) {
    return "<failed xmlns='urn:xmpp:sm:3'><" + std::string(condition) +
           " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>";
  }

  void on_stream_management(const xml::Element& element) {
    if (element.name() == "enable") {
      if (sm_.enabled()) {
        send_raw(sm_failure("unexpected-request"));
        return;
      }
      const bool resume = element.attr("resume") == "true" || element.attr("resume") == "1";
      sm_.enable(resume, resume ? sasl::hex_encode(sasl::random_bytes(16)) : std::string());
      std::string enabled = "<enabled xmlns='urn:xmpp:sm:3'";
      if (resume) {
        listener_->allow_resumption(sm_.id(), shared_from_this());
        enabled += " id='" + sm_.id() + "' resume='true' max='" + std::to_string(settings_.resume_timeout.count()) + "'";
      }
      send_raw(enabled + "/>");
    } else if (element.name() == "r" && sm_.enabled()) {
      send_raw("<a xmlns='urn:xmpp:sm:3' h='" + std::to_string(sm_.inbound()) + "'/>");
    } else if (element.name() == "a" && sm_.enabled()) {
      auto handled = StreamManagement::parse_h(element.attr("h"));
      if (!handled || !sm_.acknowledge(*handled)) {
        end_stream("undefined-condition", "the acknowledgement does not match the stanzas sent");
      }
    } else {
      end_stream("unsupported-stanza-type");
    }
  }

  Task<void> on_resume(const xml::Element& resume) {
    auto handled = StreamManagement::parse_h(resume.attr("h"));
    auto previous = listener_->find_resumable(std::string(resume.attr("previd")));
    std::optional<Resumption> resumption;
    if (handled && previous && previous.get() != this) {
      // Stanzas routed here once the registry points at us wait until the
      // unacknowledged ones have been resent, to keep their order.
      resuming_ = true;
      resumption = co_await asio::co_spawn(
          previous->executor_, previous->take_over(*handled, jid_.bare(), shared_from_this()), asio::use_awaitable);
      resuming_ = false;
    }
    if (!resumption) {
      send_raw(sm_failure("item-not-found"));
      co_return;
    }
    jid_ = resumption->jid;
    sm_ = std::move(resumption->sm);
    state_ = State::bound;
    bound_ = true;
    listener_->allow_resumption(sm_.id(), shared_from_this());
    spdlog::info("c2s {} {}: resumed {} ({} stanzas to resend)", id_, remote_, jid_.str(), sm_.unacked().size());
    send_raw("<resumed xmlns='urn:xmpp:sm:3' h='" + std::to_string(sm_.inbound()) + "' previd='" + sm_.id() + "'/>");
    for (const auto& stanza : sm_.unacked()) send_raw(stanza);
    for (const auto& stanza : std::exchange(held_while_resuming_, {})) send(stanza);
  }

  // What a bound stream sends: everything that is not routed is handled
  // here without suspending. True when the element is a stanza to route.
  bool accept_bound_element(const xml::Element& element) {
    if (element.ns() == ns_sm) {
      on_stream_management(element);
      return false;
    }
    if (!is_stanza(element)) {
      end_stream("unsupported-stanza-type");
      return false;
    }
    if (const std::string* from = element.find_attr("from")) {
      auto claimed = xmpp::Jid::parse(*from);
      if (!claimed || !(claimed->local() == jid_.local() && claimed->domain() == jid_.domain() &&
                        (claimed->resource().empty() || claimed->resource() == jid_.resource()))) {
        end_stream("invalid-from", "'from' must be your own address");
        return false;
      }
    }
    sm_.count_inbound();
    if (element.name() == "iq" && element.child("session", ns_session) && element.attr("type") == "set") {
      send(xmpp::iq_result(element));
      return false;
    }
    return true;
  }

  // --- timers -------------------------------------------------------------

  Task<void> watchdog_loop([[maybe_unused]] std::shared_ptr<ClientSession> keep_alive) {
    const auto started = Clock::now();
    while (state_ != State::closed || writing_) {
      const auto now = Clock::now();
      if (closing_) {
        if (now >= close_deadline_) {
          state_ = State::closed;
          close_socket();
          break;
        }
      } else if (state_ != State::bound && now - started >= settings_.auth_timeout) {
        end_stream("connection-timeout", "authentication took too long");
        continue;
      } else if (now - last_read_ >= settings_.idle_timeout) {
        end_stream("connection-timeout", "idle for too long");
        continue;
      } else if (header_sent_ && out_.empty() && !writing_ && now - last_write_ >= settings_.keepalive_interval) {
        send_raw(sm_.unacked().empty() ? std::string(" ") : std::string("<r xmlns='urn:xmpp:sm:3'/>"));
      }
      auto next = closing_ ? close_deadline_
                           : std::min({last_read_ + settings_.idle_timeout, last_write_ + settings_.keepalive_interval,
                                       state_ == State::bound ? Clock::time_point::max() : started + settings_.auth_timeout});
      watchdog_.expires_at(std::max(next, now + std::chrono::milliseconds(10)));
      boost::system::error_code ec;
      co_await watchdog_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  asio::any_io_executor executor_;
  tcp::socket socket_;
  std::unique_ptr<TlsStream> tls_;
  std::shared_ptr<asio::ssl::context> tls_context_;
  std::shared_ptr<Listener::State> listener_;
  const Settings& settings_;
  Services& services_;
  std::string id_;
  std::string remote_;
  xml::StreamParser parser_;
  SaslSession sasl_;

  State state_ = State::connected;
  std::string stream_id_;
  std::string host_;
  std::string peer_jid_;
  xmpp::Jid jid_;
  int auth_failures_ = 0;
  bool bound_ = false;  // holds jid_ in the session registry until finish()
  bool finished_ = false;
  StreamManagement sm_;
  bool detached_ = false;     // connection lost, waiting for the client to resume
  bool taken_over_ = false;   // resumed by another connection
  bool resuming_ = false;     // taking over another connection's stream
  std::vector<xml::Element> held_while_resuming_;
  asio::steady_timer resume_timer_;
  bool header_sent_ = false;
  bool closing_ = false;
  Clock::time_point close_deadline_{};

  std::vector<std::string> out_;
  std::size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool handshaking_ = false;
  asio::steady_timer wake_writer_;
  asio::steady_timer drained_;
  asio::steady_timer watchdog_;
  asio::steady_timer throttle_;
  Clock::time_point last_read_ = Clock::now();
  Clock::time_point last_write_ = Clock::now();
  xmpp::Shaper shaper_;

  std::mutex inbox_mutex_;
  std::vector<xml::Element> inbox_;  // delivered from any thread, not yet taken on this shard

  mutable std::mutex tls_info_mutex_;
  std::string tls_version_;
};

void Listener::State::forbid_resumption(const std::string& id, const ClientSession* session) {
  std::lock_guard lock(sessions_mutex);
  auto found = resumable.find(id);
  if (found != resumable.end() && found->second.lock().get() == session) resumable.erase(found);
}

Task<void> Listener::State::accept_loop(std::shared_ptr<State> self) {
  for (;;) {
    asio::io_context& shard = *shards[next_shard++ % shards.size()];
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(shard, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      spdlog::warn("c2s: accept failed: {}", ec.message());
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto session = std::make_shared<ClientSession>(std::move(socket), self, "c2s" + std::to_string(++next_id));
    {
      std::lock_guard lock(sessions_mutex);
      sessions.insert(session);
    }
    session->start();
  }
}

Listener::Listener(std::vector<asio::io_context*> shards, const std::string& address, std::uint16_t port,
                   Settings settings, Services services)
    : state_(std::make_shared<State>(std::move(shards), settings, services)) {
  tcp::endpoint endpoint(asio::ip::make_address(address), port);
  state_->acceptor.open(endpoint.protocol());
  state_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  state_->acceptor.bind(endpoint);
  state_->acceptor.listen(asio::socket_base::max_listen_connections);
}

Listener::~Listener() { stop(); }

void Listener::start() {
  asio::co_spawn(*state_->shards.front(), state_->accept_loop(state_), asio::detached);
}

void Listener::stop() {
  asio::post(state_->acceptor.get_executor(), [state = state_]() {
    boost::system::error_code ec;
    state->acceptor.close(ec);
  });
}

void Listener::close_all(const std::string& condition) {
  std::lock_guard lock(state_->sessions_mutex);
  for (const auto& session : state_->sessions) session->close(condition, {});
}

std::size_t Listener::open_streams() const {
  std::lock_guard lock(state_->sessions_mutex);
  return state_->sessions.size();
}

std::uint16_t Listener::port() const { return state_->acceptor.local_endpoint().port(); }

}  // namespace parley::c2s
