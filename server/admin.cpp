#include "server/admin.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>

#include "router/router.hpp"
#include "router/workers.hpp"
#include "server/admin_protocol.hpp"
#include "storage/storage.hpp"
#include "xmpp/jid.hpp"
#include "xmpp/sasl.hpp"

namespace parley::admin {

namespace asio = boost::asio;
using local_socket = asio::local::stream_protocol::socket;
using router::Task;

namespace {

// How long a client may take to send its request line, and to read the answer.
constexpr auto read_timeout = std::chrono::seconds(10);
constexpr auto write_timeout = std::chrono::seconds(30);

std::string join(const std::vector<std::string>& items, std::string_view separator = ", ") {
  std::string joined;
  for (const auto& item : items) {
    if (!joined.empty()) joined += separator;
    joined += item;
  }
  return joined;
}

std::string utc_time(std::int64_t unix_seconds) {
  const auto time = static_cast<std::time_t>(unix_seconds);
  std::tm parts{};
  gmtime_r(&time, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Makes 'path' (length already checked) free for bind(): removes a socket file nobody answers on,
// refuses to touch one a running server answers on or a non-socket file.
void claim_socket_path(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  std::error_code error;
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  if (error) throw StartError("cannot create the directory of admin socket " + path + ": " + error.message());

  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    if (errno == ENOENT) return;
    throw StartError("cannot inspect admin socket " + path + ": " + std::strerror(errno));
  }
  if (!S_ISSOCK(info.st_mode)) throw StartError("admin socket path " + path + " exists and is not a socket");

  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) throw StartError(std::string("cannot create a socket: ") + std::strerror(errno));
  const int connected = ::connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  const int connect_error = errno;
  ::close(probe);
  if (connected == 0) {
    throw StartError("another parleyd is already answering on admin socket " + path + " (stop it first)");
  }
  if (connect_error != ECONNREFUSED) {
    throw StartError("cannot check admin socket " + path + ": " + std::strerror(connect_error));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    throw StartError("cannot remove stale admin socket " + path + ": " + std::strerror(errno));
  }
  spdlog::info("admin: removed stale socket {}", path);
}

// Only the account parleyd runs as (and root) may administer it; the 0600
// mode already says so, this keeps it true if the file's mode is changed.
bool peer_allowed(local_socket& socket) {
  ucred credentials{};
  socklen_t size = sizeof credentials;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0) return false;
  return credentials.uid == 0 || credentials.uid == ::geteuid();
}

struct Usage {
  std::size_t min_args;
  std::size_t max_args;
  const char* text;
};

const std::map<std::string, Usage, std::less<>>& commands() {
  static const std::map<std::string, Usage, std::less<>> table = {
      {"status", {0, 0, "status"}},
      {"register", {3, 3, "register USER HOST PASSWORD"}},
      {"unregister", {2, 2, "unregister USER HOST"}},
      {"passwd", {3, 3, "passwd USER HOST PASSWORD"}},
      {"users", {1, 1, "users HOST"}},
      {"sessions", {0, 0, "sessions"}},
      {"kick", {1, 2, "kick JID [REASON]"}},
      {"reload", {0, 0, "reload"}},
      {"s2s", {0, 0, "s2s"}},
      {"components", {0, 0, "components"}},
  };
  return table;
}

std::vector<std::string> command_names() {
  std::vector<std::string> names;
  for (const auto& [name, usage] : commands()) names.push_back(name);
  return names;
}

// A command failed in a way the administrator should read.
struct CommandError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace

struct AdminServer::State : std::enable_shared_from_this<State> {
  State(asio::io_context& io, std::string path, router::Router& router_, storage::Storage& storage_,
        router::WorkerPool& workers_, ReloadCallback reload_, std::vector<std::string> hosts_, std::string version_,
        std::chrono::steady_clock::time_point started_at_)
      : acceptor(io),
        socket_path(std::move(path)),
        router(router_),
        storage(storage_),
        workers(workers_),
        reload(std::move(reload_)),
        hosts(std::move(hosts_)),
        version(std::move(version_)),
        started_at(started_at_) {}

