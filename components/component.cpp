#include "components/component.hpp"

#include <spdlog/spdlog.h>

#include <array>
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
#include <unordered_set>

#include "components/protocol.hpp"
#include "xmpp/errors.hpp"
#include "xmpp/jid.hpp"
#include "xmpp/sasl.hpp"
#include "xmpp/shaper.hpp"
#include "xmpp/stream_parser.hpp"

namespace parley::components {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using router::Task;

namespace {

bool is_stanza(const xml::Element& element) {
  return element.ns() == xml::ns_client &&
         (element.name() == "message" || element.name() == "presence" || element.name() == "iq");
}

std::string endpoint_text(const tcp::socket& socket) {
  boost::system::error_code ec;
  auto endpoint = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

}  // namespace

class ComponentSession;

struct Manager::State {
  struct Acceptor {
    tcp::acceptor acceptor;
    bool direct_tls;
  };

  std::vector<asio::io_context*> shards;
  router::Router& router;
  tls::CertificateStore& certificates;
  std::string tls_domain;  // whose certificate direct TLS presents
  std::map<std::string, ComponentConfig, std::less<>> components;
  Settings settings;
  std::deque<Acceptor> acceptors;
  std::atomic<std::size_t> next_shard{0};
  std::atomic<std::uint64_t> next_id{0};

  mutable std::mutex mutex;  // guards sessions and connected
  std::unordered_set<std::shared_ptr<ComponentSession>> sessions;
  std::map<std::string, std::shared_ptr<ComponentSession>, std::less<>> connected;  // by domain

  State(std::vector<asio::io_context*> shard_list, router::Router& r, tls::CertificateStore& c, Settings s)
      : shards(std::move(shard_list)), router(r), certificates(c), settings(s) {}

  Task<void> accept_loop(std::shared_ptr<State> self, Acceptor& acceptor);

  void forget(const std::shared_ptr<ComponentSession>& session) {
    std::lock_guard lock(mutex);
    sessions.erase(session);
  }

  const ComponentConfig* component(std::string_view domain) const {
    const auto found = components.find(domain);
    return found == components.end() ? nullptr : &found->second;
  }

  // Hands a stanza to the session serving 'domain'; false when none is connected.
  bool deliver(std::string_view domain, xml::Element& stanza);

  // Makes 'session' the one serving 'domain'. Refused (false) when another
  // session serves it and the component is not configured to replace;
  // otherwise the session it displaced, if any, is in 'replaced'.
  bool claim(const std::string& domain, const std::shared_ptr<ComponentSession>& session,
             std::shared_ptr<ComponentSession>& replaced) {
    std::lock_guard lock(mutex);
    auto& holder = connected[domain];
    if (holder && !components.at(domain).replace) return false;
    replaced = std::exchange(holder, session);
    return true;
  }

  void release(const std::string& domain, const ComponentSession* session) {
    std::lock_guard lock(mutex);
    const auto found = connected.find(domain);
    if (found != connected.end() && found->second.get() == session) connected.erase(found);
  }
};

// One component connection. Lives on one shard: every member is touched only
// from that shard's thread, except deliver() and close() which post to it.
class ComponentSession : public router::Session, public std::enable_shared_from_this<ComponentSession> {
 public:
  ComponentSession(tcp::socket socket, std::shared_ptr<Manager::State> manager, std::string id, bool direct_tls)
      : executor_(socket.get_executor()),
        socket_(std::move(socket)),
        manager_(std::move(manager)),
        settings_(manager_->settings),
        id_(std::move(id)),
        remote_(endpoint_text(socket_)),
        direct_tls_(direct_tls),
        parser_(std::string(xml::ns_component), settings_.max_stanza_size),
        stream_id_(sasl::hex_encode(sasl::random_bytes(12))),
        shaper_(settings_.read_rate, settings_.read_burst),
        wake_writer_(executor_),
        watchdog_(executor_),
        throttle_(executor_) {}

  void start() {
    auto self = shared_from_this();
    asio::co_spawn(executor_, self->read_loop(), asio::detached);
    asio::co_spawn(executor_, self->write_loop(), asio::detached);
    asio::co_spawn(executor_, self->watchdog_loop(), asio::detached);
  }

