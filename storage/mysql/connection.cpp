#include "storage/mysql/connection.hpp"

#include <cppconn/connection.h>
#include <cppconn/exception.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>
#include <mysql_driver.h>

#include <algorithm>
#include <charconv>
#include <random>
#include <thread>

#include "storage/storage.hpp"

namespace parley::storage::mysql {

namespace {

// How long a caller waits for a pooled connection when all are in use
// before giving up with an error.
constexpr auto pool_wait_limit = std::chrono::seconds(10);
// InnoDB resolves a deadlock by rolling back one transaction; it is re-run
// this many times at most.
constexpr int max_conflict_attempts = 20;

constexpr int lock_deadlock = 1213;
constexpr int lock_wait_timeout = 1205;

// Errors after which the connection cannot be used again: the client
// library's own (CR_*, 2000-2999: server gone, lost, cannot connect ...),
// Connector/C++'s own (0: closed connection), and the server's goodbyes.
bool connection_lost(int code) {
  constexpr int server_goodbyes[] = {1053 /* shutdown */, 1152 /* aborted */,
                                     1158, 1159, 1160, 1161 /* network errors */,
                                     1927 /* connection killed */, 4031 /* idle timeout */};
  return code == 0 || (code >= 2000 && code < 3000) ||
         std::ranges::find(server_goodbyes, code) != std::end(server_goodbyes);
}

bool transaction_conflict(int code) { return code == lock_deadlock || code == lock_wait_timeout; }

std::string describe_failure(const ::sql::SQLException& error) {
  return std::string(error.what()) + " (MySQL error " + std::to_string(error.getErrorCode()) + ")";
}

sql::mysql::MySQL_Driver& driver() {
  // Connector/C++ creates its driver singleton unsafely on first use: do it
  // once, under the static initialisation guard.
  static ::sql::mysql::MySQL_Driver* const instance = ::sql::mysql::get_mysql_driver_instance();
  return *instance;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view text, std::string_view what) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    const int high = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
    const int low = high >= 0 ? hex_value(text[i + 2]) : -1;
    if (low < 0) {
      throw Error("mysql storage URI: the " + std::string(what) +
                  " has a '%' not followed by two hex digits (percent-encode '%' as %25)");
    }
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

unsigned parse_number(std::string_view text, unsigned low, unsigned high, std::string_view what) {
  unsigned value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < low || value > high) {
    throw Error("mysql storage URI: " + std::string(what) + " must be a number from " +
                std::to_string(low) + " to " + std::to_string(high) + ", got '" +
                std::string(text) + "'");
  }
  return value;
}

}  // namespace

// ---- URI -------------------------------------------------------------------

std::string Endpoint::describe() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return user + "@" + (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" +
         database;
}

Endpoint parse_uri(std::string_view uri) {
  constexpr std::string_view scheme = "mysql://";
  const std::string_view form = " (expected mysql://USER:PASSWORD@HOST:PORT/DATABASE)";
  if (!uri.starts_with(scheme)) throw Error("mysql storage URI must start with mysql://");
  auto rest = uri.substr(scheme.size());
  Endpoint endpoint;

  const auto query_start = rest.find('?');
  if (query_start != std::string_view::npos) {
    auto query = rest.substr(query_start + 1);
    rest = rest.substr(0, query_start);
    while (!query.empty()) {
      const auto amp = query.find('&');
      const auto pair = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      const auto equals = pair.find('=');
      const auto key = pair.substr(0, equals);
      const auto value = equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1);
      if (key == "pool") {
        endpoint.pool_size = parse_number(value, 1, 256, "pool");
      } else {
        throw Error("mysql storage URI: unknown option '" + std::string(key) +
                    "' (known: pool)");
      }
    }
  }

  // The password may contain '@' only percent-encoded, so the last '@' ends it.
  const auto at = rest.rfind('@');
  if (at == std::string_view::npos) throw Error("mysql storage URI has no user" + std::string(form));
  const auto credentials = rest.substr(0, at);
  auto location = rest.substr(at + 1);
  const auto colon = credentials.find(':');
  endpoint.user = percent_decode(credentials.substr(0, colon), "user");
  if (colon != std::string_view::npos)
    endpoint.password = percent_decode(credentials.substr(colon + 1), "password");
  if (endpoint.user.empty()) throw Error("mysql storage URI has an empty user" + std::string(form));

  const auto slash = location.find('/');
  if (slash == std::string_view::npos)
    throw Error("mysql storage URI has no database" + std::string(form));
  endpoint.database = percent_decode(location.substr(slash + 1), "database");
  if (endpoint.database.empty())
    throw Error("mysql storage URI has an empty database" + std::string(form));
  auto authority = location.substr(0, slash);

  std::string_view port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos)
      throw Error("mysql storage URI has an unterminated [IPv6] host");
    endpoint.host = std::string(authority.substr(1, close - 1));
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) throw Error("mysql storage URI: junk after the [IPv6] host");
      port = after.substr(1);
    }
  } else {
    const auto port_colon = authority.rfind(':');
    endpoint.host = std::string(authority.substr(0, port_colon));
    if (port_colon != std::string_view::npos) port = authority.substr(port_colon + 1);
  }
  if (endpoint.host.empty()) throw Error("mysql storage URI has an empty host" + std::string(form));
  if (!port.empty()) endpoint.port = parse_number(port, 1, 65535, "the port");
  return endpoint;
}

