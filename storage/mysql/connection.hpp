// A pool of MySQL/MariaDB connections (MySQL Connector/C++ 1.1), each with
// its own cache of prepared statements, and the rule for running one unit of
// work on it: inside a transaction, re-run when InnoDB resolved a deadlock by
// rolling it back, and re-run once on a fresh connection when a pooled
// connection turns out to be dead before anything was committed (the server
// restarted). Every other failure becomes a storage::Error; nothing waits
// longer than the connect/read/write timeouts and the pool's wait limit.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace sql {
class Connection;
class PreparedStatement;
class ResultSet;
class SQLException;
}  // namespace sql

namespace parley::storage::mysql {

// Where the database is and how to reach it: what a mysql:// URI says.
struct Endpoint {
  std::string user;
  std::string password;
  std::string host;
  unsigned port = 3306;
  std::string database;
  std::size_t pool_size = 4;
  std::chrono::seconds connect_timeout{3};
  std::chrono::seconds io_timeout{5};  // read and write
  // "mysql://user@host:port/database", without the password, for messages.
  std::string describe() const;
};

// Parses "mysql://user:password@host:port/database?pool=N": user, password
// and database percent-decoded, host a name, an IPv4 address or [IPv6],
// port optional (3306). Throws storage::Error naming what is wrong.
Endpoint parse_uri(std::string_view uri);

class Connection;

// One execution of a cached prepared statement. Parameters bind in the order
// of the calls; columns are read by index (from 0) while step() has a row.
class Query {
 public:
  Query(Connection& connection, std::string_view sql);
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& bind(std::int64_t value);
  Query& bind(std::string_view text);
  Query& bind_blob(std::string_view bytes);

  // Executes on the first call; true while a row is available.
  bool step();
  // Runs a statement that returns no rows; the number of rows it changed.
  std::uint64_t run();

  std::int64_t integer(int column) const;
  // Binary-safe, so also the reader of BLOB/VARBINARY columns.
  std::string text(int column) const;
  std::string blob(int column) const { return text(column); }
  bool is_null(int column) const;

 private:
  ::sql::PreparedStatement& statement_;
  unsigned next_parameter_ = 1;
  // Connector/C++ reads blob parameters from streams at execution time.
  std::vector<std::unique_ptr<std::istringstream>> blobs_;
  std::unique_ptr<::sql::ResultSet> rows_;
};

class Connection {
 public:
  explicit Connection(const Endpoint& endpoint);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The prepared statement for this SQL text, prepared on first use.
  ::sql::PreparedStatement& cached(std::string_view sql);
  // Runs SQL text once, without preparing (transaction control, DDL).
  void execute(const std::string& sql);

 private:
  struct TextHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
      return std::hash<std::string_view>{}(text);
    }
  };

  std::unique_ptr<::sql::Connection> handle_;
  std::unordered_map<std::string, std::unique_ptr<::sql::PreparedStatement>, TextHash,
                     std::equal_to<>>
      statements_;
};

class Pool {
 public:
  enum class Mode {
    single_statement,  // autocommit: one statement needs no transaction
    transaction,       // START TRANSACTION ... COMMIT
  };

  explicit Pool(Endpoint endpoint);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Runs work(connection) and returns what it returns. The work may run more
  // than once (see the top of this file), so it must start from scratch each
  // time. Throws storage::Error.
  template <class F>
  auto run(Mode mode, F&& work) -> std::invoke_result_t<F&, Connection&> {
    using Result = std::invoke_result_t<F&, Connection&>;
    if constexpr (std::is_void_v<Result>) {
      run_work(mode, [&](Connection& connection) { work(connection); });
    } else {
      std::optional<Result> result;
      run_work(mode, [&](Connection& connection) { result = work(connection); });
      return std::move(*result);
    }
  }

  const Endpoint& endpoint() const { return endpoint_; }

  // Throws storage::Error("mysql database 'user@host:port/db': CONTEXT: REASON").
  [[noreturn]] void fail(std::string_view context, std::string_view reason) const;

 private:
  class Lease;
  Lease acquire();
  void release(std::unique_ptr<Connection> connection);
  void forget(bool drop_idle);
  void run_work(Mode mode, const std::function<void(Connection&)>& work);

  Endpoint endpoint_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_ = 0;  // idle and leased
};

}  // namespace parley::storage::mysql
