// Copying everything one backend stores into another (parleyctl migrate):
// accounts with their stored SCRAM keys, rosters with their version history,
// pending subscription requests, offline messages, message archives with
// their preferences, MUC rooms with their affiliations.
//
// The unit of comparison is one record: an account, one owner's roster
// (version, items, pending requests), one owner's offline queue, one
// owner's archive (messages and preferences), one room (configuration and
// affiliations). A record missing from the target is
// copied; one already there and equal is left alone, so copying twice
// changes nothing the second time; one there and different is a conflict.
// Without `force`, any conflict stops the copy before anything is written;
// with it, the source's record replaces the target's (a conflicting account
// is removed from the target with everything stored for it, then copied).
// Records only the target has are never touched.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/storage.hpp"

namespace parley::storage {

struct CopyCounts {
  std::size_t accounts = 0;
  std::size_t rosters = 0;        // owners with a roster or pending requests
  std::size_t roster_items = 0;   // current items, removed ones not counted
  std::size_t pending = 0;        // pending subscription requests
  std::size_t offline = 0;        // offline messages
  std::size_t rooms = 0;          // MUC rooms
  std::size_t affiliations = 0;   // MUC affiliations
  std::size_t archives = 0;       // owners with a message archive or archive preferences
  std::size_t archived = 0;       // archived messages
  bool operator==(const CopyCounts&) const = default;
};

struct CopyReport {
  CopyCounts source;     // what the source holds
  CopyCounts copied;     // written to the target by this run
  CopyCounts unchanged;  // already in the target, equal
  CopyCounts verified;   // found equal in the target after the copy
  std::vector<std::string> conflicts;  // one line per differing record
  bool written = false;  // false when conflicts stopped the copy
};

struct CopyOptions {
  bool force = false;
  // Told one line per phase ("copying 1000 accounts"), for a progress display.
  std::function<void(std::string_view)> progress;
};

// Throws storage::Error when either backend fails; what was written before
// the failure stays, and running the copy again completes it.
CopyReport copy_all(Storage& from, Storage& to, const CopyOptions& options = {});

}  // namespace parley::storage