// ---- Query -------------------------------------------------------------------

Query::Query(Connection& connection, std::string_view sql)
    : statement_(connection.cached(sql)) {
  statement_.clearParameters();
}

Query::~Query() = default;

Query& Query::bind(std::int64_t value) {
  statement_.setInt64(next_parameter_++, value);
  return *this;
}

Query& Query::bind(std::string_view text) {
  statement_.setString(next_parameter_++, ::sql::SQLString(text.data(), text.size()));
  return *this;
}

Query& Query::bind_blob(std::string_view bytes) {
  blobs_.push_back(std::make_unique<std::istringstream>(std::string(bytes)));
  statement_.setBlob(next_parameter_++, blobs_.back().get());
  return *this;
}

bool Query::step() {
  if (!rows_) rows_.reset(statement_.executeQuery());
  return rows_->next();
}

std::uint64_t Query::run() { return static_cast<std::uint64_t>(statement_.executeUpdate()); }

std::int64_t Query::integer(int column) const {
  return rows_->getInt64(static_cast<std::uint32_t>(column + 1));
}

std::string Query::text(int column) const {
  // Binary-safe: the string is built from the column's length, not a NUL.
  return rows_->getString(static_cast<std::uint32_t>(column + 1)).asStdString();
}

bool Query::is_null(int column) const {
  return rows_->isNull(static_cast<std::uint32_t>(column + 1));
}

// ---- Connection ----------------------------------------------------------------

Connection::Connection(const Endpoint& endpoint) {
  ::sql::ConnectOptionsMap options;
  const bool ipv6 = endpoint.host.find(':') != std::string::npos;
  options["hostName"] = ::sql::SQLString(
      "tcp://" + (ipv6 ? "[" + endpoint.host + "]" : endpoint.host) + ":" + std::to_string(endpoint.port));
  options["userName"] = ::sql::SQLString(endpoint.user);
  options["password"] = ::sql::SQLString(endpoint.password);
  options["schema"] = ::sql::SQLString(endpoint.database);
  options["OPT_CHARSET_NAME"] = ::sql::SQLString("utf8mb4");
  options["OPT_CONNECT_TIMEOUT"] = static_cast<int>(endpoint.connect_timeout.count());
  options["OPT_READ_TIMEOUT"] = static_cast<int>(endpoint.io_timeout.count());
  options["OPT_WRITE_TIMEOUT"] = static_cast<int>(endpoint.io_timeout.count());
  // The pool reconnects itself: the client library's silent reconnect would
  // lose an open transaction without telling anyone.
  options["OPT_RECONNECT"] = false;
  handle_.reset(driver().connect(options));
  // Bytewise keys (VARBINARY) need no collation, but a text column compared
  // in a query must not depend on the server's defaults; a lock held by a
  // stuck transaction must not outlast our read timeout.
  execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION',"
          " innodb_lock_wait_timeout = " +
          std::to_string(std::max<long>(1, static_cast<long>(endpoint.io_timeout.count()) - 1)));
}

Connection::~Connection() = default;

sql::PreparedStatement& Connection::cached(std::string_view sql) {
  const auto found = statements_.find(sql);
  if (found != statements_.end()) return *found->second;
  std::unique_ptr<::sql::PreparedStatement> statement(
      handle_->prepareStatement(::sql::SQLString(sql.data(), sql.size())));
  auto& stored = statements_[std::string(sql)];
  stored = std::move(statement);
  return *stored;
}

void Connection::execute(const std::string& sql) {
  std::unique_ptr<::sql::Statement> statement(handle_->createStatement());
  statement->execute(sql);
}

