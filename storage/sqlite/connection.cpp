#include "storage/sqlite/connection.hpp"

#include <sqlite3.h>

#include <filesystem>
#include <system_error>

#include "storage/storage.hpp"

namespace parley::storage::sqlite {

namespace {

// Long enough to ride out a checkpoint or another process's short write,
// short enough that a wedged database surfaces as an error the caller can
// answer with internal-server-error.
constexpr int busy_timeout_ms = 5000;

std::string database_label(const std::string& path) { return "sqlite database '" + path + "'"; }

void check_parent_directory(const std::string& path) {
  const std::filesystem::path file(path);
  std::error_code error;
  if (std::filesystem::is_directory(file, error)) {
    throw Error(database_label(path) + ": is a directory, expected a file path");
  }
  const auto parent = file.parent_path();
  if (parent.empty()) return;
  if (!std::filesystem::exists(parent, error)) {
    throw Error(database_label(path) + ": directory '" + parent.string() + "' does not exist");
  }
  if (!std::filesystem::is_directory(parent, error)) {
    throw Error(database_label(path) + ": '" + parent.string() + "' is not a directory");
  }
}

}  // namespace

Statement::~Statement() { sqlite3_finalize(handle_); }

Query::Query(Connection& connection, std::string_view sql) : statement_(connection.cached(sql)) {}

Query::~Query() {
  sqlite3_reset(statement_.handle_);
  sqlite3_clear_bindings(statement_.handle_);
}

void Query::check_bind(int code) {
  if (code != SQLITE_OK) statement_.connection_.fail("binding a parameter");
  ++next_parameter_;
}

Query& Query::bind(std::int64_t value) {
  check_bind(sqlite3_bind_int64(statement_.handle_, next_parameter_, value));
  return *this;
}

Query& Query::bind(std::string_view text) {
  // SQLITE_STATIC: the caller's string outlives the query, which resets
  // (and so releases) the binding before it is destroyed.
  check_bind(sqlite3_bind_text64(statement_.handle_, next_parameter_, text.data(), text.size(),
                                 SQLITE_STATIC, SQLITE_UTF8));
  return *this;
}

Query& Query::bind_blob(std::string_view bytes) {
  check_bind(sqlite3_bind_blob64(statement_.handle_, next_parameter_, bytes.data(), bytes.size(),
                                 SQLITE_STATIC));
  return *this;
}

bool Query::step() {
  const int code = sqlite3_step(statement_.handle_);
  if (code == SQLITE_ROW) return true;
  if (code == SQLITE_DONE) return false;
  statement_.connection_.fail("executing a statement");
}

std::uint64_t Query::run() {
  while (step()) {
  }
  return static_cast<std::uint64_t>(sqlite3_changes64(sqlite3_db_handle(statement_.handle_)));
}

std::int64_t Query::integer(int column) const {
  return sqlite3_column_int64(statement_.handle_, column);
}

std::string Query::text(int column) const {
  const auto* data = sqlite3_column_text(statement_.handle_, column);
  const auto size = static_cast<std::size_t>(sqlite3_column_bytes(statement_.handle_, column));
  if (data == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(data), size);
}

std::string Query::blob(int column) const {
  const auto* data = sqlite3_column_blob(statement_.handle_, column);
  const auto size = static_cast<std::size_t>(sqlite3_column_bytes(statement_.handle_, column));
  if (data == nullptr) return {};
  return std::string(static_cast<const char*>(data), size);
}

bool Query::is_null(int column) const {
  return sqlite3_column_type(statement_.handle_, column) == SQLITE_NULL;
}

Connection::Connection(const std::string& path) : path_(path) {
  check_parent_directory(path);
  // NOMUTEX: the backend holds its own mutex around every use.
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  const int code = sqlite3_open_v2(path.c_str(), &handle_, flags, nullptr);
  if (code != SQLITE_OK) {
    const std::string reason = handle_ != nullptr ? sqlite3_errmsg(handle_) : sqlite3_errstr(code);
    sqlite3_close(handle_);
    handle_ = nullptr;
    throw Error(database_label(path) + ": cannot open: " + reason);
  }
  try {
    sqlite3_extended_result_codes(handle_, 1);
    sqlite3_busy_timeout(handle_, busy_timeout_ms);
    // The first statement reads the file header: a file that is not a
    // database fails here with SQLite's "file is not a database".
    std::string journal_mode;
    {
      Query query(*this, "PRAGMA journal_mode=WAL");
      if (query.step()) journal_mode = query.text(0);
    }
    if (journal_mode != "wal") {
      fail_with("cannot enable WAL journal mode", "journal mode is '" + journal_mode + "'");
    }
    // In WAL mode NORMAL loses no committed data on an application crash and
    // keeps the database consistent on power loss; flush() checkpoints.
    execute("PRAGMA synchronous=NORMAL");
    execute("PRAGMA foreign_keys=ON");
    // 16 MiB of page cache (SQLite's default is 2 MiB): rosters and account
    // lookups of a busy server stay in memory.
    execute("PRAGMA cache_size=-16384");
  } catch (...) {
    statements_.clear();
    sqlite3_close(handle_);
    throw;
  }
}

Connection::~Connection() {
  statements_.clear();
  sqlite3_close(handle_);
}

Statement& Connection::cached(std::string_view sql) {
  if (const auto found = statements_.find(sql); found != statements_.end()) return *found->second;
  sqlite3_stmt* handle = nullptr;
  if (sqlite3_prepare_v3(handle_, sql.data(), static_cast<int>(sql.size()),
                         SQLITE_PREPARE_PERSISTENT, &handle, nullptr) != SQLITE_OK) {
    fail("preparing '" + std::string(sql) + "'");
  }
  auto statement = std::make_unique<Statement>(*this, handle);
  auto& stored = *statement;
  statements_.emplace(std::string(sql), std::move(statement));
  return stored;
}

void Connection::execute(const std::string& sql) {
  if (auto reason = try_execute(sql)) fail_with("executing '" + sql + "'", *reason);
}

std::optional<std::string> Connection::try_execute(const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(handle_, sql.c_str(), nullptr, nullptr, &message) == SQLITE_OK)
    return std::nullopt;
  std::string reason = message != nullptr ? message : sqlite3_errmsg(handle_);
  sqlite3_free(message);
  return reason;
}

bool Connection::in_transaction() const { return sqlite3_get_autocommit(handle_) == 0; }

void Connection::fail(std::string_view context) const {
  fail_with(context, sqlite3_errmsg(handle_));
}

void Connection::fail_with(std::string_view context, std::string_view reason) const {
  throw Error(database_label(path_) + ": " + std::string(context) + ": " + std::string(reason));
}

Transaction::Transaction(Connection& connection, Kind kind) : connection_(connection) {
  Query(connection_, kind == Kind::write ? "BEGIN IMMEDIATE" : "BEGIN").run();
}

Transaction::~Transaction() {
  // SQLite may already have rolled back by itself after some errors; a
  // second ROLLBACK would then fail, so ask first.
  if (open_ && connection_.in_transaction()) {
    try {
      Query(connection_, "ROLLBACK").run();
    } catch (const Error&) {
      // Nothing more can be done from a destructor; the connection's next
      // BEGIN reports the problem if the transaction is still stuck.
    }
  }
}

void Transaction::commit() {
  Query(connection_, "COMMIT").run();
  open_ = false;
}

}  // namespace parley::storage::sqlite
