// The embedded SQLite backend: one connection in WAL mode, shared by the
// three stores and serialised by a mutex; migrations from sql/schema.hpp are
// applied when the database is opened.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "storage/sql/schema.hpp"
#include "storage/storage.hpp"

namespace parley::storage::sqlite {

// Opens or creates the database at path (its directory must exist) and
// brings its schema up to date. Throws storage::Error.
std::unique_ptr<Storage> open(const std::string& path);

// The same with an explicit migration list, so tests can exercise upgrades.
std::unique_ptr<Storage> open(const std::string& path, std::span<const sql::Migration> migrations);

}  // namespace parley::storage::sqlite