  void listen() {
    if (socket_path.empty() || socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
      throw StartError("admin socket path '" + socket_path + "' is empty or longer than " +
                       std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
    }
    claim_socket_path(socket_path);
    const asio::local::stream_protocol::endpoint endpoint(socket_path);
    boost::system::error_code error;
    acceptor.open(endpoint.protocol(), error);
    if (!error) acceptor.bind(endpoint, error);
    if (error) throw StartError("cannot bind admin socket " + socket_path + ": " + error.message());
    // Nobody can connect before listen(), so tightening the mode here leaves
    // no window in which another user could reach the socket.
    struct stat info {};
    if (::chmod(socket_path.c_str(), S_IRUSR | S_IWUSR) != 0 || ::stat(socket_path.c_str(), &info) != 0) {
      const auto reason = std::strerror(errno);
      acceptor.close(error);
      ::unlink(socket_path.c_str());
      throw StartError("cannot restrict admin socket " + socket_path + ": " + reason);
    }
    socket_device = info.st_dev;
    socket_inode = info.st_ino;
    acceptor.listen(asio::socket_base::max_listen_connections, error);
    if (error) {
      const auto reason = error.message();
      acceptor.close(error);
      ::unlink(socket_path.c_str());
      throw StartError("cannot listen on admin socket " + socket_path + ": " + reason);
    }
  }

  void stop() {
    if (stopped.exchange(true)) return;
    struct stat info {};
    // Another server may have replaced a file we no longer own.
    if (::stat(socket_path.c_str(), &info) == 0 && info.st_dev == socket_device && info.st_ino == socket_inode) {
      ::unlink(socket_path.c_str());
    }
    asio::dispatch(acceptor.get_executor(), [self = shared_from_this()] {
      boost::system::error_code ignored;
      self->acceptor.close(ignored);
    });
  }

  Task<void> accept_loop() {
    auto self = shared_from_this();
    asio::steady_timer backoff(acceptor.get_executor());
    while (acceptor.is_open()) {
      try {
        auto socket = co_await acceptor.async_accept(asio::use_awaitable);
        asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
        continue;
      } catch (const boost::system::system_error& e) {
        if (e.code() == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        spdlog::warn("admin: accept failed: {}", e.what());
      }
      // Out of descriptors and the like: do not spin while it lasts.
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(asio::use_awaitable);
    }
  }

  Task<void> serve(local_socket accepted) {
    auto self = shared_from_this();
    // Closing the socket is how a time-out ends a pending read or write
    // (Boost 1.74 has no per-operation cancellation). The timer's handler
    // shares the socket: it may run after this coroutine has finished.
    auto socket = std::make_shared<local_socket>(std::move(accepted));
    asio::steady_timer deadline(socket->get_executor());
    const auto arm = [&](std::chrono::seconds timeout) {
      deadline.expires_after(timeout);
      deadline.async_wait([socket](const boost::system::error_code& error) {
        if (!error) {
          boost::system::error_code ignored;
          socket->close(ignored);
        }
      });
    };
    try {
      Response response;
      if (!peer_allowed(*socket)) {
        response = error_response("permission denied: only the user running parleyd may use its admin socket");
      } else {
        std::string buffer;
        arm(read_timeout);
        std::size_t length = 0;
        try {
          length = co_await asio::async_read_until(*socket, asio::dynamic_buffer(buffer, max_request_size), '\n',
                                                   asio::use_awaitable);
        } catch (const boost::system::system_error& e) {
          if (e.code() != asio::error::not_found) throw;
        }
        deadline.cancel();
        if (length == 0) {
          response = error_response("request too long (at most " + std::to_string(max_request_size) + " bytes)");
        } else {
          response = co_await execute(split_request(std::string_view(buffer).substr(0, length - 1)));
        }
      }
      arm(write_timeout);
      co_await asio::async_write(*socket, asio::buffer(encode_response(response)), asio::use_awaitable);
      deadline.cancel();
      boost::system::error_code ignored;
      socket->shutdown(local_socket::shutdown_both, ignored);
      socket->close(ignored);
    } catch (const boost::system::system_error& e) {
      // The client went away or was too slow: nothing left to answer.
      deadline.cancel();
      spdlog::debug("admin: connection ended: {}", e.what());
    }
  }

  Task<Response> execute(std::vector<std::string> fields) {
    if (fields.empty() || fields.front().empty()) co_return error_response("empty request");
    const auto& name = fields.front();
    const auto command = commands().find(name);
    if (command == commands().end()) {
      co_return error_response("unknown command '" + name + "' (commands: " + join(command_names()) + ")");
    }
    const auto args = std::vector<std::string>(fields.begin() + 1, fields.end());
    if (args.size() < command->second.min_args || args.size() > command->second.max_args) {
      co_return error_response(std::string("usage: ") + command->second.text);
    }
    for (const auto& arg : args) {
      if (!valid_field(arg)) co_return error_response("arguments may not contain tabs or line breaks");
    }
    try {
      auto lines = co_await run(name, args);
      co_return ok_response(std::move(lines));
    } catch (const CommandError& e) {
      spdlog::info("admin: {} refused: {}", name, e.what());
      co_return error_response(e.what());
    } catch (const storage::Error& e) {
      spdlog::error("admin: {} failed in storage: {}", name, e.what());
      co_return error_response(std::string("storage error: ") + e.what());
    } catch (const std::exception& e) {
      spdlog::error("admin: {} failed: {}", name, e.what());
      co_return error_response(e.what());
    }
  }

  Task<std::vector<std::string>> run(const std::string& name, const std::vector<std::string>& args) {
    if (name == "status") co_return status();
    if (name == "register") co_return co_await register_user(args[0], args[1], args[2]);
    if (name == "unregister") co_return co_await unregister_user(args[0], args[1]);
    if (name == "passwd") co_return co_await change_password(args[0], args[1], args[2]);
    if (name == "users") co_return co_await list_users(args[0]);
    if (name == "sessions") co_return list_sessions();
    if (name == "kick") co_return kick(args[0], args.size() > 1 ? args[1] : std::string());
    if (name == "s2s") co_return list_s2s();
    if (name == "components") co_return list_components();
    co_return reload_config();
  }

  std::vector<std::string> status() const {
    const auto uptime =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_at).count();
    return {
        "version: " + version,
        "uptime: " + std::to_string(uptime) + " s",
        "hosts: " + join(hosts),
        "sessions: " + std::to_string(router.sessions().count()),
        "storage: " + storage.backend_name(),
    };
  }

  std::string local_host(const std::string& text) const {
    const auto host = xmpp::nameprep(text);
    if (!host || std::find(hosts.begin(), hosts.end(), *host) == hosts.end()) {
      throw CommandError("unknown host '" + text + "' (this server serves: " + join(hosts) + ")");
    }
    return *host;
  }

  // The account's bare JID, with username and host normalised.
  xmpp::Jid account(const std::string& user, const std::string& host_text) const {
    const auto host = local_host(host_text);
    const auto username = xmpp::nodeprep(user);
    std::optional<xmpp::Jid> jid;
    if (username && !username->empty()) jid = xmpp::Jid::from_parts(*username, host);
    if (!jid) throw CommandError("invalid username '" + user + "'");
    return *jid;
  }

  static void check_password(const std::string& password) {
    if (password.empty()) throw CommandError("the password may not be empty");
    if (!sasl::saslprep(password)) throw CommandError("the password contains characters SASLprep (RFC 4013) prohibits");
  }

  Task<std::vector<std::string>> register_user(const std::string& user, const std::string& host,
                                               const std::string& password) {
    const auto jid = account(user, host);
    check_password(password);
    spdlog::info("admin: register {}", jid.bare_str());
    const bool created = co_await workers.run([&] {
      storage::Account record;
      record.username = jid.local();
      record.domain = jid.domain();
      record.sha1 = sasl::make_credentials(sasl::Hash::sha1, password);
      record.sha256 = sasl::make_credentials(sasl::Hash::sha256, password);
      record.created_at = unix_now();
      return storage.accounts().create(record);
    });
    if (!created) throw CommandError("user " + jid.bare_str() + " already exists");
    co_return std::vector<std::string>{"registered " + jid.bare_str()};
  }

  Task<std::vector<std::string>> unregister_user(const std::string& user, const std::string& host) {
    const auto jid = account(user, host);
    spdlog::info("admin: unregister {}", jid.bare_str());
    const bool removed = co_await workers.run([&] { return storage.accounts().remove(jid.local(), jid.domain()); });
    if (!removed) throw CommandError("no such user " + jid.bare_str());
    const auto resources = router.sessions().resources(jid);
    for (const auto& resource : resources) resource.session->close("not-authorized", "account removed");
    co_return std::vector<std::string>{"unregistered " + jid.bare_str() + " (" + std::to_string(resources.size()) +
                                       (resources.size() == 1 ? " session" : " sessions") + " closed)"};
  }

  Task<std::vector<std::string>> change_password(const std::string& user, const std::string& host,
                                                 const std::string& password) {
    const auto jid = account(user, host);
    check_password(password);
    spdlog::info("admin: passwd {}", jid.bare_str());
    const bool changed = co_await workers.run([&] {
      return storage.accounts().set_credentials(jid.local(), jid.domain(),
                                                sasl::make_credentials(sasl::Hash::sha1, password),
                                                sasl::make_credentials(sasl::Hash::sha256, password));
    });
    if (!changed) throw CommandError("no such user " + jid.bare_str());
    co_return std::vector<std::string>{"password changed for " + jid.bare_str()};
  }

  Task<std::vector<std::string>> list_users(const std::string& host_text) {
    const auto host = local_host(host_text);
    co_return co_await workers.run([&] { return storage.accounts().list(host); });
  }

  // JID, remote address, TLS version ("-" when none), bound since (UTC),
  // priority, available|unavailable.
  std::vector<std::string> list_sessions() const {
    auto resources = router.sessions().all();
    std::sort(resources.begin(), resources.end(),
              [](const auto& a, const auto& b) { return a.jid.str() < b.jid.str(); });
    std::vector<std::string> lines;
    lines.reserve(resources.size());
    for (const auto& resource : resources) {
      const auto tls = resource.session->tls_version();
      lines.push_back(resource.jid.str() + '\t' + resource.session->remote_address() + '\t' +
                      (tls.empty() ? "-" : tls) + '\t' + utc_time(resource.bound_at) + '\t' +
                      std::to_string(resource.priority) + '\t' + (resource.available ? "available" : "unavailable"));
    }
    return lines;
  }

  std::vector<std::string> kick(const std::string& jid_text, const std::string& reason) const {
    const auto jid = xmpp::Jid::parse(jid_text);
    if (!jid) throw CommandError("invalid JID '" + jid_text + "'");
    if (jid->local().empty()) throw CommandError("kick needs a user's JID (user@host or user@host/resource)");
    std::vector<router::Resource> targets;
    if (jid->is_bare()) {
      targets = router.sessions().resources(*jid);
    } else if (auto resource = router.sessions().find(*jid)) {
      targets.push_back(std::move(*resource));
    }
    if (targets.empty()) throw CommandError("no session for " + jid->str());
    std::vector<std::string> lines;
    for (const auto& target : targets) {
      spdlog::info("admin: kick {}", target.jid.str());
      target.session->close("policy-violation", reason.empty() ? "kicked by administrator" : reason);
      lines.push_back("kicked " + target.jid.str());
    }
    return lines;
  }

  // direction, local domain, peer domain, authentication, TLS version,
  // cipher, idle seconds, stream id.
  std::vector<std::string> list_s2s() const {
    if (!s2s_lister) throw CommandError("federation is not enabled on this server");
    return s2s_lister();
  }

  // domain, connected|disconnected, remote address, TLS version, stream id.
  std::vector<std::string> list_components() const {
    if (!component_lister) throw CommandError("no external component is configured on this server");
    return component_lister();
  }

  std::vector<std::string> reload_config() const {
    if (!reload) throw CommandError("this server cannot reload");
    spdlog::info("admin: reload");
    return {reload()};
  }

  asio::local::stream_protocol::acceptor acceptor;
  std::string socket_path;
  router::Router& router;
  storage::Storage& storage;
  router::WorkerPool& workers;
  ReloadCallback reload;
  Lister s2s_lister;
  Lister component_lister;
  std::vector<std::string> hosts;
  std::string version;
  std::chrono::steady_clock::time_point started_at;
  std::atomic<bool> stopped{false};
  dev_t socket_device = 0;
  ino_t socket_inode = 0;
};

AdminServer::AdminServer(asio::io_context& io, std::string socket_path, router::Router& router,
                         storage::Storage& storage, router::WorkerPool& workers, ReloadCallback reload,
                         std::vector<std::string> hosts, std::string version,
                         std::chrono::steady_clock::time_point started_at)
    : state_(std::make_shared<State>(io, std::move(socket_path), router, storage, workers, std::move(reload),
                                     std::move(hosts), std::move(version), started_at)) {
  state_->listen();
}

void AdminServer::set_s2s_lister(Lister lister) { state_->s2s_lister = std::move(lister); }

void AdminServer::set_component_lister(Lister lister) { state_->component_lister = std::move(lister); }

void AdminServer::start() {
  asio::co_spawn(state_->acceptor.get_executor(), state_->accept_loop(), asio::detached);
  spdlog::info("admin: listening on {}", state_->socket_path);
}

AdminServer::~AdminServer() { state_->stop(); }

void AdminServer::stop() { state_->stop(); }

const std::string& AdminServer::socket_path() const { return state_->socket_path; }

}  // namespace parley::admin
