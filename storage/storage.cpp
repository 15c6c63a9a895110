#include "storage/storage.hpp"

#include "storage/memory/memory_storage.hpp"
#include "storage/sqlite/sqlite_storage.hpp"

namespace parley::storage {

MucStore& Storage::muc() { throw Error("the " + backend_name() + " storage backend has no MUC room store"); }

std::unique_ptr<Storage> open(const std::string& uri) {
  const auto colon = uri.find(':');
  const auto scheme = uri.substr(0, colon);
  const auto rest = colon == std::string::npos ? std::string() : uri.substr(colon + 1);
  if (colon != std::string::npos && scheme == "memory") {
    if (!rest.empty())
      throw Error("storage 'memory:' takes nothing after the colon, got '" + uri + "'");
    return memory::open();
  }
  if (colon != std::string::npos && scheme == "sqlite") {
    if (rest.empty()) throw Error("storage 'sqlite:' needs a database path (sqlite:PATH)");
    return sqlite::open(rest);
  }
  throw Error("unknown storage backend '" + scheme + "' (expected memory: or sqlite:PATH)");
}

}  // namespace parley::storage
