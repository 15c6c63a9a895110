// Rules every backend applies the same way, kept in one place so the
// backends cannot drift apart.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/storage.hpp"

namespace parley::storage {

// The roster owner of an account: its bare JID.
std::string owner_jid(std::string_view username, std::string_view domain);

// Groups as given, with later duplicates of a name dropped.
std::vector<std::string> unique_groups(const std::vector<std::string>& groups);

// What a removal carries: the contact's JID and nothing else.
RosterItem removed_item(std::string jid);

// What RosterStore::import_roster refuses: a version below the number of
// entries, or a jid given twice. Throws storage::Error.
void check_roster_import(std::int64_t version, const std::vector<RosterChange>& changes);

}  // namespace parley::storage
