// The in-memory backend: everything in maps behind one mutex, gone when the
// object is destroyed. For tests and for trying the server out; it follows
// the same rules as the SQL backends (the conformance suite checks that).
#pragma once

#include <memory>

#include "storage/storage.hpp"

namespace parley::storage::memory {

std::unique_ptr<Storage> open();

}  // namespace parley::storage::memory
