// A thin RAII layer over one SQLite connection: a per-connection cache of
// prepared statements, queries that reset their statement when done, and
// transactions that roll back unless committed. Every SQLite failure becomes
// a storage::Error carrying SQLite's own message. Not thread-safe by itself:
// the backend serialises access with its mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

struct sqlite3;
struct sqlite3_stmt;

namespace parley::storage::sqlite {

class Connection;

class Statement {
 public:
  Statement(Connection& connection, sqlite3_stmt* handle)
      : connection_(connection), handle_(handle) {}
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

 private:
  friend class Query;
  Connection& connection_;
  sqlite3_stmt* handle_;
};

// One execution of a cached statement. Parameters bind in order of the
// calls; columns are read by index while step() has a row.
class Query {
 public:
  // Runs the connection's cached statement for this SQL text.
  Query(Connection& connection, std::string_view sql);
  ~Query();
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  Query& bind(std::int64_t value);
  Query& bind(std::string_view text);
  Query& bind_blob(std::string_view bytes);

  // True while a row is available.
  bool step();
  // Runs a statement that returns no rows; the number of rows it changed.
  std::uint64_t run();

  std::int64_t integer(int column) const;
  std::string text(int column) const;
  std::string blob(int column) const;
  bool is_null(int column) const;

 private:
  void check_bind(int code);
  Statement& statement_;
  int next_parameter_ = 1;
};

class Connection {
 public:
  // Opens (creating if needed) the database file and sets the pragmas: WAL
  // journal, synchronous=NORMAL, foreign keys, a busy timeout.
  explicit Connection(const std::string& path);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The prepared statement for this SQL text, prepared on first use.
  Statement& cached(std::string_view sql);
  // Runs SQL text once, without caching (schema changes, pragmas).
  void execute(const std::string& sql);
  // The same, returning SQLite's message on failure instead of throwing.
  std::optional<std::string> try_execute(const std::string& sql);

  bool in_transaction() const;

  // Throws storage::Error("sqlite database 'PATH': CONTEXT: <sqlite message>").
  [[noreturn]] void fail(std::string_view context) const;
  [[noreturn]] void fail_with(std::string_view context, std::string_view reason) const;

 private:
  struct TextHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
      return std::hash<std::string_view>{}(text);
    }
  };

  std::string path_;
  sqlite3* handle_ = nullptr;
  std::unordered_map<std::string, std::unique_ptr<Statement>, TextHash, std::equal_to<>>
      statements_;
};

// BEGIN IMMEDIATE for writes (takes the write lock up front, so a second
// process waits on the busy timeout instead of failing at the first write);
// plain BEGIN for reads that need one consistent snapshot.
class Transaction {
 public:
  enum class Kind { read, write };
  Transaction(Connection& connection, Kind kind);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit();

 private:
  Connection& connection_;
  bool open_ = true;
};

}  // namespace parley::storage::sqlite
