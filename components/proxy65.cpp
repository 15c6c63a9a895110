#include "components/proxy65.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_set>

#include <unistd.h>

#include "components/proxy65_socks5.hpp"
#include "xmpp/errors.hpp"
#include "xmpp/jid.hpp"
#include "xmpp/shaper.hpp"

namespace parley::components::proxy65 {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using router::Task;

namespace {

constexpr std::string_view ns_bytestreams = "http://jabber.org/protocol/bytestreams";
constexpr std::string_view ns_disco_info = "http://jabber.org/protocol/disco#info";
constexpr std::string_view ns_disco_items = "http://jabber.org/protocol/disco#items";

// How long a refused client gets to read its SOCKS5 reply before the
// connection is dropped.
constexpr auto refusal_linger = std::chrono::seconds(2);
constexpr std::size_t relay_buffer_size = 64 * 1024;
constexpr auto accept_backoff = std::chrono::milliseconds(100);

std::string endpoint_text(const tcp::socket& socket) {
  boost::system::error_code ec;
  auto endpoint = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  return endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

void close_socket(tcp::socket& socket) {
  boost::system::error_code ec;
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

}  // namespace

// One accepted SOCKS5 connection until it is activated (then its socket
// moves into a Relay) or closed. The socket and timer are touched only on
// the connection's shard; 'phase' and 'hash' only under State::mutex.
struct Connection {
  enum class Phase { negotiating, waiting, activated, closed };

  Connection(tcp::socket s, std::string connection_id)
      : socket(std::move(s)),
        executor(socket.get_executor()),
        deadline(executor),
        id(std::move(connection_id)),
        remote(endpoint_text(socket)) {}

  tcp::socket socket;
  asio::any_io_executor executor;
  asio::steady_timer deadline;
  const std::string id;
  const std::string remote;
  Phase phase = Phase::negotiating;
  std::string hash;  // set when it joins a pair
};

class Relay;

struct Proxy::State {
  std::vector<asio::io_context*> shards;
  router::Router& router;
  Settings settings;
  tcp::acceptor acceptor;
  std::uint16_t bound_port = 0;
  std::atomic<std::size_t> next_shard{0};
  std::atomic<std::uint64_t> next_id{0};
  std::atomic<std::uint64_t> relayed_bytes{0};

  struct Pair {
    std::shared_ptr<Connection> first, second;
  };
  mutable std::mutex mutex;  // guards every member below and each Connection::phase
  std::unordered_set<std::shared_ptr<Connection>> unactivated;
  std::map<std::string, Pair, std::less<>> pending;  // by stream hash
  // Not owning: a relay is kept alive by its own coroutines, and owning it
  // here would make a cycle (it holds the state) that outlives a stopped shard.
  std::map<const Relay*, std::weak_ptr<Relay>> relays;

  State(std::vector<asio::io_context*> shard_list, router::Router& r, Settings s)
      : shards(std::move(shard_list)), router(r), settings(std::move(s)), acceptor(*shards.front()) {}

  asio::io_context& pick_shard() { return *shards[next_shard++ % shards.size()]; }

  Task<void> accept_loop(std::shared_ptr<State> self);
  Task<void> serve(std::shared_ptr<State> self, std::shared_ptr<Connection> connection);
  Task<void> expire(std::shared_ptr<State> self, std::shared_ptr<Connection> connection);
  Task<void> refuse(std::shared_ptr<Connection> connection, std::string reply, std::string reason);

  // Ends a connection that has not been activated; false when it was
  // activated (or ended) meanwhile and is not the caller's to touch.
  bool retire(const std::shared_ptr<Connection>& connection) {
    std::lock_guard lock(mutex);
    if (connection->phase == Connection::Phase::activated || connection->phase == Connection::Phase::closed) {
      return false;
    }
    if (const auto found = pending.find(connection->hash); found != pending.end()) {
      auto& [first, second] = found->second;
      if (second == connection) {
        second.reset();
      } else if (first == connection) {
        first = std::exchange(second, nullptr);
      }
      if (!first) pending.erase(found);
    }
    connection->phase = Connection::Phase::closed;
    unactivated.erase(connection);
    return true;
  }

  // Ends a connection that was not activated, from its own shard.
  void drop(const std::shared_ptr<Connection>& connection) {
    if (!retire(connection)) return;
    connection->deadline.cancel();
    close_socket(connection->socket);
  }

  // Files a negotiated connection under its hash; false when two parties
  // already joined it (XEP-0065 joins exactly two) or the connection was
  // retired.
  bool join(const std::shared_ptr<Connection>& connection, const std::string& hash) {
    std::lock_guard lock(mutex);
    if (connection->phase != Connection::Phase::negotiating) return false;
    auto& pair = pending[hash];
    if (!pair.first) {
      pair.first = connection;
    } else if (!pair.second) {
      pair.second = connection;
    } else {
      return false;
    }
    connection->phase = Connection::Phase::waiting;
    connection->hash = hash;
    return true;
  }

  enum class Activation { activated, unknown, one_party };
  Activation activate(const std::shared_ptr<State>& self, const std::string& hash);
  static void start_relay(std::shared_ptr<State> self, std::shared_ptr<Connection> first,
                          std::shared_ptr<Connection> second, std::string hash);

  bool allowed(const xmpp::Jid& from) const {
    if (settings.allow.empty()) return router.is_local(from.domain());
    return std::find(settings.allow.begin(), settings.allow.end(), from.domain()) != settings.allow.end();
  }

  std::optional<xml::Element> answer(const std::shared_ptr<State>& self, const xml::Element& stanza);
  xml::Element answer_iq(const std::shared_ptr<State>& self, const xml::Element& iq, const xmpp::Jid& from,
                         const xmpp::Jid& to);
  Task<void> handle(std::shared_ptr<State> self, xml::Element stanza);
};

// Two activated connections joined on one shard. Each direction reads,
// writes what it read, then pauses as long as its shaper says; end of
// file on one side is passed on as a half-close so the last bytes arrive,
// and the relay ends when both directions have ended, on any error, or
// after idle_timeout without a byte.
class Relay : public std::enable_shared_from_this<Relay> {
 public:
  Relay(std::shared_ptr<Proxy::State> state, tcp::socket first, tcp::socket second, std::string description)
      : state_(std::move(state)),
        executor_(first.get_executor()),
        sockets_{std::move(first), std::move(second)},
        pauses_{asio::steady_timer(executor_), asio::steady_timer(executor_)},
        idle_(executor_),
        description_(std::move(description)) {}

  // The coroutines own the relay (the registry in the state does not).
  void start() {
    asio::co_spawn(executor_, pump(shared_from_this(), 0, 1), asio::detached);
    asio::co_spawn(executor_, pump(shared_from_this(), 1, 0), asio::detached);
    asio::co_spawn(executor_, watch_idle(shared_from_this()), asio::detached);
  }

  // From any thread.
  void close() {
    asio::post(executor_, [self = shared_from_this()] { self->end("closed by the server"); });
  }

 private:
  static Task<void> pump(std::shared_ptr<Relay> relay, int from, int to) {
    const auto& settings = relay->state_->settings;
    std::optional<xmpp::Shaper> shaper;
    if (settings.rate != 0) shaper.emplace(settings.rate, settings.burst);
    // One read never takes more than the bucket holds.
    std::vector<char> buffer(settings.rate != 0 ? std::min(relay_buffer_size, settings.burst) : relay_buffer_size);
    auto& source = relay->sockets_[from];
    auto& sink = relay->sockets_[to];
    boost::system::error_code ec;
    while (!relay->ended_) {
      const std::size_t n =
          co_await source.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      co_await asio::async_write(sink, asio::buffer(buffer.data(), n), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      relay->bytes_[from] += n;
      relay->state_->relayed_bytes += n;
      relay->last_activity_ = Clock::now();
      if (const auto wait = shaper ? shaper->take(n) : Clock::duration::zero(); wait > Clock::duration::zero()) {
        relay->pauses_[from].expires_after(wait);
        co_await relay->pauses_[from].async_wait(asio::redirect_error(asio::use_awaitable, ec));
        ec.clear();
      }
    }
    if (relay->ended_) co_return;
    if (ec == asio::error::eof) {
      // The reader has sent everything: pass the end on, keep the other way open.
      boost::system::error_code ignored;
      sink.shutdown(tcp::socket::shutdown_send, ignored);
      if (++relay->finished_directions_ == 2) relay->end("both sides finished");
      co_return;
    }
    relay->end(ec.message());
  }

  static Task<void> watch_idle(std::shared_ptr<Relay> relay) {
    const auto limit = relay->state_->settings.idle_timeout;
    while (!relay->ended_) {
      relay->idle_.expires_at(relay->last_activity_ + limit);
      boost::system::error_code ec;
      co_await relay->idle_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!relay->ended_ && Clock::now() - relay->last_activity_ >= limit) {
        relay->end("idle for " + std::to_string(limit.count()) + " s");
      }
    }
  }

  void end(const std::string& reason) {
    if (ended_) return;
    ended_ = true;
    for (auto& socket : sockets_) close_socket(socket);
    for (auto& timer : pauses_) timer.cancel();
    idle_.cancel();
    spdlog::info("proxy65 {}: relay ended ({}): {} bytes one way, {} the other", description_, reason, bytes_[0],
                 bytes_[1]);
    std::lock_guard lock(state_->mutex);
    state_->relays.erase(this);
  }

  std::shared_ptr<Proxy::State> state_;
  asio::any_io_executor executor_;
  std::array<tcp::socket, 2> sockets_;
  std::array<asio::steady_timer, 2> pauses_;
  asio::steady_timer idle_;
  const std::string description_;
  std::array<std::uint64_t, 2> bytes_{};
  int finished_directions_ = 0;
  bool ended_ = false;
  Clock::time_point last_activity_ = Clock::now();
};

Task<void> Proxy::State::accept_loop(std::shared_ptr<State> self) {
  for (;;) {
    asio::io_context& shard = pick_shard();
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(shard, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // Out of descriptors or memory: retrying at once would spin.
      spdlog::warn("proxy65: accept failed: {}", ec.message());
      asio::steady_timer backoff(acceptor.get_executor(), accept_backoff);
      co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto connection = std::make_shared<Connection>(std::move(socket), "s5b" + std::to_string(++next_id));
    {
      std::lock_guard lock(mutex);
      if (unactivated.size() >= settings.max_pending) {
        spdlog::warn("proxy65 {} {}: refused, {} connections already wait for activation", connection->id,
                     connection->remote, unactivated.size());
        connection->phase = Connection::Phase::closed;
        asio::post(connection->executor, [connection] { close_socket(connection->socket); });
        continue;
      }
      unactivated.insert(connection);
    }
    asio::co_spawn(connection->executor, serve(self, connection), asio::detached);
  }
}

Task<void> Proxy::State::serve(std::shared_ptr<State> self, std::shared_ptr<Connection> connection) {
  spdlog::debug("proxy65 {} {}: connected", connection->id, connection->remote);
  asio::co_spawn(connection->executor, expire(self, connection), asio::detached);
  Negotiation negotiation;
  std::string chunk;
  std::string output;
  boost::system::error_code ec;
  while (negotiation.state() == Negotiation::State::greeting || negotiation.state() == Negotiation::State::request) {
    chunk.assign(negotiation.wanted(), '\0');
    co_await asio::async_read(connection->socket, asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      spdlog::info("proxy65 {} {}: negotiation ended: {}", connection->id, connection->remote,
                   ec == asio::error::eof ? "the client closed early" : ec.message());
      drop(connection);
      co_return;
    }
    output.clear();
    negotiation.feed(chunk, output);
    if (negotiation.state() == Negotiation::State::failed) {
      co_await refuse(connection, std::move(output), negotiation.error());
      co_return;
    }
    if (!output.empty()) {
      co_await asio::async_write(connection->socket, asio::buffer(output),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        drop(connection);
        co_return;
      }
    }
  }
  const std::string hash = negotiation.address();
  if (!join(connection, hash)) {
    co_await refuse(connection, negotiation.reply(Reply::not_allowed), "two parties already joined " + hash);
    co_return;
  }
  // Joined and answered without suspending: an activation can only take the
  // socket over (posted to this shard) once the success reply is out, and
  // the client may activate as soon as it has read it. The reply is the
  // first thing written since the two-byte method choice, so the socket's
  // send buffer takes it whole without blocking.
  output = negotiation.reply(Reply::succeeded);
  connection->socket.non_blocking(true, ec);
  const std::size_t written = ec ? 0 : connection->socket.write_some(asio::buffer(output), ec);
  boost::system::error_code ignored;
  connection->socket.non_blocking(false, ignored);
  if (ec || written != output.size()) {
    spdlog::info("proxy65 {} {}: the SOCKS5 reply could not be sent: {}", connection->id, connection->remote,
                 ec ? ec.message() : "short write");
    drop(connection);
    co_return;
  }
  spdlog::info("proxy65 {} {}: connected for {}, waiting for activation", connection->id, connection->remote, hash);
}

Task<void> Proxy::State::refuse(std::shared_ptr<Connection> connection, std::string reply, std::string reason) {
  if (!retire(connection)) co_return;
  spdlog::info("proxy65 {} {}: SOCKS5 refused: {}", connection->id, connection->remote, reason);
  auto& socket = connection->socket;
  boost::system::error_code ec;
  if (!reply.empty()) {
    co_await asio::async_write(socket, asio::buffer(reply), asio::redirect_error(asio::use_awaitable, ec));
  }
  // Closing with unread input would reset the connection and could destroy
  // the reply before the client reads it: end our side, then drain briefly.
  socket.shutdown(tcp::socket::shutdown_send, ec);
  connection->deadline.expires_after(refusal_linger);
  connection->deadline.async_wait([connection](const boost::system::error_code&) {
    boost::system::error_code ignored;
    connection->socket.close(ignored);
  });
  std::array<char, 4096> sink;
  std::size_t drained = 0;
  while (!ec && drained < 64 * 1024) {
    drained += co_await socket.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
  }
  connection->deadline.cancel();
  close_socket(socket);
}

Task<void> Proxy::State::expire(std::shared_ptr<State> self, std::shared_ptr<Connection> connection) {
  connection->deadline.expires_after(settings.activation_timeout);
  boost::system::error_code ec;
  co_await connection->deadline.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return;
  if (!self->retire(connection)) co_return;
  spdlog::info("proxy65 {} {}: not activated within {} s, closing", connection->id, connection->remote,
               settings.activation_timeout.count());
  close_socket(connection->socket);
}

Proxy::State::Activation Proxy::State::activate(const std::shared_ptr<State>& self, const std::string& hash) {
  std::shared_ptr<Connection> first, second;
  {
    std::lock_guard lock(mutex);
    const auto found = pending.find(hash);
    if (found == pending.end()) return Activation::unknown;
    if (!found->second.second) return Activation::one_party;
    first = std::move(found->second.first);
    second = std::move(found->second.second);
    pending.erase(found);
    for (const auto& connection : {first, second}) {
      connection->phase = Connection::Phase::activated;
      unactivated.erase(connection);
    }
  }
  start_relay(self, std::move(first), std::move(second), hash);
  return Activation::activated;
}

// The relay runs on the first connection's shard: the second socket is
// released on its own shard and adopted on the first's, so that no socket
// is ever used from two threads.
void Proxy::State::start_relay(std::shared_ptr<State> self, std::shared_ptr<Connection> first,
                               std::shared_ptr<Connection> second, std::string hash) {
  const std::string description = first->id + " " + first->remote + " <-> " + second->id + " " + second->remote;
  auto begin = [self, first, description, hash](tcp::socket other) {
    first->deadline.cancel();
    auto relay = std::make_shared<Relay>(self, std::move(first->socket), std::move(other), description);
    {
      std::lock_guard lock(self->mutex);
      self->relays.emplace(relay.get(), relay);
    }
    spdlog::info("proxy65 {}: activated {}", description, hash);
    relay->start();
  };
  if (first->executor == second->executor) {
    asio::post(first->executor, [begin, second]() mutable {
      second->deadline.cancel();
      begin(std::move(second->socket));
    });
    return;
  }
  asio::post(second->executor, [begin, first, second]() mutable {
    second->deadline.cancel();
    boost::system::error_code ec;
    const auto protocol = second->socket.local_endpoint(ec).protocol();
    const auto handle = ec ? tcp::socket::native_handle_type(-1) : second->socket.release(ec);
    if (ec) {
      spdlog::warn("proxy65 {}: cannot hand the connection over to the relay: {}", second->id, ec.message());
      close_socket(second->socket);
      asio::post(first->executor, [first] {
        first->deadline.cancel();
        close_socket(first->socket);
      });
      return;
    }
    asio::post(first->executor, [begin, first, protocol, handle]() mutable {
      tcp::socket adopted(first->executor);
      boost::system::error_code assign_error;
      adopted.assign(protocol, handle, assign_error);
      if (assign_error) {
        ::close(handle);
        first->deadline.cancel();
        close_socket(first->socket);
        return;
      }
      begin(std::move(adopted));
    });
  });
}

std::optional<xml::Element> Proxy::State::answer(const std::shared_ptr<State>& self, const xml::Element& stanza) {
  if (xmpp::is_error_stanza(stanza) || stanza.name() == "presence") return std::nullopt;
  if (stanza.name() == "message") return xmpp::stanza_error(stanza, "service-unavailable");
  const auto type = stanza.attr("type");
  if (stanza.name() != "iq" || (type != "get" && type != "set")) return std::nullopt;
  const auto from = xmpp::Jid::parse(stanza.attr("from"));
  const auto to = xmpp::Jid::parse(stanza.attr("to"));
  if (!from || !to) return std::nullopt;
  // The service is the domain itself: there are no users or resources at it.
  if (!to->is_domain()) return xmpp::stanza_error(stanza, "service-unavailable");
  return answer_iq(self, stanza, *from, *to);
}

xml::Element Proxy::State::answer_iq(const std::shared_ptr<State>& self, const xml::Element& iq,
                                     const xmpp::Jid& from, const xmpp::Jid& to) {
  const bool get = iq.attr("type") == "get";
  const xml::Element* payload = iq.first_child_element();
  if (payload == nullptr) return xmpp::stanza_error(iq, "bad-request", "an iq needs a payload");

  if (get && payload->is("query", ns_disco_info)) {
    if (payload->has_attr("node")) return xmpp::stanza_error(iq, "item-not-found");
    auto reply = xmpp::iq_result(iq);
    auto& query = reply.add_child("query", std::string(ns_disco_info));
    auto& identity = query.add_child("identity", std::string(ns_disco_info));
    identity.set_attr("category", "proxy");
    identity.set_attr("type", "bytestreams");
    identity.set_attr("name", settings.name);
    for (auto feature : {ns_disco_info, ns_disco_items, ns_bytestreams}) {
      query.add_child("feature", std::string(ns_disco_info)).set_attr("var", std::string(feature));
    }
    return reply;
  }
  if (get && payload->is("query", ns_disco_items)) {
    if (payload->has_attr("node")) return xmpp::stanza_error(iq, "item-not-found");
    auto reply = xmpp::iq_result(iq);
    reply.add_child("query", std::string(ns_disco_items));
    return reply;
  }
  if (!payload->is("query", ns_bytestreams)) return xmpp::stanza_error(iq, "service-unavailable");

  // XEP-0065 §4: a requester the proxy does not serve gets forbidden, for
  // the address query and for activation alike.
  if (!allowed(from)) {
    spdlog::info("proxy65: {} is not allowed to use the proxy", from.str());
    return xmpp::stanza_error(iq, "forbidden", "this proxy serves the users of its own server only");
  }
  if (get) {
    auto reply = xmpp::iq_result(iq);
    auto& query = reply.add_child("query", std::string(ns_bytestreams));
    auto& streamhost = query.add_child("streamhost", std::string(ns_bytestreams));
    streamhost.set_attr("jid", to.domain());
    streamhost.set_attr("host", settings.public_host.empty() ? settings.address : settings.public_host);
    streamhost.set_attr("port", std::to_string(settings.public_port != 0 ? settings.public_port : bound_port));
    return reply;
  }

  const auto sid = payload->attr("sid");
  const xml::Element* activate_element = payload->child("activate", ns_bytestreams);
  if (sid.empty() || activate_element == nullptr) {
    return xmpp::stanza_error(iq, "bad-request", "activation needs a sid and an <activate/> target");
  }
  const auto target = xmpp::Jid::parse(activate_element->text());
  if (!target) return xmpp::stanza_error(iq, "jid-malformed", "the <activate/> target is not a valid JID");
  const auto hash = stream_hash(sid, from.str(), target->str());
  switch (activate(self, hash)) {
    case Activation::activated:
      return xmpp::iq_result(iq);
    case Activation::one_party:
      return xmpp::stanza_error(iq, "not-allowed", "only one party of this bytestream is connected");
    case Activation::unknown:
      break;
  }
  return xmpp::stanza_error(iq, "item-not-found", "no bytestream with this sid, requester and target is connected");
}

Task<void> Proxy::State::handle(std::shared_ptr<State> self, xml::Element stanza) {
  try {
    auto reply = answer(self, stanza);
    if (reply) co_await router.route(std::move(*reply));
  } catch (const std::exception& e) {
    spdlog::error("proxy65: handling a {} failed: {}", stanza.name(), e.what());
  }
}

Proxy::Proxy(std::vector<asio::io_context*> shards, router::Router& router, Settings settings)
    : state_(std::make_shared<State>(std::move(shards), router, std::move(settings))) {
  if (state_->settings.rate != 0 && state_->settings.burst == 0) {
    throw std::invalid_argument("proxy65: a rate limit needs a burst of at least one byte");
  }
  auto& acceptor = state_->acceptor;
  const tcp::endpoint endpoint(asio::ip::make_address(state_->settings.address), state_->settings.port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
  state_->bound_port = acceptor.local_endpoint().port();

  const auto hosts = router.host_names();
  const auto& listed_on = state_->settings.listed_on.empty() ? hosts : state_->settings.listed_on;
  for (const auto& domain : state_->settings.domains) {
    router.add_domain_route(domain, [state = state_](xml::Element& stanza, const xmpp::Jid&) {
      asio::co_spawn(state->pick_shard(), state->handle(state, std::move(stanza)), asio::detached);
      return true;
    });
    for (const auto& host : listed_on) {
      if (auto* listing = router.host(host)) listing->add_disco_item({domain, state_->settings.name});
    }
  }
  std::string domains;
  for (const auto& domain : state_->settings.domains) domains += (domains.empty() ? "" : ", ") + domain;
  spdlog::info("proxy65: {} on {}:{}", domains, state_->settings.address, state_->bound_port);
}

Proxy::~Proxy() {
  boost::system::error_code ec;
  state_->acceptor.close(ec);
  std::lock_guard lock(state_->mutex);
  for (const auto& connection : state_->unactivated) {
    connection->phase = Connection::Phase::closed;
    close_socket(connection->socket);
  }
  state_->unactivated.clear();
  state_->pending.clear();
}

std::uint16_t Proxy::port() const { return state_->bound_port; }

void Proxy::start() {
  asio::co_spawn(*state_->shards.front(), state_->accept_loop(state_), asio::detached);
}

void Proxy::stop() {
  asio::post(*state_->shards.front(), [state = state_] {
    boost::system::error_code ec;
    state->acceptor.close(ec);
  });
}

void Proxy::close_all() {
  std::lock_guard lock(state_->mutex);
  for (const auto& [key, weak] : state_->relays) {
    if (auto relay = weak.lock()) relay->close();
  }
  for (const auto& connection : state_->unactivated) {
    connection->phase = Connection::Phase::closed;
    asio::post(connection->executor, [connection] {
      connection->deadline.cancel();
      close_socket(connection->socket);
    });
  }
  state_->unactivated.clear();
  state_->pending.clear();
}

Proxy::Counters Proxy::counters() const {
  std::lock_guard lock(state_->mutex);
  return {state_->unactivated.size(), state_->relays.size(), state_->relayed_bytes.load()};
}

}  // namespace parley::components::proxy65