// ---- Pool ----------------------------------------------------------------------

class Pool::Lease {
 public:
  Lease(Pool& pool, std::unique_ptr<Connection> connection, bool reused)
      : pool_(pool), connection_(std::move(connection)), reused_(reused) {}
  ~Lease() {
    if (connection_) pool_.release(std::move(connection_));
  }
  Lease(Lease&& other) noexcept
      : pool_(other.pool_), connection_(std::move(other.connection_)), reused_(other.reused_) {}
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  Lease& operator=(Lease&&) = delete;

  Connection& operator*() { return *connection_; }
  bool reused() const { return reused_; }
  // The connection is dead: close it instead of returning it; the idle ones
  // probably went with it (a server restart), so they go too.
  void discard() {
    connection_.reset();
    pool_.forget(true);
  }

 private:
  Pool& pool_;
  std::unique_ptr<Connection> connection_;
  bool reused_;
};

Pool::Pool(Endpoint endpoint) : endpoint_(std::move(endpoint)) {}

Pool::~Pool() = default;

void Pool::fail(std::string_view context, std::string_view reason) const {
  throw Error("mysql database '" + endpoint_.describe() + "': " + std::string(context) + ": " +
              std::string(reason));
}

Pool::Lease Pool::acquire() {
  std::unique_lock lock(mutex_);
  const bool ready = available_.wait_for(lock, pool_wait_limit, [&] {
    return !idle_.empty() || open_ < endpoint_.pool_size;
  });
  if (!ready) {
    fail("no connection", "all " + std::to_string(endpoint_.pool_size) + " connections stayed busy for " +
                              std::to_string(pool_wait_limit.count()) + " s");
  }
  if (!idle_.empty()) {
    auto connection = std::move(idle_.back());
    idle_.pop_back();
    return Lease(*this, std::move(connection), true);
  }
  ++open_;
  lock.unlock();
  try {
    return Lease(*this, std::make_unique<Connection>(endpoint_), false);
  } catch (const ::sql::SQLException& error) {
    forget(false);
    fail("cannot connect", describe_failure(error));
  } catch (...) {
    forget(false);
    throw;
  }
}

void Pool::release(std::unique_ptr<Connection> connection) {
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(connection));
  }
  available_.notify_one();
}

void Pool::forget(bool drop_idle) {
  std::vector<std::unique_ptr<Connection>> dropped;
  {
    std::lock_guard lock(mutex_);
    --open_;
    if (drop_idle) {
      open_ -= idle_.size();
      dropped.swap(idle_);
    }
  }
  available_.notify_all();
  // Closed outside the lock: closing a connection to a dead server may take
  // until the write timeout.
  dropped.clear();
}

void Pool::run_work(Mode mode, const std::function<void(Connection&)>& work) {
  const bool transactional = mode == Mode::transaction;
  for (int attempt = 1;; ++attempt) {
    auto lease = acquire();
    bool committing = false;
    try {
      if (transactional) (*lease).execute("START TRANSACTION");
      work(*lease);
      committing = true;
      if (transactional) (*lease).execute("COMMIT");
      return;
    } catch (const ::sql::SQLException& error) {
      const int code = error.getErrorCode();
      const bool lost = connection_lost(code);
      if (lost) {
        lease.discard();
      } else if (transactional) {
        try {
          (*lease).execute("ROLLBACK");
        } catch (const ::sql::SQLException&) {
          lease.discard();
        }
      }
      // A dead pooled connection may just be a restarted server, and an
      // uncommitted transaction was rolled back with it: safe to re-run. A
      // commit whose answer was lost may or may not have happened: re-running
      // it could store a message twice, so the caller gets the error.
      const bool retry_lost = lost && lease.reused() && !committing && attempt == 1;
      const bool retry_conflict = transaction_conflict(code) && attempt < max_conflict_attempts;
      if (retry_conflict) {
        thread_local std::minstd_rand jitter{std::random_device{}()};
        std::this_thread::sleep_for(std::chrono::microseconds(jitter() % (500u * static_cast<unsigned>(attempt))));
      }
      if (retry_lost || retry_conflict) continue;
      fail(committing ? "commit failed" : "query failed", describe_failure(error));
    } catch (...) {
      if (transactional) {
        try {
          (*lease).execute("ROLLBACK");
        } catch (const ::sql::SQLException&) {
          lease.discard();
        }
      }
      throw;
    }
  }
}

}  // namespace parley::storage::mysql