  void deliver(xml::Element stanza) override {
    asio::post(executor_, [self = shared_from_this(), stanza = std::move(stanza)]() {
      if (self->state_ == State::authenticated) self->send(stanza);
    });
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
  // Set once before the session is published in State::connected, never
  // changed afterwards: readable under the manager's mutex from any thread.
  const std::string& domain() const { return domain_; }

 private:
  enum class State { connected, opened, authenticated, closed };

  // --- output -------------------------------------------------------------

  void send_raw(std::string data) {
    if (closing_) return;
    if (spdlog::should_log(spdlog::level::debug)) spdlog::debug("component {} out: {}", id_, data);
    queued_bytes_ += data.size();
    if (queued_bytes_ > settings_.max_send_queue) {
      spdlog::warn("component {} {} {}: send queue over {} bytes, closing", id_, remote_, domain_,
                   settings_.max_send_queue);
      end_stream("resource-constraint", "too many stanzas queued for a slow component");
      return;
    }
    out_.push_back(std::move(data));
    wake_writer_.cancel();
  }

  void send(const xml::Element& element) { send_raw(xml::serialize(element)); }

  // Sends a stream error and the closing tag, then closes once written.
  void end_stream(std::string_view condition, std::string_view text = {}) {
    if (closing_ || state_ == State::closed) return;
    spdlog::info("component {} {}{}: closing stream{}{}{}{}", id_, remote_, domain_.empty() ? "" : " " + domain_,
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
    socket_ref().shutdown(tcp::socket::shutdown_both, ec);
    socket_ref().close(ec);
    wake_writer_.cancel();
    watchdog_.cancel();
    throttle_.cancel();
  }

  tcp::socket& socket_ref() { return tls_ ? tls_->next_layer() : socket_; }

  Task<void> write_loop() {
    auto self = shared_from_this();
    std::string batch;
    try {
      for (;;) {
        while (out_.empty() && !closing_ && state_ != State::closed) {
          boost::system::error_code ec;
          wake_writer_.expires_at(Clock::time_point::max());
          co_await wake_writer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        if (out_.empty()) break;
        // One write for everything queued: fewer syscalls and TLS records.
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
        if (batch.capacity() > 65536) batch = std::string();
      }
    } catch (const std::exception& e) {
      spdlog::debug("component {}: write failed: {}", id_, e.what());
    }
    writing_ = false;
    out_.clear();
    state_ = State::closed;
    close_socket();
  }

  // --- input --------------------------------------------------------------

  Task<std::size_t> read_some(asio::mutable_buffer buffer) {
    if (tls_) co_return co_await tls_->async_read_some(buffer, asio::use_awaitable);
    co_return co_await socket_.async_read_some(buffer, asio::use_awaitable);
  }

  Task<void> read_loop() {
    auto self = shared_from_this();
    spdlog::info("component {} {}: connected{}", id_, remote_, direct_tls_ ? " (direct TLS)" : "");
    try {
      if (direct_tls_ && !co_await start_tls()) {
        co_await finish();
        co_return;
      }
      std::array<char, 8192> buffer;
      while (!closing_ && state_ != State::closed) {
        const std::size_t n = co_await read_some(asio::buffer(buffer));
        if (const auto pause = shaper_.take(n); pause > Clock::duration::zero()) {
          throttle_.expires_after(pause);
          boost::system::error_code ignored;
          co_await throttle_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        }
        std::string_view chunk(buffer.data(), n);
        // The handshake digest is kept out of the logs: with the stream id
        // it would allow guessing the secret offline.
        if (spdlog::should_log(spdlog::level::debug)) {
          if (state_ == State::authenticated) {
            spdlog::debug("component {} in: {}", id_, chunk);
          } else {
            spdlog::debug("component {} in: {} bytes before the handshake", id_, n);
          }
        }
        auto result = parser_.feed(chunk);
        for (auto& event : result.events) {
          if (closing_) break;
          co_await handle(event);
        }
        if (!result.error.empty() && !closing_) end_stream(result.error);
      }
    } catch (const std::exception& e) {
      spdlog::debug("component {}: read ended: {}", id_, e.what());
    }
    co_await finish();
  }

  Task<void> finish() {
    if (!closing_) {
      closing_ = true;
      close_deadline_ = Clock::now();
    }
    wake_writer_.cancel();
    watchdog_.cancel();
    state_ = State::closed;
    if (claimed_) {
      claimed_ = false;
      manager_->release(domain_, this);
    }
    spdlog::info("component {} {}{}: disconnected", id_, remote_, domain_.empty() ? "" : " " + domain_);
    manager_->forget(shared_from_this());
    co_return;
  }

  Task<void> handle(xml::StreamEvent& event) {
    if (auto* open = std::get_if<xml::StreamOpen>(&event)) {
      on_stream_open(open->header);
    } else if (auto* element = std::get_if<xml::StreamElement>(&event)) {
      co_await on_element(std::move(*element));
    } else {
      spdlog::debug("component {}: peer closed its stream", id_);
      end_stream({});
    }
  }

  std::string header() {
    header_sent_ = true;
    std::vector<xml::Attribute> attrs{{"id", stream_id_}};
    if (!domain_.empty()) attrs.insert(attrs.begin(), {"from", domain_});
    return xml::stream_header(xml::ns_component, attrs);
  }

  void on_stream_open(const xml::Element& open) {
    auto to = xmpp::Jid::parse(open.attr("to"));
    if (!to || !to->is_domain() || !manager_->component(to->domain())) {
      end_stream("host-unknown", "no component is configured for that domain");
      return;
    }
    domain_ = to->domain();
    state_ = State::opened;
    send_raw(header());
  }

  Task<void> on_element(xml::Element element) {
    switch (state_) {
      case State::connected:
        end_stream("not-authorized", "open the stream first");
        break;
      case State::opened:
        on_handshake(element);
        break;
      case State::authenticated:
        co_await on_stanza(std::move(element));
        break;
      case State::closed:
        break;
    }
  }

  void on_handshake(const xml::Element& element) {
    if (!element.is("handshake", xml::ns_client)) {
      end_stream("not-authorized", "send the handshake first");
      return;
    }
    const ComponentConfig& config = *manager_->component(domain_);
    if (!handshake_matches(element.text(), stream_id_, config.secret)) {
      spdlog::warn("component {} {} {}: handshake refused (wrong secret)", id_, remote_, domain_);
      end_stream("not-authorized", "wrong handshake");
      return;
    }
    std::shared_ptr<ComponentSession> replaced;
    if (!manager_->claim(domain_, shared_from_this(), replaced)) {
      end_stream("conflict", "another connection already serves this domain");
      return;
    }
    if (replaced) replaced->close("conflict", "replaced by a new connection for the same domain");
    claimed_ = true;
    state_ = State::authenticated;
    spdlog::info("component {} {} {}: authenticated{}", id_, remote_, domain_,
                 replaced ? " (replacing " + replaced->id() + ")" : "");
    send_raw("<handshake/>");
  }

  Task<void> on_stanza(xml::Element element) {
    if (!is_stanza(element)) {
      end_stream("unsupported-stanza-type");
      co_return;
    }
    if (const auto error = address_error(element, domain_); !error.empty()) {
      end_stream(error, error == "invalid-from" ? "'from' must be at " + domain_ : "set both 'from' and 'to'");
      co_return;
    }
    if (!xmpp::Jid::parse(element.attr("to"))) {
      if (!xmpp::is_error_stanza(element) && !(element.name() == "iq" && element.attr("type") == "result")) {
        send(xmpp::stanza_error(element, "jid-malformed", "'to' is not a valid JID"));
      }
      co_return;
    }
    co_await manager_->router.route(std::move(element));
  }

  Task<bool> start_tls() {
    auto context = manager_->certificates.context_for(manager_->tls_domain);
    if (!context) {
      end_stream("internal-server-error", "no certificate");
      co_return false;
    }
    tls_context_ = context;
    tls_ = std::make_unique<asio::ssl::stream<tcp::socket>>(std::move(socket_), *tls_context_);
    try {
      co_await tls_->async_handshake(asio::ssl::stream_base::server, asio::use_awaitable);
    } catch (const std::exception& e) {
      spdlog::info("component {} {}: TLS handshake failed: {}", id_, remote_, e.what());
      state_ = State::closed;
      close_socket();
      co_return false;
    }
    std::lock_guard lock(tls_info_mutex_);
    tls_version_ = tls::version(tls_->native_handle());
    co_return true;
  }

  // --- timers -------------------------------------------------------------

  // Components are often quiet for long stretches, so there is no idle
  // timeout; the whitespace keepalive finds a dead peer through TCP.
  Task<void> watchdog_loop() {
    auto self = shared_from_this();
    const auto started = Clock::now();
    while (state_ != State::closed || writing_) {
      const auto now = Clock::now();
      if (closing_) {
        if (now >= close_deadline_) {
          state_ = State::closed;
          close_socket();
          break;
        }
      } else if (state_ != State::authenticated && now - started >= settings_.auth_timeout) {
        end_stream("connection-timeout", "the handshake took too long");
        continue;
      } else if (header_sent_ && out_.empty() && !writing_ && now - last_write_ >= settings_.keepalive_interval) {
        send_raw(" ");
      }
      auto next = closing_ ? close_deadline_
                           : std::min(last_write_ + settings_.keepalive_interval,
                                      state_ == State::authenticated ? Clock::time_point::max()
                                                                     : started + settings_.auth_timeout);
      watchdog_.expires_at(std::max(next, now + std::chrono::milliseconds(10)));
      boost::system::error_code ec;
      co_await watchdog_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  asio::any_io_executor executor_;
  tcp::socket socket_;
  std::unique_ptr<asio::ssl::stream<tcp::socket>> tls_;
  std::shared_ptr<asio::ssl::context> tls_context_;
  std::shared_ptr<Manager::State> manager_;
  const Settings& settings_;
  std::string id_;
  std::string remote_;
  bool direct_tls_;
  xml::StreamParser parser_;

  State state_ = State::connected;
  std::string stream_id_;
  std::string domain_;
  // Holds domain_ in State::connected until finish(), however the stream
  // ended (the writer may have marked it closed first).
  bool claimed_ = false;
  bool header_sent_ = false;
  bool closing_ = false;
  Clock::time_point close_deadline_{};

  xmpp::Shaper shaper_;
  std::deque<std::string> out_;
  std::size_t queued_bytes_ = 0;
  bool writing_ = false;
  asio::steady_timer wake_writer_;
  asio::steady_timer watchdog_;
  asio::steady_timer throttle_;
  Clock::time_point last_write_ = Clock::now();

  mutable std::mutex tls_info_mutex_;
  std::string tls_version_;
};

bool Manager::State::deliver(std::string_view domain, xml::Element& stanza) {
  std::shared_ptr<ComponentSession> session;
  {
    std::lock_guard lock(mutex);
    const auto found = connected.find(domain);
    if (found == connected.end()) return false;
    session = found->second;
  }
  session->deliver(std::move(stanza));
  return true;
}

Task<void> Manager::State::accept_loop(std::shared_ptr<State> self, Acceptor& listener) {
  for (;;) {
    asio::io_context& shard = *shards[next_shard++ % shards.size()];
    boost::system::error_code ec;
    tcp::socket socket =
        co_await listener.acceptor.async_accept(shard, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !listener.acceptor.is_open()) co_return;
    if (ec) {
      spdlog::warn("component: accept failed: {}", ec.message());
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto session = std::make_shared<ComponentSession>(std::move(socket), self, "comp" + std::to_string(++next_id),
                                                      listener.direct_tls);
    {
      std::lock_guard lock(mutex);
      sessions.insert(session);
    }
    session->start();
  }
}

Manager::Manager(std::vector<asio::io_context*> shards, router::Router& router, tls::CertificateStore& certificates,
                 std::vector<ComponentConfig> components, Settings settings)
    : state_(std::make_shared<State>(std::move(shards), router, certificates, settings)) {
  const auto hosts = router.host_names();
  if (!hosts.empty()) state_->tls_domain = hosts.front();
  for (auto& component : components) {
    const std::string domain = component.domain;
    state_->components.emplace(domain, std::move(component));
    router.add_domain_route(domain, [state = state_](xml::Element& stanza, const xmpp::Jid& to) {
      return state->deliver(to.domain(), stanza);
    });
    for (const auto& host : hosts) router.host(host)->add_disco_item({domain, ""});
  }
}

Manager::~Manager() { stop(); }

void Manager::add_listener(const std::string& address, std::uint16_t port, bool direct_tls) {
  auto& listener = state_->acceptors.emplace_back(State::Acceptor{tcp::acceptor(*state_->shards.front()), direct_tls});
  tcp::endpoint endpoint(asio::ip::make_address(address), port);
  try {
    listener.acceptor.open(endpoint.protocol());
    listener.acceptor.set_option(tcp::acceptor::reuse_address(true));
    listener.acceptor.bind(endpoint);
    listener.acceptor.listen(asio::socket_base::max_listen_connections);
  } catch (...) {
    state_->acceptors.pop_back();
    throw;
  }
}

void Manager::start() {
  for (auto& listener : state_->acceptors) {
    asio::co_spawn(*state_->shards.front(), state_->accept_loop(state_, listener), asio::detached);
  }
}

void Manager::stop() {
  asio::post(*state_->shards.front(), [state = state_]() {
    for (auto& listener : state->acceptors) {
      boost::system::error_code ec;
      listener.acceptor.close(ec);
    }
  });
}

void Manager::close_all(const std::string& condition) {
  std::lock_guard lock(state_->mutex);
  for (const auto& session : state_->sessions) session->close(condition, {});
}

std::size_t Manager::open_streams() const {
  std::lock_guard lock(state_->mutex);
  return state_->sessions.size();
}

std::vector<ConnectionInfo> Manager::connections() const {
  std::lock_guard lock(state_->mutex);
  std::vector<ConnectionInfo> list;
  for (const auto& [domain, session] : state_->connected) {
    list.push_back({domain, session->id(), session->remote_address(), session->tls_version()});
  }
  return list;
}

}  // namespace parley::components
