// The SQL of the message archive (XEP-0313), shared by the SQL backends: a
// page query is built from the filters present, so each backend caches one
// statement per combination. Placeholders bind in this order: owner, with,
// start, end, then the after bound (timestamp, timestamp, seq), then the
// before bound (timestamp, timestamp, seq), then the limit.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "storage/storage.hpp"

namespace parley::storage::sql {

// SELECT COUNT(*) of the messages matching owner, with, start and end.
inline std::string archive_count_sql(const ArchiveQuery& query) {
  std::string sql = "SELECT COUNT(*) FROM archive_messages WHERE owner = ?";
  if (query.with) sql += " AND with_jid = ?";
  if (query.start) sql += " AND timestamp >= ?";
  if (query.end) sql += " AND timestamp <= ?";
  return sql;
}

// SELECT id, timestamp, with_jid, stanza of one page plus one row (to tell
// whether the page is the last), newest first when paging from the end.
inline std::string archive_page_sql(const ArchiveQuery& query, bool has_after, bool has_before) {
  std::string sql = "SELECT id, timestamp, with_jid, stanza FROM archive_messages WHERE owner = ?";
  if (query.with) sql += " AND with_jid = ?";
  if (query.start) sql += " AND timestamp >= ?";
  if (query.end) sql += " AND timestamp <= ?";
  if (has_after) sql += " AND (timestamp > ? OR (timestamp = ? AND seq > ?))";
  if (has_before) sql += " AND (timestamp < ? OR (timestamp = ? AND seq < ?))";
  const bool from_end = query.last || query.before_id.has_value();
  sql += from_end ? " ORDER BY timestamp DESC, seq DESC" : " ORDER BY timestamp, seq";
  sql += " LIMIT ?";
  return sql;
}

// Preference JID lists as stored: one JID per line.
inline std::string join_jid_list(const std::vector<std::string>& jids) {
  std::string text;
  for (const auto& jid : jids) {
    if (!text.empty()) text += '\n';
    text += jid;
  }
  return text;
}

inline std::vector<std::string> split_jid_list(const std::string& text) {
  std::vector<std::string> jids;
  std::size_t position = 0;
  while (position < text.size()) {
    const auto end = std::min(text.find('\n', position), text.size());
    jids.push_back(text.substr(position, end - position));
    position = end + 1;
  }
  return jids;
}

}  // namespace parley::storage::sql
