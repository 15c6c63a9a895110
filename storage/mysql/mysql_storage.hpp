// The MySQL/MariaDB backend: a pool of connections shared by the stores,
// every multi-row change in one transaction, the schema of sql/schema.hpp in
// its MySQL dialect, applied when the backend is opened.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "storage/sql/schema.hpp"
#include "storage/storage.hpp"

namespace parley::storage::mysql {

// Connects to the database of a "mysql://USER:PASSWORD@HOST:PORT/DATABASE[?pool=N]"
// URI (see parse_uri) and brings its schema up to date. The database must
// exist; the user needs the rights to create tables in it. Throws storage::Error.
std::unique_ptr<Storage> open(const std::string& uri);

// The same with an explicit migration list, so tests can exercise upgrades.
std::unique_ptr<Storage> open(const std::string& uri, std::span<const sql::Migration> migrations);

}  // namespace parley::storage::mysql
