#include "storage/storage.hpp"

#include "storage/memory/memory_storage.hpp"
#include "storage/mysql/connection.hpp"
#include "storage/mysql/mysql_storage.hpp"
#include "storage/sqlite/sqlite_storage.hpp"

namespace parley::storage {

MucStore& Storage::muc() { throw Error("the " + backend_name() + " storage backend has no MUC room store"); }
ArchiveStore& Storage::archive() {
  throw Error("the " + backend_name() + " storage backend has no message archive store");
}

std::vector<std::string> AccountStore::domains() {
  throw Error("this storage backend cannot list its domains");
}

std::vector<std::string> RosterStore::owners() {
  throw Error("this storage backend cannot list its roster owners");
}

void RosterStore::import_roster(const std::string&, std::int64_t, const std::vector<RosterChange>&) {
  throw Error("this storage backend cannot import a roster");
}

std::vector<std::string> OfflineStore::owners() {
  throw Error("this storage backend cannot list the owners of offline messages");
}

std::vector<std::string> OfflineStore::peek_all(const std::string&) {
  throw Error("this storage backend cannot read offline messages without removing them");
}

namespace {

enum class Backend { memory, sqlite, mysql };

struct Parsed {
  Backend backend;
  std::string rest;  // what follows "scheme:"
};

Parsed parse(const std::string& uri) {
  const auto colon = uri.find(':');
  const auto scheme = uri.substr(0, colon);
  const auto rest = colon == std::string::npos ? std::string() : uri.substr(colon + 1);
  if (colon != std::string::npos && scheme == "memory") {
    if (!rest.empty())
      throw Error("storage 'memory:' takes nothing after the colon, got '" + uri + "'");
    return {Backend::memory, rest};
  }
  if (colon != std::string::npos && scheme == "sqlite") {
    if (rest.empty()) throw Error("storage 'sqlite:' needs a database path (sqlite:PATH)");
    return {Backend::sqlite, rest};
  }
  if (colon != std::string::npos && scheme == "mysql") {
    mysql::parse_uri(uri);
    return {Backend::mysql, rest};
  }
  throw Error("unknown storage backend '" + scheme +
              "' (expected memory:, sqlite:PATH or mysql://USER:PASSWORD@HOST:PORT/DATABASE)");
}

}  // namespace

std::vector<std::string> ArchiveStore::owners() {
  throw Error("this storage backend cannot list the owners of message archives");
}

std::vector<std::string> MucStore::services() {
  throw Error("this storage backend cannot list its MUC services");
}

std::unique_ptr<Storage> open(const std::string& uri) {
  const auto parsed = parse(uri);
  switch (parsed.backend) {
    case Backend::memory:
      return memory::open();
    case Backend::sqlite:
      return sqlite::open(parsed.rest);
    case Backend::mysql:
      return mysql::open(uri);
  }
  throw Error("unknown storage backend in '" + uri + "'");
}

void check_uri(const std::string& uri) { parse(uri); }

std::string printable_uri(const std::string& uri) {
  if (!uri.starts_with("mysql:")) return uri;
  try {
    return "mysql://" + mysql::parse_uri(uri).describe();
  } catch (const Error&) {
    return "mysql://(malformed URI)";
  }
}

}  // namespace parley::storage
